//! The Run tab: suites, sizes, batches, the sweep's layers and G, your models (ONNX files
//! from disk, zoo models with scheme / groups / conv / width), precision, and Run.

use super::app::GuiApp;
use super::files::Purpose;
use super::form::{RunForm, SUITES};
use eframe::egui;
use gconv::zoo::BUILTIN_MODELS;

fn number(ui: &mut egui::Ui, label: &str, v: &mut usize, range: std::ops::RangeInclusive<usize>) {
    let l = ui.label(label);
    ui.add(egui::DragValue::new(v).range(range))
        .labelled_by(l.id);
    ui.end_row();
}

fn text(ui: &mut egui::Ui, label: &str, v: &mut String, hint: &str) {
    let l = ui.label(label);
    ui.add(
        egui::TextEdit::singleline(v)
            .hint_text(hint)
            .desired_width(260.0),
    )
    .labelled_by(l.id);
    ui.end_row();
}

impl GuiApp {
    /// The Run tab.
    pub(super) fn show_run_tab(&mut self, ui: &mut egui::Ui) {
        let running = self.job.is_some();
        ui.heading("What to run");
        ui.add_enabled_ui(!running, |ui| {
            for (i, (_, name)) in SUITES.iter().enumerate() {
                ui.checkbox(&mut self.form.suites[i], *name);
            }
            ui.add_space(6.0);
            sizes(ui, &mut self.form);
            ui.add_space(6.0);
            ui.label(egui::RichText::new("Your models").strong());
            let mut remove = None;
            for (i, m) in self.form.models.iter().enumerate() {
                ui.horizontal(|ui| {
                    if ui.small_button("✕").on_hover_text("remove").clicked() {
                        remove = Some(i);
                    }
                    ui.label(m);
                });
            }
            if let Some(i) = remove {
                self.form.models.remove(i);
            }
            ui.horizontal(|ui| {
                if ui.button("Add ONNX file…").clicked() {
                    self.pick(Purpose::OnnxModel);
                }
            });
            zoo_entry(ui, &mut self.form);
            ui.add_space(6.0);
            ui.checkbox(
                &mut self.form.per_layer,
                "per-layer rows for paper1 and per-layer tables",
            );
            ui.checkbox(
                &mut self.form.tuned,
                "use the kernel choices cached by `gconv tune`",
            );
            ui.checkbox(
                &mut self.form.tune,
                "tune missing layers first (GPU; slow on lavapipe)",
            );
        });
        ui.add_space(8.0);
        let check = self.form.to_config();
        ui.horizontal(|ui| {
            let ok = check.is_ok() && !running;
            if ui.add_enabled(ok, egui::Button::new("▶ Run")).clicked() {
                self.start_run();
            }
            if ui
                .add_enabled(!running, egui::Button::new("Defaults for this device"))
                .clicked()
            {
                let models = std::mem::take(&mut self.form.models);
                let cfg = gconv::bench::BenchConfig::default_for(self.chosen().software());
                self.form = RunForm::from_config(&cfg);
                self.form.models = models;
            }
        });
        if let Err(e) = check {
            ui.colored_label(egui::Color32::from_rgb(200, 40, 40), e);
        }
    }
}

fn sizes(ui: &mut egui::Ui, f: &mut RunForm) {
    egui::Grid::new("sizes")
        .num_columns(2)
        .spacing([12.0, 4.0])
        .show(ui, |ui| {
            number(ui, "input size (H = W)", &mut f.input_size, 1..=1024);
            number(
                ui,
                "paper1 input size (0: the same)",
                &mut f.paper1_size,
                0..=1024,
            );
            let l = ui.label("width multiplier");
            ui.add(
                egui::DragValue::new(&mut f.width)
                    .range(0.05..=4.0)
                    .speed(0.05),
            )
            .labelled_by(l.id);
            ui.end_row();
            number(ui, "classes", &mut f.num_classes, 1..=100_000);
            number(ui, "batch (latency)", &mut f.batch, 1..=4096);
            number(
                ui,
                "large batch (throughput, 0: skip)",
                &mut f.large_batch,
                0..=4096,
            );
            number(ui, "warm-up runs", &mut f.warmup, 0..=1000);
            number(ui, "timed runs", &mut f.repeats, 1..=10_000);
            let l = ui.label("precision");
            egui::ComboBox::from_id_salt("precision")
                .selected_text(f.precision.name())
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut f.precision, gconv::Precision::F32, "f32");
                    ui.selectable_value(
                        &mut f.precision,
                        gconv::Precision::F16,
                        "f16 weights and activations where the kernels store them (real-GPU tier)",
                    );
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("paper1 VGG");
            egui::ComboBox::from_id_salt("vgg")
                .selected_text(f.vgg.clone())
                .show_ui(ui, |ui| {
                    for (n, _) in BUILTIN_MODELS.iter().filter(|(n, _)| n.starts_with("vgg")) {
                        ui.selectable_value(&mut f.vgg, n.to_string(), *n);
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
            text(ui, "paper1 schemes", &mut f.schemes, "A,B,C,D,E");
            text(ui, "paper2 / mobilenet G", &mut f.groups, "4,8");
            text(
                ui,
                "sweep layers (CxS:K)",
                &mut f.sweep_layers,
                "256x28:3,256x28:1",
            );
            text(ui, "sweep G", &mut f.sweep_groups, "1,2,4,8,16,32,64");
        });
}

fn zoo_entry(ui: &mut egui::Ui, f: &mut RunForm) {
    ui.horizontal_wrapped(|ui| {
        let l = ui.label("zoo model");
        egui::ComboBox::from_id_salt("zoo-name")
            .selected_text(f.zoo.name.clone())
            .show_ui(ui, |ui| {
                for (n, _) in BUILTIN_MODELS {
                    ui.selectable_value(&mut f.zoo.name, n.to_string(), *n);
                }
            })
            .response
            .labelled_by(l.id);
        let edit = |ui: &mut egui::Ui, label: &str, v: &mut String, hint: &str, w: f32| {
            let l = ui.label(label);
            ui.add(
                egui::TextEdit::singleline(v)
                    .desired_width(w)
                    .hint_text(hint),
            )
            .labelled_by(l.id);
        };
        edit(ui, "scheme", &mut f.zoo.scheme, "E", 50.0);
        edit(ui, "groups", &mut f.zoo.groups, "8", 40.0);
        let l = ui.label("conv");
        egui::ComboBox::from_id_salt("zoo-conv")
            .selected_text(if f.zoo.conv.is_empty() {
                "as declared"
            } else {
                &f.zoo.conv
            })
            .show_ui(ui, |ui| {
                for c in ["", "dense", "sgc", "flgc"] {
                    let label = if c.is_empty() { "as declared" } else { c };
                    ui.selectable_value(&mut f.zoo.conv, c.to_string(), label);
                }
            })
            .response
            .labelled_by(l.id);
        edit(ui, "width", &mut f.zoo.width, "1", 40.0);
        if ui.button("Add zoo model").clicked() {
            f.add_zoo_model();
        }
    });
    if let Some(e) = &f.zoo.error {
        ui.colored_label(egui::Color32::from_rgb(200, 40, 40), e);
    }
}
