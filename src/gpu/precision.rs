//! [`Precision`]: how a loaded model stores its weights and activations on the GPU.
//!
//! `F16` stores the weights of every layer whose kernel can read halves — today the
//! discrete tier's implicit GEMM, `conv_igemm` ([`crate::gpu::kernels::conv_igemm`]), and its
//! GEMV, `gemv_wide` ([`crate::gpu::kernels::gemv_wide`]) — as f16, rounded to nearest at
//! load: half the weight bytes read (WGSL's core `unpack2x16float`, so every adapter runs it,
//! `SHADER_F16` or not). A fully connected layer stores halves when its batch-1 kernel reads
//! them, and then runs with such a kernel at every batch. Layers whose kernel cannot, and
//! every layer on the CPU-class lists, stay f32; a model says how many of its layers store
//! halves ([`crate::gpu::GpuModel::f16_convs`], [`crate::gpu::GpuModel::f16_linears`]).
//!
//! The **activations** are f16 too where the device has `SHADER_F16` and every kernel of the
//! pass stores them (its shader declares them `act_t`, the prelude's storage type, and runs
//! its half-activation twin, [`crate::gpu::twin::halve`]): the input is rounded to halves at
//! upload, every kernel converts to f32 as it loads, computes and accumulates in f32, and
//! rounds once as it stores; the output is read back as halves. All or none: a pass with one
//! f32-only kernel (the CPU-class lists, `conv_wgmem`, a fallback) keeps every activation
//! f32, and [`crate::gpu::GpuModel::activation_precision`] says why
//! (`GCONV_F16_ACTIVATIONS=off` keeps them f32 for A/B measurements). Activation buffers are
//! planned at 2 bytes a value. Inference only: training stays f32.
//!
//! Outputs then differ from the f32 CPU reference by f16's rounding
//! ([`crate::testing::Tolerance::F16_OP`], `F16_MODEL`); an activation beyond ±65504
//! becomes ±∞ as it would in any f16 runtime.

use super::context::GpuContext;
use super::program::Program;
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
    /// 16-bit floats where the layer's kernel reads them, accumulated in f32 (the
    /// cooperative-matrix kernels multiply halves; every other kernel computes in f32).
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

/// The first `n` halves of `bytes` (little-endian, two bytes each) as f32; fewer when
/// `bytes` is shorter.
pub fn unpack_halves(bytes: &[u8], n: usize) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .take(n)
        .map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32())
        .collect()
}

/// Why a pass `prog` of a model loaded with `precision` keeps its activations f32: f32 was
/// asked for (`None`), `GCONV_F16_ACTIVATIONS=off`, the device lacks `SHADER_F16`, or a call's
/// kernel reads f32 activations only. `None` when they can be halves.
pub fn f32_activation_reason(
    ctx: &GpuContext,
    precision: Precision,
    prog: &Program,
) -> Option<String> {
    if precision != Precision::F16 {
        return None;
    }
    if std::env::var("GCONV_F16_ACTIVATIONS").as_deref() == Ok("off") {
        return Some("GCONV_F16_ACTIVATIONS=off".into());
    }
    if !ctx.features.contains(wgpu::Features::SHADER_F16) {
        return Some(format!("{} has no SHADER_F16", ctx.info.name));
    }
    prog.first_f32_only_call()
        .map(|label| format!("`{label}` reads f32 activations only"))
}
