//! The operators of the graph IR and their hyper-parameters.

use serde::{Deserialize, Serialize};

/// Hyper-parameters of a 2-D convolution (`groups` = 1 dense, = C depthwise).
///
/// Weight layout is PyTorch's: `[out_channels, in_channels / groups, kh, kw]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conv2dSpec {
    /// Input channels C.
    pub in_channels: usize,
    /// Output channels (filters) N.
    pub out_channels: usize,
    /// Kernel `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]`.
    pub stride: [usize; 2],
    /// Zero padding `[ph, pw]` on each side.
    pub padding: [usize; 2],
    /// Dilation `[dh, dw]`.
    pub dilation: [usize; 2],
    /// Number of groups G; C and N must both be divisible by G.
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Conv2dSpec {
    /// A square `k×k` convolution with stride `s`, padding `p`, dilation 1.
    pub fn square(in_channels: usize, out_channels: usize, k: usize, s: usize, p: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel: [k, k],
            stride: [s, s],
            padding: [p, p],
            dilation: [1, 1],
            groups: 1,
            bias: false,
        }
    }

    /// Builder: set the number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    /// Builder: set whether there is a bias.
    pub fn bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }

    /// Output spatial size for an `h × w` input (None if the window does not fit).
    pub fn out_hw(&self, h: usize, w: usize) -> Option<[usize; 2]> {
        let o = |x: usize, i: usize| {
            let span = self.dilation[i] * (self.kernel[i] - 1) + 1;
            let padded = x + 2 * self.padding[i];
            (padded >= span).then(|| (padded - span) / self.stride[i] + 1)
        };
        Some([o(h, 0)?, o(w, 1)?])
    }

    /// Shape of the weight tensor, `[N, C/G, kh, kw]`.
    pub fn weight_shape(&self) -> Vec<usize> {
        vec![
            self.out_channels,
            self.in_channels / self.groups.max(1),
            self.kernel[0],
            self.kernel[1],
        ]
    }
}

/// Hyper-parameters of a 2-D pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool2dSpec {
    /// Window `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Stride `[sh, sw]`.
    pub stride: [usize; 2],
    /// Padding `[ph, pw]` (max: padded with −∞; avg: zeros, counted like PyTorch's default).
    pub padding: [usize; 2],
}

impl Pool2dSpec {
    /// A square window.
    pub fn square(k: usize, s: usize, p: usize) -> Self {
        Self {
            kernel: [k, k],
            stride: [s, s],
            padding: [p, p],
        }
    }

    /// Output spatial size (floor mode), None if the window does not fit.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<[usize; 2]> {
        let o = |x: usize, i: usize| {
            let padded = x + 2 * self.padding[i];
            (padded >= self.kernel[i]).then(|| (padded - self.kernel[i]) / self.stride[i] + 1)
        };
        Some([o(h, 0)?, o(w, 1)?])
    }
}

/// One contiguous group of an uneven grouped convolution (FLGC after export).
///
/// Output channels `out_start..out_start+out_len` read input channels
/// `in_start..in_start+in_len`. Empty groups (`out_len == 0`) are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRange {
    /// First input channel of the group.
    pub in_start: usize,
    /// Number of input channels of the group.
    pub in_len: usize,
    /// First output channel of the group.
    pub out_start: usize,
    /// Number of output channels of the group.
    pub out_len: usize,
}

/// A graph operator. Every op has one output; inputs are listed on the [`Node`](super::Node).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The network input, per-sample shape `[C, H, W]` (the batch is chosen at run time).
    Input {
        /// `[C, H, W]`.
        shape: [usize; 3],
    },
    /// Grouped 2-D convolution (dense, grouped, depthwise, pointwise).
    Conv2d(Conv2dSpec),
    /// Fully learnable group convolution (Wang et al.): a dense weight `[N, C, kh, kw]`
    /// masked by `M = T·Sᵀ` from the selection matrices `select_in` (S̄, C×G) and
    /// `select_out` (T̄, N×G); `spec.groups` is G.
    FlgcConv2d(Conv2dSpec),
    /// Grouped convolution with uneven groups (the exported form of FLGC, Wang et al. §2.3).
    ///
    /// Group `g` reads input channels `in_index[in_start .. in_start+in_len]` and writes output
    /// channels `out_index[out_start .. out_start+out_len]`: the learnt re-ordering is merged
    /// into the layer's addressing, so no tensor is ever permuted in memory. With identity
    /// indices this is a plain contiguous uneven group conv.
    /// The weight is packed group after group: group g holds `out_len·in_len·kh·kw` values.
    GroupedConvTable {
        /// Kernel, stride, padding, dilation, channels and bias; `spec.groups` = table length.
        spec: Conv2dSpec,
        /// The groups; their output ranges cover `out_index` exactly once.
        table: Vec<GroupRange>,
        /// Physical input channel of each (group-ordered) input position; a permutation of `0..C`
        /// or a selection of it.
        in_index: Vec<usize>,
        /// Physical output channel of each (group-ordered) filter; a permutation of `0..N`.
        out_index: Vec<usize>,
    },
    /// Batch normalisation over channels (inference: running statistics).
    BatchNorm {
        /// Channels.
        channels: usize,
        /// ε added to the variance.
        eps: f32,
    },
    /// `max(x, 0)`.
    Relu,
    /// Max pooling.
    MaxPool(Pool2dSpec),
    /// Average pooling (zero padding counted, PyTorch's default).
    AvgPool(Pool2dSpec),
    /// Adaptive average pooling to a fixed output size (PyTorch's bin edges).
    AdaptiveAvgPool {
        /// `[oh, ow]`.
        output: [usize; 2],
    },
    /// Fully connected layer, weight `[out, in]`.
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// Element-wise sum of two inputs of equal shape (residual connection).
    Add,
    /// `[C, H, W]` → `[C·H·W]`.
    Flatten,
    /// Dropout: the identity at inference.
    Dropout {
        /// Drop probability (used in training only).
        p: f32,
    },
    /// Softmax over the feature dimension of a `[F]` (per-sample) tensor.
    Softmax,
    /// Channel gather: output channel `c` is input channel `indices[c]`.
    Gather {
        /// Source channel of each output channel.
        indices: Vec<usize>,
    },
}

impl Op {
    /// An uneven grouped conv from contiguous group ranges given in any order (each group
    /// reads `in_start..in_start+in_len` and writes `out_start..out_start+out_len` of the
    /// tensors themselves); converted to the index-addressed form of
    /// [`Op::GroupedConvTable`]. The packed weight keeps the order of `ranges`.
    pub fn grouped_conv_from_ranges(spec: Conv2dSpec, ranges: &[GroupRange]) -> Op {
        let mut table = Vec::with_capacity(ranges.len());
        let mut out_index = Vec::with_capacity(spec.out_channels);
        for r in ranges {
            table.push(GroupRange {
                in_start: r.in_start,
                in_len: r.in_len,
                out_start: out_index.len(),
                out_len: r.out_len,
            });
            out_index.extend(r.out_start..r.out_start + r.out_len);
        }
        Op::GroupedConvTable {
            in_index: (0..spec.in_channels).collect(),
            spec,
            table,
            out_index,
        }
    }

    /// A short lowercase name for tables (`conv2d`, `batch_norm`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Conv2d(_) => "conv2d",
            Op::FlgcConv2d(_) => "flgc_conv2d",
            Op::GroupedConvTable { .. } => "grouped_conv_table",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::MaxPool(_) => "max_pool",
            Op::AvgPool(_) => "avg_pool",
            Op::AdaptiveAvgPool { .. } => "adaptive_avg_pool",
            Op::Linear { .. } => "linear",
            Op::Add => "add",
            Op::Flatten => "flatten",
            Op::Dropout { .. } => "dropout",
            Op::Softmax => "softmax",
            Op::Gather { .. } => "gather",
        }
    }

    /// Number of inputs the op takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Input { .. } => 0,
            Op::Add => 2,
            _ => 1,
        }
    }

    /// The number of groups, where the op has them (1 for dense ops).
    pub fn groups(&self) -> Option<usize> {
        match self {
            Op::Conv2d(s) | Op::FlgcConv2d(s) => Some(s.groups),
            Op::GroupedConvTable { table, .. } => Some(table.len()),
            _ => None,
        }
    }

    /// The op's parameter tensors as `(suffix, shape)`, in torchvision's `state_dict` order.
    /// The full key is `"{node_name}.{suffix}"`. Buffers (BN running statistics) included.
    pub fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let mut v = Vec::new();
        match self {
            Op::Conv2d(s) => {
                v.push(("weight", s.weight_shape()));
                if s.bias {
                    v.push(("bias", vec![s.out_channels]));
                }
            }
            Op::FlgcConv2d(s) => {
                v.push((
                    "weight",
                    vec![s.out_channels, s.in_channels, s.kernel[0], s.kernel[1]],
                ));
                if s.bias {
                    v.push(("bias", vec![s.out_channels]));
                }
                v.push(("select_in", vec![s.in_channels, s.groups]));
                v.push(("select_out", vec![s.out_channels, s.groups]));
            }
            Op::GroupedConvTable { spec, table, .. } => {
                let n: usize = table
                    .iter()
                    .map(|g| g.out_len * g.in_len * spec.kernel[0] * spec.kernel[1])
                    .sum();
                v.push(("weight", vec![n]));
                if spec.bias {
                    v.push(("bias", vec![spec.out_channels]));
                }
            }
            Op::BatchNorm { channels, .. } => {
                for k in ["weight", "bias", "running_mean", "running_var"] {
                    v.push((k, vec![*channels]));
                }
            }
            Op::Linear {
                in_features,
                out_features,
                bias,
            } => {
                v.push(("weight", vec![*out_features, *in_features]));
                if *bias {
                    v.push(("bias", vec![*out_features]));
                }
            }
            _ => {}
        }
        v
    }
}
