//! Model zoo and accounting: the totals must equal torchvision's exactly.

use gconv::graph::Op;
use gconv::zoo::{ConvKind, ModelSpec, Scheme};
use gconv::Error;

fn cost(name: &str) -> gconv::graph::ModelCost {
    ModelSpec::load(name).unwrap().build().unwrap().cost()
}

#[test]
fn resnet50_matches_torchvision() {
    let c = cost("resnet50");
    assert_eq!(c.total_params, 25_557_032);
    // thop / torchvision: 4.09 GMACs at 224².
    assert_eq!(
        (c.total_macs as f64 / 1e7).round() / 100.0,
        4.09,
        "{}",
        c.total_macs
    );
}

#[test]
fn vgg_bn_params_match_torchvision() {
    assert_eq!(cost("vgg13bn").total_params, 133_053_736);
    assert_eq!(cost("vgg11bn").total_params, 132_868_840);
    assert_eq!(cost("vgg16bn").total_params, 138_365_992);
    assert_eq!(cost("vgg19bn").total_params, 143_678_248);
}

#[test]
fn gong_schemes_reduce_macs_as_the_paper_says() {
    let base = cost("vgg13bn").total_macs as f64;
    let red: Vec<f64> = ["A", "B", "C", "D", "E"]
        .iter()
        .map(|s| {
            let spec = ModelSpec::load("vgg13bn")
                .unwrap()
                .with_scheme(&Scheme::load(s).unwrap())
                .unwrap();
            100.0 * (1.0 - spec.build().unwrap().cost().total_macs as f64 / base)
        })
        .collect();
    // A < B < C < D (more stages grouped), E (G=32) slightly below D (G=64): "about 80 %".
    assert!(
        red[0] < red[1] && red[1] < red[2] && red[2] < red[3],
        "{red:?}"
    );
    assert!((78.5..80.0).contains(&red[4]), "scheme E: {:.2} %", red[4]);
    assert!(red[4] < red[3]);
}

#[test]
fn variants_and_bad_requests() {
    // DSC / SGC / FLGC variants shrink the model; FLGC costs what SGC costs at inference.
    let (r, d, s, f) = (
        cost("resnet50"),
        cost("resnet50-dsc"),
        cost("resnet50-dsc-sgc"),
        cost("resnet50-dsc-flgc"),
    );
    assert!(d.total_macs < r.total_macs && s.total_macs < d.total_macs);
    assert_eq!(s.total_macs, f.total_macs);
    // A scheme with the wrong number of stages is refused, naming the model's stages.
    let e = ModelSpec::load("resnet50")
        .unwrap()
        .with_scheme(&Scheme::load("E").unwrap())
        .unwrap_err();
    assert!(
        e.to_string().contains("5 stage groups") && e.to_string().contains("layer1, layer2"),
        "{e}"
    );
    let e = ModelSpec::load("vgg13bn")
        .unwrap()
        .with_scheme(&Scheme::load("1,2,4").unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("3 stage groups"), "{e}");
    assert!(matches!(Scheme::load("Q"), Err(Error::UnknownScheme(_))));
    assert!(matches!(
        ModelSpec::load("vgg99"),
        Err(Error::UnknownModel(_))
    ));
    // SGC with a G that does not divide the channels fails naming the layer.
    let e = ModelSpec::load("resnet50-dsc-sgc")
        .unwrap()
        .with_groups(3, Some(ConvKind::Sgc))
        .unwrap()
        .build()
        .unwrap_err();
    assert!(
        e.to_string().contains("layer1.0.conv1") && e.to_string().contains("groups 3"),
        "{e}"
    );
    // FLGC takes any G.
    let g = ModelSpec::load("resnet50-dsc-flgc")
        .unwrap()
        .with_groups(3, None)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(g.output_shape(), &[1000]);
    // A malformed model file is a clear error.
    let e = ModelSpec::from_toml("name = 3", "bad.toml").unwrap_err();
    assert!(e.to_string().starts_with("model `bad.toml`"), "{e}");
}

#[test]
fn mobilenetv2_matches_torchvision_and_groups_its_wide_pointwise_convs() {
    let c = cost("mobilenetv2");
    assert_eq!(c.total_params, 3_504_872);
    assert_eq!(c.total_macs, 300_774_272);
    let dense = ModelSpec::load("mobilenetv2").unwrap().build().unwrap();
    for (name, g) in [("mobilenetv2-sgc", 4), ("mobilenetv2-flgc", 8)] {
        let spec = ModelSpec::load(name).unwrap();
        let spec = spec.with_groups(g, None).unwrap();
        let graph = spec.build().unwrap();
        assert_eq!(graph.nodes.len(), dense.nodes.len(), "{name}: same layers");
        let mut grouped = 0;
        for (n, d) in graph.nodes.iter().zip(&dense.nodes) {
            assert_eq!(n.name, d.name);
            let Some(ds) = d.op.conv_spec() else { continue };
            let wide_pointwise = ds.kernel == [1, 1] && ds.out_channels > 96;
            let s = n.op.conv_spec().expect("a conv stays a conv");
            if wide_pointwise {
                grouped += 1;
                assert_eq!(s.groups, g, "{name}: {}", n.name);
                assert_eq!(
                    matches!(n.op, Op::FlgcConv2d(_)),
                    name.ends_with("flgc"),
                    "{name}: {}",
                    n.name
                );
            } else {
                assert_eq!(n.op, d.op, "{name}: {} must stay as it is", n.name);
            }
        }
        // Every expansion conv but the 16-channel stage's, every projection to 160 and 320
        // channels, and features.18.
        assert_eq!(grouped, 15 + 4 + 1, "{name}");
        let reduction = 1.0 - graph.cost().total_macs as f64 / c.total_macs as f64;
        assert!(reduction > 0.3, "{name}: MACs −{:.0} %", 100.0 * reduction);
    }
}

/// G of every conv of `graph` by node name.
fn conv_groups(graph: &gconv::graph::Graph) -> std::collections::BTreeMap<String, usize> {
    graph
        .nodes
        .iter()
        .filter_map(|n| Some((n.name.clone(), n.op.conv_spec()?.groups)))
        .collect()
}

#[test]
fn schemes_set_g_per_stage_and_per_layer_in_every_family() {
    // ResNet-50-DSC: G per stage for the block 1×1 convs (downsample included), one layer
    // overridden; the depthwise convs and the stem stay as they are.
    let text = r#"
        name = "mixed"
        stage_groups = [1, 2, 4, 8]
        [layer_groups]
        "layer3.0.conv1" = 16
    "#;
    let scheme = Scheme::from_toml(text, "mixed.toml").unwrap();
    let spec = ModelSpec::load("resnet50-dsc")
        .unwrap()
        .with_scheme(&scheme)
        .unwrap();
    assert_eq!(spec.name, "resnet50-dsc-mixed");
    assert_eq!(spec.groups(), 16);
    let g = conv_groups(&spec.build().unwrap());
    assert_eq!(g["layer1.0.conv1"], 1);
    assert_eq!(g["layer2.1.conv2_pw"], 2);
    assert_eq!(g["layer2.0.downsample.0"], 2);
    assert_eq!(g["layer3.0.conv1"], 16);
    assert_eq!(g["layer3.1.conv1"], 4);
    assert_eq!(g["layer4.2.conv3"], 8);
    assert_eq!(g["conv1"], 1);
    assert_eq!(g["layer4.0.conv2_dw"], 512, "depthwise stays depthwise");
    let sites = spec.group_sites().unwrap();
    assert!(sites
        .iter()
        .all(|s| !s.node.contains("dw") && s.node != "conv1"));
    assert_eq!(sites.iter().filter(|s| s.stage == 3).count(), 3 * 3 + 1);
    // The scheme round-trips through its TOML text, and a dense model takes SGC from it.
    assert_eq!(
        Scheme::from_toml(&scheme.to_toml(), "again").unwrap(),
        scheme
    );

    // MobileNetV2: eight stages (seven inverted-residual stages and the head); a stage with
    // no wide 1×1 conv must stay at G = 1.
    let m = ModelSpec::load("mobilenetv2").unwrap();
    assert_eq!(m.stage_names().len(), 8);
    let spec = m
        .clone()
        .with_scheme(&Scheme::load("1,1,2,2,4,4,8,16").unwrap())
        .unwrap();
    let g = conv_groups(&spec.build().unwrap());
    assert_eq!(g["features.18.0"], 16);
    assert_eq!(g["features.17.conv.0.0"], 8);
    assert_eq!(g["features.17.conv.2"], 8);
    assert_eq!(g["features.4.conv.0.0"], 2);
    let e = m
        .with_scheme(&Scheme::load("2,1,1,1,1,1,1,1").unwrap())
        .unwrap()
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("stage1 has no 1×1 conv"), "{e}");

    // VGG: a layer of a stage overridden; naming a layer that is not grouped is an error.
    let text =
        "name = \"v\"\nstage_groups = [1, 1, 8, 8, 8]\n[layer_groups]\n\"features.14\" = 32\n";
    let spec = ModelSpec::load("vgg13bn")
        .unwrap()
        .with_scheme(&Scheme::from_toml(text, "v.toml").unwrap())
        .unwrap();
    let g = conv_groups(&spec.build().unwrap());
    assert_eq!(
        (g["features.14"], g["features.17"], g["features.7"]),
        (32, 8, 1)
    );
    let bad = "name = \"b\"\n[layer_groups]\n\"classifier.0\" = 2\n";
    let e = ModelSpec::load("vgg13bn")
        .unwrap()
        .with_scheme(&Scheme::from_toml(bad, "b.toml").unwrap())
        .unwrap()
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("classifier.0"), "{e}");
    // An empty scheme, and G = 0, are refused when read.
    for text in [
        "name = \"e\"",
        "name = \"z\"\nstage_groups = [1, 0, 1, 1, 1]",
    ] {
        assert!(Scheme::from_toml(text, "e.toml").is_err(), "{text}");
    }
}
