#!/usr/bin/env python3
"""Makes tests/fixtures/grad_goldens.safetensors: PyTorch gradients for tests/train_grad/.

Every case uses a scalar loss L = sum(y * r) with a fixed random upstream gradient r (except
linear + cross-entropy, which uses F.cross_entropy, mean over the batch). Keys are
"<case>.<tensor>"; all float32 except the labels (int64).

FLGC uses a custom autograd Function implementing the straight-through estimator of Wang et al.
(Eqs. 16-18) exactly as gconv::train does:
  forward:  S = onehot(argmax Ŝ), T = onehot(argmax T̂), M = T·Sᵀ, W' = W ⊙ M
  backward: D = ∂L/∂W'; ∂L/∂W = D (every entry, NOT masked); Gm = Σ_k D ⊙ W;
            ∂L/∂Ŝ = Gmᵀ·T, ∂L/∂T̂ = Gm·S (argmax passed straight through);
  autograd then applies the row-softmax Jacobian to reach S̄ and T̄.

Run: python3 scripts/make_grad_goldens.py
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(1234)
out = {}


def put(prefix, **tensors):
    for k, v in tensors.items():
        out[f"{prefix}.{k}"] = v.detach().contiguous().clone()


# ---- grouped conv: G=2, stride 2, padding 1, bias ------------------------------------------
x = torch.randn(2, 4, 7, 7, requires_grad=True)
w = (torch.randn(6, 2, 3, 3) * 0.5).requires_grad_()
b = torch.randn(6, requires_grad=True)
y = F.conv2d(x, w, b, stride=2, padding=1, groups=2)
r = torch.randn_like(y)
(y * r).sum().backward()
put("conv", x=x, weight=w, bias=b, r=r, y=y, dx=x.grad, dweight=w.grad, dbias=b.grad)

# ---- batch norm, training mode (batch stats, running stats with momentum 0.1, unbiased) ---
x = (torch.randn(4, 3, 5, 5) * 2.0 + 0.7).requires_grad_()
bn = torch.nn.BatchNorm2d(3, eps=1e-5, momentum=0.1)
with torch.no_grad():
    bn.weight.copy_(torch.rand(3) + 0.5)
    bn.bias.copy_(torch.randn(3) * 0.2)
    bn.running_mean.copy_(torch.randn(3) * 0.2)
    bn.running_var.copy_(torch.rand(3) + 0.5)
rm0, rv0 = bn.running_mean.clone(), bn.running_var.clone()
bn.train()
y = bn(x)
r = torch.randn_like(y)
(y * r).sum().backward()
put("bn", x=x, weight=bn.weight, bias=bn.bias, running_mean=rm0, running_var=rv0, r=r, y=y,
    dx=x.grad, dweight=bn.weight.grad, dbias=bn.bias.grad,
    new_running_mean=bn.running_mean, new_running_var=bn.running_var)

# ---- ReLU6 (hardtanh backward: the gradient passes where 0 < x < 6) ---------------------------
x = (torch.randn(2, 3, 5, 5) * 5.0)
x[0, 0, 0, :3] = torch.tensor([0.0, 6.0, 3.0])
x.requires_grad_()
y = F.relu6(x)
r = torch.randn_like(y)
(y * r).sum().backward()
put("relu6", x=x, r=r, y=y, dx=x.grad)

# ---- max pool 3x3 stride 2 padding 1, with ties (values on a 0.5 grid) -----------------------
x = (torch.randint(-3, 4, (2, 3, 7, 7)).float() * 0.5).requires_grad_()
y = F.max_pool2d(x, 3, stride=2, padding=1)
r = torch.randn_like(y)
(y * r).sum().backward()
put("maxpool", x=x, r=r, y=y, dx=x.grad)

# ---- linear + softmax cross-entropy (mean over the batch) ------------------------------------
x = torch.randn(5, 8, requires_grad=True)
w = (torch.randn(4, 8) * 0.5).requires_grad_()
b = torch.randn(4, requires_grad=True)
labels = torch.tensor([0, 3, 1, 1, 2], dtype=torch.int64)
logits = F.linear(x, w, b)
loss = F.cross_entropy(logits, labels)
loss.backward()
put("linear_ce", x=x, weight=w, bias=b, labels=labels, logits=logits, loss=loss.reshape(1),
    dx=x.grad, dweight=w.grad, dbias=b.grad)


# ---- FLGC with the straight-through estimator -----------------------------------------------
class FlgcMaskSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, s_hat, t_hat):
        g = s_hat.shape[1]
        s = F.one_hot(s_hat.argmax(1), g).to(w.dtype)  # ties -> first index
        t = F.one_hot(t_hat.argmax(1), g).to(w.dtype)
        m = t @ s.T  # [N, C]
        ctx.save_for_backward(w, s, t)
        return w * m[:, :, None, None]

    @staticmethod
    def backward(ctx, d):
        w, s, t = ctx.saved_tensors
        # A filter whose group has no input channel outputs a constant: no weight or mask
        # gradient (gconv's dead-filter rule; the input gradient is unaffected, W⊙M is 0 there).
        alive = ((t @ s.T).sum(1) > 0).to(d.dtype)
        d = d * alive[:, None, None, None]
        gm = (d * w).sum(dim=(2, 3))  # dL/dM, [N, C]
        return d, gm.T @ t, gm @ s  # dW = D unmasked (Eq. 16); STE through the argmax


x = torch.randn(2, 6, 5, 5, requires_grad=True)
w = (torch.randn(8, 6, 3, 3) * 0.5).requires_grad_()
b = torch.randn(8, requires_grad=True)
sbar = torch.randn(6, 3, requires_grad=True)
tbar = torch.randn(8, 3, requires_grad=True)
wm = FlgcMaskSTE.apply(w, torch.softmax(sbar, 1), torch.softmax(tbar, 1))
y = F.conv2d(x, wm, b, stride=1, padding=1)
r = torch.randn_like(y)
(y * r).sum().backward()
assert sbar.grad.abs().max() > 0 and tbar.grad.abs().max() > 0
put("flgc", x=x, weight=w, bias=b, select_in=sbar, select_out=tbar, r=r, y=y,
    dx=x.grad, dweight=w.grad, dbias=b.grad, dselect_in=sbar.grad, dselect_out=tbar.grad)

path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "grad_goldens.safetensors")
save_file(out, path, metadata={"torch": torch.__version__, "script": "scripts/make_grad_goldens.py"})
print(f"wrote {path}: {len(out)} tensors, {os.path.getsize(path)} bytes")
