//! The GPU executor: the graph lowered once per batch size ([`crate::gpu::lower`]) into a
//! program whose activations share lifetime-planned buffers, run as one encoder, one compute
//! pass and one submit (the only read-back is the output, at the end).
//!
//! Load-time work ([`GpuModel::new`]): weights uploaded once in the form the chosen kernels
//! read ([`ParamStore::for_inference`]: planned and packed for `conv_fast` or `conv_tiled`,
//! BN as an affine map, linear weights split by rows beyond a storage binding). Per batch size: views and
//! fused activations resolved, calls lowered, buffers planned, every call bound once.

use super::choice::KernelChoice;
use super::context::GpuContext;
use super::launch::{BufId, Dispatch};
use super::lower::{Lowering, ParamStore};
use super::pass_stages::{Laps, PassStages};
use super::precision::{check_f16_range, f32_activation_reason, unpack_halves, Precision};
use super::program::Instance;
use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId};
use crate::tensor::Tensor;
use crate::weights::Weights;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

pub use crate::plan::PlanReport;

mod chunks;

struct Prepared {
    batch: usize,
    instance: Instance,
    /// The buffer the host writes the input to: the input's value, or (halves) the f32
    /// buffer the pass's first call rounds into it.
    input: BufId,
    output: BufId,
    output_len: usize,
    staging: wgpu::Buffer,
    /// Activations stored as f16 (the calls run their half-activation twins).
    half: bool,
    /// Why activations stay f32 although the model was loaded with `Precision::F16`.
    f32_reason: Option<String>,
}

/// A graph compiled for the GPU. Build it with [`GpuModel::new`]; run it with [`GpuModel::run`].
pub struct GpuModel {
    ctx: Arc<GpuContext>,
    graph: Graph,
    params: ParamStore,
    choice: KernelChoice,
    prepared: Option<Prepared>,
    stages: Option<PassStages>,
    /// `(batch, chunk)`: a batch found too large to bind whole and the chunk it runs in, so
    /// its later passes go straight to chunks instead of lowering the whole batch again.
    chunked: Option<(usize, usize)>,
    /// Times the graph was lowered ([`GpuModel::lowerings`]).
    lowerings: usize,
}

/// Per-layer timings of one forward pass.
#[derive(Clone, Debug, Serialize)]
pub struct LayerTimes {
    /// How the times were taken: `"timestamp-query"` or `"submit-and-wait"`.
    pub method: &'static str,
    /// `(node name, op kind, seconds)` per dispatched node, in graph order.
    pub layers: Vec<(String, &'static str, f64)>,
}

impl GpuModel {
    /// Uploads the weights. FLGC layers must have been materialised or exported first, and BN
    /// folding is recommended (see [`crate::compile`]).
    pub fn new(ctx: Arc<GpuContext>, graph: Graph, weights: &Weights) -> Result<Self> {
        Self::with_choice(ctx, graph, weights, KernelChoice::default())
    }

    /// Like [`GpuModel::new`], with the kernels of the layers named in `choice` forced (an
    /// error naming the layer when a forced kernel cannot run it); e.g. for an autotuner
    /// timing the [`crate::gpu::tune::candidates`].
    pub fn with_choice(
        ctx: Arc<GpuContext>,
        graph: Graph,
        weights: &Weights,
        choice: KernelChoice,
    ) -> Result<Self> {
        let params = ParamStore::for_inference_with(&ctx, &graph, weights, &choice)?;
        Ok(Self {
            ctx,
            graph,
            params,
            choice,
            prepared: None,
            stages: None,
            chunked: None,
            lowerings: 0,
        })
    }

    /// The graph being run (after the load-time passes).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// `[convolutions, those whose weights are stored as f16]` (the second is 0 unless the
    /// model was loaded with [`crate::gpu::Precision::F16`] and its kernels honour it).
    pub fn f16_convs(&self) -> [usize; 2] {
        self.params.f16_convs()
    }

    /// `[fully connected layers, those storing f16 weights]` (halves when the model was
    /// loaded with [`crate::gpu::Precision::F16`] and the layer's kernel reads them).
    pub fn f16_linears(&self) -> [usize; 2] {
        self.params.f16_linears()
    }

    /// The layers whose weights are stored as halves (what a layer's bytes count).
    pub fn half_weight_layers(&self) -> Vec<String> {
        let nodes = self.graph.nodes.iter().enumerate();
        nodes
            .filter(|(i, n)| self.params.stores_halves(*i, &n.name))
            .map(|(_, n)| n.name.clone())
            .collect()
    }

    /// The GPU context.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// The buffer plan for `batch` (compiling it if needed).
    pub fn plan_report(&mut self, batch: usize) -> Result<PlanReport> {
        self.prepare(batch)?;
        let p = self.prepared.as_ref().expect("prepared");
        let m = &p.instance.memory;
        Ok(PlanReport {
            batch,
            values: m.values,
            slots: m.slots,
            planned_bytes: m.planned_bytes,
            naive_bytes: m.naive_bytes,
            largest_bytes: m.largest_bytes,
            weight_bytes: self.params.bytes(),
            dispatches: p.instance.dispatches.len(),
        })
    }

    /// The label of every dispatch of a forward pass at `batch` (layer name and
    /// `[shader::entry]`), in order: which kernels run.
    pub fn dispatch_labels(&mut self, batch: usize) -> Result<Vec<String>> {
        self.prepare(batch)?;
        let p = self.prepared.as_ref().expect("prepared");
        Ok(p.instance
            .dispatches
            .iter()
            .map(|d| d.label.clone())
            .collect())
    }

    /// The kernels forced on this model (by the caller or the tuning cache).
    pub fn choice(&self) -> &KernelChoice {
        &self.choice
    }

    /// Which kernel each dispatching node runs at `batch`, in graph order: `(node name,
    /// kernel)`, read from the calls the lowering emitted (so it is what runs, forced or
    /// chosen). A kernel is named by its entry point (`conv_co8`, `conv_pk8`) or as
    /// `shader[entry]` (`conv_fast[conv_m8s1r2p16_k3x3s1x1d1x1]`, `gemv[gemm_r4_b1]`);
    /// the input padding and weight packing helpers are left out, and a node with several
    /// kernels lists them joined by `+`.
    pub fn kernels(&mut self, batch: usize) -> Result<Vec<(String, String)>> {
        self.prepare(batch)?;
        let p = self.prepared.as_ref().expect("prepared");
        let mut out: Vec<(NodeId, Vec<String>, Vec<String>)> = Vec::new();
        for (d, &nid) in p.instance.dispatches.iter().zip(&p.instance.dispatch_node) {
            let name = kernel_name(&d.label);
            if out.last().is_none_or(|l| l.0 != nid) {
                out.push((nid, Vec::new(), Vec::new()));
            }
            let (_, main, helpers) = out.last_mut().expect("pushed");
            let list = if is_helper(&name) { helpers } else { main };
            if !list.contains(&name) {
                list.push(name);
            }
        }
        Ok(out
            .into_iter()
            .map(|(nid, main, helpers)| {
                let names = if main.is_empty() { helpers } else { main };
                (self.graph.nodes[nid].name.clone(), names.join("+"))
            })
            .collect())
    }

    fn prepare(&mut self, batch: usize) -> Result<()> {
        if self.prepared.as_ref().is_some_and(|p| p.batch == batch) {
            return Ok(());
        }
        self.prepared = None; // free the old buffers first
        self.lowerings += 1;
        let mut l = Lowering::new(&self.ctx, &self.graph, batch, &self.params, None)?;
        l.choice = self.choice.clone();
        l.forward()?;
        let f32_reason = f32_activation_reason(&self.ctx, self.choice.precision(), &l.prog);
        let half = self.choice.precision() == Precision::F16 && f32_reason.is_none();
        let mut input = l.value_id(0);
        if half {
            input = l.input_from_f32()?;
            l.prog.halve_activations()?;
        }
        let output = l.value_id(self.graph.output);
        let output_len = l.numel(self.graph.output)?;
        let instance = l.prog.instantiate(&self.ctx)?;
        let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("output staging"),
            size: 4 * output_len as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.prepared = Some(Prepared {
            batch,
            instance,
            input,
            output,
            output_len,
            staging,
            half,
            f32_reason,
        });
        Ok(())
    }

    /// The storage precision of the activations at `batch` (compiling it if needed) and,
    /// when the model was loaded with [`Precision::F16`] but they stay f32, why
    /// ([`crate::gpu::precision`]).
    pub fn activation_precision(&mut self, batch: usize) -> Result<(Precision, Option<String>)> {
        self.prepare(batch)?;
        let p = self.prepared.as_ref().expect("prepared");
        let precision = if p.half {
            Precision::F16
        } else {
            Precision::F32
        };
        Ok((precision, p.f32_reason.clone()))
    }

    /// Checks the input, prepares its batch size and writes it to the device.
    fn upload_input(&mut self, input: &Tensor) -> Result<()> {
        let [c, h, w] = self.graph.input_shape();
        let [b, ic, ih, iw] = input.dims4("model input")?;
        if [ic, ih, iw] != [c, h, w] || b == 0 {
            return Err(Error::tensor_shape(
                format!("{} input", self.graph.name),
                format!("[B ≥ 1, {c}, {h}, {w}]"),
                input.shape(),
            ));
        }
        self.prepare(b)?;
        let p = self.prepared.as_ref().expect("prepared");
        if p.half {
            // Rounded to halves by the pass's first call; refused here if it cannot be.
            check_f16_range(input.data(), &format!("{} input", self.graph.name))?;
        }
        let buf = p.instance.buffer(p.input);
        self.ctx
            .queue
            .write_buffer(buf, 0, bytemuck::cast_slice(input.data()));
        Ok(())
    }

    fn wait(&self) -> Result<()> {
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))
    }

    /// Runs one forward pass: upload, one encoder with every dispatch, copy of the output,
    /// one submit, one read-back. A batch whose activations exceed what the adapter can bind
    /// runs in the largest chunks that fit (halving), one pass per chunk.
    pub fn run(&mut self, input: &Tensor) -> Result<Tensor> {
        if self.known_chunked(input) {
            return self.run_in_chunks(input);
        }
        match self.run_pass(input) {
            Err(Error::AdapterLimit { .. }) if input.shape().first().is_some_and(|&b| b > 1) => {
                self.run_in_chunks(input)
            }
            r => r,
        }
    }

    /// One forward pass of the whole batch.
    fn run_pass(&mut self, input: &Tensor) -> Result<Tensor> {
        let mut laps = Laps::start();
        let bytes = self.submit_pass(input, true, &mut laps)?;
        let p = self.prepared.as_ref().expect("prepared");
        let raw = self.ctx.map_read(&p.staging, bytes)?;
        // A validation error of the submit (outside any error scope) surfaces here.
        self.ctx.check()?;
        let mut shape = vec![p.batch];
        shape.extend_from_slice(self.graph.output_shape());
        let data = if p.half {
            unpack_halves(&raw, p.output_len)
        } else {
            bytemuck::cast_slice(&raw).to_vec()
        };
        let t = Tensor::new(shape, data);
        if let Some(s) = self.stages.as_mut() {
            s.read_back = laps.lap();
        }
        t
    }

    /// Uploads `input`, records every dispatch (and the output's copy to the staging buffer
    /// when `copy_out`; its bytes are returned) in one encoder, submits and waits for the
    /// GPU, keeping each stage's time ([`GpuModel::last_stages`]).
    fn submit_pass(&mut self, input: &Tensor, copy_out: bool, laps: &mut Laps) -> Result<u64> {
        self.upload_input(input)?;
        let upload = laps.lap();
        let p = self.prepared.as_ref().expect("prepared");
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            p.instance.record(&mut pass);
        }
        // Halves: 2 bytes a value, the copy rounded up to whole words.
        let bytes = if p.half {
            (2 * p.output_len as u64).next_multiple_of(4)
        } else {
            4 * p.output_len as u64
        };
        if copy_out {
            enc.copy_buffer_to_buffer(p.instance.buffer(p.output), 0, &p.staging, 0, bytes);
        }
        let commands = enc.finish();
        let encode = laps.lap();
        self.ctx.queue.submit([commands]);
        let submit = laps.lap();
        let dispatches = p.instance.dispatches.len();
        self.wait()?;
        self.stages = Some(PassStages {
            upload,
            encode,
            submit,
            wait: laps.lap(),
            read_back: 0.0,
            dispatches,
        });
        Ok(bytes)
    }

    /// Where the last forward pass's time went ([`run`](Self::run) or
    /// [`run_no_readback`](Self::run_no_readback)); `None` before the first.
    pub fn last_stages(&self) -> Option<PassStages> {
        self.stages
    }

    /// Runs a forward pass without reading the output back (for timing whole passes):
    /// returns once the GPU has finished.
    /// A batch that does not fit runs in chunks, as [`run`](Self::run)'s does.
    pub fn run_no_readback(&mut self, input: &Tensor) -> Result<()> {
        if self.known_chunked(input) {
            return self.submit_in_chunks(input);
        }
        match self.submit_pass(input, false, &mut Laps::start()) {
            Err(Error::AdapterLimit { .. }) if input.shape().first().is_some_and(|&b| b > 1) => {
                self.submit_in_chunks(input)
            }
            r => r.map(|_| ()),
        }
    }

    /// Per-layer GPU time of one forward pass. With `TIMESTAMP_QUERY`, every node's dispatches
    /// get a compute pass with begin/end timestamps, all in one submit; otherwise each node is
    /// submitted and waited for on its own, timed on the host (labelled as such).
    pub fn time_layers(&mut self, input: &Tensor) -> Result<LayerTimes> {
        self.upload_input(input)?;
        let p = self.prepared.as_ref().expect("prepared");
        // Group dispatches by node.
        let mut groups: Vec<(NodeId, Vec<&Dispatch>)> = Vec::new();
        for (d, &nid) in p.instance.dispatches.iter().zip(&p.instance.dispatch_node) {
            match groups.last_mut() {
                Some((last, v)) if *last == nid => v.push(d),
                _ => groups.push((nid, vec![d])),
            }
        }
        let label = |nid: NodeId| {
            (
                self.graph.nodes[nid].name.clone(),
                self.graph.nodes[nid].op.kind(),
            )
        };
        if self.ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) && groups.len() * 2 <= 4096 {
            let count = (groups.len() * 2) as u32;
            let qs = self.ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("layer timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            });
            let bytes = 8 * count as u64;
            let resolve = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let read = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps read"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut enc = self.ctx.device.create_command_encoder(&Default::default());
            for (k, (_, ds)) in groups.iter().enumerate() {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &qs,
                        beginning_of_pass_write_index: Some(2 * k as u32),
                        end_of_pass_write_index: Some(2 * k as u32 + 1),
                    }),
                });
                for d in ds {
                    d.record(&mut pass);
                }
            }
            enc.resolve_query_set(&qs, 0..count, &resolve, 0);
            enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, bytes);
            self.ctx.queue.submit([enc.finish()]);
            let raw = self.ctx.map_read(&read, bytes)?;
            let ticks: &[u64] = bytemuck::cast_slice(&raw);
            let period = self.ctx.queue.get_timestamp_period() as f64 * 1e-9;
            let layers = groups
                .iter()
                .enumerate()
                .map(|(k, (nid, _))| {
                    let (n, o) = label(*nid);
                    (
                        n,
                        o,
                        ticks[2 * k + 1].saturating_sub(ticks[2 * k]) as f64 * period,
                    )
                })
                .collect();
            return Ok(LayerTimes {
                method: "timestamp-query",
                layers,
            });
        }
        let mut layers = Vec::with_capacity(groups.len());
        for (nid, ds) in &groups {
            let t0 = Instant::now();
            let mut enc = self.ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                for d in ds {
                    d.record(&mut pass);
                }
            }
            self.ctx.queue.submit([enc.finish()]);
            self.wait()?;
            let (n, o) = label(*nid);
            layers.push((n, o, t0.elapsed().as_secs_f64()));
        }
        Ok(LayerTimes {
            method: "submit-and-wait",
            layers,
        })
    }
}

/// `layer [shader::entry]` → `entry` when it starts with the shader's name, else
/// `shader[entry]`.
fn kernel_name(label: &str) -> String {
    let Some(inner) = label
        .rsplit_once(" [")
        .and_then(|(_, r)| r.strip_suffix(']'))
    else {
        return label.to_string();
    };
    match inner.split_once("::") {
        Some((shader, entry)) if entry.starts_with(shader) => entry.to_string(),
        Some((shader, entry)) => format!("{shader}[{entry}]"),
        None => inner.to_string(),
    }
}

/// Input padding and weight packing, which run before a layer's kernel.
fn is_helper(kernel: &str) -> bool {
    let entry = kernel
        .split_once('[')
        .map_or(kernel, |(_, e)| e.trim_end_matches(']'));
    entry.starts_with("pad") || entry.starts_with("pack")
}
