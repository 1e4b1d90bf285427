//! ONNX activation operators → [`Op::Activation`]: the operators of `ops::activation`'s
//! table (their attributes named as the table's parameters, `alpha` and `beta`, with ONNX's
//! defaults), `Gelu` (opset 20), `Clip(0, 6)` / `Clip(0)` (ReLU6 / ReLU), and the activations
//! [`super::patterns`] recognised in arithmetic.

use super::import::Importer;
use super::patterns::Fused;
use super::proto::NodeProto;
use super::values::{attr_f, attr_s, Value};
use crate::error::Result;
use crate::graph::Op;
use crate::ops::Activation;

impl Importer<'_> {
    /// An activation operator of the table: its parameters from the attributes of the same
    /// name (`alpha`, `beta`), the table's (ONNX's) defaults where absent.
    pub(crate) fn activation(&mut self, n: &NodeProto, a: Activation) -> Result<()> {
        let mut p = a.params();
        for (slot, field) in a.row().fields.iter().enumerate() {
            p[slot] = attr_f(n, field, p[slot]);
        }
        self.unary(n, Op::Activation(a.with_params(p)))
    }

    /// `Gelu` (opset 20): `approximate` "none" (erf) or "tanh".
    pub(crate) fn gelu(&mut self, n: &NodeProto) -> Result<()> {
        let act = match attr_s(n, "approximate").as_deref().unwrap_or("none") {
            "none" => Activation::Gelu,
            "tanh" => Activation::GeluTanh,
            other => {
                return Err(self.err(
                    n,
                    format!("approximate `{other}`: Gelu takes \"none\" or \"tanh\""),
                ))
            }
        };
        self.unary(n, Op::Activation(act))
    }

    /// A recognised activation ([`super::patterns`]) ending at `n`: one node on its input.
    pub(crate) fn convert_fused(&mut self, n: &NodeProto, f: Fused) -> Result<()> {
        let x = match self.value_named(&f.x) {
            Some(Value::Act(a)) if a.view.is_none() => a.node,
            _ => {
                return Err(self.err(
                    n,
                    format!(
                        "the {} of `{}` is imported only on a plain activation",
                        f.act.kind(),
                        f.x
                    ),
                ))
            }
        };
        let mut named = n.clone();
        named.op_type = Some(f.act.kind().to_string());
        let name = self.layer_name(&named, None);
        let id = self.push(n, &name, Op::Activation(f.act), &[x])?;
        self.set_node(n, id);
        Ok(())
    }

    pub(crate) fn clip(&mut self, n: &NodeProto) -> Result<()> {
        let bound = |k: usize| -> Result<Option<f32>> {
            match self.opt_konst(n, k)? {
                None => Ok(None),
                Some(c) => match self.floats(n, c)?[..] {
                    [v] => Ok(Some(v)),
                    _ => Err(self.err(n, "clip bounds must be scalars")),
                },
            }
        };
        let (lo, hi) = (bound(1)?, bound(2)?);
        match (lo, hi) {
            (Some(l), Some(h)) if l == 0.0 && h == 6.0 => self.unary(n, Op::relu6()),
            (Some(0.0), None) => self.unary(n, Op::relu()),
            (Some(l), Some(h)) if l == 0.0 && h == f32::INFINITY => self.unary(n, Op::relu()),
            _ => Err(self.err(
                n,
                format!(
                    "Clip to [{lo:?}, {hi:?}]: gconv imports Clip(0, 6) (ReLU6) and Clip(0) (ReLU)"
                ),
            )),
        }
    }
}
