//! The architecture families of a [`ModelSpec`](super::ModelSpec) and their options.

use serde::{Deserialize, Serialize};

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
        /// G per stage (`layer1` … `layer4`) for the block 1×1 convs; when given, replaces
        /// `groups` (a scheme's `stage_groups`, e.g. found by `gconv search`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage_groups: Option<Vec<usize>>,
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
        /// G per stage for those convs: the seven inverted-residual stages (`stage1` …
        /// `stage7`) and the last 1×1 conv (`head`); when given, replaces `groups`. A stage
        /// without such a conv (`stage1`) must have G = 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage_groups: Option<Vec<usize>>,
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
