#!/usr/bin/env bash
# gconv on a real GPU: a lent NVIDIA machine that has PyTorch but no Rust.
#
#   scripts/device_check.sh pack   # here: release gconv + GPU test binaries (stripped, xz),
#                                  # the Fashion-MNIST files the FLGC experiment reads, and
#                                  # the Vulkan loader's .debs  →  .dev/, .gl/ (git-ignored)
#   scripts/device_check.sh run    # there, in the repository root, carrying
#                                  # .gl .dev/bins.tar.xz .dev/fmnist
#
# `run` writes into $OUT (or ./device-out): log.txt (everything), bench.tar.gz (`gconv bench`
# per suite: report.json, summary.md, charts), torch.json (scripts/torch_bench.py: the same
# models in PyTorch/cuDNN), tests.tar.gz (each GPU test suite's output), flgc.tar.gz (the FLGC
# experiment's logs, exports and the checkpoints of unfinished runs, so that a later machine
# resumes them). Phases run in order with a time cap each and stop at DEADLINE seconds after
# the start (default 560): probe, GPU tests, bench, torch, then the FLGC experiment in
# whatever time is left. PHASES picks the phases after the probe (default "tests bench torch
# flgc mobilenetv2"); issue 21's call, the paired runs being done:
#   PHASES="gaussian mobilenetv2" scripts/device_check.sh run
# (gaussian: the paper's N(0, 1) selection start, FLGC G = 8, seeds 0 1 2, in $RUNS-gaussian;
# mobilenetv2: the paired arms on MobileNetV2 width 1, in $RUNS-mobilenetv2).
set -uo pipefail
cd "$(dirname "$0")/.."

pack() {
  set -e
  cargo build --release
  mkdir -p .dev/tests .gl
  strip -o .dev/gconv-bin target/release/gconv
  # The GPU test suites (the library's unit tests included), debug profile as CI runs them.
  cargo test --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] != ["bin"]:
        n = m["target"]["name"]
        if n.startswith("gpu_") and n not in ("gpu_faults", "gpu_fast_errors") or n == "gconv":
            print(n, m["executable"])' | while read -r n exe; do strip -o ".dev/tests/$n" "$exe"; done
  # Tests find their fixtures under the manifest folder compiled into them.
  pwd >.dev/manifest_dir
  tar cf - -C .dev tests gconv-bin manifest_dir | xz -T2 -9 >.dev/bins.tar.xz
  # The experiment reads the first 10,100 training images: ship those and the test set.
  mkdir -p .dev/fmnist
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
DEADLINE=${DEADLINE:-560}
now() { echo $(($(date +%s) - T0)); }
left() { echo $((DEADLINE - $(now))); }
cap() { local l; l=$(left); [ "$1" -lt "$l" ] && echo "$1" || echo $((l > 1 ? l : 1)); }
say() { echo "[$(now) s] $*"; }

# The adapter and its roof as JSON: no charts, so that only a missing adapter fails it.
probe() {
  timeout 60 "$BIN" bench --device gpu --suite roofline --json >"$W/bench/roofline.json" &&
    grep -o '"adapter": *"[^"]*"' "$W/bench/roofline.json" | head -1
}

run() {
  O=${OUT:-device-out}
  W=/tmp/gconv-device
  mkdir -p "$O" "$W/bench" "$W/tests"
  exec > >(tee -a "$O/log.txt") 2>&1
  say "setup"
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  tar xJf .dev/bins.tar.xz -C .dev
  local md
  md=$(cat .dev/manifest_dir)
  if [ ! -e "$md" ]; then mkdir -p "$(dirname "$md")" && ln -s "$PWD" "$md"; fi
  export XDG_RUNTIME_DIR=/tmp/xdg-gconv GCONV_REQUIRE_GPU=1
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

  local t phases=" ${PHASES:-tests bench torch flgc mobilenetv2} "
  has() { [[ $phases == *" $1 "* ]]; }
  if has tests; then
  say "GPU test suites (GCONV_REQUIRE_GPU=1)"
  t=$(cap "${TESTS_S:-90}")
  ls .dev/tests | timeout "$t" xargs -P 4 -I{} sh -c \
    '.dev/tests/{} --test-threads=4 >'"$W"'/tests/{}.txt 2>&1; echo "{}: exit $?"' || true
  grep -h "^test result" "$W"/tests/*.txt | sort | uniq -c
  grep -h "^test .* FAILED\|panicked" "$W"/tests/*.txt | head -40
  tar czf "$O/tests.tar.gz" -C "$W" tests
  fi

  if has bench; then
  for s in sweep paper1 paper2 mobilenet; do
    t=$(cap "${BENCH_S:-40}")
    say "gconv bench --suite $s (cap ${t} s)"
    timeout "$t" "$BIN" bench --device gpu --suite "$s" --per-layer --out "$W/bench/$s" ||
      say "bench $s: exit $?"
  done
  tar czf "$O/bench.tar.gz" -C "$W" bench
  fi

  if has torch; then
  t=$(cap "${TORCH_S:-60}")
  say "PyTorch (cuDNN) on the same models (cap ${t} s)"
  PYTHONUNBUFFERED=1 timeout "$t" python3 scripts/torch_bench.py --out "$O/torch.json" ||
    say "torch: exit $?"
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
