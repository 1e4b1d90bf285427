//! Activations that exporters write out as arithmetic, recognised before the walk and
//! imported as one activation node:
//!
//! - **GELU (erf)**, as PyTorch exports it below opset 20: `0.5 · x · (1 + Erf(x / √2))`
//!   (`Div` or `Mul` by `1/√2`; the three factors multiplied in any order and grouping);
//! - **GELU (tanh)**: `0.5 · x · (1 + Tanh(√(2/π) · (x + 0.044715 · x³)))`, the cube a
//!   `Pow(x, 3)` or two `Mul`s;
//! - **SiLU**: `x · Sigmoid(x)`; **hard swish**: `x · HardSigmoid(x)` with α = 1/6, β = 1/2
//!   (opset 13's export of `nn.Hardswish`).
//!
//! A product is read as a tree of `Mul` (and `Div` by a constant) nodes whose intermediate
//! results have no other reader, so `(0.5·x)·(1 + erf)` and `0.5·(x·(1 + erf))` are one
//! pattern. Constants (initializers and `Constant` nodes, scalars) must equal the formula's
//! to a relative 10⁻⁴. Every node of a match but the last must feed only the match and not
//! be a graph output; the last node's output becomes the activation's. Anything else is
//! imported node by node, as before.

use super::fold;
use super::proto::NodeProto;
use super::values::Value;
use crate::ops::Activation;
use std::collections::{HashMap, HashSet};

/// An activation recognised in the graph.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Fused {
    /// The ONNX name of its input.
    pub x: String,
    /// The activation.
    pub act: Activation,
}

/// The matches of a graph: by the index of each match's last node, and every other node of
/// the matches (skipped by the walk).
#[derive(Debug, Default)]
pub(crate) struct Matches {
    pub ends: HashMap<usize, Fused>,
    pub interior: HashSet<usize>,
}

struct Graph<'a> {
    nodes: &'a [NodeProto],
    producer: HashMap<&'a str, usize>,
    consumers: HashMap<&'a str, Vec<usize>>,
    scalars: HashMap<&'a str, f32>,
    outputs: HashSet<&'a str>,
}

/// A product: its constant factor, its other factors (ONNX names) and the nodes it spans.
#[derive(Debug)]
struct Product<'a> {
    k: f64,
    factors: Vec<&'a str>,
    nodes: Vec<usize>,
}

fn close(v: f64, want: f64) -> bool {
    (v - want).abs() <= 1e-4 * want.abs()
}

/// Finds the activation patterns of `nodes` (`vals`: the initializers; `outputs`: the
/// graph's output names).
pub(crate) fn find(
    nodes: &[NodeProto],
    vals: &HashMap<String, Value>,
    outputs: &[&str],
    opset: i64,
) -> Matches {
    let mut g = Graph {
        nodes,
        producer: HashMap::new(),
        consumers: HashMap::new(),
        scalars: HashMap::new(),
        outputs: outputs.iter().copied().collect(),
    };
    for (name, v) in vals {
        if let Value::Const(c) = v {
            if let Ok([s]) = c.floats().as_deref() {
                g.scalars.insert(name.as_str(), *s);
            }
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        for o in &n.output {
            g.producer.insert(o.as_str(), i);
        }
        for inp in &n.input {
            g.consumers.entry(inp.as_str()).or_default().push(i);
        }
        if n.op_type() == "Constant" {
            if let (Some(o), Ok(c)) = (n.output.first(), fold::eval(n, &[], opset)) {
                if let Some(Ok([s])) = c.first().map(|c| c.floats()).as_ref().map(|r| r.as_deref())
                {
                    g.scalars.insert(o.as_str(), *s);
                }
            }
        }
    }
    let mut m = Matches::default();
    // Latest first, so that the outermost product of a pattern is tried before its parts.
    for e in (0..nodes.len()).rev() {
        if nodes[e].op_type() != "Mul" || m.interior.contains(&e) || m.ends.contains_key(&e) {
            continue;
        }
        let Some((fused, span)) = g.activation_at(e) else {
            continue;
        };
        let inside: HashSet<usize> = span.iter().copied().collect();
        let sealed = span.iter().filter(|&&i| i != e).all(|&i| {
            nodes[i].output.iter().all(|o| {
                !g.outputs.contains(o.as_str()) && g.readers(o).iter().all(|r| inside.contains(r))
            })
        });
        let claimed = span
            .iter()
            .any(|i| m.interior.contains(i) || m.ends.contains_key(i));
        if sealed && !claimed {
            m.interior.extend(span.iter().filter(|&&i| i != e));
            m.ends.insert(e, fused);
        }
    }
    m
}

impl<'a> Graph<'a> {
    fn readers(&self, name: &str) -> &[usize] {
        self.consumers.get(name).map_or(&[], Vec::as_slice)
    }

    /// The node producing `name` if it is `op`.
    fn made_by(&self, name: &str, op: &str) -> Option<usize> {
        self.producer
            .get(name)
            .copied()
            .filter(|&i| self.nodes[i].op_type() == op)
    }

    fn input(&self, i: usize, k: usize) -> Option<&'a str> {
        self.nodes[i]
            .input
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// `name` read as a product of `Mul` nodes (and `Div`s by a constant) whose results have
    /// exactly one reader.
    fn product(&self, name: &'a str) -> Product<'a> {
        let mut p = Product {
            k: 1.0,
            factors: Vec::new(),
            nodes: Vec::new(),
        };
        self.collect(name, &mut p, true);
        p
    }

    fn collect(&self, name: &'a str, p: &mut Product<'a>, root: bool) {
        if let Some(&s) = self.scalars.get(name) {
            p.k *= f64::from(s);
            return;
        }
        let single = root || self.readers(name).len() == 1;
        let mul = self.made_by(name, "Mul").filter(|_| single);
        let div = self.made_by(name, "Div").filter(|_| single);
        if let Some(i) = mul {
            if let (Some(a), Some(b)) = (self.input(i, 0), self.input(i, 1)) {
                p.nodes.push(i);
                self.collect(a, p, false);
                self.collect(b, p, false);
                return;
            }
        }
        if let Some(i) = div {
            let d = self.input(i, 1).and_then(|d| self.scalars.get(d));
            if let (Some(a), Some(&d)) = (self.input(i, 0), d) {
                p.nodes.push(i);
                p.k /= f64::from(d);
                self.collect(a, p, false);
                return;
            }
        }
        p.factors.push(name);
    }

    /// `name = 1 + t` (either order): `t` and the Add node.
    fn one_plus(&self, name: &'a str) -> Option<(&'a str, usize)> {
        let i = self.made_by(name, "Add")?;
        let (a, b) = (self.input(i, 0)?, self.input(i, 1)?);
        let one = |s: &str| self.scalars.get(s).is_some_and(|&v| v == 1.0);
        match (one(a), one(b)) {
            (true, false) => Some((b, i)),
            (false, true) => Some((a, i)),
            _ => None,
        }
    }

    /// The activation whose last node is the `Mul` at `e`, with every node it spans.
    fn activation_at(&self, e: usize) -> Option<(Fused, Vec<usize>)> {
        let out = self.nodes[e].output.first()?.as_str();
        let p = self.product(out);
        let [f0, f1] = p.factors[..] else { return None };
        let mut span = p.nodes.clone();
        // x · Sigmoid(x), x · HardSigmoid(x): SiLU, hard swish.
        if p.k == 1.0 {
            for (x, s) in [(f0, f1), (f1, f0)] {
                let gate = self
                    .made_by(s, "Sigmoid")
                    .map(|i| (i, Activation::Silu))
                    .or_else(|| {
                        let i = self.made_by(s, "HardSigmoid")?;
                        let n = &self.nodes[i];
                        let alpha = super::values::attr_f(n, "alpha", 0.2);
                        let beta = super::values::attr_f(n, "beta", 0.5);
                        let swish = close(alpha.into(), 1.0 / 6.0) && close(beta.into(), 0.5);
                        swish.then_some((i, Activation::HardSwish))
                    });
                if let Some((i, act)) = gate.filter(|&(i, _)| self.input(i, 0) == Some(x)) {
                    span.push(i);
                    return Some((fused(x, act), span));
                }
            }
            return None;
        }
        // 0.5 · x · (1 + Erf(x/√2)), 0.5 · x · (1 + Tanh(√(2/π)·(x + 0.044715·x³))).
        if !close(p.k, 0.5) {
            return None;
        }
        for (x, s) in [(f0, f1), (f1, f0)] {
            let Some((t, add)) = self.one_plus(s) else {
                continue;
            };
            let found = if let Some(i) = self.made_by(t, "Erf") {
                self.erf_arg(x, self.input(i, 0)?)
                    .map(|nodes| (i, nodes, Activation::Gelu))
            } else if let Some(i) = self.made_by(t, "Tanh") {
                self.tanh_arg(x, self.input(i, 0)?)
                    .map(|nodes| (i, nodes, Activation::GeluTanh))
            } else {
                None
            };
            if let Some((i, nodes, act)) = found {
                span.extend([add, i]);
                span.extend(nodes);
                return Some((fused(x, act), span));
            }
        }
        None
    }

    /// `u = x / √2`: its nodes.
    fn erf_arg(&self, x: &str, u: &'a str) -> Option<Vec<usize>> {
        let p = self.product(u);
        (p.factors == [x] && close(p.k, std::f64::consts::FRAC_1_SQRT_2)).then_some(p.nodes)
    }

    /// `u = √(2/π) · (x + 0.044715 · x³)`: its nodes.
    fn tanh_arg(&self, x: &str, u: &'a str) -> Option<Vec<usize>> {
        let p = self.product(u);
        let [sum] = p.factors[..] else { return None };
        if !close(p.k, (2.0 / std::f64::consts::PI).sqrt()) {
            return None;
        }
        let add = self.made_by(sum, "Add")?;
        let (a, b) = (self.input(add, 0)?, self.input(add, 1)?);
        let cubic = if a == x {
            b
        } else if b == x {
            a
        } else {
            return None;
        };
        let c = self.product(cubic);
        if !close(c.k, 0.044715) {
            return None;
        }
        let mut nodes = p.nodes;
        nodes.push(add);
        nodes.extend(&c.nodes);
        match c.factors[..] {
            [a, b, d] if [a, b, d] == [x; 3] => Some(nodes),
            [cube] => {
                let pow = self.made_by(cube, "Pow")?;
                let exponent = self.input(pow, 1).and_then(|e| self.scalars.get(e));
                (self.input(pow, 0) == Some(x) && exponent == Some(&3.0)).then(|| {
                    nodes.push(pow);
                    nodes
                })
            }
            _ => None,
        }
    }
}

fn fused(x: &str, act: Activation) -> Fused {
    Fused {
        x: x.to_string(),
        act,
    }
}
