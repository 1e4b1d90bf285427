//! The ONNX export round trip from raw bytes: whatever model the importer accepts
//! (`onnx::parse_onnx` → `graph::fold_permutations` → `compile`) is exported again
//! (`onnx::onnx_bytes`), and the exported file must import, with the same MACs and parameters
//! as the graph it came from and, when the graph is small enough to run here (≤ 16 M MACs,
//! ≤ 4 M activation elements), the same CPU output on a batch-1 input.
//!
//! An export error is a fine answer (an op with no ONNX equivalent); a file the exporter
//! wrote that gconv's own importer refuses, a changed cost or a changed output is a crash.
#![no_main]
#[path = "common/small_graph.rs"]
mod small_graph;

use gconv::compile::{compile, CompileOptions};
use gconv::graph::fold_permutations;
use libfuzzer_sys::fuzz_target;
use small_graph::{agree, run_small};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = gconv::onnx::parse_onnx(data, "fuzz.onnx") else {
        return;
    };
    let Ok((g, w, _)) = fold_permutations(&m.graph, &m.weights) else {
        return;
    };
    let Ok((cg, cw)) = compile(&g, &w, &CompileOptions::default()) else {
        return;
    };
    let Ok((bytes, _)) = gconv::onnx::onnx_bytes(&cg, &cw, &Default::default()) else {
        return;
    };
    let back = gconv::onnx::parse_onnx(&bytes, "exported.onnx")
        .unwrap_or_else(|e| panic!("gconv's importer refuses what its exporter wrote: {e}"));
    let (fg, fw, _) = fold_permutations(&back.graph, &back.weights)
        .unwrap_or_else(|e| panic!("the exported file does not fold: {e}"));
    let (want, got) = (cg.cost(), fg.cost());
    assert_eq!(got.total_macs, want.total_macs, "the round trip changed the MACs");
    assert_eq!(got.total_params, want.total_params, "the round trip changed the parameters");
    if let (Some(a), Some(b)) = (run_small(&cg, &cw), run_small(&fg, &fw)) {
        agree("the round trip", &a, &b);
    }
});
