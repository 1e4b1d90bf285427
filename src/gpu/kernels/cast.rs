//! Launcher for `shaders/cast.wgsl`: the host's f32 values made the pass's activation type
//! on the device. An f16 pass uploads its input as f32 and its first call, `from_f32`'s
//! half-activation twin, rounds it to halves ([`crate::gpu::lower::Lowering::input_from_f32`])
//! instead of a per-value loop on the host (README, "f16": the upload stage of a batch-32
//! 224² pass on lavapipe).

use super::{check_arg, check_dims, per_element, Call};
use crate::error::Result;
use crate::gpu::context::GpuContext;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `cast.wgsl`.
    pub struct CastParams = "Params" {
        /// Number of values.
        pub len: u32,
        /// Padding.
        pub _pad0: u32,
        /// Padding.
        pub _pad1: u32,
        /// Padding.
        pub _pad2: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/cast.wgsl`.
    pub static SHADER = "cast" {
        params: CastParams,
        trusted: false,
        /// Arguments of `from_f32`.
        args: CastArgs {
            /// `len` f32 values (written by the host).
            x: read array<f32>,
            /// `len` values of the pass's activation type.
            out: write array<act_t>,
        }
    }
}

/// `out = x` for `len` values, `x` f32 whatever the pass stores (halves in the
/// half-activation twin). The caller checks the values fit f16
/// ([`crate::gpu::precision::check_f16_range`]).
pub fn from_f32(ctx: &GpuContext, label: &str, len: usize, args: CastArgs) -> Result<Call> {
    check_dims(label, &[("len", len)])?;
    check_arg(ctx, label, "x", &args.x, len as u64)?;
    check_arg(ctx, label, "out", &args.out, len as u64)?;
    let params = CastParams {
        len: len as u32,
        ..CastParams::default()
    };
    per_element(
        ctx,
        label,
        (&SHADER, "from_f32"),
        &params,
        args.into_vec(),
        len,
    )
}
