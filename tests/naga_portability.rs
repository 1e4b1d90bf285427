//! Metal and DX12, checked here: every shader module as the launchers build it (prelude and
//! generated declarations included) is translated by naga to MSL and HLSL, entry point by
//! entry point with its override constants at their defaults — what wgpu's Metal and DX12
//! backends do at pipeline creation. A shader that could not run on either fails here, in
//! CI, on a machine with neither. (The cooperative-matrix tier `conv_coop` goes to MSL at
//! 8 × 8 only and never to HLSL: Metal's simdgroup matrices are 8 × 8, wgpu has no DX12 path,
//! and `GpuContext` opens a device for the size its adapter reports; every module, that tier
//! included, is also translated to SPIR-V.) The activations' twins of each shader (`gpu::twin::specialise`)
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

/// The side of the cooperative matrices a module declares (`conv_coop`), if any.
fn matrix_size(m: &naga::Module) -> Option<u32> {
    m.types.iter().find_map(|(_, t)| match t.inner {
        naga::TypeInner::CooperativeMatrix { rows, .. } => Some(rows as u32),
        _ => None,
    })
}

/// Which modules a backend gets: the cooperative-matrix tier runs on Vulkan (16 × 16, what
/// NVIDIA and AMD report) and Metal (8 × 8 simdgroup matrices, all Metal has), never on
/// DX12 (wgpu has no path for it there); `GpuContext` opens a device for the size its
/// adapter reports, so the candidate lists never offer another.
#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Vulkan,
    Metal,
    Dx12,
}

fn runs_on(m: &naga::Module, b: Backend) -> bool {
    match (matrix_size(m), b) {
        (None, _) | (Some(_), Backend::Vulkan) => true,
        (Some(size), Backend::Metal) => size == 8,
        (Some(_), Backend::Dx12) => false,
    }
}

/// Translates every entry of every shader module `backend` runs with `translate`; returns
/// the failures and the entries translated.
fn translate_all(
    (caps, backend): (Capabilities, Backend),
    translate: &Translate,
) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut done = 0;
    for spec in modules() {
        let module = parse(spec);
        if !runs_on(&module, backend) {
            continue;
        }
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

fn entries(backend: Backend) -> usize {
    modules()
        .iter()
        .map(|s| parse(s))
        .filter(|m| runs_on(m, backend))
        .map(|m| m.entry_points.len())
        .sum()
}

#[test]
fn every_entry_point_translates_to_msl() {
    let options = msl::Options {
        lang_version: (2, 4),
        ..msl::Options::default()
    };
    let caps = (msl::supported_capabilities(), Backend::Metal);
    let (failures, done) = translate_all(caps, &|_, m, i, entry| {
        let pipeline = msl::PipelineOptions {
            entry_point: Some((naga::ShaderStage::Compute, entry.to_string())),
            ..msl::PipelineOptions::default()
        };
        msl::write_string(m, i, &options, &pipeline)
            .map(|(s, _)| s)
            .map_err(|e| format!("msl: {e:?}"))
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        done,
        entries(Backend::Metal),
        "every entry point translated"
    );
}

#[test]
fn every_entry_point_translates_to_hlsl() {
    let caps = (hlsl::supported_capabilities(), Backend::Dx12);
    let (failures, done) = translate_all(caps, &|spec, m, i, entry| {
        // 16-bit types need shader model 6.2 (what wgpu's DX12 backend asks DXC for when
        // the device has SHADER_F16).
        let half = spec.source().contains("enable f16;");
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
    assert_eq!(done, entries(Backend::Dx12), "every entry point translated");
}

/// SPIR-V (Vulkan) for every module, the cooperative-matrix tier's included: lavapipe
/// compiles what CI runs, but no adapter here has cooperative matrices, so this is where
/// `conv_coop`'s hardware shaders are translated at all.
#[test]
fn every_entry_point_translates_to_spirv() {
    use naga::back::spv;
    let caps = (Capabilities::all(), Backend::Vulkan);
    let (failures, done) = translate_all(caps, &|_, m, i, entry| {
        let pipeline = spv::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: entry.to_string(),
        };
        spv::write_vec(m, i, &spv::Options::default(), Some(&pipeline))
            .map(|words| format!("{} words", words.len()))
            .map_err(|e| format!("spir-v: {e:?}"))
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        done,
        entries(Backend::Vulkan),
        "every entry point translated"
    );
    // The tier is there: both sizes, each tile and its activation twins.
    let sizes: Vec<u32> = modules()
        .iter()
        .filter_map(|s| matrix_size(&parse(s)))
        .collect();
    assert!(sizes.contains(&16) && sizes.contains(&8), "{sizes:?}");
    assert!(
        sizes.len() >= 2 * 10,
        "{} cooperative-matrix modules",
        sizes.len()
    );
}
