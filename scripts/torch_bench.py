#!/usr/bin/env python3
"""The models of `gconv bench` timed in PyTorch (cuDNN), for the README's real-GPU comparison.

    python3 scripts/torch_bench.py [--out torch.json] [--repeats 20] [--warmup 5]
        [--precision fp32|tf32|amp] [--only REGEX] [--batches 1,32] [--roof]

Same models, sizes and batches as `gconv bench` on a discrete GPU (224², batch 1 and 32,
1,000 classes): VGG13-BN dense and Gong et al.'s schemes A–E, ResNet-50, ResNet-50-DSC dense
and with SGC on its block 1×1 convs (G = 4, 8), MobileNetV2 dense and SGC (1×1 convs of more
than 96 filters, G = 4, 8), and the group sweep over single conv layers. An exported FLGC
model is a group conv after index re-ordering, so the SGC rows stand for FLGC's too.

Timed as `gconv bench` times: wall clock from the host input to the GPU having finished
(input copied to the device, forward, synchronise; no output read-back), warm-up runs then
the median of timed runs, eval mode, cudnn.benchmark on. `--precision`: fp32 with TF32 off
(the default: gconv computes in fp32), fp32 with TF32 on, or fp16 autocast (AMP); each row says
which. `--only` keeps the models whose name matches. `--roof` also measures the chip's roof as
the script sees it: device-to-device copy bandwidth (a 1 GiB `copy_`, read + write bytes) and
the best of 4096³/8192³ `torch.matmul` in fp32 with TF32 off (and TF32 on, fp16), so gconv's
"% of roof" can be set against what the chip really reaches. Without CUDA it runs on the CPU
(for a dry run of scripts/device_check.sh). Needs torch; torchvision only for MobileNetV2/ResNet-50.
"""
import argparse
import contextlib
import json
import os
import re
import statistics
import sys
import time

import torch
import torch.nn as nn

SCHEMES = {"A": [1, 1, 64, 1, 1], "B": [1, 1, 1, 64, 64], "C": [1, 1, 64, 64, 64],
           "D": [1, 64, 64, 64, 64], "E": [1, 32, 32, 32, 32]}


def vgg13bn(stage_groups=(1, 1, 1, 1, 1), classes=1000):
    layers, c = [], 3
    for g, stage in zip(stage_groups, [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]]):
        for out in stage:
            layers += [nn.Conv2d(c, out, 3, 1, 1, groups=g), nn.BatchNorm2d(out), nn.ReLU(True)]
            c = out
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(7), nn.Flatten(),
                         nn.Linear(512 * 49, 4096), nn.ReLU(True), nn.Dropout(),
                         nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
                         nn.Linear(4096, classes))


class DscBlock(nn.Module):
    """gconv's ResNet-50-DSC bottleneck: 1×1 → depthwise 3×3 → 1×1 → 1×1, grouped 1×1s."""

    def __init__(self, c, width, out, stride, g):
        super().__init__()
        pw = lambda i, o, s=1: nn.Conv2d(i, o, 1, s, 0, groups=g, bias=False)  # noqa: E731
        self.body = nn.Sequential(
            pw(c, width), nn.BatchNorm2d(width), nn.ReLU(True),
            nn.Conv2d(width, width, 3, stride, 1, groups=width, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(True),
            pw(width, width), nn.BatchNorm2d(width), nn.ReLU(True),
            pw(width, out), nn.BatchNorm2d(out))
        self.short = (nn.Sequential(pw(c, out, stride), nn.BatchNorm2d(out))
                      if stride != 1 or c != out else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


def resnet50_dsc(g=1, classes=1000):
    mods = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(True),
            nn.MaxPool2d(3, 2, 1)]
    c = 64
    for li, (n, planes) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512])):
        for bi in range(n):
            stride = 2 if bi == 0 and li > 0 else 1
            mods.append(DscBlock(c, planes, planes * 4, stride, g))
            c = planes * 4
    return nn.Sequential(*mods, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


def mobilenetv2(g=1):
    import torchvision
    m = torchvision.models.mobilenet_v2()
    if g > 1:
        for name, mod in list(m.named_modules()):
            for child_name, child in list(mod.named_children()):
                if (isinstance(child, nn.Conv2d) and child.kernel_size == (1, 1)
                        and child.out_channels > 96 and child.groups == 1):
                    setattr(mod, child_name, nn.Conv2d(child.in_channels, child.out_channels, 1,
                                                       child.stride, 0, groups=g, bias=False))
    return m


def resnet50():
    import torchvision
    return torchvision.models.resnet50()


CUDA = torch.cuda.is_available()
DEV = "cuda" if CUDA else "cpu"


def sync():
    if CUDA:
        torch.cuda.synchronize()


def autocast(precision):
    if precision == "amp":
        return torch.autocast(DEV, dtype=torch.float16 if CUDA else torch.bfloat16)
    return contextlib.nullcontext()


def time_model(model, shape, batch, warmup, repeats, precision="fp32"):
    x = torch.randn(batch, *shape)
    samples = []
    with torch.inference_mode(), autocast(precision):
        for i in range(warmup + repeats):
            sync()
            t0 = time.perf_counter()
            model(x.to(DEV, non_blocking=False))
            sync()
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
    return statistics.median(samples), min(samples), max(samples)


def set_precision(precision):
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def timed(f, repeats):
    f()
    sync()
    samples = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        f()
        sync()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def roof(repeats):
    """Copy bandwidth and best matmul of this device, as PyTorch reaches them."""
    n = (1 << 28) if CUDA else (1 << 24)  # 1 GiB of f32 on a GPU, 64 MiB on a CPU
    x = torch.empty(n, device=DEV)
    y = torch.empty(n, device=DEV)
    copy_s = timed(lambda: y.copy_(x), repeats)
    del x, y
    out = {"copy_gbps": 2 * 4 * n / copy_s / 1e9, "copy_bytes": 4 * n}
    sizes = (4096, 8192) if CUDA else (1024,)
    for name, dtype, tf32 in [("matmul_fp32_tflops", torch.float32, False),
                              ("matmul_tf32_tflops", torch.float32, True),
                              ("matmul_fp16_tflops", torch.float16 if CUDA else torch.bfloat16,
                               False)]:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        best = 0.0
        for m in sizes:
            a = torch.randn(m, m, device=DEV, dtype=dtype)
            b = torch.randn(m, m, device=DEV, dtype=dtype)
            s = timed(lambda: a @ b, repeats)
            best = max(best, 2 * m ** 3 / s / 1e12)
            del a, b
        out[name] = best
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def save(report, path):
    """Writes `report` to `path` atomically."""
    with open(path + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="torch_bench.json")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--precision", choices=["fp32", "tf32", "amp"], default="fp32")
    ap.add_argument("--only", default="", help="regular expression on model names")
    ap.add_argument("--roof", action="store_true")
    a = ap.parse_args()
    set_precision(a.precision)
    torch.backends.cudnn.benchmark = True
    dev = torch.cuda.get_device_name(0) if CUDA else "cpu (no CUDA: dry run)"
    label = {"fp32": "fp32, TF32 off", "tf32": "fp32, TF32 on", "amp": "fp16 autocast (AMP)"}
    batches = [int(b) for b in a.batches.split(",")]

    models = [("vgg13bn", lambda: vgg13bn())]
    models += [(f"vgg13bn scheme {s}", (lambda s=s: vgg13bn(SCHEMES[s]))) for s in SCHEMES]
    models += [("resnet50", resnet50), ("resnet50-dsc", lambda: resnet50_dsc())]
    models += [(f"resnet50-dsc-sgc G={g}", (lambda g=g: resnet50_dsc(g))) for g in (4, 8)]
    models += [("mobilenetv2", lambda: mobilenetv2())]
    models += [(f"mobilenetv2-sgc G={g}", (lambda g=g: mobilenetv2(g))) for g in (4, 8)]
    for c, s, k in [(256, 56, 3), (512, 28, 1)]:
        for g in [1, 2, 4, 8, 16, 32, 64]:
            models.append((f"sweep {c}x{s}:{k} G={g}",
                           (lambda c=c, k=k, g=g: nn.Conv2d(c, c, k, 1, k // 2, groups=g,
                                                            bias=False)),
                           [c, s, s]))
    models = [m for m in models if re.search(a.only, m[0])]
    report = {"device": dev, "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
              "precision": label[a.precision], "warmup": a.warmup, "repeats": a.repeats,
              "rows": []}
    if a.roof:
        report["roof"] = roof(max(3, a.repeats // 2))
        set_precision(a.precision)
        print("roof:", json.dumps(report["roof"]), flush=True)
        save(report, a.out)
    rows = report["rows"]
    for entry in models:
        name, make = entry[0], entry[1]
        shape = entry[2] if len(entry) > 2 else [3, 224, 224]
        model = make().to(DEV).eval()
        for b in batches:
            med, lo, hi = time_model(model, shape, b, a.warmup, a.repeats, a.precision)
            rows.append({"model": name, "batch": b, "precision": label[a.precision],
                         "median_ms": 1e3 * med, "min_ms": 1e3 * lo, "max_ms": 1e3 * hi})
            print(f"{name:<28} b{b:<3} {1e3 * med:9.3f} ms  (min {1e3 * lo:.3f}, max {1e3 * hi:.3f})",
                  flush=True)
        del model
        if CUDA:
            torch.cuda.empty_cache()
        # Written after every model, so a run cut off by its time cap keeps what it measured.
        save(report, a.out)
    save(report, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
