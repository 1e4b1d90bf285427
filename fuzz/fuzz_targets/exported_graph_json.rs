//! Exported models whose graph JSON is the fuzz input: wrapped in a valid safetensors file
//! (no tensors), so every input reaches graph parsing, the caps and shape inference.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let meta: BTreeMap<String, String> =
        [(gconv::io::exported::GRAPH_KEY.to_string(), json.to_string())].into();
    let header = serde_json_header(&meta);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    let _ = gconv::io::exported_from_bytes(&bytes, "fuzz.safetensors");
});

/// `{"__metadata__": {...}}` with JSON string escaping.
fn serde_json_header(meta: &BTreeMap<String, String>) -> String {
    let mut s = String::from("{\"__metadata__\":{");
    for (i, (k, v)) in meta.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&quote(k));
        s.push(':');
        s.push_str(&quote(v));
    }
    s.push_str("}}");
    s
}

fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}
