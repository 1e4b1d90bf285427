//! The CPU reference path (`gconv::cpu`) against PyTorch-made goldens.
//!
//! The fixture `tests/fixtures/goldens.safetensors` is made by a committed script, from the
//! repository root:
//!
//! ```text
//! python3 scripts/make_goldens.py      # torch + numpy + safetensors; deterministic seed
//! ```
//!
//! Every tensor is keyed `"<case>.<name>"`; the safetensors `__metadata__` maps each case
//! to a JSON object with its `kind` and hyper-parameters (keys starting with `_` describe
//! the run and are not cases). The expected outputs were computed by PyTorch in float64
//! from the stored float32 inputs, so [`Tolerance::GOLDEN_OP`] measures gconv's error alone.
//!
//! Cases (kind: what is covered):
//! - `conv2d` (`F.conv2d`): G ∈ {1, 2, 3, 4, C}, channels per group > 1 where G < C,
//!   depthwise with channel multiplier 2, stride 2, padding 1 and 2, dilation 2, odd H/W
//!   (7×9, 9×7, 5×7), batch 1, 2 and 3, kernels 1×1, 3×3, 3×1 and 1×3 with mixed
//!   stride/padding/dilation, with and without bias;
//! - `batch_norm` (`F.batch_norm`, training=False): random γ, β, running stats; eps 1e-5, 1e-3;
//! - `max_pool` (3×3 s2 p1 as in ResNet, 2×2 s2 on odd sizes, 3×2 windows), `avg_pool`
//!   (padding with `count_include_pad`, no padding);
//! - `adaptive_avg_pool`: 10×9→7×7, 14×14→7×7, 7×7→7×7, 3×3→7×7, 1×1→7×7, 5×8→3×5, 9×7→1×1;
//! - `linear` (with and without bias), `relu`, `add`, `softmax` (large logits, ties),
//!   `gather` (`index_select` on dim 1, repeated and dropped channels);
//! - `flgc`: Wang et al. §2 forward with S̄ (C×G), T̄ (N×G) Gaussian, G=3, C=8, N=6, 1×1 and
//!   3×3 kernels, one case with exact ties in S̄/T̄ (lowest index wins); the row softmaxes
//!   Ŝ, T̂ and the mask M = T·Sᵀ are checked too;
//! - `grouped_conv_table`: uneven contiguous groups (per-group `F.conv2d` on channel slices,
//!   `torch.cat` in output order), with an empty group and a group without filters;
//! - `graph_vgg_tiny`: conv3×3+BN+ReLU, max-pool, grouped (G=4) conv+BN+ReLU, max-pool,
//!   adaptive avg-pool 2×2, flatten, linear — built with `GraphBuilder`, run by `run_graph`;
//! - `graph_resnet_bottleneck`: torchvision v1.5 Bottleneck (stride 2, downsample), node
//!   names as in `gconv::zoo`'s ResNet builder.
//!
//! Every single-op case is run twice: by calling the `gconv::cpu` function directly and as a
//! graph node through `run_node` (which reads parameters by key, exactly as stored); its
//! inferred output shape is checked against PyTorch's too. The test walks over every case in
//! the file, fails on an unknown kind and on any tensor that no check read, so no fixture can
//! be skipped silently.

use gconv::cpu;
use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, GroupRange, Node, NodeId, Op, Pool2dSpec};
use gconv::testing::{check_close, Tolerance};
use gconv::zoo::ModelSpec;
use gconv::{Tensor, Weights};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/goldens.safetensors"
);

/// The fixture file, decoded.
struct Goldens {
    /// Every tensor, by full key.
    tensors: BTreeMap<String, Tensor>,
    /// Case name → its JSON metadata.
    cases: BTreeMap<String, Value>,
    /// `_`-prefixed run information.
    info: BTreeMap<String, Value>,
}

fn load() -> Goldens {
    let bytes = std::fs::read(FIXTURE).unwrap_or_else(|e| {
        panic!("{FIXTURE}: {e} (make it with python3 scripts/make_goldens.py)")
    });
    let (_, header) = SafeTensors::read_metadata(&bytes).expect("safetensors header");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors file");
    let mut tensors = BTreeMap::new();
    for (key, view) in st.tensors() {
        assert_eq!(view.dtype(), Dtype::F32, "{key}: goldens are float32");
        let data = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(key, Tensor::new(view.shape().to_vec(), data).unwrap());
    }
    let (mut cases, mut info) = (BTreeMap::new(), BTreeMap::new());
    for (k, v) in header
        .metadata()
        .clone()
        .expect("__metadata__ with the cases")
    {
        let v: Value = serde_json::from_str(&v).unwrap_or_else(|e| panic!("metadata {k}: {e}"));
        if k.starts_with('_') {
            info.insert(k, v);
        } else {
            cases.insert(k, v);
        }
    }
    Goldens {
        tensors,
        cases,
        info,
    }
}

/// One case: its metadata and tensors, remembering which tensors were read.
struct Case<'a> {
    name: &'a str,
    meta: &'a Value,
    g: &'a Goldens,
    used: RefCell<BTreeSet<String>>,
}

impl<'a> Case<'a> {
    fn new(g: &'a Goldens, name: &'a str) -> Self {
        Case {
            name,
            meta: &g.cases[name],
            g,
            used: RefCell::default(),
        }
    }

    fn kind(&self) -> &str {
        self.meta["kind"].as_str().unwrap_or("<no kind>")
    }

    fn opt(&self, k: &str) -> Option<&'a Tensor> {
        let key = format!("{}.{k}", self.name);
        let t = self.g.tensors.get(&key);
        if t.is_some() {
            self.used.borrow_mut().insert(key);
        }
        t
    }

    fn t(&self, k: &str) -> &'a Tensor {
        self.opt(k)
            .unwrap_or_else(|| panic!("{}: tensor `{k}` missing from the fixture", self.name))
    }

    /// This case's tensors other than `x`, `x2`, `y`, as a [`Weights`] keyed as stored
    /// (`"<case>.weight"`, ...) or, with `strip`, with the case prefix removed.
    fn weights(&self, strip: bool) -> Weights {
        let prefix = format!("{}.", self.name);
        let mut w = Weights::new();
        for (k, t) in self.g.tensors.range(prefix.clone()..) {
            let Some(rest) = k.strip_prefix(&prefix) else {
                break;
            };
            if !["x", "x2", "y"].contains(&rest) {
                w.insert(if strip { rest } else { k.as_str() }, t.clone());
            }
        }
        w
    }

    fn val(&self, k: &str) -> &'a Value {
        let v = &self.meta[k];
        assert!(!v.is_null(), "{}: metadata `{k}` missing", self.name);
        v
    }

    fn usize(&self, k: &str) -> usize {
        self.val(k).as_u64().expect("an integer") as usize
    }

    fn pair(&self, k: &str) -> [usize; 2] {
        serde_json::from_value(self.val(k).clone()).expect("a pair of integers")
    }

    fn pair3(&self, k: &str) -> [usize; 3] {
        serde_json::from_value(self.val(k).clone()).expect("three integers")
    }

    fn bool(&self, k: &str) -> bool {
        self.val(k).as_bool().expect("a boolean")
    }

    fn conv_spec(&self) -> Conv2dSpec {
        Conv2dSpec {
            in_channels: self.usize("in_channels"),
            out_channels: self.usize("out_channels"),
            kernel: self.pair("kernel"),
            stride: self.pair("stride"),
            padding: self.pair("padding"),
            dilation: self.pair("dilation"),
            groups: self.usize("groups"),
            bias: self.bool("bias"),
        }
    }

    fn pool_spec(&self) -> Pool2dSpec {
        Pool2dSpec {
            kernel: self.pair("kernel"),
            stride: self.pair("stride"),
            padding: self.pair("padding"),
        }
    }

    fn bias(&self) -> Option<&'a [f32]> {
        self.opt("bias").map(Tensor::data)
    }

    /// Compares `actual` with the stored tensor `k` (shape and values, GOLDEN_OP).
    fn check(&self, what: &str, actual: &Tensor, k: &str) -> Result<(), String> {
        let expected = self.t(k);
        let label = format!("{}.{k} ({what})", self.name);
        if actual.shape() != expected.shape() {
            return Err(format!(
                "{label}: shape {:?}, expected {:?}",
                actual.shape(),
                expected.shape()
            ));
        }
        check_close(&label, actual.data(), expected.data(), Tolerance::GOLDEN_OP)
    }
}

/// The graph op of a single-op case.
fn op_of(c: &Case) -> Option<Op> {
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
        Op::Relu(_) => Ok(cpu::relu(x)),
        Op::Relu6(_) => Ok(cpu::relu6(x)),
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
fn check_single_op(c: &Case, op: Op) -> Result<(), String> {
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
    x = b.push("features.2", Op::Relu(gconv::ops::Relu), &[x])?;
    x = b.push("features.3", pool.clone(), &[x])?;
    let conv2 = Conv2dSpec::square(8, 16, 3, 1, 1).bias(true).groups(4);
    x = b.push("features.4", Op::Conv2d(conv2), &[x])?;
    x = b.push("features.5", bn(16), &[x])?;
    x = b.push("features.6", Op::Relu(gconv::ops::Relu), &[x])?;
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
    y = b.push(&format!("{p}.relu1"), Op::Relu(gconv::ops::Relu), &[y])?;
    y = b.push(
        &format!("{p}.conv2"),
        Op::Conv2d(Conv2dSpec::square(width, width, 3, stride, 1)),
        &[y],
    )?;
    y = b.push(&format!("{p}.bn2"), bn(width), &[y])?;
    y = b.push(&format!("{p}.relu2"), Op::Relu(gconv::ops::Relu), &[y])?;
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
    y = b.push(&format!("{p}.relu3"), Op::Relu(gconv::ops::Relu), &[y])?;
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
fn check_graph(c: &Case) -> Result<(), String> {
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

fn check_case(c: &Case) -> Result<(), String> {
    match c.kind() {
        "graph_vgg_tiny" | "graph_resnet_bottleneck" | "graph_mobilenetv2" => check_graph(c),
        kind => match op_of(c) {
            Some(op) => check_single_op(c, op),
            None => Err(format!(
                "{}: unknown case kind `{kind}`: teach tests/golden.rs to check it",
                c.name
            )),
        },
    }
}

#[test]
fn cpu_reference_matches_pytorch_goldens() {
    let g = load();
    assert!(!g.cases.is_empty(), "no cases in {FIXTURE}");
    let mut failures = Vec::new();
    let mut used = BTreeSet::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for name in g.cases.keys() {
        let c = Case::new(&g, name);
        *kinds.entry(c.kind().to_string()).or_default() += 1;
        if let Err(e) = check_case(&c) {
            failures.push(e);
        }
        used.extend(c.used.into_inner());
    }
    // A tensor that no check read means a case was (partly) skipped.
    for k in g.tensors.keys().filter(|k| !used.contains(*k)) {
        failures.push(format!("tensor `{k}` was not checked by any case"));
    }
    println!(
        "checked {} golden cases ({} tensors) against gconv::cpu: {kinds:?}",
        g.cases.len(),
        used.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} golden checks failed:\n{}",
        failures.len(),
        g.cases.len(),
        failures.join("\n")
    );
}

/// `[N, C/G, kh, kw]` → the equivalent dense `[N, C, kh, kw]` weight, with filter `o` placed
/// on the input channels of group `group_of(o)`.
fn densify(w: &Tensor, c: usize, groups: usize, group_of: impl Fn(usize) -> usize) -> Tensor {
    let [n, cin_g, kh, kw] = w.dims4("densify").unwrap();
    assert_eq!(cin_g * groups, c);
    let kk = kh * kw;
    let mut d = Tensor::zeros(&[n, c, kh, kw]);
    for o in 0..n {
        let c0 = group_of(o) * cin_g;
        let src = &w.data()[o * cin_g * kk..(o + 1) * cin_g * kk];
        d.data_mut()[(o * c + c0) * kk..(o * c + c0 + cin_g) * kk].copy_from_slice(src);
    }
    d
}

/// The fixtures discriminate: running the G=3 case with a wrong assignment of filters to
/// groups (as a dense conv with a re-arranged weight) must NOT match the goldens, while the
/// right assignment does.
#[test]
fn goldens_catch_a_wrong_group_formula() {
    let g = load();
    let c = Case::new(&g, "conv_g3_s2");
    let s = c.conv_spec();
    assert_eq!((s.groups, s.in_channels, s.out_channels), (3, 6, 6));
    let (x, w, y) = (c.t("x"), c.t("weight"), c.t("y"));
    let cout_g = s.out_channels / s.groups;
    let dense = Conv2dSpec {
        groups: 1,
        ..s.clone()
    };
    let run = |wd: &Tensor| {
        let out = cpu::conv2d(x, wd, c.bias(), &dense).unwrap();
        check_close("conv_g3_s2", out.data(), y.data(), Tolerance::GOLDEN_OP)
    };

    // Positive control: PyTorch's formula, filter o in group o / (N/G), as a dense conv.
    let right = densify(w, s.in_channels, s.groups, |o| o / cout_g);
    run(&right).expect("the right group formula, run densely, matches");

    // Wrong: filters dealt round-robin to the groups (o mod G).
    let rr = densify(w, s.in_channels, s.groups, |o| o % s.groups);
    let e = run(&rr).expect_err("o mod G must not match the goldens");
    println!("o mod G caught: {e}");

    // Wrong: G=1 with each filter's C/G weights tiled over all input channels.
    let cin_g = s.in_channels / s.groups;
    let kk = s.kernel[0] * s.kernel[1];
    let tiled = Tensor::from_fn(
        &[s.out_channels, s.in_channels, s.kernel[0], s.kernel[1]],
        |i| {
            let (o, ci, k) = (i / (s.in_channels * kk), (i / kk) % s.in_channels, i % kk);
            w.data()[(o * cin_g + ci % cin_g) * kk + k]
        },
    );
    let e = run(&tiled).expect_err("a tiled dense weight must not match the goldens");
    println!("tiled G=1 caught: {e}");

    // Wrong: every filter reading the first group's channels.
    let first = densify(w, s.in_channels, s.groups, |_| 0);
    run(&first).expect_err("all filters on group 0 must not match the goldens");
}

/// The fixture file stays small (it is committed).
#[test]
fn fixture_is_small() {
    let len = std::fs::metadata(FIXTURE).unwrap().len();
    assert!(len < 1 << 20, "{FIXTURE} is {len} bytes");
}

/// When the generator could import torchvision it recorded the parameter counts of
/// `resnet50()` and `vgg13_bn()`; they must equal gconv's zoo accounting. (Without
/// torchvision the zoo tests assert torchvision's published numbers instead.)
#[test]
fn torchvision_param_counts_if_recorded() {
    let g = load();
    let Some(counts) = g.info.get("_torchvision_param_counts") else {
        println!("fixture made without torchvision: no parameter-count cross-check");
        return;
    };
    for (tv, zoo) in [
        ("resnet50", "resnet50"),
        ("vgg13_bn", "vgg13bn"),
        ("mobilenet_v2", "mobilenetv2"),
    ] {
        let expected = counts[tv].as_u64().expect("a count");
        let got = ModelSpec::load(zoo)
            .unwrap()
            .build()
            .unwrap()
            .cost()
            .total_params;
        assert_eq!(got, expected, "{zoo} parameters vs torchvision {tv}");
    }
}
