//! Parameters resident on the device: uploaded once per model (inference: in the form the
//! chosen kernels read, e.g. re-packed for the tiled convolution or BN folded to an affine
//! map; training: as they are, with momentum buffers), split by rows where a tensor exceeds
//! one storage binding.

use crate::error::{Error, Result};
use crate::gpu::choice::{self, ConvKernel, ConvProblem, KernelChoice};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::conv_fast::{FastConv, FastConvGpu};
use crate::gpu::kernels::conv_wgmem::{WgmemConv, WgmemConvGpu};
use crate::gpu::kernels::{conv_tiled, gather, linear, norm};
use crate::graph::{Graph, GroupedConvTable, NodeId, Op};
use crate::ops::ParamRole;
use crate::weights::Weights;
use std::collections::{BTreeMap, HashMap};

/// Training state of a parameter.
#[derive(Debug)]
pub struct TrainState {
    /// Momentum buffers, one per chunk.
    pub velocity: Vec<wgpu::Buffer>,
    /// Whether weight decay applies.
    pub decay: bool,
}

/// A tensor on the device: one buffer, or row chunks when it exceeds a storage binding.
#[derive(Debug)]
pub struct DeviceParam {
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// The chunks, in row order.
    pub chunks: Vec<wgpu::Buffer>,
    /// Momentum and decay, for trainable parameters.
    pub train: Option<TrainState>,
}

/// A convolution planned for `conv_fast` with its weights packed on the host.
#[derive(Debug)]
pub struct FastPrepared {
    /// Segments and channel lists.
    pub layer: FastConvGpu,
    /// The packed weights.
    pub weight: wgpu::Buffer,
    /// The bias (zeros when the layer has none).
    pub bias: wgpu::Buffer,
}

/// A parameter in the form an inference kernel reads it, built at load.
#[derive(Debug)]
pub enum Prepared {
    /// A convolution planned and packed for `conv_fast`.
    Fast(FastPrepared),
    /// A convolution planned for `conv_wgmem` (its weights stay as they are).
    Wgmem(WgmemConvGpu),
    /// A convolution re-packed for `conv_tiled`.
    Tiled(conv_tiled::PackedConvGpu),
    /// Batch norm as `[scale; C] ++ [shift; C]`.
    ScaleShift(wgpu::Buffer),
    /// Gather indices as `u32`.
    Indices(wgpu::Buffer),
    /// A channel concat's `(output, input channel)` pairs, per input (`None`: the input
    /// contributes no channel), with their count.
    ConcatPairs(Vec<Option<(wgpu::Buffer, usize)>>),
}

/// Every parameter of a model on the device.
#[derive(Debug, Default)]
pub struct ParamStore {
    tensors: BTreeMap<String, DeviceParam>,
    prepared: HashMap<NodeId, Prepared>,
    bytes: u64,
}

impl ParamStore {
    /// A tensor by key, or [`Error::Weights`] naming it.
    pub fn get(&self, key: &str) -> Result<&DeviceParam> {
        self.tensors.get(key).ok_or_else(|| Error::Weights {
            key: key.to_string(),
            msg: "missing on the device".into(),
        })
    }

    /// Node `node`'s parameter `suffix`.
    pub fn of(&self, graph: &Graph, node: NodeId, suffix: &str) -> Result<&DeviceParam> {
        self.get(&format!("{}.{suffix}", graph.nodes[node].name))
    }

    /// Node `node`'s prepared inference form, if it has one.
    pub fn prepared(&self, node: NodeId) -> Option<&Prepared> {
        self.prepared.get(&node)
    }

    /// All tensors, sorted by key.
    pub fn tensors(&self) -> impl Iterator<Item = (&String, &DeviceParam)> {
        self.tensors.iter()
    }

    /// Bytes resident on the device.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn put(
        &mut self,
        ctx: &GpuContext,
        key: String,
        shape: &[usize],
        data: &[f32],
        trained: Option<bool>,
    ) -> Result<()> {
        let chunks = upload_chunked(ctx, &key, shape, data)?;
        let train = match trained {
            Some(decay) => Some(TrainState {
                velocity: chunks
                    .iter()
                    .enumerate()
                    .map(|(k, c)| ctx.storage_buffer(&format!("{key} momentum[{k}]"), c.size()))
                    .collect::<Result<_>>()?,
                decay,
            }),
            None => None,
        };
        self.bytes += chunks.iter().map(|c| c.size()).sum::<u64>();
        self.tensors.insert(
            key,
            DeviceParam {
                shape: shape.to_vec(),
                chunks,
                train,
            },
        );
        Ok(())
    }

    /// Uploads every parameter of `graph` as it is, with momentum buffers for the trainable
    /// ones (training).
    pub fn for_training(ctx: &GpuContext, graph: &Graph, weights: &Weights) -> Result<Self> {
        weights.validate(graph)?;
        let mut s = Self::default();
        for node in &graph.nodes {
            for p in node.op.def().params() {
                let key = format!("{}.{}", node.name, p.suffix);
                let t = weights.require(&key)?;
                let trained = match p.role {
                    ParamRole::Decayed => Some(true),
                    ParamRole::NotDecayed => Some(false),
                    ParamRole::Buffer => None,
                };
                s.put(ctx, key, &p.shape, t.data(), trained)?;
            }
        }
        Ok(s)
    }

    /// Uploads the parameters of `graph` in the form its inference kernels read.
    pub fn for_inference(ctx: &GpuContext, graph: &Graph, weights: &Weights) -> Result<Self> {
        Self::for_inference_with(ctx, graph, weights, &KernelChoice::default())
    }

    /// Like [`ParamStore::for_inference`], with the kernels of the layers named in
    /// `forced` forced (their weights are prepared for those kernels).
    pub fn for_inference_with(
        ctx: &GpuContext,
        graph: &Graph,
        weights: &Weights,
        forced: &KernelChoice,
    ) -> Result<Self> {
        weights.validate(graph)?;
        let mut s = Self::default();
        for (i, node) in graph.nodes.iter().enumerate() {
            let key = |suffix: &str| format!("{}.{suffix}", node.name);
            let get = |suffix: &str| weights.require(&key(suffix));
            let in_hw = match graph.nodes[node.inputs.first().copied().unwrap_or(0)].shape[..] {
                [_, h, w] => [h, w],
                _ => [1, 1],
            };
            match &node.op {
                Op::Conv2d(spec) => {
                    let problem = ConvProblem::conv2d(spec, 1, in_hw, true);
                    let kernel = choice::conv_forward_for(ctx, &node.name, &problem, forced)?;
                    let bias = if spec.bias {
                        Some(get("bias")?.data())
                    } else {
                        None
                    };
                    let w = get("weight")?.data();
                    let plan = match kernel {
                        ConvKernel::Fast(_) => {
                            let entry = kernel.fast_entry();
                            Some(ConvPlan::Fast(FastConv::conv2d(spec, in_hw, entry)?))
                        }
                        ConvKernel::Tiled => {
                            Some(ConvPlan::Tiled(conv_tiled::pack_conv2d(spec, w)?))
                        }
                        ConvKernel::Wgmem => Some(ConvPlan::Wgmem(WgmemConv::conv2d(spec)?)),
                        ConvKernel::Direct(_) => None,
                    };
                    let at = (i, node.name.as_str(), spec.out_channels);
                    s.prepare_conv(ctx, at, plan, (&spec.weight_shape(), w, bias))?;
                }
                Op::GroupedConvTable(t) => {
                    let problem = ConvProblem::table(t, 1, in_hw);
                    let kernel = choice::conv_forward_for(ctx, &node.name, &problem, forced)?;
                    let w = get("weight")?.data();
                    let bias = if t.spec.bias {
                        Some(get("bias")?.data())
                    } else {
                        None
                    };
                    let plan = table_plan(t, kernel, in_hw, w)?;
                    let at = (i, node.name.as_str(), t.spec.out_channels);
                    s.prepare_conv(ctx, at, Some(plan), (&[w.len()], w, bias))?;
                }
                Op::FlgcConv2d(_) => return Err(Error::shape(
                    &node.name,
                    "FLGC layers must be materialised (masked) or exported before GPU inference",
                )),
                Op::BatchNorm(b) => {
                    let ss = norm::scale_shift(
                        get("weight")?.data(),
                        get("bias")?.data(),
                        get("running_mean")?.data(),
                        get("running_var")?.data(),
                        b.eps,
                    )?;
                    s.bytes += 4 * ss.len() as u64;
                    s.prepared.insert(
                        i,
                        Prepared::ScaleShift(ctx.upload(&key("scale_shift"), &ss)?),
                    );
                }
                Op::Concat(cat) => {
                    let c_out = cat.sources.len();
                    let mut per_input = Vec::with_capacity(cat.inputs);
                    for (k, &src) in node.inputs.iter().enumerate() {
                        let c_in = graph.nodes[src].shape[0];
                        let pairs: Vec<[usize; 2]> = cat
                            .sources
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s[0] == k)
                            .map(|(o, s)| [o, s[1]])
                            .collect();
                        per_input.push(if pairs.is_empty() {
                            None
                        } else {
                            let label = format!("{} input {k}", node.name);
                            let b = gather::upload_pairs(ctx, &label, &pairs, [c_out, c_in])?;
                            Some((b, pairs.len()))
                        });
                    }
                    s.prepared.insert(i, Prepared::ConcatPairs(per_input));
                }
                Op::Gather(g) => {
                    let c = graph.nodes[node.inputs[0]].shape[0];
                    let idx = gather::upload_indices(ctx, &node.name, &g.indices, c)?;
                    s.prepared.insert(i, Prepared::Indices(idx));
                }
                op => {
                    for p in op.def().params() {
                        s.put(ctx, key(p.suffix), &p.shape, get(p.suffix)?.data(), None)?;
                    }
                }
            }
        }
        Ok(s)
    }
}

/// A convolution planned (and, for `conv_tiled`, packed) for its inference kernel.
enum ConvPlan {
    Fast(FastConv),
    Wgmem(WgmemConv),
    Tiled(conv_tiled::PackedConv),
}

fn table_plan(
    t: &GroupedConvTable,
    kernel: ConvKernel,
    in_hw: [usize; 2],
    w: &[f32],
) -> Result<ConvPlan> {
    Ok(match kernel {
        ConvKernel::Fast(_) => ConvPlan::Fast(FastConv::table(t, in_hw, kernel.fast_entry())?),
        ConvKernel::Wgmem => ConvPlan::Wgmem(WgmemConv::table(t)?),
        // `conv_forward_for` never gives a direct kernel for a table.
        ConvKernel::Tiled | ConvKernel::Direct(_) => {
            ConvPlan::Tiled(conv_tiled::pack_grouped_table(t, w)?)
        }
    })
}

impl ParamStore {
    /// Uploads convolution `node`'s weights in the form `plan`'s kernel reads: packed
    /// (`conv_fast`, `conv_tiled`, with a zero bias when the layer has none) or as they are
    /// (`conv_wgmem`, the direct kernels: `None`).
    fn prepare_conv(
        &mut self,
        ctx: &GpuContext,
        (node, name, c_out): (NodeId, &str, usize),
        plan: Option<ConvPlan>,
        (shape, w, bias): (&[usize], &[f32], Option<&[f32]>),
    ) -> Result<()> {
        let natural = |s: &mut Self| -> Result<()> {
            s.put(ctx, format!("{name}.weight"), shape, w, None)?;
            if let Some(b) = bias {
                s.put(ctx, format!("{name}.bias"), &[b.len()], b, None)?;
            }
            Ok(())
        };
        let prepared = match plan {
            None => return natural(self),
            Some(ConvPlan::Wgmem(p)) => {
                natural(self)?;
                Prepared::Wgmem(p.upload(ctx, name)?)
            }
            Some(ConvPlan::Tiled(packed)) => {
                let gpu = conv_tiled::upload(ctx, name, &packed, bias, c_out)?;
                self.bytes += 4 * (packed.weights.len() + c_out) as u64;
                Prepared::Tiled(gpu)
            }
            Some(ConvPlan::Fast(p)) => {
                let packed = p.pack(w)?;
                let zeros = vec![0.0; c_out];
                let b = bias.unwrap_or(&zeros);
                self.bytes += 4 * (packed.len() + b.len()) as u64;
                Prepared::Fast(FastPrepared {
                    layer: p.upload(ctx, name)?,
                    weight: ctx.upload(&format!("{name} packed weight"), &packed)?,
                    bias: ctx.upload(&format!("{name} bias"), b)?,
                })
            }
        };
        self.prepared.insert(node, prepared);
        Ok(())
    }
}

/// Uploads `data`, split by rows (the first dimension) into chunks that each fit a storage
/// binding when it is larger than one.
fn upload_chunked(
    ctx: &GpuContext,
    key: &str,
    shape: &[usize],
    data: &[f32],
) -> Result<Vec<wgpu::Buffer>> {
    let bytes = 4 * data.len() as u64;
    let limit = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size);
    match shape {
        [rows, rest @ ..] if bytes > limit && *rows > 1 => {
            let cols: usize = rest.iter().product();
            linear::upload_weight(ctx, key, data, [*rows, cols])
        }
        _ => Ok(vec![ctx.upload(key, data)?]),
    }
}
