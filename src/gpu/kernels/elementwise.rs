//! Launcher for `shaders/elementwise.wgsl`: activations (every one of `ops::activation`'s
//! table) and their backward (from the output or from the input), residual add, gradient
//! copy / accumulation, element-wise product, inverted dropout, and the channel-broadcast
//! gate of squeeze-excitation blocks.

use super::{check_arg, check_arg_min, check_dims, element_grid, per_element, Arg, Call, WG};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::prelude::Epilogue;
use crate::ops::Activation;

crate::gpu::mirror::wgsl_struct! {
    /// Mirror of the WGSL `Params` of `elementwise.wgsl`.
    pub struct ElementwiseParams = "Params" {
        /// Bias and activation ([`Epilogue`]).
        pub epi: Epilogue,
        /// Number of elements.
        pub len: u32,
        /// 1: `out += ·`; 0: `out = ·`.
        pub accumulate: u32,
        /// Dropout: drop when the 24 hashed bits are below this (`p·2²⁴`).
        pub threshold: u32,
        /// Dropout: `1/(1−p)`, the mask value of a kept element.
        pub scale: f32,
        /// Plane size of `mul_channel`'s broadcast.
        pub hw: u32,
        /// Padding.
        pub _pad0: u32,
        /// Padding.
        pub _pad1: u32,
        /// Padding.
        pub _pad2: u32,
    }
}

crate::gpu::declare::shader! {
    /// `shaders/elementwise.wgsl`.
    pub static SHADER = "elementwise" {
        params: ElementwiseParams,
        trusted: false,
        /// Arguments of every entry point (unused ones are bound to `a`).
        args: ElementwiseArgs {
            /// First operand (a forward input, or an activation's output `y`).
            a: read array<act_t>,
            /// Second operand (the other addend, `dy`, or a mask).
            b: read array<act_t>,
            /// Dropout's seed: at least two `u32`.
            seed: read array<u32>,
            /// The result.
            out: write array<act_t>,
        }
    }
}

/// What an element-wise call does to its `len` elements.
#[derive(Clone, Copy, Debug, Default)]
pub struct Elementwise {
    /// Number of elements.
    pub len: usize,
    /// Activation applied (forward) or whose gradient mask is applied (backward).
    pub act: Activation,
    /// Add to `out` instead of overwriting it (gradient accumulation).
    pub accumulate: bool,
}

impl Elementwise {
    /// `len` elements, no activation, overwriting.
    pub fn len(len: usize) -> Self {
        Self {
            len,
            ..Self::default()
        }
    }

    /// Builder: the activation.
    pub fn act(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }

    /// Builder: accumulate into the output.
    pub fn accumulate(mut self, acc: bool) -> Self {
        self.accumulate = acc;
        self
    }

    fn params(&self) -> ElementwiseParams {
        ElementwiseParams {
            len: self.len as u32,
            accumulate: u32::from(self.accumulate),
            epi: Epilogue::new(self.act, false),
            ..ElementwiseParams::default()
        }
    }
}

/// Checks `a`, `b` and `out` (named by `names`) hold `params.len` values and makes the call.
fn call(
    ctx: &GpuContext,
    (label, entry): (&str, &'static str),
    params: ElementwiseParams,
    args: ElementwiseArgs,
    names: [&str; 3],
) -> Result<Call> {
    let len = params.len as usize;
    check_dims(label, &[("len", len)])?;
    for (name, a) in names.iter().zip([&args.a, &args.b, &args.out]) {
        check_arg(ctx, label, name, a, len as u64)?;
    }
    Call::new(
        ctx,
        label,
        SHADER.entry(entry, &[("WG", WG)]),
        &params,
        args.into_vec(),
        element_grid(ctx, label, len, WG)?,
    )
}

/// The arguments of a two-operand entry point (the seed bound to `a`, unused).
fn binary(a: &Arg, b: &Arg, out: &Arg) -> ElementwiseArgs {
    ElementwiseArgs {
        a: a.clone(),
        b: b.clone(),
        seed: a.clone(),
        out: out.clone(),
    }
}

/// `out = act(x)` (a standalone activation).
pub fn activation(
    ctx: &GpuContext,
    label: &str,
    e: Elementwise,
    x: &Arg,
    out: &Arg,
) -> Result<Call> {
    let args = binary(x, x, out);
    call(
        ctx,
        (label, "activation"),
        e.params(),
        args,
        ["x", "x", "out"],
    )
}

/// `out = act(a + b)` (residual add with its activation fused).
pub fn add(
    ctx: &GpuContext,
    label: &str,
    e: Elementwise,
    ab: [&Arg; 2],
    out: &Arg,
) -> Result<Call> {
    let args = binary(ab[0], ab[1], out);
    call(ctx, (label, "add"), e.params(), args, ["a", "b", "out"])
}

/// `dx (+)= ∂L/∂x` from the activation's output `y` and `dy` (ReLU: `dy` where `y > 0`,
/// else 0). Only for activations whose derivative comes from the output
/// ([`Activation::grad_from_output`]; others: [`activation_backward_input`]).
pub fn activation_backward(
    ctx: &GpuContext,
    label: &str,
    e: Elementwise,
    y: &Arg,
    dy: &Arg,
    dx: &Arg,
) -> Result<Call> {
    if !e.act.grad_from_output() {
        return Err(Error::InvalidArgument(format!(
            "{label}: the derivative of {} needs its input (activation_backward_input)",
            e.act.kind()
        )));
    }
    let args = binary(y, dy, dx);
    call(
        ctx,
        (label, "activation_backward"),
        e.params(),
        args,
        ["y", "dy", "dx"],
    )
}

/// `dx (+)= ∂L/∂x` from the activation's input `x` and `dy` (any activation).
pub fn activation_backward_input(
    ctx: &GpuContext,
    label: &str,
    e: Elementwise,
    x: &Arg,
    dy: &Arg,
    dx: &Arg,
) -> Result<Call> {
    let args = binary(x, dy, dx);
    call(
        ctx,
        (label, "activation_backward_input"),
        e.params(),
        args,
        ["x", "dy", "dx"],
    )
}

/// `dst (+)= src`.
pub fn copy(ctx: &GpuContext, label: &str, e: Elementwise, src: &Arg, dst: &Arg) -> Result<Call> {
    let args = binary(src, src, dst);
    call(
        ctx,
        (label, "copy"),
        e.params(),
        args,
        ["src", "src", "dst"],
    )
}

/// `out (+)= a·b` (dropout's backward `dy·mask`, or any element-wise product).
pub fn mul(
    ctx: &GpuContext,
    label: &str,
    e: Elementwise,
    ab: [&Arg; 2],
    out: &Arg,
) -> Result<Call> {
    let args = binary(ab[0], ab[1], out);
    call(ctx, (label, "mul"), e.params(), args, ["a", "b", "out"])
}

/// Inverted dropout over `len` elements: `mask[i] = 0` with probability `p`, else `1/(1−p)`,
/// from a counter-based hash of `(seed[0], seed[1], i)` (`seed`: a buffer of at least two
/// u32 rewritten per step; the same seed gives the same mask), then `y = x·mask`. `p` in
/// `[0, 1)`, rounded to a multiple of 2⁻²⁴. Cannot match the CPU `dropout_mask` RNG bit for
/// bit. Two calls (mask, then `y`).
pub fn dropout(
    ctx: &GpuContext,
    label: &str,
    (len, p): (usize, f32),
    seed: &Arg,
    x: &Arg,
    [mask, y]: [&Arg; 2],
) -> Result<Vec<Call>> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::shape(label, format!("dropout p {p} not in [0, 1)")));
    }
    check_arg_min(ctx, label, "seed", seed, 2)?;
    let params = ElementwiseParams {
        threshold: (f64::from(p) * f64::from(1u32 << 24)).round() as u32,
        scale: 1.0 / (1.0 - p),
        ..Elementwise::len(len).params()
    };
    let args = ElementwiseArgs {
        seed: seed.clone(),
        ..binary(x, x, mask)
    };
    let m = call(
        ctx,
        (label, "dropout_mask"),
        params,
        args,
        ["x", "x", "mask"],
    )?;
    let apply = mul(ctx, label, Elementwise::len(len), [x, mask], y)?;
    Ok(vec![m, apply])
}

/// `out[i] = x[i] · gate[i / hw]`: a `[B, C, H, W]` tensor times a `[B, C]` gate broadcast
/// over each plane of `hw` values.
pub fn mul_channel(
    ctx: &GpuContext,
    label: &str,
    (len, hw): (usize, usize),
    [x, gate]: [&Arg; 2],
    out: &Arg,
) -> Result<Call> {
    check_dims(label, &[("hw", hw), ("len", len)])?;
    if len % hw != 0 {
        return Err(Error::shape(
            label,
            format!("{len} values are not whole planes of {hw}"),
        ));
    }
    check_arg(ctx, label, "x", x, len as u64)?;
    check_arg(ctx, label, "gate", gate, (len / hw) as u64)?;
    check_arg(ctx, label, "out", out, len as u64)?;
    let params = ElementwiseParams {
        hw: hw as u32,
        ..Elementwise::len(len).params()
    };
    let args = binary(x, gate, out);
    per_element(
        ctx,
        label,
        (&SHADER, "mul_channel"),
        &params,
        args.into_vec(),
        len,
    )
}
