//! ONNX networks using each activation after grouped convs against onnxruntime: the fixtures
//! of `scripts/make_activation_fixtures.py` (a tiny grouped CNN per activation form — the
//! ONNX operators, and the arithmetic PyTorch exports for GELU's erf and tanh forms, SiLU and
//! opset 13's hard swish), with onnxruntime's outputs as goldens, on the CPU and (when there
//! is an adapter) the GPU; and bad activation attributes.

mod common;

use gconv::graph::{Graph, Op};
use gconv::onnx::read_onnx;
use gconv::testing::{check_close, Tolerance};
use gconv::{cpu, io, Error, LoadOptions, Runtime, Tensor};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/activations")
}

struct Case {
    name: String,
    opset: i64,
    activation: String,
    count: usize,
    tol: Tolerance,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let out: Vec<Case> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, e)| Case {
            name: name.clone(),
            opset: e["opset"].as_i64().unwrap(),
            activation: e["activation"].as_str().unwrap().to_string(),
            count: e["count"].as_u64().unwrap() as usize,
            tol: Tolerance {
                atol: e["atol"].as_f64().unwrap() as f32,
                rtol: e["rtol"].as_f64().unwrap() as f32,
            },
        })
        .collect();
    assert!(out.len() >= 16, "expected.json lists {} models", out.len());
    out
}

fn golden(name: &str) -> (Tensor, Tensor) {
    let x = io::read_npy(dir().join(format!("{name}.input.npy"))).unwrap();
    let y = io::read_npy(dir().join(format!("{name}.output.npy"))).unwrap();
    (x, y)
}

/// The imported graph is the convs (a BN, unless the exporter folded it), the add, the two
/// activations, the mean and the linear layer: every decomposition became one activation.
fn check_graph(c: &Case, g: &Graph) {
    let acts: Vec<&str> = g
        .nodes
        .iter()
        .filter_map(|n| n.op.activation().map(|a| a.kind()))
        .collect();
    assert_eq!(acts, vec![c.activation.as_str(); c.count], "{}", c.name);
    let structural = [
        "input",
        "conv2d",
        "batch_norm",
        "add",
        "adaptive_avg_pool",
        "flatten",
        "linear",
    ];
    for n in &g.nodes {
        let k = n.op.kind();
        assert!(
            structural.contains(&k) || matches!(n.op, Op::Activation(_)),
            "{}: {} is a {k}",
            c.name,
            n.name
        );
    }
}

#[test]
fn every_activation_network_matches_onnxruntime_on_the_cpu() {
    // Every row ONNX names has a network (a new one needs its case in the script).
    let cases = cases();
    for r in gconv::ops::Activation::ROWS
        .iter()
        .filter(|r| r.onnx.is_some())
    {
        assert!(
            cases.iter().any(|c| c.activation == r.kind),
            "no ONNX network uses {} (scripts/make_activation_fixtures.py CASES)",
            r.kind
        );
    }
    for c in cases {
        let m = read_onnx(dir().join(format!("{}.onnx", c.name))).unwrap();
        assert_eq!(m.opset, c.opset, "{}", c.name);
        check_graph(&c, &m.graph);
        let (x, want) = golden(&c.name);
        let got = cpu::run_graph(&m.graph, &m.weights, &x).unwrap();
        check_close(&c.name, got.data(), want.data(), c.tol).unwrap();
    }
}

#[test]
fn every_activation_network_matches_onnxruntime_on_the_gpu() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let rt = Runtime::with_context(ctx.clone());
    for c in cases() {
        let m = read_onnx(dir().join(format!("{}.onnx", c.name))).unwrap();
        let (x, want) = golden(&c.name);
        let mut model = rt
            .load_graph(m.graph, m.weights, &LoadOptions::default())
            .unwrap();
        let got = model.run(&x).unwrap();
        check_close(&format!("{} (GPU)", c.name), got.data(), want.data(), c.tol).unwrap();
    }
}

#[test]
fn bad_activation_attributes_name_the_node() {
    for (file, needle) in [
        ("bad_leaky_relu_alpha.onnx", "alpha"),
        ("bad_gelu_approximate.onnx", "approximate"),
    ] {
        let err = read_onnx(dir().join(file)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Onnx { .. }), "{file}: {text}");
        assert!(
            text.contains("/act/") && text.contains(needle),
            "{file}: {text}"
        );
    }
    // The decomposition with a wrong constant is not GELU: it is imported op by op, and its
    // first node is refused by name.
    let err = read_onnx(dir().join("bad_gelu_constant.onnx")).unwrap_err();
    assert!(
        err.to_string().contains("unsupported operator `Div`"),
        "{err}"
    );
}
