//! safetensors files and `Weights`: torch state_dicts (f32, f16), conversions, round trips, errors.

use super::{assert_format, assert_io, assert_no_tmp_files, fx, scratch};
use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, Op};
use gconv::io::{load_weights, num_classes_hint, read_npy, read_safetensors, write_safetensors};
use gconv::{Error, Tensor, Weights};
use std::collections::BTreeMap;

/// The torchvision-style tiny model of the fixtures: conv `features.0` (3→4, 3×3, pad 1),
/// BN `features.1`, ReLU `features.2`, `avgpool`, `flatten`, linear `classifier.0` (4→classes).
fn tiny(num_classes: usize, conv_bias: bool, bn: bool) -> Graph {
    let mut b = GraphBuilder::new("tiny", [3, 8, 8]);
    let mut x = b.input();
    let conv = Conv2dSpec::square(3, 4, 3, 1, 1).bias(conv_bias);
    x = b.push("features.0", Op::Conv2d(conv), &[x]).unwrap();
    if bn {
        let op = Op::BatchNorm(gconv::ops::BatchNorm {
            channels: 4,
            eps: 1e-5,
        });
        x = b.push("features.1", op, &[x]).unwrap();
    }
    x = b.push("features.2", Op::relu(), &[x]).unwrap();
    x = b
        .push(
            "avgpool",
            Op::AdaptiveAvgPool(gconv::ops::AdaptiveAvgPool { output: [1, 1] }),
            &[x],
        )
        .unwrap();
    x = b
        .push("flatten", Op::Flatten(gconv::ops::Flatten), &[x])
        .unwrap();
    let fc = Op::Linear(gconv::ops::Linear {
        in_features: 4,
        out_features: num_classes,
        bias: true,
    });
    x = b.push("classifier.0", fc, &[x]).unwrap();
    b.finish(x)
}

/// The value the fixture script gave element `i` of tensor `key`.
fn expected(key: &str, i: usize) -> f32 {
    let r = ((i * 37 + key.len() * 11) % 101) as f64;
    let v = if key.ends_with("running_var") {
        0.5 + r / 100.0
    } else {
        r / 50.0 - 1.0
    };
    v as f32
}

const TINY_KEYS: [&str; 7] = [
    "classifier.0.bias",
    "classifier.0.weight",
    "features.0.weight",
    "features.1.bias",
    "features.1.running_mean",
    "features.1.running_var",
    "features.1.weight",
];

#[test]
fn safetensors_reads_torch_state_dict_f32() {
    let g = tiny(5, false, true);
    let w = load_weights(fx("tiny_f32.safetensors"), &g).unwrap();
    let keys: Vec<&str> = w.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, TINY_KEYS, "num_batches_tracked must be skipped");
    assert_eq!(w.get("features.0.weight").unwrap().shape(), &[4, 3, 3, 3]);
    assert_eq!(w.get("classifier.0.weight").unwrap().shape(), &[5, 4]);
    for (k, t) in w.iter() {
        for (i, &v) in t.data().iter().enumerate() {
            assert_eq!(v, expected(k, i), "{k}[{i}]");
        }
    }
}

#[test]
fn safetensors_reads_torch_state_dict_f16() {
    let g = tiny(5, false, true);
    let w = load_weights(fx("tiny_f16.safetensors"), &g).unwrap();
    assert_eq!(w.len(), TINY_KEYS.len());
    for (k, t) in w.iter() {
        for (i, &v) in t.data().iter().enumerate() {
            let e = expected(k, i);
            // f16 keeps 11 significant bits.
            assert!(
                (v - e).abs() <= e.abs() * 2f32.powi(-11),
                "{k}[{i}]: {v} vs {e}"
            );
        }
    }
}

#[test]
fn loaded_weights_reproduce_torch_output() {
    let g = tiny(5, false, true);
    let w = load_weights(fx("tiny_f32.safetensors"), &g).unwrap();
    let x = read_npy(fx("tiny_input.npy")).unwrap();
    let want = read_npy(fx("tiny_output.npy")).unwrap();
    let got = gconv::cpu::run_graph(&g, &w, &x).unwrap();
    assert_eq!(got.shape(), want.shape());
    for (i, (a, b)) in got.data().iter().zip(want.data()).enumerate() {
        assert!((a - b).abs() <= 1e-5 + 1e-5 * b.abs(), "[{i}]: {a} vs {b}");
    }
}

#[test]
fn safetensors_converts_f64_bf16_and_rejects_ints() {
    let w = read_safetensors(fx("f64.safetensors")).unwrap();
    assert_eq!(w.get("a.weight").unwrap().data(), &[1.0, -2.5]);
    assert_eq!(w.get("b.weight").unwrap().data(), &[0.5, 3.0]);
    let w = read_safetensors(fx("bf16.safetensors")).unwrap();
    assert_eq!(w.get("a.weight").unwrap().data(), &[1.0, -2.5, 0.15625]);
    match read_safetensors(fx("i32.safetensors")) {
        Err(Error::Weights { key, msg }) => {
            assert_eq!(key, "a.weight");
            assert!(msg.contains("I32"), "{msg}");
        }
        other => panic!("expected Error::Weights, got {other:?}"),
    }
}

#[test]
fn safetensors_round_trip() {
    let dir = scratch("safetensors_round_trip");
    let g = tiny(5, true, true);
    let w = Weights::random_for_tests(&g, 42);
    let p = dir.join("w.safetensors");
    let meta = BTreeMap::from([
        ("model".to_string(), "tiny".to_string()),
        ("format".to_string(), "pt".to_string()),
    ]);
    write_safetensors(&p, &w, &meta).unwrap();
    assert_no_tmp_files(&dir);
    assert_eq!(read_safetensors(&p).unwrap(), w);
    assert_eq!(load_weights(&p, &g).unwrap(), w);
    let bytes = std::fs::read(&p).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let m = header.metadata().as_ref().unwrap();
    assert_eq!(m.get("model").map(String::as_str), Some("tiny"));
    assert_eq!(m.get("format").map(String::as_str), Some("pt"));

    // No metadata at all is fine too.
    write_safetensors(&p, &w, &BTreeMap::new()).unwrap();
    assert_eq!(read_safetensors(&p).unwrap(), w);
}

#[test]
fn weights_key_errors() {
    let p = fx("tiny_f32.safetensors");
    // Missing: the graph's conv has a bias, the file has none.
    match load_weights(&p, &tiny(5, true, true)) {
        Err(Error::Weights { key, msg }) => {
            assert_eq!(key, "features.0.bias");
            assert!(msg.contains("missing"), "{msg}");
        }
        other => panic!("expected a missing key, got {other:?}"),
    }
    // Extra: the graph has no batch norm, the file does.
    match load_weights(&p, &tiny(5, false, false)) {
        Err(e @ Error::Weights { .. }) => {
            let Error::Weights { key, .. } = &e else {
                unreachable!()
            };
            assert!(key.starts_with("features.1."), "{key}");
            assert!(e.to_string().contains("not a parameter"), "{e}");
        }
        other => panic!("expected an extra key, got {other:?}"),
    }
    // Mis-shaped: 7 classes in the graph, 5 in the file.
    match load_weights(&p, &tiny(7, false, true)) {
        Err(e @ Error::Weights { .. }) => {
            let s = e.to_string();
            assert!(s.contains("classifier.0."), "{s}");
            assert!(
                s.contains("[5, 4]") && s.contains("[7, 4]")
                    || s.contains("[5]") && s.contains("[7]"),
                "{s}"
            );
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
}

#[test]
fn weights_shape_error_names_both_shapes() {
    let mut w = read_safetensors(fx("tiny_f32.safetensors")).unwrap();
    w.insert("classifier.0.bias", Tensor::zeros(&[7]));
    w.insert("classifier.0.weight", Tensor::zeros(&[5, 4]));
    let e = w.validate(&tiny(7, false, true)).unwrap_err().to_string();
    assert!(e.contains("classifier.0.weight"), "{e}");
    assert!(e.contains("[5, 4]") && e.contains("[7, 4]"), "{e}");
}

#[test]
fn num_classes_follow_the_weights() {
    let w = read_safetensors(fx("tiny_f32.safetensors")).unwrap();
    // A model built for 1000 classes learns from the file that it has 5 ...
    assert_eq!(num_classes_hint(&w, &tiny(1000, false, true)), Some(5));
    // ... and, rebuilt with them, loads.
    load_weights(fx("tiny_f32.safetensors"), &tiny(5, false, true)).unwrap();
    // A graph without a linear layer gives no hint.
    let mut b = GraphBuilder::new("nolinear", [3, 8, 8]);
    let x = b.input();
    let r = b.push("features.2", Op::relu(), &[x]).unwrap();
    assert_eq!(num_classes_hint(&w, &b.finish(r)), None);
    // Nor do weights without the key.
    assert_eq!(
        num_classes_hint(&Weights::new(), &tiny(5, false, true)),
        None
    );
}

#[test]
fn safetensors_corrupt_files() {
    let p = fx("truncated.safetensors");
    assert_format(read_safetensors(&p), &p, "safetensors");
    assert_format(load_weights(&p, &tiny(5, false, true)), &p, "safetensors");
    let p = fx("garbage.safetensors");
    assert_format(read_safetensors(&p), &p, "safetensors");
    let p = fx("f4.npy");
    assert_format(read_safetensors(&p), &p, "safetensors");
    let p = fx("no_such_file.safetensors");
    assert_io(read_safetensors(&p), &p);
}
