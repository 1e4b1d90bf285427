//! ONNX models from raw bytes, through everything a user's model goes through:
//! `onnx::parse_onnx` → `graph::fold_permutations` → `compile` → the CPU reference on a
//! batch-1 input when the graph is small enough (≤ 16 M MACs, ≤ 4 M activation elements).
//!
//! The fold must not change what the model computes: when both the folded and the unfolded
//! graph run, their outputs are compared (finite outputs, tolerance relative to the output's
//! largest magnitude), so a wrong fold is a crash too, not only a panic.
#![no_main]
use gconv::compile::{compile, CompileOptions};
use gconv::graph::{fold_permutations, Graph};
use gconv::{Tensor, Weights};
use libfuzzer_sys::fuzz_target;

/// Per-sample multiply-accumulates above which the fuzz target does not run a graph.
const MAX_MACS: u64 = 16_000_000;
/// Activation elements (all nodes, one sample) above which it does not run a graph.
const MAX_ACTIVATIONS: usize = 4_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = gconv::onnx::parse_onnx(data, "fuzz.onnx") else {
        return;
    };
    let opts = CompileOptions::default();
    let unfolded = run(&m.graph, &m.weights, &opts);
    let Ok((g, w, _)) = fold_permutations(&m.graph, &m.weights) else {
        return;
    };
    let folded = run(&g, &w, &opts);
    if let (Some(a), Some(b)) = (unfolded, folded) {
        agree(&a, &b);
    }
});

/// Compiles `g` and runs it on one sample when it is small; `None` when anything refused it
/// (an error is a fine answer to a hostile model) or it was too big to run here.
fn run(g: &Graph, w: &Weights, opts: &CompileOptions) -> Option<Tensor> {
    let (g, w) = compile(g, w, opts).ok()?;
    let acts = g.nodes.iter().try_fold(0usize, |a, n| {
        a.checked_add(n.shape.iter().try_fold(1usize, |p, &d| p.checked_mul(d))?)
    })?;
    if g.cost().total_macs > MAX_MACS || acts > MAX_ACTIVATIONS {
        return None;
    }
    let [c, h, wd] = g.input_shape();
    let x = Tensor::from_fn(&[1, c, h, wd], |i| ((i * 7919 % 201) as f32 - 100.0) / 100.0);
    gconv::cpu::run_graph(&g, &w, &x).ok()
}

/// Panics when the folded and unfolded outputs differ beyond float reordering.
fn agree(a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape(), b.shape(), "fold changed the output shape");
    let (a, b) = (a.data(), b.data());
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return;
    }
    let scale = a.iter().chain(b).fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-3 * scale,
            "fold changed the output: element {i}: unfolded {x}, folded {y} (scale {scale})"
        );
    }
}
