//! ONNX import against onnxruntime: the fixtures of `scripts/make_onnx_fixtures.py` (reduced
//! torchvision ResNeXt, MobileNetV2, MobileNetV3-small, ShuffleNetV2 — TorchScript and dynamo
//! exports — RegNetX, a squeeze-excitation/MatMul/softmax head, and a gconv FLGC export rebuilt
//! in PyTorch), with onnxruntime's outputs as goldens.
//!
//! Tolerance: atol 1e-4 + rtol 1e-3 (f32 throughout; summation orders differ from
//! onnxruntime's, over ≤ 30 layers). Every fixture states it in `expected.json`.

mod common;

use gconv::graph::{fold_permutations, Graph, Op};
use gconv::onnx::{parse_onnx, read_onnx};
use gconv::ops::Activation;
use gconv::testing::{check_close, Tolerance};
use gconv::{cpu, io, Error, Tensor};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

struct Case {
    name: String,
    macs: u64,
    params: u64,
    opset: i64,
    tol: Tolerance,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out: Vec<Case> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, e)| Case {
            name: name.clone(),
            macs: e["macs"].as_u64().unwrap(),
            params: e["params"].as_u64().unwrap(),
            opset: e["opset"].as_i64().unwrap(),
            tol: Tolerance {
                atol: e["atol"].as_f64().unwrap() as f32,
                rtol: e["rtol"].as_f64().unwrap() as f32,
            },
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(out.len() >= 8, "expected.json lists {} models", out.len());
    out
}

fn golden(name: &str) -> (Tensor, Tensor) {
    let x = io::read_npy(dir().join(format!("{name}.input.npy"))).unwrap();
    let y = io::read_npy(dir().join(format!("{name}.output.npy"))).unwrap();
    (x, y)
}

fn count(g: &Graph, f: fn(&Op) -> bool) -> usize {
    g.nodes.iter().filter(|n| f(&n.op)).count()
}

#[test]
fn every_fixture_matches_onnxruntime_on_the_cpu_folded_or_not() {
    for c in cases() {
        let m = read_onnx(dir().join(format!("{}.onnx", c.name))).unwrap();
        assert_eq!(m.opset, c.opset, "{}", c.name);
        let (x, want) = golden(&c.name);
        let got = cpu::run_graph(&m.graph, &m.weights, &x).unwrap();
        assert_eq!(got.shape(), want.shape(), "{}", c.name);
        check_close(&c.name, got.data(), want.data(), c.tol).unwrap();
        let (fg, fw, rep) = fold_permutations(&m.graph, &m.weights).unwrap();
        let folded = cpu::run_graph(&fg, &fw, &x).unwrap();
        check_close(
            &format!("{} folded", c.name),
            folded.data(),
            want.data(),
            c.tol,
        )
        .unwrap();
        eprintln!("{}: {rep:?}", c.name);
    }
}

#[test]
fn the_batch_stays_dynamic() {
    // The goldens are batch 2; one sample alone gives the first row.
    for name in ["shufflenet", "shufflenet_dynamo", "resnext"] {
        let m = read_onnx(dir().join(format!("{name}.onnx"))).unwrap();
        let (x, want) = golden(name);
        let per: usize = x.shape()[1..].iter().product();
        let mut s = x.shape().to_vec();
        s[0] = 1;
        let x1 = Tensor::new(s, x.data()[..per].to_vec()).unwrap();
        let y1 = cpu::run_graph(&m.graph, &m.weights, &x1).unwrap();
        let k = want.shape()[1];
        check_close(name, y1.data(), &want.data()[..k], Tolerance::GOLDEN_OP).unwrap();
    }
}

#[test]
fn macs_and_params_match_the_torch_count() {
    for c in cases() {
        let m = read_onnx(dir().join(format!("{}.onnx", c.name))).unwrap();
        let cost = m.graph.cost();
        assert_eq!(cost.total_macs, c.macs, "{} MACs", c.name);
        assert_eq!(cost.total_params, c.params, "{} params", c.name);
        // The fold moves channels, never arithmetic — except the zero-weight convs that write
        // a gconv export's dead filters in PyTorch (`flgc`): they become groups without input
        // again, so the folded model costs what the export it was rebuilt from costs.
        let (fg, _, _) = fold_permutations(&m.graph, &m.weights).unwrap();
        let want = match c.name.as_str() {
            "flgc" => {
                io::read_exported(dir().join("flgc_export.safetensors"))
                    .unwrap()
                    .0
                    .cost()
                    .total_macs
            }
            _ => c.macs,
        };
        assert!(
            c.name != "flgc" || want < c.macs,
            "the flgc fixture has dead filters"
        );
        assert_eq!(fg.cost().total_macs, want, "{} folded MACs", c.name);
    }
}

#[test]
fn shufflenet_shuffles_and_splits_fold_into_the_convolutions() {
    for name in ["shufflenet", "shufflenet_dynamo"] {
        let m = read_onnx(dir().join(format!("{name}.onnx"))).unwrap();
        let is_gather: fn(&Op) -> bool = |op| matches!(op, Op::Gather(_));
        let before = count(&m.graph, is_gather);
        // 3 stages: 6 shuffles and 3 splits (stride-1 units, 2 outputs each).
        assert!(before >= 12, "{name}: {before} gathers imported");
        let (fg, fw, rep) = fold_permutations(&m.graph, &m.weights).unwrap();
        assert_eq!(rep.gathers_before, before);
        assert_eq!(rep.gathers_left, 0, "{name}: {rep:?}");
        assert_eq!(count(&fg, is_gather), 0);
        assert!(rep.into_consumers > 0 && rep.into_concats > 0, "{rep:?}");
        // Folded and unfolded agree to rounding (the same sums, re-addressed).
        let (x, _) = golden(name);
        let a = cpu::run_graph(&m.graph, &m.weights, &x).unwrap();
        let b = cpu::run_graph(&fg, &fw, &x).unwrap();
        check_close(name, b.data(), a.data(), Tolerance::F32_OP).unwrap();
    }
}

#[test]
fn the_flgc_reexport_folds_back_into_one_table_conv_per_layer() {
    let m = read_onnx(dir().join("flgc.onnx")).unwrap();
    let (g, w, _) = io::read_exported(dir().join("flgc_export.safetensors")).unwrap();
    let tables = |g: &Graph| count(g, |op| matches!(op, Op::GroupedConvTable(_)));
    let (fg, fw, rep) = fold_permutations(&m.graph, &m.weights).unwrap();
    assert_eq!(rep.gathers_left, 0, "{rep:?}");
    assert_eq!(rep.concats_left, 0, "{rep:?}");
    assert_eq!(tables(&fg), tables(&g), "{rep:?}");
    // The same function as the gconv export it came from.
    let (x, want) = golden("flgc");
    let direct = cpu::run_graph(&g, &w, &x).unwrap();
    let folded = cpu::run_graph(&fg, &fw, &x).unwrap();
    check_close(
        "flgc export",
        direct.data(),
        want.data(),
        Tolerance::F32_MODEL,
    )
    .unwrap();
    check_close(
        "flgc folded",
        folded.data(),
        direct.data(),
        Tolerance::F32_OP,
    )
    .unwrap();
    // PyTorch has no conv without inputs: a group with filters and no input channels (its
    // outputs are its bias) was re-exported as a zero-weight conv of one channel, so the
    // folded model counts a few MACs more than the export it came from, never fewer.
    assert!(fg.cost().total_macs >= g.cost().total_macs);
}

fn expect_onnx_error(file: &str, op_type: &str, needle: &str) {
    let err = read_onnx(dir().join(file)).unwrap_err();
    let text = err.to_string();
    match &err {
        Error::Onnx { op_type: t, .. } => assert_eq!(t, op_type, "{text}"),
        e => panic!("{file}: expected an ONNX node error, got {e}"),
    }
    assert!(text.contains(needle), "{file}: {text}");
    assert!(text.contains("opset 17"), "{file}: {text}");
}

#[test]
fn unsupported_ops_and_missing_initializers_name_the_node() {
    expect_onnx_error("bad_unsupported_op.onnx", "LRN", "unsupported operator");
    expect_onnx_error(
        "bad_missing_initializer.onnx",
        "Conv",
        "missing initializer",
    );
    expect_onnx_error("bad_asymmetric_pad.onnx", "Conv", "symmetric");
}

#[test]
fn opsets_outside_13_to_20_are_refused() {
    for (file, opset) in [
        ("bad_opset12.onnx", "opset 12"),
        ("bad_opset21.onnx", "opset 21"),
    ] {
        let err = read_onnx(dir().join(file)).unwrap_err();
        assert!(matches!(err, Error::Format { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(opset) && text.contains("13–20"), "{text}");
    }
}

#[test]
fn truncated_and_malformed_files_are_format_errors() {
    let bytes = std::fs::read(dir().join("resnext.onnx")).unwrap();
    for cut in [1, 100, bytes.len() / 2, bytes.len() - 1] {
        match parse_onnx(&bytes[..cut], "cut.onnx") {
            Err(Error::Format { path, .. }) => assert_eq!(path, PathBuf::from("cut.onnx")),
            Err(e) => panic!("cut at {cut}: {e}"),
            Ok(_) => panic!("cut at {cut} bytes parsed"),
        }
    }
    for junk in [&b""[..], b"not an onnx file at all", &[0xff; 64]] {
        assert!(matches!(
            parse_onnx(junk, "junk.onnx"),
            Err(Error::Format { .. })
        ));
    }
    let missing = read_onnx(dir().join("no-such-file.onnx")).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing}");
}

#[test]
fn every_fixture_matches_onnxruntime_on_the_gpu() {
    // Every op the importer produces has a GPU kernel: concats (one copy per input), ReLU6
    // fused into the conv/BN epilogues, sigmoid, hard sigmoid, hard swish and the
    // channel-broadcast gate of squeeze-excitation blocks.
    let Some(ctx) = common::gpu() else { return };
    let _serial = common::serial();
    let rt = gconv::Runtime::with_context(ctx.clone());
    let all = cases();
    assert!(all.len() >= 8, "{} fixtures", all.len());
    for c in all {
        let mut model = rt
            .load_onnx(
                dir().join(format!("{}.onnx", c.name)),
                &gconv::LoadOptions::default(),
            )
            .unwrap();
        assert!(model.is_gpu());
        let (x, want) = golden(&c.name);
        let got = model.run(&x).unwrap();
        check_close(&format!("{} gpu", c.name), got.data(), want.data(), c.tol).unwrap();
    }
}

#[test]
fn cli_info_and_infer_take_an_onnx_model() {
    let exe = env!("CARGO_BIN_EXE_gconv");
    let model = dir().join("shufflenet.onnx");
    let out = std::process::Command::new(exe)
        .args(["info", "--json", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = cases()
        .into_iter()
        .find(|c| c.name == "shufflenet")
        .unwrap();
    assert_eq!(v["total_macs"].as_u64(), Some(c.macs));
    assert_eq!(v["total_params"].as_u64(), Some(c.params));
    assert_eq!(v["fold"]["gathers_before"].as_u64(), Some(12));
    assert_eq!(v["fold"]["gathers_left"].as_u64(), Some(0));
    let tmp = std::env::temp_dir().join(format!("gconv-onnx-cli-{}.npy", std::process::id()));
    let out = std::process::Command::new(exe)
        .args(["infer", "--device", "cpu", "--model"])
        .arg(&model)
        .arg("--input")
        .arg(dir().join("shufflenet.input.npy"))
        .arg("--output")
        .arg(&tmp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let y = io::read_npy(&tmp).unwrap();
    let _ = std::fs::remove_file(&tmp);
    let (_, want) = golden("shufflenet");
    check_close("cli infer", y.data(), want.data(), c.tol).unwrap();
    let out = std::process::Command::new(exe)
        .args(["info", "--model"])
        .arg(dir().join("bad_unsupported_op.onnx"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LRN") && err.contains("opset 17"), "{err}");
}

#[test]
fn mobilenet_v3_brings_hard_swish_and_squeeze_excitation() {
    let m = read_onnx(dir().join("mobilenet_v3.onnx")).unwrap();
    let n = |f: fn(&Op) -> bool| count(&m.graph, f);
    assert!(n(|op| matches!(op, Op::Activation(Activation::HardSwish))) > 0);
    assert!(n(|op| matches!(op, Op::Activation(Activation::HardSigmoid { .. }))) > 0);
    assert!(n(|op| matches!(op, Op::Mul(_))) > 0);
    let m2 = read_onnx(dir().join("mobilenet.onnx")).unwrap();
    assert!(
        count(&m2.graph, |op| matches!(
            op,
            Op::Activation(Activation::Relu6)
        )) > 0
    );
}

#[test]
fn corrupted_models_are_errors_never_panics() {
    // Byte flips in the node section (nodes come before the initializers in the file): each
    // result is an error or a model; a panic fails the test.
    let bytes = std::fs::read(dir().join("shufflenet.onnx")).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut rng = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let span = bytes.len().min(40_000) as u64;
    let mut errors = 0;
    for _ in 0..300 {
        let mut b = bytes.clone();
        for _ in 0..3 {
            let i = (rng() % span) as usize;
            b[i] = rng() as u8;
        }
        if let Err(e) = parse_onnx(&b, "flipped.onnx") {
            assert!(!e.to_string().is_empty());
            errors += 1;
        }
    }
    assert!(
        errors > 30,
        "only {errors} of 300 corrupted files were refused"
    );
}
