"""Answer extraction and normalization: the final answer of a solution, and its canonical form.

`extract_answer` pulls the final answer out of a solution (last ``\\boxed{}``, "The answer is",
GSM8K "####", or the last number); `normalize_answer` and `numeric_value` give the forms that
grading and voting compare. Standard library only, so every layer (datasets too) can use it.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction

logger = logging.getLogger("reasoner.grading")

MAX_SYMBOLIC_CHARS = 1_000  # longer "answers" are not parsed (a runaway generation, not an answer)

# --------------------------------------------------------------------------------------------
# Light LaTeX normalization shared by extraction, the fast path and normalize_answer.
# --------------------------------------------------------------------------------------------

_NUMBER_RE = re.compile(
    r"(?<![\w.])(?<!\d:)-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+(?!\.\d))?(?![\d])"
)
_CALC_ANNOTATION_RE = re.compile(r"<<[^<>]{0,200}>>")
_GSM8K_RE = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS_RE = re.compile(
    r"(?:\bfinal\s+answer|\bthe\s+answer)[ \t]*(?:is\b|:)[ \t]*:?[ \t]*", re.IGNORECASE
)
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|textrm|mbox|mathrm|mathbf|operatorname)\s*\{")
_TRAILING_UNIT_RE = re.compile(
    r"^(?P<num>.*?[\w})\]])\s*(?:\\[,;:! ]\s*)*"
    r"\\(?:text|mbox|mathrm|textrm)\s*\{\s*[A-Za-z][A-Za-z .'\-/]*\}(?:\s*\^\s*\{?\d\}?)?\s*$"
)
_PLAIN_UNIT_RE = re.compile(
    r"^(?P<cur>\\?\$)?\s*(?P<num>-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?)"
    r"(?:\s*(?P<pct>\\?%|percent\b))?"
    r"(?:\s+(?!(?:pi|sqrt)\b)(?:[ap]\.\s?m\b|[A-Za-z]{2,}|[mgshL]\b)[A-Za-z .'\-/]*(?:\^\s*\{?\d\}?)?)?\s*$"
)
_DEGREE_RE = re.compile(r"\s*(?:\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree)\s*$")
_PCT_RE = re.compile(r"\s*(?:\\%|%|\\text\{\s*\\?%\s*\}|\s+percent)\s*$")
_COMMA_NUMBER_RE = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_PLAIN_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_SLASH_FRACTION_RE = re.compile(r"^([+-]?)\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)$")
_MIXED_RE = re.compile(
    r"^([+-]?)(\d+)(?:\s*\\frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}|\s+(\d+)/(\d+))$"
)
_LATEX_FRACTION_RE = re.compile(
    r"^([+-]?)\s*\\frac\s*(?:\{\s*([+-]?\d+(?:\.\d+)?)\s*\}|(\d))\s*(?:\{\s*(\d+(?:\.\d+)?)\s*\}|(\d))$"
)


def _match_brace(text: str, open_index: int) -> int:
    """Index of the '}' matching the '{' at open_index, or -1 if unbalanced."""
    depth = 0
    i = open_index
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":  # skip escaped characters such as \{ and \}
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _unwrap_text_commands(s: str) -> str:
    """Replace \\text{X}, \\mbox{X}, \\mathrm{X}, ... by X (brace-matched)."""
    for _ in range(50):  # bounded: each pass removes one command
        m = _TEXT_CMD_RE.search(s)
        if not m:
            break
        end = _match_brace(s, m.end() - 1)
        if end < 0:
            break
        s = s[: m.start()] + s[m.end() : end] + s[end + 1 :]
    return s


def _strip_math_delimiters(s: str) -> str:
    s = s.strip()
    for _ in range(3):
        before = s
        if s.startswith("$$") and s.endswith("$$") and len(s) >= 4 and "$" not in s[2:-2]:
            s = s[2:-2].strip()
        elif s.startswith("$") and s.endswith("$") and len(s) >= 2 and "$" not in s[1:-1]:
            s = s[1:-1].strip()
        elif (s.startswith("\\(") and s.endswith("\\)")) or (
            s.startswith("\\[") and s.endswith("\\]")
        ):
            s = s[2:-2].strip()
        if s == before:
            break
    return s


_THOUSANDS_LATEX_RE = re.compile(r"(?<=\d)(?:,\\!\s*|\{,\})(?=\d{3}(?!\d))")
# LaTeX spacing/sizing macros; a row break (two backslashes) is matched first so it stays intact.
_SPACING_RE = re.compile(
    r"\\\\|\\(?:left|right|displaystyle|bigl|bigr|Bigl|Bigr)(?![A-Za-z])|\\[!,;: ]|~"
)


def _spacing_sub(m: re.Match[str]) -> str:
    tok = m.group(0)
    if tok == "\\\\":
        return tok
    if tok in ("~", "\\ "):
        return " "
    return ""


def _light_clean(s: str) -> str:
    """Formatting-only cleanup that never changes the math: delimiters, spacing macros, \\dfrac."""
    s = s.strip()
    if s.startswith("**") and s.endswith("**") and len(s) > 4:  # markdown bold
        s = s[2:-2].strip()
    s = _strip_math_delimiters(s)
    box = last_boxed(s)
    if box is not None and _BOX_RE.match(s.strip()) and s.rstrip().endswith("}"):
        s = box
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _THOUSANDS_LATEX_RE.sub("", s)  # "10,\\!000" and "10{,}000" are thousands separators
    s = re.sub(r"(?<!\\)\\(?=\d)", "", s)  # "\\15": a mangled "\\$15" (a row break stays)
    s = _SPACING_RE.sub(_spacing_sub, s)
    s = s.replace("{,}", ",")
    s = re.sub(r"\s+", " ", s).strip()
    s = s.rstrip(".").strip()
    m = _TRAILING_UNIT_RE.match(s) if len(s) <= 300 else None  # "8\\sqrt{3} \\text{ cm}"
    if m:
        s = m.group("num").strip()
    # "x = 5" / "n=12" style answers for plain numbers: keep the right-hand side
    m = re.match(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(-?[\d.,/]+)$", s)
    if m and _NUMBER_RE.fullmatch(m.group(1).replace(",", "")):
        s = m.group(1)
    return s


def _strip_units(s: str) -> tuple[str, bool]:
    """Remove currency, degrees, percent and trailing unit words. Returns (core, had_percent)."""
    pct = False
    s = s.strip()
    for _ in range(4):
        before = s
        m = _TRAILING_UNIT_RE.match(s)
        if m:
            s = m.group("num").strip()
        s = _DEGREE_RE.sub("", s)
        if _PCT_RE.search(s):
            s = _PCT_RE.sub("", s)
            pct = True
        s = re.sub(r"^(-?)\s*\\?\$\s*", r"\1", s)  # currency: "\$18", "-\$0.50"
        s = s.strip()
        if s == before:
            break
    m = _PLAIN_UNIT_RE.match(s)
    if m:
        pct = pct or bool(m.group("pct"))
        s = m.group("num")
    return s, pct


def _to_fraction(s: str) -> Fraction | None:
    s = re.sub(r"^([+-])\s+", r"\1", s.strip())
    if _COMMA_NUMBER_RE.match(s):
        s = s.replace(",", "")
    try:
        m = _MIXED_RE.match(s)  # "2\frac{1}{2}" and "2 1/2" mean 2.5 (proper fractions only)
        if m:
            whole = Fraction(m.group(2))
            num, den = Fraction(m.group(3) or m.group(5)), Fraction(m.group(4) or m.group(6))
            if 0 < num < den:
                value = whole + num / den
                return -value if m.group(1) == "-" else value
            return None
        if _PLAIN_NUMBER_RE.match(s):
            return Fraction(s)
        m = _SLASH_FRACTION_RE.match(s)
        if m:
            den = Fraction(m.group(3))
            if den == 0:
                return None
            value = Fraction(m.group(2)) / den
            return -value if m.group(1) == "-" else value
        m = _LATEX_FRACTION_RE.match(s)
        if m:
            num = Fraction(m.group(2) or m.group(3))
            den = Fraction(m.group(4) or m.group(5))
            if den == 0:
                return None
            value = num / den
            return -value if m.group(1) == "-" else value
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return None


def numeric_value(answer: str | None) -> tuple[Fraction, bool] | None:
    """The exact value of a plainly numeric answer ("1,000", "\\$18.90", "\\frac{1}{2}", "25\\%",
    "90^\\circ", "5 \\text{ cm}") as (Fraction, had_percent), or None if it is not plainly numeric."""
    if not isinstance(answer, str) or len(answer) > 200:
        return None
    core, pct = _strip_units(_light_clean(answer))
    value = _to_fraction(core)
    if value is None:
        return None
    return value, pct


def _equality_key(s: str) -> str:
    """A spacing- and wrapper-insensitive string used for the exact-match shortcut."""
    s = _unwrap_text_commands(_light_clean(s))
    s = re.sub(r"(?<=\w) +(?=\w)", "\x00", s)  # keep "137 1/2" apart from "1371/2"
    return s.replace(" ", "").replace("\x00", " ").rstrip(".")


def normalize_answer(answer: str | None) -> str | None:
    """A canonical key for an answer, for majority votes and answer buckets: numeric answers map
    to their exact value ("1,000", "1000.0" and "\\$1000" all give "1000"); others to a
    whitespace- and wrapper-insensitive LaTeX string. None stays None."""
    if answer is None:
        return None
    if len(answer) > MAX_SYMBOLIC_CHARS:
        return answer.strip()
    try:
        num = numeric_value(answer)
        if num is not None:
            value = num[0]
            return (
                str(value.numerator)
                if value.denominator == 1
                else f"{value.numerator}/{value.denominator}"
            )
        return _equality_key(answer)
    except Exception:  # never raises on odd input
        return answer.strip()


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


def _brace_pairs(text: str) -> dict[int, int]:
    """Index of each '{' -> index of its matching '}', in one pass (escaped braces skipped)."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def last_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{...} / \\fbox{...} (or `\\boxed 2`), or None.
    Linear in the text length even when a looping generation leaves thousands of open boxes."""
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return None
    pairs = _brace_pairs(text)
    for m in reversed(matches):
        i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            end = pairs.get(i, -1)
            if end < 0:
                continue  # unterminated (truncated generation): try an earlier box
            content = text[i + 1 : end].strip()
        else:
            tok = re.match(r"[^\s$]{1,200}", text[i : i + 200])
            content = tok.group(0).rstrip(".,;") if tok and i > m.end() else ""
        if content:
            return content
    return None


_UNESCAPED_DOLLAR_RE = re.compile(r"(?<!\\)\$")


def _clean_span(span: str) -> str | None:
    """Tidy an "answer is" / "####" capture: math delimiters, bold, trailing period, units.
    A capture opening a math group ($...$, $$...$$, \\(...\\), \\[...\\]) may span lines; other
    captures end at the line break."""
    s = span.strip()
    closers = {"$$": "$$", "\\(": "\\)", "\\[": "\\]"}
    for opener, closer in closers.items():
        if s.startswith(opener) and closer in s[2:]:
            s = s[2 : s.index(closer, 2)]
            break
    else:
        close = _UNESCAPED_DOLLAR_RE.search(s, 1) if s.startswith("$") else None
        inner = s[1 : close.start()] if close else ""
        # "$18. Then ... $5" is a currency sign, not a math group: no sentence end inside
        if close and inner.strip() and "\n\n" not in inner and not re.search(r"\.\s", inner):
            s = inner
        else:
            s = s.split("\n", 1)[0]
            m = re.search(r"\.(?=\s|$)", s)  # the end of the sentence (not a decimal point)
            if m:
                s = s[: m.start()]
    s = s.strip().strip("*").strip()
    box = last_boxed(s)
    if box is not None:
        s = box
    s = s.rstrip(".").strip()
    m = _PLAIN_UNIT_RE.match(s) if len(s) <= 200 else None
    if m:
        s = (m.group("cur") or "") + m.group("num") + ("%" if m.group("pct") else "")
        s = re.sub(r"^\\?\$", "", s)
    if s.startswith("$") and "$" not in s[1:]:  # "$18" as currency
        s = s[1:].strip()
    return s or None  # "1,000" stays as written: it may be a list ("70,110"); grade() decides


def extract_answer(text: str, fallback_last_number: bool = True) -> str | None:
    """The final answer in a solution: the last \\boxed{}/\\fbox{}, else the last "The answer is
    X" / "the final answer is X", else GSM8K "#### X", else (if allowed) the last number.
    Returns None when nothing is found; never raises."""
    try:
        if not isinstance(text, str) or not text:
            return None
        boxed = last_boxed(text)
        if boxed is not None:
            return boxed
        for m in reversed(list(_ANSWER_IS_RE.finditer(text))):
            ans = _clean_span(text[m.end() : m.end() + 2000])
            if ans:
                return ans
        gsm = _GSM8K_RE.findall(text)
        for cap in reversed(gsm):
            ans = _clean_span(cap)
            if ans:
                return ans
        if fallback_last_number:
            body = _CALC_ANNOTATION_RE.sub("", text)
            numbers = _NUMBER_RE.findall(body)
            if numbers:
                return numbers[-1].replace(",", "")
        return None
    except Exception:  # defensive: extraction must never break a search or a benchmark
        logger.debug("extract_answer failed", exc_info=True)
        return None
