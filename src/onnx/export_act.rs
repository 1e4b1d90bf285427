//! The ONNX form of each activation of `ops::activation`'s table at the export opset (17):
//! its own operator where ONNX has one (`Relu`, `LeakyRelu`, `Elu`, `HardSigmoid`,
//! `HardSwish`, `Sigmoid`, `Tanh`; ReLU6 as `Clip(0, 6)`), else the arithmetic PyTorch
//! exports and `onnx::patterns` recognises on import — GELU as `0.5 · x · (1 + Erf(x / √2))`,
//! its tanh form as `0.5 · x · (1 + Tanh(√(2/π) · (x + 0.044715 · x³)))`, SiLU as
//! `x · Sigmoid(x)` — so an exported network reads back as the same activations.

use super::export::{attr_float, Emitter};
use crate::error::Result;
use crate::graph::NodeId;
use crate::ops::Activation;

impl Emitter<'_> {
    /// Activation node `i`.
    pub(super) fn activation(&mut self, i: NodeId, a: Activation) -> Result<()> {
        let name = self.name(i);
        let x = self.value[self.g.nodes[i].inputs[0]].clone();
        let c = |e: &mut Self, what: &str, v: f32| e.floats(&format!("{name}.{what}"), &[], &[v]);
        match a {
            Activation::None => {
                self.value[i] = x;
                Ok(())
            }
            Activation::Relu => self.carried(i, "Relu", vec![x], vec![]),
            Activation::Relu6 => {
                let (lo, hi) = (c(self, "min", 0.0)?, c(self, "max", 6.0)?);
                self.carried(i, "Clip", vec![x, lo, hi], vec![])
            }
            Activation::LeakyRelu { alpha } => {
                self.carried(i, "LeakyRelu", vec![x], vec![attr_float("alpha", alpha)])
            }
            Activation::Elu { alpha } => {
                self.carried(i, "Elu", vec![x], vec![attr_float("alpha", alpha)])
            }
            Activation::HardSigmoid { alpha, beta } => {
                let attrs = vec![attr_float("alpha", alpha), attr_float("beta", beta)];
                self.carried(i, "HardSigmoid", vec![x], attrs)
            }
            Activation::HardSwish => self.carried(i, "HardSwish", vec![x], vec![]),
            Activation::Sigmoid => self.carried(i, "Sigmoid", vec![x], vec![]),
            Activation::Tanh => self.carried(i, "Tanh", vec![x], vec![]),
            Activation::Silu => {
                let s = self.add("Sigmoid", &name, vec![x.clone()], &name, vec![]);
                self.carried(i, "Mul", vec![x, s], vec![])
            }
            Activation::Gelu => {
                let r2 = c(self, "sqrt2", std::f32::consts::SQRT_2)?;
                let u = self.add("Div", &name, vec![x.clone(), r2], &name, vec![]);
                let e = self.add("Erf", &name, vec![u], &name, vec![]);
                self.gelu_tail(i, &name, x, e)
            }
            Activation::GeluTanh => {
                let three = c(self, "three", 3.0)?;
                let k = c(self, "k", 0.044715)?;
                let s = c(self, "sqrt_2_over_pi", (2.0 / std::f32::consts::PI).sqrt())?;
                let x3 = self.add("Pow", &name, vec![x.clone(), three], &name, vec![]);
                let kx3 = self.add("Mul", &name, vec![x3, k], &name, vec![]);
                let inner = self.add("Add", &name, vec![x.clone(), kx3], &name, vec![]);
                let arg = self.add("Mul", &name, vec![inner, s], &name, vec![]);
                let t = self.add("Tanh", &name, vec![arg], &name, vec![]);
                self.gelu_tail(i, &name, x, t)
            }
        }
    }

    /// `0.5 · x · (1 + f)`, the last node carrying node `i`'s value.
    fn gelu_tail(&mut self, i: NodeId, name: &str, x: String, f: String) -> Result<()> {
        let one = self.floats(&format!("{name}.one"), &[], &[1.0])?;
        let half = self.floats(&format!("{name}.half"), &[], &[0.5])?;
        let p = self.add("Add", name, vec![f, one], name, vec![]);
        let q = self.add("Mul", name, vec![x, p], name, vec![]);
        self.carried(i, "Mul", vec![q, half], vec![])
    }
}
