//! Reports for the benchmark app: charts (SVG and PNG) and Markdown tables.
//!
//! Two chart kinds cover what the benchmarks show:
//!
//! * [`BarChart`] — grouped bars, one bar per [`Series`] in each category (e.g. MACs
//!   and latency of grouping schemes A–E relative to a baseline of 100);
//! * [`LineChart`] — one line per series over evenly spaced x positions with text
//!   tick labels (e.g. time per ResNet-50 stage for several model variants).
//!
//! [`write_bar_chart`] and [`write_line_chart`] write `dir/stem.svg` and
//! `dir/stem.png`; [`markdown_table`] renders a summary table.
//!
//! # Fonts
//!
//! Chart text in the PNG is rasterised with a TrueType font found at run time (see
//! [`chart_font`]; set `GCONV_FONT` to choose one). The SVG needs no font file: its
//! text is drawn by the viewer with the generic `sans-serif` family, and when no font
//! is found its layout uses approximate text widths. So without any font the SVG is
//! still written and the call then fails with an [`Error::Io`] of kind `NotFound`
//! naming the PNG — a PNG without axis labels or legend would be misleading, so none
//! is written.

mod chart;
mod figure;
mod font;
pub mod html;
mod markdown;
mod table;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs::write_atomic;

pub use figure::{write_figure, AnyChart, Figure, SvgChart};
pub use font::chart_font;
pub use markdown::markdown_table;
pub use table::{leading_number, Table};

/// One named row of values: a set of bars of one colour, or one line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// One value per category (bar chart) or x position (line chart); `NaN` marks a
    /// missing point, which is left out (a gap in a line, no bar).
    pub values: Vec<f64>,
}

/// Grouped bar chart: in each category, one bar per series, side by side.
///
/// The y axis starts at zero (or below, for negative values).
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// Title drawn above the chart (may be empty).
    pub title: String,
    /// Y axis description, e.g. `% of baseline`.
    pub y_label: String,
    /// Category names along the x axis, in order.
    pub categories: Vec<String>,
    /// The series; each has exactly one value per category.
    pub series: Vec<Series>,
}

/// Line chart: one line (with point markers) per series over x positions
/// `0..x_labels.len()`, labelled with `x_labels` (rotated and thinned out when they
/// do not fit side by side).
///
/// The y axis starts at zero (or below, for negative values).
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title drawn above the chart (may be empty).
    pub title: String,
    /// X axis description, e.g. `layer`.
    pub x_label: String,
    /// Y axis description, e.g. `time (ms)`.
    pub y_label: String,
    /// Tick label of each x position, in order.
    pub x_labels: Vec<String>,
    /// The series; each has exactly one value per x position.
    pub series: Vec<Series>,
}

/// Points with numeric coordinates, drawn as markers (one kind and colour per series),
/// optionally joined as a staircase (a Pareto front) and labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSeries {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points; for a line, in x order.
    pub points: Vec<(f64, f64)>,
    /// Empty, or one label per point (empty strings for none).
    pub labels: Vec<String>,
    /// Join the points as a staircase: each y holds until the next point's x.
    pub line: bool,
}

/// Scatter chart over numeric x and y axes, both from zero (e.g. latency vs MACs of
/// grouping schemes, with a Pareto front and reference schemes marked).
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterChart {
    /// Title drawn above the chart (may be empty).
    pub title: String,
    /// X axis description, e.g. `latency (ms)`.
    pub x_label: String,
    /// Y axis description, e.g. `GMACs`.
    pub y_label: String,
    /// The series.
    pub series: Vec<PointSeries>,
}

/// Write a scatter chart as `dir/stem.svg` and `dir/stem.png` (960×540 pixels); returns the
/// paths written, SVG first.
///
/// # Errors
///
/// As [`write_bar_chart`]: no series, a series without points, a non-finite coordinate,
/// labels not matching the points, or a stem that is not a plain file name.
pub fn write_scatter_chart(dir: &Path, stem: &str, chart: &ScatterChart) -> Result<Vec<PathBuf>> {
    check_scatter(chart)?;
    write_chart(dir, stem, chart::Chart::Scatter(chart), chart_font())
}

/// The SVG text and (when a font is found) the PNG bytes of a scatter chart, for callers that
/// write every file of a report only once all of them are ready.
///
/// # Errors
///
/// As [`write_scatter_chart`], less the file errors.
pub fn render_scatter_chart(chart: &ScatterChart) -> Result<(String, Option<Vec<u8>>)> {
    check_scatter(chart)?;
    let c = chart::Chart::Scatter(chart);
    let font = chart_font();
    let fail = |m: String| Error::InvalidArgument(format!("scatter chart: {m}"));
    let (svg, _) = chart::render_svg(c, font.is_some()).map_err(fail)?;
    let png = match font {
        Some(_) => Some(chart::render_png(c).map_err(fail)?),
        None => None,
    };
    Ok((svg, png))
}

fn check_scatter(c: &ScatterChart) -> Result<()> {
    let name = chart_name("scatter chart", &c.title);
    let bad = |msg: String| Err(Error::InvalidArgument(format!("{name}: {msg}")));
    if c.series.is_empty() {
        return bad("no series".into());
    }
    for s in &c.series {
        if s.points.is_empty() {
            return bad(format!("series `{}` has no points", s.name));
        }
        if s.points
            .iter()
            .any(|(x, y)| !x.is_finite() || !y.is_finite())
        {
            return bad(format!("series `{}` has a non-finite point", s.name));
        }
        if !s.labels.is_empty() && s.labels.len() != s.points.len() {
            return bad(format!(
                "series `{}` has {} labels for {} points",
                s.name,
                s.labels.len(),
                s.points.len()
            ));
        }
    }
    Ok(())
}

/// Write a grouped bar chart as `dir/stem.svg` and `dir/stem.png` (800×480 pixels);
/// returns the paths written, SVG first. `dir` is created if missing.
///
/// # Errors
///
/// [`Error::InvalidArgument`] (naming the chart) if there are no categories or no
/// series, a series' length differs from the number of categories, a value is
/// infinite, no value is finite, or `stem` is not a plain file name.
/// [`Error::Io`] if a file cannot be written, or — after the SVG was written — if no
/// font for the PNG text was found (kind `NotFound`; see the [module docs](self)).
pub fn write_bar_chart(dir: &Path, stem: &str, chart: &BarChart) -> Result<Vec<PathBuf>> {
    let name = chart_name("bar chart", &chart.title);
    check_series(&name, &chart.series, chart.categories.len(), "categories")?;
    write_chart(dir, stem, chart::Chart::Bar(chart), chart_font())
}

/// Write a line chart as `dir/stem.svg` and `dir/stem.png` (960×540 pixels);
/// returns the paths written, SVG first. `dir` is created if missing.
///
/// # Errors
///
/// As [`write_bar_chart`], with x positions (`x_labels`) in place of categories.
pub fn write_line_chart(dir: &Path, stem: &str, chart: &LineChart) -> Result<Vec<PathBuf>> {
    let name = chart_name("line chart", &chart.title);
    check_series(&name, &chart.series, chart.x_labels.len(), "x labels")?;
    write_chart(dir, stem, chart::Chart::Line(chart), chart_font())
}

fn chart_name(kind: &str, title: &str) -> String {
    if title.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} `{title}`")
    }
}

/// Check that the data can be drawn: `n` positions, every series of length `n`,
/// values finite or NaN, at least one finite value.
fn check_series(name: &str, series: &[Series], n: usize, what: &str) -> Result<()> {
    let bad = |msg: String| Err(Error::InvalidArgument(format!("{name}: {msg}")));
    if n == 0 {
        return bad(format!("no {what}"));
    }
    if series.is_empty() {
        return bad("no series".into());
    }
    let mut any_finite = false;
    for s in series {
        if s.values.len() != n {
            return bad(format!(
                "series `{}` has {} values but there are {n} {what}",
                s.name,
                s.values.len()
            ));
        }
        if let Some(i) = s.values.iter().position(|v| v.is_infinite()) {
            return bad(format!(
                "series `{}`: value {i} is {} (use NaN for a missing value)",
                s.name, s.values[i]
            ));
        }
        any_finite |= s.values.iter().any(|v| v.is_finite());
    }
    if !any_finite {
        return bad("no finite values to draw (all are NaN)".into());
    }
    Ok(())
}

/// Check that `stem` is a plain file name (no separators, not `.`/`..`).
fn check_stem(stem: &str) -> Result<()> {
    let plain = !stem.is_empty()
        && stem != "."
        && stem != ".."
        && !stem.contains(['/', '\\', '\0'])
        && Path::new(stem).file_name() == Some(std::ffi::OsStr::new(stem));
    if plain {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "chart file stem `{stem}` must be a plain file name without extension or folders"
        )))
    }
}

/// Write the SVG (always) and the PNG (when a font is available) of a validated chart.
fn write_chart(
    dir: &Path,
    stem: &str,
    chart: chart::Chart<'_>,
    font: Option<&Path>,
) -> Result<Vec<PathBuf>> {
    check_stem(stem)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let svg_path = dir.join(format!("{stem}.svg"));
    let png_path = dir.join(format!("{stem}.png"));

    let (svg, _) = chart::render_svg(chart, font.is_some())
        .map_err(|msg| Error::io(&svg_path, std::io::Error::other(msg)))?;
    write_atomic(&svg_path, svg.as_bytes())?;

    if font.is_none() {
        return Err(Error::io(
            &png_path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "no TrueType font found to draw the chart's text, so the PNG was not \
                     written (the SVG was: {}); install fonts-dejavu-core or set {}=/path/to/font.ttf",
                    svg_path.display(),
                    font::FONT_ENV
                ),
            ),
        ));
    }
    let png =
        chart::render_png(chart).map_err(|msg| Error::io(&png_path, std::io::Error::other(msg)))?;
    write_atomic(&png_path, &png)?;
    Ok(vec![svg_path, png_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("gconv-report-unit-{}-{name}", std::process::id()))
    }

    fn sample() -> BarChart {
        BarChart {
            title: "No font & <escapes>".into(),
            y_label: "%".into(),
            categories: vec!["baseline".into(), "A".into()],
            series: vec![Series {
                name: "MACs %".into(),
                values: vec![100.0, 40.0],
            }],
        }
    }

    /// Without a font the SVG is still written (with estimated text widths) and the
    /// PNG is refused with a NotFound I/O error that names it.
    #[test]
    fn without_font_svg_is_written_and_png_is_an_error() {
        let dir = tmp("nofont");
        let _ = std::fs::remove_dir_all(&dir);
        let chart = sample();
        let err = write_chart(&dir, "c", chart::Chart::Bar(&chart), None).unwrap_err();
        match &err {
            Error::Io { path, source } => {
                assert_eq!(path, &dir.join("c.png"));
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert!(err.to_string().contains("GCONV_FONT"), "{err}");
        let svg = std::fs::read_to_string(dir.join("c.svg")).unwrap();
        assert!(svg.contains("No font &amp; &lt;escapes&gt;"), "{svg}");
        assert!(svg.contains("MACs %"));
        assert!(!dir.join("c.png").exists());

        let line = LineChart {
            title: "Line without font".into(),
            x_label: "layer".into(),
            y_label: "time (ms)".into(),
            x_labels: (0..18)
                .map(|i| format!("layer{}.{}", i / 4 + 1, i % 4))
                .collect(),
            series: (0..5)
                .map(|j| Series {
                    name: format!("resnet50-dsc-flgc G={j}"),
                    values: (0..18).map(|i| ((i * (j + 2)) % 7) as f64 * 0.3).collect(),
                })
                .collect(),
        };
        let err = write_chart(&dir, "l", chart::Chart::Line(&line), None).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        let svg = std::fs::read_to_string(dir.join("l.svg")).unwrap();
        assert!(svg.contains("layer5.1") && svg.contains("resnet50-dsc-flgc G=4"));
        if std::env::var_os("GCONV_KEEP_CHARTS").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn stems_must_be_plain() {
        for bad in ["", ".", "..", "a/b", "a\\b", "/abs"] {
            assert!(check_stem(bad).is_err(), "{bad:?}");
        }
        check_stem("example-vgg13bn").unwrap();
    }
}
