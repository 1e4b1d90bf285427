//! The fully connected forward families' trait ([`LinearForward`]) and one run
//! ([`LinearRun`]).

use super::{Adapter, Family};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::geometry::LinearShape;
use crate::gpu::launch::{Arg, Call, Scratch};
use crate::ops::Activation;

/// One run of a fully connected layer: `out = act(x·Wᵀ + b)`.
#[derive(Clone, Copy, Debug)]
pub struct LinearRun<'a> {
    /// The call's label (the node name).
    pub label: &'a str,
    /// Batch and features.
    pub shape: &'a LinearShape,
    /// `[batch, in]` input.
    pub x: &'a Arg,
    /// The weight's row chunks (each whole rows of `[out, in]`; one unless the weight
    /// exceeds a storage binding).
    pub chunks: &'a [Arg],
    /// `[out]` bias, if any.
    pub bias: Option<&'a Arg>,
    /// `[batch, out]` output.
    pub out: &'a Arg,
    /// The fused activation.
    pub act: Activation,
    /// Whether `chunks` hold halves, two per word ([`crate::gpu::Precision::F16`]; only
    /// for a family whose [`LinearForward::reads_f16`] is true).
    pub weight_f16: bool,
}

impl LinearRun<'_> {
    /// An error unless the weights are f32: for the families that read nothing else.
    pub fn require_f32(&self, family: &str) -> Result<()> {
        if self.weight_f16 {
            return Err(Error::shape(
                self.label,
                format!("{family} reads f32 weights; this layer's are stored as halves"),
            ));
        }
        Ok(())
    }
}

/// A fully connected forward family.
pub trait LinearForward: Family {
    /// Whether it should run `s` by default, when it comes first in the adapter class's
    /// list (implies [`LinearForward::can_run`]).
    fn prefers(&self, s: &LinearShape, a: &Adapter) -> bool;
    /// Whether it can run `s` at all with `variant`.
    fn can_run(&self, s: &LinearShape, a: &Adapter, variant: Option<u16>) -> bool;
    /// Other variants worth timing for `s` (the autotuner).
    fn tune_variants(&self, s: &LinearShape, a: &Adapter) -> Vec<u16> {
        let _ = (s, a);
        Vec::new()
    }
    /// Whether it reads weights stored as halves ([`LinearRun::weight_f16`]); a model
    /// loaded with [`crate::gpu::Precision::F16`] stores a layer's weights so when the
    /// family chosen for it does.
    fn reads_f16(&self) -> bool {
        false
    }
    /// Whether it reads f32 weights (false for `linear_coop`, whose operands are halves: a
    /// model loaded in f32 that forces it is an error naming the layer).
    fn reads_f32(&self) -> bool {
        true
    }
    /// The calls of one run.
    fn forward(
        &self,
        ctx: &GpuContext,
        run: LinearRun<'_>,
        variant: Option<u16>,
        scratch: &mut Scratch<'_>,
    ) -> Result<Vec<Call>>;
}
