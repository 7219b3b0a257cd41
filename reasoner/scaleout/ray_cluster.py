"""Joining (or starting) the Ray cluster a job runs on, and checking it can hold the workers.

Ray is imported here, lazily: it is the optional `ray` extra. An address that does not answer is
one clear error at once (ray.init itself retries for minutes), as is a request for more CPUs or
GPUs than the cluster has (Ray would wait for them forever).
"""

from __future__ import annotations

import socket
from types import ModuleType
from typing import Any

from reasoner.scaleout.spec import ExecutorSpec
from reasoner.types import ReasonerError

CONNECT_TIMEOUT = 5.0  # seconds to reach a HOST:PORT before calling it unreachable


def import_ray() -> ModuleType:
    """The ray module, or an error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ReasonerError(
            "--executor ray needs Ray, which is not installed: pip install -e '.[ray]' "
            "(ray==2.60.0)"
        ) from None
    return ray


def check_reachable(address: str) -> None:
    """A HOST:PORT address answers a TCP connection, else an error naming it and the cause."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ReasonerError(
            f"--ray-address {address!r} is not auto or HOST:PORT (e.g. 10.0.0.1:6379)"
        )
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as err:
        raise ReasonerError(
            f"cannot reach the Ray cluster at --ray-address {address} ({err}); is `ray start "
            "--head` running there, and the port open from this machine?"
        ) from None


class Cluster:
    """The Ray cluster of one command: joined (or started) on entry, left on `close` if this
    process started the connection (a connection made by the caller, e.g. a test, is kept)."""

    def __init__(self, spec: ExecutorSpec):
        self.ray = import_ray()
        self.spec = spec
        self.owned = False
        if not self.ray.is_initialized():
            self._connect()
        self.address = self.ray.get_runtime_context().gcs_address
        check_resources(self.ray.cluster_resources(), self.ray.nodes(), spec, self.address)

    def _connect(self) -> None:
        address = self.spec.address
        if address is not None and address != "auto" and not address.startswith("ray://"):
            check_reachable(address)
        try:  # no address: a new single-machine cluster, stopped in `close`
            self.ray.init(
                address=address or "local", include_dashboard=False, logging_level="warning"
            )
        except ConnectionError as err:
            hint = (
                "no Ray cluster runs on this machine: start one with `ray start --head`, or "
                "leave --ray-address out to start a local one"
                if address == "auto"
                else str(err)
            )
            raise ReasonerError(f"--ray-address {address}: {hint}") from None
        self.owned = True

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()
        self.owned = False


def check_resources(
    total: dict[str, float], nodes: list[dict[str, Any]], spec: ExecutorSpec, address: str
) -> None:
    """The cluster holds `spec.workers` actors of the asked size, in total and one per node."""
    for key, flag, each in (
        ("CPU", "--cpus-per-worker", spec.cpus_per_worker),
        ("GPU", "--gpus-per-worker", spec.gpus_per_worker),
    ):
        need, have = spec.workers * each, total.get(key, 0.0)
        if need > have:
            raise ReasonerError(
                f"--workers {spec.workers} x {flag} {each:g} asks for {need:g} {key}s, but the "
                f"Ray cluster at {address} has {have:g}; ask for fewer or add nodes"
            )
        biggest = max(
            (n.get("Resources", {}).get(key, 0.0) for n in nodes if n.get("Alive", True)),
            default=0.0,
        )
        if each > biggest:
            raise ReasonerError(
                f"{flag} {each:g}: no node of the Ray cluster at {address} has that many {key}s "
                f"(the largest has {biggest:g}); one worker runs on one node"
            )
