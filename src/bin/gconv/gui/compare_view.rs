//! The Compare tab: a saved report against the current run or another file, as
//! `gconv bench compare` shows them ([`gconv::bench::compare`]).

use super::table_view::{show_table, Sort};
use eframe::egui;
use gconv::bench::compare::{compare, Comparison};
use gconv::bench::BenchReport;
use gconv::report::Table;

/// The tab's state.
pub struct CompareState {
    /// The reference report: label and report.
    pub old: Option<(String, BenchReport)>,
    /// The other report when it is a file (else the current run is used).
    pub new_file: Option<(String, BenchReport)>,
    /// Compare with the current run rather than `new_file`.
    pub with_current: bool,
    /// `--fail-above` as text (empty: none).
    pub fail_above: String,
    /// The last comparison, its tables and their sorts.
    pub result: Option<(Comparison, Vec<Table>, Vec<Sort>)>,
    /// What went wrong last.
    pub error: Option<String>,
    texture: Option<Result<egui::TextureHandle, String>>,
}

impl Default for CompareState {
    fn default() -> Self {
        Self {
            old: None,
            new_file: None,
            with_current: true,
            fail_above: String::new(),
            result: None,
            error: None,
            texture: None,
        }
    }
}

impl CompareState {
    /// Compares the old report with the current run (`current`) or the new file.
    pub fn run(&mut self, current: Option<(&str, &BenchReport)>) {
        self.error = None;
        self.texture = None;
        let limit = match self.fail_above.trim() {
            "" => None,
            t => match t.parse::<f64>() {
                Ok(r) if r.is_finite() && r > 0.0 => Some(r),
                _ => {
                    self.error = Some(format!("fail above `{t}`: expected a ratio like 1.10"));
                    return;
                }
            },
        };
        let Some((old_label, old)) = &self.old else {
            self.error = Some("open the old report first".into());
            return;
        };
        let new = if self.with_current {
            current
        } else {
            self.new_file.as_ref().map(|(l, r)| (l.as_str(), r))
        };
        let Some((new_label, new)) = new else {
            self.error = Some(if self.with_current {
                "there is no current run yet: run a benchmark or open a report".into()
            } else {
                "open the new report first".into()
            });
            return;
        };
        let c = compare(old, old_label, new, new_label);
        let tables = c.tables(limit);
        let sorts = vec![Sort::default(); tables.len()];
        self.result = Some((c, tables, sorts));
    }

    /// Shows the last comparison.
    pub fn show_result(&mut self, ui: &mut egui::Ui) {
        if let Some(e) = &self.error {
            ui.colored_label(egui::Color32::RED, e);
        }
        let Some((c, tables, sorts)) = &mut self.result else {
            return;
        };
        ui.label(format!("old: {} — {}", c.old.label, c.old.device));
        ui.label(format!("new: {} — {}", c.new.label, c.new.device));
        ui.label(egui::RichText::new(c.summary()).strong());
        for (i, t) in tables.iter().enumerate() {
            ui.add_space(8.0);
            ui.label(egui::RichText::new(&t.title).heading().size(15.0));
            show_table(ui, ("compare-table", i), t, &mut sorts[i]);
        }
        if let Some(fig) = c.figure() {
            let tex = self.texture.get_or_insert_with(|| {
                let (w, h) = fig.chart.size();
                fig.chart.to_rgb().map_err(|e| e.to_string()).map(|rgb| {
                    let img = egui::ColorImage::from_rgb([w as usize, h as usize], &rgb);
                    ui.ctx()
                        .load_texture("compare", img, egui::TextureOptions::LINEAR)
                })
            });
            match tex {
                Ok(t) => {
                    let size = t.size_vec2();
                    ui.add(
                        egui::Image::new(egui::load::SizedTexture::new(t.id(), size))
                            .max_width(ui.available_width().min(size.x)),
                    );
                }
                Err(e) => {
                    ui.label(format!("chart not drawn: {e}"));
                }
            }
        }
    }
}
