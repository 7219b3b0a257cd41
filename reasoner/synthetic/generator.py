"""The embedded "arith" suite: GSM8K-style word problems whose reference steps are exact equations.

Every problem is built forward from a small computation (2 to 6 operations, every value in
1..999, multipliers and divisors 2..9, exact division only) and rendered with one of seven story
families. About a third of the problems carry distractor sentences with irrelevant numbers, and
some make the solver pick the right quantity among several, so a verifier has to check logic,
not only arithmetic. Reference solutions have one step per operation, each with exactly one
equation ``a op b = c``, steps joined by a blank line, the last ending with "The answer is N.".

Long because it is mostly data: the vocabulary and the story templates of the seven families
(about two thirds of the file), each beside the few lines that render it; the committed test
split is this code's output, so the templates stay together where their order is visible.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import random
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from reasoner.types import Problem, ReasonerError

MIN_VALUE = 1
MAX_VALUE = 999
MIN_OPS = 2
MAX_OPS = 6
TEST_SIZE = 500
TRAIN_SIZE = 50_000
TEST_SEED = 4242  # the committed test split was generated with this seed
TRAIN_SEED = 1234  # the on-the-fly train split uses this seed
SPLITS = ("train", "test")
TEST_FILE = "arith_test.jsonl"
DISTRACTOR_RATE = 0.35  # share of problems that get generic distractor sentences
FAMILIES = ("people", "objects", "leftovers", "sharing", "buying", "rates", "groups")

_MAX_RETRIES = 200


class _Retry(Exception):
    """Raised by a family builder when a random draw broke a constraint; the caller redraws."""


# ---------------------------------------------------------------------------------------------
# Vocabulary


@dataclass(frozen=True)
class _Person:
    name: str
    he: str
    his: str
    him: str

    def __str__(self) -> str:
        return self.name

    @property
    def He(self) -> str:
        return self.he.capitalize()

    @property
    def His(self) -> str:
        return self.his.capitalize()


_MALE = "Tom Liam Noah Omar Ben Leo Sam Ravi Jack Hugo Mateo Ivan Kofi Ethan Lucas Diego Arjun Felix Oscar Yusuf Marco Owen Hiro Max".split()
_FEMALE = "Mia Emma Ava Lily Zoe Nora Sofia Aisha Chloe Maya Grace Ruby Elena Priya Hana Julia Lucy Amara Ella Rosa Isla Nina Leah Yara".split()
_PEOPLE = tuple(_Person(n, "he", "his", "him") for n in _MALE) + tuple(
    _Person(n, "she", "her", "her") for n in _FEMALE
)

_FRACTION = {
    2: "half",
    3: "a third",
    4: "a quarter",
    5: "one fifth",
    6: "one sixth",
    7: "one seventh",
    8: "one eighth",
    9: "one ninth",
}
_TIMES = {2: "twice", 3: "three times"}  # words that imply a multiplier; others use digits

_COLLECTIBLES = (
    "stickers",
    "marbles",
    "stamps",
    "trading cards",
    "shells",
    "coins",
    "beads",
    "toy cars",
    "comic books",
    "buttons",
    "postcards",
    "pebbles",
)
# (items, container) pairs for collections that come in packs
_PACKED = (
    ("marbles", "bag"),
    ("stickers", "sheet"),
    ("crayons", "box"),
    ("beads", "jar"),
    ("trading cards", "pack"),
    ("stamps", "envelope"),
    ("buttons", "tin"),
    ("shells", "bucket"),
    ("pencils", "case"),
    ("balloons", "bag"),
)
# shop items: cheap ones get one-digit prices (and bigger counts), dear ones two-digit prices
_CHEAP_ITEMS = (
    "pens",
    "pencils",
    "erasers",
    "apples",
    "cupcakes",
    "rulers",
    "bottles of juice",
    "packs of gum",
    "candles",
    "stickers",
    "bananas",
    "postcards",
)
_DEAR_ITEMS = (
    "notebooks",
    "comic books",
    "tickets",
    "plants",
    "T-shirts",
    "mugs",
    "kites",
    "board games",
    "backpacks",
    "puzzles",
    "hats",
    "scarves",
)
_SHOPS = ("store", "market", "school fair", "bookshop", "corner shop", "bakery stall")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTHS = ("June", "July", "August", "September")
_THINGS = ("bike", "game", "jacket", "pair of shoes", "lamp", "backpack")


# ---------------------------------------------------------------------------------------------
# The builder: records givens, steps and sentences, and enforces the value constraints


@dataclass
class _Step:
    a: int
    op: str
    b: int
    c: int
    sentence: str


class _Builder:
    """Collects one problem: context sentences, the givens, the reference steps and the traps."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.context: list[str] = []
        self.givens: list[int] = []
        self.steps: list[_Step] = []
        self.distractors: list[int] = []
        self.traps: list[str] = []
        self.hero: _Person | None = None
        self.item: str | None = None
        self._names: set[str] = set()
        self.used: set[str] = set()  # sentence templates already used (avoid repeats)
        self._known: set[int] = set()  # givens and results so far

    # -- randomness helpers
    def person(self) -> _Person:
        while True:
            p = self.rng.choice(_PEOPLE)
            if p.name not in self._names:
                self._names.add(p.name)
                return p

    def randint(self, lo: int, hi: int) -> int:
        if hi < lo:
            raise _Retry
        return self.rng.randint(lo, hi)

    def divisor(self, v: int, min_quotient: int = 2) -> int:
        """A random divisor of v in 2..9 leaving a quotient >= min_quotient (else redraw).

        Never the factor that just produced v (x * d = v, then v / d = x would be a no-op).
        """
        undo = set()
        if self.steps and self.steps[-1].op == "*" and self.steps[-1].c == v:
            undo = {self.steps[-1].a, self.steps[-1].b}
        ds = [d for d in range(2, 10) if v % d == 0 and v // d >= min_quotient and d not in undo]
        if not ds:
            raise _Retry
        return self.rng.choice(ds)

    def fresh(self, lo: int, hi: int) -> int:
        """A number that is neither a given nor a result nor another distractor (for traps)."""
        taken = set(self.givens) | {s.c for s in self.steps} | set(self.distractors)
        for _ in range(30):
            v = self.rng.randint(lo, hi)
            if v not in taken:
                return v
        raise _Retry

    # -- recording
    def say(self, sentence: str) -> None:
        self.context.append(sentence)

    def given(self, v: int) -> int:
        if not MIN_VALUE <= v <= MAX_VALUE:
            raise _Retry
        self.givens.append(v)
        self._known.add(v)
        return v

    def distract(self, v: int) -> int:
        self.distractors.append(v)
        return v

    def op(self, a: int, op: str, b: int, template: str, **fields: Any) -> int:
        """Record one reference step `a op b = c`; `template` holds `{eq}` where the equation goes."""
        known = self._known
        if a not in known or b not in known:  # a bug in a family builder, not bad luck
            raise AssertionError(f"operand not available: {a} {op} {b}")
        if op == "+":
            c = a + b
        elif op == "-":
            c = a - b
        elif op == "*":
            c = a * b
        elif op == "/":
            if b == 0 or a % b:
                raise _Retry
            c = a // b
        else:
            raise AssertionError(op)
        if not MIN_VALUE <= c <= MAX_VALUE:
            raise _Retry
        eq = f"{a} {op} {b} = {c}"
        self.steps.append(_Step(a, op, b, c, template.format(eq=eq, **fields)))
        known.add(c)
        return c


def _plural(noun: str) -> str:
    return noun + "es" if noun.endswith(("x", "s", "ch", "sh")) else noun + "s"


def _fields(p: _Person | None = None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = dict(extra)
    if p is not None:
        d.update(N=p.name, he=p.he, his=p.his, him=p.him, He=p.He, His=p.His)
    return d


# ---------------------------------------------------------------------------------------------
# Family: people (a chain of comparisons between people)


def _people(b: _Builder, ops: int) -> str:
    rng = b.rng
    item = b.item = rng.choice(_COLLECTIBLES)
    end = rng.choice(("last", "last", "together", "diff"))
    n_rel = ops if end == "last" else ops - 1
    people = [b.person() for _ in range(n_rel + 1)]
    b.hero = people[0]
    vals = [b.given(b.randint(12, 180))]
    b.say(f"{people[0]} has {vals[0]} {item}.")
    for j in range(1, n_rel + 1):
        prev, p, q = vals[j - 1], people[j], people[j - 1]  # a chain: every step is needed
        kinds = []
        if prev <= MAX_VALUE - 11:
            kinds.append("more")
        if prev >= 14:
            kinds.append("fewer")
        if prev * 2 <= MAX_VALUE:
            kinds.append("times")
        if any(prev % k == 0 and prev // k >= 2 for k in range(2, 10)):
            kinds.append("part")
        kind = rng.choice(kinds)
        f = _fields(p, Q=q.name, item=item)
        if kind == "more":
            n = b.given(b.randint(11, min(99, MAX_VALUE - prev)))
            b.say(f"{p} has {n} more {item} than {q}.")
            v = b.op(prev, "+", n, "{N} has {n} more than {Q}, so {N} has {eq} {item}.", n=n, **f)
        elif kind == "fewer":
            n = b.given(
                b.randint(5, min(99, prev - 1)) if prev < 30 else b.randint(11, min(99, prev - 3))
            )
            b.say(f"{p} has {n} fewer {item} than {q}.")
            v = b.op(prev, "-", n, "{N} has {n} fewer than {Q}, so {N} has {eq} {item}.", n=n, **f)
        elif kind == "times":
            k = b.given(b.randint(2, min(9, MAX_VALUE // prev)))
            word = _TIMES.get(k, f"{k} times") if rng.random() < 0.6 else f"{k} times"
            b.say(f"{p} has {word} as many {item} as {q}.")
            v = b.op(
                prev, "*", k, "{N} has {w} as many as {Q}, so {N} has {eq} {item}.", w=word, **f
            )
        else:
            k = b.given(b.divisor(prev))
            word = _FRACTION[k]
            b.say(f"{p} has {word} as many {item} as {q}.")
            v = b.op(
                prev, "/", k, "{N} has {w} as many as {Q}, so {N} has {eq} {item}.", w=word, **f
            )
        vals.append(v)
    last, first = people[-1], people[0]
    if rng.random() < 0.25:  # pick trap: one more person the question does not ask about
        extra = b.person()
        ref = rng.randrange(len(people))
        if vals[ref] > 40 and rng.random() < 0.5:
            n = b.distract(b.fresh(11, min(99, vals[ref] - 2)))
            b.say(f"{extra} has {n} fewer {item} than {people[ref]}.")
        else:
            n = b.distract(b.fresh(11, 99))
            b.say(f"{extra} has {n} more {item} than {people[ref]}.")
        b.traps.append("pick")
    if end == "last":
        return f"How many {item} does {last} have?"
    if end == "together":
        b.op(
            vals[0],
            "+",
            vals[-1],
            "Together, {A} and {B} have {eq} {item}.",
            A=first,
            B=last,
            item=item,
        )
        return f"How many {item} do {first} and {last} have together?"
    if vals[-1] == vals[0]:
        raise _Retry
    hi, lo = (0, -1) if vals[0] > vals[-1] else (-1, 0)
    big, small = people[hi], people[lo]
    b.op(vals[hi], "-", vals[lo], "{A} has {eq} more {item} than {B}.", A=big, B=small, item=item)
    return f"How many more {item} does {big} have than {small}?"


# ---------------------------------------------------------------------------------------------
# Families built from a running quantity changed by events: objects, leftovers, sharing

# Each event: (cost in operations, phrase pack key). Templates use {N} the subject at sentence
# start, {he}/{his} its pronouns, {item} the plural noun, {pack} a container noun.
_EVENT_TEXT = {
    "person": {
        "gain": (
            ("{N} gets {n} more {item} from {F}.", "{N} gets {n} more, so {he} has {eq} {item}."),
            ("{He} finds {n} more {item}.", "{He} finds {n} more, so {he} has {eq} {item}."),
            ("{He} buys {n} more {item}.", "After buying {n} more, {N} has {eq} {item}."),
        ),
        "lose": (
            ("{N} gives {n} {item} to {F}.", "{N} gives away {n}, so {he} has {eq} {item} left."),
            (
                "{He} loses {n} {item} on the way home.",
                "{He} loses {n}, so {he} has {eq} {item} left.",
            ),
            ("{He} trades away {n} {item}.", "After the trade {N} has {eq} {item}."),
        ),
        "gain_packs": (
            "{N} buys {k} {packs} of {item} with {m} {item} in each {pack}.",
            "The {packs} hold {eq} {item}.",
            "Now {N} has {eq} {item}.",
        ),
        "lose_packs": (
            "{N} gives each of {k} friends {m} {item}.",
            "{He} gives away {eq} {item}.",
            "So {N} has {eq} {item} left.",
        ),
        "half": ("{N} gives half of {his} {item} to {F}.", "{N} keeps {eq} {item}."),
        "lose_frac": (
            "{He} then loses {frac} of {his} {item}.",
            "{He} loses {eq} {item}.",
            "{N} has {eq} {item} left.",
        ),
        "times": (
            "By the end of the year, {his} collection is {k} times as big.",
            "{His} collection grows to {eq} {item}.",
        ),
    },
    "place": {
        "gain": (
            ("A delivery brings {n} more {item}.", "After the delivery there are {eq} {item}."),
            (
                "The {place} receives {n} more {item} from a supplier.",
                "With {n} more there are {eq} {item}.",
            ),
        ),
        "lose": (
            ("It sells {n} {item} to customers.", "After selling {n}, there are {eq} {item} left."),
            (
                "Then {n} {item} are sold to a school.",
                "After that sale there are {eq} {item} left.",
            ),
            (
                "{n} {item} are damaged and thrown away.",
                "Without the damaged ones there are {eq} {item}.",
            ),
            (
                "A neighbor buys {n} {item}.",
                "After the neighbor's purchase there are {eq} {item} left.",
            ),
        ),
        "gain_packs": (
            "A truck brings {k} {packs} with {m} {item} in each {pack}.",
            "The truck brings {eq} {item}.",
            "Now the {place} has {eq} {item}.",
        ),
        "lose_packs": (
            "A customer buys {k} {packs} of {m} {item} each.",
            "The customer takes {eq} {item}.",
            "That leaves {eq} {item}.",
        ),
        "half": (
            "Then half of the {item} it has are sold.",
            "After that there are {eq} {item} left.",
        ),
        "lose_frac": (
            "Later, {frac} of the {item} it has are given to a shelter.",
            "The shelter gets {eq} {item}.",
            "The {place} is left with {eq} {item}.",
        ),
        "times": None,
    },
}
_PLACES = (  # (place, items, container)
    ("bakery", "muffins", "tray"),
    ("farm shop", "eggs", "carton"),
    ("library", "books", "box"),
    ("flower shop", "roses", "bucket"),
    ("toy store", "yo-yos", "crate"),
    ("fruit stand", "oranges", "crate"),
    ("grocery store", "apples", "bag"),
    ("bookshop", "notebooks", "box"),
)


def _events(
    b: _Builder,
    v: int,
    left: int,
    style: str,
    f: dict[str, Any],
    gains: bool = True,
    times: bool = True,
) -> int:
    """Apply random events to the running value `v` until `left` operations are used."""
    rng = b.rng
    texts = _EVENT_TEXT[style]
    while left > 0:
        choices: list[str] = []
        if gains and v <= MAX_VALUE - 11:
            choices += ["gain"]
        if v >= 16:
            choices += ["lose", "lose"]
        if v % 2 == 0 and v >= 4 and "half" not in b.used:
            choices.append("half")
        if times and texts["times"] and "times" not in b.used and v * 2 <= MAX_VALUE and v >= 3:
            choices.append("times")
        if left >= 2:
            if gains and v <= MAX_VALUE - 30:
                choices.append("gain_packs")
            if v >= 30:
                choices.append("lose_packs")
            if "lose_frac" not in b.used and any(v % k == 0 and v // k >= 2 for k in range(3, 10)):
                choices.append("lose_frac")
        if not choices:
            raise _Retry
        kind = rng.choice(choices)
        if kind in ("half", "times", "lose_frac"):
            b.used.add(kind)
        if kind in ("gain", "lose"):
            hi = min(199, MAX_VALUE - v) if kind == "gain" else min(199, v - 2)
            n = b.given(b.randint(11, hi) if hi >= 11 else b.randint(2, hi))
            fresh = [t for t in texts[kind] if t[0] not in b.used]
            text, step = rng.choice(fresh or texts[kind])
            b.used.add(text)
            g = dict(f, n=n)
            b.say(text.format(**g))
            v = b.op(v, "+" if kind == "gain" else "-", n, step, **g)
            left -= 1
        elif kind == "half":
            b.given(2)
            text, step = texts["half"]
            b.say(text.format(**f))
            v = b.op(v, "/", 2, step, **f)
            left -= 1
        elif kind == "times":
            k = b.given(b.randint(2, min(9, MAX_VALUE // v)))
            text, step = texts["times"]
            b.say(text.format(k=k, **f))
            v = b.op(v, "*", k, step, **f)
            left -= 1
        elif kind in ("gain_packs", "lose_packs"):
            room = MAX_VALUE - v if kind == "gain_packs" else v - 1
            k = b.given(b.randint(2, min(9, room // 5)))
            m = b.given(b.randint(5, min(60, room // k)))
            text, s1, s2 = texts[kind]
            g = dict(f, k=k, m=m)
            b.say(text.format(**g))
            t = b.op(k, "*", m, s1, **g)
            v = b.op(v, "+" if kind == "gain_packs" else "-", t, s2, **g)
            left -= 2
        else:  # lose_frac
            k = b.given(b.divisor(v))
            if k == 2:
                raise _Retry  # "half" is its own one-operation event
            text, s1, s2 = texts["lose_frac"]
            g = dict(f, frac=_FRACTION[k])
            b.say(text.format(**g))
            t = b.op(v, "/", k, s1, **g)
            v = b.op(v, "-", t, s2, **g)
            left -= 2
    return v


def _objects(b: _Builder, ops: int) -> str:
    rng = b.rng
    p = b.hero = b.person()
    item, pack = rng.choice(_PACKED)
    b.item = item
    f = _fields(p, item=item, pack=pack, packs=_plural(pack), F=b.person().name)
    left = ops
    if left >= 3 and rng.random() < 0.35:
        k = b.given(b.randint(2, 9))
        m = b.given(b.randint(11, 99))
        b.say(f"{p} has {k} {_plural(pack)} of {item} with {m} {item} in each {pack}.")
        v = b.op(k, "*", m, "{N} starts with {eq} {item}.", **f)
        left -= 1
    else:
        v = b.given(b.randint(25, 450))
        b.say(f"{p} has {v} {item}.")
    v = _events(b, v, left, "person", f)
    return rng.choice(
        (f"How many {item} does {p} have now?", f"How many {item} does {p} have at the end?")
    )


def _leftovers(b: _Builder, ops: int) -> str:
    rng = b.rng
    place, item, pack = rng.choice(_PLACES)
    b.item = item
    f = _fields(None, place=place, item=item, pack=pack, packs=_plural(pack))
    v = b.given(b.randint(150, 999))
    b.say(f"A {place} starts the day with {v} {item}.")
    v = _events(b, v, ops, "place", f, gains=rng.random() < 0.5)
    return rng.choice(
        (
            f"How many {item} are left at the {place}?",
            f"How many {item} does the {place} have at the end of the day?",
        )
    )


_SHARE = (  # (verb, container plural, container singular, preposition)
    ("picks", "baskets", "basket", "in"),
    ("bakes", "boxes", "box", "in"),
    ("collects", "bags", "bag", "in"),
    ("makes", "plates", "plate", "on"),
)
_SHARE_ITEMS = {
    "picks": ("apples", "strawberries", "plums", "cherries", "lemons"),
    "bakes": ("cookies", "muffins", "cupcakes", "rolls"),
    "collects": ("shells", "acorns", "pebbles", "pine cones", "leaves"),
    "makes": ("dumplings", "sandwiches", "pancakes", "tacos"),
}


def _sharing(b: _Builder, ops: int) -> str:
    rng = b.rng
    p = b.hero = b.person()
    verb, cont, cont1, prep = rng.choice(_SHARE)
    item = b.item = rng.choice(_SHARE_ITEMS[verb])
    to_friends = rng.random() < 0.5
    post = 1 if (ops >= 3 and rng.random() < 0.4) or (ops == 2 and rng.random() < 0.3) else 0
    pre = ops - 1 - post
    f = _fields(p, item=item, pack=cont1, packs=cont, F=b.person().name)
    if pre == 0:
        v = b.given(b.randint(24, 600))
        b.say(f"{p} {verb} {v} {item}.")
    else:
        if rng.random() < 0.5:
            x = b.given(b.randint(11, 400))
            y = b.given(b.randint(11, min(400, MAX_VALUE - x)))
            b.say(f"{p} {verb} {x} {item} in the morning and {y} {item} in the afternoon.")
            v = b.op(x, "+", y, "In all {he} {verb} {eq} {item}.", verb=verb, **f)
        else:
            k = b.given(b.randint(2, 9))
            m = b.given(b.randint(11, min(99, MAX_VALUE // k)))
            b.say(f"{p} {verb} {k} batches of {item} with {m} {item} in each batch.")
            v = b.op(k, "*", m, "{N} {verb} {eq} {item}.", verb=verb, **f)
        v = _events(b, v, pre - 1, "person", f, times=False)
    if to_friends:
        d = b.given(b.divisor(v))
        b.say(f"{p} shares the {item} equally among {d} friends.")
        q = b.op(v, "/", d, "Each friend gets {eq} {item}.", **f)
        who, who_q = "Each friend", "each friend"
    else:
        d = b.given(b.divisor(v))
        into = "onto" if prep == "on" else "into"
        b.say(f"{p} puts the {item} {into} {d} {cont} with the same number {prep} each.")
        q = b.op(v, "/", d, "Each {c1} gets {eq} {item}.", c1=cont1, **f)
        who, who_q = f"Each {cont1}", f"each {cont1}"
    if post:
        if to_friends and q >= 4:
            n = b.given(b.randint(2, min(q - 1, 30)))
            b.say(f"Each friend then eats {n} of them.")
            b.op(q, "-", n, "Each friend has {eq} {item} left.", **f)
            return f"How many {item} does each friend have left?"
        n = b.given(b.randint(2, min(60, MAX_VALUE - q)))
        b.say(f"Then {p} adds {n} more {item} to {who_q}.")
        b.op(q, "+", n, "{W} then has {eq} {item}.", W=who, **f)
    if to_friends:
        return f"How many {item} does each friend have?"
    return f"How many {item} are {prep} each {cont1}?"


# ---------------------------------------------------------------------------------------------
# Families built as a sum of products plus extra adjustments: buying, rates, groups


def _plan(rng: random.Random, ops: int) -> tuple[int, int]:
    """(number of products k, number of extra adjustments e) with 2k - 1 + e == ops."""
    return rng.choice([(k, e) for k in (1, 2, 3) for e in (0, 1, 2) if 2 * k - 1 + e == ops])


def _pair(b: _Builder, cap: int, small_first: bool = True) -> tuple[int, int]:
    """(single-digit multiplier, two-digit size) with product <= cap."""
    k = b.randint(2, 9)
    m = b.randint(11, min(99, cap // k))
    return (k, m) if small_first else (m, k)


def _sum_products(
    b: _Builder,
    products: list[tuple[int, int, str]],
    total_step: tuple[str, str],
    f: dict[str, Any],
) -> int:
    """Record one multiplication per product and the running additions; returns the total."""
    vals = [b.op(x, "*", y, tmpl, **f) for x, y, tmpl in products]
    total = vals[0]
    for i, v in enumerate(vals[1:], start=1):
        tmpl = total_step[1] if i == len(vals) - 1 else total_step[0]
        total = b.op(total, "+", v, tmpl, **f)
    return total


def _buying(b: _Builder, ops: int) -> str:
    rng = b.rng
    p = b.hero = b.person()
    k, e = _plan(rng, ops)
    extras = {
        0: (),
        1: rng.choice((("coupon",), ("change",), ("split",))),
        2: rng.choice((("coupon", "change"), ("coupon", "split"))),
    }[e]
    pick = rng.random() < 0.3
    n_dear = sum(rng.random() < 0.5 for _ in range(k + (1 if pick else 0)))
    items = rng.sample(_DEAR_ITEMS, n_dear) + rng.sample(
        _CHEAP_ITEMS, k + (1 if pick else 0) - n_dear
    )
    rng.shuffle(items)
    bought = items[:k]
    cap = (900 if "change" not in extras else 480) // k
    lines, products = [], []
    prices: list[int] = []
    for plural in bought:
        if plural in _DEAR_ITEMS:
            qty, price = _pair(b, cap)  # a few items at a two-digit price
        else:
            price = b.randint(2, 9)  # many items at a one-digit price
            qty = b.randint(11, min(40, cap // price))
        if price in prices:
            raise _Retry
        prices.append(price)
        b.given(price)
        b.given(qty)
        lines.append((plural, price))
        products.append((qty, price, plural))
    if pick:
        plural = items[-1]
        dp = b.distract(b.fresh(11, 60) if plural in _DEAR_ITEMS else b.fresh(2, 9))
        lines.append((plural, dp))
        b.traps.append("pick")
    rng.shuffle(lines)
    shop = rng.choice(_SHOPS)
    price_txt = [f"{pl} cost {pr} dollars each" for pl, pr in lines]
    if len(price_txt) == 1:
        b.say(f"At the {shop}, {price_txt[0]}.")
    else:
        b.say(f"At the {shop}, {', '.join(price_txt[:-1])} and {price_txt[-1]}.")
    buys = [f"{q} {pl}" for q, _, pl in products]
    buy_txt = buys[0] if len(buys) == 1 else ", ".join(buys[:-1]) + " and " + buys[-1]
    b.say(f"{p} buys {buy_txt}.")
    f = _fields(p)
    prods = [(q, pr, f"The {pl} cost {{eq}} dollars.") for q, pr, pl in products]
    total = _sum_products(
        b, prods, ("Together these cost {eq} dollars.", "In total {he} spends {eq} dollars."), f
    )
    last = "spend"
    for x in extras:
        if x == "coupon":
            c = b.given(b.randint(2, min(30, total - 1)))
            b.say(f"{p} has a coupon for {c} dollars off the total.")
            total = b.op(total, "-", c, "With the coupon {he} pays {eq} dollars.", **f)
            last = "spend"
        elif x == "change":
            bills = [v for v in (20, 50, 100, 200, 500) if total < v]
            if not bills:
                raise _Retry
            bill = b.given(rng.choice(bills[:2]))
            b.say(f"{p} pays with a {bill}-dollar bill.")
            total = b.op(bill, "-", total, "{His} change is {eq} dollars.", **f)
            last = "change"
        else:
            d = b.given(b.divisor(total))
            b.say(
                f"{p} and {p.his} friends split the cost equally, so {d} people pay the same share."
            )
            total = b.op(total, "/", d, "Each person pays {eq} dollars.", **f)
            last = "split"
    if last == "change":
        return f"How many dollars of change does {p} get?"
    if last == "split":
        return "How many dollars does each person pay?"
    return rng.choice(
        (f"How many dollars does {p} spend?", f"How much money, in dollars, does {p} pay?")
    )


@dataclass(frozen=True)
class _Scene:
    """Phrasing for a sum-of-products story (rates and groups)."""

    intro: str | None
    product: tuple[str, ...]  # sentence templates with {x} {y} {label}
    step: str  # step template with {eq} {label}
    labels: tuple[str, ...]
    partial: str
    total: str
    extras: dict[str, tuple[str, str]]  # kind -> (sentence with {n}, step with {eq})
    questions: dict[str, str]  # "sum" / "plus" / "minus" / "from" / "div" -> question
    rate_first: bool = True  # products written rate * duration
    trap: str | None = None  # a sentence with {n}, an irrelevant rate or size


_RATE_SCENES = (
    _Scene(
        intro="A toy factory has a machine that runs at different speeds.",
        product=("On {label}, the machine makes {x} toys per hour for {y} hours.",),
        step="On {label} it makes {eq} toys.",
        labels=_DAYS,
        partial="Together that is {eq} toys.",
        total="In total the machine makes {eq} toys.",
        extras={
            "plus": (
                "There were already {n} toys in the storeroom.",
                "With the toys already there, the storeroom has {eq} toys.",
            ),
            "minus": (
                "{n} of the new toys are broken and thrown away.",
                "Without the broken ones there are {eq} toys.",
            ),
            "div": ("The toys are packed in boxes of {n}.", "They fill {eq} boxes."),
        },
        questions={
            "sum": "How many toys does the machine make in total?",
            "plus": "How many toys are in the storeroom now?",
            "minus": "How many toys are left?",
            "div": "How many boxes do they fill?",
        },
        trap="An older machine makes {n} toys per hour, but it is switched off all week.",
    ),
    _Scene(
        intro=None,
        product=(
            "On {label}, {N} earns {x} dollars per hour for {y} hours of work.",
            "On {label}, {N} works {y} hours at {x} dollars per hour.",
        ),
        step="On {label} {he} earns {eq} dollars.",
        labels=_DAYS,
        partial="So far {he} earns {eq} dollars.",
        total="Altogether {he} earns {eq} dollars.",
        extras={
            "plus": (
                "{He} already had {n} dollars saved.",
                "With {his} savings {he} has {eq} dollars.",
            ),
            "minus": (
                "{He} spends {n} dollars on a {thing}.",
                "After buying the {thing}, {he} has {eq} dollars.",
            ),
            "div": ("{He} splits the money equally into {n} jars.", "Each jar gets {eq} dollars."),
        },
        questions={
            "sum": "How many dollars does {N} earn in total?",
            "plus": "How many dollars does {N} have now?",
            "minus": "How many dollars does {N} have left?",
            "div": "How many dollars go into each jar?",
        },
        trap="{F} earns {n} dollars per hour at a different job.",
    ),
    _Scene(
        intro=None,
        product=("In {label}, {N} reads {x} pages a day for {y} days.",),
        step="In {label} {he} reads {eq} pages.",
        labels=_MONTHS,
        partial="So far {he} reads {eq} pages.",
        total="In all {he} reads {eq} pages.",
        extras={
            "plus": (
                "Before that, {he} had already read {n} pages.",
                "Counting the earlier pages, {he} has read {eq} pages.",
            ),
            "from": (
                "{His} goal is to read {n} pages this year.",
                "{He} still needs {eq} pages to reach the goal.",
            ),
        },
        questions={
            "sum": "How many pages does {N} read in total?",
            "plus": "How many pages has {N} read in total?",
            "from": "How many more pages does {N} need to read to reach {his} goal?",
        },
        trap="{F} reads {n} pages a day.",
    ),
    _Scene(
        intro="{N} keeps hens on a farm.",
        product=("In the {label} week, the hens lay {x} eggs a day for {y} days.",),
        step="In the {label} week they lay {eq} eggs.",
        labels=("first", "second", "third"),
        partial="So far that is {eq} eggs.",
        total="In total they lay {eq} eggs.",
        extras={
            "plus": (
                "{N} already had {n} eggs in the fridge.",
                "With the eggs in the fridge {he} has {eq} eggs.",
            ),
            "minus": ("{He} uses {n} eggs for baking.", "After baking {he} has {eq} eggs."),
            "div": ("{He} packs the eggs into cartons of {n}.", "{He} fills {eq} cartons."),
        },
        questions={
            "sum": "How many eggs do the hens lay in total?",
            "plus": "How many eggs does {N} have now?",
            "minus": "How many eggs does {N} have left?",
            "div": "How many cartons does {N} fill?",
        },
        trap="{His} neighbor's ducks lay {n} eggs a week.",
    ),
    _Scene(
        intro="A pump fills a tank with water.",
        product=("During step {label}, it pumps {x} liters per minute for {y} minutes.",),
        step="During step {label} it pumps {eq} liters.",
        labels=("one", "two", "three"),
        partial="So far it pumps {eq} liters.",
        total="In total it pumps {eq} liters.",
        extras={
            "plus": (
                "The tank already held {n} liters.",
                "With what was already there the tank holds {eq} liters.",
            ),
            "minus": ("Then {n} liters leak out.", "After the leak the tank holds {eq} liters."),
            "div": (
                "All the water is then poured equally into {n} barrels.",
                "Each barrel gets {eq} liters.",
            ),
        },
        questions={
            "sum": "How many liters does the pump move in total?",
            "plus": "How many liters are in the tank now?",
            "minus": "How many liters are left in the tank?",
            "div": "How many liters go into each barrel?",
        },
        trap="The tank is {n} years old.",
    ),
)

_GROUP_SCENES = (
    _Scene(
        intro="A school goes on a trip.",
        product=(
            "{x} {label} carry {y} students each.",
            "There are {x} {label} with {y} students in each.",
        ),
        step="The {label} carry {eq} students.",
        labels=("buses", "vans", "minibuses"),
        partial="Together that is {eq} students.",
        total="In total there are {eq} students.",
        extras={
            "plus": (
                "{n} teachers and parents also come along.",
                "With the adults there are {eq} people.",
            ),
            "minus": ("{n} students go home early.", "After that {eq} students are left."),
            "div": (
                "At the museum everyone is split into groups of {n}.",
                "There are {eq} groups.",
            ),
        },
        questions={
            "sum": "How many students go on the trip?",
            "plus": "How many people go on the trip?",
            "minus": "How many students are still on the trip?",
            "div": "How many groups are there?",
        },
        rate_first=False,
        trap="The museum is {n} kilometers from the school.",
    ),
    _Scene(
        intro=None,
        product=(
            "{N} has {x} {label} with {y} crayons in each.",
            "{N} also has {x} {label} holding {y} crayons each.",
        ),
        step="The {label} hold {eq} crayons.",
        labels=("boxes", "tins", "pouches"),
        partial="That makes {eq} crayons so far.",
        total="{N} has {eq} crayons in total.",
        extras={
            "plus": (
                "{He} also finds {n} loose crayons.",
                "With the loose ones {he} has {eq} crayons.",
            ),
            "minus": (
                "{He} gives {n} crayons to {F}.",
                "After giving some away {he} has {eq} crayons.",
            ),
            "div": (
                "{He} puts all the crayons equally into {n} cups.",
                "Each cup gets {eq} crayons.",
            ),
        },
        questions={
            "sum": "How many crayons does {N} have?",
            "plus": "How many crayons does {N} have now?",
            "minus": "How many crayons does {N} have left?",
            "div": "How many crayons go in each cup?",
        },
        rate_first=False,
        trap="{F} has {n} markers.",
    ),
    _Scene(
        intro=None,
        product=(
            "A garden has {x} rows of {label} with {y} plants in each row.",
            "There are also {x} rows of {label} with {y} plants in each row.",
        ),
        step="There are {eq} {label}.",
        labels=("tulips", "roses", "daisies"),
        partial="That is {eq} plants so far.",
        total="The garden has {eq} plants in total.",
        extras={
            "plus": (
                "The gardener plants {n} more flowers along the fence.",
                "With the new flowers there are {eq} plants.",
            ),
            "minus": (
                "{n} of the plants are eaten by rabbits.",
                "After the rabbits there are {eq} plants.",
            ),
            "div": (
                "The plants are moved equally into {n} flower beds.",
                "Each bed gets {eq} plants.",
            ),
        },
        questions={
            "sum": "How many plants are in the garden?",
            "plus": "How many plants are in the garden now?",
            "minus": "How many plants are left?",
            "div": "How many plants go into each bed?",
        },
        rate_first=False,
        trap="The garden is {n} meters long.",
    ),
    _Scene(
        intro="A library is setting up new shelves.",
        product=(
            "It fills {x} {label} with {y} books on each.",
            "It also fills {x} {label} with {y} books each.",
        ),
        step="The {label} hold {eq} books.",
        labels=("tall shelves", "short shelves", "carts"),
        partial="That is {eq} books so far.",
        total="In total the library shelves {eq} books.",
        extras={
            "plus": ("Then {n} new books arrive.", "With the new books there are {eq} books."),
            "minus": (
                "Readers borrow {n} of the books.",
                "After the loans there are {eq} books left.",
            ),
            "div": (
                "Later all the books are moved equally onto {n} carts.",
                "Each cart holds {eq} books.",
            ),
        },
        questions={
            "sum": "How many books does the library shelve?",
            "plus": "How many books does the library have now?",
            "minus": "How many books are still on the shelves?",
            "div": "How many books are on each cart?",
        },
        rate_first=False,
        trap="The library opens at {n} minutes past eight.",
    ),
)


def _products_family(b: _Builder, ops: int, scenes: tuple[_Scene, ...]) -> str:
    rng = b.rng
    sc = rng.choice(scenes)
    p = b.person()
    if "{N}" in " ".join((sc.intro or "",) + sc.product + tuple(sc.questions.values())):
        b.hero = p
    f = _fields(p, F=b.person().name, thing=rng.choice(_THINGS))
    k, e = _plan(rng, ops)
    kinds = list(sc.extras)
    if e == 2:
        seqs = [
            (a, c)
            for a in kinds
            for c in kinds
            if a != c and a in ("plus", "minus") and c != "plus"
        ]
        if not seqs:
            raise _Retry
        extras: tuple[str, ...] = rng.choice(seqs)
    else:
        extras = () if e == 0 else (rng.choice(kinds),)
    labels = sorted(rng.sample(range(len(sc.labels)), k))
    if sc.intro:
        b.say(sc.intro.format(**f))
    cap = (850 if e else 999) // k
    prods = []
    for i, li in enumerate(labels):
        small, big = _pair(b, cap)
        x, y = (big, small) if sc.rate_first else (small, big)
        b.given(x)
        b.given(y)
        tmpl = sc.product[min(i, len(sc.product) - 1)]
        label = sc.labels[li]
        b.say(tmpl.format(x=x, y=y, label=label, **f))
        prods.append((x, y, sc.step.replace("{label}", label)))
    if sc.trap and rng.random() < 0.25:
        n = b.distract(b.fresh(11, 99))
        b.say(sc.trap.format(n=n, **f))
        b.traps.append("pick")
    total = _sum_products(b, prods, (sc.partial, sc.total), f)
    last = "sum"
    for x in extras:
        text, step = sc.extras[x]
        if x == "plus":
            n = b.given(b.randint(11, min(199, MAX_VALUE - total)))
            total = b.op(total, "+", n, step, **f)
        elif x == "minus":
            n = b.given(b.randint(5, min(199, total - 2)))
            total = b.op(total, "-", n, step, **f)
        elif x == "from":
            n = b.given(b.randint(total + 5, min(MAX_VALUE, total + 300)))
            total = b.op(n, "-", total, step, **f)
        else:
            n = b.given(b.divisor(total))
            total = b.op(total, "/", n, step, **f)
        b.say(text.format(n=n, **f))
        last = x
    return sc.questions[last].format(**f)


def _rates(b: _Builder, ops: int) -> str:
    return _products_family(b, ops, _RATE_SCENES)


def _groups(b: _Builder, ops: int) -> str:
    return _products_family(b, ops, _GROUP_SCENES)


_BUILDERS: dict[str, Callable[[_Builder, int], str]] = {
    "people": _people,
    "objects": _objects,
    "leftovers": _leftovers,
    "sharing": _sharing,
    "buying": _buying,
    "rates": _rates,
    "groups": _groups,
}

# ---------------------------------------------------------------------------------------------
# Generic distractor sentences (irrelevant numbers)

_HERO_DISTRACTORS = (
    "{N}'s brother is {n} years old.",
    "{N}'s sister is {n} years old.",
    "{N} lives {n} blocks from the park.",
    "{N}'s neighbor has {n} {item}.",
    "{N}'s cousin has {n} {item}, but they are not part of this story.",
    "Last year, {N} had a dog that weighed {n} pounds.",
    "{N}'s favorite number is {n}.",
    "{N} is in a class with {n} other children.",
    "{N}'s house number is {n}.",
)
_PLAIN_DISTRACTORS = (
    "It is {n} degrees outside.",
    "The street has {n} trees.",
    "The bus ride there takes {n} minutes.",
    "The building is {n} years old.",
    "There are {n} cars in the parking lot.",
    "The town has {n} shops.",
)


def _add_distractors(b: _Builder) -> None:
    count = 1 if b.rng.random() < 0.8 else 2
    for _ in range(count):
        pool = _PLAIN_DISTRACTORS
        if b.hero is not None and b.rng.random() < 0.7:
            pool = _HERO_DISTRACTORS
        tmpl = b.rng.choice(pool)
        if "{item}" in tmpl and not b.item:
            tmpl = _PLAIN_DISTRACTORS[0]
        n = b.distract(b.fresh(3, 99))
        f = _fields(b.hero, n=n, item=b.item or "")
        pos = b.rng.randint(1, len(b.context))
        b.context.insert(pos, tmpl.format(**f))
    b.traps.append("distractor")


# ---------------------------------------------------------------------------------------------
# Public API


def _build(rng: random.Random, ops: int, family: str) -> Problem:
    for _ in range(_MAX_RETRIES):
        b = _Builder(rng)
        try:
            question = _BUILDERS[family](b, ops)
            if rng.random() < DISTRACTOR_RATE:
                _add_distractors(b)
        except _Retry:
            continue
        results = {s.c for s in b.steps}
        if set(b.distractors) & (results | set(b.givens)):
            continue  # a trap number must never be usable by the solution
        if len(b.steps) != ops:  # a family builder bug; never expected
            raise AssertionError(f"{family}: built {len(b.steps)} steps for ops={ops}")
        answer = b.steps[-1].c
        sentences = [s.sentence for s in b.steps]
        sentences[-1] += f" The answer is {answer}."
        text = " ".join(b.context + [question])
        text = text[0].upper() + text[1:]
        metadata = {
            "ops": ops,
            "family": family,
            "distractors": list(b.distractors),
            "givens": sorted(set(b.givens)),
            "steps": [[s.a, s.op, s.b, s.c] for s in b.steps],
            "traps": list(b.traps),
        }
        return Problem(
            text=text, answer=str(answer), reference="\n\n".join(sentences), metadata=metadata
        )
    raise ReasonerError(f"could not build an arith problem for family {family!r} with {ops} ops")


def _stream(seed: int, min_ops: int, max_ops: int) -> Iterator[Problem]:
    """An endless deterministic stream of problems (ops uniform, family uniform)."""
    if not (MIN_OPS <= min_ops <= max_ops <= MAX_OPS):
        raise ReasonerError(
            f"ops range must satisfy {MIN_OPS} <= min_ops <= max_ops <= {MAX_OPS}, got {min_ops}..{max_ops}"
        )
    rng = random.Random(seed)
    while True:
        ops = rng.randint(min_ops, max_ops)
        family = rng.choice(FAMILIES)
        yield _build(rng, ops, family)


def _take_unique(
    stream: Iterator[Problem], n: int, exclude: set[str], prefix: str, width: int
) -> list[Problem]:
    seen = set(exclude)
    out: list[Problem] = []
    for prob in stream:
        if len(out) >= n:
            break
        if prob.text in seen:
            continue
        seen.add(prob.text)
        prob.id = f"{prefix}-{len(out):0{width}d}"
        out.append(prob)
    return out


def generate(n: int, seed: int, min_ops: int = MIN_OPS, max_ops: int = MAX_OPS) -> list[Problem]:
    """`n` distinct arith problems, deterministic in (n, seed, min_ops, max_ops); ids "arith-s{seed}-{i}"."""
    if n < 0:
        raise ReasonerError(f"n must be >= 0, got {n}")
    return _take_unique(_stream(seed, min_ops, max_ops), n, set(), f"arith-s{seed}", 6)


def _test_path_in_source() -> Path:
    return Path(__file__).resolve().parent / "data" / TEST_FILE


def _build_test_split() -> list[Problem]:
    return _take_unique(_stream(TEST_SEED, MIN_OPS, MAX_OPS), TEST_SIZE, set(), "arith-test", 4)


def write_test_split(path: str | Path | None = None) -> Path:
    """Write the committed test split (500 problems, seed TEST_SEED) as JSONL; run once."""
    target = Path(path) if path is not None else _test_path_in_source()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8") as fh:
        for prob in _build_test_split():
            fh.write(json.dumps(prob.to_dict(), sort_keys=True) + "\n")
    return target


@functools.lru_cache(maxsize=1)
def _load_test() -> tuple[Problem, ...]:
    try:
        text = (
            resources.files("reasoner.synthetic")
            .joinpath("data")
            .joinpath(TEST_FILE)
            .read_text(encoding="utf-8")
        )
    except (FileNotFoundError, OSError):
        warnings.warn(
            f"reasoner/synthetic/data/{TEST_FILE} is missing from the installed package; regenerating the "
            "test split from its seed (identical unless the generator changed)",
            stacklevel=3,
        )
        return tuple(_build_test_split())
    return tuple(Problem.from_dict(json.loads(line)) for line in text.splitlines() if line.strip())


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while allocating many small objects (it otherwise dominates the time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@functools.lru_cache(maxsize=1)
def _load_train() -> tuple[Problem, ...]:
    exclude = {p.text for p in _load_test()}
    with _gc_paused():
        stream = _stream(TRAIN_SEED, MIN_OPS, MAX_OPS)
        return tuple(_take_unique(stream, TRAIN_SIZE, exclude, "arith-train", 6))


def _copy(p: Problem) -> Problem:
    m = dict(p.metadata)
    for key in ("distractors", "givens", "traps"):
        if key in m:
            m[key] = list(m[key])
    if "steps" in m:
        m["steps"] = [list(s) for s in m["steps"]]
    return Problem(text=p.text, id=p.id, answer=p.answer, reference=p.reference, metadata=m)


def load_split(split: str) -> list[Problem]:
    """The "train" (50,000 generated, cached in-process) or "test" (500, committed file) split.

    Returns fresh copies, so callers may mutate them without corrupting the cache.
    """
    if split == "test":
        probs = _load_test()
    elif split == "train":
        probs = _load_train()
    else:
        raise ReasonerError(f"unknown arith split {split!r}; valid splits: {', '.join(SPLITS)}")
    with _gc_paused():
        return [_copy(p) for p in probs]
