#!/usr/bin/env python3
"""Makes the small fixtures of tests/io/ in tests/fixtures/io/.

Needs numpy, torch and safetensors (CI does not: the outputs are committed).
Run from the repository root:  python3 scripts/make_io_fixtures.py
Everything is deterministic, so re-running it gives the same bytes.
"""

import gzip
import io
import os
import struct
import zlib

import numpy as np
import torch
from torch import nn
from safetensors.torch import save_file
from safetensors.numpy import save_file as np_save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "io")


def path(name):
    p = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


def npy_bytes(arr, version=None):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version)
    return buf.getvalue()


def gz(data):
    return gzip.compress(data, mtime=0)


# ---- npy -------------------------------------------------------------------------------
# Values that tests/io/npy.rs recomputes exactly.
f4 = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / np.float32(7) - np.float32(1)
np.save(path("f4.npy"), f4)
np.save(path("f8.npy"), np.arange(15, dtype=np.float64).reshape(3, 5) / 3 - 2)
np.save(path("f2.npy"), np.array([0.5, -1.25, 3.0, 65504.0], dtype=np.float16))
np.save(path("u1.npy"), np.array([[0, 1], [128, 255]], dtype=np.uint8))
np.save(path("scalar.npy"), np.float32(2.5))
write("v2.npy", npy_bytes(np.array([1.0, 2.0, 3.0], dtype=np.float32), version=(2, 0)))
write("v3.npy", npy_bytes(np.array([4.0, 5.0], dtype=np.float32), version=(3, 0)))
np.save(path("fortran.npy"), np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
np.save(path("big_endian.npy"), np.arange(4).astype(">f4"))
np.save(path("i4.npy"), np.arange(4, dtype=np.int32))
f4_bytes = open(path("f4.npy"), "rb").read()
write("truncated.npy", f4_bytes[:-5])
write("truncated_header.npy", f4_bytes[:40])
write("bad_magic.npy", b"PK\x03\x04 this is a zip file, not an npy file\n")


# ---- safetensors: a tiny torchvision-style model -----------------------------------------
class Tiny(nn.Module):
    """features.0 conv, features.1 BN, features.2 ReLU, avgpool, flatten, classifier.0."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU()
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(4, 5))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def value(key, i):
    """The deterministic value of element i of tensor `key` (tests/io/weights.rs: `expected`)."""
    v = ((i * 37 + len(key) * 11) % 101) / 50 - 1
    if key.endswith("running_var"):
        v = 0.5 + ((i * 37 + len(key) * 11) % 101) / 100
    return v


model = Tiny().eval()
with torch.no_grad():
    for key, t in model.state_dict().items():
        if t.dtype.is_floating_point:
            vals = np.array([value(key, i) for i in range(t.numel())], dtype=np.float64)
            t.copy_(torch.from_numpy(vals.astype(np.float32)).reshape(t.shape))
        else:
            t.fill_(7)  # num_batches_tracked: an int64 that readers skip
sd = model.state_dict()
assert "features.1.num_batches_tracked" in sd
save_file(sd, path("tiny_f32.safetensors"))
save_file({k: (v.half() if v.dtype.is_floating_point else v) for k, v in sd.items()},
          path("tiny_f16.safetensors"))

# The model's output on a fixed input, to check a loaded model end to end.
x = (torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8) % 17) / 8 - 1
with torch.no_grad():
    y = model(x)
np.save(path("tiny_input.npy"), x.numpy())
np.save(path("tiny_output.npy"), y.numpy())

st = open(path("tiny_f32.safetensors"), "rb").read()
write("truncated.safetensors", st[: len(st) - 10])
write("garbage.safetensors", struct.pack("<Q", 16) + b"{not json at all")
np_save_file({"a.weight": np.array([1.0, -2.5], dtype=np.float64),
              "b.weight": np.array([0.5, 3.0], dtype=np.float32)},
             path("f64.safetensors"))
save_file({"a.weight": torch.tensor([1.0, -2.5, 0.15625], dtype=torch.bfloat16)},
          path("bf16.safetensors"))
save_file({"a.weight": torch.tensor([1, 2, 3], dtype=torch.int32)}, path("i32.safetensors"))


# ---- IDX ---------------------------------------------------------------------------------
def idx_images(n, rows, cols, seed):
    pixels = bytes((seed + i * 7) % 256 for i in range(n * rows * cols))
    return struct.pack(">IIII", 0x803, n, rows, cols) + pixels


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


images = idx_images(3, 4, 5, 0)
write("images.idx3-ubyte.gz", gz(images))
write("images.idx3-ubyte", images)
write("labels.idx1-ubyte", idx_labels([3, 1, 4]))
write("labels.idx1-ubyte.gz", gz(idx_labels([3, 1, 4])))
write("wrong_magic.idx1-ubyte", struct.pack(">II", 0x802, 3) + bytes([3, 1, 4]))
write("truncated.idx3-ubyte.gz", gz(images[:-7]))  # the data is short
write("truncated_gzip.idx3-ubyte.gz", gz(images)[:-12])  # the gzip stream is cut

# A miniature Fashion-MNIST directory with the standard names (2 train, 1 test image).
write("fashion-mini/train-images-idx3-ubyte.gz", gz(idx_images(2, 28, 28, 1)))
write("fashion-mini/train-labels-idx1-ubyte.gz", gz(idx_labels([9, 0])))
write("fashion-mini/t10k-images-idx3-ubyte.gz", gz(idx_images(1, 28, 28, 2)))
write("fashion-mini/t10k-labels-idx1-ubyte", idx_labels([5]))  # uncompressed works too


# ---- images ------------------------------------------------------------------------------
def png(width, height, rows, color_type, channels):
    """An 8-bit PNG; rows is a list of per-row byte strings."""
    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + r for r in rows)
    assert all(len(r) == width * channels for r in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


# RGB 6 wide × 4 high: pixel (x, y) = (40x, 60y, 255 − 40x).
write("rgb_6x4.png", png(6, 4, [bytes(v for x in range(6) for v in (40 * x, 60 * y, 255 - 40 * x))
                                 for y in range(4)], 2, 3))
# Grey 3 wide × 2 high: pixel (x, y) = 50x + 100y.
write("grey_3x2.png", png(3, 2, [bytes(50 * x + 100 * y for x in range(3)) for y in range(2)], 0, 1))
write("not_an_image.png", b"This is a text file with a .png name.\n")

total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
print(f"fixtures in {os.path.normpath(OUT)}: {total} bytes")
