#!/usr/bin/env bash
# Paper 2's claim on Fashion-MNIST: dense vs SGC vs FLGC at G = 4 and G = 8, same model, seed,
# data and epochs. One JSON-lines file per configuration in $OUT (header, one line per epoch,
# test result). Sizes are set for a 2-core machine; raise LIMIT/EPOCHS/WIDTH on a real GPU.
#
#   scripts/fmnist_experiment.sh            # defaults below
#   DEVICE=gpu EPOCHS=10 LIMIT=60000 WIDTH=0.25 scripts/fmnist_experiment.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/gconv}
OUT=${OUT:-fmnist-out}
DEVICE=${DEVICE:-cpu}
MODEL=${MODEL:-resnet50-dsc}
WIDTH=${WIDTH:-0.125}
LAYERS=${LAYERS:-1,1,1,1}
EPOCHS=${EPOCHS:-2}
LIMIT=${LIMIT:-3500}
VAL=${VAL:-500}
TEST_LIMIT=${TEST_LIMIT:-2000}
BATCH=${BATCH:-32}
LR=${LR:-0.05}
SEED=${SEED:-0}
CONFIGS=${CONFIGS:-"dense:1 sgc:4 flgc:4 sgc:8 flgc:8"}
[ -x "$BIN" ] || cargo build --release
mkdir -p "$OUT"
for cfg in $CONFIGS; do
  conv=${cfg%%:*}; g=${cfg##*:}
  echo "== $conv G=$g ($DEVICE)" >&2
  "$BIN" train --device "$DEVICE" --model "$MODEL" --width "$WIDTH" --layers "$LAYERS" \
    --conv "$conv" --groups "$g" --epochs "$EPOCHS" --batch "$BATCH" --lr "$LR" --seed "$SEED" \
    --limit "$LIMIT" --val "$VAL" --test-limit "$TEST_LIMIT" \
    --checkpoint "$OUT/$conv-g$g.safetensors" --json | tee "$OUT/$conv-g$g.jsonl"
done
