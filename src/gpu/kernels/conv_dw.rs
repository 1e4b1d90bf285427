//! Launcher for `shaders/conv_dw.wgsl` and the `conv_dw` family ([`CONV_DW`]): depthwise
//! convolutions on real GPUs, one 16×16 output tile of one channel per workgroup from an
//! input patch in workgroup memory (bandwidth-bound: every input value is read once per
//! tile, weights are uniform).

use super::{check_arg, fold_workgroups, Arg, Call, Scratch};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::family::{Adapter, ConvForward, ConvProblem, ConvRun, Family};
use crate::gpu::geometry::{ConvGeometry, ConvShape, Epilogue};
use crate::graph::Conv2dSpec;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `conv_dw.wgsl`.
    pub struct DwParams = "Params" {
        /// The geometry ([`ConvGeometry`]).
        pub geom: ConvGeometry,
        /// Bias and activation ([`Epilogue`]).
        pub epi: Epilogue,
        /// Output tiles along x.
        pub tiles_x: u32,
        /// Output tiles along y.
        pub tiles_y: u32,
        /// Workgroups in all.
        pub total_wg: u32,
        /// Rows of the input patch.
        pub patch_h: u32,
        /// Columns of the input patch.
        pub patch_w: u32,
        /// Last valid index of `bias`.
        pub bias_max: u32,
        /// Padding.
        pub _pad0: u32,
        /// Padding.
        pub _pad1: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/conv_dw.wgsl`. Trusted: the patch is bounded by [`PATCH_FLOATS`] here and
    /// every input index is range-checked in the shader.
    pub static SHADER = "conv_dw" {
        params: DwParams,
        trusted: true,
        /// Arguments of `conv_dw`.
        args: DwArgs {
            /// `[batch, C, H, W]` input.
            x: read array<act_t>,
            /// `[C, 1, kh, kw]` weights.
            wt: read array<f32>,
            /// `[C]` bias (a stand-in when there is none).
            bias: read array<f32>,
            /// `[batch, C, OH, OW]` output.
            out: write array<act_t>,
        }
    }
}

/// Floats of the workgroup-memory patch.
pub const PATCH_FLOATS: usize = 4096;

/// The input patch `[rows, cols]` a 16×16 output tile of `spec` reads.
pub fn patch(spec: &Conv2dSpec) -> [usize; 2] {
    let side = |i: usize| 15 * spec.stride[i] + (spec.kernel[i].max(1) - 1) * spec.dilation[i] + 1;
    [side(0), side(1)]
}

/// Whether `spec` is depthwise (one filter per channel) with a patch that fits.
pub fn fits(spec: &Conv2dSpec) -> bool {
    let g = spec.groups;
    let [ph, pw] = patch(spec);
    g > 0 && spec.in_channels == g && spec.out_channels == g && ph * pw <= PATCH_FLOATS
}

/// The call of one depthwise run, weights `[C, 1, kh, kw]` as they are.
pub fn forward(ctx: &GpuContext, label: &str, run: &ConvRun<'_>, weight: &Arg) -> Result<Call> {
    let spec = run.spec;
    if !fits(spec) {
        return Err(Error::shape(
            label,
            "conv_dw runs depthwise layers whose input patch fits 16 KiB",
        ));
    }
    let s = ConvShape {
        spec,
        batch: run.batch,
        in_hw: run.in_hw,
    };
    let geom = s.geometry(label, true)?;
    let (c, [h, w]) = (spec.in_channels, run.in_hw);
    let (oh, ow) = (geom.oh as usize, geom.ow as usize);
    let len = |d: &[usize]| -> Result<u64> {
        d.iter()
            .try_fold(1usize, |a, &v| a.checked_mul(v))
            .filter(|&v| v <= u32::MAX as usize)
            .map(|v| v as u64)
            .ok_or_else(|| Error::shape(label, "a tensor exceeds u32 indexing"))
    };
    check_arg(ctx, label, "x", &run.x, len(&[run.batch, c, h, w])?)?;
    check_arg(ctx, label, "out", &run.out, len(&[run.batch, c, oh, ow])?)?;
    check_arg(ctx, label, "weight", weight, len(&[c, spec.window()])?)?;
    let (bias, has_bias) = match &run.bias {
        Some(b) => {
            check_arg(ctx, label, "bias", b, c as u64)?;
            (b.clone(), true)
        }
        None => (weight.clone(), false),
    };
    let (tiles_x, tiles_y) = (ow.div_ceil(16), oh.div_ceil(16));
    let total = len(&[run.batch, c, tiles_y, tiles_x])?;
    let [patch_h, patch_w] = patch(spec);
    let params = DwParams {
        geom,
        epi: Epilogue::new(run.act, has_bias),
        tiles_x: tiles_x as u32,
        tiles_y: tiles_y as u32,
        total_wg: total as u32,
        patch_h: patch_h as u32,
        patch_w: patch_w as u32,
        bias_max: (bias.len.max(1) - 1) as u32,
        ..DwParams::default()
    };
    let args = DwArgs {
        x: run.x.clone(),
        wt: weight.clone(),
        bias,
        out: run.out.clone(),
    };
    let grid = fold_workgroups(ctx, label, total)?;
    Call::new(
        ctx,
        label,
        SHADER.entry("conv_dw", &[]),
        &params,
        args.into_vec(),
        grid,
    )
}

/// The `conv_dw` family.
pub struct ConvDw;

/// `conv_dw`: depthwise layers on real GPUs.
pub static CONV_DW: ConvDw = ConvDw;

impl Family for ConvDw {
    fn name(&self) -> &'static str {
        "conv_dw"
    }
}

impl ConvForward for ConvDw {
    fn prefers(&self, p: &ConvProblem, a: &Adapter) -> bool {
        self.can_run(p, a, None)
    }

    fn can_run(&self, p: &ConvProblem, a: &Adapter, _: Option<u16>) -> bool {
        !p.table
            && fits(&p.spec)
            && a.workgroup_storage as usize >= 4 * PATCH_FLOATS
            && a.invocations >= 256
    }

    fn forward(
        &self,
        ctx: &GpuContext,
        run: ConvRun<'_>,
        _: Option<u16>,
        _: &mut Scratch<'_>,
    ) -> Result<Vec<Call>> {
        let weight = run
            .weight
            .clone()
            .ok_or_else(|| Error::shape(run.label, "conv_dw reads the weights as they are"))?;
        Ok(vec![forward(ctx, run.label, &run, &weight)?])
    }
}
