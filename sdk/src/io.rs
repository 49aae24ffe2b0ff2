//! File input and output shared by the SDK, the CLI, the demos and the calibration tool.
//!
//! - [`write_atomic`]: every output goes to a temporary file in the target's directory, is
//!   flushed and `fsync`ed, then renamed over the target, so a full disk, a crash or a kill
//!   never leaves a truncated file where a good one was.
//! - [`open_regular`], [`read_limited`], [`map_regular`]: inputs must be regular files (not
//!   `/dev/zero`, a FIFO or a directory) and no larger than a stated limit, checked before
//!   anything is read.
//! - [`try_alloc`]: buffers whose size comes from input are reserved fallibly, so an absurd size
//!   is an error naming what it was for instead of an abort.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest JSON parameter file ([`crate::QuantParams`]) read: 16 MiB.
pub const MAX_JSON_BYTES: u64 = 16 << 20;
/// Largest ONNX model read into memory: 2 GiB, protobuf's own limit for one message.
pub const MAX_MODEL_BYTES: u64 = 2 << 30;
/// Largest `.npy` file read: 16 GiB.
pub const MAX_NPY_BYTES: u64 = 16 << 30;

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Human-readable byte count, e.g. `5.9 GB`.
pub fn human_bytes(n: u128) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.1} GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1} MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} kB", f / 1e3)
    } else {
        format!("{n} B")
    }
}

/// Opens `path` for reading after checking that it is a regular file of at most `max_len`
/// bytes; returns the file and its length. `what` names the file's role in messages.
pub fn open_regular(path: &Path, what: &str, max_len: u64) -> Result<(File, u64)> {
    // Look before opening: opening a FIFO for reading blocks until a writer appears.
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    if !meta.is_file() {
        return Err(Error::Other(format!(
            "{}: {what} must be a regular file, not a {}",
            path.display(),
            file_kind(&meta)
        )));
    }
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let meta = file.metadata().map_err(|e| io_err(path, e))?;
    if !meta.is_file() {
        return Err(Error::Other(format!(
            "{}: {what} must be a regular file, not a {}",
            path.display(),
            file_kind(&meta)
        )));
    }
    if meta.len() > max_len {
        return Err(Error::Other(format!(
            "{}: {what} is {} bytes, more than the limit of {} bytes",
            path.display(),
            meta.len(),
            max_len
        )));
    }
    Ok((file, meta.len()))
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "character device";
        }
        if t.is_block_device() {
            return "block device";
        }
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_socket() {
            return "socket";
        }
    }
    "special file"
}

/// Reads a whole regular file of at most `max_len` bytes (see [`open_regular`]).
pub fn read_limited(path: &Path, what: &str, max_len: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let (file, len) = open_regular(path, what, max_len)?;
    let mut buf = try_alloc::<u8>(0, len as usize, &format!("{what} {}", path.display()))?;
    buf.clear();
    // `take` bounds the read even if the file grows while we read it.
    file.take(max_len)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(path, e))?;
    Ok(buf)
}

/// A read-only memory map of a regular file (used for safetensors checkpoints: only the pages
/// of the tensors actually read are loaded, however large the file).
#[derive(Debug)]
pub struct Mapped {
    map: Option<memmap2::Mmap>,
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// Memory-maps a regular file (any size); `what` names it in messages.
pub fn map_regular(path: &Path, what: &str) -> Result<Mapped> {
    let (file, len) = open_regular(path, what, u64::MAX)?;
    if len == 0 {
        // mmap of an empty file fails on some systems; an empty slice says the same.
        return Ok(Mapped { map: None });
    }
    // SAFETY: the map is read-only and private to this process. Another process truncating or
    // rewriting the file while it is mapped would change or invalidate the bytes under us;
    // like every mmap-based loader (safetensors' own included) we accept that for checkpoints,
    // which are not modified while a model loads. All reads go through bounds-checked slices.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io_err(path, e))?;
    Ok(Mapped { map: Some(map) })
}

/// A vector of `len` copies of `value`, reserved fallibly: an error naming `what` and the size
/// instead of an abort when the memory is not there.
pub fn try_alloc<T: Clone>(value: T, len: usize, what: &str) -> Result<Vec<T>> {
    let bytes = (len as u128) * (std::mem::size_of::<T>() as u128);
    let mut v = Vec::new();
    if bytes > isize::MAX as u128 || v.try_reserve_exact(len).is_err() {
        return Err(Error::Other(format!(
            "cannot allocate {} for {what}",
            human_bytes(bytes)
        )));
    }
    v.resize(len, value);
    Ok(v)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes a file atomically: `write` fills a temporary file in `path`'s directory, which is
/// flushed, synced to disk and renamed over `path`. On any error the temporary file is removed
/// and an existing `path` is left untouched.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::Other(format!("{}: not a file name", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable; not every platform can open a directory.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        Error::Other(format!("cannot write {}: {source}", path.display()))
    })
}

/// [`write_atomic`] of a byte string.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dysample-io-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn failed_write_keeps_the_old_file_and_no_temp() {
        let d = tmpdir("atomic");
        let p = d.join("out.bin");
        write_bytes_atomic(&p, b"good").unwrap();
        let e = write_atomic(&p, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("out.bin") && e.contains("disk full"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"good");
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert_eq!(left.len(), 1, "temporary file left behind");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn special_files_and_oversized_files_are_refused() {
        let e = read_limited(Path::new("/dev/zero"), "test input", 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be a regular file"), "{e}");
        let d = tmpdir("limit");
        let p = d.join("big");
        std::fs::write(&p, [0u8; 100]).unwrap();
        let e = read_limited(&p, "x", 99).unwrap_err().to_string();
        assert!(e.contains("more than the limit"), "{e}");
        assert_eq!(read_limited(&p, "x", 100).unwrap().len(), 100);
        // A FIFO: opening it for reading would block until a writer appears (a hang before
        // the check moved in front of the open).
        let fifo = d.join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let e = read_limited(&fifo, "x", 100).unwrap_err().to_string();
        assert!(e.contains("not a FIFO"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn try_alloc_fails_cleanly() {
        let e = try_alloc(0.0f32, usize::MAX / 2, "the output")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot allocate") && e.contains("the output"),
            "{e}"
        );
    }
}
