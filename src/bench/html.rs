//! `report.html`: one self-contained file with the device, the configuration, every table
//! and every chart of a [`BenchReport`] ([`crate::report::html`]).

use super::BenchReport;
use crate::error::Result;
use crate::report::html::HtmlDoc;
use crate::report::{Figure, Table};

/// The configuration as a two-column table (`suites`, `input_size`, …).
pub(super) fn config_table(r: &BenchReport) -> Table {
    let v = serde_json::to_value(&r.config).expect("serialisable");
    let rows = v
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    vec![k.clone(), text]
                })
                .collect()
        })
        .unwrap_or_default();
    Table::new("Settings of this run", &["setting", "value"], rows)
}

/// The HTML report of `r` with its `tables` ([`super::report_tables`]) and its `figures`
/// ([`super::figures`]) inline as SVG.
///
/// # Errors
///
/// A chart that cannot be drawn ([`crate::report::AnyChart::to_svg`]).
pub fn render_html(r: &BenchReport, tables: &[Table], figures: &[Figure]) -> Result<String> {
    let mut d = HtmlDoc::new("gconv bench report");
    d.paragraph(&format!("Device: {}", r.device));
    d.paragraph(&format!("gconv {}", r.gconv_version));
    if r.software_device {
        d.note(
            "A software device: the CPU emulating a GPU — relative numbers matter, \
             absolute ones are a CPU's.",
        );
    }
    d.paragraph(
        "Times are medians of the timed runs with their min–max; hover a chart for its \
         values, click a table header to sort.",
    );
    d.heading(2, "Configuration");
    d.table(&config_table(r));
    d.heading(2, "Results");
    for t in tables {
        d.table(t);
    }
    if !figures.is_empty() {
        d.heading(2, "Charts");
        for f in figures {
            d.figure(f)?;
        }
    }
    Ok(d.finish())
}
