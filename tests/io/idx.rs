//! IDX files (plain and gzip) and the Fashion-MNIST layout.

use super::{assert_format, assert_io, fx};
use gconv::io::{read_idx_images, read_idx_labels, FashionMnist, IdxImages};
use gconv::Error;
use std::path::Path;

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
