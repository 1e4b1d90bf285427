// Depthwise convolution for real GPUs (one filter per channel, groups = C = N): bandwidth-
// bound, so each workgroup loads the input patch its 16×16 output tile reads into workgroup
// memory once (coalesced along rows) and every invocation computes one output from it.
//
// Workgroup id = (plane · tiles_y + ty) · tiles_x + tx with plane = b · C + c; the filter
// (kh·kw weights) and bias of channel c are uniform across the workgroup.
//
// Out-of-range loads are 0 (zero padding), stores are masked. `p: Params` and the bindings
// are generated from the declaration in src/gpu/kernels/conv_dw.rs.

// The largest patch: (15·sh + (kh−1)·dh + 1) × (15·sw + (kw−1)·dw + 1) ≤ 4096 floats.
var<workgroup> tile_in: array<f32, 4096>;

@compute @workgroup_size(16, 16)
fn conv_dw(id: Ids, @builtin(local_invocation_id) lid: vec3<u32>) {
    let wid_raw = linear_wg(id.wg, id.nwg);
    let live = wid_raw < p.total_wg;
    let wid = min(wid_raw, p.total_wg - 1u);
    let tx = wid % p.tiles_x;
    let rest = wid / p.tiles_x;
    let ty = rest % p.tiles_y;
    let plane = rest / p.tiles_y;
    let c = plane % p.geom.c_in;
    let oy0 = ty * 16u;
    let ox0 = tx * 16u;
    let iy0 = i32(oy0 * p.geom.sh) - i32(p.geom.ph);
    let ix0 = i32(ox0 * p.geom.sw) - i32(p.geom.pw);
    let base = plane * p.geom.h * p.geom.w;
    for (var i = id.li; i < p.patch_h * p.patch_w; i += 256u) {
        let py = i / p.patch_w;
        let px = i - py * p.patch_w;
        let iy = iy0 + i32(py);
        let ix = ix0 + i32(px);
        var v = 0.0;
        if (iy >= 0 && iy < i32(p.geom.h) && ix >= 0 && ix < i32(p.geom.w)) {
            v = f32(x[base + u32(iy) * p.geom.w + u32(ix)]);
        }
        tile_in[i] = v;
    }
    workgroupBarrier();
    let oy = oy0 + lid.y;
    let ox = ox0 + lid.x;
    if (!live || oy >= p.geom.oh || ox >= p.geom.ow) {
        return;
    }
    let wbase = c * p.geom.kh * p.geom.kw;
    var acc = 0.0;
    for (var ky = 0u; ky < p.geom.kh; ky++) {
        let row = (lid.y * p.geom.sh + ky * p.geom.dh) * p.patch_w + lid.x * p.geom.sw;
        for (var kx = 0u; kx < p.geom.kw; kx++) {
            acc += tile_in[row + kx * p.geom.dw] * wt[wbase + ky * p.geom.kw + kx];
        }
    }
    let bv = select(0.0, bias[min(c, p.bias_max)], p.epi.has_bias != 0u);
    out[(plane * p.geom.oh + oy) * p.geom.ow + ox] = act_t(act(acc + bv, p.epi));
}
