//! One lowering of the graph to kernel calls, shared by inference ([`crate::gpu::GpuModel`])
//! and training (`train::GpuTrainer`).
//!
//! Per op family a forward lowering and, where the op trains, a backward lowering append
//! [`Call`]s to a [`Program`]; activations, gradients and scratch are planned buffers whose
//! lifetimes the program derives from the calls, so the lifetime planner serves inference and
//! training alike. The matches over ops here are exhaustive: a new op does not compile until
//! it says how it runs on the GPU.
//!
//! A training step is: the training forward, the loss, then for each node in reverse order its
//! backward followed at once by the SGD update of its parameters (so a parameter's gradient
//! lives only from its node's backward to its update).

mod conv;
mod layers;
pub mod params;

use super::choice::KernelChoice;
use super::context::GpuContext;
use super::launch::{Arg, BufId, Call};
use super::program::Program;
use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId, Op};
use crate::ops::Activation;
use crate::optim::SgdConfig;
use crate::plan::Analysis;
pub use params::{ParamStore, Prepared};
use std::collections::HashMap;

/// Training-only inputs of a lowering.
#[derive(Clone, Debug)]
pub struct TrainSetup {
    /// SGD hyper-parameters.
    pub sgd: SgdConfig,
    /// Batch-norm running-statistics momentum.
    pub bn_momentum: f32,
    /// `[lr]`, rewritten before each step.
    pub hyper: wgpu::Buffer,
    /// `[lr · selection scale]` for the FLGC selection matrices, rewritten before each step.
    pub hyper_selection: wgpu::Buffer,
    /// Dropout seed `[lo, hi]`, rewritten before each step.
    pub seed: wgpu::Buffer,
}

/// Lowers one graph at one batch size into a [`Program`].
pub struct Lowering<'a> {
    /// The device.
    pub ctx: &'a GpuContext,
    /// The graph.
    pub graph: &'a Graph,
    /// Batch size.
    pub batch: usize,
    /// Resident parameters.
    pub params: &'a ParamStore,
    /// Training set-up (`None`: inference).
    pub train: Option<&'a TrainSetup>,
    /// The calls and planned buffers so far.
    pub prog: Program,
    /// Kernels forced per layer (empty: the candidate lists' first choice everywhere).
    pub choice: KernelChoice,
    analysis: Analysis,
    values: Vec<Option<BufId>>,
    grads: Vec<Option<BufId>>,
    grad_written: Vec<bool>,
    saved: HashMap<(NodeId, &'static str), BufId>,
    param_grads: HashMap<String, Vec<Arg>>,
}

impl<'a> Lowering<'a> {
    /// A lowering of `graph` for `batch` samples (`train`: a training step).
    pub fn new(
        ctx: &'a GpuContext,
        graph: &'a Graph,
        batch: usize,
        params: &'a ParamStore,
        train: Option<&'a TrainSetup>,
    ) -> Result<Self> {
        if batch == 0 {
            return Err(Error::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
        let n = graph.nodes.len();
        let analysis = Analysis::for_pass(graph, train.is_some());
        let mut l = Self {
            ctx,
            graph,
            batch,
            params,
            train,
            prog: Program::default(),
            choice: KernelChoice::default(),
            analysis,
            values: vec![None; n],
            grads: vec![None; n],
            grad_written: vec![false; n],
            saved: HashMap::new(),
            param_grads: HashMap::new(),
        };
        for i in 0..n {
            if l.analysis.value_of[i] == i {
                let elems = l.numel(i)?;
                l.values[i] = Some(
                    l.prog
                        .buffer(format!("{} value", graph.nodes[i].name), elems),
                );
            }
        }
        let input = l.values[0].expect("the input owns its value");
        l.prog.pin(input);
        Ok(l)
    }

    /// `batch · Π shape` of node `i`'s output, checked against the adapter's binding size.
    pub fn numel(&self, i: NodeId) -> Result<usize> {
        let node = &self.graph.nodes[i];
        let n = node
            .shape
            .iter()
            .try_fold(self.batch, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= u32::MAX as usize)
            .ok_or_else(|| Error::shape(&node.name, "the activation exceeds u32 indexing"))?;
        let limit = self.ctx.limits.max_storage_buffer_binding_size;
        if 4 * n as u64 > limit {
            return Err(Error::AdapterLimit {
                layer: node.name.clone(),
                tensor: format!(
                    "{} output (batch {}, shape {:?})",
                    node.name, self.batch, node.shape
                ),
                needed: 4 * n as u64,
                limit_name: "max_storage_buffer_binding_size",
                limit,
            });
        }
        Ok(n)
    }

    /// `[h, w]` of node `i`'s output (`[1, 1]` for a flat one).
    pub fn hw(&self, i: NodeId) -> [usize; 2] {
        match self.graph.nodes[i].shape[..] {
            [_, h, w] => [h, w],
            _ => [1, 1],
        }
    }

    /// The buffer holding node `i`'s output (a view's or fused activation's is its producer's).
    pub fn value_id(&self, i: NodeId) -> BufId {
        self.values[self.analysis.value_of[i]].expect("every stored value has a buffer")
    }

    /// Node `i`'s output as an argument.
    pub fn value(&self, i: NodeId) -> Result<Arg> {
        Ok(Arg::planned(self.value_id(i), self.numel(i)?))
    }

    /// The activation fused into node `i`'s epilogue.
    pub fn fused(&self, i: NodeId) -> Activation {
        self.analysis.fused[i]
    }

    /// Whether node `i` computes anything (not a view, not a fused activation).
    pub fn is_stored(&self, i: NodeId) -> bool {
        self.analysis.value_of[i] == i
    }

    /// A scratch buffer of `elems` values.
    pub fn scratch(&mut self, label: &str, elems: usize) -> Arg {
        Arg::planned(self.prog.buffer(label, elems), elems)
    }

    /// A buffer node `i`'s forward keeps for its backward (BN statistics, FLGC's mask...):
    /// created on the first call, the same buffer afterwards.
    pub fn saved(&mut self, i: NodeId, what: &'static str, elems: usize) -> Arg {
        let name = &self.graph.nodes[i].name;
        let id = *self
            .saved
            .entry((i, what))
            .or_insert_with(|| self.prog.buffer(format!("{name} {what}"), elems));
        Arg::planned(id, elems)
    }

    /// The node whose gradient buffer node `q`'s gradient is (views share their input's).
    fn grad_node(&self, mut q: NodeId) -> NodeId {
        while matches!(self.graph.nodes[q].op, Op::Flatten(_)) {
            q = self.graph.nodes[q].inputs[0];
        }
        q
    }

    /// Where the gradient of node `q` goes and whether to accumulate into it (another
    /// consumer wrote it already); `None` for the network input, whose gradient no one needs.
    pub fn grad_target(&mut self, q: NodeId) -> Result<Option<(Arg, bool)>> {
        let q = self.grad_node(q);
        if q == 0 {
            return Ok(None);
        }
        let elems = self.numel(q)?;
        let name = &self.graph.nodes[q].name;
        let id =
            *self.grads[q].get_or_insert_with(|| self.prog.buffer(format!("{name} grad"), elems));
        let acc = std::mem::replace(&mut self.grad_written[q], true);
        Ok(Some((Arg::planned(id, elems), acc)))
    }

    /// The gradient of node `i`'s output, if anything wrote it.
    pub fn grad(&self, i: NodeId) -> Result<Option<Arg>> {
        let q = self.grad_node(i);
        match self.grads[q] {
            Some(id) if self.grad_written[q] => Ok(Some(Arg::planned(id, self.numel(q)?))),
            _ => Ok(None),
        }
    }

    /// Node `i`'s resident parameter `suffix` as one argument (an error if it is split).
    pub fn param(&self, i: NodeId, suffix: &str) -> Result<Arg> {
        let p = self.params.of(self.graph, i, suffix)?;
        match p.chunks.as_slice() {
            [one] => Ok(Arg::whole(one)),
            _ => Err(Error::shape(
                &self.graph.nodes[i].name,
                format!("parameter `{suffix}` is split over several buffers; only linear layers take split weights"),
            )),
        }
    }

    /// Node `i`'s resident parameter `suffix` as its row chunks.
    pub fn param_chunks(&self, i: NodeId, suffix: &str) -> Result<Vec<Arg>> {
        let p = self.params.of(self.graph, i, suffix)?;
        Ok(p.chunks.iter().map(Arg::whole).collect())
    }

    /// Whether node `i`'s resident parameter `suffix` is stored as halves.
    pub fn param_is_half(&self, i: NodeId, suffix: &str) -> Result<bool> {
        Ok(self.params.of(self.graph, i, suffix)?.half)
    }

    /// Planned gradient buffers of parameter `suffix` of node `i`, one per chunk of the
    /// resident parameter; its SGD update reads them after the node's backward.
    pub fn param_grad(&mut self, i: NodeId, suffix: &str) -> Result<Vec<Arg>> {
        let key = format!("{}.{suffix}", self.graph.nodes[i].name);
        let lens: Vec<usize> = self
            .params
            .get(&key)?
            .chunks
            .iter()
            .map(|b| (b.size() / 4) as usize)
            .collect();
        let args: Vec<Arg> = lens
            .iter()
            .enumerate()
            .map(|(k, &n)| Arg::planned(self.prog.buffer(format!("{key} grad[{k}]"), n), n))
            .collect();
        self.param_grads.insert(key, args.clone());
        Ok(args)
    }

    /// Appends calls to node `i`.
    pub fn push(&mut self, i: NodeId, calls: Vec<Call>) {
        self.prog.push(i, calls);
    }

    /// The training set-up, or an error naming `what` (a training-only lowering was asked
    /// for in an inference program).
    pub fn train_setup(&self, what: &str) -> Result<&'a TrainSetup> {
        self.train
            .ok_or_else(|| Error::InvalidArgument(format!("{what} needs a training program")))
    }

    /// Makes the model's input a device-side conversion: a new f32 buffer the host writes
    /// (returned; live for the first call only, so its slot is shared afterwards) and, before
    /// every other call, `cast::from_f32` into the input's value. Called before
    /// [`Program::halve_activations`], which then stores that value as halves: an f16 pass
    /// uploads its input as f32 and rounds it on the GPU, not value by value on the host.
    pub fn input_from_f32(&mut self) -> Result<BufId> {
        let n = self.numel(0)?;
        let raw = self
            .prog
            .buffer(format!("{} f32 input", self.graph.nodes[0].name), n);
        let args = super::kernels::cast::CastArgs {
            x: Arg::planned(raw, n),
            out: self.value(0)?,
        };
        let call = super::kernels::cast::from_f32(self.ctx, &self.graph.nodes[0].name, n, args)?;
        self.prog.prepend(0, call);
        Ok(raw)
    }

    /// Lowers the forward pass (inference or training, as the lowering was made).
    pub fn forward(&mut self) -> Result<()> {
        for i in 1..self.graph.nodes.len() {
            if !self.is_stored(i) {
                continue;
            }
            let node = &self.graph.nodes[i];
            let calls = match &node.op {
                Op::Input(_) | Op::Flatten(_) => Vec::new(),
                Op::Conv2d(s) => conv::forward_conv2d(self, i, s)?,
                Op::GroupedConvTable(t) => conv::forward_table(self, i, t)?,
                Op::FlgcConv2d(s) => conv::forward_flgc(self, i, s)?,
                Op::BatchNorm(b) => layers::forward_batch_norm(self, i, b)?,
                Op::Activation(a) => layers::forward_activation(self, i, *a)?,
                Op::MaxPool(_) | Op::AvgPool(_) | Op::AdaptiveAvgPool(_) => {
                    layers::forward_pool(self, i)?
                }
                Op::Linear(lin) => layers::forward_linear(self, i, lin)?,
                Op::Add(_) => layers::forward_add(self, i)?,
                Op::Dropout(d) => layers::forward_dropout(self, i, d.p)?,
                Op::Softmax(_) => layers::forward_softmax(self, i)?,
                Op::Gather(g) => layers::forward_gather(self, i, &g.indices)?,
                Op::Concat(_) => layers::forward_concat(self, i)?,
                Op::Mul(_) => layers::forward_mul(self, i)?,
            };
            self.push(i, calls);
        }
        let out = self.value_id(self.graph.output);
        self.prog.pin(out);
        Ok(())
    }

    /// Lowers the backward pass and each node's SGD update, from the output gradient that the
    /// loss wrote into [`Lowering::grad_target`]`(graph.output)`.
    pub fn backward(&mut self) -> Result<()> {
        for i in (1..self.graph.nodes.len()).rev() {
            let Some(gy) = self.grad(i)? else { continue };
            let node = &self.graph.nodes[i];
            let calls = match &node.op {
                Op::Input(_) | Op::Flatten(_) => Vec::new(),
                Op::Conv2d(s) => conv::backward_conv2d(self, i, s, &gy)?,
                Op::FlgcConv2d(s) => conv::backward_flgc(self, i, s, &gy)?,
                Op::BatchNorm(_) => layers::backward_batch_norm(self, i, &gy)?,
                Op::Activation(a) => layers::backward_activation(self, i, *a, &gy)?,
                Op::MaxPool(_) | Op::AvgPool(_) | Op::AdaptiveAvgPool(_) => {
                    layers::backward_pool(self, i, &gy)?
                }
                Op::Linear(lin) => layers::backward_linear(self, i, lin, &gy)?,
                Op::Add(_) => layers::backward_add(self, i, &gy)?,
                Op::Dropout(_) => layers::backward_dropout(self, i, &gy)?,
                Op::GroupedConvTable(_)
                | Op::Gather(_)
                | Op::Softmax(_)
                | Op::Concat(_)
                | Op::Mul(_) => {
                    return Err(Error::shape(
                        &node.name,
                        format!(
                            "{} cannot be trained on the GPU; train the dense/FLGC form \
                             (or use --device cpu)",
                            node.op.kind()
                        ),
                    ))
                }
            };
            self.push(i, calls);
            let sgd = self.sgd(i)?;
            self.push(i, sgd);
        }
        Ok(())
    }

    /// The SGD updates of node `i`'s trainable parameters, from their planned gradients.
    fn sgd(&mut self, i: NodeId) -> Result<Vec<Call>> {
        let setup = self.train_setup("SGD")?;
        let name = &self.graph.nodes[i].name;
        let mut calls = Vec::new();
        for p in self.graph.nodes[i].op.def().params() {
            let key = format!("{name}.{}", p.suffix);
            let Some(grads) = self.param_grads.remove(&key) else {
                continue;
            };
            let param = self.params.get(&key)?;
            let state = param.train.as_ref().ok_or_else(|| Error::Weights {
                key: key.clone(),
                msg: "a gradient for a tensor that is not trained".into(),
            })?;
            for (k, g) in grads.iter().enumerate() {
                let len = g.len as usize;
                let args = super::kernels::optim::SgdArgs {
                    grad: g.clone(),
                    hyper: match crate::optim::is_selection_param(&key) {
                        true => Arg::prefix(&setup.hyper_selection, 1),
                        false => Arg::prefix(&setup.hyper, 1),
                    },
                    param: Arg::whole(&param.chunks[k]),
                    velocity: Arg::whole(&state.velocity[k]),
                };
                let label = format!("{key} sgd");
                calls.push(super::kernels::optim::sgd(
                    self.ctx,
                    &label,
                    (len, &setup.sgd, state.decay),
                    args,
                )?);
            }
        }
        Ok(calls)
    }
}
