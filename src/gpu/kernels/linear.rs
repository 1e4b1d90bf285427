//! Launcher for `shaders/linear.wgsl`: `y = act(x·Wᵀ + b)`, with `W` split by rows over
//! several buffers when it exceeds one storage binding (VGG's 411 MB `classifier.0` on
//! lavapipe's 128 MiB bindings). [`LinearShape`] and [`split_rows`] are shared with the
//! backward ([`super::linear_backward`]).

use super::{check_arg, fold_workgroups, Arg, Call, Scratch, WG};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::family::{Adapter, Family, LinearForward, LinearRun};
use crate::gpu::geometry::LinearShape;
use crate::gpu::prelude::Epilogue;
use crate::ops::Activation;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `linear.wgsl`.
    pub struct LinearParams = "Params" {
        /// Bias and activation ([`Epilogue`]).
        pub epi: Epilogue,
        /// Batch size.
        pub batch: u32,
        /// Input features.
        pub in_f: u32,
        /// Output features (all chunks).
        pub out_f: u32,
        /// Rows (output features) in this chunk.
        pub rows: u32,
        /// First row of this chunk.
        pub row0: u32,
        /// Padding.
        pub _pad0: u32,
        /// Padding.
        pub _pad1: u32,
        /// Padding.
        pub _pad2: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/linear.wgsl`.
    pub static SHADER = "linear" {
        params: LinearParams,
        trusted: false,
        /// Arguments of one row chunk.
        args: LinearArgs {
            /// `[batch, in]` input.
            x: read array<act_t>,
            /// The chunk's `[rows, in]` weights.
            w: read array<f32>,
            /// `[out]` bias (any buffer when there is none).
            bias: read array<f32>,
            /// `[batch, out]` output.
            out: write array<act_t>,
        }
    }
}

/// Rows per chunk so that each chunk fits one storage binding (and one buffer).
pub fn split_rows(ctx: &GpuContext, out_features: usize, in_features: usize) -> Vec<usize> {
    let max_bytes = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size);
    let row_bytes = (in_features.max(1) * 4) as u64;
    let per = ((max_bytes / row_bytes) as usize).max(1);
    let mut v = Vec::new();
    let mut left = out_features;
    while left > 0 {
        let r = per.min(left);
        v.push(r);
        left -= r;
    }
    v
}

/// Uploads a `[out, in]` weight as row chunks that each fit a storage binding.
pub fn upload_weight(
    ctx: &GpuContext,
    label: &str,
    data: &[f32],
    [out, in_]: [usize; 2],
) -> Result<Vec<wgpu::Buffer>> {
    if Some(data.len()) != out.checked_mul(in_) {
        return Err(Error::tensor_shape(
            format!("{label} (weight)"),
            format!("[{out}, {in_}]"),
            &[data.len()],
        ));
    }
    let mut row = 0;
    split_rows(ctx, out, in_)
        .into_iter()
        .enumerate()
        .map(|(i, rows)| {
            let chunk = &data[row * in_..(row + rows) * in_];
            row += rows;
            ctx.upload(&format!("{label} weight[{i}]"), chunk)
        })
        .collect()
}

/// `out = act(x·Wᵀ + b)`: one call per weight chunk (`chunks[k]` holds whole rows).
pub fn forward(
    ctx: &GpuContext,
    label: &str,
    (s, act): (&LinearShape, Activation),
    x: &Arg,
    (chunks, bias): (&[Arg], Option<&Arg>),
    out: &Arg,
) -> Result<Vec<Call>> {
    let (x_len, out_len) = s.lens(label)?;
    check_arg(ctx, label, "x", x, x_len as u64)?;
    check_arg(ctx, label, "out", out, out_len as u64)?;
    let rows = s.chunk_rows(label, chunks)?;
    let has_bias = u32::from(bias.is_some());
    let bias = match bias {
        Some(b) => {
            check_arg(ctx, label, "bias", b, s.out_features as u64)?;
            b.clone()
        }
        // The shader reads no bias (`has_bias`); bind the input in its place.
        None => x.clone(),
    };
    let mut row0 = 0;
    let mut calls = Vec::with_capacity(chunks.len());
    for (w, &r) in chunks.iter().zip(&rows) {
        check_arg(ctx, label, "weight chunk", w, (r * s.in_features) as u64)?;
        let params = LinearParams {
            epi: Epilogue::new(act, has_bias != 0),
            batch: s.batch as u32,
            in_f: s.in_features as u32,
            out_f: s.out_features as u32,
            rows: r as u32,
            row0: row0 as u32,
            ..LinearParams::default()
        };
        let args = LinearArgs {
            x: x.clone(),
            w: w.clone(),
            bias: bias.clone(),
            out: out.clone(),
        };
        let grid = fold_workgroups(ctx, label, (r as u64).div_ceil(u64::from(WG)))?;
        let entry = SHADER.entry("linear", &[("WG", WG)]);
        calls.push(Call::new(
            ctx,
            label,
            entry,
            &params,
            args.into_vec(),
            grid,
        )?);
        row0 += r;
    }
    Ok(calls)
}

/// The `linear` family: one invocation per output feature, any width.
pub struct Naive;

/// `linear`: runs every fully connected layer.
pub static LINEAR: Naive = Naive;

impl Family for Naive {
    fn name(&self) -> &'static str {
        "linear"
    }
}

impl LinearForward for Naive {
    fn prefers(&self, _: &LinearShape, _: &Adapter) -> bool {
        true
    }

    fn can_run(&self, _: &LinearShape, _: &Adapter, _: Option<u16>) -> bool {
        true
    }

    fn forward(
        &self,
        ctx: &GpuContext,
        run: LinearRun<'_>,
        _: Option<u16>,
        _: &mut Scratch<'_>,
    ) -> Result<Vec<Call>> {
        run.require_f32("linear")?;
        let w = (run.chunks, run.bias);
        forward(ctx, run.label, (run.shape, run.act), run.x, w, run.out)
    }
}
