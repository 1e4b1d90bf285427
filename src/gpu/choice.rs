//! Kernel choice, in one place: for each operation the candidate kernels, each with the
//! predicate saying when it applies, in the adapter's order of preference. Inference and
//! training both choose here; an autotuner can time [`applicable`] candidates and override
//! the default per layer shape.
//!
//! | operation | candidates (in order) |
//! |---|---|
//! | conv forward | `Tiled` (static weights, ≥ 4 filters per group or an uneven table), `Direct(Pk8)` (stride 1), `Direct(Co8)`, `Direct(Co1)` |
//! | conv input gradient | `Fast` (CPU adapters), `Pointwise4` (1×1, stride 1, C/G % 4 = 0), `Gather` |
//! | conv weight gradient | `Fast` (CPU adapters), `Pointwise4`, `Serial`, `Reduce` (real GPUs: by the number of weights) |
//!
//! `Fast` is [`conv_grad_fast`](super::kernels::conv_grad_fast) (register-tiled implicit
//! GEMMs); `GCONV_GRAD_KERNELS=old` turns it off (A/B measurements, `examples/grad_lab.rs`).

use super::context::GpuContext;
use super::kernels::conv::{padded_input_bytes, ConvShape};
use super::kernels::conv_grad_fast;
use crate::graph::Conv2dSpec;

/// What a predicate may know about the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adapter {
    /// A CPU-backed adapter (lavapipe, SwiftShader, WARP): per-lane loads are gathers,
    /// barriers are expensive, workgroups run on one thread.
    pub cpu: bool,
    /// The largest storage binding, bytes.
    pub max_binding: u64,
}

impl Adapter {
    /// The facts of `ctx`'s adapter.
    pub fn of(ctx: &GpuContext) -> Self {
        Self {
            cpu: ctx.is_cpu(),
            max_binding: ctx
                .limits
                .max_storage_buffer_binding_size
                .min(ctx.limits.max_buffer_size),
        }
    }
}

/// A kernel that can compute an operation, and when.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<K: 'static, P: ?Sized + 'static> {
    /// The kernel.
    pub kernel: K,
    /// Whether it can (and by default should) run `P` on this adapter.
    pub applies: fn(&P, &Adapter) -> bool,
}

/// The first candidate that applies (every list ends with one that always does).
pub fn first<K: Copy, P: ?Sized>(list: &[Candidate<K, P>], p: &P, a: &Adapter) -> K {
    list.iter()
        .find(|c| (c.applies)(p, a))
        .or(list.last())
        .map(|c| c.kernel)
        .expect("a candidate list is never empty")
}

/// Every candidate that applies, in order (what an autotuner times).
pub fn applicable<K: Copy, P: ?Sized>(list: &[Candidate<K, P>], p: &P, a: &Adapter) -> Vec<K> {
    list.iter()
        .filter(|c| (c.applies)(p, a))
        .map(|c| c.kernel)
        .collect()
}

// ---- convolution forward ----------------------------------------------------------------

/// The entry points of `shaders/conv.wgsl` (weights in PyTorch's layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DirectKernel {
    /// `conv_co8`: 8 output channels × 4 pixels per invocation (register tiled).
    Co8,
    /// `conv_co1`: 1 output channel × 4 pixels per invocation (depthwise, thin groups).
    Co1,
    /// `pad_input` + `pack_weights` + `conv_pk8`: stride 1, 8 channels × 4 pixels from a
    /// zero-padded input copy and tile-packed weights, all loads vec4.
    Pk8,
}

impl DirectKernel {
    /// Output channels per tile.
    pub fn tco(self) -> usize {
        match self {
            DirectKernel::Co8 | DirectKernel::Pk8 => 8,
            DirectKernel::Co1 => 1,
        }
    }

    /// The entry point.
    pub fn entry(self) -> &'static str {
        match self {
            DirectKernel::Co8 => "conv_co8",
            DirectKernel::Co1 => "conv_co1",
            DirectKernel::Pk8 => "conv_pk8",
        }
    }

    /// Invocations per workgroup: small on CPU adapters (a workgroup is one SIMD loop on one
    /// core), 64 elsewhere; `GCONV_CONV_WG` overrides the 8-channel kernels' (experiments).
    pub fn workgroup(self, ctx: &GpuContext) -> u32 {
        if self == DirectKernel::Co1 {
            return 64;
        }
        let default = if ctx.is_cpu() { 8 } else { 64 };
        std::env::var("GCONV_CONV_WG")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|&v| (1..=ctx.limits.max_compute_invocations_per_workgroup).contains(&v))
            .unwrap_or(default)
    }
}

/// How a convolution's forward runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvKernel {
    /// `conv_tiled`: 8 filters × 8 pixels from weights packed once at load.
    Tiled,
    /// A `conv.wgsl` kernel reading the weights as they are.
    Direct(DirectKernel),
}

/// A convolution to run: its geometry, the filters per group, and whether the weights are
/// fixed (inference: they may be re-packed once at load) or change every step (training).
#[derive(Clone, Debug)]
pub struct ConvProblem {
    /// Kernel, stride, padding, dilation, channels, groups.
    pub spec: Conv2dSpec,
    /// Batch size.
    pub batch: usize,
    /// Input `[h, w]`.
    pub in_hw: [usize; 2],
    /// Output channels of each group (uneven for an exported FLGC layer).
    pub out_lens: Vec<usize>,
    /// The weights are fixed for the model's life.
    pub static_weights: bool,
    /// An uneven, index-addressed group table (only the tiled kernel reads index lists).
    pub table: bool,
}

impl ConvProblem {
    /// The geometry as the launchers take it.
    pub fn shape(&self) -> ConvShape<'_> {
        ConvShape {
            spec: &self.spec,
            batch: self.batch,
            in_hw: self.in_hw,
        }
    }

    /// The average number of filters of the non-empty groups.
    fn avg_out(&self) -> usize {
        let nonempty: Vec<usize> = self.out_lens.iter().copied().filter(|&n| n > 0).collect();
        nonempty.iter().sum::<usize>() / nonempty.len().max(1)
    }
}

/// Candidates for a convolution forward, best first.
pub const CONV_FORWARD: &[Candidate<ConvKernel, ConvProblem>] = &[
    Candidate {
        kernel: ConvKernel::Tiled,
        applies: |p, _| {
            p.static_weights && (p.table || p.spec.out_channels / p.spec.groups.max(1) >= 4)
        },
    },
    Candidate {
        kernel: ConvKernel::Direct(DirectKernel::Pk8),
        applies: |p, a| {
            !p.table
                && p.spec.stride == [1, 1]
                && p.avg_out() >= 4
                && padded_input_bytes(&p.shape()).is_some_and(|b| b <= a.max_binding)
        },
    },
    Candidate {
        kernel: ConvKernel::Direct(DirectKernel::Co8),
        applies: |p, _| !p.table && p.avg_out() >= 4,
    },
    Candidate {
        kernel: ConvKernel::Direct(DirectKernel::Co1),
        applies: |p, _| !p.table,
    },
];

/// The forward kernel of `p` on `ctx`'s adapter.
pub fn conv_forward(ctx: &GpuContext, p: &ConvProblem) -> ConvKernel {
    first(CONV_FORWARD, p, &Adapter::of(ctx))
}

// ---- convolution backward ---------------------------------------------------------------

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
