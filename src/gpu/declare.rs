//! How a shader is declared, once: `shader!` names its file, its uniform `Params`
//! and the structs of its storage arrays (Rust `#[repr(C)]` types made with
//! `wgsl_struct!`, [`super::mirror`]) and its storage bindings with their access and WGSL type. From that
//! one declaration come the Rust argument struct (one [`Arg`](super::Arg) per binding, so a
//! launcher cannot pass arguments in the wrong order), the bind-group layout, and the WGSL
//! itself: the struct definitions and `@group(0) @binding(i)` declarations are generated and
//! put between the prelude ([`super::prelude`]) and the file's body, so the two sides cannot disagree.
//! `tests/naga_validate.rs` reflects the composed WGSL and checks every struct's layout
//! against its Rust mirror.

use super::mirror::ParamsLayout;

/// Whether a binding's declared WGSL type holds activations in the prelude's storage type
/// (`array<act_t>`, `array<act4_t>`): halves in a half-activation twin.
pub fn is_activation_type(wgsl_type: &str) -> bool {
    wgsl_type.contains("act_t") || wgsl_type.contains("act4_t")
}

/// How a shader binding is declared in its bind-group layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindingKind {
    /// `var<uniform>` parameters.
    Uniform,
    /// `var<storage, read>`.
    ReadOnly,
    /// `var<storage, read_write>`.
    ReadWrite,
}

/// One WGSL file and the bind-group layout (group 0, bindings 0..n) all its entry points share.
///
/// Each kernel module in [`crate::gpu::kernels`] declares one with `shader!`.
#[derive(Debug)]
pub struct ShaderSpec {
    /// Unique name (the file stem), used as the cache key.
    pub name: &'static str,
    /// The WGSL file's text (entry points and helpers), loaded with `include_str!`.
    pub body: &'static str,
    /// Binding `i` of group 0 has kind `bindings[i]`.
    pub bindings: &'static [BindingKind],
    /// Binding `i` is the WGSL variable `binding_names[i]`.
    pub binding_names: &'static [&'static str],
    /// Binding `i`'s WGSL type (`Params` for the uniform).
    pub binding_types: &'static [&'static str],
    /// Compile without runtime bounds checks and loop bounding
    /// (`create_shader_module_trusted`). Only for shaders whose indexing is clamped in the
    /// shader and validated by the launcher, and covered by `tests/gpu_ops/`.
    pub trusted: bool,
    /// The Rust mirror of the uniform `Params` (binding 0), for the reflection test.
    pub params: ParamsLayout,
    /// Other WGSL structs of the shader mirrored in Rust (storage-array elements).
    pub mirrors: &'static [ParamsLayout],
    /// WGSL extensions the file needs (`f16`, `wgpu_cooperative_matrix`): `enable` directives
    /// put before the prelude. Its pipelines need a device with the matching features.
    pub enables: &'static [&'static str],
    /// The composed source, built on first use by [`ShaderSpec::source`].
    pub source: std::sync::OnceLock<String>,
    /// The source's top-level items, split on first use by [`ShaderSpec::entry_source`].
    pub items: std::sync::OnceLock<super::wgsl_items::Items>,
}

impl ShaderSpec {
    /// The whole WGSL: the prelude, the structs and bindings generated from the declaration,
    /// then the file's body.
    pub fn source(&self) -> &str {
        self.source.get_or_init(|| {
            let mut s = self.directives();
            s.push_str(&super::prelude::wgsl());
            s.push_str("\n// ---- generated from the launcher's declaration (gpu::declare) ----\n");
            s.push_str(self.params.wgsl);
            for m in self.mirrors {
                s.push_str(m.wgsl);
            }
            for (i, ((kind, name), ty)) in self
                .bindings
                .iter()
                .zip(self.binding_names)
                .zip(self.binding_types)
                .enumerate()
            {
                let space = match kind {
                    BindingKind::Uniform => "uniform",
                    BindingKind::ReadOnly => "storage, read",
                    BindingKind::ReadWrite => "storage, read_write",
                };
                s.push_str(&format!(
                    "@group(0) @binding({i}) var<{space}> {name}: {ty};\n"
                ));
            }
            s.push_str("// ---- shaders/");
            s.push_str(self.name);
            s.push_str(".wgsl ----\n");
            s.push_str(self.body);
            s
        })
    }

    /// The `enable` directives of [`ShaderSpec::enables`], one per line (what the composed
    /// source starts with, before the prelude).
    pub fn directives(&self) -> String {
        self.enables
            .iter()
            .map(|e| format!("enable {e};\n"))
            .collect()
    }

    /// Whether the declaration stores activations as the prelude's `act_t` (a binding typed
    /// `array<act_t>` or `array<act4_t>`), so the shader has a half-activation twin
    /// ([`super::twin::halve`]).
    pub fn stores_activations(&self) -> bool {
        self.binding_types.iter().any(|t| is_activation_type(t))
    }

    /// The WGSL of one entry point, what the pipelines compile: [`ShaderSpec::source`]
    /// without the other entry points and the functions `entry` does not reach
    /// ([`super::wgsl_items`]); `None` when the file has no entry point `entry`.
    pub fn entry_source(&self, entry: &str) -> Option<String> {
        let src = self.source();
        let items = self
            .items
            .get_or_init(|| super::wgsl_items::Items::split(src));
        items.entry_source(src, entry)
    }

    /// The names of the file's entry points, in source order.
    pub fn entry_points(&self) -> Vec<&str> {
        let src = self.source();
        let items = self
            .items
            .get_or_init(|| super::wgsl_items::Items::split(src));
        items.entry_points()
    }
}

/// Declares one shader file: a `static` [`ShaderSpec`](crate::gpu::ShaderSpec) — the prelude,
/// the generated structs and bindings (binding 0 the uniform `p: Params`, then the storage
/// bindings in order, each `name: read|write <WGSL type>`), then `shaders/<name>.wgsl` — and
/// the argument struct with one [`Arg`](crate::gpu::Arg) per storage binding.
macro_rules! shader {
    ($(#[$meta:meta])* pub static $spec:ident = $file:literal {
        params: $params:ty,
        $(mirrors: [$($mirror:ty),*],)?
        $(enables: [$($enable:ident),*],)?
        trusted: $trusted:expr,
        $(#[$ameta:meta])* args: $args:ident {
            $( $(#[$fmeta:meta])* $field:ident : $kind:ident $wty:ty, )*
        }
    }) => {
        $(#[$meta])*
        pub static $spec: $crate::gpu::declare::ShaderSpec = $crate::gpu::declare::ShaderSpec {
            name: $file,
            body: include_str!(concat!("../../../shaders/", $file, ".wgsl")),
            bindings: &[
                $crate::gpu::declare::BindingKind::Uniform,
                $( $crate::gpu::declare::shader!(@kind $kind), )*
            ],
            binding_names: &["p", $( stringify!($field), )*],
            binding_types: &["Params", $( stringify!($wty), )*],
            trusted: $trusted,
            params: $crate::gpu::mirror::ParamsLayout::of::<$params>(),
            mirrors: &[$($($crate::gpu::mirror::ParamsLayout::of::<$mirror>(),)*)?],
            enables: &[$($(stringify!($enable),)*)?],
            source: std::sync::OnceLock::new(),
            items: std::sync::OnceLock::new(),
        };

        $(#[$ameta])*
        #[derive(Clone, Debug)]
        pub struct $args {
            $( $(#[$fmeta])* pub $field: $crate::gpu::launch::Arg, )*
        }

        impl $args {
            /// The arguments in binding order (after the uniform).
            pub fn into_vec(self) -> Vec<$crate::gpu::launch::Arg> {
                vec![$( self.$field, )*]
            }
        }
    };
    (@kind read) => { $crate::gpu::declare::BindingKind::ReadOnly };
    (@kind write) => { $crate::gpu::declare::BindingKind::ReadWrite };
}
pub(crate) use shader;
