//! The prelude every shader starts with: `shaders/prelude.wgsl` (folded workgroup ids, the
//! activation epilogue `act`) and the WGSL structs every kernel family shares, declared here
//! once with their Rust mirrors — [`ConvGeometry`] (the first member, `p.geom`, of every conv
//! and pool shader's `Params`) and [`Epilogue`] (bias and activation, `p.epi`, of every
//! shader that fuses one). [`wgsl`] is the text `gpu::declare` puts before each shader's
//! generated declarations; [`MIRRORS`] is what `tests/naga_validate.rs` checks them against.

use super::mirror::{ParamsLayout, WgslStruct};
use crate::ops::Activation;

/// The hand-written part of the prelude.
pub const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");

crate::gpu::mirror::wgsl_struct! {
    /// The geometry of a convolution or pooling window as a kernel sees it: the first
    /// member, `geom`, of every conv and pool shader's `Params`.
    pub struct ConvGeometry = "ConvGeometry" {
        /// Batch size.
        pub batch: u32,
        /// Input channels.
        pub c_in: u32,
        /// Input height.
        pub h: u32,
        /// Input width.
        pub w: u32,
        /// Output channels.
        pub c_out: u32,
        /// Output height.
        pub oh: u32,
        /// Output width.
        pub ow: u32,
        /// Kernel height.
        pub kh: u32,
        /// Kernel width.
        pub kw: u32,
        /// Stride (rows).
        pub sh: u32,
        /// Stride (columns).
        pub sw: u32,
        /// Padding (rows).
        pub ph: u32,
        /// Padding (columns).
        pub pw: u32,
        /// Dilation (rows).
        pub dh: u32,
        /// Dilation (columns).
        pub dw: u32,
        /// Groups.
        pub groups: u32,
    }
}

crate::gpu::mirror::wgsl_struct! {
    /// What a kernel applies to each output before it stores it: bias, then the activation
    /// `act` with its parameters (`act(x, p.epi)` in the prelude). The second member, `epi`,
    /// of every shader's `Params` that fuses one.
    pub struct Epilogue = "Epilogue" {
        /// The activation's code ([`Activation::code`]).
        pub act: u32,
        /// Its first parameter ([`Activation::params`]; LeakyReLU's and ELU's α).
        pub alpha: f32,
        /// Its second parameter (hard sigmoid's β).
        pub beta: f32,
        /// 1 when a bias is added.
        pub has_bias: u32,
    }
}

impl Epilogue {
    /// The epilogue applying `act`, after a bias when `has_bias`.
    pub fn new(act: Activation, has_bias: bool) -> Self {
        let [alpha, beta] = act.params();
        Self {
            act: act.code(),
            alpha,
            beta,
            has_bias: u32::from(has_bias),
        }
    }
}

/// The shared structs, for the reflection test.
pub const MIRRORS: [ParamsLayout; 2] = [
    ParamsLayout::of::<ConvGeometry>(),
    ParamsLayout::of::<Epilogue>(),
];

/// The prelude as every shader starts: [`PRELUDE`], then the shared structs.
pub fn wgsl() -> String {
    let mut s = String::from(PRELUDE);
    s.push_str("\n// ---- shared structs (gpu::prelude) ----\n");
    s.push_str(ConvGeometry::WGSL);
    s.push_str(Epilogue::WGSL);
    s
}
