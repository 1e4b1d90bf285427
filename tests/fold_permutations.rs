//! The permutation fold keeps the function: folded == unfolded on hand-built graphs that
//! exercise each rule (into consumers, into producers, into concats, composition, concats of
//! convs merged) and the cases it must leave alone.

use gconv::graph::{fold_permutations, Conv2dSpec, Graph, GraphBuilder, Op};
use gconv::testing::{check_close, Tolerance};
use gconv::{cpu, Tensor, Weights};

fn input(shape: [usize; 4]) -> Tensor {
    Tensor::from_fn(&shape, |i| ((i * 7919 % 1000) as f32) / 500.0 - 1.0)
}

/// Runs both graphs on the same input and checks they agree; returns the fold report.
fn same_function(g: &Graph, w: &Weights) -> gconv::graph::FoldReport {
    let (fg, fw, rep) = fold_permutations(g, w).unwrap();
    let [c, h, wd] = g.input_shape();
    let x = input([2, c, h, wd]);
    let want = cpu::run_graph(g, w, &x).unwrap();
    let got = cpu::run_graph(&fg, &fw, &x).unwrap();
    assert_eq!(got.shape(), want.shape());
    check_close(&g.name, got.data(), want.data(), Tolerance::F32_OP).unwrap();
    rep
}

fn conv(c: usize, n: usize, k: usize, g: usize) -> Op {
    Op::conv2d(Conv2dSpec::square(c, n, k, 1, k / 2).groups(g).bias(true))
}

#[test]
fn a_shuffle_between_grouped_convs_folds_into_the_consumer() {
    // ShuffleNet v1: grouped 1x1 conv, channel shuffle (groups 2), depthwise conv.
    let mut b = GraphBuilder::new("shuffle", [8, 6, 6]);
    let a = b.push("gconv", conv(8, 8, 1, 2), &[0]).unwrap();
    let perm: Vec<usize> = (0..8).map(|i| (i % 2) * 4 + i / 2).collect();
    let s = b.push("shuffle", Op::gather(perm), &[a]).unwrap();
    let d = b.push("dw", conv(8, 8, 3, 8), &[s]).unwrap();
    let g = b.finish(d);
    let w = Weights::random_for_tests(&g, 1);
    let rep = same_function(&g, &w);
    assert_eq!((rep.gathers_before, rep.gathers_left), (1, 0));
    assert_eq!(rep.into_consumers, 1);
}

#[test]
fn a_gather_read_by_a_relu_folds_into_its_producer_and_may_select_or_repeat() {
    let mut b = GraphBuilder::new("producer", [4, 5, 5]);
    let a = b.push("conv", conv(4, 6, 3, 1), &[0]).unwrap();
    let s = b.push("pick", Op::gather(vec![5, 0, 0, 3]), &[a]).unwrap();
    let r = b.push("relu", Op::relu(), &[s]).unwrap();
    let g = b.finish(r);
    let w = Weights::random_for_tests(&g, 2);
    let rep = same_function(&g, &w);
    assert_eq!((rep.into_producers, rep.gathers_left), (1, 0));
}

#[test]
fn gathers_compose_and_fold_into_concats() {
    // x → split halves → (relu on one half) → concat(other half, relu) → shuffle → conv.
    let mut b = GraphBuilder::new("units", [6, 4, 4]);
    let lo = b.push("lo", Op::gather((0..3).collect()), &[0]).unwrap();
    let hi = b.push("hi", Op::gather((3..6).collect()), &[0]).unwrap();
    let r = b.push("relu", Op::relu(), &[hi]).unwrap();
    let cat = b.push("cat", Op::concat(&[3, 3]), &[lo, r]).unwrap();
    let sh = b
        .push("shuffle", Op::gather(vec![0, 3, 1, 4, 2, 5]), &[cat])
        .unwrap();
    let half = b.push("half", Op::gather(vec![1, 2, 3]), &[sh]).unwrap();
    let c = b.push("conv", conv(3, 4, 1, 1), &[half]).unwrap();
    let g = b.finish(c);
    let w = Weights::random_for_tests(&g, 3);
    let rep = same_function(&g, &w);
    assert_eq!(rep.gathers_before, 4);
    // `hi` feeds a ReLU (not foldable, its producer is the input): it stays.
    assert_eq!(rep.gathers_left, 1, "{rep:?}");
    assert!(rep.into_concats >= 1 && rep.composed >= 1, "{rep:?}");
}

#[test]
fn a_concat_of_convs_on_one_input_becomes_one_table_conv() {
    // An uneven grouped conv written as split → convs → concat → permutation.
    let mut b = GraphBuilder::new("groups", [5, 6, 6]);
    let p0 = b.push("p0", Op::gather(vec![4, 0]), &[0]).unwrap();
    let p1 = b.push("p1", Op::gather(vec![1, 2, 3]), &[0]).unwrap();
    let c0 = b.push("c0", conv(2, 3, 3, 1), &[p0]).unwrap();
    let c1 = b.push("c1", conv(3, 2, 3, 1), &[p1]).unwrap();
    let cat = b.push("cat", Op::concat(&[3, 2]), &[c0, c1]).unwrap();
    let out = b
        .push("perm", Op::gather(vec![3, 0, 4, 1, 2]), &[cat])
        .unwrap();
    let g = b.finish(out);
    let w = Weights::random_for_tests(&g, 4);
    let rep = same_function(&g, &w);
    assert_eq!(rep.concats_merged, 1, "{rep:?}");
    assert_eq!((rep.gathers_left, rep.concats_left), (0, 0), "{rep:?}");
    let (fg, _, _) = fold_permutations(&g, &w).unwrap();
    assert_eq!(fg.nodes.len(), 2, "input and one table conv");
    assert!(matches!(fg.nodes[1].op, Op::GroupedConvTable(_)));
    assert_eq!(fg.cost().total_macs, g.cost().total_macs);
}

#[test]
fn a_gather_that_is_the_output_of_a_shared_tensor_stays() {
    let mut b = GraphBuilder::new("output", [3, 4, 4]);
    let r = b.push("relu", Op::relu(), &[0]).unwrap();
    let s = b.push("pick", Op::gather(vec![2, 1]), &[r]).unwrap();
    let g = b.finish(s);
    let rep = same_function(&g, &Weights::new());
    assert_eq!((rep.gathers_before, rep.gathers_left), (1, 1));
}
