//! Every shader validates with naga (no GPU needed), matches its launcher's declaration, and
//! its WGSL structs match their Rust mirrors member by member; the generated files are what
//! their generators make (`GCONV_BLESS=1` rewrites them) and the entry tables of the
//! launchers name entry points that exist.

use gconv::gpu::kernels::all_shaders;
use gconv::gpu::launch::ParamsLayout;
use gconv::gpu::{BindingKind, ShaderSpec};
use std::path::Path;

fn parse(spec: &ShaderSpec) -> naga::Module {
    naga::front::wgsl::parse_str(spec.source())
        .unwrap_or_else(|e| panic!("{}: parse: {}", spec.name, e.emit_to_string(spec.source())))
}

#[test]
fn every_shader_parses_and_validates() {
    let mut failures = Vec::new();
    for spec in all_shaders() {
        let module = parse(spec);
        if module.entry_points.is_empty() {
            failures.push(format!("{}: no entry point", spec.name));
        }
        let mut v = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        if let Err(e) = v.validate(&module) {
            failures.push(format!(
                "{}: validate: {}",
                spec.name,
                e.emit_to_string(spec.source())
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The twins (`gpu::twin::specialise`): every shader that fuses an epilogue, with every
/// activation beyond ReLU/ReLU6 compiled into its prelude, parses and validates; a twin is
/// the shader with only its prelude changed, computing that activation and no other; the
/// shared prelude has none of them (they run only in twins).
#[test]
fn every_twin_parses_validates_and_differs_only_in_its_activation() {
    use gconv::gpu::prelude::specialised_activations;
    use gconv::gpu::twin::{has_epilogue, twin_for};
    let mut failures = Vec::new();
    let mut twins = 0;
    let shared = gconv::gpu::prelude::wgsl();
    for spec in all_shaders().into_iter().filter(|s| has_epilogue(s)) {
        let head = spec.directives() + shared.as_str();
        let body = spec.source().strip_prefix(head.as_str()).unwrap();
        for act in specialised_activations() {
            let t = twin_for(spec, act).unwrap();
            assert!(std::ptr::eq(t, twin_for(spec, act).unwrap()), "made once");
            assert_eq!(t.name, format!("{}+{}", spec.name, act.kind()));
            assert!(t.source().ends_with(body), "{}: body changed", t.name);
            let prelude = &t.source()[..t.source().len() - body.len()];
            assert!(
                prelude.contains(&format!("fn act_{}(", act.kind())),
                "{}",
                t.name
            );
            assert!(!prelude.contains("switch e.act"), "{}: switches", t.name);
            for other in specialised_activations().filter(|o| o.code() != act.code()) {
                let f = format!("fn act_{}(", other.kind());
                assert!(!prelude.contains(&f), "{}: has {}", t.name, other.kind());
            }
            let module = parse(t);
            let mut v = naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::all(),
            );
            if let Err(e) = v.validate(&module) {
                failures.push(format!("{}: {}", t.name, e.emit_to_string(t.source())));
            }
            twins += 1;
        }
    }
    for act in specialised_activations() {
        assert!(
            !shared.contains(&format!("fn act_{}(", act.kind())),
            "{}",
            act.kind()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // conv, conv_dw, conv_fast, conv_igemm, conv_tiled, conv_wgmem, elementwise, gemv,
    // gemv_wide, linear, norm, norm_train at least.
    assert!(
        twins >= 12 * specialised_activations().count(),
        "{twins} twins"
    );
}

/// The width in bytes of the scalar a storage binding's array holds (`None`: not an array of
/// scalars or vectors).
fn element_width(module: &naga::Module, name: &str) -> Option<u8> {
    let var = module
        .global_variables
        .iter()
        .find(|(_, v)| v.name.as_deref() == Some(name))?
        .1;
    let naga::TypeInner::Array { base, .. } = module.types[var.ty].inner else {
        return None;
    };
    match module.types[base].inner {
        naga::TypeInner::Scalar(s) | naga::TypeInner::Vector { scalar: s, .. } => Some(s.width),
        _ => None,
    }
}

/// The half-activation twins (`gpu::twin::halve`): every shader that declares activations as
/// `act_t` has one, made once, that validates with f16 and stores exactly those bindings as
/// halves (every other binding as in the shader); a shader that declares none has no twin,
/// and says so.
#[test]
fn every_half_activation_twin_halves_exactly_its_activation_bindings() {
    use gconv::gpu::twin::halve;
    let mut halved = Vec::new();
    for spec in all_shaders() {
        if !spec.stores_activations() {
            let err = halve(spec).unwrap_err().to_string();
            assert!(
                err.contains(spec.name) && err.contains("f32 activations only"),
                "{err}"
            );
            continue;
        }
        let h = halve(spec).unwrap();
        assert!(std::ptr::eq(h, halve(spec).unwrap()), "made once");
        assert_eq!(h.name, format!("{}~f16act", spec.name));
        let (full, half) = (parse(spec), parse(h));
        let mut v = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        if let Err(e) = v.validate(&half) {
            panic!("{}: {}", h.name, e.emit_to_string(h.source()));
        }
        for (name, ty) in spec.binding_names.iter().zip(spec.binding_types).skip(1) {
            let want = if gconv::gpu::declare::is_activation_type(ty) {
                Some(2)
            } else {
                element_width(&full, name)
            };
            assert_eq!(element_width(&half, name), want, "{}: `{name}`", h.name);
        }
        halved.push(spec.name);
    }
    for name in [
        "cast",
        "conv_igemm",
        "conv_igemm_f16",
        "conv_dw",
        "gemv_wide",
        "gemv_wide_f16",
        "linear",
        "pool",
        "norm",
        "elementwise",
        "gather",
        "softmax",
    ] {
        assert!(halved.contains(&name), "{name} has no half-activation twin");
    }
}

/// Each `.wgsl` file is a declared shader (or the prelude they all start with): a shader that
/// no launcher declares is dead code.
#[test]
fn every_shader_file_is_declared() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let declared: Vec<&str> = all_shaders().iter().map(|s| s.name).collect();
    let mut files = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".wgsl") else {
            continue;
        };
        files += 1;
        assert!(
            stem == "prelude" || declared.contains(&stem),
            "shaders/{name} is declared by no launcher (gpu::kernels::all_shaders)"
        );
    }
    assert_eq!(files, declared.len() + 1, "declared {declared:?}");
    for spec in all_shaders() {
        // Its `enable` directives, then the prelude.
        let directives = spec.directives();
        assert!(
            spec.source()
                .strip_prefix(directives.as_str())
                .is_some_and(|s| s.starts_with(gconv::gpu::launch::PRELUDE)),
            "{}",
            spec.name
        );
    }
}

/// Binding `i` of every shader is the WGSL variable the declaration names, with its access.
#[test]
fn bindings_match_the_declarations() {
    for spec in all_shaders() {
        let module = parse(spec);
        let mut found: Vec<(u32, String, BindingKind)> = module
            .global_variables
            .iter()
            .filter_map(|(_, v)| {
                let b = v.binding.as_ref()?;
                assert_eq!(b.group, 0, "{}: only group 0 is used", spec.name);
                let kind = match v.space {
                    naga::AddressSpace::Uniform => BindingKind::Uniform,
                    naga::AddressSpace::Storage { access }
                        if access.contains(naga::StorageAccess::STORE) =>
                    {
                        BindingKind::ReadWrite
                    }
                    naga::AddressSpace::Storage { .. } => BindingKind::ReadOnly,
                    s => panic!("{}: unexpected address space {s:?}", spec.name),
                };
                Some((b.binding, v.name.clone().unwrap_or_default(), kind))
            })
            .collect();
        found.sort_by_key(|f| f.0);
        let want: Vec<(u32, String, BindingKind)> = spec
            .bindings
            .iter()
            .zip(spec.binding_names)
            .enumerate()
            .map(|(i, (&k, &n))| (i as u32, n.to_string(), k))
            .collect();
        assert_eq!(
            found, want,
            "{}: WGSL bindings vs the declaration",
            spec.name
        );
    }
}

/// A struct's members as `(name, offset, size)`.
type Members = Vec<(String, u32, u32)>;

/// Name, offset and size of every member of a WGSL struct, and its size, from naga's layouter.
fn wgsl_struct(module: &naga::Module, name: &str) -> Option<(Members, u32)> {
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).expect("layout");
    module.types.iter().find_map(|(_, t)| match &t.inner {
        naga::TypeInner::Struct { members, span } if t.name.as_deref() == Some(name) => Some((
            members
                .iter()
                .map(|m| {
                    (
                        m.name.clone().unwrap_or_default(),
                        m.offset,
                        layouter[m.ty].size,
                    )
                })
                .collect(),
            *span,
        )),
        _ => None,
    })
}

fn check_mirror(spec: &ShaderSpec, module: &naga::Module, rust: &ParamsLayout) {
    let (members, span) = wgsl_struct(module, rust.name)
        .unwrap_or_else(|| panic!("{}: no WGSL struct {}", spec.name, rust.name));
    let mirror: Vec<(String, u32, u32)> = rust
        .fields
        .iter()
        .map(|f| (f.name.to_string(), f.offset as u32, f.size as u32))
        .collect();
    assert_eq!(
        members, mirror,
        "{}: struct {} vs its Rust mirror",
        spec.name, rust.name
    );
    assert_eq!(
        span as usize, rust.size,
        "{}: size of {}",
        spec.name, rust.name
    );
}

#[test]
fn wgsl_structs_match_their_rust_mirrors() {
    for spec in all_shaders() {
        let module = parse(spec);
        check_mirror(spec, &module, &spec.params);
        assert_eq!(spec.params.size % 16, 0, "{}: uniform size", spec.name);
        for m in spec.mirrors.iter().chain(&gconv::gpu::prelude::MIRRORS) {
            check_mirror(spec, &module, m);
        }
    }
}

/// Every generated file (`gpu::codegen::FILES`: the unrolled shaders and `conv_fast`'s Rust
/// entry table) is what its generator makes; `GCONV_BLESS=1` rewrites them.
#[test]
fn generated_files_are_what_their_generators_make() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var("GCONV_BLESS").as_deref() == Ok("1");
    let mut stale = Vec::new();
    for f in gconv::gpu::codegen::FILES {
        let path = root.join(f.path);
        let generated = (f.make)();
        if bless {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != generated {
            stale.push(f.path);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from their generators in gconv::gpu::codegen; \
         run GCONV_BLESS=1 cargo test --test naga_validate"
    );
}

/// The entry points the launchers name exist in their shaders.
#[test]
fn launcher_entry_tables_match_the_shaders() {
    use gconv::gpu::kernels::{conv_fast, gemv, roofline};
    let names = |spec: &ShaderSpec| -> Vec<String> {
        parse(spec)
            .entry_points
            .iter()
            .map(|e| e.name.clone())
            .collect()
    };
    let fast = names(&conv_fast::SHADER);
    for e in conv_fast::ENTRIES {
        assert!(fast.contains(&e.name.to_string()), "conv_fast: {}", e.name);
    }
    // Every conv entry of the shader is in the table (plus pad_input and pack_weights).
    assert_eq!(fast.len(), conv_fast::ENTRIES.len() + 2);
    let gemv_names = names(&gemv::SHADER);
    for (s, e) in gemv::SHAPES.iter().zip(gemv::ENTRIES) {
        assert_eq!(s.entry(), Some(e));
        assert!(gemv_names.contains(&e.to_string()), "gemv: {e}");
    }
    let roof = names(&roofline::SHADER);
    for e in roofline::READ_KERNELS
        .into_iter()
        .chain(roofline::GEMM_KERNELS.map(|g| g.0))
    {
        assert!(roof.contains(&e.to_string()), "roofline: {e}");
    }
}
