//! Drawing [`BarChart`]s and [`LineChart`]s with plotters, to SVG text or PNG bytes.
//!
//! Layout (top to bottom): title; legend as one centred row if it fits, else as a
//! column right of the plot; the plot with y tick labels and axis descriptions. X tick
//! labels are horizontal when they fit between ticks, else rotated to read upwards
//! and, if still too dense, thinned out.

use plotters::backend::RGBPixel;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
use plotters_backend::BackendCoord;

use super::{BarChart, LineChart, ScatterChart, Series};

/// A validated chart to draw.
#[derive(Clone, Copy)]
pub(crate) enum Chart<'a> {
    Bar(&'a BarChart),
    Line(&'a LineChart),
    Scatter(&'a ScatterChart),
}

impl Chart<'_> {
    /// Width and height in pixels.
    pub(crate) fn size(self) -> (u32, u32) {
        match self {
            Chart::Bar(_) => (800, 480),
            Chart::Line(_) | Chart::Scatter(_) => (960, 540),
        }
    }
}

/// Tableau 10: distinct, print- and colour-blind-friendlier than the plotters defaults.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const TEXT: RGBColor = RGBColor(30, 30, 30);
const GRID: RGBColor = RGBColor(225, 225, 225);
const AXIS: RGBColor = RGBColor(90, 90, 90);
const FAMILY: &str = super::font::FAMILY;
const TITLE_PX: f64 = 22.0;
const LEGEND_PX: f64 = 15.0;
const TICK_PX: f64 = 14.0;
const DESC_PX: f64 = 15.0;
const VALUE_PX: f64 = 12.0;
/// Label of a missing (NaN) bar.
const MISSING: &str = "n/a";
/// Number of y ticks asked of plotters (it picks "nice" values up to this count).
const Y_TICKS: usize = 8;

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn font(px: f64) -> TextStyle<'static> {
    (FAMILY, px).into_font().color(&TEXT)
}

/// Render as SVG text, with the x pixel of every category (bar chart) or x position (line
/// chart). `font_metrics`: measure text with the registered font; if false (no font), text
/// widths are estimated.
pub(crate) fn render_svg(
    chart: Chart<'_>,
    font_metrics: bool,
) -> Result<(String, Vec<i32>), String> {
    let mut svg = String::new();
    let xs;
    {
        let backend = Measured {
            inner: SVGBackend::with_string(&mut svg, chart.size()),
            font_metrics,
        };
        let root = backend.into_drawing_area();
        xs = draw(&root, chart).map_err(|e| format!("drawing SVG chart: {e}"))?;
        root.present()
            .map_err(|e| format!("drawing SVG chart: {e}"))?;
    }
    Ok((svg, xs))
}

/// Render as RGB pixels (8 bits each, row-major, [`Chart::size`]). Needs a registered font.
pub(crate) fn render_rgb(chart: Chart<'_>) -> Result<Vec<u8>, String> {
    let (w, h) = chart.size();
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut rgb, (w, h))
            .map_err(|e| format!("drawing PNG chart: {e}"))?;
        let root = backend.into_drawing_area();
        draw(&root, chart).map_err(|e| format!("drawing PNG chart: {e}"))?;
        root.present()
            .map_err(|e| format!("drawing PNG chart: {e}"))?;
    }
    Ok(rgb)
}

/// Render as PNG bytes (RGB, 8 bits). Needs a registered font.
pub(crate) fn render_png(chart: Chart<'_>) -> Result<Vec<u8>, String> {
    let (w, h) = chart.size();
    let rgb = render_rgb(chart)?;
    let mut png = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc
            .write_header()
            .map_err(|e| format!("encoding PNG: {e}"))?;
        writer
            .write_image_data(&rgb)
            .map_err(|e| format!("encoding PNG: {e}"))?;
        writer.finish().map_err(|e| format!("encoding PNG: {e}"))?;
    }
    Ok(png)
}

type DrawResult<T, DB> = Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Draws the chart; returns the x pixel of every category or x position.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: Chart<'_>,
) -> DrawResult<Vec<i32>, DB> {
    root.fill(&WHITE)?;
    let legend: Vec<Series>;
    let (title, series) = match chart {
        Chart::Bar(c) => (&c.title, &c.series[..]),
        Chart::Line(c) => (&c.title, &c.series[..]),
        Chart::Scatter(c) => {
            legend = scatter::legend(c);
            (&c.title, &legend[..])
        }
    };
    let rest = draw_title(root, title)?;
    let plot = draw_legend(&rest, series, !matches!(chart, Chart::Bar(_)))?;
    match chart {
        Chart::Bar(c) => draw_bars(root, &plot, c),
        Chart::Line(c) => draw_lines(root, &plot, c),
        Chart::Scatter(c) => scatter::draw_scatter(&plot, c).map(|()| Vec::new()),
    }
}

fn text_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle<'_>,
) -> DrawResult<i32, DB> {
    Ok(area.estimate_text_size(text, style)?.0 as i32)
}

/// Draw the title centred at the top (shrunk to fit the width); returns the area below.
fn draw_title<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> DrawResult<DrawingArea<DB, Shift>, DB> {
    if title.is_empty() {
        let (_, rest) = root.split_vertically(10);
        return Ok(rest);
    }
    let (w, _) = root.dim_in_pixel();
    let mut px = TITLE_PX;
    let mut style = (FAMILY, px, FontStyle::Bold).into_font().color(&TEXT);
    while px > 10.0 && text_width(root, title, &style)? > w as i32 - 20 {
        px -= 1.0;
        style = (FAMILY, px, FontStyle::Bold).into_font().color(&TEXT);
    }
    let height = (px * 1.5) as i32 + 12;
    let (top, rest) = root.split_vertically(height);
    top.draw(&Text::new(
        title.to_string(),
        (w as i32 / 2, height / 2),
        style.pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    Ok(rest)
}

/// Shorten `text` with an ellipsis until it is at most `max` pixels wide.
fn fit_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle<'_>,
    max: i32,
) -> DrawResult<String, DB> {
    if text_width(area, text, style)? <= max {
        return Ok(text.to_string());
    }
    let chars: Vec<char> = text.chars().collect();
    for keep in (1..chars.len()).rev() {
        let t: String = chars[..keep].iter().chain(['…'].iter()).collect();
        if text_width(area, &t, style)? <= max {
            return Ok(t);
        }
    }
    Ok("…".to_string())
}

/// Draw the legend as a centred row above the plot if it fits, else as a column on
/// the right; returns the area left for the plot.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
    lines: bool,
) -> DrawResult<DrawingArea<DB, Shift>, DB> {
    const SWATCH: i32 = 26;
    const GAP: i32 = 7;
    const SPACING: i32 = 24;
    let style = font(LEGEND_PX);
    let (w, _) = area.dim_in_pixel();
    let w = w as i32;
    let widths: Vec<i32> = series
        .iter()
        .map(|s| text_width(area, &s.name, &style))
        .collect::<Result<_, _>>()?;
    let row_width: i32 = widths.iter().map(|tw| SWATCH + GAP + tw).sum::<i32>()
        + SPACING * (widths.len() as i32 - 1);

    let entry = |a: &DrawingArea<DB, Shift>, i: usize, name: &str, x: i32, y: i32| {
        let c = color(i);
        if lines {
            a.draw(&PathElement::new(
                vec![(x, y), (x + SWATCH, y)],
                c.stroke_width(2),
            ))?;
            draw_marker(a, (x + SWATCH / 2, y), i, c)?;
        } else {
            a.draw(&Rectangle::new(
                [(x + 4, y - 8), (x + SWATCH - 4, y + 8)],
                c.filled(),
            ))?;
        }
        a.draw(&Text::new(
            name.to_string(),
            (x + SWATCH + GAP, y),
            style.pos(Pos::new(HPos::Left, VPos::Center)),
        ))
    };

    if row_width <= w - 60 {
        let (top, rest) = area.split_vertically(30);
        let mut x = (w - row_width) / 2;
        for (i, (s, tw)) in series.iter().zip(&widths).enumerate() {
            entry(&top, i, &s.name, x, 12)?;
            x += SWATCH + GAP + tw + SPACING;
        }
        Ok(rest)
    } else {
        let max_text = (w / 4).max(60);
        let names: Vec<String> = series
            .iter()
            .map(|s| fit_text(area, &s.name, &style, max_text))
            .collect::<Result<_, _>>()?;
        let text_w = names
            .iter()
            .map(|n| text_width(area, n, &style))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .max()
            .unwrap_or(0);
        let col_w = SWATCH + GAP + text_w + 24;
        let (plot, right) = area.split_horizontally(w - col_w);
        for (i, n) in names.iter().enumerate() {
            entry(&right, i, n, 4, 24 + i as i32 * SPACING)?;
        }
        Ok(plot)
    }
}

/// Filled point marker number `i % 5` (circle, square, triangle, diamond, ring),
/// centred at `at`.
fn draw_marker<DB, CT>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    i: usize,
    c: RGBColor,
) -> DrawResult<(), DB>
where
    DB: DrawingBackend,
    CT: plotters::coord::CoordTranslate,
    CT::From: Clone,
{
    let fill = c.filled();
    let e = EmptyElement::at(at);
    match i % 5 {
        0 => area.draw(&(e + Circle::new((0, 0), 4, fill))),
        1 => area.draw(&(e + Rectangle::new([(-4, -4), (4, 4)], fill))),
        2 => area.draw(&(e + Polygon::new(vec![(0, -5), (5, 4), (-5, 4)], fill))),
        3 => area.draw(&(e + Polygon::new(vec![(0, -6), (5, 0), (0, 6), (-5, 0)], fill))),
        _ => area.draw(&(e + Circle::new((0, 0), 4, c.stroke_width(2)))),
    }
}

/// A number for a tick or bar label: up to 6 decimals, trailing zeros dropped.
fn fmt_number(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// A bar's value label: three significant digits (at least the integer part).
fn fmt_value(v: f64) -> String {
    let a = v.abs();
    let decimals = if a == 0.0 || a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => s,
    }
}

/// Y range from zero (or the minimum, if negative) to the maximum, with headroom.
fn y_range(series: &[Series], headroom: f64) -> (f64, f64) {
    let finite = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let span = hi - lo;
    if span <= 0.0 {
        return (0.0, 1.0);
    }
    let lo = if lo < 0.0 { lo - span * headroom } else { 0.0 };
    let hi = if hi > 0.0 { hi + span * headroom } else { 0.0 };
    (lo, hi)
}

/// How the x tick labels are drawn.
struct XLabels {
    /// Rotated to read upwards (else horizontal, centred under the tick).
    rotated: bool,
    /// Label every `step`-th position (1 = all).
    step: usize,
    /// Height of the label band below the axis, including the axis description.
    band: i32,
    /// Longest rotated label, in pixels (longer ones are shortened with `…`).
    max_len: i32,
}

/// Decide the x label layout for `labels` spread over about `plot_w` pixels.
fn x_label_layout<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    labels: &[String],
    plot_w: i32,
    has_desc: bool,
) -> DrawResult<XLabels, DB> {
    let style = font(TICK_PX);
    let mut max_w = 0;
    for l in labels {
        max_w = max_w.max(text_width(area, l, &style)?);
    }
    let line_h = (TICK_PX * 1.2) as i32;
    let desc_h = if has_desc { (DESC_PX * 1.6) as i32 } else { 0 };
    let pitch = plot_w as f64 / labels.len().max(1) as f64;
    if (max_w + 10) as f64 <= pitch {
        return Ok(XLabels {
            rotated: false,
            step: 1,
            band: line_h + 14 + desc_h,
            max_len: max_w,
        });
    }
    let step = ((line_h + 4) as f64 / pitch).ceil().max(1.0) as usize;
    // Rotated labels longer than ~40% of the chart height are cut (see draw_x_labels).
    let max_w = max_w.min(area.dim_in_pixel().1 as i32 * 2 / 5);
    Ok(XLabels {
        rotated: true,
        step,
        band: max_w + 16 + desc_h,
        max_len: max_w,
    })
}

/// Draw rotated x tick labels (horizontal ones are drawn by the mesh).
/// The plot both chart kinds draw in: margins, label bands and a categorical x axis.
type Frame<'a, DB> = ChartContext<'a, DB, Cartesian2d<Positions, RangedCoordf64>>;

fn frame<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    xl: &XLabels,
    y_band: i32,
    x_axis: Positions,
    y: std::ops::Range<f64>,
) -> DrawResult<Frame<'a, DB>, DB> {
    ChartBuilder::on(area)
        .margin_top(8)
        .margin_left(10)
        .margin_right(20)
        .margin_bottom(8)
        .x_label_area_size(xl.band)
        .y_label_area_size(y_band)
        .build_cartesian_2d(x_axis, y)
}

/// The tick label at category position `x`: its name, or nothing between categories and when
/// the names are drawn rotated by [`draw_x_labels`].
fn category_label(xl: &XLabels, names: &[String], x: f64) -> String {
    let i = x.round();
    if xl.rotated || i < 0.0 || i as usize >= names.len() {
        return String::new();
    }
    names[i as usize].clone()
}

fn draw_x_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    labels: &[String],
    layout: &XLabels,
    axis_px: impl Fn(usize) -> BackendCoord,
) -> DrawResult<(), DB> {
    if !layout.rotated {
        return Ok(());
    }
    let style = font(TICK_PX);
    let rot = style
        .transform(FontTransform::Rotate270)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (i, l) in labels.iter().enumerate().step_by(layout.step) {
        let (x, y) = axis_px(i);
        let text = fit_text(root, l, &style, layout.max_len)?;
        root.draw(&Text::new(text, (x, y + 8), rot.clone()))?;
    }
    Ok(())
}

/// Width of the y label band: widest tick label plus the rotated axis description.
fn y_label_band<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (lo, hi): (f64, f64),
    has_desc: bool,
) -> DrawResult<i32, DB> {
    let style = font(TICK_PX);
    let mut w = 0;
    for v in RangedCoordf64::from(lo..hi).key_points(Y_TICKS) {
        w = w.max(text_width(area, &fmt_number(v), &style)?);
    }
    let desc = if has_desc { (DESC_PX * 1.6) as i32 } else { 0 };
    Ok(w + 14 + desc)
}

/// X axis over positions `0..n` (as f64, padded): ticks exactly at the positions.
pub(super) struct Positions {
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) n: usize,
}

impl Ranged for Positions {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        RangedCoordf64::from(self.lo..self.hi).map(value, limit)
    }
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            (0..self.n).map(|i| i as f64).collect()
        }
    }
    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

mod bars;
mod lines;
mod measured;
mod scatter;

use bars::draw_bars;
use lines::draw_lines;
pub(crate) use measured::Measured;

#[cfg(test)]
mod tests;
