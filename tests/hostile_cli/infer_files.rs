//! `gconv infer` given files that are not what the flag says, and `--compare` on NaN.

use super::*;

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
