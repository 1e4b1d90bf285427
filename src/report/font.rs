//! Finding a TrueType font at run time for the text of PNG charts.
//!
//! plotters is built with its `ab_glyph` font engine (not `ttf`, which would need
//! fontconfig's system libraries), so it knows no fonts until one is registered.
//! [`chart_font`] looks for one once per process, in this order:
//!
//! 1. the file named by the `GCONV_FONT` environment variable, if set;
//! 2. well-known paths of DejaVu Sans (Debian's `fonts-dejavu-core`, Arch, Fedora),
//!    Liberation Sans, and Arial / Helvetica on macOS and Windows;
//! 3. any other `.ttf`/`.otf` under the usual font folders, preferring regular
//!    (not bold, italic or monospace) sans-serif faces.
//!
//! A candidate is used only if it parses and has glyphs for ASCII letters and digits.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef};
use plotters::style::FontStyle;

/// The plotters font family every chart uses (`FontFamily::SansSerif`).
pub(crate) const FAMILY: &str = "sans-serif";

/// Environment variable naming a font file to use instead of searching.
pub(crate) const FONT_ENV: &str = "GCONV_FONT";

/// Largest font file considered (bytes); bigger files (CJK collections) are skipped.
const MAX_FONT_BYTES: u64 = 32 << 20;

/// Well-known font files, best first.
const KNOWN_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/local/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Helvetica.ttc",
    "C:\\Windows\\Fonts\\arial.ttf",
    "C:\\Windows\\Fonts\\segoeui.ttf",
];

/// Folders scanned (recursively, a few levels deep) when no known path exists.
const SCAN_DIRS: &[&str] = &[
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "C:\\Windows\\Fonts",
];

/// The font file registered with plotters for chart text, or `None` if no usable
/// font was found (then PNG charts cannot be drawn; SVG charts still can).
///
/// The search runs once per process, in this order: the file named by the
/// `GCONV_FONT` environment variable; well-known paths of DejaVu Sans (Debian's
/// `fonts-dejavu-core`), Liberation Sans, Arial and Helvetica; any other regular
/// sans-serif `.ttf`/`.otf` under the usual font folders. A font is used only if it
/// parses and covers ASCII letters and digits.
pub fn chart_font() -> Option<&'static Path> {
    static FONT: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT.get_or_init(find_and_register).as_deref()
}

/// Search for a usable font and register it (and a bold sibling, if any) with plotters.
fn find_and_register() -> Option<PathBuf> {
    for path in candidates() {
        let Some(bytes) = load_font(&path) else {
            continue;
        };
        // plotters wants `&'static [u8]`; this happens at most once per process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        if plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_err() {
            continue;
        }
        if let Some(bold) = bold_sibling(&path).and_then(|p| load_font(&p)) {
            let bold: &'static [u8] = Box::leak(bold.into_boxed_slice());
            let _ = plotters::style::register_font(FAMILY, FontStyle::Bold, bold);
        }
        log::debug!("chart font: {}", path.display());
        return Some(path);
    }
    log::warn!(
        "no TrueType font found for chart text (set {FONT_ENV}=/path/to/font.ttf \
         or install fonts-dejavu-core); PNG charts cannot be drawn"
    );
    None
}

/// Candidate font files, best first.
fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os(FONT_ENV).filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    out.extend(KNOWN_PATHS.iter().map(PathBuf::from));
    let mut dirs: Vec<PathBuf> = SCAN_DIRS.iter().map(PathBuf::from).collect();
    if let Some(home) = std::env::var_os("HOME") {
        let home = PathBuf::from(home);
        dirs.push(home.join(".local/share/fonts"));
        dirs.push(home.join(".fonts"));
    }
    let mut scanned = Vec::new();
    for d in &dirs {
        scan(d, 4, &mut scanned);
    }
    scanned.sort_by_key(|p| (rank(p), p.clone()));
    out.extend(scanned);
    out
}

/// Collect `.ttf`/`.otf` files under `dir`, at most `depth` levels down.
fn scan(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    const MAX_FILES: usize = 4096;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if out.len() >= MAX_FILES {
            return;
        }
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if depth > 0 {
                scan(&p, depth - 1, out);
            }
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| x.eq_ignore_ascii_case("ttf") || x.eq_ignore_ascii_case("otf"))
        {
            out.push(p);
        }
    }
}

/// Lower is better: regular sans faces first, then other regular faces, then the rest.
fn rank(p: &Path) -> u8 {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    const ODD: &[&str] = &[
        "bold",
        "italic",
        "oblique",
        "mono",
        "condensed",
        "narrow",
        "light",
        "thin",
        "black",
        "symbol",
        "emoji",
        "math",
    ];
    let odd = ODD.iter().any(|w| name.contains(w));
    let sans = name.contains("sans") || name.contains("arial") || name.contains("helvet");
    match (odd, sans) {
        (false, true) => 0,
        (false, false) => 1,
        (true, _) => 2,
    }
}

/// `DejaVuSans.ttf` -> `DejaVuSans-Bold.ttf`, `X-Regular.ttf` -> `X-Bold.ttf`, if present.
fn bold_sibling(path: &Path) -> Option<PathBuf> {
    let stem = path.file_stem()?.to_str()?;
    let ext = path.extension()?.to_str()?;
    let base = stem.strip_suffix("-Regular").unwrap_or(stem);
    let p = path.with_file_name(format!("{base}-Bold.{ext}"));
    p.is_file().then_some(p)
}

/// Read `path` and check that it is a font with glyphs for ASCII text.
fn load_font(path: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FONT_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let font = FontRef::try_from_slice(&bytes).ok()?;
    let covers = "Aaz0%.".chars().all(|c| font.glyph_id(c).0 != 0);
    covers.then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_regular_sans_first() {
        assert_eq!(rank(Path::new("/f/DejaVuSans.ttf")), 0);
        assert_eq!(rank(Path::new("/f/DejaVuSerif.ttf")), 1);
        assert_eq!(rank(Path::new("/f/DejaVuSans-Bold.ttf")), 2);
        assert_eq!(rank(Path::new("/f/DejaVuSansMono.ttf")), 2);
    }

    #[test]
    fn rejects_non_fonts() {
        assert!(load_font(Path::new("/definitely/not/here.ttf")).is_none());
        assert!(load_font(Path::new(file!())).is_none());
    }
}
