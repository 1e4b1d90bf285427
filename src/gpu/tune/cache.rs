//! The on-disk cache of tuned kernel choices: one JSON file, `kernels.json`, in
//! `$GCONV_CACHE_DIR`, else `$XDG_CACHE_HOME/gconv/`, else `~/.cache/gconv/`.
//!
//! ```json
//! { "format": 1,
//!   "adapters": {
//!     "llvmpipe (LLVM 15.0.6, 256 bits) | Vulkan | llvmpipe | Mesa 22.3.6 | gconv 0.1.0": {
//!       "conv k3x3 s1x1 p1x1 d1x1 c64>64 g1 bias b1 in56x56": {
//!         "kernel": "conv_fast", "default": "conv_fast", "speedup": 1.0,
//!         "times_ms": [["conv_fast", 3.1], ["conv_tiled", 5.2]] } } } }
//! ```
//!
//! Entries are grouped by an adapter key (adapter name, backend, driver, driver info and the
//! gconv version, so a driver update or a new gconv misses) and keyed within it by a layer
//! shape key (op kind, geometry, batch, input size, a hash of an exported table's groups),
//! so two layers of the same shape share one entry. A file that cannot be read or parsed is
//! ignored with a warning (the cache is an optimisation, never a reason to fail).
//!
//! **Several processes** (two `gconv tune` in two terminals, two CI jobs) may tune into one
//! file at once: [`TuneCache::save`] re-reads the file under an advisory lock, merges in the
//! entries this cache inserted since it was loaded (ours win for those keys, everything else
//! on disk is kept) and writes the result atomically ([`crate::fs::update_locked`]), so no
//! process loses another's entries and a process killed in the middle leaves the old or the
//! new file, whole.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The file name inside the cache folder.
pub const FILE_NAME: &str = "kernels.json";

/// The version of the file layout; a file of another version is ignored.
pub const FORMAT: u32 = 1;

/// What tuning chose for one layer shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CachedChoice {
    /// The fastest kernel that matched the default's output ([`crate::gpu::choice`] names).
    pub kernel: String,
    /// The kernel the candidate lists pick without tuning.
    pub default: String,
    /// Default's median time / the chosen kernel's.
    pub speedup: f64,
    /// Median milliseconds of every candidate timed (in the order tried).
    pub times_ms: Vec<(String, f64)>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    adapters: BTreeMap<String, BTreeMap<String, CachedChoice>>,
}

/// The tuning cache: loaded from a file, changed in memory, saved atomically.
#[derive(Clone, Debug)]
pub struct TuneCache {
    path: PathBuf,
    file: CacheFile,
    /// `(adapter, shape)` of every entry inserted since the cache was loaded or saved.
    changed: BTreeSet<(String, String)>,
}

/// The cache folder: `$GCONV_CACHE_DIR`, else `$XDG_CACHE_HOME/gconv`, else
/// `$HOME/.cache/gconv`; `None` when none of them is set.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("GCONV_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("gconv")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("gconv")))
}

/// The default cache file, [`cache_dir`]`/kernels.json`.
pub fn default_path() -> Option<PathBuf> {
    cache_dir().map(|d| d.join(FILE_NAME))
}

/// The adapter part of the key: name, backend, driver, driver info and gconv version.
pub fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} | {:?} | {} | {} | gconv {}",
        info.name,
        info.backend,
        info.driver,
        info.driver_info,
        env!("CARGO_PKG_VERSION")
    )
}

impl TuneCache {
    /// An empty cache that [`TuneCache::save`] writes to `path`.
    pub fn empty(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            file: CacheFile {
                format: FORMAT,
                ..Default::default()
            },
            changed: BTreeSet::new(),
        }
    }

    /// The cache at `path`: empty when the file does not exist; a file that cannot be read,
    /// is not JSON of this layout or has another format version is ignored with a warning.
    pub fn load(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut c = Self::empty(&path);
        if !path.exists() {
            return c;
        }
        if let Some(f) = read(&path).and_then(|b| parse(&path, &b)) {
            c.file = f;
        }
        c
    }

    /// Like [`TuneCache::load`], but a file that exists and cannot be read as a cache of this
    /// format is an error naming it, not an empty cache (for callers that would otherwise
    /// overwrite it, such as `gconv search`).
    pub fn load_checked(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let mut c = Self::empty(&path);
        if !path.exists() {
            return Ok(c);
        }
        let bytes = crate::fs::read_file(&path, crate::limits::MAX_CACHE_FILE_BYTES)?;
        let f =
            from_json(&bytes).map_err(|e| Error::format(&path, format!("tuning cache: {e}")))?;
        if f.format != FORMAT {
            return Err(Error::format(
                &path,
                format!(
                    "tuning cache of format {} (this gconv reads {FORMAT})",
                    f.format
                ),
            ));
        }
        c.file = f;
        Ok(c)
    }

    /// The cache at [`default_path`] (an empty one at `./kernels.json` if no folder is known).
    pub fn load_default() -> Self {
        Self::load(default_path().unwrap_or_else(|| PathBuf::from(FILE_NAME)))
    }

    /// The file this cache is saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The choice for layer shape `shape` on adapter `adapter` ([`adapter_key`]).
    pub fn get(&self, adapter: &str, shape: &str) -> Option<&CachedChoice> {
        self.file.adapters.get(adapter)?.get(shape)
    }

    /// Records a choice (replacing an older one); [`TuneCache::save`] writes it.
    pub fn insert(&mut self, adapter: &str, shape: &str, choice: CachedChoice) {
        self.changed
            .insert((adapter.to_string(), shape.to_string()));
        self.file
            .adapters
            .entry(adapter.to_string())
            .or_default()
            .insert(shape.to_string(), choice);
    }

    /// Number of layer shapes cached for `adapter`.
    pub fn len_for(&self, adapter: &str) -> usize {
        self.file.adapters.get(adapter).map_or(0, |m| m.len())
    }

    /// Saves the entries inserted since the cache was loaded, creating its folder: under the
    /// file's lock, what is on disk now (other processes may have added entries since) with
    /// ours merged in, written atomically. Afterwards this cache holds the merged entries.
    pub fn save(&mut self) -> Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let path = self.path.clone();
        let mut merged = None;
        crate::fs::update_locked(&path, crate::limits::MAX_CACHE_FILE_BYTES, |old| {
            let mut file = old
                .and_then(|b| parse(&path, &b))
                .unwrap_or_else(|| CacheFile {
                    format: FORMAT,
                    ..Default::default()
                });
            for (adapter, shape) in &self.changed {
                if let Some(c) = self.get(adapter, shape) {
                    file.adapters
                        .entry(adapter.clone())
                        .or_default()
                        .insert(shape.clone(), c.clone());
                }
            }
            let json = serde_json::to_string_pretty(&file).expect("serialisable");
            merged = Some(file);
            Ok(json.into_bytes())
        })?;
        self.file = merged.expect("merged under the lock");
        self.changed.clear();
        Ok(())
    }
}

/// The file's bytes, or `None` (with a warning) when it cannot be read.
fn read(path: &Path) -> Option<Vec<u8>> {
    crate::fs::read_file(path, crate::limits::MAX_CACHE_FILE_BYTES)
        .map_err(|e| log::warn!("ignoring the tuning cache: {e}"))
        .ok()
}

/// The cache in `bytes`, or `None` (with a warning) when they are not JSON of this layout
/// and format version.
fn parse(path: &Path, bytes: &[u8]) -> Option<CacheFile> {
    match from_json(bytes) {
        Ok(f) if f.format == FORMAT => Some(f),
        Ok(f) => {
            log::warn!(
                "{}: tuning cache of format {} (this gconv reads {FORMAT}); ignored",
                path.display(),
                f.format
            );
            None
        }
        Err(e) => {
            log::warn!("ignoring the tuning cache {}: {e}", path.display());
            None
        }
    }
}

/// Parses a cache file's bytes (the entry point of the `tune_cache` fuzz target): its
/// format version and how many entries it holds, or the JSON error.
pub fn parse_cache_file(bytes: &[u8]) -> std::result::Result<(u32, usize), String> {
    let f = from_json(bytes).map_err(|e| e.to_string())?;
    Ok((f.format, f.adapters.values().map(|m| m.len()).sum()))
}

fn from_json(bytes: &[u8]) -> serde_json::Result<CacheFile> {
    serde_json::from_slice(bytes)
}
