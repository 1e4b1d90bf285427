// 2-D pooling over NCHW planes and its backward, one invocation per element:
//   max_pool           max of the window (padding acts as -inf; NaN propagates)
//   avg_pool           mean of the window, padded zeros counted (PyTorch's default)
//   adaptive_avg_pool  PyTorch's bin edges floor(i*n/o) .. ceil((i+1)*n/o)
// Backward in gather form, one invocation per INPUT element summing the gradients of every
// window containing it (no atomics), written (=) or added (+=) to `out` per p.accumulate:
//   max_pool_backward           to the window's FIRST maximum in row-major scan order
//                               (strictly greater replaces; a NaN replaces, as the CPU)
//   avg_pool_backward           dy / (kh*kw) to every in-bounds position
//   adaptive_avg_pool_backward  dy / bin size
//
// `p: Params` and the bindings are generated from the declaration in
// src/gpu/kernels/pool.rs (see gpu::declare).

// `x` is the forward input (backward: max pooling reads it; the others bind dy there);
// `dy` the output gradient (forward: bound to x, unused).

override WG: u32 = 64u;

// Window of output (oy, ox) clipped to the image: [y0, y1) x [x0, x1).
fn window(oy: u32, ox: u32) -> vec4<u32> {
    let y0 = i32(oy * p.geom.sh) - i32(p.geom.ph);
    let x0 = i32(ox * p.geom.sw) - i32(p.geom.pw);
    let y1 = min(y0 + i32(p.geom.kh), i32(p.geom.h));
    let x1 = min(x0 + i32(p.geom.kw), i32(p.geom.w));
    return vec4<u32>(u32(max(y0, 0)), u32(max(y1, 0)), u32(max(x0, 0)), u32(max(x1, 0)));
}

// Element i of planes of w × h: (x, y, plane).
fn at(i: u32, w: u32, h: u32) -> vec3<u32> {
    return vec3<u32>(i % w, (i / w) % h, i / (w * h));
}

// Adaptive-pooling bin of output (oy, ox): [y0, y1) x [x0, x1), PyTorch's edges.
fn bin(oy: u32, ox: u32) -> vec4<u32> {
    let y0 = oy * p.geom.h / p.geom.oh;
    let y1 = ((oy + 1u) * p.geom.h + p.geom.oh - 1u) / p.geom.oh;
    let x0 = ox * p.geom.w / p.geom.ow;
    let x1 = ((ox + 1u) * p.geom.w + p.geom.ow - 1u) / p.geom.ow;
    return vec4<u32>(y0, y1, x0, x1);
}

// Sum of x over the rectangle r = [y0, y1) x [x0, x1) of the plane at base.
fn window_sum(base: u32, r: vec4<u32>) -> f32 {
    var s = 0.0;
    for (var iy = r.x; iy < r.y; iy++) {
        for (var ix = r.z; ix < r.w; ix++) {
            s += f32(x[base + iy * p.geom.w + ix]);
        }
    }
    return s;
}

@compute @workgroup_size(WG)
fn max_pool(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) { return; }
    let o = at(i, p.geom.ow, p.geom.oh);
    let base = o.z * p.geom.h * p.geom.w;
    let r = window(o.y, o.x);
    // A window entirely in the padding gives -inf, like the CPU reference.
    var m = p.neg_inf;
    for (var iy = r.x; iy < r.y; iy++) {
        for (var ix = r.z; ix < r.w; ix++) {
            // NaN propagates, as on the CPU.
            let v = f32(x[base + iy * p.geom.w + ix]);
            if (v > m || v != v) {
                m = v;
            }
        }
    }
    out[i] = act_t(m);
}

@compute @workgroup_size(WG)
fn avg_pool(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) { return; }
    let o = at(i, p.geom.ow, p.geom.oh);
    let base = o.z * p.geom.h * p.geom.w;
    let r = window(o.y, o.x);
    let s = window_sum(base, r);
    out[i] = act_t(s / f32(p.geom.kh * p.geom.kw));
}

@compute @workgroup_size(WG)
fn adaptive_avg_pool(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) { return; }
    let o = at(i, p.geom.ow, p.geom.oh);
    let base = o.z * p.geom.h * p.geom.w;
    let r = bin(o.y, o.x);
    let s = window_sum(base, r);
    out[i] = act_t(s / f32((r.y - r.x) * (r.w - r.z)));
}

fn store(i: u32, v: f32) {
    out[i] = act_t(accumulated(f32(out[i]), v, p.accumulate));
}

// Outputs o along one axis whose window [o*s - pad, o*s - pad + k) contains input i:
// [lo, hi) (empty when lo >= hi).
fn out_range(i: u32, k: u32, s: u32, pad: u32, o: u32) -> vec2<u32> {
    let t = i + pad;
    // o*s <= t  and  o*s + k > t
    var lo = 0u;
    if (t + 1u > k) {
        lo = (t + 1u - k + s - 1u) / s;
    }
    let hi = min(t / s + 1u, o);
    return vec2<u32>(lo, hi);
}

@compute @workgroup_size(WG)
fn max_pool_backward(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) { return; }
    let q = at(i, p.geom.w, p.geom.h);
    let plane = q.z;
    let base = plane * p.geom.h * p.geom.w;
    let me = q.y * p.geom.w + q.x;
    let ry = out_range(q.y, p.geom.kh, p.geom.sh, p.geom.ph, p.geom.oh);
    let rx = out_range(q.x, p.geom.kw, p.geom.sw, p.geom.pw, p.geom.ow);
    var acc = 0.0;
    for (var oy = ry.x; oy < ry.y; oy++) {
        for (var ox = rx.x; ox < rx.y; ox++) {
            let r = window(oy, ox);
            // First maximum of the clipped window, in the CPU's scan order.
            var best = r.x * p.geom.w + r.z;
            var bv = f32(x[base + best]);
            for (var yy = r.x; yy < r.y; yy++) {
                for (var xx = r.z; xx < r.w; xx++) {
                    let v = f32(x[base + yy * p.geom.w + xx]);
                    if (v > bv || v != v) {
                        best = yy * p.geom.w + xx;
                        bv = v;
                    }
                }
            }
            if (best == me) {
                acc += dy[(plane * p.geom.oh + oy) * p.geom.ow + ox];
            }
        }
    }
    store(i, acc);
}

@compute @workgroup_size(WG)
fn avg_pool_backward(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) { return; }
    let q = at(i, p.geom.w, p.geom.h);
    let plane = q.z;
    let ry = out_range(q.y, p.geom.kh, p.geom.sh, p.geom.ph, p.geom.oh);
    let rx = out_range(q.x, p.geom.kw, p.geom.sw, p.geom.pw, p.geom.ow);
    let count = f32(p.geom.kh * p.geom.kw);
    var acc = 0.0;
    for (var oy = ry.x; oy < ry.y; oy++) {
        for (var ox = rx.x; ox < rx.y; ox++) {
            acc += dy[(plane * p.geom.oh + oy) * p.geom.ow + ox] / count;
        }
    }
    store(i, acc);
}

// Bins o along one axis (n inputs, o outputs) containing input i:
// floor(o*n/out) <= i < ceil((o+1)*n/out)  <=>  floor(i*out/n) <= o < ceil((i+1)*out/n).
fn bin_range(i: u32, n: u32, o: u32) -> vec2<u32> {
    let lo = i * o / n;
    let hi = min(((i + 1u) * o + n - 1u) / n, o);
    return vec2<u32>(lo, hi);
}

@compute @workgroup_size(WG)
fn adaptive_avg_pool_backward(id: Ids) {
    let i = flat(id, WG);
    if (i >= p.len) { return; }
    let q = at(i, p.geom.w, p.geom.h);
    let plane = q.z;
    let ry = bin_range(q.y, p.geom.h, p.geom.oh);
    let rx = bin_range(q.x, p.geom.w, p.geom.ow);
    var acc = 0.0;
    for (var oy = ry.x; oy < ry.y; oy++) {
        for (var ox = rx.x; ox < rx.y; ox++) {
            let r = bin(oy, ox);
            acc += dy[(plane * p.geom.oh + oy) * p.geom.ow + ox] / f32((r.y - r.x) * (r.w - r.z));
        }
    }
    store(i, acc);
}
