"""Probe: an implicit PRM read from the policy's own token probabilities (a lead, not shipped).

score(step l) = sigmoid(b + beta * sum over the solution's tokens up to the end of step l of
log pi_theta(token) / pi_0(token)), pi_0 the frozen embedded policy and pi_theta a copy of it
trained with BCE on the oracle step labels. It is the KL-regularised view behind ER-PRM (the
optimal policy's log-ratio to pi_0 is eta times the change of the ER value), and it reads the
signal where the policy keeps it: the probability of each result digit.

Usage (after `python -m benchmarks.lab.prm_recipes sample ...` for train and test):
  python -m benchmarks.lab.implicit_prm_probe train [SLIPS]  # ~4 min (SLIPS=2: ~8 min) on 2 cores
  python -m benchmarks.lab.implicit_prm_probe eval [SLIPS]   # -> benchmarks/results/implicit_prm_probe[-slipN].json
SLIPS adds that many slip-negative copies per training record (reasoner.training.augment).
Paths are relative to the working directory: runs/prm_recipes/{train,test}.jsonl in,
runs/exp/implicit[-slipN].pt between the two steps.
"""

from __future__ import annotations

import argparse
import copy
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.lab.likelihood import chain_ids, padded, token_logprobs
from benchmarks.lab.pairs import minimal_pairs
from benchmarks.lab.prm_recipes import evaluate_scorer
from benchmarks.lab.results import write_result
from reasoner.aggregation import aggregate, answer_key
from reasoner.api import load_policy
from reasoner.grading import extract_answer
from reasoner.search import best_choice, majority_choice
from reasoner.step_format import StepFormat
from reasoner.training.augment import slip_negatives
from reasoner.training.prm_data import split_by_problem
from reasoner.training.records import LabeledSolution, read_records

Example = tuple[list[int], int, list[int]]  # (ids, first solution token, end of each step)


class ImplicitPRM:
    """pi_theta (a trainable copy of the policy), the frozen pi_0 and the readout (b, beta)."""

    def __init__(self, policy: Any):
        self.policy = policy
        self.ref = policy.model.eval()
        for p in self.ref.parameters():
            p.requires_grad_(False)
        self.model = copy.deepcopy(self.ref).train()
        for p in self.model.parameters():
            p.requires_grad_(True)
        self.bias = torch.nn.Parameter(torch.tensor(-1.0))
        self.beta = torch.nn.Parameter(torch.tensor(0.2))

    def encode(self, problem: str, steps: Sequence[str]) -> Example:
        """The chain's ids, where the solution starts and where each step ends."""
        ids, spans = chain_ids(self.policy, problem, steps)
        start = spans[0][0] if spans else len(ids)
        return ids, start, [end for _, end in spans]

    def step_logits(self, exs: Sequence[Example], grad: bool = True) -> torch.Tensor:
        """b + beta * (cumulative log pi_theta/pi_0 of the solution up to each step's end), for
        every step of every example, flattened."""
        ids, mask = padded([e[0] for e in exs], self.policy.tokenizer.pad_token_id)
        with torch.no_grad():
            lr = token_logprobs(self.ref, ids, mask)
        with torch.enable_grad() if grad else torch.no_grad():
            lt = token_logprobs(self.model, ids, mask)
            cum = ((lt - lr) * mask[:, 1:]).cumsum(1)
            logits = []
            for i, (_, start, ends) in enumerate(exs):
                base = cum[i, start - 2] if start >= 2 else 0.0
                for end in ends:
                    logits.append(self.bias + self.beta * (cum[i, end - 2] - base))
            return torch.stack(logits) if logits else torch.zeros(0)

    def score(self, chains: Sequence[tuple[str, list[str]]]) -> list[list[float]]:
        """Step scores of (problem, steps) chains, 32 per forward pass."""
        out = []
        for k in range(0, len(chains), 32):
            exs = [self.encode(p, s) for p, s in chains[k : k + 32]]
            lg = torch.sigmoid(self.step_logits(exs, grad=False)).tolist()
            j = 0
            for e in exs:
                out.append(lg[j : j + len(e[2])])
                j += len(e[2])
        return out


def train(probe: ImplicitPRM, records: list[LabeledSolution], slips: int, out: Path) -> None:
    """One epoch of BCE on the exact labels of 90 % of the problems (batch 16, AdamW 5e-5)."""
    tr, _ = split_by_problem(records, 0.1, 0)
    tr = tr + slip_negatives(tr, slips, 0) if slips else tr
    exs = [(*probe.encode(r.problem, r.steps), r.values("exact")) for r in tr]
    random.Random(0).shuffle(exs)
    params = list(probe.model.parameters()) + [probe.bias, probe.beta]
    opt = torch.optim.AdamW(params, lr=5e-5, betas=(0.9, 0.95))
    steps = len(exs) // 16
    t0 = time.time()
    for s in range(steps):
        b = exs[s * 16 : (s + 1) * 16]
        lg = probe.step_logits([e[:3] for e in b])
        tg = torch.tensor([v for e in b for v in e[3]], dtype=torch.float32)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(lg, tg)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(probe.model.parameters(), 1.0)
        opt.step()
        if s % 50 == 0:
            progress = [s, steps, round(loss.item(), 4), round(time.time() - t0)]
            print(*progress, float(probe.bias), float(probe.beta), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": probe.model.state_dict(), "bias": probe.bias.data, "beta": probe.beta.data}
    torch.save({**state, "slips": slips}, out)


def selection(
    records: list[LabeledSolution], scores: list[list[float]], fmt: StepFormat
) -> dict[str, Any]:
    """Among each problem's samples: accuracy of this scorer's best (min over steps, answered
    chains first) vs whether the majority-voted answer is right."""
    groups: dict[str, list[tuple[LabeledSolution, float, str | None]]] = {}
    for r, s in zip(records, scores):
        answer = extract_answer(fmt.join_steps(r.steps))
        groups.setdefault(r.problem_id, []).append((r, aggregate(s, "min"), answer))
    best_hits = vote_hits = 0
    for group in groups.values():
        answers = [a for _, _, a in group]
        best_hits += group[best_choice(answers, [m for _, m, _ in group])][0].correct
        index, _ = majority_choice(answers)
        top = answer_key(answers[index]) if index is not None else None
        vote_hits += any(r.correct and answer_key(a) == top for r, _, a in group)
    return {
        "problems": len(groups),
        "best_of_8_min": best_hits / len(groups),
        "majority_of_8": vote_hits / len(groups),
    }


def evaluate(probe: ImplicitPRM, records: list[LabeledSolution], slips: int) -> dict[str, Any]:
    """Pair accuracies and step AUC (prm_recipes' evaluator) and best-of-8 vs majority-of-8."""
    probe.model.eval()
    pairs = minimal_pairs(records, 400)
    seen: dict = {}

    def score_once(chains):  # evaluate_scorer and the selection score the same chains
        todo = [c for c in chains if (c[0], tuple(c[1])) not in seen]
        for c, v in zip(todo, probe.score(todo)):
            seen[(c[0], tuple(c[1]))] = v
        return [seen[(c[0], tuple(c[1]))] for c in chains]

    metrics = evaluate_scorer(score_once, records, pairs)
    scores = score_once([(r.problem, r.steps) for r in records])
    return {
        "command": f"python -m benchmarks.lab.implicit_prm_probe train {slips} && ... eval {slips}",
        "recipe": "pi_theta from the embedded policy, AdamW lr 5e-5, beta0 0.2, b0 -1, 1 epoch, batch 16, exact labels of runs/prm_recipes/train.jsonl (90% by problem)"
        + f", slip_negatives={slips}",
        "eval": f"{len(records)} samples of arith test problems; {len(pairs)} minimal pairs",
        **metrics,
        "selection": selection(records, scores, probe.policy.step_format),
    }


def main(argv: list[str] | None = None) -> int:
    """train: fit pi_theta and save it; eval: load it, evaluate on the test samples, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("mode", nargs="?", default="eval", choices=("train", "eval"))
    ap.add_argument("slips", nargs="?", type=int, default=0)
    args = ap.parse_args(argv)
    suffix = f"-slip{args.slips}" if args.slips else ""
    checkpoint = Path(f"runs/exp/implicit{suffix}.pt")
    torch.set_num_threads(2)
    torch.manual_seed(0)
    probe = ImplicitPRM(load_policy("embedded"))
    if args.mode == "train":
        train(probe, read_records("runs/prm_recipes/train.jsonl"), args.slips, checkpoint)
        return 0
    state = torch.load(checkpoint)
    probe.model.load_state_dict(state["model"])
    probe.bias.data = state["bias"]
    probe.beta.data = state["beta"]
    records = [r for r in read_records("runs/prm_recipes/test.jsonl") if r.steps]
    result = evaluate(probe, records, args.slips)
    write_result(Path(f"benchmarks/results/implicit_prm_probe{suffix}.json"), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
