//! `gconv::train::ImageFolder`: class folders → labels, pixel values, resizing, channel
//! conversion, and every error case reported as an `Err` naming the problem.

use gconv::train::folder::MAX_CLASSES;
use gconv::train::ImageFolder;
use gconv::Error;
use image::{GrayImage, Luma, Rgb, RgbImage};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh, uniquely named directory under the system temp dir, removed on drop (also
/// when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let d = std::env::temp_dir().join(format!(
            "gconv-io-folder-{test}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    /// Creates `rel` (and its parents) as a directory; returns its path.
    fn dir(&self, rel: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Writes raw bytes to `rel`, creating parent folders.
    fn bytes(&self, rel: &str, b: &[u8]) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b).unwrap();
        p
    }

    /// Writes a `w × h` uniform grey image (format from the extension).
    fn gray(&self, rel: &str, w: u32, h: u32, v: u8) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        GrayImage::from_pixel(w, h, Luma([v])).save(&p).unwrap();
        p
    }

    /// Writes a `w × h` uniform RGB image (format from the extension).
    fn rgb(&self, rel: &str, w: u32, h: u32, px: [u8; 3]) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        RgbImage::from_pixel(w, h, Rgb(px)).save(&p).unwrap();
        p
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The values of sample `i`.
fn sample(f: &ImageFolder, i: usize) -> &[f32] {
    let d = &f.dataset;
    let len = d.channels * d.h * d.w;
    &d.images[i * len..(i + 1) * len]
}

#[track_caller]
fn assert_all_near(vals: &[f32], want: f32, tol: f32) {
    for (k, &v) in vals.iter().enumerate() {
        assert!(
            (v - want).abs() <= tol,
            "value {k} is {v}, expected {want} ± {tol}"
        );
    }
}

/// The error's message, asserting it contains every `needle` (case-insensitive).
#[track_caller]
fn err_msg<T: std::fmt::Debug>(r: gconv::Result<T>, needles: &[&str]) -> Error {
    let e = r.expect_err("expected an error");
    let msg = e.to_string().to_lowercase();
    for n in needles {
        assert!(
            msg.contains(&n.to_lowercase()),
            "message {e} does not contain {n:?}"
        );
    }
    e
}

#[test]
fn classes_sorted_labels_and_pixel_values() {
    let t = TempDir::new("basic");
    // Created out of order: the class index follows the sorted name, not creation.
    t.gray("b/only.PNG", 5, 4, 50); // upper-case extension counts
    t.gray("a/x2.png", 5, 4, 200);
    t.gray("a/x1.png", 5, 4, 100);
    t.gray("c/p.jpg", 5, 4, 128);
    t.gray("c/q.jpeg", 5, 4, 30);
    // Ignored: other files, nested folders, hidden files and folders, files at the root.
    t.bytes("a/notes.txt", b"not an image");
    t.bytes("a/._x1.png", b"macOS resource fork, not a PNG");
    t.gray("a/nested/deep.png", 5, 4, 1);
    t.gray(".cache/z.png", 5, 4, 1);
    t.bytes("README.txt", b"hello");

    let f = ImageFolder::load(t.path(), 1, [4, 5]).unwrap();
    assert_eq!(f.classes, ["a", "b", "c"]);
    let d = &f.dataset;
    assert_eq!((d.n, d.channels, d.h, d.w), (5, 1, 4, 5));
    assert_eq!(d.labels, [0, 0, 1, 2, 2]);
    assert_eq!(d.images.len(), 5 * 4 * 5);
    // PNG is lossless: exactly v / 255, like `Dataset::from_u8`.
    assert_all_near(sample(&f, 0), 100.0 / 255.0, 1e-6); // a/x1.png
    assert_all_near(sample(&f, 1), 200.0 / 255.0, 1e-6); // a/x2.png
    assert_all_near(sample(&f, 2), 50.0 / 255.0, 1e-6); // b/only.PNG

    // JPEG of a flat grey is within a level or two.
    assert_all_near(sample(&f, 3), 128.0 / 255.0, 2.5 / 255.0); // c/p.jpg
    assert_all_near(sample(&f, 4), 30.0 / 255.0, 2.5 / 255.0); // c/q.jpeg
}

#[test]
fn pixel_layout_is_row_major_h_by_w() {
    let t = TempDir::new("layout");
    // 3 wide, 2 high, every pixel different: catches a transposed or flipped image.
    let img = GrayImage::from_fn(3, 2, |x, y| Luma([(10 * (3 * y + x) + 5) as u8]));
    std::fs::create_dir_all(t.path().join("k")).unwrap();
    img.save(t.path().join("k/i.png")).unwrap();

    let f = ImageFolder::load(t.path(), 1, [2, 3]).unwrap();
    let want: Vec<f32> = (0..6).map(|i| (10 * i + 5) as f32 / 255.0).collect();
    for (g, w) in sample(&f, 0).iter().zip(&want) {
        assert!(
            (g - w).abs() < 1e-6,
            "got {:?}, want {want:?}",
            sample(&f, 0)
        );
    }
}

#[test]
fn resizes_images_of_any_size() {
    let t = TempDir::new("resize");
    t.gray("one/small.png", 4, 4, 77);
    t.gray("one/large.png", 10, 6, 77);
    t.gray("two/wide.png", 1, 9, 210);

    let f = ImageFolder::load(t.path(), 1, [7, 3]).unwrap();
    let d = &f.dataset;
    assert_eq!((d.n, d.channels, d.h, d.w), (3, 1, 7, 3));
    assert_eq!(d.images.len(), 3 * 7 * 3);
    assert_eq!(d.labels, [0, 0, 1]);
    // A flat image stays flat through a bilinear resize.
    assert_all_near(sample(&f, 0), 77.0 / 255.0, 1e-4); // large.png
    assert_all_near(sample(&f, 1), 77.0 / 255.0, 1e-4); // small.png
    assert_all_near(sample(&f, 2), 210.0 / 255.0, 1e-4);
}

#[test]
fn rgb_to_one_channel_and_grey_to_three() {
    let t = TempDir::new("channels");
    t.rgb("grey/g.png", 3, 3, [90, 90, 90]);
    t.rgb("red/r.png", 3, 3, [255, 0, 0]);
    t.gray("z/gray.png", 3, 3, 40);

    let f = ImageFolder::load(t.path(), 1, [3, 3]).unwrap();
    assert_eq!(f.dataset.channels, 1);
    assert_eq!(f.dataset.images.len(), 3 * 9);
    assert_all_near(sample(&f, 0), 90.0 / 255.0, 1.0 / 255.0); // R = G = B: luma = v
    for &v in sample(&f, 1) {
        // Pure red's luma: 0.2126 (Rec. 709) or 0.299 (Rec. 601) depending on the weights.
        assert!((0.2..0.31).contains(&v), "luma of pure red {v}");
    }

    let f = ImageFolder::load(t.path(), 3, [3, 3]).unwrap();
    assert_eq!(f.dataset.channels, 3);
    assert_eq!(f.dataset.images.len(), 3 * 3 * 9);
    let red = sample(&f, 1);
    assert_all_near(&red[..9], 1.0, 1e-6);
    assert_all_near(&red[9..], 0.0, 1e-6);
    assert_all_near(sample(&f, 2), 40.0 / 255.0, 1e-6); // grey replicated into R, G, B
}

#[test]
fn up_to_256_classes() {
    let t = TempDir::new("256");
    for c in 0..MAX_CLASSES {
        t.gray(&format!("c{c:03}/i.png"), 1, 1, c as u8);
    }
    let f = ImageFolder::load(t.path(), 1, [1, 1]).unwrap();
    assert_eq!(f.classes.len(), 256);
    assert_eq!(f.classes[255], "c255");
    assert_eq!(f.dataset.labels, (0..=255).collect::<Vec<u8>>());
    assert!((f.dataset.images[255] - 1.0).abs() < 1e-6);
}

#[test]
fn missing_or_non_directory_root_is_an_io_error_saying_the_layout() {
    let t = TempDir::new("missing");
    let missing = t.path().join("does-not-exist");
    let e = err_msg(
        ImageFolder::load(&missing, 1, [8, 8]),
        &["does-not-exist", "one sub-folder per class"],
    );
    assert!(
        matches!(&e, Error::Io { path, .. } if path == &missing),
        "{e:?}"
    );

    let file = t.bytes("file.png", b"x");
    let e = err_msg(
        ImageFolder::load(&file, 1, [8, 8]),
        &["file.png", "one sub-folder per class"],
    );
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
}

#[test]
fn no_class_folders() {
    let t = TempDir::new("empty");
    let e = err_msg(
        ImageFolder::load(t.path(), 1, [8, 8]),
        &["no class folders", "one sub-folder per class"],
    );
    assert!(
        matches!(&e, Error::Format { path, .. } if path == t.path()),
        "{e:?}"
    );

    // Images directly at the root (no class folders) are the same mistake.
    t.gray("img.png", 2, 2, 0);
    t.dir(".hidden");
    err_msg(
        ImageFolder::load(t.path(), 1, [8, 8]),
        &["no class folders"],
    );
}

#[test]
fn more_than_256_classes() {
    let t = TempDir::new("257");
    for c in 0..=MAX_CLASSES {
        t.dir(&format!("c{c:03}"));
    }
    let e = err_msg(ImageFolder::load(t.path(), 1, [8, 8]), &["257", "256"]);
    assert!(matches!(e, Error::Format { .. }), "{e:?}");
}

#[test]
fn class_folder_without_images_is_named() {
    let t = TempDir::new("noimg");
    t.gray("cat/1.png", 2, 2, 0);
    t.bytes("dog/readme.txt", b"no pictures here");
    t.gray("dog/sub/1.png", 2, 2, 0); // nested: not counted
    let e = err_msg(
        ImageFolder::load(t.path(), 1, [2, 2]),
        &["`dog`", "no images"],
    );
    assert!(
        matches!(&e, Error::Format { path, .. } if path == &t.path().join("dog")),
        "{e:?}"
    );
}

#[test]
fn corrupt_image_is_named() {
    let t = TempDir::new("corrupt");
    t.gray("a/good.png", 4, 4, 9);
    let bad = t.bytes("b/bad.png", b"this is not a png at all");
    let e = err_msg(ImageFolder::load(t.path(), 1, [4, 4]), &["bad.png"]);
    assert!(
        matches!(&e, Error::Format { path, .. } if path == &bad),
        "{e:?}"
    );

    // A truncated PNG: the header is fine, the data is cut short.
    std::fs::remove_file(&bad).unwrap();
    let whole = std::fs::read(t.gray("b/cut.png", 16, 16, 3)).unwrap();
    let cut = t.bytes("b/cut.png", &whole[..whole.len() / 2]);
    let e = err_msg(ImageFolder::load(t.path(), 1, [4, 4]), &["cut.png"]);
    assert!(
        matches!(&e, Error::Format { path, .. } | Error::Io { path, .. } if path == &cut),
        "{e:?}"
    );
}

#[cfg(unix)]
#[test]
fn unreadable_image_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let t = TempDir::new("unreadable");
    let p = t.gray("a/locked.png", 2, 2, 0);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&p).is_ok() {
        eprintln!("running with permission to read a mode-000 file (root?): skipping");
        return;
    }
    let e = err_msg(ImageFolder::load(t.path(), 1, [2, 2]), &["locked.png"]);
    assert!(matches!(&e, Error::Io { path, .. } if path == &p), "{e:?}");
}

#[test]
fn bad_channels_and_sizes() {
    let t = TempDir::new("args");
    t.gray("a/1.png", 2, 2, 0);
    for ch in [0, 2, 4] {
        let e = err_msg(
            ImageFolder::load(t.path(), ch, [2, 2]),
            &["channels", "1", "3"],
        );
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    }
    for size in [[0, 2], [2, 0], [0, 0]] {
        let e = err_msg(ImageFolder::load(t.path(), 1, size), &["size", "empty"]);
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    }
    // Argument errors come first, even for a missing folder.
    let e = ImageFolder::load(&t.path().join("nope"), 2, [2, 2]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}
