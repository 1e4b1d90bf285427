//! How a shader is declared, once: [`crate::shader!`] names its file, its uniform `Params` (a
//! Rust mirror made with [`crate::wgsl_struct!`]) and its storage bindings, named and typed as
//! in the WGSL. The declaration yields a [`ShaderSpec`](super::ShaderSpec) and an argument
//! struct with one [`Arg`](super::Arg) field per binding, so a launcher cannot pass arguments
//! in the wrong order; `tests/naga_validate.rs` reflects the WGSL and checks both against it.

/// The WGSL prelude every shader starts with (folded workgroup ids, activations).
pub const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");

/// One member of a WGSL struct mirrored in Rust: name, byte offset and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Member name (the same in WGSL and Rust).
    pub name: &'static str,
    /// Byte offset.
    pub offset: usize,
    /// Byte size.
    pub size: usize,
}

/// A `#[repr(C)]` Rust mirror of a WGSL struct; `FIELDS` lists its members for the naga
/// reflection test (`tests/naga_validate.rs`).
pub trait WgslStruct: bytemuck::Pod {
    /// The WGSL struct's name.
    const NAME: &'static str;
    /// The members, in order.
    const FIELDS: &'static [Field];
}

/// Declares a `#[repr(C)]` [`bytemuck::Pod`] mirror of a WGSL struct, with its member list
/// ([`WgslStruct`]). Members are `u32`/`i32`/`f32`; a uniform struct's size must be a multiple
/// of 16 bytes (pad with `_padN: u32` members, declared in the WGSL too).
#[macro_export]
macro_rules! wgsl_struct {
    ($(#[$meta:meta])* pub struct $name:ident = $wgsl:literal {
        $( $(#[$fmeta:meta])* pub $field:ident : $fty:ty, )*
    }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $fty, )*
        }
        impl $crate::gpu::declare::WgslStruct for $name {
            const NAME: &'static str = $wgsl;
            const FIELDS: &'static [$crate::gpu::declare::Field] = &[
                $( $crate::gpu::declare::Field {
                    name: stringify!($field),
                    offset: std::mem::offset_of!($name, $field),
                    size: std::mem::size_of::<$fty>(),
                }, )*
            ];
        }
    };
}

/// The reflection data of a shader's uniform `Params`.
#[derive(Clone, Copy, Debug)]
pub struct ParamsLayout {
    /// The WGSL struct name.
    pub name: &'static str,
    /// Its members.
    pub fields: &'static [Field],
    /// The Rust size in bytes.
    pub size: usize,
}

impl ParamsLayout {
    /// The layout of `P`.
    pub const fn of<P: WgslStruct>() -> Self {
        Self {
            name: P::NAME,
            fields: P::FIELDS,
            size: std::mem::size_of::<P>(),
        }
    }
}

/// Declares one shader file: a `static` [`ShaderSpec`](crate::gpu::ShaderSpec) (prelude + `shaders/<name>.wgsl`, binding
/// 0 the uniform `p: Params`, then the storage bindings in order) and the argument struct with
/// one [`Arg`](crate::gpu::Arg) per storage binding.
#[macro_export]
macro_rules! shader {
    ($(#[$meta:meta])* pub static $spec:ident = $file:literal {
        params: $params:ty,
        $(mirrors: [$($mirror:ty),*],)?
        trusted: $trusted:expr,
        $(#[$ameta:meta])* args: $args:ident { $( $(#[$fmeta:meta])* $field:ident : $kind:ident, )* }
    }) => {
        $(#[$meta])*
        pub static $spec: $crate::gpu::context::ShaderSpec = $crate::gpu::context::ShaderSpec {
            name: $file,
            source: concat!(
                include_str!("../../../shaders/prelude.wgsl"),
                include_str!(concat!("../../../shaders/", $file, ".wgsl"))
            ),
            bindings: &[
                $crate::gpu::context::BindingKind::Uniform,
                $( $crate::shader!(@kind $kind), )*
            ],
            binding_names: &["p", $( stringify!($field), )*],
            trusted: $trusted,
            params: $crate::gpu::declare::ParamsLayout::of::<$params>(),
            mirrors: &[$($($crate::gpu::declare::ParamsLayout::of::<$mirror>(),)*)?],
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
    (@kind read) => { $crate::gpu::context::BindingKind::ReadOnly };
    (@kind write) => { $crate::gpu::context::BindingKind::ReadWrite };
}
