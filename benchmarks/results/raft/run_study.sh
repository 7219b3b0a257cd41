#!/usr/bin/env bash
# The RAFT study: 3 rounds from the shipped policy per selector (same prompts, seeds and k).
# Run from the repository root, after the PRMs (README.md, "Regenerate"). Each piece holds the
# shared heavy lock for at most PIECE seconds and is then interrupted (SIGINT: finished prompts,
# training steps and evaluation rows are saved); the loop takes the lock again until every
# (round, selector) is done, so the study interleaves with other jobs and resumes after any kill.
# Breadth-first: round 1 of every selector, then round 2, then round 3 (greedy evaluation after
# each), then the majority@16 pass: round 3 of each selector again with majority@16 asked for
# there, which adds it to the finished row (the greedy rows of the evaluation are reused).
set -u
export OMP_WAIT_POLICY=PASSIVE
PIECE=${PIECE:-540}
OUT=${OUT:-runs/raft-study}
REASONER=${REASONER:-.venv/bin/reasoner}
LOCK=${LOCK:-/tmp/reasoner-heavy.lock}
ROUNDS=${ROUNDS:-1 2 3}
# the study's size (measured first: README.md, "Sizing"); majority@16 at rounds 0 and LAST only
COMMON=${COMMON:---prompts 64 --k 8 --set epochs=4}
LAST=${LAST:-3}
# name|flags (RaftConfig keys beyond reasoner/configs/raft.toml)
RUNS=(
  "prm|--selector prm --prm embedded"
  "majority|--selector majority"
  "random|--selector random"
  "oracle|--selector oracle"
  "orm|--selector orm --prm runs/raft-prms/evidence-orm/final"
  "prm-hard|--selector prm --prm runs/raft-prms/evidence-hard/final"
)

run_pending() {  # every unfinished (round, selector), in order; 0 when all are done, 3 when
  # some wait for their PRM (not trained yet) or for their previous round
  local waiting=0 round spec name majority metrics kind
  for kind in orm hard; do  # the study's own PRMs (README.md, "The PRMs"): ~1 min
    [ -f "runs/raft-prms/evidence-$kind/final/head.safetensors" ] && continue
    nice -n 10 "$REASONER" train-prm --config "benchmarks/results/raft/prm_$kind.toml" --quiet \
      || return $?
  done
  for round in $ROUNDS majority; do
    majority="[0]"
    if [ "$round" = majority ]; then
      round=$LAST
      majority="[0,$LAST]"
    fi
    for spec in "${RUNS[@]}"; do
      name=${spec%%|*}
      metrics="$OUT/$name/round-$round/metrics.json"
      if [ -f "$metrics" ]; then
        [ "$majority" = "[0]" ] && continue
        grep -q '"majority16_accuracy": null' "$metrics" || continue
      fi
      prm=$(echo "$spec" | sed -n 's/.*--prm \([^ ]*\).*/\1/p')
      if [ -n "$prm" ] && [ "$prm" != embedded ] && [ ! -d "$prm" ]; then
        echo "$(date -u +%T) $name round $round: waiting for its PRM $prm"
        waiting=3
        continue
      fi
      if [ "$round" -gt 1 ] && [ ! -f "$OUT/$name/round-$((round - 1))/metrics.json" ]; then
        waiting=3
        continue
      fi
      echo "$(date -u +%T) $name round $round ($(uptime | sed 's/.*load/load/'))"
      # shellcheck disable=SC2086
      nice -n 10 "$REASONER" raft --config reasoner/configs/raft.toml --name "$name" \
        ${spec#*|} $COMMON --set "eval_majority_rounds=$majority" --rounds "$round" \
        --out "$OUT/$name" --cache-dir "$OUT/cache" --quiet || return $?
    done
  done
  return $waiting
}

if [ "${1:-}" = "--pending" ]; then
  run_pending
  exit $?
fi
while true; do
  echo "$(date -u +%T) waiting for the lock ($(uptime | sed 's/.*load/load/'))"
  flock "$LOCK" timeout -s INT "$PIECE" "$0" --pending
  rc=$?
  echo "$(date -u +%T) piece exit $rc"
  [ $rc -eq 0 ] && break
  [ $rc -eq 3 ] && sleep 60 && continue
  [ $rc -eq 124 ] || [ $rc -eq 130 ] || exit $rc
done
echo "$(date -u +%T) study done"
