//! Optimiser settings: plain data that the CPU trainer (`train`) and the GPU
//! lowering of the SGD step ([`crate::gpu`]) both read, so it sits below both.

/// Hyper-parameters of SGD with momentum (the CPU `train::Sgd` and the GPU `sgd`
/// kernel).
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

/// Whether the parameter `key` is an FLGC selection matrix (`…select_in`, S̄, or
/// `…select_out`, T̄): those take the learning rate scaled by
/// `TrainConfig::selection_lr_scale` (in `train`) on the CPU and the GPU alike.
pub fn is_selection_param(key: &str) -> bool {
    key.ends_with(".select_in") || key.ends_with(".select_out")
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
