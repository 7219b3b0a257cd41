"""The executor an ExecutorSpec names: Ray's module is imported only for `--executor ray`."""

from __future__ import annotations

from reasoner.scaleout.executor import Executor, LocalExecutor
from reasoner.scaleout.spec import ExecutorSpec


def make_executor(spec: ExecutorSpec | None) -> Executor:
    """The executor `spec` names (None: local)."""
    if spec is None or spec.kind == "local":
        return LocalExecutor()
    from reasoner.scaleout.ray_pool import RayExecutor

    return RayExecutor(spec)
