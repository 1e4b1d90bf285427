//! SGD with momentum and weight decay on the CPU (PyTorch's `torch.optim.SGD`, dampening 0,
//! no Nesterov) and the list of a graph's trainable parameters; the settings
//! ([`SgdConfig`], [`crate::optim::LrSchedule`]) live in [`crate::optim`].

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::ops::ParamRole;
use crate::optim::SgdConfig;
use crate::tensor::Tensor;
use crate::weights::Weights;

/// One trainable parameter of a graph.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// Weights key, `"{node}.{suffix}"`.
    pub key: String,
    /// Whether weight decay applies to it.
    pub decay: bool,
    /// Whether it is an FLGC selection matrix (S̄ or T̄), trained at the scaled rate.
    pub selection: bool,
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
            let key = format!("{}.{}", n.name, p.suffix);
            out.push(ParamInfo {
                selection: crate::optim::is_selection_param(&key),
                key,
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
/// The FLGC selection matrices step at `lr · selection_lr_scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// The hyper-parameters.
    pub config: SgdConfig,
    /// The selection matrices' learning rate as a multiple of the step's (1 by default).
    pub selection_lr_scale: f32,
    state: Weights,
}

impl Sgd {
    /// An optimizer with empty momentum buffers.
    pub fn new(config: SgdConfig) -> Self {
        Self {
            config,
            selection_lr_scale: 1.0,
            state: Weights::new(),
        }
    }

    /// Builder: the selection matrices' learning rate as a multiple of the step's.
    pub fn with_selection_lr_scale(mut self, scale: f32) -> Self {
        self.selection_lr_scale = scale;
        self
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
        for ParamInfo {
            key,
            decay,
            selection,
        } in trainable_params(graph)
        {
            let lr = if selection {
                lr * self.selection_lr_scale
            } else {
                lr
            };
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
