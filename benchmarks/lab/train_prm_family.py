"""Train the PRM family of the ER-PRM experiment from ONE set of stored rollouts.

Label kinds: hard, soft, ER at each eta, and ORM; every other setting comes from the training
config, so the label is the only difference between the PRMs. The default config trains evidence
PRMs (reasoner/configs/prm.toml; they share one feature cache, so each takes seconds after the
first); reasoner/configs/prm_lm.toml trains LM PRMs (about 6.5 min each).
Each PRM goes to RUNS/PREFIX-KIND (PREFIX "evidence" or "prm", by the config's kind); finished
ones are skipped and an interrupted one resumes.

Usage: python -m benchmarks.lab.train_prm_family [--config ...] [--kinds hard,soft,er-0.5,...]
Then: python -m benchmarks.lab.er_experiment --prms hard=runs/evidence-hard/final,...
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from reasoner.training.prm_trainer import PRMTrainConfig, train_prm

KINDS = "hard,soft,er-0.5,er-1,er-2,er-5,er-10,orm"


def main(argv: list[str] | None = None) -> int:
    """Train every kind not yet finished, then print the --prms argument for er_experiment."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="reasoner/configs/prm.toml")
    ap.add_argument("--kinds", default=KINDS)
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--epochs", type=float, help="override the config's epochs")
    ap.add_argument(
        "--evidence-groups",
        help="evidence PRMs: feature groups, e.g. 'token' (an ablation without the equation "
        "check; runs go to RUNS/evidence-token-KIND)",
    )
    args = ap.parse_args(argv)
    evidence = PRMTrainConfig.from_toml(args.config).kind == "evidence"
    prefix = "evidence" if evidence else "prm"
    groups = args.evidence_groups.split(",") if args.evidence_groups else None
    if groups:
        prefix = "evidence-" + "-".join(groups)
    for kind in args.kinds.split(","):
        out = Path(args.runs) / f"{prefix}-{kind}"
        if (out / "final" / "prm_training.json").exists():
            print(f"{kind}: done ({out / 'final'})")
            continue
        overrides = {"label": kind, "out_dir": str(out)}
        if evidence:
            overrides["features_cache"] = str(Path(args.runs) / "evidence-features.pt")
            if groups:
                overrides["evidence_groups"] = groups
        if args.epochs is not None:
            overrides["epochs"] = args.epochs
        cfg = PRMTrainConfig.from_toml(args.config, overrides)
        t0 = time.time()
        train_prm(cfg)
        print(f"{kind}: trained in {time.time() - t0:.0f} s -> {out / 'final'}", flush=True)
    kinds = args.kinds.split(",")
    print("--prms " + ",".join(f"{k}={args.runs}/{prefix}-{k}/final" for k in kinds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
