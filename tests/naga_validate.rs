//! Every `shaders/*.wgsl` parses and validates with naga (no GPU needed). The directory is
//! listed, so a new shader cannot be forgotten.

use std::path::Path;

#[test]
fn every_shader_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut seen = Vec::new();
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("shaders/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let src = std::fs::read_to_string(&path).expect("readable shader");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        seen.push(name.clone());
        let module = match naga::front::wgsl::parse_str(&src) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: parse: {}", e.emit_to_string(&src)));
                continue;
            }
        };
        if module.entry_points.is_empty() {
            failures.push(format!("{name}: no entry point"));
        }
        let mut v = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        if let Err(e) = v.validate(&module) {
            failures.push(format!("{name}: validate: {}", e.emit_to_string(&src)));
        }
    }
    assert!(
        seen.len() >= 7,
        "expected the 7 shader families in {dir:?}, found {seen:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each shader is paired with a launcher that includes it (`include_str!`): a `.wgsl`
/// that no module loads is dead code.
#[test]
fn every_shader_has_a_launcher() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Launchers live in src/gpu/kernels; src/gpu/roofline.rs owns the roofline shader.
    let mut sources = String::new();
    for dir in ["src/gpu/kernels", "src/gpu"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = e.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) == Some("rs") {
                sources += &std::fs::read_to_string(path).unwrap();
            }
        }
    }
    for e in std::fs::read_dir(root.join("shaders")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".wgsl") {
            assert!(
                sources.contains(&format!("shaders/{name}\")")),
                "shaders/{name} is not loaded by any module in src/gpu/kernels or src/gpu"
            );
        }
    }
}
