//! The model zoo: declarative model descriptions (`models/*.toml`, serde) turned into graphs.
//!
//! The files in `models/` are compiled into the crate, so the zoo works without the source
//! tree; a path to any `.toml` file of the same format is accepted wherever a name is.

mod arch;
mod mobilenet;
mod resnet;
mod scheme;
mod vgg;

pub use arch::{Arch, BlockKind, ConvKind, StemKind};
pub use scheme::{GroupSite, Scheme, BUILTIN_SCHEMES};

use crate::error::{Error, Result};
use crate::graph::Graph;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A model description, as written in `models/<name>.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Model name (also the graph's name).
    pub name: String,
    /// One line for humans.
    #[serde(default)]
    pub description: String,
    /// Classifier outputs.
    pub num_classes: usize,
    /// Per-sample input `[C, H, W]`.
    pub input: [usize; 3],
    /// Width multiplier on every hidden channel count (1.0 = the published model).
    #[serde(default = "one")]
    pub width: f32,
    /// The architecture.
    pub arch: Arch,
    /// G of single grouped convolutions by node name (`features.7`, `layer3.0.conv1`),
    /// overriding their stage's (a per-layer scheme, e.g. found by `gconv search --per-layer`).
    /// Only the family's grouped convolutions ([`ModelSpec::group_sites`]) can be named.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub layer_groups: BTreeMap<String, usize>,
}

fn one() -> f32 {
    1.0
}

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../models/", $name, ".toml")))),*]
    };
}

/// The built-in model files: `(name, toml text)`.
pub const BUILTIN_MODELS: &[(&str, &str)] = builtin!(
    "vgg11bn",
    "vgg13bn",
    "vgg16bn",
    "vgg19bn",
    "resnet50",
    "resnet50-dsc",
    "resnet50-dsc-sgc",
    "resnet50-dsc-flgc",
    "mobilenetv2",
    "mobilenetv2-sgc",
    "mobilenetv2-flgc",
);

fn read_text(path: &Path) -> Result<String> {
    // Capped, regular files only, UTF-8 checked (see `crate::limits`).
    crate::fs::read_text_file(path)
}

impl ModelSpec {
    /// Parses a model description from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let spec: ModelSpec = toml::from_str(text).map_err(|e| Error::Model {
            model: origin.to_string(),
            msg: e.to_string(),
        })?;
        spec.check()?;
        Ok(spec)
    }

    /// A built-in model by name, or a `.toml` file by path.
    pub fn load(name_or_path: &str) -> Result<Self> {
        if let Some((_, text)) = BUILTIN_MODELS.iter().find(|(n, _)| *n == name_or_path) {
            return Self::from_toml(text, name_or_path);
        }
        let p = Path::new(name_or_path);
        if name_or_path.ends_with(".toml") || p.exists() {
            return Self::from_toml(&read_text(p)?, name_or_path);
        }
        Err(Error::UnknownModel(name_or_path.to_string()))
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        Error::Model {
            model: self.name.clone(),
            msg: msg.into(),
        }
    }

    fn check(&self) -> Result<()> {
        if self.num_classes == 0 {
            return Err(self.err("num_classes must be at least 1"));
        }
        if self.input.contains(&0) {
            return Err(self.err(format!("input {:?} has a zero dimension", self.input)));
        }
        if !(self.width > 0.0 && self.width <= 16.0) {
            return Err(self.err(format!("width {} must be in (0, 16]", self.width)));
        }
        match &self.arch {
            Arch::Vgg {
                stages,
                stage_groups,
                dropout,
                ..
            } => {
                if stages.is_empty() || stages.iter().any(|s| s.is_empty()) {
                    return Err(self.err("every VGG stage needs at least one conv"));
                }
                if let Some(g) = stage_groups {
                    if g.len() != stages.len() {
                        return Err(self.err(format!(
                            "stage_groups has {} entries for {} stages",
                            g.len(),
                            stages.len()
                        )));
                    }
                    if g.contains(&0) {
                        return Err(self.err("groups must be at least 1"));
                    }
                }
                if !(0.0..1.0).contains(dropout) {
                    return Err(self.err("dropout must be in [0, 1)"));
                }
            }
            Arch::Resnet {
                groups,
                stage_groups,
                ..
            } => {
                self.check_stage_groups(stage_groups.as_deref())?;
                if *groups == 0 {
                    return Err(self.err("groups must be at least 1"));
                }
            }
            Arch::Mobilenetv2 {
                groups,
                dropout,
                stage_groups,
                ..
            } => {
                self.check_stage_groups(stage_groups.as_deref())?;
                if *groups == 0 {
                    return Err(self.err("groups must be at least 1"));
                }
                if !(0.0..1.0).contains(dropout) {
                    return Err(self.err("dropout must be in [0, 1)"));
                }
            }
        }
        if let Some((name, _)) = self.layer_groups.iter().find(|(_, &g)| g == 0) {
            return Err(self.err(format!("layer_groups: {name}: groups must be at least 1")));
        }
        Ok(())
    }

    fn check_stage_groups(&self, groups: Option<&[usize]>) -> Result<()> {
        let Some(g) = groups else { return Ok(()) };
        let names = self.stage_names();
        if g.len() != names.len() {
            return Err(self.err(format!(
                "stage_groups has {} entries for {} stages ({})",
                g.len(),
                names.len(),
                names.join(", ")
            )));
        }
        if g.contains(&0) {
            return Err(self.err("groups must be at least 1"));
        }
        Ok(())
    }

    /// The stem for small (28–32 px) inputs, where the family has one (ResNet, MobileNetV2).
    pub fn small_stem(mut self) -> Self {
        if let Arch::Resnet { stem, .. } | Arch::Mobilenetv2 { stem, .. } = &mut self.arch {
            *stem = StemKind::Small;
        }
        self
    }

    /// Builds the graph.
    pub fn build(&self) -> Result<Graph> {
        Ok(self.build_with_sites()?.0)
    }

    /// Builds the graph and lists the convolutions a scheme groups ([`GroupSite`]s); a
    /// `layer_groups` entry naming another layer is an error.
    pub(crate) fn build_with_sites(&self) -> Result<(Graph, Vec<GroupSite>)> {
        self.check()?;
        let (g, sites) = match &self.arch {
            Arch::Vgg { .. } => vgg::build(self)?,
            Arch::Resnet { .. } => resnet::build(self)?,
            Arch::Mobilenetv2 { .. } => mobilenet::build(self)?,
        };
        if let Some(name) = self
            .layer_groups
            .keys()
            .find(|n| !sites.iter().any(|s| &s.node == *n))
        {
            return Err(self.err(format!(
                "layer_groups names {name}, which is not one of the model's grouped \
                 convolutions ({} of them, e.g. {})",
                sites.len(),
                sites.first().map_or("none", |s| s.node.as_str())
            )));
        }
        Ok((g, sites))
    }
}

/// Scales a channel count by the width multiplier and rounds it up to a multiple of `align`.
/// At width 1 the published count is kept as it is (a G that does not divide it is then an
/// error of the layer, not a silently wider model).
pub(crate) fn scale_channels(c: usize, width: f32, align: usize) -> usize {
    if width == 1.0 {
        return c;
    }
    let s = ((c as f32 * width).round() as usize).max(1);
    s.div_ceil(align) * align
}
