//! MAC and parameter accounting.
//!
//! Conventions (those of torchvision / thop, so totals can be compared with the literature):
//! - conv: `out_elems · (C_in / G) · kh · kw` MACs per sample; bias adds none;
//! - linear: `in · out` MACs;
//! - BN, activations, pooling, add: no MACs;
//! - parameters: weights and biases of conv/linear, BN γ and β (running statistics are buffers).
//! - FLGC layers are counted as they run at inference: as a grouped conv with the channels
//!   split as evenly as possible over G groups (the exported, re-ordered graph is counted
//!   exactly from its group table). The selection matrices S̄, T̄ are training-only and are
//!   reported separately in [`LayerCost::train_only_params`].

use super::{Graph, Op};
use serde::Serialize;

/// The cost of one layer, per sample.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LayerCost {
    /// Node name.
    pub name: String,
    /// Op kind.
    pub op: &'static str,
    /// Per-sample input shape (first input).
    pub in_shape: Vec<usize>,
    /// Per-sample output shape.
    pub out_shape: Vec<usize>,
    /// Groups, for convolutions.
    pub groups: Option<usize>,
    /// Multiply-accumulates per sample.
    pub macs: u64,
    /// Inference parameters.
    pub params: u64,
    /// Parameters used only in training (FLGC selection matrices).
    pub train_only_params: u64,
}

/// Per-layer and total cost of a graph.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ModelCost {
    /// One entry per node (the input excepted).
    pub layers: Vec<LayerCost>,
    /// Total MACs per sample.
    pub total_macs: u64,
    /// Total inference parameters.
    pub total_params: u64,
}

/// Σ n_g·c_g when `n` outputs and `c` inputs are split as evenly as possible into `g` groups
/// (the larger shares paired together).
fn even_split_pairs(n: usize, c: usize, g: usize) -> u64 {
    let share = |total: usize, i: usize| total / g + usize::from(i < total % g);
    (0..g).map(|i| (share(n, i) * share(c, i)) as u64).sum()
}

impl Graph {
    /// Per-layer and total MACs and parameters, per sample.
    pub fn cost(&self) -> ModelCost {
        let mut layers = Vec::new();
        for n in &self.nodes[1..] {
            let in_shape = self.nodes[n.inputs[0]].shape.clone();
            let out_elems_hw = |s: &[usize]| s[1..].iter().product::<usize>() as u64;
            let (macs, params, train_only) = match &n.op {
                Op::Conv2d(s) => {
                    let k = (s.kernel[0] * s.kernel[1]) as u64;
                    let per_out = (s.in_channels / s.groups) as u64 * k;
                    let w = s.out_channels as u64 * per_out;
                    (
                        w * out_elems_hw(&n.shape),
                        w + if s.bias { s.out_channels as u64 } else { 0 },
                        0,
                    )
                }
                Op::FlgcConv2d(s) => {
                    let k = (s.kernel[0] * s.kernel[1]) as u64;
                    let w = even_split_pairs(s.out_channels, s.in_channels, s.groups) * k;
                    (
                        w * out_elems_hw(&n.shape),
                        w + if s.bias { s.out_channels as u64 } else { 0 },
                        ((s.in_channels + s.out_channels) * s.groups) as u64,
                    )
                }
                Op::GroupedConvTable { spec, table, .. } => {
                    let k = (spec.kernel[0] * spec.kernel[1]) as u64;
                    let w: u64 = table
                        .iter()
                        .map(|g| (g.out_len * g.in_len) as u64 * k)
                        .sum();
                    (
                        w * out_elems_hw(&n.shape),
                        w + if spec.bias {
                            spec.out_channels as u64
                        } else {
                            0
                        },
                        0,
                    )
                }
                Op::BatchNorm { channels, .. } => (0, 2 * *channels as u64, 0),
                Op::Linear {
                    in_features,
                    out_features,
                    bias,
                } => {
                    let w = (*in_features * *out_features) as u64;
                    (w, w + if *bias { *out_features as u64 } else { 0 }, 0)
                }
                _ => (0, 0, 0),
            };
            layers.push(LayerCost {
                name: n.name.clone(),
                op: n.op.kind(),
                in_shape,
                out_shape: n.shape.clone(),
                groups: n.op.groups(),
                macs,
                params,
                train_only_params: train_only,
            });
        }
        ModelCost {
            total_macs: layers.iter().map(|l| l.macs).sum(),
            total_params: layers.iter().map(|l| l.params).sum(),
            layers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::even_split_pairs;

    #[test]
    fn even_split_matches_exact_division() {
        assert_eq!(even_split_pairs(64, 32, 4), 4 * 16 * 8);
        // n splits 3 + 2, c splits 2 + 1: 3·2 + 2·1.
        assert_eq!(even_split_pairs(5, 3, 2), 8);
    }
}
