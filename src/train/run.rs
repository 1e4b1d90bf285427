//! What every trainer shares: the [`Train`] trait (implemented by the CPU [`Trainer`](super::Trainer) and the
//! [`GpuTrainer`](super::GpuTrainer)), its configuration and statistics, the one epoch loop
//! ([`Train::train_epoch`]) and the one evaluation ([`evaluate`]).

use super::backward::softmax_cross_entropy;
use super::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::program::MemoryPlan;
use crate::graph::Graph;
use crate::optim::LrSchedule;
use crate::optim::SgdConfig;
use crate::tensor::Tensor;
use crate::weights::Weights;

/// Configuration of a trainer (CPU or GPU).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// SGD hyper-parameters (momentum 0.9, weight decay 5e-4).
    pub sgd: SgdConfig,
    /// Batch-norm running-statistics momentum (PyTorch's 0.1).
    pub bn_momentum: f32,
    /// Seed of the dropout masks (mixed with the step number).
    pub seed: u64,
    /// Initial learning rate (change it with [`Train::set_lr`]).
    pub lr: f32,
    /// The FLGC selection matrices' (S̄, T̄) learning rate as a multiple of `lr`, so that it
    /// follows the same schedule (1: the same rate; `gconv train --flgc-select-lr`).
    pub selection_lr_scale: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            sgd: SgdConfig::default(),
            bn_momentum: 0.1,
            seed: 0,
            lr: 0.1,
            selection_lr_scale: 1.0,
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

/// Totals of one epoch, from [`Train::train_epoch`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// Mean of the per-sample losses over the epoch.
    pub loss: f32,
    /// Correct samples.
    pub correct: usize,
    /// Samples seen.
    pub samples: usize,
}

impl TrainConfig {
    /// Checks every hyper-parameter is usable: a finite, non-negative learning rate and
    /// weight decay, a finite momentum, a BN momentum in `[0, 1]`.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: f32| {
            Err(Error::InvalidArgument(format!(
                "{what} {v} must be finite and ≥ 0"
            )))
        };
        for (what, v) in [
            ("learning rate", self.lr),
            ("selection learning-rate scale", self.selection_lr_scale),
            ("weight decay", self.sgd.weight_decay),
            ("momentum", self.sgd.momentum),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(what, v);
            }
        }
        if !(0.0..=1.0).contains(&self.bn_momentum) {
            return Err(Error::InvalidArgument(format!(
                "batch-norm momentum {} must be in [0, 1]",
                self.bn_momentum
            )));
        }
        Ok(())
    }
}

/// Where a running epoch is, for progress displays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Steps done in this epoch.
    pub step: usize,
    /// Steps in the epoch.
    pub steps: usize,
    /// Mean loss over the epoch so far.
    pub loss: f64,
    /// This step's batch loss.
    pub batch_loss: f32,
    /// This step's learning rate.
    pub lr: f32,
}

/// A trainer: one SGD step at a time on a graph it owns, on some device.
pub trait Train {
    /// The graph being trained.
    fn graph(&self) -> &Graph;
    /// The configuration (seed, SGD and BN hyper-parameters).
    fn config(&self) -> &TrainConfig;
    /// One line naming the device.
    fn device(&self) -> String;
    /// The learning rate of the next step.
    fn lr(&self) -> f32;
    /// Sets the learning rate of the following steps.
    fn set_lr(&mut self, lr: f32);
    /// One SGD step on a `[B, C, H, W]` batch; loss and hits are those before the update.
    fn train_step(&mut self, images: &Tensor, labels: &[usize]) -> Result<StepStats>;
    /// The eval-mode logits of a batch (running statistics, no dropout).
    fn predict(&mut self, images: &Tensor) -> Result<Tensor>;
    /// The current parameters and buffers.
    fn weights(&self) -> Result<Weights>;
    /// The momentum buffers, keyed `{param}.momentum`.
    fn optimizer_state(&self) -> Result<Weights>;
    /// Restores momentum buffers (from a checkpoint).
    fn load_optimizer_state(&mut self, state: &Weights) -> Result<()>;
    /// The planned device memory of a training step at `batch` (GPU trainers).
    fn memory_plan(&self, batch: usize) -> Result<Option<MemoryPlan>> {
        let _ = batch;
        Ok(None)
    }

    /// One epoch over `data`: shuffled with seed `config().seed + epoch`, augmented when
    /// `augment`, the learning rate set from `schedule` before every step, `progress` called
    /// after each step. A non-finite loss stops training with an error naming the epoch and
    /// the step.
    fn train_epoch(
        &mut self,
        data: &Dataset,
        batch_size: usize,
        epoch: usize,
        schedule: &LrSchedule,
        augment: bool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<EpochStats> {
        if data.n == 0 || batch_size == 0 {
            return Err(Error::InvalidArgument(format!(
                "an epoch needs data and a batch size (got {} samples, batch {batch_size})",
                data.n
            )));
        }
        let steps = data.n.div_ceil(batch_size);
        let seed = self.config().seed;
        let (mut loss_sum, mut correct, mut samples) = (0.0f64, 0, 0);
        for (k, (x, y)) in data
            .batches(batch_size, Some(seed.wrapping_add(epoch as u64)), augment)
            .enumerate()
        {
            self.set_lr(schedule.lr_at(epoch, k, steps));
            let st = self.train_step(&x, &y)?;
            if !st.loss.is_finite() {
                return Err(Error::InvalidArgument(format!(
                    "{}: the loss became {} at epoch {}, step {} (lr {}); lower the learning rate",
                    self.graph().name,
                    st.loss,
                    epoch + 1,
                    k + 1,
                    self.lr()
                )));
            }
            loss_sum += st.loss as f64 * y.len() as f64;
            correct += st.correct;
            samples += y.len();
            progress(Progress {
                step: k + 1,
                steps,
                loss: loss_sum / samples as f64,
                batch_loss: st.loss,
                lr: self.lr(),
            });
        }
        Ok(EpochStats {
            loss: (loss_sum / samples.max(1) as f64) as f32,
            correct,
            samples,
        })
    }

    /// Eval-mode loss (mean over samples) and number correct over a dataset.
    fn evaluate_dataset(&mut self, data: &Dataset, batch_size: usize) -> Result<(f32, usize)> {
        evaluate(&mut |x| self.predict(x), data, batch_size)
    }
}

/// The one evaluation: mean softmax cross-entropy and the number of correct argmaxes of the
/// logits `run` gives for each batch of `data` (in order, not augmented).
pub fn evaluate(
    run: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
    data: &Dataset,
    batch_size: usize,
) -> Result<(f32, usize)> {
    if data.n == 0 {
        return Err(Error::InvalidArgument(
            "evaluation on an empty data set".into(),
        ));
    }
    let (mut loss_sum, mut correct) = (0.0f64, 0);
    for (x, y) in data.batches(batch_size.max(1), None, false) {
        let out = run(&x)?;
        let b = y.len();
        let k = out.numel() / b.max(1);
        let logits = out.reshape(&[b, k])?;
        let (l, _, c) = softmax_cross_entropy(&logits, &y)?;
        loss_sum += l as f64 * b as f64;
        correct += c;
    }
    Ok(((loss_sum / data.n as f64) as f32, correct))
}
