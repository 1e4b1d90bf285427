// The host's f32 values as the pass's activation type, one invocation per value:
//   from_f32   out = x   (f32 → f32 in the shader itself; in its half-activation twin, where
//                         `act_t` is f16, each value rounded to a half on the device)
// The host checks the values are within f16's range first (WGSL leaves the conversion of a
// finite value beyond it indeterminate); ±∞ and NaN convert as they are.
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/cast.rs (see gpu::declare).

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn from_f32(id: Ids) {
    let i = flat(id, WG);
    if (i < p.len) {
        out[i] = act_t(x[i]);
    }
}
