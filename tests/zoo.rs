//! Model zoo and accounting: the totals must equal torchvision's exactly.

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
fn print_costs() {
    for m in [
        "vgg13bn",
        "resnet50",
        "resnet50-dsc",
        "resnet50-dsc-sgc",
        "resnet50-dsc-flgc",
    ] {
        let c = cost(m);
        println!("{m}: {} params {} macs", c.total_params, c.total_macs);
    }
    let base = cost("vgg13bn").total_macs as f64;
    for s in ["A", "B", "C", "D", "E"] {
        let spec = ModelSpec::load("vgg13bn")
            .unwrap()
            .with_scheme(&Scheme::load(s).unwrap())
            .unwrap();
        let c = spec.build().unwrap().cost();
        println!(
            "{s}: {} params {} macs  {:.2}% less",
            c.total_params,
            c.total_macs,
            100.0 * (1.0 - c.total_macs as f64 / base)
        );
    }
    let _ = (ConvKind::Dense, Error::InvalidArgument(String::new()));
}
