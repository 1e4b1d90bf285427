//! Shared by the GPU test binaries: one [`GpuContext`] per process and a lock so GPU tests
//! run one at a time (lavapipe has hung wgpu suites run in parallel).

#![allow(dead_code)]

pub mod tier;

use gconv::gpu::GpuContext;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The process-wide context, or `None` (with a loud message) when there is no adapter.
/// With `GCONV_REQUIRE_GPU=1`, a missing adapter is a panic instead of a skip.
pub fn gpu() -> Option<&'static Arc<GpuContext>> {
    static CTX: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    CTX.get_or_init(|| {
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            let dir = std::env::temp_dir().join("gconv-xdg");
            if std::fs::create_dir_all(&dir).is_ok() {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
                }
                // Only silences the Vulkan loader's warning; set before wgpu starts.
                std::env::set_var("XDG_RUNTIME_DIR", dir);
            }
        }
        // The contexts' pipeline caches (and any tuning cache a test's gconv process
        // writes) go to a folder of the tests, not the user's ~/.cache/gconv.
        if std::env::var_os("GCONV_CACHE_DIR").is_none() {
            let dir = std::env::temp_dir().join("gconv-test-cache");
            std::env::set_var("GCONV_CACHE_DIR", dir);
        }
        match GpuContext::new() {
            Ok(c) => {
                eprintln!("GPU: {}", c.describe());
                Some(Arc::new(c))
            }
            Err(e) => {
                if std::env::var("GCONV_REQUIRE_GPU").as_deref() == Ok("1") {
                    panic!("GCONV_REQUIRE_GPU=1 but no GPU: {e}");
                }
                eprintln!("SKIPPING GPU TEST: no adapter ({e}) — install mesa-vulkan-drivers");
                None
            }
        }
    })
    .as_ref()
}

/// Held for the duration of one GPU test.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Forces `GCONV_ADAPTER_CLASS=class` (that class's candidate lists on any adapter) until
/// dropped — also when the test fails, so a later test in the binary sees the default.
pub struct ForcedClass(());

/// A [`ForcedClass`] of `class` (`cpu`, `integrated` or `discrete`).
pub fn force_class(class: &str) -> ForcedClass {
    std::env::set_var("GCONV_ADAPTER_CLASS", class);
    ForcedClass(())
}

impl Drop for ForcedClass {
    fn drop(&mut self) {
        std::env::remove_var("GCONV_ADAPTER_CLASS");
    }
}
