//! Exported models: a graph (after FLGC export / BN folding) and its weights in one
//! safetensors file, the graph as JSON under the `gconv_graph` metadata key. Written by
//! `gconv export`; read back with [`read_exported`] and run with
//! [`Runtime::load_graph`](crate::Runtime::load_graph) (nothing left to fold or export).

//!
//! A stranger's graph is checked before it is believed: at most [`MAX_GRAPH_NODES`] nodes,
//! no integer above [`MAX_GRAPH_INTEGER`], and, node by node as shapes are inferred, every
//! activation and parameter tensor within [`check_shape`]'s caps, so that nothing the
//! graph claims can overflow later arithmetic or allocate more than those caps.

use super::safetensors::{metadata_from_bytes, safetensors_from_bytes, write_safetensors};
use crate::error::{Error, Result};
use crate::fs::read_file;
use crate::graph::{Graph, GraphBuilder, GroupedConvTable, Op};
use crate::limits::{
    check_shape, MAX_GRAPH_INTEGER, MAX_GRAPH_NODES, MAX_TENSOR_ELEMENTS, MAX_WEIGHTS_FILE_BYTES,
};
use crate::weights::Weights;
use std::collections::BTreeMap;
use std::path::Path;

/// Metadata key holding the graph JSON.
pub const GRAPH_KEY: &str = "gconv_graph";

/// Writes `graph` and `weights` (checked against each other) to `path` atomically, with
/// `meta` as extra metadata (e.g. input normalisation).
pub fn write_exported(
    path: impl AsRef<Path>,
    graph: &Graph,
    weights: &Weights,
    meta: &BTreeMap<String, String>,
) -> Result<()> {
    weights.validate(graph)?;
    let mut meta = meta.clone();
    let json = serde_json::to_string(graph)
        .map_err(|e| Error::InvalidArgument(format!("graph {}: {e}", graph.name)))?;
    meta.insert(GRAPH_KEY.to_string(), json);
    write_safetensors(path, weights, &meta)
}

/// Reads a file written by [`write_exported`]: the graph (checked against the caps of
/// [`crate::limits`], then re-checked by shape inference), its weights (validated) and the
/// other metadata.
pub fn read_exported(path: impl AsRef<Path>) -> Result<(Graph, Weights, BTreeMap<String, String>)> {
    let path = path.as_ref();
    let bytes = read_file(path, MAX_WEIGHTS_FILE_BYTES)?;
    exported_from_bytes(&bytes, path)
}

/// Reads an exported model held in memory, as [`read_exported`] does; `origin` names the
/// bytes in errors.
pub fn exported_from_bytes(
    bytes: &[u8],
    origin: impl AsRef<Path>,
) -> Result<(Graph, Weights, BTreeMap<String, String>)> {
    let path = origin.as_ref();
    let mut meta = metadata_from_bytes(bytes, path)?;
    let json = meta.remove(GRAPH_KEY).ok_or_else(|| {
        Error::format(
            path,
            format!("not an exported gconv model (no `{GRAPH_KEY}` metadata; use `gconv export`)"),
        )
    })?;
    let graph =
        graph_from_json(&json).map_err(|m| Error::format(path, format!("{GRAPH_KEY}: {m}")))?;
    let weights = safetensors_from_bytes(bytes, path)?;
    weights.validate(&graph)?;
    Ok((graph, weights, meta))
}

/// Parses and checks a graph's JSON.
fn graph_from_json(json: &str) -> Result<Graph, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    check_integers(&value)?;
    let mut graph: Graph = serde_json::from_value(value).map_err(|e| e.to_string())?;
    MAX_GRAPH_NODES.check("graph", graph.nodes.len() as u64)?;
    if graph.nodes.is_empty() || graph.output >= graph.nodes.len() {
        return Err(format!(
            "output node {} of {} nodes",
            graph.output,
            graph.nodes.len()
        ));
    }
    check_sizes(&graph)?;
    graph.revalidate().map_err(|e| e.to_string())?;
    Ok(graph)
}

/// Refuses any integer above [`MAX_GRAPH_INTEGER`] anywhere in the JSON (walked without
/// recursion; serde_json already caps the nesting depth at 128).
fn check_integers(v: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Number(n) => {
                if let Some(i) = n.as_u64() {
                    MAX_GRAPH_INTEGER.check("integer", i)?;
                } else if let Some(i) = n.as_i64() {
                    return Err(format!("negative integer {i}"));
                }
            }
            Value::Array(a) => stack.extend(a),
            Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    Ok(())
}

/// Infers shapes node by node (as [`Graph::revalidate`] will), checking each activation
/// and each parameter tensor against the caps before the next node's arithmetic uses it.
fn check_sizes(graph: &Graph) -> Result<(), String> {
    let Op::Input(crate::ops::Input { shape }) = graph.nodes[0].op else {
        return Err(format!(
            "{}: node 0 must be the graph input",
            graph.nodes[0].name
        ));
    };
    check_shape(&shape).map_err(|m| format!("input: {m}"))?;
    let mut b = GraphBuilder::new(&graph.name, shape);
    for n in &graph.nodes[1..] {
        let id = b
            .push(&n.name, n.op.clone(), &n.inputs)
            .map_err(|e| e.to_string())?;
        check_shape(b.shape(id)).map_err(|m| format!("{}: output {m}", n.name))?;
        check_params(&n.op).map_err(|m| format!("{}: {m}", n.name))?;
    }
    Ok(())
}

/// Checks the sizes of an op's parameters (after shape inference accepted the op).
fn check_params(op: &Op) -> Result<(), String> {
    if let Op::GroupedConvTable(GroupedConvTable { spec, table, .. }) = op {
        // `param_shapes` sums these products; check them first.
        let n = table
            .iter()
            .try_fold(0u64, |acc, g| {
                [g.out_len, g.in_len, spec.kernel[0], spec.kernel[1]]
                    .iter()
                    .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
                    .and_then(|x| acc.checked_add(x))
            })
            .unwrap_or(u64::MAX);
        MAX_TENSOR_ELEMENTS.check("weight of the grouped conv", n)?;
    }
    for p in op.def().params() {
        check_shape(&p.shape).map_err(|m| format!("{}: {m}", p.suffix))?;
    }
    Ok(())
}
