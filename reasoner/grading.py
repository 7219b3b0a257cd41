"""Answer extraction and answer equivalence, with time limits that hold in any thread.

`extract_answer` pulls the final answer out of a solution (last ``\\boxed{}``, "The answer is",
GSM8K "####", or the last number). `grade` decides whether a predicted answer equals the gold one:
a cheap exact/numeric path first, then math-verify for everything symbolic.

Timeouts. math-verify bounds its own work with ``signal.alarm``, which only works in the main
thread, and a runaway SymPy call (e.g. a huge power) can sit inside C code where no Python-level
interrupt reaches it. So math-verify's timeouts are disabled here and the symbolic comparison
runs in a small pool of persistent worker processes (plain ``subprocess`` + JSON lines over
pipes; no ``multiprocessing``, so nothing re-imports the caller's ``__main__`` and nothing is
forked from a process that may hold torch threads). The caller waits on a queue with a deadline;
a worker that misses it is killed and a fresh one is started on the next call, and the
comparison grades False. This works from any thread and really bounds wall time. Numeric
answers (the common case on GSM8K and the synthetic suite) never leave the calling process.

This module imports only the standard library at top level: the worker process loads this very
file by path, without importing the `reasoner` package.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from fractions import Fraction

__all__ = [
    "extract_answer",
    "grade",
    "normalize_answer",
    "numeric_value",
    "warm_up",
    "shutdown",
    "DEFAULT_TIMEOUT",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0  # seconds of symbolic comparison allowed per grade() call
STARTUP_TIMEOUT = 60.0  # seconds a fresh worker may take to import math-verify (busy machines)
MAX_WORKERS = max(1, int(os.environ.get("REASONER_GRADER_WORKERS", "2") or 2))
MAX_SYMBOLIC_CHARS = 1_000  # longer "answers" grade False without being parsed
WORKER_MEMORY_MB = int(os.environ.get("REASONER_GRADER_MEMORY_MB", "2048") or 2048)
WORKER_MAX_JOBS = 20_000  # recycle a worker after this many jobs to bound SymPy cache growth
_CACHE_SIZE = 65_536

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
    box = _last_boxed(s)
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


def _last_boxed(text: str) -> str | None:
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
    box = _last_boxed(s)
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
        boxed = _last_boxed(text)
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


# --------------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------------


def _numeric_list(answer: str) -> list[Fraction] | None:
    """Values of an unbracketed comma-separated list of plain numbers ("7, -2, and -5"), or None."""
    s = _light_clean(answer)
    if re.search(r"[()\[\]]|\\\{", s) or "," not in s:
        return None
    values = []
    for item in s.split(","):
        item = re.sub(r"^\s*(?:\\text\{\s*and\s*\}|and\b)\s*", "", item.strip())
        num = numeric_value(item) if item else None
        if num is None or num[1]:
            return None
        values.append(num[0])
    return values


def _fast_grade(pred: str, gold: str) -> bool | None:
    """True/False when decidable without SymPy (exact strings, plain numbers); None otherwise."""
    if _equality_key(pred) == _equality_key(gold):
        return True
    # Lists of numbers compare as sets. "70,110" reads both as the list {70, 110} and as 70110:
    # MATH writes thousands as "70,\!110" but sometimes with a bare comma, and lists the same way.
    pl, gl = _numeric_list(pred), _numeric_list(gold)
    if pl is not None and gl is not None and set(pl) == set(gl):
        return True
    p, g = numeric_value(pred), numeric_value(gold)
    if p is None or g is None:
        return None
    (pv, ppct), (gv, gpct) = p, g
    if pv == gv:
        return True
    if ppct or gpct:  # "25\%" vs "0.25": let either reading count
        if pv == gv / 100 or pv / 100 == gv:
            return True
    return False


_cache: OrderedDict[tuple[str, str], bool] = OrderedDict()
_cache_lock = threading.Lock()


def grade(prediction: str | None, gold: str | None, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether `prediction` (an extracted answer; a \\boxed{} inside it is honoured) is equivalent
    to `gold`. Plain numbers are decided in-process; anything symbolic goes to math-verify in a
    worker process limited to `timeout` seconds. A timeout or a parse failure grades False; the
    only error raised is ReasonerError when no worker can start at all (math-verify missing)."""
    if not isinstance(prediction, str) or not isinstance(gold, str):
        return False
    if not prediction.strip() or not gold.strip():
        return False
    try:
        if _BOX_RE.search(prediction):
            boxed = _last_boxed(prediction)
            if boxed is not None:
                prediction = boxed
        if len(prediction) > MAX_SYMBOLIC_CHARS:
            return False  # not an answer but a runaway generation
        fast = _fast_grade(prediction, gold)
        if fast is not None:
            return fast
        p, g = _light_clean(prediction), _light_clean(gold)
    except Exception:
        logger.debug("fast grading path failed", exc_info=True)
        p, g = prediction.strip(), gold.strip()
    if len(p) > MAX_SYMBOLIC_CHARS or len(g) > MAX_SYMBOLIC_CHARS:
        return False
    key = (p, g)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    result = _POOL.compare(p, g, timeout)
    if result is None:  # timeout or worker failure: False, and not cached (may be load-related)
        return False
    with _cache_lock:
        _cache[key] = result
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def warm_up() -> None:
    """Start a grading worker now (it takes ~0.5-2 s to import math-verify) instead of on the
    first symbolic comparison."""
    worker = _POOL.acquire()
    error = worker.error
    _POOL.release(worker, broken=worker.proc is None)
    if worker.proc is None:
        from reasoner.types import ReasonerError

        raise ReasonerError(f"the math-verify grading worker is unavailable: {error}")


def shutdown() -> None:
    """Stop all grading workers (they are restarted on demand; also runs at interpreter exit)."""
    _POOL.close()


# --------------------------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------------------------

_BOOT = (
    "import importlib.util, sys\n"
    "sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"  # no shadowing from the cwd
    "spec = importlib.util.spec_from_file_location('_reasoner_grading_worker', sys.argv[1])\n"
    "mod = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(mod)\n"
    "mod._worker_main()\n"
)


class _Worker:
    """One persistent math-verify process, spoken to with JSON lines over its stdin/stdout."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.jobs = 0
        self.error: str | None = None

    def start(self) -> bool:
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, os.path.abspath(__file__)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                bufsize=1,
                close_fds=True,
            )
        except (OSError, ValueError) as exc:
            self.error = f"could not start grading worker: {exc}"
            self.proc = None
            return False
        try:
            threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        except RuntimeError as exc:
            self.error = f"could not start grading worker reader thread: {exc}"
            self.kill()
            return False
        ready = self._get(time.monotonic() + STARTUP_TIMEOUT)
        if ready is None or not ready.get("ready"):
            self.error = (ready or {}).get("error") or "grading worker did not start in time"
            self.kill()
            return False
        return True

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                self.lines.put(line)
        except (OSError, ValueError):
            pass
        self.lines.put(None)

    def _get(self, deadline: float) -> dict | None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                return None
            if line is None:  # the process died
                return None
            try:
                return json.loads(line)
            except ValueError:
                continue  # stray output: ignore

    def compare(self, pred: str, gold: str, timeout: float) -> bool | None:
        """True/False from math-verify, or None on timeout/crash (the worker is then dead)."""
        if self.proc is None or self.proc.stdin is None:
            return None
        self.jobs += 1
        try:
            self.proc.stdin.write(json.dumps({"id": self.jobs, "pred": pred, "gold": gold}) + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            self.kill()
            return None
        deadline = time.monotonic() + timeout
        while True:
            reply = self._get(deadline)
            if reply is None:
                self.kill()
                return None
            if reply.get("id") == self.jobs:
                return bool(reply.get("ok"))

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.kill()
            proc.wait(timeout=5)
        except Exception:  # already gone
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except Exception:
                pass


class _Pool:
    """Up to MAX_WORKERS workers shared by all threads; a hung worker is killed and replaced."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self.cond = threading.Condition()
        self.idle: list[_Worker] = []
        self.count = 0
        self.pid = os.getpid()

    def _check_fork(self) -> None:
        if os.getpid() != self.pid:  # forked child: the parent's pipes are not ours
            self.idle, self.count, self.pid = [], 0, os.getpid()

    def acquire(self) -> _Worker:
        with self.cond:
            self._check_fork()
            while True:
                if self.idle:
                    return self.idle.pop()
                if self.count < self.max_workers:
                    self.count += 1
                    break
                # every busy worker finishes or is killed within its own deadline
                self.cond.wait(1.0)
                self._check_fork()
        worker = _Worker()
        worker.start()
        return worker

    def release(self, worker: _Worker, broken: bool) -> None:
        if broken or worker.proc is None or worker.jobs >= WORKER_MAX_JOBS:
            worker.kill()
        with self.cond:
            if os.getpid() != self.pid:
                return
            if worker.proc is None:
                self.count -= 1
            else:
                self.idle.append(worker)
            self.cond.notify()

    def compare(self, pred: str, gold: str, timeout: float) -> bool | None:
        worker = self.acquire()
        if worker.proc is None:
            error = worker.error
            self.release(worker, broken=True)
            from reasoner.types import ReasonerError  # lazy: the worker loads this file alone

            # a broken grader must not quietly grade everything False
            raise ReasonerError(f"the math-verify grading worker is unavailable: {error}")
        result = None
        try:
            result = worker.compare(pred, gold, max(0.01, float(timeout)))
        finally:
            self.release(worker, broken=result is None)
        if result is None:
            logger.info(
                "symbolic grading timed out after %.1fs: %.80r vs %.80r", timeout, pred, gold
            )
        return result

    def close(self) -> None:
        with self.cond:
            idle, self.idle = self.idle, []
            self.count -= len(idle)
        for worker in idle:
            worker.kill()


_POOL = _Pool(MAX_WORKERS)
atexit.register(shutdown)


# --------------------------------------------------------------------------------------------
# Worker side (runs in the child process)
# --------------------------------------------------------------------------------------------


def _mv_equal(pred: str, gold: str) -> bool:
    """math-verify equivalence of two answer strings (their own timeouts disabled)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    gold_parsed = parse("\\boxed{" + gold + "}", config, parsing_timeout=None)  # type: ignore[arg-type]
    pred_parsed = parse("\\boxed{" + pred + "}", config, parsing_timeout=None)  # type: ignore[arg-type]
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _worker_main() -> None:
    """Serve {"id", "pred", "gold"} JSON lines on stdin with {"id", "ok"} lines on stdout."""
    out = sys.stdout
    try:  # a runaway SymPy computation must not take the machine's memory with it
        import resource

        limit = WORKER_MEMORY_MB * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass
    try:
        logging.getLogger("math_verify").setLevel(logging.ERROR)
        import math_verify.grader
        import math_verify.parser

        math_verify.grader.TIMEOUT_WARNING_SHOWN = True  # we enforce time limits from outside
        math_verify.parser.TIMEOUT_WARNING_SHOWN = True
        _mv_equal("1", "1")  # warm the parsers up before announcing readiness
    except Exception as exc:
        out.write(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        out.flush()
        return
    parent = os.getppid()

    def watch_parent() -> None:  # exit if the parent dies while we are stuck in a computation
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            job = json.loads(line)
        except ValueError:
            continue
        try:
            ok = _mv_equal(str(job["pred"]), str(job["gold"]))
        except Exception:
            ok = False
        out.write(json.dumps({"id": job.get("id"), "ok": ok}) + "\n")
        out.flush()
