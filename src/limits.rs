//! Caps on what gconv believes a file: every size read from a file is checked against one of
//! these before anything is allocated for it, with checked arithmetic.
//!
//! gconv reads files from strangers (weights, exported models, `.npy` inputs, images, IDX
//! data sets, model descriptions); a file that claims more than a cap is an
//! [`Error::Format`](crate::Error::Format) naming the file, the cap and its value, e.g.
//!
//! ```text
//! x.npy: not a supported .npy file: shape [65536, 65536] has 4294967296 elements, more than
//! gconv::limits::MAX_TENSOR_ELEMENTS = 268435456 elements
//! ```
//!
//! The caps are generous for the models gconv runs (VGG-19's largest tensor has 103 M
//! elements, its whole f32 `state_dict` 548 MB) and small enough that no file can make the
//! host process allocate more than a few GB. Each is a [`Limit`]: a name, a value and a unit.

use std::fmt;

/// A named cap. Its [`Display`](fmt::Display) form, `gconv::limits::NAME = value unit`, is
/// what errors quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The constant's name in this module, e.g. `MAX_TENSOR_ELEMENTS`.
    pub name: &'static str,
    /// The cap itself (inclusive: `value` is allowed).
    pub value: u64,
    /// What is counted (`elements`, `bytes`, `levels`, ...).
    pub unit: &'static str,
}

impl Limit {
    /// The value as a `usize` (saturating on 32-bit targets).
    pub const fn as_usize(self) -> usize {
        if self.value > usize::MAX as u64 {
            usize::MAX
        } else {
            self.value as usize
        }
    }

    /// `Ok` when `got ≤ value`; otherwise the message `"{what} ({got} {unit}) exceeds
    /// gconv::limits::NAME = value unit"`.
    pub fn check(self, what: &str, got: u64) -> Result<(), String> {
        if got <= self.value {
            Ok(())
        } else {
            Err(self.exceeded(what, got))
        }
    }

    /// The message for `got` exceeding this cap.
    pub fn exceeded(self, what: &str, got: impl fmt::Display) -> String {
        format!("{what} ({got}{}) exceeds {self}", self.suffix())
    }

    /// ` unit`, or nothing for a plain number.
    fn suffix(self) -> String {
        if self.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", self.unit)
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gconv::limits::{} = {}{}",
            self.name,
            self.value,
            self.suffix()
        )
    }
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Declares each cap as a `pub const` [`Limit`] whose `name` is the constant's own name.
macro_rules! limits {
    ($($(#[$doc:meta])* $name:ident = $value:expr, $unit:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $name: Limit = Limit {
                name: stringify!($name),
                value: $value,
                unit: $unit,
            };
        )*
    };
}

limits! {
    /// Most elements of any one tensor read from a file (2²⁸, 1 GiB as `f32`).
    MAX_TENSOR_ELEMENTS = 1 << 28, "elements";

    /// Most dimensions of a tensor read from a file (numpy's own maximum).
    MAX_TENSOR_DIMS = 64, "dimensions";

    /// Most bytes of all the tensors of a weights file once converted to `f32`.
    MAX_TOTAL_WEIGHT_BYTES = 4 * GIB, "bytes";

    /// Largest safetensors file (weights, checkpoints, exported models) that is read.
    MAX_WEIGHTS_FILE_BYTES = 4 * GIB, "bytes";

    /// Largest JSON header of a safetensors file (it holds an exported model's graph).
    MAX_SAFETENSORS_HEADER_BYTES = 16 * MIB, "bytes";

    /// Largest `.npy` header (numpy itself refuses headers over 10 000 bytes by default).
    MAX_NPY_HEADER_BYTES = 64 * KIB, "bytes";

    /// Largest `.npy` file: a header and [`MAX_TENSOR_ELEMENTS`] `f8` values.
    MAX_NPY_FILE_BYTES = MAX_TENSOR_ELEMENTS.value * 8 + MAX_NPY_HEADER_BYTES.value + 12, "bytes";

    /// Deepest nesting of brackets in a `.npy` header literal.
    MAX_NESTING_DEPTH = 32, "levels";

    /// Most pixels (width × height) of an image that is decoded (16.7 MP; a 4096² image).
    MAX_IMAGE_PIXELS = 1 << 24, "pixels";

    /// Most bytes the image decoder may allocate (passed to the `image` crate's `Limits`).
    MAX_IMAGE_DECODE_BYTES = 256 * MIB, "bytes";

    /// Largest image file that is read.
    MAX_IMAGE_FILE_BYTES = 128 * MIB, "bytes";

    /// Most data bytes of an IDX file, as its header claims them (Fashion-MNIST's training
    /// images are 47 MB), and so the most a gzip'd IDX file is ever inflated to.
    MAX_IDX_DATA_BYTES = GIB, "bytes";

    /// Largest IDX file (plain or gzip'd) that is read.
    MAX_IDX_FILE_BYTES = MAX_IDX_DATA_BYTES.value + 64, "bytes";

    /// Largest text file (model description or scheme TOML) that is read.
    MAX_TEXT_FILE_BYTES = MIB, "bytes";

    /// Largest compiled-pipeline cache file (`gpu::pipeline_cache`) that is read; a larger
    /// one is ignored with a notice.
    MAX_PIPELINE_CACHE_BYTES = 256 * MIB, "bytes";

    /// Largest tuning cache (`kernels.json`) that is read; one entry is ≈ 300 bytes.
    MAX_CACHE_FILE_BYTES = 64 * MIB, "bytes";
    /// Largest `gconv bench` report (`report.json`) that is read (`bench compare`, the
    /// desktop app); a full report with per-layer rows is ≈ 0.5 MB.
    MAX_REPORT_FILE_BYTES = 256 * MIB, "bytes";

    /// Most nodes of a graph read from an exported model.
    MAX_GRAPH_NODES = 100_000, "nodes";

    /// Largest integer (channel count, kernel size, padding, index ...) in an exported model's
    /// graph; it keeps every sum and product of two of them far from overflow.
    MAX_GRAPH_INTEGER = 1 << 24, "";

    /// Most parameter values of a model described by a TOML or ONNX file or built in code
    /// (checked as its graph is built): 2³⁰ values, 4 GiB as `f32`.
    MAX_TOTAL_PARAMS = 1 << 30, "values";

    /// Largest spatial plane (`H·W`) of an activation in a graph.
    MAX_PLANE = 1 << 28, "pixels";
}

/// Checks a tensor shape read from a file: at most [`MAX_TENSOR_DIMS`] dimensions and at
/// most [`MAX_TENSOR_ELEMENTS`] elements, where a zero dimension counts as 1 (so that no
/// product of some of the dimensions, in any order, can overflow later). Returns the number
/// of elements.
pub fn check_shape(shape: &[usize]) -> Result<usize, String> {
    MAX_TENSOR_DIMS.check(
        &format!("shape of {} dimensions", shape.len()),
        shape.len() as u64,
    )?;
    let extent = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul((d as u64).max(1)))
        .unwrap_or(u64::MAX);
    MAX_TENSOR_ELEMENTS.check(&format!("shape {shape:?}"), extent)?;
    // Cannot overflow: every partial product is at most `extent`.
    Ok(shape.iter().product())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_the_limit() {
        assert!(MAX_NESTING_DEPTH.check("depth", 32).is_ok());
        let m = MAX_NESTING_DEPTH.check("depth", 33).unwrap_err();
        assert_eq!(
            m,
            "depth (33 levels) exceeds gconv::limits::MAX_NESTING_DEPTH = 32 levels"
        );
        assert_eq!(MAX_TENSOR_ELEMENTS.as_usize(), 1 << 28);
    }

    #[test]
    fn shapes() {
        assert_eq!(check_shape(&[]), Ok(1));
        assert_eq!(check_shape(&[2, 0, 3]), Ok(0));
        assert_eq!(check_shape(&[1 << 14, 1 << 14]), Ok(1 << 28));
        let e = check_shape(&[1 << 14, (1 << 14) + 1]).unwrap_err();
        assert!(e.contains("MAX_TENSOR_ELEMENTS"), "{e}");
        // Zero-sized but absurd: refused, so that no partial product can overflow.
        assert!(check_shape(&[usize::MAX, usize::MAX, 0]).is_err());
        assert!(check_shape(&[1; 65])
            .unwrap_err()
            .contains("MAX_TENSOR_DIMS"));
    }
}
