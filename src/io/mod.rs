//! Tensors, weights and data sets in and out of files.
//!
//! * [`npy`]: NumPy `.npy` arrays (read `f4`/`f8`/`f2`/`u1`, write `f4`).
//! * [`safetensors`]: PyTorch `state_dict`s saved with `safetensors.torch.save_file`.
//! * [`idx`]: IDX files (MNIST / Fashion-MNIST), plain or gzip'd.
//! * [`image`]: PNG / JPEG images as `[1, C, H, W]` tensors in `[0, 1]`.
//! * [`checkpoint`]: training checkpoints (weights, momentum, epoch, normalisation, model).
//! * [`dataset`]: training / test data from a path (Fashion-MNIST or an image folder).
//! * [`exported`]: exported models (graph + weights in one file).
//! * [`folder`]: a folder of class sub-folders of images as a training [`Dataset`](crate::train::Dataset).
//!
//! Every reader reports a malformed file as [`Error::Format`] naming the file, and an
//! unreadable one as [`Error::Io`]; none of them panics on bad input. Writers are atomic:
//! they write `<path>.tmp` and rename it over `path`.

pub mod checkpoint;
pub mod dataset;
pub mod exported;
pub mod folder;
pub mod idx;
pub mod image;
pub mod npy;
pub mod safetensors;

pub use self::checkpoint::{read_checkpoint, write_checkpoint, Checkpoint, Normalization};
pub use self::dataset::TrainingData;
pub use self::exported::{read_exported, write_exported};
pub use self::folder::ImageFolder;
pub use self::idx::{read_idx_images, read_idx_labels, FashionMnist, IdxImages};
pub use self::image::read_image;
pub use self::npy::{read_npy, write_npy};
pub use self::safetensors::{
    load_weights, num_classes_hint, read_safetensors, read_safetensors_metadata, write_safetensors,
};

use crate::error::{Error, Result};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Reads a whole file, mapping failures to [`Error::Io`] naming `path`.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// `path` with `.tmp` appended to its file name (`w.safetensors` → `w.safetensors.tmp`).
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(OsString::from)
        .unwrap_or_else(|| OsString::from("out"));
    name.push(".tmp");
    path.with_file_name(name)
}

/// Checks, before long work starts, that `path` can be written: its folder exists and a file
/// can be created there (a probe is created and removed); `path` itself must not be a folder.
pub fn check_writable(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    if path.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::other("is a directory, not a file to write"),
        ));
    }
    let mut probe = tmp_path(path).into_os_string();
    probe.push(".probe");
    let probe = PathBuf::from(probe);
    std::fs::File::create(&probe).map_err(|e| Error::io(path, e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Writes `bytes` to `path` atomically: into `<path>.tmp` first (flushed to disk), then
/// renamed over `path`, so that readers never see a half-written file. On failure the
/// temporary file is removed and the error names the path that failed.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let tmp = tmp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}
