//! One shader module per entry point (`ShaderSpec::entry_source`, `gpu::wgsl_items`): for
//! every entry point of every shader, the module the pipelines compile parses and validates
//! with naga, holds that entry point and no other, and the lexical list of entry points is
//! naga's. The generated files' modules are a small part of the whole file.

use gconv::gpu::kernels::all_shaders;
use naga::valid::{Capabilities, ValidationFlags, Validator};

#[test]
fn every_entry_source_validates_and_holds_only_its_entry_point() {
    let mut checked = 0;
    for spec in all_shaders() {
        let whole = naga::front::wgsl::parse_str(spec.source()).unwrap();
        let names: Vec<&str> = whole.entry_points.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(spec.entry_points(), names, "{}: entry points", spec.name);
        for ep in &whole.entry_points {
            let src = spec.entry_source(&ep.name).unwrap();
            let what = format!("{}::{}", spec.name, ep.name);
            let module = naga::front::wgsl::parse_str(&src)
                .unwrap_or_else(|e| panic!("{what}: parse: {}", e.emit_to_string(&src)));
            Validator::new(ValidationFlags::all(), Capabilities::all())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{what}: validate: {e:?}"));
            let eps: Vec<&str> = module
                .entry_points
                .iter()
                .map(|e| e.name.as_str())
                .collect();
            assert_eq!(eps, [ep.name.as_str()], "{what}");
            assert!(module.functions.len() <= whole.functions.len(), "{what}");
            if spec.source().len() > 500_000 {
                assert!(
                    src.len() * 5 < spec.source().len(),
                    "{what}: {} bytes",
                    src.len()
                );
            }
            checked += 1;
        }
        assert!(spec.entry_source("no_such_entry").is_none());
    }
    assert!(checked > 100, "only {checked} entry points");
}
