//! A chart of either kind with its file stem and caption ([`Figure`]), and the renderings
//! the documents and the desktop app embed: SVG text with the x pixel of every position
//! (for hover values) and RGB pixels.

use super::{chart, chart_font, check_series, BarChart, LineChart, Series};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A bar or a line chart.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyChart {
    /// Grouped bars.
    Bar(BarChart),
    /// Lines over positions.
    Line(LineChart),
}

/// A chart as the reports show it: written as `stem.svg` / `stem.png`, shown with `alt` as
/// its text alternative (the Markdown image text, the HTML figure caption).
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// File stem, a plain file name.
    pub stem: String,
    /// Short text that stands for the chart.
    pub alt: String,
    /// The chart.
    pub chart: AnyChart,
}

/// A chart rendered as SVG, with what hover values need.
#[derive(Debug, Clone, PartialEq)]
pub struct SvgChart {
    /// The SVG document (no XML declaration).
    pub svg: String,
    /// Width and height in pixels (the SVG's own size).
    pub size: (u32, u32),
    /// X pixel of every category or x position, in the SVG's coordinates.
    pub x_px: Vec<i32>,
    /// The label of every position.
    pub x_labels: Vec<String>,
    /// The series drawn (names and values).
    pub series: Vec<Series>,
}

impl AnyChart {
    /// The chart's title.
    pub fn title(&self) -> &str {
        match self {
            AnyChart::Bar(c) => &c.title,
            AnyChart::Line(c) => &c.title,
        }
    }

    /// The label of every position: categories or x labels.
    pub fn x_labels(&self) -> &[String] {
        match self {
            AnyChart::Bar(c) => &c.categories,
            AnyChart::Line(c) => &c.x_labels,
        }
    }

    /// The series.
    pub fn series(&self) -> &[Series] {
        match self {
            AnyChart::Bar(c) => &c.series,
            AnyChart::Line(c) => &c.series,
        }
    }

    fn inner(&self) -> chart::Chart<'_> {
        match self {
            AnyChart::Bar(c) => chart::Chart::Bar(c),
            AnyChart::Line(c) => chart::Chart::Line(c),
        }
    }

    /// Checks the data as [`super::write_bar_chart`] / [`super::write_line_chart`] do.
    pub fn check(&self) -> Result<()> {
        let (kind, what) = match self {
            AnyChart::Bar(_) => ("bar chart", "categories"),
            AnyChart::Line(_) => ("line chart", "x labels"),
        };
        let name = super::chart_name(kind, self.title());
        check_series(&name, self.series(), self.x_labels().len(), what)
    }

    /// Width and height in pixels of both renderings.
    pub fn size(&self) -> (u32, u32) {
        self.inner().size()
    }

    /// The chart as SVG text (text measured with the chart font when there is one, else
    /// estimated), with the x pixel of each position.
    ///
    /// # Errors
    ///
    /// As [`AnyChart::check`]; [`Error::InvalidArgument`] if drawing fails.
    pub fn to_svg(&self) -> Result<SvgChart> {
        self.check()?;
        let (svg, x_px) = chart::render_svg(self.inner(), chart_font().is_some())
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", self.title())))?;
        Ok(SvgChart {
            svg,
            size: self.size(),
            x_px,
            x_labels: self.x_labels().to_vec(),
            series: self.series().to_vec(),
        })
    }

    /// The chart as RGB pixels (row-major, 3 bytes each, [`AnyChart::size`]).
    ///
    /// # Errors
    ///
    /// As [`AnyChart::check`]; [`Error::InvalidArgument`] naming the font setting when no
    /// chart font is found (pixels without axis labels would mislead).
    pub fn to_rgb(&self) -> Result<Vec<u8>> {
        self.check()?;
        if chart_font().is_none() {
            return Err(Error::InvalidArgument(format!(
                "{}: no TrueType font found to draw the chart's text; install \
                 fonts-dejavu-core or set {}=/path/to/font.ttf",
                self.title(),
                super::font::FONT_ENV
            )));
        }
        chart::render_rgb(self.inner())
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", self.title())))
    }
}

/// Writes `dir/stem.svg` and `dir/stem.png` of `fig` ([`super::write_bar_chart`],
/// [`super::write_line_chart`]).
pub fn write_figure(dir: &Path, fig: &Figure) -> Result<Vec<PathBuf>> {
    match &fig.chart {
        AnyChart::Bar(c) => super::write_bar_chart(dir, &fig.stem, c),
        AnyChart::Line(c) => super::write_line_chart(dir, &fig.stem, c),
    }
}
