//! Shared by the `onnx` and `onnx_export` targets: a graph run on the CPU reference when it
//! is small enough, and two outputs compared beyond float reordering.

use gconv::graph::Graph;
use gconv::{Tensor, Weights};

/// Per-sample multiply-accumulates above which a target does not run a graph.
const MAX_MACS: u64 = 16_000_000;
/// Activation elements (all nodes, one sample) above which a target does not run a graph.
const MAX_ACTIVATIONS: usize = 4_000_000;

/// Runs `g` on one deterministic sample when it is small; `None` when it is too big to run
/// here or the CPU refused it (an error is a fine answer to a hostile model).
pub fn run_small(g: &Graph, w: &Weights) -> Option<Tensor> {
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

/// Panics when `b` differs from `a` beyond float reordering (tolerance relative to the
/// largest magnitude; non-finite outputs are not compared); `what` names the change.
pub fn agree(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape(), b.shape(), "{what} changed the output shape");
    let (a, b) = (a.data(), b.data());
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return;
    }
    let scale = a.iter().chain(b).fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-3 * scale,
            "{what} changed the output: element {i}: before {x}, after {y} (scale {scale})"
        );
    }
}
