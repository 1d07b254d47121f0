//! An export as one tar archive: written deterministically (entries sorted by path, mtime 0,
//! uid and gid 0, modes 0444 for manifests and 0644 for metadata, no directory entries), and
//! read back into a private store that `--store FILE.tar` walks.
//!
//! Reading trusts nothing in the archive: no name from it is ever used as a path. Each
//! entry's name must be the canonical store path of an export entry (which rules out `..`,
//! absolute names, anything outside the store layout), it must be a regular file of bounded
//! size, named once, and its bytes must pass `Entry::validate` (a manifest hashes to its
//! name). The entry is then written through `install`, which places it by its kind and ID
//! with the store's own no-symlink, create-exclusive writes, into a fresh 0700 temporary
//! directory that is removed when the store is dropped. (Reading into memory would spare the
//! disk, but the store reads everything through directory descriptors; one more backend for
//! it would be far more code than this.)

use super::{install, Entry, ExportError};
use crate::store::Store;
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

/// No export entry comes near this (a manifest of a link with 100 000 inputs is ~10 MB).
const MAX_ENTRY: u64 = 256 << 20;

/// Write entries as a tar archive at `out`, replacing it atomically.
pub fn write(out: &Path, entries: &[Entry]) -> Result<(), ExportError> {
    let io = |e: std::io::Error| ExportError::File(out.to_path_buf(), e.to_string());
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    use std::os::unix::fs::PermissionsExt;
    // created 0644 under the umask, like a directory export's files (not tempfile's 0600)
    let tmp = tempfile::Builder::new()
        .prefix(".omnishim-export")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(io)?;
    let mut sorted: Vec<(String, &Entry)> = entries
        .iter()
        .map(|e| (e.rel_path().to_string_lossy().into_owned(), e))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut b = tar::Builder::new(std::io::BufWriter::new(tmp.as_file()));
    for (name, e) in sorted {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(e.bytes.len() as u64);
        h.set_mode(match e.kind {
            super::Kind::Manifest(_) => 0o444,
            _ => 0o644,
        });
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, &name, e.bytes.as_slice())
            .map_err(io)?;
    }
    b.into_inner()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(out).map_err(|e| io(e.error))?;
    Ok(())
}

/// A store holding what the tar archive at `path` holds, in a private temporary directory
/// that lives as long as the store (and its clones). One line naming the archive and the
/// entry for anything that is not a file of an export.
pub fn open(path: &Path) -> Result<Store, ExportError> {
    let bad = |name: &str, why: &str| {
        ExportError::File(
            path.to_path_buf(),
            format!("entry {:?}: {why}", name.escape_debug().to_string()),
        )
    };
    let io = |e: std::io::Error| ExportError::File(path.to_path_buf(), e.to_string());
    let f = std::fs::File::open(path).map_err(io)?;
    let dir = tempfile::Builder::new()
        .prefix("omnishim-tar-")
        .tempdir()
        .map_err(|e| ExportError::Store(format!("a temporary directory: {e}")))?;
    let store = Store::at(dir.path()).keeping(dir);
    let mut ar = tar::Archive::new(std::io::BufReader::new(f));
    let mut seen = HashSet::new();
    let none = HashSet::new();
    let mut count = 0usize;
    for e in ar.entries().map_err(io)? {
        let e = e.map_err(|e| io(std::io::Error::other(format!("not a tar archive: {e}"))))?;
        let raw = e.path_bytes();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let rel = name.strip_prefix("./").unwrap_or(&name);
        let ty = e.header().entry_type();
        if ty.is_dir() {
            // `tar cf x.tar -C export .` lists directories: nothing to do for them, but
            // their names must be as harmless as a file's
            let d = rel.trim_end_matches('/');
            if !(d.is_empty() || d == "." || is_plain_relative(d)) {
                return Err(bad(&name, "not a path inside the export"));
            }
            continue;
        }
        if !(ty.is_file()) {
            let what = match ty {
                tar::EntryType::Symlink => "a symlink",
                tar::EntryType::Link => "a hard link",
                tar::EntryType::Char | tar::EntryType::Block => "a device",
                tar::EntryType::Fifo => "a FIFO",
                _ => "not a regular file",
            };
            return Err(bad(&name, what));
        }
        let Some(kind) = Entry::kind_of_path(rel) else {
            return Err(bad(&name, "not a file of an omnishim export"));
        };
        if !seen.insert(kind) {
            return Err(bad(&name, "named twice"));
        }
        let size = e.size();
        if size > MAX_ENTRY {
            return Err(bad(&name, &format!("{size} bytes: too large")));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        e.take(size)
            .read_to_end(&mut bytes)
            .map_err(|err| bad(&name, &err.to_string()))?;
        if bytes.len() as u64 != size {
            return Err(bad(&name, "truncated"));
        }
        let entry = Entry::new(kind, bytes);
        entry
            .validate()
            .map_err(|err| bad(&name, &err.to_string()))?;
        install(&store, std::slice::from_ref(&entry), &none)?;
        count += 1;
    }
    if count == 0 {
        return Err(ExportError::File(
            path.to_path_buf(),
            "no export entries: not an omnishim export".into(),
        ));
    }
    Ok(store)
}

/// A relative path without empty, `.` or `..` components.
fn is_plain_relative(p: &str) -> bool {
    !p.starts_with('/') && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}
