//! The ops added for imported networks (concat, sigmoid, hard sigmoid, hard swish, channel
//! broadcast mul): forward against their formulas, backward against central differences.

use gconv::graph::{GraphBuilder, Op};
use gconv::ops::{concat_channels, mul, Params, Saved};
use gconv::testing::{check_close, Tolerance};
use gconv::{cpu, Tensor, Weights};

fn t(shape: &[usize], seed: usize) -> Tensor {
    Tensor::from_fn(shape, |i| (((i + seed) * 7919 % 997) as f32) / 166.0 - 3.0)
}

/// `Σ gy ⊙ f(x)` differentiated numerically with respect to input `k`, element `e`.
fn numeric(op: &Op, ins: &[Tensor], gy: &Tensor, k: usize, e: usize) -> f32 {
    let w = Weights::new();
    let p = Params {
        layer: "t",
        weights: &w,
    };
    let f = |ins: &[Tensor]| {
        let refs: Vec<&Tensor> = ins.iter().collect();
        let y = op.def().forward(&p, &refs).unwrap();
        y.data()
            .iter()
            .zip(gy.data())
            .map(|(a, b)| (a * b) as f64)
            .sum::<f64>()
    };
    let h = 1e-2;
    let mut plus = ins.to_vec();
    plus[k].data_mut()[e] += h;
    let mut minus = ins.to_vec();
    minus[k].data_mut()[e] -= h;
    ((f(&plus) - f(&minus)) / (2.0 * h as f64)) as f32
}

fn check_backward(op: &Op, ins: &[Tensor]) {
    let w = Weights::new();
    let p = Params {
        layer: "t",
        weights: &w,
    };
    let refs: Vec<&Tensor> = ins.iter().collect();
    let y = op.def().forward(&p, &refs).unwrap();
    let gy = t(y.shape(), 5);
    let bw = op
        .def()
        .backward(&p, &refs, &y, &Saved::None, gy.clone())
        .unwrap();
    assert_eq!(bw.inputs.len(), ins.len());
    for (k, g) in bw.inputs.iter().enumerate() {
        assert_eq!(g.shape(), ins[k].shape(), "{} input {k}", op.kind());
        for e in (0..g.numel()).step_by(7) {
            let x = ins[k].data()[e];
            // Skip the kinks of the piecewise-linear ops.
            if [-3.0f32, 3.0, -2.5, 2.5]
                .iter()
                .any(|&kink| (x - kink).abs() < 0.02)
            {
                continue;
            }
            let n = numeric(op, ins, &gy, k, e);
            assert!(
                (g.data()[e] - n).abs() <= 2e-2 + 2e-2 * n.abs(),
                "{} input {k} element {e}: analytic {} numeric {n}",
                op.kind(),
                g.data()[e]
            );
        }
    }
}

#[test]
fn activations_follow_their_formulas() {
    let x = t(&[2, 3, 4, 4], 0);
    let w = Weights::new();
    let p = Params {
        layer: "t",
        weights: &w,
    };
    type Formula = fn(f32) -> f32;
    let cases: Vec<(Op, Formula)> = vec![
        (Op::sigmoid(), |v| 1.0 / (1.0 + (-v).exp())),
        (Op::hard_sigmoid(0.2, 0.5), |v| {
            (0.2 * v + 0.5).clamp(0.0, 1.0)
        }),
        (Op::hard_swish(), |v| v * (v + 3.0).clamp(0.0, 6.0) / 6.0),
    ];
    for (op, f) in cases {
        let y = op.def().forward(&p, &[&x]).unwrap();
        let want: Vec<f32> = x.data().iter().map(|&v| f(v)).collect();
        check_close(op.kind(), y.data(), &want, Tolerance::F32_OP).unwrap();
        let nan = Tensor::new(vec![1, 1, 1, 1], vec![f32::NAN]).unwrap();
        assert!(op.def().forward(&p, &[&nan]).unwrap().data()[0].is_nan());
        check_backward(&op, std::slice::from_ref(&x));
    }
}

#[test]
fn mul_broadcasts_a_channel_gate_either_way() {
    let x = t(&[2, 3, 4, 5], 1);
    let s = t(&[2, 3, 1, 1], 2);
    let y = mul(&x, &s).unwrap();
    let y2 = mul(&s, &x).unwrap();
    assert_eq!(y, y2);
    for n in 0..2 {
        for c in 0..3 {
            for i in 0..20 {
                let at = (n * 3 + c) * 20 + i;
                assert_eq!(y.data()[at], x.data()[at] * s.data()[n * 3 + c]);
            }
        }
    }
    assert!(mul(&x, &t(&[2, 2, 1, 1], 0)).is_err());
    check_backward(&Op::Mul(gconv::ops::Mul), &[x.clone(), s.clone()]);
    check_backward(&Op::Mul(gconv::ops::Mul), &[s, x.clone()]);
    check_backward(&Op::Mul(gconv::ops::Mul), &[x.clone(), t(x.shape(), 9)]);
}

#[test]
fn concat_takes_each_channel_from_its_source() {
    let a = t(&[2, 2, 3, 3], 3);
    let b = t(&[2, 3, 3, 3], 4);
    let sources = [[1, 2], [0, 0], [1, 0], [0, 0]];
    let y = concat_channels(&[&a, &b], &sources).unwrap();
    assert_eq!(y.shape(), &[2, 4, 3, 3]);
    let plane = |t: &Tensor, n: usize, c: usize| {
        let ch = t.shape()[1];
        t.data()[(n * ch + c) * 9..(n * ch + c + 1) * 9].to_vec()
    };
    for n in 0..2 {
        for (oc, &[k, ch]) in sources.iter().enumerate() {
            let src = if k == 0 { &a } else { &b };
            assert_eq!(plane(&y, n, oc), plane(src, n, ch));
        }
    }
    assert!(concat_channels(&[&a, &b], &[[2, 0]]).is_err());
    assert!(concat_channels(&[&a, &t(&[2, 1, 2, 3], 0)], &[[0, 0]]).is_err());
    let op = Op::Concat(gconv::ops::Concat {
        inputs: 2,
        sources: sources.to_vec(),
    });
    check_backward(&op, &[a, b]);
}

#[test]
fn a_squeeze_excitation_block_runs_in_a_graph() {
    // x · hard_sigmoid(conv(relu(conv(avgpool(x))))), as torchvision's SqueezeExcitation.
    use gconv::graph::Conv2dSpec;
    let mut b = GraphBuilder::new("se", [8, 5, 5]);
    let p = b.push("pool", Op::adaptive_avg_pool([1, 1]), &[0]).unwrap();
    let f1 = b
        .push(
            "fc1",
            Op::conv2d(Conv2dSpec::square(8, 2, 1, 1, 0).bias(true)),
            &[p],
        )
        .unwrap();
    let r = b.push("relu", Op::relu(), &[f1]).unwrap();
    let f2 = b
        .push(
            "fc2",
            Op::conv2d(Conv2dSpec::square(2, 8, 1, 1, 0).bias(true)),
            &[r],
        )
        .unwrap();
    let gate = b
        .push("gate", Op::hard_sigmoid(1.0 / 6.0, 0.5), &[f2])
        .unwrap();
    let y = b
        .push("scale", Op::Mul(gconv::ops::Mul), &[0, gate])
        .unwrap();
    assert!(b.push("bad", Op::Mul(gconv::ops::Mul), &[0, f1]).is_err());
    let g = b.finish(y);
    let w = Weights::random_for_tests(&g, 1);
    let x = t(&[2, 8, 5, 5], 0);
    let out = cpu::run_graph(&g, &w, &x).unwrap();
    assert_eq!(out.shape(), x.shape());
    // The gate is in [0, 1], so |y| ≤ |x| everywhere.
    assert!(out
        .data()
        .iter()
        .zip(x.data())
        .all(|(y, x)| y.abs() <= x.abs() + 1e-6));
}
