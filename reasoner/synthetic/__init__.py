"""The embedded "arith" suite: synthetic GSM8K-style problems with exactly checkable steps."""

from reasoner.synthetic.checker import (
    find_equations,
    first_arithmetic_error,
    first_error,
    split_steps,
    stated_answer,
)
from reasoner.synthetic.generator import (
    FAMILIES,
    SPLITS,
    TEST_SIZE,
    TRAIN_SIZE,
    generate,
    load_split,
    write_test_split,
)

__all__ = [
    "FAMILIES",
    "SPLITS",
    "TEST_SIZE",
    "TRAIN_SIZE",
    "find_equations",
    "first_arithmetic_error",
    "first_error",
    "generate",
    "load_split",
    "split_steps",
    "stated_answer",
    "write_test_split",
]
