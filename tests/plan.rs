//! Activation planning for the GPU executor (pure graph analysis: no GPU needed).

use gconv::plan::{Analysis, BufferPlan};
use gconv::zoo::ModelSpec;

#[test]
fn vgg13bn_plans_within_three_largest_activations() {
    let g = ModelSpec::load("vgg13bn").unwrap().build().unwrap();
    let a = Analysis::new(&g);
    let lives = a.lifetimes(&g, 1);
    let plan = BufferPlan::new(&lives);
    let largest = lives.iter().map(|l| l.bytes).max().unwrap();
    assert_eq!(largest, 4 * 64 * 224 * 224);
    let naive = BufferPlan::naive_bytes(&lives);
    println!(
        "vgg13bn b1: planned {} MB, naive {} MB, largest {} MB, {} slots",
        plan.peak_bytes() / 1_000_000,
        naive / 1_000_000,
        largest / 1_000_000,
        plan.slot_bytes.len()
    );
    assert!(
        plan.peak_bytes() <= 3 * largest,
        "planned {} > 3 × {largest}",
        plan.peak_bytes()
    );
    // VGG is a chain: two slots of the largest activation are the optimum.
    assert_eq!(plan.slot_bytes.len(), 2);
    assert_eq!(plan.peak_bytes(), 2 * largest);
    assert!(naive > 4 * plan.peak_bytes());
}

#[test]
fn relus_fuse_and_views_alias() {
    let g = ModelSpec::load("resnet50").unwrap().build().unwrap();
    let a = Analysis::new(&g);
    // Every ReLU of ResNet-50 follows a BN or an add with no other consumer: all fused.
    for (i, n) in g.nodes.iter().enumerate() {
        if n.op == gconv::graph::Op::relu() {
            assert_ne!(a.value_of[i], i, "{} not fused", n.name);
            assert_eq!(a.fused[n.inputs[0]], gconv::ops::Activation::Relu);
        }
    }
    let flatten = g.find("flatten").unwrap();
    assert_eq!(a.value_of[flatten], g.find("avgpool").unwrap());
    // Residual inputs stay alive until their add: no slot is shared by overlapping values.
    let lives = a.lifetimes(&g, 2);
    let plan = BufferPlan::new(&lives);
    for i in 0..lives.len() {
        for j in 0..i {
            let (x, y) = (&lives[i], &lives[j]);
            if x.def <= y.last_use && y.def <= x.last_use {
                assert_ne!(plan.slot_of[i], plan.slot_of[j]);
            }
        }
    }
}
