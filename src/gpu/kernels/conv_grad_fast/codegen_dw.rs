//! The weight-gradient entry points of `shaders/conv_grad_fast.wgsl` (see [`super::codegen`]).

use super::emit::{w, C};
use super::plan::DwTile;
use std::fmt::Write;

/// Shared prologue of the weight-gradient entries: the invocation's (tile, K chunk) and the
/// clamped channels it reads.
fn dw_prologue(s: &mut String, name: &str, t: DwTile, taps: bool) {
    let DwTile { mo, ci, .. } = t;
    w!(s, "\n@compute @workgroup_size(8)\nfn {name}(id: Ids) {{");
    w!(s, "    let i = flat(id, 8u);");
    w!(s, "    if (i >= p.total) {{ return; }}");
    w!(
        s,
        "    let nch = p.n_chunks;\n    let chunk = i % nch;\n    var tile = i / nch;"
    );
    if taps {
        w!(
            s,
            "    let ntap = p.geom.kh * p.geom.kw;\n    let tap = tile % ntap;\n    tile = tile / ntap;"
        );
    }
    w!(s, "    let nct = p.nct;\n    let ct = tile % nct;\n    let ot = (tile / nct) % p.n_ot;\n    let g = (tile / nct) / p.n_ot;");
    w!(s, "    let cin_g = p.cin_g;\n    let cout_g = p.cout_g;");
    w!(s, "    let o0 = ot * {mo}u;\n    let c0 = ct * {ci}u;");
    w!(s, "    let c_in = p.geom.c_in;\n    let c_out = p.geom.c_out;\n    let oh = p.geom.oh;\n    let ncb = p.ncb;");
    w!(s, "    let d_rows = p.d_rows;\n    let d_w4 = p.d_w4;\n    let x_rows = p.x_rows;\n    let x_w4 = p.x_w4;");
    w!(
        s,
        "    let sh = p.geom.sh;\n    let dh = p.geom.dh;\n    let dty = p.ty;\n    let dlx4 = p.lx4;"
    );
    for m in 0..mo {
        w!(
            s,
            "    let oc{m} = g * cout_g + min(o0 + {m}u, cout_g - 1u);"
        );
    }
    for c in 0..ci {
        w!(s, "    let cc{c} = g * cin_g + min(c0 + {c}u, cin_g - 1u);");
    }
    w!(
        s,
        "    let ub = chunk * p.chunk_units;\n    let ue = min(ub + p.chunk_units, p.units);"
    );
    // The step's (sample, row, block), advanced by counters (no division per step).
    w!(
        s,
        "    var cb = ub % ncb;\n    var oy = (ub / ncb) % oh;\n    var b = (ub / ncb) / oh;"
    );
}

/// Advances the step counters of a weight-gradient K loop.
fn dw_next(s: &mut String) {
    w!(s, "        cb += 1u;\n        if (cb == ncb) {{ cb = 0u; oy += 1u; }}\n        if (oy == oh) {{ oy = 0u; b += 1u; }}");
}

/// One K step's dy loads of a weight-gradient tile: `dy{m}_{k}` for filter m.
fn dw_dy_loads(s: &mut String, t: DwTile) {
    w!(
        s,
        "        let drow = (oy + dty) * d_w4 + dlx4 + cb * {}u;",
        t.pt / 4
    );
    for m in 0..t.mo {
        w!(
            s,
            "        let db{m} = (b * c_out + oc{m}) * d_rows * d_w4 + drow;"
        );
        for k in 0..t.pt / 4 {
            w!(s, "        let dy{m}_{k} = v1[db{m} + {k}u];");
        }
    }
}

fn dw_store(
    s: &mut String,
    t: DwTile,
    taps: &[(usize, usize)],
    tap_expr: &dyn Fn(usize, usize) -> String,
) {
    w!(
        s,
        "    let base = chunk * p.nw;\n    let kk = p.geom.kh * p.geom.kw;"
    );
    for m in 0..t.mo {
        for c in 0..t.ci {
            w!(s, "    if (o0 + {m}u < cout_g && c0 + {c}u < cin_g) {{");
            w!(
                s,
                "        let e = base + ((g * cout_g + o0 + {m}u) * cin_g + c0 + {c}u) * kk;"
            );
            for &(ky, kx) in taps {
                w!(
                    s,
                    "        out[e + {}] = a{m}_{c}_{ky}_{kx};",
                    tap_expr(ky, kx)
                );
            }
            w!(s, "    }}");
        }
    }
    w!(s, "}}");
}

/// A specialised weight-gradient entry: filters × channels × every tap of `[kh, kw]` in
/// scalar accumulators, summed over this invocation's K chunk of `pt`-pixel steps.
pub(super) fn dw_special(s: &mut String, name: &str, [kh, kw, sw, dw]: [usize; 4], t: DwTile) {
    let DwTile { mo, ci, pt } = t;
    dw_prologue(s, name, t, false);
    let span = ((pt - 1) * sw + (kw - 1) * dw + 1).div_ceil(4);
    let taps: Vec<(usize, usize)> = (0..kh).flat_map(|y| (0..kw).map(move |x| (y, x))).collect();
    for m in 0..mo {
        for c in 0..ci {
            for &(ky, kx) in &taps {
                w!(s, "    var a{m}_{c}_{ky}_{kx} = 0.0;");
            }
        }
    }
    w!(s, "    for (var u = ub; u < ue; u++) {{");
    dw_dy_loads(s, t);
    w!(
        s,
        "        let xr = oy * sh;\n        let xc = cb * {}u;",
        pt * sw / 4
    );
    for c in 0..ci {
        w!(s, "        let xb{c} = (b * c_in + cc{c}) * x_rows + xr;");
        for ky in 0..kh {
            w!(
                s,
                "        let xrow{c}_{ky} = (xb{c} + {ky}u * dh) * x_w4 + xc;"
            );
            for k in 0..span {
                w!(s, "        let x{c}_{ky}_{k} = v0[xrow{c}_{ky} + {k}u];");
            }
        }
    }
    for m in 0..mo {
        for c in 0..ci {
            for &(ky, kx) in &taps {
                let terms: Vec<String> = (0..pt)
                    .map(|j| {
                        let e = j * sw + kx * dw;
                        format!(
                            "dy{m}_{}.{} * x{c}_{ky}_{}.{}",
                            j / 4,
                            C[j % 4],
                            e / 4,
                            C[e % 4]
                        )
                    })
                    .collect();
                w!(s, "        a{m}_{c}_{ky}_{kx} += {};", terms.join(" + "));
            }
        }
    }
    dw_next(s);
    w!(s, "    }}");
    dw_store(s, t, &taps, &|ky, kx| format!("{}u", ky * kw + kx));
}

/// The generic weight-gradient entry: one tap per invocation (runtime kernel, stride,
/// dilation), x elements picked out of vec4 loads one by one.
pub(super) fn dw_generic(s: &mut String, name: &str, t: DwTile) {
    let DwTile { mo, ci, pt } = t;
    dw_prologue(s, name, t, true);
    w!(s, "    let ky = tap / p.geom.kw;\n    let kx = tap % p.geom.kw;\n    let sw = p.geom.sw;\n    let kxo = kx * p.geom.dw;");
    for m in 0..mo {
        for c in 0..ci {
            w!(s, "    var a{m}_{c}_0_0 = 0.0;");
        }
    }
    w!(s, "    for (var u = ub; u < ue; u++) {{");
    dw_dy_loads(s, t);
    w!(
        s,
        "        let xr = oy * sh + ky * dh;\n        let xc = cb * {pt}u * sw + kxo;"
    );
    for c in 0..ci {
        w!(
            s,
            "        let xf{c} = ((b * c_in + cc{c}) * x_rows + xr) * x_w4 * 4u + xc;"
        );
        for j in 0..pt {
            w!(s, "        let xe{c}_{j} = xf{c} + {j}u * sw;");
            w!(
                s,
                "        let x{c}_{j} = v0[xe{c}_{j} >> 2u][xe{c}_{j} & 3u];"
            );
        }
    }
    for m in 0..mo {
        for c in 0..ci {
            let terms: Vec<String> = (0..pt)
                .map(|j| format!("dy{m}_{}.{} * x{c}_{j}", j / 4, C[j % 4]))
                .collect();
            w!(s, "        a{m}_{c}_0_0 += {};", terms.join(" + "));
        }
    }
    dw_next(s);
    w!(s, "    }}");
    dw_store(s, t, &[(0, 0)], &|_, _| "tap".to_string());
}
