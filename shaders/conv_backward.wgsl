// Backward of the grouped 2-D convolution (NCHW, PyTorch semantics, weights in the plain
// PyTorch layout [N, C/G, kh, kw]): input gradient, weight gradient and per-channel sums
// (bias gradient). Any groups (dense, grouped, depthwise with multiplier, pointwise), stride,
// padding and dilation. The group of every element follows from its channel, so each op is
// one dispatch whatever G is. The linear workgroup id is folded into 2-D above 65535
// (`wg.x + wg.y * num_workgroups.x`) and bounds-checked against `p.total`.
//
// Bindings: `a` and `b` are the two inputs, `out` the result:
//   grad_input:  a = dy [B, N, OH, OW], b = w [N, C/G, kh, kw], out = dx [B, C, H, W]
//   grad_weight: a = x  [B, C, H, W],   b = dy [B, N, OH, OW],   out = dw [N, C/G, kh, kw]
//   channel_sum: a = g  [B, C, HW],     b = (unused, any),      out = [C]
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/conv_backward.rs (see gpu::declare).

// Invocations per workgroup of grad_input (one dx element each).
override WG: u32 = 64u;

// Lanes of the reducing workgroups (grad_weight, channel_sum); a power of two.
const RED: u32 = 64u;
var<workgroup> partial: array<f32, RED>;

// Where weight element e = ((o · C/G + ic) · kh + ky) · kw + kx sits: its filter o, tap
// (ky, kx) and input channel ci (the ic-th channel of o's group).
struct WeightTap {
    o: u32,
    ci: u32,
    ky: u32,
    kx: u32,
}

fn weight_tap(e: u32) -> WeightTap {
    let kx = e % p.geom.kw;
    var t = e / p.geom.kw;
    let ky = t % p.geom.kh;
    t = t / p.geom.kh;
    let ic = t % p.cin_g;
    let o = t / p.cin_g;
    return WeightTap(o, (o / p.cout_g) * p.cin_g + ic, ky, kx);
}

// Writes v to out[o], or adds it when p.accumulate != 0 (gradients shared by several uses).
fn put(o: u32, v: f32) {
    out[o] = accumulated(out[o], v, p.accumulate);
}

// dx[bi, ci, y, x] = Σ over the filters o of ci's group and the taps (ky, kx) whose window
// position is (y, x) of dy[bi, o, oy, ox] · w[o, ci mod C/G, ky, kx]. Gather form: one
// invocation per dx element, no atomics. Added to dx when p.accumulate != 0.
@compute @workgroup_size(WG)
fn grad_input(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.total) { return; }
    let x = i % p.geom.w;
    var t = i / p.geom.w;
    let y = t % p.geom.h;
    t = t / p.geom.h;
    let ci = t % p.geom.c_in;
    let bi = t / p.geom.c_in;
    let grp = ci / p.cin_g;
    let ic = ci - grp * p.cin_g;
    let o0 = grp * p.cout_g;
    let ohw = p.geom.oh * p.geom.ow;
    let wlen = p.cin_g * p.geom.kh * p.geom.kw;
    var acc = 0.0;
    for (var ky = 0u; ky < p.geom.kh; ky++) {
        // Output row oy reads input row oy·sh + ky·dh − ph; invert it for y.
        let ty = y + p.geom.ph;
        let dky = ky * p.geom.dh;
        if (ty < dky) { break; }
        let ry = ty - dky;
        if (ry % p.geom.sh != 0u) { continue; }
        let oy = ry / p.geom.sh;
        if (oy >= p.geom.oh) { continue; }
        for (var kx = 0u; kx < p.geom.kw; kx++) {
            let tx = x + p.geom.pw;
            let dkx = kx * p.geom.dw;
            if (tx < dkx) { break; }
            let rx = tx - dkx;
            if (rx % p.geom.sw != 0u) { continue; }
            let ox = rx / p.geom.sw;
            if (ox >= p.geom.ow) { continue; }
            var gi = (bi * p.geom.c_out + o0) * ohw + oy * p.geom.ow + ox;
            var wi = o0 * wlen + (ic * p.geom.kh + ky) * p.geom.kw + kx;
            for (var oo = 0u; oo < p.cout_g; oo++) {
                acc += a[gi] * b[wi];
                gi += ohw;
                wi += wlen;
            }
        }
    }
    put(i, acc);
}

// Sums the RED lanes' partial values (tree in workgroup memory); lane 0 gets the total.
fn reduce(li: u32, v: f32) -> f32 {
    partial[li] = v;
    workgroupBarrier();
    for (var s = RED / 2u; s > 0u; s = s >> 1u) {
        if (li < s) {
            partial[li] = partial[li] + partial[li + s];
        }
        workgroupBarrier();
    }
    return partial[0];
}

// dw[o, ic, ky, kx] = Σ_bi Σ_{oy, ox} dy[bi, o, oy, ox] · x[bi, c, oy·sh + ky·dh − ph,
// ox·sw + kx·dw − pw] with c the ic-th channel of o's group (out-of-image taps read 0).
// One workgroup of RED lanes per weight element: the lanes stride over the output pixels of
// every sample, then a tree reduction. Overwrites dw.
@compute @workgroup_size(RED)
fn grad_weight(id: Ids) {
    let e = linear_wg(id.wg, id.nwg);
    if (e >= p.total) { return; }
    let tap = weight_tap(e);
    let ohw = p.geom.oh * p.geom.ow;
    let hw = p.geom.h * p.geom.w;
    let dky = tap.ky * p.geom.dh;
    let dkx = tap.kx * p.geom.dw;
    var acc = 0.0;
    for (var bi = 0u; bi < p.geom.batch; bi++) {
        let xbase = (bi * p.geom.c_in + tap.ci) * hw;
        let gbase = (bi * p.geom.c_out + tap.o) * ohw;
        for (var j = id.li; j < ohw; j += RED) {
            let ox = j % p.geom.ow;
            let oy = j / p.geom.ow;
            let iy = oy * p.geom.sh + dky;
            let ix = ox * p.geom.sw + dkx;
            if (iy >= p.geom.ph && iy - p.geom.ph < p.geom.h && ix >= p.geom.pw && ix - p.geom.pw < p.geom.w) {
                acc += b[gbase + j] * a[xbase + (iy - p.geom.ph) * p.geom.w + (ix - p.geom.pw)];
            }
        }
    }
    let s = reduce(id.li, acc);
    if (id.li == 0u) {
        out[e] = s;
    }
}

// Same sum as grad_weight, one invocation (WG per workgroup) per weight element looping over
// every sample and output pixel itself: no workgroup memory, no barriers. The launcher picks
// it when there are enough weight elements to fill the device (see `SERIAL_MIN_WEIGHTS`).
@compute @workgroup_size(WG)
fn grad_weight_serial(id: Ids) {
    let e = flat(id, WG);
    if (e >= p.total) { return; }
    let tap = weight_tap(e);
    let ohw = p.geom.oh * p.geom.ow;
    let hw = p.geom.h * p.geom.w;
    let dky = tap.ky * p.geom.dh;
    let dkx = tap.kx * p.geom.dw;
    var acc = 0.0;
    for (var bi = 0u; bi < p.geom.batch; bi++) {
        let xbase = (bi * p.geom.c_in + tap.ci) * hw;
        let gbase = (bi * p.geom.c_out + tap.o) * ohw;
        for (var oy = 0u; oy < p.geom.oh; oy++) {
            let iy = oy * p.geom.sh + dky;
            if (iy < p.geom.ph || iy - p.geom.ph >= p.geom.h) { continue; }
            let xrow = xbase + (iy - p.geom.ph) * p.geom.w;
            let grow = gbase + oy * p.geom.ow;
            for (var ox = 0u; ox < p.geom.ow; ox++) {
                let ix = ox * p.geom.sw + dkx;
                if (ix >= p.geom.pw && ix - p.geom.pw < p.geom.w) {
                    acc += b[grow + ox] * a[xrow + (ix - p.geom.pw)];
                }
            }
        }
    }
    out[e] = acc;
}

// out[c] = Σ_bi Σ_i g[bi, c, i] over i < p.geom.h (= H·W): one workgroup of RED lanes per
// channel, then a tree reduction. Overwrites out.
@compute @workgroup_size(RED)
fn channel_sum(id: Ids) {
    let c = linear_wg(id.wg, id.nwg);
    if (c >= p.total) { return; }
    var acc = 0.0;
    for (var bi = 0u; bi < p.geom.batch; bi++) {
        let base = (bi * p.geom.c_in + c) * p.geom.h;
        for (var i = id.li; i < p.geom.h; i += RED) {
            acc += a[base + i];
        }
    }
    let s = reduce(id.li, acc);
    if (id.li == 0u) {
        out[c] = s;
    }
}

// ---- pointwise fast paths (1×1 kernel, stride 1, no padding), 4 × 4 register tiles ----
// For these layers the convolution is a per-sample matrix product over the H·W pixels
// (p.geom.h·p.geom.w = p.geom.oh·p.geom.ow), so an invocation keeps 16 sums and reuses every load 4 times.

// Pixel k of the quad starting at p0, clamped into the plane (lanes past the end recompute
// the last pixel and are not written).
fn quad_px(p0: u32, k: u32, hw: u32) -> u32 {
    return min(p0 + k, hw - 1u);
}

// dx for 4 input channels (of one group; the launcher requires cin_g % 4 == 0) × 4 pixels.
@compute @workgroup_size(WG)
fn grad_input_pw4(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.total) { return; }
    let hw = p.geom.h * p.geom.w;
    let npq = (hw + 3u) / 4u;
    let nq = p.geom.c_in / 4u;
    let pq = i % npq;
    let t = i / npq;
    let cq = t % nq;
    let bi = t / nq;
    let ci0 = cq * 4u;
    let grp = ci0 / p.cin_g;
    let ic0 = ci0 - grp * p.cin_g;
    let o0 = grp * p.cout_g;
    let p0 = pq * 4u;
    let q0 = quad_px(p0, 0u, hw);
    let q1 = quad_px(p0, 1u, hw);
    let q2 = quad_px(p0, 2u, hw);
    let q3 = quad_px(p0, 3u, hw);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var gbase = (bi * p.geom.c_out + o0) * hw;
    var wbase = o0 * p.cin_g + ic0;
    for (var oo = 0u; oo < p.cout_g; oo++) {
        let d = vec4<f32>(a[gbase + q0], a[gbase + q1], a[gbase + q2], a[gbase + q3]);
        acc0 += b[wbase] * d;
        acc1 += b[wbase + 1u] * d;
        acc2 += b[wbase + 2u] * d;
        acc3 += b[wbase + 3u] * d;
        gbase += hw;
        wbase += p.cin_g;
    }
    let xbase = (bi * p.geom.c_in + ci0) * hw + p0;
    let n = min(4u, hw - p0);
    for (var k = 0u; k < n; k++) {
        var v = vec4<f32>(acc0[k], acc1[k], acc2[k], acc3[k]);
        for (var j = 0u; j < 4u; j++) {
            put(xbase + j * hw + k, v[j]);
        }
    }
}

// dW for 4 filters × 4 input channels of one group (cout_g % 4 == 0, cin_g % 4 == 0), summed
// over every sample and pixel.
@compute @workgroup_size(WG)
fn grad_weight_pw4(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.total) { return; }
    let hw = p.geom.h * p.geom.w;
    let nic = p.cin_g / 4u;
    let icq = i % nic;
    let oq = i / nic;
    let o0 = oq * 4u;
    let ic0 = icq * 4u;
    let ci0 = (o0 / p.cout_g) * p.cin_g + ic0;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var bi = 0u; bi < p.geom.batch; bi++) {
        let gbase = (bi * p.geom.c_out + o0) * hw;
        let xbase = (bi * p.geom.c_in + ci0) * hw;
        for (var q = 0u; q < hw; q++) {
            let xv = vec4<f32>(a[xbase + q], a[xbase + hw + q], a[xbase + 2u * hw + q], a[xbase + 3u * hw + q]);
            acc0 += b[gbase + q] * xv;
            acc1 += b[gbase + hw + q] * xv;
            acc2 += b[gbase + 2u * hw + q] * xv;
            acc3 += b[gbase + 3u * hw + q] * xv;
        }
    }
    // dw[o, ic] for o = o0 + j, ic = ic0 + k.
    let row = p.cin_g;
    for (var k = 0u; k < 4u; k++) {
        out[(o0 + 0u) * row + ic0 + k] = acc0[k];
        out[(o0 + 1u) * row + ic0 + k] = acc1[k];
        out[(o0 + 2u) * row + ic0 + k] = acc2[k];
        out[(o0 + 3u) * row + ic0 + k] = acc3[k];
    }
}
