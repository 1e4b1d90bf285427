//! `gconv::io`: npy, safetensors, IDX and image files, against fixtures written by
//! numpy / PyTorch (`scripts/make_io_fixtures.py`), and every failure mode we promise
//! to report cleanly.

use gconv::Error;
use std::path::{Path, PathBuf};

mod idx;
mod images;
mod npy;
mod truncation;
mod weights;

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
