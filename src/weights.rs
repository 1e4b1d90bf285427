//! Named parameter tensors with torchvision `state_dict` keys (`features.0.weight`, `fc.bias`).
//! What a graph needs of them (validation, seeded initialisation) is in `graph::weights`:
//! this module knows no graph.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::collections::BTreeMap;

/// A model's parameters and buffers, keyed `"{layer}.{suffix}"`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weights {
    map: BTreeMap<String, Tensor>,
}

impl Weights {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts (or replaces) a tensor.
    pub fn insert(&mut self, key: impl Into<String>, t: Tensor) {
        self.map.insert(key.into(), t);
    }

    /// Removes a tensor.
    pub fn remove(&mut self, key: &str) -> Option<Tensor> {
        self.map.remove(key)
    }

    /// A tensor by key, if present.
    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.map.get(key)
    }

    /// A tensor by key, mutably, if present.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Tensor> {
        self.map.get_mut(key)
    }

    /// A tensor by key, or [`Error::Weights`] naming the key.
    pub fn require(&self, key: &str) -> Result<&Tensor> {
        self.map.get(key).ok_or_else(|| Error::Weights {
            key: key.to_string(),
            msg: "missing".into(),
        })
    }

    /// All `(key, tensor)` pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.map.iter()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
