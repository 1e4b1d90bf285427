//! The table of activations (`ops::activation`) on the CPU: every activation against its
//! formula (written here again, in f64) on values that hit every branch, against PyTorch's
//! forward and backward on the same kind of values — NaN and the kinks included
//! (`tests/fixtures/activations/values.safetensors`, `scripts/make_activation_fixtures.py`) —
//! its backward against central differences, the derivative from the output against the one
//! from the input, fusion (inference: every activation; training: those whose derivative
//! comes from the output), the graph JSON (older exports load, new ones are flat) and bad
//! parameters. No GPU.

use gconv::graph::{Conv2dSpec, GraphBuilder, Op};
use gconv::ops::{Activation, Params};
use gconv::plan::Analysis;
use gconv::{Tensor, Weights};
use std::f64::consts::PI;

/// Every activation, with the parameters the tests (and the PyTorch fixture) use.
fn all() -> Vec<Activation> {
    let mut v: Vec<Activation> = Activation::ROWS.iter().map(|r| r.default).collect();
    for a in &mut v {
        *a = match *a {
            Activation::LeakyRelu { .. } => Activation::LeakyRelu { alpha: 0.1 },
            Activation::Elu { .. } => Activation::Elu { alpha: 0.7 },
            Activation::HardSigmoid { .. } => Activation::HARD_SIGMOID_TORCH,
            a => a,
        };
    }
    v
}

fn erf(x: f64) -> f64 {
    if x.abs() <= 3.0 {
        // Maclaurin series (terms below 10³ at |x| ≤ 3: no cancellation to speak of).
        let (mut term, mut sum) = (x, x);
        for n in 1..80 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / PI.sqrt()
    } else {
        // The asymptotic series of erfc (error below 10⁻⁸ for |x| > 3).
        let (z, mut term, mut sum) = (x.abs(), 1.0, 1.0);
        for n in 1..8 {
            term *= -((2 * n - 1) as f64) / (2.0 * z * z);
            sum += term;
        }
        x.signum() * (1.0 - (-z * z).exp() / (z * PI.sqrt()) * sum)
    }
}

/// The activation's formula, independently of the table.
fn formula(a: Activation, x: f64) -> f64 {
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let hs = |x: f64, al: f64, be: f64| (al * x + be).clamp(0.0, 1.0);
    match a {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Relu6 => x.clamp(0.0, 6.0),
        Activation::LeakyRelu { alpha } => {
            if x > 0.0 {
                x
            } else {
                f64::from(alpha) * x
            }
        }
        Activation::Gelu => 0.5 * x * (1.0 + erf(x / 2f64.sqrt())),
        Activation::GeluTanh => {
            0.5 * x * (1.0 + ((2.0 / PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
        }
        Activation::Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                f64::from(alpha) * x.exp_m1()
            }
        }
        Activation::Silu => x * sig(x),
        Activation::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::HardSigmoid { alpha, beta } => hs(x, alpha.into(), beta.into()),
        Activation::Sigmoid => sig(x),
        Activation::Tanh => x.tanh(),
    }
}

/// Values at and around every kink, small and large ones, ±0, and a dense grid.
fn points() -> Vec<f32> {
    let mut v = vec![
        -1e3, -30.0, -10.0, -6.5, -6.0, -5.9, -3.5, -3.0, -2.99, -2.5, -1.0, -0.5, -1e-3, -1e-6,
        -0.0, 0.0, 1e-6, 1e-3, 0.5, 1.0, 2.5, 2.99, 3.0, 3.5, 5.9, 6.0, 6.5, 10.0, 30.0, 1e3,
    ];
    v.extend((-240..=240).map(|i| i as f32 * 0.05));
    v
}

#[test]
fn every_activation_follows_its_formula_and_keeps_nan() {
    for a in all() {
        for x in points() {
            let (got, want) = (a.apply(x), formula(a, f64::from(x)));
            assert!(
                (f64::from(got) - want).abs() <= 2e-6 + 1e-5 * want.abs(),
                "{} at {x}: {got}, formula {want}",
                a.kind()
            );
        }
        assert!(a.apply(f32::NAN).is_nan(), "{}", a.kind());
    }
}

/// The PyTorch fixture: forward and backward (upstream gradient `g`, one NaN where the
/// activation saturates) on the same values, NaN in the same places.
#[test]
fn every_activation_matches_pytorch_forward_and_backward_nan_included() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/activations/values.safetensors"
    );
    let w = gconv::io::read_safetensors(path).unwrap();
    let g = w.require("g").unwrap().data();
    let close = |what: &str, got: f32, want: f32| {
        let ok = if want.is_nan() {
            got.is_nan()
        } else {
            (got - want).abs() <= 1e-6 + 2e-5 * want.abs()
        };
        assert!(ok, "{what}: gconv {got}, PyTorch {want}");
    };
    for a in all() {
        let k = a.kind();
        let x = w.require(&format!("{k}.x")).unwrap().data();
        let y = w.require(&format!("{k}.y")).unwrap().data();
        let dx = w.require(&format!("{k}.dx")).unwrap().data();
        for i in 0..x.len() {
            close(&format!("{k}({})", x[i]), a.apply(x[i]), y[i]);
            let d = a.grad_input(x[i], g[i]);
            close(&format!("{k}'({}) · {}", x[i], g[i]), d, dx[i]);
            if let Some(d) = a.grad_output(a.apply(x[i]), g[i]) {
                close(&format!("{k}' from y at {}", x[i]), d, dx[i]);
            }
        }
    }
}

/// `Σ g·f(x)` differentiated numerically through the op's CPU forward, against its CPU
/// backward, on a `[2, 3, 4, 4]` tensor (kinks skipped).
#[test]
fn every_backward_matches_central_differences() {
    let x = Tensor::from_fn(&[2, 3, 4, 4], |i| ((i * 7919 % 997) as f32) / 83.0 - 6.0);
    let gy = Tensor::from_fn(&[2, 3, 4, 4], |i| ((i * 31 % 17) as f32) / 8.0 - 1.0);
    let w = Weights::new();
    let p = Params {
        layer: "act",
        weights: &w,
    };
    let kinks = [0.0f32, 6.0, -3.0, 3.0];
    for a in all() {
        let op = Op::act(a);
        let y = op.def().forward(&p, &[&x]).unwrap();
        let saved = gconv::ops::Saved::None;
        let dx = op
            .def()
            .backward(&p, &[&x], &y, &saved, gy.clone())
            .unwrap();
        let dx = &dx.inputs[0];
        let h = 1e-3f32;
        for e in 0..x.numel() {
            let v = x.data()[e];
            if kinks.iter().any(|k| (v - k).abs() < 2.0 * h) {
                continue;
            }
            let f = |v: f32| f64::from(a.apply(v));
            let numeric = (f(v + h) - f(v - h)) / (2.0 * f64::from(h)) * f64::from(gy.data()[e]);
            let got = f64::from(dx.data()[e]);
            assert!(
                (got - numeric).abs() <= 2e-3 + 2e-3 * numeric.abs(),
                "{} at {v}: backward {got}, central difference {numeric}",
                a.kind()
            );
        }
    }
}

#[test]
fn the_derivative_from_the_output_is_the_one_from_the_input() {
    let mut from_y = Vec::new();
    for a in all().into_iter().chain([
        Activation::LeakyRelu { alpha: 0.0 },
        Activation::LeakyRelu { alpha: -0.5 },
        Activation::Elu { alpha: 0.0 },
        Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
    ]) {
        assert_eq!(a.grad_output(0.5, 1.0).is_some(), a.grad_from_output());
        if !a.grad_from_output() {
            continue;
        }
        from_y.push(a.kind());
        for x in points() {
            let g = 0.75;
            let want = a.grad_input(x, g);
            let got = a.grad_output(a.apply(x), g).unwrap();
            assert!(
                (got - want).abs() <= 1e-6 + 1e-5 * want.abs(),
                "{} at {x}: from y {got}, from x {want}",
                a.kind()
            );
        }
    }
    // A negative slope makes y ambiguous (y > 0 for x < 0): not from the output.
    assert!(!Activation::LeakyRelu { alpha: -0.5 }.grad_from_output());
    assert!(!Activation::Elu { alpha: -1.0 }.grad_from_output());
    from_y.dedup();
    for k in ["gelu", "gelu_tanh", "silu", "hard_swish"] {
        assert!(!from_y.contains(&k), "{k}");
    }
    for k in [
        "relu",
        "relu6",
        "leaky_relu",
        "elu",
        "hard_sigmoid",
        "sigmoid",
        "tanh",
    ] {
        assert!(from_y.contains(&k), "{k}");
    }
}

/// conv → act, BN → act, add → act, linear → act: every activation is fused at inference;
/// in training only those whose derivative comes from the output.
#[test]
fn fusion_takes_every_activation_at_inference_and_output_derivatives_in_training() {
    for a in all() {
        let mut b = GraphBuilder::new("fuse", [4, 5, 5]);
        let spec = Conv2dSpec::square(4, 4, 3, 1, 1).groups(2);
        let c = b.push("conv", Op::conv2d(spec), &[0]).unwrap();
        let ca = b.push("conv.act", Op::act(a), &[c]).unwrap();
        let bn = b.push("bn", Op::batch_norm(4, 1e-5), &[ca]).unwrap();
        let ba = b.push("bn.act", Op::act(a), &[bn]).unwrap();
        let add = b.push("add", Op::add(), &[ba, c]).unwrap();
        let aa = b.push("add.act", Op::act(a), &[add]).unwrap();
        let f = b.push("flatten", Op::flatten(), &[aa]).unwrap();
        let fc = b.push("fc", Op::linear(100, 3, true), &[f]).unwrap();
        let fa = b.push("fc.act", Op::act(a), &[fc]).unwrap();
        let g = b.finish(fa);
        let producers = [c, bn, add, fc];
        // The conv output also feeds the add: its activation runs standalone.
        let inference = Analysis::new(&g);
        let training = Analysis::for_pass(&g, true);
        for &p in &producers {
            let want = if p == c { Activation::None } else { a };
            assert_eq!(
                inference.fused[p],
                want,
                "{} after {}",
                a.kind(),
                g.nodes[p].name
            );
            let want = if a.grad_from_output() {
                want
            } else {
                Activation::None
            };
            assert_eq!(training.fused[p], want, "{} training", a.kind());
        }
    }
}

#[test]
fn older_graph_json_loads_and_new_activations_are_written_flat() {
    for (json, want) in [
        (r#"{"op":"relu"}"#, Activation::Relu),
        (r#"{"op":"relu6"}"#, Activation::Relu6),
        (r#"{"op":"sigmoid"}"#, Activation::Sigmoid),
        (
            r#"{"op":"hard_sigmoid","alpha":0.2,"beta":0.5}"#,
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
        ),
        (r#"{"op":"hard_swish"}"#, Activation::HardSwish),
    ] {
        let op: Op = serde_json::from_str(json).unwrap();
        assert_eq!(op, Op::act(want), "{json}");
        assert_eq!(serde_json::to_string(&op).unwrap(), json);
    }
    let op = Op::leaky_relu(0.1);
    assert_eq!(
        serde_json::to_string(&op).unwrap(),
        r#"{"op":"leaky_relu","alpha":0.1}"#
    );
    for r in Activation::ROWS {
        let op = Op::act(r.default);
        let json = serde_json::to_string(&op).unwrap();
        assert!(
            json.starts_with(&format!(r#"{{"op":"{}""#, r.kind)),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Op>(&json).unwrap(), op, "{json}");
        assert_eq!(op.kind(), r.kind);
    }
    // Other ops are unchanged; unknown ones and missing parameters are refused.
    let conv: Op = serde_json::from_str(r#"{"op":"add"}"#).unwrap();
    assert_eq!(conv, Op::add());
    assert!(serde_json::from_str::<Op>(r#"{"op":"swish"}"#).is_err());
    assert!(serde_json::from_str::<Op>(r#"{"op":"leaky_relu"}"#).is_err());
}

#[test]
fn a_bad_parameter_names_the_layer() {
    for (op, name) in [
        (Op::leaky_relu(f32::NAN), "alpha"),
        (
            Op::act(Activation::Elu {
                alpha: f32::INFINITY,
            }),
            "alpha",
        ),
        (Op::hard_sigmoid(0.2, f32::NAN), "beta"),
    ] {
        let mut b = GraphBuilder::new("bad", [2, 3, 3]);
        let e = b.push("stage1.act", op, &[0]).unwrap_err().to_string();
        assert!(e.contains("stage1.act") && e.contains(name), "{e}");
    }
}
