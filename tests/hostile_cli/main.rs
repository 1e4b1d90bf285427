//! The CLI as a hostile or mistaken user drives it: files that are not what the flag says
//! (`infer_files`: a training checkpoint, plain weights or binary garbage given as `--model`,
//! `/dev/zero` as `--weights` or `--model`, and the `--compare` verdict when outputs hold NaN),
//! every numeric flag of every sub-command at zero, negative, NaN, huge and empty-list values
//! (`values`: a clear error, exit 2, never a panic), and options that would not take effect
//! (`flags`: refused, or the model run is the model described — its MACs equal
//! `gconv info`'s for the same flags).

#[path = "../common/mod.rs"]
mod common;
mod flags;
mod infer_files;
mod values;

use gconv::io::write_safetensors;
use gconv::{Tensor, Weights};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gconv(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_gconv"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("gconv runs");
    eprintln!(
        "gconv {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("hostile-cli")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A VGG of one 4-channel stage and an 8-unit classifier on 1×8×8 inputs.
const TINY_TOML: &str = r#"
name = "tiny"
description = "a tiny VGG for CLI tests"
num_classes = 3
input = [1, 8, 8]

[arch]
family = "vgg"
stages = [[4]]
classifier = [8]
dropout = 0.5
"#;

/// Runs `gconv` and asserts it fails (exit 2) with every needle in its error.
#[track_caller]
fn assert_fails(args: &[&str], needles: &[&str]) {
    let o = gconv(args);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} lacks {n:?}");
    }
    assert!(!err.contains("valid UTF-8"), "{err}");
}

/// A VGG of two stages (the second one groupable) on 1×8×8 inputs, 3 classes.
const TWO_STAGE_TOML: &str = r#"
name = "two-stage"
description = "a two-stage VGG for CLI tests"
num_classes = 3
input = [1, 8, 8]

[arch]
family = "vgg"
stages = [[4], [8]]
classifier = [8]
dropout = 0.0
"#;

/// An image folder of two classes with `per_class` grey 8×8 PNGs each; returns its path.
fn image_folder(root: &Path, per_class: usize) -> String {
    for (k, class) in ["a", "b"].iter().enumerate() {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let img = image::GrayImage::from_fn(8, 8, |x, y| {
                let v = (x * 29 + y * 13 + i as u32 * 31 + k as u32 * 97) % 256;
                image::Luma([v as u8])
            });
            img.save(dir.join(format!("{i:02}.png"))).unwrap();
        }
    }
    root.to_string_lossy().into_owned()
}

/// Writes `text` to `dir/name` and returns the path.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}
