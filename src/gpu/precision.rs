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
//! its half-activation twin, [`crate::gpu::twin::halve`]): the input is uploaded as f32
//! (its range checked, [`check_f16_range`]) and rounded to halves by the pass's first
//! dispatch ([`crate::gpu::kernels::cast`]), every kernel converts to f32 as it loads,
//! computes and accumulates in f32, and rounds once as it stores; the output is read back
//! as halves. All or none: a pass with one f32-only kernel (the CPU-class lists,
//! `conv_wgmem`, a fallback) keeps every activation f32, and [`crate::gpu::GpuModel::activation_precision`] says why
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
    check_f16_range(values, what)?;
    let bits = |v: f32| u32::from(half::f16::from_f32(v).to_bits());
    Ok(values
        .chunks(2)
        .map(|p| bits(p[0]) | (p.get(1).map_or(0, |&v| bits(v)) << 16))
        .collect())
}

/// An error naming `what` and the first value when a finite value of `values` lies beyond
/// f16's range (±65504: it would round to ±∞); ±∞ and NaN pass as they are. Scans blocks
/// without branching (vectorised), so checking a batch's input costs about one read of it.
pub fn check_f16_range(values: &[f32], what: &str) -> Result<()> {
    let max = f32::from(half::f16::MAX);
    let beyond = |v: f32| v.abs() > max && v.abs() < f32::INFINITY;
    let block = values
        .chunks(1024)
        .position(|c| c.iter().fold(false, |any, &v| any | beyond(v)));
    let Some(b) = block else { return Ok(()) };
    let i = 1024 * b
        + values[1024 * b..]
            .iter()
            .position(|&v| beyond(v))
            .expect("the block has one");
    Err(Error::InvalidArgument(format!(
        "{what}: value {i} is {}, beyond f16's range (±65504); run this model in f32",
        values[i]
    )))
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

#[cfg(test)]
mod tests {
    use super::check_f16_range;

    /// The first finite value beyond ±65504 is the one named, wherever its block; ±∞, NaN
    /// and ±65504 itself pass.
    #[test]
    fn the_range_check_names_the_first_value_beyond() {
        let mut v = vec![0.5f32; 5000];
        v[10] = f32::INFINITY;
        v[11] = f32::NAN;
        v[12] = -65504.0;
        v[20] = f32::NEG_INFINITY;
        assert!(check_f16_range(&v, "x").is_ok());
        v[4000] = 1e6;
        v[1500] = -65520.0;
        let e = check_f16_range(&v, "the input").unwrap_err().to_string();
        assert!(e.contains("the input: value 1500 is -65520"), "{e}");
        assert!(check_f16_range(&v[1501..], "x")
            .unwrap_err()
            .to_string()
            .contains("value 2499 is 1000000"));
    }
}
