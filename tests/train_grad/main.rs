//! Gradients of the CPU training path: finite differences for every op, PyTorch goldens
//! (`scripts/make_grad_goldens.py`), FLGC's straight-through estimator (non-zero selection
//! gradients, groups that actually change), and small models whose loss goes down.
//!
//! Finite differences are central, `(L(θ+ε) − L(θ−ε)) / 2ε` with ε = 1e-2, of a scalar loss
//! `L = Σ r ⊙ y` (r fixed random) summed in f64 from the f32 forward. Linear ops have no
//! truncation error, so the error is f32 rounding of y (~1e-7·|y|) divided by 2ε, a few 1e-5
//! summed over the outputs; smooth non-linear ones (BN, softmax) add O(ε²). Tolerance for FD
//! checks: atol 2e-3 + rtol 1e-2 ([`FD_TOL`]).

use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, Op, Pool2dSpec};
use gconv::testing::Tolerance;
use gconv::Tensor;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod finite_diff;
mod goldens;
mod training;

/// See the file comment: f32 forward, ε = 1e-2 central differences.
const FD_TOL: Tolerance = Tolerance {
    atol: 2e-3,
    rtol: 1e-2,
};
const EPS: f32 = 1e-2;

fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn rand_t(shape: &[usize], seed: u64) -> Tensor {
    Tensor::new(shape.to_vec(), rand_vec(shape.iter().product(), seed)).unwrap()
}

fn dot(y: &Tensor, r: &[f32]) -> f64 {
    y.data()
        .iter()
        .zip(r)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Central-difference gradient of `f` at `x`.
fn fd(x: &[f32], f: impl Fn(&[f32]) -> f64) -> Vec<f32> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let v = xp[i];
            xp[i] = v + EPS;
            let lp = f(&xp);
            xp[i] = v - EPS;
            let lm = f(&xp);
            xp[i] = v;
            ((lp - lm) / (2.0 * EPS as f64)) as f32
        })
        .collect()
}

fn with(t: &Tensor, d: &[f32]) -> Tensor {
    Tensor::new(t.shape().to_vec(), d.to_vec()).unwrap()
}

/// A small graph with every other op: conv, BN (training), ReLU, a residual add whose input has
/// two consumers, avg and max pool, FLGC, adaptive pool, flatten, dropout, linear, softmax.
fn mixed_graph(softmax: bool) -> Graph {
    let mut b = GraphBuilder::new("mixed", [3, 6, 6]);
    let x = b.input();
    let c1 = b
        .push(
            "conv1",
            Op::Conv2d(Conv2dSpec::square(3, 4, 3, 1, 1).bias(true)),
            &[x],
        )
        .unwrap();
    let n1 = b
        .push(
            "bn1",
            Op::BatchNorm(gconv::ops::BatchNorm {
                channels: 4,
                eps: 1e-5,
            }),
            &[c1],
        )
        .unwrap();
    let r1 = b.push("relu1", Op::relu(), &[n1]).unwrap();
    let c2 = b
        .push(
            "conv2",
            Op::Conv2d(Conv2dSpec::square(4, 4, 3, 1, 1).groups(2)),
            &[r1],
        )
        .unwrap();
    let a = b.push("add", Op::Add(gconv::ops::Add), &[c2, r1]).unwrap();
    let ap = b
        .push(
            "avgpool",
            Op::AvgPool(gconv::ops::AvgPool(Pool2dSpec::square(3, 1, 1))),
            &[a],
        )
        .unwrap();
    let f = b
        .push(
            "flgc",
            Op::FlgcConv2d(gconv::ops::FlgcSpec(
                Conv2dSpec::square(4, 6, 1, 1, 0).groups(2).bias(true),
            )),
            &[ap],
        )
        .unwrap();
    let mp = b
        .push(
            "maxpool",
            Op::MaxPool(gconv::ops::MaxPool(Pool2dSpec::square(2, 2, 0))),
            &[f],
        )
        .unwrap();
    let ad = b
        .push(
            "adapt",
            Op::AdaptiveAvgPool(gconv::ops::AdaptiveAvgPool { output: [2, 2] }),
            &[mp],
        )
        .unwrap();
    let fl = b
        .push("flatten", Op::Flatten(gconv::ops::Flatten), &[ad])
        .unwrap();
    let d = b
        .push("drop", Op::Dropout(gconv::ops::Dropout { p: 0.3 }), &[fl])
        .unwrap();
    let mut out = b
        .push(
            "fc",
            Op::Linear(gconv::ops::Linear {
                in_features: 24,
                out_features: 5,
                bias: true,
            }),
            &[d],
        )
        .unwrap();
    if softmax {
        out = b
            .push("softmax", Op::Softmax(gconv::ops::Softmax), &[out])
            .unwrap();
    }
    b.finish(out)
}
