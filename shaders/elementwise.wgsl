// Element-wise ops over flat tensors, one invocation per element (`linear_wg` folds the grid).
// Entry points; `out` is written (=) or, where p.accumulate != 0, added to (+=):
//   activation           out = act(a)                      (any activation, p.epi)
//   add                  out = act(a + b)                  (residual add, activation fused)
//   activation_backward  out = ∂L/∂x from the activation's OUTPUT y = a and dy = b
//                        (act_grad_y; only activations whose derivative comes from y)
//   activation_backward_input
//                        out = ∂L/∂x from the activation's INPUT x = a and dy = b (act_grad_x)
//   copy                 out = a                           (gradient copy / accumulation)
//   mul                  out = a * b                       (dy * mask, or x * mask)
//   dropout_mask         out = 0 with probability p, else p.scale, from a counter-based hash
//                        of (seed[0], seed[1], i); never accumulates.
//   mul_channel          out = a * b[i / hw]  (a squeeze-excitation gate broadcast over planes)
// Unused bindings are bound to `a`. Activations are stored as `act_t` (the prelude).
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/elementwise.rs (see gpu::declare).

override WG: u32 = 64u;

fn store(i: u32, v: f32) {
    out[i] = act_t(accumulated(f32(out[i]), v, p.accumulate));
}

@compute @workgroup_size(WG)
fn activation(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        out[i] = act_t(act(f32(a[i]), p.epi));
    }
}

@compute @workgroup_size(WG)
fn add(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        out[i] = act_t(act(f32(a[i]) + f32(b[i]), p.epi));
    }
}

@compute @workgroup_size(WG)
fn activation_backward(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        store(i, act_grad_y(f32(a[i]), f32(b[i]), p.epi));
    }
}

@compute @workgroup_size(WG)
fn activation_backward_input(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        store(i, act_grad_x(f32(a[i]), f32(b[i]), p.epi));
    }
}

@compute @workgroup_size(WG)
fn copy(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        store(i, f32(a[i]));
    }
}

@compute @workgroup_size(WG)
fn mul(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        store(i, f32(a[i]) * f32(b[i]));
    }
}

// Integer hash of three words: two rounds of multiply-add mixing across the lanes with an
// xor-shift in between (in the style of Jarzynski & Olano's pcg3d), then a final
// xor-shift-multiply avalanche on the first lane.
fn hash3(x: u32, y: u32, z: u32) -> u32 {
    var v = vec3<u32>(x, y, z) * 1664525u + vec3<u32>(1013904223u);
    v.x += v.y * v.z;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    v ^= v >> vec3<u32>(16u);
    v.x += v.y * v.z;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    var h = v.x ^ v.y ^ v.z;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

@compute @workgroup_size(WG)
fn dropout_mask(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        let bits = hash3(i, seed[0], seed[1]) >> 8u;
        out[i] = act_t(select(p.scale, 0.0, bits < p.threshold));
    }
}

@compute @workgroup_size(WG)
fn mul_channel(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        out[i] = act_t(f32(a[i]) * f32(b[i / p.hw]));
    }
}
