//! The search space of `gconv search` (no device needed): units, the G each takes, costs that
//! add up to the built model's, schemes that round-trip, and the bad requests it refuses.

use gconv::search::space::Space;
use gconv::search::{SearchConfig, Target};
use gconv::zoo::{ConvKind, ModelSpec, Scheme};

const G: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

fn space(model: &str, conv: ConvKind, per_layer: bool) -> Space {
    let mut spec = ModelSpec::load(model).unwrap();
    spec.input = [3, 32, 32];
    Space::new(&spec, conv, &G, per_layer).unwrap()
}

/// The space's additive cost of a scheme equals the cost of the model built with it.
fn assert_cost_matches(space: &Space, scheme: &Scheme) {
    let groups = space.site_groups(scheme).unwrap();
    let built = space.spec_of(scheme).unwrap().build().unwrap().cost();
    assert_eq!(
        space.cost(&groups),
        Some((built.total_macs, built.total_params)),
        "{}",
        scheme.name
    );
}

#[test]
fn vgg_stages_and_gong_schemes() {
    let s = space("vgg13bn", ConvKind::Sgc, false);
    let names: Vec<&str> = s.units.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["conv-1", "conv-2", "conv-3", "conv-4", "conv-5"]);
    // conv-1 sees the 3-channel image: SGC cannot group it; the others take every G.
    assert_eq!(s.units[0].groups, [1]);
    assert!(s.units[1..].iter().all(|u| u.groups == G));
    assert_eq!(s.size(), 7u128.pow(4));
    for name in ["A", "B", "C", "D", "E"] {
        let sch = Scheme::load(name).unwrap();
        assert_cost_matches(&s, &sch);
        let ug = s
            .unit_groups(&sch)
            .unwrap()
            .expect("A–E are points of the space");
        assert_eq!(ug, sch.stage_groups);
    }
    // A scheme made from unit groups applies those groups.
    let sch = s.scheme("x", "", &[1, 2, 4, 8, 16]);
    assert_eq!(sch.stage_groups, [1, 2, 4, 8, 16]);
    assert_cost_matches(&s, &sch);
    let back = Scheme::from_toml(&sch.to_toml(), "x.toml").unwrap();
    assert_eq!(back, sch);
    assert_eq!(back.model.as_deref(), Some("vgg13bn"));
    // FLGC takes any G, the first stage included.
    let f = space("vgg13bn", ConvKind::Flgc, false);
    assert_eq!(f.units[0].groups, G);
}

#[test]
fn resnet_and_mobilenet_group_their_pointwise_convs() {
    let r = space("resnet50-dsc", ConvKind::Sgc, false);
    let names: Vec<&str> = r.units.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["layer1", "layer2", "layer3", "layer4"]);
    // Three 1×1 convs per block (conv1, conv2_pw, conv3) and one downsample per stage.
    assert_eq!(r.sites.len(), 16 * 3 + 4);
    assert!(r.sites.iter().all(|s| !s.node.contains("_dw")));
    assert_cost_matches(&r, &r.scheme("mixed", "", &[1, 2, 4, 8]));
    let per_layer = space("resnet50-dsc", ConvKind::Sgc, true);
    assert_eq!(per_layer.units.len(), 52);
    let mut g = vec![1; 52];
    g[7] = 8;
    g[40] = 64;
    let sch = per_layer.scheme("pl", "", &g);
    assert_eq!(sch.layer_groups.len(), 2);
    assert_eq!(per_layer.site_groups(&sch).unwrap(), g);
    assert_cost_matches(&per_layer, &sch);
    // MobileNetV2: stage1 (16 filters) has no grouped conv, so seven units.
    let m = space("mobilenetv2", ConvKind::Sgc, false);
    let names: Vec<&str> = m.units.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        ["stage2", "stage3", "stage4", "stage5", "stage6", "stage7", "head"]
    );
    let sch = m.scheme("m", "", &[2, 2, 4, 4, 8, 8, 16]);
    assert_eq!(sch.stage_groups, [1, 2, 2, 4, 4, 8, 8, 16]);
    assert_cost_matches(&m, &sch);
}

#[test]
fn bad_requests_are_clear_errors() {
    let vgg = ModelSpec::load("vgg13bn").unwrap();
    // G values that divide no stage's channels.
    let e = Space::new(&vgg, ConvKind::Sgc, &[3, 5, 7], false).unwrap_err();
    assert!(e.to_string().contains("no G of [3, 5, 7]"), "{e}");
    // Some G that divide nothing are reported, the others searched.
    let s = Space::new(&vgg, ConvKind::Sgc, &[3, 4], false).unwrap();
    assert_eq!(s.unused_groups, [3]);
    // A model whose channels depend on G (SGC at width < 1 rounds them to G).
    let mut narrow = vgg.clone();
    narrow.width = 0.3;
    let e = Space::new(&narrow, ConvKind::Sgc, &[1, 2, 4], false).unwrap_err();
    assert!(
        e.to_string().contains("changes vgg13bn's channel counts"),
        "{e}"
    );
    // No groupable layer: a MobileNetV2 grouping only 1×1 convs wider than any it has.
    let text = "name = \"m\"\nnum_classes = 10\ninput = [3, 32, 32]\n[arch]\nfamily = \"mobilenetv2\"\ngrouped_above = 100000\n";
    let m = ModelSpec::from_toml(text, "m.toml").unwrap();
    let e = Space::new(&m, ConvKind::Sgc, &[1, 2], false).unwrap_err();
    assert!(
        e.to_string().contains("no convolution a scheme can group"),
        "{e}"
    );
    // Dense is nothing to search; G = 0 is refused.
    assert!(Space::new(&vgg, ConvKind::Dense, &[2], false).is_err());
    assert!(Space::new(&vgg, ConvKind::Sgc, &[0, 2], false).is_err());
    // Budgets that are not positive numbers, before anything is measured.
    for t in [
        Target::BudgetMs(f64::NAN),
        Target::BudgetMs(-1.0),
        Target::BudgetMs(0.0),
        Target::Speedup(f64::INFINITY),
        Target::Speedup(0.0),
    ] {
        let cfg = SearchConfig {
            model: "vgg13bn".into(),
            input_size: None,
            batch: 1,
            precision: gconv::Precision::F32,
            conv: ConvKind::Sgc,
            groups: G.to_vec(),
            per_layer: false,
            targets: vec![t.clone()],
            warmup: 0,
            rounds: 1,
        };
        let e = cfg.validate().unwrap_err();
        assert!(e.to_string().contains("must be a positive"), "{t:?}: {e}");
    }
}
