//! Graph passes keep the model's function: folded == unfolded, materialised FLGC == FLGC.

use gconv::graph::passes::{fold_batch_norm, materialize_flgc};
use gconv::graph::Op;
use gconv::testing::{assert_close, Tolerance};
use gconv::zoo::{ModelSpec, Scheme};
use gconv::{cpu, Tensor, Weights};

fn small(name: &str, input: [usize; 3], width: f32) -> ModelSpec {
    let mut s = ModelSpec::load(name).unwrap();
    s.input = input;
    s.width = width;
    s.num_classes = 10;
    s
}

fn input(shape: [usize; 4], seed: u32) -> Tensor {
    Tensor::from_fn(&shape, |i| {
        (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0
    })
}

#[test]
fn folding_bn_keeps_outputs_vgg_schemes_and_resnets() {
    let mut cases = vec![
        small("resnet50", [3, 32, 32], 0.25),
        small("resnet50-dsc-sgc", [3, 32, 32], 0.25),
    ];
    for sch in ["A", "E"] {
        cases.push(
            small("vgg13bn", [3, 32, 32], 0.5)
                .with_scheme(&Scheme::load(sch).unwrap())
                .unwrap(),
        );
    }
    for spec in cases {
        let g = spec.build().unwrap();
        let w = Weights::random_for_tests(&g, 7);
        let x = input([2, 3, 32, 32], 1);
        let want = cpu::run_graph(&g, &w, &x).unwrap();
        let (fg, fw) = fold_batch_norm(&g, &w).unwrap();
        assert!(
            fg.nodes
                .iter()
                .all(|n| !matches!(n.op, Op::BatchNorm(gconv::ops::BatchNorm { .. }))),
            "{}: BN left",
            spec.name
        );
        fw.validate(&fg).unwrap();
        let got = cpu::run_graph(&fg, &fw, &x).unwrap();
        assert_eq!(got.shape(), want.shape());
        assert_close(&spec.name, got.data(), want.data(), Tolerance::F32_MODEL);
    }
}

#[test]
fn folding_dsc_model_removes_every_bn_and_keeps_the_output_shape() {
    let g = small("resnet50-dsc", [3, 32, 32], 0.25).build().unwrap();
    let w = Weights::random_for_tests(&g, 3);
    let (fg, _) = fold_batch_norm(&g, &w).unwrap();
    let bns = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::BatchNorm(gconv::ops::BatchNorm { .. })))
        .count();
    assert_eq!(fg.nodes.len(), g.nodes.len() - bns);
    assert_eq!(fg.output_shape(), g.output_shape());
}

#[test]
fn materialised_flgc_matches_masked_conv() {
    let g = small("resnet50-dsc-flgc", [3, 32, 32], 0.25)
        .build()
        .unwrap();
    assert!(g.nodes.iter().any(|n| matches!(n.op, Op::FlgcConv2d(_))));
    let w = Weights::random_for_tests(&g, 11);
    let x = input([1, 3, 32, 32], 5);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let (mg, mw) = materialize_flgc(&g, &w).unwrap();
    assert!(mg.nodes.iter().all(|n| !matches!(n.op, Op::FlgcConv2d(_))));
    let got = cpu::run_graph(&mg, &mw, &x).unwrap();
    assert_close(
        "flgc materialised",
        got.data(),
        want.data(),
        Tolerance::F32_OP,
    );
}

#[test]
fn exported_flgc_matches_masked_flgc_vgg_and_resnet() {
    use gconv::graph::passes::export_flgc;
    use gconv::zoo::ConvKind;
    let vgg = small("vgg13bn", [3, 32, 32], 0.25)
        .with_groups(3, Some(ConvKind::Flgc))
        .unwrap();
    let res = small("resnet50-dsc-flgc", [3, 32, 32], 0.25)
        .with_groups(5, None)
        .unwrap();
    for spec in [vgg, res] {
        let g = spec.build().unwrap();
        assert!(
            g.nodes.iter().any(|n| matches!(n.op, Op::FlgcConv2d(_))),
            "{}",
            spec.name
        );
        let w = Weights::random_for_tests(&g, 21);
        let x = input([2, 3, 32, 32], 9);
        let want = cpu::run_graph(&g, &w, &x).unwrap();
        let (eg, ew) = export_flgc(&g, &w).unwrap();
        ew.validate(&eg).unwrap();
        assert!(eg.nodes.iter().all(|n| !matches!(
            n.op,
            Op::FlgcConv2d(_) | Op::Gather(gconv::ops::Gather { .. })
        )));
        // Exported MACs are the learnt groups' exact cost, below the dense (masked) model's.
        let (mg, _) = materialize_flgc(&g, &w).unwrap();
        assert!(eg.cost().total_macs < mg.cost().total_macs, "{}", spec.name);
        let got = cpu::run_graph(&eg, &ew, &x).unwrap();
        assert_close(&spec.name, got.data(), want.data(), Tolerance::F32_MODEL);
        // And folding BN after export still gives the same function.
        let (fg, fw) = fold_batch_norm(&eg, &ew).unwrap();
        let got = cpu::run_graph(&fg, &fw, &x).unwrap();
        assert_close(&spec.name, got.data(), want.data(), Tolerance::F32_MODEL);
    }
}

/// Filters without input (an FLGC group with filters but no input channel) output a constant;
/// the dead-filter fold moves it into the bias of the 1×1 unpadded table convs that read it,
/// which stop reading the channel (fewer MACs), and leaves padded or wider consumers alone.
/// A Gaussian selection start at G = 8 on a narrow ResNet-DSC leaves several such groups.
#[test]
fn dead_filters_fold_into_their_1x1_consumers_and_keep_the_function() {
    use gconv::graph::dead_filters::fold_dead_filters;
    use gconv::graph::passes::export_flgc;
    let g = small("resnet50-dsc-flgc", [3, 16, 16], 0.25)
        .with_groups(8, None)
        .unwrap()
        .build()
        .unwrap();
    let w = Weights::random_for_tests(&g, 5);
    let (eg, ew) = export_flgc(&g, &w).unwrap();
    let (fg, fw) = fold_batch_norm(&eg, &ew).unwrap();
    let dead: usize = fg
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::GroupedConvTable(t) => Some(
                t.table
                    .iter()
                    .filter(|r| r.in_len == 0)
                    .map(|r| r.out_len)
                    .sum::<usize>(),
            ),
            _ => None,
        })
        .sum();
    assert!(
        dead > 0,
        "the random selection should leave filters without input"
    );
    let (dg, dw, removed) = fold_dead_filters(&fg, &fw).unwrap();
    dw.validate(&dg).unwrap();
    assert!(removed > 0, "{dead} dead filters, none folded");
    assert!(dg.cost().total_macs < fg.cost().total_macs);
    for (a, b) in fg.nodes.iter().zip(&dg.nodes) {
        if let (Op::GroupedConvTable(ta), Op::GroupedConvTable(tb)) = (&a.op, &b.op) {
            if ta.spec.kernel != [1, 1] || ta.spec.padding != [0, 0] {
                assert_eq!(ta, tb, "{}: a wider or padded consumer was changed", a.name);
            }
        }
    }
    let x = input([2, 3, 16, 16], 4);
    let want = cpu::run_graph(&g, &w, &x).unwrap();
    let got = cpu::run_graph(&dg, &dw, &x).unwrap();
    assert_close(
        "dead-filter fold",
        got.data(),
        want.data(),
        Tolerance::F32_MODEL,
    );
    // Nothing left to fold: the pass is idempotent.
    let (_, _, again) = fold_dead_filters(&dg, &dw).unwrap();
    assert_eq!(again, 0);
}
