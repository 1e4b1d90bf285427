//! `activations!`: from the table of activations in [`super`], the [`Activation`] enum and
//! everything per-activation about it — code, parameters, CPU value and derivatives, and the
//! [`ActivationRow`]s the shaders' prelude is generated from.
//!
//! A row reads
//!
//! ```text
//! /// docs
//! Name { alpha = 0.01 } = 3, "name", onnx "OnnxOp" {
//!     y(x, a, b) = <value at x>;
//!     dx(x, g, a, b) = <∂L/∂x from x and the upstream gradient g>;
//!     dy(y, g, a, b) = <the same from the output y>, if <when that is valid, from a, b>;
//! }
//! ```
//!
//! `a` and `b` are the parameters α, β (fields named `alpha` / `beta`; 0 when absent; the
//! defaults are ONNX's). Expressions are written in the syntax Rust and WGSL share, with the
//! functions of [`super::math`]. `dy` is optional: only activations whose derivative can be
//! computed from their output alone are fused into a producer in training (a fused
//! activation keeps only its output).

/// One activation as the shader generator reads it.
#[derive(Clone, Copy, Debug)]
pub struct ActivationRow {
    /// The activation with its default (ONNX) parameters.
    pub default: super::Activation,
    /// Its name in graphs and exported JSON (`leaky_relu`).
    pub kind: &'static str,
    /// The ONNX operator that is exactly this activation, if any.
    pub onnx: Option<&'static str>,
    /// Its parameter fields (`alpha`, `beta`), in slot order.
    pub fields: &'static [&'static str],
    /// WGSL: `y(x, a, b)`.
    pub y: WgslExpr,
    /// WGSL: `dx(x, g, a, b)`.
    pub dx: WgslExpr,
    /// WGSL: `dy(y, g, a, b)`, where the row has one.
    pub dy: Option<WgslExpr>,
}

/// A WGSL expression with the names of its arguments.
#[derive(Clone, Copy, Debug)]
pub struct WgslExpr {
    /// Argument names, in order.
    pub args: &'static [&'static str],
    /// The expression.
    pub body: &'static str,
}

/// The parameter slot of a field: `alpha` is α (slot 0), `beta` β (slot 1).
pub(super) const fn slot(field: &str) -> usize {
    match field.as_bytes() {
        b"beta" => 1,
        _ => 0,
    }
}

/// `[α, β]` from the fields present (0 for absent ones).
pub(super) fn pad(fields: &[(&str, f32)]) -> [f32; 2] {
    let mut p = [0.0; 2];
    for &(name, v) in fields {
        p[slot(name)] = v;
    }
    p
}

macro_rules! activations {
    (@opt) => { None };
    (@opt $v:expr) => { Some($v) };
    (@dy $vals:tt) => { None };
    (@dy ($y:ident, $g:ident, $pa:ident, $pb:ident) ($dy:ident, $dyg:ident, $dya:ident, $dyb:ident) $e:expr) => {{
        let ($dy, $dyg, $dya, $dyb) = ($y, $g, $pa, $pb);
        Some($e)
    }};
    (@when $vals:tt) => { false };
    (@when ($pa:ident, $pb:ident) ($a:ident, $b:ident) $e:expr) => {{
        let ($a, $b) = ($pa, $pb);
        $e
    }};
    ($(
        $(#[$doc:meta])*
        $name:ident $({ $( $(#[$fdoc:meta])* $field:ident = $default:literal ),+ })?
            = $code:literal, $kind:literal $(, onnx $onnx:literal)? {
            y($yx:ident, $ya:ident, $yb:ident) = $y:expr;
            dx($dx:ident, $dxg:ident, $dxa:ident, $dxb:ident) = $dxe:expr;
            $( dy($dy:ident, $dyg:ident, $dya:ident, $dyb:ident) = $dye:expr, if $when:expr; )?
        }
    )*) => {
        /// An element-wise activation: a graph op ([`Op::Activation`](crate::graph::Op)) and
        /// the epilogue GPU kernels fuse after a conv, BN, add or linear (`act(x, p.epi)` in
        /// the WGSL prelude). Generated, with its WGSL, from the table in
        /// `src/ops/activation/mod.rs`. Serialised flat, `{"op": "leaky_relu", "alpha": 0.1}`.
        #[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "op", deny_unknown_fields)]
        pub enum Activation {
            $(
                $(#[$doc])*
                #[serde(rename = $kind)]
                $name $({ $( $(#[$fdoc])* $field: f32 ),+ })?,
            )*
        }

        impl Activation {
            /// Every activation with its default (ONNX) parameters, in code order.
            pub const ROWS: &'static [$crate::ops::activation::ActivationRow] = &[$(
                $crate::ops::activation::ActivationRow {
                    default: Activation::$name $({ $($field: $default),+ })?,
                    kind: $kind,
                    onnx: $crate::ops::activation::table::activations!(@opt $($onnx)?),
                    fields: &[$($(stringify!($field)),+)?],
                    y: $crate::ops::activation::WgslExpr {
                        args: &[stringify!($yx), stringify!($ya), stringify!($yb)],
                        body: stringify!($y),
                    },
                    dx: $crate::ops::activation::WgslExpr {
                        args: &[stringify!($dx), stringify!($dxg), stringify!($dxa), stringify!($dxb)],
                        body: stringify!($dxe),
                    },
                    dy: $crate::ops::activation::table::activations!(@opt $($crate::ops::activation::WgslExpr {
                        args: &[stringify!($dy), stringify!($dyg), stringify!($dya), stringify!($dyb)],
                        body: stringify!($dye),
                    })?),
                },
            )*];

            /// The code the shaders' `act(x, e)` switches on (`Epilogue::act`).
            pub fn code(self) -> u32 {
                match self {
                    $( Activation::$name { .. } => $code, )*
                }
            }

            /// The name in graphs and exported JSON (`relu6`, `leaky_relu`).
            pub fn kind(self) -> &'static str {
                match self {
                    $( Activation::$name { .. } => $kind, )*
                }
            }

            /// The parameters `[α, β]` as the shaders' epilogue carries them (absent ones 0).
            pub fn params(self) -> [f32; 2] {
                match self {
                    $( Activation::$name $({ $($field),+ })? => {
                        $crate::ops::activation::table::pad(
                            &[$($((stringify!($field), $field)),+)?],
                        )
                    } )*
                }
            }

            /// The same activation with parameters `[α, β]` (those it has).
            pub fn with_params(self, p: [f32; 2]) -> Self {
                match self {
                    $( Activation::$name { .. } => Activation::$name $({ $(
                        $field: p[$crate::ops::activation::table::slot(stringify!($field))]
                    ),+ })?, )*
                }
            }

            /// The value at `x` (NaN stays NaN).
            #[allow(unused_variables)]
            pub fn apply(self, x: f32) -> f32 {
                #[allow(unused_imports)]
                use $crate::ops::activation::math::{consts::*, *};
                let [pa, pb] = self.params();
                match self {
                    $( Activation::$name { .. } => {
                        let ($yx, $ya, $yb) = (x, pa, pb);
                        $y
                    } )*
                }
            }

            /// `∂L/∂x` at input `x` from the upstream gradient `g` (PyTorch's backward,
            /// NaN handling included).
            #[allow(unused_variables)]
            pub fn grad_input(self, x: f32, g: f32) -> f32 {
                #[allow(unused_imports)]
                use $crate::ops::activation::math::{consts::*, *};
                let [pa, pb] = self.params();
                match self {
                    $( Activation::$name { .. } => {
                        let ($dx, $dxg, $dxa, $dxb) = (x, g, pa, pb);
                        $dxe
                    } )*
                }
            }

            /// `∂L/∂x` from the output `y` and `g`, where [`grad_from_output`](Self::grad_from_output).
            #[allow(unused_variables)]
            pub fn grad_output(self, y: f32, g: f32) -> Option<f32> {
                #[allow(unused_imports)]
                use $crate::ops::activation::math::{consts::*, *};
                if !self.grad_from_output() {
                    return None;
                }
                let [pa, pb] = self.params();
                match self {
                    $( Activation::$name { .. } => $crate::ops::activation::table::activations!(@dy (y, g, pa, pb)
                        $( ($dy, $dyg, $dya, $dyb) $dye )?), )*
                }
            }

            /// Whether the derivative can be computed from the output alone (so the
            /// activation can be fused into its producer in training).
            #[allow(unused_variables)]
            pub fn grad_from_output(self) -> bool {
                let [pa, pb] = self.params();
                match self {
                    $( Activation::$name { .. } => $crate::ops::activation::table::activations!(@when (pa, pb)
                        $( ($dya, $dyb) $when )?), )*
                }
            }
        }
    };
}
pub(super) use activations;
