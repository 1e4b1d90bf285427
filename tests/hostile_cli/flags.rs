//! Every option a sub-command accepts takes effect or is refused: the model each command
//! runs is the model its flags describe (its MACs equal `gconv info`'s for the same flags),
//! and an option that a model file, a suite or a data set would ignore is an error naming it.

use super::*;

fn json(o: &Output) -> serde_json::Value {
    let (out, err) = text(o);
    assert!(o.status.success(), "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `gconv info … --json --summary`'s MACs.
fn info_macs(args: &[&str]) -> u64 {
    let o = gconv(&[&["info"][..], args, &["--json", "--summary"]].concat());
    json(&o)["total_macs"].as_u64().unwrap()
}

const ONNX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/onnx/se_head.onnx"
);

#[test]
fn bench_times_the_model_its_flags_describe() {
    // The cases: both timed the zoo default (G = 4 / width 1, at 224²).
    let quick = [
        "--device",
        "cpu",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--large-batch",
        "0",
    ];
    for (flags, info) in [
        (
            [
                "--model",
                "resnet50-dsc-sgc",
                "--groups",
                "8",
                "--input-size",
                "32",
            ],
            [
                "--model",
                "resnet50-dsc-sgc",
                "--groups",
                "8",
                "--input",
                "3x32x32",
            ],
        ),
        (
            [
                "--model",
                "mobilenetv2",
                "--width",
                "0.5",
                "--input-size",
                "32",
            ],
            [
                "--model",
                "mobilenetv2",
                "--width",
                "0.5",
                "--input",
                "3x32x32",
            ],
        ),
    ] {
        let r = json(&gconv(&[&["bench", "--json"][..], &quick, &flags].concat()));
        let rows = r["models"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{r}");
        assert_eq!(
            rows[0]["macs"].as_u64(),
            Some(info_macs(&info)),
            "{flags:?}"
        );
        assert_eq!(rows[0]["input"], serde_json::json!([3, 32, 32]));
        assert_eq!(r["config"]["model_options"]["input_size"], 32);
    }
    // One row per G, each the model `info` describes.
    let r = json(&gconv(
        &[
            &["bench", "--json"][..],
            &quick,
            &["--model", "resnet50-dsc-sgc"],
        ]
        .concat()
        .into_iter()
        .chain(["--groups", "2,4", "--input-size", "32", "--width", "0.25"])
        .collect::<Vec<_>>(),
    ));
    let rows = r["models"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{r}");
    for (row, g) in rows.iter().zip(["2", "4"]) {
        let want = [
            "--model",
            "resnet50-dsc-sgc",
            "--groups",
            g,
            "--input",
            "3x32x32",
        ];
        let want = info_macs(&[&want[..], &["--width", "0.25"]].concat());
        assert_eq!(row["macs"].as_u64(), Some(want), "G={g}: {row}");
        assert!(row["model"].as_str().unwrap().contains(&format!("G={g}")));
    }
}

#[test]
fn bench_refuses_options_nothing_reads() {
    let b = |extra: &[&'static str]| [&["bench", "--device", "cpu"][..], extra].concat();
    assert_fails(
        &b(&["--model", ONNX, "--groups", "8"]),
        &["se_head.onnx: --groups apply to zoo models only"],
    );
    assert_fails(
        &b(&["--model", ONNX, "--input-size", "32", "--width", "0.5"]),
        &["--input-size, --width apply to zoo models only"],
    );
    assert_fails(
        &b(&["--suite", "paper1", "--groups", "8"]),
        &["--groups changes only the paper2, mobilenet, models suite(s)"],
    );
    assert_fails(
        &b(&["--suite", "sweep", "--width", "0.5"]),
        &["--width changes only the paper1, paper2, mobilenet, models suite(s)"],
    );
    assert_fails(
        &b(&["--suite", "paper2", "--sweep-g", "2"]),
        &["--sweep-g changes only the sweep"],
    );
    assert_fails(
        &b(&["--suite", "sweep", "--schemes", "E"]),
        &["--schemes changes only the paper1"],
    );
    assert_fails(
        &b(&["--suite", "roofline", "--batch", "2"]),
        &["--batch changes only"],
    );
    assert_fails(
        &b(&["--suite", "sweep", "--tune"]),
        &["--tune times kernels on a GPU"],
    );
}

#[test]
fn info_and_tune_refuse_zoo_options_for_model_files() {
    assert_fails(
        &["info", "--model", ONNX, "--groups", "4"],
        &["an ONNX model fixes its own graph and input; --groups would be ignored"],
    );
    assert_fails(
        &["info", "--model", ONNX, "--width", "0.5", "--scheme", "E"],
        &["--scheme, --width would be ignored"],
    );
    // Refused before any GPU is opened.
    assert_fails(
        &["tune", ONNX, "--groups", "4", "--image-size", "3x8x8"],
        &["an ONNX model fixes its own graph and input; --image-size, --groups"],
    );
    assert_fails(
        &["tune", "x.safetensors", "--width", "2"],
        &["an exported model fixes its own graph and input; --width"],
    );
}

#[test]
fn tune_tunes_the_model_its_flags_describe() {
    let _g = common::serial();
    if common::gpu().is_none() {
        return;
    }
    let d = scratch("tune_flags");
    let m = file(&d, "two.toml", TWO_STAGE_TOML);
    let o = Command::new(env!("CARGO_BIN_EXE_gconv"))
        .args([
            "tune",
            &m,
            "--groups",
            "2",
            "--width",
            "2",
            "--image-size",
            "1x12x12",
        ])
        .args(["--repeats", "1", "--json"])
        .env("GCONV_CACHE_DIR", &d)
        .output()
        .unwrap();
    let r = json(&o);
    let want = [
        "--model", &m, "--groups", "2", "--width", "2", "--input", "1x12x12",
    ];
    assert_eq!(r["macs"].as_u64(), Some(info_macs(&want)), "{r}");
}

#[test]
fn infer_refuses_options_it_would_ignore() {
    let d = scratch("infer_flags");
    let m = file(&d, "tiny.toml", TINY_TOML);
    let x = d.join("x.npy");
    let x1 = Tensor::from_fn(&[1, 1, 8, 8], |i| (i % 7) as f32 - 3.0);
    gconv::io::write_npy(&x, &x1).unwrap();
    let x = x.to_string_lossy().into_owned();
    let graph = gconv::zoo::ModelSpec::from_toml(TINY_TOML, "t")
        .unwrap()
        .build()
        .unwrap();
    let w = Weights::init(&graph, 0);
    let wp = d.join("w.safetensors");
    write_safetensors(&wp, &w, &BTreeMap::new()).unwrap();
    let wp = wp.to_string_lossy().into_owned();
    let ex = d.join("exported.safetensors");
    gconv::io::write_exported(&ex, &graph, &w, &BTreeMap::new()).unwrap();
    let ex = ex.to_string_lossy().into_owned();
    let run = |model: &str, extra: &[&str]| -> Vec<String> {
        let base = ["infer", "--device", "cpu", "--model", model, "--input", &x];
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let fails = |args: Vec<String>, needle: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_fails(&a, &[needle]);
    };
    for (flag, value) in [("--groups", "2"), ("--seed", "3"), ("--flgc", "masked")] {
        fails(
            run(ONNX, &[flag, value]),
            &format!(
                "an ONNX model (it carries its weights) fixes its own graph and input; {flag}"
            ),
        );
        fails(
            run(&ex, &[flag, value]),
            &format!(
                "an exported model (it carries its weights) fixes its own graph and input; {flag}"
            ),
        );
    }
    fails(run(&ex, &["--no-fold-bn"]), "--no-fold-bn would be ignored");
    fails(
        run(&ex, &["--image-size", "1x8x8"]),
        "--image-size would be ignored",
    );
    fails(
        run(&m, &["--compare"]),
        "--compare runs the GPU against the CPU reference",
    );
    fails(
        run(&m, &["--weights", &wp, "--seed", "1"]),
        "--seed seeds the initialisation, and --weights replaces it",
    );
    fails(
        run(&m, &["--image-size", "1x16x16"]),
        "--image-size resizes image inputs",
    );
    // What it accepts takes effect: the classes and the seed change the output.
    let out = |extra: &[&str]| {
        let y = d.join("y.npy");
        let mut a = run(&m, extra);
        a.extend(["--output".into(), y.to_string_lossy().into_owned()]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        assert!(gconv(&a).status.success());
        gconv::io::read_npy(&y).unwrap()
    };
    assert_eq!(out(&["--num-classes", "7"]).shape(), [1, 7]);
    assert_ne!(out(&["--seed", "1"]).data(), out(&["--seed", "2"]).data());
}

#[test]
fn train_runs_the_model_its_flags_describe_and_refuses_the_rest() {
    let d = scratch("train_flags");
    let data = image_folder(&d.join("data"), 3);
    let m = file(&d, "two.toml", TWO_STAGE_TOML);
    let ck = d.join("ck.safetensors").to_string_lossy().into_owned();
    let base = [
        "train", "--device", "cpu", "--data", &data, "--model", &m, "--width", "1", "--input",
        "1x8x8",
    ];
    let t = |extra: &[&str]| -> Vec<String> {
        let rest = ["--checkpoint", &ck, "--val", "1"];
        base.iter()
            .chain(&rest)
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let fails = |args: Vec<String>, needle: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_fails(&a, &[needle]);
    };
    // Trained: the described model (classes from the data, the grouped stage at G = 2).
    let a = t(&["--conv", "sgc", "--groups", "2", "--epochs", "1", "--json"]);
    let o = gconv(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let header: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let want = info_macs(&[
        "--model",
        &m,
        "--groups",
        "2",
        "--conv",
        "sgc",
        "--num-classes",
        "2",
        "--input",
        "1x8x8",
    ]);
    assert_eq!(header["macs"].as_u64(), Some(want), "{header}");
    assert_eq!(header["groups"], 2);
    // Refused.
    fails(
        t(&["--conv", "dense", "--groups", "4"]),
        "--groups applies to --conv sgc or flgc",
    );
    fails(
        t(&["--test-limit", "5"]),
        "--test-limit cuts the test set, and there is none",
    );
    fails(
        t(&[
            "--conv", "sgc", "--groups", "2", "--resume", &ck, "--epochs", "1",
        ]),
        "already trained for 1 epochs; --epochs 1 trains nothing",
    );
    if gconv::train::dataset::is_fashion_mnist(Path::new(gconv::io::FashionMnist::DEFAULT_DIR)) {
        let fm = ["train", "--device", "cpu", "--checkpoint", &ck];
        // Fashion-MNIST's --input can only pad it (1xHxW, H, W ≥ 28).
        for small in ["1x8x8", "3x32x32", "1x32x20"] {
            assert_fails(
                &[&fm[..], &["--input", small]].concat(),
                &["Fashion-MNIST is 1x28x28", "can only pad it"],
            );
        }
        assert_fails(
            &[&fm[..], &["--test-data", &data]].concat(),
            &["--test-data applies to an image folder"],
        );
    }
    // A second run on a checkpoint another run holds is refused at once.
    let held = gconv::fs::FileLock::try_exclusive(&ck)
        .unwrap()
        .expect("free");
    fails(
        t(&["--epochs", "1"]),
        "another gconv train is writing this checkpoint",
    );
    drop(held);
}
