// Fully connected layer y = act(x W^T + b) over one row chunk of W.
// W may be split by rows into several buffers (one dispatch each) because a large
// classifier weight exceeds max_storage_buffer_binding_size. Chunk rows row0..row0+rows.
// One invocation per output feature; it walks its weight row once for 4 samples at a time.
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/linear.rs (see gpu::declare).

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn linear(id: Ids) {
    let j = flat(id, WG);
    if (j >= p.rows) { return; }
    let wrow = j * p.in_f;
    let o = p.row0 + j;
    var b = 0.0;
    if (p.epi.has_bias != 0u) {
        b = bias[o];
    }
    let last = p.batch - 1u;
    for (var n0 = 0u; n0 < p.batch; n0 += 4u) {
        let x0 = n0 * p.in_f;
        let x1 = min(n0 + 1u, last) * p.in_f;
        let x2 = min(n0 + 2u, last) * p.in_f;
        let x3 = min(n0 + 3u, last) * p.in_f;
        var acc = vec4<f32>(0.0);
        for (var k = 0u; k < p.in_f; k++) {
            let wv = w[wrow + k];
            acc += wv * vec4<f32>(f32(x[x0 + k]), f32(x[x1 + k]), f32(x[x2 + k]), f32(x[x3 + k]));
        }
        let v = act4(acc + vec4<f32>(b), p.epi);
        out[n0 * p.out_f + o] = act_t(v.x);
        if (n0 + 1u <= last) { out[(n0 + 1u) * p.out_f + o] = act_t(v.y); }
        if (n0 + 2u <= last) { out[(n0 + 2u) * p.out_f + o] = act_t(v.z); }
        if (n0 + 3u <= last) { out[(n0 + 3u) * p.out_f + o] = act_t(v.w); }
    }
}
