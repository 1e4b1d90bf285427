//! Layer names for imported nodes: the PyTorch module path the exporter left in the node or
//! weight names (`/layer1/layer1.0/conv1/Conv` or `layer1.0.conv1.weight` → `layer1.0.conv1`),
//! made unique.

use super::import::Importer;
use super::proto::NodeProto;

impl Importer<'_> {
    /// A unique gconv layer name for `n`: the PyTorch module path when the exporter left one
    /// (`/layer1/layer1.0/conv1/Conv` → `layer1.0.conv1`, or a weight named
    /// `layer1.0.conv1.weight`), else the node's name, else its op type and a number.
    pub fn layer_name(&mut self, n: &NodeProto, weight: Option<&str>) -> String {
        let from_weight = weight
            .filter(|w| !w.starts_with("onnx::") && !w.starts_with('/'))
            .and_then(|w| w.strip_suffix(".weight"));
        let base = if let Some(w) = from_weight {
            w.to_string()
        } else if n.name().starts_with('/') {
            let path = module_path(n.name());
            match (path.is_empty(), weight.is_some()) {
                (true, _) => n.op_type().to_lowercase(),
                (false, true) => path,
                (false, false) => {
                    let op = n.op_type().to_lowercase();
                    if path.rsplit('.').next() == Some(op.as_str()) {
                        path
                    } else {
                        format!("{path}.{op}")
                    }
                }
            }
        } else if !n.name().is_empty() {
            n.name().to_string()
        } else {
            n.op_type().to_lowercase()
        };
        let mut name = base.clone();
        let mut k = 1;
        while !self.names.insert(name.clone()) {
            k += 1;
            name = format!("{base}_{k}");
        }
        name
    }
}

/// The PyTorch module path of a TorchScript-exported node name: the scopes
/// `/stage3/stage3.1/branch2/branch2.0/Conv` name each child with its parent's attribute as
/// prefix, so this gives `stage3.1.branch2.0`.
fn module_path(node_name: &str) -> String {
    let parts: Vec<&str> = node_name.split('/').filter(|s| !s.is_empty()).collect();
    let mut path = String::new();
    let mut prev = "";
    for p in &parts[..parts.len().saturating_sub(1)] {
        match p
            .strip_prefix(prev)
            .filter(|r| !prev.is_empty() && r.starts_with('.'))
        {
            Some(rest) => path.push_str(rest),
            None => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(p);
            }
        }
        prev = p;
    }
    path
}
