//! The calls of a weight gradient: padded (or subsampled and flattened) x, padded dy,
//! tile and split-K choice, partial sums and their reduction.

use super::plan::{self, DwTile, EntryKind};
use super::{
    base_params, call, entry_name, fits_u32, layer, pad, scratch_arg, Eff, GradFastParams, PadCopy,
};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::geometry::ConvShape;
use crate::gpu::kernels::Scratch;
use crate::gpu::kernels::{check_arg, Arg, Call};

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
    args: (&Arg, &Arg, &Arg),
    scratch: &mut Scratch<'_>,
) -> Result<Vec<Call>> {
    grad_weight_tiled(ctx, label, (s, None), args, scratch)
}

/// [`grad_weight`] with `tile` instead of the cost model's choice (tests, tuning); an error
/// when the layer has no entry with that tile.
pub fn grad_weight_tiled(
    ctx: &GpuContext,
    label: &str,
    (s, force): (&ConvShape<'_>, Option<DwTile>),
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
    if let Some(t) = force {
        if !tiles.contains(&t) {
            return Err(Error::shape(
                label,
                format!("no weight-gradient entry with tile {t:?} for this geometry"),
            ));
        }
    }
    // Flattened stride-1 planes of whole vec4s are read as they are (steps tile the plane).
    let direct = pointwise
        && spec.stride == [1, 1]
        && e.ow % 4 == 0
        && force.is_none_or(|t| e.ow % t.pt == 0);
    let n_tiles = |t: &DwTile| groups * cout_g.div_ceil(t.mo) * cin_g.div_ceil(t.ci);
    let (_, t) = tiles
        .iter()
        .filter(|t| (!direct || e.ow % t.pt == 0) && force.is_none_or(|f| f == **t))
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
            PadCopy {
                planes: b * c,
                src: [h, wd],
                rows: x_rows,
                w4: x_w4,
                top: e.p[0],
                left: e.p[1],
            },
            (x, &dummy, &xp),
        )?);
    }
    if !direct {
        calls.push(pad(
            ctx,
            label,
            &base,
            PadCopy {
                planes: b * n,
                src: [e.oh, e.ow],
                rows: e.oh,
                w4: d_w4,
                top: 0,
                left: 0,
            },
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
