//! Whole-graph training forward (keeping every activation) and backward (reverse topological
//! order, gradients of nodes with several consumers summed — residual adds).

use super::backward as bw;
use crate::cpu;
use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Op};
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

/// What a node's backward needs beyond its input values.
#[derive(Clone, Debug, PartialEq)]
enum Aux {
    None,
    /// Training batch norm: the batch statistics.
    Bn(bw::BatchStats),
    /// Training dropout: the scaled keep mask.
    Dropout(Vec<f32>),
}

/// The record of a forward pass: every node's output (node 0: the input) and, for training
/// batch norm and dropout, what their backward needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Tape {
    /// Output of every node, `[B, ...]`, in graph order.
    pub values: Vec<Tensor>,
    aux: Vec<Aux>,
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
        for (node, aux) in graph.nodes.iter().zip(&self.aux) {
            let Aux::Bn(stats) = aux else { continue };
            let mk = format!("{}.running_mean", node.name);
            let vk = format!("{}.running_var", node.name);
            let mut rm = weights.require(&mk)?.clone();
            let mut rv = weights.require(&vk)?.clone();
            bw::update_running_stats(rm.data_mut(), rv.data_mut(), stats, momentum);
            weights.insert(mk, rm);
            weights.insert(vk, rv);
        }
        Ok(())
    }
}

fn param<'a>(w: &'a Weights, node: &Node, suffix: &str) -> Result<&'a Tensor> {
    w.require(&format!("{}.{suffix}", node.name))
}

/// A per-node seed for dropout masks, mixed from the step seed and the node index.
fn node_seed(seed: u64, node: usize) -> u64 {
    seed ^ (node as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Runs `graph` on a `[B, C, H, W]` batch keeping every activation.
///
/// In [`Mode::Train`], batch norm normalises with batch statistics (kept on the tape; running
/// statistics are NOT touched here, see [`Tape::update_running_stats`]) and dropout applies an
/// inverted-dropout mask drawn from `seed`. In [`Mode::Eval`] every node runs as in
/// [`cpu::run_node`]. Every other op is [`cpu::run_node`] itself.
pub fn forward(
    graph: &Graph,
    weights: &Weights,
    input: &Tensor,
    mode: Mode,
    seed: u64,
) -> Result<Tape> {
    let [c, h, w] = graph.input_shape();
    let [_, ic, ih, iw] = input.dims4("model input")?;
    if [ic, ih, iw] != [c, h, w] {
        return Err(Error::tensor_shape(
            format!("{} input", graph.name),
            format!("[B, {c}, {h}, {w}]"),
            input.shape(),
        ));
    }
    let mut values: Vec<Tensor> = Vec::with_capacity(graph.nodes.len());
    let mut aux = Vec::with_capacity(graph.nodes.len());
    values.push(input.clone());
    aux.push(Aux::None);
    for (i, node) in graph.nodes.iter().enumerate().skip(1) {
        let ins: Vec<&Tensor> = node.inputs.iter().map(|&p| &values[p]).collect();
        let (out, a) = match (&node.op, mode) {
            (Op::BatchNorm { eps, .. }, Mode::Train) => {
                let (y, st) = bw::batch_norm_train(
                    ins[0],
                    param(weights, node, "weight")?.data(),
                    param(weights, node, "bias")?.data(),
                    *eps,
                )
                .map_err(|e| name_err(node, e))?;
                (y, Aux::Bn(st))
            }
            (Op::Dropout { p }, Mode::Train) => {
                let mask = bw::dropout_mask(ins[0].numel(), *p, node_seed(seed, i))?;
                let mut y = ins[0].clone();
                y.data_mut()
                    .iter_mut()
                    .zip(&mask)
                    .for_each(|(v, m)| *v *= m);
                (y, Aux::Dropout(mask))
            }
            _ => (cpu::run_node(node, weights, &ins)?, Aux::None),
        };
        values.push(out);
        aux.push(a);
    }
    Ok(Tape { values, aux, mode })
}

fn name_err(node: &Node, e: Error) -> Error {
    match e {
        Error::TensorShape { op, expected, got } => Error::TensorShape {
            op: format!("{} ({op})", node.name),
            expected,
            got,
        },
        e => e,
    }
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
        let x = &tape.values[node.inputs[0]];
        let key = |s: &str| format!("{}.{s}", node.name);
        let mut input_grads: Vec<Tensor> = Vec::with_capacity(2);
        match &node.op {
            Op::Input { .. } | Op::GroupedConvTable { .. } | Op::Gather { .. } => {
                return Err(Error::shape(
                    &node.name,
                    format!(
                        "{} is inference-only and has no backward; train the FLGC/dense form",
                        node.op.kind()
                    ),
                ))
            }
            Op::Conv2d(s) => {
                let g = bw::conv2d_backward(x, param(weights, node, "weight")?, &gy, s)
                    .map_err(|e| name_err(node, e))?;
                params.insert(key("weight"), g.weight);
                if let Some(b) = g.bias {
                    params.insert(key("bias"), b);
                }
                input_grads.push(g.input);
            }
            Op::FlgcConv2d(s) => {
                let g = bw::flgc_conv2d_backward(
                    x,
                    param(weights, node, "weight")?,
                    param(weights, node, "select_in")?,
                    param(weights, node, "select_out")?,
                    &gy,
                    s,
                )
                .map_err(|e| name_err(node, e))?;
                params.insert(key("weight"), g.weight);
                if let Some(b) = g.bias {
                    params.insert(key("bias"), b);
                }
                params.insert(key("select_in"), g.select_in);
                params.insert(key("select_out"), g.select_out);
                input_grads.push(g.input);
            }
            Op::BatchNorm { channels, eps } => {
                let gamma = param(weights, node, "weight")?.data();
                let (dx, dgamma, dbeta) = match &tape.aux[i] {
                    Aux::Bn(st) => bw::batch_norm_train_backward(x, gamma, st, &gy)
                        .map_err(|e| name_err(node, e))?,
                    _ => {
                        // Eval-mode BN is affine: y = x·s + t with s = γ/√(var+ε).
                        let mean = param(weights, node, "running_mean")?.data();
                        let var = param(weights, node, "running_var")?.data();
                        let st = bw::BatchStats {
                            mean: mean.to_vec(),
                            var: var.to_vec(),
                            var_unbiased: var.to_vec(),
                            invstd: var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect(),
                        };
                        eval_bn_backward(x, gamma, &st, &gy, *channels)?
                    }
                };
                params.insert(key("weight"), Tensor::new(vec![*channels], dgamma)?);
                params.insert(key("bias"), Tensor::new(vec![*channels], dbeta)?);
                input_grads.push(dx);
            }
            Op::Relu => input_grads.push(bw::relu_backward(x, &gy)?),
            Op::MaxPool(p) => {
                input_grads.push(bw::max_pool2d_backward(x, p, &gy).map_err(|e| name_err(node, e))?)
            }
            Op::AvgPool(p) => input_grads
                .push(bw::avg_pool2d_backward(x.shape(), p, &gy).map_err(|e| name_err(node, e))?),
            Op::AdaptiveAvgPool { output } => input_grads.push(
                bw::adaptive_avg_pool2d_backward(x.shape(), *output, &gy)
                    .map_err(|e| name_err(node, e))?,
            ),
            Op::Linear { bias, .. } => {
                let (dx, dw, db) =
                    bw::linear_backward(x, param(weights, node, "weight")?, &gy, *bias)
                        .map_err(|e| name_err(node, e))?;
                params.insert(key("weight"), dw);
                if let Some(db) = db {
                    params.insert(key("bias"), db);
                }
                input_grads.push(dx);
            }
            Op::Add => {
                input_grads.push(gy.clone());
                input_grads.push(gy);
            }
            Op::Flatten => input_grads.push(gy.reshape(x.shape())?),
            Op::Dropout { .. } => {
                let mut dx = gy;
                if let Aux::Dropout(mask) = &tape.aux[i] {
                    dx.data_mut()
                        .iter_mut()
                        .zip(mask)
                        .for_each(|(d, m)| *d *= m);
                }
                input_grads.push(dx);
            }
            Op::Softmax => input_grads.push(bw::softmax_backward(&tape.values[i], &gy)?),
        }
        for (&p, g) in node.inputs.iter().zip(input_grads) {
            accumulate(&mut grads[p], g);
        }
    }
    let input = grads[0]
        .take()
        .unwrap_or_else(|| Tensor::zeros(tape.values[0].shape()));
    Ok(Gradients { params, input })
}

/// Backward of batch norm with fixed statistics (eval mode): `∂L/∂x = dy·γ·invstd`,
/// `∂L/∂γ = Σ dy·x̂`, `∂L/∂β = Σ dy`.
fn eval_bn_backward(
    x: &Tensor,
    gamma: &[f32],
    st: &bw::BatchStats,
    gy: &Tensor,
    c: usize,
) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    let [b, _, h, w] = x.dims4("batch_norm backward")?;
    let hw = h * w;
    let mut dx = gy.clone();
    let mut dgamma = vec![0.0f32; c];
    let mut dbeta = vec![0.0f32; c];
    for n in 0..b {
        for ch in 0..c {
            let r = (n * c + ch) * hw..(n * c + ch + 1) * hw;
            for (&xv, &dy) in x.data()[r.clone()].iter().zip(&gy.data()[r.clone()]) {
                dgamma[ch] += dy * (xv - st.mean[ch]) * st.invstd[ch];
                dbeta[ch] += dy;
            }
            let k = gamma[ch] * st.invstd[ch];
            dx.data_mut()[r].iter_mut().for_each(|d| *d *= k);
        }
    }
    Ok((dx, dgamma, dbeta))
}
