//! One launcher module per shader file: each declares its shader once with `shader!`
//! (bindings named and typed as in the WGSL, the uniform `Params` mirrored with
//! `wgsl_struct!`), checks its arguments (wrong sizes are errors naming the layer,
//! never panics), computes the grid and returns [`Call`]s. Geometry travels in small structs
//! (`ConvShape`, `PoolShape`, ...) rather than positional argument lists.
//!
//! Which kernel runs for a given problem is decided in [`crate::gpu::choice`], not here.

pub mod cast;
pub mod conv;
pub mod conv_backward;
pub mod conv_coop;
pub mod conv_dw;
pub mod conv_fast;
pub mod conv_grad_fast;
pub mod conv_igemm;
pub mod conv_tiled;
pub mod conv_wgmem;
pub mod elementwise;
pub mod flgc;
pub mod gather;
pub mod gemv;
pub mod gemv_wide;
pub mod linear;
pub mod linear_backward;
pub mod linear_coop;
pub mod loss;
pub mod norm;
pub mod norm_train;
pub mod optim;
pub mod pool;
pub mod roofline;
pub mod softmax;

pub use crate::gpu::launch::{
    check_arg, check_arg_min, check_dims, checked_len, element_grid, fold_workgroups, Arg, Call,
    Scratch,
};

use crate::gpu::declare::ShaderSpec;

/// Every shader gconv compiles, for the naga validation and reflection tests.
pub fn all_shaders() -> [&'static ShaderSpec; 33] {
    [
        &cast::SHADER,
        &conv::SHADER,
        &conv_backward::SHADER,
        &conv_coop::SHADER_16,
        &conv_coop::SHADER_8,
        &conv_coop::SOFT_16,
        &conv_coop::SOFT_8,
        &conv_dw::SHADER,
        &conv_fast::SHADER,
        &conv_grad_fast::SHADER,
        &conv_igemm::SHADER,
        &conv_igemm::SHADER_F16,
        &conv_tiled::SHADER,
        &conv_wgmem::SHADER,
        &elementwise::SHADER,
        &flgc::SHADER,
        &gather::SHADER,
        &gemv::SHADER,
        &gemv_wide::SHADER,
        &gemv_wide::SHADER_F16,
        &linear::SHADER,
        &linear_backward::SHADER,
        &linear_coop::SHADER_16,
        &linear_coop::SHADER_8,
        &linear_coop::SOFT_16,
        &linear_coop::SOFT_8,
        &loss::SHADER,
        &norm::SHADER,
        &norm_train::SHADER,
        &optim::SHADER,
        &pool::SHADER,
        &roofline::SHADER,
        &softmax::SHADER,
    ]
}

/// Invocations per workgroup of the simple element-wise kernels.
pub const WG: u32 = 64;

/// A call of `shader`'s entry point `entry` with one invocation per element of `len`, in
/// [`WG`]-wide workgroups (the shape of every element-wise kernel).
pub fn per_element<P: crate::gpu::mirror::WgslStruct>(
    ctx: &crate::gpu::GpuContext,
    label: &str,
    (shader, entry): (&'static ShaderSpec, &'static str),
    params: &P,
    args: Vec<Arg>,
    len: usize,
) -> crate::error::Result<Call> {
    let grid = element_grid(ctx, label, len, WG)?;
    Call::new(
        ctx,
        label,
        shader.entry(entry, &[("WG", WG)]),
        params,
        args,
        grid,
    )
}
