"""How the controller cuts one tick's model work into bounded calls, and what a request may hold.

Generation is served in calls of at most `max_rows_per_call` sampled sequences (a request's k
samples split by first_sample, so every sample is the one the whole request would draw), scoring
in calls of at most `max_chains_per_call` chains; the controller checks its time and node limits
between calls, so a search over a limit stops within one call. The cut points are a pure function
of the requests, never of the clock, so results do not depend on how fast the machine is, and a
tick that fits one call is served by exactly the call it was served by before calls were bounded.
"""

from __future__ import annotations

import os
from dataclasses import replace

from reasoner.models.base import GenRequest
from reasoner.models.step_rules import row_caps
from reasoner.step_format import StepFormat

# for a user's policy / PRM object that does not say (HFPolicy's decoding batch; a large
# scoring call, so a benchmark tick of a few thousand chains stays one call)
DEFAULT_ROWS_PER_CALL = 128
DEFAULT_CHAINS_PER_CALL = 4096

# what one generated token costs to hold in a step tree (its id in the node's list, its share of
# the node, its text and the Continuation): measured 54-72 bytes with the embedded policy's
# best-of-256 trees, rounded up
TREE_BYTES_PER_TOKEN = 128


def calls_limit(model: object, attribute: str, default: int) -> int:
    """A model's per-call size (`attribute`, e.g. max_rows_per_call), `default` when it has none."""
    value = getattr(model, attribute, default)
    return max(1, int(value)) if isinstance(value, int) and not isinstance(value, bool) else default


def generation_calls(
    requests: list[GenRequest], max_rows: int
) -> list[list[tuple[int, GenRequest]]]:
    """The policy calls that serve `requests`: each a list of (request index, the part of that
    request it samples), at most `max_rows` samples per call.

    A tick that fits is one call with the requests in order. A larger one is cut like HFPolicy
    cuts a call into decoding batches (requests by prefix length, a batch closed when the next
    request would overflow it), so each call is the batch the policy would have decoded anyway;
    a request larger than a call is served in parts of max_rows samples (first_sample set).
    """
    max_rows = max(1, max_rows)
    if sum(r.k for r in requests) <= max_rows:
        return [list(enumerate(requests))] if requests else []
    calls: list[list[tuple[int, GenRequest]]] = []
    current: list[tuple[int, GenRequest]] = []
    rows = 0
    for i in sorted(range(len(requests)), key=lambda i: len(requests[i].prefix_ids)):
        request = requests[i]
        if request.k <= max_rows:
            if current and rows + request.k > max_rows:
                calls.append(current)
                current, rows = [], 0
            current.append((i, request))
            rows += request.k
            continue
        if current:
            calls.append(current)
            current, rows = [], 0
        for start in range(0, request.k, max_rows):
            k = min(max_rows, request.k - start)
            part = replace(request, k=k, first_sample=request.first_sample + start)
            if k == max_rows:
                calls.append([(i, part)])
            else:  # the rest opens the next call, which later requests may fill
                current, rows = [(i, part)], k
    if current:
        calls.append(current)
    return calls


def scoring_calls(group_sizes: list[int], max_chains: int) -> list[range]:
    """The PRM calls that serve a tick's chains, listed group by group (one group per search):
    consecutive ranges of at most `max_chains` chains that keep each group whole, unless the
    group alone is larger (then it is cut into ranges of max_chains).

    A group's chains share its problem's prompt, which a PRM encodes once per call."""
    max_chains = max(1, max_chains)
    total = sum(group_sizes)
    if total <= max_chains:
        return [range(0, total)] if total else []
    calls: list[range] = []
    start = end = 0
    for size in group_sizes:
        if size > max_chains:
            if end > start:
                calls.append(range(start, end))
            calls.extend(
                range(s, min(s + max_chains, end + size))
                for s in range(end, end + size, max_chains)
            )
            end += size
            start = end
            continue
        if end + size - start > max_chains:
            calls.append(range(start, end))
            start = end
        end += size
    if end > start:
        calls.append(range(start, end))
    return calls


def samples_bytes(requests: list[GenRequest], step_format: StepFormat, max_context: int) -> int:
    """The most memory the samples of `requests` can take once in a step tree: every sample at
    its token cap (step or rollout, by the step format and the context) x TREE_BYTES_PER_TOKEN."""
    tokens = sum(r.k * row_caps(r, step_format, max_context)[1] for r in requests)
    return tokens * TREE_BYTES_PER_TOKEN


def available_memory() -> int | None:
    """Bytes this machine can still give a process (Linux MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
