//! ONNX models from raw bytes, through everything a user's model goes through:
//! `onnx::parse_onnx` → `graph::fold_permutations` → `compile` → the CPU reference on a
//! batch-1 input when the graph is small enough (≤ 16 M MACs, ≤ 4 M activation elements).
//!
//! The fold must not change what the model computes: when both the folded and the unfolded
//! graph run, their outputs are compared (finite outputs, tolerance relative to the output's
//! largest magnitude), so a wrong fold is a crash too, not only a panic.
#![no_main]
#[path = "common/small_graph.rs"]
mod small_graph;

use gconv::compile::{compile, CompileOptions};
use gconv::graph::{fold_permutations, Graph};
use gconv::{Tensor, Weights};
use libfuzzer_sys::fuzz_target;
use small_graph::{agree, run_small};

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
        agree("the fold", &a, &b);
    }
});

/// Compiles `g` and runs it on one sample when it is small; `None` when anything refused it
/// or it was too big to run here.
fn run(g: &Graph, w: &Weights, opts: &CompileOptions) -> Option<Tensor> {
    let (g, w) = compile(g, w, opts).ok()?;
    run_small(&g, &w)
}
