// GENERATED from shaders/gemv_wide.wgsl by src/gpu/codegen/mod.rs (gemv_wide_f16): edit those, not this file.
// The f16-weight twin: `w` holds 4 halves per vec2<u32>.
// GEMV for real GPUs: out[n, row0 + j] = act(x[n]·W[j] + b) over one row chunk of W, for up
// to 4 samples per workgroup. A workgroup of 256 invocations takes 2 weight rows: the
// invocations stride along K with vec4 loads (consecutive invocations read consecutive
// vec4s of a row: coalesced, every memory channel busy), keep 2 × 4 partial sums, then add
// them up in workgroup memory (a tree of 8 steps). Enough workgroups for any chip: one per
// 2 rows (4096 rows: 2048).
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/gemv_wide.rs. `shaders/gemv_wide_f16.wgsl` is this file with the weights
// stored as halves: generated (src/gpu/codegen/mod.rs) by replacing the one line of `w4`.

var<workgroup> red: array<f32, 2048>;

// The weights' vec4 `i` (of the chunk, row-major).
fn w4(i: u32) -> vec4<f32> { let h = w[i]; return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y)); }

@compute @workgroup_size(256)
fn gemv_wide(id: Ids) {
    let li = id.li;
    let wid_raw = linear_wg(id.wg, id.nwg);
    let live = wid_raw < p.total_wg;
    let wid = min(wid_raw, p.total_wg - 1u);
    let rg = wid % p.row_groups;
    let n0 = (wid / p.row_groups) * 4u;
    let j0 = rg * 2u;
    let j1 = j0 + 1u;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    for (var k = li; k < p.in4; k += 256u) {
        let w0 = select(vec4<f32>(0.0), w4(j0 * p.in4 + k), j0 < p.rows);
        let w1 = select(vec4<f32>(0.0), w4(min(j1, p.rows - 1u) * p.in4 + k), j1 < p.rows);
        var xs: array<vec4<f32>, 4>;
        for (var b = 0u; b < 4u; b++) {
            let n = n0 + b;
            xs[b] = select(vec4<f32>(0.0), vec4<f32>(x[min(n, p.batch - 1u) * p.in4 + k]), n < p.batch);
        }
        a0 += vec4<f32>(dot(w0, xs[0]), dot(w0, xs[1]), dot(w0, xs[2]), dot(w0, xs[3]));
        a1 += vec4<f32>(dot(w1, xs[0]), dot(w1, xs[1]), dot(w1, xs[2]), dot(w1, xs[3]));
    }
    for (var b = 0u; b < 4u; b++) {
        red[b * 256u + li] = a0[b];
        red[(4u + b) * 256u + li] = a1[b];
    }
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride = stride / 2u) {
        if (li < stride) {
            for (var v = 0u; v < 8u; v++) {
                red[v * 256u + li] += red[v * 256u + li + stride];
            }
        }
        workgroupBarrier();
    }
    if (!live || li >= 8u) {
        return;
    }
    let j = j0 + li / 4u;
    let n = n0 + li % 4u;
    if (j >= p.rows || n >= p.batch) {
        return;
    }
    let o = p.row0 + j;
    let bv = select(0.0, bias[min(o, p.bias_max)], p.epi.has_bias != 0u);
    out[n * p.out_f + o] = act_t(act(red[li * 256u] + bv, p.epi));
}
