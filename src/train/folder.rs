//! Image-folder data sets: train on your own pictures (e.g. Kuzushiji characters).
//!
//! The layout is the one of torchvision's `ImageFolder` — one sub-folder per class, the
//! images of that class directly inside it:
//!
//! ```text
//! root/
//!   a/          → class 0
//!     001.png
//!     002.jpg
//!   b/          → class 1
//!     x.jpeg
//!     notes.txt (ignored: not a PNG/JPEG)
//! ```
//!
//! * Class folders are sorted by name (byte order) and numbered `0, 1, …`; at most 256
//!   classes, since labels are `u8`. Folders whose name starts with `.` (e.g.
//!   `.ipynb_checkpoints`) and plain files directly under `root` are ignored.
//! * Inside a class folder every file ending in `.png`, `.jpg` or `.jpeg` (any case) is
//!   an image, taken in file-name order; other files, sub-folders (no recursion) and
//!   hidden files (name starting with `.`, e.g. macOS's `._001.png`) are ignored. The format is then recognised from the content, as by [`read_image`].
//! * Every image is converted to 1 (luma) or 3 (RGB) channels and resized to `[h, w]`
//!   with a bilinear (triangle) filter when its size differs, exactly as [`read_image`]
//!   does for inference, with values in `[0, 1]` (pixel / 255 for 8-bit images).

use super::data::Dataset;
use crate::error::{Error, Result};
use crate::io::read_image;
use rayon::prelude::*;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Most classes an [`ImageFolder`] can hold (labels are `u8`).
pub const MAX_CLASSES: usize = 256;

/// An image-folder dataset: one sub-folder per class (sorted by name → class index 0, 1,
/// …), every PNG/JPEG inside (sorted by file name, non-recursive below the class folder;
/// other files ignored). See the [module documentation](self) for the layout.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageFolder {
    /// The class (sub-folder) names, indexed by label.
    pub classes: Vec<String>,
    /// The images, class after class, each class in file-name order.
    pub dataset: Dataset,
}

impl ImageFolder {
    /// Loads and converts every image to `channels` (1 = luma, 3 = RGB) and resizes it to
    /// `size` = `[h, w]` (bilinear / triangle filter) when it differs; pixels are scaled to
    /// `[0, 1]` like [`Dataset::from_u8`].
    ///
    /// Errors, none of which panics:
    /// * `channels` not 1 or 3, an empty or too large `size`: [`Error::InvalidArgument`];
    /// * `dir` missing or unreadable (or not a directory): [`Error::Io`] naming `dir` and
    ///   saying the layout expected;
    /// * no class folder, more than [`MAX_CLASSES`] of them, or a class folder without
    ///   images: [`Error::Format`] naming the folder;
    /// * an unreadable image: [`Error::Io`], a corrupt or unsupported one:
    ///   [`Error::Format`], both naming the file (when several are bad, any one of them may
    ///   be the one reported, since images are decoded in parallel).
    pub fn load(dir: &Path, channels: usize, size: [usize; 2]) -> Result<ImageFolder> {
        if channels != 1 && channels != 3 {
            return Err(Error::InvalidArgument(format!(
                "image folder {}: channels must be 1 (grey) or 3 (RGB), got {channels}",
                dir.display()
            )));
        }
        let [h, w] = size;
        if h == 0 || w == 0 {
            return Err(Error::InvalidArgument(format!(
                "image folder {}: image size {size:?} is empty",
                dir.display()
            )));
        }
        let too_large = || {
            Error::InvalidArgument(format!(
                "image folder {}: image size {size:?} with {channels} channels is too large",
                dir.display()
            ))
        };
        if u32::try_from(h).is_err() || u32::try_from(w).is_err() {
            return Err(too_large());
        }
        let sample = channels
            .checked_mul(h)
            .and_then(|v| v.checked_mul(w))
            .ok_or_else(too_large)?;

        let class_dirs = class_dirs(dir)?;
        let mut classes = Vec::with_capacity(class_dirs.len());
        let mut files: Vec<(PathBuf, u8)> = Vec::new();
        for (label, (name, path)) in class_dirs.into_iter().enumerate() {
            let label = u8::try_from(label).expect("at most MAX_CLASSES classes");
            let images = image_files(&path)?;
            if images.is_empty() {
                return Err(Error::format(
                    &path,
                    format!(
                        "class folder `{}` holds no images (expected *.png, *.jpg or *.jpeg \
                         files directly inside it)",
                        name.to_string_lossy()
                    ),
                ));
            }
            files.extend(images.into_iter().map(|f| (f, label)));
            classes.push(name.to_string_lossy().into_owned());
        }

        let n = files.len();
        let total = n.checked_mul(sample).ok_or_else(too_large)?;
        let mut images: Vec<f32> = Vec::new();
        images.try_reserve_exact(total).map_err(|_| {
            Error::InvalidArgument(format!(
                "image folder {}: {n} images of {size:?} × {channels} channels do not fit in \
                 memory ({total} values)",
                dir.display()
            ))
        })?;
        images.resize(total, 0.0);
        images
            .par_chunks_mut(sample)
            .zip(files.par_iter())
            .try_for_each(|(dst, (path, _))| {
                let t = read_image(path, channels, size)?;
                dst.copy_from_slice(t.data());
                Ok::<(), Error>(())
            })?;
        let labels = files.into_iter().map(|(_, l)| l).collect();
        let dataset = Dataset::new(images, labels, channels, h, w)?;
        Ok(ImageFolder { classes, dataset })
    }
}

/// The layout, for error messages.
const LAYOUT: &str = "expected a directory with one sub-folder per class, \
                      each holding that class's PNG/JPEG images";

/// The class folders of `dir`, sorted by name: `(name, path)`.
fn class_dirs(dir: &Path) -> Result<Vec<(OsString, PathBuf)>> {
    let wrap = |e: std::io::Error| {
        Error::io(
            dir,
            std::io::Error::new(
                e.kind(),
                format!("cannot read the image folder ({e}); {LAYOUT}"),
            ),
        )
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(wrap)? {
        let entry = entry.map_err(wrap)?;
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        // `Path::is_dir` follows symbolic links, so a linked class folder counts.
        if path.is_dir() {
            out.push((name, path));
        }
    }
    if out.is_empty() {
        return Err(Error::format(dir, format!("no class folders: {LAYOUT}")));
    }
    if out.len() > MAX_CLASSES {
        return Err(Error::format(
            dir,
            format!(
                "{} class folders, but at most {MAX_CLASSES} classes are supported (labels \
                 are u8)",
                out.len()
            ),
        ));
    }
    out.sort();
    Ok(out)
}

/// The non-hidden PNG/JPEG files (by extension) directly inside `dir`, sorted by file name.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let wrap = |e: std::io::Error| Error::io(dir, e);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(wrap)? {
        let entry = entry.map_err(wrap)?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()));
        if is_image && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}
