// Backward of a fully connected layer y = x W^T + b with x [batch, in], W [out, in]
// (row-major), dy [batch, out], over one chunk of W's rows row0 .. row0+rows (a weight
// larger than a storage binding is split by rows). One invocation per element of the
// gradient it writes (gather form, sums in a fixed order, no atomics):
//   linear_grad_input   dx[b, i] (+)= sum_j dy[b, row0+j] * W[j, i]  (a = dy, b = W chunk)
//   linear_grad_weight  dW[j, i] = sum_b dy[b, row0+j] * x[b, i]    (a = dy, b = x; overwritten)
//   linear_grad_bias    db[j]    = sum_b dy[b, j], all rows          (a = dy, b = dy; overwritten)
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/linear_backward.rs (see gpu::declare).

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn linear_grad_input(id: Ids) {
    let e = flat(id, WG);
    if (e >= p.batch * p.in_features) { return; }
    let i = e % p.in_features;
    let n = e / p.in_features;
    var s = 0.0;
    for (var j = 0u; j < p.rows; j++) {
        s += a[n * p.out_features + p.row0 + j] * b[j * p.in_features + i];
    }
    out[e] = accumulated(out[e], s, p.accumulate);
}

@compute @workgroup_size(WG)
fn linear_grad_weight(id: Ids) {
    let e = flat(id, WG);
    if (e >= p.rows * p.in_features) { return; }
    let i = e % p.in_features;
    let j = p.row0 + e / p.in_features;
    var s = 0.0;
    for (var n = 0u; n < p.batch; n++) {
        s += a[n * p.out_features + j] * b[n * p.in_features + i];
    }
    out[e] = s;
}

@compute @workgroup_size(WG)
fn linear_grad_bias(id: Ids) {
    let j = flat(id, WG);
    if (j >= p.out_features) { return; }
    var s = 0.0;
    for (var n = 0u; n < p.batch; n++) {
        s += a[n * p.out_features + j];
    }
    out[j] = s;
}
