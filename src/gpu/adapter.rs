//! What kernel choice may know of an adapter: its [`AdapterClass`] (whose candidate lists
//! apply; `GCONV_ADAPTER_CLASS` forces one on any adapter, so every tier's kernels run on
//! lavapipe in CI) and the limits the families' predicates read ([`Adapter`]).

use crate::error::{Error, Result};

/// The adapter classes the candidate lists are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdapterClass {
    /// A CPU-backed adapter (lavapipe, SwiftShader, WARP): per-lane loads are gathers,
    /// barriers are expensive, a workgroup runs on one thread.
    Cpu,
    /// A GPU sharing memory with the host.
    Integrated,
    /// A GPU with its own memory (or any other real GPU).
    Discrete,
}

impl AdapterClass {
    /// The class named by `GCONV_ADAPTER_CLASS` (`cpu`, `integrated`, `discrete`), if set:
    /// it forces that class's candidate lists on any adapter, so every tier's kernels can be
    /// tested on lavapipe. An unknown value is an error naming it.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var("GCONV_ADAPTER_CLASS") {
            Ok(v) => Self::parse(&v).map(Some).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "GCONV_ADAPTER_CLASS={v:?}: expected cpu, integrated or discrete"
                ))
            }),
            Err(_) => Ok(None),
        }
    }

    /// The class of an adapter described by `info`: `GCONV_ADAPTER_CLASS` when set and
    /// valid, else CPU for a CPU-backed adapter, integrated for an integrated GPU, discrete
    /// for any other.
    pub fn of(info: &wgpu::AdapterInfo) -> Self {
        if let Ok(Some(c)) = Self::from_env() {
            return c;
        }
        match info.device_type {
            wgpu::DeviceType::Cpu => AdapterClass::Cpu,
            wgpu::DeviceType::IntegratedGpu => AdapterClass::Integrated,
            _ => AdapterClass::Discrete,
        }
    }

    /// `cpu`, `integrated` or `discrete`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Some(AdapterClass::Cpu),
            "integrated" => Some(AdapterClass::Integrated),
            "discrete" => Some(AdapterClass::Discrete),
            _ => None,
        }
    }

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            AdapterClass::Cpu => "cpu",
            AdapterClass::Integrated => "integrated",
            AdapterClass::Discrete => "discrete",
        }
    }
}

/// What a family's predicates may know about the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adapter {
    /// The class whose candidate lists apply (the adapter's own, or `GCONV_ADAPTER_CLASS`).
    pub class: AdapterClass,
    /// The largest storage binding, bytes.
    pub max_binding: u64,
    /// Workgroup memory, bytes.
    pub workgroup_storage: u32,
    /// Invocations per workgroup (and along x).
    pub invocations: u32,
    /// Compute units (SMs, CUs, cores) the adapter is estimated to have
    /// ([`compute_units`]): what the discrete tier fills with workgroups.
    pub compute_units: u32,
    /// The device has `SHADER_F16` (f16 in shaders).
    pub shader_f16: bool,
    /// The square f16 cooperative-matrix size the device was opened for (16 or 8;
    /// `GpuContext::cooperative_matrix`), if any.
    pub cooperative_matrix: Option<u32>,
}

impl Adapter {
    /// The facts of an adapter of class `class` with `limits` and `compute_units`.
    pub fn new(class: AdapterClass, limits: &wgpu::Limits, compute_units: u32) -> Self {
        Self {
            class,
            compute_units,
            max_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
            workgroup_storage: limits.max_compute_workgroup_storage_size,
            invocations: limits
                .max_compute_invocations_per_workgroup
                .min(limits.max_compute_workgroup_size_x),
            shader_f16: false,
            cooperative_matrix: None,
        }
    }

    /// The same adapter with f16 shaders (`shader_f16`) and cooperative matrices of size
    /// `cooperative_matrix`.
    pub fn with_features(self, shader_f16: bool, cooperative_matrix: Option<u32>) -> Self {
        Self {
            shader_f16,
            cooperative_matrix,
            ..self
        }
    }

    /// Whether the candidate lists are a CPU adapter's.
    pub fn is_cpu(&self) -> bool {
        self.class == AdapterClass::Cpu
    }
}

/// Compute units by adapter name (wgpu does not report them): `GCONV_COMPUTE_UNITS` when set,
/// else a few known chips (NVIDIA SMs, AMD CUs, Apple GPU cores), else 64 for a discrete
/// GPU, 16 for an integrated one, the host's threads for a CPU adapter. Only the split-K
/// heuristic reads it; `gconv tune` measures instead of guessing.
pub fn compute_units(info: &wgpu::AdapterInfo) -> u32 {
    if let Some(n) = std::env::var("GCONV_COMPUTE_UNITS")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
    {
        return n;
    }
    const KNOWN: &[(&str, u32)] = &[
        ("H200", 132),
        ("H100", 132),
        ("A100", 108),
        ("L40", 142),
        ("RTX 5090", 170),
        ("RTX 4090", 128),
        ("RTX 4080", 76),
        ("RTX 3090", 82),
        ("RTX 3080", 68),
        ("RX 9070", 64),
        ("RX 7900", 96),
        ("M2 Max", 38),
        ("M2 Pro", 19),
        ("M1", 8),
    ];
    let name = info.name.to_uppercase();
    if let Some(&(_, n)) = KNOWN.iter().find(|(k, _)| name.contains(&k.to_uppercase())) {
        return n;
    }
    match info.device_type {
        wgpu::DeviceType::Cpu => std::thread::available_parallelism().map_or(2, |n| n.get() as u32),
        wgpu::DeviceType::IntegratedGpu => 16,
        _ => 64,
    }
}
