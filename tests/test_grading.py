"""Answer extraction and grading: property tests plus the thread/timeout guarantees."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reasoner import grading
from reasoner.grading import extract_answer, grade, normalize_answer, numeric_value

# A SymPy computation that runs (in C) for far longer than any limit: 2^(2^(2^40)).
HANG = ("2^{2^{2^{40}}}", "3")

ints = st.integers(min_value=-(10**9), max_value=10**9)
filler = st.text(alphabet="abcdefghij klmnopqrstuvwxyz,;", max_size=40)  # no digits, no "answer"


def int_variants(n: int) -> list[str]:
    s = str(n)
    out = [s, f"{n:,}", f"{n}.0", f"{n}.00", f"${n}$", f"\\boxed{{{n}}}", f"{n}\\text{{ dollars}}"]
    if n >= 0:
        out += [f"\\${n:,}", f"${n}", f"{n} apples", f"{n}^\\circ", f"{n:,}".replace(",", ",\\!")]
    return out


@given(ints, st.data())
def test_integer_formatting_variants_grade_equal(n: int, data: st.DataObject) -> None:
    variant = data.draw(st.sampled_from(int_variants(n)))
    assert grade(variant, str(n)), variant
    assert grade(str(n), variant), variant


@given(
    st.decimals(
        min_value=-(10**6), max_value=10**6, places=3, allow_nan=False, allow_infinity=False
    )
)
def test_decimal_formatting_variants_grade_equal(d: Decimal) -> None:
    plain = format(d, "f")
    for variant in (plain + "0", format(d.normalize(), "f"), f"${plain}$", f"\\boxed{{{plain}}}"):
        assert grade(variant, plain), (variant, plain)


@given(st.integers(-999, 999), st.integers(1, 999))
def test_fractions_grade_equal_across_notations(a: int, b: int) -> None:
    value = Fraction(a, b)
    sign = "-" if value < 0 else ""
    p, q = abs(value.numerator), value.denominator
    gold = f"{sign}\\frac{{{p}}}{{{q}}}"
    assert grade(f"{sign}{p}/{q}", gold)
    assert grade(f"{sign}\\dfrac{{{p}}}{{{q}}}", gold)
    if 10**6 % q == 0:  # a terminating decimal
        assert grade(str(float(value)), gold)


@given(ints, ints)
def test_different_numbers_grade_unequal(a: int, b: int) -> None:
    assume(a != b)
    assert not grade(str(a), str(b))
    assert not grade(f"{a:,}", f"\\boxed{{{b}}}")
    assert not grade(f"{a}.5", str(a))


@given(ints, filler, filler)
def test_extract_boxed(n: int, before: str, after: str) -> None:
    text = f"{before} 7 \\boxed{{1}} then {before} \\boxed{{\\frac{{{n}}}{{2}}}} {after}"
    assert extract_answer(text) == f"\\frac{{{n}}}{{2}}"
    assert extract_answer(f"{before} \\fbox{{{n}}} {after}") == str(n)


@given(ints, filler)
def test_extract_answer_is(n: int, before: str) -> None:
    assert extract_answer(f"{before} 12 + 5 = 17.\nThe answer is {n}.") == str(n)
    assert extract_answer(f"{before}\nSo the final answer is ${n}$. I hope it is correct.") == str(
        n
    )
    assert grade(extract_answer(f"{before} The answer is {n:,} dollars."), str(n))


@given(ints, filler)
def test_extract_gsm8k_hashes(n: int, before: str) -> None:
    assert extract_answer(f"{before} 3 + 4 = <<3+4=7>>7 apples\n#### {n}") == str(n)


@given(st.lists(ints, min_size=1, max_size=5), filler)
def test_extract_last_number(numbers: list[int], words: str) -> None:
    text = " ".join(f"{words} {x:,}" for x in numbers) + "."
    assert extract_answer(text) == str(numbers[-1])
    assert extract_answer(text, fallback_last_number=False) is None


def test_extract_examples() -> None:
    assert extract_answer("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}") == (
        "\\left( 3, \\frac{\\pi}{2} \\right)"
    )
    assert extract_answer("truncated \\boxed{5} and \\boxed{12") == "5"  # unterminated box skipped
    assert extract_answer("so \\boxed 2 remain") == "2"
    assert extract_answer("The answer is: **72**") == "72"
    assert extract_answer("The answer is $18.") == "18"
    assert extract_answer("The answer is 25%.") == "25%"
    assert extract_answer("It was 3.5 m, then -2 and 3/4 of it.") == "3/4"
    assert extract_answer("finish by 5 - 3 = 2:00 pm") == "2"  # a clock time, not "00"
    assert extract_answer("no digits here") is None
    assert extract_answer("") is None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_extract_never_raises(text: str) -> None:
    result = extract_answer(text)
    assert result is None or isinstance(result, str)
    assert isinstance(normalize_answer(text), str | None)
    numeric_value(text)


@settings(max_examples=40, deadline=None)
@given(
    st.text(alphabet="0123456789+-*/^{}()\\fracsqrtpi ,.=x$%", max_size=40), st.text(max_size=20)
)
def test_grade_never_raises_on_junk(pred: str, gold: str) -> None:
    assert grade(pred, gold, timeout=2.0) in (True, False)


@pytest.mark.parametrize(
    "pred, gold",
    [
        ("\\frac{1}{2}", "0.5"),
        ("0.5", "\\frac12"),
        ("1,000", "1000"),
        ("18.0", "18"),
        ("$18", "18"),
        ("10\\%", "10"),
        ("0.1", "10\\%"),
        ("90", "90^\\circ"),
        ("5", "5\\text{ cm}"),
        ("15 cm^2", "15\\mbox{ cm}^2"),
        ("8\\sqrt{3}", "8\\sqrt{3} \\text{ square inches}"),
        ("\\$18.90", "18.9"),
        ("10000", "10{,}000"),
        ("\\frac{12}{5525}", "\\frac{12}{5,\\!525}"),
        ("137.5", "137 \\frac{1}{2}"),
        ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("[2,5)", "[2, 5)"),
        ("(-\\infty, 2) \\cup (3, \\infty)", "(-\\infty,2)\\cup(3,\\infty)"),
        ("\\begin{pmatrix}1\\\\-2\\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}"),
        ("Evelyn", "\\text{Evelyn}"),
        ("C", "\\text{(C)}"),
        ("(x+1)^2", "x^2+2x+1"),
        ("2\\sqrt{2}", "\\sqrt{8}"),
        ("2x+3", "y = 2x + 3"),
        ("110, 70", "70,110"),
        ("-5, -2, 7", "7, -2, \\text{ and } -5"),
        ("\\boxed{42}", "42"),
    ],
)
def test_equivalent_pairs(pred: str, gold: str) -> None:
    assert grade(pred, gold)


@pytest.mark.parametrize(
    "pred, gold",
    [
        ("(1, 2)", "(2, 1)"),
        ("[1, 2]", "(1, 2)"),
        ("\\frac{1}{3}", "0.333"),
        ("2", "2k"),
        ("6", "6x"),
        ("1371/2", "137 1/2"),
        ("\\pi", "3.14"),
        ("-\\infty", "\\infty"),
        ("\\begin{pmatrix}1\\\\3\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
        ("Monday", "\\text{Tuesday}"),
        (None, "1"),
        ("", "1"),
        ("1", ""),
    ],
)
def test_inequivalent_pairs(pred: str | None, gold: str) -> None:
    assert not grade(pred, gold)


def test_normalize_answer_buckets() -> None:
    assert (
        normalize_answer("1,000")
        == normalize_answer("1000.0")
        == normalize_answer("\\$1000")
        == "1000"
    )
    assert normalize_answer("\\dfrac{1}{2}") == normalize_answer("0.5") == "1/2"
    assert normalize_answer("\\left( 1, 2 \\right)") == normalize_answer("(1,2)")
    assert normalize_answer(None) is None


def test_numeric_fast_path_stays_in_process() -> None:
    grading.shutdown()  # no worker alive
    t0 = time.perf_counter()
    for n in range(200):
        assert grade(f"{n:,}.0", str(n))
        assert not grade(str(n), str(n + 1))
    assert time.perf_counter() - t0 < 1.0
    assert grading._POOL.count == 0  # never needed a worker


def test_grade_from_threads_and_timeout() -> None:
    """Symbolic grading works off the main thread, and a hang is cut at the limit from there."""
    results: dict[str, object] = {}

    def symbolic() -> None:
        results["symbolic"] = grade("x^2 + 2x + 1", "(x+1)^2")

    def hang() -> None:
        t0 = time.monotonic()
        results["hang"] = grade(*HANG, timeout=1.0)
        results["hang_seconds"] = time.monotonic() - t0

    grading.warm_up()  # worker start-up is not part of the per-call limit
    threads = [threading.Thread(target=symbolic), threading.Thread(target=hang)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert results["symbolic"] is True
    assert results["hang"] is False
    assert results["hang_seconds"] < 10.0  # 1 s limit + a possible worker start on a busy box
    # the killed worker is replaced on demand, and a timeout is not cached as a verdict
    assert grade("\\sqrt{12}", "2\\sqrt{3}")
    assert (HANG[0], HANG[1]) not in grading._cache


def test_many_threads_share_the_pool() -> None:
    pairs = [
        (f"\\frac{{{k}\\sqrt{{2}}}}{{2}}", f"\\frac{{{k}}}{{\\sqrt{{2}}}}") for k in range(1, 9)
    ]
    out: list[bool] = []
    lock = threading.Lock()

    def run(p: str, g: str) -> None:
        r = grade(p, g)
        with lock:
            out.append(r)

    threads = [threading.Thread(target=run, args=pair) for pair in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert out == [True] * len(pairs)
    assert grading._POOL.count <= grading.MAX_WORKERS


def test_a_whole_solution_is_graded_by_its_final_answer() -> None:
    solution = "Mia has 3 * 8 = 24 pens.\n\nShe has 24 - 5 = 19 pens left. The answer is 19."
    assert grade(solution, "19")
    assert not grade(solution, "24")
    assert grade("19", "Natalia sold 48/2 = 24 clips.\n#### 19")  # GSM8K's answer field as gold
    assert grade("So the answer is $\\frac{1}{2}$.", "0.5")


def test_identical_answers_are_equal_at_any_length() -> None:
    huge = "9" * 10_000
    assert grade(huge, huge)
    assert not grade(huge, huge[:-1] + "8")  # too long to parse symbolically: not equal


def test_timeout_bounds_the_call_when_every_worker_is_busy() -> None:
    grading.warm_up()
    seconds: list[float] = []
    lock = threading.Lock()

    def hang() -> None:
        t0 = time.monotonic()
        assert grade(*HANG, timeout=1.0) is False
        with lock:
            seconds.append(time.monotonic() - t0)

    threads = [threading.Thread(target=hang) for _ in range(5 * grading.MAX_WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    # a waiting call gives up at its own deadline instead of queueing behind the hung ones; a
    # replacement worker's start-up (importing math-verify) may add a few seconds on a busy box
    assert max(seconds) < 6.0, seconds


def test_a_timeout_is_reported_not_silent(caplog: pytest.LogCaptureFixture) -> None:
    grading.warm_up()
    with caplog.at_level("WARNING", logger="reasoner.grading"):
        assert grade(*HANG, timeout=0.5) is False
    assert any("timed out (graded as not equal)" in r.getMessage() for r in caplog.records)
