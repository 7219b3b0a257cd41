"""The models of a bench run, each loaded once however many grid cells use it."""

from __future__ import annotations

from benchmarks.config import BenchConfig
from reasoner.api import load_policy, load_prm
from reasoner.models.base import Policy, ProcessRewardModel


class ModelCache:
    """Loads the policy and each PRM on first use, with the config's backend, step formats and
    options (the PRM's step format is `prm_step_format`, else the policy's)."""

    def __init__(self, cfg: BenchConfig):
        self.cfg = cfg
        self._policy: Policy | None = None
        self._prms: dict[str, ProcessRewardModel] = {}

    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = load_policy(
                self.cfg.policy, self.cfg.backend, self.cfg.step_format, **self.cfg.policy_options
            )
        return self._policy

    def prm(self, spec: str) -> ProcessRewardModel | None:
        """The PRM named `spec`; None for "none"."""
        if spec == "none":
            return None
        if spec not in self._prms:
            fmt = self.cfg.prm_step_format or self.cfg.step_format
            self._prms[spec] = load_prm(spec, self.cfg.backend, fmt, **self.cfg.prm_options)
        return self._prms[spec]
