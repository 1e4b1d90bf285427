//! PyTorch `state_dict`s in safetensors files (`safetensors.torch.save_file`).
//!
//! Everything is read as `f32` (`F32`, `F16`, `BF16` and `F64` are converted; other
//! dtypes are an [`Error::Weights`] naming the key). `num_batches_tracked` buffers, which
//! torchvision's batch norms carry but inference never reads, are skipped.

//!
//! Hostile files are bounded: files over [`MAX_WEIGHTS_FILE_BYTES`] and special files are
//! refused before reading, the JSON header may hold at most
//! [`MAX_SAFETENSORS_HEADER_BYTES`], every tensor's shape passes
//! [`check_shape`], and all tensors together at most
//! [`MAX_TOTAL_WEIGHT_BYTES`] once converted to `f32`.

use crate::error::{Error, Result};
use crate::fs::{read_file, write_atomic};
use crate::graph::{Graph, Op};
use crate::limits::{
    check_shape, MAX_SAFETENSORS_HEADER_BYTES, MAX_TOTAL_WEIGHT_BYTES, MAX_WEIGHTS_FILE_BYTES,
};
use crate::tensor::Tensor;
use crate::weights::Weights;
use ::safetensors::tensor::TensorView;
use ::safetensors::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Suffix of the batch-norm step counters that are skipped when reading.
const SKIPPED_SUFFIX: &str = "num_batches_tracked";

/// Reads every tensor of a safetensors file as `f32`, keyed as in the file.
///
/// Keys ending in `num_batches_tracked` are skipped. `F32`, `F16`, `BF16` and `F64` tensors
/// are converted to `f32`; any other dtype is an [`Error::Weights`] naming the key. A
/// truncated or corrupt file is an [`Error::Format`] naming `path`, as is a file over the
/// caps of [`crate::limits`] (see the [module documentation](self)).
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<Weights> {
    let path = path.as_ref();
    let bytes = read_file(path, MAX_WEIGHTS_FILE_BYTES)?;
    safetensors_from_bytes(&bytes, path)
}

/// Checks the header length a safetensors file states against
/// [`MAX_SAFETENSORS_HEADER_BYTES`].
fn check_header_len(bytes: &[u8], origin: &Path) -> Result<()> {
    if let Some(n) = bytes.get(..8) {
        let n = u64::from_le_bytes(n.try_into().expect("8 bytes"));
        MAX_SAFETENSORS_HEADER_BYTES
            .check("header length", n)
            .map_err(|m| Error::format(origin, format!("not a valid safetensors file: {m}")))?;
    }
    Ok(())
}

/// A safetensors error as gconv's, naming `origin`.
fn corrupt(origin: &Path, e: ::safetensors::SafeTensorError) -> Error {
    Error::format(
        origin,
        format!("not a valid safetensors file (truncated or corrupt?): {e}"),
    )
}

/// Parses the header of a safetensors file held in memory.
fn parse<'a>(bytes: &'a [u8], origin: &Path) -> Result<SafeTensors<'a>> {
    check_header_len(bytes, origin)?;
    SafeTensors::deserialize(bytes).map_err(|e| corrupt(origin, e))
}

/// Reads the tensors of a safetensors file held in memory, as [`read_safetensors`] does;
/// `origin` names the bytes in errors.
pub fn safetensors_from_bytes(bytes: &[u8], origin: impl AsRef<Path>) -> Result<Weights> {
    let origin = origin.as_ref();
    let st = parse(bytes, origin)?;
    let tensors: Vec<(&str, TensorView<'_>)> = st
        .iter()
        .filter(|(key, _)| !key.ends_with(SKIPPED_SUFFIX))
        .collect();
    // Every claim checked before anything is converted.
    let mut total = 0u64;
    for (key, view) in &tensors {
        let n = check_shape(view.shape()).map_err(|msg| Error::Weights {
            key: key.to_string(),
            msg: format!("{}: {msg}", origin.display()),
        })?;
        total = total.saturating_add(4 * n as u64);
    }
    MAX_TOTAL_WEIGHT_BYTES
        .check("tensors as f32", total)
        .map_err(|m| Error::format(origin, m))?;
    let mut w = Weights::new();
    for (key, view) in tensors {
        let data = to_f32(key, &view)?;
        let t = Tensor::new(view.shape().to_vec(), data).map_err(|e| Error::Weights {
            key: key.to_string(),
            msg: e.to_string(),
        })?;
        w.insert(key, t);
    }
    Ok(w)
}

/// The `__metadata__` string map of a safetensors file (empty when it has none).
pub fn read_safetensors_metadata(path: impl AsRef<Path>) -> Result<BTreeMap<String, String>> {
    let path = path.as_ref();
    let bytes = read_file(path, MAX_WEIGHTS_FILE_BYTES)?;
    metadata_from_bytes(&bytes, path)
}

/// The `__metadata__` map of a safetensors file held in memory, as
/// [`read_safetensors_metadata`] reads it; `origin` names the bytes in errors.
pub fn metadata_from_bytes(
    bytes: &[u8],
    origin: impl AsRef<Path>,
) -> Result<BTreeMap<String, String>> {
    let origin = origin.as_ref();
    check_header_len(bytes, origin)?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(origin, e))?;
    Ok(meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect())
}

/// Converts one tensor's little-endian bytes to `f32`.
fn to_f32(key: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let b = view.data();
    let v = match view.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_le_bytes(a) as f32
            })
            .collect(),
        other => {
            return Err(Error::Weights {
                key: key.to_string(),
                msg: format!("dtype {other:?} is not supported (F32, F16, BF16, F64 are)"),
            })
        }
    };
    Ok(v)
}

/// Reads a safetensors file and checks it against `graph` with [`Weights::validate`]:
/// a missing, extra or mis-shaped key is an [`Error::Weights`] naming the key (and, for a
/// shape mismatch, both shapes).
pub fn load_weights(path: impl AsRef<Path>, graph: &Graph) -> Result<Weights> {
    let w = read_safetensors(path)?;
    w.validate(graph)?;
    Ok(w)
}

/// An `f32` tensor serialised for [`::safetensors::serialize`].
struct F32View {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for F32View {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Writes `weights` as an `f32` safetensors file with the given `__metadata__` entries
/// (none if `metadata` is empty), atomically: `<path>.tmp` first, then a rename. The file
/// loads in PyTorch with `safetensors.torch.load_file`.
pub fn write_safetensors(
    path: impl AsRef<Path>,
    weights: &Weights,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let views: Vec<(String, F32View)> = weights
        .iter()
        .map(|(k, t)| {
            let bytes = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
            let view = F32View {
                shape: t.shape().to_vec(),
                bytes,
            };
            (k.clone(), view)
        })
        .collect();
    let meta: Option<HashMap<String, String>> = (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    let bytes = ::safetensors::serialize(views, meta)
        .map_err(|e| Error::format(path, format!("cannot serialise weights: {e}")))?;
    write_atomic(path, &bytes)
}

/// The number of classes the weights were trained for: the row count of
/// `<last linear>.weight`, where the last linear is the last [`Op::Linear`] node of
/// `graph`. `None` if the graph has no linear layer or the weights lack a 2-D tensor
/// under that key.
///
/// Use it to rebuild a model whose `num_classes` follows the weights before calling
/// [`load_weights`].
pub fn num_classes_hint(weights: &Weights, graph: &Graph) -> Option<usize> {
    let last = graph
        .nodes
        .iter()
        .rev()
        .find(|n| matches!(n.op, Op::Linear(crate::ops::Linear { .. })))?;
    match weights.get(&format!("{}.weight", last.name))?.shape() {
        [rows, _] => Some(*rows),
        _ => None,
    }
}
