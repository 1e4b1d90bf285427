//! Parameters resident on the device: uploaded once per model (inference: in the form the
//! chosen kernels read — a convolution's as its kernel family prepares them, BN folded to an affine
//! map; training: as they are, with momentum buffers), split by rows where a tensor exceeds
//! one storage binding.

use crate::error::{Error, Result};
use crate::gpu::choice::{self, KernelChoice};
use crate::gpu::context::GpuContext;
use crate::gpu::family::{ConvLayer, ConvOp, ConvProblem, PreparedConv};
use crate::gpu::geometry::LinearShape;
use crate::gpu::kernels::{gather, gemv_wide, linear, norm};
use crate::gpu::Precision;
use crate::graph::{Graph, NodeId, Op};
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
    /// Stored as halves, two per word (a fully connected layer's weight whose kernel reads
    /// them; [`crate::gpu::Precision::F16`]): `shape` stays the f32 tensor's.
    pub half: bool,
}

/// A parameter in the form an inference kernel reads it, built at load.
#[derive(Debug)]
pub enum Prepared {
    /// A convolution's weights in the form its kernel family reads them
    /// ([`crate::gpu::family::ConvForward::prepare`]).
    Conv(Box<dyn PreparedConv>),
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
    /// Convolutions prepared, and how many of them store f16 weights.
    convs: [usize; 2],
    /// Fully connected layers, and how many of them store f16 weights.
    linears: [usize; 2],
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

    /// Whether node `node` (named `name`) keeps its weights as halves: a convolution whose
    /// prepared form stores them so, or a fully connected weight stored so.
    pub fn stores_halves(&self, node: NodeId, name: &str) -> bool {
        let conv = matches!(self.prepared.get(&node),
            Some(Prepared::Conv(p)) if p.precision() == crate::gpu::Precision::F16);
        conv || self
            .tensors
            .get(&format!("{name}.weight"))
            .is_some_and(|t| t.half)
    }

    /// `[convolutions, those storing f16 weights]` of this store.
    pub fn f16_convs(&self) -> [usize; 2] {
        self.convs
    }

    /// `[fully connected layers, those storing f16 weights]` of this store.
    pub fn f16_linears(&self) -> [usize; 2] {
        self.linears
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
                half: false,
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
                    let at = (i, node.name.as_str());
                    s.prepare_conv(
                        ctx,
                        at,
                        (ConvOp::Conv2d(spec), &problem, in_hw),
                        forced,
                        weights,
                    )?;
                }
                Op::GroupedConvTable(t) => {
                    let problem = ConvProblem::table(t, 1, in_hw);
                    let at = (i, node.name.as_str());
                    s.prepare_conv(
                        ctx,
                        at,
                        (ConvOp::Table(t), &problem, in_hw),
                        forced,
                        weights,
                    )?;
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
                Op::Linear(lin) => s.prepare_linear(ctx, &node.name, lin, forced, weights)?,
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

impl ParamStore {
    /// Convolution `node`'s weights in the form its kernel reads: prepared by the kernel's
    /// family at load (packed, or a segment table beside the natural weights) and/or as
    /// they are.
    fn prepare_conv(
        &mut self,
        ctx: &GpuContext,
        (node, name): (NodeId, &str),
        (op, problem, in_hw): (ConvOp<'_>, &ConvProblem, [usize; 2]),
        forced: &KernelChoice,
        weights: &Weights,
    ) -> Result<()> {
        let spec = op.spec();
        let kernel = choice::conv_forward_for(ctx, name, problem, forced)?;
        let w = weights.require(&format!("{name}.weight"))?;
        let bias = if spec.bias {
            Some(weights.require(&format!("{name}.bias"))?.data())
        } else {
            None
        };
        let layer = ConvLayer {
            name,
            op,
            in_hw,
            weight: w.data(),
            bias,
            precision: forced.precision(),
        };
        let prepared = kernel.family.prepare(ctx, &layer, kernel.variant)?;
        self.convs[0] += 1;
        if prepared
            .as_ref()
            .is_some_and(|p| p.precision() == crate::gpu::Precision::F16)
        {
            self.convs[1] += 1;
        }
        if prepared.as_ref().is_none_or(|p| p.reads_natural_weights()) {
            let shape = match op {
                ConvOp::Conv2d(spec) => spec.weight_shape(),
                ConvOp::Table(_) => vec![w.data().len()],
            };
            self.put(ctx, format!("{name}.weight"), &shape, w.data(), None)?;
            if let Some(b) = bias {
                self.put(ctx, format!("{name}.bias"), &[b.len()], b, None)?;
            }
        }
        if let Some(p) = prepared {
            self.bytes += p.bytes();
            self.prepared.insert(node, Prepared::Conv(p));
        }
        Ok(())
    }
}

impl ParamStore {
    /// A fully connected layer's weights: as halves when the model asks for f16 and the
    /// kernel chosen for it (at batch 1) reads them, else as they are; its bias as it is.
    fn prepare_linear(
        &mut self,
        ctx: &GpuContext,
        name: &str,
        lin: &crate::ops::Linear,
        forced: &KernelChoice,
        weights: &Weights,
    ) -> Result<()> {
        let w = weights.require(&format!("{name}.weight"))?;
        let shape = [lin.out_features, lin.in_features];
        let s1 = LinearShape {
            batch: 1,
            in_features: lin.in_features,
            out_features: lin.out_features,
        };
        let at_load = choice::linear_forward_for(ctx, name, &s1, forced)?;
        let half = forced.precision() == Precision::F16
            && lin.in_features % 2 == 0
            && at_load.family.reads_f16();
        if !half && !at_load.family.reads_f32() {
            return Err(Error::InvalidArgument(format!(
                "{name}: kernel {at_load} reads weights stored as halves only; load the model \
                 with precision f16"
            )));
        }
        self.linears[0] += 1;
        let key = format!("{name}.weight");
        if half {
            let words = gemv_wide::pack_f16(name, w.data())?;
            self.put(ctx, key.clone(), &[shape[0], shape[1] / 2], &words, None)?;
            let p = self.tensors.get_mut(&key).expect("just put");
            p.shape = shape.to_vec();
            p.half = true;
            self.linears[1] += 1;
        } else {
            self.put(ctx, key, &shape, w.data(), None)?;
        }
        if lin.bias {
            let b = weights.require(&format!("{name}.bias"))?;
            self.put(
                ctx,
                format!("{name}.bias"),
                &[b.data().len()],
                b.data(),
                None,
            )?;
        }
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
