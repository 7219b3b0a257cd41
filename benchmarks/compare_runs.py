"""Whether two benchmark runs agree: their summary.json rows and cells, time fields left out.

A refactor or a resume must leave every number but the clock unchanged; this says so or lists
each differing field. Usage: python -m benchmarks.compare_runs OLD/summary.json NEW/summary.json
Exit 0 when identical, 1 when they differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SECTIONS = ("rows", "cells", "combined_seeds", "errors")


def without_times(value: Any) -> Any:
    """`value` with every key naming seconds removed (wall time differs run to run)."""
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per differing field of the two summaries (empty when they agree)."""
    out = []
    for section in SECTIONS:
        a, b = without_times(old.get(section) or []), without_times(new.get(section) or [])
        if len(a) != len(b):
            out.append(f"{section}: {len(a)} vs {len(b)} entries")
        for i, (x, y) in enumerate(zip(a, b)):
            if x == y:
                continue
            if not (isinstance(x, dict) and isinstance(y, dict)):
                out.append(f"{section}[{i}]: {x!r} vs {y!r}")
                continue
            for key in sorted(set(x) | set(y)):
                if x.get(key) != y.get(key):
                    out.append(f"{section}[{i}].{key}: {x.get(key)!r} vs {y.get(key)!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    args = ap.parse_args(argv)
    old, new = (json.loads(p.read_text()) for p in (args.old, args.new))
    diff = differences(old, new)
    counts = ", ".join(f"{len(new.get(s) or [])} {s}" for s in SECTIONS)
    print("\n".join(diff) if diff else f"identical but for time fields ({counts})")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
