//! Runs a graph node by node on the CPU, freeing each value after its last use.

use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Op};
use crate::tensor::Tensor;
use crate::weights::Weights;

fn param<'a>(w: &'a Weights, node: &Node, suffix: &str) -> Result<&'a Tensor> {
    w.require(&format!("{}.{suffix}", node.name))
}

fn opt_bias<'a>(w: &'a Weights, node: &Node, has: bool) -> Result<Option<&'a [f32]>> {
    Ok(if has {
        Some(param(w, node, "bias")?.data())
    } else {
        None
    })
}

/// Applies one node to its input values.
pub fn run_node(node: &Node, w: &Weights, ins: &[&Tensor]) -> Result<Tensor> {
    let x = ins.first().copied();
    let x0 = || x.ok_or_else(|| Error::shape(&node.name, "missing input"));
    let named = |e: Error| match e {
        Error::TensorShape { op, expected, got } => Error::TensorShape {
            op: format!("{} ({op})", node.name),
            expected,
            got,
        },
        e => e,
    };
    let out = match &node.op {
        Op::Input { .. } => Ok(x0()?.clone()),
        Op::Conv2d(s) => super::conv2d(
            x0()?,
            param(w, node, "weight")?,
            opt_bias(w, node, s.bias)?,
            s,
        ),
        Op::FlgcConv2d(s) => super::flgc_conv2d(
            x0()?,
            param(w, node, "weight")?,
            opt_bias(w, node, s.bias)?,
            param(w, node, "select_in")?,
            param(w, node, "select_out")?,
            s,
        ),
        Op::GroupedConvTable {
            spec,
            table,
            in_index,
            out_index,
        } => super::grouped_conv_indexed(
            x0()?,
            param(w, node, "weight")?.data(),
            opt_bias(w, node, spec.bias)?,
            spec,
            table,
            in_index,
            out_index,
        ),
        Op::BatchNorm { eps, .. } => super::batch_norm(
            x0()?,
            param(w, node, "weight")?.data(),
            param(w, node, "bias")?.data(),
            param(w, node, "running_mean")?.data(),
            param(w, node, "running_var")?.data(),
            *eps,
        ),
        Op::Relu => Ok(super::relu(x0()?)),
        Op::MaxPool(p) => super::max_pool2d(x0()?, p),
        Op::AvgPool(p) => super::avg_pool2d(x0()?, p),
        Op::AdaptiveAvgPool { output } => super::adaptive_avg_pool2d(x0()?, *output),
        Op::Linear { bias, .. } => {
            super::linear(x0()?, param(w, node, "weight")?, opt_bias(w, node, *bias)?)
        }
        Op::Add => super::add(
            x0()?,
            ins.get(1)
                .ok_or_else(|| Error::shape(&node.name, "add needs two inputs"))?,
        ),
        Op::Flatten => {
            let x = x0()?;
            let b = x.shape()[0];
            x.clone().reshape(&[b, x.numel() / b.max(1)])
        }
        Op::Dropout { .. } => Ok(x0()?.clone()),
        Op::Softmax => super::softmax(x0()?),
        Op::Gather { indices } => super::gather_channels(x0()?, indices),
    };
    out.map_err(named)
}

/// Runs `graph` on a `[B, C, H, W]` input; returns the output (`[B, ...]`).
pub fn run_graph(graph: &Graph, w: &Weights, input: &Tensor) -> Result<Tensor> {
    run_graph_timed(graph, w, input).map(|(t, _)| t)
}

/// Like [`run_graph`], also returning each node's wall-clock time in seconds.
pub fn run_graph_timed(
    graph: &Graph,
    w: &Weights,
    input: &Tensor,
) -> Result<(Tensor, Vec<(String, f64)>)> {
    let [c, h, wd] = graph.input_shape();
    let [_, ic, ih, iw] = input.dims4("model input")?;
    if [ic, ih, iw] != [c, h, wd] {
        return Err(Error::tensor_shape(
            format!("{} input", graph.name),
            format!("[B, {c}, {h}, {wd}]"),
            input.shape(),
        ));
    }
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
