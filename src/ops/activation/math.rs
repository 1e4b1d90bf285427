//! The scalar functions activations are written in, each written once in the syntax Rust and
//! WGSL share (`let`, `return`, arithmetic, comparisons, calls): `shared_fns!` compiles it as
//! Rust for the CPU reference and keeps its text as WGSL for the shaders' prelude ([`wgsl`]),
//! so the two sides evaluate the same formula. The Rust twins of WGSL builtins (`select`,
//! `exp`, `abs`) let the table's expressions read the same on both sides.
//!
//! NaN propagates through every function, as in PyTorch: comparisons are false for NaN, so a
//! `select(x, …, x < 0.0)` keeps a NaN `x`.

/// `t` where `cond`, else `f` — WGSL's `select(f, t, cond)`.
pub fn select(f: f32, t: f32, cond: bool) -> f32 {
    if cond {
        t
    } else {
        f
    }
}

/// `eˣ` (WGSL `exp`).
pub fn exp(x: f32) -> f32 {
    x.exp()
}

/// `|x|` (WGSL `abs`).
pub fn abs(x: f32) -> f32 {
    x.abs()
}

/// Named constants the expressions use, emitted as WGSL `const`s.
pub mod consts {
    /// `1/√2`.
    pub const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    /// `1/√(2π)` (the standard normal density at 0).
    pub const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    /// `√(2/π)` (GELU's tanh approximation).
    pub const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    /// GELU's tanh-approximation cubic coefficient.
    pub const GELU_KAPPA: f32 = 0.044_715;

    /// The constants by name, for the WGSL side.
    pub const ALL: [(&str, f32); 4] = [
        ("FRAC_1_SQRT_2", FRAC_1_SQRT_2),
        ("FRAC_1_SQRT_2PI", FRAC_1_SQRT_2PI),
        ("SQRT_2_OVER_PI", SQRT_2_OVER_PI),
        ("GELU_KAPPA", GELU_KAPPA),
    ];
}
use consts::*;

/// Declares functions of `f32`s once: as Rust functions, and as WGSL text for [`wgsl`].
macro_rules! shared_fns {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident),*) { $($body:tt)* } )*) => {
        $(
            $(#[$doc])*
            #[allow(clippy::needless_return)]
            pub fn $name($($arg: f32),*) -> f32 { $($body)* }
        )*

        /// The functions for the WGSL side: name, arguments, body.
        const FUNCTIONS: &[(&str, &[&str], &str)] = &[$(
            (stringify!($name), &[$(stringify!($arg)),*], stringify!($($body)*)),
        )*];
    };
}

shared_fns! {
    /// The error function: Abramowitz & Stegun 7.1.26 (absolute error below 1.5·10⁻⁷, the
    /// size of an f32 rounding), odd by construction.
    fn erf(x) {
        let t = 1.0 / (1.0 + 0.3275911 * abs(x));
        let poly = ((((1.0614054 * t - 1.4531521) * t + 1.4214138) * t - 0.28449672) * t
            + 0.2548296) * t;
        let y = 1.0 - poly * exp(-x * x);
        return select(-y, y, x >= 0.0);
    }

    /// `tanh` from `e^{−2|x|}`, which never overflows (some drivers' builtin `tanh` gives NaN
    /// for large |x|); absolute error about one f32 rounding.
    fn stable_tanh(x) {
        let e = exp(-2.0 * abs(x));
        let t = (1.0 - e) / (1.0 + e);
        return select(-t, t, x >= 0.0);
    }

    /// The logistic function `1 / (1 + e^{−x})`.
    fn sigmoid(x) {
        return 1.0 / (1.0 + exp(-x));
    }

    /// `max(0, min(1, α·x + β))`, NaN propagating.
    fn hard_sigmoid(x, alpha, beta) {
        let t = alpha * x + beta;
        return select(select(t, 1.0, t > 1.0), 0.0, t < 0.0);
    }

    /// The derivative of SiLU `x·σ(x)`: `σ(x)·(1 + x·(1 − σ(x)))` (PyTorch's `silu_backward`).
    fn silu_grad(x) {
        let s = sigmoid(x);
        return s * (1.0 + x * (1.0 - s));
    }

    /// GELU, the exact (erf) form: `x·Φ(x) = ½·x·(1 + erf(x/√2))`.
    fn gelu(x) {
        return 0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2));
    }

    /// The derivative of the erf GELU: `Φ(x) + x·φ(x)`.
    fn gelu_grad(x) {
        let cdf = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
        return cdf + x * FRAC_1_SQRT_2PI * exp(-0.5 * x * x);
    }

    /// GELU, the tanh approximation: `½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    fn gelu_tanh(x) {
        let inner = SQRT_2_OVER_PI * (x + GELU_KAPPA * x * x * x);
        return 0.5 * x * (1.0 + stable_tanh(inner));
    }

    /// The derivative of the tanh GELU (PyTorch's `gelu_backward`, `approximate='tanh'`).
    fn gelu_tanh_grad(x) {
        let x2 = x * x;
        let t = stable_tanh(SQRT_2_OVER_PI * (x + GELU_KAPPA * x2 * x));
        let dinner = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_KAPPA * x2);
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner;
    }
}

/// The constants and functions as WGSL: what the prelude puts before the activations.
pub fn wgsl() -> String {
    let mut s = String::new();
    for (name, v) in consts::ALL {
        s.push_str(&format!("const {name}: f32 = {v:?};\n"));
    }
    for (name, args, body) in FUNCTIONS {
        let args: Vec<String> = args.iter().map(|a| format!("{a}: f32")).collect();
        s.push_str(&format!("fn {name}({}) -> f32 {{\n", args.join(", ")));
        // `stringify!` breaks lines anywhere: one statement per line instead.
        let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
        for statement in body.split_inclusive("; ") {
            s.push_str(&format!("    {}\n", statement.trim_end()));
        }
        s.push_str("}\n");
    }
    s
}
