//! Charts and Markdown tables of `gconv::report`.
//!
//! Writes the two charts the benchmark app plans (VGG13BN schemes vs baseline;
//! ResNet-50 layer-wise time) and checks the SVG and PNG files. The PNG checks run
//! only when a font was found (`gconv::report::chart_font`); without one the PNG must
//! be refused with an I/O error while the SVG is still written.

#![cfg(feature = "app")]

use std::path::{Path, PathBuf};

use gconv::report::{
    chart_font, markdown_table, write_bar_chart, write_line_chart, BarChart, LineChart, Series,
};
use gconv::Error;

/// A fresh, unique temp directory (removed first if left over).
fn temp_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "gconv-charts-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Remove a test's output unless `GCONV_KEEP_CHARTS` is set (to look at the charts).
fn cleanup(dir: &Path) {
    if std::env::var_os("GCONV_KEEP_CHARTS").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        eprintln!("kept {}", dir.display());
    }
}

fn series(name: &str, values: &[f64]) -> Series {
    Series {
        name: name.to_string(),
        values: values.to_vec(),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn vgg_chart() -> BarChart {
    BarChart {
        title: "VGG13BN: MACs and latency vs baseline".into(),
        y_label: "% of baseline".into(),
        categories: strings(&["baseline", "A", "B", "C", "D", "E"]),
        series: vec![
            series("MACs %", &[100.0, 62.4, 45.1, 31.9, 25.6, 13.2]),
            series("latency %", &[100.0, 71.8, 58.3, 47.0, f64::NAN, 29.4]),
        ],
    }
}

fn resnet_chart() -> LineChart {
    let mut x = vec!["stem".to_string()];
    for (stage, blocks) in [(1, 3), (2, 4), (3, 6), (4, 3)] {
        for b in 0..blocks {
            x.push(format!("layer{stage}.{b}"));
        }
    }
    x.push("fc".into());
    let n = x.len();
    let base: Vec<f64> = (0..n)
        .map(|i| match i {
            0 => 1.9,
            i if i == n - 1 => 0.05,
            i => 0.6 + 0.35 * ((i * 7) % 5) as f64 + if i % 4 == 1 { 0.8 } else { 0.0 },
        })
        .collect();
    let scaled = |f: f64| base.iter().map(|v| v * f).collect::<Vec<_>>();
    let mut flgc8 = scaled(0.31);
    flgc8[5] = f64::NAN; // a missing point
    LineChart {
        title: "ResNet-50 layer-wise time".into(),
        x_label: "layer".into(),
        y_label: "time (ms)".into(),
        x_labels: x,
        series: vec![
            series("resnet50", &base),
            series("resnet50-dsc", &scaled(0.62)),
            series("resnet50-dsc-sgc G=4", &scaled(0.44)),
            series("resnet50-dsc-flgc G=4", &scaled(0.40)),
            series("resnet50-dsc-flgc G=8", &flgc8),
        ],
    }
}

/// Width and height from the PNG signature and IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 33, "PNG too short");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG magic");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Decode the PNG fully and count pixels that are not white (something was drawn).
fn png_decode(path: &Path) -> (u32, u32, usize) {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let ink = buf[..info.buffer_size()]
        .chunks(info.color_type.samples())
        .filter(|px| px.iter().take(3).any(|&c| c < 200))
        .count();
    (info.width, info.height, ink)
}

fn check_svg(path: &Path, size: (u32, u32), texts: &[&str]) {
    let svg = std::fs::read_to_string(path).unwrap();
    assert!(svg.trim_start().starts_with("<svg"), "{svg:.200}");
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(&format!("width=\"{}\" height=\"{}\"", size.0, size.1)));
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    for t in texts {
        assert!(svg.contains(t), "SVG lacks `{t}`");
    }
}

/// Write a chart; check the SVG always and the PNG when a font exists.
fn check_written(
    result: gconv::Result<Vec<PathBuf>>,
    dir: &Path,
    stem: &str,
    size: (u32, u32),
    texts: &[&str],
) {
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    match chart_font() {
        Some(font) => {
            eprintln!("chart font: {}", font.display());
            let paths = result.unwrap();
            assert_eq!(paths, vec![svg.clone(), png.clone()]);
            let bytes = std::fs::read(&png).unwrap();
            assert_eq!(png_size(&bytes), size);
            let (w, h, ink) = png_decode(&png);
            assert_eq!((w, h), size);
            assert!(ink > 5_000, "PNG looks empty ({ink} dark pixels)");
        }
        None => {
            eprintln!("no chart font: only the SVG is checked");
            match result {
                Err(Error::Io { path, source }) => {
                    assert_eq!(path, png);
                    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
                }
                other => panic!("expected an Io error for the PNG, got {other:?}"),
            }
            assert!(!png.exists());
        }
    }
    check_svg(&svg, size, texts);
}

#[test]
fn vgg_bar_chart() {
    let dir = temp_dir("vgg").join("nested"); // created by the writer
    let chart = vgg_chart();
    let r = write_bar_chart(&dir, "vgg13bn-macs-latency", &chart);
    let mut texts = vec![chart.title.as_str(), chart.y_label.as_str()];
    texts.extend(chart.series.iter().map(|s| s.name.as_str()));
    texts.extend(chart.categories.iter().map(String::as_str));
    check_written(r, &dir, "vgg13bn-macs-latency", (800, 480), &texts);
    cleanup(dir.parent().unwrap());
}

#[test]
fn resnet_line_chart() {
    let dir = temp_dir("resnet");
    let chart = resnet_chart();
    assert_eq!(chart.x_labels.len(), 18);
    let r = write_line_chart(&dir, "resnet50-layer-time", &chart);
    let mut texts = vec![
        chart.title.as_str(),
        chart.x_label.as_str(),
        chart.y_label.as_str(),
    ];
    texts.extend(chart.series.iter().map(|s| s.name.as_str()));
    texts.extend(["stem", "layer1.0", "layer4.2", "fc"]);
    check_written(r, &dir, "resnet50-layer-time", (960, 540), &texts);
    cleanup(&dir);
}

#[test]
fn many_x_labels_and_long_names_still_draw() {
    let dir = temp_dir("many");
    let n = 120;
    let chart = LineChart {
        title:
            "A very long title that certainly does not fit at the default title size of the chart"
                .into(),
        x_label: String::new(),
        y_label: String::new(),
        x_labels: (0..n).map(|i| format!("features.{i}.conv")).collect(),
        series: (0..12)
            .map(|j| {
                series(
                    &format!("a rather long series name number {j}"),
                    &(0..n)
                        .map(|i| ((i * (j + 1)) % 17) as f64 - 3.0)
                        .collect::<Vec<_>>(),
                )
            })
            .collect(),
    };
    let r = write_line_chart(&dir, "many", &chart);
    check_written(r, &dir, "many", (960, 540), &[]);
    cleanup(&dir);
}

#[test]
fn bars_with_negative_values_and_many_categories() {
    let dir = temp_dir("negative");
    let n = 30;
    let chart = BarChart {
        title: "Speed-up per layer".into(),
        y_label: "change (%)".into(),
        categories: (0..n).map(|i| format!("features.{i}")).collect(),
        series: (0..3)
            .map(|j| {
                series(
                    &format!("scheme {j}"),
                    &(0..n)
                        .map(|i| ((i * 5 + j * 11) % 23) as f64 * 3.0 - 20.0)
                        .collect::<Vec<_>>(),
                )
            })
            .collect(),
    };
    let r = write_bar_chart(&dir, "negative", &chart);
    check_written(
        r,
        &dir,
        "negative",
        (800, 480),
        &["features.29", "scheme 2"],
    );
    cleanup(&dir);
}

fn invalid(r: gconv::Result<Vec<PathBuf>>, needle: &str) {
    match r {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains(needle), "{msg}"),
        other => panic!("expected InvalidArgument containing `{needle}`, got {other:?}"),
    }
}

#[test]
fn invalid_inputs_are_errors() {
    let dir = temp_dir("invalid");

    let mut c = vgg_chart();
    c.series[1].values.pop();
    invalid(
        write_bar_chart(&dir, "x", &c),
        "VGG13BN: MACs and latency vs baseline",
    );
    invalid(write_bar_chart(&dir, "x", &c), "`latency %` has 5 values");

    let mut c = vgg_chart();
    c.categories.clear();
    for s in &mut c.series {
        s.values.clear();
    }
    invalid(write_bar_chart(&dir, "x", &c), "no categories");

    let mut c = vgg_chart();
    c.series.clear();
    invalid(write_bar_chart(&dir, "x", &c), "no series");

    let mut c = vgg_chart();
    for s in &mut c.series {
        s.values.iter_mut().for_each(|v| *v = f64::NAN);
    }
    invalid(write_bar_chart(&dir, "x", &c), "no finite values");

    let mut c = vgg_chart();
    c.series[0].values[2] = f64::INFINITY;
    invalid(write_bar_chart(&dir, "x", &c), "value 2 is inf");

    let mut l = resnet_chart();
    l.series[3].values.push(1.0);
    invalid(write_line_chart(&dir, "x", &l), "ResNet-50 layer-wise time");
    invalid(
        write_line_chart(&dir, "x", &l),
        "19 values but there are 18 x labels",
    );

    let mut l = resnet_chart();
    l.x_labels.clear();
    invalid(write_line_chart(&dir, "x", &l), "no x labels");

    invalid(
        write_line_chart(&dir, "../up", &resnet_chart()),
        "plain file name",
    );
    invalid(write_bar_chart(&dir, "", &vgg_chart()), "plain file name");

    assert!(!dir.exists(), "nothing is written for invalid input");
}

#[test]
fn unwritable_dir_is_an_io_error() {
    let dir = temp_dir("file");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    match write_bar_chart(&file, "c", &vgg_chart()) {
        Err(Error::Io { path, .. }) => assert_eq!(path, file),
        other => panic!("expected Io error, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn markdown_tables() {
    let t = markdown_table(
        &["scheme", "MACs (M)", "latency", "note"],
        &[
            strings(&["baseline", "11,301", "4.20 ms", "ungrouped"]),
            strings(&["A", "7,050.5", "3.01 ms", ""]),
            strings(&["E", "1,493", "-", "a|b"]),
        ],
    );
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        lines,
        [
            "| scheme   | MACs (M) | latency | note      |",
            "| -------- | -------: | ------: | --------- |",
            "| baseline |   11,301 | 4.20 ms | ungrouped |",
            "| A        |  7,050.5 | 3.01 ms |           |",
            "| E        |    1,493 |       - | a\\|b      |",
        ],
        "\n{t}"
    );
    // Every line has its pipes at the same columns.
    let pipes = |l: &str| -> Vec<usize> {
        l.char_indices()
            .filter(|&(i, c)| c == '|' && !l[..i].ends_with('\\'))
            .map(|(i, _)| i)
            .collect()
    };
    let first = pipes(lines[0]);
    for l in &lines[1..4] {
        assert_eq!(pipes(l), first, "{l}");
    }
    assert!(t.ends_with('\n'));

    // Ragged rows, percent and ratio columns, empty input.
    let t = markdown_table(
        &["x", "y"],
        &[strings(&["1"]), strings(&["22", "3%", "extra"])],
    );
    assert_eq!(
        t,
        "|   x |   y |       |\n\
         | --: | --: | ----- |\n\
         |   1 |     |       |\n\
         |  22 |  3% | extra |\n"
    );
    assert_eq!(markdown_table(&[], &[]), "");
    let t = markdown_table(&["model"], &[]);
    assert_eq!(t, "| model |\n| ----- |\n");
}
