#!/usr/bin/env python3
"""Makes the ONNX fixtures of tests/onnx.rs in tests/fixtures/onnx/.

Grouped networks with random weights (random BN statistics too), at reduced width and a 64x64
input so that each file stays well under 1 MB, exported by torch.onnx.export with a dynamic
batch dimension, and onnxruntime's outputs on a fixed batch-2 input as goldens:

  resnext     torchvision ResNet with Bottleneck blocks, groups 8   TorchScript exporter, opset 17
  mobilenet   torchvision mobilenet_v2, width 0.25 (ReLU6 = Clip)   TorchScript exporter, opset 13
  mobilenet_v3  torchvision MobileNetV3-small, width 0.25 (hard swish, squeeze-excitation with
              hard sigmoid and Mul)                                 TorchScript exporter, opset 17
  shufflenet  torchvision ShuffleNetV2 (channel shuffle, split)     TorchScript exporter, opset 17
  shufflenet_dynamo   the same model                                dynamo exporter, opset 18
  regnet      torchvision RegNet (X blocks, group width 8)          dynamo exporter, opset 18
  se_head     conv, squeeze-excitation gate (ReduceMean, Sigmoid, Mul), MatMul + Add
              classifier and softmax                                TorchScript exporter, opset 18
  flgc        a model written by `gconv export` (uneven index-addressed groups), rebuilt in
              PyTorch from its graph JSON (index_select, split, one conv per group, cat,
              index_select) and exported                          TorchScript exporter, opset 17

The TorchScript exports keep batch norms as nodes (training=PRESERVE on a model in eval mode),
so that parameters are counted as torchvision counts them (the dynamo exporter fuses them into
the convs: there each BN's gamma and beta count as the conv's one bias). expected.json records,
per model,
the MACs and parameters counted here by hand from the PyTorch modules (torchvision/thop
convention: conv = output elements * C_in/G * kh * kw, linear = in * out; conv/linear weights
and biases and BN gamma/beta are parameters, running statistics are not), the opset and the
tolerance of the comparison.

Needs torch, torchvision, onnx, onnxruntime, numpy, safetensors; CI does not (the outputs are
committed). Run from the repository root:

  python3 scripts/make_onnx_fixtures.py [path/to/flgc-infer.safetensors]

The FLGC source model is tests/fixtures/onnx/flgc_export.safetensors, written by
  gconv train --model resnet50-dsc --conv flgc --groups 4 --width 0.125 --layers 1,1,1,1 \
      --epochs 1 --batch 32 --limit 320 --val 64 --test-limit 64 --device cpu --seed 3 \
      --checkpoint ck.safetensors
  gconv export --checkpoint ck.safetensors --out flgc_export.safetensors
and copied there when a path is given.
"""

import json
import os
import shutil
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision
from safetensors import safe_open
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

warnings.filterwarnings("ignore")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "onnx")
INPUT = (3, 64, 64)


# ---- models ------------------------------------------------------------------------------


class SmallResNeXt(ResNet):
    """torchvision's ResNet forward and Bottleneck blocks at 1/8 of the planes, one block per
    stage, cardinality 8 (each 3x3 conv has 8 groups)."""

    def __init__(self, num_classes=10):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = 16, 1, 8, 16
        self.conv1 = nn.Conv2d(3, 16, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(Bottleneck, 8, 1)
        self.layer2 = self._make_layer(Bottleneck, 16, 1, stride=2)
        self.layer3 = self._make_layer(Bottleneck, 32, 1, stride=2)
        self.layer4 = self._make_layer(Bottleneck, 64, 1, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64 * Bottleneck.expansion, num_classes)


def small_regnet():
    from torchvision.models.regnet import BlockParams, RegNet

    params = BlockParams.from_init_params(depth=6, w_0=16, w_a=8.0, w_m=2.0, group_width=8)
    return RegNet(params, num_classes=10, stem_width=16)


def small_mobilenet():
    setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2], [6, 64, 2, 2], [6, 96, 1, 1],
               [6, 160, 1, 2], [6, 320, 1, 1]]
    return torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10,
                                           inverted_residual_setting=setting)


def small_mobilenet_v3():
    from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf

    setting, _ = _mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25)
    return MobileNetV3(setting, last_channel=128, num_classes=10)


def small_shufflenet():
    from torchvision.models.shufflenetv2 import ShuffleNetV2

    return ShuffleNetV2([2, 2, 2], [16, 32, 64, 128, 256], num_classes=10)


class SeHead(nn.Module):
    """A conv, a squeeze-excitation gate with a sigmoid (ReduceMean, Conv, Sigmoid, Mul), and a
    classifier written as `x @ W + b` (MatMul + Add) with a softmax."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 4, 1)
        self.se = nn.Conv2d(8, 8, 1)
        self.w = nn.Parameter(torch.randn(8 * 16 * 16, 10) * 0.02)
        self.b = nn.Parameter(torch.randn(10) * 0.1)
        self.matmul_macs = 8 * 16 * 16 * 10

    def forward(self, x):
        y = torch.relu(self.conv(x))
        y = y * torch.sigmoid(self.se(y.mean((2, 3), keepdim=True)))
        return torch.softmax(torch.flatten(y, 1) @ self.w + self.b, -1)


class Flgc(nn.Module):
    """gconv's `grouped_conv_table`: group g reads input channels in_index[in_start:+in_len]
    and writes output channels out_index[out_start:+out_len] with its own dense conv. Groups
    without filters are left out (their input channels are read by no one)."""

    def __init__(self, op, weight, bias):
        super().__init__()
        s = op["spec"]
        k = s["kernel"]
        used, self.in_lens, self.convs, off = [], [], nn.ModuleList(), 0
        for g in op["table"]:
            n = g["out_len"] * g["in_len"] * k[0] * k[1]
            if g["out_len"] > 0:
                # A group without inputs outputs its bias: a zero-weight conv of channel 0.
                ins = op["in_index"][g["in_start"]:g["in_start"] + g["in_len"]] or [0]
                used += ins
                self.in_lens.append(len(ins))
                c = nn.Conv2d(len(ins), g["out_len"], k, s["stride"], s["padding"],
                              s["dilation"], bias=bias is not None)
                c.weight.data = (weight[off:off + n].reshape(g["out_len"], g["in_len"], k[0], k[1])
                                 if g["in_len"] else torch.zeros(g["out_len"], 1, k[0], k[1]))
                if bias is not None:
                    outs = op["out_index"][g["out_start"]:g["out_start"] + g["out_len"]]
                    c.bias.data = bias[torch.tensor(outs, dtype=torch.long)]
                self.convs.append(c)
            off += n
        self.register_buffer("in_index", torch.tensor(used, dtype=torch.long))
        # Output channel o is position inv[o] of the group-ordered outputs.
        inv = [0] * s["out_channels"]
        for pos, o in enumerate(op["out_index"]):
            inv[o] = pos
        self.register_buffer("inv", torch.tensor(inv, dtype=torch.long))

    def forward(self, x):
        parts = torch.split(torch.index_select(x, 1, self.in_index), self.in_lens, dim=1)
        y = torch.cat([conv(p) for conv, p in zip(self.convs, parts)], 1)
        return torch.index_select(y, 1, self.inv)


class GconvGraph(nn.Module):
    """Runs a gconv graph (the JSON in an exported file's metadata) with PyTorch ops."""

    def __init__(self, graph, tensors):
        super().__init__()
        self.graph = graph
        self.mods = nn.ModuleDict()
        for i, n in enumerate(graph["nodes"]):
            op = n["op"]
            get = lambda s: tensors.get(f"{n['name']}.{s}")  # noqa: E731
            key = str(i)
            if op["op"] == "conv2d":
                c = nn.Conv2d(op["in_channels"], op["out_channels"], op["kernel"], op["stride"],
                              op["padding"], op["dilation"], op["groups"], op["bias"])
                c.weight.data = get("weight")
                if op["bias"]:
                    c.bias.data = get("bias")
                self.mods[key] = c
            elif op["op"] == "grouped_conv_table":
                self.mods[key] = Flgc(op, get("weight"), get("bias") if op["spec"]["bias"] else None)
            elif op["op"] == "batch_norm":
                b = nn.BatchNorm2d(op["channels"], eps=op["eps"])
                for s in ["weight", "bias", "running_mean", "running_var"]:
                    getattr(b, s).data = get(s)
                self.mods[key] = b
            elif op["op"] == "linear":
                lin = nn.Linear(op["in_features"], op["out_features"], op["bias"])
                lin.weight.data = get("weight")
                if op["bias"]:
                    lin.bias.data = get("bias")
                self.mods[key] = lin

    def forward(self, x):
        vals = [x]
        for i, n in enumerate(self.graph["nodes"][1:], start=1):
            op = n["op"]
            ins = [vals[j] for j in n["inputs"]]
            kind = op["op"]
            if str(i) in self.mods:
                y = self.mods[str(i)](ins[0])
            elif kind == "relu":
                y = torch.relu(ins[0])
            elif kind == "add":
                y = ins[0] + ins[1]
            elif kind == "max_pool":
                y = nn.functional.max_pool2d(ins[0], op["kernel"], op["stride"], op["padding"])
            elif kind == "adaptive_avg_pool":
                y = nn.functional.adaptive_avg_pool2d(ins[0], op["output"])
            elif kind == "flatten":
                y = torch.flatten(ins[0], 1)
            elif kind == "dropout":
                y = ins[0]
            else:
                raise SystemExit(f"gconv op {kind} is not rebuilt in PyTorch here")
            vals.append(y)
        return vals[self.graph["output"]]


def flgc_model(path):
    with safe_open(path, "pt") as f:
        graph = json.loads(f.metadata()["gconv_graph"])
        tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    return GconvGraph(graph, tensors), tuple(graph["nodes"][0]["op"]["shape"])


# ---- counting (torchvision / thop convention) -------------------------------------------


def count(model, shape, bn_folded=False):
    """MACs and parameters; with `bn_folded` (the dynamo exporter fuses each batch norm into
    the bias-free conv before it), each BN's gamma and beta become that conv's one bias."""
    macs = 0
    hooks = []

    def conv_hook(m, inp, out):
        nonlocal macs
        macs += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, inp, out):
        nonlocal macs
        macs += m.in_features * m.out_features

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    macs += getattr(model, "matmul_macs", 0)
    params = sum(p.numel() for p in model.parameters())
    for m in model.modules():
        if bn_folded and isinstance(m, nn.BatchNorm2d):
            params -= m.num_features
    return macs, params


# ---- export ------------------------------------------------------------------------------


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.rand(m.num_features, generator=g) * 0.4 - 0.2
            m.running_mean.data = torch.rand(m.num_features, generator=g) * 0.4 - 0.2
            m.running_var.data = torch.rand(m.num_features, generator=g) + 0.5
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            if m.bias is not None:
                m.bias.data = torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1


def export(model, name, shape, opset, dynamo):
    path = os.path.join(OUT, f"{name}.onnx")
    x = torch.zeros(1, *shape)
    if dynamo:
        torch.onnx.export(model, (x,), path, dynamo=True, opset_version=opset,
                          input_names=["x"], dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                          verbose=False)
        # Inline the weights (the dynamo exporter may keep them in a side file).
        m = onnx.load(path)
        onnx.save(m, path, save_as_external_data=False)
        if os.path.exists(path + ".data"):
            os.remove(path + ".data")
    else:
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=opset,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    onnx.checker.check_model(onnx.load(path))
    return path


def error_fixtures():
    """Small models gconv must refuse with a clear error."""
    from onnx import TensorProto, helper, numpy_helper

    def model(nodes, inits, opset, name):
        g = helper.make_graph(
            nodes, name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            initializer=inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        onnx.save(m, os.path.join(OUT, f"{name}.onnx"))

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "conv.weight")
    conv = helper.make_node("Conv", ["x", "conv.weight"], ["c"], name="/conv/Conv", pads=[1, 1, 1, 1])
    model([conv, helper.make_node("LRN", ["c"], ["y"], name="/norm/LRN", size=3)], [w], 17,
          "bad_unsupported_op")
    model([helper.make_node("Conv", ["x", "conv.weight"], ["y"], name="/conv/Conv")], [], 17,
          "bad_missing_initializer")
    model([helper.make_node("Conv", ["x", "conv.weight"], ["y"], name="/conv/Conv",
                            pads=[0, 0, 1, 1])], [w], 17, "bad_asymmetric_pad")
    for opset in [12, 21]:
        model([helper.make_node("Relu", ["x"], ["y"], name="/relu/Relu")], [], opset,
              f"bad_opset{opset}")


def main():
    os.makedirs(OUT, exist_ok=True)
    flgc_src = os.path.join(OUT, "flgc_export.safetensors")
    if len(sys.argv) > 1:
        shutil.copyfile(sys.argv[1], flgc_src)
    torch.manual_seed(0)
    cases = [
        ("resnext", SmallResNeXt(), INPUT, 17, False),
        ("mobilenet", small_mobilenet(), INPUT, 13, False),
        ("shufflenet", small_shufflenet(), INPUT, 17, False),
        ("shufflenet_dynamo", None, INPUT, 18, True),
        ("regnet", small_regnet(), INPUT, 18, True),
        ("flgc", "flgc", None, 17, False),
        ("mobilenet_v3", small_mobilenet_v3(), INPUT, 17, False),
        ("se_head", SeHead(), INPUT, 18, False),
    ]
    error_fixtures()
    only = os.environ.get("ONLY")
    cases = [c for c in cases if not only or c[0] in only.split(",")]
    expected = {}
    exp_path = os.path.join(OUT, "expected.json")
    if only and os.path.exists(exp_path):
        with open(exp_path) as f:
            expected = json.load(f)
    shuffle = None
    for i, (name, model, shape, opset, dynamo) in enumerate(cases):
        if name == "flgc":
            if not os.path.exists(flgc_src):
                raise SystemExit(f"{flgc_src} is missing: pass a `gconv export` output")
            model, shape = flgc_model(flgc_src)
            model.eval()
        elif model is None:
            model = shuffle
        else:
            randomize(model, 100 + i)
            model.eval()
        if name == "shufflenet":
            shuffle = model
        path = export(model, name, shape, opset, dynamo)
        x = np.random.default_rng(i).standard_normal((2, *shape)).astype(np.float32)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        with torch.no_grad():
            y_torch = model(torch.from_numpy(x)).numpy()
        assert np.allclose(y, y_torch, atol=1e-4, rtol=1e-3), f"{name}: onnxruntime != torch"
        np.save(os.path.join(OUT, f"{name}.input.npy"), x)
        np.save(os.path.join(OUT, f"{name}.output.npy"), y)
        macs, params = count(model, shape, bn_folded=dynamo)
        if dynamo:
            assert not any(n.op_type == "BatchNormalization" for n in onnx.load(path).graph.node)
        expected[name] = {
            "file": f"{name}.onnx",
            "opset": opset,
            "exporter": "dynamo" if dynamo else "torchscript",
            "input": list(shape),
            "macs": macs,
            "params": params,
            "bn_folded_by_exporter": dynamo,
            "atol": 1e-4,
            "rtol": 1e-3,
        }
        size = os.path.getsize(path)
        assert size < 1 << 20, f"{name}: {size} bytes"
        print(f"{name}: {size / 1024:.0f} KiB, {macs:,} MACs, {params:,} params, opset {opset}")
    with open(exp_path, "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
