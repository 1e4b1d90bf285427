//! Launcher for `shaders/linear.wgsl`: fully connected layers whose weight may be split by
//! rows over several buffers (one dispatch per chunk), because a classifier weight can
//! exceed `max_storage_buffer_binding_size` (VGG's `classifier.0` is 411 MB; lavapipe
//! binds at most 128 MiB).

use super::{check_buffer, check_dims, check_tensor, fold_workgroups, make_dispatch};
use crate::error::{Error, Result};
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;

/// `shaders/linear.wgsl`: params, x, weight chunk, bias, out.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "linear",
    source: include_str!("../../../shaders/linear.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
    ],
    trusted: false,
};

/// Invocations per workgroup (one output feature each).
pub const WG: u32 = 64;

/// Mirror of the WGSL `Params` of `linear.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LinearParams {
    /// Batch size.
    pub batch: u32,
    /// Input features.
    pub in_f: u32,
    /// Output features (row length of `out`).
    pub out_f: u32,
    /// Rows of this weight chunk.
    pub rows: u32,
    /// First output feature of this chunk.
    pub row0: u32,
    /// 1 when a bias is added.
    pub has_bias: u32,
    /// 1 when ReLU is fused.
    pub relu: u32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}
super::uniform_params!(LinearParams);

/// Rows per chunk so that each chunk of a `[out_features, in_features]` weight fits one
/// storage binding (and one buffer) on this adapter; the sizes sum to `out_features`.
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

/// Uploads a row-major `[out, in]` weight as chunks of [`split_rows`] rows:
/// `(buffer, rows in chunk)` in order, ready for [`prepare_linear`].
pub fn upload_weight(
    ctx: &GpuContext,
    label: &str,
    data: &[f32],
    out: usize,
    in_: usize,
) -> Result<Vec<(wgpu::Buffer, usize)>> {
    if data.len() != out * in_ {
        return Err(Error::tensor_shape(
            format!("{label} (weight)"),
            format!("[{out}, {in_}] = {} values", out * in_),
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
            Ok((ctx.upload(&format!("{label} weight[{i}]"), chunk)?, rows))
        })
        .collect()
}

/// `out = x·Wᵀ + b` (then `max(·, 0)` when `relu`) for `x`: `[batch, in_features]`, with
/// `W` given as consecutive row chunks `(buffer of rows·in_features floats, rows)` whose
/// rows sum to `out_features`. One dispatch per chunk.
#[allow(clippy::too_many_arguments)]
pub fn prepare_linear(
    ctx: &GpuContext,
    label: &str,
    x: TensorRef<'_>,
    weight_chunks: &[(wgpu::Buffer, usize)],
    bias: Option<&wgpu::Buffer>,
    out: TensorRef<'_>,
    batch: usize,
    in_features: usize,
    out_features: usize,
    relu: bool,
) -> Result<Vec<Dispatch>> {
    check_dims(
        label,
        &[
            ("batch", batch),
            ("in_features", in_features),
            ("out_features", out_features),
        ],
    )?;
    check_tensor(ctx, label, "x", &x, (batch * in_features) as u64)?;
    check_tensor(ctx, label, "out", &out, (batch * out_features) as u64)?;
    let total: usize = weight_chunks.iter().map(|c| c.1).sum();
    if total != out_features || weight_chunks.iter().any(|c| c.1 == 0) {
        return Err(Error::shape(
            label,
            format!(
                "weight chunks of {:?} rows must be non-empty and sum to out_features {out_features}",
                weight_chunks.iter().map(|c| c.1).collect::<Vec<_>>()
            ),
        ));
    }
    if let Some(b) = bias {
        check_buffer(ctx, label, "bias", b, out_features as u64)?;
    }
    let dummy;
    let bias_buf = match bias {
        Some(b) => b,
        None => {
            dummy = ctx.storage_buffer(&format!("{label} no bias"), 4)?;
            &dummy
        }
    };
    let mut row0 = 0;
    let mut v = Vec::with_capacity(weight_chunks.len());
    for (i, (buf, rows)) in weight_chunks.iter().enumerate() {
        let name = format!("weight chunk {i}");
        check_buffer(ctx, label, &name, buf, (rows * in_features) as u64)?;
        let params = LinearParams {
            batch: batch as u32,
            in_f: in_features as u32,
            out_f: out_features as u32,
            rows: *rows as u32,
            row0: row0 as u32,
            has_bias: u32::from(bias.is_some()),
            relu: u32::from(relu),
            _pad: 0,
        };
        let u = ctx.uniform(&format!("{label} params[{i}]"), &params);
        let wgs = fold_workgroups(ctx, label, (*rows as u64).div_ceil(u64::from(WG)))?;
        v.push(make_dispatch(
            ctx,
            label,
            &SHADER,
            "linear",
            vec![("WG", WG)],
            &[
                u.as_entire_binding(),
                x.binding(),
                buf.as_entire_binding(),
                bias_buf.as_entire_binding(),
                out.binding(),
            ],
            wgs,
        )?);
        row0 += rows;
    }
    Ok(v)
}
