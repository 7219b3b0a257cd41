"""Test support for issue #16: each real PRM family's documented format (SPEC.md), a reference
scorer written from its model card (references), and tiny random checkpoints of its architecture
(tiny_models); `families.FAMILIES` ties them together by preset name."""
