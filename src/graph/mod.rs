//! The graph IR: a model is a `Vec<Node>` in topological order; each node has one output,
//! named by its [`NodeId`] (its index). Shapes are per sample (`[C, H, W]` or `[F]`); the
//! batch size is chosen when the graph runs.
//!
//! Graphs are built through [`GraphBuilder`], which infers shapes as nodes are added, so a
//! mismatched layer is reported at once with its name (`features.10: in_channels 64 not
//! divisible by groups 48`).

mod cost;
pub mod dead_filters;
pub mod fold_permutations;
pub mod passes;
mod weights;

pub use crate::ops::{Conv2dSpec, GroupRange, GroupedConvTable, Op, OpDef, Pool2dSpec};
pub use cost::{LayerCost, ModelCost};
pub use fold_permutations::{fold_permutations, FoldReport};

use crate::error::{Error, Result};
use crate::limits;
use serde::{Deserialize, Serialize};

/// Index of a node in [`Graph::nodes`]; also names the node's (single) output.
pub type NodeId = usize;

/// One operator application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Layer name, torchvision style (`features.0`, `layer1.0.conv1`); parameter keys are
    /// `"{name}.{suffix}"`.
    pub name: String,
    /// The operator.
    pub op: Op,
    /// Producers of the inputs, all earlier in the graph.
    pub inputs: Vec<NodeId>,
    /// Per-sample output shape (`[C, H, W]` or `[F]`), filled in by shape inference.
    pub shape: Vec<usize>,
}

/// A model graph: nodes in topological order, node 0 the input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Model name.
    pub name: String,
    /// The nodes, producers before consumers.
    pub nodes: Vec<Node>,
    /// The node whose value is the model's output.
    pub output: NodeId,
}

impl Graph {
    /// Per-sample input shape `[C, H, W]`.
    pub fn input_shape(&self) -> [usize; 3] {
        match &self.nodes[0].op {
            Op::Input(i) => i.shape,
            _ => unreachable!("node 0 of a graph is always its input"),
        }
    }

    /// Per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.nodes[self.output].shape
    }

    /// Finds a node by name.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Every parameter the graph expects, as `(key, shape)`, in node order.
    pub fn param_specs(&self) -> Vec<(String, Vec<usize>)> {
        self.nodes
            .iter()
            .flat_map(|n| {
                n.op.param_shapes()
                    .into_iter()
                    .map(move |(s, shape)| (format!("{}.{s}", n.name), shape))
            })
            .collect()
    }

    /// For each node, the index of the last node that reads its output
    /// (the output node is read "at the end", `nodes.len()`).
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last: Vec<usize> = (0..self.nodes.len()).collect();
        for (i, n) in self.nodes.iter().enumerate() {
            for &p in &n.inputs {
                last[p] = last[p].max(i);
            }
        }
        last[self.output] = self.nodes.len();
        last
    }

    /// Re-runs shape inference over the whole graph (after a pass rewrote it) and checks
    /// that it is well formed: node 0 is the only input, inputs come earlier, arities match.
    pub fn revalidate(&mut self) -> Result<()> {
        let nodes = std::mem::take(&mut self.nodes);
        let mut b = GraphBuilder {
            name: self.name.clone(),
            nodes: Vec::with_capacity(nodes.len().min(limits::MAX_GRAPH_NODES.as_usize())),
            params: 0,
        };
        for (i, n) in nodes.into_iter().enumerate() {
            if i == 0 {
                let Op::Input(crate::ops::Input { shape }) = n.op else {
                    return Err(Error::shape(&n.name, "node 0 must be the graph input"));
                };
                b.nodes.push(Node {
                    name: n.name,
                    op: n.op,
                    inputs: vec![],
                    shape: shape.to_vec(),
                });
            } else {
                b.push(&n.name, n.op, &n.inputs)?;
            }
        }
        self.nodes = b.nodes;
        if self.output >= self.nodes.len() {
            return Err(Error::shape(&self.name, "output node out of range"));
        }
        Ok(())
    }
}

/// Builds a [`Graph`] node by node, inferring shapes on the way.
#[derive(Debug)]
pub struct GraphBuilder {
    name: String,
    nodes: Vec<Node>,
    /// Parameter values so far (checked against [`limits::MAX_TOTAL_PARAMS`]).
    params: usize,
}

impl GraphBuilder {
    /// Starts a graph whose input has per-sample shape `[C, H, W]`.
    pub fn new(name: impl Into<String>, input: [usize; 3]) -> Self {
        Self {
            name: name.into(),
            params: 0,
            nodes: vec![Node {
                name: "input".into(),
                op: Op::Input(crate::ops::Input { shape: input }),
                inputs: vec![],
                shape: input.to_vec(),
            }],
        }
    }

    /// The input node.
    pub fn input(&self) -> NodeId {
        0
    }

    /// Per-sample shape of a node's output.
    pub fn shape(&self, id: NodeId) -> &[usize] {
        &self.nodes[id].shape
    }

    /// Adds a node; its shape is inferred now, so a mismatch is an error naming `name`.
    /// Sizes are checked against [`crate::limits`] before anything is allocated.
    pub fn push(&mut self, name: &str, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        if self.nodes.len() >= limits::MAX_GRAPH_NODES.as_usize() {
            return Err(Error::shape(
                name,
                limits::MAX_GRAPH_NODES.exceeded("the graph", self.nodes.len() + 1),
            ));
        }
        if self.nodes.len() == 1 {
            check_size(&self.nodes[0].name, "input", &self.nodes[0].shape)?;
        }
        if matches!(op, Op::Input(_)) {
            return Err(Error::shape(name, "a graph has exactly one input node"));
        }
        if inputs.len() != op.arity() {
            return Err(Error::shape(
                name,
                format!(
                    "{} takes {} input(s), got {}",
                    op.kind(),
                    op.arity(),
                    inputs.len()
                ),
            ));
        }
        if let Some(&bad) = inputs.iter().find(|&&i| i >= self.nodes.len()) {
            return Err(Error::shape(
                name,
                format!("input node {bad} does not exist yet"),
            ));
        }
        let in_shapes: Vec<&[usize]> = inputs.iter().map(|&i| &self.nodes[i].shape[..]).collect();
        let shape = op.def().infer_shape(name, &in_shapes)?;
        check_size(name, "output", &shape)?;
        for p in op.def().params() {
            let n = check_size(name, p.suffix, &p.shape)?;
            self.params = self
                .params
                .checked_add(n)
                .filter(|&t| t <= limits::MAX_TOTAL_PARAMS.as_usize())
                .ok_or_else(|| {
                    let msg = limits::MAX_TOTAL_PARAMS.exceeded("the model's parameters", "more");
                    Error::shape(name, msg)
                })?;
        }
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs: inputs.to_vec(),
            shape,
        });
        Ok(self.nodes.len() - 1)
    }

    /// The number of nodes so far.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether only the input is there.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// Finishes the graph with `output` as its result.
    pub fn finish(self, output: NodeId) -> Graph {
        Graph {
            name: self.name,
            nodes: self.nodes,
            output,
        }
    }
}

/// `Π shape`, checked against [`limits::MAX_TENSOR_ELEMENTS`] (and a plane against
/// [`limits::MAX_PLANE`]); the error names the layer, the tensor and the limit.
fn check_size(layer: &str, tensor: &str, shape: &[usize]) -> Result<usize> {
    let too_big = |limit: limits::Limit, got: String| {
        Error::shape(layer, limit.exceeded(&format!("{tensor} {shape:?}"), got))
    };
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= limits::MAX_TENSOR_ELEMENTS.as_usize())
        .ok_or_else(|| {
            let n = shape
                .iter()
                .fold(1u128, |a, &d| a.saturating_mul(d as u128));
            too_big(limits::MAX_TENSOR_ELEMENTS, n.to_string())
        })?;
    if let [_, h, w] = *shape {
        if h.saturating_mul(w) > limits::MAX_PLANE.as_usize() {
            return Err(too_big(limits::MAX_PLANE, h.saturating_mul(w).to_string()));
        }
    }
    Ok(n)
}
