//! Hostile model files: exported models whose graph claims too much (`gconv::io::exported`),
//! and model / scheme descriptions (TOML) that are huge, deep, binary or special. Every case
//! is an error naming the file (and the cap, where one applies), without panicking and
//! within `hostile_common::BOUND` bytes of allocation.

mod hostile_common;

use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, Op};
use gconv::io::exported::GRAPH_KEY;
use gconv::io::{read_exported, write_exported, write_safetensors};
use gconv::zoo::{ModelSpec, Scheme};
use gconv::{Error, Weights};
use hostile_common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// conv (3→4, 3×3, pad 1) → ReLU → global average pool → flatten → linear (4→2).
fn tiny() -> Graph {
    let mut b = GraphBuilder::new("tiny", [3, 8, 8]);
    let x = b.input();
    let x = b
        .push("conv", Op::Conv2d(Conv2dSpec::square(3, 4, 3, 1, 1)), &[x])
        .unwrap();
    let x = b.push("relu", Op::relu(), &[x]).unwrap();
    let x = b.push("pool", Op::adaptive_avg_pool([1, 1]), &[x]).unwrap();
    let x = b.push("flatten", Op::flatten(), &[x]).unwrap();
    let fc = Op::linear(4, 2, true);
    let x = b.push("fc", fc, &[x]).unwrap();
    b.finish(x)
}

/// Writes an exported-model file whose graph JSON is `graph` (with the tiny model's weights).
fn exported(dir: &Path, name: &str, graph: &Value) -> PathBuf {
    let p = dir.join(name);
    let w = Weights::init(&tiny(), 0);
    let meta = BTreeMap::from([(GRAPH_KEY.to_string(), graph.to_string())]);
    write_safetensors(&p, &w, &meta).unwrap();
    p
}

/// The tiny graph as JSON, changed by `f`.
fn tiny_json(f: impl FnOnce(&mut Value)) -> Value {
    let mut v = serde_json::to_value(tiny()).unwrap();
    f(&mut v);
    v
}

#[test]
fn exported_graph_claims_are_checked() {
    let _g = serial();
    let dir = scratch("exported");
    // The unchanged graph reads back (so the failures below are the changes').
    let p = dir.join("good.safetensors");
    write_exported(&p, &tiny(), &Weights::init(&tiny(), 0), &BTreeMap::new()).unwrap();
    assert_eq!(read_exported(&p).unwrap().0, tiny());

    let conv = |v: &mut Value| v["nodes"][1]["op"].clone();
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "int",
            tiny_json(|v| v["nodes"][1]["op"]["kernel"] = json!([33554432, 3])),
            vec!["gconv::limits::MAX_GRAPH_INTEGER = 16777216"],
        ),
        (
            "negative",
            tiny_json(|v| v["nodes"][1]["op"]["padding"] = json!([-1, 1])),
            vec!["negative integer -1"],
        ),
        (
            "input",
            tiny_json(|v| v["nodes"][0]["op"]["shape"] = json!([3, 16384, 16384])),
            vec!["input: shape [3, 16384, 16384]", "MAX_TENSOR_ELEMENTS"],
        ),
        (
            // Padding 2^23 on an 8×8 input: an activation of 4 × 2^24 × 2^24.
            "activation",
            tiny_json(|v| v["nodes"][1]["op"]["padding"] = json!([8388608, 8388608])),
            vec![
                "conv: output [4, 16777222, 16777222]",
                "MAX_TENSOR_ELEMENTS",
            ],
        ),
        (
            // 2^24 filters of 3×8×8: a weight of 3.2 G elements for a 2^24 × 1 × 1 output.
            "weight",
            tiny_json(|v| {
                v["nodes"][1]["op"]["out_channels"] = json!(16777216);
                v["nodes"][1]["op"]["kernel"] = json!([8, 8]);
                v["nodes"][1]["op"]["padding"] = json!([0, 0]);
            }),
            vec![
                "conv: weight [16777216, 3, 8, 8] (3221225472 elements)",
                "MAX_TENSOR_ELEMENTS",
            ],
        ),
        (
            // A one-group table conv with a 2^24 × 2^24 kernel: its weight size overflows
            // the products `param_shapes` would take.
            "table",
            tiny_json(|v| {
                let mut spec = conv(v);
                spec.as_object_mut().unwrap().remove("op");
                spec["kernel"] = json!([16777216, 16777216]);
                spec["padding"] = json!([16777216, 16777216]);
                spec["stride"] = json!([16777216, 16777216]);
                spec["out_channels"] = json!(1);
                v["nodes"][1]["op"] = json!({
                    "op": "grouped_conv_table", "spec": spec,
                    "table": [{"in_start": 0, "in_len": 3, "out_start": 0, "out_len": 1}],
                    "in_index": [0, 1, 2], "out_index": [0],
                });
            }),
            vec!["conv: weight [844424930131968]", "MAX_TENSOR_ELEMENTS"],
        ),
        (
            "output",
            tiny_json(|v| v["output"] = json!(99)),
            vec!["output node 99 of 6 nodes"],
        ),
        (
            "first",
            tiny_json(|v| v["nodes"].as_array_mut().unwrap().swap(0, 2)),
            vec!["node 0 must be the graph input"],
        ),
        (
            "cycle",
            tiny_json(|v| v["nodes"][2]["inputs"] = json!([4])),
            vec!["input node 4 does not exist yet"],
        ),
        (
            "deep",
            Value::String(format!("{}{}", "[".repeat(5000), "]".repeat(5000))),
            vec!["gconv_graph"],
        ),
    ];
    for (name, graph, needles) in cases {
        // "deep" is raw text: stored as the metadata string itself.
        let graph_text = match &graph {
            Value::String(s) if name == "deep" => s.clone(),
            g => g.to_string(),
        };
        let p = dir.join(format!("{name}.safetensors"));
        let meta = BTreeMap::from([(GRAPH_KEY.to_string(), graph_text)]);
        write_safetensors(&p, &Weights::init(&tiny(), 0), &meta).unwrap();
        let r = bounded(name, || read_exported(&p));
        assert_format(r, &p, &needles);
    }
    // No graph at all.
    let p = dir.join("weights.safetensors");
    write_safetensors(&p, &Weights::init(&tiny(), 0), &BTreeMap::new()).unwrap();
    assert_format(read_exported(&p), &p, &["not an exported gconv model"]);
}

#[test]
fn exported_graph_with_too_many_nodes() {
    let _g = serial();
    let dir = scratch("exported_nodes");
    let g = tiny_json(|v| {
        let relu = v["nodes"][2].clone();
        let nodes = v["nodes"].as_array_mut().unwrap();
        nodes.truncate(2);
        for i in 0..100_000 {
            let mut n = relu.clone();
            n["name"] = json!(format!("r{i}"));
            n["inputs"] = json!([i + 1]);
            nodes.push(n);
        }
        v["output"] = json!(100_001);
    });
    let p = exported(&dir, "nodes.safetensors", &g);
    let r = read_exported(&p);
    assert_format(
        r,
        &p,
        &["graph (100002 nodes) exceeds gconv::limits::MAX_GRAPH_NODES"],
    );
}

// ---- TOML -------------------------------------------------------------------------------------

#[test]
fn model_and_scheme_files_are_checked() {
    let _g = serial();
    let dir = scratch("toml");
    // Over the text cap (sparse: no disk used).
    let p = sparse(&dir, "big.toml", (1 << 20) + 1);
    let r = bounded("big", || ModelSpec::load(&p.to_string_lossy()));
    assert_format(r, &p, &["MAX_TEXT_FILE_BYTES = 1048576"]);
    let r = Scheme::load(&p.to_string_lossy());
    assert_format(r, &p, &["MAX_TEXT_FILE_BYTES"]);
    // Binary: what the CLI used to report as "stream did not contain valid UTF-8".
    let p = file(&dir, "bin.toml", b"name = \"x\"\n\xff\xfe\x00");
    assert_format(
        ModelSpec::load(&p.to_string_lossy()),
        &p,
        &["not a UTF-8 text file (invalid byte at offset 11)"],
    );
    // Deep nesting and huge numbers are parse or check errors, not crashes.
    for text in [
        format!("x = {}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("x = {}", "{a = ".repeat(50_000)),
        "name = \"n\"\nnum_classes = 18446744073709551616\ninput = [1, 1, 1]".to_string(),
        "name = \"n\"\nnum_classes = -1\ninput = [1, 1, 1]".to_string(),
    ] {
        let r = bounded("toml", || ModelSpec::from_toml(&text, "t.toml"));
        assert!(
            matches!(&r, Err(Error::Model { model, .. }) if model == "t.toml"),
            "{r:?}"
        );
        let r = bounded("scheme", || Scheme::from_toml(&text, "s.toml"));
        assert!(r.is_err(), "{r:?}");
    }
    // Well-formed but enormous models: refused by the graph caps while the graph is built,
    // before any weight is allocated (this aborted the process with a failed allocation).
    let resnet = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/resnet50-dsc.toml"
    ))
    .unwrap();
    for (from, to, needle) in [
        (
            "num_classes = 1000",
            "num_classes = 1000000000000",
            "MAX_TENSOR_ELEMENTS",
        ),
        ("input = [3, 224, 224]", "input = [3, 70000, 70000]", "MAX_"),
        (
            "layers = [3, 4, 6, 3]",
            "layers = [30000, 4, 6, 3]",
            "MAX_GRAPH_NODES",
        ),
    ] {
        let text = resnet.replace(from, to);
        let r = bounded(to, || {
            ModelSpec::from_toml(&text, "t.toml").and_then(|s| s.build())
        });
        let msg = r.expect_err(to).to_string();
        assert!(msg.contains(needle), "{to}: {msg}");
    }
}
