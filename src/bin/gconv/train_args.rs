//! The arguments of `gconv train` and their checks: options that would be ignored by the
//! run they describe are refused before anything trains.

use crate::common::{ConvArg, DeviceArg, FlgcInitArg};
use gconv::io::FashionMnist;
use gconv::{Error, Result};
use std::path::PathBuf;

/// Learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleArg {
    /// Cosine annealing to 0 over the epochs.
    Cosine,
    /// ×0.1 every third of the epochs.
    Step,
    /// Constant.
    Constant,
}

/// Options of `gconv train`.
#[derive(clap::Args)]
pub struct Args {
    /// Zoo model (or .toml); its input becomes the data's (1×28×28 for Fashion-MNIST), its
    /// classes the data's, and its width is scaled by --width.
    #[arg(long, short, default_value = "resnet50-dsc")]
    pub model: String,
    /// Kind of the grouped convolutions (default: dense; with --scheme, the scheme's).
    #[arg(long, value_enum)]
    pub(crate) conv: Option<ConvArg>,
    /// Groups G of the grouped convolutions (sgc / flgc; default 4; with --scheme, the
    /// scheme's).
    #[arg(long)]
    pub(crate) groups: Option<usize>,
    /// Grouping scheme: a scheme .toml (e.g. written by `gconv search`), A–E, or stage groups
    /// like 1,1,8,8,8.
    #[arg(long)]
    pub(crate) scheme: Option<String>,
    /// Width multiplier.
    #[arg(long, default_value_t = 0.125)]
    pub width: f32,
    /// ResNet blocks per stage, e.g. `1,1,1,1` (default: the model's own, [3,4,6,3] for
    /// ResNet-50 variants).
    #[arg(long)]
    pub layers: Option<String>,
    /// Epochs.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Initial learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub lr: f32,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    pub schedule: ScheduleArg,
    /// Device: `gpu` trains with the WGSL kernels (one submit per step), `cpu` on the CPU
    /// reference path, `auto` picks a GPU adapter when there is one.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Training data: a Fashion-MNIST folder (IDX files) or an image folder with one
    /// sub-folder per class (PNG/JPEG; see --test-data and --input).
    #[arg(long, default_value = FashionMnist::DEFAULT_DIR)]
    pub(crate) data: PathBuf,
    /// Test set for an image folder given as --data (same layout); without it, the final
    /// test accuracy is skipped.
    #[arg(long)]
    pub(crate) test_data: Option<PathBuf>,
    /// Input size `CxHxW`: an image folder's images are converted and resized to it (C = 1
    /// or 3; default 1x28x28); Fashion-MNIST (1x28x28) is zero-padded, centred, to a larger
    /// 1xHxW (e.g. 1x32x32 for VGG's five pools) and refuses a smaller one.
    #[arg(long)]
    pub(crate) input: Option<String>,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Evaluate the final model on only the first N test images (quick runs).
    #[arg(long)]
    pub(crate) test_limit: Option<usize>,
    /// Training images held out for validation.
    #[arg(long, default_value_t = 5000)]
    pub val: usize,
    /// Seed of initialisation, shuffling, augmentation and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Checkpoint written (atomically) after every epoch.
    #[arg(long, default_value = "gconv-checkpoint.safetensors")]
    pub checkpoint: PathBuf,
    /// Resume from this checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// How FLGC selection matrices start: `balanced` (the SGC partition ahead by a margin
    /// plus small noise, so no group starts empty) or `gaussian` (N(0, 1), as in the paper).
    #[arg(long, value_enum, default_value_t = FlgcInitArg::Balanced)]
    pub flgc_init: FlgcInitArg,
    /// Lead of each row's own group in the balanced FLGC start (logits): smaller lets the
    /// learnt grouping leave SGC's sooner; the start is SGC's whatever the margin.
    #[arg(long, default_value_t = gconv::train::selection::BALANCED_MARGIN)]
    pub flgc_margin: f32,
    /// Learning rate of the FLGC selection matrices S̄, T̄ (default: --lr), on the same
    /// schedule as --lr.
    #[arg(long)]
    pub flgc_select_lr: Option<f32>,
    /// Write a JSON-lines log (every step's loss, every epoch's metrics and FLGC grouping;
    /// appended to on --resume); `gconv plot LOG` draws its curves.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Print one JSON line per epoch.
    #[arg(long)]
    pub json: bool,
    /// Ignore the kernel choices cached by `gconv tune` (same as GCONV_TUNE=off).
    #[arg(long)]
    pub no_tune: bool,
}

/// Most epochs of one run (`--epochs`).
pub const MAX_EPOCHS: usize = 100_000;

/// Refuses options this run would ignore: `--groups` (≠ 1) for dense convolutions,
/// `--test-data` for Fashion-MNIST (it has its own test split; its `--input` pads it),
/// `--test-limit` without a test set.
pub fn check_options_apply(a: &Args) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidArgument(m));
    let dense = a.scheme.is_none() && a.conv.unwrap_or(ConvArg::Dense) == ConvArg::Dense;
    if dense && a.groups.is_some_and(|g| g != 1) {
        return bad("--groups applies to --conv sgc or flgc; --conv dense has G = 1".into());
    }
    if gconv::train::dataset::is_fashion_mnist(&a.data) {
        if a.test_data.is_some() {
            return bad(format!(
                "--test-data applies to an image folder; {} is Fashion-MNIST (with its own \
                 test split)",
                a.data.display()
            ));
        }
    } else if a.test_limit.is_some() && a.test_data.is_none() {
        return bad("--test-limit cuts the test set, and there is none: add --test-data".into());
    }
    Ok(())
}
