// Channel gather over NCHW: output channel oc of each sample is input channel indices[oc].
// Indices are validated on the host when uploaded with gather::upload_indices; the shader
// clamps them to c_in - 1 so that a bad buffer cannot read out of bounds.

struct Params {
    batch: u32,
    c_in: u32,
    c_out: u32,
    hw: u32,
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn gather(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = linear_wg(wg, nwg) * WG + li;
    if (i >= p.len) {
        return;
    }
    let q = i % p.hw;
    let oc = (i / p.hw) % p.c_out;
    let n = i / (p.hw * p.c_out);
    let ic = min(indices[oc], p.c_in - 1u);
    out[i] = x[(n * p.c_in + ic) * p.hw + q];
}
