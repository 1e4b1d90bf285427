// Mean softmax cross-entropy of logits [batch, classes] against u32 labels [batch], one
// invocation per sample (stable log-sum-exp, the CPU's order of operations):
//   grad_logits[b, k] = (softmax(logits[b])[k] - (k == label)) / batch
//   per_sample[2b]     = lse(logits[b]) - logits[b, label]        (the sample's loss)
//   per_sample[2b + 1] = 1.0 if argmax_k logits[b, k] (ties -> lowest k) == label else 0.0
// A label >= classes is not read out of bounds: that sample's loss is NaN, its flag 0 and
// its gradient row 0 (so one bad label cannot move the weights but shows in the loss).
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/loss.rs (see gpu::declare).

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn softmax_cross_entropy(id: Ids) {
    let r = flat(id, WG);
    if (r >= p.batch) { return; }
    let base = r * p.classes;
    let label = labels[r];
    if (label >= p.classes) {
        for (var k = 0u; k < p.classes; k++) {
            grad_logits[base + k] = 0.0;
        }
        per_sample[2u * r] = p.nan;
        per_sample[2u * r + 1u] = 0.0;
        return;
    }
    var best = 0u;
    var m = logits[base];
    for (var k = 1u; k < p.classes; k++) {
        let v = logits[base + k];
        if (v > m) {
            m = v;
            best = k;
        }
    }
    var s = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        s += exp(logits[base + k] - m);
    }
    let lse = m + log(s);
    let nb = f32(p.batch);
    for (var k = 0u; k < p.classes; k++) {
        var g = exp(logits[base + k] - lse);
        if (k == label) {
            g -= 1.0;
        }
        grad_logits[base + k] = g / nb;
    }
    per_sample[2u * r] = lse - logits[base + label];
    per_sample[2u * r + 1u] = select(0.0, 1.0, best == label);
}
