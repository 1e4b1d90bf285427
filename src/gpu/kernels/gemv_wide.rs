//! Launcher for `shaders/gemv_wide.wgsl` and the `gemv_wide` family ([`GEMV_WIDE`]): fully
//! connected layers at small batch on real GPUs, at the memory-bandwidth roof — 256
//! invocations per pair of weight rows, vec4 loads along K, a tree reduction in workgroup
//! memory, one workgroup per 2 rows and 4 samples. With weights stored as halves
//! ([`crate::gpu::Precision::F16`], [`pack_f16`]) it reads half the bytes
//! ([`SHADER_F16`], `shaders/gemv_wide_f16.wgsl`), f32 arithmetic.

use super::{check_arg, fold_workgroups, Arg, Call, Scratch};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::family::{Adapter, Family, LinearForward, LinearRun};
use crate::gpu::geometry::LinearShape;
use crate::gpu::prelude::Epilogue;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `gemv_wide.wgsl`.
    pub struct GemvWideParams = "Params" {
        /// Bias and activation ([`Epilogue`]).
        pub epi: Epilogue,
        /// Samples.
        pub batch: u32,
        /// `in_features / 4`.
        pub in4: u32,
        /// Output features (the row stride of `out`).
        pub out_f: u32,
        /// Rows of this chunk.
        pub rows: u32,
        /// The chunk's first row.
        pub row0: u32,
        /// Workgroups per 4 samples (`rows / 2`, rounded up).
        pub row_groups: u32,
        /// Workgroups in all.
        pub total_wg: u32,
        /// Last valid index of `bias`.
        pub bias_max: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/gemv_wide.wgsl`. Trusted: every index is clamped or range-checked in the
    /// shader and every size validated here.
    pub static SHADER = "gemv_wide" {
        params: GemvWideParams,
        trusted: true,
        /// Arguments of `gemv_wide`.
        args: GemvWideArgs {
            /// `[batch, in]` input, as vec4s.
            x: read array<act4_t>,
            /// A row chunk of `[out, in]`, as vec4s.
            w: read array<vec4<f32>>,
            /// `[out]` bias (a stand-in when there is none).
            bias: read array<f32>,
            /// `[batch, out]` output.
            out: write array<act_t>,
        }
    }
}

crate::gpu::declare::shader! {
    /// `shaders/gemv_wide_f16.wgsl`: [`SHADER`] with the weights stored as halves (4 per
    /// `vec2<u32>`, [`pack_f16`]), unpacked to f32 as they are loaded. Trusted as [`SHADER`].
    pub static SHADER_F16 = "gemv_wide_f16" {
        params: GemvWideParams,
        trusted: true,
        /// Arguments of `gemv_wide` (f16 weights).
        args: GemvWideF16Args {
            /// `[batch, in]` input, as vec4s.
            x: read array<act4_t>,
            /// A row chunk of `[out, in]` as halves, 4 per `vec2<u32>`.
            w: read array<vec2<u32>>,
            /// `[out]` bias (a stand-in when there is none).
            bias: read array<f32>,
            /// `[batch, out]` output.
            out: write array<act_t>,
        }
    }
}

/// `weight` (`[out, in]`) as halves ([`crate::gpu::precision::pack_halves`]: rounded to
/// nearest, two per word, a value beyond f16's range an error naming `label`), the words
/// held in `f32`s so the row chunks are cut and uploaded like f32 weights: row `j` is words
/// `j · in/2 ..` (in is even).
pub fn pack_f16(label: &str, weight: &[f32]) -> Result<Vec<f32>> {
    let words = crate::gpu::precision::pack_halves(weight, &format!("{label} f16 weight"))?;
    Ok(words.into_iter().map(f32::from_bits).collect())
}

/// The largest batch it prefers (beyond it the register-tiled GEMMs read the weights once
/// for more samples).
pub const MAX_BATCH: usize = 8;

/// Whether it can run `s`: rows read as vec4s.
pub fn fits(s: &LinearShape) -> bool {
    s.in_features % 4 == 0
}

/// A run's arguments checked as `gemv_wide` and `linear_coop` read them.
pub(super) struct Checked {
    /// Rows of each weight chunk.
    pub rows: Vec<usize>,
    /// The bias, or a stand-in when there is none.
    pub bias: Arg,
    /// Whether there is a bias.
    pub has_bias: bool,
}

/// Checks `run` for `family`, which reads weight rows 4 values at a time: the width, the
/// input, output, bias and the row chunks (in words: halves are two per word).
pub(super) fn check_run(ctx: &GpuContext, family: &str, run: &LinearRun<'_>) -> Result<Checked> {
    let (label, s) = (run.label, run.shape);
    if !fits(s) {
        return Err(Error::shape(
            label,
            format!(
                "{family} reads rows 4 values at a time: in_features {} is not a multiple of 4",
                s.in_features
            ),
        ));
    }
    let (x_len, out_len) = s.lens(label)?;
    check_arg(ctx, label, "x", run.x, x_len as u64)?;
    check_arg(ctx, label, "out", run.out, out_len as u64)?;
    let words = if run.weight_f16 {
        s.in_features / 2
    } else {
        s.in_features
    };
    let rows = LinearShape {
        in_features: words,
        ..*s
    }
    .chunk_rows(label, run.chunks)?;
    for (w, &r) in run.chunks.iter().zip(&rows) {
        check_arg(ctx, label, "weight chunk", w, (r * words) as u64)?;
    }
    let (bias, has_bias) = match run.bias {
        Some(b) => {
            check_arg(ctx, label, "bias", b, s.out_features as u64)?;
            (b.clone(), true)
        }
        None => (run.x.clone(), false),
    };
    Ok(Checked {
        rows,
        bias,
        has_bias,
    })
}

/// The calls of one run: one per weight chunk.
pub fn forward(ctx: &GpuContext, run: LinearRun<'_>) -> Result<Vec<Call>> {
    let Checked {
        rows,
        bias,
        has_bias,
    } = check_run(ctx, "gemv_wide", &run)?;
    let LinearRun {
        label,
        shape: s,
        x,
        chunks,
        out,
        act,
        weight_f16,
        ..
    } = run;
    let mut calls = Vec::with_capacity(chunks.len());
    let mut row0 = 0;
    for (w, &r) in chunks.iter().zip(&rows) {
        let row_groups = r.div_ceil(2);
        let total = row_groups * s.batch.div_ceil(4);
        let params = GemvWideParams {
            epi: Epilogue::new(act, has_bias),
            batch: s.batch as u32,
            in4: (s.in_features / 4) as u32,
            out_f: s.out_features as u32,
            rows: r as u32,
            row0: row0 as u32,
            row_groups: row_groups as u32,
            total_wg: u32::try_from(total).map_err(|_| Error::shape(label, "grid exceeds u32"))?,
            bias_max: (bias.len.max(1) - 1) as u32,
        };
        let (x, w, bias, out) = (x.clone(), w.clone(), bias.clone(), out.clone());
        let args = if weight_f16 {
            GemvWideF16Args { x, w, bias, out }.into_vec()
        } else {
            GemvWideArgs { x, w, bias, out }.into_vec()
        };
        let grid = fold_workgroups(ctx, label, total as u64)?;
        let shader = if weight_f16 { &SHADER_F16 } else { &SHADER };
        calls.push(Call::new(
            ctx,
            label,
            shader.entry("gemv_wide", &[]),
            &params,
            args,
            grid,
        )?);
        row0 += r;
    }
    Ok(calls)
}

/// The `gemv_wide` family.
pub struct GemvWide;

/// `gemv_wide`: bandwidth-bound GEMV for real GPUs.
pub static GEMV_WIDE: GemvWide = GemvWide;

impl Family for GemvWide {
    fn name(&self) -> &'static str {
        "gemv_wide"
    }
}

impl LinearForward for GemvWide {
    fn prefers(&self, s: &LinearShape, a: &Adapter) -> bool {
        s.batch <= MAX_BATCH && self.can_run(s, a, None)
    }

    fn can_run(&self, s: &LinearShape, a: &Adapter, _: Option<u16>) -> bool {
        fits(s) && a.workgroup_storage >= 8192 && a.invocations >= 256
    }

    fn reads_f16(&self) -> bool {
        true
    }

    fn forward(
        &self,
        ctx: &GpuContext,
        run: LinearRun<'_>,
        _: Option<u16>,
        _: &mut Scratch<'_>,
    ) -> Result<Vec<Call>> {
        forward(ctx, run)
    }
}
