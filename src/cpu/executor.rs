//! Runs a graph node by node on the CPU, freeing each value after its last use.

use crate::error::{Error, Result};
use crate::graph::{Graph, Node};
use crate::ops::Params;
use crate::tensor::Tensor;
use crate::weights::Weights;

/// Puts the node's name in front of a tensor-shape error raised inside an op.
pub(crate) fn name_err(node: &Node, e: Error) -> Error {
    match e {
        Error::TensorShape { op, expected, got } => Error::TensorShape {
            op: format!("{} ({op})", node.name),
            expected,
            got,
        },
        Error::InvalidArgument(msg) => Error::InvalidArgument(format!("{}: {msg}", node.name)),
        e => e,
    }
}

/// Applies one node (inference semantics) to its input values.
pub fn run_node(node: &Node, w: &Weights, ins: &[&Tensor]) -> Result<Tensor> {
    let def = node.op.def();
    // The input node takes its value as its one input.
    let need = def.arity().max(1);
    if ins.len() != need {
        return Err(Error::shape(
            &node.name,
            format!("{} takes {need} input(s), got {}", def.kind(), ins.len()),
        ));
    }
    let p = Params {
        layer: &node.name,
        weights: w,
    };
    def.forward(&p, ins).map_err(|e| name_err(node, e))
}

/// Runs `graph` on a `[B, C, H, W]` input; returns the output (`[B, ...]`).
pub fn run_graph(graph: &Graph, w: &Weights, input: &Tensor) -> Result<Tensor> {
    run_graph_timed(graph, w, input).map(|(t, _)| t)
}

/// Checks that `input` is `[B, C, H, W]` with the graph's per-sample shape.
pub(crate) fn check_input(graph: &Graph, input: &Tensor) -> Result<usize> {
    let [c, h, wd] = graph.input_shape();
    let [b, ic, ih, iw] = input.dims4("model input")?;
    if [ic, ih, iw] != [c, h, wd] {
        return Err(Error::tensor_shape(
            format!("{} input", graph.name),
            format!("[B, {c}, {h}, {wd}]"),
            input.shape(),
        ));
    }
    Ok(b)
}

/// Like [`run_graph`], also returning each node's wall-clock time in seconds.
pub fn run_graph_timed(
    graph: &Graph,
    w: &Weights,
    input: &Tensor,
) -> Result<(Tensor, Vec<(String, f64)>)> {
    check_input(graph, input)?;
    let last = graph.last_uses();
    let mut vals: Vec<Option<Tensor>> = vec![None; graph.nodes.len()];
    vals[0] = Some(input.clone());
    let mut times = Vec::with_capacity(graph.nodes.len());
    for (i, node) in graph.nodes.iter().enumerate().skip(1) {
        let ins: Vec<&Tensor> = node
            .inputs
            .iter()
            .map(|&p| {
                vals[p]
                    .as_ref()
                    .expect("inputs are computed before their consumers")
            })
            .collect();
        let t0 = std::time::Instant::now();
        let out = run_node(node, w, &ins)?;
        times.push((node.name.clone(), t0.elapsed().as_secs_f64()));
        for &p in &node.inputs {
            if last[p] == i {
                vals[p] = None;
            }
        }
        vals[i] = Some(out);
    }
    Ok((vals[graph.output].take().expect("output computed"), times))
}
