//! The model zoo: declarative model descriptions (`models/*.toml`, serde) turned into graphs.
//!
//! The files in `models/` are compiled into the crate, so the zoo works without the source
//! tree; a path to any `.toml` file of the same format is accepted wherever a name is.

mod mobilenet;
mod resnet;
mod vgg;

use crate::error::{Error, Result};
use crate::graph::Graph;
use serde::{Deserialize, Serialize};
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
}

fn one() -> f32 {
    1.0
}

/// How a family of convolutions is grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConvKind {
    /// Ordinary dense convolution (G = 1).
    #[default]
    Dense,
    /// Standard group convolution: G fixed, contiguous, must divide the channels.
    Sgc,
    /// Fully learnable group convolution (Wang et al.): any G, learnt grouping.
    Flgc,
}

/// The bottleneck kind of a ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// torchvision's Bottleneck (1×1, 3×3, 1×1).
    Bottleneck,
    /// The 3×3 split into depthwise 3×3 + BN + ReLU + pointwise 1×1 (Wang et al. §3.1).
    Dsc,
}

/// The stem of a ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StemKind {
    /// 7×7 stride-2 conv + BN + ReLU + 3×3 stride-2 max-pool (224² inputs).
    #[default]
    Imagenet,
    /// 3×3 stride-1 conv + BN + ReLU, no pool (28–32 px inputs).
    Small,
}

/// Architecture families.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case", deny_unknown_fields)]
pub enum Arch {
    /// VGG with batch norm.
    Vgg {
        /// Output channels of each 3×3 conv, per stage; each stage ends with a 2×2 max-pool.
        stages: Vec<Vec<usize>>,
        /// Hidden classifier widths (torchvision: `[4096, 4096]`).
        classifier: Vec<usize>,
        /// Dropout probability in the classifier.
        dropout: f32,
        /// Groups per stage (Gong et al.'s schemes); absent = all dense.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage_groups: Option<Vec<usize>>,
        /// How grouped stages are grouped: `sgc` (default) or `flgc`.
        #[serde(default = "sgc")]
        grouped: ConvKind,
    },
    /// ResNet with bottleneck blocks (torchvision v1.5).
    Resnet {
        /// Blocks per stage (`[3, 4, 6, 3]` for ResNet-50).
        layers: [usize; 4],
        /// Bottleneck or depthwise-separable.
        block: BlockKind,
        /// Kind of every 1×1 conv inside the blocks (downsample included).
        pointwise: ConvKind,
        /// G for the 1×1 convs when `pointwise` is `sgc` or `flgc`.
        groups: usize,
        /// The stem.
        #[serde(default)]
        stem: StemKind,
    },
    /// MobileNetV2 (torchvision): inverted residual blocks, ReLU6.
    Mobilenetv2 {
        /// Kind of the 1×1 convs with more than `grouped_above` filters.
        #[serde(default)]
        pointwise: ConvKind,
        /// G for those convs when `pointwise` is `sgc` or `flgc`.
        #[serde(default = "one_group")]
        groups: usize,
        /// 1×1 convs with more filters than this are grouped (Wang et al.: 96).
        #[serde(default = "ninety_six")]
        grouped_above: usize,
        /// Dropout before the classifier (torchvision: 0.2).
        #[serde(default = "mobilenet_dropout")]
        dropout: f32,
        /// `imagenet`: stride-2 stem; `small` (28–32 px inputs): stride 1 in the stem and the
        /// second stage, as CIFAR MobileNetV2s do.
        #[serde(default)]
        stem: StemKind,
    },
}

fn one_group() -> usize {
    1
}

fn ninety_six() -> usize {
    96
}

fn mobilenet_dropout() -> f32 {
    0.2
}

fn sgc() -> ConvKind {
    ConvKind::Sgc
}

/// A grouping scheme for VGG (Gong et al.): the number of groups of each stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheme {
    /// Scheme name.
    pub name: String,
    /// One line for humans.
    #[serde(default)]
    pub description: String,
    /// Groups of stages conv-1 … conv-5.
    pub stage_groups: Vec<usize>,
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

/// The built-in schemes (Gong et al. A–E): `(name, toml text)`.
pub const BUILTIN_SCHEMES: &[(&str, &str)] = &[
    ("A", include_str!("../../models/schemes/A.toml")),
    ("B", include_str!("../../models/schemes/B.toml")),
    ("C", include_str!("../../models/schemes/C.toml")),
    ("D", include_str!("../../models/schemes/D.toml")),
    ("E", include_str!("../../models/schemes/E.toml")),
];

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
            Arch::Resnet { groups, .. } => {
                if *groups == 0 {
                    return Err(self.err("groups must be at least 1"));
                }
            }
            Arch::Mobilenetv2 {
                groups, dropout, ..
            } => {
                if *groups == 0 {
                    return Err(self.err("groups must be at least 1"));
                }
                if !(0.0..1.0).contains(dropout) {
                    return Err(self.err("dropout must be in [0, 1)"));
                }
            }
        }
        Ok(())
    }

    /// Applies a VGG grouping scheme (an error for other families).
    pub fn with_scheme(mut self, scheme: &Scheme) -> Result<Self> {
        let Arch::Vgg { stages, .. } = &self.arch else {
            return Err(
                self.err("schemes apply to VGG models; use --groups for ResNets and MobileNetV2")
            );
        };
        if scheme.stage_groups.len() != stages.len() {
            return Err(self.err(format!(
                "scheme {} gives {} stage groups, the model has {} stages",
                scheme.name,
                scheme.stage_groups.len(),
                stages.len()
            )));
        }
        if let Arch::Vgg { stage_groups, .. } = &mut self.arch {
            *stage_groups = Some(scheme.stage_groups.clone());
        }
        self.name = format!("{}-{}", self.name, scheme.name);
        self.check()?;
        Ok(self)
    }

    /// Sets G of the grouped convolutions (ResNet: the block 1×1 convs; MobileNetV2: the 1×1
    /// convs with more than 96 filters; VGG: every grouped stage),
    /// and optionally their kind (dense / sgc / flgc).
    pub fn with_groups(mut self, groups: usize, kind: Option<ConvKind>) -> Result<Self> {
        if groups == 0 {
            return Err(self.err("groups must be at least 1"));
        }
        match &mut self.arch {
            Arch::Resnet {
                groups: g,
                pointwise,
                ..
            }
            | Arch::Mobilenetv2 {
                groups: g,
                pointwise,
                ..
            } => {
                *g = groups;
                if let Some(k) = kind {
                    *pointwise = k;
                }
                if *pointwise == ConvKind::Dense && groups > 1 {
                    *pointwise = ConvKind::Sgc;
                }
            }
            Arch::Vgg {
                stages,
                stage_groups,
                grouped,
                ..
            } => {
                let n = stages.len();
                let sg = stage_groups.get_or_insert_with(|| vec![1; n]);
                if sg.iter().all(|&g| g == 1) {
                    // No scheme yet: group every stage but the first (which sees the image).
                    for g in sg.iter_mut().skip(1) {
                        *g = groups;
                    }
                } else {
                    for g in sg.iter_mut().filter(|g| **g > 1) {
                        *g = groups;
                    }
                }
                if let Some(k) = kind {
                    if k == ConvKind::Dense {
                        sg.iter_mut().for_each(|g| *g = 1);
                    } else {
                        *grouped = k;
                    }
                }
            }
        }
        Ok(self)
    }

    /// G of the model's grouped convolutions (the largest stage G of a VGG scheme; 1 when
    /// nothing is grouped).
    pub fn groups(&self) -> usize {
        match &self.arch {
            Arch::Resnet { groups, .. } | Arch::Mobilenetv2 { groups, .. } => *groups,
            Arch::Vgg { stage_groups, .. } => stage_groups
                .as_ref()
                .and_then(|s| s.iter().copied().max())
                .unwrap_or(1),
        }
    }

    /// The same model with every convolution dense (the baseline of a grouping).
    pub fn ungrouped(mut self) -> Self {
        match &mut self.arch {
            Arch::Resnet {
                pointwise, groups, ..
            }
            | Arch::Mobilenetv2 {
                pointwise, groups, ..
            } => {
                *pointwise = ConvKind::Dense;
                *groups = 1;
            }
            Arch::Vgg { stage_groups, .. } => *stage_groups = None,
        }
        self
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
        self.check()?;
        match &self.arch {
            Arch::Vgg { .. } => vgg::build(self),
            Arch::Resnet { .. } => resnet::build(self),
            Arch::Mobilenetv2 { .. } => mobilenet::build(self),
        }
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

impl Scheme {
    /// A built-in scheme (`A`–`E`), a `.toml` file, or an inline list such as `1,1,8,8,8`.
    pub fn load(name: &str) -> Result<Self> {
        if let Some((_, text)) = BUILTIN_SCHEMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Self::from_toml(text, name);
        }
        if name.contains(',') || name.parse::<usize>().is_ok() {
            let groups = name
                .split(',')
                .map(|s| s.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| Error::UnknownScheme(name.to_string()))?;
            return Ok(Scheme {
                name: format!(
                    "g{}",
                    groups
                        .iter()
                        .map(|g| g.to_string())
                        .collect::<Vec<_>>()
                        .join("-")
                ),
                description: "custom stage groups".into(),
                stage_groups: groups,
            });
        }
        let p = Path::new(name);
        if name.ends_with(".toml") || p.exists() {
            return Self::from_toml(&read_text(p)?, name);
        }
        Err(Error::UnknownScheme(name.to_string()))
    }

    /// Parses a scheme from TOML text.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Model {
            model: origin.to_string(),
            msg: e.to_string(),
        })
    }
}
