#!/usr/bin/env python3
"""gconv and PyTorch side by side, from one device run (scripts/device_check.sh).

    python3 scripts/side_by_side.py BENCH_DIR TORCH_JSON [TORCH_JSON...] > side_by_side.md

BENCH_DIR holds one folder per `gconv bench --out` (paper1, sweep, sweep32, models, and the
same with an `-f16` suffix when gconv ran `--precision f16`, `-f16w` when it ran so with
`GCONV_F16_ACTIVATIONS=off`: f16 weights, f32 activations, `-f16nc` with
`GCONV_COOPERATIVE_MATRIX=off`: f16 without the tensor-core tier), each with its report.json.
TORCH_JSON are scripts/torch_bench.py outputs (fp32 TF32 off first; TF32 and AMP ones add
columns). Rows are matched by model name and batch: gconv's VGG13-BN schemes, zoo models and
sweep layers against the PyTorch model of the same name (an FLGC row against the SGC one: an
exported FLGC model is a group conv after index re-ordering). Ratios are gconv / PyTorch
medians: below 1 gconv is faster. Only what both sides measured is listed; nothing is
estimated. Standard library only.
"""
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def gconv_rows(bench_dir):
    """{(name, batch, precision): (median_ms, min_ms, max_ms)} of every report under bench_dir."""
    rows, device = {}, None
    for sub in sorted(os.listdir(bench_dir)) if os.path.isdir(bench_dir) else []:
        r = load(os.path.join(bench_dir, sub, "report.json"))
        if not r:
            continue
        device = device or r.get("device")
        # -f16: f16 weights and activations; -f16w: f16 weights, f32 activations; -f16nc:
        # f16 without cooperative matrices (GCONV_COOPERATIVE_MATRIX=off).
        prec = next((p for p in ("f16", "f16w", "f16nc") if sub.endswith("-" + p)), "f32")
        cfg = r.get("config", {})
        b, big = cfg.get("batch", 1), cfg.get("large_batch", 0)

        def put(name, batch, st):
            if st and st.get("median"):
                rows[(name, batch, prec)] = tuple(1e3 * st[k] for k in ("median", "min", "max"))

        for m in (r.get("paper1") or []) + (r.get("models") or []):
            name, scheme = m["model"], m.get("scheme")
            if scheme not in (None, "", "baseline", "-") and name.endswith("-" + scheme):
                name = f"{name[:-len(scheme) - 1]} scheme {scheme}"
            put(name, b, m.get("latency"))
            put(name, big, m.get("large_batch_latency"))
        for s in r.get("sweep") or []:
            lay = s["layer"]
            put(f"sweep {lay['channels']}x{lay['size']}:{lay['kernel']} G={s['groups']}", b,
                s.get("time"))
    return rows, device


def torch_name(name):
    return name.replace("-flgc", "-sgc")


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    g, device = gconv_rows(argv[1])
    torch = [t for t in (load(p) for p in argv[2:]) if t]
    if not torch:
        print(f"no PyTorch report among {argv[2:]}", file=sys.stderr)
        return 1
    tmaps = [{(r["model"], r["batch"]): r for r in t["rows"]} for t in torch]
    base = torch[0]
    out = [f"# gconv vs PyTorch on {device or base.get('device')}", ""]
    out.append(f"PyTorch {base.get('torch')}, cuDNN {base.get('cudnn')}; medians of "
               f"{base.get('repeats')} runs after {base.get('warmup')} warm-ups, both sides "
               "timed from the host input to the GPU having finished. Ratio = gconv / PyTorch "
               f"({base.get('precision')}): below 1 gconv is faster.")
    out.append("")
    roof = next((t["roof"] for t in torch if "roof" in t), None)
    if roof:
        out.append("**The chip's roof as PyTorch reaches it**: copy "
                   f"{roof['copy_gbps']:.0f} GB/s; matmul fp32 (TF32 off) "
                   f"{roof['matmul_fp32_tflops']:.1f} TFLOP/s, TF32 "
                   f"{roof['matmul_tf32_tflops']:.1f}, fp16 {roof['matmul_fp16_tflops']:.1f}.")
        out.append("")
    extra = [t.get("precision", "?") for t in torch[1:]]
    head = ["model", "batch", "gconv f32 ms (min–max)", "gconv f16 ms", "gconv f16 weights only ms",
            "gconv f16 no coop ms", "PyTorch ms", "f32 ratio", "f16 ratio"] + [f"PyTorch {p} ms" for p in extra]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    def order(k):
        name, batch = k
        head, _, g = name.rpartition(" G=")
        return (name.startswith("sweep"), head if g.isdigit() else name,
                int(g) if g.isdigit() else 0, batch)

    keys = sorted({(n, b) for (n, b, _) in g}, key=order)
    listed = 0
    for name, batch in keys:
        t = tmaps[0].get((torch_name(name), batch))
        if not t:
            continue
        f32, f16 = g.get((name, batch, "f32")), g.get((name, batch, "f16"))
        f16w, f16nc = g.get((name, batch, "f16w")), g.get((name, batch, "f16nc"))
        cell = lambda s: f"{s[0]:.3f} ({s[1]:.3f}–{s[2]:.3f})" if s else "—"  # noqa: E731
        ratio = lambda s: f"{s[0] / t['median_ms']:.2f}×" if s else "—"  # noqa: E731
        cells = [name, str(batch), cell(f32), cell(f16), cell(f16w), cell(f16nc),
                 f"{t['median_ms']:.3f}",
                 ratio(f32), ratio(f16)]
        for m in tmaps[1:]:
            r = m.get((torch_name(name), batch))
            cells.append(f"{r['median_ms']:.3f}" if r else "—")
        out.append("| " + " | ".join(cells) + " |")
        listed += 1
    if not listed:
        out.append("| (no row measured on both sides) |")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
