#!/usr/bin/env bash
# Wang et al.'s claim put to a paired test on Fashion-MNIST: SGC vs FLGC at G = 4 and G = 8,
# three seeds each (same seed → same data order, augmentation and initialisation stream),
# >= 1,800 SGD steps per run, the full 10,000-image test set.
#
#   scripts/flgc_experiment.sh              # run (or resume) every arm, then summarise
#   scripts/flgc_experiment.sh summary      # only the summary of what has finished
#   DEVICE=gpu SEEDS="0" ARMS="sgc:8 flgc:8" scripts/flgc_experiment.sh   # a subset
#   MODEL=mobilenetv2 WIDTH=1 LAYERS= RUNS=flgc-mobilenetv2 scripts/flgc_experiment.sh
#   (RUNS: the folder of logs, checkpoints and exports; DATA: the Fashion-MNIST folder)
#
# Resumable: every run writes a checkpoint after each epoch and a JSON-lines log
# (`gconv train --log`); a run whose log holds its test result is skipped, an unfinished one
# resumes from its checkpoint (the cosine schedule is fixed by EPOCHS, so a resumed run is the
# run that was interrupted). Kill it any time; run it again to continue.
#
# Model: the README's ResNet-50-DSC, one block per stage, at width 0.5 — the narrowest grouped
# 1x1 conv then has 32 channels, 4 per group at G = 8 (width 1/8 leaves 1 per group).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/gconv}
RUNS=${RUNS:-flgc-experiment}  # logs, checkpoints, exports
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
DEVICE=${DEVICE:-auto}
MODEL=${MODEL:-resnet50-dsc}
WIDTH=${WIDTH:-0.5}
LAYERS=${LAYERS-1,1,1,1}  # ResNet blocks per stage; empty for other models
BATCH=${BATCH:-32}
LIMIT=${LIMIT:-10100}  # training images read (VAL of them held out): 9,600 train
VAL=${VAL:-500}
EPOCHS=${EPOCHS:-6}    # 6 x 9,600 / 32 = 1,800 steps
LR=${LR:-0.05}
FLGC_INIT=${FLGC_INIT:-balanced}
SEEDS=${SEEDS:-"0 1 2"}
ARMS=${ARMS:-"sgc:8 flgc:8 sgc:4 flgc:4"}

# The test accuracy a finished run's log recorded (empty while unfinished).
test_acc() {
  [ -f "$1" ] || return 0
  grep '"kind":"test"' "$1" | tail -1 | sed -n 's/.*"test_acc":\([0-9.eE+-]*\).*/\1/p'
}
# The median training images/s over a log's epochs.
images_per_s() {
  [ -f "$1" ] || return 0
  grep '"kind":"epoch"' "$1" | sed -n 's/.*"images_per_s":\([0-9.eE+-]*\).*/\1/p' |
    sort -g | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]}'
}
epochs_done() {
  [ -f "$1" ] || { echo 0; return; }
  grep -c '"kind":"epoch"' "$1" || true
}

run_all() {
  [ -x "$BIN" ] || cargo build --release
  mkdir -p "$RUNS"
  local total=0 k=0
  for _ in $SEEDS; do for _ in $ARMS; do total=$((total + 1)); done; done
  for seed in $SEEDS; do
    for arm in $ARMS; do
      k=$((k + 1))
      local conv=${arm%%:*} g=${arm##*:}
      local name="$conv-g$g-s$seed"
      local log="$RUNS/$name.jsonl" ck="$RUNS/$name.safetensors"
      if [ -n "$(test_acc "$log")" ]; then
        echo "[$k/$total] $name: done ($(test_acc "$log"))" >&2
        continue
      fi
      local resume=() layers=()
      if [ -n "$LAYERS" ]; then layers=(--layers "$LAYERS"); fi
      if [ -f "$ck" ]; then resume=(--resume "$ck"); fi
      echo "[$k/$total] $name: epoch $(epochs_done "$log")/$EPOCHS done, running on $DEVICE" >&2
      "$BIN" train --device "$DEVICE" --model "$MODEL" --width "$WIDTH" "${layers[@]}" \
        --conv "$conv" --groups "$g" --flgc-init "$FLGC_INIT" --epochs "$EPOCHS" \
        --batch "$BATCH" --lr "$LR" --seed "$seed" --limit "$LIMIT" --val "$VAL" \
        --data "$DATA" --checkpoint "$ck" "${resume[@]}" --log "$log"
      "$BIN" export --checkpoint "$ck" --out "$RUNS/$name.exported.safetensors" \
        >"$RUNS/$name.export.txt"
    done
  done
}

summary() {
  echo "# FLGC experiment: $MODEL width $WIDTH layers $LAYERS, batch $BATCH, $EPOCHS epochs"
  echo "| arm | seeds done | test acc (mean ± std) | per seed | train img/s (median) | exported MACs/image |"
  echo "|---|---|---|---|---|---|"
  for arm in $ARMS; do
    local conv=${arm%%:*} g=${arm##*:} accs="" ips="" macs=""
    for seed in $SEEDS; do
      local a
      a=$(test_acc "$RUNS/$conv-g$g-s$seed.jsonl")
      [ -n "$a" ] && accs="$accs $a"
      ips="$ips $(images_per_s "$RUNS/$conv-g$g-s$seed.jsonl")"
      [ -f "$RUNS/$conv-g$g-s$seed.export.txt" ] &&
        macs=$(sed -n 's/.*MACs\/image: \([0-9.]* M\) exported.*/\1/p' "$RUNS/$conv-g$g-s$seed.export.txt" | head -1)
    done
    echo "$accs" | awk -v arm="$conv G=$g" -v ips="$ips" -v macs="${macs:-?}" '{
      n = NF; s = 0; for (i = 1; i <= n; i++) s += $i; m = n ? s / n : 0
      v = 0; for (i = 1; i <= n; i++) v += ($i - m) ^ 2; sd = n > 1 ? sqrt(v / (n - 1)) : 0
      per = ""; for (i = 1; i <= n; i++) per = per sprintf("%s%.2f", i > 1 ? ", " : "", 100 * $i)
      split(ips, r, " "); q = ""; for (i in r) if (r[i] != "") q = r[i]
      printf "| %s | %d | %.2f ± %.2f %% | %s | %s | %s |\n", arm, n, 100 * m, 100 * sd, per, q, macs }'
  done
  echo
  echo "Paired FLGC − SGC (same seed), test accuracy points:"
  for g in 4 8; do
    local diffs=""
    for seed in $SEEDS; do
      local s f
      s=$(test_acc "$RUNS/sgc-g$g-s$seed.jsonl")
      f=$(test_acc "$RUNS/flgc-g$g-s$seed.jsonl")
      [ -n "$s" ] && [ -n "$f" ] && diffs="$diffs $(awk -v a="$f" -v b="$s" 'BEGIN{print 100 * (a - b)}')"
    done
    echo "$diffs" | awk -v g="$g" '{
      n = NF; s = 0; for (i = 1; i <= n; i++) s += $i; m = n ? s / n : 0
      v = 0; for (i = 1; i <= n; i++) v += ($i - m) ^ 2; sd = n > 1 ? sqrt(v / (n - 1)) : 0
      printf "  G=%s: %d pairs, mean %+.2f, std %.2f, per seed:%s\n", g, n, m, sd, $0 }'
  done
}

case "${1:-run}" in
  run) run_all; summary ;;
  summary) summary ;;
  *) echo "usage: $0 [run|summary]" >&2; exit 2 ;;
esac
