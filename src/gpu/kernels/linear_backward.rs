//! Launcher for `shaders/linear_backward.wgsl`: `dx = dy·W`, `dW = dyᵀ·x`, `db = Σ dy`
//! (`ops::linear_backward`), chunk by chunk for a weight split by rows.

use super::{check_arg, per_element, Arg, Call};
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::geometry::LinearShape;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `linear_backward.wgsl`.
    pub struct LinearBackwardParams = "Params" {
        /// Batch B.
        pub batch: u32,
        /// Input features.
        pub in_features: u32,
        /// Output features (all chunks).
        pub out_features: u32,
        /// 1: `grad_in += ·`; 0: `grad_in = ·`.
        pub accumulate: u32,
        /// First row of the chunk.
        pub row0: u32,
        /// Rows of the chunk.
        pub rows: u32,
        /// Padding.
        pub _pad0: u32,
        /// Padding.
        pub _pad1: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/linear_backward.wgsl`.
    pub static SHADER = "linear_backward" {
        params: LinearBackwardParams,
        trusted: false,
        /// Arguments (roles per entry point in the shader).
        args: LinearBackwardArgs {
            /// `dy`.
            a: read array<f32>,
            /// The weight chunk, `x`, or `dy`.
            b: read array<f32>,
            /// The gradient written.
            out: write array<f32>,
        }
    }
}

/// The tensors of a linear backward.
#[derive(Clone, Debug)]
pub struct LinearGradArgs<'a> {
    /// The forward input `[B, in]`.
    pub x: &'a Arg,
    /// The weight, as row chunks.
    pub weight: &'a [Arg],
    /// `∂L/∂y`, `[B, out]`.
    pub dy: &'a Arg,
    /// `∂L/∂x`, written (or accumulated) over all chunks.
    pub dx: &'a Arg,
    /// `∂L/∂W`, one argument per weight chunk.
    pub dw: &'a [Arg],
    /// `∂L/∂b`, when the layer has a bias.
    pub db: Option<&'a Arg>,
}

/// Backward of [`super::linear::forward`]: per chunk `dx (+)= dy[:, chunk]·W_chunk` (the
/// first chunk honours `accumulate`, the others add) and `dW_chunk`; then `db`.
pub fn backward(
    ctx: &GpuContext,
    label: &str,
    (s, accumulate): (&LinearShape, bool),
    a: LinearGradArgs<'_>,
) -> Result<Vec<Call>> {
    let (x_len, y_len) = s.lens(label)?;
    check_arg(ctx, label, "x", a.x, x_len as u64)?;
    check_arg(ctx, label, "grad_out", a.dy, y_len as u64)?;
    check_arg(ctx, label, "grad_in", a.dx, x_len as u64)?;
    let rows = s.chunk_rows(label, a.weight)?;
    s.chunk_rows(label, a.dw)?;
    let mut calls = Vec::new();
    let call = |entry, p: &LinearBackwardParams, b: &Arg, out: &Arg, len| {
        let args = LinearBackwardArgs {
            a: a.dy.clone(),
            b: b.clone(),
            out: out.clone(),
        };
        per_element(ctx, label, (&SHADER, entry), p, args.into_vec(), len)
    };
    let mut row0 = 0;
    for (k, &r) in rows.iter().enumerate() {
        let p = LinearBackwardParams {
            batch: s.batch as u32,
            in_features: s.in_features as u32,
            out_features: s.out_features as u32,
            accumulate: u32::from(accumulate || k > 0),
            row0: row0 as u32,
            rows: r as u32,
            ..LinearBackwardParams::default()
        };
        check_arg(
            ctx,
            label,
            "grad_weight",
            &a.dw[k],
            (r * s.in_features) as u64,
        )?;
        calls.push(call("linear_grad_input", &p, &a.weight[k], a.dx, x_len)?);
        calls.push(call(
            "linear_grad_weight",
            &p,
            a.x,
            &a.dw[k],
            r * s.in_features,
        )?);
        row0 += r;
    }
    if let Some(db) = a.db {
        check_arg(ctx, label, "grad_bias", db, s.out_features as u64)?;
        let p = LinearBackwardParams {
            batch: s.batch as u32,
            in_features: s.in_features as u32,
            out_features: s.out_features as u32,
            rows: s.out_features as u32,
            ..LinearBackwardParams::default()
        };
        calls.push(call("linear_grad_bias", &p, a.dy, db, s.out_features)?);
    }
    Ok(calls)
}
