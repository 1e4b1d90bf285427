// Inference batch normalisation folded to a per-channel affine map, with its activation
// fused: out = act(x * scale[c] + shift[c]). scale_shift holds scale[0..C] then shift[0..C],
// computed on the host from (gamma, beta, mean, var, eps).
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/norm.rs (see gpu::declare).

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn batch_norm(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) { return; }
    let c = (i / p.hw) % p.channels;
    out[i] = act_t(act(f32(x[i]) * scale_shift[c] + scale_shift[p.channels + c], p.epi));
}
