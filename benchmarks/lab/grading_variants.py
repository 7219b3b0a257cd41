"""Rewrites of a gold answer for the grader self-check: ones that keep its value (must grade
equal) and ones that change it (must grade unequal), plus box removal for the "answer is" path.
"""

from __future__ import annotations

import re
from fractions import Fraction

from reasoner.grading import normalize_answer, numeric_value


def reformatted(gold: str) -> list[tuple[str, str]]:
    """Semantics-preserving rewrites of a gold answer, as (name, variant); unchanged ones dropped."""
    out: list[tuple[str, str]] = []

    def add(name: str, variant: str) -> None:
        variant = variant.strip()
        if variant and variant != gold.strip() and all(v != variant for _, v in out):
            out.append((name, variant))

    add("dfrac", gold.replace("\\frac", "\\dfrac"))
    add("no-left-right", gold.replace("\\left", "").replace("\\right", ""))
    # drop spacing but keep row breaks and the ",\\!" thousands marker (its "\\!" is what makes
    # "5,\\!525" a number rather than the list "5, 525")
    keep = ("\\\\", ",\\!")
    add(
        "no-spacing",
        re.sub(
            r"\\text\s*\{[^{}]*\}|\\\\|,\\!|\\[!,; ]|\s+",
            lambda m: m[0] if m[0] in keep or m[0].startswith("\\text") else "",
            gold,
        ),
    )
    add("unwrap-text", re.sub(r"\\(?:text|mbox|mathrm)\{([^{}]*)\}", r"\1", gold))
    add(
        "drop-text-units",
        re.sub(r"^(.*?[\d}])\s*(?:\\[!,; ])*\\(?:text|mbox)\{[^{}]*\}(\^\d)?$", r"\1", gold),
    )
    add("drop-degrees", re.sub(r"\^\s*\{?\\circ\}?", "", gold))
    add("drop-percent", gold.replace("\\%", ""))
    add("drop-dollar", gold.replace("\\$", ""))
    add("dollar-sign-prefix", "$" + gold.replace("\\$", "") if gold.startswith("\\$") else gold)
    add("thousands-plain", re.sub(r"(\d),\\!\s*(?=\d{3})|(\d)\{,\}(?=\d{3})", r"\1\2", gold))
    add("inline-math", f"${gold}$")
    add("boxed", f"\\boxed{{{gold}}}")
    # a/b only where no implicit product follows ("3/4\\pi" reads as 3/(4 pi)) and no whole
    # part precedes (a mixed number "1\\frac{4}{5}" is not "14/5")
    add(
        "slash-fraction",
        re.sub(
            r"(?<![\d\s])(\s*)\\[dt]?frac\{(-?\d+)\}\{(\d+)\}(?!\s*[A-Za-z\\(])", r"\1\2/\3", gold
        ),
    )
    add("sqrt-no-braces", re.sub(r"\\sqrt\{(\d)\}", r"\\sqrt\1", gold))
    items = [re.sub(r"^(?:\\text\{\s*and\s*\}|and\b)\s*", "", i) for i in top_level_split(gold)]
    thousands = re.fullmatch(r"\s*-?\\?\$?\s*\d{1,3}(?:,(?:\\!)?\s*\d{3})+(?:\.\d+)?\s*", gold)
    if len(items) > 1 and not re.match(r"^\s*[\[(]", gold) and not thousands:  # a list of answers
        add("reversed-list", ", ".join(reversed(items)))
    value = numeric_value(gold)
    if value is not None and not value[1]:
        v = value[0]
        if v.denominator != 1 and (10**6 % v.denominator == 0 or v.denominator in (2, 4, 5, 8)):
            add("decimal", decimal_text(v))
        if v.denominator == 1:
            add("thousands-commas", f"{v.numerator:,}")
            add("trailing-zero", f"{v.numerator}.0")
    return out


def unbox(text: str) -> str:
    """The text with every \\boxed{X} / \\fbox{X} replaced by X (braces matched)."""
    while True:
        m = re.search(r"\\(?:boxed|fbox)\s*\{", text)
        if not m:
            return text
        depth, i = 0, m.end() - 1
        for i in range(m.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
        text = text[: m.start()] + text[m.end() : i] + text[i + 1 :]


def perturbed(gold: str) -> list[tuple[str, str]]:
    """Rewrites that change the value (expected to grade unequal)."""
    out: list[tuple[str, str]] = []
    value = numeric_value(gold)
    if value is not None:
        v = value[0]
        out.append(("plus-one", fraction_text(v + 1)))
        if v != 0:
            out.append(("times-ten", fraction_text(v * 10)))
            out.append(("negated", fraction_text(-v)))
    m = re.match(r"^\s*(?:\\left)?\(\s*(.*?)\s*(?:\\right)?\)\s*$", gold)
    if m:
        items = top_level_split(m.group(1))
        if len(items) == 2 and normalize_answer(items[0]) != normalize_answer(items[1]):
            out.append(("swapped-pair", f"({items[1]}, {items[0]})"))
    return out


def fraction_text(v: Fraction) -> str:
    """An integer as digits, a fraction as \\frac{p}{q}."""
    return str(v.numerator) if v.denominator == 1 else f"\\frac{{{v.numerator}}}{{{v.denominator}}}"


def top_level_split(text: str) -> list[str]:
    """Split on commas outside brackets/braces."""
    items, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    items.append(cur.strip())
    return [i for i in items if i]


def decimal_text(v: Fraction) -> str:
    """The value as a decimal with at most six places, trailing zeros dropped."""
    return f"{float(v):.6f}".rstrip("0").rstrip(".")
