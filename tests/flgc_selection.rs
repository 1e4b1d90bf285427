//! FLGC's grouping during training (`gconv::train::selection`): the balanced start equals SGC's
//! partition with no empty group, a dead filter (its group has no input channel) gets no
//! exploding gradient, and selection statistics count what moved.

use gconv::cpu::flgc_mask;
use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, Op};
use gconv::ops::{BatchNorm, Linear};
use gconv::train::backward as bw;
use gconv::train::selection::init_selection_with_margin;
use gconv::train::selection::{even_group, group_changes, init_selection, layer_groups, FlgcInit};
use gconv::train::{self, Mode};
use gconv::zoo::{Arch, ConvKind, ModelSpec};
use gconv::{Tensor, Weights};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The README's Fashion-MNIST model at G = 8: narrow layers (8 to 64 channels).
fn narrow_flgc() -> Graph {
    let mut spec = ModelSpec::load("resnet50-dsc").unwrap();
    spec.input = [1, 28, 28];
    spec.num_classes = 10;
    spec.width = 0.125;
    spec = spec.small_stem();
    if let Arch::Resnet { layers, .. } = &mut spec.arch {
        *layers = [1, 1, 1, 1];
    }
    spec.with_groups(8, Some(ConvKind::Flgc))
        .unwrap()
        .build()
        .unwrap()
}

#[test]
fn balanced_start_is_the_sgc_partition_with_no_empty_group() {
    let g = narrow_flgc();
    let mut w = Weights::init(&g, 3);
    init_selection(&g, &mut w, FlgcInit::Balanced, 3);
    let groups = layer_groups(&g, &w).unwrap();
    assert_eq!(groups.len(), 16, "the block 1×1 convs are FLGC");
    for l in &groups {
        assert_eq!((l.empty_in, l.dead_filters), (0, 0), "{}", l.layer);
        assert_eq!(l.macs_per_pixel, l.sgc_macs_per_pixel, "{}", l.layer);
        let (c, n, gs) = (l.in_group.len(), l.out_group.len(), l.in_sizes.len());
        let mask = flgc_mask(
            w.get(&format!("{}.select_in", l.layer)).unwrap(),
            w.get(&format!("{}.select_out", l.layer)).unwrap(),
        )
        .unwrap();
        let sgc = Tensor::from_fn(&[n, c], |i| {
            f32::from(u8::from(
                even_group(i / c, n, gs) == even_group(i % c, c, gs),
            ))
        });
        assert_eq!(mask, sgc, "{}: the mask is SGC's", l.layer);
    }
    // The paper's Gaussian start leaves empty groups in layers this narrow (the expected
    // number over the 16 layers is ≈ 13 input groups); the balanced one never does.
    let gauss = layer_groups(&g, &Weights::init(&g, 3)).unwrap();
    let empty: usize = gauss.iter().map(|l| l.empty_in).sum();
    assert!(empty >= 3, "Gaussian start: {empty} empty input groups");
    // Nothing moved between two looks at the same weights; everything is counted when
    // the grouping changes.
    let same = group_changes(&groups, &groups);
    assert!(same.iter().all(|c| c.moved_in == 0 && c.moved_out == 0));
    let moved = group_changes(&groups, &gauss);
    assert!(
        moved
            .iter()
            .map(|c| c.moved_in + c.moved_out)
            .sum::<usize>()
            > 0
    );
}

/// FLGC 1×1 (C = 4 → N = 8, G = 4, no bias) → BN → ReLU → linear: the block shape whose BN
/// sees a zero-variance channel when a filter's group has no input.
fn bn_after_flgc() -> Graph {
    let mut b = GraphBuilder::new("dead", [4, 5, 5]);
    let x = b.input();
    let c = b
        .push(
            "conv",
            Op::flgc(Conv2dSpec::square(4, 8, 1, 1, 0).groups(4)),
            &[x],
        )
        .unwrap();
    let bn = BatchNorm {
        channels: 8,
        eps: 1e-5,
    };
    let n = b.push("bn", Op::BatchNorm(bn), &[c]).unwrap();
    let r = b.push("relu", Op::relu(), &[n]).unwrap();
    let f = b.push("flat", Op::flatten(), &[r]).unwrap();
    let lin = Linear {
        in_features: 200,
        out_features: 3,
        bias: true,
    };
    let out = b.push("fc", Op::Linear(lin), &[f]).unwrap();
    b.finish(out)
}

/// One-hot-ish selection logits putting row i in `groups[i]`.
fn selection(groups: &[usize], g: usize) -> Tensor {
    Tensor::from_fn(&[groups.len(), g], |k| {
        if groups[k / g] == k % g {
            2.0
        } else {
            0.1 * (k % 3) as f32
        }
    })
}

/// Largest |value| of every trainable gradient of the graph at `w`.
fn grad_max(graph: &Graph, w: &Weights) -> Vec<(String, f32, Tensor)> {
    let mut r = SmallRng::seed_from_u64(7);
    let x = Tensor::from_fn(&[6, 4, 5, 5], |_| r.random_range(-1.0f32..1.0));
    let labels: Vec<usize> = (0..6).map(|i| i % 3).collect();
    let tape = train::forward(graph, w, &x, Mode::Train, 0).unwrap();
    let (_, gl, _) = bw::softmax_cross_entropy(tape.output(graph), &labels).unwrap();
    let grads = train::backward_graph(graph, w, &tape, gl).unwrap();
    [
        "conv.weight",
        "conv.select_in",
        "conv.select_out",
        "fc.weight",
    ]
    .iter()
    .map(|k| {
        let t = grads.params.get(k).unwrap().clone();
        let m = t.data().iter().fold(0.0f32, |a, v| a.max(v.abs()));
        (k.to_string(), m, t)
    })
    .collect()
}

#[test]
fn a_dead_filter_trains_without_exploding_gradients() {
    let g = bn_after_flgc();
    let base = Weights::random_for_tests(&g, 11);
    let with = |in_groups: &[usize]| {
        let mut w = base.clone();
        w.insert("conv.select_in", selection(in_groups, 4));
        w.insert("conv.select_out", selection(&[0, 0, 1, 1, 2, 2, 3, 3], 4));
        w
    };
    // Every group has an input channel; then group 3 has none (filters 6 and 7 are dead).
    let alive = with(&[0, 1, 2, 3]);
    let dead = with(&[0, 0, 1, 2]);
    assert_eq!(layer_groups(&g, &dead).unwrap()[0].dead_filters, 2);
    let (a, d) = (grad_max(&g, &alive), grad_max(&g, &dead));
    for ((name, ma, _), (_, md, td)) in a.iter().zip(&d) {
        assert!(
            md.is_finite() && td.data().iter().all(|v| v.is_finite()),
            "{name}"
        );
        // BN's 1/√eps ≈ 316 on the constant channel would show here as a ratio of hundreds.
        assert!(
            *md <= 10.0 * ma.max(1e-3),
            "{name}: max |grad| {md} vs {ma} with live groups"
        );
    }
    // The dead filters' weight rows get no gradient at all.
    let dw = &d[0].2;
    assert!(dw.data()[6 * 4..].iter().all(|&v| v == 0.0));
    assert!(dw.data()[..6 * 4].iter().any(|&v| v != 0.0));
}

/// Own-group logit minus the largest other logit, per row of a `[rows, g]` selection.
fn lead(t: &Tensor, own: impl Fn(usize) -> usize) -> Vec<f32> {
    let g = t.shape()[1];
    t.data()
        .chunks(g)
        .enumerate()
        .map(|(i, row)| {
            let o = own(i);
            let other = (0..g)
                .filter(|&j| j != o)
                .map(|j| row[j])
                .fold(f32::MIN, f32::max);
            row[o] - other
        })
        .collect()
}

#[test]
fn the_margin_sets_the_lead_and_the_start_stays_sgc() {
    let g = narrow_flgc();
    for m in [0.05f32, 1.0, 3.0] {
        let mut w = Weights::init(&g, 4);
        init_selection_with_margin(&g, &mut w, FlgcInit::Balanced, m, 4).unwrap();
        for l in layer_groups(&g, &w).unwrap() {
            assert_eq!(
                l.macs_per_pixel, l.sgc_macs_per_pixel,
                "margin {m}: {}",
                l.layer
            );
            let s = w.get(&format!("{}.select_in", l.layer)).unwrap();
            let (c, gs) = (s.shape()[0], s.shape()[1]);
            let leads = lead(s, |i| even_group(i, c, gs));
            // Noise is clipped to ±0.45·m on every logit: the lead is in [0.1·m, 1.9·m].
            assert!(
                leads
                    .iter()
                    .all(|&d| d >= 0.1 * m - 1e-6 && d <= 1.9 * m + 1e-6),
                "margin {m}: {}: {leads:?}",
                l.layer
            );
        }
    }
    for bad in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
        let mut w = Weights::init(&g, 4);
        let e = init_selection_with_margin(&g, &mut w, FlgcInit::Balanced, bad, 4).unwrap_err();
        assert!(e.to_string().contains("margin"), "{e}");
    }
}

#[test]
fn the_selection_learning_rate_scales_only_the_selection_step() {
    let g = narrow_flgc();
    let w0 = Weights::init(&g, 5);
    let mut r = SmallRng::seed_from_u64(5);
    let mut grads = Weights::new();
    for p in train::trainable_params(&g) {
        let shape = w0.get(&p.key).unwrap().shape().to_vec();
        grads.insert(
            p.key,
            Tensor::from_fn(&shape, |_| r.random_range(-1.0f32..1.0)),
        );
    }
    let step = |scale: f32| {
        let mut w = w0.clone();
        let mut sgd = train::Sgd::new(Default::default()).with_selection_lr_scale(scale);
        sgd.step(&g, &mut w, &grads, 0.01).unwrap();
        w
    };
    let (one, ten) = (step(1.0), step(10.0));
    let (mut selection, mut other) = (0, 0);
    for p in train::trainable_params(&g) {
        let base = w0.get(&p.key).unwrap().data();
        let d1: Vec<f32> = one
            .get(&p.key)
            .unwrap()
            .data()
            .iter()
            .zip(base)
            .map(|(a, b)| a - b)
            .collect();
        let d10: Vec<f32> = ten
            .get(&p.key)
            .unwrap()
            .data()
            .iter()
            .zip(base)
            .map(|(a, b)| a - b)
            .collect();
        if p.selection {
            selection += 1;
            // No weight decay on S̄, T̄: the first step is −lr·g, ten times larger.
            for (a, b) in d1.iter().zip(&d10) {
                assert!((b - 10.0 * a).abs() <= 1e-5 * (1.0 + b.abs()), "{}", p.key);
            }
        } else {
            other += 1;
            assert_eq!(d1, d10, "{}", p.key);
        }
    }
    assert_eq!(selection, 32, "S̄ and T̄ of the 16 FLGC layers");
    assert!(other > 0);
}

/// Selection moves (input channels + filters that changed group) over `steps` CPU steps on
/// random data from a balanced start with `margin` and the selection rate scaled by `scale`.
fn moves_after(margin: f32, scale: f32, steps: usize) -> usize {
    let g = narrow_flgc();
    let mut w = Weights::init(&g, 6);
    init_selection_with_margin(&g, &mut w, FlgcInit::Balanced, margin, 6).unwrap();
    let before = layer_groups(&g, &w).unwrap();
    let cfg = train::TrainConfig {
        lr: 0.05,
        seed: 6,
        selection_lr_scale: scale,
        ..Default::default()
    };
    let mut t = train::Trainer::new(g, w, cfg).unwrap();
    let mut r = SmallRng::seed_from_u64(6);
    for _ in 0..steps {
        let x = Tensor::from_fn(&[8, 1, 28, 28], |_| r.random_range(-1.0f32..1.0));
        let y: Vec<usize> = (0..8).map(|_| r.random_range(0..10)).collect();
        use gconv::train::Train;
        t.train_step(&x, &y).unwrap();
    }
    let now = layer_groups(t.graph(), t.weights()).unwrap();
    group_changes(&before, &now)
        .iter()
        .map(|c| c.moved_in + c.moved_out)
        .sum()
}

#[test]
fn a_smaller_margin_and_a_faster_selection_let_the_grouping_move() {
    let still = moves_after(1.0, 1.0, 6);
    let moving = moves_after(0.02, 10.0, 6);
    eprintln!("moves in 6 steps: margin 1 → {still}, margin 0.02 with 10× selection lr → {moving}");
    assert!(moving > still, "{moving} vs {still}");
}
