//! The window's fonts: egui's own, then the charts' TrueType font
//! ([`gconv::report::chart_font`], DejaVu Sans on Debian) as the fallback for what they lack
//! (`▲ ▼ ▶ ✕ ≥` in the tables and buttons). Without it such glyphs are drawn as boxes.

use eframe::egui;

/// Adds the chart font as the last fallback of both families (once per context).
pub fn install(ctx: &egui::Context) {
    let Some(path) = gconv::report::chart_font() else {
        return;
    };
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    let families = [egui::FontFamily::Proportional, egui::FontFamily::Monospace]
        .into_iter()
        .map(|family| egui::epaint::text::InsertFontFamily {
            family,
            priority: egui::epaint::text::FontPriority::Lowest,
        })
        .collect();
    ctx.add_font(egui::epaint::text::FontInsert {
        name: "gconv-chart-font".into(),
        data: egui::FontData::from_owned(bytes),
        families,
    });
}
