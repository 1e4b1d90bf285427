//! The convolution families' traits: the forward ([`ConvForward`], with weights prepared at
//! load through [`PreparedConv`]) and the two gradients ([`ConvInputGrad`],
//! [`ConvWeightGrad`]), and what they are given: the problem a predicate judges
//! ([`ConvProblem`]), the layer a family prepares ([`ConvLayer`]) and one run
//! ([`ConvRun`]).

use super::{Adapter, Family};
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::geometry::{ConvGeom, ConvShape};
use crate::gpu::launch::{Arg, Call, Scratch};
use crate::gpu::precision::Precision;
use crate::graph::{Conv2dSpec, GroupedConvTable};
use crate::ops::Activation;

/// A convolution to run, as the predicates judge it: its geometry, the filters per group,
/// and whether the weights are fixed (inference: they may be re-packed once at load) or
/// change every step (training).
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
    /// An uneven, index-addressed group table.
    pub table: bool,
    /// The model stores its weights as halves (`Precision::F16`): what the
    /// cooperative-matrix tier, whose operands are halves, waits for.
    pub half_weights: bool,
}

impl ConvProblem {
    /// An ordinary grouped convolution of `batch` samples of `in_hw`.
    pub fn conv2d(
        spec: &Conv2dSpec,
        batch: usize,
        in_hw: [usize; 2],
        static_weights: bool,
    ) -> Self {
        Self {
            spec: spec.clone(),
            batch,
            in_hw,
            out_lens: vec![spec.out_channels / spec.groups.max(1); spec.groups],
            static_weights,
            table: false,
            half_weights: false,
        }
    }

    /// An exported group table (inference only).
    pub fn table(t: &GroupedConvTable, batch: usize, in_hw: [usize; 2]) -> Self {
        Self {
            spec: t.spec.clone(),
            batch,
            in_hw,
            out_lens: t.table.iter().map(|g| g.out_len).collect(),
            static_weights: true,
            table: true,
            half_weights: false,
        }
    }

    /// The geometry as the launchers take it.
    pub fn shape(&self) -> ConvShape<'_> {
        ConvShape {
            spec: &self.spec,
            batch: self.batch,
            in_hw: self.in_hw,
        }
    }

    /// A depthwise convolution: one filter per group reading one channel (a GEMM of rank 1
    /// per group, bandwidth-bound: `conv_dw`'s, not the implicit GEMMs').
    pub fn is_depthwise(&self) -> bool {
        let g = self.spec.groups.max(1);
        !self.table && self.spec.in_channels == g && self.spec.out_channels == g
    }

    /// The average number of filters of the non-empty groups.
    pub fn avg_out(&self) -> usize {
        let nonempty: Vec<usize> = self.out_lens.iter().copied().filter(|&n| n > 0).collect();
        nonempty.iter().sum::<usize>() / nonempty.len().max(1)
    }
}

/// What a convolution layer is: an ordinary (even) grouped convolution or an exported
/// index-addressed group table.
#[derive(Clone, Copy, Debug)]
pub enum ConvOp<'a> {
    /// `Op::Conv2d`.
    Conv2d(&'a Conv2dSpec),
    /// `Op::GroupedConvTable`.
    Table(&'a GroupedConvTable),
}

impl ConvOp<'_> {
    /// The spec (a table's carries its channel counts and window).
    pub fn spec(&self) -> &Conv2dSpec {
        match self {
            ConvOp::Conv2d(s) => s,
            ConvOp::Table(t) => &t.spec,
        }
    }
}

/// A layer whose fixed weights a family may prepare at load (inference).
#[derive(Clone, Copy, Debug)]
pub struct ConvLayer<'a> {
    /// The node name (buffer labels, errors).
    pub name: &'a str,
    /// The layer.
    pub op: ConvOp<'a>,
    /// Its input `[h, w]`.
    pub in_hw: [usize; 2],
    /// Its weights in the natural layout (`[N, C/G, kh, kw]`, or a table's groups one after
    /// another).
    pub weight: &'a [f32],
    /// Its bias, if it has one.
    pub bias: Option<&'a [f32]>,
    /// The precision the model asks its weights to be stored in (a family that cannot store
    /// it stores f32).
    pub precision: Precision,
}

/// One run of a convolution: geometry, tensors and the fused activation.
#[derive(Clone, Debug)]
pub struct ConvRun<'a> {
    /// The call's label (the node name).
    pub label: &'a str,
    /// The layer's spec.
    pub spec: &'a Conv2dSpec,
    /// Samples.
    pub batch: usize,
    /// Input `[h, w]`.
    pub in_hw: [usize; 2],
    /// `[batch, C, h, w]` input.
    pub x: Arg,
    /// `[batch, N, oh, ow]` output.
    pub out: Arg,
    /// The weights in the natural layout, where the kernel reads them (`None` when a
    /// prepared form replaced them).
    pub weight: Option<Arg>,
    /// The bias, if any (a prepared form may hold its own).
    pub bias: Option<Arg>,
    /// The fused activation.
    pub act: Activation,
}

impl ConvRun<'_> {
    /// Batch, input size and fused activation, as the implicit-GEMM launchers take them.
    pub fn geom(&self) -> ConvGeom {
        ConvGeom {
            batch: self.batch,
            in_hw: self.in_hw,
            act: self.act,
        }
    }

    /// The geometry as the launchers take it.
    pub fn shape(&self) -> ConvShape<'_> {
        ConvShape {
            spec: self.spec,
            batch: self.batch,
            in_hw: self.in_hw,
        }
    }
}

/// A layer's weights in the form a kernel reads them, made once at load.
pub trait PreparedConv: std::fmt::Debug + Send + Sync {
    /// The calls of one run (`run.weight` is the natural weight when
    /// [`PreparedConv::reads_natural_weights`], else `None`).
    fn forward(
        &self,
        ctx: &GpuContext,
        run: ConvRun<'_>,
        scratch: &mut Scratch<'_>,
    ) -> Result<Vec<Call>>;
    /// Bytes it keeps on the device.
    fn bytes(&self) -> u64;
    /// Whether the kernel also reads the layer's natural weights and bias (which are then
    /// uploaded as they are).
    fn reads_natural_weights(&self) -> bool;
    /// The precision its weights are stored in (f32 unless the family honours
    /// [`ConvLayer::precision`]).
    fn precision(&self) -> Precision {
        Precision::F32
    }
}

/// A convolution forward family.
pub trait ConvForward: Family {
    /// Whether it should run `p` by default, when it comes first in the adapter class's list
    /// (implies [`ConvForward::can_run`]).
    fn prefers(&self, p: &ConvProblem, a: &Adapter) -> bool;
    /// Whether it can run `p` at all with `variant` (what a forced choice must satisfy).
    fn can_run(&self, p: &ConvProblem, a: &Adapter, variant: Option<u16>) -> bool;
    /// Other variants worth timing for `p`, most promising first (the autotuner).
    fn tune_variants(&self, p: &ConvProblem, a: &Adapter) -> Vec<u16> {
        let _ = (p, a);
        Vec::new()
    }
    /// Whether it stores a layer's weights as halves when the model asks for f16
    /// ([`ConvLayer::precision`]; `conv_igemm`, `conv_coop`).
    fn reads_f16(&self) -> bool {
        false
    }
    /// Prepares the fixed weights of `layer` at load; `None`: the kernel reads them as they
    /// are.
    fn prepare(
        &self,
        ctx: &GpuContext,
        layer: &ConvLayer<'_>,
        variant: Option<u16>,
    ) -> Result<Option<Box<dyn PreparedConv>>> {
        let _ = (ctx, layer, variant);
        Ok(None)
    }
    /// The calls of one run on the natural weights (`run.weight`; training, FLGC's masked
    /// weight, or a layer nothing was prepared for).
    fn forward(
        &self,
        ctx: &GpuContext,
        run: ConvRun<'_>,
        variant: Option<u16>,
        scratch: &mut Scratch<'_>,
    ) -> Result<Vec<Call>>;
}

/// The tensors of a convolution gradient call.
#[derive(Clone, Copy, Debug)]
pub struct GradIo<'a> {
    /// The output gradient `dy`.
    pub gy: &'a Arg,
    /// The other operand: the weights (input gradient) or the forward input (weight
    /// gradient).
    pub operand: &'a Arg,
    /// The gradient written: `dx` or `dW`.
    pub out: &'a Arg,
}

/// A convolution input-gradient family.
pub trait ConvInputGrad: Family {
    /// Whether it should compute `spec`'s input gradient by default.
    fn prefers(&self, spec: &Conv2dSpec, a: &Adapter) -> bool;
    /// Whether it can at all.
    fn can_run(&self, spec: &Conv2dSpec, a: &Adapter) -> bool;
    /// `dx` (added to `io.out` when `shape.1`, accumulating) from `dy` and the weights.
    fn grad_input(
        &self,
        ctx: &GpuContext,
        label: &str,
        shape: (&ConvShape<'_>, bool),
        io: GradIo<'_>,
        scratch: &mut Scratch<'_>,
    ) -> Result<Vec<Call>>;
}

/// A convolution weight-gradient family.
pub trait ConvWeightGrad: Family {
    /// Whether it should compute `spec`'s weight gradient by default.
    fn prefers(&self, spec: &Conv2dSpec, a: &Adapter) -> bool;
    /// Whether it can at all.
    fn can_run(&self, spec: &Conv2dSpec, a: &Adapter) -> bool;
    /// `dW` from the forward input and `dy`.
    fn grad_weight(
        &self,
        ctx: &GpuContext,
        label: &str,
        s: &ConvShape<'_>,
        io: GradIo<'_>,
        scratch: &mut Scratch<'_>,
    ) -> Result<Vec<Call>>;
}
