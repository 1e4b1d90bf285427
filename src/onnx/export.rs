//! ONNX export: an inference graph (FLGC compiled by index re-ordering, BN folded — what
//! [`crate::compile::compile`] gives) written as a standard ONNX model (opset
//! [`EXPORT_OPSET`]) that onnxruntime, TensorRT or any engine reading ONNX runs unchanged.
//!
//! - **Even groups** become one grouped `Conv`; **uneven groups** (an exported FLGC layer)
//!   become `Split` (or a `Slice`/`Gather` per group) → one `Conv` per group → `Concat`, never
//!   a dense masked conv, so the file costs what gconv's graph costs. A group with filters but
//!   no input channel (a dead filter) is a `Conv` with zero weights on one channel: its output
//!   is its bias, as in gconv (gconv's importer reads it back as a group without input).
//! - **Channel permutations** are folded into the neighbouring weights where they can be
//!   ([`super::export_order`]); what is left is a `Gather` along channels (one copy).
//! - **Names** come from the gconv graph: nodes and values are named after their layers
//!   (`layer1.0.conv1`), parameters `{layer}.weight` / `{layer}.bias` (`{layer}.g{k}.…` for
//!   the groups of an uneven layer); the input is `input`, the batch dimension symbolic.
//!
//! Written with the prost types generated for the importer (`super::proto`); reading the file
//! back with [`super::read_onnx`] and [`crate::graph::fold_permutations`] gives the same MACs
//! and parameters as the graph exported (`tests/onnx_export.rs`).

use super::export_order::{plan, Order};
use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_proto::DataType;
use super::proto::tensor_shape_proto::{dimension, Dimension};
use super::proto::type_proto::{Tensor as TensorType, Value as TypeValue};
use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId};
use crate::weights::Weights;
use prost::Message;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// The default-domain opset of exported files.
pub const EXPORT_OPSET: i64 = 17;
/// The ONNX IR version that goes with [`EXPORT_OPSET`].
const IR_VERSION: i64 = 8;
/// Protobuf messages cannot exceed 2 GiB; gconv writes no external data.
const MAX_ONNX_BYTES: u64 = (1 << 31) - (1 << 20);

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OnnxExport {
    /// ONNX nodes in the file.
    pub nodes: usize,
    /// Convolutions written as one ONNX `Conv` (dense, grouped or depthwise).
    pub convs: usize,
    /// Uneven grouped convolutions written as per-group `Conv`s joined by a `Concat`.
    pub uneven: usize,
    /// Per-group `Conv`s of those (dead groups included).
    pub group_convs: usize,
    /// Groups with filters but no input channel (a zero-weight `Conv` on one channel).
    pub dead_groups: usize,
    /// `Gather`s along channels left in the file (each one channel copy).
    pub gathers: usize,
    /// Bytes of the file.
    pub bytes: usize,
}

/// The ONNX model of `graph` with `weights` (checked against it), encoded, and what it holds.
/// The graph must be in inference form: an FLGC layer is an error naming it (compile it
/// first), as is an op with no ONNX equivalent (an adaptive pool with uneven bins).
/// `meta` becomes the model's metadata (`metadata_props`; `gconv export` stores a
/// checkpoint's input normalisation there as `norm_mean` / `norm_std`).
pub fn onnx_bytes(
    graph: &Graph,
    weights: &Weights,
    meta: &BTreeMap<String, String>,
) -> Result<(Vec<u8>, OnnxExport)> {
    weights.validate(graph)?;
    let mut e = Emitter::new(graph, weights);
    for i in 1..graph.nodes.len() {
        e.node(i)?;
    }
    e.finish(meta)
}

/// Writes the ONNX model of `graph` with `weights` to `path` atomically (a failed export
/// leaves no file behind); see [`onnx_bytes`].
pub fn write_onnx(
    path: impl AsRef<Path>,
    graph: &Graph,
    weights: &Weights,
    meta: &BTreeMap<String, String>,
) -> Result<OnnxExport> {
    let (bytes, report) = onnx_bytes(graph, weights, meta)?;
    crate::fs::write_atomic(path, &bytes)?;
    Ok(report)
}

/// The state of one export: the nodes and initializers so far, and for every gconv node the
/// name of its ONNX value and the channel order that value is stored in.
pub(super) struct Emitter<'a> {
    pub g: &'a Graph,
    pub w: &'a Weights,
    /// Planned channel order of every gconv value.
    pub order: Vec<Order>,
    /// ONNX value name of every gconv node emitted so far (in its planned order).
    pub value: Vec<String>,
    pub report: OnnxExport,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    names: HashSet<String>,
    node_names: HashSet<String>,
    init_bytes: u64,
}

impl<'a> Emitter<'a> {
    fn new(g: &'a Graph, w: &'a Weights) -> Self {
        let mut names = HashSet::new();
        let input = g.nodes[0].name.clone();
        names.insert(input.clone());
        let mut value = vec![String::new(); g.nodes.len()];
        value[0] = input;
        Self {
            g,
            w,
            order: plan(g),
            value,
            report: OnnxExport::default(),
            nodes: Vec::new(),
            inits: Vec::new(),
            names,
            node_names: HashSet::new(),
            init_bytes: 0,
        }
    }

    /// A value (or initializer) name not used yet: `base`, else `base_2`, `base_3`, …
    pub fn fresh(&mut self, base: &str) -> String {
        fresh_in(&mut self.names, base)
    }

    /// The planned order of node `i`'s value as a full list.
    pub fn order_of(&self, i: NodeId) -> Vec<usize> {
        let c = self.g.nodes[i].shape.first().copied().unwrap_or(0);
        self.order[i].clone().unwrap_or_else(|| (0..c).collect())
    }

    /// The layer name of node `i`.
    pub fn name(&self, i: NodeId) -> String {
        self.g.nodes[i].name.clone()
    }

    /// Adds a node named (a fresh variant of) `name` whose output value is named (a fresh
    /// variant of) `out`; returns the output's name.
    pub fn add(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: Vec<String>,
        out: &str,
        attrs: Vec<AttributeProto>,
    ) -> String {
        let mut outs = self.add_n(op_type, name, inputs, &[out], attrs);
        outs.pop().unwrap_or_default()
    }

    /// [`add`](Self::add) for a node with several outputs.
    pub fn add_n(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: Vec<String>,
        outs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> Vec<String> {
        let node_name = fresh_in(&mut self.node_names, name);
        let output: Vec<String> = outs.iter().map(|o| self.fresh(o)).collect();
        if op_type == "Gather" {
            self.report.gathers += 1;
        }
        self.nodes.push(NodeProto {
            input: inputs,
            output: output.clone(),
            name: Some(node_name),
            op_type: Some(op_type.into()),
            attribute: attrs,
            ..Default::default()
        });
        output
    }

    /// A float initializer named (a fresh variant of) `name`.
    pub fn floats(&mut self, name: &str, dims: &[usize], data: &[f32]) -> Result<String> {
        let name = self.fresh(name);
        self.init_bytes += 4 * data.len() as u64;
        if self.init_bytes > MAX_ONNX_BYTES {
            return Err(Error::shape(
                &self.g.name,
                format!(
                    "the weights exceed {} MiB, the largest ONNX file without external data",
                    MAX_ONNX_BYTES >> 20
                ),
            ));
        }
        self.inits.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            name: Some(name.clone()),
            raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
        Ok(name)
    }

    /// A 1-D int64 initializer named (a fresh variant of) `name`.
    pub fn ints(&mut self, name: &str, data: &[i64]) -> String {
        let name = self.fresh(name);
        self.inits.push(TensorProto {
            dims: vec![data.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            name: Some(name.clone()),
            raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
        name
    }

    /// `Gather` along channels: output channel `q` is channel `idx[q]` of `x`.
    pub fn gather(&mut self, name: &str, x: String, idx: &[usize], out: &str) -> String {
        let idx: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        let ind = self.ints(&format!("{name}.indices"), &idx);
        self.add("Gather", name, vec![x, ind], out, vec![attr_int("axis", 1)])
    }

    /// Records `x` — node `i`'s result with its channels in order `natural` — as node `i`'s
    /// value, re-ordered by a `Gather` when `natural` is not the planned order.
    pub fn finish_value(&mut self, i: NodeId, x: String, natural: &[usize]) -> Result<()> {
        let planned = self.order_of(i);
        if natural == planned.as_slice() {
            self.value[i] = x;
            return Ok(());
        }
        if self.g.nodes[i].shape.len() != 3 {
            return Err(Error::shape(
                self.name(i),
                "internal: a flat value in a non-identity order",
            ));
        }
        let pos = super::export_order::inverse(natural);
        let idx: Vec<usize> = planned.iter().map(|&c| pos[c]).collect();
        let name = format!("{}.order", self.name(i));
        self.value[i] = self.gather(&name, x, &idx, &name);
        Ok(())
    }

    /// Node `i`'s input `k` brought into the identity order (a `Gather` if it is not in it).
    pub fn identity_input(&mut self, i: NodeId, k: usize) -> String {
        let p = self.g.nodes[i].inputs[k];
        let x = self.value[p].clone();
        match self.order[p].clone() {
            None => x,
            Some(o) => {
                let pos = super::export_order::inverse(&o);
                let name = format!("{}.in_order", self.name(i));
                self.gather(&name, x, &pos, &name)
            }
        }
    }

    fn finish(mut self, meta: &BTreeMap<String, String>) -> Result<(Vec<u8>, OnnxExport)> {
        let g = self.g;
        let out = g.output;
        let mut y = self.value[out].clone();
        if let Some(o) = self.order[out].clone() {
            let pos = super::export_order::inverse(&o);
            let name = format!("{}.output_order", g.nodes[out].name);
            y = self.gather(&name, y, &pos, &name);
        }
        let [c, h, w] = g.input_shape();
        let input = value_info(&g.nodes[0].name, &[c, h, w]);
        let output = value_info(&y, g.output_shape());
        self.report.nodes = self.nodes.len();
        let model = ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(EXPORT_OPSET),
            }],
            producer_name: Some("gconv".into()),
            producer_version: Some(env!("CARGO_PKG_VERSION").into()),
            graph: Some(GraphProto {
                node: self.nodes,
                name: Some(g.name.clone()),
                initializer: self.inits,
                input: vec![input],
                output: vec![output],
                ..Default::default()
            }),
            metadata_props: meta
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: Some(k.clone()),
                    value: Some(v.clone()),
                })
                .collect(),
            ..Default::default()
        };
        let bytes = model.encode_to_vec();
        self.report.bytes = bytes.len();
        Ok((bytes, self.report))
    }
}

/// `base`, or `base_2`, `base_3`, … whichever `used` does not hold yet (then it does).
fn fresh_in(used: &mut HashSet<String>, base: &str) -> String {
    let mut name = base.to_string();
    let mut k = 1;
    while !used.insert(name.clone()) {
        k += 1;
        name = format!("{base}_{k}");
    }
    name
}

/// `[batch, dims…]` float32 value info.
fn value_info(name: &str, dims: &[usize]) -> ValueInfoProto {
    let batch = Dimension {
        value: Some(dimension::Value::DimParam("batch".into())),
        ..Default::default()
    };
    let dim = std::iter::once(batch)
        .chain(dims.iter().map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d as i64)),
            ..Default::default()
        }))
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An integer attribute.
pub(super) fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

/// An integer-list attribute.
pub(super) fn attr_ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

/// A float attribute.
pub(super) fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}
