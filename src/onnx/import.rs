//! The import driver: decodes the model, checks the opset and the input, folds constants,
//! and walks the nodes in order, each becoming gconv nodes ([`super::layers`]), a constant, or
//! an alias of an earlier value.

use super::fold;
use super::proto::{GraphProto, ModelProto, NodeProto};
use super::values::{decode_tensor, Act, Const, Int, Value, View};
use super::{OnnxModel, OPSETS};
use crate::error::{Error, Result};
use crate::graph::{GraphBuilder, NodeId, Op};
use crate::weights::Weights;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Ops evaluated at import time when all their inputs are constants.
const FOLDABLE: &[&str] = &[
    "Constant",
    "Identity",
    "Cast",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Slice",
    "Reshape",
    "ConstantOfShape",
    "Transpose",
];

/// State of one import.
pub(crate) struct Importer<'a> {
    pub path: &'a Path,
    pub opset: i64,
    pub b: GraphBuilder,
    pub w: Weights,
    /// The batch size the model was exported with, when it is fixed.
    pub static_batch: Option<i64>,
    nodes: &'a [NodeProto],
    vals: HashMap<String, Value>,
    pub names: HashSet<String>,
    consumers: HashMap<&'a str, Vec<usize>>,
    /// Nodes already merged into an earlier one (the bias `Add` after a `MatMul`) or into a
    /// later one (the arithmetic of a recognised activation, [`super::patterns`]).
    pub skip: HashSet<usize>,
    /// Recognised activations, by the index of their last node.
    pub fused: HashMap<usize, super::patterns::Fused>,
    folded: usize,
}

/// Decodes and imports a model from its bytes (`path` names it in errors).
pub(crate) fn import(bytes: &[u8], path: &Path) -> Result<OnnxModel> {
    let model = ModelProto::decode(bytes).map_err(|e| {
        Error::format(
            path,
            format!("not a valid ONNX model (protobuf decoding failed: {e}; truncated file?)"),
        )
    })?;
    let graph = model
        .graph
        .as_ref()
        .filter(|g| !g.node.is_empty())
        .ok_or_else(|| {
            Error::format(
                path,
                "not an ONNX model: no graph, or a graph without nodes",
            )
        })?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain(), "" | "ai.onnx"))
        .map(|o| o.version())
        .ok_or_else(|| {
            Error::format(
                path,
                "the model imports no opset of the default ONNX domain",
            )
        })?;
    if !OPSETS.contains(&opset) {
        return Err(Error::format(
            path,
            format!(
                "opset {opset} is outside the supported {}–{}; re-export with \
                 `torch.onnx.export(..., opset_version=17)`",
                OPSETS.start(),
                OPSETS.end()
            ),
        ));
    }
    let mut vals = HashMap::new();
    for t in &graph.initializer {
        let c = decode_tensor(t).map_err(|m| Error::format(path, format!("initializer: {m}")))?;
        vals.insert(t.name().to_string(), Value::Const(c));
    }
    let (input_name, chw, static_batch) = graph_input(graph, &vals, path)?;
    let name = match graph.name() {
        "" | "main_graph" | "torch_jit" => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "onnx".into()),
        n => n.to_string(),
    };
    vals.insert(
        input_name,
        Value::Act(Act {
            node: 0,
            view: None,
        }),
    );
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for inp in &n.input {
            consumers.entry(inp.as_str()).or_default().push(i);
        }
    }
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name()).collect();
    let matches = super::patterns::find(&graph.node, &vals, &outputs, opset);
    let mut im = Importer {
        path,
        opset,
        b: GraphBuilder::new(name, chw),
        w: Weights::new(),
        static_batch,
        nodes: &graph.node,
        vals,
        names: HashSet::from(["input".to_string()]),
        consumers,
        skip: matches.interior,
        fused: matches.ends,
        folded: 0,
    };
    for i in 0..graph.node.len() {
        if !im.skip.contains(&i) {
            im.node(i)?;
        }
    }
    let out = match graph.output.as_slice() {
        [o] => o.name(),
        outs => {
            return Err(Error::format(
                path,
                format!(
                    "the model has {} outputs; gconv imports single-output models",
                    outs.len()
                ),
            ))
        }
    };
    let out_node = match im.vals.get(out) {
        Some(Value::Act(a)) => {
            let a = a.clone();
            im.materialize(&graph.node[graph.node.len() - 1], a)?
        }
        _ => {
            return Err(Error::format(
                path,
                format!("output `{out}` is a constant or was never computed"),
            ))
        }
    };
    let graph_out = im.b.finish(out_node);
    im.w.validate(&graph_out)?;
    Ok(OnnxModel {
        graph: graph_out,
        weights: im.w,
        opset,
        producer: format!("{} {}", model.producer_name(), model.producer_version())
            .trim()
            .to_string(),
        onnx_nodes: graph.node.len(),
        folded_constants: im.folded,
    })
}

/// The one non-initializer input: its name, per-sample `[C, H, W]` and fixed batch size.
fn graph_input(
    g: &GraphProto,
    vals: &HashMap<String, Value>,
    path: &Path,
) -> Result<(String, [usize; 3], Option<i64>)> {
    use super::proto::tensor_shape_proto::dimension::Value as D;
    use super::proto::type_proto::Value as T;
    let inputs: Vec<_> = g
        .input
        .iter()
        .filter(|i| !vals.contains_key(i.name()))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(Error::format(
            path,
            format!(
                "the model has {} inputs; gconv imports one [N, C, H, W] image input",
                inputs.len()
            ),
        ));
    };
    let bad = |msg: String| Error::format(path, format!("input `{}`: {msg}", input.name()));
    let Some(T::TensorType(tt)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(bad("not a tensor".into()));
    };
    if tt.elem_type() != 1 {
        return Err(bad(format!(
            "element type {} (gconv takes float32 inputs)",
            tt.elem_type()
        )));
    }
    let dims: Vec<Option<i64>> = tt
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(D::DimValue(v)) => Some(v),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    match dims[..] {
        [n, Some(c), Some(h), Some(w)] if c > 0 && h > 0 && w > 0 => {
            let u = |v: i64| usize::try_from(v).unwrap_or(usize::MAX);
            Ok((input.name().to_string(), [u(c), u(h), u(w)], n))
        }
        _ => Err(bad(format!(
            "shape {dims:?} (None = symbolic); gconv needs [N, C, H, W] with fixed C, H, W \
             (the batch N may be dynamic)"
        ))),
    }
}

impl<'a> Importer<'a> {
    /// An [`Error::Onnx`] for node `n`.
    pub fn err(&self, n: &NodeProto, msg: impl Into<String>) -> Error {
        let op_type = match n.domain() {
            "" | "ai.onnx" => n.op_type().to_string(),
            d => format!("{d}::{}", n.op_type()),
        };
        Error::Onnx {
            path: self.path.to_path_buf(),
            node: match n.name() {
                "" => n.output.first().cloned().unwrap_or_default(),
                s => s.to_string(),
            },
            op_type,
            opset: self.opset,
            msg: msg.into(),
        }
    }

    fn node(&mut self, i: usize) -> Result<()> {
        let n = &self.nodes[i];
        if let Some(f) = self.fused.remove(&i) {
            return self.convert_fused(n, f);
        }
        if !matches!(n.domain(), "" | "ai.onnx") {
            return Err(self.err(
                n,
                "operators outside the default ONNX domain are not imported",
            ));
        }
        let mut all_const = true;
        for name in n.input.iter().filter(|s| !s.is_empty()) {
            match self.vals.get(name) {
                None => {
                    return Err(self.err(
                        n,
                        format!(
                            "input `{name}` is not an initializer, the graph input or an \
                             earlier node's output (missing initializer?)"
                        ),
                    ))
                }
                Some(Value::Act(_)) => all_const = false,
                Some(Value::Const(_)) => {}
            }
        }
        if n.op_type() == "Shape" {
            let v = self.shape_of(n)?;
            self.set(n, 0, Value::Const(v));
            self.folded += 1;
            return Ok(());
        }
        if all_const && FOLDABLE.contains(&n.op_type()) {
            let ins: Vec<Option<&Const>> = n
                .input
                .iter()
                .map(|s| match self.vals.get(s) {
                    Some(Value::Const(c)) => Some(c),
                    _ => None,
                })
                .collect();
            let outs = fold::eval(n, &ins, self.opset).map_err(|m| self.err(n, m))?;
            for (k, c) in outs.into_iter().enumerate() {
                self.set(n, k, Value::Const(c));
            }
            self.folded += 1;
            return Ok(());
        }
        self.convert(i, n)
    }

    /// `Shape` of a constant or an activation (the batch dimension stays symbolic).
    fn shape_of(&self, n: &NodeProto) -> Result<Const> {
        let dims: Vec<Int> = match self.value(n, 0)? {
            Value::Const(c) => c.dims.iter().map(|&d| Int::K(d as i64)).collect(),
            Value::Act(a) => std::iter::once(Int::Batch)
                .chain(self.act_shape(a).iter().map(|&d| Int::K(d as i64)))
                .collect(),
        };
        let r = dims.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let start = clamp(super::values::attr_i(n, "start", 0));
        let end = clamp(super::values::attr_i(n, "end", r));
        Ok(Const::ints(dims[start..end.max(start)].to_vec()))
    }

    /// The value of input `k`.
    pub fn value(&self, n: &NodeProto, k: usize) -> Result<&Value> {
        let name = n
            .input
            .get(k)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.err(n, format!("input {k} is missing")))?;
        self.vals
            .get(name)
            .ok_or_else(|| self.err(n, format!("input `{name}` is not defined")))
    }

    /// A value by its ONNX name.
    pub fn value_named(&self, name: &str) -> Option<&Value> {
        self.vals.get(name)
    }

    /// Input `k` as a constant (weights, shapes); an error if it is computed at run time.
    pub fn konst(&self, n: &NodeProto, k: usize) -> Result<&Const> {
        match self.value(n, k)? {
            Value::Const(c) => Ok(c),
            Value::Act(_) => Err(self.err(
                n,
                format!(
                    "input {k} (`{}`) is computed at run time; gconv needs it constant",
                    n.input[k]
                ),
            )),
        }
    }

    /// Optional constant input `k` (`None` when omitted).
    pub fn opt_konst(&self, n: &NodeProto, k: usize) -> Result<Option<&Const>> {
        match n.input.get(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(_) => self.konst(n, k).map(Some),
        }
    }

    /// Input `k` as an activation.
    pub fn act(&self, n: &NodeProto, k: usize) -> Result<Act> {
        match self.value(n, k)? {
            Value::Act(a) => Ok(a.clone()),
            Value::Const(c) => Err(self.err(
                n,
                format!(
                    "input {k} (`{}`) is a constant {:?}; gconv imports this op on activations",
                    n.input[k], c.dims
                ),
            )),
        }
    }

    /// Input `k` as a plain `[C, H, W]` / `[F]` activation (a view is an error).
    pub fn plain(&self, n: &NodeProto, k: usize) -> Result<NodeId> {
        let a = self.act(n, k)?;
        match a.view {
            None => Ok(a.node),
            Some(v) => Err(self.err(
                n,
                format!(
                    "input {k} is a {}-D channel view {:?}; gconv imports it only as part of a \
                     channel shuffle (Reshape → Transpose → Reshape)",
                    v.dims.len() + 3,
                    v.dims
                ),
            )),
        }
    }

    /// Per-sample shape of an activation.
    pub fn act_shape(&self, a: &Act) -> Vec<usize> {
        match &a.view {
            None => self.b.shape(a.node).to_vec(),
            Some(v) => v.dims.iter().chain(&v.hw).copied().collect(),
        }
    }

    /// A node for a view: its channels gathered (nothing when the order is the identity).
    pub fn materialize(&mut self, n: &NodeProto, a: Act) -> Result<NodeId> {
        let Some(v) = a.view else { return Ok(a.node) };
        if v.src.iter().enumerate().all(|(i, &s)| i == s) {
            return Ok(a.node);
        }
        let name = self.layer_name(n, None);
        self.push(n, &name, Op::gather(v.src), &[a.node])
    }

    /// Sets output `k` of `n`.
    pub fn set(&mut self, n: &NodeProto, k: usize, v: Value) {
        if let Some(o) = n.output.get(k).filter(|s| !s.is_empty()) {
            self.vals.insert(o.clone(), v);
        }
    }

    /// Sets output 0 to a node's output.
    pub fn set_node(&mut self, n: &NodeProto, node: NodeId) {
        self.set(n, 0, Value::Act(Act { node, view: None }));
    }

    /// Sets output 0 to a view.
    pub fn set_view(&mut self, n: &NodeProto, node: NodeId, view: View) {
        self.set(
            n,
            0,
            Value::Act(Act {
                node,
                view: Some(view),
            }),
        );
    }

    /// Adds a node; a shape error becomes an [`Error::Onnx`] naming the ONNX node.
    pub fn push(&mut self, n: &NodeProto, name: &str, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        self.b
            .push(name, op, inputs)
            .map_err(|e| self.err(n, e.to_string()))
    }

    /// The ONNX nodes reading value `name`.
    pub fn consumers_of(&self, name: &str) -> &[usize] {
        self.consumers.get(name).map_or(&[], Vec::as_slice)
    }

    /// The ONNX node at `i`.
    pub fn onnx_node(&self, i: usize) -> &'a NodeProto {
        &self.nodes[i]
    }
}
