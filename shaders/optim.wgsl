// SGD with momentum and weight decay, in place, one invocation per parameter, as the CPU
// Sgd::step (PyTorch, dampening 0, no Nesterov):
//   d = g + wd * p;  v = momentum * v + d;  p = p - lr * v
// lr is read from hyper[0], a storage buffer the caller rewrites every step, so the
// dispatch (and its uniform) is built once.

struct Params {
    len: u32,
    momentum: f32,
    weight_decay: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read> hyper: array<f32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> velocity: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn sgd(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) {
        return;
    }
    let lr = hyper[0];
    let w = param[i];
    let d = grad[i] + p.weight_decay * w;
    let v = p.momentum * velocity[i] + d;
    velocity[i] = v;
    param[i] = w - lr * v;
}
