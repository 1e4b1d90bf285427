//! `gconv::io`: npy, safetensors, IDX and image files, against fixtures written by
//! numpy / PyTorch (`scripts/make_io_fixtures.py`), and every failure mode we promise
//! to report cleanly.

use gconv::graph::{Conv2dSpec, Graph, GraphBuilder, Op};
use gconv::io::{
    load_weights, num_classes_hint, read_idx_images, read_idx_labels, read_image, read_npy,
    read_safetensors, write_npy, write_safetensors, FashionMnist, IdxImages,
};
use gconv::{Error, Tensor, Weights};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fx(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/io")
        .join(name)
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("io-tests")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Asserts `r` is an `Error::Format` naming `path` whose message contains `needle`.
#[track_caller]
fn assert_format<T: std::fmt::Debug>(r: gconv::Result<T>, path: &Path, needle: &str) {
    match r {
        Err(Error::Format { path: p, msg }) => {
            assert_eq!(p, path, "error names the wrong file ({msg})");
            assert!(
                msg.to_lowercase().contains(&needle.to_lowercase()),
                "message {msg:?} does not contain {needle:?}"
            );
        }
        other => panic!(
            "expected Error::Format for {}, got {other:?}",
            path.display()
        ),
    }
}

/// Asserts no temporary file of an atomic write is left in `dir`.
#[track_caller]
fn assert_no_tmp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "{name} left in {}", dir.display());
    }
}

/// Asserts `r` is an `Error::Io` naming `path`.
#[track_caller]
fn assert_io<T: std::fmt::Debug>(r: gconv::Result<T>, path: &Path) {
    match r {
        Err(Error::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Error::Io for {}, got {other:?}", path.display()),
    }
}

// ---- npy ------------------------------------------------------------------------------------

#[test]
fn npy_round_trip() {
    let dir = scratch("npy_round_trip");
    for shape in [vec![], vec![7], vec![2, 3, 4, 5], vec![1, 0, 3]] {
        let t = Tensor::from_fn(&shape, |i| (i as f32 * 0.37).sin() * 1e3 - 0.5);
        let p = dir.join(format!("t{}.npy", shape.len()));
        write_npy(&p, &t).unwrap();
        assert_eq!(read_npy(&p).unwrap(), t, "shape {shape:?}");
        // Atomic write: the temporary file is gone.
        assert_no_tmp_files(&dir);
    }
    // Overwriting works too.
    let p = dir.join("t1.npy");
    let t = Tensor::new(vec![2], vec![f32::MAX, f32::MIN_POSITIVE]).unwrap();
    write_npy(&p, &t).unwrap();
    assert_eq!(read_npy(&p).unwrap(), t);
}

#[test]
fn npy_write_into_missing_dir_is_io_error() {
    let dir = scratch("npy_write_missing_dir");
    let p = dir.join("no/such/dir/t.npy");
    let r = write_npy(&p, &Tensor::zeros(&[2]));
    assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
}

#[test]
fn npy_reads_numpy_f4() {
    let t = read_npy(fx("f4.npy")).unwrap();
    assert_eq!(t.shape(), &[2, 3, 4]);
    let want: Vec<f32> = (0..24).map(|i| i as f32 / 7.0 - 1.0).collect();
    assert_eq!(t.data(), &want[..]);
}

#[test]
fn npy_converts_f8_f2_u1() {
    let t = read_npy(fx("f8.npy")).unwrap();
    assert_eq!(t.shape(), &[3, 5]);
    let want: Vec<f32> = (0..15).map(|i| (i as f64 / 3.0 - 2.0) as f32).collect();
    assert_eq!(t.data(), &want[..]);

    let t = read_npy(fx("f2.npy")).unwrap();
    assert_eq!(t.shape(), &[4]);
    assert_eq!(t.data(), &[0.5, -1.25, 3.0, 65504.0]);

    let t = read_npy(fx("u1.npy")).unwrap();
    assert_eq!(t.shape(), &[2, 2]);
    assert_eq!(t.data(), &[0.0, 1.0, 128.0, 255.0]);
}

#[test]
fn npy_versions_and_scalars() {
    let t = read_npy(fx("v2.npy")).unwrap();
    assert_eq!((t.shape(), t.data()), (&[3][..], &[1.0, 2.0, 3.0][..]));
    let t = read_npy(fx("v3.npy")).unwrap();
    assert_eq!((t.shape(), t.data()), (&[2][..], &[4.0, 5.0][..]));
    let t = read_npy(fx("scalar.npy")).unwrap();
    assert_eq!((t.shape(), t.data()), (&[][..], &[2.5][..]));
}

#[test]
fn npy_errors() {
    let p = fx("fortran.npy");
    assert_format(read_npy(&p), &p, "fortran");
    let p = fx("big_endian.npy");
    assert_format(read_npy(&p), &p, "big-endian");
    let p = fx("i4.npy");
    assert_format(read_npy(&p), &p, "dtype `<i4` is not supported");
    let p = fx("truncated.npy");
    assert_format(read_npy(&p), &p, "truncated data");
    let p = fx("truncated_header.npy");
    assert_format(read_npy(&p), &p, "truncated header");
    let p = fx("bad_magic.npy");
    assert_format(read_npy(&p), &p, "bad magic");
    let p = fx("no_such_file.npy");
    assert_io(read_npy(&p), &p);
    // Not an npy at all (a safetensors file).
    let p = fx("tiny_f32.safetensors");
    assert_format(read_npy(&p), &p, "magic");
}

// ---- safetensors ---------------------------------------------------------------------------

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
    x = b
        .push("features.2", Op::Relu(gconv::ops::Relu), &[x])
        .unwrap();
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
    let r = b
        .push("features.2", Op::Relu(gconv::ops::Relu), &[x])
        .unwrap();
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

// ---- IDX ------------------------------------------------------------------------------------

#[test]
fn idx_plain_and_gzip() {
    let want: Vec<u8> = (0..60).map(|i| (i * 7 % 256) as u8).collect();
    for name in ["images.idx3-ubyte.gz", "images.idx3-ubyte"] {
        let (n, rows, cols, px) = read_idx_images(fx(name)).unwrap();
        assert_eq!((n, rows, cols), (3, 4, 5), "{name}");
        assert_eq!(px, want, "{name}");
    }
    for name in ["labels.idx1-ubyte.gz", "labels.idx1-ubyte"] {
        assert_eq!(read_idx_labels(fx(name)).unwrap(), vec![3, 1, 4], "{name}");
    }
    let im = IdxImages::read(fx("images.idx3-ubyte.gz")).unwrap();
    assert_eq!(im.image(1).unwrap(), &want[20..40]);
    assert!(im.image(3).is_none());
    let t = im.to_tensor(1..3).unwrap();
    assert_eq!(t.shape(), &[2, 1, 4, 5]);
    assert_eq!(t.data()[0], want[20] as f32 / 255.0);
    assert!(im.to_tensor(2..4).is_err());
}

#[test]
fn idx_errors() {
    let p = fx("wrong_magic.idx1-ubyte");
    assert_format(read_idx_labels(&p), &p, "magic");
    // Images where labels are expected, and the other way round.
    let p = fx("images.idx3-ubyte.gz");
    assert_format(read_idx_labels(&p), &p, "magic 0x00000803");
    let p = fx("labels.idx1-ubyte");
    assert_format(read_idx_images(&p), &p, "magic 0x00000801");
    let p = fx("truncated.idx3-ubyte.gz");
    assert_format(read_idx_images(&p), &p, "truncated");
    let p = fx("truncated_gzip.idx3-ubyte.gz");
    assert_format(read_idx_images(&p), &p, "gzip");
    let p = fx("no_such_file.idx3-ubyte");
    assert_io(read_idx_images(&p), &p);
}

#[test]
fn fashion_mnist_layout() {
    let d = FashionMnist::load(fx("fashion-mini")).unwrap();
    assert_eq!(
        (d.train_images.n, d.train_images.rows, d.train_images.cols),
        (2, 28, 28)
    );
    assert_eq!(d.train_labels, vec![9, 0]);
    assert_eq!(d.test_images.n, 1);
    assert_eq!(d.test_labels, vec![5]);
    assert_eq!(FashionMnist::CLASSES[9], "Ankle boot");

    let missing = fx("no-such-dir");
    match FashionMnist::load(&missing) {
        Err(e @ Error::Io { .. }) => {
            let s = e.to_string();
            assert!(s.contains("apt-get install dataset-fashion-mnist"), "{s}");
            assert!(s.contains("train-images-idx3-ubyte"), "{s}");
        }
        other => panic!("expected a not-found error, got {other:?}"),
    }
}

#[test]
fn fashion_mnist_installed() {
    let dir = Path::new(FashionMnist::DEFAULT_DIR);
    if !dir.exists() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{} missing on CI: `apt-get install dataset-fashion-mnist`",
                dir.display()
            );
        }
        eprintln!(
            "SKIPPED fashion_mnist_installed: {} not found (apt-get install dataset-fashion-mnist)",
            dir.display()
        );
        return;
    }
    let d = FashionMnist::load_default().unwrap();
    for (im, labels, n) in [
        (&d.train_images, &d.train_labels, 60_000),
        (&d.test_images, &d.test_labels, 10_000),
    ] {
        assert_eq!((im.n, im.rows, im.cols), (n, 28, 28));
        assert_eq!(im.pixels.len(), n * 28 * 28);
        assert_eq!(labels.len(), n);
        assert!(labels.iter().all(|&l| l < 10));
        // Every class is present, in equal numbers (Fashion-MNIST is balanced).
        let mut count = [0usize; 10];
        labels.iter().for_each(|&l| count[l as usize] += 1);
        assert!(count.iter().all(|&c| c == n / 10), "{count:?}");
    }
}

// ---- images ---------------------------------------------------------------------------------

#[test]
fn image_png_native_size() {
    let t = read_image(fx("rgb_6x4.png"), 3, [4, 6]).unwrap();
    assert_eq!(t.shape(), &[1, 3, 4, 6]);
    let at = |c: usize, y: usize, x: usize| t.data()[(c * 4 + y) * 6 + x];
    for y in 0..4 {
        for x in 0..6 {
            let want = [40 * x, 60 * y, 255 - 40 * x].map(|v| v as f32 / 255.0);
            for (c, w) in want.iter().enumerate() {
                assert!((at(c, y, x) - w).abs() < 1e-6, "({c},{y},{x})");
            }
        }
    }
    let g = read_image(fx("grey_3x2.png"), 1, [2, 3]).unwrap();
    assert_eq!(g.shape(), &[1, 1, 2, 3]);
    let want: Vec<f32> = [0, 50, 100, 100, 150, 200]
        .iter()
        .map(|&v| v as f32 / 255.0)
        .collect();
    for (a, b) in g.data().iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "{:?} vs {want:?}", g.data());
    }
    // Grey as RGB repeats the plane; RGB as grey is a luma in [0, 1].
    let g3 = read_image(fx("grey_3x2.png"), 3, [2, 3]).unwrap();
    assert_eq!(&g3.data()[..6], &g3.data()[6..12]);
    assert_eq!(&g3.data()[..6], &g3.data()[12..]);
    let l = read_image(fx("rgb_6x4.png"), 1, [4, 6]).unwrap();
    assert_eq!(l.shape(), &[1, 1, 4, 6]);
    assert!(l.data().iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn image_resize_is_bilinear_and_bounded() {
    for size in [[2, 3], [8, 12], [5, 5]] {
        let t = read_image(fx("rgb_6x4.png"), 3, size).unwrap();
        assert_eq!(t.shape(), &[1, 3, size[0], size[1]]);
        let plane = size[0] * size[1];
        // Blue falls from 255/255 at x = 0 to 55/255 at x = 5, and no filter overshoot.
        let blue = &t.data()[2 * plane..];
        assert!(
            blue.iter()
                .all(|&v| (55.0 / 255.0 - 1e-6..=1.0).contains(&v)),
            "{blue:?}"
        );
        // Red is constant along y, and increases along x.
        let red = &t.data()[..plane];
        for y in 0..size[0] {
            let row = &red[y * size[1]..(y + 1) * size[1]];
            let first = &red[..size[1]];
            let same = row.iter().zip(first).all(|(a, b)| (a - b).abs() < 1e-6);
            assert!(same, "red row {y}: {row:?} vs {first:?}");
            assert!(row.windows(2).all(|p| p[0] <= p[1]), "{row:?}");
        }
    }
}

#[test]
fn image_jpeg() {
    let dir = scratch("image_jpeg");
    let p = dir.join("flat.jpg");
    image::RgbImage::from_pixel(16, 8, image::Rgb([200, 100, 50]))
        .save(&p)
        .unwrap();
    let t = read_image(&p, 3, [4, 8]).unwrap();
    assert_eq!(t.shape(), &[1, 3, 4, 8]);
    for (c, want) in [200.0f32, 100.0, 50.0].iter().enumerate() {
        for &v in &t.data()[c * 32..(c + 1) * 32] {
            assert!((v * 255.0 - want).abs() < 4.0, "channel {c}: {}", v * 255.0);
        }
    }
}

#[test]
fn image_errors() {
    let p = fx("not_an_image.png");
    assert_format(read_image(&p, 3, [4, 4]), &p, "image");
    let p = fx("f4.npy");
    assert_format(read_image(&p, 3, [4, 4]), &p, "image");
    let p = fx("no_such_image.png");
    assert_io(read_image(&p, 3, [4, 4]), &p);
    let p = fx("rgb_6x4.png");
    assert!(matches!(
        read_image(&p, 2, [4, 4]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        read_image(&p, 3, [0, 4]),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn every_prefix_of_a_good_file_is_an_error_not_a_panic() {
    let dir = scratch("prefixes");
    let p = dir.join("cut");
    for name in [
        "tiny_f32.safetensors",
        "f4.npy",
        "images.idx3-ubyte.gz",
        "images.idx3-ubyte",
    ] {
        let bytes = std::fs::read(fx(name)).unwrap();
        for n in 0..bytes.len() {
            std::fs::write(&p, &bytes[..n]).unwrap();
            let r: gconv::Result<()> = match name {
                "f4.npy" => read_npy(&p).map(drop),
                n if n.ends_with(".safetensors") => read_safetensors(&p).map(drop),
                _ => read_idx_images(&p).map(drop),
            };
            assert!(
                matches!(r, Err(Error::Format { .. })),
                "{name} cut at {n}: {r:?}"
            );
        }
    }
}
