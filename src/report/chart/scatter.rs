//! Points on numeric x and y axes: one marker kind and colour per series, a series optionally
//! joined as a line (a Pareto front) and its points optionally labelled.

use super::*;
use crate::report::PointSeries;

/// The series as legend entries.
pub(super) fn legend(c: &ScatterChart) -> Vec<Series> {
    c.series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            values: Vec::new(),
        })
        .collect()
}

/// From zero (or below, for negative values) to the largest value, with headroom.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let span = hi - lo;
    if span <= 0.0 {
        return (0.0, 1.0);
    }
    (
        if lo < 0.0 { lo - 0.06 * span } else { 0.0 },
        hi + 0.08 * span,
    )
}

pub(super) fn draw_scatter<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: &ScatterChart,
) -> DrawResult<(), DB> {
    let all = || c.series.iter().flat_map(|s| s.points.iter().copied());
    let (x_lo, x_hi) = range(all().map(|p| p.0));
    let (y_lo, y_hi) = range(all().map(|p| p.1));
    let y_band = y_label_band(area, (y_lo, y_hi), !c.y_label.is_empty())?;
    let line_h = (TICK_PX * 1.2) as i32;
    let desc_h = if c.x_label.is_empty() {
        0
    } else {
        (DESC_PX * 1.6) as i32
    };
    let mut chart = ChartBuilder::on(area)
        .margin_top(8)
        .margin_left(10)
        .margin_right(20)
        .margin_bottom(8)
        .x_label_area_size(line_h + 14 + desc_h)
        .y_label_area_size(y_band)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
    let fmt = |v: &f64| fmt_number(*v);
    chart
        .configure_mesh()
        .x_labels(10)
        .y_labels(Y_TICKS)
        .x_label_formatter(&fmt)
        .y_label_formatter(&fmt)
        .x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .label_style(font(TICK_PX))
        .axis_desc_style(font(DESC_PX))
        .axis_style(AXIS.stroke_width(1))
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (j, s) in c.series.iter().enumerate() {
        draw_series(&mut chart, j, s)?;
    }
    Ok(())
}

fn draw_series<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    j: usize,
    s: &PointSeries,
) -> DrawResult<(), DB> {
    let col = color(j);
    if s.line && s.points.len() > 1 {
        // A front is a staircase: each point holds until the next one's latency.
        let mut steps = Vec::with_capacity(2 * s.points.len());
        for (k, &(x, y)) in s.points.iter().enumerate() {
            if k > 0 {
                steps.push((x, s.points[k - 1].1));
            }
            steps.push((x, y));
        }
        chart.draw_series(LineSeries::new(steps, col.stroke_width(2)))?;
    }
    let area = chart.plotting_area();
    for (k, &p) in s.points.iter().enumerate() {
        draw_marker(area, p, j, col)?;
        if let Some(label) = s.labels.get(k).filter(|l| !l.is_empty()) {
            area.draw(
                &(EmptyElement::at(p)
                    + Text::new(
                        label.clone(),
                        (7, -7),
                        font(VALUE_PX + 1.0).pos(Pos::new(HPos::Left, VPos::Bottom)),
                    )),
            )?;
        }
    }
    Ok(())
}
