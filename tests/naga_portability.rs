//! Metal and DX12, checked here: every shader module as the launchers build it (prelude and
//! generated declarations included) is translated by naga to MSL and HLSL, entry point by
//! entry point with its override constants at their defaults — what wgpu's Metal and DX12
//! backends do at pipeline creation. A shader that could not run on either fails here, in
//! CI, on a machine with neither. (The cooperative-matrix tier, when present, is MSL only:
//! wgpu has no DX12 path for it, and the candidate lists offer it only where the adapter
//! reports the feature.) The activations' twins of each shader (`gpu::twin::specialise`)
//! are translated too.

use gconv::gpu::kernels::all_shaders;
use gconv::gpu::ShaderSpec;
use naga::back::{hlsl, msl, pipeline_constants};
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn parse(spec: &ShaderSpec) -> naga::Module {
    naga::front::wgsl::parse_str(spec.source())
        .unwrap_or_else(|e| panic!("{}: parse: {}", spec.name, e.emit_to_string(spec.source())))
}

/// Every shader module a launcher can build: each shader, and each twin of those that fuse
/// an epilogue.
fn modules() -> Vec<&'static ShaderSpec> {
    use gconv::gpu::prelude::specialised_activations;
    use gconv::gpu::twin::{has_epilogue, twin_for};
    let mut v: Vec<&'static ShaderSpec> = all_shaders().to_vec();
    for spec in all_shaders().into_iter().filter(|s| has_epilogue(s)) {
        for act in specialised_activations() {
            v.push(twin_for(spec, act).unwrap());
        }
    }
    v
}

/// Translates every entry of every shader module with `translate`; returns the failures.
fn translate_all(
    caps: Capabilities,
    translate: &dyn Fn(&naga::Module, &naga::valid::ModuleInfo, &str) -> Result<String, String>,
) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut done = 0;
    for spec in modules() {
        let module = parse(spec);
        let info = match Validator::new(ValidationFlags::all(), caps).validate(&module) {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{}: validate: {e:?}", spec.name));
                continue;
            }
        };
        for ep in &module.entry_points {
            let resolved = pipeline_constants::process_overrides(
                &module,
                &info,
                Some((ep.stage, ep.name.as_str())),
                &Default::default(),
            );
            let (m, i) = match resolved {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{}::{}: overrides: {e:?}", spec.name, ep.name));
                    continue;
                }
            };
            match translate(&m, &i, &ep.name) {
                Ok(text) if !text.is_empty() => done += 1,
                Ok(_) => failures.push(format!("{}::{}: empty output", spec.name, ep.name)),
                Err(e) => failures.push(format!("{}::{}: {e}", spec.name, ep.name)),
            }
        }
    }
    (failures, done)
}

fn entries() -> usize {
    modules().iter().map(|s| parse(s).entry_points.len()).sum()
}

#[test]
fn every_entry_point_translates_to_msl() {
    let options = msl::Options {
        lang_version: (2, 4),
        ..msl::Options::default()
    };
    let (failures, done) = translate_all(msl::supported_capabilities(), &|m, i, entry| {
        let pipeline = msl::PipelineOptions {
            entry_point: Some((naga::ShaderStage::Compute, entry.to_string())),
            ..msl::PipelineOptions::default()
        };
        msl::write_string(m, i, &options, &pipeline)
            .map(|(s, _)| s)
            .map_err(|e| format!("msl: {e:?}"))
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(done, entries(), "every entry point translated");
}

#[test]
fn every_entry_point_translates_to_hlsl() {
    let options = hlsl::Options {
        shader_model: hlsl::ShaderModel::V6_0,
        fake_missing_bindings: true,
        ..hlsl::Options::default()
    };
    let (failures, done) = translate_all(hlsl::supported_capabilities(), &|m, i, entry| {
        let pipeline = hlsl::PipelineOptions {
            entry_point: Some((naga::ShaderStage::Compute, entry.to_string())),
        };
        let mut text = String::new();
        hlsl::Writer::new(&mut text, &options, &pipeline)
            .write(m, i, None)
            .map_err(|e| format!("hlsl: {e:?}"))?;
        Ok(text)
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(done, entries(), "every entry point translated");
}
