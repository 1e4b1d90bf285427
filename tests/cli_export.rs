//! `gconv export` from the command line. Against onnxruntime: every zoo model, an FLGC G = 3
//! model from the Gaussian start (uneven groups, dead filters) and an imported ShuffleNetV2,
//! exported with the arguments `scripts/make_export_fixtures.py` used, read back with gconv's
//! importer and run on the CPU, equal onnxruntime's output on the same file within 1e-4 of
//! max |y| (goldens in `tests/fixtures/onnx_export`, no Python needed here). A checkpoint to
//! ONNX and to safetensors, read back by `gconv info` (same MACs and parameters) and
//! `gconv bench --model`. Bad input — a truncated checkpoint, a file that is not a checkpoint,
//! an output folder that does not exist, an unknown extension, a model with no ONNX form —
//! each a clear error that leaves no file behind.

#![cfg(feature = "app")]

use gconv::graph::fold_permutations;
use gconv::onnx::read_onnx;
use gconv::train::selection::{init_selection, FlgcInit};
use gconv::train::{write_checkpoint, Checkpoint, Normalization};
use gconv::zoo::{ConvKind, ModelSpec};
use gconv::{cpu, io, Tensor, Weights};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gconv(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_gconv"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("gconv runs");
    eprintln!(
        "gconv {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A fresh temporary folder (removed at the end of the test that made it).
fn tmp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("gconv-cli-export-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// A checkpoint of a small FLGC model (G = 3, balanced start) as `gconv train` writes it.
fn checkpoint(dir: &Path, conv: ConvKind) -> PathBuf {
    let mut spec = ModelSpec::load("resnet50-dsc").unwrap();
    spec.input = [1, 28, 28];
    spec.num_classes = 10;
    spec.width = 0.125;
    let spec = spec.small_stem().with_groups(3, Some(conv)).unwrap();
    let graph = spec.build().unwrap();
    let mut weights = Weights::init(&graph, 1);
    init_selection(&graph, &mut weights, FlgcInit::Gaussian, 1);
    let c = Checkpoint {
        spec,
        weights,
        momentum: Weights::new(),
        epoch: 1,
        norm: Normalization {
            mean: vec![0.3],
            std: vec![0.35],
        },
    };
    let p = dir.join("ck.safetensors");
    write_checkpoint(&p, &c).unwrap();
    p
}

fn info_json(model: &Path) -> serde_json::Value {
    let o = gconv(&["info", "--model", s(model), "--json", "--summary"]);
    assert!(o.status.success());
    serde_json::from_slice(&o.stdout).unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_checkpoint_exports_to_onnx_and_safetensors_with_the_same_costs() {
    let d = tmp("ok");
    let ck = checkpoint(&d, ConvKind::Flgc);
    let (onnx, st) = (d.join("m.onnx"), d.join("m.safetensors"));
    for out in [&onnx, &st] {
        let o = gconv(&["export", "--checkpoint", s(&ck), "--out", s(out)]);
        assert!(o.status.success());
    }
    let stdout = String::from_utf8_lossy(
        &gconv(&["export", "--checkpoint", s(&ck), "--out", s(&onnx)]).stdout,
    )
    .into_owned();
    assert!(
        stdout.contains("ONNX opset 17") && stdout.contains("uneven group convs"),
        "{stdout}"
    );
    // The checkpoint's input normalisation travels in the ONNX metadata.
    let bytes = std::fs::read(&onnx).unwrap();
    assert!(bytes.windows(9).any(|w| w == b"norm_mean"));
    let (a, b) = (info_json(&onnx), info_json(&st));
    assert_eq!(a["total_macs"], b["total_macs"]);
    assert_eq!(a["total_params"], b["total_params"]);
    assert!(a["total_macs"].as_u64().unwrap() > 0);
    // `bench --model` takes the exported safetensors (and the ONNX file) too.
    let o = gconv(&[
        "bench",
        "--model",
        s(&st),
        "--model",
        s(&onnx),
        "--device",
        "cpu",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--large-batch",
        "0",
        "--json",
    ]);
    assert!(o.status.success());
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["models"].as_array().unwrap().len() >= 2);
    // A checkpoint without FLGC layers exports as well (plain grouped convs).
    let d_sgc = tmp("sgc");
    let ck_sgc = checkpoint(&d_sgc, ConvKind::Sgc);
    let o = gconv(&[
        "export",
        "--checkpoint",
        s(&ck_sgc),
        "--out",
        s(&d.join("sgc.onnx")),
    ]);
    assert!(o.status.success());
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&d_sgc);
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_no_file() {
    let d = tmp("bad");
    let ck = checkpoint(&d, ConvKind::Flgc);
    let bytes = std::fs::read(&ck).unwrap();
    let trunc = d.join("trunc.safetensors");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    let weights = d.join("w.safetensors");
    gconv::io::write_safetensors(&weights, &Weights::new(), &Default::default()).unwrap();
    let exported = d.join("e.safetensors");
    assert!(
        gconv(&["export", "--checkpoint", s(&ck), "--out", s(&exported)])
            .status
            .success()
    );
    let before = files_in(&d);
    let out = d.join("m.onnx");
    let pt = d.join("m.pt");
    let missing = d.join("no/such/dir/m.onnx");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--checkpoint", s(&trunc), "--out", s(&out)],
            "trunc.safetensors",
        ),
        (
            vec!["--checkpoint", s(&weights), "--out", s(&out)],
            "not a gconv training checkpoint",
        ),
        (
            vec!["--checkpoint", s(&exported), "--out", s(&out)],
            "pass it as --model",
        ),
        (
            vec!["--model", s(&ck), "--out", s(&out)],
            "pass it as --checkpoint",
        ),
        (
            vec!["--model", s(&weights), "--out", s(&out)],
            "not an exported gconv model",
        ),
        (
            vec!["--checkpoint", s(&ck), "--out", s(&missing)],
            "no/such/dir/m.onnx",
        ),
        (vec!["--checkpoint", s(&ck), "--out", s(&pt)], ".onnx"),
        // VGG at 64²: a 2×2 feature map pooled to 7×7 has no ONNX pooling form.
        (
            vec![
                "--model",
                "vgg11bn",
                "--width",
                "0.0625",
                "--input",
                "3x64x64",
                "--out",
                s(&out),
            ],
            "avgpool",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["export"];
        all.extend(args);
        let o = gconv(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{all:?}");
        assert!(
            err.contains(want) && !err.contains("panicked"),
            "{all:?}: {err}"
        );
        assert_eq!(files_in(&d), before, "{all:?} left a file");
    }
    assert!(!d.join("no").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn info_of_the_exported_file_gives_the_sources_macs_and_params() {
    // With batch norms kept (--no-fold-bn) the exported file costs exactly what the source
    // costs; folded, the MACs are the same and each BN's γ, β become one conv bias.
    let d = tmp("info");
    let shufflenet = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/onnx/shufflenet.onnx"
    );
    let sources: [&[&str]; 2] = [
        &[
            "--model",
            "vgg13bn",
            "--scheme",
            "1,4,4,4,4",
            "--width",
            "0.0625",
        ],
        &["--model", shufflenet],
    ];
    for src in sources {
        let mut info = vec!["info", "--json", "--summary"];
        info.extend(src);
        let o = gconv(&info);
        assert!(o.status.success());
        let want: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for (fold, file) in [(false, "kept.onnx"), (true, "folded.onnx")] {
            let out = d.join(file);
            let mut args = vec!["export", "--out", s(&out)];
            args.extend(src);
            if !fold {
                args.push("--no-fold-bn");
            }
            assert!(gconv(&args).status.success());
            let got = info_json(&out);
            assert_eq!(got["total_macs"], want["total_macs"], "{src:?}");
            let (g, w) = (got["total_params"].as_u64(), want["total_params"].as_u64());
            if fold {
                assert!(g < w, "{src:?}: BN folded: {g:?} vs {w:?}");
            } else {
                assert_eq!(g, w, "{src:?}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx_export")
}

/// The script's input: `x[i] = ((i · 7919) mod 1000) / 500 − 1`.
fn formula_input(shape: &[usize]) -> Tensor {
    Tensor::from_fn(shape, |i| ((i as u64 * 7919) % 1000) as f32 / 500.0 - 1.0)
}

#[test]
fn exported_files_run_in_gconv_as_in_onnxruntime() {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tmp = std::env::temp_dir().join(format!("gconv-export-ort-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut n = 0;
    for (name, case) in cases.as_object().unwrap() {
        if name.starts_with('_') {
            continue;
        }
        let args: Vec<&str> = case["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let out = tmp.join(format!("{name}.onnx"));
        let run = Command::new(env!("CARGO_BIN_EXE_gconv"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("export")
            .args(&args)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let m = read_onnx(&out).unwrap();
        let (g, w, _) = fold_permutations(&m.graph, &m.weights).unwrap();
        let shape: Vec<usize> = case["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let y = cpu::run_graph(&g, &w, &formula_input(&shape)).unwrap();
        let want = io::read_npy(dir().join(format!("{name}.ort.npy"))).unwrap();
        assert_eq!(y.shape(), want.shape(), "{name}");
        let scale = want.data().iter().fold(0f32, |a, v| a.max(v.abs()));
        let diff = y
            .data()
            .iter()
            .zip(want.data())
            .fold(0f32, |a, (p, q)| a.max((p - q).abs()));
        eprintln!("{name}: max |y| {scale:.4e}, max |gconv − onnxruntime| {diff:.3e}");
        assert!(diff <= 1e-4 * scale, "{name}: {diff} > 1e-4 · {scale}");
        // Uneven groups are split into per-group convs, never one dense masked conv.
        let ops = &case["ops"];
        if name.contains("flgc_g3") {
            assert!(ops["Concat"].as_u64().unwrap() > 0 && ops["Conv"].as_u64().unwrap() > 50);
            // Some dead filters stay in the file (as zero-weight convs): onnxruntime ran them.
            let text = String::from_utf8_lossy(&run.stdout);
            let dead: usize = text
                .split(" groups without input")
                .next()
                .and_then(|t| t.rsplit(' ').next())
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            assert!(dead > 0, "{name}: {text}");
        }
        n += 1;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(n >= 14, "{n} cases");
}
