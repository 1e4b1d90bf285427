//! Generates `shaders/conv_grad_fast.wgsl`: the fixed passes (padding, weight packing,
//! split-K reduction, zero fill) and one entry point per row of [`plan::entries`], with the
//! register tile unrolled so its accumulators stay scalars that LLVM can keep in registers.
//!
//! `tests/gpu_conv_grad_fast.rs` regenerates the file and compares it with the committed one;
//! `GCONV_BLESS=1 cargo test --test gpu_conv_grad_fast generated` rewrites it.

use super::codegen_dw::{dw_generic, dw_special};
use super::emit::{w, C};
use super::head::HEAD;
use super::plan::{self, phase_taps, DxTile, EntryKind};
use std::collections::BTreeSet;
use std::fmt::Write;

/// The text of `shaders/conv_grad_fast.wgsl`.
pub fn wgsl() -> String {
    let mut s = String::from(HEAD);
    for e in plan::entries() {
        match &e.kind {
            EntryKind::Dx {
                geom: Some((g, ry, rx)),
                tile,
            } => dx_special(&mut s, &e.name, *g, (*ry, *rx), *tile),
            EntryKind::Dx { geom: None, tile } => dx_generic(&mut s, &e.name, *tile),
            EntryKind::Dw {
                geom: Some(g),
                tile,
            } => dw_special(&mut s, &e.name, *g, *tile),
            EntryKind::Dw { geom: None, tile } => dw_generic(&mut s, &e.name, *tile),
        }
    }
    s
}

/// Shared prologue of the input-gradient entries: the workgroup's (group, channel tile),
/// the lane's (sample, block), and the hoisted parameters.
fn dx_prologue(s: &mut String, name: &str, r: usize, pt: usize) {
    w!(s, "\n@compute @workgroup_size(8)\nfn {name}(id: Ids) {{");
    w!(s, "    let wid = linear_wg(id.wg, id.nwg);");
    w!(s, "    if (wid >= p.total) {{ return; }}");
    w!(
        s,
        "    let lanes = p.lanes;\n    let nct = p.nct;\n    let cout_g = p.cout_g;"
    );
    w!(
        s,
        "    let nblk = p.nblk;\n    let ncb = p.ncb;\n    let d_w4 = p.d_w4;"
    );
    w!(s, "    let pxw = (lanes + 7u) / 8u;");
    w!(
        s,
        "    let ct = (wid / pxw) % nct;\n    let g = (wid / pxw) / nct;"
    );
    w!(
        s,
        "    let lg = (wid % pxw) * 8u + id.li;\n    let live = lg < lanes;"
    );
    w!(
        s,
        "    let lc = min(lg, lanes - 1u);\n    let b = lc / nblk;\n    let blk = lc % nblk;"
    );
    w!(s, "    let u0 = p.u_lo + (blk / ncb) * {r}u;");
    w!(s, "    let vb = p.v_start + (blk % ncb) * {pt}u;");
    w!(
        s,
        "    let hp1 = p.d_rows - 1u;\n    let rb = u0 + p.ty;\n    let a0 = p.lx4 + vb / 4u;"
    );
    w!(s, "    let dstride = p.d_rows * d_w4;");
    w!(s, "    var dp = (b * p.geom.c_out + g * cout_g) * dstride;");
}

fn acc_names(mc: usize, r: usize, pt: usize) -> (bool, usize) {
    let _ = (r, pt);
    let vec = mc >= 4;
    (vec, if vec { mc / 4 } else { mc })
}

/// The stores of an input-gradient tile: channel m of the tile, row r, pixel j.
fn dx_epilogue(s: &mut String, t: DxTile) {
    let DxTile { mc, r, pt } = t;
    let (vec, _) = acc_names(mc, r, pt);
    w!(
        s,
        "    let hw = p.geom.h * p.geom.w;\n    let wd = p.geom.w;"
    );
    w!(s, "    let cin_g = p.cin_g;\n    let ic0 = ct * {mc}u;");
    w!(
        s,
        "    let cbase = (b * p.geom.c_in + g * cin_g + ic0) * hw;"
    );
    w!(
        s,
        "    let u_hi = p.u_hi;\n    let v_lo = p.v_lo;\n    let v_hi = p.v_hi;"
    );
    w!(s, "    let sh = p.geom.sh;\n    let sw = p.geom.sw;\n    let y0 = p.ry + u0 * sh - p.geom.ph;\n    let x0 = p.rx + vb * sw - p.geom.pw;");
    for i in 0..r {
        w!(s, "    let okr{i} = live && u0 + {i}u <= u_hi;");
        w!(s, "    let row{i} = (y0 + {i}u * sh) * wd;");
    }
    for j in 0..pt {
        w!(
            s,
            "    let okc{j} = vb + {j}u >= v_lo && vb + {j}u <= v_hi;"
        );
    }
    // A uniform branch: the overwriting form does not read dx.
    w!(s, "    if (p.accumulate != 0u) {{");
    dx_stores(s, t, vec, "out[k] + ");
    w!(s, "    }} else {{");
    dx_stores(s, t, vec, "");
    w!(s, "    }}\n}}");
}

fn dx_stores(s: &mut String, t: DxTile, vec: bool, add: &str) {
    let DxTile { mc, r, pt } = t;
    for m in 0..mc {
        w!(s, "    if (ic0 + {m}u < cin_g) {{");
        w!(s, "        let cb = cbase + {m}u * hw;");
        for i in 0..r {
            for j in 0..pt {
                let a = if vec {
                    format!("a{i}_{j}_{}.{}", m / 4, C[m % 4])
                } else {
                    format!("a{i}_{j}_{m}")
                };
                w!(s, "        if (okr{i} && okc{j}) {{ let k = cb + row{i} + x0 + {j}u * sw; out[k] = {add}{a}; }}");
            }
        }
        w!(s, "    }}");
    }
}

fn dx_accumulators(s: &mut String, t: DxTile) {
    let (vec, n) = acc_names(t.mc, t.r, t.pt);
    let z = if vec { "vec4<f32>(0.0)" } else { "0.0" };
    for i in 0..t.r {
        for j in 0..t.pt {
            for q in 0..n {
                w!(s, "    var a{i}_{j}_{q} = {z};");
            }
        }
    }
}

/// A specialised input-gradient entry: the taps of phase `(ry, rx)` of `g` unrolled; each
/// dy row the tile needs is loaded once per filter as vec4s (from the zero-padded copy, so
/// no bounds logic) and used for every tap and output row that reads it.
fn dx_special(s: &mut String, name: &str, g: plan::Geom, (ry, rx): (usize, usize), t: DxTile) {
    let [kh, kw, sh, sw, dh, dw] = g;
    let DxTile { mc, r, pt } = t;
    let ty = phase_taps(kh, sh, dh, ry);
    let tx = phase_taps(kw, sw, dw, rx);
    let ox_max = tx.iter().map(|x| x.1).max().unwrap_or(0);
    let k4 = ox_max.div_ceil(4);
    let nwv = (kw * mc).div_ceil(4);
    let (vec, nq) = acc_names(mc, r, pt);
    dx_prologue(s, name, r, pt);
    // Row offsets: t = r − ofs_y; rows below the last padded row re-read it (masked).
    let rows: BTreeSet<i64> = (0..r)
        .flat_map(|i| ty.iter().map(move |&(_, o)| i as i64 - o as i64))
        .collect();
    for &tr in &rows {
        let id = row_id(tr);
        let row = if tr >= 0 {
            format!("rb + {tr}u")
        } else {
            format!("rb - {}u", -tr)
        };
        w!(s, "    let ro{id} = min({row}, hp1) * d_w4 + a0 - {k4}u;");
    }
    w!(s, "    var wq = (g * nct + ct) * cout_g * {}u;", kh * nwv);
    dx_accumulators(s, t);
    w!(s, "    for (var o = 0u; o < cout_g; o++) {{");
    // dy vec4s needed: (row t, vec4 k).
    let mut need: BTreeSet<(i64, usize)> = BTreeSet::new();
    for i in 0..r {
        for &(_, oy) in &ty {
            for j in 0..pt {
                for &(_, ox) in &tx {
                    let rel = j + 4 * k4 - ox;
                    need.insert((i as i64 - oy as i64, rel / 4));
                }
            }
        }
    }
    for &(tr, k) in &need {
        let id = row_id(tr);
        w!(s, "        let d{id}_{k} = v0[dp + ro{id} + {k}u];");
    }
    let mut wneed: BTreeSet<(usize, usize)> = BTreeSet::new();
    for &(ky, _) in &ty {
        for &(kx, _) in &tx {
            for m in 0..mc {
                wneed.insert((ky, (kx * mc + m) / 4));
            }
        }
    }
    for &(ky, v) in &wneed {
        w!(s, "        let w{ky}_{v} = v1[wq + {}u];", ky * nwv + v);
    }
    for i in 0..r {
        for j in 0..pt {
            for q in 0..nq {
                let mut terms = Vec::new();
                for &(ky, oy) in &ty {
                    let id = row_id(i as i64 - oy as i64);
                    for &(kx, ox) in &tx {
                        let rel = j + 4 * k4 - ox;
                        let d = format!("d{id}_{}.{}", rel / 4, C[rel % 4]);
                        if vec {
                            let e = kx * mc + 4 * q;
                            terms.push(format!("vec4<f32>({d}) * w{ky}_{}", e / 4));
                        } else {
                            let e = kx * mc + q;
                            terms.push(format!("{d} * w{ky}_{}.{}", e / 4, C[e % 4]));
                        }
                    }
                }
                w!(s, "        a{i}_{j}_{q} += {};", terms.join(" + "));
            }
        }
    }
    w!(
        s,
        "        dp += dstride;\n        wq += {}u;\n    }}",
        kh * nwv
    );
    dx_epilogue(s, t);
}

fn row_id(t: i64) -> String {
    if t >= 0 {
        format!("{t}")
    } else {
        format!("m{}", -t)
    }
}

/// The generic input-gradient entry: runtime taps (any kernel, stride, dilation), one row,
/// dy elements picked out of vec4 loads with a runtime shift.
fn dx_generic(s: &mut String, name: &str, t: DxTile) {
    let DxTile { mc, r, pt } = t;
    let (vec, nq) = acc_names(mc, r, pt);
    dx_prologue(s, name, r, pt);
    w!(
        s,
        "    let nky = p.nky;\n    let nkx = p.nkx;\n    let nwv = p.nwv;\n    let kh = p.geom.kh;"
    );
    w!(
        s,
        "    let ky0 = p.ky0;\n    let kys = p.kys;\n    let oy0 = p.oy0;\n    let oys = p.oys;"
    );
    w!(
        s,
        "    let kx0 = p.kx0;\n    let kxs = p.kxs;\n    let ox0 = p.ox0;\n    let oxs = p.oxs;"
    );
    w!(s, "    let col = p.lx4 * 4u + vb;");
    w!(s, "    var wq = (g * nct + ct) * cout_g * kh * nwv;");
    dx_accumulators(s, t);
    w!(s, "    for (var o = 0u; o < cout_g; o++) {{");
    w!(s, "        for (var iy = 0u; iy < nky; iy++) {{");
    w!(s, "            let row = min(rb - (oy0 + iy * oys), hp1);");
    w!(s, "            let wr = wq + (ky0 + iy * kys) * nwv;");
    w!(s, "            for (var ix = 0u; ix < nkx; ix++) {{");
    w!(s, "                let kx = kx0 + ix * kxs;");
    w!(
        s,
        "                let f = (dp + row * d_w4) * 4u + col - (ox0 + ix * oxs);"
    );
    w!(
        s,
        "                let f4 = f >> 2u;\n                let sft = f & 3u;"
    );
    w!(s, "                let s1 = sft == 1u;\n                let s2 = sft >= 2u;\n                let s3 = sft == 3u;");
    let nv = pt / 4 + 1;
    for k in 0..nv {
        w!(s, "                let e{k} = v0[f4 + {k}u];");
    }
    let el = |i: usize| format!("e{}.{}", i / 4, C[i % 4]);
    for j in 0..pt {
        w!(
            s,
            "                let d{j} = select(select({}, {}, s1), select({}, {}, s3), s2);",
            el(j),
            el(j + 1),
            el(j + 2),
            el(j + 3)
        );
    }
    if vec {
        for q in 0..nq {
            w!(
                s,
                "                let w{q} = v1[wr + kx * {}u + {q}u];",
                mc / 4
            );
        }
    } else {
        for m in 0..mc {
            w!(s, "                let we{m} = kx * {mc}u + {m}u;");
            w!(
                s,
                "                let w{m} = v1[wr + we{m} / 4u][we{m} % 4u];"
            );
        }
    }
    for j in 0..pt {
        for q in 0..nq {
            if vec {
                w!(s, "                a0_{j}_{q} += vec4<f32>(d{j}) * w{q};");
            } else {
                w!(s, "                a0_{j}_{q} += d{j} * w{q};");
            }
        }
    }
    w!(s, "            }}\n        }}");
    w!(s, "        dp += dstride;\n        wq += kh * nwv;\n    }}");
    dx_epilogue(s, t);
}
