// Channel copies over NCHW planes of hw values:
//   gather       output channel oc of each sample is input channel indices[oc] (c_out of them)
//   gather_into  for each pair j: output channel indices[2j] is input channel indices[2j+1]
//                (p.pairs of them); the other output channels are left as they are — one call
//                per input of a channel concat, together writing every output channel.
// Indices are validated on the host; the shader clamps them so that a bad buffer cannot read
// or write out of bounds.
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/gather.rs (see gpu::declare).

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn gather(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) { return; }
    let q = i % p.hw;
    let oc = (i / p.hw) % p.c_out;
    let n = i / (p.hw * p.c_out);
    let ic = min(indices[oc], p.c_in - 1u);
    out[i] = x[(n * p.c_in + ic) * p.hw + q];
}

@compute @workgroup_size(WG)
fn gather_into(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) { return; }
    let q = i % p.hw;
    let j = (i / p.hw) % p.pairs;
    let n = i / (p.hw * p.pairs);
    let oc = min(indices[2u * j], p.c_out - 1u);
    let ic = min(indices[2u * j + 1u], p.c_in - 1u);
    out[(n * p.c_out + oc) * p.hw + q] = x[(n * p.c_in + ic) * p.hw + q];
}
