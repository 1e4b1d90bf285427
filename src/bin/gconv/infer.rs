//! `gconv infer`: run a model on an input (.npy or an image), write the output as .npy.

use crate::common::{onnx_path, parse_input, DeviceArg, ModelArgs};
use gconv::testing::{compare, Tolerance};
use gconv::{io, Device, Error, LoadOptions, Result, Runtime, Tensor, Weights};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// How FLGC layers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FlgcArg {
    /// Exported by index re-ordering into an uneven group conv (fast).
    Reordered,
    /// Dense conv with W⊙M, as in training (reference).
    Masked,
}

impl From<FlgcArg> for gconv::FlgcMode {
    fn from(f: FlgcArg) -> Self {
        match f {
            FlgcArg::Reordered => gconv::FlgcMode::Reordered,
            FlgcArg::Masked => gconv::FlgcMode::Masked,
        }
    }
}

/// Options of `gconv infer`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Weights as safetensors with torchvision state_dict keys (default: seeded He init).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Input: .npy (f32, [N,C,H,W] or [C,H,W]; the model takes its size) or an image file
    /// (png/jpeg, resized to the model input, or to --image-size).
    #[arg(long)]
    input: PathBuf,
    /// Size an image input is resized to, as CxHxW (default: the model's input).
    #[arg(long)]
    image_size: Option<String>,
    /// Where to write the output (.npy).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// Run on both the GPU and the CPU reference; exit 1 if they differ beyond the model tolerance.
    #[arg(long)]
    compare: bool,
    /// How FLGC layers run (default: reordered).
    #[arg(long, value_enum)]
    flgc: Option<FlgcArg>,
    /// Keep batch norms as separate ops instead of folding them into the convs.
    #[arg(long)]
    no_fold_bn: bool,
    /// Seed of the initialisation when no weights are given (default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Print a JSON report.
    #[arg(long)]
    json: bool,
    /// Print the kernel each layer runs (GPU; always in the JSON report).
    #[arg(long)]
    kernels: bool,
    /// Ignore the kernel choices cached by `gconv tune` (same as GCONV_TUNE=off).
    #[arg(long)]
    no_tune: bool,
    /// GPU storage precision: f32, or f16 — weights where the layer's kernel reads halves,
    /// activations where the adapter has SHADER_F16 and every kernel of the model stores
    /// them; f32 accumulation (--compare then uses the f16 tolerance).
    #[arg(long, default_value = "f32", value_parser = crate::common::parse_precision)]
    precision: gconv::Precision,
    /// Run every layer with the kernel that runs fastest. By default, since infer runs the
    /// model once, a small convolution on a CPU adapter (lavapipe) takes a kernel that
    /// compiles in a fraction of the time (README "Cold start"); use this to time one pass
    /// as a long-running program would run it (gconv bench always does).
    #[arg(long)]
    fast_kernels: bool,
}

impl Args {
    /// Refuses what a model file with its own graph and weights (`kind`) would ignore.
    fn refuse_for_fixed(&self, kind: &str, no_fold_bn: bool) -> Result<()> {
        self.model.refuse_options(
            kind,
            &[
                ("--weights", self.weights.is_some()),
                ("--compare", self.compare),
                ("--image-size", self.image_size.is_some()),
                ("--seed", self.seed.is_some()),
                ("--flgc", self.flgc.is_some()),
                ("--no-fold-bn", no_fold_bn && self.no_fold_bn),
            ],
        )
    }

    /// The batch whose tuned kernel choices are used, unless --no-tune.
    fn tuned(&self, batch: usize) -> Option<usize> {
        (!self.no_tune).then_some(batch)
    }
}

/// The kernel of each dispatching layer of a GPU model at `batch`.
fn kernels_of(model: &mut gconv::Model, batch: usize) -> Result<Option<Vec<(String, String)>>> {
    model.gpu_model().map(|g| g.kernels(batch)).transpose()
}

/// Prints `layer  kernel` lines when --kernels was given.
fn print_kernels(a: &Args, model: &mut gconv::Model, batch: usize) -> Result<()> {
    if !a.kernels {
        return Ok(());
    }
    match kernels_of(model, batch)? {
        Some(k) => {
            println!("kernels:");
            for (layer, kernel) in k {
                println!("  {layer:<28} {kernel}");
            }
        }
        None => println!("kernels: none (the CPU reference path)"),
    }
    Ok(())
}

fn is_npy(path: &std::path::Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

fn read_input(path: &std::path::Path, chw: [usize; 3]) -> Result<Tensor> {
    let t = if is_npy(path) {
        io::read_npy(path)?
    } else {
        io::read_image(path, chw[0], [chw[1], chw[2]])?
    };
    match t.shape().len() {
        3 => {
            let s = t.shape().to_vec();
            t.reshape(&[1, s[0], s[1], s[2]])
        }
        4 => Ok(t),
        _ => Err(Error::tensor_shape(
            format!("input {}", path.display()),
            "[N, C, H, W] or [C, H, W]",
            t.shape(),
        )),
    }
}

/// `--model` naming a file written by `gconv export` (graph + weights in one safetensors):
/// `Ok(Some(path))`. A zoo name or a TOML file: `Ok(None)`. Any other file — a training
/// checkpoint, plain weights, binary garbage, a special file — is an error that says what
/// the file is and what to do with it, rather than a TOML parser's complaint about UTF-8.
fn exported_model(model: &str) -> Result<Option<PathBuf>> {
    let p = std::path::Path::new(model);
    let is_toml = p
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let builtin = gconv::zoo::BUILTIN_MODELS.iter().any(|(n, _)| *n == model);
    // Zoo names, missing paths and special files go to the zoo, which names the problem.
    if is_toml || builtin || !std::fs::metadata(p).is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let show = p.display();
    let meta = match io::read_safetensors_metadata(p) {
        Ok(meta) => meta,
        // Not safetensors: a model description (TOML text) without the extension, unless
        // it is not text either.
        Err(Error::Format { msg, .. }) => {
            return match gconv::fs::read_text_file(p) {
                Ok(_) => Ok(None),
                Err(_) => Err(Error::format(
                    p,
                    format!(
                        "neither a model description (TOML text) nor a model written by \
                         `gconv export` (safetensors): {msg}"
                    ),
                )),
            }
        }
        Err(e) => return Err(e),
    };
    if meta.contains_key(io::exported::GRAPH_KEY) {
        return Ok(Some(p.to_path_buf()));
    }
    let msg = if meta.contains_key(CHECKPOINT_KEY) {
        format!(
            "a training checkpoint, not a model: export it first \
             (`gconv export --checkpoint {show} --out model.safetensors`, then \
             `gconv infer --model model.safetensors`), or score it with `gconv eval --checkpoint {show}`"
        )
    } else {
        format!(
            "a weights file, not a model: name the model with --model (a zoo name or a .toml \
             file) and pass this file with `--weights {show}`"
        )
    };
    Err(Error::format(p, msg))
}

/// Metadata key of the model description in a `gconv train` checkpoint.
const CHECKPOINT_KEY: &str = "gconv_model";

/// Runs an exported model (its graph is fixed: FLGC already re-ordered, BN already folded).
fn run_exported(a: &Args, path: &std::path::Path) -> Result<ExitCode> {
    // BN is folded at export (or kept by `gconv export --no-fold-bn`).
    a.refuse_for_fixed("an exported model (it carries its weights)", true)?;
    let (graph, weights, _) = io::read_exported(path)?;
    let x = read_input(&a.input, graph.input_shape())?;
    let rt = Runtime::new(a.device.into())?;
    let opts = LoadOptions {
        fold_bn: false,
        tuned_batch: a.tuned(x.shape()[0]),
        precision: a.precision,
        one_shot: !a.fast_kernels,
        ..Default::default()
    };
    let name = graph.name.clone();
    crate::common::check_precision(a.precision, !rt.is_gpu())?;
    let mut model = rt.load_graph(graph, weights, &opts)?;
    let t0 = Instant::now();
    let y = model.run(&x)?;
    let secs = t0.elapsed().as_secs_f64();
    crate::common::precision_notice(&mut model, a.precision, x.shape()[0]);
    if let Some(out) = &a.output {
        io::write_npy(out, &y)?;
    }
    println!(
        "{name} (exported): input {:?} → output {:?} in {:.1} ms on {}",
        x.shape(),
        y.shape(),
        secs * 1e3,
        rt.describe()
    );
    print_kernels(a, &mut model, x.shape()[0])?;
    Ok(ExitCode::SUCCESS)
}

/// Runs an ONNX model (imported, channel permutations folded, BN folded unless asked not).
fn run_onnx(a: &Args, path: &std::path::Path) -> Result<ExitCode> {
    a.refuse_for_fixed("an ONNX model (it carries its weights)", false)?;
    let rt = Runtime::new(a.device.into())?;
    let m = gconv::onnx::read_onnx(path)?;
    let x = read_input(&a.input, m.graph.input_shape())?;
    let opts = LoadOptions {
        fold_bn: !a.no_fold_bn,
        tuned_batch: a.tuned(x.shape()[0]),
        precision: a.precision,
        one_shot: !a.fast_kernels,
        ..Default::default()
    };
    // As `Runtime::load_onnx`, with the batch known first (for the tuned kernels).
    let (g, w, _) = gconv::graph::fold_permutations(&m.graph, &m.weights)?;
    crate::common::check_precision(a.precision, !rt.is_gpu())?;
    let mut model = rt.load_graph(g, w, &opts)?;
    let t0 = Instant::now();
    let y = model.run(&x)?;
    let secs = t0.elapsed().as_secs_f64();
    crate::common::precision_notice(&mut model, a.precision, x.shape()[0]);
    if let Some(out) = &a.output {
        io::write_npy(out, &y)?;
    }
    println!(
        "{} (ONNX): input {:?} → output {:?} in {:.1} ms on {}",
        model.graph().name,
        x.shape(),
        y.shape(),
        secs * 1e3,
        rt.describe()
    );
    print_kernels(a, &mut model, x.shape()[0])?;
    Ok(ExitCode::SUCCESS)
}

pub fn run(a: Args) -> Result<ExitCode> {
    if let Some(p) = onnx_path(&a.model.model) {
        return run_onnx(&a, &p);
    }
    if let Some(p) = exported_model(&a.model.model)? {
        return run_exported(&a, &p);
    }
    if a.compare && a.device == DeviceArg::Cpu {
        return Err(Error::InvalidArgument(
            "--compare runs the GPU against the CPU reference; it cannot run with --device cpu"
                .into(),
        ));
    }
    if a.weights.is_some() && a.seed.is_some() {
        return Err(Error::InvalidArgument(
            "--seed seeds the initialisation, and --weights replaces it: give one of them".into(),
        ));
    }
    if is_npy(&a.input) && a.image_size.is_some() {
        return Err(Error::InvalidArgument(format!(
            "--image-size resizes image inputs; {} is a .npy tensor, whose shape is the input's",
            a.input.display()
        )));
    }
    // The model's input size follows a .npy input; an image is resized to the model.
    let (x, input) = if is_npy(&a.input) {
        let x = read_input(&a.input, [0, 0, 0])?;
        let s = x.shape().to_vec();
        (Some(x), Some([s[1], s[2], s[3]]))
    } else {
        (None, a.image_size.as_deref().map(parse_input).transpose()?)
    };
    let mut spec = a.model.spec(input)?;
    let weights: Option<Weights> = match &a.weights {
        Some(p) => {
            let w = io::read_safetensors(p)?;
            // num_classes follows the weights.
            if let Some(n) = io::num_classes_hint(&w, &spec.build()?) {
                spec.num_classes = n;
            }
            Some(w)
        }
        None => None,
    };
    let x = match x {
        Some(x) => x,
        None => read_input(&a.input, spec.input)?,
    };
    let opts = LoadOptions {
        fold_bn: !a.no_fold_bn,
        flgc: a.flgc.unwrap_or(FlgcArg::Reordered).into(),
        seed: a.seed.unwrap_or(0),
        tuned_batch: a.tuned(x.shape()[0]),
        precision: a.precision,
        one_shot: !a.fast_kernels,
    };
    let device = if a.compare {
        Device::Gpu
    } else {
        a.device.into()
    };
    let rt = Runtime::new(device)?;
    crate::common::check_precision(a.precision, !rt.is_gpu())?;
    let mut model = rt.load(&spec, weights.clone(), &opts)?;
    let t0 = Instant::now();
    let y = model.run(&x)?;
    let secs = t0.elapsed().as_secs_f64();
    crate::common::precision_notice(&mut model, a.precision, x.shape()[0]);
    if let Some(out) = &a.output {
        io::write_npy(out, &y)?;
    }
    let mut report = serde_json::json!({
        "model": spec.name,
        "device": rt.describe(),
        "input_shape": x.shape(),
        "output_shape": y.shape(),
        "seconds_first_run": secs,
    });
    if let Some(k) = kernels_of(&mut model, x.shape()[0])? {
        report["kernels"] = serde_json::json!(k);
    }
    let mut code = ExitCode::SUCCESS;
    if a.compare {
        let cpu = Runtime::new(Device::Cpu)?;
        let mut reference = cpu.load(&spec, weights, &opts)?;
        let want = reference.run(&x)?;
        let tol = match a.precision {
            gconv::Precision::F32 => Tolerance::F32_MODEL,
            gconv::Precision::F16 => Tolerance::F16_MODEL,
        };
        // NaN and infinities are data: NaN vs NaN is a mismatch (see `testing::compare`).
        let c = compare(y.data(), want.data(), tol);
        report["compare"] = serde_json::json!({
            "max_abs": c.max_abs, "max_rel": c.max_rel, "mismatches": c.mismatches,
            "atol": tol.atol, "rtol": tol.rtol, "ok": c.mismatches == 0,
            // Values as text: JSON has no NaN or infinity.
            "first_mismatch": c.first_mismatch.map(|(i, g, w)| serde_json::json!({
                "index": i, "gpu": g.to_string(), "cpu": w.to_string(),
            })),
        });
        if c.mismatches > 0 {
            code = ExitCode::from(1);
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serialisable")
        );
    } else {
        println!("device: {}", rt.describe());
        println!(
            "{}: input {:?} → output {:?} in {:.1} ms (first run, includes pipeline set-up)",
            spec.name,
            x.shape(),
            y.shape(),
            secs * 1e3
        );
        if let Some(out) = &a.output {
            println!("wrote {}", out.display());
        }
        print_kernels(&a, &mut model, x.shape()[0])?;
        if let Some(c) = report.get("compare") {
            // A non-finite error is `null` in JSON: print it as infinite.
            let err = |k: &str| c[k].as_f64().unwrap_or(f64::INFINITY);
            let first = match &c["first_mismatch"] {
                serde_json::Value::Object(m) => format!(
                    " (first at index {}: GPU {}, CPU {})",
                    m["index"],
                    m["gpu"].as_str().unwrap_or("?"),
                    m["cpu"].as_str().unwrap_or("?")
                ),
                _ => String::new(),
            };
            println!(
                "GPU vs CPU: max abs {:.3e}, max rel {:.3e}, {} outside atol {} + rtol {}{first} → {}",
                err("max_abs"),
                err("max_rel"),
                c["mismatches"],
                c["atol"],
                c["rtol"],
                if c["ok"].as_bool() == Some(true) {
                    "OK"
                } else {
                    "MISMATCH"
                }
            );
        }
    }
    Ok(code)
}
