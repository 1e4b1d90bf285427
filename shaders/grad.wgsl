// Element-wise training helpers, one invocation per element; `out` is written (=) or
// added to (+=) per p.accumulate:
//   relu_backward  out = b if a > 0 else 0     (a = forward input x, b = dy; NaN x passes dy, as the CPU)
//   copy           out = a                      (b unused)
//   mul            out = a * b                  (dy * mask, or x * mask for dropout's y)
//   dropout_mask   out = 0 with probability p.p else p.scale, from a counter-based hash of
//                  (seed[0], seed[1], i); never accumulates.

struct Params {
    len: u32,
    accumulate: u32,
    // Drop threshold on 24 random bits: drop when bits < threshold (threshold = p * 2^24).
    threshold: u32,
    // 1 / (1 - p), the value of a kept element's mask.
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
// Dropout's seed (2 u32); the other entry points bind `a` here and do not read it.
@group(0) @binding(3) var<storage, read> seed: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

fn element(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * WG + li;
}

fn store(i: u32, v: f32) {
    if (p.accumulate != 0u) {
        out[i] += v;
    } else {
        out[i] = v;
    }
}

@compute @workgroup_size(WG)
fn relu_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = element(wg, nwg, li);
    if (i < p.len) {
        store(i, select(b[i], 0.0, a[i] <= 0.0));
    }
}

@compute @workgroup_size(WG)
fn copy(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = element(wg, nwg, li);
    if (i < p.len) {
        store(i, a[i]);
    }
}

@compute @workgroup_size(WG)
fn mul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = element(wg, nwg, li);
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
fn dropout_mask(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = element(wg, nwg, li);
    if (i < p.len) {
        let bits = hash3(i, seed[0], seed[1]) >> 8u;
        out[i] = select(p.scale, 0.0, bits < p.threshold);
    }
}
