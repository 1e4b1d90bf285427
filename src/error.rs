//! The one error type of gconv: every fallible public function returns [`Result`].
//!
//! Variants are grouped by where the problem was found; each names the layer, op,
//! tensor or file concerned so that a user can act on the message alone.

use std::path::PathBuf;

/// Everything that can go wrong in gconv.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- graph construction and shape inference -------------------------------
    /// A layer's shapes or hyper-parameters do not fit together.
    #[error("{layer}: {msg}")]
    Shape {
        /// Layer (node) name, torchvision style, e.g. `features.10`.
        layer: String,
        /// What is wrong, with the numbers involved.
        msg: String,
    },
    /// A tensor handed to an op has the wrong shape.
    #[error("{op}: expected {expected}, got shape {got:?}")]
    TensorShape {
        /// The op (or layer) that received the tensor.
        op: String,
        /// What was expected, in words.
        expected: String,
        /// The shape that was received.
        got: Vec<usize>,
    },

    // ---- model descriptions ----------------------------------------------------
    /// A model description (`models/*.toml`) could not be parsed or is inconsistent.
    #[error("model `{model}`: {msg}")]
    Model {
        /// Model name or file path.
        model: String,
        /// What is wrong.
        msg: String,
    },
    /// No model of that name is in the zoo.
    #[error(
        "unknown model `{0}` (run `gconv models` for the list, or pass a path to a .toml file)"
    )]
    UnknownModel(String),
    /// No grouping scheme of that name exists.
    #[error("unknown scheme `{0}` (built in: A, B, C, D, E; or pass a .toml file or a list like 1,1,8,8,8)")]
    UnknownScheme(String),

    // ---- weights and tensors in files -------------------------------------------
    /// A weights file does not match the model.
    #[error("weights: `{key}`: {msg}")]
    Weights {
        /// The state_dict key, e.g. `features.0.weight`.
        key: String,
        /// What is wrong (missing, extra, shape mismatch with both shapes, ...).
        msg: String,
    },
    /// A file could not be parsed (npy, safetensors, IDX, image ...).
    #[error("{path}: {msg}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// An ONNX model uses an operator or attribute gconv does not import, or is inconsistent
    /// at one node.
    #[error("{path}: node `{node}` ({op_type}, opset {opset}): {msg}")]
    Onnx {
        /// The .onnx file.
        path: PathBuf,
        /// The ONNX node's name (or its first output's when it has none).
        node: String,
        /// The ONNX op type, e.g. `Conv`, with its domain when not the default one.
        op_type: String,
        /// The model's default-domain opset.
        opset: i64,
        /// What is wrong, and what gconv supports instead.
        msg: String,
    },
    /// An I/O error, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    // ---- devices -------------------------------------------------------------------
    /// No GPU adapter could be found.
    #[error("no GPU adapter found ({0}); on Debian install lavapipe with `apt-get install -y mesa-vulkan-drivers libvulkan1`")]
    NoAdapter(String),
    /// A tensor or dispatch exceeds what the adapter allows.
    #[error("{layer}: tensor `{tensor}` needs {needed} but the adapter's {limit_name} is {limit}")]
    AdapterLimit {
        /// Layer (node) name.
        layer: String,
        /// Which tensor.
        tensor: String,
        /// What was needed (bytes, workgroups...).
        needed: u64,
        /// The name of the wgpu limit.
        limit_name: &'static str,
        /// Its value on this adapter.
        limit: u64,
    },
    /// Any other GPU failure (validation error, map failure).
    #[error("gpu: {0}")]
    Gpu(String),
    /// The GPU device was lost (driver reset, `destroy`, removal), naming the adapter and
    /// the reason. A `Runtime`'s models recreate it on their next run.
    #[error("gpu: {0}")]
    DeviceLost(String),

    // ---- anything else ----------------------------------------------------------------
    /// An argument is out of its range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// `Result` with gconv's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Shape`].
    pub fn shape(layer: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Shape {
            layer: layer.into(),
            msg: msg.into(),
        }
    }

    /// Shorthand for [`Error::TensorShape`].
    pub fn tensor_shape(op: impl Into<String>, expected: impl Into<String>, got: &[usize]) -> Self {
        Error::TensorShape {
            op: op.into(),
            expected: expected.into(),
            got: got.to_vec(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`Error::Format`].
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
