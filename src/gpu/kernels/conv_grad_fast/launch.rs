//! The calls of one input or weight gradient: geometry, padding, tile choice, grids.

use super::plan::{self, phase_taps, DwTile, DxTile, EntryKind};
use super::{call, entry_name, fits, fits_u32, scratch_arg, GradFastParams};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::conv::{ConvShape, Scratch};
use crate::gpu::kernels::{check_arg, Arg, Call};

/// The geometry the kernels see: a 1×1, stride-1, unpadded layer is one row of H·W pixels.
#[derive(Clone, Copy, Debug)]
struct Eff {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    k: [usize; 2],
    s: [usize; 2],
    d: [usize; 2],
    p: [usize; 2],
}

impl Eff {
    fn of(s: &ConvShape<'_>, [oh, ow]: [usize; 2]) -> Self {
        let spec = s.spec;
        let [h, w] = s.in_hw;
        if spec.kernel == [1, 1] && spec.stride == [1, 1] && spec.padding == [0, 0] {
            return Self {
                h: 1,
                w: h * w,
                oh: 1,
                ow: h * w,
                k: [1, 1],
                s: [1, 1],
                d: [1, 1],
                p: [0, 0],
            };
        }
        Self {
            h,
            w,
            oh,
            ow,
            k: spec.kernel,
            s: spec.stride,
            d: spec.dilation,
            p: spec.padding,
        }
    }
}

/// Checks the shape and returns `(output hw, C/G, N/G, G)`.
fn layer(label: &str, s: &ConvShape<'_>) -> Result<([usize; 2], usize, usize, usize)> {
    let ohw = s.out_hw(label)?;
    let spec = s.spec;
    if !fits(spec) {
        return Err(Error::shape(
            label,
            format!(
                "groups {} must divide in_channels {} and out_channels {}",
                spec.groups, spec.in_channels, spec.out_channels
            ),
        ));
    }
    let g = spec.groups;
    Ok((ohw, spec.in_channels / g, spec.out_channels / g, g))
}

fn base_params(s: &ConvShape<'_>, e: &Eff, cin_g: usize, cout_g: usize) -> GradFastParams {
    let spec = s.spec;
    let u = |v: usize| v as u32;
    GradFastParams {
        batch: u(s.batch),
        c_in: u(spec.in_channels),
        c_out: u(spec.out_channels),
        cin_g: u(cin_g),
        cout_g: u(cout_g),
        h: u(e.h),
        w: u(e.w),
        oh: u(e.oh),
        ow: u(e.ow),
        kh: u(e.k[0]),
        kw: u(e.k[1]),
        sh: u(e.s[0]),
        sw: u(e.s[1]),
        dh: u(e.d[0]),
        dw: u(e.d[1]),
        ph: u(e.p[0]),
        pw: u(e.p[1]),
        nw: u(spec.out_channels * cin_g * e.k[0] * e.k[1]),
        ..Default::default()
    }
}

/// A zero-padding copy of `src` (`planes` planes of `[src_h, src_w]`) into `dst`
/// (`[planes, rows, 4·w4]`, `top` zero rows and `left` zero columns first).
#[allow(clippy::too_many_arguments)]
fn pad(
    ctx: &GpuContext,
    label: &str,
    base: &GradFastParams,
    (planes, src_h, src_w): (usize, usize, usize),
    (rows, w4, top, left): (usize, usize, usize, usize),
    (src, dummy, dst): (&Arg, &Arg, &Arg),
) -> Result<Call> {
    fits_u32(label, "padded copy", planes * rows * w4)?;
    let n = planes * rows;
    let p = GradFastParams {
        total: n as u32,
        pad_rows: rows as u32,
        pad_w4: w4 as u32,
        pad_top: top as u32,
        pad_left: left as u32,
        pad_rs: 1,
        pad_cs: 1,
        src_h: src_h as u32,
        src_w: src_w as u32,
        ..*base
    };
    call(ctx, label, "pad_2d", (&p, n, 64), [src, dummy, dummy, dst])
}

/// One phase of the input gradient.
struct Phase {
    ry: usize,
    rx: usize,
    ty: Vec<(usize, usize)>,
    tx: Vec<(usize, usize)>,
    u: (usize, usize),
    v: (usize, usize),
}

/// Phase rows `U` with `U·s + r − pad` inside `[0, len)`, if any.
fn phase_range(len: usize, pad: usize, r: usize, s: usize) -> Option<(usize, usize)> {
    let lo = pad.saturating_sub(r).div_ceil(s);
    let top = (len - 1 + pad).checked_sub(r)?;
    let hi = top / s;
    (lo <= hi).then_some((lo, hi))
}

impl Phase {
    fn blocks(&self, t: DxTile) -> (usize, usize, usize) {
        let v_start = self.v.0 / 4 * 4;
        let nrb = (self.u.1 + 1 - self.u.0).div_ceil(t.r);
        let ncb = (self.v.1 + 1 - v_start).div_ceil(t.pt);
        (v_start, nrb, ncb)
    }
}

/// `dx[b, ci, y, x]` (`=` or, with `accumulate`, `+=`) `Σ` over the filters of ci's group and
/// the taps that read `(y, x)` of `w·dy`. `dy`: `[batch, N, OH, OW]`; `w`: `[N, C/G, kh, kw]`;
/// `dx`: `[batch, C, H, W]`. Two scratch buffers (padded dy, packed weights).
pub fn grad_input(
    ctx: &GpuContext,
    label: &str,
    (s, accumulate): (&ConvShape<'_>, bool),
    (dy, w, dx): (&Arg, &Arg, &Arg),
    scratch: &mut Scratch<'_>,
) -> Result<Vec<Call>> {
    let ([oh, ow], cin_g, cout_g, groups) = layer(label, s)?;
    let spec = s.spec;
    let [h, wd] = s.in_hw;
    let (b, c, n) = (s.batch, spec.in_channels, spec.out_channels);
    let [kh, kw] = spec.kernel;
    check_arg(ctx, label, "grad_out", dy, (b * n * oh * ow) as u64)?;
    check_arg(ctx, label, "weight", w, (n * cin_g * kh * kw) as u64)?;
    check_arg(ctx, label, "grad_in", dx, (b * c * h * wd) as u64)?;
    let e = Eff::of(s, [oh, ow]);
    let mut phases = Vec::new();
    let mut untouched = false;
    for ry in 0..e.s[0] {
        let Some(u) = phase_range(e.h, e.p[0], ry, e.s[0]) else {
            continue;
        };
        for rx in 0..e.s[1] {
            let Some(v) = phase_range(e.w, e.p[1], rx, e.s[1]) else {
                continue;
            };
            let ty = phase_taps(e.k[0], e.s[0], e.d[0], ry);
            let tx = phase_taps(e.k[1], e.s[1], e.d[1], rx);
            if ty.is_empty() || tx.is_empty() {
                untouched = true;
            } else {
                phases.push(Phase {
                    ry,
                    rx,
                    ty,
                    tx,
                    u,
                    v,
                });
            }
        }
    }
    let geom = [e.k[0], e.k[1], e.s[0], e.s[1], e.d[0], e.d[1]];
    let special = plan::DX_GEOMS.contains(&geom);
    let tiles: &[DxTile] = match (special, e.k == [1, 1]) {
        (true, true) => &plan::DX_TILES_1X1,
        (true, false) => &plan::DX_TILES_KXK,
        (false, _) => &plan::DX_TILES_GEN,
    };
    // One channel tile width for every phase (the weights are packed once), each phase's
    // tile the cheapest with it.
    // A flattened 1×1 layer whose planes are whole vec4s reads dy as it is (no padded copy)
    // with blocks that tile the plane exactly.
    let direct = e.h == 1 && e.k == [1, 1] && e.s == [1, 1] && e.ow % 4 == 0;
    let best_for = |ph: &Phase, mc: usize| -> Option<(f64, DxTile)> {
        tiles
            .iter()
            .filter(|t| t.mc == mc && (!direct || e.ow % t.pt == 0))
            .map(|&t| {
                let (_, nrb, ncb) = ph.blocks(t);
                let lanes = b * nrb * ncb;
                let cost = (groups * cin_g.div_ceil(mc)) as f64
                    * plan::dx_cost(t, (&ph.ty, &ph.tx), e.k[1], cout_g, lanes, !special);
                (cost, t)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
    };
    let mut mcs: Vec<usize> = tiles.iter().map(|t| t.mc).collect();
    mcs.dedup();
    let mc = mcs
        .iter()
        .copied()
        .min_by(|&a, &b| {
            let cost = |mc| -> f64 {
                phases
                    .iter()
                    .filter_map(|p| best_for(p, mc))
                    .map(|x| x.0)
                    .sum()
            };
            cost(a).total_cmp(&cost(b))
        })
        .unwrap_or(1);
    let chosen: Vec<DxTile> = phases
        .iter()
        .map(|p| best_for(p, mc).map_or(tiles[0], |x| x.1))
        .collect();

    let ty_max = phases
        .iter()
        .flat_map(|p| p.ty.iter().map(|t| t.1))
        .max()
        .unwrap_or(0);
    let ox_max = phases
        .iter()
        .flat_map(|p| p.tx.iter().map(|t| t.1))
        .max()
        .unwrap_or(0);
    let lx4 = ox_max.div_ceil(4);
    let u_end = phases.iter().map(|p| p.u.1 + 1).max().unwrap_or(0);
    let d_rows = ty_max + e.oh.max(u_end);
    let mut d_w4 = (4 * lx4 + e.ow).div_ceil(4);
    if !direct {
        for (p, &t) in phases.iter().zip(&chosen) {
            let (v_start, _, ncb) = p.blocks(t);
            d_w4 = d_w4.max((4 * lx4 + v_start + ncb * t.pt).div_ceil(4) + 1);
        }
    }
    let nct = cin_g.div_ceil(mc);
    let nwv = (kw * mc).div_ceil(4);
    let mut base = base_params(s, &e, cin_g, cout_g);
    base.accumulate = u32::from(accumulate);
    base.nct = nct as u32;
    base.mc = mc as u32;
    base.nwv = nwv as u32;
    base.d_rows = d_rows as u32;
    base.d_w4 = d_w4 as u32;
    base.ty = ty_max as u32;
    base.lx4 = lx4 as u32;

    let mut calls = Vec::new();
    let dummy = scratch_arg(ctx, label, "dummy", 4, scratch)?;
    if !phases.is_empty() {
        let wn = groups * nct * cout_g * kh * nwv;
        let wpk = scratch_arg(ctx, label, "packed weights", wn * 4, scratch)?;
        let dyp = if direct {
            dy.clone()
        } else {
            let dyp = scratch_arg(ctx, label, "padded dy", b * n * d_rows * d_w4 * 4, scratch)?;
            calls.push(pad(
                ctx,
                label,
                &base,
                (b * n, e.oh, e.ow),
                (d_rows, d_w4, ty_max, 4 * lx4),
                (dy, &dummy, &dyp),
            )?);
            dyp
        };
        let p = GradFastParams {
            total: fits_u32(label, "packed weights", wn)?,
            ..base
        };
        calls.push(call(
            ctx,
            label,
            "pack_dx",
            (&p, wn, 64),
            [w, &dummy, &dummy, &wpk],
        )?);
        if untouched && !accumulate {
            calls.push(zero(ctx, label, &base, b * c * h * wd, (&dummy, dx))?);
        }
        for (ph, &t) in phases.iter().zip(&chosen) {
            let (v_start, nrb, ncb) = ph.blocks(t);
            let lanes = b * nrb * ncb;
            let wgs = groups * nct * lanes.div_ceil(8);
            let kind = EntryKind::Dx {
                geom: special.then_some((geom, ph.ry, ph.rx)),
                tile: t,
            };
            let (ky0, oy0) = ph.ty[0];
            let (kx0, ox0) = ph.tx[0];
            let (kys, oys) = ph.ty.get(1).map_or((1, 0), |&(k, o)| (k - ky0, o - oy0));
            let (kxs, oxs) = ph.tx.get(1).map_or((1, 0), |&(k, o)| (k - kx0, o - ox0));
            let u = |v: usize| v as u32;
            let p = GradFastParams {
                total: fits_u32(label, "workgroups", wgs)?,
                lanes: fits_u32(label, "lanes", lanes)?,
                nblk: u(nrb * ncb),
                ncb: u(ncb),
                u_lo: u(ph.u.0),
                u_hi: u(ph.u.1),
                v_lo: u(ph.v.0),
                v_hi: u(ph.v.1),
                v_start: u(v_start),
                ry: u(ph.ry),
                rx: u(ph.rx),
                ky0: u(ky0),
                kys: u(kys),
                nky: u(ph.ty.len()),
                oy0: u(oy0),
                oys: u(oys),
                kx0: u(kx0),
                kxs: u(kxs),
                nkx: u(ph.tx.len()),
                ox0: u(ox0),
                oxs: u(oxs),
                ..base
            };
            let entry = entry_name(label, kind)?;
            calls.push(call(
                ctx,
                label,
                entry,
                (&p, wgs * 8, 8),
                [&dummy, &dyp, &wpk, dx],
            )?);
        }
    } else if !accumulate {
        calls.push(zero(ctx, label, &base, b * c * h * wd, (&dummy, dx))?);
    }
    Ok(calls)
}

fn zero(
    ctx: &GpuContext,
    label: &str,
    base: &GradFastParams,
    n: usize,
    (dummy, out): (&Arg, &Arg),
) -> Result<Call> {
    let p = GradFastParams {
        total: fits_u32(label, "grad_in", n)?.div_ceil(16),
        pad_n: n as u32,
        ..*base
    };
    call(
        ctx,
        label,
        "fill_zero",
        (&p, n.div_ceil(16), 64),
        [dummy, dummy, dummy, out],
    )
}

/// Invocations a weight gradient aims for (split-K fills the device when the output tiles
/// are few).
const DW_TARGET_INVOCATIONS: usize = 256;
/// Fewest K steps per chunk.
const DW_MIN_CHUNK_UNITS: usize = 4;

/// `dW[o, ic, ky, kx] = Σ_b Σ_{oy,ox} dy·x` (overwrites `dw`). `x`: `[batch, C, H, W]`;
/// `dy`: `[batch, N, OH, OW]`. Scratch: padded x, padded dy, and the split-K partial sums.
pub fn grad_weight(
    ctx: &GpuContext,
    label: &str,
    s: &ConvShape<'_>,
    (x, dy, dw): (&Arg, &Arg, &Arg),
    scratch: &mut Scratch<'_>,
) -> Result<Vec<Call>> {
    let ([oh, ow], cin_g, cout_g, groups) = layer(label, s)?;
    let spec = s.spec;
    let [h, wd] = s.in_hw;
    let (b, c, n) = (s.batch, spec.in_channels, spec.out_channels);
    let [kh, kw] = spec.kernel;
    let nw = n * cin_g * kh * kw;
    check_arg(ctx, label, "x", x, (b * c * h * wd) as u64)?;
    check_arg(ctx, label, "grad_out", dy, (b * n * oh * ow) as u64)?;
    check_arg(ctx, label, "grad_weight", dw, nw as u64)?;
    // 1×1 without padding: the input subsampled by the stride and flattened.
    let pointwise = spec.kernel == [1, 1] && spec.padding == [0, 0];
    let e = if pointwise {
        Eff {
            h: 1,
            w: oh * ow,
            oh: 1,
            ow: oh * ow,
            k: [1, 1],
            s: [1, 1],
            d: [1, 1],
            p: [0, 0],
        }
    } else {
        Eff::of(s, [oh, ow])
    };
    let key = [e.k[0], e.k[1], e.s[1], e.d[1]];
    let special = plan::DW_GEOMS.contains(&key);
    let tiles: &[DwTile] = match (special, e.k == [1, 1]) {
        (true, true) => &plan::DW_TILES_1X1,
        (true, false) => &plan::DW_TILES_KXK,
        (false, _) => &plan::DW_TILES_GEN,
    };
    // Flattened stride-1 planes of whole vec4s are read as they are (steps tile the plane).
    let direct = pointwise && spec.stride == [1, 1] && e.ow % 4 == 0;
    let n_tiles = |t: &DwTile| groups * cout_g.div_ceil(t.mo) * cin_g.div_ceil(t.ci);
    let (_, t) = tiles
        .iter()
        .filter(|t| !direct || e.ow % t.pt == 0)
        .map(|t| {
            let slots = (b * e.oh * e.ow.div_ceil(t.pt) * t.pt) as f64;
            (
                plan::dw_cost(*t, [kh, kw, e.s[1], e.d[1]], slots, n_tiles(t), !special),
                *t,
            )
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .ok_or_else(|| Error::shape(label, "no weight-gradient tile"))?;
    let ncb = e.ow.div_ceil(t.pt);
    let units = b * e.oh * ncb;
    let inv_tiles = n_tiles(&t) * if special { 1 } else { kh * kw };
    let want = DW_TARGET_INVOCATIONS.div_ceil(inv_tiles);
    let n_chunks = want.min(units / DW_MIN_CHUNK_UNITS).max(1);
    let chunk_units = units.div_ceil(n_chunks);
    let n_chunks = units.div_ceil(chunk_units);

    let d_w4 = ncb * t.pt / 4;
    let (x_rows, x_w4) = if pointwise {
        (1, d_w4)
    } else {
        let span = ((t.pt - 1) * e.s[1] + (kw - 1) * e.d[1] + 1).div_ceil(4);
        let last = ((ncb * t.pt - 1) * e.s[1] + (kw - 1) * e.d[1]) / 4 + 1;
        let rows = (oh - 1) * e.s[0] + (kh - 1) * e.d[0] + 1;
        (rows, ((ncb - 1) * t.pt * e.s[1] / 4 + span).max(last))
    };
    let mut base = base_params(s, &e, cin_g, cout_g);
    let u = |v: usize| v as u32;
    base.nct = u(cin_g.div_ceil(t.ci));
    base.n_ot = u(cout_g.div_ceil(t.mo));
    base.ncb = u(ncb);
    base.units = fits_u32(label, "steps", units)?;
    base.chunk_units = u(chunk_units);
    base.n_chunks = u(n_chunks);
    base.d_rows = u(e.oh);
    base.d_w4 = u(d_w4);
    base.x_rows = u(x_rows);
    base.x_w4 = u(x_w4);

    let dummy = scratch_arg(ctx, label, "dummy", 4, scratch)?;
    let mut calls = Vec::new();
    let (xp, dyp) = if direct {
        (x.clone(), dy.clone())
    } else {
        (
            scratch_arg(ctx, label, "padded x", b * c * x_rows * x_w4 * 4, scratch)?,
            scratch_arg(ctx, label, "padded dy", b * n * e.oh * d_w4 * 4, scratch)?,
        )
    };
    if direct {
        // x and dy are read in place.
    } else if pointwise {
        fits_u32(label, "padded x", b * c * x_w4)?;
        let np = b * c * oh;
        let p = GradFastParams {
            total: np as u32,
            pad_w4: u(x_w4),
            pad_rows: u(oh),
            pad_iw: u(ow),
            pad_rs: u(spec.stride[0]),
            pad_cs: u(spec.stride[1]),
            src_h: u(h),
            src_w: u(wd),
            ..base
        };
        calls.push(call(
            ctx,
            label,
            "pad_flat",
            (&p, np, 64),
            [x, &dummy, &dummy, &xp],
        )?);
    } else {
        calls.push(pad(
            ctx,
            label,
            &base,
            (b * c, h, wd),
            (x_rows, x_w4, e.p[0], e.p[1]),
            (x, &dummy, &xp),
        )?);
    }
    if !direct {
        calls.push(pad(
            ctx,
            label,
            &base,
            (b * n, e.oh, e.ow),
            (e.oh, d_w4, 0, 0),
            (dy, &dummy, &dyp),
        )?);
    }
    let inv = inv_tiles * n_chunks;
    let p = GradFastParams {
        total: fits_u32(label, "invocations", inv)?,
        ..base
    };
    let entry = entry_name(
        label,
        EntryKind::Dw {
            geom: special.then_some(key),
            tile: t,
        },
    )?;
    if n_chunks == 1 {
        calls.push(call(
            ctx,
            label,
            entry,
            (&p, inv, 8),
            [&dummy, &xp, &dyp, dw],
        )?);
    } else {
        let part = scratch_arg(ctx, label, "partial sums", n_chunks * nw, scratch)?;
        calls.push(call(
            ctx,
            label,
            entry,
            (&p, inv, 8),
            [&dummy, &xp, &dyp, &part],
        )?);
        let r = GradFastParams {
            total: u(nw),
            ..base
        };
        calls.push(call(
            ctx,
            label,
            "reduce",
            (&r, nw, 64),
            [&part, &dummy, &dummy, dw],
        )?);
    }
    Ok(calls)
}
