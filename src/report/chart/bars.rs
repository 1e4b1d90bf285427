//! Grouped bars: one bar per series in each category.

use super::*;

pub(super) fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    area: &DrawingArea<DB, Shift>,
    c: &BarChart,
) -> DrawResult<Vec<i32>, DB> {
    let n = c.categories.len();
    let k = c.series.len();
    let (lo, hi) = y_range(&c.series, 0.1);
    let y_band = y_label_band(area, (lo, hi), !c.y_label.is_empty())?;
    let (w, _) = area.dim_in_pixel();
    let plot_w = w as i32 - y_band - 30;
    let xl = x_label_layout(area, &c.categories, plot_w, false)?;

    let x_axis = Positions {
        lo: -0.5,
        hi: n as f64 - 0.5,
        n,
    };
    let mut chart = frame(area, &xl, y_band, x_axis, lo..hi)?;
    let x_fmt = |x: &f64| category_label(&xl, &c.categories, *x);
    let y_fmt = |y: &f64| fmt_number(*y);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_labels(Y_TICKS)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .y_desc(c.y_label.as_str())
        .label_style(font(TICK_PX))
        .axis_desc_style(font(DESC_PX))
        .axis_style(AXIS.stroke_width(1))
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(TRANSPARENT)
        .draw()?;

    // Bars: the group takes 80% of a category's width; bars get 90% of their slot.
    let group = 0.8;
    let slot = group / k as f64;
    let bar = |i: usize, j: usize| {
        let x0 = i as f64 - group / 2.0 + j as f64 * slot + slot * 0.05;
        (x0, x0 + slot * 0.9)
    };
    for (j, s) in c.series.iter().enumerate() {
        let col = color(j);
        chart.draw_series(
            s.values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| {
                    let (x0, x1) = bar(i, j);
                    Rectangle::new([(x0, 0.0), (x1, v)], col.filled())
                }),
        )?;
    }
    // Zero line over the bars' feet when the axis does not start at zero.
    if lo < 0.0 {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
            AXIS.stroke_width(1),
        )))?;
    }

    // Value labels, and `n/a` for missing bars, if every one fits over its bar.
    let value_style = font(VALUE_PX);
    let (bx0, bx1) = bar(0, 0);
    let bar_px = chart.backend_coord(&(bx1, 0.0)).0 - chart.backend_coord(&(bx0, 0.0)).0;
    let mut widest = text_width(area, MISSING, &value_style)?;
    for s in &c.series {
        for v in s.values.iter().filter(|v| v.is_finite()) {
            widest = widest.max(text_width(area, &fmt_value(*v), &value_style)?);
        }
    }
    if widest <= bar_px + 6 {
        for (j, s) in c.series.iter().enumerate() {
            for (i, &v) in s.values.iter().enumerate() {
                let (x0, x1) = bar(i, j);
                let (text, at, style) = if v.is_finite() {
                    (fmt_value(v), v, value_style.clone())
                } else {
                    (MISSING.to_string(), 0.0, value_style.color(&AXIS))
                };
                let (dy, vpos) = if at >= 0.0 {
                    (-3, VPos::Bottom)
                } else {
                    (3, VPos::Top)
                };
                chart.plotting_area().draw(
                    &(EmptyElement::at(((x0 + x1) / 2.0, at))
                        + Text::new(text, (0, dy), style.pos(Pos::new(HPos::Center, vpos)))),
                )?;
            }
        }
    }

    draw_x_labels(root, &c.categories, &xl, |i| {
        chart.backend_coord(&(i as f64, lo))
    })?;
    Ok((0..n)
        .map(|i| chart.backend_coord(&(i as f64, lo)).0)
        .collect())
}
