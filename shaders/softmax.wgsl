// Softmax over each row of a [batch, features] tensor: one invocation per row
// (max, sum of exponentials, normalise), the same order of operations as the CPU.
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/softmax.rs (see gpu::declare).

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn softmax(id: Ids) {
    let r = flat(id, WG);
    if (r >= p.batch) { return; }
    let base = r * p.features;
    var m = f32(x[base]);
    for (var k = 1u; k < p.features; k++) {
        m = max(m, f32(x[base + k]));
    }
    var s = 0.0;
    for (var k = 0u; k < p.features; k++) {
        s += exp(f32(x[base + k]) - m);
    }
    // The exponentials again (the same values), so that a half-activation twin rounds each
    // output once.
    for (var k = 0u; k < p.features; k++) {
        out[base + k] = act_t(exp(f32(x[base + k]) - m) / s);
    }
}
