// SGD with momentum and weight decay, in place, one invocation per parameter, as the CPU
// Sgd::step (PyTorch, dampening 0, no Nesterov):
//   d = g + wd * p;  v = momentum * v + d;  p = p - lr * v
// lr is read from hyper[0], a storage buffer the caller rewrites every step, so the
// dispatch (and its uniform) is built once.
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/optim.rs (see gpu::declare).

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn sgd(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) { return; }
    let lr = hyper[0];
    let w = param[i];
    let d = grad[i] + p.weight_decay * w;
    let v = p.momentum * velocity[i] + d;
    velocity[i] = v;
    param[i] = w - lr * v;
}
