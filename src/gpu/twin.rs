//! Twins: a shader with one activation compiled into its prelude. The shared prelude
//! (`gpu::prelude`) chooses only none, ReLU and ReLU6 at run time from `p.epi.act`; a call
//! whose `Params` fuse any other activation runs the twin of its shader for that activation
//! ([`specialise`], called by `Call::new`) — the same WGSL with a prelude that computes that
//! activation only, named `{shader}+{activation}`, made on first use and kept, so that its
//! module and pipelines are compiled once per context, as the shader's own. A fused epilogue
//! is inlined at every store a thread makes (about 3 400 `act` calls in `conv_fast`): a
//! run-time switch over the whole table there multiplied shader size and compile time.
//! `tests/naga_validate.rs` and `tests/naga_portability.rs` check every twin.

use super::declare::ShaderSpec;
use super::mirror::WgslStruct;
use super::prelude::{epi_field, wgsl, wgsl_for, FIRST_SPECIALISED_CODE};
use crate::error::{Error, Result};
use crate::ops::Activation;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The activation code of `params.epi` (a uniform `Params` with an `Epilogue` member named
/// `epi`) when it is one compiled into a twin.
pub fn specialised_code<P: WgslStruct>(params: &P) -> Option<u32> {
    let f = epi_field(P::FIELDS)?;
    let bytes = bytemuck::bytes_of(params).get(f.offset..f.offset + 4)?;
    let code = bytemuck::pod_read_unaligned::<u32>(bytes);
    (code >= FIRST_SPECIALISED_CODE).then_some(code)
}

/// Whether `spec` fuses an epilogue (its `Params` has `epi: Epilogue`), so has twins.
pub fn has_epilogue(spec: &ShaderSpec) -> bool {
    epi_field(spec.params.fields).is_some()
}

/// The shader a call of `spec` with uniform `params` runs: `spec` itself, or — when
/// `params.epi` fuses an activation beyond the run-time ones — its twin ([`twin_for`]).
pub fn specialise<P: WgslStruct>(
    spec: &'static ShaderSpec,
    params: &P,
) -> Result<&'static ShaderSpec> {
    match specialised_code(params) {
        Some(code) => cached_twin(spec, code),
        None => Ok(spec),
    }
}

/// The twin of `spec` whose prelude computes `act` only, made once per pair and kept (at
/// most shaders × activations of them).
pub fn twin_for(spec: &'static ShaderSpec, act: Activation) -> Result<&'static ShaderSpec> {
    cached_twin(spec, act.code())
}

fn cached_twin(spec: &'static ShaderSpec, code: u32) -> Result<&'static ShaderSpec> {
    type Twins = Mutex<HashMap<(&'static str, u32), &'static ShaderSpec>>;
    static TWINS: OnceLock<Twins> = OnceLock::new();
    let mut twins = TWINS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(t) = twins.get(&(spec.name, code)) {
        return Ok(t);
    }
    let twin: &'static ShaderSpec = Box::leak(Box::new(twin(spec, code)?));
    twins.insert((spec.name, code), twin);
    Ok(twin)
}

/// `spec` with the prelude of activation `code` (a new, uncached spec).
fn twin(spec: &'static ShaderSpec, code: u32) -> Result<ShaderSpec> {
    let row = Activation::ROWS
        .iter()
        .find(|r| r.default.code() == code)
        .ok_or_else(|| Error::InvalidArgument(format!("no activation has code {code}")))?;
    let head = spec.directives() + wgsl().as_str();
    let rest = spec.source().strip_prefix(head.as_str()).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "shader `{}` does not start with the prelude",
            spec.name
        ))
    })?;
    let source = spec.directives() + wgsl_for(Some(code)).as_str() + rest;
    Ok(ShaderSpec {
        name: Box::leak(format!("{}+{}", spec.name, row.kind).into_boxed_str()),
        source: OnceLock::from(source),
        // Split from the twin's own source on first use (its prelude differs).
        items: OnceLock::new(),
        ..*spec
    })
}

/// The f32 and f16 forms of the prelude's activation storage type.
const F32_STORAGE: &str = "alias act_t = f32;\nalias act4_t = vec4<f32>;\n";
const F16_STORAGE: &str = "alias act_t = f16;\nalias act4_t = vec4<f16>;\n";

/// The half-activation twin of `spec` (itself a shader or an activation twin): the same WGSL
/// with `enable f16;` and the prelude's `act_t` as `f16`, so every binding the declaration
/// types `array<act_t>` / `array<act4_t>` holds halves, converted to f32 at each load and
/// rounded to nearest at each store. Named `{shader}~f16act`, made once and kept. An error
/// when `spec` declares no activation binding that way: its kernel reads f32 activations only.
/// Its pipelines need a device with `wgpu::Features::SHADER_F16`.
pub fn halve(spec: &'static ShaderSpec) -> Result<&'static ShaderSpec> {
    if !spec.stores_activations() {
        return Err(Error::InvalidArgument(format!(
            "shader `{}` reads and writes f32 activations only (no `act_t` binding)",
            spec.name
        )));
    }
    type Halves = Mutex<HashMap<&'static str, &'static ShaderSpec>>;
    static HALVES: OnceLock<Halves> = OnceLock::new();
    let mut halves = HALVES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(h) = halves.get(spec.name) {
        return Ok(h);
    }
    let source = spec.source();
    if !source.contains(F32_STORAGE) {
        return Err(Error::InvalidArgument(format!(
            "shader `{}`: its prelude does not declare `act_t`",
            spec.name
        )));
    }
    let half: &'static ShaderSpec = Box::leak(Box::new(ShaderSpec {
        name: Box::leak(format!("{}~f16act", spec.name).into_boxed_str()),
        // A shader that enables f16 itself (the cooperative-matrix tier) keeps its one directive.
        source: OnceLock::from(format!(
            "{}{}",
            if spec.enables.contains(&"f16") {
                ""
            } else {
                "enable f16;\n"
            },
            source.replacen(F32_STORAGE, F16_STORAGE, 1)
        )),
        items: OnceLock::new(),
        ..*spec
    }));
    halves.insert(spec.name, half);
    Ok(half)
}
