"""Exact step checking for arith problems: the first wrong step of any solution text.

`first_error` knows the problem (its givens and reference computation) and so catches logic
errors as well as slips: a step is wrong when an equation in it is false, when it uses a number
that is not available (a distractor, a misread quantity), when it computes a value the reference
computation never needs, when a non-final step has no equation, or when the stated answer is
missing or wrong. `first_arithmetic_error` is the problem-blind baseline: it only checks that
every equation is arithmetically true, as an "equation checker" oracle would.

Implied constants: words such as "twice", "half", "three times", "a third" or "a quarter" imply
a number that is not written as digits. The generator records every such number in the
problem's `metadata["givens"]`, so the checker needs no extra constant list; `EXTRA_CONSTANTS`
is empty and kept only as the one place to add one should a family ever need it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from reasoner.types import Problem, ReasonerError

STEP_DELIMITER = "\n\n"
EXTRA_CONSTANTS: frozenset[int] = frozenset()

_NUM = r"\d+(?:\.\d+)?"
# one token of arithmetic (number, operator, parenthesis, "="), a space, or one other character
_LEX = re.compile(rf"({_NUM})|([-+*/()=])|( )|(.)", re.DOTALL)
_MAX_EQUATION_TOKENS = 64  # a longer arithmetic run is garbage: it counts as a broken equation
_ANSWER = re.compile(r"answer\s+is\s*:?\s*(?:\\boxed\s*\{)?\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\s*\{\s*(-?\d+(?:\.\d+)?)\s*\}")
_ANSWER_PHRASE = re.compile(r"answer\s+is|\\boxed", re.IGNORECASE)
_MAX_STEP_CHARS = 4000  # longer steps are garbage for this suite; only their start is parsed


def _normalize(text: str) -> str:
    """Map the ways a model may write arithmetic onto ASCII `a op b = c` with plain numbers."""
    text = text[:_MAX_STEP_CHARS]
    for src, dst in (
        ("\u00d7", "*"),
        ("\u00f7", "/"),
        ("\u2212", "-"),
        ("\u2013", "-"),
        ("\u00b7", "*"),
        ("\u22c5", "*"),
        ("\\times", "*"),
        ("\\cdot", "*"),
        ("\\div", "/"),
        ("\\(", " "),
        ("\\)", " "),
        ("\\[", " "),
        ("\\]", " "),
        ("$", " "),
    ):
        text = text.replace(src, dst)
    text = re.sub(r"(?<=\d)\s*[xX]\s*(?=\d)", " * ", text)  # 3 x 4, 3x4
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # 1,200 -> 1200
    return re.sub(r"\s+", " ", text)


def _evaluate(tokens: list[str]) -> Fraction | None:
    """Exact value of a token list (numbers, + - * /, parentheses), or None when it is malformed."""
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> Fraction:
        tok = peek()
        if tok == "-":
            take()
            return -atom()
        if tok == "(":
            take()
            value = expr()
            if peek() != ")":
                raise ValueError("unclosed parenthesis")
            take()
            return value
        if tok is None or tok in "+-*/()":
            raise ValueError("expected a number")
        return Fraction(take())

    def term() -> Fraction:
        value = atom()
        while peek() in ("*", "/"):
            op = take()
            rhs = atom()
            if op == "*":
                value *= rhs
            elif rhs == 0:
                raise ValueError("division by zero")
            else:
                value /= rhs
        return value

    def expr() -> Fraction:
        value = term()
        while peek() in ("+", "-"):
            op = take()
            rhs = term()
            value = value + rhs if op == "+" else value - rhs
        return value

    if not tokens or len(tokens) > _MAX_EQUATION_TOKENS:
        return None
    try:
        value = expr()
    except (ValueError, ZeroDivisionError, RecursionError):
        return None
    return value if pos == len(tokens) else None


@dataclass(frozen=True)
class Equation:
    """One equation found in a step: whether it holds, the numbers it used and what it produced."""

    text: str
    holds: bool
    has_op: bool  # False for "12 = 12": a restatement, not a computation
    operands: tuple[Fraction, ...]
    result: Fraction | None


def _runs(text: str) -> list[list[str]]:
    """Maximal runs of arithmetic tokens (spaces allowed inside) that contain an "="."""
    runs: list[list[str]] = []
    current: list[str] = []
    lexed = _LEX.findall(text)
    for i, (num, sym, _space, other) in enumerate(lexed):
        if sym == "-" and not current and i + 1 < len(lexed) and lexed[i + 1][2]:
            continue  # "- " opening a run is a bullet or a dash, not a minus sign
        if num or sym:
            current.append(num or sym)
        elif other:
            if "=" in current:
                runs.append(current)
            current = []
    if "=" in current:
        runs.append(current)
    return runs


def _is_number(side: list[str]) -> bool:
    core = [t for t in side if t not in "()"]
    return len(core) == 1 and core[0][0].isdigit()


def find_equations(step: str) -> list[Equation]:
    """Every equation in one step, in order (after normalizing x, ×, commas, LaTeX operators).

    A broken equation ("3 * = 12", unbalanced parentheses) is returned with holds=False; a run
    with nothing on one side of "=" ("x = 5" in prose) is not an equation and is skipped.
    """
    found = []
    for run in _runs(_normalize(step)):
        # drop stray operators at the ends (a bullet "- ", a dangling "+"), keep a leading "-2"
        while run and (run[0] in "+*/)" or (run[0] == "-" and len(run) > 1 and run[1] in "-+*/)=")):
            run = run[1:]
        while run and run[-1] in "+-*/(":
            run = run[:-1]
        sides: list[list[str]] = [[]]
        for tok in run:
            if tok == "=":
                sides.append([])
            else:
                sides[-1].append(tok)
        if len(sides) < 2 or not sides[0] or not sides[-1]:
            continue
        values = [_evaluate(side) for side in sides]
        holds = all(v is not None for v in values) and len(set(values)) == 1
        has_op = not all(_is_number(side) for side in sides)
        res_idx = 0 if (_is_number(sides[0]) and not _is_number(sides[-1])) else len(sides) - 1
        operands = tuple(
            Fraction(t)
            for i, side in enumerate(sides)
            if i != res_idx
            for t in side
            if t[0].isdigit()
        )
        text = " = ".join(" ".join(side) for side in sides)
        found.append(Equation(text, holds, has_op, operands, values[res_idx]))
    return found


def split_steps(solution_text: str) -> list[str]:
    """Steps of a solution: pieces between blank lines, empty pieces dropped."""
    return [s.strip() for s in solution_text.split(STEP_DELIMITER) if s.strip()]


def stated_answer(step: str) -> tuple[bool, Fraction | None]:
    """(whether the step states a final answer, its value or None when unreadable)."""
    norm = _normalize(step)
    if not _ANSWER_PHRASE.search(norm):
        return False, None
    matches = _ANSWER.findall(norm) or _BOXED.findall(norm)
    return True, (Fraction(matches[-1]) if matches else None)


def _number(value: object) -> Fraction | None:
    try:
        return Fraction(str(value).replace(",", "").strip())
    except (ValueError, ZeroDivisionError):
        return None


def first_error(problem: Problem, solution_text: str) -> int:
    """0-based index of the first wrong step of `solution_text` for an arith `problem`; -1 if none.

    -1 means every step is right and the stated final answer ("The answer is N") equals the gold
    answer and was computed by a step. An empty solution counts as wrong at step 0.
    """
    meta = problem.metadata or {}
    if "steps" not in meta or "givens" not in meta or problem.answer is None:
        raise ReasonerError(
            f"problem {problem.id!r} is not an arith problem: first_error needs an answer and "
            "metadata 'givens' and 'steps'"
        )
    gold = _number(problem.answer)
    reference_values = {Fraction(int(s[3])) for s in meta["steps"]}
    available = {Fraction(int(g)) for g in meta["givens"]} | {Fraction(c) for c in EXTRA_CONSTANTS}
    derived: set[Fraction] = set()
    steps = split_steps(solution_text if isinstance(solution_text, str) else "")
    if not steps:
        return 0
    answered = False
    for i, step in enumerate(steps):
        computed = False
        for eq in find_equations(step):
            if not eq.holds:
                return i
            if not eq.has_op:
                continue
            if any(x not in available for x in eq.operands):
                return i
            if eq.result not in reference_values:
                return i
            available.add(eq.result)
            derived.add(eq.result)
            computed = True
        states, value = stated_answer(step)
        if states:
            answered = True
            if value is None or value != gold or value not in derived:
                return i
        elif not computed and i != len(steps) - 1:
            return i
    if not answered:
        return len(steps) - 1
    return -1


def first_arithmetic_error(solution_text: str) -> int:
    """Index of the first step holding a false equation, -1 if none: a problem-blind checker."""
    steps = split_steps(solution_text if isinstance(solution_text, str) else "")
    for i, step in enumerate(steps):
        if any(not eq.holds for eq in find_equations(step)):
            return i
    return -1
