//! Launcher for `shaders/grad.wgsl`: element-wise training helpers (ReLU backward, copy /
//! gradient accumulation, inverted dropout and its backward).

use super::{check_dims, check_tensor, check_tensor_min, element_grid, make_dispatch};
use crate::error::{Error, Result};
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;

/// `shaders/grad.wgsl`: params, a, b, seed (u32), out.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "grad",
    source: include_str!("../../../shaders/grad.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
    ],
    trusted: false,
};

/// Invocations per workgroup (one element each).
pub const WG: u32 = 64;

/// Mirror of the WGSL `Params` of `grad.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GradParams {
    /// Number of elements.
    pub len: u32,
    /// 1: `out += ·`; 0: `out = ·`.
    pub accumulate: u32,
    /// Dropout: drop when the 24 hashed bits are below this (`p·2²⁴`).
    pub threshold: u32,
    /// Dropout: `1/(1−p)`, the mask value of a kept element.
    pub scale: f32,
}
super::uniform_params!(GradParams);

#[allow(clippy::too_many_arguments)]
fn prepare(
    ctx: &GpuContext,
    label: &str,
    entry: &'static str,
    len: usize,
    a: (&str, TensorRef<'_>),
    b: Option<(&str, TensorRef<'_>)>,
    seed: Option<TensorRef<'_>>,
    out: (&str, TensorRef<'_>),
    params: GradParams,
) -> Result<Dispatch> {
    check_dims(label, &[("len", len)])?;
    check_tensor(ctx, label, a.0, &a.1, len as u64)?;
    if let Some((name, t)) = &b {
        check_tensor(ctx, label, name, t, len as u64)?;
    }
    if let Some(s) = &seed {
        check_tensor_min(ctx, label, "seed", s, 2)?;
    }
    check_tensor(ctx, label, out.0, &out.1, len as u64)?;
    let u = ctx.uniform(&format!("{label} params"), &params);
    // Unused slots are filled with `a` (binding one buffer read-only twice is allowed).
    let b = b.map_or(a.1, |(_, t)| t);
    let seed = seed.unwrap_or(a.1);
    make_dispatch(
        ctx,
        label,
        &SHADER,
        entry,
        vec![("WG", WG)],
        &[
            u.as_entire_binding(),
            a.1.binding(),
            b.binding(),
            seed.binding(),
            out.1.binding(),
        ],
        element_grid(ctx, label, len, WG)?,
    )
}

fn plain(len: usize, accumulate: bool) -> GradParams {
    GradParams {
        len: len as u32,
        accumulate: u32::from(accumulate),
        threshold: 0,
        scale: 1.0,
    }
}

/// ReLU backward from the forward INPUT `x`: `dx = dy` where `x > 0`, else 0 (a NaN `x`
/// passes `dy`, as the CPU `relu_backward`). `grad_in` is written or, with `accumulate`,
/// added to.
pub fn prepare_relu_backward(
    ctx: &GpuContext,
    label: &str,
    len: usize,
    x: TensorRef<'_>,
    grad_out: TensorRef<'_>,
    grad_in: TensorRef<'_>,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    Ok(vec![prepare(
        ctx,
        label,
        "relu_backward",
        len,
        ("x", x),
        Some(("grad_out", grad_out)),
        None,
        ("grad_in", grad_in),
        plain(len, accumulate),
    )?])
}

/// `dst = src` or, with `accumulate`, `dst += src` (the backward of a residual add,
/// gradient accumulation). `src` and `dst` must be different buffers.
pub fn prepare_copy(
    ctx: &GpuContext,
    label: &str,
    len: usize,
    src: TensorRef<'_>,
    dst: TensorRef<'_>,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    Ok(vec![prepare(
        ctx,
        label,
        "copy",
        len,
        ("src", src),
        None,
        None,
        ("dst", dst),
        plain(len, accumulate),
    )?])
}

/// Inverted dropout: `mask[i] = 0` with probability `p`, else `1/(1−p)`, from a
/// counter-based hash of `(seed[0], seed[1], i)` (`seed`: a storage buffer of at least two
/// u32, rewritten per step with `queue.write_buffer`; the same seed gives the same mask),
/// then `y = x·mask`. `p` must be in `[0, 1)`; the drop probability is `p` rounded to a
/// multiple of 2⁻²⁴. Cannot match the CPU `dropout_mask` RNG bit for bit.
///
/// Two dispatches (mask, then `y`). `mask` and `y` must be in different buffers.
#[allow(clippy::too_many_arguments)]
pub fn prepare_dropout(
    ctx: &GpuContext,
    label: &str,
    len: usize,
    p: f32,
    seed: TensorRef<'_>,
    x: TensorRef<'_>,
    mask: TensorRef<'_>,
    y: TensorRef<'_>,
) -> Result<Vec<Dispatch>> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::shape(label, format!("dropout p {p} not in [0, 1)")));
    }
    let params = GradParams {
        len: len as u32,
        accumulate: 0,
        threshold: (f64::from(p) * f64::from(1u32 << 24)).round() as u32,
        scale: 1.0 / (1.0 - p),
    };
    Ok(vec![
        prepare(
            ctx,
            label,
            "dropout_mask",
            len,
            ("x", x),
            None,
            Some(seed),
            ("mask", mask),
            params,
        )?,
        prepare(
            ctx,
            label,
            "mul",
            len,
            ("x", x),
            Some(("mask", mask)),
            None,
            ("y", y),
            plain(len, false),
        )?,
    ])
}

/// `dx = dy·mask` (dropout's backward; any element-wise product), written or, with
/// `accumulate`, added to `grad_in`.
pub fn prepare_mul(
    ctx: &GpuContext,
    label: &str,
    len: usize,
    grad_out: TensorRef<'_>,
    mask: TensorRef<'_>,
    grad_in: TensorRef<'_>,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    Ok(vec![prepare(
        ctx,
        label,
        "mul",
        len,
        ("grad_out", grad_out),
        Some(("mask", mask)),
        None,
        ("grad_in", grad_in),
        plain(len, accumulate),
    )?])
}
