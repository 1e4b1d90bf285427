//! Metal and DX12, checked here: every shader module as the launchers build it (prelude and
//! generated declarations included) is translated by naga to MSL and HLSL, entry point by
//! entry point with its override constants at their defaults — what wgpu's Metal and DX12
//! backends do at pipeline creation. A shader that could not run on either fails here, in
//! CI, on a machine with neither. (The cooperative-matrix tier `conv_coop` goes to MSL at
//! 8 × 8 only and never to HLSL: Metal's simdgroup matrices are 8 × 8, wgpu has no DX12 path,
//! and `GpuContext` opens a device for the size its adapter reports; every module, that tier
//! included, is also translated to SPIR-V.) The activations' twins of each shader (`gpu::twin::specialise`)
//! are translated too, and the half-activation twin (`gpu::twin::halve`, f16 storage, which
//! wgpu's DX12 backend compiles with shader model 6.2) of every module that has one. And
//! every cooperative-matrix load and store is 16-byte aligned, as Vulkan requires.

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

/// Vulkan asks every cooperative-matrix load and store for a pointer and a stride aligned to
/// 16 bytes (the lesser of 16 and a row's bytes, which is 16 for 8 × 8 and 16 × 16 halves):
/// a misaligned one is undefined behaviour that only a real GPU would show. Every `coopLoad`,
/// `coopLoadT`, `coopStore`, `coopStoreT` of every hardware module reads a workgroup array at
/// an offset that is a multiple of 16 bytes for any value of its variables (the offset
/// expressions are evaluated with each variable at 0–7) and a stride of a multiple of 16
/// bytes.
#[test]
fn cooperative_matrix_loads_and_stores_are_16_byte_aligned() {
    let mut checked = 0;
    for spec in all_shaders()
        .into_iter()
        .filter(|s| s.source().contains("coopLoad"))
    {
        let src = spec.source();
        let bytes_of = |var: &str| -> usize {
            let decl = format!("var<workgroup> {var}: array<");
            let at = src
                .find(&decl)
                .unwrap_or_else(|| panic!("{}: {var} is not a workgroup array", spec.name));
            match &src[at + decl.len()..at + decl.len() + 3] {
                "f16" => 2,
                "f32" => 4,
                t => panic!("{}: {var}: element type {t}", spec.name),
            }
        };
        for op in ["coopLoadT<", "coopLoad<", "coopStoreT(", "coopStore("] {
            for (at, _) in src.match_indices(op) {
                let line_start = src[..at].rfind('\n').map_or(0, |n| n + 1);
                if src[line_start..at].contains("//") {
                    continue; // a comment (the soft twins describe the operations they replace)
                }
                let call = &src[at..at + src[at..].find(");").expect("call ends")];
                let amp = call
                    .find('&')
                    .unwrap_or_else(|| panic!("{}: {call}: no pointer", spec.name))
                    + 1;
                let open = amp + call[amp..].find('[').expect("an index");
                let var = &call[amp..open];
                let close = open + call[open..].find("],").expect("the index ends");
                let offset = &call[open + 1..close];
                let stride = call[close + 2..].trim().trim_end_matches('u');
                let elem = bytes_of(var);
                let stride: usize = stride
                    .parse()
                    .unwrap_or_else(|_| panic!("{}: {call}: stride", spec.name));
                assert_eq!(stride * elem % 16, 0, "{}: {call}: stride", spec.name);
                for v in 0..8 {
                    let o = eval(offset, v);
                    assert_eq!(o * elem % 16, 0, "{}: {call}: offset at {v}", spec.name);
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 100, "{checked} matrix loads and stores");
}

/// `expr` (literals, variables, `+`, `*`, parentheses) with every variable at `v`.
fn eval(expr: &str, v: usize) -> usize {
    fn sum(t: &[String], i: &mut usize, v: usize) -> usize {
        let mut s = product(t, i, v);
        while t.get(*i).is_some_and(|x| x == "+") {
            *i += 1;
            s += product(t, i, v);
        }
        s
    }
    fn product(t: &[String], i: &mut usize, v: usize) -> usize {
        let mut p = atom(t, i, v);
        while t.get(*i).is_some_and(|x| x == "*") {
            *i += 1;
            p *= atom(t, i, v);
        }
        p
    }
    fn atom(t: &[String], i: &mut usize, v: usize) -> usize {
        let x = &t[*i];
        *i += 1;
        if x == "(" {
            let s = sum(t, i, v);
            assert_eq!(t[*i], ")");
            *i += 1;
            s
        } else if let Ok(n) = x.trim_end_matches('u').parse() {
            n
        } else {
            assert!(
                x.chars().all(|c| c.is_alphanumeric() || c == '_'),
                "operand {x}"
            );
            v
        }
    }
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in expr.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        match c {
            ' ' => {}
            '+' | '*' | '(' | ')' => tokens.push(c.to_string()),
            _ => panic!("{expr}: operator {c} (extend eval)"),
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    let mut i = 0;
    let s = sum(&tokens, &mut i, v);
    assert_eq!(i, tokens.len(), "{expr}");
    s
}
