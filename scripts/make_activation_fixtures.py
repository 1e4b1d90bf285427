#!/usr/bin/env python3
"""Makes the activation fixtures of tests/onnx_activations.rs in tests/fixtures/activations/.

1. ONNX networks, one per activation form: a tiny grouped CNN
       conv 4->8 (groups 2) -> BN -> act -> conv 8->8 (groups 4) -> + -> act -> mean -> linear
   with random weights scaled so that the pre-activations span about [-12, 12] (every branch:
   ReLU6's clamp at 6, hard swish's +-3), exported by the TorchScript exporter with a dynamic
   batch, and onnxruntime's output on a fixed batch-2 input as the golden (checked against
   PyTorch's). Each file is a few KB. The forms:

     relu, relu6 (Clip), leaky_relu (alpha 0.1), elu (alpha 0.7), sigmoid, tanh,
     hardsigmoid (PyTorch's 1/6, 1/2), hardsigmoid_default (the same file with the attributes
     removed: ONNX's defaults 0.2, 0.5), hardswish (HardSwish op, opset 17), hardswish_13
     (opset 13: x * HardSigmoid(x)), silu (x * Sigmoid(x)), gelu (opset 17: the erf
     decomposition Div -> Erf -> Add -> Mul -> Mul), gelu_tanh (opset 17: the tanh
     decomposition, cube as Mul(x, Mul(x, x))), gelu_pow (GPT-2's NewGELU written out,
     0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * pow(x, 3)))): the cube a Pow),
     gelu_20 and gelu_tanh_20 (opset 20: the Gelu op, approximate none / tanh).

   expected.json records per file: the opset, the gconv activation the import must produce
   (its kind) and how many, and the tolerance.

2. values.safetensors: PyTorch's forward and backward of every activation on a vector chosen
   to hit every branch (kinks, both sides of them, large values, +-0, NaN), with a fixed
   upstream gradient: `{kind}.x`, `{kind}.y`, `{kind}.dx`, and `g` (float32).

Needs torch, onnx, onnxruntime, numpy, safetensors from PyPI, in a venv outside the
repository (CI does not run this: the outputs are committed). From the repository root:

  python3 scripts/make_activation_fixtures.py
"""

import json
import math
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors.numpy import save_file
from torch import nn
from torch.nn import functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "activations")
SHAPE = (4, 6, 6)


class NewGelu(nn.Module):
    """GPT-2's GELU, written out (the cube is a Pow)."""

    def forward(self, x):
        c = math.sqrt(2.0 / math.pi)
        return 0.5 * x * (1.0 + torch.tanh(c * (x + 0.044715 * torch.pow(x, 3.0))))


class Tiny(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, padding=1, groups=2)
        self.bn1 = nn.BatchNorm2d(8)
        self.act1 = act()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.act2 = act()
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.act2(self.conv2(y) + y)
        return self.fc(y.mean((2, 3)))


# name: (module factory, opset, gconv activation kind)
CASES = {
    "relu": (nn.ReLU, 17, "relu"),
    "relu6": (nn.ReLU6, 17, "relu6"),
    "leaky_relu": (lambda: nn.LeakyReLU(0.1), 17, "leaky_relu"),
    "elu": (lambda: nn.ELU(0.7), 17, "elu"),
    "sigmoid": (nn.Sigmoid, 17, "sigmoid"),
    "tanh": (nn.Tanh, 17, "tanh"),
    "hardsigmoid": (nn.Hardsigmoid, 17, "hard_sigmoid"),
    "hardswish": (nn.Hardswish, 17, "hard_swish"),
    "hardswish_13": (nn.Hardswish, 13, "hard_swish"),
    "silu": (nn.SiLU, 17, "silu"),
    "gelu": (nn.GELU, 17, "gelu"),
    "gelu_tanh": (lambda: nn.GELU("tanh"), 17, "gelu_tanh"),
    "gelu_pow": (NewGelu, 17, "gelu_tanh"),
    "gelu_20": (nn.GELU, 20, "gelu"),
    "gelu_tanh_20": (lambda: nn.GELU("tanh"), 20, "gelu_tanh"),
}


def build(factory, seed):
    torch.manual_seed(seed)
    m = Tiny(factory)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in (m.conv1, m.conv2):
            conv.weight.normal_(0.0, 0.3, generator=g)
            conv.bias.uniform_(-0.5, 0.5, generator=g)
        m.bn1.weight.uniform_(0.8, 1.6, generator=g)
        m.bn1.bias.uniform_(-0.5, 0.5, generator=g)
        m.bn1.running_mean.uniform_(-0.5, 0.5, generator=g)
        m.bn1.running_var.uniform_(0.5, 1.5, generator=g)
        m.fc.weight.normal_(0.0, 0.5, generator=g)
    return m.eval()


def export(model, path, opset):
    torch.onnx.export(model, (torch.zeros(1, *SHAPE),), path, dynamo=False,
                      opset_version=opset, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                      do_constant_folding=True)


def run_ort(path, x):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def networks():
    expected = {}
    for i, (name, (factory, opset, kind)) in enumerate(sorted(CASES.items())):
        model = build(factory, 10 + i)
        path = os.path.join(OUT, f"{name}.onnx")
        export(model, path, opset)
        m = onnx.load(path)
        onnx.checker.check_model(m)
        x = (np.random.default_rng(i).standard_normal((2, *SHAPE)) * 1.5).astype(np.float32)
        y = run_ort(path, x)
        with torch.no_grad():
            pre = model.bn1(model.conv1(torch.from_numpy(x)))
            y_torch = model(torch.from_numpy(x)).numpy()
        assert np.allclose(y, y_torch, atol=1e-5, rtol=1e-4), f"{name}: onnxruntime != torch"
        np.save(os.path.join(OUT, f"{name}.input.npy"), x)
        np.save(os.path.join(OUT, f"{name}.output.npy"), y)
        ops = sorted({n.op_type for n in m.graph.node})
        expected[name] = {"opset": opset, "activation": kind, "count": 2, "onnx_ops": ops,
                          "atol": 1e-4, "rtol": 1e-4}
        span = (float(pre.min()), float(pre.max()))
        print(f"{name}: {os.path.getsize(path)} B, opset {opset}, ops {ops}, "
              f"first pre-activations in [{span[0]:.1f}, {span[1]:.1f}]")
    # ONNX's HardSigmoid defaults: the PyTorch export with its alpha/beta attributes removed.
    src = onnx.load(os.path.join(OUT, "hardsigmoid.onnx"))
    for n in src.graph.node:
        if n.op_type == "HardSigmoid":
            del n.attribute[:]
    path = os.path.join(OUT, "hardsigmoid_default.onnx")
    onnx.save(src, path)
    x = np.load(os.path.join(OUT, "hardsigmoid.input.npy"))
    np.save(os.path.join(OUT, "hardsigmoid_default.input.npy"), x)
    np.save(os.path.join(OUT, "hardsigmoid_default.output.npy"), run_ort(path, x))
    expected["hardsigmoid_default"] = dict(expected["hardsigmoid"])
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


# kind: PyTorch function
TORCH = {
    "none": lambda x: x * 1.0,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "elu": lambda x: F.elu(x, 0.7),
    "silu": F.silu,
    "hard_swish": F.hardswish,
    "hard_sigmoid": F.hardsigmoid,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}


def values():
    pts = [-30.0, -10.0, -6.5, -6.0, -5.9, -3.5, -3.0, -2.99, -2.5, -1.0, -0.5, -1e-3, -0.0,
           0.0, 1e-3, 0.5, 1.0, 2.5, 2.99, 3.0, 3.5, 5.9, 6.0, 6.5, 10.0, 30.0, float("nan")]
    x = torch.tensor(pts, dtype=torch.float32)
    g = torch.linspace(0.5, 1.5, len(pts), dtype=torch.float32)
    g[-2] = float("nan")  # a NaN upstream gradient where the activation saturates (x = 30)
    out = {"g": g.numpy()}
    for kind, f in TORCH.items():
        xi = x.clone().requires_grad_(True)
        y = f(xi)
        y.backward(g)
        out[f"{kind}.x"] = x.numpy()
        out[f"{kind}.y"] = y.detach().numpy()
        out[f"{kind}.dx"] = xi.grad.numpy()
    save_file(out, os.path.join(OUT, "values.safetensors"))


def bad_fixtures():
    """Activations gconv must refuse, naming the node."""
    from onnx import TensorProto, helper, numpy_helper

    def model(nodes, inits, opset, name):
        g = helper.make_graph(
            nodes, name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 6, 6])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            initializer=inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 9
        onnx.save(m, os.path.join(OUT, f"{name}.onnx"))

    scalar = lambda v, name: numpy_helper.from_array(np.array(v, np.float32), name)
    model([helper.make_node("LeakyRelu", ["x"], ["y"], name="/act/LeakyRelu", alpha=float("nan"))],
          [], 17, "bad_leaky_relu_alpha")
    model([helper.make_node("Gelu", ["x"], ["y"], name="/act/Gelu", approximate="sigmoid")],
          [], 20, "bad_gelu_approximate")
    # GELU's erf decomposition dividing by 3 instead of sqrt(2): not GELU.
    model([helper.make_node("Div", ["x", "three"], ["d"], name="/act/Div"),
           helper.make_node("Erf", ["d"], ["e"], name="/act/Erf"),
           helper.make_node("Add", ["e", "one"], ["a"], name="/act/Add"),
           helper.make_node("Mul", ["x", "a"], ["m"], name="/act/Mul"),
           helper.make_node("Mul", ["m", "half"], ["y"], name="/act/Mul_1")],
          [scalar(3.0, "three"), scalar(1.0, "one"), scalar(0.5, "half")], 17,
          "bad_gelu_constant")


def main():
    os.makedirs(OUT, exist_ok=True)
    networks()
    values()
    bad_fixtures()


if __name__ == "__main__":
    main()
