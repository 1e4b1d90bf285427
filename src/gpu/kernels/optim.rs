//! Launcher for `shaders/optim.wgsl`: SGD with momentum and weight decay, in place
//! (`train::Sgd::step`), the learning rate read from a small buffer rewritten each step.

use super::{check_arg, check_arg_min, check_dims, per_element, Call};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::optim::SgdConfig;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `optim.wgsl`.
    pub struct SgdParams = "Params" {
        /// Number of parameter values.
        pub len: u32,
        /// Momentum factor.
        pub momentum: f32,
        /// L2 weight decay (0 for parameters without decay).
        pub weight_decay: f32,
        /// Padding.
        pub _pad0: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/optim.wgsl`.
    pub static SHADER = "optim" {
        params: SgdParams,
        trusted: false,
        /// Arguments of `sgd`.
        args: SgdArgs {
            /// The gradient.
            grad: read array<f32>,
            /// `[lr]` (at least one value).
            hyper: read array<f32>,
            /// The parameter, updated in place.
            param: write array<f32>,
            /// The momentum buffer, updated in place.
            velocity: write array<f32>,
        }
    }
}

/// One SGD step over a parameter of `len` values; `decay` says whether weight decay applies.
pub fn sgd(
    ctx: &GpuContext,
    label: &str,
    (len, config, decay): (usize, &SgdConfig, bool),
    args: SgdArgs,
) -> Result<Call> {
    check_dims(label, &[("len", len)])?;
    let weight_decay = if decay { config.weight_decay } else { 0.0 };
    if !config.momentum.is_finite() || !weight_decay.is_finite() {
        return Err(Error::shape(
            label,
            format!(
                "momentum {} and weight decay {weight_decay} must be finite",
                config.momentum
            ),
        ));
    }
    for (name, a) in [
        ("param", &args.param),
        ("grad", &args.grad),
        ("velocity", &args.velocity),
    ] {
        check_arg(ctx, label, name, a, len as u64)?;
    }
    check_arg_min(ctx, label, "hyper", &args.hyper, 1)?;
    let params = SgdParams {
        len: len as u32,
        momentum: config.momentum,
        weight_decay,
        _pad0: 0,
    };
    per_element(ctx, label, (&SHADER, "sgd"), &params, args.into_vec(), len)
}
