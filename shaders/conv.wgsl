// Grouped 2-D convolution, NCHW, PyTorch semantics, with bias and the activation fused.
//
// One family for dense (G=1), grouped (1<G<C), depthwise (G=C, any channel multiplier),
// pointwise (1x1) and the uneven table-driven groups of an exported FLGC layer.
// The launcher (src/gpu/kernels/conv.rs) cuts every group's output channels into tiles of
// at most TCO channels and uploads one `Tile` per tile; the tile index is part of the
// dispatch grid, so all groups run in one dispatch.
//
// Grid: linear workgroup id (folded into 2-D above 65535) = (n * n_tiles + tile) * px_blocks
// + px_block. Each invocation computes TCO output channels x 4 adjacent output pixels of one
// row, accumulating in registers (no workgroup memory, no barriers: cheap on CPU "GPUs").
// All loads use clamped indices (out-of-window pixels are selected to 0), so this shader is
// safe to compile without runtime bounds checks given the launcher's validation.

// The uniform `p`, the tile table and the bindings (x, wt, bias, tiles, y, and the conv_pk8
// scratch xp, wp) are generated from the declaration in src/gpu/kernels/conv.rs.

// Invocations per workgroup (each owns one 4-pixel tile).
override WG: u32 = 8u;

// Where an invocation works: sample, tile, output row and first output column.
// `live` is false for the invocations past the last pixel tile of a partial workgroup; they
// compute a clamped copy of the last tile and store nothing, so that control flow stays
// uniform across the workgroup (on CPU drivers this keeps weight loads scalar).
struct Site {
    ok: bool,
    live: bool,
    n: u32,
    tile: Tile,
    oy: u32,
    ox0: u32,
}

fn site(id: Ids) -> Site {
    var s: Site;
    s.ok = false;
    let wid = linear_wg(id.wg, id.nwg);
    if (wid >= p.total_wg) {
        return s;
    }
    let pb = wid % p.px_blocks;
    let rest = wid / p.px_blocks;
    let n_pt = p.geom.oh * p.px_tiles_row;
    let pt = pb * WG + id.li;
    s.live = pt < n_pt;
    let ptc = min(pt, n_pt - 1u);
    s.n = rest / p.n_tiles;
    s.tile = tiles[rest % p.n_tiles];
    s.oy = ptc / p.px_tiles_row;
    s.ox0 = (ptc % p.px_tiles_row) * 4u;
    s.ok = s.tile.co_len > 0u;
    return s;
}

// The 4 input values under kernel column kx for output columns ox0..ox0+3 of one input row
// (`row` = index of that row's first element); zero outside the image.
fn load4(row: u32, row_ok: bool, ox0: u32, kx: u32) -> vec4<f32> {
    let ix0 = i32(ox0 * p.geom.sw + kx * p.geom.dw) - i32(p.geom.pw);
    let s = i32(p.geom.sw);
    let wi = i32(p.geom.w);
    let ix = vec4<i32>(ix0, ix0 + s, ix0 + 2 * s, ix0 + 3 * s);
    let c = vec4<u32>(clamp(ix, vec4<i32>(0), vec4<i32>(wi - 1)));
    let v = vec4<f32>(f32(x[row + c.x]), f32(x[row + c.y]), f32(x[row + c.z]), f32(x[row + c.w]));
    let inside = (ix >= vec4<i32>(0)) & (ix < vec4<i32>(wi)) & vec4<bool>(row_ok);
    return select(vec4<f32>(0.0), v, inside);
}

// Bias, activation and the store of output channel `co` (absolute) for the 4 pixels.
fn store4(s: Site, co: u32, acc: vec4<f32>) {
    if (!s.live) { return; }
    var v = acc;
    if (p.epi.has_bias != 0u) {
        v = v + vec4<f32>(bias[co]);
    }
    v = act4(v, p.epi);
    let base = ((s.n * p.geom.c_out + co) * p.geom.oh + s.oy) * p.geom.ow + s.ox0;
    let left = p.geom.ow - s.ox0;
    y[base] = act_t(v.x);
    if (left > 1u) { y[base + 1u] = act_t(v.y); }
    if (left > 2u) { y[base + 2u] = act_t(v.z); }
    if (left > 3u) { y[base + 3u] = act_t(v.w); }
}

// Up to 8 output channels x 4 pixels per invocation (tiles of TCO = 8 channels).
@compute @workgroup_size(WG)
fn conv_co8(id: Ids) {
    let s = site(id);
    if (!s.ok) { return; }
    let t = s.tile;
    let kk = p.geom.kh * p.geom.kw;
    let wlen = t.in_len * kk;
    let last = t.co_len - 1u;
    // First weight of each of the 8 filters (clamped to the tile's last filter).
    let f0 = t.w_off;
    let f1 = t.w_off + min(1u, last) * wlen;
    let f2 = t.w_off + min(2u, last) * wlen;
    let f3 = t.w_off + min(3u, last) * wlen;
    let f4 = t.w_off + min(4u, last) * wlen;
    let f5 = t.w_off + min(5u, last) * wlen;
    let f6 = t.w_off + min(6u, last) * wlen;
    let f7 = t.w_off + min(7u, last) * wlen;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    let plane = p.geom.h * p.geom.w;
    let xbase = (s.n * p.geom.c_in + t.in_start) * plane;
    for (var ic = 0u; ic < t.in_len; ic++) {
        let xc = xbase + ic * plane;
        for (var ky = 0u; ky < p.geom.kh; ky++) {
            // Rows outside the image are masked, not skipped (uniform control flow).
            let iy = i32(s.oy * p.geom.sh + ky * p.geom.dh) - i32(p.geom.ph);
            let row_ok = iy >= 0 && iy < i32(p.geom.h);
            let row = xc + u32(clamp(iy, 0, i32(p.geom.h) - 1)) * p.geom.w;
            let q0 = ic * kk + ky * p.geom.kw;
            for (var kx = 0u; kx < p.geom.kw; kx++) {
                let v = load4(row, row_ok, s.ox0, kx);
                let q = q0 + kx;
                a0 += v * wt[f0 + q];
                a1 += v * wt[f1 + q];
                a2 += v * wt[f2 + q];
                a3 += v * wt[f3 + q];
                a4 += v * wt[f4 + q];
                a5 += v * wt[f5 + q];
                a6 += v * wt[f6 + q];
                a7 += v * wt[f7 + q];
            }
        }
    }
    let co = t.co_start;
    store4(s, co, a0);
    if (last >= 1u) { store4(s, co + 1u, a1); }
    if (last >= 2u) { store4(s, co + 2u, a2); }
    if (last >= 3u) { store4(s, co + 3u, a3); }
    if (last >= 4u) { store4(s, co + 4u, a4); }
    if (last >= 5u) { store4(s, co + 5u, a5); }
    if (last >= 6u) { store4(s, co + 6u, a6); }
    if (last >= 7u) { store4(s, co + 7u, a7); }
}

// One output channel x 4 pixels per invocation (tiles of TCO = 1 channel): depthwise
// layers and groups with few output channels.
@compute @workgroup_size(WG)
fn conv_co1(id: Ids) {
    let s = site(id);
    if (!s.ok) { return; }
    let t = s.tile;
    let kk = p.geom.kh * p.geom.kw;
    var a = vec4<f32>(0.0);
    let plane = p.geom.h * p.geom.w;
    let xbase = (s.n * p.geom.c_in + t.in_start) * plane;
    for (var ic = 0u; ic < t.in_len; ic++) {
        let xc = xbase + ic * plane;
        for (var ky = 0u; ky < p.geom.kh; ky++) {
            // Rows outside the image are masked, not skipped (uniform control flow).
            let iy = i32(s.oy * p.geom.sh + ky * p.geom.dh) - i32(p.geom.ph);
            let row_ok = iy >= 0 && iy < i32(p.geom.h);
            let row = xc + u32(clamp(iy, 0, i32(p.geom.h) - 1)) * p.geom.w;
            let q0 = t.w_off + ic * kk + ky * p.geom.kw;
            for (var kx = 0u; kx < p.geom.kw; kx++) {
                a += load4(row, row_ok, s.ox0, kx) * wt[q0 + kx];
            }
        }
    }
    store4(s, t.co_start, a);
}

// ---- stride-1 fast path: vec4 loads of padded input and packed weights -----------------
// On CPU drivers every storage load inside a loop costs a per-lane loop, so the fast path
// cuts the number of load instructions: per (ic, ky, kx) two vec4 input loads (shifted into
// place) and two vec4 weight loads feed 32 vec4 FMAs, with no bounds arithmetic at all.

// Writes one padded row (w4 vec4s) of xp: row r of plane (n, c), zeros in the padding.
@compute @workgroup_size(WG)
fn pad_input(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.aux_len) { return; }
    let r = i % p.hp;
    let plane = i / p.hp;
    let iy = i32(r) - i32(p.geom.ph);
    let row_ok = iy >= 0 && iy < i32(p.geom.h);
    let src = plane * p.geom.h * p.geom.w + u32(clamp(iy, 0, i32(p.geom.h) - 1)) * p.geom.w;
    let dst = i * p.w4;
    for (var c4 = 0u; c4 < p.w4; c4++) {
        let ix = vec4<i32>(i32(c4 * 4u) - i32(p.geom.pw)) + vec4<i32>(0, 1, 2, 3);
        let c = vec4<u32>(clamp(ix, vec4<i32>(0), vec4<i32>(i32(p.geom.w) - 1)));
        let v = vec4<f32>(f32(x[src + c.x]), f32(x[src + c.y]), f32(x[src + c.z]), f32(x[src + c.w]));
        let inside = (ix >= vec4<i32>(0)) & (ix < vec4<i32>(i32(p.geom.w))) & vec4<bool>(row_ok);
        xp[dst + c4] = select(vec4<f32>(0.0), v, inside);
    }
}

// Packs the weights of tile i / qmax at position q = i % qmax = (ic * kh + ky) * kw + kx.
@compute @workgroup_size(WG)
fn pack_weights(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.n_tiles * p.qmax) { return; }
    let t = tiles[i / p.qmax];
    let q = i % p.qmax;
    let wlen = t.in_len * p.geom.kh * p.geom.kw;
    if (q >= wlen || t.co_len == 0u) { return; }
    let last = t.co_len - 1u;
    var v: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) {
        v[j] = wt[t.w_off + min(j, last) * wlen + q];
    }
    wp[t.p_off + 2u * q] = vec4<f32>(v[0], v[1], v[2], v[3]);
    wp[t.p_off + 2u * q + 1u] = vec4<f32>(v[4], v[5], v[6], v[7]);
}

// 8 output channels x 4 pixels, stride 1, from xp and wp.
@compute @workgroup_size(WG)
fn conv_pk8(id: Ids) {
    let s = site(id);
    if (!s.ok) { return; }
    let t = s.tile;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    let plane4 = p.hp * p.w4;
    let xbase = (s.n * p.geom.c_in + t.in_start) * plane4 + s.ox0 / 4u;
    var wq = t.p_off;
    for (var ic = 0u; ic < t.in_len; ic++) {
        let xc = xbase + ic * plane4;
        for (var ky = 0u; ky < p.geom.kh; ky++) {
            let row = xc + (s.oy + ky * p.geom.dh) * p.w4;
            for (var kx = 0u; kx < p.geom.kw; kx++) {
                let off = kx * p.geom.dw;
                let lo = xp[row + off / 4u];
                let hi = xp[row + off / 4u + 1u];
                let m = off % 4u;
                var v = select(lo, vec4<f32>(lo.yzw, hi.x), m == 1u);
                v = select(v, vec4<f32>(lo.zw, hi.xy), m == 2u);
                v = select(v, vec4<f32>(lo.w, hi.xyz), m == 3u);
                let w0 = wp[wq];
                let w1 = wp[wq + 1u];
                wq += 2u;
                a0 += v * w0.x;
                a1 += v * w0.y;
                a2 += v * w0.z;
                a3 += v * w0.w;
                a4 += v * w1.x;
                a5 += v * w1.y;
                a6 += v * w1.z;
                a7 += v * w1.w;
            }
        }
    }
    let co = t.co_start;
    let last = t.co_len - 1u;
    store4(s, co, a0);
    if (last >= 1u) { store4(s, co + 1u, a1); }
    if (last >= 2u) { store4(s, co + 2u, a2); }
    if (last >= 3u) { store4(s, co + 3u, a3); }
    if (last >= 4u) { store4(s, co + 4u, a4); }
    if (last >= 5u) { store4(s, co + 5u, a5); }
    if (last >= 6u) { store4(s, co + 6u, a6); }
    if (last >= 7u) { store4(s, co + 7u, a7); }
}
