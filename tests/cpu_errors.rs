//! Wrong shapes are errors, not panics: every `gconv::cpu` op returns
//! `Err(Error::TensorShape { .. })` for a tensor of the wrong shape, and graph building
//! reports the layer by name with the numbers involved.

use gconv::cpu;
use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, GroupRange, Node, Op, Pool2dSpec};
use gconv::zoo::ModelSpec;
use gconv::{Error, Tensor, Weights};

fn t(shape: &[usize]) -> Tensor {
    Tensor::from_fn(shape, |i| (i % 7) as f32 * 0.25 - 0.5)
}

/// Asserts a `TensorShape` error whose op contains `op`; returns its message.
#[track_caller]
fn tensor_shape_err(r: gconv::Result<Tensor>, op: &str) -> String {
    match r {
        Err(e @ Error::TensorShape { .. }) => {
            let Error::TensorShape { op: got, .. } = &e else {
                unreachable!()
            };
            assert!(got.contains(op), "op `{got}` should name `{op}`: {e}");
            e.to_string()
        }
        Err(e) => panic!("expected a TensorShape error from {op}, got {e:?}"),
        Ok(y) => panic!(
            "expected a TensorShape error from {op}, got a {:?} tensor",
            y.shape()
        ),
    }
}

/// Asserts a `Shape` (graph building) error for `layer` whose message contains `msg`.
#[track_caller]
fn shape_err<T: std::fmt::Debug>(r: gconv::Result<T>, layer: &str, msg: &str) -> String {
    match r {
        Err(e @ Error::Shape { .. }) => {
            let s = e.to_string();
            assert!(
                s.starts_with(&format!("{layer}: ")),
                "should name {layer}: {s}"
            );
            assert!(s.contains(msg), "should say `{msg}`: {s}");
            s
        }
        other => panic!("expected a Shape error naming {layer}, got {other:?}"),
    }
}

fn conv_spec() -> Conv2dSpec {
    Conv2dSpec::square(4, 6, 3, 1, 1).groups(2).bias(true)
}

#[test]
fn conv2d_wrong_shapes() {
    let s = conv_spec();
    let (x, w, b) = (t(&[1, 4, 5, 5]), t(&[6, 2, 3, 3]), vec![0.0; 6]);
    assert!(cpu::conv2d(&x, &w, Some(&b), &s).is_ok());
    tensor_shape_err(cpu::conv2d(&t(&[4, 5, 5]), &w, Some(&b), &s), "conv2d");
    tensor_shape_err(cpu::conv2d(&t(&[1, 3, 5, 5]), &w, Some(&b), &s), "conv2d");
    tensor_shape_err(cpu::conv2d(&x, &t(&[6, 4, 3, 3]), Some(&b), &s), "conv2d");
    tensor_shape_err(cpu::conv2d(&x, &t(&[6, 2, 3, 1]), Some(&b), &s), "conv2d");
    tensor_shape_err(cpu::conv2d(&x, &w, Some(&[0.0; 5]), &s), "conv2d");
    // groups that do not divide the channels, and G = 0, are errors too
    let s3 = Conv2dSpec {
        groups: 3,
        ..s.clone()
    };
    tensor_shape_err(cpu::conv2d(&x, &w, Some(&b), &s3), "conv2d");
    let s0 = Conv2dSpec {
        groups: 0,
        ..s.clone()
    };
    tensor_shape_err(cpu::conv2d(&x, &w, Some(&b), &s0), "conv2d");
    // an input smaller than the (unpadded) kernel
    let valid = Conv2dSpec::square(4, 6, 3, 1, 0).groups(2);
    tensor_shape_err(cpu::conv2d(&t(&[1, 4, 2, 5]), &w, None, &valid), "conv2d");
}

#[test]
fn grouped_conv_table_wrong_shapes() {
    let table = [
        GroupRange {
            in_start: 0,
            in_len: 1,
            out_start: 0,
            out_len: 2,
        },
        GroupRange {
            in_start: 1,
            in_len: 3,
            out_start: 2,
            out_len: 1,
        },
    ];
    let s = Conv2dSpec::square(4, 3, 1, 1, 0).groups(2);
    let (x, w) = (t(&[2, 4, 3, 3]), t(&[2 + 3]));
    assert!(cpu::grouped_conv_table(&x, w.data(), None, &s, &table).is_ok());
    let op = "grouped_conv_table";
    tensor_shape_err(
        cpu::grouped_conv_table(&t(&[4, 3, 3]), w.data(), None, &s, &table),
        op,
    );
    tensor_shape_err(
        cpu::grouped_conv_table(&t(&[2, 5, 3, 3]), w.data(), None, &s, &table),
        op,
    );
    tensor_shape_err(cpu::grouped_conv_table(&x, &[0.0; 6], None, &s, &table), op);
    tensor_shape_err(
        cpu::grouped_conv_table(&x, w.data(), Some(&[0.0; 2]), &s, &table),
        op,
    );
    // Tables that do not fit the channels are errors, not panics or silent reuse of filter 0.
    let bad_tables = [
        [
            table[0],
            GroupRange {
                in_len: 4,
                ..table[1]
            },
        ], // inputs 1..5 of 4
        [
            table[0],
            GroupRange {
                out_len: 2,
                ..table[1]
            },
        ], // outputs 2..4 of 3
        [
            table[0],
            GroupRange {
                out_start: 1,
                ..table[1]
            },
        ], // output 1 twice, 2 in none
    ];
    for bad in &bad_tables {
        let n: usize = bad.iter().map(|g| g.in_len * g.out_len).sum();
        tensor_shape_err(
            cpu::grouped_conv_table(&x, &vec![0.0; n], None, &s, bad),
            op,
        );
    }
    let gap = [
        table[0],
        GroupRange {
            out_len: 0,
            ..table[1]
        },
    ]; // output 2 in no group
    tensor_shape_err(cpu::grouped_conv_table(&x, &[0.0; 2], None, &s, &gap), op);
    // A group with filters but no input channels is legal (an exported FLGC layer can learn
    // one): its outputs are the bias alone.
    let no_inputs = [
        table[0],
        GroupRange {
            in_len: 0,
            ..table[1]
        },
    ];
    let n: usize = no_inputs.iter().map(|g| g.in_len * g.out_len).sum();
    let bias = [0.5f32, -1.0, 2.0];
    let y = cpu::grouped_conv_table(&x, &vec![1.0; n], Some(&bias), &s, &no_inputs).unwrap();
    let plane = y.shape()[2] * y.shape()[3];
    for (o, &b) in bias.iter().enumerate().skip(table[1].out_start) {
        assert!(y.data()[o * plane..(o + 1) * plane].iter().all(|&v| v == b));
    }
}

#[test]
fn flgc_wrong_shapes() {
    let s = Conv2dSpec::square(4, 6, 1, 1, 0).groups(2);
    let (x, w) = (t(&[1, 4, 3, 3]), t(&[6, 4, 1, 1]));
    let (si, so) = (t(&[4, 2]), t(&[6, 2]));
    assert!(cpu::flgc_conv2d(&x, &w, None, &si, &so, &s).is_ok());
    // S̄ and T̄ with different G
    tensor_shape_err(cpu::flgc_conv2d(&x, &w, None, &si, &t(&[6, 3]), &s), "flgc");
    // S̄ for 5 channels: the mask no longer fits the weight
    tensor_shape_err(cpu::flgc_conv2d(&x, &w, None, &t(&[5, 2]), &so, &s), "flgc");
    // a grouped-shaped weight instead of FLGC's dense one
    tensor_shape_err(
        cpu::flgc_conv2d(&x, &t(&[6, 2, 1, 1]), None, &si, &so, &s),
        "flgc",
    );
    // 3-D selection matrix
    tensor_shape_err(
        cpu::flgc_conv2d(&x, &w, None, &t(&[4, 2, 1]), &so, &s),
        "flgc",
    );
    // G = 0 (no column to take the argmax of)
    tensor_shape_err(cpu::row_argmax(&t(&[4, 0])).map(|_| t(&[1])), "row_argmax");
    tensor_shape_err(cpu::row_softmax(&t(&[4])), "row_softmax");
    tensor_shape_err(cpu::flgc_mask(&si, &t(&[6, 3])), "flgc");
    tensor_shape_err(cpu::masked_weight(&w, &t(&[6, 5])), "flgc");
}

#[test]
fn batch_norm_wrong_shapes() {
    let p = vec![1.0; 3];
    let x = t(&[2, 3, 2, 2]);
    assert!(cpu::batch_norm(&x, &p, &p, &p, &p, 1e-5).is_ok());
    tensor_shape_err(
        cpu::batch_norm(&t(&[2, 3]), &p, &p, &p, &p, 1e-5),
        "batch_norm",
    );
    tensor_shape_err(
        cpu::batch_norm(&t(&[2, 4, 2, 2]), &p, &p, &p, &p, 1e-5),
        "batch_norm",
    );
    let short = vec![1.0; 2];
    for i in 0..4 {
        let mut ps = [&p[..], &p[..], &p[..], &p[..]];
        ps[i] = &short;
        let e = tensor_shape_err(
            cpu::batch_norm(&x, ps[0], ps[1], ps[2], ps[3], 1e-5),
            "batch_norm",
        );
        assert!(e.contains("3 values"), "{e}");
    }
}

#[test]
fn pools_wrong_shapes() {
    let p = Pool2dSpec::square(3, 2, 1);
    assert!(cpu::max_pool2d(&t(&[1, 2, 5, 5]), &p).is_ok());
    tensor_shape_err(cpu::max_pool2d(&t(&[2, 5, 5]), &p), "max_pool");
    tensor_shape_err(cpu::avg_pool2d(&t(&[2, 5, 5]), &p), "avg_pool");
    let big = Pool2dSpec::square(4, 4, 0);
    tensor_shape_err(cpu::max_pool2d(&t(&[1, 2, 3, 8]), &big), "max_pool");
    tensor_shape_err(cpu::avg_pool2d(&t(&[1, 2, 8, 3]), &big), "avg_pool");
    tensor_shape_err(
        cpu::adaptive_avg_pool2d(&t(&[2, 5, 5]), [7, 7]),
        "adaptive_avg_pool",
    );
}

#[test]
fn dense_ops_wrong_shapes() {
    let (x, w) = (t(&[2, 5]), t(&[3, 5]));
    assert!(cpu::linear(&x, &w, Some(&[0.0; 3])).is_ok());
    tensor_shape_err(cpu::linear(&t(&[2, 5, 1, 1]), &w, None), "linear");
    tensor_shape_err(cpu::linear(&t(&[2, 4]), &w, None), "linear");
    tensor_shape_err(cpu::linear(&x, &t(&[3, 5, 1]), None), "linear");
    tensor_shape_err(cpu::linear(&x, &w, Some(&[0.0; 4])), "linear");
    tensor_shape_err(cpu::add(&t(&[1, 2, 3, 3]), &t(&[1, 2, 3, 4])), "add");
    tensor_shape_err(cpu::add(&t(&[2, 5]), &t(&[5, 2])), "add");
    tensor_shape_err(cpu::softmax(&t(&[2, 5, 1, 1])), "softmax");
    tensor_shape_err(cpu::gather_channels(&t(&[1, 3, 2, 2]), &[0, 3]), "gather");
    tensor_shape_err(cpu::gather_channels(&t(&[3, 2, 2]), &[0]), "gather");
}

fn single_node(op: Op) -> Node {
    Node {
        name: "features.7".into(),
        op,
        inputs: vec![],
        shape: vec![],
    }
}

#[test]
fn run_node_and_run_graph_name_the_layer() {
    // run_node prefixes the op with the node name
    let s = conv_spec();
    let mut w = Weights::new();
    w.insert("features.7.weight", t(&[6, 2, 3, 3]));
    w.insert("features.7.bias", t(&[6]));
    let node = single_node(Op::Conv2d(s));
    assert!(cpu::run_node(&node, &w, &[&t(&[1, 4, 5, 5])]).is_ok());
    let e = tensor_shape_err(cpu::run_node(&node, &w, &[&t(&[1, 3, 5, 5])]), "features.7");
    assert!(e.starts_with("features.7 (conv2d)"), "{e}");
    // a missing parameter is a Weights error naming the key
    let e = cpu::run_node(&node, &Weights::new(), &[&t(&[1, 4, 5, 5])]).unwrap_err();
    assert!(
        matches!(&e, Error::Weights { key, .. } if key == "features.7.weight"),
        "{e}"
    );
    // run_graph checks the input against the graph's
    let g: Graph = ModelSpec::load("vgg11bn").unwrap().build().unwrap();
    let w = Weights::new();
    let e = tensor_shape_err(cpu::run_graph(&g, &w, &t(&[1, 3, 32, 32])), "input");
    assert!(e.contains("[B, 3, 224, 224]"), "{e}");
    tensor_shape_err(cpu::run_graph(&g, &w, &t(&[3, 224, 224])), "input");
}

#[test]
fn graph_errors_name_the_layer() {
    let mut b = GraphBuilder::new("m", [64, 8, 8]);
    let e = shape_err(
        b.push(
            "features.10",
            Op::Conv2d(Conv2dSpec::square(64, 64, 3, 1, 1).groups(48)),
            &[0],
        ),
        "features.10",
        "not divisible by groups 48",
    );
    assert!(e.contains("in_channels 64"), "{e}");
    shape_err(
        b.push(
            "features.10",
            Op::Conv2d(Conv2dSpec::square(64, 100, 3, 1, 1).groups(8)),
            &[0],
        ),
        "features.10",
        "out_channels 100 not divisible by groups 8",
    );
    // channels mismatch
    shape_err(
        b.push(
            "features.3",
            Op::Conv2d(Conv2dSpec::square(32, 64, 3, 1, 1)),
            &[0],
        ),
        "features.3",
        "expects 32 input channels, got 64",
    );
    shape_err(
        b.push(
            "features.1",
            Op::BatchNorm(gconv::ops::BatchNorm {
                channels: 32,
                eps: 1e-5,
            }),
            &[0],
        ),
        "features.1",
        "over 32 channels got 64",
    );
    // linear without flatten
    let linear = Op::Linear(gconv::ops::Linear {
        in_features: 64 * 8 * 8,
        out_features: 10,
        bias: true,
    });
    shape_err(
        b.push("classifier.0", linear.clone(), &[0]),
        "classifier.0",
        "add a flatten",
    );
    let flat = b
        .push("flatten", Op::Flatten(gconv::ops::Flatten), &[0])
        .unwrap();
    assert!(b.push("classifier.0", linear, &[flat]).is_ok());
    // add of different shapes
    let pooled = b
        .push(
            "pool",
            Op::MaxPool(gconv::ops::MaxPool(Pool2dSpec::square(2, 2, 0))),
            &[0],
        )
        .unwrap();
    shape_err(
        b.push("layer1.0.add", Op::Add(gconv::ops::Add), &[0, pooled]),
        "layer1.0.add",
        "add of different shapes",
    );
    // a kernel that does not fit
    shape_err(
        b.push(
            "conv_big",
            Op::Conv2d(Conv2dSpec::square(64, 8, 11, 1, 1)),
            &[0],
        ),
        "conv_big",
        "does not fit",
    );
    // group tables that overlap or leave an output out
    let g = |in_start, in_len, out_start, out_len| GroupRange {
        in_start,
        in_len,
        out_start,
        out_len,
    };
    let spec = Conv2dSpec::square(64, 8, 1, 1, 0);
    shape_err(
        b.push(
            "t",
            Op::GroupedConvTable(gconv::ops::GroupedConvTable {
                spec: spec.clone(),
                table: vec![g(0, 32, 0, 5), g(32, 32, 4, 4)],
                in_index: (0..64).collect(),
                out_index: (0..8).collect(),
            }),
            &[0],
        ),
        "t",
        "leaves a gap",
    );
    shape_err(
        b.push(
            "t",
            Op::GroupedConvTable(gconv::ops::GroupedConvTable {
                spec,
                table: vec![g(0, 32, 0, 4), g(32, 40, 4, 4)],
                in_index: (0..64).collect(),
                out_index: (0..8).collect(),
            }),
            &[0],
        ),
        "t",
        "does not fit the index lists",
    );
}

#[test]
fn vgg_too_small_an_input_is_a_clear_shape_error() {
    let mut spec = ModelSpec::load("vgg13bn").unwrap();
    spec.input = [3, 16, 16];
    // 16 → 8 → 4 → 2 → 1: the fifth 2×2 max-pool has nothing to pool
    let e = shape_err(spec.build(), "features.34", "does not fit a 1×1 input");
    assert!(e.contains("pool window [2, 2]"), "{e}");
    // 32×32 (CIFAR) is the smallest size that passes all five pools
    spec.input = [3, 32, 32];
    assert!(spec.build().is_ok());
}
