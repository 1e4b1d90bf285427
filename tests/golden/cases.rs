//! Every case against `gconv::cpu`; the group-formula control, fixture size, torchvision counts.

use super::graphs::check_graph;
use super::single_op::{check_single_op, op_of};
use super::{load, Case, FIXTURE};
use gconv::cpu;
use gconv::graph::Conv2dSpec;
use gconv::testing::{check_close, Tolerance};
use gconv::zoo::ModelSpec;
use gconv::Tensor;
use std::collections::{BTreeMap, BTreeSet};

fn check_case(c: &Case) -> Result<(), String> {
    match c.kind() {
        "graph_vgg_tiny" | "graph_resnet_bottleneck" | "graph_mobilenetv2" => check_graph(c),
        kind => match op_of(c) {
            Some(op) => check_single_op(c, op),
            None => Err(format!(
                "{}: unknown case kind `{kind}`: teach tests/golden/ to check it",
                c.name
            )),
        },
    }
}

#[test]
fn cpu_reference_matches_pytorch_goldens() {
    let g = load();
    assert!(!g.cases.is_empty(), "no cases in {FIXTURE}");
    let mut failures = Vec::new();
    let mut used = BTreeSet::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for name in g.cases.keys() {
        let c = Case::new(&g, name);
        *kinds.entry(c.kind().to_string()).or_default() += 1;
        if let Err(e) = check_case(&c) {
            failures.push(e);
        }
        used.extend(c.used.into_inner());
    }
    // A tensor that no check read means a case was (partly) skipped.
    for k in g.tensors.keys().filter(|k| !used.contains(*k)) {
        failures.push(format!("tensor `{k}` was not checked by any case"));
    }
    println!(
        "checked {} golden cases ({} tensors) against gconv::cpu: {kinds:?}",
        g.cases.len(),
        used.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} golden checks failed:\n{}",
        failures.len(),
        g.cases.len(),
        failures.join("\n")
    );
}

/// `[N, C/G, kh, kw]` → the equivalent dense `[N, C, kh, kw]` weight, with filter `o` placed
/// on the input channels of group `group_of(o)`.
fn densify(w: &Tensor, c: usize, groups: usize, group_of: impl Fn(usize) -> usize) -> Tensor {
    let [n, cin_g, kh, kw] = w.dims4("densify").unwrap();
    assert_eq!(cin_g * groups, c);
    let kk = kh * kw;
    let mut d = Tensor::zeros(&[n, c, kh, kw]);
    for o in 0..n {
        let c0 = group_of(o) * cin_g;
        let src = &w.data()[o * cin_g * kk..(o + 1) * cin_g * kk];
        d.data_mut()[(o * c + c0) * kk..(o * c + c0 + cin_g) * kk].copy_from_slice(src);
    }
    d
}

/// The fixtures discriminate: running the G=3 case with a wrong assignment of filters to
/// groups (as a dense conv with a re-arranged weight) must NOT match the goldens, while the
/// right assignment does.
#[test]
fn goldens_catch_a_wrong_group_formula() {
    let g = load();
    let c = Case::new(&g, "conv_g3_s2");
    let s = c.conv_spec();
    assert_eq!((s.groups, s.in_channels, s.out_channels), (3, 6, 6));
    let (x, w, y) = (c.t("x"), c.t("weight"), c.t("y"));
    let cout_g = s.out_channels / s.groups;
    let dense = Conv2dSpec {
        groups: 1,
        ..s.clone()
    };
    let run = |wd: &Tensor| {
        let out = cpu::conv2d(x, wd, c.bias(), &dense).unwrap();
        check_close("conv_g3_s2", out.data(), y.data(), Tolerance::GOLDEN_OP)
    };

    // Positive control: PyTorch's formula, filter o in group o / (N/G), as a dense conv.
    let right = densify(w, s.in_channels, s.groups, |o| o / cout_g);
    run(&right).expect("the right group formula, run densely, matches");

    // Wrong: filters dealt round-robin to the groups (o mod G).
    let rr = densify(w, s.in_channels, s.groups, |o| o % s.groups);
    let e = run(&rr).expect_err("o mod G must not match the goldens");
    println!("o mod G caught: {e}");

    // Wrong: G=1 with each filter's C/G weights tiled over all input channels.
    let cin_g = s.in_channels / s.groups;
    let kk = s.kernel[0] * s.kernel[1];
    let tiled = Tensor::from_fn(
        &[s.out_channels, s.in_channels, s.kernel[0], s.kernel[1]],
        |i| {
            let (o, ci, k) = (i / (s.in_channels * kk), (i / kk) % s.in_channels, i % kk);
            w.data()[(o * cin_g + ci % cin_g) * kk + k]
        },
    );
    let e = run(&tiled).expect_err("a tiled dense weight must not match the goldens");
    println!("tiled G=1 caught: {e}");

    // Wrong: every filter reading the first group's channels.
    let first = densify(w, s.in_channels, s.groups, |_| 0);
    run(&first).expect_err("all filters on group 0 must not match the goldens");
}

/// The fixture file stays small (it is committed).
#[test]
fn fixture_is_small() {
    let len = std::fs::metadata(FIXTURE).unwrap().len();
    assert!(len < 1 << 20, "{FIXTURE} is {len} bytes");
}

/// When the generator could import torchvision it recorded the parameter counts of
/// `resnet50()` and `vgg13_bn()`; they must equal gconv's zoo accounting. (Without
/// torchvision the zoo tests assert torchvision's published numbers instead.)
#[test]
fn torchvision_param_counts_if_recorded() {
    let g = load();
    let Some(counts) = g.info.get("_torchvision_param_counts") else {
        println!("fixture made without torchvision: no parameter-count cross-check");
        return;
    };
    for (tv, zoo) in [
        ("resnet50", "resnet50"),
        ("vgg13_bn", "vgg13bn"),
        ("mobilenet_v2", "mobilenetv2"),
    ] {
        let expected = counts[tv].as_u64().expect("a count");
        let got = ModelSpec::load(zoo)
            .unwrap()
            .build()
            .unwrap()
            .cost()
            .total_params;
        assert_eq!(got, expected, "{zoo} parameters vs torchvision {tv}");
    }
}
