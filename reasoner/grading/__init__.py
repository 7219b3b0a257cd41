"""Answer equivalence with time limits that hold in any thread, and the answer extraction API.

`grade` decides whether a predicted answer equals the gold one: a cheap exact/numeric path first
(plain numbers, the common case on GSM8K and the synthetic suite, never leave the calling
process), then math-verify for everything symbolic, in the worker pool of `verify_pool`, under a
deadline that really bounds wall time from any thread; a timeout grades False.
`extract_answer` / `normalize_answer` / `numeric_value` live in `reasoner.grading.answers`.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from fractions import Fraction

from reasoner.grading.answers import (
    _ANSWER_IS_RE,
    _BOX_RE,
    MAX_SYMBOLIC_CHARS,
    _equality_key,
    _light_clean,
    extract_answer,
    last_boxed,
    normalize_answer,
    numeric_value,
)
from reasoner.grading.verify_pool import _Pool
from reasoner.types import ReasonerError

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
MAX_WORKERS = max(1, int(os.environ.get("REASONER_GRADER_WORKERS", "2") or 2))
_CACHE_SIZE = 65_536


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


def is_solution_text(text: str) -> bool:
    """Whether `text` is a worked solution rather than a bare answer: several lines, an "answer
    is" phrase or GSM8K's "####" (grading then compares the answer extracted from it)."""
    return "\n" in text.strip() or "####" in text or _ANSWER_IS_RE.search(text) is not None


def _as_answer(text: str) -> str | None:
    """The answer to compare: a \\boxed{} inside wins; a whole solution gives its final answer."""
    if _BOX_RE.search(text):
        boxed = last_boxed(text)
        if boxed is not None:
            return boxed
    if is_solution_text(text):
        return extract_answer(text)
    return text


def grade(prediction: str | None, gold: str | None, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether `prediction` is equivalent to `gold`.

    Each may be a bare answer or a whole solution (its \\boxed{} / "The answer is" / "####"
    answer is compared). Identical answers are equal at any length; plain numbers are decided
    in-process; anything symbolic goes to math-verify in a worker process, and `timeout` bounds
    the whole call's wall time, waiting for a free worker included. A timeout or a parse failure
    grades False; the only error raised is ReasonerError when no worker can start at all."""
    deadline = time.monotonic() + max(0.01, float(timeout))
    if not isinstance(prediction, str) or not isinstance(gold, str):
        return False
    if not prediction.strip() or not gold.strip():
        return False
    try:
        prediction, gold = _as_answer(prediction), _as_answer(gold)
        if prediction is None or gold is None:
            return False
        if prediction.strip() == gold.strip():
            return True  # identical answers, whatever their length
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
    result = _POOL.compare(p, g, deadline)
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
        raise ReasonerError(f"the math-verify grading worker is unavailable: {error}")


def shutdown() -> None:
    """Stop all grading workers (they are restarted on demand; also runs at interpreter exit)."""
    _POOL.close()


_POOL = _Pool(MAX_WORKERS)
atexit.register(shutdown)
