//! Launcher for `shaders/conv_backward.wgsl`: the training-time backward of the grouped
//! convolution (input gradient, weight gradient) and per-channel sums (bias gradient, BN's dβ).
//!
//! Weights are in the plain PyTorch layout `[N, C/G, kh, kw]` (not conv_tiled's packed one).
//! Every op is one dispatch whatever the groups: the group of an element follows from its
//! channel. Grids above `max_compute_workgroups_per_dimension` are folded into 2-D.

use super::{check_dims, check_tensor, fold_workgroups, make_dispatch};
use crate::error::{Error, Result};
use crate::gpu::context::{BindingKind, GpuContext, ShaderSpec, TensorRef};
use crate::gpu::Dispatch;
use crate::graph::Conv2dSpec;

/// `shaders/conv_backward.wgsl`: params, a, b, out.
pub static SHADER: ShaderSpec = ShaderSpec {
    name: "conv_backward",
    source: include_str!("../../../shaders/conv_backward.wgsl"),
    bindings: &[
        BindingKind::Uniform,
        BindingKind::ReadOnly,
        BindingKind::ReadOnly,
        BindingKind::ReadWrite,
    ],
    trusted: false,
};

/// Invocations per workgroup of `grad_input` (one `dx` element each).
pub const WG: u32 = 64;

/// Lanes of the reducing workgroups (`grad_weight`: one workgroup per weight element;
/// `channel_sum`: one per channel). Fixed in the shader (`RED`).
pub const RED: u32 = 64;

/// Mirror of the WGSL `Params` of `conv_backward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvBackwardParams {
    /// Batch B.
    pub batch: u32,
    /// Input channels C (channel_sum: its channels).
    pub c_in: u32,
    /// Input height (channel_sum: H·W).
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output channels N.
    pub c_out: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Kernel height.
    pub kh: u32,
    /// Kernel width.
    pub kw: u32,
    /// Stride (rows).
    pub sh: u32,
    /// Stride (columns).
    pub sw: u32,
    /// Padding (rows).
    pub ph: u32,
    /// Padding (columns).
    pub pw: u32,
    /// Dilation (rows).
    pub dh: u32,
    /// Dilation (columns).
    pub dw: u32,
    /// Input channels per group, C/G.
    pub cin_g: u32,
    /// Filters per group, N/G.
    pub cout_g: u32,
    /// 1: `out += value`; 0: `out = value` (grad_input only).
    pub accumulate: u32,
    /// Elements (grad_input), weight elements (grad_weight) or channels (channel_sum).
    pub total: u32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}
super::uniform_params!(ConvBackwardParams);

/// Validates `spec` against `in_hw` and fills the shape part of the parameters.
fn conv_params(
    label: &str,
    spec: &Conv2dSpec,
    batch: usize,
    in_hw: [usize; 2],
) -> Result<ConvBackwardParams> {
    let [h, w] = in_hw;
    let [kh, kw] = spec.kernel;
    let g = spec.groups;
    check_dims(
        label,
        &[
            ("batch", batch),
            ("in_channels", spec.in_channels),
            ("out_channels", spec.out_channels),
            ("groups", g),
            ("height", h),
            ("width", w),
            ("kernel height", kh),
            ("kernel width", kw),
            ("stride height", spec.stride[0]),
            ("stride width", spec.stride[1]),
            ("dilation height", spec.dilation[0]),
            ("dilation width", spec.dilation[1]),
        ],
    )?;
    if spec.in_channels % g != 0 || spec.out_channels % g != 0 {
        return Err(Error::shape(
            label,
            format!(
                "in_channels {} and out_channels {} must both be divisible by groups {g}",
                spec.in_channels, spec.out_channels
            ),
        ));
    }
    let [oh, ow] = spec.out_hw(h, w).ok_or_else(|| {
        Error::shape(
            label,
            format!("input {h}x{w} is smaller than the (dilated) kernel {kh}x{kw}"),
        )
    })?;
    // The shader adds the padding to input coordinates in u32.
    if h + 2 * spec.padding[0] > u32::MAX as usize || w + 2 * spec.padding[1] > u32::MAX as usize {
        return Err(Error::shape(label, "padded input exceeds u32 indexing"));
    }
    Ok(ConvBackwardParams {
        batch: batch as u32,
        c_in: spec.in_channels as u32,
        h: h as u32,
        w: w as u32,
        c_out: spec.out_channels as u32,
        oh: oh as u32,
        ow: ow as u32,
        kh: kh as u32,
        kw: kw as u32,
        sh: spec.stride[0] as u32,
        sw: spec.stride[1] as u32,
        ph: spec.padding[0] as u32,
        pw: spec.padding[1] as u32,
        dh: spec.dilation[0] as u32,
        dw: spec.dilation[1] as u32,
        cin_g: (spec.in_channels / g) as u32,
        cout_g: (spec.out_channels / g) as u32,
        accumulate: 0,
        total: 0,
        _pad: 0,
    })
}

/// Element counts `(x, weight, grad_out)` for `p`.
fn sizes(p: &ConvBackwardParams) -> (u64, u64, u64) {
    let u = u64::from;
    (
        u(p.batch) * u(p.c_in) * u(p.h) * u(p.w),
        u(p.c_out) * u(p.cin_g) * u(p.kh) * u(p.kw),
        u(p.batch) * u(p.c_out) * u(p.oh) * u(p.ow),
    )
}

/// Fails when `total` does not fit the shader's `u32` indexing.
fn total_u32(label: &str, total: u64) -> Result<u32> {
    u32::try_from(total)
        .map_err(|_| Error::shape(label, format!("{total} elements exceed u32 indexing")))
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    ctx: &GpuContext,
    label: &str,
    entry: &'static str,
    params: &ConvBackwardParams,
    a: TensorRef<'_>,
    b: TensorRef<'_>,
    out: TensorRef<'_>,
    workgroups: u64,
) -> Result<Vec<Dispatch>> {
    let wgs = fold_workgroups(ctx, label, workgroups)?;
    let u = ctx.uniform(&format!("{label} params"), params);
    Ok(vec![make_dispatch(
        ctx,
        label,
        &SHADER,
        entry,
        vec![("WG", WG)],
        &[
            u.as_entire_binding(),
            a.binding(),
            b.binding(),
            out.binding(),
        ],
        wgs,
    )?])
}

/// `dx[b, ci, y, x]` (`=` or, with `accumulate`, `+=`) `Σ` over the filters of ci's group and
/// the window taps that read `(y, x)` of `w·dy`. Gather form: one invocation per `dx` element
/// (workgroups of [`WG`]), no atomics.
///
/// `grad_out`: `[batch, N, OH, OW]`; `weight`: `[N, C/G, kh, kw]`; `grad_in`:
/// `[batch, C, H, W]` with `in_hw = [H, W]`. `accumulate == true` adds to what `grad_in`
/// already holds (another consumer's gradient). `grad_in` must not share a buffer with the
/// inputs.
#[allow(clippy::too_many_arguments)]
pub fn prepare_conv_grad_input(
    ctx: &GpuContext,
    label: &str,
    spec: &Conv2dSpec,
    batch: usize,
    in_hw: [usize; 2],
    grad_out: TensorRef<'_>,
    weight: TensorRef<'_>,
    grad_in: TensorRef<'_>,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    let mut p = conv_params(label, spec, batch, in_hw)?;
    let (nx, nw, ny) = sizes(&p);
    check_tensor(ctx, label, "grad_out", &grad_out, ny)?;
    check_tensor(ctx, label, "weight", &weight, nw)?;
    check_tensor(ctx, label, "grad_in", &grad_in, nx)?;
    p.accumulate = u32::from(accumulate);
    let kernel = input_grad_kernel(spec);
    if kernel == InputGradKernel::Pointwise4 {
        // 4 input channels × 4 pixels per invocation.
        let hw = u64::from(p.h) * u64::from(p.w);
        let n = u64::from(p.batch) * u64::from(p.c_in / 4) * hw.div_ceil(4);
        p.total = total_u32(label, n)?;
        let wgs = n.div_ceil(u64::from(WG));
        return dispatch(
            ctx,
            label,
            "grad_input_pw4",
            &p,
            grad_out,
            weight,
            grad_in,
            wgs,
        );
    }
    p.total = total_u32(label, nx)?;
    let wgs = nx.div_ceil(u64::from(WG));
    dispatch(ctx, label, "grad_input", &p, grad_out, weight, grad_in, wgs)
}

/// Kernel of [`prepare_conv_grad_input`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputGradKernel {
    /// One invocation per `dx` element (any convolution).
    Gather,
    /// 4 input channels × 4 pixels per invocation (1×1, stride 1, no padding, C/G % 4 == 0).
    Pointwise4,
}

/// The input-gradient kernel for `spec`.
pub fn input_grad_kernel(spec: &Conv2dSpec) -> InputGradKernel {
    let g = spec.groups.max(1);
    if is_pointwise(spec) && (spec.in_channels / g) % 4 == 0 {
        InputGradKernel::Pointwise4
    } else {
        InputGradKernel::Gather
    }
}

/// Kernel of [`prepare_conv_grad_weight_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightGradKernel {
    /// One workgroup of [`RED`] lanes per weight element and a tree reduction: for few
    /// weights with long reductions on a real GPU.
    Reduce,
    /// One invocation per weight element, no barriers.
    Serial,
    /// 4 filters × 4 input channels per invocation (1×1, stride 1, no padding, C/G and N/G
    /// multiples of 4).
    Pointwise4,
}

/// Whether `kernel` can compute the weight gradient of `spec`.
pub fn weight_grad_kernel_fits(spec: &Conv2dSpec, kernel: WeightGradKernel) -> bool {
    let g = spec.groups.max(1);
    match kernel {
        WeightGradKernel::Reduce | WeightGradKernel::Serial => true,
        WeightGradKernel::Pointwise4 => {
            is_pointwise(spec)
                && (spec.in_channels / g) % 4 == 0
                && (spec.out_channels / g) % 4 == 0
        }
    }
}

/// The weight-gradient kernel for `spec` on `ctx`'s adapter. A CPU-backed adapter (lavapipe)
/// runs a few invocations per core, so barrier-free kernels win whatever the layer; a real
/// GPU needs enough independent sums to fill it ([`SERIAL_MIN_WEIGHTS`]), else the
/// reducing workgroups.
pub fn weight_grad_kernel(ctx: &GpuContext, spec: &Conv2dSpec) -> WeightGradKernel {
    let nw: usize = spec.weight_shape().iter().product();
    let min = if ctx.is_cpu() {
        0
    } else {
        SERIAL_MIN_WEIGHTS as usize
    };
    if weight_grad_kernel_fits(spec, WeightGradKernel::Pointwise4) && nw / 16 >= min / 4 {
        WeightGradKernel::Pointwise4
    } else if nw >= min {
        WeightGradKernel::Serial
    } else {
        WeightGradKernel::Reduce
    }
}

/// A 1×1 convolution with stride 1 and no padding: a per-sample matrix product, which the
/// `*_pw4` kernels compute in 4 × 4 register tiles.
fn is_pointwise(spec: &Conv2dSpec) -> bool {
    spec.kernel == [1, 1] && spec.stride == [1, 1] && spec.padding == [0, 0]
}

/// `dW[o, ic, ky, kx] = Σ_b Σ_{oy,ox} dy·x` (overwrites `grad_weight`), with the kernel that
/// [`weight_grad_kernel`] picks for the adapter and layer (see [`WeightGradKernel`]).
///
/// `x`: `[batch, C, H, W]` with `in_hw = [H, W]`; `grad_out`: `[batch, N, OH, OW]`;
/// `grad_weight`: `[N, C/G, kh, kw]`.
#[allow(clippy::too_many_arguments)]
pub fn prepare_conv_grad_weight(
    ctx: &GpuContext,
    label: &str,
    spec: &Conv2dSpec,
    batch: usize,
    in_hw: [usize; 2],
    x: TensorRef<'_>,
    grad_out: TensorRef<'_>,
    grad_weight: TensorRef<'_>,
) -> Result<Vec<Dispatch>> {
    let k = weight_grad_kernel(ctx, spec);
    prepare_conv_grad_weight_with(ctx, label, k, spec, batch, in_hw, x, grad_out, grad_weight)
}

/// [`prepare_conv_grad_weight`] with an explicit kernel (an error if it does not fit the
/// layer, see [`weight_grad_kernel_fits`]); tests run every kernel that fits.
#[allow(clippy::too_many_arguments)]
pub fn prepare_conv_grad_weight_with(
    ctx: &GpuContext,
    label: &str,
    kernel: WeightGradKernel,
    spec: &Conv2dSpec,
    batch: usize,
    in_hw: [usize; 2],
    x: TensorRef<'_>,
    grad_out: TensorRef<'_>,
    grad_weight: TensorRef<'_>,
) -> Result<Vec<Dispatch>> {
    let mut p = conv_params(label, spec, batch, in_hw)?;
    let (nx, nw, ny) = sizes(&p);
    check_tensor(ctx, label, "x", &x, nx)?;
    check_tensor(ctx, label, "grad_out", &grad_out, ny)?;
    check_tensor(ctx, label, "grad_weight", &grad_weight, nw)?;
    if !weight_grad_kernel_fits(spec, kernel) {
        return Err(Error::shape(
            label,
            format!("weight-gradient kernel {kernel:?} does not fit this convolution"),
        ));
    }
    let (entry, invocations, wg_lanes) = match kernel {
        WeightGradKernel::Reduce => ("grad_weight", nw, 1),
        WeightGradKernel::Serial => ("grad_weight_serial", nw, u64::from(WG)),
        WeightGradKernel::Pointwise4 => ("grad_weight_pw4", nw / 16, u64::from(WG)),
    };
    p.total = total_u32(label, invocations)?;
    let wgs = invocations.div_ceil(wg_lanes);
    dispatch(ctx, label, entry, &p, x, grad_out, grad_weight, wgs)
}

/// On a real GPU, from this many weight elements on [`prepare_conv_grad_weight`] uses one
/// invocation per element (barrier-free) instead of one reducing workgroup per element (for
/// few weights with long reductions, e.g. a depthwise 3×3 over a large batch). On lavapipe
/// the workgroup form costs ≈ 35 µs per workgroup in barriers, 4× the serial form on a
/// 256→512 1×1 layer, so CPU adapters always take the barrier-free kernels.
pub const SERIAL_MIN_WEIGHTS: u64 = 4096;

/// `out[c] = Σ_b Σ_{hw} g[b, c, hw]` (overwrites `out`): the convolution's bias gradient
/// (also batch norm's `dβ`). `g`: `[batch, channels, hw]`; `out`: `[channels]`. One
/// workgroup of [`RED`] lanes per channel.
pub fn prepare_channel_sum(
    ctx: &GpuContext,
    label: &str,
    batch: usize,
    channels: usize,
    hw: usize,
    g: TensorRef<'_>,
    out: TensorRef<'_>,
) -> Result<Vec<Dispatch>> {
    check_dims(
        label,
        &[("batch", batch), ("channels", channels), ("hw", hw)],
    )?;
    let len = batch as u64 * channels as u64 * hw as u64;
    check_tensor(ctx, label, "g", &g, len)?;
    check_tensor(ctx, label, "out", &out, channels as u64)?;
    total_u32(label, len)?;
    let p = ConvBackwardParams {
        batch: batch as u32,
        c_in: channels as u32,
        h: hw as u32,
        total: channels as u32,
        ..Default::default()
    };
    dispatch(ctx, label, "channel_sum", &p, g, g, out, channels as u64)
}
