//! SGD with momentum and weight decay (PyTorch's `torch.optim.SGD`, dampening 0, no
//! Nesterov), and learning-rate schedules.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::ops::ParamRole;
use crate::tensor::Tensor;
use crate::weights::Weights;

/// Hyper-parameters of [`Sgd`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Momentum factor (0.9).
    pub momentum: f32,
    /// L2 weight decay added to the gradient (5e-4), on conv / FLGC / linear weights and
    /// biases only.
    pub weight_decay: f32,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            momentum: 0.9,
            weight_decay: 5e-4,
        }
    }
}

/// One trainable parameter of a graph.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// Weights key, `"{node}.{suffix}"`.
    pub key: String,
    /// Whether weight decay applies to it.
    pub decay: bool,
}

/// The trainable parameters of `graph`, in node order: conv, FLGC and linear weights and
/// biases (with weight decay), batch-norm γ and β (no decay) and FLGC selection matrices
/// `select_in` (S̄) and `select_out` (T̄) (no decay: decaying them would pull every row towards
/// a uniform softmax and make the grouping undecided). BN running statistics are buffers,
/// not parameters.
pub fn trainable_params(graph: &Graph) -> Vec<ParamInfo> {
    let mut out = Vec::new();
    for n in &graph.nodes {
        for p in n.op.def().params() {
            let decay = match p.role {
                ParamRole::Decayed => true,
                ParamRole::NotDecayed => false,
                ParamRole::Buffer => continue,
            };
            out.push(ParamInfo {
                key: format!("{}.{}", n.name, p.suffix),
                decay,
            });
        }
    }
    out
}

/// SGD with momentum, PyTorch-style: for each parameter `p` with gradient `g`,
/// `d = g + wd·p` (decayed parameters only), `buf = momentum·buf + d` (`buf = d` at the first
/// step, the same as starting from a zero buffer), `p ← p − lr·buf`.
///
/// Weight decay applies to conv / FLGC / linear weights and biases; NOT to batch-norm γ/β and
/// NOT to the FLGC selection matrices S̄/T̄ (see [`trainable_params`]).
/// Parameters without a gradient this step are skipped (as PyTorch skips `grad is None`).
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// The hyper-parameters.
    pub config: SgdConfig,
    state: Weights,
}

impl Sgd {
    /// An optimizer with empty momentum buffers.
    pub fn new(config: SgdConfig) -> Self {
        Self {
            config,
            state: Weights::new(),
        }
    }

    /// The momentum buffers, keyed `"{param}.momentum"` (e.g. `features.0.weight.momentum`),
    /// ready to be saved in a checkpoint next to the weights.
    pub fn state(&self) -> &Weights {
        &self.state
    }

    /// Replaces the momentum buffers (from a checkpoint); keys as in [`Sgd::state`].
    pub fn load_state(&mut self, state: Weights) {
        self.state = state;
    }

    /// One update of every trainable parameter of `graph` that has a gradient in `grads`.
    pub fn step(
        &mut self,
        graph: &Graph,
        weights: &mut Weights,
        grads: &Weights,
        lr: f32,
    ) -> Result<()> {
        for ParamInfo { key, decay } in trainable_params(graph) {
            let Some(g) = grads.get(&key) else { continue };
            let mut p = weights.require(&key)?.clone();
            if g.shape() != p.shape() {
                return Err(Error::Weights {
                    key,
                    msg: format!(
                        "gradient of shape {:?} for a parameter of shape {:?}",
                        g.shape(),
                        p.shape()
                    ),
                });
            }
            let wd = if decay { self.config.weight_decay } else { 0.0 };
            let mkey = format!("{key}.momentum");
            let mut buf = match self.state.remove(&mkey) {
                Some(b) if b.shape() == p.shape() => b,
                Some(b) => {
                    return Err(Error::Weights {
                        key: mkey,
                        msg: format!(
                            "momentum buffer of shape {:?} for a parameter of shape {:?}",
                            b.shape(),
                            p.shape()
                        ),
                    })
                }
                None => Tensor::zeros(p.shape()),
            };
            for ((pv, bv), &gv) in p.data_mut().iter_mut().zip(buf.data_mut()).zip(g.data()) {
                let d = gv + wd * *pv;
                *bv = self.config.momentum * *bv + d;
                *pv -= lr * *bv;
            }
            weights.insert(key, p);
            self.state.insert(mkey, buf);
        }
        Ok(())
    }
}

/// A learning-rate schedule, evaluated per step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    /// A fixed learning rate.
    Constant {
        /// The learning rate.
        lr: f32,
    },
    /// `base · gamma^⌊epoch / step_size⌋` (PyTorch's `StepLR`, stepped per epoch).
    Step {
        /// Initial learning rate.
        base: f32,
        /// Factor applied every `step_size` epochs (e.g. 0.1).
        gamma: f32,
        /// Epochs between decays.
        step_size: usize,
    },
    /// Cosine annealing to 0 over `total_epochs`, evaluated at the fractional epoch
    /// `t = epoch + step_in_epoch / steps_per_epoch`: `base · (1 + cos(π·t/total)) / 2`
    /// (0 from `total_epochs` on).
    Cosine {
        /// Initial learning rate.
        base: f32,
        /// Length of the schedule in epochs.
        total_epochs: usize,
    },
}

impl LrSchedule {
    /// The learning rate at step `step_in_epoch` (of `steps_per_epoch`) of epoch `epoch`
    /// (both 0-based).
    pub fn lr_at(&self, epoch: usize, step_in_epoch: usize, steps_per_epoch: usize) -> f32 {
        match *self {
            LrSchedule::Constant { lr } => lr,
            LrSchedule::Step {
                base,
                gamma,
                step_size,
            } => base * gamma.powi((epoch / step_size.max(1)) as i32),
            LrSchedule::Cosine { base, total_epochs } => {
                let t = epoch as f64 + step_in_epoch as f64 / steps_per_epoch.max(1) as f64;
                let frac = (t / total_epochs.max(1) as f64).min(1.0);
                (base as f64 * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos())) as f32
            }
        }
    }
}
