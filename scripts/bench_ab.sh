#!/usr/bin/env bash
# Interleaved A/B of two gconv binaries on lavapipe: the published report's suites (paper1
# baseline + E at 224² per layer, paper2 and the sweep at 64²), no tuning cache, N rounds,
# the order alternating between rounds. Files: OUT/<before|after>-<round>-<suite>.json;
# `python3 scripts/bench_ab.py OUT` prints the table (medians per row, after/before).
#
#   scripts/bench_ab.sh OLD_GCONV NEW_GCONV [ROUNDS] [OUT]
set -u
export GCONV_REQUIRE_GPU=1 XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg-$(id -u)}; mkdir -p -m 700 "$XDG_RUNTIME_DIR"
BEFORE=$1 AFTER=$2 N=${3:-2} OUT=${4:-/tmp/ab}
mkdir -p $OUT
for r in $(seq 1 $N); do
  order="before after"; [ $((r % 2)) = 0 ] && order="after before"
  for side in $order; do
    bin=$BEFORE; [ $side = after ] && bin=$AFTER
    for s in paper1 paper2 sweep; do
      extra=(); [ $s = paper1 ] && extra=(--schemes E --per-layer)
      GCONV_TUNE=off $bin bench --device gpu --suite $s --large-batch 0 --no-tune --json "${extra[@]}" \
        > $OUT/$side-$r-$s.json 2>$OUT/$side-$r-$s.err || echo "$side $r $s failed"
    done
  done
done
