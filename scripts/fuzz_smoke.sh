#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a few seconds each (a CI smoke test), one after
# the other, each in one process (the machine may have 2 cores).
#
#   scripts/fuzz_smoke.sh [SECONDS] [TARGET...]     (default: 10 s, every target)
#   FUZZ_RUNS=1000000 scripts/fuzz_smoke.sh 1800 npy   (a long run: 1 M runs or 30 min)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Each target's working
# corpus, fuzz/corpus/<target>/ (not committed), is seeded from the committed seeds
# fuzz/seeds/<target>/ and the real fixtures (tests/fixtures, models/); fuzz/dicts/<target>.dict,
# where there is one, is passed as a libFuzzer dictionary. Limits: 2 GB of RSS,
# 10 s per input, 64 KB inputs for onnx. Logs go to fuzz/logs/<target>.log; a crash leaves
# its input in fuzz/artifacts/<target>/ (turn it into a case of tests/fuzz_regressions.rs).
# The script exits non-zero if any target failed, after running all of them.
set -uo pipefail
cd "$(dirname "$0")/.."

secs=${1:-10}
shift || true
runs=${FUZZ_RUNS:--1}
fuzz=(cargo +nightly fuzz)
# -a: debug assertions (integer overflow checks) on; -s none: no sanitizer (safe Rust).
flags=(-a -s none)

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("${fuzz[@]}" list)
fi

# Fixtures each target starts from, besides fuzz/seeds/<target>/.
fixtures() {
    local io=tests/fixtures/io
    case "$1" in
        npy) ls $io/*.npy ;;
        safetensors) ls $io/*.safetensors fuzz/seeds/exported/* ;;
        exported) ls $io/tiny_f32.safetensors ;;
        idx) ls $io/*idx* $io/fashion-mini/* ;;
        image) ls $io/*.png ;;
        model_toml) ls models/*.toml ;;
        scheme_toml) ls models/schemes/*.toml ;;
        onnx) ls tests/fixtures/onnx/*.onnx ;;
        onnx_export) ls tests/fixtures/onnx/*.onnx fuzz/seeds/onnx/* ;;
    esac
}

# Longest input libFuzzer may generate. The ONNX fixtures are real networks (up to 780 KB,
# mostly weights): mutating them is slow, so onnx mutants stay at 64 KB (the committed seeds
# are ≤ 20 KB; longer fixtures are cut there when loaded, which exercises truncated protobufs).
max_len() {
    case "$1" in
        onnx | onnx_export) echo -max_len=65536 ;;
    esac
}

"${fuzz[@]}" build "${flags[@]}" || exit 1
mkdir -p fuzz/logs
failed=()
for t in "${targets[@]}"; do
    corpus=fuzz/corpus/$t
    mkdir -p "$corpus"
    cp fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null
    for f in $(fixtures "$t"); do cp "$f" "$corpus"/; done
    echo "== $t: ${secs} s (runs: $runs)"
    dict=()
    [ -f "fuzz/dicts/$t.dict" ] && dict=(-dict="fuzz/dicts/$t.dict")
    [ "$t" = onnx_export ] && dict=(-dict=fuzz/dicts/onnx.dict)
    "${fuzz[@]}" run "${flags[@]}" "$t" "$corpus" -- \
        -max_total_time="$secs" -runs="$runs" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 $(max_len "$t") "${dict[@]}" >"fuzz/logs/$t.log" 2>&1
    rc=$?
    grep -E '^#[0-9]+ *DONE|^Done [0-9]+ runs|^stat::number_of_executed_units|^SUMMARY' "fuzz/logs/$t.log" | tail -3
    if [ $rc -ne 0 ]; then
        echo "!! $t failed (exit $rc); see fuzz/logs/$t.log and fuzz/artifacts/$t/"
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
echo "all ${#targets[@]} targets ran clean"
