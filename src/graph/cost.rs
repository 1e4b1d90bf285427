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

use super::Graph;
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

impl Graph {
    /// Per-layer and total MACs and parameters, per sample.
    pub fn cost(&self) -> ModelCost {
        let mut layers = Vec::new();
        for n in &self.nodes[1..] {
            let in_shape = self.nodes[n.inputs[0]].shape.clone();
            let ins: Vec<&[usize]> = n.inputs.iter().map(|&i| &self.nodes[i].shape[..]).collect();
            let c = n.op.def().cost(&ins, &n.shape);
            let (macs, params, train_only) = (c.macs, c.params, c.train_only_params);
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
            total_macs: layers.iter().fold(0u64, |a, l| a.saturating_add(l.macs)),
            total_params: layers.iter().fold(0u64, |a, l| a.saturating_add(l.params)),
            layers,
        }
    }
}
