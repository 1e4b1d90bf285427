//! The benchmark thread: one run at a time off the UI thread, through the CLI's
//! [`gconv::bench::run_bench_with`], its progress read by the window and its end sent back
//! over a channel. Opened devices are kept for the next run ([`Runtimes`]).

use super::devices::DeviceChoice;
use eframe::egui;
use gconv::bench::{run_bench_with, BenchConfig, BenchControl, BenchReport};
use gconv::gpu::adapters::find_adapter;
use gconv::{Device, Error, Runtime};
use std::collections::HashMap;
#[cfg(test)]
use std::sync::mpsc::RecvTimeoutError;
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// It finished.
    Report(Box<BenchReport>),
    /// Cancel was pressed; nothing was written.
    Cancelled,
    /// It failed (the error's text).
    Failed(String),
}

/// The step a run is at (what `run_bench` last reported).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Step {
    /// What runs, e.g. `paper1: vgg13bn-E`.
    pub what: String,
    /// Steps done.
    pub done: usize,
    /// Steps in all.
    pub total: usize,
}

/// The opened devices, by their index in the device list: a GPU context is made once (its
/// pipeline cache kept) and shared by `Arc` with every later run on it.
#[derive(Default)]
pub struct Runtimes {
    open: Mutex<HashMap<usize, Arc<Runtime>>>,
}

impl Runtimes {
    fn get(&self, key: usize, choice: &DeviceChoice) -> gconv::Result<Arc<Runtime>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rt) = open.get(&key) {
            if rt.gpu().is_none_or(|g| g.check_lost().is_ok()) {
                return Ok(rt.clone());
            }
        }
        let rt = Arc::new(match choice {
            DeviceChoice::Adapter(a) => Runtime::with_context(Arc::new(
                gconv::gpu::GpuContext::from_adapter(find_adapter(a)?)?,
            )),
            DeviceChoice::Cpu => Runtime::new(Device::Cpu)?,
        });
        open.insert(key, rt.clone());
        Ok(rt)
    }
}

/// A run in progress.
pub struct Job {
    /// Progress within the step, and the cancel flag.
    pub ctl: Arc<BenchControl>,
    /// The current step.
    pub step: Arc<Mutex<Step>>,
    /// The device it runs on.
    pub device: String,
    /// When it started.
    pub started: Instant,
    rx: Receiver<Outcome>,
}

impl Job {
    /// Starts `cfg` on device `key` of the list on a new thread; `ctx` is asked to repaint
    /// at every step and at the end.
    pub fn start(
        key: usize,
        choice: DeviceChoice,
        cfg: BenchConfig,
        runtimes: Arc<Runtimes>,
        ctx: Option<egui::Context>,
    ) -> Self {
        let ctl = Arc::new(BenchControl::default());
        let step = Arc::new(Mutex::new(Step {
            what: "opening the device".into(),
            ..Default::default()
        }));
        let (tx, rx) = channel();
        let device = choice.label();
        let (c, s) = (ctl.clone(), step.clone());
        std::thread::Builder::new()
            .name("gconv-bench".into())
            .spawn(move || {
                let repaint = || {
                    if let Some(ctx) = &ctx {
                        ctx.request_repaint();
                    }
                };
                let report = runtimes.get(key, &choice).and_then(|rt| {
                    run_bench_with(&cfg, &rt, &c, &mut |what, done, total| {
                        *s.lock().unwrap_or_else(|p| p.into_inner()) = Step {
                            what: what.to_string(),
                            done,
                            total,
                        };
                        repaint();
                    })
                });
                let outcome = match report {
                    Ok(r) => Outcome::Report(Box::new(r)),
                    Err(Error::Cancelled(_)) => Outcome::Cancelled,
                    Err(e) => Outcome::Failed(e.to_string()),
                };
                let _ = tx.send(outcome);
                repaint();
            })
            .expect("spawning the benchmark thread");
        Self {
            ctl,
            step,
            device,
            started: Instant::now(),
            rx,
        }
    }

    /// The outcome, once the run has ended.
    pub fn poll(&self) -> Option<Outcome> {
        match self.rx.try_recv() {
            Ok(o) => Some(o),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Self::vanished()),
        }
    }

    /// Blocks until the run ends or `timeout` passes (tests, the screenshot mode's exit).
    #[cfg(test)]
    pub fn wait(&self, timeout: Duration) -> Option<Outcome> {
        match self.rx.recv_timeout(timeout) {
            Ok(o) => Some(o),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Self::vanished()),
        }
    }

    fn vanished() -> Outcome {
        Outcome::Failed(
            "the benchmark thread stopped without a result (a panic; see stderr)".into(),
        )
    }

    /// Progress in 0..=1: steps done plus the share of the current step's passes.
    pub fn fraction(&self) -> f32 {
        let s = self.step.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if s.total == 0 {
            return 0.0;
        }
        let p = self.ctl.pass();
        let within = if p.total > 0 {
            p.done as f32 / p.total as f32
        } else {
            0.0
        };
        ((s.done as f32 + within.min(1.0)) / s.total as f32).min(1.0)
    }
}
