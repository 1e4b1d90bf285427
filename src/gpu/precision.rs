//! [`Precision`]: how a loaded model stores its weights on the GPU.
//!
//! `F16` stores the weights of every layer whose kernel can read halves — today the
//! discrete tier's implicit GEMM, `conv_igemm` ([`crate::gpu::kernels::conv_igemm`]) — as
//! f16, rounded to nearest at load: half the weight bytes read, arithmetic and activations
//! still f32 (WGSL's core `unpack2x16float`, so every adapter runs it, `SHADER_F16` or not).
//! Layers whose kernel cannot, and every layer on the CPU-class lists, stay f32; a model says
//! how many of its convolutions store halves ([`crate::gpu::GpuModel::f16_convs`]).
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
