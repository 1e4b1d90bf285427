//! Options shared by sub-commands: which model, how grouped, what input.

use clap::ValueEnum;
use gconv::zoo::{ConvKind, ModelSpec, Scheme};
use gconv::{Error, Result};

/// How the grouped convolutions of a model are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConvArg {
    /// Dense convolutions (G = 1).
    Dense,
    /// Standard group convolution.
    Sgc,
    /// Fully learnable group convolution.
    Flgc,
}

impl From<ConvArg> for ConvKind {
    fn from(c: ConvArg) -> Self {
        match c {
            ConvArg::Dense => ConvKind::Dense,
            ConvArg::Sgc => ConvKind::Sgc,
            ConvArg::Flgc => ConvKind::Flgc,
        }
    }
}

/// How FLGC selection matrices start (see `gconv::train::selection`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FlgcInitArg {
    /// The SGC partition ahead by a margin, plus small noise: no empty group at the start.
    Balanced,
    /// Standard Gaussian, as in Wang et al.
    Gaussian,
}

impl From<FlgcInitArg> for gconv::train::selection::FlgcInit {
    fn from(a: FlgcInitArg) -> Self {
        match a {
            FlgcInitArg::Balanced => Self::Balanced,
            FlgcInitArg::Gaussian => Self::Gaussian,
        }
    }
}

/// Which model, and its variations.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Zoo model name (see `gconv models`), a path to a model .toml file, an ONNX model
    /// (.onnx), or a model written by `gconv export` (.safetensors; `info`, `infer`).
    #[arg(long, short)]
    pub model: String,
    /// Grouping scheme: A–E (Gong et al., VGG), a scheme .toml file (e.g. written by
    /// `gconv search`), or stage groups like 1,1,8,8,8.
    #[arg(long)]
    pub scheme: Option<String>,
    /// Groups of the grouped convolutions (ResNet: block 1×1 convs; VGG: grouped stages).
    #[arg(long)]
    pub groups: Option<usize>,
    /// Kind of the grouped convolutions.
    #[arg(long, value_enum)]
    pub conv: Option<ConvArg>,
    /// Classifier outputs.
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Width multiplier on hidden channels.
    #[arg(long)]
    pub width: Option<f32>,
}

/// Parses `CxHxW`.
pub fn parse_input(s: &str) -> Result<[usize; 3]> {
    let v: Vec<usize> = s
        .split(['x', 'X', ','])
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            Error::InvalidArgument(format!("--input {s}: expected CxHxW, e.g. 3x224x224"))
        })?;
    match v[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok([c, h, w]),
        _ => Err(Error::InvalidArgument(format!(
            "--input {s}: expected CxHxW with positive sizes"
        ))),
    }
}

impl ModelArgs {
    /// The model description with every option applied, and the input size if given.
    pub fn spec(&self, input: Option<[usize; 3]>) -> Result<ModelSpec> {
        let mut spec = ModelSpec::load(&self.model)?;
        if let Some(i) = input {
            spec.input = i;
        }
        if let Some(n) = self.num_classes {
            spec.num_classes = n;
        }
        if let Some(w) = self.width {
            spec.width = w;
        }
        if let Some(s) = &self.scheme {
            spec = spec.with_scheme(&Scheme::load(s)?)?;
        }
        match (self.groups, self.conv) {
            (Some(g), c) => spec = spec.with_groups(g, c.map(Into::into))?,
            (None, Some(c)) => {
                let g = spec.groups();
                spec = spec.with_groups(g, Some(c.into()))?;
            }
            (None, None) => {}
        }
        Ok(spec)
    }

    /// An error naming every model option given (`--scheme`, `--groups`, `--conv`,
    /// `--num-classes`, `--width`, and `extra` flags set), for a model file that fixes its
    /// own graph (`kind`: "an ONNX model", "an exported model"): refused rather than ignored.
    pub fn refuse_options(&self, kind: &str, extra: &[(&str, bool)]) -> Result<()> {
        refuse_options(
            &self.model,
            kind,
            &[
                &[
                    ("--scheme", self.scheme.is_some()),
                    ("--groups", self.groups.is_some()),
                    ("--conv", self.conv.is_some()),
                    ("--num-classes", self.num_classes.is_some()),
                    ("--width", self.width.is_some()),
                ][..],
                extra,
            ]
            .concat(),
        )
    }

    /// The same model without grouping (the baseline of a reduction), if this one is grouped.
    pub fn baseline(&self, input: Option<[usize; 3]>) -> Result<Option<ModelSpec>> {
        if self.scheme.is_none() && self.groups.is_none() && self.conv.is_none() {
            return Ok(None);
        }
        let plain = ModelArgs {
            scheme: None,
            groups: None,
            conv: None,
            ..self.clone()
        };
        Ok(Some(plain.spec(input)?.ungrouped()))
    }
}

/// An error naming the `flags` that are set, which `model` (`kind`: "an ONNX model", …)
/// cannot take; `Ok` when none is.
pub fn refuse_options(model: &str, kind: &str, flags: &[(&str, bool)]) -> Result<()> {
    let given: Vec<&str> = flags.iter().filter(|f| f.1).map(|f| f.0).collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "{model}: {kind} fixes its own graph and input; {} would be ignored, so it is refused",
        given.join(", ")
    )))
}

/// `--model` naming an ONNX file (by its `.onnx` extension).
pub fn onnx_path(model: &str) -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(model);
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
        .then(|| p.to_path_buf())
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Where to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// A GPU adapter if there is one, else the CPU (with a warning).
    Auto,
    /// A GPU adapter (error if none).
    Gpu,
    /// The CPU reference path.
    Cpu,
}

impl From<DeviceArg> for gconv::Device {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Auto => gconv::Device::Auto,
            DeviceArg::Gpu => gconv::Device::Gpu,
            DeviceArg::Cpu => gconv::Device::Cpu,
        }
    }
}

/// `--precision`'s parser.
pub fn parse_precision(s: &str) -> std::result::Result<gconv::Precision, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

/// Refuses `--precision f16` on the CPU reference (it computes in f32).
pub fn check_precision(p: gconv::Precision, on_cpu: bool) -> Result<()> {
    if p == gconv::Precision::F16 && on_cpu {
        return Err(Error::InvalidArgument(
            "--precision f16 stores GPU weights as halves; the CPU reference computes in f32 \
             (use --device gpu)"
                .into(),
        ));
    }
    Ok(())
}

/// One line saying what a GPU model loaded with `--precision f16` stores as halves, after a
/// pass at `batch`: how many of its convolutions and fully connected layers store f16 weights
/// (the others' kernels read f32), and whether its activations are f16 or, if not, why
/// (`gconv::gpu::precision`).
pub fn precision_notice(model: &mut gconv::Model, p: gconv::Precision, batch: usize) {
    if p != gconv::Precision::F16 {
        return;
    }
    if let Some(m) = model.gpu_model() {
        let ([convs, half_convs], [fcs, half_fcs]) = (m.f16_convs(), m.f16_linears());
        let acts = match m.activation_precision(batch) {
            Ok((gconv::Precision::F16, _)) => "activations f16".to_string(),
            Ok((_, Some(why))) => format!("activations stay f32 ({why})"),
            _ => "activations f32".to_string(),
        };
        // The tensor-core tier: how many convolutions run on it, or that there is none.
        let on_matrices = m.kernels(batch).map_or(0, |k| {
            k.iter().filter(|(_, name)| name.contains("coop_")).count()
        });
        let matrices = match m.context().cooperative_matrix {
            Some(s) => format!("{on_matrices} convolutions on {s}×{s} cooperative matrices"),
            None => "no cooperative matrices on this adapter".to_string(),
        };
        eprintln!(
            "precision f16: weights of {half_convs} of {convs} convolutions and {half_fcs} of \
             {fcs} fully connected layers (the others' kernels read f32); {acts}; {matrices}"
        );
    }
}
