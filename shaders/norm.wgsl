// Inference batch normalisation folded to a per-channel affine map, with its activation
// fused: out = act(x * scale[c] + shift[c]). scale_shift holds scale[0..C] then shift[0..C],
// computed on the host from (gamma, beta, mean, var, eps).

struct Params {
    len: u32,
    channels: u32,
    hw: u32,
    act: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale_shift: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn batch_norm(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) {
        return;
    }
    let c = (i / p.hw) % p.channels;
    out[i] = act(x[i] * scale_shift[c] + scale_shift[p.channels + c], p.act);
}
