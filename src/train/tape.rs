//! Whole-graph training forward (keeping every activation) and backward (reverse topological
//! order, gradients of nodes with several consumers summed — residual adds), on the CPU
//! reference: each node runs its op's [`OpDef`](crate::ops::OpDef) forward and backward.

use crate::cpu::executor::{check_input, name_err};
use crate::error::{Error, Result};
use crate::graph::{Graph, Op};
use crate::ops::{update_running_stats, Params, Saved};
use crate::tensor::Tensor;
use crate::weights::Weights;

/// Whether a forward pass trains or evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch norm uses batch statistics; dropout drops (seeded).
    Train,
    /// Batch norm uses running statistics; dropout is the identity.
    Eval,
}

/// The record of a forward pass: every node's output (node 0: the input) and, for training
/// batch norm and dropout, what their backward needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Tape {
    /// Output of every node, `[B, ...]`, in graph order.
    pub values: Vec<Tensor>,
    saved: Vec<Saved>,
    mode: Mode,
}

impl Tape {
    /// The graph output (logits) of this pass.
    pub fn output<'a>(&'a self, graph: &Graph) -> &'a Tensor {
        &self.values[graph.output]
    }

    /// The mode the pass ran in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Applies PyTorch's running-statistics update (`momentum`, unbiased variance) of every
    /// training batch norm of this pass to `weights` (`{bn}.running_mean`, `{bn}.running_var`).
    pub fn update_running_stats(
        &self,
        graph: &Graph,
        weights: &mut Weights,
        momentum: f32,
    ) -> Result<()> {
        for (node, saved) in graph.nodes.iter().zip(&self.saved) {
            let Saved::BatchStats(stats) = saved else {
                continue;
            };
            let mk = format!("{}.running_mean", node.name);
            let vk = format!("{}.running_var", node.name);
            let mut rm = weights.require(&mk)?.clone();
            let mut rv = weights.require(&vk)?.clone();
            update_running_stats(rm.data_mut(), rv.data_mut(), stats, momentum);
            weights.insert(mk, rm);
            weights.insert(vk, rv);
        }
        Ok(())
    }
}

/// A per-node seed for dropout masks, mixed from the step seed and the node index.
fn node_seed(seed: u64, node: usize) -> u64 {
    seed ^ (node as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Runs `graph` on a `[B, C, H, W]` batch keeping every activation.
///
/// In [`Mode::Train`], every node runs its op's training forward: batch norm normalises with
/// batch statistics (kept on the tape; running statistics are NOT touched here, see
/// [`Tape::update_running_stats`]) and dropout applies an inverted-dropout mask drawn from
/// `seed`. In [`Mode::Eval`] every node runs as in [`crate::cpu::run_node`].
pub fn forward(
    graph: &Graph,
    weights: &Weights,
    input: &Tensor,
    mode: Mode,
    seed: u64,
) -> Result<Tape> {
    check_input(graph, input)?;
    let mut values: Vec<Tensor> = Vec::with_capacity(graph.nodes.len());
    let mut saved = Vec::with_capacity(graph.nodes.len());
    values.push(input.clone());
    saved.push(Saved::None);
    for (i, node) in graph.nodes.iter().enumerate().skip(1) {
        let ins: Vec<&Tensor> = node.inputs.iter().map(|&p| &values[p]).collect();
        let p = Params {
            layer: &node.name,
            weights,
        };
        let (out, s) = match mode {
            Mode::Train => node.op.def().forward_train(&p, &ins, node_seed(seed, i)),
            Mode::Eval => node.op.def().forward(&p, &ins).map(|y| (y, Saved::None)),
        }
        .map_err(|e| name_err(node, e))?;
        values.push(out);
        saved.push(s);
    }
    Ok(Tape {
        values,
        saved,
        mode,
    })
}

/// Gradients of one backward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients {
    /// `∂L/∂param`, keyed like the weights (`"{node}.{suffix}"`). Trainable parameters only
    /// (no BN running statistics); a parameter of a node the output does not depend on is
    /// absent.
    pub params: Weights,
    /// `∂L/∂input`, `[B, C, H, W]` (zeros if the output does not depend on the input).
    pub input: Tensor,
}

fn accumulate(slot: &mut Option<Tensor>, g: Tensor) {
    match slot {
        Some(acc) => acc
            .data_mut()
            .iter_mut()
            .zip(g.data())
            .for_each(|(a, b)| *a += b),
        None => *slot = Some(g),
    }
}

/// Back-propagates `grad_output = ∂L/∂(graph output)` through a recorded pass, in reverse
/// topological order; the gradient of a node read by several consumers is the sum of theirs.
///
/// Errors for the inference-only ops (`GroupedConvTable`, `Gather`): train the FLGC form and
/// export afterwards. Batch norm uses the training backward if the tape was recorded in
/// [`Mode::Train`], otherwise the affine backward with running statistics.
pub fn backward(
    graph: &Graph,
    weights: &Weights,
    tape: &Tape,
    grad_output: Tensor,
) -> Result<Gradients> {
    if tape.values.len() != graph.nodes.len() {
        return Err(Error::InvalidArgument(format!(
            "tape of {} values for a graph of {} nodes",
            tape.values.len(),
            graph.nodes.len()
        )));
    }
    let out_shape = tape.values[graph.output].shape().to_vec();
    if grad_output.shape() != out_shape {
        return Err(Error::tensor_shape(
            "backward",
            format!("an output gradient of shape {out_shape:?}"),
            grad_output.shape(),
        ));
    }
    let mut grads: Vec<Option<Tensor>> = vec![None; graph.nodes.len()];
    grads[graph.output] = Some(grad_output);
    let mut params = Weights::new();
    for i in (1..graph.nodes.len()).rev() {
        let Some(gy) = grads[i].take() else { continue };
        let node = &graph.nodes[i];
        if matches!(node.op, Op::Input(_)) {
            continue;
        }
        let ins: Vec<&Tensor> = node.inputs.iter().map(|&p| &tape.values[p]).collect();
        let p = Params {
            layer: &node.name,
            weights,
        };
        let b = node
            .op
            .def()
            .backward(&p, &ins, &tape.values[i], &tape.saved[i], gy)
            .map_err(|e| match e {
                Error::InvalidArgument(msg) => Error::shape(&node.name, msg),
                e => name_err(node, e),
            })?;
        for (suffix, g) in b.params {
            params.insert(format!("{}.{suffix}", node.name), g);
        }
        for (&p, g) in node.inputs.iter().zip(b.inputs) {
            accumulate(&mut grads[p], g);
        }
    }
    let input = grads[0]
        .take()
        .unwrap_or_else(|| Tensor::zeros(tape.values[0].shape()));
    Ok(Gradients { params, input })
}
