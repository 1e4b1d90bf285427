// Element-wise ops over flat tensors: ReLU and residual add (optionally fused with ReLU).
// One invocation per element; the linear workgroup id is folded into 2-D above 65535.

struct Params {
    len: u32,
    relu: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

fn element(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * WG + li;
}

// out = max(a, 0) (binding b is bound to a and unused).
@compute @workgroup_size(WG)
fn relu(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = element(wg, nwg, li);
    if (i < p.len) {
        out[i] = max(a[i], 0.0);
    }
}

// out = a + b, then max(., 0) when p.relu != 0.
@compute @workgroup_size(WG)
fn add(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = element(wg, nwg, li);
    if (i < p.len) {
        var v = a[i] + b[i];
        if (p.relu != 0u) {
            v = max(v, 0.0);
        }
        out[i] = v;
    }
}
