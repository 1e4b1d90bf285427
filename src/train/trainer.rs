//! The training loop's one step: forward keeping activations, softmax cross-entropy, backward,
//! SGD; and evaluation.

use super::backward::softmax_cross_entropy;
use super::optim::Sgd;
use super::run::{StepStats, Train, TrainConfig};
use super::tape::{backward, forward, Mode};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::tensor::Tensor;
use crate::weights::Weights;

/// Trains a graph on the CPU reference path: owns the graph, its weights (BN running
/// statistics included) and the optimizer. Deterministic for a given seed and data order.
#[derive(Clone, Debug)]
pub struct Trainer {
    graph: Graph,
    weights: Weights,
    optim: Sgd,
    config: TrainConfig,
    lr: f32,
    steps: u64,
}

impl Trainer {
    /// A trainer for `graph` starting from `weights` (checked against the graph).
    pub fn new(graph: Graph, weights: Weights, config: TrainConfig) -> Result<Self> {
        config.validate()?;
        weights.validate(&graph)?;
        if graph.output_shape().len() != 1 {
            return Err(Error::shape(
                &graph.name,
                format!(
                    "the output must be flat logits [K], got {:?}",
                    graph.output_shape()
                ),
            ));
        }
        Ok(Self {
            graph,
            weights,
            optim: Sgd::new(config.sgd).with_selection_lr_scale(config.selection_lr_scale),
            config,
            lr: config.lr,
            steps: 0,
        })
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The current weights (parameters and BN running statistics).
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// The optimizer (its [`Sgd::state`] holds the momentum buffers for a checkpoint).
    pub fn optimizer(&self) -> &Sgd {
        &self.optim
    }

    /// The optimizer, mutable (to restore its state from a checkpoint).
    pub fn optimizer_mut(&mut self) -> &mut Sgd {
        &mut self.optim
    }

    /// Gives back the graph, the weights and the optimizer.
    pub fn into_parts(self) -> (Graph, Weights, Sgd) {
        (self.graph, self.weights, self.optim)
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One SGD step (see [`Train::train_step`]): training forward (batch statistics, dropout with a
    /// mask seeded by the config seed and the step number), mean softmax cross-entropy on the
    /// output logits, backward, running-statistics update (momentum `bn_momentum`), SGD update.
    /// The returned loss and accuracy are those of the forward pass, before the update.
    fn step(&mut self, images: &Tensor, labels: &[usize]) -> Result<StepStats> {
        let seed = self
            .config
            .seed
            .wrapping_mul(0x2545_f491_4f6c_dd1d)
            .wrapping_add(self.steps);
        let tape = forward(&self.graph, &self.weights, images, Mode::Train, seed)?;
        let logits = flat_logits(tape.output(&self.graph))?;
        let (loss, grad, correct) = softmax_cross_entropy(&logits, labels)?;
        let grad = grad.reshape(tape.output(&self.graph).shape())?;
        let grads = backward(&self.graph, &self.weights, &tape, grad)?;
        tape.update_running_stats(&self.graph, &mut self.weights, self.config.bn_momentum)?;
        self.optim
            .step(&self.graph, &mut self.weights, &grads.params, self.lr)?;
        self.steps += 1;
        Ok(StepStats { loss, correct })
    }

    /// Loss (mean over the batch) and number correct in eval mode (running statistics, no
    /// dropout); changes nothing.
    pub fn evaluate(&self, images: &Tensor, labels: &[usize]) -> Result<(f32, usize)> {
        let tape = forward(&self.graph, &self.weights, images, Mode::Eval, 0)?;
        let logits = flat_logits(tape.output(&self.graph))?;
        let (loss, _, correct) = softmax_cross_entropy(&logits, labels)?;
        Ok((loss, correct))
    }
}

fn flat_logits(out: &Tensor) -> Result<Tensor> {
    let b = out.shape()[0];
    out.clone().reshape(&[b, out.numel() / b.max(1)])
}

impl Train for Trainer {
    fn graph(&self) -> &Graph {
        &self.graph
    }
    fn config(&self) -> &TrainConfig {
        &self.config
    }
    fn device(&self) -> String {
        format!(
            "CPU reference path ({} threads)",
            rayon::current_num_threads()
        )
    }
    fn lr(&self) -> f32 {
        self.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
    /// One SGD step on a `[B, C, H, W]` batch: training forward (batch statistics, dropout with
    /// a mask seeded by the config seed and the step number), mean softmax cross-entropy on
    /// the output logits, backward, running-statistics update (momentum `bn_momentum`), SGD.
    fn train_step(&mut self, images: &Tensor, labels: &[usize]) -> Result<StepStats> {
        self.step(images, labels)
    }
    fn predict(&mut self, images: &Tensor) -> Result<Tensor> {
        let tape = forward(&self.graph, &self.weights, images, Mode::Eval, 0)?;
        Ok(tape.output(&self.graph).clone())
    }
    fn weights(&self) -> Result<Weights> {
        Ok(self.weights.clone())
    }
    fn optimizer_state(&self) -> Result<Weights> {
        Ok(self.optim.state().clone())
    }
    fn load_optimizer_state(&mut self, state: &Weights) -> Result<()> {
        self.optim.load_state(state.clone());
        Ok(())
    }
}
