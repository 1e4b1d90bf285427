//! Element-wise activations, as data: **one table** (below) of every activation — its name,
//! code, parameters with their defaults, value, derivative from the input, and (where it
//! exists) derivative from the output. From it come the [`Activation`] enum (a graph op,
//! `Op::Activation`, and the epilogue GPU kernels fuse after a conv, BN, add or linear), its
//! CPU forward and backward, the ONNX operators it imports from, and the WGSL the shaders'
//! prelude is generated from (`gpu::prelude`: `act`, `act4` and the backward's `act_grad_x`
//! / `act_grad_y`). A new activation is one row here and its tests.
//!
//! The expressions are written in the syntax Rust and WGSL share ([`math`]), so the CPU
//! reference and the kernels evaluate the same formula. NaN propagates as in PyTorch: an
//! activation never turns a NaN input into a number; the derivatives follow PyTorch's
//! backward kernels at the kinks and for NaN (ReLU and ReLU6 pass the gradient of a NaN input,
//! hard sigmoid blocks it).

mod math;
mod table;

pub use table::{ActivationRow, WgslExpr};

use super::{same_shape, Backward, OpDef, Params, Saved};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::hash::{Hash, Hasher};

table::activations! {
    /// The identity.
    #[default]
    None = 0, "none" {
        y(x, a, b) = x;
        dx(x, g, a, b) = g;
        dy(y, g, a, b) = g, if true;
    }
    /// `max(x, 0)`.
    Relu = 1, "relu", onnx "Relu" {
        y(x, a, b) = select(x, 0.0, x < 0.0);
        dx(x, g, a, b) = select(g, 0.0, x <= 0.0);
        dy(y, g, a, b) = select(g, 0.0, y <= 0.0), if true;
    }
    /// `min(max(x, 0), 6)` (MobileNetV2).
    Relu6 = 2, "relu6" {
        y(x, a, b) = select(select(x, 6.0, x > 6.0), 0.0, x < 0.0);
        dx(x, g, a, b) = select(g, 0.0, x <= 0.0 || x >= 6.0);
        dy(y, g, a, b) = select(g, 0.0, y <= 0.0 || y >= 6.0), if true;
    }
    /// `x` for `x > 0`, else `α·x` (YOLO-style detectors).
    LeakyRelu {
        /// The negative slope α (ONNX's default 0.01, as PyTorch's).
        alpha = 0.01
    } = 3, "leaky_relu", onnx "LeakyRelu" {
        y(x, a, b) = select(x, a * x, x < 0.0);
        dx(x, g, a, b) = select(g * a, g, x > 0.0);
        dy(y, g, a, b) = select(g * a, g, y > 0.0), if a >= 0.0;
    }
    /// GELU, exact: `x·Φ(x) = ½·x·(1 + erf(x/√2))` (ConvNeXt-style networks).
    Gelu = 4, "gelu" {
        y(x, a, b) = gelu(x);
        dx(x, g, a, b) = g * gelu_grad(x);
    }
    /// GELU, tanh approximation: `½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    GeluTanh = 5, "gelu_tanh" {
        y(x, a, b) = gelu_tanh(x);
        dx(x, g, a, b) = g * gelu_tanh_grad(x);
    }
    /// `x` for `x > 0`, else `α·(eˣ − 1)`.
    Elu {
        /// α (ONNX's default 1, as PyTorch's).
        alpha = 1.0
    } = 6, "elu", onnx "Elu" {
        y(x, a, b) = select(x, a * (exp(x) - 1.0), x <= 0.0);
        dx(x, g, a, b) = select(g, g * a * exp(x), x <= 0.0);
        dy(y, g, a, b) = select(g, g * (y + a), y <= 0.0), if a >= 0.0;
    }
    /// SiLU (swish): `x·σ(x)`.
    Silu = 7, "silu" {
        y(x, a, b) = x * sigmoid(x);
        dx(x, g, a, b) = g * silu_grad(x);
    }
    /// Hard swish: `x · max(0, min(1, x/6 + 1/2))` (MobileNetV3).
    HardSwish = 8, "hard_swish", onnx "HardSwish" {
        y(x, a, b) = x * hard_sigmoid(x, 1.0 / 6.0, 0.5);
        dx(x, g, a, b) = select(select(g, g * ((2.0 * x + 3.0) / 6.0), x < 3.0), 0.0, x <= -3.0);
    }
    /// Hard sigmoid: `max(0, min(1, α·x + β))` (PyTorch's `Hardsigmoid` is α = 1/6, β = 1/2).
    HardSigmoid {
        /// Slope α (ONNX's default 0.2).
        alpha = 0.2,
        /// Offset β (ONNX's default 0.5).
        beta = 0.5
    } = 9, "hard_sigmoid", onnx "HardSigmoid" {
        y(x, a, b) = hard_sigmoid(x, a, b);
        dx(x, g, a, b) = select(0.0, g * a, a * x + b > 0.0 && a * x + b < 1.0);
        dy(y, g, a, b) = select(0.0, g * a, y > 0.0 && y < 1.0), if true;
    }
    /// The logistic sigmoid `1 / (1 + e^{−x})`.
    Sigmoid = 10, "sigmoid", onnx "Sigmoid" {
        y(x, a, b) = sigmoid(x);
        dx(x, g, a, b) = g * (sigmoid(x) * (1.0 - sigmoid(x)));
        dy(y, g, a, b) = g * (y * (1.0 - y)), if true;
    }
    /// `tanh(x)`.
    Tanh = 11, "tanh", onnx "Tanh" {
        y(x, a, b) = stable_tanh(x);
        dx(x, g, a, b) = g * (1.0 - stable_tanh(x) * stable_tanh(x));
        dy(y, g, a, b) = g * (1.0 - y * y), if true;
    }
}

/// The WGSL the prelude's activation functions are written in: `math`'s constants and
/// functions.
pub fn math_wgsl() -> String {
    math::wgsl()
}

impl Activation {
    /// PyTorch's `nn.Hardsigmoid`: α = 1/6, β = 1/2.
    pub const HARD_SIGMOID_TORCH: Activation = Activation::HardSigmoid {
        alpha: 1.0 / 6.0,
        beta: 0.5,
    };

    /// The table row of this activation.
    pub fn row(self) -> &'static ActivationRow {
        Self::ROWS
            .iter()
            .find(|r| r.default.code() == self.code())
            .expect("every activation has a row")
    }

    /// The activation an ONNX operator is, with its default parameters.
    pub fn from_onnx(op_type: &str) -> Option<Activation> {
        Self::ROWS
            .iter()
            .find(|r| r.onnx == Some(op_type))
            .map(|r| r.default)
    }

    /// Fails unless every parameter is finite; the error names `layer`.
    pub fn check(self, layer: &str) -> Result<()> {
        let p = self.params();
        for name in self.row().fields {
            let v = p[table::slot(name)];
            if !v.is_finite() {
                return Err(Error::shape(
                    layer,
                    format!("{} {name} is {v}; it must be a finite number", self.kind()),
                ));
            }
        }
        Ok(())
    }

    /// The activation of every value of `x`.
    pub fn eval(self, x: &Tensor) -> Tensor {
        let mut out = x.clone();
        out.data_mut().iter_mut().for_each(|v| *v = self.apply(*v));
        out
    }

    /// `∂L/∂x` from the input `x` and `grad_out = ∂L/∂y`; `op` names it in errors.
    pub fn eval_backward(self, op: &str, x: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
        same_shape(op, x.shape(), grad_out)?;
        let mut dx = grad_out.clone();
        dx.data_mut()
            .iter_mut()
            .zip(x.data())
            .for_each(|(d, &xv)| *d = self.grad_input(xv, *d));
        Ok(dx)
    }
}

// Parameters compare bit for bit, so an activation is `Eq` and `Hash` (kernel keys).
impl PartialEq for Activation {
    fn eq(&self, other: &Self) -> bool {
        let bits = |a: Activation| (a.code(), a.params().map(f32::to_bits));
        bits(*self) == bits(*other)
    }
}

impl Eq for Activation {}

impl Hash for Activation {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let a = *self;
        (a.code(), a.params().map(f32::to_bits)).hash(state);
    }
}

impl OpDef for Activation {
    fn kind(&self) -> &'static str {
        Activation::kind(*self)
    }
    fn infer_shape(&self, layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
        self.check(layer)?;
        Ok(ins[0].to_vec())
    }
    fn forward(&self, _p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
        Ok(self.eval(ins[0]))
    }
    fn backward(
        &self,
        _p: &Params<'_>,
        ins: &[&Tensor],
        _out: &Tensor,
        _saved: &Saved,
        gy: Tensor,
    ) -> Result<Backward> {
        let op = format!("{} backward", self.kind());
        let dx = self.eval_backward(&op, ins[0], &gy)?;
        Ok(Backward::inputs(vec![dx]))
    }
}

/// `max(x, 0)`, NaN propagating.
pub fn relu(x: &Tensor) -> Tensor {
    Activation::Relu.eval(x)
}

/// `min(max(x, 0), 6)`, NaN propagating.
pub fn relu6(x: &Tensor) -> Tensor {
    Activation::Relu6.eval(x)
}

/// Backward of ReLU: `dy` where `x > 0`, else 0 (PyTorch's `threshold_backward`).
pub fn relu_backward(x: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    Activation::Relu.eval_backward("relu backward", x, grad_out)
}

/// Backward of ReLU6: 0 where `x ≤ 0` or `x ≥ 6`, else `dy` (PyTorch's `hardtanh_backward`;
/// a NaN input passes its gradient).
pub fn relu6_backward(x: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    Activation::Relu6.eval_backward("relu6 backward", x, grad_out)
}
