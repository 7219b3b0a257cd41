"""The ER-PRM paper's experiment at our scale: best-of-N with PRMs trained on hard, soft, ER and
ORM labels from the same rollouts, against greedy, majority vote and an exact equation checker.

One sampling run (N_max solutions per arith test problem, temperature 1) is stored once and scored
by every PRM, so all rows judge the very same solutions. A budget-n row averages over the
N_max/n disjoint groups of n solutions of each problem (less noise than one group); its 95% CI is
a bootstrap over problems. Step-F1 (ProcessBench style) uses the first 4 solutions per problem,
labelled by the exact step checker (reasoner.synthetic.first_error).

Usage:
  python -m benchmarks.lab.er_experiment --prms er2=runs/prm-er2,hard=runs/prm-hard,... \
      [--problems 300] [--max-n 64] [--budgets 4,16,64]
Samples and scores are cached under --cache (resumable); the table goes to --out (JSON + MD).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import mean
from typing import Any

from benchmarks.report import bootstrap_interval
from reasoner.aggregation import aggregate, answer_key, vote


# ---- cached samples and scores --------------------------------------------------------------------
def _read_jsonl(path: Path) -> dict[str, Any]:
    from reasoner.jsonl import repair_tail

    if not path.exists():
        return {}
    repair_tail(path)
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["id"]] = row
    return out


def _append(path: Path, rows: list[dict]) -> None:
    import os

    with open(path, "a") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
        fh.flush()
        os.fsync(fh.fileno())


def _problem_seed(seed: int, problem_id: str) -> int:
    """A problem's sampling seed: fixed by its id, whatever the offset or an earlier resume."""
    import zlib

    return seed * 1_000_003 + zlib.crc32(problem_id.encode())


def sample_solutions(problems: list, max_n: int, seed: int, path: Path, chunk: int = 8) -> dict:
    """N_max temperature-1 solutions and one greedy solution per problem (cached, resumable)."""
    from tqdm import tqdm

    from reasoner.api import load_policy
    from reasoner.grading import extract_answer, grade
    from reasoner.models.base import GenRequest

    done = _read_jsonl(path)
    todo = [p for p in problems if p.id not in done]
    if todo:
        policy = load_policy("embedded")
        fmt = policy.step_format
        for start in tqdm(range(0, len(todo), chunk), desc="sample", unit="chunk"):
            part = todo[start : start + chunk]
            prompts = [policy.encode_prompt(p.text) for p in part]
            t0 = time.perf_counter()
            sampled = policy.generate(
                [
                    GenRequest(ids, max_n, _problem_seed(seed, p.id), "end", 1.0)
                    for p, ids in zip(part, prompts)
                ]
            )
            greedy = policy.generate([GenRequest(ids, 1, 0, "end", 0.0) for ids in prompts])
            seconds = time.perf_counter() - t0
            rows = []
            for p, conts, [g] in zip(part, sampled, greedy):
                chains = []
                for c in [g, *conts]:
                    steps = [s.text for s in c.steps]
                    answer = extract_answer(fmt.join_steps(steps)) if c.finished else None
                    chains.append(
                        {
                            "steps": steps,
                            "answer": answer,
                            "correct": bool(answer is not None and grade(answer, p.answer)),
                            "tokens": c.new_tokens,
                        }
                    )
                rows.append(
                    {
                        "id": p.id,
                        "greedy": chains[0],
                        "samples": chains[1:],
                        "seconds": seconds / len(part),
                    }
                )
            _append(path, rows)
            done.update({r["id"]: r for r in rows})
    return {p.id: done[p.id] for p in problems}


def cached_per_sample(
    problems: list, samples: dict, path: Path, field: str, make: Callable, desc: str, chunk: int
) -> dict:
    """One value per sampled solution of every problem (cached in `path` under `field`,
    resumable). `make()` builds, only when something is left to do, the function mapping a list
    of ScoreRequests to one value each."""
    from tqdm import tqdm

    from reasoner.models.base import ScoreRequest

    done = _read_jsonl(path)
    todo = [p for p in problems if p.id not in done]
    if todo:
        compute = make()
        for start in tqdm(range(0, len(todo), chunk), desc=desc, unit="chunk"):
            part = todo[start : start + chunk]
            reqs = [
                ScoreRequest(p.text, chain["steps"] or [""])
                for p in part
                for chain in samples[p.id]["samples"]
            ]
            values = compute(reqs)
            rows, k = [], 0
            for p in part:
                n = len(samples[p.id]["samples"])
                rows.append({"id": p.id, field: values[k : k + n]})
                k += n
            _append(path, rows)
            done.update({r["id"]: r for r in rows})
    return {p.id: done[p.id][field] for p in problems}


def score_solutions(
    prm_path: Any, problems: list, samples: dict, path: Path, threads: int, chunk: int = 8
) -> dict[str, list[list[float]]]:
    """Step scores of every sampled solution under one PRM (cached, resumable)."""

    def make() -> Callable:
        from reasoner.api import load_prm

        prm = load_prm(prm_path, threads=threads)
        return lambda reqs: prm.score(reqs)[0]

    return cached_per_sample(problems, samples, path, "scores", make, f"score {path.stem}", chunk)


# ---- selection rules ------------------------------------------------------------------------------
Chain = dict[str, Any]
Picker = Callable[[list[Chain], list[list[float]]], Chain]


def _answered(idx: Sequence[int], chains: list[Chain]) -> list[int]:
    """Chains that reached an answer (no answer can never be right); all of them if none did."""
    kept = [i for i in idx if chains[i]["answer"] is not None]
    return kept or list(idx)


def majority(chains: list[Chain], _scores: list[list[float]]) -> Chain:
    tally = vote([c["answer"] for c in chains])
    if not tally:
        return chains[0]
    best = max(tally.items(), key=lambda kv: kv[1])[0]
    return next(c for c in chains if answer_key(c["answer"]) == best)


def best_of_n(agg: str) -> Picker:
    def pick(chains: list[Chain], scores: list[list[float]]) -> Chain:
        idx = _answered(range(len(chains)), chains)
        best = max(idx, key=lambda i: (aggregate(scores[i] or [0.0], agg), -i))
        return chains[best]

    return pick


def weighted_best_of_n(agg: str) -> Picker:
    def pick(chains: list[Chain], scores: list[list[float]]) -> Chain:
        tally = vote([c["answer"] for c in chains], [aggregate(s or [0.0], agg) for s in scores])
        if not tally:
            return chains[0]
        best = max(tally.items(), key=lambda kv: kv[1])[0]
        return next(c for c in chains if answer_key(c["answer"]) == best)

    return pick


def checker_vote(problem_texts: dict[str, str]) -> Picker:
    """Exact equation checker as verifier: majority vote among chains with no false equation."""
    from reasoner.synthetic import first_arithmetic_error

    def pick(chains: list[Chain], _scores: list[list[float]]) -> Chain:
        clean = [c for c in chains if first_arithmetic_error("\n\n".join(c["steps"])) == -1]
        return majority(clean or chains, [])

    return pick


def group_accuracy(
    samples: list[Chain], scores: list[list[float]], n: int, pick: Picker
) -> tuple[float, float]:
    """Mean accuracy and coverage of `pick` over the disjoint groups of n solutions."""
    groups = range(0, len(samples) - n + 1, n)
    acc = [float(pick(samples[g : g + n], scores[g : g + n])["correct"]) for g in groups]
    cov = [float(any(c["correct"] for c in samples[g : g + n])) for g in groups]
    return mean(acc), mean(cov)


def step_likelihoods(policy, chains: list[tuple[str, list[str]]]) -> list[list[float]]:
    """exp(mean token log-probability) of every step of every (problem, steps) chain under the
    policy, in one padded forward pass: the policy's own confidence in each step."""
    import torch

    tok, fmt, model = policy.tokenizer, policy.step_format, policy.model
    seqs, spans = [], []
    for problem, steps in chains:
        ids, bounds = list(policy.encode_prompt(problem)), []
        steps = steps or [""]
        for i, step in enumerate(steps):
            piece = step + ("" if i + 1 == len(steps) else fmt.delimiter)
            begin = len(ids)
            ids += tok.encode(piece, add_special_tokens=False)
            bounds.append((begin, len(ids)))
        seqs.append(ids)
        spans.append(bounds)
    width = max(len(x) for x in seqs)
    batch = torch.full((len(seqs), width), tok.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros_like(batch)
    for i, x in enumerate(seqs):
        batch[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=batch, attention_mask=mask).logits, -1)
    token_lp = logp[:, :-1].gather(2, batch[:, 1:, None])[..., 0]
    return [
        [float(token_lp[i, b - 1 : e - 1].mean().exp()) if e > b else 0.0 for b, e in bounds]
        for i, bounds in enumerate(spans)
    ]


def evidence_rows_cached(problems: list, samples: dict, path: Path, chunk: int = 8) -> dict:
    """The embedded policy's evidence rows (reasoner.models.token_evidence.FEATURES) for every
    step of every sample (cached, resumable): evidence PRMs on the same base differ only in
    their head, so the base runs once for all of them."""

    def make() -> Callable:
        from reasoner.models.evidence_prm import EvidenceFeatures

        features = EvidenceFeatures("embedded", prefix_cache_mb=0)
        return lambda reqs: features.rows(reqs)[0]

    return cached_per_sample(problems, samples, path, "rows", make, "evidence rows", chunk)


def head_scores(prm_path: str, problems: list, samples: dict, rows: dict) -> dict:
    """Step scores of an evidence PRM on the embedded policy, from cached evidence rows."""
    import torch

    from reasoner.models.evidence_prm import load_evidence_head

    head, _, columns = load_evidence_head(Path(prm_path))
    out = {}
    with torch.no_grad():
        for p in problems:
            chains = []
            for c, chain in zip(samples[p.id]["samples"], rows[p.id]):
                x = torch.tensor(chain)[:, columns]
                chains.append(torch.sigmoid(head(x)).tolist()[: len(c["steps"])])
            out[p.id] = chains
    return out


def _is_embedded_evidence_prm(path: str) -> bool:
    import json as _json

    from reasoner.models.evidence_prm import CONFIG_FILE, is_evidence_prm

    if not is_evidence_prm(path):
        return False
    return _json.loads((Path(path) / CONFIG_FILE).read_text()).get("base") == "embedded"


def confidence_scores(problems: list, samples: dict, rows: dict, feature: str) -> dict:
    """An untrained verifier: each step scored by exp(one of the policy's evidence features),
    e.g. "lp_mean" (the step's mean token log-probability: the policy's confidence in it) or
    "gap_min" (the lowest log-probability gap to the policy's favourite token, 0 if none)."""
    import math

    from reasoner.models.token_evidence import FEATURES

    k = FEATURES.index(feature)
    return {
        p.id: [
            [math.exp(row[k]) for row in chain][: len(c["steps"])]
            for c, chain in zip(samples[p.id]["samples"], rows[p.id])
        ]
        for p in problems
    }


# ---- step-level F1 --------------------------------------------------------------------------------
THRESHOLDS = [round(0.02 * i, 2) for i in range(1, 50)]


def step_f1(problems: list, samples: dict, scores: dict | None, per_problem: int = 4) -> dict:
    """F1 at threshold 0.5 and at the best threshold of a 0.02 grid (an oracle upper bound:
    ER/soft labels are values, not probabilities of step correctness, so 0.5 is not their cut)."""
    from reasoner.prm_eval import first_wrong_step, processbench_metrics
    from reasoner.synthetic import first_arithmetic_error, first_error

    preds, labels, chains = [], [], []
    for p in problems:
        for j, chain in enumerate(samples[p.id]["samples"][:per_problem]):
            if not chain["steps"]:
                continue
            text = "\n\n".join(chain["steps"])
            labels.append(first_error(p, text))
            if scores is None:
                preds.append(first_arithmetic_error(text))
            else:
                preds.append(first_wrong_step(scores[p.id][j]))
                chains.append(scores[p.id][j])
    out = {**processbench_metrics(preds, labels), "n": len(labels)}
    if scores is not None:
        best = max(
            (processbench_metrics([first_wrong_step(s, t) for s in chains], labels)["f1"], t)
            for t in THRESHOLDS
        )
        out["best_f1"], out["best_threshold"] = best
    return out


# ---- within-problem ranking ----------------------------------------------------------------------
def chain_hash_scores(problems: list, samples: dict) -> dict[str, list[list[float]]]:
    """A content-blind control PRM: one uniform score per distinct chain text (so identical chains
    score alike, as with any deterministic PRM), repeated at every step."""
    import zlib

    out = {}
    for p in problems:
        out[p.id] = []
        for chain in samples[p.id]["samples"]:
            text = "\n".join(chain["steps"])
            u = zlib.crc32(f"{p.id}\n{text}".encode()) / 2**32
            out[p.id].append([u] * max(1, len(chain["steps"])))
    return out


def ranking(problems: list, samples: dict, scores: dict, per_problem: int = 16) -> dict:
    """Pairwise accuracy of a PRM's min and last score over (right, wrong) answered solutions of
    the SAME problem (what best-of-N needs), and AUC of the min score across all problems."""
    from reasoner.training.prm_trainer import roc_auc

    pairs: dict[str, list[float]] = {"min": [], "last": []}
    flat, truth = [], []
    for p in problems:
        answered = [
            (c, s)
            for c, s in zip(samples[p.id]["samples"][:per_problem], scores[p.id])
            if c["answer"] is not None and s
        ]
        flat += [min(s) for _, s in answered]
        truth += [c["correct"] for c, _ in answered]
        right = [s for c, s in answered if c["correct"]]
        wrong = [s for c, s in answered if not c["correct"]]
        for agg, f in (("min", min), ("last", lambda v: v[-1])):
            for a in right:
                for b in wrong:
                    pairs[agg].append(float(f(a) > f(b)) + 0.5 * float(f(a) == f(b)))
    return {
        "pair_acc_min": mean(pairs["min"]) if pairs["min"] else float("nan"),
        "pair_acc_last": mean(pairs["last"]) if pairs["last"] else float("nan"),
        "pairs": len(pairs["min"]),
        "auc_across_problems": roc_auc(flat, truth),
    }


# ---- the table ------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    from reasoner.synthetic import load_split

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    problems = load_split("test")[args.offset : args.offset + args.problems]
    samples = sample_solutions(problems, args.max_n, args.seed, cache / "samples.jsonl")
    prms = dict(item.split("=", 1) for item in args.prms.split(",")) if args.prms else {}
    scores = {}
    for name, path in prms.items():
        if _is_embedded_evidence_prm(path):
            rows = evidence_rows_cached(problems, samples, cache / "evidence-rows.jsonl")
            scores[name] = head_scores(path, problems, samples, rows)
        else:
            path_cache = cache / f"scores-{name}.jsonl"
            scores[name] = score_solutions(path, problems, samples, path_cache, args.threads)
    if args.likelihood:
        rows = evidence_rows_cached(problems, samples, cache / "evidence-rows.jsonl")
        scores["policy likelihood"] = confidence_scores(problems, samples, rows, "lp_mean")
        scores["policy min token gap"] = confidence_scores(problems, samples, rows, "gap_min")
    none = {p.id: [[] for _ in samples[p.id]["samples"]] for p in problems}
    rows: list[dict[str, Any]] = []

    def add(method: str, prm: str, agg: str, n: int, pick: Picker, sc: dict) -> None:
        per = [group_accuracy(samples[p.id]["samples"], sc[p.id], n, pick) for p in problems]
        accs = [a for a, _ in per]
        lo, hi = bootstrap_interval(accs)
        rows.append(
            {
                "method": method,
                "prm": prm,
                "aggregation": agg,
                "n": n,
                "accuracy": mean(accs),
                "ci95": [lo, hi],
                "coverage": mean(c for _, c in per),
                "problems": len(problems),
                "groups_per_problem": args.max_n // n,
            }
        )

    greedy = [float(samples[p.id]["greedy"]["correct"]) for p in problems]
    lo, hi = bootstrap_interval(greedy)
    rows.append(
        {
            "method": "greedy",
            "prm": "-",
            "aggregation": "-",
            "n": 1,
            "accuracy": mean(greedy),
            "ci95": [lo, hi],
            "coverage": mean(greedy),
            "problems": len(problems),
            "groups_per_problem": 1,
        }
    )
    texts = {p.id: p.text for p in problems}
    control = chain_hash_scores(problems, samples)
    for n in args.budgets:
        add("random sample", "-", "-", n, lambda c, s: c[0], none)
        add("majority", "-", "-", n, majority, none)
        add("equation checker + vote", "exact", "-", n, checker_vote(texts), none)
        add("best_of_n", "content-blind control", "min", n, best_of_n("min"), control)
        for name in scores:
            for agg in args.aggregations:
                add("best_of_n", name, agg, n, best_of_n(agg), scores[name])
            add("weighted_best_of_n", name, "last", n, weighted_best_of_n("last"), scores[name])
    f1 = {name: step_f1(problems, samples, scores[name]) for name in scores}
    f1["equation checker (exact)"] = step_f1(problems, samples, None)
    return {
        "command": "python -m benchmarks.lab.er_experiment " + " ".join(sys.argv[1:]),
        "problems": f"arith test {args.offset}-{args.offset + len(problems) - 1}",
        "max_n": args.max_n,
        "prms": prms,
        "rows": rows,
        "step_f1": f1,
        "ranking": {
            **{name: ranking(problems, samples, scores[name]) for name in scores},
            "content-blind control": ranking(problems, samples, control),
        },
        "policy_tokens_per_sample": mean(
            c["tokens"] for p in problems for c in samples[p.id]["samples"]
        ),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# ER-PRM experiment: best-of-N with PRMs from the same rollouts (arith test)",
        "",
        f"Command: `{report['command']}`  ",
        f"Problems: {report['problems']}; one sampling run of {report['max_n']} solutions per "
        "problem (temperature 1) scored by every PRM; a budget-n row averages the "
        f"{report['max_n']}/n disjoint groups of n solutions; 95% CI: bootstrap over problems. "
        "best_of_n picks among solutions that reached an answer.",
        "",
        "| method | PRM | agg | N | accuracy % (95% CI) | coverage % |",
        "|---|---|---|---:|---|---:|",
    ]
    for r in report["rows"]:
        lo, hi = r["ci95"]
        lines.append(
            f"| {r['method']} | {r['prm']} | {r['aggregation']} | {r['n']} | "
            f"{100 * r['accuracy']:.1f} ({100 * lo:.1f}-{100 * hi:.1f}) | "
            f"{100 * r['coverage']:.1f} |"
        )
    lines += [
        "",
        "## Step-level F1 (ProcessBench style, first 4 solutions per problem, exact labels)",
        "",
        "| PRM | n | acc. erroneous % | acc. correct % | F1 % (t=0.5) | best F1 % (t) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in report["step_f1"].items():
        best = f"{100 * m['best_f1']:.1f} ({m['best_threshold']})" if "best_f1" in m else "-"
        lines.append(
            f"| {name} | {m['n']} | {100 * m['error_accuracy']:.1f} | "
            f"{100 * m['correct_accuracy']:.1f} | {100 * m['f1']:.1f} | {best} |"
        )
    lines += [
        "",
        "## Within-problem ranking (first 16 solutions per problem, answered ones)",
        "",
        "Pair accuracy: share of (right, wrong) solution pairs of the same problem that the PRM "
        "orders right (0.5 = chance); AUC: the min score of right vs wrong solutions pooled over "
        "all problems (rewards knowing which problems are easy). The content-blind control gives "
        "each distinct chain a hash-uniform score.",
        "",
        "| PRM | pairs | pair acc. (min) | pair acc. (last) | AUC across problems |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in report.get("ranking", {}).items():
        lines.append(
            f"| {name} | {m['pairs']} | {m['pair_acc_min']:.3f} | {m['pair_acc_last']:.3f} | "
            f"{m['auc_across_problems'] or float('nan'):.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--prms", default="", help="name=path,... (PRM checkpoints)")
    ap.add_argument("--problems", type=int, default=300)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--max-n", type=int, default=64)
    ap.add_argument("--budgets", default="4,16,64")
    ap.add_argument("--aggregations", default="min,last")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--likelihood",
        action="store_true",
        help="add the untrained policy-confidence baselines (step likelihood, min token gap)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="runs/er_experiment")
    ap.add_argument("--out", default="benchmarks/results/er_experiment")
    args = ap.parse_args(argv)
    args.budgets = [int(b) for b in args.budgets.split(",")]
    args.aggregations = args.aggregations.split(",")
    bad = [b for b in args.budgets if b < 1 or args.max_n % b]
    if bad:
        ap.error(f"budgets {bad} must divide --max-n {args.max_n}")
    import torch

    torch.set_num_threads(args.threads)
    report = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(report, indent=2))
    (out / "summary.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
