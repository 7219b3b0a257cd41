"""Scale-out: a job's shards run in this process (`local`) or on a Ray cluster's actors (`ray`).

The driver keeps writing the same resumable, fsynced JSONL it writes alone: executors hand results
back in shard order, so the file does not depend on the executor, the worker count or the order
workers finish in. See docs/cluster.md for running it on a cluster of GPU nodes.
"""

from reasoner.scaleout.executor import Executor, Job, LocalExecutor, ShardStats
from reasoner.scaleout.factory import make_executor
from reasoner.scaleout.shards import shard
from reasoner.scaleout.spec import ExecutorSpec, add_executor_args, spec_from_args

__all__ = [
    "Executor",
    "ExecutorSpec",
    "Job",
    "LocalExecutor",
    "ShardStats",
    "add_executor_args",
    "make_executor",
    "shard",
    "spec_from_args",
]
