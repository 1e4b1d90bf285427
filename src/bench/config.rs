//! What `gconv bench` runs: the suites ([`Suite`]), the sweep's layer shapes
//! ([`LayerShape`]) and the whole configuration ([`BenchConfig`], recorded in every report).

use super::ModelOptions;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Which suites to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    /// VGG-BN schemes A–E (Gong et al.).
    Paper1,
    /// ResNet-50 layer-wise times (Wang et al.).
    Paper2,
    /// MobileNetV2 layer-wise times, dense vs SGC vs FLGC on its wide 1×1 convs (Wang et al.'s
    /// CIFAR-10 setting).
    Mobilenet,
    /// Group-count sweep over single layers.
    Sweep,
    /// The user's own models (`BenchConfig::models`: ONNX files, exports, zoo names).
    Models,
    /// The roof of the adapter: streaming read GB/s and best GEMM GFLOP/s.
    Roofline,
}

/// One conv layer shape for the sweep: `C → C`, `k×k`, on `H×W`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerShape {
    /// Input = output channels.
    pub channels: usize,
    /// Spatial size (square).
    pub size: usize,
    /// Kernel size (1 or 3).
    pub kernel: usize,
}

impl std::str::FromStr for LayerShape {
    type Err = Error;
    /// `256x56:3` = 256 channels, 56×56, 3×3 kernel.
    fn from_str(s: &str) -> Result<Self> {
        let bad =
            || Error::InvalidArgument(format!("layer shape `{s}`: expected CxS:K, e.g. 256x56:3"));
        let (cs, k) = s.split_once(':').ok_or_else(bad)?;
        let (c, sz) = cs.split_once('x').ok_or_else(bad)?;
        let p = |v: &str| v.trim().parse::<usize>().map_err(|_| bad());
        let l = LayerShape {
            channels: p(c)?,
            size: p(sz)?,
            kernel: p(k)?,
        };
        if l.channels == 0 || l.size == 0 || l.kernel == 0 || l.kernel > l.size {
            return Err(bad());
        }
        Ok(l)
    }
}

/// What to run, how big, how often.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Suites, in order.
    pub suites: Vec<Suite>,
    /// Input height = width of the models.
    pub input_size: usize,
    /// Input height = width of paper1's VGG models when it differs from `input_size`
    /// (software adapters: the papers' 224² while the other suites stay small).
    pub paper1_input_size: Option<usize>,
    /// Width multiplier of the models (1 = published).
    pub width: f32,
    /// Classifier outputs (Gong et al. use 1120).
    pub num_classes: usize,
    /// The small batch (latency).
    pub batch: usize,
    /// The large batch (throughput); 0 skips it.
    pub large_batch: usize,
    /// Untimed runs before timing.
    pub warmup: usize,
    /// Timed runs.
    pub repeats: usize,
    /// VGG model of paper1.
    pub vgg: String,
    /// Schemes of paper1.
    pub schemes: Vec<String>,
    /// G of the SGC/FLGC ResNet variants of paper2.
    pub groups: Vec<usize>,
    /// Layers of the sweep.
    pub sweep_layers: Vec<LayerShape>,
    /// G values of the sweep.
    pub sweep_groups: Vec<usize>,
    /// Models of the `models` suite (paths of `.onnx` files or exports, zoo names).
    pub models: Vec<String>,
    /// What was set explicitly for the `models` suite's zoo models (input size, width,
    /// classes, G); an ONNX model or an export, which fix their own, refuses them. (Reports
    /// written before it existed read as none set.)
    #[serde(default)]
    pub model_options: ModelOptions,
    /// Grouping scheme applied to the zoo models of the `models` suite (a scheme `.toml`
    /// such as `gconv search` writes, A–E, or stage groups like `1,1,8,8,8`).
    #[serde(default)]
    pub scheme: Option<String>,
    /// Per-layer rows for paper1 too, and per-layer tables in the text report.
    pub per_layer: bool,
    /// Use the kernel choices cached by `gconv tune` (for `batch`).
    pub tuned: bool,
    /// Tune every model's layers missing from the cache before timing it (GPU only).
    pub tune: bool,
    /// How the GPU stores the models' weights and activations (`--precision`; f32 unless set, and in
    /// reports written before it existed).
    #[serde(default)]
    pub precision: crate::gpu::Precision,
}

impl BenchConfig {
    /// The default: every suite, sized for the device. On a real GPU everything at 224².
    /// On a CPU-like adapter such as lavapipe or on the CPU path, paper1 at the papers' 224²
    /// and the other suites at 64², fewer runs and a batch of 4 for throughput, so a run takes
    /// about four minutes there (lavapipe on this project's busy 2-core machine).
    pub fn default_for(software: bool) -> Self {
        Self {
            suites: vec![Suite::Paper1, Suite::Paper2, Suite::Mobilenet, Suite::Sweep],
            input_size: if software { 64 } else { 224 },
            paper1_input_size: software.then_some(224),
            width: 1.0,
            num_classes: 1000,
            batch: 1,
            large_batch: if software { 4 } else { 32 },
            warmup: if software { 1 } else { 5 },
            repeats: if software { 3 } else { 20 },
            vgg: "vgg13bn".into(),
            schemes: ["A", "B", "C", "D", "E"].map(String::from).to_vec(),
            groups: vec![4, 8],
            sweep_layers: if software {
                vec![
                    LayerShape {
                        channels: 256,
                        size: 28,
                        kernel: 3,
                    },
                    LayerShape {
                        channels: 256,
                        size: 28,
                        kernel: 1,
                    },
                ]
            } else {
                vec![
                    LayerShape {
                        channels: 256,
                        size: 56,
                        kernel: 3,
                    },
                    LayerShape {
                        channels: 512,
                        size: 28,
                        kernel: 1,
                    },
                ]
            },
            sweep_groups: vec![1, 2, 4, 8, 16, 32, 64],
            models: Vec::new(),
            model_options: ModelOptions::default(),
            scheme: None,
            per_layer: false,
            tuned: true,
            tune: false,
            precision: crate::gpu::Precision::F32,
        }
    }
}
