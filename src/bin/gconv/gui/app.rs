//! The window's state and its frame: device list (left), tabs Run / Results / Compare,
//! progress and Cancel (bottom).

use super::compare_view::CompareState;
use super::devices::{device_choices, initial_choice, DeviceChoice};
use super::files::{FilePicker, Picked, Purpose};
use super::form::RunForm;
use super::results::Results;
use super::screenshot::{Outcome as ShotOutcome, Plan};
use super::worker::{Job, Outcome, Runtimes};
use crate::bench::RunArgs;
use eframe::egui;
use gconv::bench::{compare::read_report, write_outputs, BenchConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The tabs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    /// What to run.
    Run,
    /// The report shown.
    Results,
    /// Two reports compared.
    Compare,
}

/// The desktop app.
pub struct GuiApp {
    /// The devices to choose from (adapters, then the CPU path).
    pub devices: Vec<DeviceChoice>,
    /// The chosen one.
    pub device: usize,
    /// What to run.
    pub form: RunForm,
    /// The tab shown.
    pub tab: Tab,
    /// The run in progress.
    pub job: Option<Job>,
    /// The report shown.
    pub results: Option<Results>,
    /// The Compare tab.
    pub compare: CompareState,
    /// The last message: (is an error, text).
    pub message: Option<(bool, String)>,
    /// The file picker, while open.
    pub picker: Option<FilePicker>,
    /// `--out`: where a finished run's report files are written.
    pub out_dir: Option<PathBuf>,
    runtimes: Arc<Runtimes>,
    ctx: Option<egui::Context>,
    screenshot: Option<Plan>,
    fonts_installed: bool,
}

impl GuiApp {
    /// The app with the devices wgpu sees and the form `args` ask for.
    pub fn new(args: &RunArgs) -> gconv::Result<Self> {
        let devices = device_choices();
        let device = initial_choice(&devices, args.device());
        let gpu = !matches!(devices[device], DeviceChoice::Cpu);
        let cfg = crate::bench::config(args, devices[device].software(), gpu)?;
        Ok(Self {
            devices,
            device,
            form: RunForm::from_config(&cfg),
            tab: Tab::Run,
            job: None,
            results: None,
            compare: CompareState::default(),
            message: None,
            picker: None,
            out_dir: args.out.clone(),
            runtimes: Arc::default(),
            ctx: None,
            screenshot: None,
            fonts_installed: false,
        })
    }

    /// Lets the benchmark thread wake the window up.
    pub fn attach(&mut self, ctx: &egui::Context) {
        self.ctx = Some(ctx.clone());
    }

    /// Take a screenshot into `path` once the results are shown, then close.
    pub fn plan_screenshot(&mut self, path: PathBuf, outcome: ShotOutcome) {
        self.screenshot = Some(Plan::new(path, outcome));
    }

    /// The chosen device.
    pub fn chosen(&self) -> &DeviceChoice {
        &self.devices[self.device]
    }

    /// Starts the form's configuration on the chosen device (unless a run is on).
    pub fn start_run(&mut self) {
        if self.job.is_some() {
            return;
        }
        let cfg: BenchConfig = match self.form.to_config() {
            Ok(c) => c,
            Err(e) => {
                self.fail(e);
                return;
            }
        };
        let choice = self.chosen().clone();
        self.message = Some((false, format!("running on {}", choice.label())));
        self.job = Some(Job::start(
            self.device,
            choice,
            cfg,
            self.runtimes.clone(),
            self.ctx.clone(),
        ));
    }

    /// Asks the run to stop at its next pass.
    pub fn cancel(&mut self) {
        if let Some(j) = &self.job {
            j.ctl.cancel();
        }
    }

    fn fail(&mut self, e: String) {
        if let Some(p) = &self.screenshot {
            p.outcome.set_run_error(e.clone());
        }
        self.message = Some((true, e));
    }

    /// Takes in a finished run's outcome, if there is one.
    pub fn poll(&mut self) {
        if let Some(o) = self.job.as_ref().and_then(Job::poll) {
            self.finish(o);
        }
    }

    /// Blocks until the run ends (or `timeout`), then takes in its outcome; whether it ended.
    #[cfg(test)]
    pub fn wait_for_run(&mut self, timeout: Duration) -> bool {
        match self.job.as_ref().and_then(|j| j.wait(timeout)) {
            Some(o) => {
                self.finish(o);
                true
            }
            None => self.job.is_none(),
        }
    }

    fn finish(&mut self, o: Outcome) {
        let device = self.job.take().map(|j| j.device).unwrap_or_default();
        match o {
            Outcome::Report(r) => {
                let mut note = format!("finished on {device}");
                if let Some(dir) = &self.out_dir {
                    match write_outputs(&r, dir) {
                        Ok(files) => {
                            note += &format!("; wrote {} files to {}", files.len(), dir.display())
                        }
                        Err(e) => {
                            self.fail(format!("writing the report: {e}"));
                            note.clear();
                        }
                    }
                }
                if !note.is_empty() {
                    self.message = Some((false, note));
                }
                self.results = Some(Results::new(format!("Run on {device}"), *r));
                self.tab = Tab::Results;
            }
            Outcome::Cancelled => {
                self.message = Some((
                    false,
                    "cancelled: the run stopped, nothing was written".into(),
                ));
            }
            Outcome::Failed(e) => self.fail(e),
        }
    }

    /// Shows a saved report (`report.json`) as the results.
    pub fn open_report(&mut self, path: &Path) -> gconv::Result<()> {
        let r = read_report(path)?;
        self.results = Some(Results::new(path.display().to_string(), r));
        self.tab = Tab::Results;
        Ok(())
    }

    fn picked(&mut self, purpose: Purpose, path: PathBuf) {
        let label = path.display().to_string();
        let res = match purpose {
            Purpose::OnnxModel => {
                self.form.add_model(label);
                Ok(())
            }
            Purpose::OpenReport => self.open_report(&path),
            Purpose::CompareOld | Purpose::CompareNew => read_report(&path).map(|r| {
                if purpose == Purpose::CompareOld {
                    self.compare.old = Some((label, r));
                } else {
                    self.compare.new_file = Some((label, r));
                    self.compare.with_current = false;
                }
            }),
        };
        if let Err(e) = res {
            self.fail(e.to_string());
        }
    }

    /// Opens the file picker for `purpose` in the working folder.
    pub fn pick(&mut self, purpose: Purpose) {
        let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        self.picker = Some(FilePicker::new(purpose, &dir));
    }

    /// One frame of the whole window.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        if !self.fonts_installed {
            // Before any text of the first pass, so it applies at once.
            super::fonts::install(&ctx);
            self.fonts_installed = true;
        }
        self.poll();
        if self.job.is_some() {
            ctx.request_repaint_after(Duration::from_millis(150));
        }
        egui::Panel::top("tabs").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("gconv bench");
                ui.separator();
                ui.selectable_value(&mut self.tab, Tab::Run, "Run");
                ui.selectable_value(&mut self.tab, Tab::Results, "Results");
                ui.selectable_value(&mut self.tab, Tab::Compare, "Compare");
                ui.separator();
                if ui.button("Open report…").clicked() {
                    self.pick(Purpose::OpenReport);
                }
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| self.show_status(ui));
        egui::Panel::left("devices")
            .default_size(300.0)
            .show(ui, |ui| self.show_devices(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical()
                .auto_shrink([false, false])
                .show(ui, |ui| match self.tab {
                    Tab::Run => self.show_run_tab(ui),
                    Tab::Results => match &mut self.results {
                        Some(r) => r.show(ui),
                        None => {
                            ui.label("No results yet: run a benchmark or open a report.json.");
                        }
                    },
                    Tab::Compare => self.show_compare_tab(ui),
                });
        });
        if let Some(p) = &mut self.picker {
            let purpose = p.purpose;
            match p.show(&ctx) {
                Picked::Open => {}
                Picked::Cancelled => self.picker = None,
                Picked::File(path) => {
                    self.picker = None;
                    self.picked(purpose, path);
                }
            }
        }
        let final_content = self.job.is_none()
            && self
                .results
                .as_ref()
                .is_none_or(|r| r.charts_ready() || self.tab != Tab::Results);
        if let (Some(plan), true) = (&mut self.screenshot, final_content) {
            plan.step(&ctx);
        }
    }

    fn show_devices(&mut self, ui: &mut egui::Ui) {
        ui.heading("Device");
        let running = self.job.is_some();
        for (i, d) in self.devices.clone().iter().enumerate() {
            ui.add_space(4.0);
            let r = ui.add_enabled(
                !running,
                egui::Button::selectable(self.device == i, d.label()).wrap(),
            );
            if r.clicked() {
                self.device = i;
            }
            let detail = match d {
                DeviceChoice::Adapter(a) => format!(
                    "{} · {}{}\nfeatures: {}",
                    a.backend,
                    a.device_type,
                    if a.software { " (software)" } else { "" },
                    a.feature_list()
                ),
                DeviceChoice::Cpu => "gconv's reference implementation (rayon)".into(),
            };
            ui.label(egui::RichText::new(detail).small().weak());
        }
        if self.devices.len() == 1 {
            ui.label(
                egui::RichText::new(
                    "No GPU adapter found (on Debian: apt-get install mesa-vulkan-drivers libvulkan1).",
                )
                .small(),
            );
        }
    }

    fn show_status(&mut self, ui: &mut egui::Ui) {
        ui.add_space(2.0);
        if let Some(job) = &self.job {
            let s = job.step.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let p = job.ctl.pass();
            let mut text = format!(
                "{} — step {} of {}",
                s.what,
                (s.done + 1).min(s.total.max(1)),
                s.total.max(1)
            );
            if p.total > 0 {
                text += &format!(" · {} pass {} of {}", p.phase, p.done, p.total);
            }
            text += &format!(" · {:.0} s", job.started.elapsed().as_secs_f64());
            let mut cancel = false;
            ui.horizontal(|ui| {
                cancel = ui.button("Cancel run").clicked();
                ui.add(egui::ProgressBar::new(job.fraction()).text(text));
            });
            if job.ctl.is_cancelled() {
                ui.label("cancelling at the next pass…");
            }
            if cancel {
                self.cancel();
            }
        } else if let Some((err, m)) = &self.message {
            let color = if *err {
                egui::Color32::from_rgb(200, 40, 40)
            } else {
                ui.visuals().text_color()
            };
            ui.colored_label(color, m);
        } else {
            ui.label("Ready.");
        }
        ui.add_space(2.0);
    }

    fn show_compare_tab(&mut self, ui: &mut egui::Ui) {
        ui.heading("Compare two runs");
        ui.horizontal(|ui| {
            ui.label("Old (reference):");
            let label = self
                .compare
                .old
                .as_ref()
                .map_or("—".into(), |(l, _)| l.clone());
            ui.label(label);
            if ui.button("Choose old…").clicked() {
                self.pick(Purpose::CompareOld);
            }
        });
        ui.horizontal(|ui| {
            ui.label("New:");
            ui.radio_value(&mut self.compare.with_current, true, "the results shown");
            ui.radio_value(&mut self.compare.with_current, false, "a file");
            let label = self
                .compare
                .new_file
                .as_ref()
                .map_or("—".into(), |(l, _)| l.clone());
            ui.label(label);
            if ui.button("Choose new…").clicked() {
                self.pick(Purpose::CompareNew);
            }
        });
        ui.horizontal(|ui| {
            ui.label("Flag rows slower than (× old):");
            ui.add(egui::TextEdit::singleline(&mut self.compare.fail_above).desired_width(60.0));
            if ui.button("Run the comparison").clicked() {
                let current = self.results.as_ref().map(|r| (r.label.as_str(), &r.report));
                self.compare.run(current);
            }
        });
        ui.separator();
        self.compare.show_result(ui);
    }
}

impl eframe::App for GuiApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }
}
