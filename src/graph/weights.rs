//! What a graph needs of its [`Weights`]: that they hold exactly its parameters
//! ([`Weights::validate`]), and its seeded initialisation ([`Weights::init`]).

use super::{Graph, Op};
use crate::error::{Error, Result};
use crate::ops::Init;
use crate::tensor::Tensor;
use crate::weights::Weights;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

impl Weights {
    /// Checks that the set holds exactly the tensors `graph` needs, with the right shapes.
    /// Errors name the key and, for a mismatch, both shapes.
    pub fn validate(&self, graph: &Graph) -> Result<()> {
        let specs = graph.param_specs();
        for (key, shape) in &specs {
            let t = self.require(key)?;
            if t.shape() != &shape[..] {
                return Err(Error::Weights {
                    key: key.clone(),
                    msg: format!(
                        "shape {:?} in the weights, the model needs {shape:?}",
                        t.shape()
                    ),
                });
            }
        }
        if let Some(extra) = self
            .iter()
            .map(|(k, _)| k)
            .find(|k| !specs.iter().any(|(s, _)| s == *k))
        {
            return Err(Error::Weights {
                key: extra.clone(),
                msg: format!("not a parameter of model `{}`", graph.name),
            });
        }
        Ok(())
    }

    /// Seeded initialisation as torchvision does it: convs Kaiming-normal (fan-out, ReLU),
    /// BN γ = 1, β = 0, running mean 0, variance 1; linear N(0, 0.01), bias 0;
    /// FLGC selection matrices standard Gaussian (Wang et al., Algorithm 1).
    pub fn init(graph: &Graph, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut w = Weights::new();
        for n in &graph.nodes {
            for p in n.op.def().params() {
                let key = format!("{}.{}", n.name, p.suffix);
                let len: usize = p.shape.iter().product();
                let data = match p.init {
                    Init::Normal(std) if std > 0.0 => {
                        let d = Normal::new(0.0, std).expect("positive std");
                        (0..len).map(|_| d.sample(&mut rng)).collect()
                    }
                    Init::Ones => vec![1.0; len],
                    Init::Zeros | Init::Normal(_) => vec![0.0; len],
                };
                w.insert(
                    key,
                    Tensor::new(p.shape, data).expect("shape and data agree"),
                );
            }
        }
        w
    }

    /// Like [`Weights::init`], but with non-trivial BN statistics and biases, so that tests
    /// exercise every term of every op.
    pub fn random_for_tests(graph: &Graph, seed: u64) -> Self {
        let mut w = Self::init(graph, seed);
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
        let mut fill = |w: &mut Weights, key: String, lo: f32, hi: f32| {
            if let Some(t) = w.get_mut(&key) {
                t.data_mut()
                    .iter_mut()
                    .for_each(|v| *v = rng.random_range(lo..hi));
            }
        };
        for n in &graph.nodes {
            let key = |s: &str| format!("{}.{s}", n.name);
            if matches!(n.op, Op::BatchNorm(_)) {
                fill(&mut w, key("weight"), 0.5, 1.5);
                fill(&mut w, key("running_var"), 0.5, 1.5);
                fill(&mut w, key("running_mean"), -0.2, 0.2);
            }
            fill(&mut w, key("bias"), -0.2, 0.2);
        }
        w
    }
}
