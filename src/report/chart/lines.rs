//! Lines: one per series over evenly spaced positions with text tick labels.

use super::*;

pub(super) fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    area: &DrawingArea<DB, Shift>,
    c: &LineChart,
) -> DrawResult<Vec<i32>, DB> {
    let n = c.x_labels.len();
    let (lo, hi) = y_range(&c.series, 0.06);
    let y_band = y_label_band(area, (lo, hi), !c.y_label.is_empty())?;
    let (w, _) = area.dim_in_pixel();
    let plot_w = w as i32 - y_band - 30;
    let xl = x_label_layout(area, &c.x_labels, plot_w, !c.x_label.is_empty())?;

    let pad = if n == 1 { 0.5 } else { 0.4 };
    let x_axis = Positions {
        lo: -pad,
        hi: (n - 1) as f64 + pad,
        n,
    };
    let mut chart = frame(area, &xl, y_band, x_axis, lo..hi)?;
    let x_fmt = |x: &f64| category_label(&xl, &c.x_labels, *x);
    let y_fmt = |y: &f64| fmt_number(*y);
    chart
        .configure_mesh()
        .y_labels(Y_TICKS)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .label_style(font(TICK_PX))
        .axis_desc_style(font(DESC_PX))
        .axis_style(AXIS.stroke_width(1))
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(TRANSPARENT)
        .draw()?;

    let markers = n <= 40;
    for (j, s) in c.series.iter().enumerate() {
        let col = color(j);
        // Runs of consecutive finite values; NaN breaks the line.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let points = s
            .values
            .iter()
            .copied()
            .enumerate()
            .map(|(i, v)| (i as f64, v));
        for (x, v) in points.chain(std::iter::once((f64::NAN, f64::NAN))) {
            if v.is_finite() {
                run.push((x, v));
                continue;
            }
            if run.len() > 1 {
                chart.draw_series(LineSeries::new(run.iter().copied(), col.stroke_width(2)))?;
            }
            if markers || run.len() == 1 {
                for p in &run {
                    draw_marker(chart.plotting_area(), *p, j, col)?;
                }
            }
            run.clear();
        }
    }

    draw_x_labels(root, &c.x_labels, &xl, |i| {
        chart.backend_coord(&(i as f64, lo))
    })?;
    Ok((0..n)
        .map(|i| chart.backend_coord(&(i as f64, lo)).0)
        .collect())
}
