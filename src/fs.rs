//! File helpers under everything that touches a file: read a regular file within a cap
//! ([`read_file`], [`read_text_file`]), check a path can be written before long work starts
//! ([`check_writable`]), write a file atomically ([`write_atomic`]), and update one that
//! several processes share under an advisory lock ([`update_locked`], [`FileLock`]). Only
//! regular files
//! are read (`/dev/zero`, FIFOs, sockets and directories are refused before the first
//! byte), and every size is checked against a [`crate::limits`] cap.

use crate::error::{Error, Result};
use crate::limits::{Limit, MAX_TEXT_FILE_BYTES};
use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What kind of file `meta` describes, in words, for "not a regular file" errors.
fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Refuses anything but a regular file (devices such as `/dev/zero`, FIFOs, sockets,
/// directories), whose size is then checked against `cap`.
fn check_regular(path: &Path, meta: &Metadata, cap: Limit) -> Result<()> {
    if !meta.is_file() {
        return Err(Error::format(
            path,
            format!(
                "{} is not a regular file; gconv reads only regular files",
                kind_of(meta)
            ),
        ));
    }
    cap.check("file size", meta.len())
        .map_err(|m| Error::format(path, m))
}

/// Reads a whole regular file of at most `cap` bytes, mapping failures to [`Error::Io`]
/// naming `path`. Special files (devices, FIFOs, sockets, directories) are refused before
/// anything is read, as is a file larger than `cap`; at most `cap` bytes are ever read,
/// even from a file that grows meanwhile.
pub fn read_file(path: &Path, cap: Limit) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    // Checked before opening: opening a FIFO for reading would block.
    check_regular(path, &meta, cap)?;
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    // The same checks on what was opened (the path may have changed meanwhile).
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    check_regular(path, &meta, cap)?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(usize::try_from(meta.len()).unwrap_or(usize::MAX))
        .map_err(|_| {
            Error::format(
                path,
                format!("file of {} bytes does not fit in memory", meta.len()),
            )
        })?;
    f.take(cap.value.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    cap.check("file size", buf.len() as u64)
        .map_err(|m| Error::format(path, m))?;
    Ok(buf)
}

/// Reads a UTF-8 text file (a model description, a scheme) of at most
/// [`MAX_TEXT_FILE_BYTES`]; special files are refused and the size is checked before reading,
/// as for every reader of this module. Text that is not UTF-8 is an
/// [`Error::Format`] saying where it stops being text.
pub fn read_text_file(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let bytes = read_file(path, MAX_TEXT_FILE_BYTES)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::format(
            path,
            format!(
                "not a UTF-8 text file (invalid byte at offset {}); expected TOML text",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// A temporary file name next to `path`, unique to this process and call:
/// `w.safetensors` → `w.safetensors.<pid>-<n>.tmp`.
fn tmp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut name = path
        .file_name()
        .map(OsString::from)
        .unwrap_or_else(|| OsString::from("out"));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    name.push(format!(".{}-{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Checks, before long work starts, that `path` can be written: its folder exists and a file
/// can be created there (a probe is created and removed); `path` itself must not be a folder.
pub fn check_writable(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    if path.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::other("is a directory, not a file to write"),
        ));
    }
    let mut probe = tmp_path(path).into_os_string();
    probe.push(".probe");
    let probe = PathBuf::from(probe);
    std::fs::File::create(&probe).map_err(|e| Error::io(path, e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Writes `bytes` to `path` atomically: into a temporary file next to it first (a name no
/// other writer uses, created exclusively, flushed to disk), then renamed over `path`, so
/// that readers never see a half-written file and two writers of the same path each leave
/// a whole file (the last rename wins). On failure the temporary file is removed and the
/// error names the path that failed.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    // create_new: a stale file of that name (an old process with the same id) is never
    // shared; another name is tried.
    let (tmp, mut f) = {
        let mut tries = 0;
        loop {
            let tmp = tmp_path(path);
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(f) => break (tmp, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 100 => {
                    tries += 1
                }
                Err(e) => return Err(Error::io(&tmp, e)),
            }
        }
    };
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// An exclusive advisory lock on `<path>.lock` (std's [`File::lock`]: `flock` on Unix,
/// `LockFileEx` on Windows), held until dropped. Every gconv process that updates `path`
/// takes it first, so their read-merge-writes never interleave; the kernel releases it when
/// its holder dies, even by `SIGKILL`. The lock file is a separate, empty file that stays:
/// `path` itself is replaced by [`write_atomic`]'s rename, so a lock on it would not hold.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
    path: PathBuf,
}

impl FileLock {
    fn open(path: &Path) -> Result<(File, PathBuf)> {
        let mut name = path
            .file_name()
            .map(OsString::from)
            .unwrap_or_else(|| OsString::from("out"));
        name.push(".lock");
        let lock = path.with_file_name(name);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(|e| Error::io(&lock, e))?;
        Ok((f, lock))
    }

    /// Waits for the lock of `path` (creating `<path>.lock`).
    pub fn exclusive(path: impl AsRef<Path>) -> Result<Self> {
        let (f, lock) = Self::open(path.as_ref())?;
        f.lock().map_err(|e| Error::io(&lock, e))?;
        Ok(Self {
            _file: f,
            path: lock,
        })
    }

    /// Takes the lock of `path` if no other process holds it: `Ok(None)` when one does.
    pub fn try_exclusive(path: impl AsRef<Path>) -> Result<Option<Self>> {
        let (f, lock) = Self::open(path.as_ref())?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Self {
                _file: f,
                path: lock,
            })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&lock, e)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Read-merge-write of a file several processes update: under [`FileLock::exclusive`],
/// reads `path` (`None` when it does not exist; at most `cap` bytes, a regular file only),
/// passes it to `merge` and writes what `merge` returns with [`write_atomic`]. So an update
/// is never lost to another process's (they wait for each other), and a reader or a process
/// killed in the middle sees the old or the new file whole.
pub fn update_locked(
    path: impl AsRef<Path>,
    cap: Limit,
    merge: impl FnOnce(Option<Vec<u8>>) -> Result<Vec<u8>>,
) -> Result<()> {
    let path = path.as_ref();
    let _lock = FileLock::exclusive(path)?;
    let old = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        _ => Some(read_file(path, cap)?),
    };
    write_atomic(path, &merge(old)?)
}
