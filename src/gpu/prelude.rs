//! The prelude every shader starts with: `shaders/prelude.wgsl` (folded workgroup ids,
//! gradient accumulation), the WGSL structs every kernel family shares, declared here once
//! with their Rust mirrors — [`ConvGeometry`] (the first member, `p.geom`, of every conv and
//! pool shader's `Params`) and [`Epilogue`] (bias and activation, `p.epi`, of every shader
//! that fuses one) — and the activation functions generated from the table of
//! `ops::activation` ([`activations_wgsl`]: `act`, `act4`, `act_grad_x`, `act_grad_y`; the
//! cheap ones chosen at run time, any other compiled into a twin of the shader, `gpu::twin`).
//! [`wgsl`] is the text `gpu::declare` puts before each shader's generated declarations;
//! [`MIRRORS`] is what `tests/naga_validate.rs` checks them against.

use super::mirror::{Field, ParamsLayout, WgslStruct};
use crate::ops::{Activation, ActivationRow, WgslExpr};

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

/// The prelude as every shader starts: [`PRELUDE`], the shared structs, and the activations
/// chosen at run time ([`activations_wgsl`]`(None)`).
pub fn wgsl() -> String {
    wgsl_for(None)
}

/// The prelude of a shader whose fused activation is `specialised` (its code, at least
/// [`FIRST_SPECIALISED_CODE`]), or the run-time one.
pub fn wgsl_for(specialised: Option<u32>) -> String {
    let mut s = String::from(PRELUDE);
    s.push_str("\n// ---- shared structs (gpu::prelude) ----\n");
    s.push_str(ConvGeometry::WGSL);
    s.push_str(Epilogue::WGSL);
    s.push_str(&activations_wgsl(specialised));
    s
}

/// Codes below this (none, ReLU, ReLU6: a `select` or two each) are chosen at run time from
/// `e.act`, so every kernel's one pipeline serves them. Any other activation is compiled into
/// a twin of the shader (`gpu::twin`): a fused epilogue is inlined at every output a thread
/// stores (hundreds of sites in `conv_fast`), so a run-time switch over the whole table would
/// multiply the shader's size — and its compile time — by the table's length.
pub const FIRST_SPECIALISED_CODE: u32 = 3;

/// The `epi: Epilogue` member of a `Params` with these fields, if it has one.
pub fn epi_field(fields: &[Field]) -> Option<&Field> {
    fields
        .iter()
        .find(|f| f.name == "epi" && f.size == std::mem::size_of::<Epilogue>())
}

/// The activations compiled into twins, with their default parameters (the parameters are
/// read from `p.epi` at run time; only the code picks the twin).
pub fn specialised_activations() -> impl Iterator<Item = Activation> {
    Activation::ROWS
        .iter()
        .map(|r| r.default)
        .filter(|a| a.code() >= FIRST_SPECIALISED_CODE)
}

/// The WGSL of the activations, generated from [`Activation::ROWS`]: one function per row and
/// expression (`act_relu(x, a, b)`, `act_relu_dx(x, g, a, b)`, `act_relu_dy(y, g, a, b)`) of
/// the run-time rows and of the `specialised` one, and the dispatchers:
///
/// - `act(x, e)`, `act4(x, e)`: the epilogue (`e.alpha`, `e.beta` the parameters);
/// - `act_grad_x(x, g, e)`: `∂L/∂x` from the input and the upstream gradient `g`;
/// - `act_grad_y(y, g, e)`: the same from the output, for activations that have it (others
///   return `g`; the launcher never asks them).
///
/// Run time: a switch on `e.act` over the codes below [`FIRST_SPECIALISED_CODE`]; a twin: the
/// specialised row, whatever `e.act` says (the twin runs only calls with that code).
pub fn activations_wgsl(specialised: Option<u32>) -> String {
    let mut s = String::from("\n// ---- activations (generated from ops::activation) ----\n");
    let rows: Vec<&ActivationRow> = Activation::ROWS
        .iter()
        .filter(|r| match specialised {
            None => r.default.code() < FIRST_SPECIALISED_CODE,
            Some(c) => r.default.code() == c,
        })
        .collect();
    if specialised.is_some() {
        s.push_str(&crate::ops::activation_math_wgsl());
    }
    let func = |name: String, e: &WgslExpr| {
        let args: Vec<String> = e.args.iter().map(|a| format!("{a}: f32")).collect();
        format!(
            "fn {name}({}) -> f32 {{\n    return {};\n}}\n",
            args.join(", "),
            e.body
        )
    };
    for r in &rows {
        s.push_str(&func(format!("act_{}", r.kind), &r.y));
        s.push_str(&func(format!("act_{}_dx", r.kind), &r.dx));
        if let Some(dy) = &r.dy {
            s.push_str(&func(format!("act_{}_dy", r.kind), dy));
        }
    }
    let dispatch = |sig: &str, case: &dyn Fn(&ActivationRow) -> Option<String>, default: &str| {
        if specialised.is_some() {
            let body = rows.iter().find_map(|r| case(r));
            return format!(
                "{sig} {{\n    return {};\n}}\n",
                body.as_deref().unwrap_or(default)
            );
        }
        let mut f = format!("{sig} {{\n    switch e.act {{\n");
        for r in &rows {
            if let Some(body) = case(r) {
                let code = r.default.code();
                f.push_str(&format!("        case {code}u: {{ return {body}; }}\n"));
            }
        }
        f.push_str(&format!(
            "        default: {{ return {default}; }}\n    }}\n}}\n"
        ));
        f
    };
    let lane = |k: &str, l: &str| format!("act_{k}(x.{l}, e.alpha, e.beta)");
    s.push_str(&dispatch(
        "fn act(x: f32, e: Epilogue) -> f32",
        &|r| Some(format!("act_{}(x, e.alpha, e.beta)", r.kind)),
        "x",
    ));
    s.push_str(&dispatch(
        "fn act4(x: vec4<f32>, e: Epilogue) -> vec4<f32>",
        &|r| {
            let lanes: Vec<String> = ["x", "y", "z", "w"]
                .iter()
                .map(|l| lane(r.kind, l))
                .collect();
            Some(format!("vec4<f32>({})", lanes.join(", ")))
        },
        "x",
    ));
    s.push_str(&dispatch(
        "fn act_grad_x(x: f32, g: f32, e: Epilogue) -> f32",
        &|r| Some(format!("act_{}_dx(x, g, e.alpha, e.beta)", r.kind)),
        "g",
    ));
    s.push_str(&dispatch(
        "fn act_grad_y(y: f32, g: f32, e: Epilogue) -> f32",
        &|r| {
            r.dy.map(|_| format!("act_{}_dy(y, g, e.alpha, e.beta)", r.kind))
        },
        "g",
    ));
    s
}
