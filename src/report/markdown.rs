//! GitHub-flavoured Markdown tables.

/// Render a GitHub-flavoured Markdown table.
///
/// Every column is padded to its widest cell (counted in `char`s) so that the table
/// also reads well as plain text. A column whose non-empty cells all look numeric
/// (see below), with at least one such cell, is right-aligned (`---:`); the others are
/// left-aligned. A cell looks numeric if it is a number, optionally signed, with
/// optional thousands separators (`,` or `_`), and optionally followed by a short
/// unit (`%`, `x`, `×`, ` ms`, ` MiB`, ...): `1.5`, `-3`, `12,345`, `62.3%`,
/// `2.10x`, `4.2 ms`, `1e-3`. The placeholders `-`, `—`, `n/a` and `NaN` are neutral.
///
/// `|` in a cell is escaped as `\|` and line breaks become spaces. Rows shorter than
/// the header are padded with empty cells; if a row is longer, the table gets extra
/// columns with empty headers. With no headers and no rows the result is empty.
/// The result ends with a newline.
///
/// ```
/// let t = gconv::report::markdown_table(
///     &["scheme", "MACs (M)"],
///     &[vec!["baseline".into(), "11,301".into()], vec!["A".into(), "2,912".into()]],
/// );
/// assert_eq!(
///     t,
///     "| scheme   | MACs (M) |\n\
///      | -------- | -------: |\n\
///      | baseline |   11,301 |\n\
///      | A        |    2,912 |\n"
/// );
/// ```
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let ncol = rows
        .iter()
        .map(Vec::len)
        .chain(std::iter::once(headers.len()))
        .max()
        .unwrap_or(0);
    if ncol == 0 {
        return String::new();
    }
    let cell = |s: &str| -> String {
        s.replace('|', "\\|")
            .replace("\r\n", " ")
            .replace(['\n', '\r'], " ")
            .trim()
            .to_string()
    };
    let header: Vec<String> = (0..ncol)
        .map(|c| headers.get(c).map_or(String::new(), |h| cell(h)))
        .collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            (0..ncol)
                .map(|c| r.get(c).map_or(String::new(), |s| cell(s)))
                .collect()
        })
        .collect();

    let right: Vec<bool> = (0..ncol)
        .map(|c| {
            let mut any = false;
            for r in &body {
                match classify(&r[c]) {
                    Kind::Number => any = true,
                    Kind::Neutral => {}
                    Kind::Text => return false,
                }
            }
            any
        })
        .collect();
    let width: Vec<usize> = (0..ncol)
        .map(|c| {
            body.iter()
                .map(|r| len(&r[c]))
                .chain([len(&header[c]), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();

    let mut out = String::new();
    let push_row = |out: &mut String, cells: &[String]| {
        out.push('|');
        for (c, s) in cells.iter().enumerate() {
            let pad = " ".repeat(width[c] - len(s));
            if right[c] {
                out.push_str(&format!(" {pad}{s} |"));
            } else {
                out.push_str(&format!(" {s}{pad} |"));
            }
        }
        out.push('\n');
    };
    push_row(&mut out, &header);
    out.push('|');
    for c in 0..ncol {
        if right[c] {
            out.push_str(&format!(" {}: |", "-".repeat(width[c] - 1)));
        } else {
            out.push_str(&format!(" {} |", "-".repeat(width[c])));
        }
    }
    out.push('\n');
    for r in &body {
        push_row(&mut out, r);
    }
    out
}

fn len(s: &str) -> usize {
    s.chars().count()
}

#[derive(Debug, PartialEq)]
enum Kind {
    Number,
    Neutral,
    Text,
}

/// Whether a (trimmed) cell looks like a number, a placeholder, or text.
fn classify(s: &str) -> Kind {
    if s.is_empty() || matches!(s, "-" | "—" | "–" | "n/a" | "N/A" | "NaN" | "nan") {
        return Kind::Neutral;
    }
    // Split off a trailing unit: the longest suffix without digits, at most 4 chars
    // after an optional space.
    let num_end = s
        .char_indices()
        .filter(|(_, c)| c.is_ascii_digit() || *c == '.')
        .map(|(i, c)| i + c.len_utf8())
        .next_back();
    let Some(num_end) = num_end else {
        return Kind::Text;
    };
    let (num, unit) = s.split_at(num_end);
    let unit = unit.strip_prefix(' ').unwrap_or(unit);
    let unit_ok = unit.chars().count() <= 4
        && unit
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, '%' | '×' | '/' | 'µ'));
    // An exponent (`1e-3`) ends in digits, so it is part of `num`, never of `unit`.
    let num: String = num.chars().filter(|c| !matches!(c, ',' | '_')).collect();
    let num = num.strip_prefix('+').unwrap_or(&num);
    let parses = num.parse::<f64>().is_ok_and(f64::is_finite)
        && num
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '-' || c == '.');
    if unit_ok && parses {
        Kind::Number
    } else {
        Kind::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_cells() {
        for s in [
            "1", "-3", "+4", "1.5", ".5", "12,345", "62.3%", "2.10x", "3×", "4.2 ms", "1e-3",
            "1.5 MiB", "10 µs",
        ] {
            assert_eq!(classify(s), Kind::Number, "{s}");
        }
        for s in [
            "A", "G=4", "layer1.0", "resnet50", "1x1", "v2", "e5", "1.2.3", "conv 3x3",
        ] {
            assert_eq!(classify(s), Kind::Text, "{s}");
        }
        for s in ["", "-", "n/a", "NaN"] {
            assert_eq!(classify(s), Kind::Neutral, "{s}");
        }
    }
}
