//! A report as the window shows it: the CLI's tables ([`gconv::bench::report_tables`]) and
//! charts ([`gconv::bench::figures`], drawn by the same code as the PNGs), and every model's
//! full per-layer table.

use super::table_view::{show_table, Sort};
use eframe::egui;
use gconv::bench::{figures, layer_table, report_tables, BenchReport, LayerRow};
use gconv::report::{Figure, Table};

/// A report being shown.
pub struct Results {
    /// Where it came from (`run on …`, a path).
    pub label: String,
    /// The report.
    pub report: BenchReport,
    /// Its tables, in report order.
    pub tables: Vec<Table>,
    /// Its charts.
    pub figures: Vec<Figure>,
    /// The sort of each table.
    pub sorts: Vec<Sort>,
    /// Which model's layers the per-layer table shows.
    pub layer_model: usize,
    /// The per-layer table's sort.
    pub layer_sort: Sort,
    textures: Vec<Option<Result<egui::TextureHandle, String>>>,
}

/// The models of `r` with per-layer rows: label and rows.
pub fn layer_sources(r: &BenchReport) -> Vec<(String, &[LayerRow])> {
    let mut v: Vec<(String, &[LayerRow])> = Vec::new();
    for m in &r.paper1 {
        v.push((m.model.clone(), &m.layers));
    }
    for m in r.paper2.iter().chain(&r.mobilenet) {
        v.push((m.model.clone(), &m.layers));
    }
    for m in &r.models {
        v.push((m.model.clone(), &m.per_layer));
    }
    v.retain(|(_, l)| !l.is_empty());
    v
}

impl Results {
    /// The tables and charts of `report`.
    pub fn new(label: String, report: BenchReport) -> Self {
        let tables = report_tables(&report);
        let figures = figures(&report);
        Self {
            label,
            sorts: vec![Sort::default(); tables.len()],
            textures: (0..figures.len()).map(|_| None).collect(),
            tables,
            figures,
            report,
            layer_model: 0,
            layer_sort: Sort::default(),
        }
    }

    /// The per-layer table of the chosen model, if the report has layer rows.
    pub fn layer_table(&self) -> Option<Table> {
        let src = layer_sources(&self.report);
        let (name, rows) = src.get(self.layer_model.min(src.len().saturating_sub(1)))?;
        Some(layer_table(
            format!("{name}: every layer at batch {}", self.report.config.batch),
            rows,
        ))
    }

    /// Whether every chart has been drawn into a texture (the screenshot waits for it).
    pub fn charts_ready(&self) -> bool {
        self.textures.iter().all(Option::is_some)
    }

    /// The tables, the per-layer table and the charts.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        ui.label(egui::RichText::new(&self.label).strong());
        ui.label(format!(
            "Device: {} · gconv {}",
            self.report.device, self.report.gconv_version
        ));
        if self.report.software_device {
            ui.label(
                egui::RichText::new(
                    "A software device: the CPU emulating a GPU — relative numbers matter, \
                     absolute ones are a CPU's.",
                )
                .weak(),
            );
        }
        for (i, t) in self.tables.iter().enumerate() {
            ui.add_space(8.0);
            ui.label(egui::RichText::new(&t.title).heading().size(15.0));
            show_table(ui, ("result-table", i), t, &mut self.sorts[i]);
        }
        let sources: Vec<String> = layer_sources(&self.report)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        if !sources.is_empty() {
            ui.add_space(10.0);
            ui.label(
                egui::RichText::new("Per layer (click a header to sort)")
                    .heading()
                    .size(15.0),
            );
            let current = self.layer_model.min(sources.len() - 1);
            egui::ComboBox::from_id_salt("layer-model")
                .selected_text(sources[current].clone())
                .show_ui(ui, |ui| {
                    for (i, s) in sources.iter().enumerate() {
                        if ui.selectable_value(&mut self.layer_model, i, s).changed() {
                            self.layer_sort = Sort::default();
                        }
                    }
                })
                .response
                .accessible_name("model of the per-layer table");
            if let Some(t) = self.layer_table() {
                show_table(ui, "layer-table", &t, &mut self.layer_sort);
            }
        }
        for i in 0..self.figures.len() {
            ui.add_space(10.0);
            self.show_figure(ui, i);
        }
    }

    fn show_figure(&mut self, ui: &mut egui::Ui, i: usize) {
        let fig = &self.figures[i];
        let tex = self.textures[i].get_or_insert_with(|| {
            let (w, h) = fig.chart.size();
            fig.chart.to_rgb().map_err(|e| e.to_string()).map(|rgb| {
                let img = egui::ColorImage::from_rgb([w as usize, h as usize], &rgb);
                ui.ctx()
                    .load_texture(&fig.stem, img, egui::TextureOptions::LINEAR)
            })
        });
        match tex {
            Ok(t) => {
                let size = t.size_vec2();
                let w = ui.available_width().min(size.x);
                ui.add(
                    egui::Image::new(egui::load::SizedTexture::new(t.id(), size))
                        .max_width(w)
                        .alt_text(&fig.alt),
                );
            }
            Err(e) => {
                ui.label(format!("{}: chart not drawn: {e}", fig.chart.title()));
            }
        }
    }
}
