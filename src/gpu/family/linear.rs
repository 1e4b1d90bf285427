//! The fully connected forward families' trait ([`LinearForward`]) and one run
//! ([`LinearRun`]).

use super::{Adapter, Family};
use crate::error::Result;
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
    /// The calls of one run.
    fn forward(
        &self,
        ctx: &GpuContext,
        run: LinearRun<'_>,
        variant: Option<u16>,
        scratch: &mut Scratch<'_>,
    ) -> Result<Vec<Call>>;
}
