//! What to run, as the window edits it: the bench configuration with its lists as text, so
//! a half-typed value is kept and named when wrong instead of lost.

use gconv::bench::{BenchConfig, LayerShape, Suite};
use gconv::zoo::BUILTIN_MODELS;

/// Every suite, in the order the form lists them.
pub const SUITES: [(Suite, &str); 6] = [
    (Suite::Paper1, "paper1: VGG-BN schemes A–E (Gong et al.)"),
    (Suite::Paper2, "paper2: ResNet-50 layer-wise (Wang et al.)"),
    (
        Suite::Mobilenet,
        "mobilenet: MobileNetV2 dense / SGC / FLGC",
    ),
    (Suite::Sweep, "sweep: single layers over G"),
    (Suite::Models, "models: your models below"),
    (Suite::Roofline, "roofline: stream GB/s and best GEMM"),
];

/// A zoo model with its variations, being put together.
#[derive(Clone, Debug, PartialEq)]
pub struct ZooEntry {
    /// Zoo name.
    pub name: String,
    /// Scheme (VGG), empty for none.
    pub scheme: String,
    /// Groups, empty for the model's own.
    pub groups: String,
    /// `""`, `dense`, `sgc` or `flgc`.
    pub conv: String,
    /// Width multiplier, empty for 1.
    pub width: String,
    /// Why the last one could not be added.
    pub error: Option<String>,
}

impl Default for ZooEntry {
    fn default() -> Self {
        Self {
            name: BUILTIN_MODELS[0].0.to_string(),
            scheme: String::new(),
            groups: String::new(),
            conv: String::new(),
            width: String::new(),
            error: None,
        }
    }
}

impl ZooEntry {
    /// The `models` suite's spelling: `vgg13bn scheme=E width=0.5`
    /// ([`gconv::bench::zoo_spec`]).
    pub fn spec_string(&self) -> String {
        let mut s = self.name.trim().to_string();
        for (k, v) in [
            ("scheme", &self.scheme),
            ("groups", &self.groups),
            ("conv", &self.conv),
            ("width", &self.width),
        ] {
            if !v.trim().is_empty() {
                s += &format!(" {k}={}", v.trim());
            }
        }
        s
    }
}

/// The form.
#[derive(Clone, Debug, PartialEq)]
pub struct RunForm {
    /// Which of [`SUITES`] run.
    pub suites: [bool; 6],
    /// Input size of the models.
    pub input_size: usize,
    /// paper1's own input size, 0 = `input_size`.
    pub paper1_size: usize,
    /// Width multiplier.
    pub width: f32,
    /// Classifier outputs.
    pub num_classes: usize,
    /// Latency batch.
    pub batch: usize,
    /// Throughput batch (0 skips it).
    pub large_batch: usize,
    /// Untimed runs.
    pub warmup: usize,
    /// Timed runs.
    pub repeats: usize,
    /// paper1's VGG.
    pub vgg: String,
    /// paper1's schemes, comma-separated.
    pub schemes: String,
    /// paper2's / mobilenet's G, comma-separated.
    pub groups: String,
    /// Sweep layers `CxS:K`, comma-separated.
    pub sweep_layers: String,
    /// Sweep G, comma-separated.
    pub sweep_groups: String,
    /// The `models` suite's models (ONNX paths, zoo spellings).
    pub models: Vec<String>,
    /// The zoo model being added.
    pub zoo: ZooEntry,
    /// Per-layer rows for paper1 and per-layer tables.
    pub per_layer: bool,
    /// Use `gconv tune`'s cached kernel choices.
    pub tuned: bool,
    /// Tune missing layers first.
    pub tune: bool,
    /// GPU weight storage (`--precision`).
    pub precision: gconv::Precision,
    /// What `--model`'s zoo models were told on the command line (kept as given).
    pub model_options: gconv::bench::ModelOptions,
    /// The scheme applied to the zoo models (`--scheme`), kept as given.
    pub scheme: Option<String>,
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

fn list<T>(field: &str, text: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    let v: Vec<T> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse(s).ok_or_else(|| format!("{field}: `{s}` is not valid")))
        .collect::<Result<_, _>>()?;
    if v.is_empty() {
        return Err(format!("{field}: give at least one value"));
    }
    Ok(v)
}

impl RunForm {
    /// The form showing `c`.
    pub fn from_config(c: &BenchConfig) -> Self {
        let layers: Vec<String> = c
            .sweep_layers
            .iter()
            .map(|l| format!("{}x{}:{}", l.channels, l.size, l.kernel))
            .collect();
        Self {
            suites: SUITES.map(|(s, _)| c.suites.contains(&s)),
            input_size: c.input_size,
            paper1_size: c.paper1_input_size.unwrap_or(0),
            width: c.width,
            num_classes: c.num_classes,
            batch: c.batch,
            large_batch: c.large_batch,
            warmup: c.warmup,
            repeats: c.repeats,
            vgg: c.vgg.clone(),
            schemes: c.schemes.join(","),
            groups: join(&c.groups),
            sweep_layers: layers.join(","),
            sweep_groups: join(&c.sweep_groups),
            models: c.models.clone(),
            zoo: ZooEntry::default(),
            per_layer: c.per_layer,
            tuned: c.tuned,
            precision: c.precision,
            model_options: c.model_options.clone(),
            scheme: c.scheme.clone(),
            tune: c.tune,
        }
    }

    /// The configuration the form asks for, or what is wrong with it (naming the field).
    pub fn to_config(&self) -> Result<BenchConfig, String> {
        let suites: Vec<Suite> = SUITES
            .iter()
            .zip(self.suites)
            .filter(|(_, on)| *on)
            .map(|((s, _), _)| *s)
            .collect();
        if suites.is_empty() {
            return Err("choose at least one suite".into());
        }
        if suites.contains(&Suite::Models) && self.models.is_empty() {
            return Err(
                "the models suite needs at least one model (add an ONNX file or a zoo model)"
                    .into(),
            );
        }
        if self.batch == 0 || self.repeats == 0 || self.input_size == 0 {
            return Err("batch, timed runs and input size must be at least 1".into());
        }
        if !(self.width.is_finite() && self.width > 0.0) {
            return Err("width must be above 0".into());
        }
        let positive = |s: &str| s.parse::<usize>().ok().filter(|g| *g > 0);
        Ok(BenchConfig {
            suites,
            input_size: self.input_size,
            paper1_input_size: (self.paper1_size > 0).then_some(self.paper1_size),
            width: self.width,
            num_classes: self.num_classes.max(1),
            batch: self.batch,
            large_batch: self.large_batch,
            warmup: self.warmup,
            repeats: self.repeats,
            vgg: self.vgg.clone(),
            schemes: list("schemes", &self.schemes, |s| Some(s.to_string()))?,
            groups: list("groups", &self.groups, positive)?,
            sweep_layers: list("sweep layers", &self.sweep_layers, |s| {
                s.parse::<LayerShape>().ok()
            })?,
            sweep_groups: list("sweep G", &self.sweep_groups, positive)?,
            models: self.models.clone(),
            per_layer: self.per_layer,
            tuned: self.tuned,
            tune: self.tune,
            precision: self.precision,
            model_options: self.model_options.clone(),
            scheme: self.scheme.clone(),
        })
    }

    /// Adds the zoo model being put together, if the zoo builds it (else keeps the reason).
    pub fn add_zoo_model(&mut self) {
        let s = self.zoo.spec_string();
        self.zoo.error = gconv::bench::zoo_spec(&s)
            .and_then(|spec| spec.build())
            .err()
            .map(|e| e.to_string());
        if self.zoo.error.is_none() {
            self.add_model(s);
        }
    }

    /// Adds a model to the `models` suite (and selects the suite).
    pub fn add_model(&mut self, what: String) {
        if !self.models.contains(&what) {
            self.models.push(what);
        }
        self.suites[4] = true;
    }
}
