//! The entry points of `shaders/conv_backward.wgsl` as gradient families: input gradient
//! ([`GRAD_INPUT_PW4`], [`GRAD_INPUT`]) and weight gradient ([`GRAD_WEIGHT_PW4`],
//! [`GRAD_WEIGHT_SERIAL`], [`GRAD_WEIGHT`]), named by their entry points.

use super::{grad_input, grad_weight};
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::family::{Adapter, ConvInputGrad, ConvWeightGrad, Family, GradIo};
use crate::gpu::geometry::ConvShape;
use crate::gpu::launch::{Call, Scratch};
use crate::graph::Conv2dSpec;

/// A 1×1 convolution with stride 1 and no padding: a per-sample matrix product, which the
/// `*_pw4` kernels compute in 4 × 4 register tiles.
fn is_pointwise(spec: &Conv2dSpec) -> bool {
    spec.kernel == [1, 1] && spec.stride == [1, 1] && spec.padding == [0, 0]
}

/// Input-gradient entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DxEntry {
    /// `grad_input_pw4`: 4 input channels × 4 pixels per invocation (1×1, stride 1, no
    /// padding, C/G % 4 == 0).
    Pointwise4,
    /// `grad_input`: one invocation per `dx` element (any convolution).
    Gather,
}

impl DxEntry {
    /// Whether the entry can compute `spec`'s input gradient.
    pub fn fits(self, spec: &Conv2dSpec) -> bool {
        match self {
            DxEntry::Gather => true,
            DxEntry::Pointwise4 => {
                is_pointwise(spec) && (spec.in_channels / spec.groups.max(1)) % 4 == 0
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            DxEntry::Pointwise4 => "grad_input_pw4",
            DxEntry::Gather => "grad_input",
        }
    }
}

/// Weight-gradient entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DwEntry {
    /// `grad_weight_pw4`: 4 filters × 4 input channels per invocation (1×1, stride 1, no
    /// padding, C/G and N/G multiples of 4).
    Pointwise4,
    /// `grad_weight_serial`: one invocation per weight element, no barriers.
    Serial,
    /// `grad_weight`: one workgroup of 64 lanes per weight element and a tree reduction:
    /// for few weights with long reductions on a real GPU.
    Reduce,
}

impl DwEntry {
    /// Whether the entry can compute `spec`'s weight gradient.
    pub fn fits(self, spec: &Conv2dSpec) -> bool {
        let g = spec.groups.max(1);
        match self {
            DwEntry::Reduce | DwEntry::Serial => true,
            DwEntry::Pointwise4 => {
                is_pointwise(spec)
                    && (spec.in_channels / g) % 4 == 0
                    && (spec.out_channels / g) % 4 == 0
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            DwEntry::Pointwise4 => "grad_weight_pw4",
            DwEntry::Serial => "grad_weight_serial",
            DwEntry::Reduce => "grad_weight",
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

/// An input-gradient entry point as a family.
pub struct Dx(pub DxEntry);
/// A weight-gradient entry point as a family.
pub struct Dw(pub DwEntry);

/// `grad_input_pw4`.
pub static GRAD_INPUT_PW4: Dx = Dx(DxEntry::Pointwise4);
/// `grad_input` (any convolution).
pub static GRAD_INPUT: Dx = Dx(DxEntry::Gather);
/// `grad_weight_pw4`.
pub static GRAD_WEIGHT_PW4: Dw = Dw(DwEntry::Pointwise4);
/// `grad_weight_serial`.
pub static GRAD_WEIGHT_SERIAL: Dw = Dw(DwEntry::Serial);
/// `grad_weight` (any convolution).
pub static GRAD_WEIGHT: Dw = Dw(DwEntry::Reduce);

impl Family for Dx {
    fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Family for Dw {
    fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl ConvInputGrad for Dx {
    fn prefers(&self, spec: &Conv2dSpec, a: &Adapter) -> bool {
        self.can_run(spec, a)
    }

    fn can_run(&self, spec: &Conv2dSpec, _: &Adapter) -> bool {
        self.0.fits(spec)
    }

    fn grad_input(
        &self,
        ctx: &GpuContext,
        label: &str,
        (s, accumulate): (&ConvShape<'_>, bool),
        io: GradIo<'_>,
        _: &mut Scratch<'_>,
    ) -> Result<Vec<Call>> {
        let call = grad_input(
            ctx,
            label,
            (self.0, s, accumulate),
            io.gy,
            io.operand,
            io.out,
        )?;
        Ok(vec![call])
    }
}

impl ConvWeightGrad for Dw {
    /// On a CPU adapter the barrier-free entries whenever they fit; on a real GPU by the
    /// number of weights ([`SERIAL_MIN_WEIGHTS`]).
    fn prefers(&self, spec: &Conv2dSpec, a: &Adapter) -> bool {
        self.can_run(spec, a)
            && match self.0 {
                DwEntry::Pointwise4 => a.is_cpu() || weights(spec) / 16 >= SERIAL_MIN_WEIGHTS / 4,
                DwEntry::Serial => a.is_cpu() || weights(spec) >= SERIAL_MIN_WEIGHTS,
                DwEntry::Reduce => true,
            }
    }

    fn can_run(&self, spec: &Conv2dSpec, _: &Adapter) -> bool {
        self.0.fits(spec)
    }

    fn grad_weight(
        &self,
        ctx: &GpuContext,
        label: &str,
        s: &ConvShape<'_>,
        io: GradIo<'_>,
        _: &mut Scratch<'_>,
    ) -> Result<Vec<Call>> {
        let call = grad_weight(ctx, label, (self.0, s), io.operand, io.gy, io.out)?;
        Ok(vec![call])
    }
}
