//! Exported models: a graph (after FLGC export / BN folding) and its weights in one
//! safetensors file, the graph as JSON under the `gconv_graph` metadata key. Written by
//! `gconv export`; read back with [`read_exported`] and run with
//! [`Runtime::load_graph`](crate::Runtime::load_graph) (nothing left to fold or export).

use super::safetensors::{read_safetensors, read_safetensors_metadata, write_safetensors};
use crate::error::{Error, Result};
use crate::graph::Graph;
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

/// Reads a file written by [`write_exported`]: the graph (re-checked by shape inference),
/// its weights (validated) and the other metadata.
pub fn read_exported(path: impl AsRef<Path>) -> Result<(Graph, Weights, BTreeMap<String, String>)> {
    let path = path.as_ref();
    let mut meta = read_safetensors_metadata(path)?;
    let json = meta.remove(GRAPH_KEY).ok_or_else(|| {
        Error::format(
            path,
            format!("not an exported gconv model (no `{GRAPH_KEY}` metadata; use `gconv export`)"),
        )
    })?;
    let mut graph: Graph = serde_json::from_str(&json)
        .map_err(|e| Error::format(path, format!("{GRAPH_KEY}: {e}")))?;
    if graph.nodes.is_empty() || graph.output >= graph.nodes.len() {
        return Err(Error::format(
            path,
            format!(
                "{GRAPH_KEY}: output node {} of {} nodes",
                graph.output,
                graph.nodes.len()
            ),
        ));
    }
    graph
        .revalidate()
        .map_err(|e| Error::format(path, format!("{GRAPH_KEY}: {e}")))?;
    let weights = read_safetensors(path)?;
    weights.validate(&graph)?;
    Ok((graph, weights, meta))
}
