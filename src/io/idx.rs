//! IDX files, the format of MNIST and Fashion-MNIST, gzip'd or plain.
//!
//! An IDX file is a big-endian header — two zero bytes, a type code (`0x08` for unsigned
//! bytes), the number of dimensions — then one `u32` per dimension, then the data. Images
//! are 3-D (`n × rows × cols`, magic `0x00000803`), labels 1-D (`n`, magic `0x00000801`).
//! Gzip compression is detected from the content, not from the file name.
//!
//! Hostile files are bounded: the data size the header claims is checked (checked product)
//! against [`MAX_IDX_DATA_BYTES`] before anything is allocated, and a gzip stream is
//! inflated through a reader capped at that claimed size plus one byte, so a stream that
//! inflates to more (a decompression bomb) or less than the header says is an error, found
//! without inflating it whole. Files over [`MAX_IDX_FILE_BYTES`] and special files are
//! refused.

use crate::error::{Error, Result};
use crate::fs::read_file;
use crate::limits::{MAX_IDX_DATA_BYTES, MAX_IDX_FILE_BYTES};
use crate::tensor::Tensor;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Magic number of a 3-D unsigned-byte IDX file (images).
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of a 1-D unsigned-byte IDX file (labels).
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads `n` bytes or fewer (at the end of the stream) from `r`.
fn read_up_to(r: &mut impl Read, n: u64, buf: &mut Vec<u8>) -> std::io::Result<()> {
    r.take(n).read_to_end(buf).map(drop)
}

/// Decodes an IDX file's bytes (gzip'd or plain): checks the magic number and dimensions,
/// then reads exactly the data they imply. Returns the dimensions and the data.
fn decode(b: &[u8], path: &Path, magic: u32, what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    if b.starts_with(&[0x1f, 0x8b]) {
        let gz_err = |e: std::io::Error| {
            Error::format(path, format!("corrupt or truncated gzip stream: {e}"))
        };
        decode_stream(flate2::read::GzDecoder::new(b), path, magic, what, &gz_err)
    } else {
        decode_stream(b, path, magic, what, &|e| Error::io(path, e))
    }
}

/// [`decode`] on a stream (the inflater, or the plain bytes).
fn decode_stream(
    mut r: impl Read,
    path: &Path,
    magic: u32,
    what: &str,
    read_err: &dyn Fn(std::io::Error) -> Error,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let ndim = (magic & 0xff) as usize;
    let head = 4 + 4 * ndim;
    let mut b = Vec::with_capacity(head);
    read_up_to(&mut r, head as u64, &mut b).map_err(read_err)?;
    if b.len() < 4 {
        return Err(Error::format(
            path,
            format!("truncated IDX header ({} bytes)", b.len()),
        ));
    }
    let found = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if found != magic {
        return Err(Error::format(
            path,
            format!("bad IDX magic 0x{found:08x} (an IDX {what} file starts with 0x{magic:08x})"),
        ));
    }
    if b.len() < head {
        return Err(Error::format(
            path,
            format!("truncated IDX header ({} of {head} bytes)", b.len()),
        ));
    }
    let dims: Vec<u32> = b[4..head]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let need = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(u64::from(d)))
        .unwrap_or(u64::MAX);
    MAX_IDX_DATA_BYTES
        .check(
            &format!("data size claimed by IDX dimensions {dims:?}"),
            need,
        )
        .map_err(|m| Error::format(path, m))?;
    // Reserve no more than a sane chunk up front: a short stream claiming a lot costs
    // nothing; the vector grows as real data arrives, up to `need + 1` bytes.
    let mut data = Vec::new();
    data.try_reserve_exact(need.min(1 << 24) as usize + 1)
        .map_err(|_| Error::format(path, "out of memory for IDX data"))?;
    // One byte more than claimed, to tell "exactly" from "more" without reading on.
    read_up_to(&mut r, need + 1, &mut data).map_err(read_err)?;
    let got = data.len() as u64;
    if got != need {
        let what = if got < need {
            format!("truncated: the file has {got}")
        } else {
            "trailing bytes: the file has more".to_string()
        };
        return Err(Error::format(
            path,
            format!("{what}, but IDX dimensions {dims:?} need {need} bytes of data"),
        ));
    }
    Ok((dims.iter().map(|&d| d as usize).collect(), data))
}

/// Reads an IDX image file (gzip'd or plain): `(n, rows, cols, pixels)`, with `pixels`
/// holding `n·rows·cols` bytes, image after image, row-major.
///
/// A wrong magic number, a truncated file or trailing data is an [`Error::Format`] naming
/// `path`, as is a file over the caps of [`crate::limits`] (see the
/// [module documentation](self)).
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<(usize, usize, usize, Vec<u8>)> {
    let path = path.as_ref();
    idx_images_from_bytes(&read_file(path, MAX_IDX_FILE_BYTES)?, path)
}

/// Decodes the bytes of an IDX image file (gzip'd or plain), as [`read_idx_images`] does;
/// `origin` names the bytes in errors.
pub fn idx_images_from_bytes(
    bytes: &[u8],
    origin: impl AsRef<Path>,
) -> Result<(usize, usize, usize, Vec<u8>)> {
    let (dims, data) = decode(bytes, origin.as_ref(), IMAGES_MAGIC, "images")?;
    Ok((dims[0], dims[1], dims[2], data))
}

/// Reads an IDX label file (gzip'd or plain): one byte per example.
///
/// A wrong magic number, a truncated file or trailing data is an [`Error::Format`] naming
/// `path`, as is a file over the caps of [`crate::limits`].
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    idx_labels_from_bytes(&read_file(path, MAX_IDX_FILE_BYTES)?, path)
}

/// Decodes the bytes of an IDX label file (gzip'd or plain), as [`read_idx_labels`] does;
/// `origin` names the bytes in errors.
pub fn idx_labels_from_bytes(bytes: &[u8], origin: impl AsRef<Path>) -> Result<Vec<u8>> {
    let (_, data) = decode(bytes, origin.as_ref(), LABELS_MAGIC, "labels")?;
    Ok(data)
}

/// A set of 8-bit grey-scale images of equal size, as read from an IDX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub n: usize,
    /// Rows (height) of each image.
    pub rows: usize,
    /// Columns (width) of each image.
    pub cols: usize,
    /// `n·rows·cols` pixels, image after image, row-major.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// Reads an IDX image file; see [`read_idx_images`].
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let (n, rows, cols, pixels) = read_idx_images(path)?;
        Ok(Self {
            n,
            rows,
            cols,
            pixels,
        })
    }

    /// The pixels of image `i`, or `None` if `i >= n`.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let len = self.rows * self.cols;
        (i < self.n).then(|| &self.pixels[i * len..(i + 1) * len])
    }

    /// Images `range` as a `[len, 1, rows, cols]` tensor with values in `[0, 1]`
    /// (pixel / 255), or [`Error::InvalidArgument`] if the range is out of bounds.
    pub fn to_tensor(&self, range: std::ops::Range<usize>) -> Result<Tensor> {
        if range.start > range.end || range.end > self.n {
            return Err(Error::InvalidArgument(format!(
                "images {range:?} out of range (there are {})",
                self.n
            )));
        }
        let len = self.rows * self.cols;
        let data = self.pixels[range.start * len..range.end * len]
            .iter()
            .map(|&p| f32::from(p) / 255.0)
            .collect();
        Tensor::new(vec![range.len(), 1, self.rows, self.cols], data)
    }
}

/// The Fashion-MNIST data set (Xiao et al. 2017): 60 000 training and 10 000 test images
/// of 28×28 grey-scale clothes, in 10 classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FashionMnist {
    /// The 60 000 training images.
    pub train_images: IdxImages,
    /// Their labels, `0..10`.
    pub train_labels: Vec<u8>,
    /// The 10 000 test images.
    pub test_images: IdxImages,
    /// Their labels, `0..10`.
    pub test_labels: Vec<u8>,
}

impl FashionMnist {
    /// Where Debian's `dataset-fashion-mnist` package installs the files.
    pub const DEFAULT_DIR: &'static str = "/usr/share/datasets/fashion-mnist";

    /// The class names, indexed by label.
    pub const CLASSES: [&'static str; 10] = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ];

    /// The standard file names (each looked for with `.gz`, then without).
    const FILES: [&'static str; 4] = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ];

    /// Loads the four standard files (`train-images-idx3-ubyte.gz`,
    /// `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`,
    /// `t10k-labels-idx1-ubyte.gz`, or the same names uncompressed) from `dir`.
    ///
    /// A missing file is an [`Error::Io`] (kind `NotFound`) whose message says to run
    /// `apt-get install dataset-fashion-mnist`; malformed files, image and label counts
    /// that disagree, and labels ≥ 10 are [`Error::Format`] errors.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let [tri, trl, tei, tel] = Self::FILES.map(|f| find(dir, f));
        let (tri, trl, tei, tel) = (tri?, trl?, tei?, tel?);
        let train_images = IdxImages::read(&tri)?;
        let train_labels = read_idx_labels(&trl)?;
        let test_images = IdxImages::read(&tei)?;
        let test_labels = read_idx_labels(&tel)?;
        check_split(&tri, &trl, &train_images, &train_labels)?;
        check_split(&tei, &tel, &test_images, &test_labels)?;
        Ok(Self {
            train_images,
            train_labels,
            test_images,
            test_labels,
        })
    }

    /// Loads from [`FashionMnist::DEFAULT_DIR`].
    pub fn load_default() -> Result<Self> {
        Self::load(Self::DEFAULT_DIR)
    }
}

/// `dir/name.gz` or `dir/name`, or a `NotFound` error with the installation hint.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{name}.gz"));
    let plain = dir.join(name);
    if gz.is_file() {
        Ok(gz)
    } else if plain.is_file() {
        Ok(plain)
    } else {
        let msg = format!(
            "Fashion-MNIST file not found (nor `{name}` uncompressed) in {}; install the data \
             set with `apt-get install dataset-fashion-mnist` (it goes to {}) or pass the \
             directory that holds it",
            dir.display(),
            FashionMnist::DEFAULT_DIR
        );
        Err(Error::io(
            gz,
            std::io::Error::new(std::io::ErrorKind::NotFound, msg),
        ))
    }
}

/// Checks that images and labels agree in number and that every label is a class.
fn check_split(ipath: &Path, lpath: &Path, images: &IdxImages, labels: &[u8]) -> Result<()> {
    if images.n != labels.len() {
        return Err(Error::format(
            lpath,
            format!(
                "{} labels for {} images in {}",
                labels.len(),
                images.n,
                ipath.display()
            ),
        ));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= 10) {
        return Err(Error::format(
            lpath,
            format!("label {l} of example {i} is not a class (0..10)"),
        ));
    }
    Ok(())
}
