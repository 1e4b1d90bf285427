//! One home per op: each operator's hyper-parameters, shape rule, parameters, cost, CPU
//! forward and CPU backward stand together in one module, behind the [`OpDef`] trait.
//!
//! The CPU functions here are the **specification** the GPU kernels are tested against (the
//! reference path, checked against PyTorch goldens); they are written the obvious way, with
//! explicit loops over groups. Nothing here knows about a device.
//!
//! Adding an op (see `docs/ADDING_AN_OP.md`): a type implementing [`OpDef`] in its family's
//! module, a variant in [`Op`], then the GPU lowering (`gpu::lower`), whose exhaustive matches
//! the compiler will point at.

mod activation;
mod channels;
mod conv;
mod flgc;
mod grouped;
mod linear;
mod norm;
mod pointwise;
mod pool;
mod structural;

pub use activation::{
    math_wgsl as activation_math_wgsl, relu, relu6, relu6_backward, relu_backward, Activation,
    ActivationRow, WgslExpr,
};
pub use channels::{concat_channels, Concat};
pub use conv::{conv2d, conv2d_backward, Conv2dSpec, ConvGrads};
pub use flgc::{
    even_split_pairs, flgc_conv2d, flgc_conv2d_backward, flgc_mask, masked_weight, row_argmax,
    row_softmax, row_softmax_backward, FlgcGrads, FlgcSpec,
};
pub use grouped::{grouped_conv_indexed, grouped_conv_table, GroupRange, GroupedConvTable};
pub use linear::{linear, linear_backward, Linear};
pub use norm::{
    batch_norm, batch_norm_train, batch_norm_train_backward, update_running_stats, BatchNorm,
    BatchStats,
};
pub use pointwise::{mul, Mul};
pub use pool::{
    adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d, avg_pool2d_backward, max_pool2d,
    max_pool2d_backward, AdaptiveAvgPool, AvgPool, MaxPool, Pool2dSpec,
};
pub use structural::{
    add, dropout_mask, gather_channels, softmax, softmax_backward, Add, Dropout, Flatten, Gather,
    Input, Softmax,
};

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::weights::Weights;
use serde::{Deserialize, Serialize};

/// How a parameter is initialised (torchvision's conventions, see [`Weights::init`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Gaussian with mean 0 and this standard deviation.
    Normal(f32),
}

/// What a parameter tensor is to training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamRole {
    /// Trained, with weight decay (conv / linear weights and biases).
    Decayed,
    /// Trained without weight decay (BN γ/β, FLGC selection matrices).
    NotDecayed,
    /// A buffer updated outside SGD (BN running statistics).
    Buffer,
}

/// One parameter (or buffer) tensor of an op; its key is `"{node}.{suffix}"`.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    /// Key suffix, torchvision style (`weight`, `bias`, `running_mean`).
    pub suffix: &'static str,
    /// Shape.
    pub shape: Vec<usize>,
    /// Initialisation.
    pub init: Init,
    /// Trained, and how.
    pub role: ParamRole,
}

impl ParamDecl {
    /// A parameter declaration.
    pub fn new(suffix: &'static str, shape: Vec<usize>, init: Init, role: ParamRole) -> Self {
        Self {
            suffix,
            shape,
            init,
            role,
        }
    }
}

/// Per-sample cost of one node (torchvision / thop conventions, see [`crate::graph::ModelCost`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCost {
    /// Multiply-accumulates.
    pub macs: u64,
    /// Inference parameters.
    pub params: u64,
    /// Parameters used only in training (FLGC selection matrices).
    pub train_only_params: u64,
}

/// A node's parameters as the CPU reference reads them.
#[derive(Clone, Copy, Debug)]
pub struct Params<'a> {
    /// The node (layer) name; keys are `"{layer}.{suffix}"`.
    pub layer: &'a str,
    /// All weights of the model.
    pub weights: &'a Weights,
}

impl<'a> Params<'a> {
    /// The parameter `suffix`, or [`Error::Weights`] naming its key.
    pub fn get(&self, suffix: &str) -> Result<&'a Tensor> {
        self.weights.require(&format!("{}.{suffix}", self.layer))
    }

    /// The values of parameter `suffix` when `present`, else `None` (optional biases).
    pub fn opt(&self, suffix: &str, present: bool) -> Result<Option<&'a [f32]>> {
        Ok(if present {
            Some(self.get(suffix)?.data())
        } else {
            None
        })
    }
}

/// What a training forward keeps for its backward besides the input values.
#[derive(Clone, Debug, PartialEq)]
pub enum Saved {
    /// Nothing (also: the forward ran in eval mode).
    None,
    /// Training batch norm: the batch statistics.
    BatchStats(BatchStats),
    /// Training dropout: the scaled keep mask.
    Mask(Vec<f32>),
}

/// Gradients from one node's backward.
#[derive(Clone, Debug, PartialEq)]
pub struct Backward {
    /// `∂L/∂input` for each input, in input order.
    pub inputs: Vec<Tensor>,
    /// `∂L/∂param` for each trainable parameter, by suffix.
    pub params: Vec<(&'static str, Tensor)>,
}

impl Backward {
    /// Input gradients only (ops without parameters).
    pub fn inputs(inputs: Vec<Tensor>) -> Self {
        Self {
            inputs,
            params: Vec::new(),
        }
    }
}

/// Everything the IR and the CPU reference know about one operator.
pub trait OpDef {
    /// Short lowercase name (`conv2d`, `batch_norm`), as in the exported graph JSON.
    fn kind(&self) -> &'static str;
    /// Number of inputs (one unless said otherwise).
    fn arity(&self) -> usize {
        1
    }
    /// Checks the hyper-parameters against the per-sample input shapes and returns the
    /// per-sample output shape; errors name `layer` and the numbers involved.
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>>;
    /// Parameter and buffer tensors, in torchvision's `state_dict` order (none by default).
    fn params(&self) -> Vec<ParamDecl> {
        Vec::new()
    }
    /// Per-sample cost given the per-sample input and output shapes (free by default).
    fn cost(&self, _ins: &[&[usize]], _out: &[usize]) -> OpCost {
        OpCost::default()
    }
    /// Inference forward on the CPU (`[B, …]` tensors).
    fn forward(&self, p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor>;
    /// Training forward: like [`forward`](Self::forward), keeping what the backward needs.
    /// `seed` seeds anything random (dropout masks).
    fn forward_train(&self, p: &Params<'_>, ins: &[&Tensor], seed: u64) -> Result<(Tensor, Saved)> {
        let _ = seed;
        Ok((self.forward(p, ins)?, Saved::None))
    }
    /// Backward on the CPU: from the forward's inputs, output and saved state and
    /// `gy = ∂L/∂output`, the gradients of the inputs and of the trainable parameters.
    fn backward(
        &self,
        p: &Params<'_>,
        ins: &[&Tensor],
        out: &Tensor,
        saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward>;
}

/// Declares [`Op`], one variant per op type, with the dispatch to [`OpDef`].
macro_rules! declare_ops {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty), )*) => {
        /// A graph operator. Every op has one output; inputs are listed on the
        /// [`Node`](crate::graph::Node). Serialised (exported graphs) with an `op` tag in
        /// snake case.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "op", rename_all = "snake_case")]
        pub enum Op {
            $( $(#[$doc])* $variant($ty), )*
        }

        impl Op {
            /// The op's definition: shape rule, parameters, cost, CPU forward and backward.
            pub fn def(&self) -> &dyn OpDef {
                match self {
                    $( Op::$variant(o) => o, )*
                }
            }
        }
    };
}

declare_ops! {
    /// The network input, per-sample shape `[C, H, W]` (the batch is chosen at run time).
    Input(Input),
    /// Grouped 2-D convolution (dense, grouped, depthwise, pointwise).
    Conv2d(Conv2dSpec),
    /// Fully learnable group convolution (Wang et al.): a dense weight `[N, C, kh, kw]`
    /// masked by `M = T·Sᵀ` from the selection matrices `select_in` (S̄, C×G) and
    /// `select_out` (T̄, N×G); `groups` is G.
    FlgcConv2d(FlgcSpec),
    /// Grouped convolution with uneven, index-addressed groups (exported FLGC, §2.3).
    GroupedConvTable(GroupedConvTable),
    /// Batch normalisation over channels (inference: running statistics).
    BatchNorm(BatchNorm),
    /// Max pooling.
    MaxPool(MaxPool),
    /// Average pooling (zero padding counted, PyTorch's default).
    AvgPool(AvgPool),
    /// Adaptive average pooling to a fixed output size (PyTorch's bin edges).
    AdaptiveAvgPool(AdaptiveAvgPool),
    /// Fully connected layer, weight `[out, in]`.
    Linear(Linear),
    /// Element-wise sum of two inputs of equal shape (residual connection).
    Add(Add),
    /// `[C, H, W]` → `[C·H·W]`.
    Flatten(Flatten),
    /// Dropout: the identity at inference.
    Dropout(Dropout),
    /// Softmax over the features of a `[F]` (per-sample) tensor.
    Softmax(Softmax),
    /// Channel gather: output channel `c` is input channel `indices[c]`.
    Gather(Gather),
    /// Channel concatenation of n inputs, each output channel addressed `(input, channel)`.
    Concat(Concat),
    /// Element-wise product, `[C, 1, 1]` broadcast over the plane (squeeze-excitation).
    Mul(Mul),
    /// An element-wise activation (ReLU, GELU, hard swish, … — the table in
    /// `ops::activation`). Serialised flat with its own tag: `{"op": "relu"}`,
    /// `{"op": "leaky_relu", "alpha": 0.1}`, as older exports wrote `relu`, `relu6`,
    /// `sigmoid`, `hard_sigmoid` and `hard_swish`.
    #[serde(untagged)]
    Activation(Activation),
}

impl Op {
    /// A short lowercase name for tables (`conv2d`, `batch_norm`, ...).
    pub fn kind(&self) -> &'static str {
        self.def().kind()
    }

    /// Number of inputs the op takes.
    pub fn arity(&self) -> usize {
        self.def().arity()
    }

    /// The number of groups, where the op has them.
    pub fn groups(&self) -> Option<usize> {
        match self {
            Op::Conv2d(s) => Some(s.groups),
            Op::FlgcConv2d(s) => Some(s.groups),
            Op::GroupedConvTable(t) => Some(t.table.len()),
            _ => None,
        }
    }

    /// The convolution hyper-parameters of a conv-like op.
    pub fn conv_spec(&self) -> Option<&Conv2dSpec> {
        match self {
            Op::Conv2d(s) => Some(s),
            Op::FlgcConv2d(s) => Some(s),
            Op::GroupedConvTable(t) => Some(&t.spec),
            _ => None,
        }
    }

    /// The activation this op applies, when it is one (epilogue fusion); the identity
    /// activation is none.
    pub fn activation(&self) -> Option<Activation> {
        match self {
            Op::Activation(a) if *a != Activation::None => Some(*a),
            _ => None,
        }
    }

    /// The op's parameter tensors as `(suffix, shape)`, in torchvision's `state_dict` order
    /// (buffers such as BN running statistics included).
    pub fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        self.def()
            .params()
            .into_iter()
            .map(|p| (p.suffix, p.shape))
            .collect()
    }

    /// `op`: a grouped convolution.
    pub fn conv2d(spec: Conv2dSpec) -> Op {
        Op::Conv2d(spec)
    }

    /// `op`: an FLGC convolution with `spec.groups` learnable groups.
    pub fn flgc(spec: Conv2dSpec) -> Op {
        Op::FlgcConv2d(FlgcSpec(spec))
    }

    /// `op`: an uneven grouped conv from contiguous group ranges given in any order
    /// ([`GroupedConvTable::from_ranges`]).
    pub fn grouped_conv_from_ranges(spec: Conv2dSpec, ranges: &[GroupRange]) -> Op {
        Op::GroupedConvTable(GroupedConvTable::from_ranges(spec, ranges))
    }

    /// `op`: batch norm over `channels`.
    pub fn batch_norm(channels: usize, eps: f32) -> Op {
        Op::BatchNorm(BatchNorm { channels, eps })
    }

    /// `op`: an activation.
    pub fn act(a: Activation) -> Op {
        Op::Activation(a)
    }

    /// `op`: ReLU.
    pub fn relu() -> Op {
        Op::Activation(Activation::Relu)
    }

    /// `op`: ReLU6.
    pub fn relu6() -> Op {
        Op::Activation(Activation::Relu6)
    }

    /// `op`: leaky ReLU with negative slope `alpha`.
    pub fn leaky_relu(alpha: f32) -> Op {
        Op::Activation(Activation::LeakyRelu { alpha })
    }

    /// `op`: the logistic sigmoid.
    pub fn sigmoid() -> Op {
        Op::Activation(Activation::Sigmoid)
    }

    /// `op`: hard sigmoid `max(0, min(1, α·x + β))`.
    pub fn hard_sigmoid(alpha: f32, beta: f32) -> Op {
        Op::Activation(Activation::HardSigmoid { alpha, beta })
    }

    /// `op`: hard swish.
    pub fn hard_swish() -> Op {
        Op::Activation(Activation::HardSwish)
    }

    /// `op`: max pooling.
    pub fn max_pool(p: Pool2dSpec) -> Op {
        Op::MaxPool(MaxPool(p))
    }

    /// `op`: average pooling.
    pub fn avg_pool(p: Pool2dSpec) -> Op {
        Op::AvgPool(AvgPool(p))
    }

    /// `op`: adaptive average pooling to `[oh, ow]`.
    pub fn adaptive_avg_pool(output: [usize; 2]) -> Op {
        Op::AdaptiveAvgPool(AdaptiveAvgPool { output })
    }

    /// `op`: a fully connected layer.
    pub fn linear(in_features: usize, out_features: usize, bias: bool) -> Op {
        Op::Linear(Linear {
            in_features,
            out_features,
            bias,
        })
    }

    /// `op`: residual add.
    pub fn add() -> Op {
        Op::Add(Add)
    }

    /// `op`: flatten.
    pub fn flatten() -> Op {
        Op::Flatten(Flatten)
    }

    /// `op`: dropout with drop probability `p`.
    pub fn dropout(p: f32) -> Op {
        Op::Dropout(Dropout { p })
    }

    /// `op`: softmax over the features.
    pub fn softmax() -> Op {
        Op::Softmax(Softmax)
    }

    /// `op`: channel gather.
    pub fn gather(indices: Vec<usize>) -> Op {
        Op::Gather(Gather { indices })
    }

    /// `op`: plain channel concatenation of inputs with these channel counts.
    pub fn concat(channels: &[usize]) -> Op {
        Op::Concat(Concat::stack(channels))
    }
}

// ---- helpers shared by the op modules ------------------------------------------------------

/// `[C, H, W]` of a per-sample shape, or an error naming the layer and the op.
pub(crate) fn chw(layer: &str, kind: &str, s: &[usize]) -> Result<[usize; 3]> {
    match *s {
        [c, h, w] => Ok([c, h, w]),
        _ => Err(Error::shape(
            layer,
            format!("{kind} needs a [C, H, W] input, got {s:?}"),
        )),
    }
}

/// `[F]` of a per-sample shape, or an error naming the layer and the op.
pub(crate) fn flat(layer: &str, kind: &str, s: &[usize]) -> Result<usize> {
    match *s {
        [f] => Ok(f),
        _ => Err(Error::shape(
            layer,
            format!("{kind} needs a flat [F] input, got {s:?} (add a flatten)"),
        )),
    }
}

/// Fails unless `got` has shape `expected` (gradients).
pub(crate) fn same_shape(op: &str, expected: &[usize], got: &Tensor) -> Result<()> {
    if got.shape() != expected {
        return Err(Error::tensor_shape(
            op,
            format!("a gradient of shape {expected:?}"),
            got.shape(),
        ));
    }
    Ok(())
}

/// Fails unless an optional bias has `n` values.
pub(crate) fn check_bias(op: &str, bias: Option<&[f32]>, n: usize) -> Result<()> {
    match bias {
        Some(b) if b.len() != n => Err(Error::tensor_shape(
            op,
            format!("a bias of {n} values"),
            &[b.len()],
        )),
        _ => Ok(()),
    }
}

/// `Σ ins[0..]` over a product of sizes, as `u64`, saturating (costs are reports, not sizes).
pub(crate) fn prod_u64(dims: &[usize]) -> u64 {
    dims.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64))
}

/// The error for an op that has no backward (inference-only ops).
pub(crate) fn no_backward(kind: &str) -> Error {
    Error::InvalidArgument(format!(
        "{kind} is inference-only and has no backward; train the FLGC/dense form"
    ))
}
