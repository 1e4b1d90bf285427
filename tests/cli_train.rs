//! The `gconv` binary end to end on a tiny image folder: `train` (CPU and GPU), `--resume`,
//! `export`, and `eval` of both the checkpoint and the exported model; plus the errors a user
//! meets first (missing data set, bad folder, bad flags).

#![cfg(feature = "app")]

mod common;

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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("gconv-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn path(&self, rel: &str) -> String {
        self.0.join(rel).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two classes of 8×8 gray PNGs: bright top half vs bright bottom half, with noise.
fn write_folder(root: &Path, per_class: usize) {
    for (k, class) in ["bottom", "top"].iter().enumerate() {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let img = image::GrayImage::from_fn(8, 8, |x, y| {
                let bright = (y < 4) == (k == 1);
                let noise = ((x * 7 + y * 13 + i as u32 * 31) % 40) as u8;
                image::Luma([if bright { 200 - noise } else { 30 + noise }])
            });
            img.save(dir.join(format!("{i:03}.png"))).unwrap();
        }
    }
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `test loss L, accuracy A %` from `gconv eval`.
fn eval_numbers(s: &str) -> (f64, f64) {
    let num_after = |key: &str| -> f64 {
        let i = s.find(key).unwrap_or_else(|| panic!("{key} in {s}")) + key.len();
        s[i..]
            .trim_start()
            .split([',', ' ', '%'])
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (num_after("test loss"), num_after("accuracy"))
}

const MODEL: &[&str] = &[
    "--model",
    "resnet50-dsc",
    "--width",
    "0.0625",
    "--layers",
    "1,1,1,1",
    "--input",
    "1x8x8",
    "--batch",
    "4",
    "--val",
    "4",
    "--lr",
    "0.05",
    "--json",
];

/// `gconv train` on the CPU with G = 2 for `epochs` epochs, checkpointing to `ck`, then
/// `extra` arguments and the small model.
fn train_args<'a>(
    data: &'a str,
    conv: &'a str,
    epochs: &'a str,
    ck: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--device",
        "cpu",
        "--data",
        data,
        "--conv",
        conv,
        "--groups",
        "2",
        "--epochs",
        epochs,
        "--checkpoint",
        ck,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(MODEL);
    args
}

/// An exported SGC model (no FLGC layers) reports its MACs per image too, as the FLGC
/// experiment's summary reads them for both arms.
#[test]
fn export_of_an_sgc_model_reports_its_macs() {
    let tmp = TempDir::new("export_sgc");
    write_folder(&tmp.0.join("data"), 10);
    let (data, ck, ex) = (
        tmp.path("data"),
        tmp.path("ck.safetensors"),
        tmp.path("ex.safetensors"),
    );
    let o = gconv(&train_args(&data, "sgc", "1", &ck, &[]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = gconv(&["export", "--checkpoint", &ck, "--out", &ex]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let macs: f64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("MACs/image: "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MACs/image line in {out}"));
    assert!(macs > 0.0, "{out}");
}

/// Fashion-MNIST zero-padded to 32×32 (VGG's five pools cannot take 28×28), as
/// `scripts/search_accuracy.sh` trains it; the model's input is the padded size.
#[test]
fn fashion_mnist_padded_to_32_trains_a_vgg() {
    let fm = gconv::io::FashionMnist::DEFAULT_DIR;
    if !gconv::train::dataset::is_fashion_mnist(Path::new(fm)) || !Path::new(fm).exists() {
        eprintln!("SKIPPING: no Fashion-MNIST at {fm} (apt-get install dataset-fashion-mnist)");
        return;
    }
    let tmp = TempDir::new("fmnist32");
    let (ck, log) = (tmp.path("ck.safetensors"), tmp.path("log.jsonl"));
    let o = gconv(&[
        "train",
        "--device",
        "cpu",
        "--data",
        fm,
        "--model",
        "vgg11bn",
        "--width",
        "0.0625",
        "--scheme",
        "1,1,2,2,2",
        "--input",
        "1x32x32",
        "--epochs",
        "1",
        "--batch",
        "8",
        "--limit",
        "40",
        "--val",
        "8",
        "--test-limit",
        "16",
        "--checkpoint",
        &ck,
        "--log",
        &log,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = json_lines(&std::fs::read_to_string(&log).unwrap())
        .into_iter()
        .find(|v| v["kind"] == "run")
        .expect("a run line");
    assert_eq!(run["input"], serde_json::json!([1, 32, 32]), "{run}");
}

#[test]
fn train_resume_export_eval_on_an_image_folder() {
    let tmp = TempDir::new("train");
    write_folder(&tmp.0.join("data"), 10);
    let (data, ck, ex) = (
        tmp.path("data"),
        tmp.path("ck.safetensors"),
        tmp.path("ex.safetensors"),
    );
    let o = gconv(&train_args(
        &data,
        "flgc",
        "2",
        &ck,
        &["--test-data", &data],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&stdout(&o));
    // Header (16 training images, 4 validation), two epochs, the test result.
    assert_eq!(lines[0]["train_n"], 16);
    assert_eq!(lines[0]["conv"], "flgc");
    assert_eq!(lines[1]["epoch"], 1);
    assert_eq!(lines[2]["epoch"], 2);
    assert!(lines[2]["train_loss"].as_f64().unwrap().is_finite());
    assert_eq!(lines[3]["test_n"], 20);
    assert!(Path::new(&ck).exists());

    // Resume to epoch 3: only the third epoch runs.
    let o = gconv(&train_args(&data, "flgc", "3", &ck, &["--resume", &ck]));
    assert!(o.status.success(), "{}", stderr(&o));
    let epochs: Vec<i64> = json_lines(&stdout(&o))
        .iter()
        .filter_map(|l| l["epoch"].as_i64())
        .collect();
    assert_eq!(epochs, vec![3]);

    // Export (FLGC → uneven group convs, BN folded) and evaluate both forms.
    let o = gconv(&["export", "--checkpoint", &ck, "--out", &ex]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("group sizes (in→out channels)"),
        "{}",
        stdout(&o)
    );
    let o1 = gconv(&[
        "eval",
        "--checkpoint",
        &ck,
        "--data",
        &data,
        "--device",
        "cpu",
    ]);
    let o2 = gconv(&[
        "eval",
        "--checkpoint",
        &ex,
        "--data",
        &data,
        "--device",
        "cpu",
    ]);
    assert!(o1.status.success() && o2.status.success());
    let (l1, a1) = eval_numbers(&stdout(&o1));
    let (l2, a2) = eval_numbers(&stdout(&o2));
    assert!(
        (l1 - l2).abs() < 1e-3,
        "checkpoint loss {l1} vs exported {l2}"
    );
    assert_eq!(a1, a2, "accuracy of checkpoint vs exported model");
    assert!(stdout(&o1).contains("(epoch 3)"));

    // The exported file runs in `gconv infer` (its graph comes from the file).
    let x = tmp.path("x.npy");
    let y = tmp.path("y.npy");
    gconv::io::write_npy(
        &x,
        &gconv::Tensor::from_fn(&[2, 1, 8, 8], |i| (i % 7) as f32 / 7.0),
    )
    .unwrap();
    let o = gconv(&[
        "infer", "--model", &ex, "--input", &x, "--output", &y, "--device", "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(gconv::io::read_npy(&y).unwrap().shape(), &[2, 2]);
    let o = gconv(&["infer", "--model", &ex, "--input", &x, "--compare"]);
    assert!(!o.status.success(), "--compare is for zoo models");
}

#[test]
fn train_on_the_gpu() {
    let _g = common::serial();
    if common::gpu().is_none() {
        return;
    }
    let tmp = TempDir::new("gpu");
    write_folder(&tmp.0.join("data"), 6);
    let (data, ck) = (tmp.path("data"), tmp.path("ck.safetensors"));
    let mut args = vec![
        "train",
        "--device",
        "gpu",
        "--data",
        &data,
        "--conv",
        "sgc",
        "--groups",
        "2",
        "--epochs",
        "1",
        "--checkpoint",
        &ck,
    ];
    args.extend_from_slice(MODEL);
    let o = gconv(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&stdout(&o));
    assert!(lines[0]["device"].as_str().unwrap().starts_with("GPU"));
    assert_eq!(lines[1]["epoch"], 1);
    assert!(lines[1]["val_loss"].as_f64().unwrap().is_finite());
    // The GPU checkpoint evaluates on the CPU.
    let o = gconv(&[
        "eval",
        "--checkpoint",
        &ck,
        "--data",
        &data,
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn clear_errors_for_bad_data_and_flags() {
    let tmp = TempDir::new("errors");
    // No Fashion-MNIST: the message says how to install it.
    let missing = tmp.path("no-such-dir");
    // Every run names its checkpoint in the scratch folder: none is left in the working folder.
    let ck = tmp.path("ck.safetensors");
    let o = gconv(&[
        "train",
        "--device",
        "cpu",
        "--checkpoint",
        &ck,
        "--data",
        &missing,
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("dataset-fashion-mnist"),
        "{}",
        stderr(&o)
    );
    // An image folder with an empty class names the class.
    write_folder(&tmp.0.join("data"), 3);
    std::fs::create_dir_all(tmp.0.join("data/empty")).unwrap();
    let data = tmp.path("data");
    let o = gconv(&[
        "train",
        "--device",
        "cpu",
        "--checkpoint",
        &ck,
        "--data",
        &data,
        "--input",
        "1x8x8",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
    std::fs::remove_dir(tmp.0.join("data/empty")).unwrap();
    // Bad flags.
    for (flag, value, needle) in [
        ("--layers", "1,2", "--layers"),
        ("--input", "2x8x8", "--input"),
        ("--batch", "0", "--batch"),
        ("--flgc-margin", "0", "--flgc-margin"),
        ("--flgc-margin", "NaN", "--flgc-margin"),
        ("--flgc-select-lr", "inf", "--flgc-select-lr"),
    ] {
        let mut args = vec![
            "train",
            "--device",
            "cpu",
            "--checkpoint",
            &ck,
            "--data",
            &data,
        ];
        if flag != "--input" {
            args.extend_from_slice(&["--input", "1x8x8"]);
        }
        args.extend_from_slice(&[flag, value]);
        let o = gconv(&args);
        assert!(!o.status.success(), "{flag} {value} must fail");
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
    }
    // A file that is not a checkpoint.
    let bogus = tmp.path("bogus.safetensors");
    std::fs::write(&bogus, b"not safetensors").unwrap();
    let o = gconv(&["eval", "--checkpoint", &bogus, "--data", &data]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bogus"), "{}", stderr(&o));
}
