//! `--screenshot PATH`: once the run's results are on screen (or at once without a run), a
//! picture of the window is taken through eframe, saved as PNG (atomically) and the window
//! closed; what happened is reported by the process's exit.

use eframe::egui;
use gconv::Result;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

/// Frames drawn with the final content before the picture is taken (chart textures are
/// uploaded and the layout has settled by then).
pub const SETTLE_FRAMES: u32 = 4;

/// What the screenshot mode ended with, shared between the window and `gconv gui`.
#[derive(Clone, Default)]
pub struct Outcome {
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    saved: Option<std::result::Result<(u32, u32), String>>,
    run_error: Option<String>,
}

impl Outcome {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The picture was saved (its size) or not (why).
    pub fn set_saved(&self, r: std::result::Result<(u32, u32), String>) {
        self.state().saved = Some(r);
    }

    /// Whether the picture was taken (saved or failed).
    pub fn taken(&self) -> bool {
        self.state().saved.is_some()
    }

    /// The run failed with `e`.
    pub fn set_run_error(&self, e: String) {
        self.state().run_error = Some(e);
    }

    /// The exit of `gconv gui --screenshot PATH`: success when the picture was saved and the
    /// run (if any) succeeded; 2 with the reason on stderr otherwise.
    pub fn finish(&self, path: &Path) -> Result<ExitCode> {
        let s = self.state();
        let mut ok = true;
        match &s.saved {
            Some(Ok((w, h))) => println!("wrote {} ({w}×{h})", path.display()),
            Some(Err(e)) => {
                eprintln!("error: {}: {e}", path.display());
                ok = false;
            }
            None => {
                eprintln!("error: the window closed before the screenshot was taken");
                ok = false;
            }
        }
        if let Some(e) = &s.run_error {
            eprintln!("error: the benchmark run failed: {e}");
            ok = false;
        }
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        })
    }
}

/// A screenshot to take.
pub struct Plan {
    /// Where the PNG goes.
    pub path: PathBuf,
    /// Shared with `gconv gui`.
    pub outcome: Outcome,
    /// Frames drawn since the content became final.
    pub settled: u32,
    /// Whether the picture was asked for.
    pub requested: bool,
    /// Whether the window was told to close.
    pub closing: bool,
}

impl Plan {
    /// A plan for `path`.
    pub fn new(path: PathBuf, outcome: Outcome) -> Self {
        Self {
            path,
            outcome,
            settled: 0,
            requested: false,
            closing: false,
        }
    }

    /// Called every frame once the content is final: waits [`SETTLE_FRAMES`], asks eframe
    /// for the picture, closes the window once it was saved.
    pub fn step(&mut self, ctx: &egui::Context) {
        if self.outcome.taken() {
            if !self.closing {
                self.closing = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            return;
        }
        if self.requested {
            return;
        }
        self.settled += 1;
        ctx.request_repaint();
        if self.settled < SETTLE_FRAMES {
            return;
        }
        self.requested = true;
        let (path, outcome, c) = (self.path.clone(), self.outcome.clone(), ctx.clone());
        ctx.request_screenshot(move |img| {
            outcome.set_saved(save_png(&path, &img));
            c.request_repaint();
        });
    }
}

/// Saves `img` as an RGB PNG at `path` (atomically); returns its size.
pub fn save_png(path: &Path, img: &egui::ColorImage) -> std::result::Result<(u32, u32), String> {
    let [w, h] = img.size;
    let rgb: Vec<u8> = img
        .pixels
        .iter()
        .flat_map(|p| {
            let [r, g, b, _] = p.to_srgba_unmultiplied();
            [r, g, b]
        })
        .collect();
    let buf = image::RgbImage::from_raw(w as u32, h as u32, rgb)
        .ok_or_else(|| "the screenshot's pixels do not fill its size".to_string())?;
    let mut png = Vec::new();
    buf.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| format!("encoding PNG: {e}"))?;
    gconv::fs::write_atomic(path, &png).map_err(|e| e.to_string())?;
    Ok((w as u32, h as u32))
}
