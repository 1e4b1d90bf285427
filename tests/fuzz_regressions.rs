//! Every input with which `cargo fuzz` (fuzz/, `scripts/fuzz_smoke.sh`) crashed a reader,
//! kept under `tests/fixtures/fuzz/<target>/` and fed to the same entry point as the fuzz
//! target: each must now be an `Error` with the expected message, never a panic. A file of
//! those folders that no case here names fails the test, so no crash input goes untested.

use gconv::io;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(target)
}

/// What the `exported_graph_json` fuzz target does: `json` as the graph of an exported model
/// holding no tensors.
fn exported_graph_json(json: &[u8]) -> gconv::Result<()> {
    let json = std::str::from_utf8(json).expect("the JSON fixtures are UTF-8");
    let meta = BTreeMap::from([(io::exported::GRAPH_KEY.to_string(), json.to_string())]);
    let header = serde_json::json!({ "__metadata__": meta }).to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    io::exported_from_bytes(&bytes, "fuzz.safetensors").map(drop)
}

/// Runs one fuzz target's entry point on `bytes`.
fn run(target: &str, bytes: &[u8]) -> gconv::Result<()> {
    match target {
        "exported" => io::exported_from_bytes(bytes, "fuzz.safetensors").map(drop),
        "exported_graph_json" => exported_graph_json(bytes),
        // As the `image` target: grey for an even length, RGB for an odd one.
        "image" => {
            let channels = if bytes.len() % 2 == 0 { 1 } else { 3 };
            io::image_from_bytes(bytes, "fuzz.jpg", channels, [8, 8]).map(drop)
        }
        other => panic!("no entry point for fuzz target {other}"),
    }
}

/// `(target, file, words the error must contain)`, one per crash found, with what it was;
/// [`DECODES`] for an input that must be accepted (a slow one, kept so it stays handled).
const CASES: &[(&str, &str, &str)] = &[
    // Found by `exported` in its first seconds: a grouped conv table with stride 0 divided
    // by zero in shape inference (`Conv2dSpec::out_hw`); the raw 63 KB input.
    (
        "exported",
        "table-stride-zero.safetensors",
        "kernel, stride and dilation must be at least 1",
    ),
    // The same, reduced by hand to its graph.
    (
        "exported_graph_json",
        "table-stride-zero.json",
        "t: kernel, stride and dilation must be at least 1",
    ),
    // Its sibling: kernel 0 underflowed `kernel - 1` in the same formula.
    (
        "exported_graph_json",
        "table-kernel-zero.json",
        "t: kernel, stride and dilation must be at least 1",
    ),
    // Found by `image` (round 3, 2026-12-06), libFuzzer timeouts at -timeout=10 and 30 on a
    // machine at load 13: 587-byte JPEGs whose frame claims 36611×219 grey pixels (8 M, under
    // MAX_IMAGE_PIXELS), decoded in 1.7 s alone (fuzz build), 4–6 s loaded. Slow, not a hang:
    // kept so that they stay handled (no panic, bounded memory).
    ("image", "jpeg-36611x219-timeout-1.jpg", DECODES),
    ("image", "jpeg-36611x219-timeout-2.jpg", DECODES),
];

/// The needle of a case whose input must be accepted.
const DECODES: &str = "(accepted)";

#[test]
fn every_crash_input_is_now_an_error() {
    for &(target, file, needle) in CASES {
        let bytes = std::fs::read(dir(target).join(file)).unwrap();
        match run(target, &bytes) {
            Ok(()) if needle == DECODES => {}
            Err(e) => {
                let m = e.to_string();
                assert!(
                    m.contains(needle),
                    "{target}/{file}: {m:?} lacks {needle:?}"
                );
            }
            Ok(()) => panic!("{target}/{file} was accepted"),
        }
    }
}

#[test]
fn every_fixture_is_a_case() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut seen = 0;
    for target in std::fs::read_dir(&root).unwrap() {
        let target = target.unwrap();
        let t = target.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(target.path()).unwrap() {
            let f = f.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                CASES.iter().any(|&(ct, cf, _)| ct == t && cf == f),
                "tests/fixtures/fuzz/{t}/{f} has no case in CASES"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, CASES.len(), "a case names a missing file");
}

/// The `onnx` target found no crash (23 M runs); its committed seeds must keep reaching the
/// end of its pipeline (import → fold_permutations → compile → CPU run, folded output equal
/// to unfolded), or the fuzzer would silently stop at the importer.
#[test]
fn onnx_seeds_reach_the_end_of_the_fuzz_pipeline() {
    use gconv::compile::{compile, CompileOptions};
    use gconv::graph::{fold_permutations, Graph};
    use gconv::{Tensor, Weights};
    let run = |g: &Graph, w: &Weights| -> Tensor {
        let (g, w) = compile(g, w, &CompileOptions::default()).unwrap();
        let [c, h, wd] = g.input_shape();
        let x = Tensor::from_fn(&[1, c, h, wd], |i| {
            ((i * 7919 % 201) as f32 - 100.0) / 100.0
        });
        gconv::cpu::run_graph(&g, &w, &x).unwrap()
    };
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/onnx");
    let mut n = 0;
    for f in std::fs::read_dir(seeds).unwrap() {
        let path = f.unwrap().path();
        let m = gconv::onnx::read_onnx(&path).unwrap();
        let (g, w, _) = fold_permutations(&m.graph, &m.weights).unwrap();
        let (a, b) = (run(&m.graph, &m.weights), run(&g, &w));
        assert_eq!(a.shape(), b.shape(), "{}", path.display());
        gconv::testing::assert_close(
            &path.display().to_string(),
            b.data(),
            a.data(),
            gconv::testing::Tolerance::F32_MODEL,
        );
        n += 1;
    }
    assert!(n >= 9, "{n} ONNX seeds");
}

/// The `onnx_export` target's seeds (the `onnx` seeds and the ONNX fixtures) must reach the
/// end of its pipeline: import → fold → compile → export → import again, with the same MACs,
/// parameters and CPU output — or the fuzzer would stop at an export error and test nothing.
#[test]
fn onnx_export_seeds_reach_the_end_of_the_round_trip() {
    use gconv::compile::{compile, CompileOptions};
    use gconv::graph::fold_permutations;
    use gconv::Tensor;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    for dir in ["fuzz/seeds/onnx", "tests/fixtures/onnx"] {
        for f in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = f.unwrap().path();
            let bad = p.file_name().unwrap().to_string_lossy().starts_with("bad_");
            if p.extension().is_some_and(|e| e == "onnx") && !bad {
                paths.push(p);
            }
        }
    }
    for path in &paths {
        let what = path.display().to_string();
        let m = gconv::onnx::read_onnx(path).unwrap();
        let (g, w, _) = fold_permutations(&m.graph, &m.weights).unwrap();
        let (cg, cw) = compile(&g, &w, &CompileOptions::default()).unwrap();
        let (bytes, _) = gconv::onnx::onnx_bytes(&cg, &cw, &Default::default())
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let back = gconv::onnx::parse_onnx(&bytes, "exported.onnx").unwrap();
        let (fg, fw, _) = fold_permutations(&back.graph, &back.weights).unwrap();
        assert_eq!(fg.cost().total_macs, cg.cost().total_macs, "{what}: MACs");
        assert_eq!(
            fg.cost().total_params,
            cg.cost().total_params,
            "{what}: params"
        );
        let [c, h, wd] = cg.input_shape();
        let x = Tensor::from_fn(&[1, c, h, wd], |i| {
            ((i * 7919 % 201) as f32 - 100.0) / 100.0
        });
        let want = gconv::cpu::run_graph(&cg, &cw, &x).unwrap();
        let got = gconv::cpu::run_graph(&fg, &fw, &x).unwrap();
        gconv::testing::assert_close(
            &what,
            got.data(),
            want.data(),
            gconv::testing::Tolerance::F32_MODEL,
        );
    }
    assert!(paths.len() >= 17, "{} ONNX models", paths.len());
}
