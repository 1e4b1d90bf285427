//! Compiled pipelines kept between processes: wgpu's [`wgpu::PipelineCache`] (Vulkan's
//! `VkPipelineCache`; no other backend has one in wgpu 30), loaded when a [`GpuContext`]
//! opens and written back when it closes, so a second process skips the driver's compile.
//!
//! The file is `pipelines-<key>.bin` in the cache folder (`$GCONV_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/gconv`, else `~/.cache/gconv`; `<key>` is
//! [`wgpu::util::pipeline_cache_key`], vendor and device id). Its layout, all little-endian:
//!
//! ```text
//! b"gconvPC\x01" | u32 identity length | identity (adapter, backend, driver, driver info,
//! gconv version) | u64 data length | u64 FNV-1a of the data | data (PipelineCache::get_data)
//! ```
//!
//! gconv checks every field before the driver sees a byte: a file that is truncated,
//! corrupt, of another format, made for another adapter, driver or gconv, or larger than
//! [`crate::limits::MAX_PIPELINE_CACHE_BYTES`] is ignored with a one-line notice (the cache is
//! an optimisation, never a reason to fail) and replaced when the context closes. It is
//! written with [`crate::fs::write_atomic`], so readers and concurrent writers only ever see
//! whole files; when two processes save at once the last one's pipelines are kept and the
//! other's are compiled again next time. Off with `GCONV_PIPELINE_CACHE=off` or
//! [`GpuOptions::pipeline_cache`] `= None`.
//!
//! [`GpuContext`]: super::GpuContext

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

const MAGIC: &[u8; 8] = b"gconvPC\x01";

/// How a [`GpuContext`](super::GpuContext) is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuOptions {
    /// The folder of the compiled-pipeline cache file; `None`: no cache.
    pub pipeline_cache: Option<PathBuf>,
}

impl GpuOptions {
    /// The cache in [`super::tune::cache::cache_dir`], unless `GCONV_PIPELINE_CACHE` is
    /// `off` (or `0`, `false`, `no`).
    pub fn from_env() -> Self {
        let off = std::env::var("GCONV_PIPELINE_CACHE").is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "off" | "0" | "false" | "no"
            )
        });
        Self {
            pipeline_cache: if off {
                None
            } else {
                super::tune::cache::cache_dir()
            },
        }
    }
}

/// What gconv knows a cache file by: adapter, backend, driver, driver info and gconv version
/// (wgpu checks its own header and the driver its own on top).
pub fn identity(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} | {:?} | {} | {} | {:04x}:{:04x} | gconv {}",
        info.name,
        info.backend,
        info.driver,
        info.driver_info,
        info.vendor,
        info.device,
        env!("CARGO_PKG_VERSION")
    )
}

/// The cache file for `info` in `dir`; `None` when wgpu has no pipeline cache for its backend.
pub fn file_path(dir: &Path, info: &wgpu::AdapterInfo) -> Option<PathBuf> {
    wgpu::util::pipeline_cache_key(info).map(|k| dir.join(format!("pipelines-{k}.bin")))
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The file's bytes for `data` made on the adapter `identity`.
pub fn encode(identity: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + identity.len() + 16 + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(identity.len() as u32).to_le_bytes());
    out.extend_from_slice(identity.as_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&fnv1a(data).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// The data in a file's `bytes`, if it is a whole, uncorrupted file made for `identity`;
/// otherwise why not, in a few words.
pub fn decode<'a>(identity: &str, bytes: &'a [u8]) -> std::result::Result<&'a [u8], String> {
    let take = |at: usize, n: usize| bytes.get(at..at.checked_add(n)?);
    let short = || "truncated".to_string();
    if take(0, MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Err("not a gconv pipeline cache (or of another format)".into());
    }
    let mut at = MAGIC.len();
    let len = u32::from_le_bytes(take(at, 4).ok_or_else(short)?.try_into().expect("4 bytes"));
    at += 4;
    let theirs = take(at, len as usize).ok_or_else(short)?;
    if theirs != identity.as_bytes() {
        return Err(format!(
            "made for another adapter, driver or gconv ({})",
            String::from_utf8_lossy(theirs)
        ));
    }
    at += len as usize;
    let word = |at| take(at, 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let (n, hash) = (word(at).ok_or_else(short)?, word(at + 8).ok_or_else(short)?);
    let data = &bytes[at + 16..];
    match (data.len() as u64).cmp(&n) {
        std::cmp::Ordering::Less => return Err(short()),
        std::cmp::Ordering::Greater => return Err("longer than it records".into()),
        std::cmp::Ordering::Equal => {}
    }
    if fnv1a(data) != hash {
        return Err("corrupt (checksum mismatch)".into());
    }
    Ok(data)
}

/// Writes `data` made on adapter `identity` to the cache file `path` atomically, creating
/// its folder.
pub fn write_file(path: &Path, identity: &str, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    crate::fs::write_atomic(path, &encode(identity, data))
}

/// A context's pipeline cache and the file it came from and goes back to.
#[derive(Debug)]
pub struct DiskPipelineCache {
    cache: wgpu::PipelineCache,
    path: PathBuf,
    identity: String,
    loaded_bytes: usize,
    /// Length and FNV-1a of the data as loaded or last saved: unchanged data is not rewritten.
    saved: std::sync::Mutex<(usize, u64)>,
    notice: Option<String>,
    dirty: AtomicBool,
}

impl DiskPipelineCache {
    /// Opens the cache of `info` in `dir` on `device` (which must have
    /// `Features::PIPELINE_CACHE`); `None` when the backend has none. A missing file is an
    /// empty cache; an unusable one is ignored with a notice (logged, and kept for
    /// [`DiskPipelineCache::notice`]).
    pub fn open(device: &wgpu::Device, info: &wgpu::AdapterInfo, dir: &Path) -> Option<Self> {
        let path = file_path(dir, info)?;
        let identity = identity(info);
        let (bytes, mut notice) =
            match crate::fs::read_file(&path, crate::limits::MAX_PIPELINE_CACHE_BYTES) {
                Ok(b) => (b, None),
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    (Vec::new(), None)
                }
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
        let data = match decode(&identity, &bytes) {
            _ if bytes.is_empty() => None,
            Ok(d) => Some(d),
            Err(why) => {
                notice = Some(format!("{}: {why}", path.display()));
                None
            }
        };
        if let Some(n) = &notice {
            log::warn!("ignoring the pipeline cache: {n}");
        }
        // SAFETY: `data` is what `PipelineCache::get_data` returned on an adapter of this
        // identity (the file's header and checksum say so; a stranger's file fails them or
        // wgpu's own header check, and `fallback` then gives an empty cache).
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("gconv pipelines"),
                data,
                fallback: true,
            })
        };
        Some(Self {
            cache,
            path,
            identity,
            loaded_bytes: data.map_or(0, <[u8]>::len),
            saved: std::sync::Mutex::new(data.map_or((0, 0), |d| (d.len(), fnv1a(d)))),
            notice,
            dirty: AtomicBool::new(false),
        })
    }

    /// The wgpu cache pipelines are compiled with; marks it as changed.
    pub fn for_compile(&self) -> &wgpu::PipelineCache {
        self.dirty.store(true, Ordering::Relaxed);
        &self.cache
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of driver data loaded from the file (0 for a new or ignored file).
    pub fn loaded_bytes(&self) -> usize {
        self.loaded_bytes
    }

    /// Why the file was ignored, if it was.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// Writes the cache to its file (creating its folder) if a pipeline was compiled since
    /// it was opened or last saved and the driver's data changed; `Ok(false)` when there was
    /// nothing to write.
    pub fn save(&self) -> Result<bool> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(false);
        }
        let Some(data) = self.cache.get_data() else {
            return Ok(false);
        };
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        let now = (data.len(), fnv1a(&data));
        if *saved == now {
            return Ok(false);
        }
        write_file(&self.path, &self.identity, &data)?;
        *saved = now;
        Ok(true)
    }
}

impl Drop for DiskPipelineCache {
    fn drop(&mut self) {
        if let Err(e) = self.save() {
            log::warn!("could not save the pipeline cache: {e}");
        }
    }
}
