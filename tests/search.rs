//! `gconv search` end to end on lavapipe with a three-stage VGG (`tests/fixtures/search`):
//! the report's fields, the scheme file that `info`, `infer`, `bench` and `train` accept via
//! `--scheme FILE`, a second search that measures nothing new, and the bad requests (NaN or
//! negative budgets, a budget nothing fits, G values that divide nothing, a model with no
//! groupable layer, a corrupt tuning cache) refused with nothing written; `--precision f16`
//! timing under its own cache entries. No timing is asserted.

#![cfg(feature = "app")]

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TINY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/search/tiny-vgg.toml"
);

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("gconv-search-{tag}-{}", std::process::id()));
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

/// Runs the binary with the tuning cache in `cache`.
fn gconv(cache: &str, args: &[&str]) -> Output {
    gconv_in(cache, args, &[])
}

/// [`gconv`] with more environment variables.
fn gconv_in(cache: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gconv"))
        .args(args)
        .env("GCONV_CACHE_DIR", cache)
        .env_remove("GCONV_TUNE")
        .envs(env.iter().copied())
        .output()
        .expect("gconv runs")
}

fn text(o: &Output) -> String {
    format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok_json(cache: &str, args: &[&str]) -> Value {
    ok_json_in(cache, args, &[])
}

fn ok_json_in(cache: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    let o = gconv_in(cache, args, env);
    assert!(o.status.success(), "gconv {}\n{}", args.join(" "), text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}\n{}", text(&o)))
}

fn fails(cache: &str, args: &[&str], needle: &str) {
    let o = gconv(cache, args);
    assert_eq!(
        o.status.code(),
        Some(2),
        "gconv {}\n{}",
        args.join(" "),
        text(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(needle), "wanted {needle:?} in\n{}", text(&o));
    assert!(!err.contains("panicked"), "{}", text(&o));
}

fn search<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "search", "--model", TINY, "--g", "1,2,4", "--warmup", "0", "--rounds", "2", "--out", out,
        "--json",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn search_writes_a_scheme_every_command_accepts() {
    let _g = common::serial();
    if common::gpu().is_none() {
        return;
    }
    let dir = TempDir::new("run");
    let (cache, out) = (dir.path("cache"), dir.path("out"));
    let r = ok_json(&cache, &search(&out, &["--as-fast-as", "1,4,4"]));
    // The single target's answer at the top level, as the schema has it.
    let groups: Vec<u64> = serde_json::from_value(r["groups_by_stage"].clone()).unwrap();
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[0], 1, "SGC cannot group the 3-channel first conv");
    for k in ["predicted_ms", "measured_ms"] {
        assert!(r[k].as_f64().unwrap() > 0.0, "{k}");
    }
    let reference = &r["reference"];
    assert_eq!(reference["scheme"], "g1-4-4");
    assert!(reference["measured_ms"].as_f64().unwrap() > 0.0);
    // Most MACs within the reference's predicted latency: never fewer than the reference's.
    assert!(r["macs"].as_u64().unwrap() >= reference["macs"].as_u64().unwrap());
    assert!(
        r["results"][0]["found"]["predicted_ms"].as_f64() <= reference["predicted_ms"].as_f64()
    );
    // The dense model against itself: every round's ratio is 1, so its relative error is 0;
    // every other measured scheme has one.
    assert_eq!(r["dense"]["error_vs_dense_pct"].as_f64(), Some(0.0));
    assert!(r["results"][0]["found"]["error_vs_dense_pct"]
        .as_f64()
        .is_some_and(f64::is_finite));
    let fresh = r["latency"]["layers_measured_now"].as_u64().unwrap();
    assert!(fresh > 0, "an empty cache is filled");
    // The front: latency ascending, value strictly ascending — MACs, then parameters to
    // break a tie (two schemes of equal MACs can differ in parameters: a conv's parameters
    // are its MACs over its output plane, which differs per stage).
    let front = r["front_macs"].as_array().unwrap();
    assert!(front.len() >= 2);
    let value = |p: &serde_json::Value| (p["macs"].as_u64(), p["params"].as_u64());
    for w in front.windows(2) {
        assert!(w[0]["predicted_ms"].as_f64() <= w[1]["predicted_ms"].as_f64());
        assert!(value(&w[0]) < value(&w[1]), "{} then {}", w[0], w[1]);
    }
    // The files.
    let scheme = format!("{out}/found-as-fast-as-g1-4-4.toml");
    for f in [
        &scheme,
        &format!("{out}/search.json"),
        &format!("{out}/pareto_macs.svg"),
    ] {
        assert!(Path::new(f).is_file(), "{f}");
    }
    let s = gconv::zoo::Scheme::load(&scheme).unwrap();
    assert_eq!(s.stage_groups.len(), 3);
    assert_eq!(s.model.as_deref(), Some("tiny-vgg"));

    // A second search on the same adapter measures no layer again.
    let again = ok_json(&cache, &search(&out, &["--as-fast-as", "1,4,4"]));
    assert_eq!(again["latency"]["layers_measured_now"], 0);
    assert_eq!(
        again["latency"]["layers_from_cache"].as_u64().unwrap(),
        fresh
    );

    // --scheme FILE: info counts what the search reported, bench runs it, infer agrees with
    // the CPU reference, train trains it.
    let info = ok_json(
        &cache,
        &["info", "--model", TINY, "--scheme", &scheme, "--json"],
    );
    assert_eq!(info["total_macs"], r["macs"]);
    assert_eq!(info["total_params"], r["params"]);
    let bench = ok_json(
        &cache,
        &[
            "bench",
            "--device",
            "gpu",
            "--model",
            TINY,
            "--scheme",
            &scheme,
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--large-batch",
            "0",
            "--json",
        ],
    );
    assert_eq!(bench["models"][0]["macs"], r["macs"]);
    let x = gconv::Tensor::from_fn(&[1, 3, 16, 16], |i| (i % 7) as f32 / 7.0);
    let npy = dir.path("x.npy");
    gconv::io::write_npy(&npy, &x).unwrap();
    let o = gconv(
        &cache,
        &[
            "infer",
            "--model",
            TINY,
            "--scheme",
            &scheme,
            "--input",
            &npy,
            "--compare",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    write_folder(Path::new(&dir.path("data")));
    let o = gconv(
        &cache,
        &[
            "train",
            "--device",
            "cpu",
            "--model",
            TINY,
            "--width",
            "1",
            "--scheme",
            &scheme,
            "--data",
            &dir.path("data"),
            "--input",
            "1x8x8",
            "--epochs",
            "1",
            "--batch",
            "4",
            "--val",
            "4",
            "--checkpoint",
            &dir.path("ck.safetensors"),
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let header: Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(header["model"], "tiny-vgg-found-as-fast-as-g1-4-4");
    assert_eq!(
        header["groups"].as_u64().unwrap(),
        *groups.iter().max().unwrap()
    );
}

/// `--precision f16`: the layers are timed as an f16 model runs them, under the cache's
/// ` f16` keys, which an f32 search then does not take (and the other way round), and the
/// models timed end to end store halves. The discrete class is forced: its fully connected
/// kernel at batch 1 (`gemv_wide`) reads halves, where on the CPU class's list f16 tuning
/// may keep every layer on an f32-reading kernel (faster on lavapipe).
#[test]
fn f16_search_times_its_own_cache_entries() {
    let _g = common::serial();
    if common::gpu().is_none() {
        return;
    }
    let discrete = [("GCONV_ADAPTER_CLASS", "discrete")];
    let ok_json = |cache: &str, args: &[&str]| ok_json_in(cache, args, &discrete);
    let dir = TempDir::new("f16");
    let (cache, out) = (dir.path("cache"), dir.path("out"));
    let keys = |r: &Value| -> Vec<String> {
        r["latency"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["key"].as_str().unwrap().to_string())
            .collect()
    };
    let half = ok_json(
        &cache,
        &search(&out, &["--as-fast-as", "1,4,4", "--precision", "f16"]),
    );
    assert_eq!(half["precision"], "f16");
    let half_keys = keys(&half);
    assert!(!half_keys.is_empty());
    assert!(
        half_keys.iter().all(|k| k.ends_with(" f16")),
        "{half_keys:?}"
    );
    let measured = half["latency"]["layers_measured_now"].as_u64().unwrap();
    assert!(measured > 0);
    assert_eq!(half["latency"]["layers_from_cache"], 0);
    let toml = half["results"][0]["scheme_toml"].as_str().unwrap();
    assert!(toml.contains("--precision f16"), "{toml}");
    // The models timed end to end ran on halves too.
    for t in [&half["dense"]["measured"], &half["latency"]["calibration"]] {
        assert!(t["f16_weight_layers"].as_u64().unwrap() > 0, "{t}");
    }

    // f32 over the same cache: none of the f16 entries serves it.
    let full = ok_json(&cache, &search(&out, &["--as-fast-as", "1,4,4"]));
    assert_eq!(full["precision"], "f32");
    let full_keys = keys(&full);
    assert!(
        full_keys.iter().all(|k| !k.ends_with(" f16")),
        "{full_keys:?}"
    );
    assert_eq!(full["latency"]["layers_from_cache"], 0);
    assert_eq!(full["dense"]["measured"]["f16_weight_layers"], 0);
    assert!(!full["results"][0]["scheme_toml"]
        .as_str()
        .unwrap()
        .contains("--precision"));
    // And f16 again: all from the cache.
    let again = ok_json(
        &cache,
        &search(&out, &["--as-fast-as", "1,4,4", "--precision", "f16"]),
    );
    assert_eq!(again["latency"]["layers_measured_now"], 0);
    assert_eq!(
        again["latency"]["layers_from_cache"].as_u64(),
        Some(measured)
    );
}

/// Two classes of 8×8 gray PNGs.
fn write_folder(root: &Path) {
    for (k, class) in ["a", "b"].iter().enumerate() {
        let d = root.join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..6u32 {
            let img = image::GrayImage::from_fn(8, 8, |x, y| {
                image::Luma([if (y < 4) == (k == 1) {
                    200
                } else {
                    30 + ((x + i) % 9) as u8
                }])
            });
            img.save(d.join(format!("{i}.png"))).unwrap();
        }
    }
}

#[test]
fn bad_requests_write_nothing() {
    let _g = common::serial();
    if common::gpu().is_none() {
        return;
    }
    let dir = TempDir::new("bad");
    let (cache, out) = (dir.path("cache"), dir.path("out"));
    fails(
        &cache,
        &search(&out, &["--budget-ms", "NaN"]),
        "must be a positive number",
    );
    fails(
        &cache,
        &search(&out, &["--budget-ms=-5"]),
        "must be a positive number",
    );
    fails(
        &cache,
        &search(&out, &["--speedup", "0"]),
        "must be a positive factor",
    );
    fails(
        &cache,
        &search(&out, &["--budget-ms", "9", "--precision", "f8"]),
        "expected f32 or f16",
    );
    fails(
        &cache,
        &[
            "search",
            "--model",
            TINY,
            "--g",
            "3,5",
            "--budget-ms",
            "9",
            "--out",
            &out,
        ],
        "no G of [3, 5]",
    );
    let m = dir.path("m.toml");
    std::fs::write(
        &m,
        "name = \"m\"\nnum_classes = 10\ninput = [3, 16, 16]\n[arch]\nfamily = \"mobilenetv2\"\n\
         grouped_above = 100000\n",
    )
    .unwrap();
    fails(
        &cache,
        &["search", "--model", &m, "--budget-ms", "9", "--out", &out],
        "no convolution a scheme can group",
    );
    // A budget below the fastest scheme: said so, with the fastest's prediction.
    fails(
        &cache,
        &search(&out, &["--budget-ms", "0.000001"]),
        "below the fastest scheme",
    );
    // A file where the output folder (or a folder above it) should be, before any measuring.
    let file_out = dir.path("a-file");
    std::fs::write(&file_out, "x").unwrap();
    let below = format!("{file_out}/out");
    for o in [&file_out, &below] {
        fails(
            &cache,
            &["search", "--model", TINY, "--budget-ms", "9", "--out", o],
            "is not a folder",
        );
    }
    assert_eq!(std::fs::read_to_string(&file_out).unwrap(), "x");
    assert!(
        !Path::new(&out).exists(),
        "nothing written for failed searches"
    );
    // A corrupt cache is an error naming it, and it is left as it was.
    std::fs::create_dir_all(&cache).unwrap();
    let file = format!("{cache}/kernels.json");
    std::fs::write(&file, "{ not json").unwrap();
    fails(
        &cache,
        &search(&out, &["--budget-ms", "100"]),
        "kernels.json",
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{ not json");
    assert!(!Path::new(&out).exists());
}
