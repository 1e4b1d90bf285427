//! Metal and DX12, checked here: every shader module as the launchers build it (prelude and
//! generated declarations included) is translated by naga to MSL and HLSL, entry point by
//! entry point with its override constants at their defaults — what wgpu's Metal and DX12
//! backends do at pipeline creation. A shader that could not run on either fails here, in
//! CI, on a machine with neither. (The cooperative-matrix tier, when present, is MSL only:
//! wgpu has no DX12 path for it, and the candidate lists offer it only where the adapter
//! reports the feature.) The activations' twins of each shader (`gpu::twin::specialise`)
//! are translated too, and the half-activation twin (`gpu::twin::halve`, f16 storage, which
//! wgpu's DX12 backend compiles with shader model 6.2) of every module that has one.

use gconv::gpu::kernels::all_shaders;
use gconv::gpu::ShaderSpec;
use naga::back::{hlsl, msl, pipeline_constants};
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn parse(spec: &ShaderSpec) -> naga::Module {
    naga::front::wgsl::parse_str(spec.source())
        .unwrap_or_else(|e| panic!("{}: parse: {}", spec.name, e.emit_to_string(spec.source())))
}

/// Every shader module a launcher can build: each shader, each twin of those that fuse
/// an epilogue, and the half-activation twin of each of these that stores activations.
fn modules() -> Vec<&'static ShaderSpec> {
    use gconv::gpu::prelude::specialised_activations;
    use gconv::gpu::twin::{halve, has_epilogue, twin_for};
    let mut v: Vec<&'static ShaderSpec> = all_shaders().to_vec();
    for spec in all_shaders().into_iter().filter(|s| has_epilogue(s)) {
        for act in specialised_activations() {
            v.push(twin_for(spec, act).unwrap());
        }
    }
    let halves: Vec<_> = v
        .iter()
        .filter(|s| s.stores_activations())
        .map(|s| halve(s).unwrap())
        .collect();
    assert!(halves.len() >= 9, "{} half-activation twins", halves.len());
    v.extend(halves);
    v
}

/// A backend: the module, its info and an entry point's name to the entry's source.
type Translate<'a> = dyn Fn(&ShaderSpec, &naga::Module, &naga::valid::ModuleInfo, &str) -> Result<String, String>
    + 'a;

/// Translates every entry of every shader module with `translate`; returns the failures.
fn translate_all(caps: Capabilities, translate: &Translate) -> (Vec<String>, usize) {
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
            match translate(spec, &m, &i, &ep.name) {
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
    let (failures, done) = translate_all(msl::supported_capabilities(), &|_, m, i, entry| {
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
    let (failures, done) = translate_all(hlsl::supported_capabilities(), &|spec, m, i, entry| {
        // 16-bit types need shader model 6.2 (what wgpu's DX12 backend asks DXC for when
        // the device has SHADER_F16).
        let half = spec.source().starts_with("enable f16;");
        let options = hlsl::Options {
            shader_model: if half {
                hlsl::ShaderModel::V6_2
            } else {
                hlsl::ShaderModel::V6_0
            },
            fake_missing_bindings: true,
            ..hlsl::Options::default()
        };
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
