//! `gconv export --out m.onnx` against onnxruntime: every zoo model, an FLGC G = 3 model from
//! the Gaussian start (uneven groups, dead filters) and an imported ShuffleNetV2, exported by
//! the CLI with the arguments `scripts/make_export_fixtures.py` used, read back with gconv's
//! importer and run on the CPU: equal to onnxruntime's output on the same file within 1e-4 of
//! max |y| (the goldens in `tests/fixtures/onnx_export`, no Python needed here).

#![cfg(feature = "app")]

use gconv::graph::fold_permutations;
use gconv::onnx::read_onnx;
use gconv::{cpu, io, Tensor};
use std::path::PathBuf;
use std::process::Command;

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
