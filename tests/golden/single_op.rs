//! Single-op cases: each run directly through `gconv::cpu` and as a graph node.

use super::Case;
use gconv::cpu;
use gconv::graph::{GraphBuilder, GroupRange, Node, NodeId, Op};
use gconv::Tensor;

/// The graph op of a single-op case.
pub(crate) fn op_of(c: &Case) -> Option<Op> {
    Some(match c.kind() {
        "conv2d" => Op::Conv2d(c.conv_spec()),
        "flgc" => Op::FlgcConv2d(gconv::ops::FlgcSpec(c.conv_spec())),
        "grouped_conv_table" => Op::grouped_conv_from_ranges(
            c.conv_spec(),
            &serde_json::from_value::<Vec<GroupRange>>(c.val("table").clone())
                .expect("a group table"),
        ),
        "batch_norm" => Op::BatchNorm(gconv::ops::BatchNorm {
            channels: c.t("x").shape()[1],
            eps: c.val("eps").as_f64().expect("eps") as f32,
        }),
        "max_pool" => Op::MaxPool(gconv::ops::MaxPool(c.pool_spec())),
        "avg_pool" => Op::AvgPool(gconv::ops::AvgPool(c.pool_spec())),
        "adaptive_avg_pool" => Op::AdaptiveAvgPool(gconv::ops::AdaptiveAvgPool {
            output: c.pair("output"),
        }),
        "linear" => Op::Linear(gconv::ops::Linear {
            in_features: c.usize("in_features"),
            out_features: c.usize("out_features"),
            bias: c.bool("bias"),
        }),
        "relu" => Op::relu(),
        "relu6" => Op::relu6(),
        "add" => Op::Add(gconv::ops::Add),
        "softmax" => Op::Softmax(gconv::ops::Softmax),
        "gather" => Op::Gather(gconv::ops::Gather {
            indices: serde_json::from_value(c.val("indices").clone()).expect("indices"),
        }),
        _ => return None,
    })
}

/// Calls the `gconv::cpu` function of a single-op case directly.
fn run_direct(c: &Case, op: &Op) -> gconv::Result<Tensor> {
    let x = c.t("x");
    match op {
        Op::Conv2d(s) => cpu::conv2d(x, c.t("weight"), c.bias(), s),
        Op::FlgcConv2d(gconv::ops::FlgcSpec(s)) => {
            let (s_bar, t_bar) = (c.t("select_in"), c.t("select_out"));
            cpu::flgc_conv2d(x, c.t("weight"), c.bias(), s_bar, t_bar, s)
        }
        Op::GroupedConvTable(t) => cpu::grouped_conv_indexed(x, c.t("weight").data(), c.bias(), t),
        Op::BatchNorm(gconv::ops::BatchNorm { eps, .. }) => cpu::batch_norm(
            x,
            c.t("weight").data(),
            c.t("bias").data(),
            c.t("running_mean").data(),
            c.t("running_var").data(),
            *eps,
        ),
        Op::MaxPool(gconv::ops::MaxPool(p)) => cpu::max_pool2d(x, p),
        Op::AvgPool(gconv::ops::AvgPool(p)) => cpu::avg_pool2d(x, p),
        Op::AdaptiveAvgPool(gconv::ops::AdaptiveAvgPool { output }) => {
            cpu::adaptive_avg_pool2d(x, *output)
        }
        Op::Linear(gconv::ops::Linear { .. }) => cpu::linear(x, c.t("weight"), c.bias()),
        Op::Activation(gconv::ops::Activation::Relu) => Ok(cpu::relu(x)),
        Op::Activation(gconv::ops::Activation::Relu6) => Ok(cpu::relu6(x)),
        Op::Add(gconv::ops::Add) => cpu::add(x, c.t("x2")),
        Op::Softmax(gconv::ops::Softmax) => cpu::softmax(x),
        Op::Gather(gconv::ops::Gather { indices }) => cpu::gather_channels(x, indices),
        _ => unreachable!("op_of makes no other op"),
    }
}

/// The per-sample output shape that graph shape inference gives the op (2-D inputs are fed
/// as `[F, 1, 1]` through a flatten).
fn inferred_shape(c: &Case, op: &Op) -> gconv::Result<Vec<usize>> {
    let xs = c.t("x").shape();
    let (mut b, input): (GraphBuilder, NodeId) = match *xs {
        [_, ch, h, w] => (GraphBuilder::new(c.name, [ch, h, w]), 0),
        [_, f] => {
            let mut b = GraphBuilder::new(c.name, [f, 1, 1]);
            let flat = b.push("flatten", Op::Flatten(gconv::ops::Flatten), &[0])?;
            (b, flat)
        }
        _ => panic!("{}: input of rank {}", c.name, xs.len()),
    };
    let inputs = vec![input; op.arity()];
    let id = b.push(c.name, op.clone(), &inputs)?;
    Ok(b.shape(id).to_vec())
}

/// Checks one single-op case three ways; errors are messages naming the case.
pub(crate) fn check_single_op(c: &Case, op: Op) -> Result<(), String> {
    let err = |how: &str, e: gconv::Error| format!("{} ({how}): {e}", c.name);
    let y = run_direct(c, &op).map_err(|e| err("direct", e))?;
    c.check("direct", &y, "y")?;

    let node = Node {
        name: c.name.to_string(),
        op: op.clone(),
        inputs: vec![],
        shape: vec![],
    };
    let x = c.t("x");
    let ins: Vec<&Tensor> = match op {
        Op::Add(gconv::ops::Add) => vec![x, c.t("x2")],
        _ => vec![x],
    };
    let y = cpu::run_node(&node, &c.weights(false), &ins).map_err(|e| err("run_node", e))?;
    c.check("run_node", &y, "y")?;

    let shape = inferred_shape(c, &op).map_err(|e| err("shape inference", e))?;
    if shape != c.t("y").shape()[1..] {
        return Err(format!(
            "{}: shape inference gives {shape:?}, PyTorch {:?}",
            c.name,
            c.t("y").shape()
        ));
    }

    if let Op::FlgcConv2d(_) = op {
        let (s_bar, t_bar) = (c.t("select_in"), c.t("select_out"));
        let sm = |m: &Tensor| cpu::row_softmax(m).map_err(|e| err("row_softmax", e));
        c.check("row_softmax", &sm(s_bar)?, "select_in_softmax")?;
        c.check("row_softmax", &sm(t_bar)?, "select_out_softmax")?;
        let mask = cpu::flgc_mask(s_bar, t_bar).map_err(|e| err("flgc_mask", e))?;
        if mask.data() != c.t("mask").data() {
            return Err(format!(
                "{}: flgc_mask {:?} differs from PyTorch's {:?}",
                c.name,
                mask.data(),
                c.t("mask").data()
            ));
        }
    }
    Ok(())
}
