//! Launcher for `shaders/gather.wgsl`: channel gather, `out[n, c] = x[n, indices[c]]`, and the
//! per-input copies of a channel concat.

use super::{check_arg, check_dims, checked_len, per_element, Call};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `gather.wgsl`.
    pub struct GatherParams = "Params" {
        /// Batch size.
        pub batch: u32,
        /// Input channels.
        pub c_in: u32,
        /// Output channels (= number of indices).
        pub c_out: u32,
        /// Pixels per channel plane.
        pub hw: u32,
        /// Elements written.
        pub len: u32,
        /// `(output, input)` channel pairs of `gather_into`.
        pub pairs: u32,
        /// Padding.
        pub _pad1: u32,
        /// Padding.
        pub _pad2: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/gather.wgsl`.
    pub static SHADER = "gather" {
        params: GatherParams,
        trusted: false,
        /// Arguments of `gather`.
        args: GatherArgs {
            /// `[batch, c_in, hw]` input.
            x: read array<act_t>,
            /// `[c_out]` source channels as `u32` (see [`upload_indices`]).
            indices: read array<u32>,
            /// `[batch, c_out, hw]` output.
            out: write array<act_t>,
        }
    }
}

/// Uploads gather indices as `u32`, checking each is below `c_in` (the shader clamps, so
/// this is where a bad index becomes an error).
pub fn upload_indices(
    ctx: &GpuContext,
    label: &str,
    indices: &[usize],
    c_in: usize,
) -> Result<wgpu::Buffer> {
    if let Some(&bad) = indices.iter().find(|&&i| i >= c_in) {
        return Err(Error::shape(
            label,
            format!("gather index {bad} is not below {c_in} input channels"),
        ));
    }
    let v: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
    ctx.upload_u32(&format!("{label} indices"), &v)
}

/// `out[n, c] = x[n, indices[c]]` for `[batch, channels, hw]` with `channels = [c_in, c_out]`.
pub fn gather(
    ctx: &GpuContext,
    label: &str,
    (batch, [c_in, c_out], hw): (usize, [usize; 2], usize),
    args: GatherArgs,
) -> Result<Call> {
    check_dims(
        label,
        &[
            ("batch", batch),
            ("c_in", c_in),
            ("c_out", c_out),
            ("hw", hw),
        ],
    )?;
    let x_len = checked_len(label, "x", &[batch, c_in, hw])?;
    let len = checked_len(label, "out", &[batch, c_out, hw])?;
    check_arg(ctx, label, "x", &args.x, x_len as u64)?;
    check_arg(ctx, label, "out", &args.out, len as u64)?;
    check_arg(ctx, label, "indices", &args.indices, c_out as u64)?;
    let params = GatherParams {
        batch: batch as u32,
        c_in: c_in as u32,
        c_out: c_out as u32,
        hw: hw as u32,
        len: len as u32,
        ..GatherParams::default()
    };
    per_element(
        ctx,
        label,
        (&SHADER, "gather"),
        &params,
        args.into_vec(),
        len,
    )
}

/// Uploads `(output channel, input channel)` pairs for [`gather_into`], checking every channel
/// against `[c_out, c_in]`.
pub fn upload_pairs(
    ctx: &GpuContext,
    label: &str,
    pairs: &[[usize; 2]],
    [c_out, c_in]: [usize; 2],
) -> Result<wgpu::Buffer> {
    if let Some(bad) = pairs.iter().find(|[o, i]| *o >= c_out || *i >= c_in) {
        return Err(Error::shape(
            label,
            format!("channel pair {bad:?} outside {c_out} output / {c_in} input channels"),
        ));
    }
    let v: Vec<u32> = pairs.iter().flatten().map(|&c| c as u32).collect();
    ctx.upload_u32(&format!("{label} channel pairs"), &v)
}

/// `out[n, o] = x[n, i]` for each `(o, i)` of `pairs` (`indices` holds `2·pairs` u32, see
/// [`upload_pairs`]); the other output channels are not touched.
pub fn gather_into(
    ctx: &GpuContext,
    label: &str,
    (batch, [c_in, c_out], hw, pairs): (usize, [usize; 2], usize, usize),
    args: GatherArgs,
) -> Result<Call> {
    check_dims(
        label,
        &[
            ("batch", batch),
            ("c_in", c_in),
            ("c_out", c_out),
            ("hw", hw),
            ("pairs", pairs),
        ],
    )?;
    check_arg(
        ctx,
        label,
        "x",
        &args.x,
        checked_len(label, "x", &[batch, c_in, hw])? as u64,
    )?;
    let out_len = checked_len(label, "out", &[batch, c_out, hw])?;
    check_arg(ctx, label, "out", &args.out, out_len as u64)?;
    check_arg(ctx, label, "indices", &args.indices, 2 * pairs as u64)?;
    let len = checked_len(label, "copies", &[batch, pairs, hw])?;
    let params = GatherParams {
        batch: batch as u32,
        c_in: c_in as u32,
        c_out: c_out as u32,
        hw: hw as u32,
        len: len as u32,
        pairs: pairs as u32,
        ..GatherParams::default()
    };
    per_element(
        ctx,
        label,
        (&SHADER, "gather_into"),
        &params,
        args.into_vec(),
        len,
    )
}
