//! [`Precision`]: how a loaded model stores its weights on the GPU.
//!
//! `F16` stores the weights of every layer whose kernel can read halves — today the
//! discrete tier's implicit GEMM, `conv_igemm` ([`crate::gpu::kernels::conv_igemm`]), and its
//! GEMV, `gemv_wide` ([`crate::gpu::kernels::gemv_wide`]) — as f16, rounded to nearest at
//! load: half the weight bytes read, arithmetic and activations still f32 (WGSL's core
//! `unpack2x16float`, so every adapter runs it, `SHADER_F16` or not). A fully connected layer
//! stores halves when its batch-1 kernel reads them, and then runs with such a kernel at every
//! batch. Layers whose kernel cannot, and every layer on the CPU-class lists, stay f32; a
//! model says how many of its layers store halves ([`crate::gpu::GpuModel::f16_convs`],
//! [`crate::gpu::GpuModel::f16_linears`]).
//! Outputs then differ from the f32 CPU reference by f16's weight rounding
//! ([`crate::testing::Tolerance::F16_OP`], `F16_MODEL`).

use crate::error::{Error, Result};

/// The weights' storage precision of a GPU model.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats (the reference).
    #[default]
    F32,
    /// 16-bit floats where the layer's kernel reads them, f32 arithmetic.
    F16,
}

impl Precision {
    /// `"f32"` or `"f16"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Precision::F32),
            "f16" | "fp16" | "half" => Ok(Precision::F16),
            _ => Err(Error::InvalidArgument(format!(
                "precision `{s}`: expected f32 or f16"
            ))),
        }
    }
}

/// `values` as halves rounded to nearest, two per word (`pack2x16float`'s order: the first in
/// the low 16 bits; an odd last value is paired with 0). A finite value beyond f16's range
/// (±65504) is an error naming `what` and the value's index, rather than an infinity in a
/// later output.
pub fn pack_halves(values: &[f32], what: &str) -> Result<Vec<u32>> {
    let max = f32::from(half::f16::MAX);
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| v.is_finite() && v.abs() > max)
    {
        return Err(Error::InvalidArgument(format!(
            "{what}: value {i} is {v}, beyond f16's range (±65504); run this model in f32"
        )));
    }
    let bits = |v: f32| u32::from(half::f16::from_f32(v).to_bits());
    Ok(values
        .chunks(2)
        .map(|p| bits(p[0]) | (p.get(1).map_or(0, |&v| bits(v)) << 16))
        .collect())
}
