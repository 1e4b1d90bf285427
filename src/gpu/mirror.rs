//! Rust mirrors of WGSL structs: [`WgslStruct`] (a `#[repr(C)]` [`bytemuck::Pod`] type that
//! knows its WGSL name, members and definition) and `wgsl_struct!`, which declares both
//! sides at once; [`ParamsLayout`] is what the naga reflection test (`tests/naga_validate.rs`)
//! compares with the compiled shader.

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
    /// The WGSL definition of the struct.
    const WGSL: &'static str;
}

/// Declares a `#[repr(C)]` [`bytemuck::Pod`] struct and its WGSL twin ([`WgslStruct`]: member
/// list and WGSL text). Members are `u32`/`i32`/`f32`; a uniform struct's size must be a
/// multiple of 16 bytes (pad with `_padN: u32` members).
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
        impl $crate::gpu::mirror::WgslStruct for $name {
            const NAME: &'static str = $wgsl;
            const FIELDS: &'static [$crate::gpu::mirror::Field] = &[
                $( $crate::gpu::mirror::Field {
                    name: stringify!($field),
                    offset: std::mem::offset_of!($name, $field),
                    size: std::mem::size_of::<$fty>(),
                }, )*
            ];
            const WGSL: &'static str = concat!(
                "struct ", $wgsl, " {\n",
                $( "    ", stringify!($field), ": ", stringify!($fty), ",\n", )*
                "}\n"
            );
        }
    };
}
pub(crate) use wgsl_struct;

/// The reflection data of a shader's uniform `Params`.
#[derive(Clone, Copy, Debug)]
pub struct ParamsLayout {
    /// The WGSL struct name.
    pub name: &'static str,
    /// Its members.
    pub fields: &'static [Field],
    /// The Rust size in bytes.
    pub size: usize,
    /// The WGSL definition.
    pub wgsl: &'static str,
}

impl ParamsLayout {
    /// The layout of `P`.
    pub const fn of<P: WgslStruct>() -> Self {
        Self {
            name: P::NAME,
            fields: P::FIELDS,
            size: std::mem::size_of::<P>(),
            wgsl: P::WGSL,
        }
    }
}
