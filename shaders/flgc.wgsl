// FLGC (Wang et al. 2019) training pieces: row softmax + argmax of the selection logits,
// the masked dense weight W ⊙ M, and the straight-through gradients of the selection logits.
//
// Shapes: selection logits S̄ [C, G] (input channels) and T̄ [N, G] (filters); weight
// [N, C, kk] (kk = kh·kw); M[n, c] = 1 iff out_index[n] == in_index[c]. Index arrays are u32.
// One invocation per output element or row; no fixed-size arrays, so G is arbitrary.
// The linear workgroup id is folded into 2-D above 65535 and bounds-checked against `p.total`.
//
// Bindings per entry point (unused ones are bound to any buffer of the right access):
//   select_rows:   fa = logits [R, G] -> out = probs [R, G], out_u = index [R]
//   masked_weight: fa = w [N, C, kk], ua = in_index [C], ub = out_index [N] -> out [N, C, kk]
//   mask_grad:     fa = D [N, C, kk], fb = w [N, C, kk]                  -> out = Gm [N, C]
//   select_in_grad:  fa = Gm [N, C], fb = probs_in [C, G],  ub = out_index [N] -> out [C, G]
//   select_out_grad: fa = Gm [N, C], fb = probs_out [N, G], ua = in_index [C]  -> out [N, G]
//   zero_dead_filters: ua = in_index [C], ub = out_index [N]            -> out = D [N, C, kk]
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/flgc.rs (see gpu::declare).

override WG: u32 = 64u;

// Row r (of p.total rows, G = p.groups each): probs = softmax(logits) with the CPU's order
// of operations (max, exp(v − max), running sum, divide) and index = argmax of the logits,
// ties to the lowest index (strict >, so NaN never wins).
@compute @workgroup_size(WG)
fn select_rows(id: Ids) {
    let r = flat(id, WG);
    if (r >= p.total) { return; }
    let base = r * p.groups;
    var best = 0u;
    var bv = fa[base];
    var m = fa[base];
    for (var j = 1u; j < p.groups; j++) {
        let v = fa[base + j];
        if (v > bv) {
            best = j;
            bv = v;
        }
        m = max(m, v);
    }
    var s = 0.0;
    for (var j = 0u; j < p.groups; j++) {
        let e = exp(fa[base + j] - m);
        out[base + j] = e;
        s += e;
    }
    for (var j = 0u; j < p.groups; j++) {
        out[base + j] = out[base + j] / s;
    }
    out_u[r] = best;
}

// out[n, c, k] = w[n, c, k] if out_index[n] == in_index[c] else 0.
@compute @workgroup_size(WG)
fn masked_weight(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.total) { return; }
    let nc = i / p.kk;
    let ci = nc % p.c;
    let n = nc / p.c;
    var v = 0.0;
    if (ub[n] == ua[ci]) {
        v = fa[i];
    }
    out[i] = v;
}

// Gm[n, c] = Σ_k D[n, c, k] · w[n, c, k] (∂L/∂M).
@compute @workgroup_size(WG)
fn mask_grad(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.total) { return; }
    let base = i * p.kk;
    var acc = 0.0;
    for (var k = 0u; k < p.kk; k++) {
        acc += fa[base + k] * fb[base + k];
    }
    out[i] = acc;
}

// ∂L/∂S̄[c, j] = P[c, j] · (ĝ_j − ⟨ĝ, P[c]⟩) with ĝ_j = Σ_{n: out_index[n] == j} Gm[n, c]
// (so ⟨ĝ, P[c]⟩ = Σ_n Gm[n, c] · P[c, out_index[n]]). One invocation per (c, j).
@compute @workgroup_size(WG)
fn select_in_grad(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.total) { return; }
    let j = i % p.groups;
    let ci = i / p.groups;
    let row = ci * p.groups;
    var gj = 0.0;
    var pdot = 0.0;
    for (var n = 0u; n < p.n; n++) {
        let v = fa[n * p.c + ci];
        let t = ub[n];
        if (t == j) {
            gj += v;
        }
        if (t < p.groups) {
            pdot += v * fb[row + t];
        }
    }
    out[i] = fb[i] * (gj - pdot);
}

// ∂L/∂T̄[n, j] = P[n, j] · (ĝ_j − ⟨ĝ, P[n]⟩) with ĝ_j = Σ_{c: in_index[c] == j} Gm[n, c].
// One invocation per (n, j).
@compute @workgroup_size(WG)
fn select_out_grad(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.total) { return; }
    let j = i % p.groups;
    let n = i / p.groups;
    let row = n * p.groups;
    let gbase = n * p.c;
    var gj = 0.0;
    var pdot = 0.0;
    for (var ci = 0u; ci < p.c; ci++) {
        let v = fa[gbase + ci];
        let s = ua[ci];
        if (s == j) {
            gj += v;
        }
        if (s < p.groups) {
            pdot += v * fb[row + s];
        }
    }
    out[i] = fb[i] * (gj - pdot);
}

// Zeroes D[n, :, :] (`out`, [N, C, kk]) for every filter n whose group has no input channel:
// such a filter outputs a constant, so it gets no weight or mask gradient (as the CPU's
// `flgc_conv2d_backward`). One invocation per filter: ua = in_index [C], ub = out_index [N].
@compute @workgroup_size(WG)
fn zero_dead_filters(id: Ids) {
    let n = flat(id, WG);
    if (n >= p.total) { return; }
    let j = ub[n];
    for (var ci = 0u; ci < p.c; ci++) {
        if (ua[ci] == j) { return; }
    }
    let row = p.c * p.kk;
    for (var k = 0u; k < row; k++) {
        out[n * row + k] = 0.0;
    }
}
