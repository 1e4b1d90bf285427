#!/usr/bin/env python3
"""Makes the onnxruntime goldens of tests/cli_export.rs in tests/fixtures/onnx_export/.

Every case is exported by `gconv export ... --out CASE.onnx` (the same command the test runs),
checked with onnx's checker (full check, opset 17), run by onnxruntime on a batch-2 input
that both sides compute from a formula (x[i] = ((i * 7919) % 1000) / 500 - 1, exact in f32),
and onnxruntime's output is saved as CASE.ort.npy (a few hundred bytes each). The ONNX files
themselves are not committed: the test re-exports them with the same command.

  every zoo model   seeded He initialisation; VGGs at width 1/16 and 224² (their 7×7 adaptive
                    pool needs a 7×7 feature map), the others at width 1/4 and 32²
  flgc_g3_gaussian  resnet50-dsc-flgc, G = 3, width 0.1: the paper's N(0, 1) selection start
                    (gconv's seeded initialisation) gives uneven groups and groups without
                    input channels (dead filters; 3 of them read by padded 3×3 convs, so
                    they stay in the file as zero-weight convs)
  shufflenet        tests/fixtures/onnx/shufflenet.onnx (torchvision ShuffleNetV2) imported,
                    its channel shuffles folded, and exported again

expected.json records each case's gconv arguments, the ONNX op types in the file and
onnxruntime's version. Needs onnx, onnxruntime and numpy (a venv outside the repository, e.g.
/work/venv); CI does not. Run from the repository root after `cargo build --release`:

  python3 scripts/make_export_fixtures.py [path/to/gconv]
"""

import collections
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "onnx_export")
SMALL = ["--width", "0.25", "--input", "3x32x32", "--num-classes", "10"]
VGG = ["--width", "0.0625", "--num-classes", "10"]
CASES = {
    "vgg11bn": ["--model", "vgg11bn", *VGG],
    "vgg13bn": ["--model", "vgg13bn", *VGG],
    "vgg13bn_e": ["--model", "vgg13bn", "--scheme", "1,4,4,4,4", *VGG],
    "vgg16bn": ["--model", "vgg16bn", *VGG],
    "vgg19bn": ["--model", "vgg19bn", *VGG],
    "resnet50": ["--model", "resnet50", *SMALL],
    "resnet50_dsc": ["--model", "resnet50-dsc", *SMALL],
    "resnet50_dsc_sgc": ["--model", "resnet50-dsc-sgc", *SMALL],
    "resnet50_dsc_flgc": ["--model", "resnet50-dsc-flgc", *SMALL],
    "mobilenetv2": ["--model", "mobilenetv2", *SMALL],
    "mobilenetv2_sgc": ["--model", "mobilenetv2-sgc", *SMALL],
    "mobilenetv2_flgc": ["--model", "mobilenetv2-flgc", *SMALL],
    "flgc_g3_gaussian": ["--model", "resnet50-dsc-flgc", "--groups", "3", "--width", "0.1",
                         "--input", "3x32x32", "--num-classes", "10"],
    "shufflenet": ["--model", "tests/fixtures/onnx/shufflenet.onnx"],
}


def formula_input(shape):
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.int64)
    return (((i * 7919) % 1000).astype(np.float32) / np.float32(500) - np.float32(1)).reshape(shape)


def main():
    gconv = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "gconv")
    os.makedirs(OUT, exist_ok=True)
    expected = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in CASES.items():
            path = os.path.join(tmp, f"{name}.onnx")
            subprocess.run([gconv, "export", *args, "--out", path], check=True, cwd=ROOT,
                           stdout=subprocess.DEVNULL)
            model = onnx.load(path)
            onnx.checker.check_model(model, full_check=True)
            assert model.opset_import[0].version == 17, name
            ops = collections.Counter(n.op_type for n in model.graph.node)
            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            inp = sess.get_inputs()[0]
            shape = [2] + list(inp.shape[1:])
            x = formula_input(shape)
            (y,) = sess.run(None, {inp.name: x})
            np.save(os.path.join(OUT, f"{name}.ort.npy"), y.astype(np.float32))
            expected[name] = {"args": args, "input": shape, "ops": dict(sorted(ops.items()))}
            print(f"{name}: {dict(ops)} -> {y.shape}, max |y| {np.abs(y).max():.4g}")
    expected["_meta"] = {"onnxruntime": ort.__version__, "onnx": onnx.__version__}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
