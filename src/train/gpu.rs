//! Training on the GPU: the same step as [`Trainer`](super::Trainer) (training forward, softmax
//! cross-entropy, backward, BN running statistics, SGD with momentum and weight decay), built
//! from the WGSL kernels of [`crate::gpu::kernels`] and recorded as **one encoder and one
//! compute pass per step**. Only the per-sample losses and hits (`2·B` floats) are read back.
//!
//! Everything that lives across steps stays on the device: parameters, their gradients, the
//! momentum buffers and the BN running statistics. Per batch size, a step plan holds every
//! activation and gradient of the pass and the pre-built dispatches (pipelines and bind groups
//! are created once, then recorded each step); the learning rate and the dropout seed are
//! small storage buffers rewritten before each submit, so nothing is rebuilt per step.
//!
//! FLGC layers (Wang et al. §2) run as: row softmax + argmax of S̄ and T̄ on the GPU, the masked
//! weight `W ⊙ T·Sᵀ`, a dense convolution with it; backward gives `∂L/∂W = ∂L/∂(W⊙M)` on every
//! entry (Eq. 16) and the straight-through selection gradients (Eqs. 17–18).
//!
//! Evaluation exports the current weights and runs the inference executor
//! ([`Runtime::load_graph`](crate::Runtime::load_graph), BN folded, FLGC re-ordered), so what is
//! measured is what a user deploys.

use super::backward::softmax_cross_entropy;
use super::data::Dataset;
use super::optim::trainable_params;
use super::trainer::{EpochStats, StepStats, TrainConfig};
use super::LrSchedule;
use crate::error::{Error, Result};
use crate::gpu::kernels::{
    conv, conv_backward, elementwise, flgc, grad, linear, linear_backward, loss, norm_train, optim,
    pool, pool_backward,
};
use crate::gpu::{Dispatch, GpuContext, TensorRef};
use crate::graph::{Conv2dSpec, Graph, Op};
use crate::runtime::{LoadOptions, Runtime};
use crate::tensor::Tensor;
use crate::weights::Weights;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A parameter (or BN running statistic) on the device.
struct Slot {
    shape: Vec<usize>,
    buf: wgpu::Buffer,
    /// Gradient and momentum buffers (trainable parameters only).
    train: Option<TrainSlot>,
}

struct TrainSlot {
    grad: wgpu::Buffer,
    velocity: wgpu::Buffer,
    decay: bool,
}

/// Per-FLGC-layer buffers of one plan.
struct FlgcAux {
    probs_in: wgpu::Buffer,
    probs_out: wgpu::Buffer,
    idx_in: wgpu::Buffer,
    idx_out: wgpu::Buffer,
    masked: wgpu::Buffer,
}

/// Everything one training step at a given batch size needs, built once.
struct StepPlan {
    batch: usize,
    input: wgpu::Buffer,
    labels: wgpu::Buffer,
    per_sample: wgpu::Buffer,
    dispatches: Vec<Dispatch>,
}

/// Trains a graph on a GPU. Same semantics as [`Trainer`](super::Trainer) except dropout masks
/// (a counter-based hash on the device instead of the CPU generator).
pub struct GpuTrainer {
    ctx: Arc<GpuContext>,
    graph: Graph,
    config: TrainConfig,
    slots: BTreeMap<String, Slot>,
    /// `[lr]`, rewritten before every step.
    hyper: wgpu::Buffer,
    /// Dropout seed `[lo, hi]`, rewritten before every step.
    seed: wgpu::Buffer,
    plans: HashMap<usize, StepPlan>,
    lr: f32,
    steps: u64,
}

impl std::fmt::Debug for GpuTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuTrainer")
            .field("graph", &self.graph.name)
            .field("device", &self.ctx.describe())
            .field("steps", &self.steps)
            .finish()
    }
}

fn tref(b: &wgpu::Buffer) -> TensorRef<'_> {
    TensorRef::whole(b)
}

fn unsupported(node: &str, what: &str) -> Error {
    Error::shape(
        node,
        format!(
            "{what} cannot be trained on the GPU; train the dense/FLGC form (or use --device cpu)"
        ),
    )
}

impl GpuTrainer {
    /// Uploads `weights` (checked against `graph`) and zeroed momentum buffers.
    pub fn new(
        ctx: Arc<GpuContext>,
        graph: Graph,
        weights: Weights,
        config: TrainConfig,
    ) -> Result<Self> {
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
        let decay: HashMap<String, bool> = trainable_params(&graph)
            .into_iter()
            .map(|p| (p.key, p.decay))
            .collect();
        let mut slots = BTreeMap::new();
        for node in &graph.nodes {
            match &node.op {
                Op::GroupedConvTable(crate::ops::GroupedConvTable { .. })
                | Op::Gather(crate::ops::Gather { .. }) => {
                    return Err(unsupported(&node.name, node.op.kind()))
                }
                Op::Softmax(crate::ops::Softmax) => {
                    return Err(unsupported(&node.name, "a softmax inside the graph"))
                }
                _ => {}
            }
            for (suffix, shape) in node.op.param_shapes() {
                let key = format!("{}.{suffix}", node.name);
                let t = weights.require(&key)?;
                let buf = ctx.upload(&key, t.data())?;
                let train = match decay.get(&key) {
                    Some(&d) => Some(TrainSlot {
                        grad: ctx.storage_buffer(&format!("{key} grad"), (t.numel() * 4) as u64)?,
                        velocity: ctx
                            .storage_buffer(&format!("{key} momentum"), (t.numel() * 4) as u64)?,
                        decay: d,
                    }),
                    None => None,
                };
                slots.insert(key, Slot { shape, buf, train });
            }
        }
        let hyper = ctx.upload("lr", &[config.lr])?;
        let seed = ctx.storage_buffer("dropout seed", 8)?;
        Ok(Self {
            ctx,
            graph,
            lr: config.lr,
            config,
            slots,
            hyper,
            seed,
            plans: HashMap::new(),
            steps: 0,
        })
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The device context.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
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

    /// Reads the current weights (parameters and BN running statistics) back from the device.
    pub fn weights(&self) -> Result<Weights> {
        let mut w = Weights::new();
        for (k, s) in &self.slots {
            let n: usize = s.shape.iter().product();
            w.insert(
                k.clone(),
                Tensor::new(s.shape.clone(), self.ctx.read_f32(&s.buf, 0, n)?)?,
            );
        }
        Ok(w)
    }

    /// Reads the momentum buffers, keyed `"{param}.momentum"` like [`Sgd::state`](super::Sgd::state).
    pub fn optimizer_state(&self) -> Result<Weights> {
        let mut w = Weights::new();
        for (k, s) in &self.slots {
            if let Some(t) = &s.train {
                let n: usize = s.shape.iter().product();
                w.insert(
                    format!("{k}.momentum"),
                    Tensor::new(s.shape.clone(), self.ctx.read_f32(&t.velocity, 0, n)?)?,
                );
            }
        }
        Ok(w)
    }

    /// Uploads momentum buffers (from a checkpoint); a missing key leaves that buffer as is,
    /// a wrong shape is an error.
    pub fn load_optimizer_state(&mut self, state: &Weights) -> Result<()> {
        for (k, s) in &self.slots {
            let (Some(t), Some(m)) = (&s.train, state.get(&format!("{k}.momentum"))) else {
                continue;
            };
            if m.shape() != s.shape.as_slice() {
                return Err(Error::Weights {
                    key: format!("{k}.momentum"),
                    msg: format!(
                        "momentum buffer of shape {:?} for a parameter of shape {:?}",
                        m.shape(),
                        s.shape
                    ),
                });
            }
            self.ctx
                .queue
                .write_buffer(&t.velocity, 0, bytemuck::cast_slice(m.data()));
        }
        Ok(())
    }

    fn slot(&self, key: &str) -> Result<&Slot> {
        self.slots.get(key).ok_or_else(|| Error::Weights {
            key: key.to_string(),
            msg: "missing on the device".into(),
        })
    }

    fn param(&self, node: &str, suffix: &str) -> Result<&wgpu::Buffer> {
        Ok(&self.slot(&format!("{node}.{suffix}"))?.buf)
    }

    fn param_grad(&self, node: &str, suffix: &str) -> Result<&wgpu::Buffer> {
        let key = format!("{node}.{suffix}");
        match &self.slot(&key)?.train {
            Some(t) => Ok(&t.grad),
            None => Err(Error::Weights {
                key,
                msg: "not a trainable parameter".into(),
            }),
        }
    }

    /// Builds the buffers and dispatches of one step at batch size `b`.
    fn build_plan(&self, b: usize) -> Result<StepPlan> {
        let ctx = &*self.ctx;
        let g = &self.graph;
        let nn = g.nodes.len();
        let numel = |i: usize| b * g.nodes[i].shape.iter().product::<usize>();
        let hw_of = |i: usize| -> [usize; 2] {
            let s = &g.nodes[i].shape;
            if s.len() == 3 {
                [s[1], s[2]]
            } else {
                [1, 1]
            }
        };
        // Activations: one buffer per node; a flatten is a view of its input.
        let mut val: Vec<wgpu::Buffer> = Vec::with_capacity(nn);
        for (i, node) in g.nodes.iter().enumerate() {
            let buf = match node.op {
                Op::Flatten(crate::ops::Flatten) => val[node.inputs[0]].clone(),
                _ => ctx.storage_buffer(&format!("{} value", node.name), (numel(i) * 4) as u64)?,
            };
            val.push(buf);
        }
        // Gradients of every node but the input.
        let mut gradv: Vec<Option<wgpu::Buffer>> = Vec::with_capacity(nn);
        gradv.push(None);
        for (i, node) in g.nodes.iter().enumerate().skip(1) {
            gradv.push(Some(ctx.storage_buffer(
                &format!("{} grad", node.name),
                (numel(i) * 4) as u64,
            )?));
        }
        let labels = ctx.storage_buffer("labels", (b * 4) as u64)?;
        let per_sample = ctx.storage_buffer("per-sample loss", (b * 8) as u64)?;
        let mut bn_stats: HashMap<usize, wgpu::Buffer> = HashMap::new();
        let mut masks: HashMap<usize, wgpu::Buffer> = HashMap::new();
        let mut flgc_aux: HashMap<usize, FlgcAux> = HashMap::new();
        let mut d: Vec<Dispatch> = Vec::new();

        // ---- forward (training mode) ----
        for (i, node) in g.nodes.iter().enumerate().skip(1) {
            let name = node.name.as_str();
            let p = node.inputs[0];
            let x = tref(&val[p]);
            let y = tref(&val[i]);
            let in_hw = hw_of(p);
            match &node.op {
                Op::Input(crate::ops::Input { .. }) | Op::Flatten(crate::ops::Flatten) => {}
                Op::Conv2d(s) => d.extend(conv::prepare_conv2d(
                    ctx,
                    name,
                    x,
                    self.param(name, "weight")?,
                    if s.bias {
                        Some(self.param(name, "bias")?)
                    } else {
                        None
                    },
                    y,
                    b,
                    s,
                    in_hw,
                    false,
                )?),
                Op::FlgcConv2d(crate::ops::FlgcSpec(s)) => {
                    let (n, c, gr) = (s.out_channels, s.in_channels, s.groups);
                    let kk = s.kernel[0] * s.kernel[1];
                    let aux = FlgcAux {
                        probs_in: ctx.storage_buffer(&format!("{name} Ŝ"), (c * gr * 4) as u64)?,
                        probs_out: ctx.storage_buffer(&format!("{name} T̂"), (n * gr * 4) as u64)?,
                        idx_in: ctx.storage_buffer(&format!("{name} S idx"), (c * 4) as u64)?,
                        idx_out: ctx.storage_buffer(&format!("{name} T idx"), (n * 4) as u64)?,
                        masked: ctx
                            .storage_buffer(&format!("{name} W⊙M"), (n * c * kk * 4) as u64)?,
                    };
                    d.extend(flgc::prepare_select(
                        ctx,
                        &format!("{name} S"),
                        c,
                        gr,
                        tref(self.param(name, "select_in")?),
                        tref(&aux.probs_in),
                        tref(&aux.idx_in),
                    )?);
                    d.extend(flgc::prepare_select(
                        ctx,
                        &format!("{name} T"),
                        n,
                        gr,
                        tref(self.param(name, "select_out")?),
                        tref(&aux.probs_out),
                        tref(&aux.idx_out),
                    )?);
                    d.extend(flgc::prepare_masked_weight(
                        ctx,
                        name,
                        n,
                        c,
                        kk,
                        tref(self.param(name, "weight")?),
                        tref(&aux.idx_in),
                        tref(&aux.idx_out),
                        tref(&aux.masked),
                    )?);
                    let dense = Conv2dSpec {
                        groups: 1,
                        ..s.clone()
                    };
                    d.extend(conv::prepare_conv2d(
                        ctx,
                        name,
                        x,
                        &aux.masked,
                        if s.bias {
                            Some(self.param(name, "bias")?)
                        } else {
                            None
                        },
                        y,
                        b,
                        &dense,
                        in_hw,
                        false,
                    )?);
                    flgc_aux.insert(i, aux);
                }
                Op::BatchNorm(crate::ops::BatchNorm { channels, eps }) => {
                    let stats =
                        ctx.storage_buffer(&format!("{name} stats"), (2 * channels * 4) as u64)?;
                    d.extend(norm_train::prepare_batch_norm_train(
                        ctx,
                        name,
                        b,
                        *channels,
                        in_hw[0] * in_hw[1],
                        *eps,
                        self.config.bn_momentum,
                        x,
                        tref(self.param(name, "weight")?),
                        tref(self.param(name, "bias")?),
                        y,
                        tref(&stats),
                        tref(self.param(name, "running_mean")?),
                        tref(self.param(name, "running_var")?),
                    )?);
                    bn_stats.insert(i, stats);
                }
                Op::Relu(crate::ops::Relu) => {
                    d.extend(elementwise::prepare_relu(ctx, name, x, y, numel(i))?)
                }
                Op::MaxPool(crate::ops::MaxPool(ps)) => d.extend(pool::prepare_max_pool(
                    ctx,
                    name,
                    x,
                    y,
                    b,
                    g.nodes[p].shape[0],
                    in_hw,
                    ps,
                )?),
                Op::AvgPool(crate::ops::AvgPool(ps)) => d.extend(pool::prepare_avg_pool(
                    ctx,
                    name,
                    x,
                    y,
                    b,
                    g.nodes[p].shape[0],
                    in_hw,
                    ps,
                )?),
                Op::AdaptiveAvgPool(crate::ops::AdaptiveAvgPool { output }) => {
                    d.extend(pool::prepare_adaptive_avg_pool(
                        ctx,
                        name,
                        x,
                        y,
                        b,
                        g.nodes[p].shape[0],
                        in_hw,
                        *output,
                    )?)
                }
                Op::Linear(crate::ops::Linear {
                    in_features,
                    out_features,
                    bias,
                }) => {
                    let w = self.param(name, "weight")?.clone();
                    d.extend(linear::prepare_linear(
                        ctx,
                        name,
                        x,
                        &[(w, *out_features)],
                        if *bias {
                            Some(self.param(name, "bias")?)
                        } else {
                            None
                        },
                        y,
                        b,
                        *in_features,
                        *out_features,
                        false,
                    )?)
                }
                Op::Add(crate::ops::Add) => d.extend(elementwise::prepare_add(
                    ctx,
                    name,
                    x,
                    tref(&val[node.inputs[1]]),
                    y,
                    numel(i),
                    false,
                )?),
                Op::Dropout(crate::ops::Dropout { p: prob }) => {
                    let mask =
                        ctx.storage_buffer(&format!("{name} mask"), (numel(i) * 4) as u64)?;
                    d.extend(grad::prepare_dropout(
                        ctx,
                        name,
                        numel(i),
                        *prob,
                        TensorRef {
                            buffer: &self.seed,
                            offset: 0,
                            len: 2,
                        },
                        x,
                        tref(&mask),
                        y,
                    )?);
                    masks.insert(i, mask);
                }
                Op::Softmax(_)
                | Op::Relu6(_)
                | Op::GroupedConvTable(_)
                | Op::Gather(_)
                | Op::Concat(_)
                | Op::Sigmoid(_)
                | Op::HardSigmoid(_)
                | Op::HardSwish(_)
                | Op::Mul(_) => return Err(unsupported(name, node.op.kind())),
            }
        }

        // ---- loss ----
        let out = g.output;
        let classes = g.nodes[out].shape.iter().product::<usize>();
        let gout = gradv[out].as_ref().expect("output is not the input");
        d.extend(loss::prepare_softmax_cross_entropy(
            ctx,
            "loss",
            b,
            classes,
            tref(&val[out]),
            tref(&labels),
            tref(gout),
            tref(&per_sample),
        )?);

        // ---- backward, reverse topological order ----
        let mut written = vec![false; nn];
        written[out] = true;
        let mut has_grad: Vec<String> = Vec::new();
        for i in (1..nn).rev() {
            if !written[i] {
                continue;
            }
            let node = &g.nodes[i];
            let name = node.name.as_str();
            let gy = tref(gradv[i].as_ref().expect("non-input node"));
            let p = node.inputs[0];
            let x = tref(&val[p]);
            let in_hw = hw_of(p);
            let mut target = |k: usize| grad_target(&gradv, &mut written, node.inputs[k]);
            match &node.op {
                Op::Input(crate::ops::Input { .. }) => {}
                Op::Conv2d(s) => {
                    d.extend(conv_backward::prepare_conv_grad_weight(
                        ctx,
                        name,
                        s,
                        b,
                        in_hw,
                        x,
                        gy,
                        tref(self.param_grad(name, "weight")?),
                    )?);
                    has_grad.push(format!("{name}.weight"));
                    if s.bias {
                        let [oh, ow] = hw_of(i);
                        d.extend(conv_backward::prepare_channel_sum(
                            ctx,
                            name,
                            b,
                            s.out_channels,
                            oh * ow,
                            gy,
                            tref(self.param_grad(name, "bias")?),
                        )?);
                        has_grad.push(format!("{name}.bias"));
                    }
                    if let Some((gx, acc)) = target(0) {
                        d.extend(conv_backward::prepare_conv_grad_input(
                            ctx,
                            name,
                            s,
                            b,
                            in_hw,
                            gy,
                            tref(self.param(name, "weight")?),
                            gx,
                            acc,
                        )?);
                    }
                }
                Op::FlgcConv2d(crate::ops::FlgcSpec(s)) => {
                    let aux = &flgc_aux[&i];
                    let (n, c, gr) = (s.out_channels, s.in_channels, s.groups);
                    let kk = s.kernel[0] * s.kernel[1];
                    let dense = Conv2dSpec {
                        groups: 1,
                        ..s.clone()
                    };
                    let gw = self.param_grad(name, "weight")?;
                    // D = ∂L/∂(W⊙M), used as ∂L/∂W on every entry (Eq. 16).
                    d.extend(conv_backward::prepare_conv_grad_weight(
                        ctx,
                        name,
                        &dense,
                        b,
                        in_hw,
                        x,
                        gy,
                        tref(gw),
                    )?);
                    d.extend(flgc::prepare_select_grad(
                        ctx,
                        name,
                        n,
                        c,
                        gr,
                        kk,
                        tref(gw),
                        tref(self.param(name, "weight")?),
                        tref(&aux.idx_in),
                        tref(&aux.idx_out),
                        tref(&aux.probs_in),
                        tref(&aux.probs_out),
                        tref(self.param_grad(name, "select_in")?),
                        tref(self.param_grad(name, "select_out")?),
                    )?);
                    for k in ["weight", "select_in", "select_out"] {
                        has_grad.push(format!("{name}.{k}"));
                    }
                    if s.bias {
                        let [oh, ow] = hw_of(i);
                        d.extend(conv_backward::prepare_channel_sum(
                            ctx,
                            name,
                            b,
                            n,
                            oh * ow,
                            gy,
                            tref(self.param_grad(name, "bias")?),
                        )?);
                        has_grad.push(format!("{name}.bias"));
                    }
                    if let Some((gx, acc)) = target(0) {
                        d.extend(conv_backward::prepare_conv_grad_input(
                            ctx,
                            name,
                            &dense,
                            b,
                            in_hw,
                            gy,
                            tref(&aux.masked),
                            gx,
                            acc,
                        )?);
                    }
                }
                Op::BatchNorm(crate::ops::BatchNorm { channels, .. }) => {
                    // BN right on the network input still needs dγ, dβ: its dx goes to scratch.
                    let scratch;
                    let (gx, acc) = match target(0) {
                        Some(t) => t,
                        None => {
                            scratch = ctx.storage_buffer(
                                &format!("{name} unused dx"),
                                (numel(p) * 4) as u64,
                            )?;
                            (tref(&scratch), false)
                        }
                    };
                    d.extend(norm_train::prepare_batch_norm_backward(
                        ctx,
                        name,
                        b,
                        *channels,
                        in_hw[0] * in_hw[1],
                        x,
                        tref(self.param(name, "weight")?),
                        tref(&bn_stats[&i]),
                        gy,
                        gx,
                        tref(self.param_grad(name, "weight")?),
                        tref(self.param_grad(name, "bias")?),
                        acc,
                    )?);
                    has_grad.push(format!("{name}.weight"));
                    has_grad.push(format!("{name}.bias"));
                }
                Op::Relu(crate::ops::Relu) => {
                    if let Some((gx, acc)) = target(0) {
                        d.extend(grad::prepare_relu_backward(
                            ctx,
                            name,
                            numel(i),
                            x,
                            gy,
                            gx,
                            acc,
                        )?);
                    }
                }
                Op::MaxPool(crate::ops::MaxPool(ps)) => {
                    if let Some((gx, acc)) = target(0) {
                        d.extend(pool_backward::prepare_max_pool_backward(
                            ctx,
                            name,
                            b,
                            g.nodes[p].shape[0],
                            in_hw,
                            ps,
                            x,
                            gy,
                            gx,
                            acc,
                        )?);
                    }
                }
                Op::AvgPool(crate::ops::AvgPool(ps)) => {
                    if let Some((gx, acc)) = target(0) {
                        d.extend(pool_backward::prepare_avg_pool_backward(
                            ctx,
                            name,
                            b,
                            g.nodes[p].shape[0],
                            in_hw,
                            ps,
                            gy,
                            gx,
                            acc,
                        )?);
                    }
                }
                Op::AdaptiveAvgPool(crate::ops::AdaptiveAvgPool { output }) => {
                    if let Some((gx, acc)) = target(0) {
                        d.extend(pool_backward::prepare_adaptive_avg_pool_backward(
                            ctx,
                            name,
                            b,
                            g.nodes[p].shape[0],
                            in_hw,
                            *output,
                            gy,
                            gx,
                            acc,
                        )?);
                    }
                }
                Op::Linear(crate::ops::Linear {
                    in_features,
                    out_features,
                    bias,
                }) => {
                    // The input gradient is always computed (a linear reading the network
                    // input directly writes it into a scratch buffer).
                    let scratch;
                    let (gx, acc) = match target(0) {
                        Some(t) => t,
                        None => {
                            scratch = ctx.storage_buffer(
                                &format!("{name} unused dx"),
                                (b * in_features * 4) as u64,
                            )?;
                            (tref(&scratch), false)
                        }
                    };
                    d.extend(linear_backward::prepare_linear_backward(
                        ctx,
                        name,
                        b,
                        *in_features,
                        *out_features,
                        x,
                        tref(self.param(name, "weight")?),
                        gy,
                        gx,
                        acc,
                        tref(self.param_grad(name, "weight")?),
                        if *bias {
                            Some(tref(self.param_grad(name, "bias")?))
                        } else {
                            None
                        },
                    )?);
                    has_grad.push(format!("{name}.weight"));
                    if *bias {
                        has_grad.push(format!("{name}.bias"));
                    }
                }
                Op::Add(crate::ops::Add) => {
                    for k in 0..2 {
                        if let Some((gx, acc)) = target(k) {
                            d.extend(grad::prepare_copy(ctx, name, numel(i), gy, gx, acc)?);
                        }
                    }
                }
                Op::Flatten(crate::ops::Flatten) => {
                    if let Some((gx, acc)) = target(0) {
                        d.extend(grad::prepare_copy(ctx, name, numel(i), gy, gx, acc)?);
                    }
                }
                Op::Dropout(crate::ops::Dropout { .. }) => {
                    if let Some((gx, acc)) = target(0) {
                        d.extend(grad::prepare_mul(
                            ctx,
                            name,
                            numel(i),
                            gy,
                            tref(&masks[&i]),
                            gx,
                            acc,
                        )?);
                    }
                }
                Op::Softmax(_)
                | Op::Relu6(_)
                | Op::GroupedConvTable(_)
                | Op::Gather(_)
                | Op::Concat(_)
                | Op::Sigmoid(_)
                | Op::HardSigmoid(_)
                | Op::HardSwish(_)
                | Op::Mul(_) => return Err(unsupported(name, node.op.kind())),
            }
        }

        // ---- SGD on every parameter that received a gradient ----
        for key in has_grad {
            let s = self.slot(&key)?;
            let t = s.train.as_ref().ok_or_else(|| Error::Weights {
                key: key.clone(),
                msg: "gradient for a non-trainable tensor".into(),
            })?;
            let wd = if t.decay {
                self.config.sgd.weight_decay
            } else {
                0.0
            };
            d.extend(optim::prepare_sgd(
                ctx,
                &format!("{key} sgd"),
                s.shape.iter().product(),
                self.config.sgd.momentum,
                wd,
                tref(&s.buf),
                tref(&t.grad),
                tref(&t.velocity),
                TensorRef {
                    buffer: &self.hyper,
                    offset: 0,
                    len: 1,
                },
            )?);
        }
        Ok(StepPlan {
            batch: b,
            input: val[0].clone(),
            labels,
            per_sample,
            dispatches: d,
        })
    }

    /// One SGD step on a `[B, C, H, W]` batch, as [`Trainer::train_step`](super::Trainer::train_step):
    /// one encoder and one submit, then a read-back of the `2·B` per-sample loss/hit values.
    pub fn train_step(&mut self, images: &Tensor, labels: &[usize]) -> Result<StepStats> {
        let [c, h, w] = self.graph.input_shape();
        let [b, ic, ih, iw] = images.dims4("model input")?;
        if [ic, ih, iw] != [c, h, w] || b == 0 {
            return Err(Error::tensor_shape(
                format!("{} input", self.graph.name),
                format!("[B ≥ 1, {c}, {h}, {w}]"),
                images.shape(),
            ));
        }
        let classes: usize = self.graph.output_shape().iter().product();
        if labels.len() != b {
            return Err(Error::InvalidArgument(format!(
                "{} labels for a batch of {b}",
                labels.len()
            )));
        }
        if let Some(&l) = labels.iter().find(|&&l| l >= classes) {
            return Err(Error::InvalidArgument(format!(
                "label {l} out of range for {classes} classes"
            )));
        }
        if !self.plans.contains_key(&b) {
            let plan = self.build_plan(b)?;
            self.plans.insert(b, plan);
        }
        let seed = self
            .config
            .seed
            .wrapping_mul(0x2545_f491_4f6c_dd1d)
            .wrapping_add(self.steps);
        let plan = &self.plans[&b];
        debug_assert_eq!(plan.batch, b);
        let q = &self.ctx.queue;
        q.write_buffer(&plan.input, 0, bytemuck::cast_slice(images.data()));
        let lab: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        q.write_buffer(&plan.labels, 0, bytemuck::cast_slice(&lab));
        q.write_buffer(&self.hyper, 0, bytemuck::cast_slice(&[self.lr]));
        q.write_buffer(
            &self.seed,
            0,
            bytemuck::cast_slice(&[seed as u32, (seed >> 32) as u32]),
        );
        crate::gpu::run_dispatches(&self.ctx, &plan.dispatches)?;
        let ps = self.ctx.read_f32(&plan.per_sample, 0, 2 * b)?;
        let loss = ps.iter().step_by(2).map(|&v| v as f64).sum::<f64>() / b as f64;
        let correct = ps.iter().skip(1).step_by(2).filter(|&&v| v > 0.5).count();
        self.steps += 1;
        Ok(StepStats {
            loss: loss as f32,
            correct,
        })
    }

    /// Runs one training step like [`train_step`](Self::train_step) but submits and waits for
    /// every dispatch separately, returning the wall time of each (label, seconds): a profile
    /// of where a step's time goes. Slower than a real step (one submit per dispatch).
    pub fn profile_step(
        &mut self,
        images: &Tensor,
        labels: &[usize],
    ) -> Result<Vec<(String, f64)>> {
        // A normal step first builds the plan and warms the pipelines.
        self.train_step(images, labels)?;
        let b = labels.len();
        let plan = &self.plans[&b];
        let mut out = Vec::with_capacity(plan.dispatches.len());
        for d in &plan.dispatches {
            let t0 = std::time::Instant::now();
            crate::gpu::run_dispatches(&self.ctx, std::slice::from_ref(d))?;
            out.push((d.label.clone(), t0.elapsed().as_secs_f64()));
        }
        self.steps += 1;
        Ok(out)
    }

    /// One epoch over `data`, as [`Trainer::train_epoch`](super::Trainer::train_epoch).
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

    /// Eval-mode loss (mean over samples) and number correct over a dataset, run through the
    /// inference executor on the same device with the current weights (BN folded, FLGC
    /// compiled by index re-ordering).
    pub fn evaluate_dataset(&self, data: &Dataset, batch_size: usize) -> Result<(f32, usize)> {
        let rt = Runtime::with_context(self.ctx.clone());
        let mut model =
            rt.load_graph(self.graph.clone(), self.weights()?, &LoadOptions::default())?;
        let (mut loss_sum, mut correct) = (0.0f64, 0);
        for (x, y) in data.batches(batch_size, None, false) {
            let out = model.run(&x)?;
            let bsz = y.len();
            let logits = out.reshape(&[bsz, out_len(&self.graph)])?;
            let (l, _, c) = softmax_cross_entropy(&logits, &y)?;
            loss_sum += l as f64 * bsz as f64;
            correct += c;
        }
        Ok(((loss_sum / data.n.max(1) as f64) as f32, correct))
    }
}

/// The gradient buffer of node `q` and whether to accumulate into it (another consumer wrote
/// it already); `None` for the network input, whose gradient is never needed.
fn grad_target<'a>(
    gradv: &'a [Option<wgpu::Buffer>],
    written: &mut [bool],
    q: usize,
) -> Option<(TensorRef<'a>, bool)> {
    let gq = gradv[q].as_ref()?;
    let acc = written[q];
    written[q] = true;
    Some((tref(gq), acc))
}

fn out_len(g: &Graph) -> usize {
    g.output_shape().iter().product()
}
