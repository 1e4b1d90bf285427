//! A [`Table`] in the window: a striped grid whose headers sort it
//! ([`Table::sorted_order`]: numbers as numbers, placeholders last).

use eframe::egui;
use gconv::report::Table;

/// How a table is sorted: by which column, which way; `None` keeps the report's order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sort {
    /// The column and whether descending.
    pub by: Option<(usize, bool)>,
}

impl Sort {
    /// A click on header `col`: ascending, then descending, then the report's order.
    pub fn click(&mut self, col: usize) {
        self.by = match self.by {
            Some((c, false)) if c == col => Some((col, true)),
            Some((c, true)) if c == col => None,
            _ => Some((col, false)),
        };
    }

    /// The row order of `t` under this sort.
    pub fn order(&self, t: &Table) -> Vec<usize> {
        match self.by {
            Some((c, desc)) => t.sorted_order(c, desc),
            None => (0..t.rows.len()).collect(),
        }
    }
}

/// Shows `t` (without its title) in a horizontally scrolling grid; a header click sorts.
pub fn show_table(ui: &mut egui::Ui, id: impl egui::AsIdSalt + Copy, t: &Table, sort: &mut Sort) {
    egui::ScrollArea::horizontal()
        .id_salt(("scroll", id))
        .show(ui, |ui| {
            egui::Grid::new(("grid", id))
                .striped(true)
                .spacing([14.0, 3.0])
                .show(ui, |ui| {
                    for (c, h) in t.headers.iter().enumerate() {
                        let arrow = match sort.by {
                            Some((col, false)) if col == c => " ▲",
                            Some((col, true)) if col == c => " ▼",
                            _ => "",
                        };
                        let text = egui::RichText::new(format!("{h}{arrow}")).strong();
                        if ui.add(egui::Button::new(text).frame(false)).clicked() {
                            sort.click(c);
                        }
                    }
                    ui.end_row();
                    for r in sort.order(t) {
                        for c in 0..t.headers.len() {
                            let cell = t.rows[r].get(c).map_or("", String::as_str);
                            // Markdown emphasis of the summary (`**total**`): a bold cell.
                            let bold = cell.starts_with("**");
                            let cell = cell.replace("**", "");
                            let mut text = egui::RichText::new(&cell);
                            if bold {
                                text = text.strong();
                            }
                            if gconv::report::leading_number(&cell).is_some() {
                                ui.with_layout(
                                    egui::Layout::right_to_left(egui::Align::Center),
                                    |ui| ui.label(text),
                                );
                            } else {
                                ui.label(text);
                            }
                        }
                        ui.end_row();
                    }
                });
        });
}
