//! The GPU executor: compiles a graph into prepared dispatches for one batch size, with
//! activations placed in lifetime-planned buffers, and runs a forward pass as one encoder,
//! one compute pass and one submit (the only read-back is the output, at the end).
//!
//! Compilation steps:
//! 1. *Aliases and fusion*: `flatten` and `dropout` are views of their input; a ReLU whose
//!    producer (conv, BN, add, linear) has no other consumer is fused into the producer's
//!    epilogue. (BN is folded into its conv beforehand by [`crate::graph::passes`].)
//! 2. *Buffer plan*: every remaining value gets a `[def, last_use]` lifetime; the
//!    [`BufferPlan`] shares slots between values that are never alive together.
//! 3. *Weights* are uploaded once, when the model is loaded; linear weights larger than the
//!    adapter's storage-binding limit are split by rows.
//! 4. *Dispatches* (pipeline + bind group + workgroup counts) are built once per batch size.

use super::context::{Dispatch, GpuContext, TensorRef};
use super::kernels::{conv, conv_tiled, elementwise, gather, linear, norm, pool, softmax};
use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId, Op};
use crate::plan::{Analysis, BufferPlan};
use crate::tensor::Tensor;
use crate::weights::Weights;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use wgpu::util::DeviceExt;

/// Weights of one node, resident on the GPU.
enum NodeParams {
    None,
    Conv {
        weight: wgpu::Buffer,
        bias: Option<wgpu::Buffer>,
    },
    /// Re-packed for the register-tiled kernel.
    Tiled(conv_tiled::PackedConvGpu),
    BatchNorm {
        scale_shift: wgpu::Buffer,
    },
    Linear {
        chunks: Vec<(wgpu::Buffer, usize)>,
        bias: Option<wgpu::Buffer>,
    },
    Gather {
        indices: wgpu::Buffer,
    },
}

/// How much activation memory the plan takes, against one buffer per activation.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PlanReport {
    /// Batch size the plan is for.
    pub batch: usize,
    /// Activation values after aliasing and fusion.
    pub values: usize,
    /// Buffers (slots) actually allocated.
    pub slots: usize,
    /// Sum of the slot sizes, bytes.
    pub planned_bytes: u64,
    /// Sum of all activation sizes (one buffer each), bytes.
    pub naive_bytes: u64,
    /// The largest single activation, bytes.
    pub largest_bytes: u64,
    /// Bytes of weights resident on the GPU.
    pub weight_bytes: u64,
    /// Dispatches per forward pass.
    pub dispatches: usize,
}

struct Prepared {
    batch: usize,
    slots: Vec<wgpu::Buffer>,
    dispatches: Vec<Dispatch>,
    /// Node each dispatch belongs to.
    dispatch_node: Vec<NodeId>,
    input_slot: usize,
    output_slot: usize,
    output_len: usize,
    staging: wgpu::Buffer,
    report: PlanReport,
}

/// A graph compiled for the GPU. Build it with [`GpuModel::new`]; run it with [`GpuModel::run`].
pub struct GpuModel {
    ctx: Arc<GpuContext>,
    graph: Graph,
    params: Vec<NodeParams>,
    value_of: Vec<NodeId>,
    fused_relu: Vec<bool>,
    weight_bytes: u64,
    prepared: Option<Prepared>,
}

/// Per-layer timings of one forward pass.
#[derive(Clone, Debug, Serialize)]
pub struct LayerTimes {
    /// How the times were taken: `"timestamp-query"` or `"submit-and-wait"`.
    pub method: &'static str,
    /// `(node name, op kind, seconds)` per dispatched node, in graph order.
    pub layers: Vec<(String, &'static str, f64)>,
}

/// Whether a convolution runs on the register-tiled kernel (≥ 4 filters per group);
/// depthwise and nearly-depthwise layers use the per-channel kernels of [`conv`].
fn use_tiled(s: &crate::graph::Conv2dSpec) -> bool {
    s.out_channels / s.groups >= 4
}

impl GpuModel {
    /// Uploads the weights and analyses the graph. FLGC layers must have been materialised
    /// or exported first, and BN folding is recommended (see [`crate::graph::passes`]).
    pub fn new(ctx: Arc<GpuContext>, graph: Graph, weights: &Weights) -> Result<Self> {
        weights.validate(&graph)?;
        // 1. aliases and fused ReLUs
        if let Some(n) = graph
            .nodes
            .iter()
            .find(|n| matches!(n.op, Op::FlgcConv2d(_)))
        {
            return Err(Error::shape(
                &n.name,
                "FLGC layers must be materialised (masked) or exported before GPU compilation",
            ));
        }
        let Analysis {
            value_of,
            fused_relu,
        } = Analysis::new(&graph);
        let n = graph.nodes.len();
        // 3. weights
        let mut params = Vec::with_capacity(n);
        let mut weight_bytes = 0u64;
        for node in &graph.nodes {
            let key = |s: &str| format!("{}.{s}", node.name);
            let up = |s: &str| -> Result<wgpu::Buffer> {
                ctx.upload(&key(s), weights.require(&key(s))?.data())
            };
            let p = match &node.op {
                Op::Conv2d(s) if use_tiled(s) => {
                    let w = weights.require(&key("weight"))?;
                    let packed = conv_tiled::pack_conv2d(s, w.data())?;
                    let bias = if s.bias {
                        Some(weights.require(&key("bias"))?.data())
                    } else {
                        None
                    };
                    NodeParams::Tiled(conv_tiled::upload(
                        &ctx,
                        &node.name,
                        &packed,
                        bias,
                        s.out_channels,
                    )?)
                }
                Op::GroupedConvTable(crate::ops::GroupedConvTable {
                    spec,
                    table,
                    in_index,
                    out_index,
                }) => {
                    let w = weights.require(&key("weight"))?;
                    let packed =
                        conv_tiled::pack_grouped_table(spec, table, in_index, out_index, w.data())?;
                    let bias = if spec.bias {
                        Some(weights.require(&key("bias"))?.data())
                    } else {
                        None
                    };
                    NodeParams::Tiled(conv_tiled::upload(
                        &ctx,
                        &node.name,
                        &packed,
                        bias,
                        spec.out_channels,
                    )?)
                }
                Op::Conv2d(s) => NodeParams::Conv {
                    weight: up("weight")?,
                    bias: if s.bias { Some(up("bias")?) } else { None },
                },
                Op::BatchNorm(crate::ops::BatchNorm { eps, channels }) => {
                    let get = |s: &str| weights.require(&key(s)).map(|t| t.data());
                    let (g, b, m, v) = (
                        get("weight")?,
                        get("bias")?,
                        get("running_mean")?,
                        get("running_var")?,
                    );
                    let mut ss = vec![0.0f32; 2 * channels];
                    for c in 0..*channels {
                        let sc = g[c] / (v[c] + eps).sqrt();
                        ss[c] = sc;
                        ss[channels + c] = b[c] - m[c] * sc;
                    }
                    NodeParams::BatchNorm {
                        scale_shift: ctx.upload(&key("scale_shift"), &ss)?,
                    }
                }
                Op::Linear(crate::ops::Linear {
                    in_features,
                    out_features,
                    bias,
                }) => {
                    let w = weights.require(&key("weight"))?;
                    NodeParams::Linear {
                        chunks: linear::upload_weight(
                            &ctx,
                            &key("weight"),
                            w.data(),
                            *out_features,
                            *in_features,
                        )?,
                        bias: if *bias { Some(up("bias")?) } else { None },
                    }
                }
                Op::Gather(crate::ops::Gather { indices }) => {
                    let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
                    NodeParams::Gather {
                        indices: ctx
                            .device
                            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                                label: Some(&key("indices")),
                                contents: bytemuck::cast_slice(&idx),
                                usage: wgpu::BufferUsages::STORAGE,
                            }),
                    }
                }
                _ => NodeParams::None,
            };
            weight_bytes += node
                .op
                .param_shapes()
                .iter()
                .map(|(_, shape)| 4 * shape.iter().product::<usize>() as u64)
                .sum::<u64>();
            params.push(p);
        }
        Ok(Self {
            ctx,
            graph,
            params,
            value_of,
            fused_relu,
            weight_bytes,
            prepared: None,
        })
    }

    /// The graph being run (after the load-time passes).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The GPU context.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// The buffer plan for `batch` (compiling it if needed).
    pub fn plan_report(&mut self, batch: usize) -> Result<PlanReport> {
        self.prepare(batch)?;
        Ok(self.prepared.as_ref().expect("prepared").report.clone())
    }

    fn prepare(&mut self, batch: usize) -> Result<()> {
        if batch == 0 {
            return Err(Error::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
        if self.prepared.as_ref().is_some_and(|p| p.batch == batch) {
            return Ok(());
        }
        self.prepared = None; // free the old buffers first
        let g = &self.graph;
        let n = g.nodes.len();
        let elems = |id: NodeId| batch * g.nodes[id].shape.iter().product::<usize>();
        // 2. lifetimes of the values
        let analysis = Analysis {
            value_of: self.value_of.clone(),
            fused_relu: self.fused_relu.clone(),
        };
        let values = analysis.values();
        let lives = analysis.lifetimes(g, batch);
        let out_v = self.value_of[g.output];
        let limit = self.ctx.limits.max_storage_buffer_binding_size;
        for l in &lives {
            if l.bytes > limit {
                let node = &g.nodes[l.def];
                return Err(Error::AdapterLimit {
                    layer: node.name.clone(),
                    tensor: format!(
                        "{} output (batch {batch}, shape {:?})",
                        node.name, node.shape
                    ),
                    needed: l.bytes,
                    limit_name: "max_storage_buffer_binding_size",
                    limit,
                });
            }
        }
        let plan = BufferPlan::new(&lives);
        let mut slot_of_node = vec![usize::MAX; n];
        for (k, &v) in values.iter().enumerate() {
            slot_of_node[v] = plan.slot_of[k];
        }
        let slots: Vec<wgpu::Buffer> = plan
            .slot_bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| self.ctx.storage_buffer(&format!("activation slot {i}"), b))
            .collect::<Result<_>>()?;
        let tref = |id: NodeId| TensorRef {
            buffer: &slots[slot_of_node[self.value_of[id]]],
            offset: 0,
            len: elems(id) as u64,
        };
        // 4. dispatches
        let mut dispatches = Vec::new();
        let mut dispatch_node = Vec::new();
        for (i, node) in g.nodes.iter().enumerate().skip(1) {
            if self.value_of[i] != i {
                continue; // alias or fused
            }
            let ctx = &*self.ctx;
            let name = node.name.as_str();
            let relu = self.fused_relu[i];
            let x = tref(node.inputs[0]);
            let in_shape = &g.nodes[node.inputs[0]].shape;
            let hw = |s: &[usize]| [s[1], s[2]];
            let out = tref(i);
            let ds = match (&node.op, &self.params[i]) {
                (Op::Conv2d(s), NodeParams::Conv { weight, bias }) => conv::prepare_conv2d(
                    ctx,
                    name,
                    x,
                    weight,
                    bias.as_ref(),
                    out,
                    batch,
                    s,
                    hw(in_shape),
                    relu,
                )?,
                (
                    Op::Conv2d(s)
                    | Op::GroupedConvTable(crate::ops::GroupedConvTable { spec: s, .. }),
                    NodeParams::Tiled(p),
                ) => conv_tiled::prepare(ctx, name, x, p, out, batch, s, hw(in_shape), relu)?,
                (
                    Op::BatchNorm(crate::ops::BatchNorm { channels, .. }),
                    NodeParams::BatchNorm { scale_shift },
                ) => norm::prepare_batch_norm(
                    ctx,
                    name,
                    x,
                    scale_shift,
                    out,
                    batch,
                    *channels,
                    in_shape[1] * in_shape[2],
                    relu,
                )?,
                (Op::Relu(crate::ops::Relu), _) => {
                    elementwise::prepare_relu(ctx, name, x, out, elems(i))?
                }
                (Op::Add(crate::ops::Add), _) => elementwise::prepare_add(
                    ctx,
                    name,
                    x,
                    tref(node.inputs[1]),
                    out,
                    elems(i),
                    relu,
                )?,
                (Op::MaxPool(crate::ops::MaxPool(p)), _) => {
                    pool::prepare_max_pool(ctx, name, x, out, batch, in_shape[0], hw(in_shape), p)?
                }
                (Op::AvgPool(crate::ops::AvgPool(p)), _) => {
                    pool::prepare_avg_pool(ctx, name, x, out, batch, in_shape[0], hw(in_shape), p)?
                }
                (Op::AdaptiveAvgPool(crate::ops::AdaptiveAvgPool { output }), _) => {
                    pool::prepare_adaptive_avg_pool(
                        ctx,
                        name,
                        x,
                        out,
                        batch,
                        in_shape[0],
                        hw(in_shape),
                        *output,
                    )?
                }
                (
                    Op::Linear(crate::ops::Linear {
                        in_features,
                        out_features,
                        ..
                    }),
                    NodeParams::Linear { chunks, bias },
                ) => linear::prepare_linear(
                    ctx,
                    name,
                    x,
                    chunks,
                    bias.as_ref(),
                    out,
                    batch,
                    *in_features,
                    *out_features,
                    relu,
                )?,
                (Op::Softmax(crate::ops::Softmax), _) => {
                    softmax::prepare_softmax(ctx, name, x, out, batch, in_shape[0])?
                }
                (
                    Op::Gather(crate::ops::Gather { indices }),
                    NodeParams::Gather { indices: ib },
                ) => gather::prepare_gather(
                    ctx,
                    name,
                    x,
                    ib,
                    out,
                    batch,
                    in_shape[0],
                    indices.len(),
                    in_shape[1] * in_shape[2],
                )?,
                (op, _) => {
                    return Err(Error::shape(
                        name,
                        format!("{} has no GPU kernel here", op.kind()),
                    ));
                }
            };
            for d in ds {
                dispatches.push(d);
                dispatch_node.push(i);
            }
        }
        let output_len = elems(g.output);
        let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("output staging"),
            size: 4 * output_len as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let report = PlanReport {
            batch,
            values: values.len(),
            slots: slots.len(),
            planned_bytes: plan.peak_bytes(),
            naive_bytes: BufferPlan::naive_bytes(&lives),
            largest_bytes: lives.iter().map(|l| l.bytes).max().unwrap_or(0),
            weight_bytes: self.weight_bytes,
            dispatches: dispatches.len(),
        };
        self.prepared = Some(Prepared {
            batch,
            input_slot: slot_of_node[0],
            output_slot: slot_of_node[out_v],
            output_len,
            staging,
            dispatches,
            dispatch_node,
            slots,
            report,
        });
        Ok(())
    }

    fn check_input(&self, input: &Tensor) -> Result<usize> {
        let [c, h, w] = self.graph.input_shape();
        let [b, ic, ih, iw] = input.dims4("model input")?;
        if [ic, ih, iw] != [c, h, w] {
            return Err(Error::tensor_shape(
                format!("{} input", self.graph.name),
                format!("[B, {c}, {h}, {w}]"),
                input.shape(),
            ));
        }
        Ok(b)
    }

    fn wait(&self) -> Result<()> {
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))
    }

    /// Runs one forward pass: upload, one encoder with every dispatch, copy of the output,
    /// one submit, one read-back.
    pub fn run(&mut self, input: &Tensor) -> Result<Tensor> {
        let batch = self.check_input(input)?;
        self.prepare(batch)?;
        let p = self.prepared.as_ref().expect("prepared");
        let q = &self.ctx.queue;
        q.write_buffer(
            &p.slots[p.input_slot],
            0,
            bytemuck::cast_slice(input.data()),
        );
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("forward"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("forward"),
                timestamp_writes: None,
            });
            for d in &p.dispatches {
                d.record(&mut pass);
            }
        }
        enc.copy_buffer_to_buffer(
            &p.slots[p.output_slot],
            0,
            &p.staging,
            0,
            4 * p.output_len as u64,
        );
        q.submit([enc.finish()]);
        let data = read_staging(self, &p.staging, p.output_len)?;
        let mut shape = vec![batch];
        shape.extend_from_slice(self.graph.output_shape());
        Tensor::new(shape, data)
    }

    /// Runs a forward pass without reading the output back (for timing whole passes):
    /// returns once the GPU has finished.
    pub fn run_no_readback(&mut self, input: &Tensor) -> Result<()> {
        let batch = self.check_input(input)?;
        self.prepare(batch)?;
        let p = self.prepared.as_ref().expect("prepared");
        self.ctx.queue.write_buffer(
            &p.slots[p.input_slot],
            0,
            bytemuck::cast_slice(input.data()),
        );
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in &p.dispatches {
                d.record(&mut pass);
            }
        }
        self.ctx.queue.submit([enc.finish()]);
        self.wait()
    }

    /// Per-layer GPU time of one forward pass. With `TIMESTAMP_QUERY`, every node's dispatches
    /// get a compute pass with begin/end timestamps, all in one submit; otherwise each node is
    /// submitted and waited for on its own, timed on the host (labelled as such).
    pub fn time_layers(&mut self, input: &Tensor) -> Result<LayerTimes> {
        let batch = self.check_input(input)?;
        self.prepare(batch)?;
        let p = self.prepared.as_ref().expect("prepared");
        self.ctx.queue.write_buffer(
            &p.slots[p.input_slot],
            0,
            bytemuck::cast_slice(input.data()),
        );
        // Group dispatches by node.
        let mut groups: Vec<(NodeId, Vec<&Dispatch>)> = Vec::new();
        for (d, &nid) in p.dispatches.iter().zip(&p.dispatch_node) {
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
            let raw = read_bytes(self, &read, bytes)?;
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

fn read_bytes(m: &GpuModel, buf: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    buf.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
        let _ = tx.send(r);
    });
    m.wait()?;
    rx.recv()
        .map_err(|_| Error::Gpu("map callback never ran".into()))?
        .map_err(|e| Error::Gpu(format!("mapping a read-back buffer: {e}")))?;
    let out = buf
        .get_mapped_range(0..bytes)
        .map_err(|e| Error::Gpu(format!("reading a mapped buffer: {e:?}")))?
        .to_vec();
    buf.unmap();
    Ok(out)
}

fn read_staging(m: &GpuModel, buf: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
    let raw = read_bytes(m, buf, 4 * len as u64)?;
    Ok(bytemuck::cast_slice(&raw).to_vec())
}
