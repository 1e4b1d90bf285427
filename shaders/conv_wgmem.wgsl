// Implicit-GEMM grouped convolution for discrete GPUs: workgroup-memory tiles, coalesced
// loads, natural weight layout (no packing pass, so it also serves the training forward).
//
// A workgroup (16×16 invocations) computes 64 filters × 64 output pixels (pixels linear over
// the output plane); each invocation a 4 × 4 sub-tile. The 64 filters are S segments of MS
// filters (a segment: ≤ MS filters of one group with that group's input channels), so
// groups smaller than the tile share it ("multiple groups per CTA") and uneven,
// index-addressed groups (exported FLGC) are just other segment lists. K = in_len·kh·kw of
// a segment is walked in steps of BK: the step's weights ([BK][64], read along K of each
// filter) and, per segment, its implicit-im2col input rows ([S][BK][64], read along the
// pixels) go to workgroup memory, then every invocation does BK rank-1 updates.
//
// All indices are range-checked (out-of-range elements load as 0, stores are masked, the
// bias index is clamped), so the shader is safe with or without runtime bounds checks.

// `p: Params`, `Seg` (as in conv_fast: `in_start`/`out_start` index `chan`, `wn_off` is the
// segment's first filter in the natural weights) and the bindings are generated from the
// declaration in src/gpu/kernels/conv_wgmem.rs.

// Filters per segment (a power of two ≤ 64), segments per tile (S·MS ≤ 64, S ≤ 32) and the
// K step (BK ≤ 16, S·BK ≤ 48): workgroup memory stays within 16 KiB.
override MS: u32 = 64u;
override S: u32 = 1u;
override BK: u32 = 16u;

var<workgroup> ws: array<f32, 1024>;
var<workgroup> xs: array<f32, 3072>;

@compute @workgroup_size(256)
fn conv_wgmem(id: Ids) {
    let li = id.li;
    // The grid may be folded into 2-D; surplus workgroups run the last tile's loop (so
    // every barrier is reached by the whole workgroup) and store nothing.
    let wid_raw = linear_wg(id.wg, id.nwg);
    let live_wg = wid_raw < p.total_wg;
    let wid = min(wid_raw, p.total_wg - 1u);
    let pb = wid % p.pblocks;
    let rest = wid / p.pblocks;
    let ti = rest % p.n_tiles;
    let n = rest / p.n_tiles;
    let kk_len = p.geom.kh * p.geom.kw;
    let plane = p.geom.oh * p.geom.ow;
    let hw = p.geom.h * p.geom.w;
    // The longest K of the tile's segments (uniform: read-only data, uniform indices).
    var kmax = 0u;
    for (var s = 0u; s < S; s++) {
        kmax = max(kmax, segs[ti * S + s].in_len * kk_len);
    }
    let tm = li / 16u;
    let tn = li % 16u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < kmax; k0 += BK) {
        // Weights: consecutive invocations read consecutive k of one filter.
        for (var i = li; i < BK * 64u; i += 256u) {
            let kk = i % BK;
            let m = i / BK;
            let s = m / MS;
            let f = m % MS;
            var v = 0.0;
            if (s < S) {
                let sg = segs[ti * S + s];
                let klen = sg.in_len * kk_len;
                let k = k0 + kk;
                if (f < sg.out_len && k < klen) {
                    v = wn[sg.wn_off + f * klen + k];
                }
            }
            ws[kk * 64u + m] = v;
        }
        // Implicit im2col: consecutive invocations read consecutive output pixels.
        for (var i = li; i < S * BK * 64u; i += 256u) {
            let px = i % 64u;
            let kk = (i / 64u) % BK;
            let s = i / (64u * BK);
            let sg = segs[ti * S + s];
            let k = k0 + kk;
            let pix = pb * 64u + px;
            var v = 0.0;
            if (k < sg.in_len * kk_len && pix < plane) {
                let ci = k / kk_len;
                let r = k % kk_len;
                let ky = r / p.geom.kw;
                let kx = r % p.geom.kw;
                let oy = pix / p.geom.ow;
                let ox = pix % p.geom.ow;
                let iy = i32(oy * p.geom.sh + ky * p.geom.dh) - i32(p.geom.ph);
                let ix = i32(ox * p.geom.sw + kx * p.geom.dw) - i32(p.geom.pw);
                if (iy >= 0 && iy < i32(p.geom.h) && ix >= 0 && ix < i32(p.geom.w)) {
                    let c = chan[sg.in_start + ci];
                    v = f32(x[(n * p.geom.c_in + c) * hw + u32(iy) * p.geom.w + u32(ix)]);
                }
            }
            xs[i] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let a = vec4<f32>(
                ws[kk * 64u + tm * 4u],
                ws[kk * 64u + tm * 4u + 1u],
                ws[kk * 64u + tm * 4u + 2u],
                ws[kk * 64u + tm * 4u + 3u],
            );
            // The segment of each of the invocation's 4 filters (clamped past S: those
            // filters have zero weights and are never stored).
            let s0 = min((tm * 4u) / MS, S - 1u);
            let s1 = min((tm * 4u + 1u) / MS, S - 1u);
            let s2 = min((tm * 4u + 2u) / MS, S - 1u);
            let s3 = min((tm * 4u + 3u) / MS, S - 1u);
            let b0 = (s0 * BK + kk) * 64u + tn * 4u;
            let b1 = (s1 * BK + kk) * 64u + tn * 4u;
            let b2 = (s2 * BK + kk) * 64u + tn * 4u;
            let b3 = (s3 * BK + kk) * 64u + tn * 4u;
            acc0 += a.x * vec4<f32>(xs[b0], xs[b0 + 1u], xs[b0 + 2u], xs[b0 + 3u]);
            acc1 += a.y * vec4<f32>(xs[b1], xs[b1 + 1u], xs[b1 + 2u], xs[b1 + 3u]);
            acc2 += a.z * vec4<f32>(xs[b2], xs[b2 + 1u], xs[b2 + 2u], xs[b2 + 3u]);
            acc3 += a.w * vec4<f32>(xs[b3], xs[b3 + 1u], xs[b3 + 2u], xs[b3 + 3u]);
        }
        workgroupBarrier();
    }
    if (!live_wg) { return; }
    for (var j = 0u; j < 4u; j++) {
        let m = tm * 4u + j;
        let s = m / MS;
        let f = m % MS;
        if (s >= S) { continue; }
        let sg = segs[ti * S + s];
        if (f >= sg.out_len) { continue; }
        let oc = chan[sg.out_start + f];
        let bv = select(0.0, bias[min(oc, p.bias_max)], p.epi.has_bias != 0u);
        var a = acc0;
        if (j == 1u) {
            a = acc1;
        } else if (j == 2u) {
            a = acc2;
        } else if (j == 3u) {
            a = acc3;
        }
        let base = (n * p.geom.c_out + oc) * plane;
        for (var q = 0u; q < 4u; q++) {
            let pix = pb * 64u + tn * 4u + q;
            if (pix < plane) {
                out[base + pix] = act_t(act(a[q] + bv, p.epi));
            }
        }
    }
}
