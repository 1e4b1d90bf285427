//! The candidate lists of the convolution backward (input and weight gradients).

use super::{first, Adapter, Candidate};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::conv_grad_fast;
use crate::graph::Conv2dSpec;

/// A 1×1 convolution with stride 1 and no padding: a per-sample matrix product, which the
/// `*_pw4` kernels compute in 4 × 4 register tiles.
fn is_pointwise(spec: &Conv2dSpec) -> bool {
    spec.kernel == [1, 1] && spec.stride == [1, 1] && spec.padding == [0, 0]
}

/// Kernels of the convolution's input gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputGradKernel {
    /// 4 input channels × 4 pixels per invocation (1×1, stride 1, no padding, C/G % 4 == 0).
    Pointwise4,
    /// One invocation per `dx` element (any convolution).
    Gather,
}

impl InputGradKernel {
    /// Whether the kernel can compute `spec`'s input gradient.
    pub fn fits(self, spec: &Conv2dSpec) -> bool {
        match self {
            InputGradKernel::Gather => true,
            InputGradKernel::Pointwise4 => {
                is_pointwise(spec) && (spec.in_channels / spec.groups.max(1)) % 4 == 0
            }
        }
    }
}

/// How a convolution's input gradient runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputGrad {
    /// `conv_grad_fast`: a phase-decomposed transposed implicit GEMM (padding, packing and
    /// one call per stride phase).
    Fast,
    /// One `conv_backward` kernel.
    Backward(InputGradKernel),
}

/// Whether the `conv_grad_fast` kernels may be chosen (`GCONV_GRAD_KERNELS=old`: no).
fn fast_grads() -> bool {
    std::env::var("GCONV_GRAD_KERNELS").as_deref() != Ok("old")
}

/// Candidates for the input gradient, best first.
pub const CONV_INPUT_GRAD: &[Candidate<InputGrad, Conv2dSpec>] = &[
    Candidate {
        kernel: InputGrad::Fast,
        applies: |s, a| a.cpu && fast_grads() && conv_grad_fast::fits(s),
    },
    Candidate {
        kernel: InputGrad::Backward(InputGradKernel::Pointwise4),
        applies: |s, _| InputGradKernel::Pointwise4.fits(s),
    },
    Candidate {
        kernel: InputGrad::Backward(InputGradKernel::Gather),
        applies: |_, _| true,
    },
];

/// Kernels of the convolution's weight gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightGradKernel {
    /// 4 filters × 4 input channels per invocation (1×1, stride 1, no padding, C/G and N/G
    /// multiples of 4).
    Pointwise4,
    /// One invocation per weight element, no barriers.
    Serial,
    /// One workgroup of 64 lanes per weight element and a tree reduction: for few weights
    /// with long reductions on a real GPU.
    Reduce,
}

impl WeightGradKernel {
    /// Whether the kernel can compute `spec`'s weight gradient.
    pub fn fits(self, spec: &Conv2dSpec) -> bool {
        let g = spec.groups.max(1);
        match self {
            WeightGradKernel::Reduce | WeightGradKernel::Serial => true,
            WeightGradKernel::Pointwise4 => {
                is_pointwise(spec)
                    && (spec.in_channels / g) % 4 == 0
                    && (spec.out_channels / g) % 4 == 0
            }
        }
    }
}

/// On a real GPU, from this many weight elements on the weight gradient uses one invocation
/// per element (barrier-free) instead of one reducing workgroup per element. On lavapipe the
/// workgroup form costs ≈ 35 µs per workgroup in barriers, 4× the serial form on a 256→512
/// 1×1 layer, so CPU adapters always take the barrier-free kernels.
pub const SERIAL_MIN_WEIGHTS: usize = 4096;

fn weights(s: &Conv2dSpec) -> usize {
    s.weight_shape().iter().product()
}

/// How a convolution's weight gradient runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightGrad {
    /// `conv_grad_fast`: a split-K GEMM over batch · output pixels (padding, partial sums,
    /// reduction).
    Fast,
    /// One `conv_backward` kernel.
    Backward(WeightGradKernel),
}

/// Candidates for the weight gradient, best first.
pub const CONV_WEIGHT_GRAD: &[Candidate<WeightGrad, Conv2dSpec>] = &[
    Candidate {
        kernel: WeightGrad::Fast,
        applies: |s, a| a.cpu && fast_grads() && conv_grad_fast::fits(s),
    },
    Candidate {
        kernel: WeightGrad::Backward(WeightGradKernel::Pointwise4),
        applies: |s, a| {
            WeightGradKernel::Pointwise4.fits(s)
                && (a.cpu || weights(s) / 16 >= SERIAL_MIN_WEIGHTS / 4)
        },
    },
    Candidate {
        kernel: WeightGrad::Backward(WeightGradKernel::Serial),
        applies: |s, a| a.cpu || weights(s) >= SERIAL_MIN_WEIGHTS,
    },
    Candidate {
        kernel: WeightGrad::Backward(WeightGradKernel::Reduce),
        applies: |_, _| true,
    },
];

/// How `spec`'s input gradient runs on `ctx`'s adapter.
pub fn input_grad(ctx: &GpuContext, spec: &Conv2dSpec) -> InputGrad {
    first(CONV_INPUT_GRAD, spec, &Adapter::of(ctx))
}

/// How `spec`'s weight gradient runs on `ctx`'s adapter.
pub fn weight_grad(ctx: &GpuContext, spec: &Conv2dSpec) -> WeightGrad {
    first(CONV_WEIGHT_GRAD, spec, &Adapter::of(ctx))
}

/// The `conv_backward` input-gradient kernel for `spec` on `ctx`'s adapter: the first
/// applicable one of [`CONV_INPUT_GRAD`] after `Fast` (what runs where `Fast` does not).
pub fn conv_input_grad(ctx: &GpuContext, spec: &Conv2dSpec) -> InputGradKernel {
    let a = Adapter::of(ctx);
    CONV_INPUT_GRAD
        .iter()
        .filter(|c| (c.applies)(spec, &a))
        .find_map(|c| match c.kernel {
            InputGrad::Backward(k) => Some(k),
            InputGrad::Fast => None,
        })
        .unwrap_or(InputGradKernel::Gather)
}

/// The `conv_backward` weight-gradient kernel for `spec` on `ctx`'s adapter: the first
/// applicable one of [`CONV_WEIGHT_GRAD`] after `Fast`.
pub fn conv_weight_grad(ctx: &GpuContext, spec: &Conv2dSpec) -> WeightGradKernel {
    let a = Adapter::of(ctx);
    CONV_WEIGHT_GRAD
        .iter()
        .filter(|c| (c.applies)(spec, &a))
        .find_map(|c| match c.kernel {
            WeightGrad::Backward(k) => Some(k),
            WeightGrad::Fast => None,
        })
        .unwrap_or(WeightGradKernel::Reduce)
}
