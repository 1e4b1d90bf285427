//! `conv_grad_fast` as the CPU adapters' gradient family ([`CONV_GRAD_FAST`]): both the
//! input gradient and the weight gradient of any convolution whose groups divide its
//! channels.

use super::{fits, grad_input, grad_weight};
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::family::{Adapter, ConvInputGrad, ConvWeightGrad, Family, GradIo};
use crate::gpu::geometry::ConvShape;
use crate::gpu::launch::{Call, Scratch};
use crate::graph::Conv2dSpec;

/// The `conv_grad_fast` family.
pub struct GradFast;

/// `conv_grad_fast`: transposed implicit GEMM per stride phase (dx), split-K GEMM (dW).
pub static CONV_GRAD_FAST: GradFast = GradFast;

/// Whether the family may be chosen by default (`GCONV_GRAD_KERNELS=old`: no; A/B
/// measurements, `examples/grad_lab.rs`).
fn enabled() -> bool {
    std::env::var("GCONV_GRAD_KERNELS").as_deref() != Ok("old")
}

impl Family for GradFast {
    fn name(&self) -> &'static str {
        "conv_grad_fast"
    }
}

impl ConvInputGrad for GradFast {
    fn prefers(&self, spec: &Conv2dSpec, a: &Adapter) -> bool {
        enabled() && ConvInputGrad::can_run(self, spec, a)
    }

    fn can_run(&self, spec: &Conv2dSpec, _: &Adapter) -> bool {
        fits(spec)
    }

    fn grad_input(
        &self,
        ctx: &GpuContext,
        label: &str,
        shape: (&ConvShape<'_>, bool),
        io: GradIo<'_>,
        scratch: &mut Scratch<'_>,
    ) -> Result<Vec<Call>> {
        grad_input(ctx, label, shape, (io.gy, io.operand, io.out), scratch)
    }
}

impl ConvWeightGrad for GradFast {
    fn prefers(&self, spec: &Conv2dSpec, a: &Adapter) -> bool {
        enabled() && ConvWeightGrad::can_run(self, spec, a)
    }

    fn can_run(&self, spec: &Conv2dSpec, _: &Adapter) -> bool {
        fits(spec)
    }

    fn grad_weight(
        &self,
        ctx: &GpuContext,
        label: &str,
        s: &ConvShape<'_>,
        io: GradIo<'_>,
        scratch: &mut Scratch<'_>,
    ) -> Result<Vec<Call>> {
        grad_weight(ctx, label, s, (io.operand, io.gy, io.out), scratch)
    }
}
