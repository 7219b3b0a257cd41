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
"""

import copy
import json
import random
import sys
import time
from pathlib import Path

import torch

from reasoner.api import load_policy
from reasoner.training.augment import slip_negatives
from reasoner.training.prm_trainer import split_by_problem
from reasoner.training.records import read_records

if __name__ == "__main__":  # a probe script: everything runs on execution, nothing on import
    torch.set_num_threads(2)
    torch.manual_seed(0)
    pol = load_policy("embedded")
    tok, fmt = pol.tokenizer, pol.step_format
    ref = pol.model.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    model = copy.deepcopy(ref).train()
    for p in model.parameters():
        p.requires_grad_(True)
    bias = torch.nn.Parameter(torch.tensor(-1.0))
    beta = torch.nn.Parameter(torch.tensor(0.2))

    def encode(problem, steps):
        ids = list(pol.encode_prompt(problem))
        start = len(ids)
        ends = []
        for i, s in enumerate(steps):
            ids += tok.encode(
                s + ("" if i + 1 == len(steps) else fmt.delimiter), add_special_tokens=False
            )
            ends.append(len(ids))
        return ids, start, ends

    def batch_logratio(exs, grad=True):
        w = max(len(e[0]) for e in exs)
        ids = torch.full((len(exs), w), tok.pad_token_id or 0)
        mask = torch.zeros_like(ids)
        for i, e in enumerate(exs):
            ids[i, : len(e[0])] = torch.tensor(e[0])
            mask[i, : len(e[0])] = 1
        with torch.no_grad():
            lr = torch.log_softmax(ref(input_ids=ids, attention_mask=mask).logits.float(), -1)[
                :, :-1
            ].gather(2, ids[:, 1:, None])[..., 0]
        ctx = torch.enable_grad() if grad else torch.no_grad()
        with ctx:
            lt = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)[
                :, :-1
            ].gather(2, ids[:, 1:, None])[..., 0]
            diff = (lt - lr) * mask[:, 1:]
            cum = diff.cumsum(1)
            logits = []
            for i, e in enumerate(exs):
                base = cum[i, e[1] - 2] if e[1] >= 2 else 0.0
                for end in e[2]:
                    logits.append(bias + beta * (cum[i, end - 2] - base))
            return torch.stack(logits) if logits else torch.zeros(0)

    mode = sys.argv[1] if len(sys.argv) > 1 else "eval"
    slips = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    suffix = f"-slip{slips}" if slips else ""
    if mode == "train":
        recs = read_records("runs/prm_recipes/train.jsonl")
        tr, va = split_by_problem(recs, 0.1, 0)
        tr = tr + slip_negatives(tr, slips, 0) if slips else tr
        exs = [(*encode(r.problem, r.steps), r.values("exact")) for r in tr]
        random.Random(0).shuffle(exs)
        opt = torch.optim.AdamW(list(model.parameters()) + [bias, beta], lr=5e-5, betas=(0.9, 0.95))
        steps = len(exs) // 16
        t0 = time.time()
        for s in range(steps):
            b = exs[s * 16 : (s + 1) * 16]
            lg = batch_logratio(b)
            tg = torch.tensor([v for e in b for v in e[3]], dtype=torch.float32)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(lg, tg)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if s % 50 == 0:
                print(
                    s,
                    steps,
                    round(loss.item(), 4),
                    round(time.time() - t0),
                    float(bias),
                    float(beta),
                    flush=True,
                )
        torch.save(
            {"model": model.state_dict(), "bias": bias.data, "beta": beta.data, "slips": slips},
            f"runs/exp/implicit{suffix}.pt",
        )
    else:
        st = torch.load(f"runs/exp/implicit{suffix}.pt")
        model.load_state_dict(st["model"])
        bias.data = st["bias"]
        beta.data = st["beta"]
        model.eval()
        recs = [r for r in read_records("runs/prm_recipes/test.jsonl") if r.steps]

        def score(chains):
            out = []
            for k in range(0, len(chains), 32):
                exs = [encode(p, s) for p, s in chains[k : k + 32]]
                lg = torch.sigmoid(batch_logratio(exs, grad=False)).tolist()
                j = 0
                for e in exs:
                    out.append(lg[j : j + len(e[2])])
                    j += len(e[2])
            return out

        from benchmarks.lab.prm_recipes import evaluate_scorer, minimal_pairs

        pairs = minimal_pairs(recs, 400)
        seen: dict = {}

        def score_once(chains):  # evaluate_scorer and the selection below score the same chains
            todo = [c for c in chains if (c[0], tuple(c[1])) not in seen]
            for c, v in zip(todo, score(todo)):
                seen[(c[0], tuple(c[1]))] = v
            return [seen[(c[0], tuple(c[1]))] for c in chains]

        metrics = evaluate_scorer(score_once, recs, pairs)
        sc = score_once([(r.problem, r.steps) for r in recs])
        # selection among each problem's 8 samples: this scorer's best (min over steps) vs a vote
        from reasoner.aggregation import answer_key, vote
        from reasoner.grading import extract_answer

        groups: dict[str, list] = {}
        for r, s in zip(recs, sc):
            answer = extract_answer(fmt.join_steps(r.steps))
            groups.setdefault(r.problem_id, []).append((r, min(s), answer))
        best_hits = vote_hits = 0
        for group in groups.values():
            answered = [g for g in group if g[2] is not None] or group
            best_hits += max(answered, key=lambda g: g[1])[0].correct
            votes = vote(g[2] for g in group)
            top = max(votes, key=votes.get) if votes else None
            vote_hits += any(g[0].correct and answer_key(g[2]) == top for g in group)
        selection = {
            "problems": len(groups),
            "best_of_8_min": best_hits / len(groups),
            "majority_of_8": vote_hits / len(groups),
        }
        result = {
            "command": f"python -m benchmarks.lab.implicit_prm_probe train {slips} && ... eval {slips}",
            "recipe": "pi_theta from the embedded policy, AdamW lr 5e-5, beta0 0.2, b0 -1, 1 epoch, batch 16, exact labels of runs/prm_recipes/train.jsonl (90% by problem)"
            + f", slip_negatives={slips}",
            "eval": f"{len(recs)} samples of arith test problems; {len(pairs)} minimal pairs",
            **metrics,
            "selection": selection,
        }
        Path(f"benchmarks/results/implicit_prm_probe{suffix}.json").write_text(
            json.dumps(result, indent=2)
        )
        print(json.dumps(result, indent=2))
