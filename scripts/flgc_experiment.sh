#!/usr/bin/env bash
# Wang et al.'s claim put to a paired test on Fashion-MNIST: SGC vs FLGC at G = 4 and G = 8,
# three seeds each (same seed → same data order, augmentation and initialisation stream),
# >= 1,800 SGD steps per run, the full 10,000-image test set.
#
#   scripts/flgc_experiment.sh              # run (or resume) every arm, then summarise
#   scripts/flgc_experiment.sh summary      # only the summary of what has finished
#   DEVICE=gpu SEEDS="0" ARMS="sgc:8 flgc:8" scripts/flgc_experiment.sh   # a subset
#   MODEL=mobilenetv2 WIDTH=1 LAYERS= RUNS=flgc-mobilenetv2 scripts/flgc_experiment.sh
#   FLGC_MARGIN=0.1 FLGC_SELECT_LR=0.5 RUNS=flgc-moving ARMS="flgc:4" scripts/flgc_experiment.sh
#   ARMS="sgc:2 flgc:3 sgc:4" PAIRS="flgc:3-sgc:2 flgc:3-sgc:4" ...   # any G: FLGC vs SGC on each side
#   LINES="flgc:3-sgc:2/sgc:4" ...   # any G: FLGC vs the SGC trade-off line at the same MACs
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
TEST_LIMIT=${TEST_LIMIT:-}  # test images (the full 10,000 when empty)
EPOCHS=${EPOCHS:-6}    # 6 x 9,600 / 32 = 1,800 steps
LR=${LR:-0.05}
FLGC_INIT=${FLGC_INIT:-balanced}
FLGC_MARGIN=${FLGC_MARGIN:-}        # balanced start's margin (gconv's default 1.0 when empty)
FLGC_SELECT_LR=${FLGC_SELECT_LR:-}  # S̄, T̄ learning rate (LR when empty)
SGC_RUNS=${SGC_RUNS:-$RUNS}         # where the SGC runs of PAIRS are (another experiment's)
# Any G: an FLGC arm against the SGC line between two dividing G, at the FLGC run's exported
# MACs (flgc:3-sgc:2/sgc:4: SGC G = 2 and 4 accuracy interpolated linearly in MACs).
LINES=${LINES-}
PAIRS=${PAIRS-"flgc:4-sgc:4 flgc:8-sgc:8"}  # paired differences (FLGC arm - SGC arm); PAIRS= for none
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
      local resume=() layers=() select=()
      if [ -n "$LAYERS" ]; then layers=(--layers "$LAYERS"); fi
      if [ -n "$FLGC_MARGIN" ]; then select+=(--flgc-margin "$FLGC_MARGIN"); fi
      if [ -n "$FLGC_SELECT_LR" ]; then select+=(--flgc-select-lr "$FLGC_SELECT_LR"); fi
      if [ -n "$TEST_LIMIT" ]; then select+=(--test-limit "$TEST_LIMIT"); fi
      if [ -f "$ck" ]; then resume=(--resume "$ck"); fi
      echo "[$k/$total] $name: epoch $(epochs_done "$log")/$EPOCHS done, running on $DEVICE" >&2
      "$BIN" train --device "$DEVICE" --model "$MODEL" --width "$WIDTH" "${layers[@]}" \
        --conv "$conv" --groups "$g" --flgc-init "$FLGC_INIT" "${select[@]}" --epochs "$EPOCHS" \
        --batch "$BATCH" --lr "$LR" --seed "$seed" --limit "$LIMIT" --val "$VAL" \
        --data "$DATA" --checkpoint "$ck" "${resume[@]}" --log "$log"
      "$BIN" export --checkpoint "$ck" --out "$RUNS/$name.exported.safetensors" \
        >"$RUNS/$name.export.txt"
    done
  done
}

# Exported MACs per image (M) of a run: its export report's own figure, or — for an SGC run
# exported before `gconv export` printed one for models without FLGC layers — the SGC figure
# its paired FLGC run's report gives.
exported_macs() {
  local f="$RUNS/$1.export.txt" m
  [ -f "$f" ] && m=$(sed -n 's/.*MACs\/image: \([0-9.]*\) M exported.*/\1/p' "$f" | head -1)
  if [ -z "${m:-}" ] && [ -f "$RUNS/flgc-${1#sgc-}.export.txt" ]; then
    m=$(sed -n 's/.* vs \([0-9.]*\) M for SGC.*/\1/p' "$RUNS/flgc-${1#sgc-}.export.txt" | head -1)
  fi
  echo "${m:-}"
}
# Selection changes over a run: input channels + filters that changed group, summed over
# epochs and FLGC layers.
selection_moves() {
  [ -f "$1" ] || return 0
  grep -o '"moved_\(in\|out\)":[0-9]*' "$1" | cut -d: -f2 | awk '{s += $1} END {print s + 0}'
}

summary() {
  echo "# FLGC experiment: $MODEL width $WIDTH layers ${LAYERS:-default}, batch $BATCH, $EPOCHS epochs"
  local dev
  dev=$(grep -h -o '"device":"[^"]*"' "$RUNS"/*.jsonl 2>/dev/null | sort -u | cut -d'"' -f4 | paste -sd';')
  echo "device: ${dev:-?}"
  echo
  echo "| arm | seeds done | test acc (mean ± std) | per seed | train img/s (median) | exported MACs/image | selection moves per run |"
  echo "|---|---|---|---|---|---|---|"
  for arm in $ARMS; do
    local conv=${arm%%:*} g=${arm##*:} accs="" ips="" macs="" moves=""
    for seed in $SEEDS; do
      local a name="$conv-g$g-s$seed"
      a=$(test_acc "$RUNS/$name.jsonl")
      [ -n "$a" ] || continue
      accs="$accs $a"
      ips="$ips $(images_per_s "$RUNS/$name.jsonl")"
      macs=$(exported_macs "$name")
      [ "$conv" = flgc ] && moves="$moves $(selection_moves "$RUNS/$name.jsonl")"
    done
    echo "$accs" | awk -v arm="$conv G=$g" -v ips="$ips" -v macs="${macs:-?}" -v moves="${moves:- –}" '{
      n = NF; s = 0; for (i = 1; i <= n; i++) s += $i; m = n ? s / n : 0
      v = 0; for (i = 1; i <= n; i++) v += ($i - m) ^ 2; sd = n > 1 ? sqrt(v / (n - 1)) : 0
      per = ""; for (i = 1; i <= n; i++) per = per sprintf("%s%.2f", i > 1 ? ", " : "", 100 * $i)
      k = split(ips, r, " "); q = 0; for (i = 1; i <= k; i++) q += r[i]; q = k ? q / k : 0
      gsub(/^ +/, "", moves); gsub(/ +/, ", ", moves)
      printf "| %s | %d | %.2f ± %.2f %% | %s | %.0f | %s M | %s |\n", arm, n, 100 * m, 100 * sd, per, q, macs, moves }'
  done
  echo
  echo "Paired FLGC − SGC (same seed), test accuracy points, with the 95 % interval of the mean"
  echo "(Student t, n − 1 degrees of freedom):"
  for pair in $PAIRS; do
    local fa=${pair%%-*} sa=${pair##*-} diffs=""
    for seed in $SEEDS; do
      local s f
      s=$(test_acc "$SGC_RUNS/${sa%%:*}-g${sa##*:}-s$seed.jsonl")
      f=$(test_acc "$RUNS/${fa%%:*}-g${fa##*:}-s$seed.jsonl")
      [ -n "$s" ] && [ -n "$f" ] && diffs="$diffs $(awk -v a="$f" -v b="$s" 'BEGIN{print 100 * (a - b)}')"
    done
    echo "$diffs" | awk -v p="$fa − $sa" '{
      split("12.71 4.30 3.18 2.78 2.57 2.45 2.36 2.31 2.26", t, " ")
      n = NF; s = 0; for (i = 1; i <= n; i++) s += $i; m = n ? s / n : 0
      v = 0; for (i = 1; i <= n; i++) v += ($i - m) ^ 2; sd = n > 1 ? sqrt(v / (n - 1)) : 0
      per = ""; for (i = 1; i <= n; i++) per = per sprintf(" %+.2f", $i)
      if (n > 1 && n <= 10) {
        h = t[n - 1] * sd / sqrt(n)
        printf "  %s: %d pairs, mean %+.2f, std %.2f, 95 %% interval [%+.2f, %+.2f], per seed:%s\n", p, n, m, sd, m - h, m + h, per
      } else
        printf "  %s: %d pairs, mean %+.2f, std %.2f, per seed:%s\n", p, n, m, sd, per }'
  done
  [ -n "$LINES" ] || return 0
  echo
  echo "FLGC − the SGC line at the FLGC run's exported MACs (same seed), test accuracy points:"
  for line in $LINES; do
    local fa=${line%%-*} lo=${line#*-} hi diffs=""
    hi=${lo##*/} lo=${lo%%/*}
    for seed in $SEEDS; do
      local f a b mf ma mb
      f=$(test_acc "$RUNS/${fa%%:*}-g${fa##*:}-s$seed.jsonl")
      a=$(test_acc "$SGC_RUNS/${lo%%:*}-g${lo##*:}-s$seed.jsonl")
      b=$(test_acc "$SGC_RUNS/${hi%%:*}-g${hi##*:}-s$seed.jsonl")
      mf=$(exported_macs "${fa%%:*}-g${fa##*:}-s$seed")
      ma=$(RUNS=$SGC_RUNS exported_macs "${lo%%:*}-g${lo##*:}-s$seed")
      mb=$(RUNS=$SGC_RUNS exported_macs "${hi%%:*}-g${hi##*:}-s$seed")
      [ -n "$f" ] && [ -n "$a" ] && [ -n "$b" ] && [ -n "$mf" ] && [ -n "$ma" ] && [ -n "$mb" ] &&
        diffs="$diffs $(awk -v f="$f" -v a="$a" -v b="$b" -v mf="$mf" -v ma="$ma" -v mb="$mb" \
          'BEGIN{print 100 * (f - (a + (mf - ma) / (mb - ma) * (b - a)))}')"
    done
    echo "$diffs" | awk -v p="$fa − line($lo, $hi)" '{
      split("12.71 4.30 3.18 2.78 2.57 2.45 2.36 2.31 2.26", t, " ")
      n = NF; s = 0; for (i = 1; i <= n; i++) s += $i; m = n ? s / n : 0
      v = 0; for (i = 1; i <= n; i++) v += ($i - m) ^ 2; sd = n > 1 ? sqrt(v / (n - 1)) : 0
      per = ""; for (i = 1; i <= n; i++) per = per sprintf(" %+.2f", $i)
      if (n > 1 && n <= 10) {
        h = t[n - 1] * sd / sqrt(n)
        printf "  %s: %d seeds, mean %+.2f, std %.2f, 95 %% interval [%+.2f, %+.2f], per seed:%s\n", p, n, m, sd, m - h, m + h, per
      } else
        printf "  %s: %d seeds, mean %+.2f, per seed:%s\n", p, n, m, per }'
  done
}

# Each arm exits, so that bash never reads past this point: the script may be edited (or
# updated by git) while a long run is going.
case "${1:-run}" in
  run) run_all; summary; exit ;;
  summary) summary; exit ;;
  *) echo "usage: $0 [run|summary]" >&2; exit 2 ;;
esac
