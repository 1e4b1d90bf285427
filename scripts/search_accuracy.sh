#!/usr/bin/env bash
# Does the scheme `gconv search` finds cost accuracy against the Gong et al. scheme it is as
# fast as? Both trained on Fashion-MNIST (zero-padded to 32x32: VGG's five pools), same
# schedule, paired seeds (same seed → same data order, augmentation and initialisation
# stream), the full 10,000-image test set; the paired differences with a 95 % interval.
#
#   FOUND=1,1,4,8,8 GONG=1,4,4,4,4 scripts/search_accuracy.sh          # run (or resume), summarise
#   FOUND=... GONG=... scripts/search_accuracy.sh summary               # only the summary
#
# The schemes are stage groups of the narrowed model: VGG13-BN at width WIDTH keeps a group's
# channel count when G is scaled by the same factor (G=64 on conv-2's 128 channels is 2 per
# group; at width 1/8, 16 channels, that is G=8), and SGC needs G to divide the channels, so
# the full-width schemes are given here with every G multiplied by WIDTH (at least 1).
#
# Resumable like scripts/flgc_experiment.sh: a run whose log holds its test result is skipped,
# an unfinished one resumes from its checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/gconv}
RUNS=${RUNS:-search-accuracy}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
DEVICE=${DEVICE:-cpu}
MODEL=${MODEL:-vgg13bn}
WIDTH=${WIDTH:-0.125}
BATCH=${BATCH:-32}
LIMIT=${LIMIT:-5100}   # training images read (VAL of them held out)
VAL=${VAL:-300}
EPOCHS=${EPOCHS:-3}
LR=${LR:-0.05}
SEEDS=${SEEDS:-"0 1 2"}
FOUND=${FOUND:?FOUND=stage groups of the found scheme, e.g. 1,1,4,8,8}
GONG=${GONG:?GONG=stage groups of the Gong scheme, e.g. 1,4,4,4,4}

test_acc() {
  [ -f "$1" ] || return 0
  grep '"kind":"test"' "$1" | tail -1 | sed -n 's/.*"test_acc":\([0-9.eE+-]*\).*/\1/p' || true
}
macs() {
  [ -f "$1" ] || return 0
  grep '"kind":"run"' "$1" | head -1 | sed -n 's/.*"macs":\([0-9]*\).*/\1/p' || true
}

run_all() {
  [ -x "$BIN" ] || cargo build --release
  mkdir -p "$RUNS"
  for seed in $SEEDS; do
    for arm in found gong; do
      local scheme=$FOUND
      [ "$arm" = gong ] && scheme=$GONG
      local name="$arm-s$seed" log="$RUNS/$arm-s$seed.jsonl" ck="$RUNS/$arm-s$seed.safetensors"
      if [ -n "$(test_acc "$log")" ]; then
        echo "$name: done ($(test_acc "$log"))" >&2
        continue
      fi
      local resume=()
      [ -f "$ck" ] && resume=(--resume "$ck")
      echo "$name: scheme $scheme on $DEVICE" >&2
      "$BIN" train --device "$DEVICE" --model "$MODEL" --width "$WIDTH" --scheme "$scheme" \
        --input 1x32x32 --epochs "$EPOCHS" --batch "$BATCH" --lr "$LR" --seed "$seed" \
        --limit "$LIMIT" --val "$VAL" --data "$DATA" --checkpoint "$ck" "${resume[@]}" \
        --log "$log" --json >/dev/null
    done
  done
}

summary() {
  echo "# found ($FOUND) vs Gong ($GONG): $MODEL width $WIDTH, 32x32 Fashion-MNIST, batch $BATCH, $EPOCHS epochs, $((LIMIT - VAL)) training images"
  local mf mg
  mf=$(macs "$RUNS/found-s$(echo $SEEDS | cut -d' ' -f1).jsonl")
  mg=$(macs "$RUNS/gong-s$(echo $SEEDS | cut -d' ' -f1).jsonl")
  echo "MACs/image: found ${mf:-?}, Gong ${mg:-?}"
  local diffs="" accs_f="" accs_g=""
  for seed in $SEEDS; do
    local f g
    f=$(test_acc "$RUNS/found-s$seed.jsonl")
    g=$(test_acc "$RUNS/gong-s$seed.jsonl")
    [ -n "$f" ] && [ -n "$g" ] || continue
    accs_f="$accs_f $f"
    accs_g="$accs_g $g"
    diffs="$diffs $(awk -v a="$f" -v b="$g" 'BEGIN{print 100 * (a - b)}')"
  done
  echo "test accuracy, found:$accs_f; Gong:$accs_g"
  echo "$diffs" | awk '{
    split("12.71 4.30 3.18 2.78 2.57 2.45 2.36 2.31 2.26", t, " ")
    n = NF; s = 0; for (i = 1; i <= n; i++) s += $i; m = n ? s / n : 0
    v = 0; for (i = 1; i <= n; i++) v += ($i - m) ^ 2; sd = n > 1 ? sqrt(v / (n - 1)) : 0
    per = ""; for (i = 1; i <= n; i++) per = per sprintf(" %+.2f", $i)
    if (n > 1 && n <= 10) {
      h = t[n - 1] * sd / sqrt(n)
      printf "found - Gong (points): %d pairs, mean %+.2f, std %.2f, 95 %% interval [%+.2f, %+.2f], per seed:%s\n", n, m, sd, m - h, m + h, per
    } else
      printf "found - Gong (points): %d pairs, mean %+.2f, per seed:%s\n", n, m, per }'
}

case "${1:-run}" in
  run) run_all; summary; exit ;;
  summary) summary; exit ;;
  *) echo "usage: $0 [run|summary]" >&2; exit 2 ;;
esac
