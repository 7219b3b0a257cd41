"""The benchmark runner, one job per module: `run_bench` (in `run`) drives the others.

- `grid`: the cells (strategy, budget, PRM, aggregation, seed) a config asks for.
- `problems`: the problems of a run and where they came from.
- `rows`: `ResultRow`, one graded (problem, cell) result as results.jsonl stores it.
- `resume`: the output directory, reading finished rows back, the run.json compatibility check.
- `metadata`: run.json's record of the command, code, data checksums and model fingerprints.
- `models`: each policy / PRM loaded once per run.
- `robust`: solving a batch so that one failing problem errors alone.
- `replay`: best-of-N-family cells at every budget from one sampling run.
- `run`: the run loop, resumable row by row.
"""
