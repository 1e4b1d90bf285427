//! Element-wise activations (ReLU, ReLU6): CPU forward and backward, and [`Activation`], the
//! epilogue that GPU kernels fuse after a conv, BN, add or linear. NaN propagates, as in
//! PyTorch: an activation never turns a NaN into a number.

use super::{same_shape, Backward, OpCost, OpDef, ParamDecl, Params, Saved};
use crate::error::Result;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// An activation applied in a kernel's epilogue (`act` in the WGSL prelude).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub enum Activation {
    /// The identity.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

impl Activation {
    /// The code the shaders' `act(x, code)` switches on.
    pub fn code(self) -> u32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Relu6 => 2,
        }
    }

    /// The activation's parameters `[α, β]` as the shaders' epilogue carries them (unused
    /// ones are 0).
    pub fn params(self) -> [f32; 2] {
        [0.0, 0.0]
    }

    /// Applies the activation to one value (NaN stays NaN).
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Activation::None => v,
            Activation::Relu => {
                if v < 0.0 {
                    0.0
                } else {
                    v
                }
            }
            // `clamp` keeps NaN.
            Activation::Relu6 => v.clamp(0.0, 6.0),
        }
    }

    /// Whether the gradient passes at input `x` (PyTorch's `threshold_backward` for ReLU:
    /// `x > 0`; `hardtanh_backward` for ReLU6: `0 < x < 6`).
    pub fn passes_grad(self, x: f32) -> bool {
        match self {
            Activation::None => true,
            // A NaN input passes its gradient, as in PyTorch's threshold_backward.
            Activation::Relu => x > 0.0 || x.is_nan(),
            Activation::Relu6 => x > 0.0 && x < 6.0,
        }
    }

    fn forward(self, x: &Tensor) -> Tensor {
        let mut out = x.clone();
        out.data_mut().iter_mut().for_each(|v| *v = self.apply(*v));
        out
    }

    fn backward(self, op: &str, x: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
        same_shape(op, x.shape(), grad_out)?;
        let mut dx = grad_out.clone();
        dx.data_mut().iter_mut().zip(x.data()).for_each(|(d, &xv)| {
            if !self.passes_grad(xv) {
                *d = 0.0
            }
        });
        Ok(dx)
    }
}

/// `max(x, 0)`, NaN propagating.
pub fn relu(x: &Tensor) -> Tensor {
    Activation::Relu.forward(x)
}

/// `min(max(x, 0), 6)`, NaN propagating.
pub fn relu6(x: &Tensor) -> Tensor {
    Activation::Relu6.forward(x)
}

/// Backward of ReLU: `dy` where `x > 0`, else 0 (PyTorch's `threshold_backward`).
pub fn relu_backward(x: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    Activation::Relu.backward("relu backward", x, grad_out)
}

/// Backward of ReLU6: `dy` where `0 < x < 6`, else 0 (PyTorch's `hardtanh_backward`).
pub fn relu6_backward(x: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    Activation::Relu6.backward("relu6 backward", x, grad_out)
}

/// Declares an activation op: a unit type whose forward and backward are its [`Activation`].
macro_rules! activation_op {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $act:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $ty;

        impl OpDef for $ty {
            fn kind(&self) -> &'static str {
                $kind
            }
            fn arity(&self) -> usize {
                1
            }
            fn infer_shape(&self, _layer: &str, ins: &[&[usize]]) -> Result<Vec<usize>> {
                Ok(ins[0].to_vec())
            }
            fn params(&self) -> Vec<ParamDecl> {
                Vec::new()
            }
            fn cost(&self, _ins: &[&[usize]], _out: &[usize]) -> OpCost {
                OpCost::default()
            }
            fn forward(&self, _p: &Params<'_>, ins: &[&Tensor]) -> Result<Tensor> {
                Ok($act.forward(ins[0]))
            }
            fn backward(
                &self,
                _p: &Params<'_>,
                ins: &[&Tensor],
                _out: &Tensor,
                _saved: &Saved,
                gy: Tensor,
            ) -> Result<Backward> {
                let dx = $act.backward(concat!($kind, " backward"), ins[0], &gy)?;
                Ok(Backward::inputs(vec![dx]))
            }
        }
    };
}

activation_op!(
    /// `max(x, 0)`.
    Relu,
    "relu",
    Activation::Relu
);
activation_op!(
    /// `min(max(x, 0), 6)` (MobileNetV2).
    Relu6,
    "relu6",
    Activation::Relu6
);
