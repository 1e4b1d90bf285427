//! Training checkpoints: the model description, its weights (BN statistics and FLGC selection
//! matrices included), the optimizer's momentum buffers, the epoch reached and the input
//! normalisation, in one safetensors file written atomically. `gconv train` writes one after
//! every epoch; `--resume`, `gconv eval` and `gconv export` read it.

use crate::error::{Error, Result};
use crate::io::{read_safetensors, read_safetensors_metadata, write_safetensors};
use crate::weights::Weights;
use crate::zoo::ModelSpec;
use std::collections::BTreeMap;
use std::path::Path;

/// Metadata key of the model description (JSON of a [`ModelSpec`]).
pub const MODEL_KEY: &str = "gconv_model";
/// Suffix of the momentum buffers' keys (`{param}.momentum`).
pub const MOMENTUM_SUFFIX: &str = ".momentum";

/// Per-channel input normalisation `(x − mean) / std`, computed on the training set.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    /// Mean per input channel.
    pub mean: Vec<f32>,
    /// Standard deviation per input channel.
    pub std: Vec<f32>,
}

impl Normalization {
    /// As metadata (`norm_mean`, `norm_std`, JSON arrays).
    pub fn to_meta(&self, meta: &mut BTreeMap<String, String>) {
        let json = |v: &[f32]| serde_json::to_string(v).expect("floats serialise");
        meta.insert("norm_mean".into(), json(&self.mean));
        meta.insert("norm_std".into(), json(&self.std));
    }

    /// From metadata written by [`Normalization::to_meta`]; `None` when absent, an error
    /// naming `path` when malformed.
    pub fn from_meta(path: &Path, meta: &BTreeMap<String, String>) -> Result<Option<Self>> {
        let parse = |k: &str| -> Result<Option<Vec<f32>>> {
            meta.get(k)
                .map(|s| {
                    serde_json::from_str(s).map_err(|e| Error::format(path, format!("{k}: {e}")))
                })
                .transpose()
        };
        match (parse("norm_mean")?, parse("norm_std")?) {
            (Some(mean), Some(std)) if mean.len() == std.len() => Ok(Some(Self { mean, std })),
            (None, None) => Ok(None),
            _ => Err(Error::format(
                path,
                "norm_mean and norm_std must both be given, of equal length",
            )),
        }
    }
}

/// Everything training needs to resume, evaluate or export.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The model description (the graph is built from it).
    pub spec: ModelSpec,
    /// Parameters and buffers.
    pub weights: Weights,
    /// Momentum buffers keyed `{param}.momentum`.
    pub momentum: Weights,
    /// Epochs completed.
    pub epoch: usize,
    /// The input normalisation used in training.
    pub norm: Normalization,
}

/// Writes `c` to `path` atomically (weights and momentum in one file, the rest as metadata).
pub fn write_checkpoint(path: impl AsRef<Path>, c: &Checkpoint) -> Result<()> {
    let mut all = c.weights.clone();
    for (k, v) in c.momentum.iter() {
        all.insert(k.clone(), v.clone());
    }
    let mut meta = BTreeMap::new();
    meta.insert(
        MODEL_KEY.to_string(),
        serde_json::to_string(&c.spec).map_err(|e| Error::InvalidArgument(e.to_string()))?,
    );
    meta.insert("epoch".to_string(), c.epoch.to_string());
    c.norm.to_meta(&mut meta);
    write_safetensors(path, &all, &meta)
}

/// Whether `path` holds a training checkpoint (it has the model metadata).
pub fn is_checkpoint(path: impl AsRef<Path>) -> Result<bool> {
    Ok(read_safetensors_metadata(path)?.contains_key(MODEL_KEY))
}

/// Reads a checkpoint written by [`write_checkpoint`]; errors name the file and what is
/// missing (a plain weights file or an exported model is not a checkpoint).
pub fn read_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint> {
    let path = path.as_ref();
    let meta = read_safetensors_metadata(path)?;
    let not = |what: &str| {
        Error::format(
            path,
            format!("not a gconv training checkpoint (no {what} metadata; `gconv train --checkpoint` writes one)"),
        )
    };
    let spec_json = meta.get(MODEL_KEY).ok_or_else(|| not(MODEL_KEY))?;
    let spec: ModelSpec = serde_json::from_str(spec_json)
        .map_err(|e| Error::format(path, format!("{MODEL_KEY} metadata: {e}")))?;
    let epoch = meta
        .get("epoch")
        .and_then(|e| e.parse::<usize>().ok())
        .ok_or_else(|| not("epoch"))?;
    let norm = Normalization::from_meta(path, &meta)?.ok_or_else(|| not("norm_mean/norm_std"))?;
    let (mut weights, mut momentum) = (Weights::new(), Weights::new());
    for (k, t) in read_safetensors(path)?.iter() {
        if k.ends_with(MOMENTUM_SUFFIX) {
            momentum.insert(k.clone(), t.clone());
        } else {
            weights.insert(k.clone(), t.clone());
        }
    }
    Ok(Checkpoint {
        spec,
        weights,
        momentum,
        epoch,
        norm,
    })
}
