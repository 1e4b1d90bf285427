// Training batch normalisation over x [batch, channels, hw] and its backward.
//
// Forward (two dispatches):
//   bn_stats      one workgroup per channel: batch mean, biased variance (two passes over
//                 the channel), stats = [mean; C] ++ [invstd; C], PyTorch's running update
//                 with the unbiased variance n/(n-1).
//   bn_normalize  one invocation per element: y = act((x - mean) * invstd * gamma + beta).
// Backward (two dispatches):
//   bn_grad_params  one workgroup per channel: dbeta = sum dy, dgamma = sum dy * xhat.
//   bn_grad_input   one invocation per element (gather form):
//                   dx = gamma * invstd * (dy - dbeta/n - xhat * dgamma/n), = or += per p.accumulate.
//
// One bind-group layout serves both directions:
//            forward          backward
//   r1       x                x
//   r2       gamma            gamma
//   r3       beta             stats
//   r4       (x again)        grad_out
//   w5       y                grad_in
//   w6       stats            grad_gamma
//   w7       running_mean     grad_beta
//   w8       running_var      (4-byte scratch, unused)
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/norm_train.rs (see gpu::declare).

// Element-wise entry points.
override WG: u32 = 64u;
// Reduction workgroup size (a power of two; sizes the shared array).
const RWG: u32 = 256u;

var<workgroup> red: array<f32, RWG>;

// Sum of `v` over the workgroup; every invocation gets the result. Call from uniform control flow.
fn workgroup_sum(li: u32, v: f32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var s = RWG / 2u; s > 0u; s = s >> 1u) {
        if (li < s) {
            red[li] += red[li + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// Index of the k-th value (k < n) of channel c.
fn channel_index(c: u32, k: u32) -> u32 {
    return ((k / p.hw) * p.channels + c) * p.hw + k % p.hw;
}

@compute @workgroup_size(RWG)
fn bn_stats(id: Ids) {
    let c = linear_wg(id.wg, id.nwg);
    let in_range = c < p.channels;
    var s = 0.0;
    if (in_range) {
        for (var k = id.li; k < p.n; k += RWG) {
            s += r1[channel_index(c, k)];
        }
    }
    let mean = workgroup_sum(id.li, s) / f32(p.n);
    var q = 0.0;
    if (in_range) {
        for (var k = id.li; k < p.n; k += RWG) {
            let d = r1[channel_index(c, k)] - mean;
            q += d * d;
        }
    }
    let ss = workgroup_sum(id.li, q);
    if (in_range && id.li == 0u) {
        let var_biased = ss / f32(p.n);
        let var_unbiased = ss / f32(p.n - 1u);
        w6[c] = mean;
        w6[p.channels + c] = 1.0 / sqrt(var_biased + p.eps);
        w7[c] = (1.0 - p.momentum) * w7[c] + p.momentum * mean;
        w8[c] = (1.0 - p.momentum) * w8[c] + p.momentum * var_unbiased;
    }
}

@compute @workgroup_size(WG)
fn bn_normalize(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) { return; }
    let c = (i / p.hw) % p.channels;
    w5[i] = act((r1[i] - w6[c]) * w6[p.channels + c] * r2[c] + r3[c], p.epi);
}

@compute @workgroup_size(RWG)
fn bn_grad_params(id: Ids) {
    let c = linear_wg(id.wg, id.nwg);
    let in_range = c < p.channels;
    var sdy = 0.0;
    var sdyx = 0.0;
    if (in_range) {
        let mean = r3[c];
        let invstd = r3[p.channels + c];
        for (var k = id.li; k < p.n; k += RWG) {
            let j = channel_index(c, k);
            let dy = r4[j];
            sdy += dy;
            sdyx += dy * ((r1[j] - mean) * invstd);
        }
    }
    let dbeta = workgroup_sum(id.li, sdy);
    let dgamma = workgroup_sum(id.li, sdyx);
    if (in_range && id.li == 0u) {
        w6[c] = dgamma;
        w7[c] = dbeta;
    }
}

@compute @workgroup_size(WG)
fn bn_grad_input(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) { return; }
    let c = (i / p.hw) % p.channels;
    let invstd = r3[p.channels + c];
    let xhat = (r1[i] - r3[c]) * invstd;
    let nf = f32(p.n);
    let v = r2[c] * invstd * (r4[i] - w7[c] / nf - xhat * (w6[c] / nf));
    w5[i] = accumulated(w5[i], v, p.accumulate);
}
