"""reasoner: search-time reasoning for math with a policy, a process reward model and tree search."""

from reasoner.types import Problem, ReasonerError, Solution, Stats

__version__ = "0.1.0"
__all__ = ["Problem", "Solution", "Stats", "ReasonerError", "Reasoner", "__version__"]


def __getattr__(name: str):
    if name == "Reasoner":  # imported lazily: it pulls in torch
        from reasoner.api import Reasoner

        return Reasoner
    raise AttributeError(name)
