//! `gconv infer` on hostile or mistaken files: a training checkpoint, plain weights or binary
//! garbage given as `--model`, `/dev/zero` as `--weights` or `--model`; and the `--compare`
//! verdict when outputs hold NaN (a mismatch, never "OK").

mod common;

use gconv::io::write_safetensors;
use gconv::{Tensor, Weights};
use std::collections::BTreeMap;
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

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("hostile-cli")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A VGG of one 4-channel stage and an 8-unit classifier on 1×8×8 inputs.
const TINY_TOML: &str = r#"
name = "tiny"
description = "a tiny VGG for CLI tests"
num_classes = 3
input = [1, 8, 8]

[arch]
family = "vgg"
stages = [[4]]
classifier = [8]
dropout = 0.5
"#;

/// Runs `gconv infer` and asserts it fails (exit 2) with every needle in its error.
#[track_caller]
fn assert_fails(args: &[&str], needles: &[&str]) {
    let o = gconv(args);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} lacks {n:?}");
    }
    assert!(!err.contains("valid UTF-8"), "{err}");
}

#[test]
fn infer_says_what_a_wrong_model_file_is() {
    let d = scratch("model_files");
    let x = d.join("x.npy");
    gconv::io::write_npy(&x, &Tensor::zeros(&[1, 1, 8, 8])).unwrap();
    let x = x.to_string_lossy().into_owned();
    let w = Weights::init(
        &gconv::zoo::ModelSpec::from_toml(TINY_TOML, "t")
            .unwrap()
            .build()
            .unwrap(),
        0,
    );

    // A training checkpoint (what `gconv train` writes: weights + the model as metadata).
    let ck = d.join("ck.safetensors");
    let meta = BTreeMap::from([("gconv_model".to_string(), "{}".to_string())]);
    write_safetensors(&ck, &w, &meta).unwrap();
    let ck = ck.to_string_lossy().into_owned();
    assert_fails(
        &["infer", "--model", &ck, "--input", &x],
        &[
            "a training checkpoint, not a model",
            "gconv export --checkpoint",
        ],
    );
    // Plain weights.
    let wp = d.join("w.safetensors");
    write_safetensors(&wp, &w, &BTreeMap::new()).unwrap();
    let wp = wp.to_string_lossy().into_owned();
    assert_fails(
        &["infer", "--model", &wp, "--input", &x],
        &["a weights file, not a model", "--weights"],
    );
    // Binary garbage.
    let g = d.join("garbage.bin");
    std::fs::write(&g, [0xffu8, 0xfe, 0, 1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    let g = g.to_string_lossy().into_owned();
    assert_fails(
        &["infer", "--model", &g, "--input", &x],
        &["neither a model description (TOML text) nor a model written by `gconv export`"],
    );
    // Special files, as the model or as the weights: refused before reading.
    assert_fails(
        &["infer", "--model", "/dev/zero", "--input", &x],
        &["/dev/zero: a character device is not a regular file"],
    );
    let m = d.join("tiny.toml");
    std::fs::write(&m, TINY_TOML).unwrap();
    let m = m.to_string_lossy().into_owned();
    assert_fails(
        &[
            "infer",
            "--model",
            &m,
            "--weights",
            "/dev/zero",
            "--input",
            &x,
            "--device",
            "cpu",
        ],
        &["/dev/zero: a character device is not a regular file"],
    );
    assert_fails(
        &[
            "infer",
            "--model",
            &m,
            "--input",
            "/dev/zero",
            "--device",
            "cpu",
        ],
        &["/dev/zero: a character device is not a regular file"],
    );
    // The TOML model itself runs (so the failures above are the files').
    let o = gconv(&["infer", "--model", &m, "--input", &x, "--device", "cpu"]);
    assert!(o.status.success(), "{:?}", text(&o));
}

#[test]
fn compare_reports_nan_as_a_mismatch() {
    let _g = common::serial();
    if common::gpu().is_none() {
        return;
    }
    let d = scratch("compare");
    let m = d.join("tiny.toml");
    std::fs::write(&m, TINY_TOML).unwrap();
    let m = m.to_string_lossy().into_owned();
    let x = d.join("x.npy");
    gconv::io::write_npy(&x, &Tensor::from_fn(&[1, 1, 8, 8], |i| 0.01 * i as f32)).unwrap();
    let x = x.to_string_lossy().into_owned();
    let graph = gconv::zoo::ModelSpec::from_toml(TINY_TOML, "t")
        .unwrap()
        .build()
        .unwrap();
    let run = |name: &str, value: Option<f32>| {
        let mut w = Weights::init(&graph, 0);
        let keys: Vec<String> = w.iter().map(|(k, _)| k.clone()).collect();
        if let Some(v) = value {
            // Every parameter NaN: ReLU (max(NaN, 0) = 0) cannot hide it from the classifier.
            for k in keys {
                let t = w.get(&k).unwrap();
                let nan = Tensor::new(t.shape().to_vec(), vec![v; t.numel()]).unwrap();
                w.insert(k, nan);
            }
        }
        let wp = d.join(name);
        write_safetensors(&wp, &w, &BTreeMap::new()).unwrap();
        let args = [
            "infer",
            "--model",
            &m,
            "--weights",
            &wp.to_string_lossy(),
            "--input",
            &x,
        ];
        gconv(&[&args[..], &["--compare", "--json"]].concat())
    };
    // Finite weights agree.
    let o = run("w.safetensors", None);
    assert!(o.status.success(), "{:?}", text(&o));
    let report: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    assert_eq!(report["compare"]["ok"], true, "{report}");
    assert!(report["compare"]["first_mismatch"].is_null());
    // NaN weights make NaN outputs on the CPU (and on the GPU, or something else there):
    // never "ok", and the first index is named.
    let o = run("nan.safetensors", Some(f32::NAN));
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    let report: serde_json::Value = serde_json::from_str(&text(&o).0).unwrap();
    let c = &report["compare"];
    assert_eq!(c["ok"], false, "{report}");
    assert_eq!(c["first_mismatch"]["index"], 0, "{report}");
    assert_eq!(c["first_mismatch"]["cpu"], "NaN", "{report}");
    assert_eq!(c["mismatches"], 3, "{report}");
    // The text report says MISMATCH and where.
    let args = ["infer", "--model", &m, "--input", &x, "--compare"];
    let wp = d.join("nan.safetensors").to_string_lossy().into_owned();
    let o = gconv(&[&args[..], &["--weights", &wp]].concat());
    let out = text(&o).0;
    assert!(
        out.contains("first at index 0") && out.contains("MISMATCH"),
        "{out}"
    );
}
