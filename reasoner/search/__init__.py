"""Everything a strategy author needs, in one public module.

A strategy is a generator written against the tree and the controller's requests: it yields
`Expand`, `Rollout` and `Score`, receives their results and returns a `Pick`; it never touches a
model, so the controller can batch every search's requests into single model calls. The helpers
(option checks, tree helpers, the best-of-N family's selection rules) are the ones the built-in
strategies use.
"""

from reasoner.search.families import SampleThenSelect
from reasoner.search.helpers import (
    chain_tokens,
    check_choice,
    check_int,
    check_number,
    check_width,
    spread,
    unique,
)
from reasoner.search.requests import Expand, Pick, Request, Rollout, Score, Search
from reasoner.search.selection import (
    best_choice,
    best_per_answer,
    best_pick,
    best_scored,
    best_scored_pick,
    majority_choice,
    majority_pick,
    weighted_choice,
    weighted_pick,
)
from reasoner.search.strategy import PRMUse, SearchContext, Strategy

__all__ = [
    "Expand",
    "PRMUse",
    "Pick",
    "Request",
    "Rollout",
    "SampleThenSelect",
    "Score",
    "Search",
    "SearchContext",
    "Strategy",
    "best_choice",
    "best_per_answer",
    "best_pick",
    "best_scored",
    "best_scored_pick",
    "chain_tokens",
    "check_choice",
    "check_int",
    "check_number",
    "check_width",
    "majority_choice",
    "majority_pick",
    "spread",
    "unique",
    "weighted_choice",
    "weighted_pick",
]
