//! What the importer knows about an ONNX value: a constant (initializers, `Constant` nodes,
//! folded shape computations — integers may stand for the symbolic batch size), or an
//! activation computed at run time by a gconv node, possibly seen through a channel-factored
//! view (the 5-D tensor between the Reshape and the Transpose of a channel shuffle).

use super::proto::{tensor_proto::DataType, AttributeProto, NodeProto, TensorProto};
use crate::graph::NodeId;
use crate::limits;

/// An integer of a constant: known, or the batch size (unknown until run time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Int {
    /// A known value.
    K(i64),
    /// The batch size.
    Batch,
}

/// The elements of a constant.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Data {
    /// Floating point (f16, bf16 and f64 are converted).
    F32(Vec<f32>),
    /// Integers and booleans.
    Int(Vec<Int>),
}

impl Data {
    pub(crate) fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::Int(v) => v.len(),
        }
    }

    /// The elements at `idx`, in order.
    pub(crate) fn pick(&self, idx: &[usize]) -> Data {
        match self {
            Data::F32(v) => Data::F32(idx.iter().map(|&i| v[i]).collect()),
            Data::Int(v) => Data::Int(idx.iter().map(|&i| v[i]).collect()),
        }
    }
}

/// A tensor known at import time.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Const {
    /// Dimensions (`[]` for a scalar).
    pub dims: Vec<usize>,
    /// Row-major elements, `Π dims` of them.
    pub data: Data,
}

impl Const {
    pub(crate) fn new(dims: Vec<usize>, data: Data) -> Self {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        Self { dims, data }
    }

    /// A 1-D integer constant.
    pub(crate) fn ints(v: Vec<Int>) -> Self {
        Self::new(vec![v.len()], Data::Int(v))
    }

    /// The known integers, or a message naming what is not one.
    pub(crate) fn known_ints(&self) -> Result<Vec<i64>, String> {
        match &self.data {
            Data::Int(v) => v
                .iter()
                .map(|i| match i {
                    Int::K(k) => Ok(*k),
                    Int::Batch => Err("a value depending on the batch size".to_string()),
                })
                .collect(),
            Data::F32(_) => Err("floating-point values where integers are expected".into()),
        }
    }

    /// The values as f32 (integers converted), or a message when one is the batch size.
    pub(crate) fn floats(&self) -> Result<Vec<f32>, String> {
        match &self.data {
            Data::F32(v) => Ok(v.clone()),
            Data::Int(_) => Ok(self.known_ints()?.iter().map(|&i| i as f32).collect()),
        }
    }
}

/// A channel-factored view of a `[C, H, W]` activation: per-sample shape `dims ++ [H, W]`
/// with `Π dims = C`; element `(i₁, …, i_k, y, x)` is channel `src[flat(i)]` of the node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct View {
    pub dims: Vec<usize>,
    pub hw: [usize; 2],
    pub src: Vec<usize>,
}

/// A value computed at run time: a gconv node's output, or a view of it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Act {
    pub node: NodeId,
    pub view: Option<View>,
}

/// What the importer knows about an ONNX value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Const(Const),
    Act(Act),
}

/// Decodes a tensor's elements (raw little-endian bytes or the typed fields).
pub(crate) fn decode_tensor(t: &TensorProto) -> Result<Const, String> {
    let name = t.name();
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        return Err(format!(
            "tensor `{name}` keeps its data in an external file; save the model with \
             `onnx.save(model, path, save_as_external_data=False)`"
        ));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("tensor `{name}` has dimension {d}")))
        .collect::<Result<Vec<_>, _>>()?;
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= limits::MAX_TENSOR_ELEMENTS.as_usize())
        .ok_or_else(|| format!("tensor `{name}` {dims:?} is too large"))?;
    let raw: &[u8] = t.raw_data.as_deref().unwrap_or(&[]);
    let dt = DataType::try_from(t.data_type.unwrap_or(0)).unwrap_or(DataType::Undefined);
    let width = match dt {
        DataType::Float | DataType::Int32 | DataType::Uint32 => 4,
        DataType::Double | DataType::Int64 | DataType::Uint64 => 8,
        DataType::Float16 | DataType::Bfloat16 | DataType::Int16 | DataType::Uint16 => 2,
        DataType::Int8 | DataType::Uint8 | DataType::Bool => 1,
        _ => {
            return Err(format!(
                "tensor `{name}` has unsupported element type {dt:?}"
            ))
        }
    };
    let ints = |v: Vec<i64>| Data::Int(v.into_iter().map(Int::K).collect());
    let data = if !raw.is_empty() {
        if raw.len() != n * width {
            return Err(format!(
                "tensor `{name}` {dims:?} of {dt:?} has {} bytes of data, needs {}",
                raw.len(),
                n * width
            ));
        }
        let le = |c: &[u8]| -> [u8; 8] {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            b
        };
        let chunks = raw.chunks_exact(width);
        match dt {
            DataType::Float => Data::F32(
                chunks
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            DataType::Double => {
                Data::F32(chunks.map(|c| f64::from_le_bytes(le(c)) as f32).collect())
            }
            DataType::Float16 => Data::F32(
                chunks
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            DataType::Bfloat16 => Data::F32(
                chunks
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            DataType::Int64 | DataType::Uint64 => {
                ints(chunks.map(|c| i64::from_le_bytes(le(c))).collect())
            }
            DataType::Int32 => ints(
                chunks
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect(),
            ),
            DataType::Uint32 => ints(
                chunks
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect(),
            ),
            DataType::Int16 => ints(
                chunks
                    .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
                    .collect(),
            ),
            DataType::Uint16 => ints(
                chunks
                    .map(|c| u16::from_le_bytes([c[0], c[1]]) as i64)
                    .collect(),
            ),
            DataType::Int8 => ints(chunks.map(|c| c[0] as i8 as i64).collect()),
            _ => ints(chunks.map(|c| c[0] as i64).collect()),
        }
    } else {
        let data = match dt {
            DataType::Float => Data::F32(t.float_data.clone()),
            DataType::Double => Data::F32(t.double_data.iter().map(|&v| v as f32).collect()),
            DataType::Float16 => Data::F32(
                t.int32_data
                    .iter()
                    .map(|&v| half::f16::from_bits(v as u16).to_f32())
                    .collect(),
            ),
            DataType::Bfloat16 => Data::F32(
                t.int32_data
                    .iter()
                    .map(|&v| half::bf16::from_bits(v as u16).to_f32())
                    .collect(),
            ),
            DataType::Int64 => ints(t.int64_data.clone()),
            DataType::Uint64 | DataType::Uint32 => {
                ints(t.uint64_data.iter().map(|&v| v as i64).collect())
            }
            _ => ints(t.int32_data.iter().map(|&v| v as i64).collect()),
        };
        if data.len() != n {
            return Err(format!(
                "tensor `{name}` {dims:?} has {} values, needs {n}",
                data.len()
            ));
        }
        data
    };
    Ok(Const::new(dims, data))
}

/// A node's attribute by name.
pub(crate) fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name() == name)
}

/// An integer attribute, or `default`.
pub(crate) fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).and_then(|a| a.i).unwrap_or(default)
}

/// A float attribute, or `default`.
pub(crate) fn attr_f(n: &NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).and_then(|a| a.f).unwrap_or(default)
}

/// An integer-list attribute, if present.
pub(crate) fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

/// A string attribute, if present.
pub(crate) fn attr_s(n: &NodeProto, name: &str) -> Option<String> {
    attr(n, name).and_then(|a| {
        a.s.as_ref()
            .map(|s| String::from_utf8_lossy(s).into_owned())
    })
}
