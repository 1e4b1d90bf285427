//! Launcher for `shaders/conv_backward.wgsl`: the training-time backward of the grouped
//! convolution (input gradient, weight gradient) and per-channel sums (bias gradient).
//!
//! Weights are in the plain PyTorch layout `[N, C/G, kh, kw]` (not conv_tiled's packed one).
//! Every op is one call whatever the groups: the group of an element follows from its
//! channel. Each entry point is a kernel family (`family`); which one computes a gradient is chosen
//! in [`crate::gpu::choice`].

use super::{check_arg, check_dims, fold_workgroups, Arg, Call, WG};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::geometry::{ConvGeometry, ConvShape};

mod family;
pub use family::{
    Dw, DwEntry, Dx, DxEntry, GRAD_INPUT, GRAD_INPUT_PW4, GRAD_WEIGHT, GRAD_WEIGHT_PW4,
    GRAD_WEIGHT_SERIAL, SERIAL_MIN_WEIGHTS,
};

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `conv_backward.wgsl`.
    pub struct ConvBackwardParams = "Params" {
        /// The geometry ([`ConvGeometry`]).
        pub geom: ConvGeometry,
        /// Input channels per group.
        pub cin_g: u32,
        /// Filters per group.
        pub cout_g: u32,
        /// 1: `grad_in += ·` (input gradient only).
        pub accumulate: u32,
        /// Invocations (or workgroups) the call covers.
        pub total: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/conv_backward.wgsl` (roles per entry point in the shader).
    pub static SHADER = "conv_backward" {
        params: ConvBackwardParams,
        trusted: false,
        /// The bindings by position.
        args: ConvBackwardArgs {
            /// `dy` (input gradient, channel sum) or `x` (weight gradient).
            a: read array<f32>,
            /// The weight (input gradient) or `dy` (weight gradient).
            b: read array<f32>,
            /// The gradient written.
            out: write array<f32>,
        }
    }
}

/// Lanes of the reducing workgroup of [`DwEntry::Reduce`] (the shader's `RED`).
pub const RED: u32 = 64;

fn conv_params(label: &str, s: &ConvShape<'_>) -> Result<ConvBackwardParams> {
    let geom = s.geometry(label, true)?;
    let spec = s.spec;
    // The shader adds the padding to input coordinates in u32.
    let [h, w] = s.in_hw;
    if h + 2 * spec.padding[0] > u32::MAX as usize || w + 2 * spec.padding[1] > u32::MAX as usize {
        return Err(Error::shape(label, "padded input exceeds u32 indexing"));
    }
    let g = spec.groups;
    Ok(ConvBackwardParams {
        geom,
        cin_g: (spec.in_channels / g) as u32,
        cout_g: (spec.out_channels / g) as u32,
        accumulate: 0,
        total: 0,
    })
}

/// Element counts `(x, weight, grad_out)` for `p`.
fn sizes(p: &ConvBackwardParams) -> (u64, u64, u64) {
    let (g, u) = (&p.geom, u64::from);
    (
        u(g.batch) * u(g.c_in) * u(g.h) * u(g.w),
        u(g.c_out) * u(p.cin_g) * u(g.kh) * u(g.kw),
        u(g.batch) * u(g.c_out) * u(g.oh) * u(g.ow),
    )
}

/// Fails when `total` does not fit the shader's `u32` indexing.
fn total_u32(label: &str, total: u64) -> Result<u32> {
    u32::try_from(total)
        .map_err(|_| Error::shape(label, format!("{total} elements exceed u32 indexing")))
}

fn call(
    ctx: &GpuContext,
    (label, entry): (&str, &'static str),
    (params, workgroups): (&ConvBackwardParams, u64),
    a: &Arg,
    b: &Arg,
    out: &Arg,
) -> Result<Call> {
    let args = ConvBackwardArgs {
        a: a.clone(),
        b: b.clone(),
        out: out.clone(),
    };
    let grid = fold_workgroups(ctx, label, workgroups)?;
    Call::new(
        ctx,
        label,
        SHADER.entry(entry, &[("WG", WG)]),
        params,
        args.into_vec(),
        grid,
    )
}

/// `dx[b, ci, y, x]` (`=` or, with `accumulate`, `+=`) `Σ` over the filters of ci's group and
/// the window taps that read `(y, x)` of `w·dy`, in gather form (no atomics). `dy`:
/// `[batch, N, OH, OW]`; `w`: `[N, C/G, kh, kw]`; `dx`: `[batch, C, H, W]`.
pub fn grad_input(
    ctx: &GpuContext,
    label: &str,
    (kernel, s, accumulate): (DxEntry, &ConvShape<'_>, bool),
    dy: &Arg,
    w: &Arg,
    dx: &Arg,
) -> Result<Call> {
    let mut p = conv_params(label, s)?;
    let (nx, nw, ny) = sizes(&p);
    check_arg(ctx, label, "grad_out", dy, ny)?;
    check_arg(ctx, label, "weight", w, nw)?;
    check_arg(ctx, label, "grad_in", dx, nx)?;
    if !kernel.fits(s.spec) {
        return Err(Error::shape(
            label,
            format!("input-gradient kernel {kernel:?} does not fit this convolution"),
        ));
    }
    p.accumulate = u32::from(accumulate);
    let (entry, n) = match kernel {
        // 4 input channels × 4 pixels per invocation.
        DxEntry::Pointwise4 => {
            let hw = u64::from(p.geom.h) * u64::from(p.geom.w);
            let n = u64::from(p.geom.batch) * u64::from(p.geom.c_in / 4) * hw.div_ceil(4);
            ("grad_input_pw4", n)
        }
        DxEntry::Gather => ("grad_input", nx),
    };
    p.total = total_u32(label, n)?;
    call(
        ctx,
        (label, entry),
        (&p, n.div_ceil(u64::from(WG))),
        dy,
        w,
        dx,
    )
}

/// `dW[o, ic, ky, kx] = Σ_b Σ_{oy,ox} dy·x` (overwrites `dw`) with `kernel` (an error if it
/// does not fit the layer). `x`: `[batch, C, H, W]`; `dy`: `[batch, N, OH, OW]`.
pub fn grad_weight(
    ctx: &GpuContext,
    label: &str,
    (kernel, s): (DwEntry, &ConvShape<'_>),
    x: &Arg,
    dy: &Arg,
    dw: &Arg,
) -> Result<Call> {
    let mut p = conv_params(label, s)?;
    let (nx, nw, ny) = sizes(&p);
    check_arg(ctx, label, "x", x, nx)?;
    check_arg(ctx, label, "grad_out", dy, ny)?;
    check_arg(ctx, label, "grad_weight", dw, nw)?;
    if !kernel.fits(s.spec) {
        return Err(Error::shape(
            label,
            format!("weight-gradient kernel {kernel:?} does not fit this convolution"),
        ));
    }
    let (entry, invocations, wg_lanes) = match kernel {
        DwEntry::Reduce => ("grad_weight", nw, 1),
        DwEntry::Serial => ("grad_weight_serial", nw, u64::from(WG)),
        DwEntry::Pointwise4 => ("grad_weight_pw4", nw / 16, u64::from(WG)),
    };
    p.total = total_u32(label, invocations)?;
    call(
        ctx,
        (label, entry),
        (&p, invocations.div_ceil(wg_lanes)),
        x,
        dy,
        dw,
    )
}

/// `out[c] = Σ_b Σ_{hw} g[b, c, hw]` (overwrites `out`): the convolution's bias gradient.
/// `g`: `[batch, channels, hw]`; `out`: `[channels]`. One workgroup of [`RED`] lanes per
/// channel.
pub fn channel_sum(
    ctx: &GpuContext,
    label: &str,
    [batch, channels, hw]: [usize; 3],
    g: &Arg,
    out: &Arg,
) -> Result<Call> {
    check_dims(
        label,
        &[("batch", batch), ("channels", channels), ("hw", hw)],
    )?;
    let len = batch as u64 * channels as u64 * hw as u64;
    check_arg(ctx, label, "g", g, len)?;
    check_arg(ctx, label, "out", out, channels as u64)?;
    total_u32(label, len)?;
    let p = ConvBackwardParams {
        geom: ConvGeometry {
            batch: batch as u32,
            c_in: channels as u32,
            h: hw as u32,
            ..Default::default()
        },
        total: channels as u32,
        ..Default::default()
    };
    call(
        ctx,
        (label, "channel_sum"),
        (&p, channels as u64),
        g,
        g,
        out,
    )
}
