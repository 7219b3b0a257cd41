"""Per-step evidence read from a causal LM's own token distribution over a solution.

A sampling slip at temperature 1 is a token the policy itself found unlikely: a wrong carry digit
in an equation's result, a copied operand that is not in the problem. This module pools, per step, from
the policy's distribution at every token of (prompt, steps), how likely each token was
and how far it fell below the policy's favourite, split by the token's role (a result digit after
"=", another digit, a word), and, as a separate feature group, whether the step's equations hold
(a calculator check the tiny policy cannot learn to do itself). The evidence PRM (reasoner.models.evidence_prm) learns from rollout
labels how this evidence maps to a step's value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from reasoner.synthetic.checker import find_equations

# One row per step, in this order. "gap" is log p(token) - max log p at that position (0 when the
# token was the policy's argmax); "res" are digits of an equation result (after "="), "opd" the
# other digits, "word" everything else; "run_" features are the minimum over the prefix so far.
STEP_FEATURES = (
    "lp_min",
    "lp_mean",
    "gap_min",
    "res_lp_min",
    "res_gap_min",
    "opd_lp_min",
    "opd_gap_min",
    "word_lp_min",
    "word_gap_min",
    "res_entropy_max",
    "sqrt_tokens",
)
# Equation checks (reasoner.synthetic.checker, a calculator over "a op b = c" in the step text):
# whether some equation of the step is false, and how many equations it holds.
CHECK_FEATURES = ("eq_false", "eq_count")
# prefix running minima ("run_" + name): a step's value depends on every step so far
RUNNING = (
    "lp_min",
    "gap_min",
    "res_lp_min",
    "res_gap_min",
    "opd_lp_min",
    "opd_gap_min",
    "neg_eq_false",
)
FEATURES = STEP_FEATURES + CHECK_FEATURES + tuple(f"run_{name}" for name in RUNNING)
# what a head may be trained on: the policy's token evidence, and optionally the equation checks
FEATURE_GROUPS = {
    "token": tuple(f for f in FEATURES if "eq_" not in f),
    "equation": ("eq_false", "eq_count", "run_neg_eq_false"),
}

WORD, OPERAND, RESULT = 0, 1, 2


class TokenRoles:
    """WORD / OPERAND / RESULT per token: digits right after an "=" (spaces allowed) are a result.

    Each vocabulary id is decoded once and its text cached, so any HF tokenizer works."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self._text: dict[int, str] = {}

    def text(self, token_id: int) -> str:
        if token_id not in self._text:
            self._text[token_id] = self.tokenizer.decode([token_id]).strip()
        return self._text[token_id]

    def __call__(self, ids: Sequence[int]) -> list[int]:
        roles, after_equals = [], False
        for token_id in ids:
            core = self.text(token_id)
            if core and core.replace(",", "").replace(".", "").isdigit():
                roles.append(RESULT if after_equals else OPERAND)
                continue
            roles.append(WORD)
            if "=" in core:
                after_equals = True
            elif core:
                after_equals = False
        return roles


def chain_layout(
    encode: Callable[[str], Sequence[int]],
    prompt_ids: Sequence[int],
    steps: Sequence[str],
    delimiter: str,
) -> tuple[list[int], list[tuple[int, int]]]:
    """The policy-side token ids of prompt + steps and each step's [begin, end) token span.

    Steps are joined by the delimiter the policy ends a step with; each piece is encoded on its
    own (`encode`: text -> ids, no special tokens), so a step's span (its text, without the
    delimiter) has the same tokens whatever follows it: a chain's step prefix is exactly its
    parent chain."""
    ids, spans = list(prompt_ids), []
    joiner = encode(delimiter)
    for i, step in enumerate(steps):
        if i:
            ids += joiner
        begin = len(ids)
        ids += encode(step)
        spans.append((begin, len(ids)))
    return ids, spans


def evidence_rows(
    stats: tuple[Any, Any, Any],
    steps: Sequence[tuple[str, Sequence[int]]],
    spans: Sequence[tuple[int, int]],
    roles: TokenRoles,
    known: Sequence[Sequence[float]] = (),
) -> list[list[float]]:
    """FEATURES rows of new steps ((text, token ids) each) from per-token (log p, gap to argmax,
    entropy) tensors; spans index those tensors; `known` are the rows of the steps before (their
    running minima carry on)."""
    lp_row, gap_row, ent_row = (t.tolist() for t in stats)
    first_run = len(STEP_FEATURES) + len(CHECK_FEATURES)
    running = {name: known[-1][first_run + k] if known else 0.0 for k, name in enumerate(RUNNING)}
    rows = []
    for (text, ids), (begin, end) in zip(steps, spans):
        feats = _pool(lp_row[begin:end], gap_row[begin:end], ent_row[begin:end], roles(ids))
        equations = find_equations(text)
        feats["eq_false"] = float(any(not eq.holds for eq in equations))
        feats["eq_count"] = float(len(equations))
        feats["neg_eq_false"] = -feats["eq_false"]
        for name in RUNNING:
            running[name] = min(running[name], feats[name])
        rows.append(
            [feats[n] for n in STEP_FEATURES + CHECK_FEATURES] + [running[n] for n in RUNNING]
        )
    return rows


def _pool(
    lps: list[float], gaps: list[float], ents: list[float], roles: list[int]
) -> dict[str, float]:
    """Pool one step's token statistics by role; an absent role contributes 0 (no evidence)."""

    def low(values: list[float], role: int | None) -> float:
        picked = [v for v, r in zip(values, roles) if role is None or r == role]
        return min(picked) if picked else 0.0

    results = [e for e, r in zip(ents, roles) if r == RESULT]
    return {
        "lp_min": low(lps, None),
        "lp_mean": sum(lps) / len(lps) if lps else 0.0,
        "gap_min": low(gaps, None),
        "res_lp_min": low(lps, RESULT),
        "res_gap_min": low(gaps, RESULT),
        "opd_lp_min": low(lps, OPERAND),
        "opd_gap_min": low(gaps, OPERAND),
        "word_lp_min": low(lps, WORD),
        "word_gap_min": low(gaps, WORD),
        "res_entropy_max": max(results) if results else 0.0,
        "sqrt_tokens": float(len(lps)) ** 0.5 if lps else 0.0,
    }
