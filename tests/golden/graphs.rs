//! Whole-network cases (tiny VGG, ResNet bottleneck, MobileNetV2) run by `run_graph`.

use super::Case;
use gconv::cpu;
use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, Op, Pool2dSpec};
use gconv::zoo::ModelSpec;

/// The tiny VGG-BN stack of the fixture, with gconv's VGG node names.
fn vgg_tiny(input: [usize; 3]) -> gconv::Result<Graph> {
    let mut b = GraphBuilder::new("vgg_tiny", input);
    let bn = |channels| {
        Op::BatchNorm(gconv::ops::BatchNorm {
            channels,
            eps: 1e-5,
        })
    };
    let pool = Op::MaxPool(gconv::ops::MaxPool(Pool2dSpec::square(2, 2, 0)));
    let mut x = b.input();
    let conv1 = Conv2dSpec::square(input[0], 8, 3, 1, 1).bias(true);
    x = b.push("features.0", Op::Conv2d(conv1), &[x])?;
    x = b.push("features.1", bn(8), &[x])?;
    x = b.push("features.2", Op::relu(), &[x])?;
    x = b.push("features.3", pool.clone(), &[x])?;
    let conv2 = Conv2dSpec::square(8, 16, 3, 1, 1).bias(true).groups(4);
    x = b.push("features.4", Op::Conv2d(conv2), &[x])?;
    x = b.push("features.5", bn(16), &[x])?;
    x = b.push("features.6", Op::relu(), &[x])?;
    x = b.push("features.7", pool, &[x])?;
    x = b.push(
        "avgpool",
        Op::AdaptiveAvgPool(gconv::ops::AdaptiveAvgPool { output: [2, 2] }),
        &[x],
    )?;
    x = b.push("flatten", Op::Flatten(gconv::ops::Flatten), &[x])?;
    let fc = Op::Linear(gconv::ops::Linear {
        in_features: 64,
        out_features: 10,
        bias: true,
    });
    x = b.push("classifier.0", fc, &[x])?;
    Ok(b.finish(x))
}

/// One torchvision v1.5 Bottleneck named like `gconv::zoo`'s ResNet builder (`layer1.0.*`).
fn resnet_bottleneck(c: &Case) -> gconv::Result<Graph> {
    let input: [usize; 3] = c.pair3("input");
    let (width, out, stride) = (c.usize("width"), c.usize("out"), c.usize("stride"));
    let mut b = GraphBuilder::new("resnet_bottleneck", input);
    let bn = |channels| {
        Op::BatchNorm(gconv::ops::BatchNorm {
            channels,
            eps: 1e-5,
        })
    };
    let p = "layer1.0";
    let x = b.input();
    let mut y = b.push(
        &format!("{p}.conv1"),
        Op::Conv2d(Conv2dSpec::square(input[0], width, 1, 1, 0)),
        &[x],
    )?;
    y = b.push(&format!("{p}.bn1"), bn(width), &[y])?;
    y = b.push(&format!("{p}.relu1"), Op::relu(), &[y])?;
    y = b.push(
        &format!("{p}.conv2"),
        Op::Conv2d(Conv2dSpec::square(width, width, 3, stride, 1)),
        &[y],
    )?;
    y = b.push(&format!("{p}.bn2"), bn(width), &[y])?;
    y = b.push(&format!("{p}.relu2"), Op::relu(), &[y])?;
    y = b.push(
        &format!("{p}.conv3"),
        Op::Conv2d(Conv2dSpec::square(width, out, 1, 1, 0)),
        &[y],
    )?;
    y = b.push(&format!("{p}.bn3"), bn(out), &[y])?;
    let mut d = b.push(
        &format!("{p}.downsample.0"),
        Op::Conv2d(Conv2dSpec::square(input[0], out, 1, stride, 0)),
        &[x],
    )?;
    d = b.push(&format!("{p}.downsample.1"), bn(out), &[d])?;
    y = b.push(&format!("{p}.add"), Op::Add(gconv::ops::Add), &[y, d])?;
    y = b.push(&format!("{p}.relu3"), Op::relu(), &[y])?;
    Ok(b.finish(y))
}

/// torchvision's MobileNetV2 as `gconv::zoo` builds it (width, classes and input of the case).
fn mobilenetv2(c: &Case) -> gconv::Result<Graph> {
    let mut spec = ModelSpec::load("mobilenetv2")?;
    spec.input = c.pair3("input");
    spec.num_classes = c.usize("num_classes");
    spec.width = c.val("width").as_f64().expect("width") as f32;
    spec.build()
}

/// Builds the graph of a whole-network case, loads its state_dict and runs `run_graph`.
pub(crate) fn check_graph(c: &Case) -> Result<(), String> {
    let graph = match c.kind() {
        "graph_vgg_tiny" => vgg_tiny(c.pair3("input")),
        "graph_resnet_bottleneck" => resnet_bottleneck(c),
        "graph_mobilenetv2" => mobilenetv2(c),
        k => unreachable!("not a graph kind: {k}"),
    }
    .map_err(|e| format!("{}: building the graph: {e}", c.name))?;
    let w = c.weights(true);
    // Exactly the graph's parameters, with torchvision's keys and shapes.
    w.validate(&graph)
        .map_err(|e| format!("{}: state_dict vs graph: {e}", c.name))?;
    for (k, _) in w.iter() {
        c.t(k); // every parameter is read by the run
    }
    let y = cpu::run_graph(&graph, &w, c.t("x")).map_err(|e| format!("{}: {e}", c.name))?;
    c.check("run_graph", &y, "y")
}
