// Element-wise ops over flat tensors, one invocation per element (`linear_wg` folds the grid).
// Entry points; `out` is written (=) or, where p.accumulate != 0, added to (+=):
//   activation           out = act(a)                      (p.epi.act: 0 none, 1 ReLU, 2 ReLU6)
//   add                  out = act(a + b)                  (residual add, activation fused)
//   activation_backward  out = b where act passes its gradient at a, else 0
//                        (a = the activation's OUTPUT y: ReLU passes where y > 0 or NaN,
//                        ReLU6 where 0 < y < 6 — the same sets as for its input)
//   copy                 out = a                           (gradient copy / accumulation)
//   mul                  out = a * b                       (dy * mask, or x * mask)
//   dropout_mask         out = 0 with probability p, else p.scale, from a counter-based hash
//                        of (seed[0], seed[1], i); never accumulates.
//   unary                out = f(a): p.epi.act 3 sigmoid, 4 hard sigmoid max(0, min(1, alpha·a +
//                        beta)), 5 hard swish a·max(0, min(1, a/6 + 1/2)); NaN propagates
//   mul_channel          out = a * b[i / hw]  (a squeeze-excitation gate broadcast over planes)
// Unused bindings are bound to `a`.
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/elementwise.rs (see gpu::declare).

override WG: u32 = 64u;

fn store(i: u32, v: f32) {
    out[i] = accumulated(out[i], v, p.accumulate);
}

@compute @workgroup_size(WG)
fn activation(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        out[i] = act(a[i], p.epi);
    }
}

@compute @workgroup_size(WG)
fn add(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        out[i] = act(a[i] + b[i], p.epi);
    }
}

@compute @workgroup_size(WG)
fn activation_backward(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        let y = a[i];
        var passes = !(y <= 0.0);
        if (p.epi.act == 2u) {
            passes = y > 0.0 && y < 6.0;
        }
        store(i, select(0.0, b[i], passes));
    }
}

@compute @workgroup_size(WG)
fn copy(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        store(i, a[i]);
    }
}

@compute @workgroup_size(WG)
fn mul(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        store(i, a[i] * b[i]);
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
        out[i] = select(p.scale, 0.0, bits < p.threshold);
    }
}

fn hard_sigmoid(x: f32, alpha: f32, beta: f32) -> f32 {
    let t = alpha * x + beta;
    return select(select(t, 1.0, t > 1.0), 0.0, t < 0.0);
}

@compute @workgroup_size(WG)
fn unary(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        let x = a[i];
        var y = x;
        if (p.epi.act == 3u) {
            y = 1.0 / (1.0 + exp(-x));
        } else if (p.epi.act == 4u) {
            y = hard_sigmoid(x, p.epi.alpha, p.epi.beta);
        } else if (p.epi.act == 5u) {
            y = x * hard_sigmoid(x, 1.0 / 6.0, 0.5);
        }
        out[i] = y;
    }
}

@compute @workgroup_size(WG)
fn mul_channel(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        out[i] = a[i] * b[i / p.hw];
    }
}
