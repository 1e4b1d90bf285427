//! The calls of an input gradient: phases, padded dy, packed weights, tile choice.

use super::plan::{self, phase_taps, DxTile, EntryKind};
use super::{
    base_params, call, entry_name, fits_u32, layer, pad, scratch_arg, Eff, GradFastParams, PadCopy,
};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::geometry::ConvShape;
use crate::gpu::kernels::Scratch;
use crate::gpu::kernels::{check_arg, Arg, Call};

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
/// `dx`: `[batch, C, H, W]`. Scratch: padded dy (unless read in place), packed weights.
pub fn grad_input(
    ctx: &GpuContext,
    label: &str,
    (s, accumulate): (&ConvShape<'_>, bool),
    args: (&Arg, &Arg, &Arg),
    scratch: &mut Scratch<'_>,
) -> Result<Vec<Call>> {
    grad_input_tiled(ctx, label, (s, accumulate, None), args, scratch)
}

/// [`grad_input`] with every phase computed with `tile` instead of the cost model's choice
/// (tests, tuning); an error when the layer has no entry with that tile.
pub fn grad_input_tiled(
    ctx: &GpuContext,
    label: &str,
    (s, accumulate, force): (&ConvShape<'_>, bool, Option<DxTile>),
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
    if let Some(t) = force {
        if !tiles.contains(&t) {
            return Err(Error::shape(
                label,
                format!("no input-gradient entry with tile {t:?} for this geometry"),
            ));
        }
    }
    // A flattened 1×1 layer whose planes are whole vec4s reads dy as it is (no padded copy)
    // with blocks that tile the plane exactly.
    let direct = e.h == 1
        && e.k == [1, 1]
        && e.s == [1, 1]
        && e.ow % 4 == 0
        && force.is_none_or(|t| e.ow % t.pt == 0);
    // One channel tile width for every phase (the weights are packed once), each phase's
    // tile the cheapest with it.
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
    if let Some(t) = force {
        mcs = vec![t.mc];
    }
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
        .map(|p| match force {
            Some(t) => Ok(t),
            None => best_for(p, mc)
                .map(|x| x.1)
                .ok_or_else(|| Error::shape(label, "no input-gradient tile fits")),
        })
        .collect::<Result<_>>()?;

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
                PadCopy {
                    planes: b * n,
                    src: [e.oh, e.ow],
                    rows: d_rows,
                    w4: d_w4,
                    top: ty_max,
                    left: 4 * lx4,
                },
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
