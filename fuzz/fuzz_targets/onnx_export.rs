//! The ONNX export round trip from raw bytes: whatever model the importer accepts
//! (`onnx::parse_onnx` → `graph::fold_permutations` → `compile`) is exported again
//! (`onnx::onnx_bytes`), and the exported file must import, with the same MACs and parameters
//! as the graph it came from and, when the graph is small enough to run here (≤ 16 M MACs,
//! ≤ 4 M activation elements), the same CPU output on a batch-1 input.
//!
//! An export error is a fine answer (an op with no ONNX equivalent); a file the exporter
//! wrote that gconv's own importer refuses, a changed cost or a changed output is a crash.
#![no_main]
use gconv::compile::{compile, CompileOptions};
use gconv::graph::{fold_permutations, Graph};
use gconv::{Tensor, Weights};
use libfuzzer_sys::fuzz_target;

/// Per-sample multiply-accumulates above which the target does not run a graph.
const MAX_MACS: u64 = 16_000_000;
/// Activation elements (all nodes, one sample) above which it does not run a graph.
const MAX_ACTIVATIONS: usize = 4_000_000;

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
    if let (Some(a), Some(b)) = (run(&cg, &cw), run(&fg, &fw)) {
        agree(&a, &b);
    }
});

/// Runs `g` on one sample when it is small; `None` when it is too big to run here or the
/// CPU refused it (both sides are then skipped).
fn run(g: &Graph, w: &Weights) -> Option<Tensor> {
    let acts = g.nodes.iter().try_fold(0usize, |a, n| {
        a.checked_add(n.shape.iter().try_fold(1usize, |p, &d| p.checked_mul(d))?)
    })?;
    if g.cost().total_macs > MAX_MACS || acts > MAX_ACTIVATIONS {
        return None;
    }
    let [c, h, wd] = g.input_shape();
    let x = Tensor::from_fn(&[1, c, h, wd], |i| ((i * 7919 % 201) as f32 - 100.0) / 100.0);
    gconv::cpu::run_graph(g, w, &x).ok()
}

/// Panics when the exported model's output differs from the source's beyond float
/// reordering.
fn agree(a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape(), b.shape(), "the round trip changed the output shape");
    let (a, b) = (a.data(), b.data());
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return;
    }
    let scale = a.iter().chain(b).fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-3 * scale,
            "the round trip changed the output: element {i}: source {x}, exported {y} (scale {scale})"
        );
    }
}
