// Channel copies over NCHW planes of hw values:
//   gather       output channel oc of each sample is input channel indices[oc] (c_out of them)
//   gather_into  for each pair j: output channel indices[2j] is input channel indices[2j+1]
//                (p.pairs of them); the other output channels are left as they are — one call
//                per input of a channel concat, together writing every output channel.
// Indices are validated on the host; the shader clamps them so that a bad buffer cannot read
// or write out of bounds.

struct Params {
    batch: u32,
    c_in: u32,
    c_out: u32,
    hw: u32,
    len: u32,
    pairs: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn gather(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) {
        return;
    }
    let q = i % p.hw;
    let oc = (i / p.hw) % p.c_out;
    let n = i / (p.hw * p.c_out);
    let ic = min(indices[oc], p.c_in - 1u);
    out[i] = x[(n * p.c_in + ic) * p.hw + q];
}

@compute @workgroup_size(WG)
fn gather_into(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) {
        return;
    }
    let q = i % p.hw;
    let j = (i / p.hw) % p.pairs;
    let n = i / (p.hw * p.pairs);
    let oc = min(indices[2u * j], p.c_out - 1u);
    let ic = min(indices[2u * j + 1u], p.c_in - 1u);
    out[(n * p.c_out + oc) * p.hw + q] = x[(n * p.c_in + ic) * p.hw + q];
}
