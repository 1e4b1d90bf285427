//! Launcher for `shaders/pool.wgsl`: max, average and adaptive average pooling and their
//! backward (gather form, one invocation per input element).

use super::{check_arg, check_dims, checked_len, per_element, Arg, Call};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::geometry::ConvGeometry;
use crate::graph::Pool2dSpec;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `pool.wgsl`.
    pub struct PoolParams = "Params" {
        /// The geometry ([`ConvGeometry`]).
        pub geom: ConvGeometry,
        /// Elements processed (forward: outputs; backward: inputs).
        pub len: u32,
        /// `f32::NEG_INFINITY`, the value of an empty max window.
        pub neg_inf: f32,
        /// 1: `out += ·` (backward only).
        pub accumulate: u32,
        /// Padding.
        pub _pad0: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/pool.wgsl`.
    pub static SHADER = "pool" {
        params: PoolParams,
        trusted: false,
        /// Arguments of the pooling entry points.
        args: PoolArgs {
            /// The forward input (bound to `dy` by the backward of avg / adaptive pooling).
            x: read array<act_t>,
            /// The output gradient (bound to `x` by the forward).
            dy: read array<f32>,
            /// The output, or the input gradient.
            out: write array<act_t>,
        }
    }
}

/// Which pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// Max pooling.
    Max(Pool2dSpec),
    /// Average pooling (padded zeros counted).
    Avg(Pool2dSpec),
    /// Adaptive average pooling to `[oh, ow]`.
    Adaptive([usize; 2]),
}

/// The geometry of a pooling layer.
#[derive(Clone, Copy, Debug)]
pub struct PoolShape {
    /// Which pooling.
    pub kind: PoolKind,
    /// Batch size.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Input `[h, w]`.
    pub in_hw: [usize; 2],
}

impl PoolShape {
    /// The output `[oh, ow]`, checking the window.
    pub fn out_hw(&self, label: &str) -> Result<[usize; 2]> {
        let [h, w] = self.in_hw;
        check_dims(
            label,
            &[
                ("batch", self.batch),
                ("channels", self.channels),
                ("input height", h),
                ("input width", w),
            ],
        )?;
        match self.kind {
            PoolKind::Adaptive([oh, ow]) => {
                check_dims(label, &[("output height", oh), ("output width", ow)])?;
                Ok([oh, ow])
            }
            PoolKind::Max(s) | PoolKind::Avg(s) => {
                check_dims(
                    label,
                    &[
                        ("window height", s.kernel[0]),
                        ("window width", s.kernel[1]),
                        ("stride", s.stride[0]),
                        ("stride", s.stride[1]),
                    ],
                )?;
                if s.padding[0] > s.kernel[0] / 2 || s.padding[1] > s.kernel[1] / 2 {
                    return Err(Error::shape(
                        label,
                        "pool padding must be at most half the window",
                    ));
                }
                s.out_hw(h, w).ok_or_else(|| {
                    Error::shape(
                        label,
                        format!("pool window {:?} does not fit a {h}×{w} input", s.kernel),
                    )
                })
            }
        }
    }

    fn params(&self, label: &str, backward: bool) -> Result<PoolParams> {
        let [oh, ow] = self.out_hw(label)?;
        let [h, w] = self.in_hw;
        let planes = checked_len(label, "planes", &[self.batch, self.channels])?;
        let (ins, outs) = (
            checked_len(label, "x", &[planes, h, w])?,
            checked_len(label, "out", &[planes, oh, ow])?,
        );
        let s = match self.kind {
            PoolKind::Max(s) | PoolKind::Avg(s) => s,
            PoolKind::Adaptive(_) => Pool2dSpec::square(1, 1, 0),
        };
        let u = |v: usize| v as u32;
        Ok(PoolParams {
            // A pool is a depthwise window: one group per channel, no dilation.
            geom: ConvGeometry {
                batch: u(self.batch),
                c_in: u(self.channels),
                h: u(h),
                w: u(w),
                c_out: u(self.channels),
                oh: u(oh),
                ow: u(ow),
                kh: u(s.kernel[0]),
                kw: u(s.kernel[1]),
                sh: u(s.stride[0]),
                sw: u(s.stride[1]),
                ph: u(s.padding[0]),
                pw: u(s.padding[1]),
                dh: 1,
                dw: 1,
                groups: u(self.channels),
            },
            len: if backward { ins } else { outs } as u32,
            neg_inf: f32::NEG_INFINITY,
            ..PoolParams::default()
        })
    }

    fn entry(&self, backward: bool) -> &'static str {
        match (self.kind, backward) {
            (PoolKind::Max(_), false) => "max_pool",
            (PoolKind::Avg(_), false) => "avg_pool",
            (PoolKind::Adaptive(_), false) => "adaptive_avg_pool",
            (PoolKind::Max(_), true) => "max_pool_backward",
            (PoolKind::Avg(_), true) => "avg_pool_backward",
            (PoolKind::Adaptive(_), true) => "adaptive_avg_pool_backward",
        }
    }
}

/// Pooling `x` `[B, C, H, W]` into `out` `[B, C, OH, OW]` (CPU reference semantics).
pub fn forward(ctx: &GpuContext, label: &str, s: &PoolShape, x: &Arg, out: &Arg) -> Result<Call> {
    let p = s.params(label, false)?;
    check_arg(
        ctx,
        label,
        "x",
        x,
        u64::from(p.geom.batch * p.geom.c_in) * u64::from(p.geom.h * p.geom.w),
    )?;
    check_arg(ctx, label, "out", out, u64::from(p.len))?;
    let args = PoolArgs {
        x: x.clone(),
        dy: x.clone(),
        out: out.clone(),
    };
    per_element(
        ctx,
        label,
        (&SHADER, s.entry(false)),
        &p,
        args.into_vec(),
        p.len as usize,
    )
}

/// Backward: `dx (+)= ∂L/∂x` from `dy`; max pooling also reads the forward input `x`
/// (required for it, ignored by the others).
pub fn backward(
    ctx: &GpuContext,
    label: &str,
    s: &PoolShape,
    x: Option<&Arg>,
    dy: &Arg,
    dx: &Arg,
    accumulate: bool,
) -> Result<Call> {
    let p = PoolParams {
        accumulate: u32::from(accumulate),
        ..s.params(label, true)?
    };
    let outs = u64::from(p.geom.batch * p.geom.c_in) * u64::from(p.geom.oh * p.geom.ow);
    check_arg(ctx, label, "grad_out", dy, outs)?;
    check_arg(ctx, label, "grad_in", dx, u64::from(p.len))?;
    let x = match (s.kind, x) {
        (PoolKind::Max(_), Some(x)) => {
            check_arg(ctx, label, "x", x, u64::from(p.len))?;
            x.clone()
        }
        (PoolKind::Max(_), None) => {
            return Err(Error::InvalidArgument(format!(
                "{label}: max pooling backward needs the forward input"
            )))
        }
        _ => dy.clone(),
    };
    let args = PoolArgs {
        x,
        dy: dy.clone(),
        out: dx.clone(),
    };
    per_element(
        ctx,
        label,
        (&SHADER, s.entry(true)),
        &p,
        args.into_vec(),
        p.len as usize,
    )
}
