//! Grouping schemes: G per stage (Gong et al.'s A–E for VGG; the block 1×1 convs of a ResNet;
//! the grouped 1×1 convs of MobileNetV2) and, optionally, per layer — as data, in a `.toml`
//! file that `--scheme FILE` takes everywhere, and as written by `gconv search`.
//!
//! ```toml
//! name = "E"
//! description = "Gong et al. scheme E: conv-2 to conv-5 grouped, G = 32"
//! stage_groups = [1, 32, 32, 32, 32]
//! # optional: conv = "sgc" | "flgc" | "dense"; model = "vgg13bn" (what it was made for);
//! # [layer_groups] "features.7" = 16 (single layers, overriding their stage)
//! ```

use super::{Arch, ConvKind, ModelSpec};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A grouping scheme: the number of groups of each stage and/or of single layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheme {
    /// Scheme name.
    pub name: String,
    /// One line for humans.
    #[serde(default)]
    pub description: String,
    /// The model it was made for (informational: any model with as many stages accepts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// How the grouped convolutions are grouped; absent: the model's own kind (SGC for a
    /// model whose kind is dense).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv: Option<ConvKind>,
    /// Groups per stage ([`ModelSpec::stage_names`]: VGG `conv-1` … `conv-5`; ResNet
    /// `layer1` … `layer4`; MobileNetV2 `stage1` … `stage7`, `head`); empty: leave the
    /// stages as the model has them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stage_groups: Vec<usize>,
    /// Groups of single grouped convolutions by node name, overriding their stage's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub layer_groups: BTreeMap<String, usize>,
}

/// The built-in schemes (Gong et al. A–E): `(name, toml text)`.
pub const BUILTIN_SCHEMES: &[(&str, &str)] = &[
    ("A", include_str!("../../models/schemes/A.toml")),
    ("B", include_str!("../../models/schemes/B.toml")),
    ("C", include_str!("../../models/schemes/C.toml")),
    ("D", include_str!("../../models/schemes/D.toml")),
    ("E", include_str!("../../models/schemes/E.toml")),
];

/// A convolution whose G a scheme sets: its node name and the index of its stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupSite {
    /// Node name (`features.7`, `layer3.0.conv1`, `features.14.conv.0.0`).
    pub node: String,
    /// Index into [`ModelSpec::stage_names`].
    pub stage: usize,
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
            let s = Scheme::stages(
                format!("g{}", join(&groups, "-")),
                "custom stage groups",
                groups,
            );
            s.check(name)?;
            return Ok(s);
        }
        let p = Path::new(name);
        if name.ends_with(".toml") || p.exists() {
            // Capped, regular files only, UTF-8 checked (see `crate::limits`).
            return Self::from_toml(&crate::fs::read_text_file(p)?, name);
        }
        Err(Error::UnknownScheme(name.to_string()))
    }

    /// A scheme of stage groups only.
    pub fn stages(name: impl Into<String>, description: &str, groups: Vec<usize>) -> Self {
        Self {
            name: name.into(),
            description: description.to_string(),
            model: None,
            conv: None,
            stage_groups: groups,
            layer_groups: BTreeMap::new(),
        }
    }

    /// Parses a scheme from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let s: Scheme = toml::from_str(text).map_err(|e| Error::Model {
            model: origin.to_string(),
            msg: e.to_string(),
        })?;
        s.check(origin)?;
        Ok(s)
    }

    /// The scheme as a `.toml` file's text (what [`Scheme::from_toml`] reads back).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a scheme serialises to TOML")
    }

    fn check(&self, origin: &str) -> Result<()> {
        let bad = |msg: String| {
            Err(Error::Model {
                model: origin.to_string(),
                msg,
            })
        };
        if self.stage_groups.is_empty() && self.layer_groups.is_empty() {
            return bad("a scheme needs stage_groups or layer_groups".into());
        }
        if self.stage_groups.contains(&0) || self.layer_groups.values().any(|&g| g == 0) {
            return bad("groups must be at least 1".into());
        }
        Ok(())
    }
}

pub(crate) fn join(v: &[usize], sep: &str) -> String {
    v.iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

impl ModelSpec {
    /// The stages a scheme's `stage_groups` address, in order: VGG `conv-1` … (Gong et al.'s
    /// names), ResNet `layer1` … `layer4`, MobileNetV2 `stage1` … `stage7` and `head`.
    pub fn stage_names(&self) -> Vec<String> {
        match &self.arch {
            Arch::Vgg { stages, .. } => (1..=stages.len()).map(|i| format!("conv-{i}")).collect(),
            Arch::Resnet { .. } => (1..=4).map(|i| format!("layer{i}")).collect(),
            Arch::Mobilenetv2 { .. } => (1..=7)
                .map(|i| format!("stage{i}"))
                .chain(["head".to_string()])
                .collect(),
        }
    }

    /// The convolutions a scheme groups, in graph order: every VGG conv; the block 1×1 convs
    /// of a ResNet (downsample included); MobileNetV2's 1×1 convs with more than
    /// `grouped_above` filters.
    pub fn group_sites(&self) -> Result<Vec<GroupSite>> {
        Ok(self.build_with_sites()?.1)
    }

    /// Applies a grouping scheme: its stage groups (as many as the model has stages), its
    /// layer groups and its kind.
    pub fn with_scheme(mut self, scheme: &Scheme) -> Result<Self> {
        let names = self.stage_names();
        let sg = &scheme.stage_groups;
        if !sg.is_empty() && sg.len() != names.len() {
            return Err(self.err(format!(
                "scheme {} gives {} stage groups, the model has {} stages ({})",
                scheme.name,
                sg.len(),
                names.len(),
                names.join(", ")
            )));
        }
        let any_grouped = sg
            .iter()
            .chain(scheme.layer_groups.values())
            .any(|&g| g > 1);
        match &mut self.arch {
            Arch::Vgg {
                stage_groups,
                grouped,
                ..
            } => {
                if !sg.is_empty() {
                    *stage_groups = Some(sg.clone());
                }
                if let Some(k) = scheme.conv {
                    *grouped = k;
                }
            }
            Arch::Resnet {
                stage_groups,
                pointwise,
                ..
            }
            | Arch::Mobilenetv2 {
                stage_groups,
                pointwise,
                ..
            } => {
                if !sg.is_empty() {
                    *stage_groups = Some(sg.clone());
                }
                match scheme.conv {
                    Some(k) => *pointwise = k,
                    None if *pointwise == ConvKind::Dense && any_grouped => {
                        *pointwise = ConvKind::Sgc
                    }
                    None => {}
                }
            }
        }
        self.layer_groups.extend(scheme.layer_groups.clone());
        self.name = format!("{}-{}", self.name, scheme.name);
        self.check()?;
        Ok(self)
    }

    /// Sets G of the grouped convolutions (ResNet: the block 1×1 convs; MobileNetV2: the 1×1
    /// convs with more than 96 filters; VGG: every grouped stage; of a scheme: every stage
    /// and layer it groups), and optionally their kind (dense / sgc / flgc).
    pub fn with_groups(mut self, groups: usize, kind: Option<ConvKind>) -> Result<Self> {
        if groups == 0 {
            return Err(self.err("groups must be at least 1"));
        }
        let regroup = |v: &mut [usize]| v.iter_mut().filter(|g| **g > 1).for_each(|g| *g = groups);
        let dense = kind == Some(ConvKind::Dense);
        self.layer_groups.values_mut().for_each(|g| {
            if dense {
                *g = 1
            } else if *g > 1 {
                *g = groups
            }
        });
        match &mut self.arch {
            Arch::Resnet {
                groups: g,
                pointwise,
                stage_groups,
                ..
            }
            | Arch::Mobilenetv2 {
                groups: g,
                pointwise,
                stage_groups,
                ..
            } => {
                *g = groups;
                if let Some(sg) = stage_groups {
                    regroup(sg);
                }
                if let Some(k) = kind {
                    *pointwise = k;
                }
                if *pointwise == ConvKind::Dense && groups > 1 && !dense {
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
                    regroup(sg);
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

    /// G of the model's grouped convolutions (the largest of a scheme's; 1 when nothing is
    /// grouped).
    pub fn groups(&self) -> usize {
        let layers = self.layer_groups.values().copied().max().unwrap_or(1);
        let stages = match &self.arch {
            Arch::Resnet {
                groups,
                stage_groups,
                ..
            }
            | Arch::Mobilenetv2 {
                groups,
                stage_groups,
                ..
            } => stage_groups
                .as_ref()
                .and_then(|s| s.iter().copied().max())
                .unwrap_or(*groups),
            Arch::Vgg { stage_groups, .. } => stage_groups
                .as_ref()
                .and_then(|s| s.iter().copied().max())
                .unwrap_or(1),
        };
        stages.max(layers)
    }

    /// The same model with every convolution dense (the baseline of a grouping).
    pub fn ungrouped(mut self) -> Self {
        self.layer_groups.clear();
        match &mut self.arch {
            Arch::Resnet {
                pointwise,
                groups,
                stage_groups,
                ..
            }
            | Arch::Mobilenetv2 {
                pointwise,
                groups,
                stage_groups,
                ..
            } => {
                *pointwise = ConvKind::Dense;
                *groups = 1;
                *stage_groups = None;
            }
            Arch::Vgg { stage_groups, .. } => *stage_groups = None,
        }
        self
    }
}

/// What the builders ask for each grouped convolution: its G (the layer's own, else its
/// stage's, else the model's), recording it as a [`GroupSite`].
pub(super) struct Grouping<'a> {
    layers: &'a BTreeMap<String, usize>,
    stages: Option<&'a [usize]>,
    default: usize,
    pub(super) sites: Vec<GroupSite>,
}

impl<'a> Grouping<'a> {
    pub(super) fn new(spec: &'a ModelSpec, stages: Option<&'a [usize]>, default: usize) -> Self {
        Self {
            layers: &spec.layer_groups,
            stages,
            default,
            sites: Vec::new(),
        }
    }

    /// G of the grouped conv `node` of stage `stage`.
    pub(super) fn site(&mut self, node: &str, stage: usize) -> usize {
        self.sites.push(GroupSite {
            node: node.to_string(),
            stage,
        });
        match self.layers.get(node) {
            Some(&g) => g,
            None => self
                .stages
                .and_then(|s| s.get(stage).copied())
                .unwrap_or(self.default),
        }
    }

    /// Every G a layer of the model may get (for channel alignment).
    pub(super) fn all(&self) -> impl Iterator<Item = usize> + '_ {
        let stages = self.stages.unwrap_or(std::slice::from_ref(&self.default));
        stages.iter().chain(self.layers.values()).copied()
    }
}
