//! Training on the GPU: the same step as [`Trainer`](super::Trainer) (training forward, softmax
//! cross-entropy, backward, BN running statistics, SGD with momentum and weight decay), lowered
//! by the same [`crate::gpu::lower`] as inference and recorded as **one encoder and one
//! compute pass per step**; the per-sample losses and hits (`2·B` floats) are copied out in
//! the same submit.
//!
//! Everything that lives across steps stays on the device: parameters, the momentum buffers
//! and the BN running statistics. Per batch size, a step program holds the pre-bound calls;
//! activations, gradients (parameter gradients included: each lives from its node's backward
//! to its SGD update, which follows at once) and scratch share lifetime-planned buffers. The
//! learning rate and the dropout seed are small buffers rewritten before each submit.
//!
//! Evaluation exports the current weights and runs the inference executor
//! ([`Runtime::load_graph`](crate::Runtime::load_graph), BN folded, FLGC re-ordered), so what is
//! measured is what a user deploys.

use super::data::Dataset;
use super::run::{evaluate, StepStats, Train, TrainConfig};
use crate::error::{Error, Result};
use crate::gpu::choice::KernelChoice;
use crate::gpu::kernels::loss::{self, LossArgs};
use crate::gpu::kernels::Arg;
use crate::gpu::lower::{Lowering, ParamStore, TrainSetup};
use crate::gpu::program::{Instance, MemoryPlan};
use crate::gpu::{BufId, GpuContext};
use crate::graph::{Graph, Op};
use crate::runtime::{LoadOptions, Runtime};
use crate::tensor::Tensor;
use crate::weights::Weights;
use std::collections::HashMap;
use std::sync::Arc;

/// Everything one training step at a given batch size needs, built once.
struct StepPlan {
    instance: Instance,
    input: BufId,
    labels: wgpu::Buffer,
    per_sample: wgpu::Buffer,
    staging: wgpu::Buffer,
}

/// Trains a graph on a GPU. Same semantics as [`Trainer`](super::Trainer) except dropout masks
/// (a counter-based hash on the device instead of the CPU generator).
pub struct GpuTrainer {
    ctx: Arc<GpuContext>,
    graph: Graph,
    config: TrainConfig,
    params: ParamStore,
    setup: TrainSetup,
    plans: HashMap<usize, StepPlan>,
    lr: f32,
    steps: u64,
    choice: Option<KernelChoice>,
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

impl GpuTrainer {
    /// Uploads `weights` (checked against `graph`) and zeroed momentum buffers.
    pub fn new(
        ctx: Arc<GpuContext>,
        graph: Graph,
        weights: Weights,
        config: TrainConfig,
    ) -> Result<Self> {
        if graph.output_shape().len() != 1 {
            return Err(Error::shape(
                &graph.name,
                format!(
                    "the output must be flat logits [K], got {:?}",
                    graph.output_shape()
                ),
            ));
        }
        for node in &graph.nodes {
            if matches!(
                node.op,
                Op::GroupedConvTable(_) | Op::Gather(_) | Op::Softmax(_)
            ) {
                return Err(Error::shape(
                    &node.name,
                    format!(
                        "{} cannot be trained on the GPU; train the dense/FLGC form (or use --device cpu)",
                        node.op.kind()
                    ),
                ));
            }
        }
        config.validate()?;
        let params = ParamStore::for_training(&ctx, &graph, &weights)?;
        let setup = TrainSetup {
            sgd: config.sgd,
            bn_momentum: config.bn_momentum,
            hyper: ctx.upload("lr", &[config.lr])?,
            hyper_selection: ctx
                .upload("selection lr", &[config.lr * config.selection_lr_scale])?,
            seed: ctx.storage_buffer("dropout seed", 8)?,
        };
        Ok(Self {
            ctx,
            graph,
            lr: config.lr,
            config,
            params,
            setup,
            plans: HashMap::new(),
            steps: 0,
            choice: None,
        })
    }

    /// Forces the forward kernels of the named layers (instead of the kernel choices cached
    /// by `gconv tune`, which are used by default unless `GCONV_TUNE=off`); an error naming
    /// the layer when a forced kernel cannot run it comes from the first step.
    pub fn with_choice(mut self, choice: KernelChoice) -> Self {
        self.choice = Some(choice);
        self.plans.clear();
        self
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The device context.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    fn read_chunks(&self, chunks: &[wgpu::Buffer], shape: &[usize]) -> Result<Tensor> {
        let mut data = Vec::with_capacity(shape.iter().product());
        for c in chunks {
            data.extend(self.ctx.read_f32(c, 0, (c.size() / 4) as usize)?);
        }
        Tensor::new(shape.to_vec(), data)
    }

    /// Reads the current weights (parameters and BN running statistics) back from the device.
    pub fn read_weights(&self) -> Result<Weights> {
        let mut w = Weights::new();
        for (k, p) in self.params.tensors() {
            w.insert(k.clone(), self.read_chunks(&p.chunks, &p.shape)?);
        }
        Ok(w)
    }

    /// Reads the momentum buffers, keyed `"{param}.momentum"` like [`Sgd::state`](super::Sgd::state).
    pub fn read_optimizer_state(&self) -> Result<Weights> {
        let mut w = Weights::new();
        for (k, p) in self.params.tensors() {
            if let Some(t) = &p.train {
                w.insert(
                    format!("{k}.momentum"),
                    self.read_chunks(&t.velocity, &p.shape)?,
                );
            }
        }
        Ok(w)
    }

    /// Uploads momentum buffers (from a checkpoint); a missing key leaves that buffer as is,
    /// a wrong shape is an error.
    pub fn write_optimizer_state(&mut self, state: &Weights) -> Result<()> {
        for (k, p) in self.params.tensors() {
            let (Some(t), Some(m)) = (&p.train, state.get(&format!("{k}.momentum"))) else {
                continue;
            };
            if m.shape() != p.shape.as_slice() {
                return Err(Error::Weights {
                    key: format!("{k}.momentum"),
                    msg: format!(
                        "momentum buffer of shape {:?} for a parameter of shape {:?}",
                        m.shape(),
                        p.shape
                    ),
                });
            }
            let mut at = 0;
            for v in &t.velocity {
                let n = (v.size() / 4) as usize;
                self.ctx
                    .queue
                    .write_buffer(v, 0, bytemuck::cast_slice(&m.data()[at..at + n]));
                at += n;
            }
        }
        Ok(())
    }

    /// Lowers one training step at batch size `b` (forward, loss, backward and SGD).
    fn lower_step(&self, b: usize) -> Result<(Lowering<'_>, BufId, [wgpu::Buffer; 2])> {
        self.config.validate()?;
        let ctx = &*self.ctx;
        let mut l = Lowering::new(ctx, &self.graph, b, &self.params, Some(&self.setup))?;
        l.choice = match &self.choice {
            Some(c) => c.clone(),
            None => crate::gpu::tune::cached_choice(ctx, &self.graph, b, true),
        };
        l.forward()?;
        let out = self.graph.output;
        let classes = out_len(&self.graph);
        let labels = ctx.storage_buffer("labels", (b * 4) as u64)?;
        let per_sample = ctx.storage_buffer("per-sample loss", (b * 8) as u64)?;
        let (grad_logits, _) = l
            .grad_target(out)?
            .ok_or_else(|| Error::shape(&self.graph.name, "the output is the input"))?;
        let args = LossArgs {
            logits: l.value(out)?,
            labels: Arg::whole(&labels),
            grad_logits,
            per_sample: Arg::whole(&per_sample),
        };
        let call = loss::softmax_cross_entropy(ctx, "loss", [b, classes], args)?;
        l.push(out, vec![call]);
        l.backward()?;
        let input = l.value_id(0);
        Ok((l, input, [labels, per_sample]))
    }

    fn plan(&mut self, b: usize) -> Result<&StepPlan> {
        if !self.plans.contains_key(&b) {
            let (l, input, [labels, per_sample]) = self.lower_step(b)?;
            let instance = l.prog.instantiate(&self.ctx)?;
            let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("per-sample read-back"),
                size: (b * 8) as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let plan = StepPlan {
                instance,
                input,
                labels,
                per_sample,
                staging,
            };
            self.plans.insert(b, plan);
        }
        Ok(&self.plans[&b])
    }

    /// One SGD step: one encoder and one submit, then a read-back of the `2·B` per-sample
    /// loss/hit values.
    fn step(&mut self, images: &Tensor, labels: &[usize]) -> Result<StepStats> {
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
        let seed = self
            .config
            .seed
            .wrapping_mul(0x2545_f491_4f6c_dd1d)
            .wrapping_add(self.steps);
        let (lr, ctx) = (self.lr, self.ctx.clone());
        let (hyper, seed_buf) = (self.setup.hyper.clone(), self.setup.seed.clone());
        let hyper_selection = self.setup.hyper_selection.clone();
        let lr_selection = lr * self.config.selection_lr_scale;
        let plan = self.plan(b)?;
        let q = &ctx.queue;
        q.write_buffer(
            plan.instance.buffer(plan.input),
            0,
            bytemuck::cast_slice(images.data()),
        );
        let lab: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        q.write_buffer(&plan.labels, 0, bytemuck::cast_slice(&lab));
        q.write_buffer(&hyper, 0, bytemuck::cast_slice(&[lr]));
        q.write_buffer(&hyper_selection, 0, bytemuck::cast_slice(&[lr_selection]));
        q.write_buffer(
            &seed_buf,
            0,
            bytemuck::cast_slice(&[seed as u32, (seed >> 32) as u32]),
        );
        let ps = run_and_read(&ctx, plan)?;
        let loss = ps.iter().step_by(2).map(|&v| v as f64).sum::<f64>() / b as f64;
        let correct = ps.iter().skip(1).step_by(2).filter(|&&v| v > 0.5).count();
        self.steps += 1;
        Ok(StepStats {
            loss: loss as f32,
            correct,
        })
    }

    /// Runs two training steps on the batch — a normal one (it builds the plan and warms the
    /// pipelines), then one that submits and waits for every dispatch separately — and
    /// returns the wall time of each of the second's dispatches (label, seconds): a profile of
    /// where a step's time goes. Both steps update the weights, as training does (profile a
    /// copy to keep them); slower than a real step (one submit per dispatch).
    pub fn profile_step(
        &mut self,
        images: &Tensor,
        labels: &[usize],
    ) -> Result<Vec<(String, f64)>> {
        // A normal step first builds the plan and warms the pipelines.
        self.step(images, labels)?;
        let b = labels.len();
        let plan = &self.plans[&b];
        let mut out = Vec::with_capacity(plan.instance.dispatches.len());
        for d in &plan.instance.dispatches {
            let t0 = std::time::Instant::now();
            crate::gpu::run_dispatches(&self.ctx, std::slice::from_ref(d))?;
            out.push((d.label.clone(), t0.elapsed().as_secs_f64()));
        }
        self.steps += 1;
        Ok(out)
    }
}

/// Records the step's dispatches and the copy of the per-sample results into one encoder,
/// submits once, and reads the `2·B` values back.
fn run_and_read(ctx: &GpuContext, plan: &StepPlan) -> Result<Vec<f32>> {
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        plan.instance.record(&mut pass);
    }
    let bytes = plan.staging.size();
    enc.copy_buffer_to_buffer(&plan.per_sample, 0, &plan.staging, 0, bytes);
    ctx.queue.submit([enc.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    plan.staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("training step: {e}")))?;
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(Error::Gpu(format!("training step: {e}")));
    }
    rx.recv()
        .map_err(|e| Error::Gpu(format!("training step read-back: {e}")))?
        .map_err(|e| Error::Gpu(format!("training step read-back: {e}")))?;
    let out = {
        let view = plan
            .staging
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu(format!("training step read-back: {e:?}")))?;
        bytemuck::cast_slice::<u8, f32>(&view).to_vec()
    };
    plan.staging.unmap();
    Ok(out)
}

fn out_len(g: &Graph) -> usize {
    g.output_shape().iter().product()
}

impl Train for GpuTrainer {
    fn graph(&self) -> &Graph {
        &self.graph
    }
    fn config(&self) -> &TrainConfig {
        &self.config
    }
    fn device(&self) -> String {
        format!("GPU {}", self.ctx.describe())
    }
    fn lr(&self) -> f32 {
        self.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
    fn train_step(&mut self, images: &Tensor, labels: &[usize]) -> Result<StepStats> {
        self.step(images, labels)
    }
    /// Through the inference executor on the same device with the current weights (BN
    /// folded, FLGC compiled by index re-ordering): what a user deploys.
    fn predict(&mut self, images: &Tensor) -> Result<Tensor> {
        self.inference_model()?.run(images)
    }
    fn weights(&self) -> Result<Weights> {
        self.read_weights()
    }
    fn optimizer_state(&self) -> Result<Weights> {
        self.read_optimizer_state()
    }
    fn load_optimizer_state(&mut self, state: &Weights) -> Result<()> {
        self.write_optimizer_state(state)
    }
    fn memory_plan(&self, batch: usize) -> Result<Option<MemoryPlan>> {
        Ok(Some(self.lower_step(batch)?.0.prog.memory_plan()))
    }
    /// One inference model for the whole data set (compiled once from the current weights).
    fn evaluate_dataset(&mut self, data: &Dataset, batch_size: usize) -> Result<(f32, usize)> {
        let mut model = self.inference_model()?;
        evaluate(&mut |x| model.run(x), data, batch_size)
    }
}

impl GpuTrainer {
    /// The current weights compiled for inference on this trainer's device.
    fn inference_model(&self) -> Result<crate::Model> {
        let rt = Runtime::with_context(self.ctx.clone());
        rt.load_graph(
            self.graph.clone(),
            self.read_weights()?,
            &LoadOptions::default(),
        )
    }
}
