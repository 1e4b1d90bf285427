// 2-D pooling over NCHW planes, one invocation per output element:
// max (padding acts as -inf), average (padded zeros counted, PyTorch's default) and
// adaptive average (PyTorch's bin edges floor(i*n/o) .. ceil((i+1)*n/o)).

struct Params {
    planes: u32, h: u32, w: u32, oh: u32,
    ow: u32, kh: u32, kw: u32, sh: u32,
    sw: u32, ph: u32, pw: u32, len: u32,
    // -inf, the value of an empty max window (passed in: WGSL has no infinity literal).
    neg_inf: f32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

fn element(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * WG + li;
}

// Window of output (oy, ox) clipped to the image: [y0, y1) x [x0, x1).
fn window(oy: u32, ox: u32) -> vec4<u32> {
    let y0 = i32(oy * p.sh) - i32(p.ph);
    let x0 = i32(ox * p.sw) - i32(p.pw);
    let y1 = min(y0 + i32(p.kh), i32(p.h));
    let x1 = min(x0 + i32(p.kw), i32(p.w));
    return vec4<u32>(u32(max(y0, 0)), u32(max(y1, 0)), u32(max(x0, 0)), u32(max(x1, 0)));
}

@compute @workgroup_size(WG)
fn max_pool(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = element(wg, nwg, li);
    if (i >= p.len) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let base = (i / (p.ow * p.oh)) * p.h * p.w;
    let r = window(oy, ox);
    // A window entirely in the padding gives -inf, like the CPU reference.
    var m = p.neg_inf;
    for (var iy = r.x; iy < r.y; iy++) {
        for (var ix = r.z; ix < r.w; ix++) {
            m = max(m, x[base + iy * p.w + ix]);
        }
    }
    out[i] = m;
}

@compute @workgroup_size(WG)
fn avg_pool(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = element(wg, nwg, li);
    if (i >= p.len) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let base = (i / (p.ow * p.oh)) * p.h * p.w;
    let r = window(oy, ox);
    var s = 0.0;
    for (var iy = r.x; iy < r.y; iy++) {
        for (var ix = r.z; ix < r.w; ix++) {
            s += x[base + iy * p.w + ix];
        }
    }
    out[i] = s / f32(p.kh * p.kw);
}

@compute @workgroup_size(WG)
fn adaptive_avg_pool(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = element(wg, nwg, li);
    if (i >= p.len) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let base = (i / (p.ow * p.oh)) * p.h * p.w;
    let y0 = oy * p.h / p.oh;
    let y1 = ((oy + 1u) * p.h + p.oh - 1u) / p.oh;
    let x0 = ox * p.w / p.ow;
    let x1 = ((ox + 1u) * p.w + p.ow - 1u) / p.ow;
    var s = 0.0;
    for (var iy = y0; iy < y1; iy++) {
        for (var ix = x0; ix < x1; ix++) {
            s += x[base + iy * p.w + ix];
        }
    }
    out[i] = s / f32((y1 - y0) * (x1 - x0));
}
