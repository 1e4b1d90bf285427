#!/usr/bin/env bash
# gconv on a real GPU: a lent NVIDIA machine that has PyTorch but no Rust.
#
#   scripts/device_check.sh pack   # here: release gconv + GPU test binaries (stripped, xz),
#                                  # the Fashion-MNIST files the FLGC experiment reads, and
#                                  # the Vulkan loader's .debs  →  .dev/, .gl/ (git-ignored)
#   scripts/device_check.sh run    # there, in the repository root, carrying
#                                  # .gl .dev/bins.tar.xz .dev/fmnist
#
# `run` writes into $OUT (or ./device-out), in docs/bench/<device>/'s layout: log.txt
# (everything), bench/<suite>/ (`gconv bench --out`: report.json, summary.md, charts; paper1,
# sweep at batch 1 and 32, zoo models, paper2, mobilenet, and -f16 twins when gconv has
# --precision, sweep32-f16w: f16 weights, f32 activations, sweep32-f16nc: f16 without
# cooperative matrices), tune-cache/ (what `gconv tune` stored for the benchmarked models,
# f32 and f16), torch.json
# (scripts/torch_bench.py: the same models in PyTorch/cuDNN fp32 TF32 off, with the chip's roof:
# copy bandwidth and matmul), torch_tf32.json and torch_amp.json (labelled), side_by_side.md
# (scripts/side_by_side.py), tests.tar.gz (each GPU test suite's output, gpu_faults' safe cases
# included), search/ (gconv search, when built in), flgc.tar.gz (the FLGC experiment's logs,
# exports and the checkpoints of unfinished runs, so that a later machine resumes them).
# Phases run in order with a time cap each and stop at DEADLINE seconds after the start
# (default 470, so one call fits 8 minutes with setup): probe, GPU tests, tune, bench, torch,
# side by side, soak and property run, search, then the FLGC experiment in whatever is left.
# PHASES picks the phases after the probe (default "tests tune bench torch reliability search
# flgc mobilenetv2"; also "gaussian": the paper's N(0, 1) selection start, FLGC G = 8, seeds
# 0 1 2, paired against the committed H200 SGC runs, in $RUNS-gaussian). Issue 21's call:
#   PHASES="gaussian mobilenetv2" scripts/device_check.sh run
#
#   DRY=1 scripts/device_check.sh run    # here, on lavapipe: every phase at a token size
set -uo pipefail
cd "$(dirname "$0")/.."

pack() {
  set -e
  cargo build --release --bin gconv --example soak --example gpu_cpu_property
  mkdir -p .dev/tests .gl
  strip -o .dev/gconv-bin target/release/gconv
  strip -o .dev/soak target/release/examples/soak
  strip -o .dev/prop target/release/examples/gpu_cpu_property
  # The GPU test suites (the library's unit tests included), debug profile as CI runs them.
  cargo test --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] != ["bin"]:
        n = m["target"]["name"]
        if n.startswith("gpu_") and n != "gpu_fast_errors" or n == "gconv":
            print(n, m["executable"])' | while read -r n exe; do strip -o ".dev/tests/$n" "$exe"; done
  # Tests find their fixtures under the manifest folder compiled into them.
  pwd >.dev/manifest_dir
  tar cf - -C .dev tests gconv-bin soak prop manifest_dir | xz -T2 -9 >.dev/bins.tar.xz
  # The experiment reads the first 10,100 training images: ship those and the test set.
  # A fresh folder (never a link: writing through one once truncated the system's copy).
  rm -rf .dev/fmnist && mkdir .dev/fmnist
  python3 - <<'EOF'
import gzip, shutil, struct
src, n = "/usr/share/datasets/fashion-mnist/", 10100
d = gzip.open(src + "train-images-idx3-ubyte.gz").read()
magic, _, r, c = struct.unpack(">IIII", d[:16])
gzip.open(".dev/fmnist/train-images-idx3-ubyte.gz", "wb").write(
    struct.pack(">IIII", magic, n, r, c) + d[16:16 + n * r * c])
d = gzip.open(src + "train-labels-idx1-ubyte.gz").read()
gzip.open(".dev/fmnist/train-labels-idx1-ubyte.gz", "wb").write(
    struct.pack(">II", struct.unpack(">I", d[:4])[0], n) + d[8:8 + n])
for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
    shutil.copy(src + f, ".dev/fmnist/" + f)
EOF
  mkdir -p /tmp/amd64/partial
  local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${o[@]}" update -q >/dev/null
  (cd .gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  du -sh .dev/bins.tar.xz .dev/fmnist .gl
}

T0=$(date +%s)
DEADLINE=${DEADLINE:-470}
now() { echo $(($(date +%s) - T0)); }
left() { echo $((DEADLINE - $(now))); }
cap() {
  local l c=$1
  l=$(left)
  # A dry run (DRY=1, here on lavapipe) gives every phase a token time: it checks that each
  # command starts and takes its arguments, not what it measures.
  [ -n "${DRY:-}" ] && [ "$c" -gt "${DRY_CAP:-12}" ] && c=${DRY_CAP:-12}
  [ "$c" -lt "$l" ] && echo "$c" || echo $((l > 1 ? l : 1))
}
say() { echo "[$(now) s] $*"; }

# The adapter and its roof as JSON: no charts, so that only a missing adapter fails it.
probe() {
  timeout 60 "$BIN" bench --device gpu --suite roofline --json >"$W/bench/roofline.json" &&
    grep -o '"adapter": *"[^"]*"' "$W/bench/roofline.json" | head -1
}

# A phase: `phase NAME CAP_S CMD...` runs CMD with at most CAP_S seconds (less if the deadline
# is nearer), logs its exit status, and never stops the run.
phase() {
  local name=$1 t
  t=$(cap "$2")
  shift 2
  if [ "$(left)" -le 5 ]; then say "$name: skipped (deadline)"; return 0; fi
  say "$name (cap ${t} s)"
  timeout "$t" "$@" || say "$name: exit $?"
}

has_flag() { "$BIN" "$1" --help 2>/dev/null | grep -q -- "$2"; }

run() {
  O=${OUT:-device-out}
  W=/tmp/gconv-device
  mkdir -p "$O" "$W/bench" "$W/tests"
  exec > >(tee -a "$O/log.txt") 2>&1
  say "setup${DRY:+ (dry run: the local Vulkan, nothing installed)}"
  if [ -z "${DRY:-}" ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  tar xJf .dev/bins.tar.xz -C .dev
  local md
  md=$(cat .dev/manifest_dir)
  if [ ! -e "$md" ]; then mkdir -p "$(dirname "$md")" && ln -s "$PWD" "$md"; fi
  export XDG_RUNTIME_DIR=/tmp/xdg-gconv GCONV_REQUIRE_GPU=1 GCONV_CACHE_DIR=$W/cache
  mkdir -p -m 700 "$XDG_RUNTIME_DIR"
  export BIN=$PWD/.dev/gconv-bin GCONV_FONT=$PWD/.dev/font.ttf
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  say "probe: the adapter and its roof"
  if ! probe; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    say "no adapter: retrying with VK_DRIVER_FILES=$VK_DRIVER_FILES"
    probe || { say "no Vulkan adapter; stopping"; return 1; }
  fi

  local t phases=" ${PHASES:-tests tune bench torch reliability search flgc mobilenetv2} "
  has() { [[ $phases == *" $1 "* ]]; }

  # GPU tests; gpu_faults without the cases that exhaust memory or kill the device mid-run
  # (a shared lent machine), after the others.
  if has tests; then
    t=$(cap "${TESTS_S:-70}")
    say "GPU test suites (GCONV_REQUIRE_GPU=1, cap ${t} s)"
    ls .dev/tests | grep -v '^gpu_faults$' | timeout "$t" xargs -P 4 -I{} sh -c \
      '.dev/tests/{} --test-threads=4 >'"$W"'/tests/{}.txt 2>&1; echo "{}: exit $?"' || true
    if [ -x .dev/tests/gpu_faults ]; then
      phase "gpu_faults (safe cases)" 30 sh -c ".dev/tests/gpu_faults --test-threads=1 \
        --skip running_out_of_memory --skip training_goes_on >$W/tests/gpu_faults.txt 2>&1"
    fi
    grep -h "^test result" "$W"/tests/*.txt | sort | uniq -c
    grep -h "^test .* FAILED\|panicked" "$W"/tests/*.txt | head -40
    tar czf "$O/tests.tar.gz" -C "$W" tests
  fi

  # Kernel tuning for the benchmarked models (the cache in $GCONV_CACHE_DIR, kept in $O; saved
  # after every layer, so a phase cut by its cap keeps the layers it timed).
  if has tune; then
    phase "tune vgg13bn b32" "${TUNE_S:-25}" "$BIN" tune vgg13bn --batch 32
    phase "tune vgg13bn scheme E b32" 15 "$BIN" tune vgg13bn --scheme E --batch 32
    phase "tune resnet50 b32" 15 "$BIN" tune resnet50 --batch 32
    # Timed as the f16 benches run it (the cooperative-matrix tier's tiles, halved bytes),
    # cached apart from the f32 choices.
    if has_flag tune --precision; then
      phase "tune vgg13bn b32 f16" 15 "$BIN" tune vgg13bn --batch 32 --precision f16
    fi
    cp -r "$W/cache" "$O/tune-cache" 2>/dev/null || true
  fi

  # gconv benches: each suite into $O/bench/<name>/ (report.json, summary.md, charts).
  local b=$O/bench
  if has bench; then
    phase "bench paper1" "${BENCH_S:-45}" "$BIN" bench --device gpu --suite paper1 --per-layer --out "$b/paper1"
    phase "bench sweep b1" 25 "$BIN" bench --device gpu --suite sweep --out "$b/sweep"
    phase "bench sweep b32" 25 "$BIN" bench --device gpu --suite sweep --batch 32 --out "$b/sweep32"
    phase "bench models" 30 "$BIN" bench --device gpu --model resnet50 --model mobilenetv2 \
      --model resnet50-dsc --out "$b/models"
    phase "bench paper2" 25 "$BIN" bench --device gpu --suite paper2 --per-layer --out "$b/paper2"
    phase "bench mobilenet" 20 "$BIN" bench --device gpu --suite mobilenet --per-layer --out "$b/mobilenet"
    if has_flag bench --precision; then
      phase "bench paper1 f16" 45 "$BIN" bench --device gpu --suite paper1 --precision f16 --out "$b/paper1-f16"
      phase "bench sweep b32 f16" 20 "$BIN" bench --device gpu --suite sweep --batch 32 --precision f16 \
        --out "$b/sweep32-f16"
      # The same with f16 weights but f32 activations: what halving the activations gives.
      phase "bench sweep b32 f16 weights only" 20 env GCONV_F16_ACTIVATIONS=off "$BIN" bench \
        --device gpu --suite sweep --batch 32 --precision f16 --out "$b/sweep32-f16w"
      # The same on f16 without cooperative matrices (conv_igemm's f32 multiply-adds on
      # halves): what the tensor-core tier gives, where the GPU has it.
      phase "bench sweep b32 f16 no coop" 20 env GCONV_COOPERATIVE_MATRIX=off "$BIN" bench \
        --device gpu --suite sweep --batch 32 --precision f16 --out "$b/sweep32-f16nc"
      # f16 checked against the CPU reference on this GPU, and its one precision line
      # (weights and activations, or why activations stay f32) in the log.
      ${PYTHON:-python3} -c "import numpy as np; np.random.seed(0); \
np.save('$W/x64.npy', np.random.rand(1, 3, 64, 64).astype(np.float32))" || true
      for m in vgg13bn resnet50 mobilenetv2; do
        phase "infer $m 64² f16 --compare" 15 "$BIN" infer --model "$m" --input "$W/x64.npy" \
          --precision f16 --compare
      done
    else
      say "this gconv has no --precision: f16 not benchmarked"
    fi
  fi

  # PyTorch on the same models: fp32 TF32 off (all, and the chip's roof), TF32 and AMP labelled.
  export PYTHONUNBUFFERED=1
  PY=${PYTHON:-python3}
  if has torch; then
    phase "PyTorch fp32 (TF32 off) + roof" "${TORCH_S:-75}" "$PY" scripts/torch_bench.py --roof --out "$O/torch.json"
    phase "PyTorch TF32" 20 "$PY" scripts/torch_bench.py --precision tf32 --batches 32 \
      --only '^(vgg13bn|resnet50)' --out "$O/torch_tf32.json"
    phase "PyTorch AMP" 20 "$PY" scripts/torch_bench.py --precision amp --batches 32 \
      --only '^(vgg13bn|resnet50)' --out "$O/torch_amp.json"
    python3 scripts/side_by_side.py "$b" "$O/torch.json" "$O/torch_tf32.json" "$O/torch_amp.json" \
      >"$O/side_by_side.md" && cat "$O/side_by_side.md"
  fi

  # Reliability on a real GPU: the soak and the property run (GPU = CPU), short.
  if has reliability; then
    [ -x .dev/soak ] && phase "soak" 25 .dev/soak 2000 200 4 1
    [ -x .dev/prop ] && phase "GPU = CPU property run" 25 .dev/prop 2000 1
  fi

  if has search && "$BIN" search --help >/dev/null 2>&1; then
    phase "search vgg13bn as fast as E" 40 "$BIN" search --model vgg13bn --as-fast-as E \
      --out "$O/search"
  fi

  export RUNS=${RUNS:-flgc-experiment} DEVICE=gpu DATA=.dev/fmnist
  if has flgc; then
    t=$(cap 100000)
    say "FLGC experiment on the GPU (cap ${t} s; resumable)"
    timeout "$t" scripts/flgc_experiment.sh run || say "flgc: exit $?"
    scripts/flgc_experiment.sh summary
  fi
  local ga=$RUNS-gaussian mb=$RUNS-mobilenetv2
  t=$(cap 100000)
  if has gaussian && [ "$t" -gt 60 ]; then
    say "FLGC experiment, the Gaussian start, 3 seeds (cap ${t} s)"
    # Paired against the committed H200 SGC G = 8 runs (same protocol and seeds).
    RUNS=$ga FLGC_INIT=gaussian SEEDS="0 1 2" ARMS=flgc:8 PAIRS=flgc:8-sgc:8 \
      SGC_RUNS=docs/flgc/runs timeout "$t" scripts/flgc_experiment.sh run || say "flgc gaussian: exit $?"
  fi
  t=$(cap 100000)
  if has mobilenetv2 && [ "$t" -gt 60 ]; then
    say "FLGC experiment, MobileNetV2 arm (cap ${t} s)"
    RUNS=$mb MODEL=mobilenetv2 WIDTH=1 LAYERS= timeout "$t" scripts/flgc_experiment.sh run ||
      say "flgc mobilenetv2: exit $?"
  fi
  # Logs and exports' reports, and the checkpoints of unfinished runs (to resume elsewhere).
  : >"$W/flgc-files"
  for d in "$RUNS" "$ga" "$mb"; do
    [ -d "$d" ] || continue
    find "$d" -type f ! -name '*.safetensors' >>"$W/flgc-files"
    for ck in "$d"/*.safetensors; do
      [ -f "$ck" ] || continue
      case "$ck" in *.exported.safetensors) continue ;; esac
      grep -q '"kind":"test"' "${ck%.safetensors}.jsonl" 2>/dev/null || echo "$ck" >>"$W/flgc-files"
    done
  done
  tar czf "$O/flgc.tar.gz" -T "$W/flgc-files"
  say "done"
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: $0 pack|run" >&2; exit 2 ;;
esac
