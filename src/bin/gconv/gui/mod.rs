//! `gconv gui`: the desktop benchmark window (egui/eframe on wgpu).
//!
//! Pick a device (the adapters wgpu sees, with their features, or the CPU reference), pick
//! what to run (the paper suites, the group sweep, zoo models with their variations, ONNX
//! files), watch it run with a Cancel button, read the results as the CLI's tables (sortable)
//! and charts, open a saved `report.json`, compare two runs.
//!
//! The bench runs on a worker thread ([`worker`]) through the same
//! [`gconv::bench::run_bench_with`] the CLI uses; the window only reads its progress. The
//! benchmark device is a [`gconv::gpu::GpuContext`] of its own (adapter limits, gconv's
//! features), shared by `Arc` between runs; the window draws with eframe's device.
//!
//! `gconv gui --suite S [bench flags] --screenshot PATH` runs the suites in the window, saves
//! a PNG of the window once the results are shown, and exits (its tests and the README's
//! picture use it).

mod app;
mod compare_view;
mod devices;
mod files;
mod fonts;
mod form;
mod form_view;
mod results;
mod screenshot;
mod table_view;
#[cfg(test)]
mod tests;
mod worker;

pub use app::GuiApp;

use crate::bench::RunArgs;
use gconv::{Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `gconv gui`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    bench: RunArgs,
    /// Run the suites given (--suite / --model) at start-up, save a PNG of the window once
    /// the results are shown, and exit (2 if the run failed).
    #[arg(long, value_name = "PATH")]
    screenshot: Option<PathBuf>,
    /// Open a saved report.json at start-up.
    #[arg(long, value_name = "REPORT")]
    open: Option<PathBuf>,
    /// Window size in logical pixels, WxH.
    #[arg(long, default_value = "1280x800", value_parser = parse_size)]
    window_size: (f32, f32),
}

fn parse_size(s: &str) -> std::result::Result<(f32, f32), String> {
    let bad = || format!("`{s}`: expected WxH, e.g. 1280x800");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let p = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|v| (200..=8192).contains(v))
    };
    match (p(w), p(h)) {
        (Some(w), Some(h)) => Ok((w as f32, h as f32)),
        _ => Err(bad()),
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.bench.json() {
        return Err(Error::InvalidArgument(
            "gconv gui shows its report in the window; --json is for `gconv bench`".into(),
        ));
    }
    if let Some(p) = &a.screenshot {
        gconv::fs::check_writable(p)?;
    }
    let mut app = GuiApp::new(&a.bench)?;
    if let Some(p) = &a.open {
        app.open_report(p)?;
    }
    if a.bench.has_suites() {
        app.start_run();
    }
    let outcome = screenshot::Outcome::default();
    if let Some(p) = &a.screenshot {
        app.plan_screenshot(p.clone(), outcome.clone());
    }
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("gconv — grouped-convolution benchmark")
            .with_inner_size([a.window_size.0, a.window_size.1]),
        ..Default::default()
    };
    eframe::run_native(
        "gconv",
        options,
        Box::new(move |cc| {
            app.attach(&cc.egui_ctx);
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| Error::Gpu(format!("the window could not be opened: {e}")))?;
    match a.screenshot {
        Some(p) => outcome.finish(&p),
        None => Ok(ExitCode::SUCCESS),
    }
}
