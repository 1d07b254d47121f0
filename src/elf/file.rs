//! Writing ELF files: embedding in a file on disk, replacing or patching its bytes.

use super::*;

/// Embed into a file on disk, keeping its mode: the new bytes go to a temporary file beside
/// it, which then replaces it (a reader never sees a half-written file).
pub fn embed_file(path: &Path, sha1: &Id, sha256: &Id) -> Result<(), NoteFileError> {
    let io = |e| NoteFileError::Io {
        path: path.to_path_buf(),
        err: e,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let out = embed_any(&bytes, sha1, sha256).map_err(|e| NoteFileError::Elf {
        path: path.to_path_buf(),
        err: e,
    })?;
    replace_file(path, &out).map_err(io)
}

/// Replace a file's contents atomically, keeping its permissions.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let perm = std::fs::metadata(path)?.permissions();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".omnishim")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    std::fs::set_permissions(tmp.path(), perm)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Bring a file the tool has just written from `old` to `new` in place: only the 4 KiB blocks
/// that differ are written, appended bytes first and the changed blocks (the ELF header) last.
/// Nobody reads a step's output before the step ends, and in place the file keeps its inode,
/// mode and owner, and avoids the flush ext4 does when a rename replaces an existing file
/// (measured here: ~0.3 ms median, 2 ms at p90, against ~10 us). A file with other hard links
/// (ccache's hard-link mode), one that changed size since it was read, or one we cannot open
/// for writing is replaced through a temporary file instead.
pub fn update_file(path: &Path, old: &[u8], new: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let meta = std::fs::metadata(path)?;
    if meta.nlink() > 1 || meta.len() != old.len() as u64 {
        return replace_file(path, new);
    }
    let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) else {
        return replace_file(path, new);
    };
    if new.len() > old.len() {
        f.write_all_at(&new[old.len()..], old.len() as u64)?;
    }
    const BLOCK: usize = 4096;
    let common = old.len().min(new.len());
    let mut at = 0;
    while at < common {
        let end = (at + BLOCK).min(common);
        if old[at..end] != new[at..end] {
            f.write_all_at(&new[at..end], at as u64)?;
        }
        at = end;
    }
    if new.len() < old.len() {
        f.set_len(new.len() as u64)?;
    }
    Ok(())
}
