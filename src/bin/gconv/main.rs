//! `gconv`: the command-line front end (model zoo, accounting, inference, benchmarks).

mod bench;
mod common;
mod compare;
mod eval;
mod export;
#[cfg(feature = "gui")]
mod gui;
mod infer;
mod info;
mod models;
mod plot;
mod search;
mod train;
mod train_args;
mod train_recovery;
mod tune;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Grouped-convolution runtime: inspect, run and benchmark grouped-convolution networks.
#[derive(Parser)]
#[command(name = "gconv", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the built-in models and grouping schemes.
    Models(models::Args),
    /// Per-layer shapes, groups, MACs and parameters of a model.
    Info(info::Args),
    /// Run a model on an input (.npy or image) on the GPU or the CPU; --compare checks one against the other.
    Infer(infer::Args),
    /// Reproduce both papers' efficiency results on this device (tables, --json, --out charts).
    Bench(bench::Args),
    /// Train a zoo model (dense / SGC / FLGC) on Fashion-MNIST, with checkpoints.
    Train(train::Args),
    /// Loss and accuracy curves (SVG + PNG) of training logs written by `train --log`.
    Plot(plot::Args),
    /// Evaluate a training checkpoint or an exported model on a test set.
    Eval(eval::EvalArgs),
    /// Time every kernel candidate of each layer of a model on this GPU and cache the fastest
    /// (used by infer, bench and GPU training unless --no-tune / GCONV_TUNE=off).
    Tune(tune::Args),
    /// Find the least grouping (G per stage or per layer) that fits a latency budget on this
    /// GPU: a latency model measured here, an exact search, the result measured end to end.
    Search(search::Args),
    /// Export a training checkpoint for inference: FLGC layers compiled into uneven group
    /// convs by index re-ordering, batch norms folded; the graph travels in the file.
    Export(export::ExportArgs),
    /// The desktop benchmark window: pick a device and suites, watch them run, read and
    /// compare the results (built with `--features gui`).
    #[cfg(feature = "gui")]
    Gui(gui::Args),
    /// Without the `gui` feature `gconv gui` says how to get it (hidden).
    #[cfg(not(feature = "gui"))]
    #[command(hide = true, disable_help_flag = true)]
    Gui {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    // Like other command-line tools, stop quietly when the reader of stdout goes away
    // (`gconv export … | head`) instead of panicking on the failed write.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,wgpu_hal::gles=off"),
    )
    .init();
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Models(a) => models::run(a),
        Command::Info(a) => info::run(a),
        Command::Infer(a) => infer::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Train(a) => train::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Eval(a) => eval::eval(a),
        Command::Export(a) => export::export(a),
        Command::Tune(a) => tune::run(a),
        #[cfg(feature = "gui")]
        Command::Gui(a) => gui::run(a),
        #[cfg(not(feature = "gui"))]
        Command::Gui { .. } => Err(gconv::Error::InvalidArgument(
            "gconv gui: this gconv was built without the desktop app; build it with \
             `cargo build --release --features gui`"
                .into(),
        )),
        Command::Search(a) => search::run(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
