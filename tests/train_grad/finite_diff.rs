//! Finite differences, op by op and on a whole graph; inference-only ops have no backward.

use super::{dot, fd, mixed_graph, rand_t, rand_vec, with, FD_TOL};
use gconv::graph::{Conv2dSpec, GraphBuilder, Op, Pool2dSpec};
use gconv::testing::assert_close;
use gconv::train::backward as bw;
use gconv::train::{self, Mode};
use gconv::{cpu, Tensor, Weights};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn check_conv(name: &str, c: usize, n: usize, hw: usize, spec: Conv2dSpec) {
    let x = rand_t(&[2, c, hw, hw], 1);
    let w = rand_t(&spec.weight_shape(), 2);
    let b = rand_vec(n, 3);
    let y = cpu::conv2d(&x, &w, Some(&b), &spec).unwrap();
    let r = rand_vec(y.numel(), 4);
    let g = bw::conv2d_backward(&x, &w, &with(&y, &r), &spec).unwrap();
    let loss =
        |x: &Tensor, w: &Tensor, b: &[f32]| dot(&cpu::conv2d(x, w, Some(b), &spec).unwrap(), &r);
    let dx = fd(x.data(), |d| loss(&with(&x, d), &w, &b));
    let dw = fd(w.data(), |d| loss(&x, &with(&w, d), &b));
    let db = fd(&b, |d| loss(&x, &w, d));
    assert_close(&format!("{name} dx"), g.input.data(), &dx, FD_TOL);
    assert_close(&format!("{name} dw"), g.weight.data(), &dw, FD_TOL);
    assert_close(&format!("{name} db"), g.bias.unwrap().data(), &db, FD_TOL);
}

#[test]
fn conv_grads_match_finite_differences() {
    let base = |c, n, k, s, p| Conv2dSpec::square(c, n, k, s, p).bias(true);
    // Dense, G=1, stride 1.
    check_conv("dense", 6, 6, 5, base(6, 6, 3, 1, 1));
    // G=2 (3 channels / group), stride 2, padding 1.
    check_conv("g2 s2 p1", 6, 4, 7, base(6, 4, 3, 2, 1).groups(2));
    // G=3 (2 channels / group), dilation 2, padding 2.
    let mut s = base(6, 6, 3, 1, 2).groups(3);
    s.dilation = [2, 2];
    check_conv("g3 d2", 6, 6, 6, s);
    // G=C depthwise with channel multiplier 2, stride 2, padding 1.
    check_conv("depthwise", 4, 8, 6, base(4, 8, 3, 2, 1).groups(4));
    // Pointwise 1×1, G=3, stride 2.
    check_conv("pointwise g3", 6, 9, 5, base(6, 9, 1, 2, 0).groups(3));
    // Non-square kernel / stride / padding.
    let mut s = base(4, 4, 3, 1, 1).groups(2);
    s.kernel = [3, 2];
    s.stride = [1, 2];
    s.padding = [1, 0];
    check_conv("rect", 4, 4, 5, s);
}

#[test]
#[allow(clippy::needless_range_loop)] // the matrix products read best with explicit indices
fn flgc_input_weight_and_mask_grads_match_finite_differences() {
    let spec = Conv2dSpec::square(6, 8, 3, 1, 1).groups(3).bias(true);
    let x = rand_t(&[2, 6, 5, 5], 11);
    let w = rand_t(&[8, 6, 3, 3], 12);
    let b = rand_vec(8, 13);
    let sbar = rand_t(&[6, 3], 14);
    let tbar = rand_t(&[8, 3], 15);
    let y = cpu::flgc_conv2d(&x, &w, Some(&b), &sbar, &tbar, &spec).unwrap();
    let r = rand_vec(y.numel(), 16);
    let g = bw::flgc_conv2d_backward(&x, &w, &sbar, &tbar, &with(&y, &r), &spec).unwrap();
    let mask = cpu::flgc_mask(&sbar, &tbar).unwrap();
    let dense = Conv2dSpec {
        groups: 1,
        ..spec.clone()
    };
    // Loss as a function of the masked weight W' = W ⊙ M directly, and of a real-valued mask.
    let of_wm = |x: &Tensor, wm: &Tensor| dot(&cpu::conv2d(x, wm, Some(&b), &dense).unwrap(), &r);
    let wm = cpu::masked_weight(&w, &mask).unwrap();
    let dx = fd(x.data(), |d| of_wm(&with(&x, d), &wm));
    assert_close("flgc dx", g.input.data(), &dx, FD_TOL);
    // ∂L/∂W = D = ∂L/∂W' on EVERY entry (Eq. 16), including those the mask zeroes today.
    let d = fd(wm.data(), |d| of_wm(&x, &with(&wm, d)));
    assert_close("flgc dW = dL/d(W⊙M)", g.weight.data(), &d, FD_TOL);
    let off_mask = mask.data().iter().filter(|&&m| m == 0.0).count();
    assert!(off_mask > 0, "the test needs masked-out entries");
    // ∂L/∂M with M treated as real-valued.
    let dm = fd(mask.data(), |m| {
        of_wm(&x, &cpu::masked_weight(&w, &with(&mask, m)).unwrap())
    });
    assert_close("flgc dM", g.mask.data(), &dm, FD_TOL);
    // The selection gradients: STE (Gmᵀ·T, Gm·S) then the softmax Jacobian, computed here
    // independently with dense matrix products.
    let (cn, nn, gg) = (6, 8, 3);
    let sg = cpu::row_argmax(&sbar).unwrap();
    let tg = cpu::row_argmax(&tbar).unwrap();
    let mut gs = vec![0.0f32; cn * gg];
    let mut gt = vec![0.0f32; nn * gg];
    for c in 0..cn {
        for j in 0..gg {
            for n in 0..nn {
                let t = f32::from(u8::from(tg[n] == j));
                gs[c * gg + j] += g.mask.data()[n * cn + c] * t;
            }
        }
    }
    for n in 0..nn {
        for j in 0..gg {
            for c in 0..cn {
                let s = f32::from(u8::from(sg[c] == j));
                gt[n * gg + j] += g.mask.data()[n * cn + c] * s;
            }
        }
    }
    // Softmax Jacobian by finite differences of p(S̄) = softmax rows: ∂L/∂S̄ = Jᵀ·gŜ.
    let jac = |m: &Tensor, gh: &[f32]| {
        fd(m.data(), |v| {
            dot(&cpu::row_softmax(&with(m, v)).unwrap(), gh)
        })
    };
    assert_close("flgc dS̄", g.select_in.data(), &jac(&sbar, &gs), FD_TOL);
    assert_close("flgc dT̄", g.select_out.data(), &jac(&tbar, &gt), FD_TOL);
    assert!(g.select_in.data().iter().any(|v| v.abs() > 1e-4));
    assert!(g.select_out.data().iter().any(|v| v.abs() > 1e-4));
}

#[test]
fn batch_norm_training_grads_match_finite_differences() {
    let x = {
        let mut t = rand_t(&[3, 4, 3, 3], 21);
        t.data_mut().iter_mut().for_each(|v| *v = *v * 2.0 + 0.5);
        t
    };
    let gamma: Vec<f32> = rand_vec(4, 22).iter().map(|v| v + 1.5).collect();
    let beta = rand_vec(4, 23);
    let (y, st) = bw::batch_norm_train(&x, &gamma, &beta, 1e-5).unwrap();
    let r = rand_vec(y.numel(), 24);
    let (dx, dg, db) = bw::batch_norm_train_backward(&x, &gamma, &st, &with(&y, &r)).unwrap();
    let loss =
        |x: &Tensor, g: &[f32], b: &[f32]| dot(&bw::batch_norm_train(x, g, b, 1e-5).unwrap().0, &r);
    assert_close(
        "bn dx",
        dx.data(),
        &fd(x.data(), |d| loss(&with(&x, d), &gamma, &beta)),
        FD_TOL,
    );
    assert_close("bn dγ", &dg, &fd(&gamma, |d| loss(&x, d, &beta)), FD_TOL);
    assert_close("bn dβ", &db, &fd(&beta, |d| loss(&x, &gamma, d)), FD_TOL);
}

#[test]
fn pool_grads_match_finite_differences() {
    // Max pool: distinct values 0.05 apart (> 2ε), so no window changes its argmax under ±ε.
    let n = 2 * 3 * 7 * 7;
    let mut rng = SmallRng::seed_from_u64(31);
    let mut vals: Vec<f32> = (0..n).map(|i| i as f32 * 0.05 - 3.0).collect();
    for i in (1..n).rev() {
        vals.swap(i, rng.random_range(0..=i));
    }
    let x = Tensor::new(vec![2, 3, 7, 7], vals).unwrap();
    for p in [
        Pool2dSpec::square(3, 2, 1),
        Pool2dSpec::square(2, 2, 0),
        Pool2dSpec::square(3, 1, 0),
    ] {
        let y = cpu::max_pool2d(&x, &p).unwrap();
        let r = rand_vec(y.numel(), 32);
        let g = bw::max_pool2d_backward(&x, &p, &with(&y, &r)).unwrap();
        let want = fd(x.data(), |d| {
            dot(&cpu::max_pool2d(&with(&x, d), &p).unwrap(), &r)
        });
        assert_close(&format!("maxpool {p:?}"), g.data(), &want, FD_TOL);
        let y = cpu::avg_pool2d(&x, &p).unwrap();
        let g = bw::avg_pool2d_backward(x.shape(), &p, &with(&y, &r)).unwrap();
        let want = fd(x.data(), |d| {
            dot(&cpu::avg_pool2d(&with(&x, d), &p).unwrap(), &r)
        });
        assert_close(&format!("avgpool {p:?}"), g.data(), &want, FD_TOL);
    }
    // Adaptive: overlapping bins (7 → 3), one bin (→ 1), and more bins than inputs (2 → 3).
    for (shape, out) in [
        ([2, 3, 7, 7], [3, 3]),
        ([2, 3, 7, 7], [1, 1]),
        ([1, 2, 2, 3], [3, 2]),
    ] {
        let x = rand_t(&shape, 33);
        let y = cpu::adaptive_avg_pool2d(&x, out).unwrap();
        let r = rand_vec(y.numel(), 34);
        let g = bw::adaptive_avg_pool2d_backward(x.shape(), out, &with(&y, &r)).unwrap();
        let want = fd(x.data(), |d| {
            dot(&cpu::adaptive_avg_pool2d(&with(&x, d), out).unwrap(), &r)
        });
        assert_close(&format!("adaptive {out:?}"), g.data(), &want, FD_TOL);
    }
}

#[test]
fn max_pool_ties_go_to_the_first_maximum() {
    let x = Tensor::new(vec![1, 1, 2, 2], vec![1.0, 1.0, 1.0, 1.0]).unwrap();
    let g = bw::max_pool2d_backward(
        &x,
        &Pool2dSpec::square(2, 2, 0),
        &Tensor::new(vec![1, 1, 1, 1], vec![3.0]).unwrap(),
    )
    .unwrap();
    assert_eq!(g.data(), &[3.0, 0.0, 0.0, 0.0]);
}

#[test]
fn linear_and_cross_entropy_grads_match_finite_differences() {
    let x = rand_t(&[3, 5], 41);
    let w = rand_t(&[4, 5], 42);
    let b = rand_vec(4, 43);
    let y = cpu::linear(&x, &w, Some(&b)).unwrap();
    let r = rand_vec(y.numel(), 44);
    let (dx, dw, db) = bw::linear_backward(&x, &w, &with(&y, &r), true).unwrap();
    let loss = |x: &Tensor, w: &Tensor, b: &[f32]| dot(&cpu::linear(x, w, Some(b)).unwrap(), &r);
    assert_close(
        "linear dx",
        dx.data(),
        &fd(x.data(), |d| loss(&with(&x, d), &w, &b)),
        FD_TOL,
    );
    assert_close(
        "linear dw",
        dw.data(),
        &fd(w.data(), |d| loss(&x, &with(&w, d), &b)),
        FD_TOL,
    );
    assert_close(
        "linear db",
        db.unwrap().data(),
        &fd(&b, |d| loss(&x, &w, d)),
        FD_TOL,
    );

    let logits = rand_t(&[4, 5], 45);
    let labels = [0, 4, 2, 2];
    let (_, g, _) = bw::softmax_cross_entropy(&logits, &labels).unwrap();
    let want = fd(logits.data(), |d| {
        bw::softmax_cross_entropy(&with(&logits, d), &labels)
            .unwrap()
            .0 as f64
    });
    assert_close("softmax-CE dlogits", g.data(), &want, FD_TOL);

    let y = cpu::softmax(&logits).unwrap();
    let r = rand_vec(y.numel(), 46);
    let g = bw::softmax_backward(&y, &with(&y, &r)).unwrap();
    let want = fd(logits.data(), |d| {
        dot(&cpu::softmax(&with(&logits, d)).unwrap(), &r)
    });
    assert_close("softmax dx", g.data(), &want, FD_TOL);
}

#[test]
fn whole_graph_grads_match_finite_differences() {
    // Every parameter except the FLGC selection matrices (STE, not a true gradient; checked
    // above and against PyTorch) and the FLGC weight (D on every entry; checked above).
    for softmax in [false, true] {
        let g = mixed_graph(softmax);
        let w = Weights::random_for_tests(&g, 51);
        let x = rand_t(&[2, 3, 6, 6], 52);
        let labels = [1usize, 3];
        let r = rand_vec(10, 53);
        let seed = 7;
        let loss = |w: &Weights, x: &Tensor| {
            let tape = train::forward(&g, w, x, Mode::Train, seed).unwrap();
            let out = tape.output(&g);
            if softmax {
                dot(out, &r)
            } else {
                bw::softmax_cross_entropy(out, &labels).unwrap().0 as f64
            }
        };
        let tape = train::forward(&g, &w, &x, Mode::Train, seed).unwrap();
        let grad_out = if softmax {
            with(tape.output(&g), &r)
        } else {
            bw::softmax_cross_entropy(tape.output(&g), &labels)
                .unwrap()
                .1
        };
        let grads = train::backward_graph(&g, &w, &tape, grad_out).unwrap();
        let dx = fd(x.data(), |d| loss(&w, &with(&x, d)));
        assert_close("graph dx", grads.input.data(), &dx, FD_TOL);
        for p in train::trainable_params(&g) {
            if p.key.starts_with("flgc.") && p.key != "flgc.bias" {
                continue;
            }
            let t = w.require(&p.key).unwrap().clone();
            let want = fd(t.data(), |d| {
                let mut w2 = w.clone();
                w2.insert(p.key.clone(), with(&t, d));
                loss(&w2, &x)
            });
            let got = grads.params.require(&p.key).unwrap();
            assert_close(
                &format!("graph d{} (softmax {softmax})", p.key),
                got.data(),
                &want,
                FD_TOL,
            );
        }
    }
}

#[test]
fn inference_only_ops_have_no_backward() {
    let mut b = GraphBuilder::new("g", [2, 3, 3]);
    let x = b.input();
    let g = b
        .push(
            "gather",
            Op::Gather(gconv::ops::Gather {
                indices: vec![1, 0],
            }),
            &[x],
        )
        .unwrap();
    let f = b
        .push("flatten", Op::Flatten(gconv::ops::Flatten), &[g])
        .unwrap();
    let graph = b.finish(f);
    let w = Weights::new();
    let x = rand_t(&[1, 2, 3, 3], 1);
    let tape = train::forward(&graph, &w, &x, Mode::Train, 0).unwrap();
    let err = train::backward_graph(&graph, &w, &tape, Tensor::zeros(&[1, 18])).unwrap_err();
    assert!(err.to_string().contains("inference-only"), "{err}");
}
