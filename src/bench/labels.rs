//! Names the report's tables and charts share: the blocks of layer-wise rows and a model's
//! short label.

use super::LayerwiseRow;
use std::path::Path;

/// The blocks of layer-wise rows, in the first row's order.
pub(super) fn blocks(rows: &[LayerwiseRow]) -> Vec<String> {
    rows.first()
        .map(|r| r.blocks.iter().map(|b| b.0.clone()).collect())
        .unwrap_or_default()
}

pub(super) fn block_time(m: &LayerwiseRow, b: &str) -> Option<f64> {
    m.blocks.iter().find(|x| x.0 == b).map(|x| x.1)
}

/// A model's label without its folders (`nets/shufflenet.onnx` → `shufflenet.onnx`).
pub(super) fn short(model: &str) -> String {
    let (path, rest) = match model.find(" (") {
        Some(i) => model.split_at(i),
        None => (model, ""),
    };
    let file = Path::new(path)
        .file_name()
        .map_or(path.into(), |f| f.to_string_lossy());
    format!(
        "{file}{}",
        rest.replace("permutations not folded", "unfolded")
    )
}
