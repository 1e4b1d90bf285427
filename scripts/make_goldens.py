#!/usr/bin/env python3
"""Golden fixtures for gconv's CPU reference path, made with PyTorch as the ground truth.

Run from the repository root (needs torch, numpy, safetensors; torchvision is optional):

    python3 scripts/make_goldens.py

It writes ONE file, tests/fixtures/goldens.safetensors, that tests/golden/ reads:

* every tensor is float32 and keyed "<case>.<name>" (`conv_g3_s2.x`, `conv_g3_s2.weight`,
  `conv_g3_s2.y`, ...; for whole-network cases the name is a state_dict key, e.g.
  `vgg_tiny.features.0.weight`, besides `.x` and `.y`);
* the safetensors `__metadata__` maps each case name to a JSON object with its `kind` and
  hyper-parameters (stride, padding, dilation, groups, ...). Keys that start with `_` are
  information about the run (torch version, seed, torchvision parameter counts), not cases.

Inputs are drawn in float32 from a fixed seed; each expected output is computed by the
PyTorch op in float64 from those float32 inputs and then rounded to float32, so the
goldens carry (almost) no rounding error of their own and the tolerance in the Rust test
measures gconv's error alone. The output is deterministic: running the script twice gives
the same bytes.
"""

import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load, save

SEED = 20190606
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "goldens.safetensors")

torch.manual_seed(SEED)
torch.use_deterministic_algorithms(True)

TENSORS = {}
META = {}


def randn(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=torch.float32) * scale).contiguous()


def uniform(lo, hi, *shape):
    return (torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo).contiguous()


def d(t):
    """float64 copy of a float32 tensor (the computation precision of the goldens)."""
    return t.double()


def add_case(name, meta, **tensors):
    assert "." not in name and not name.startswith("_"), name
    assert name not in META, f"duplicate case {name}"
    META[name] = json.dumps(meta, sort_keys=True)
    for k, t in tensors.items():
        TENSORS[f"{name}.{k}"] = t.detach().to(torch.float32).clone().contiguous()


# ---------------------------------------------------------------------------------------------
# Grouped convolution: F.conv2d
# ---------------------------------------------------------------------------------------------
def pair(v):
    return [v, v] if isinstance(v, int) else list(v)


def conv_case(name, batch, cin, cout, hw, kernel, stride=1, padding=0, dilation=1, groups=1,
              bias=True):
    kh, kw = pair(kernel)
    x = randn(batch, cin, *hw)
    fan_in = cin // groups * kh * kw
    w = randn(cout, cin // groups, kh, kw, scale=fan_in ** -0.5)
    b = uniform(-0.5, 0.5, cout) if bias else None
    y = F.conv2d(d(x), d(w), d(b) if bias else None, stride=pair(stride),
                 padding=pair(padding), dilation=pair(dilation), groups=groups)
    meta = dict(kind="conv2d", in_channels=cin, out_channels=cout, kernel=[kh, kw],
                stride=pair(stride), padding=pair(padding), dilation=pair(dilation),
                groups=groups, bias=bias)
    tensors = dict(x=x, weight=w, y=y)
    if bias:
        tensors["bias"] = b
    add_case(name, meta, **tensors)


# G = 1, 2, 3, 4, C; channels per group > 1 where G < C.
conv_case("conv_g1_k3_p1", 1, 4, 6, (7, 9), 3, padding=1, groups=1)
conv_case("conv_g1_k3_valid_b3", 3, 3, 4, (5, 6), 3, padding=0, groups=1, bias=False)
conv_case("conv_g2_k3_p1", 1, 8, 6, (7, 9), 3, padding=1, groups=2, bias=False)
conv_case("conv_g3_s2", 3, 6, 6, (7, 9), 3, stride=2, padding=1, groups=3)
conv_case("conv_g4_p2", 1, 8, 8, (5, 7), 3, padding=2, groups=4)
conv_case("conv_dw_g6", 2, 6, 6, (7, 9), 3, padding=1, groups=6)
conv_case("conv_dw_mult2_s2", 1, 4, 8, (7, 9), 3, stride=2, padding=1, groups=4, bias=False)
conv_case("conv_g2_dil2", 1, 4, 4, (9, 7), 3, padding=2, dilation=2, groups=2)
conv_case("conv_g2_dil2_s2", 2, 4, 6, (9, 8), 3, stride=2, padding=1, dilation=2, groups=2,
          bias=False)
conv_case("conv_g4_k1_b3", 3, 8, 12, (5, 5), 1, groups=4)
conv_case("conv_g1_k1_s2", 1, 6, 4, (7, 9), 1, stride=2, groups=1, bias=False)
conv_case("conv_g2_k3x1", 2, 6, 4, (7, 9), (3, 1), stride=(2, 1), padding=(1, 0), groups=2)
conv_case("conv_g3_k1x3_mixed", 1, 6, 9, (6, 7), (1, 3), stride=(1, 2), padding=(0, 2),
          dilation=(1, 2), groups=3)

# ---------------------------------------------------------------------------------------------
# Batch norm (inference), pooling
# ---------------------------------------------------------------------------------------------
for name, shape, eps in [("bn_c6", (2, 6, 5, 7), 1e-5), ("bn_c4_eps1e-3", (1, 4, 3, 3), 1e-3)]:
    c = shape[1]
    x = randn(*shape, scale=2.0)
    gamma, beta = uniform(0.5, 1.5, c), uniform(-0.5, 0.5, c)
    mean, var = uniform(-1.0, 1.0, c), uniform(0.3, 2.0, c)
    y = F.batch_norm(d(x), d(mean), d(var), d(gamma), d(beta), training=False, eps=eps)
    add_case(name, dict(kind="batch_norm", eps=eps), x=x, weight=gamma, bias=beta,
             running_mean=mean, running_var=var, y=y)


def pool_case(name, kind, shape, kernel, stride, padding):
    x = randn(*shape)
    if kind == "max_pool":
        y = F.max_pool2d(d(x), pair(kernel), pair(stride), pair(padding))
    else:
        y = F.avg_pool2d(d(x), pair(kernel), pair(stride), pair(padding))  # count_include_pad
    add_case(name, dict(kind=kind, kernel=pair(kernel), stride=pair(stride),
                        padding=pair(padding)), x=x, y=y)


pool_case("maxpool_k3s2p1", "max_pool", (2, 4, 9, 7), 3, 2, 1)  # ResNet stem
pool_case("maxpool_k3s2p1_even", "max_pool", (1, 3, 8, 8), 3, 2, 1)
pool_case("maxpool_k2s2_odd", "max_pool", (1, 3, 7, 9), 2, 2, 0)  # VGG, floor mode
pool_case("maxpool_k3x2_s1x2", "max_pool", (1, 2, 6, 7), (3, 2), (1, 2), (1, 0))
pool_case("avgpool_k3s2p1", "avg_pool", (2, 4, 7, 9), 3, 2, 1)
pool_case("avgpool_k3s1p1", "avg_pool", (1, 3, 5, 6), 3, 1, 1)
pool_case("avgpool_k2s2", "avg_pool", (1, 3, 7, 8), 2, 2, 0)

for name, shape, out in [
    ("adaptive_10x9_to7", (2, 3, 10, 9), (7, 7)),  # larger, not divisible
    ("adaptive_14x14_to7", (1, 2, 14, 14), (7, 7)),  # divisible
    ("adaptive_7x7_to7", (1, 2, 7, 7), (7, 7)),  # identity
    ("adaptive_3x3_to7", (1, 3, 3, 3), (7, 7)),  # smaller: upsampling
    ("adaptive_1x1_to7", (2, 2, 1, 1), (7, 7)),  # smaller: broadcast
    ("adaptive_5x8_to3x5", (1, 2, 5, 8), (3, 5)),  # non-square output, overlapping bins
    ("adaptive_9x7_to1", (2, 4, 9, 7), (1, 1)),  # global average
]:
    x = randn(*shape)
    add_case(name, dict(kind="adaptive_avg_pool", output=list(out)), x=x,
             y=F.adaptive_avg_pool2d(d(x), out))

# ---------------------------------------------------------------------------------------------
# Linear, relu, add, softmax, channel gather
# ---------------------------------------------------------------------------------------------
for name, bias in [("linear_bias", True), ("linear_nobias", False)]:
    x, w = randn(3, 20), randn(7, 20, scale=20 ** -0.5)
    b = uniform(-0.5, 0.5, 7)
    y = F.linear(d(x), d(w), d(b) if bias else None)
    tensors = dict(x=x, weight=w, y=y)
    if bias:
        tensors["bias"] = b
    add_case(name, dict(kind="linear", in_features=20, out_features=7, bias=bias), **tensors)

x = randn(2, 4, 5, 5)
x[0, 0, 0, :3] = torch.tensor([0.0, -0.0, 1e-30])
add_case("relu", dict(kind="relu"), x=x, y=F.relu(d(x)))
x6 = randn(2, 4, 5, 5, scale=5.0)
x6[0, 0, 0, :4] = torch.tensor([0.0, 6.0, -0.0, 5.999])
add_case("relu6", dict(kind="relu6"), x=x6, y=F.relu6(d(x6)))
x2 = randn(2, 4, 5, 5)
add_case("add", dict(kind="add"), x=x, x2=x2, y=d(x) + d(x2))
xs = randn(3, 10, scale=3.0)
xs[1] += 60.0  # large logits: a max-subtracting softmax is needed
xs[2, 4:] = xs[2, 3]  # ties
add_case("softmax", dict(kind="softmax"), x=xs, y=F.softmax(d(xs), dim=1))
x = randn(2, 6, 3, 4)
idx = [5, 0, 0, 3, 2]
add_case("gather", dict(kind="gather", indices=idx), x=x,
         y=torch.index_select(d(x), 1, torch.tensor(idx)))


# ---------------------------------------------------------------------------------------------
# FLGC forward (Wang et al. 2019, section 2)
# ---------------------------------------------------------------------------------------------
def one_hot_rows(meta):
    """Row-wise one-hot of the argmax, ties to the lowest index."""
    idx = torch.argmax(meta, dim=1)  # torch returns the first maximal index
    for i in range(meta.shape[0]):  # ...and we check that it does
        row = meta[i].tolist()
        assert idx[i].item() == row.index(max(row))
    return F.one_hot(idx, meta.shape[1]).to(torch.float64)


def flgc_case(name, batch, c, n, g, hw, kernel, stride=1, padding=0, bias=True, ties=False):
    kh, kw = pair(kernel)
    x = randn(batch, c, *hw)
    w = randn(n, c, kh, kw, scale=(c * kh * kw / g) ** -0.5)
    b = uniform(-0.5, 0.5, n)
    s_bar, t_bar = randn(c, g), randn(n, g)
    if ties:  # exact ties in the meta matrices: the lowest group index wins
        s_bar[0, :] = 0.25
        s_bar[1, :] = torch.tensor([-0.1, 0.75, 0.75])
        t_bar[2, 0] = t_bar[2, 2] = t_bar[2].max() + 0.5
    s_hat, t_hat = F.softmax(d(s_bar), dim=1), F.softmax(d(t_bar), dim=1)  # Eqs. 10, 13
    s, t = one_hot_rows(s_bar), one_hot_rows(t_bar)  # Eqs. 11, 12
    assert torch.equal(s, one_hot_rows(s_hat)) and torch.equal(t, one_hot_rows(t_hat))
    mask = t @ s.T  # Eq. 14, N x C
    y = F.conv2d(d(x), d(w) * mask[:, :, None, None], d(b) if bias else None,
                 stride=pair(stride), padding=pair(padding))
    meta = dict(kind="flgc", in_channels=c, out_channels=n, groups=g, kernel=[kh, kw],
                stride=pair(stride), padding=pair(padding), dilation=[1, 1], bias=bias)
    tensors = dict(x=x, weight=w, select_in=s_bar, select_out=t_bar, select_in_softmax=s_hat,
                   select_out_softmax=t_hat, mask=mask, y=y)
    if bias:
        tensors["bias"] = b
    add_case(name, meta, **tensors)


flgc_case("flgc_g3_k1", 2, 8, 6, 3, (5, 5), 1)
flgc_case("flgc_g3_k3", 1, 8, 6, 3, (7, 6), 3, padding=1, bias=False)
flgc_case("flgc_g3_k3_s2_ties", 2, 8, 6, 3, (7, 7), 3, stride=2, padding=1, ties=True)


# ---------------------------------------------------------------------------------------------
# Uneven grouped conv with a contiguous group table (exported FLGC)
# ---------------------------------------------------------------------------------------------
def table_case(name, batch, c, n, table, hw, kernel, stride=1, padding=0, bias=True):
    kh, kw = pair(kernel)
    assert sum(g["out_len"] for g in table) == n
    x = randn(batch, c, *hw)
    b = uniform(-0.5, 0.5, n)
    outs, packed = [None] * len(table), []
    for gi, g in enumerate(table):
        w = randn(g["out_len"], g["in_len"], kh, kw, scale=max(g["in_len"] * kh * kw, 1) ** -0.5)
        packed.append(w.reshape(-1))
        if g["out_len"] == 0:
            continue
        xs = d(x)[:, g["in_start"]:g["in_start"] + g["in_len"]]
        bs = d(b)[g["out_start"]:g["out_start"] + g["out_len"]] if bias else None
        outs[gi] = F.conv2d(xs, d(w), bs, stride=pair(stride), padding=pair(padding))
    order = sorted((g["out_start"], gi) for gi, g in enumerate(table) if g["out_len"] > 0)
    y = torch.cat([outs[gi] for _, gi in order], dim=1)  # in output-channel order
    meta = dict(kind="grouped_conv_table", in_channels=c, out_channels=n, groups=len(table),
                kernel=[kh, kw], stride=pair(stride), padding=pair(padding), dilation=[1, 1],
                bias=bias, table=table)
    tensors = dict(x=x, weight=torch.cat(packed), y=y)
    if bias:
        tensors["bias"] = b
    add_case(name, meta, **tensors)


def grp(in_start, in_len, out_start, out_len):
    return dict(in_start=in_start, in_len=in_len, out_start=out_start, out_len=out_len)


# Groups listed in input order; the output ranges are not in table order (the second group's
# filters come first), one group has input channels but no filters, one is empty altogether.
table_case("gtable_k3", 2, 8, 6,
           [grp(0, 3, 4, 2), grp(3, 2, 0, 0), grp(5, 3, 0, 4), grp(8, 0, 6, 0)],
           (6, 5), 3, padding=1)
table_case("gtable_k1_s2", 1, 7, 5,
           [grp(0, 1, 0, 1), grp(1, 0, 1, 0), grp(1, 6, 1, 4)], (5, 7), 1, stride=2,
           bias=False)


# ---------------------------------------------------------------------------------------------
# Whole stacks: a tiny VGG-BN and a ResNet bottleneck
# ---------------------------------------------------------------------------------------------
def randomise(module):
    """Random weights and non-trivial BN statistics, in float32."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.data = randn(*m.weight.shape, scale=(2.0 / fan_in) ** 0.5)
            if m.bias is not None:
                m.bias.data = uniform(-0.2, 0.2, *m.bias.shape)
        elif isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data, m.bias.data = uniform(0.5, 1.5, c), uniform(-0.3, 0.3, c)
            m.running_mean.data, m.running_var.data = uniform(-0.3, 0.3, c), uniform(0.5, 1.5, c)


def graph_case(name, kind, module, x, meta):
    randomise(module)
    module.eval()
    params = {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    with torch.no_grad():
        y = module.double()(d(x))
    add_case(name, dict(kind=kind, **meta), x=x, y=y, **params)


class TinyVgg(nn.Module):
    """Mirrors gconv's VGG builder: features.{i}, avgpool, flatten, classifier.{j}."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(8, 16, 3, padding=1, groups=4), nn.BatchNorm2d(16), nn.ReLU(),
            nn.MaxPool2d(2, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


graph_case("vgg_tiny", "graph_vgg_tiny", TinyVgg(), randn(2, 3, 12, 12),
           dict(input=[3, 12, 12]))


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 Bottleneck (stride on the 3x3), copied so that torchvision
    is not needed."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class OneBlock(nn.Module):
    def __init__(self):
        super().__init__()
        ds = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
        self.layer1 = nn.Sequential(Bottleneck(8, 4, stride=2, downsample=ds))

    def forward(self, x):
        return self.layer1(x)


graph_case("resnet_bottleneck", "graph_resnet_bottleneck", OneBlock(), randn(2, 8, 6, 6),
           dict(input=[8, 6, 6], width=4, out=16, stride=2))

# torchvision's MobileNetV2 itself at width 0.1 (its names, ReLU6 placement, linear
# bottlenecks and residual adds), when torchvision is there.
try:
    import torchvision

    mnv2 = torchvision.models.mobilenet_v2(width_mult=0.1, num_classes=2)
    graph_case("mobilenetv2_tiny", "graph_mobilenetv2", mnv2, randn(2, 3, 16, 16),
               dict(input=[3, 16, 16], width=0.1, num_classes=2))
except ImportError:
    print("torchvision not importable: MobileNetV2 golden skipped", file=sys.stderr)

# ---------------------------------------------------------------------------------------------
# Run information; torchvision parameter counts when torchvision is there
# ---------------------------------------------------------------------------------------------
META["_generator"] = json.dumps(dict(script="scripts/make_goldens.py", seed=SEED,
                                     torch=torch.__version__.split("+")[0]), sort_keys=True)
try:
    import torchvision

    counts = {m: sum(p.numel() for p in getattr(torchvision.models, m)().parameters())
              for m in ["resnet50", "vgg13_bn", "mobilenet_v2"]}
    META["_torchvision_param_counts"] = json.dumps(counts, sort_keys=True)
except ImportError:
    print("torchvision not importable: parameter-count cross-check skipped", file=sys.stderr)



def canonical(blob):
    """The same safetensors file with its JSON header's keys sorted: the library writes the
    metadata in hash order, which would make every run's bytes differ."""
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the data 8-byte aligned, as the library does
    return struct.pack("<Q", len(text)) + text + blob[8 + n:]


blob = canonical(save(dict(sorted(TENSORS.items())), metadata=META))
back = load(blob)
assert back.keys() == TENSORS.keys() and all(torch.equal(back[k], TENSORS[k]) for k in back)
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "wb") as f:
    f.write(blob)
cases = [k for k in META if not k.startswith("_")]
print(f"wrote {os.path.normpath(OUT)}: {len(cases)} cases, {len(TENSORS)} tensors, "
      f"{os.path.getsize(OUT)} bytes")
