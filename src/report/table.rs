//! A titled table of text cells: one value the Markdown summary, the HTML report and the
//! desktop app all show, so that the three never disagree.

use super::markdown::markdown_table;
use std::cmp::Ordering;

/// A table: a title, column headers and rows of already formatted cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// What the table shows (a heading in the documents).
    pub title: String,
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows; each as long as `headers` (shorter rows read as padded with empty cells).
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table of `rows` under `headers`.
    pub fn new(title: impl Into<String>, headers: &[&str], rows: Vec<Vec<String>>) -> Self {
        Self {
            title: title.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows,
        }
    }

    /// The body as a GitHub-flavoured Markdown table ([`markdown_table`]), without the title.
    pub fn markdown(&self) -> String {
        let h: Vec<&str> = self.headers.iter().map(String::as_str).collect();
        markdown_table(&h, &self.rows)
    }

    /// The row order that sorts the table by column `col`, ascending or descending: cells
    /// that start with a number (`12.5`, `3.10 (3.0–3.4)`, `1.94×`, `-70.6`) compare as
    /// numbers, before other text, which compares as text; empty cells and placeholders
    /// (`—`) come last either way. Ties keep their order.
    pub fn sorted_order(&self, col: usize, descending: bool) -> Vec<usize> {
        let key = |r: usize| {
            self.rows[r]
                .get(col)
                .map_or(SortKey::Missing, |c| SortKey::of(c))
        };
        let mut order: Vec<usize> = (0..self.rows.len()).collect();
        order.sort_by(|&a, &b| {
            let (ka, kb) = (key(a), key(b));
            match (&ka, &kb) {
                (SortKey::Missing, SortKey::Missing) => Ordering::Equal,
                (SortKey::Missing, _) => Ordering::Greater,
                (_, SortKey::Missing) => Ordering::Less,
                _ if descending => kb.cmp_to(&ka),
                _ => ka.cmp_to(&kb),
            }
        });
        order
    }
}

/// How a cell sorts.
#[derive(Debug, PartialEq)]
enum SortKey {
    Number(f64),
    Text(String),
    Missing,
}

impl SortKey {
    fn of(cell: &str) -> Self {
        let c = cell.trim();
        if c.is_empty() || matches!(c, "—" | "-" | "–" | "n/a" | "NaN") {
            return SortKey::Missing;
        }
        match leading_number(c) {
            Some(v) => SortKey::Number(v),
            None => SortKey::Text(c.to_lowercase()),
        }
    }

    fn cmp_to(&self, other: &Self) -> Ordering {
        match (self, other) {
            (SortKey::Number(a), SortKey::Number(b)) => a.total_cmp(b),
            (SortKey::Number(_), _) => Ordering::Less,
            (_, SortKey::Number(_)) => Ordering::Greater,
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }
}

/// The number a cell starts with (`+1.5e3 ms` → 1500), thousands separators `,` allowed;
/// `None` when it does not start with one or the number runs into letters (`1x1`, `v2`).
pub fn leading_number(cell: &str) -> Option<f64> {
    let s = cell.trim();
    let bytes = s.as_bytes();
    let mut end = 0;
    let mut seen_digit = false;
    let mut seen_exp = false;
    while end < bytes.len() {
        let c = bytes[end] as char;
        let ok = c.is_ascii_digit()
            || c == '.'
            || c == ','
            || (matches!(c, '+' | '-') && (end == 0 || matches!(bytes[end - 1], b'e' | b'E')))
            || (matches!(c, 'e' | 'E')
                && seen_digit
                && !seen_exp
                && bytes
                    .get(end + 1)
                    .is_some_and(|n| n.is_ascii_digit() || matches!(n, b'-' | b'+')));
        if !ok {
            break;
        }
        seen_exp |= matches!(c, 'e' | 'E');
        seen_digit |= c.is_ascii_digit();
        end += 1;
    }
    if !seen_digit {
        return None;
    }
    // `1x1`, `3x3`, `v2`: a number glued to letters is a name, not a value.
    let rest = &s[end..];
    if rest.starts_with(|c: char| c.is_ascii_alphabetic())
        && rest
            .chars()
            .nth(1)
            .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let num: String = s[..end].chars().filter(|c| *c != ',').collect();
    num.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_numbers() {
        for (s, v) in [
            ("12.5", 12.5),
            ("3.10 (3.0–3.4)", 3.10),
            ("1.94×", 1.94),
            ("-70.6", -70.6),
            ("+4", 4.0),
            ("12,345", 12345.0),
            ("1e-3 s", 1e-3),
            ("4.2 GFLOP/s", 4.2),
        ] {
            assert_eq!(leading_number(s), Some(v), "{s}");
        }
        for s in ["A", "1x1", "3x3 conv", "v2", "layer1.0", "—", ""] {
            assert_eq!(leading_number(s), None, "{s}");
        }
    }

    #[test]
    fn sorts_numbers_then_text_placeholders_last() {
        let rows = ["10.0", "—", "2.5 (2–3)", "b", "a", "100"]
            .iter()
            .map(|c| vec![c.to_string()])
            .collect();
        let t = Table::new("t", &["x"], rows);
        assert_eq!(t.sorted_order(0, false), vec![2, 0, 5, 4, 3, 1]);
        assert_eq!(t.sorted_order(0, true), vec![3, 4, 5, 0, 2, 1]);
        assert_eq!(t.sorted_order(7, false), vec![0, 1, 2, 3, 4, 5]);
        assert!(t.markdown().starts_with("| x "));
    }
}
