//! Kernels forced per layer ([`KernelChoice`]): what the autotuner's cache, the tests and the
//! labs set; a layer not named takes its candidate list's default.

use super::{ConvKernel, InputGradKernel, LinearKernel, WeightGradKernel};
use crate::gpu::precision::Precision;
use std::collections::HashMap;

/// Kernels forced per layer (by node name), for the forward of convolutions and fully
/// connected layers and for the two convolution gradients; and the precision the model's
/// weights are stored in ([`Precision`], f32 unless set).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelChoice {
    conv: HashMap<String, ConvKernel>,
    linear: HashMap<String, LinearKernel>,
    input_grad: HashMap<String, InputGradKernel>,
    weight_grad: HashMap<String, WeightGradKernel>,
    precision: Precision,
    one_shot: bool,
}

impl KernelChoice {
    /// No forced kernel.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forces convolution `node`'s forward (a `Conv2d`, `GroupedConvTable` or FLGC layer).
    pub fn conv(mut self, node: &str, k: ConvKernel) -> Self {
        self.conv.insert(node.to_string(), k);
        self
    }

    /// Forces fully connected layer `node`'s forward.
    pub fn linear(mut self, node: &str, k: LinearKernel) -> Self {
        self.linear.insert(node.to_string(), k);
        self
    }

    /// Forces convolution `node`'s input gradient (training).
    pub fn input_grad(mut self, node: &str, k: InputGradKernel) -> Self {
        self.input_grad.insert(node.to_string(), k);
        self
    }

    /// Forces convolution `node`'s weight gradient (training).
    pub fn weight_grad(mut self, node: &str, k: WeightGradKernel) -> Self {
        self.weight_grad.insert(node.to_string(), k);
        self
    }

    /// Stores the weights in `p` where the layer's kernel reads it (the kernels stay the
    /// choice's).
    pub fn with_precision(mut self, p: Precision) -> Self {
        self.precision = p;
        self
    }

    /// The weights' storage precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The model runs once or a few times (`gconv infer`), so a layer's pipeline compile can
    /// cost more than its run: on a CPU adapter a small convolution that no entry forces takes
    /// the real-GPU tier's kernel, whose loops compile in a fraction of the register-tiled
    /// kernel's time ([`super::one_shot_tier`]).
    pub fn with_one_shot(mut self, one_shot: bool) -> Self {
        self.one_shot = one_shot;
        self
    }

    /// Whether the choice is for a model that runs once ([`KernelChoice::with_one_shot`]).
    pub fn one_shot(&self) -> bool {
        self.one_shot
    }

    /// Whether nothing is forced.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kernel forced for convolution `node`'s forward, if any.
    pub fn conv_of(&self, node: &str) -> Option<ConvKernel> {
        self.conv.get(node).copied()
    }

    /// The kernel forced for fully connected layer `node`, if any.
    pub fn linear_of(&self, node: &str) -> Option<LinearKernel> {
        self.linear.get(node).copied()
    }

    /// The kernel forced for convolution `node`'s input gradient, if any.
    pub fn input_grad_of(&self, node: &str) -> Option<InputGradKernel> {
        self.input_grad.get(node).copied()
    }

    /// The kernel forced for convolution `node`'s weight gradient, if any.
    pub fn weight_grad_of(&self, node: &str) -> Option<WeightGradKernel> {
        self.weight_grad.get(node).copied()
    }

    /// Number of forced (layer, operation) pairs.
    pub fn len(&self) -> usize {
        self.conv.len() + self.linear.len() + self.input_grad.len() + self.weight_grad.len()
    }
}
