//! The training loop's one step: forward keeping activations, softmax cross-entropy, backward,
//! SGD; and evaluation.

use super::backward::softmax_cross_entropy;
use super::data::Dataset;
use super::optim::{LrSchedule, Sgd, SgdConfig};
use super::tape::{backward, forward, Mode};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::tensor::Tensor;
use crate::weights::Weights;

/// Configuration of a [`Trainer`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// SGD hyper-parameters (momentum 0.9, weight decay 5e-4).
    pub sgd: SgdConfig,
    /// Batch-norm running-statistics momentum (PyTorch's 0.1).
    pub bn_momentum: f32,
    /// Seed of the dropout masks (mixed with the step number).
    pub seed: u64,
    /// Initial learning rate (change it with [`Trainer::set_lr`]).
    pub lr: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            sgd: SgdConfig::default(),
            bn_momentum: 0.1,
            seed: 0,
            lr: 0.1,
        }
    }
}

/// What one training step measured (on the batch, before the update).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Mean cross-entropy over the batch.
    pub loss: f32,
    /// Samples whose argmax logit is the label.
    pub correct: usize,
}

/// Totals of one epoch, from [`Trainer::train_epoch`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// Mean of the per-sample losses over the epoch.
    pub loss: f32,
    /// Correct samples.
    pub correct: usize,
    /// Samples seen.
    pub samples: usize,
}

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
            optim: Sgd::new(config.sgd),
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

    /// The learning rate of the next step.
    pub fn lr(&self) -> f32 {
        self.lr
    }

    /// Sets the learning rate of the following steps.
    pub fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One SGD step on a `[B, C, H, W]` batch: training forward (batch statistics, dropout with a
    /// mask seeded by the config seed and the step number), mean softmax cross-entropy on the
    /// output logits, backward, running-statistics update (momentum `bn_momentum`), SGD update.
    /// The returned loss and accuracy are those of the forward pass, before the update.
    pub fn train_step(&mut self, images: &Tensor, labels: &[usize]) -> Result<StepStats> {
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

    /// One epoch over `data`: shuffled with seed `config.seed + epoch`, augmented when
    /// `augment`, the learning rate set from `schedule` before every step.
    pub fn train_epoch(
        &mut self,
        data: &Dataset,
        batch_size: usize,
        epoch: usize,
        schedule: &LrSchedule,
        augment: bool,
    ) -> Result<EpochStats> {
        let steps_per_epoch = data.n.div_ceil(batch_size.max(1));
        let seed = self.config.seed.wrapping_add(epoch as u64);
        let (mut loss_sum, mut correct, mut samples) = (0.0f64, 0, 0);
        for (k, (x, y)) in data.batches(batch_size, Some(seed), augment).enumerate() {
            self.set_lr(schedule.lr_at(epoch, k, steps_per_epoch));
            let st = self.train_step(&x, &y)?;
            loss_sum += st.loss as f64 * y.len() as f64;
            correct += st.correct;
            samples += y.len();
        }
        Ok(EpochStats {
            loss: (loss_sum / samples.max(1) as f64) as f32,
            correct,
            samples,
        })
    }

    /// Eval-mode loss (mean over samples) and number correct over a whole dataset.
    pub fn evaluate_dataset(&self, data: &Dataset, batch_size: usize) -> Result<(f32, usize)> {
        let (mut loss_sum, mut correct) = (0.0f64, 0);
        for (x, y) in data.batches(batch_size, None, false) {
            let (l, c) = self.evaluate(&x, &y)?;
            loss_sum += l as f64 * y.len() as f64;
            correct += c;
        }
        Ok(((loss_sum / data.n.max(1) as f64) as f32, correct))
    }
}

fn flat_logits(out: &Tensor) -> Result<Tensor> {
    let b = out.shape()[0];
    out.clone().reshape(&[b, out.numel() / b.max(1)])
}
