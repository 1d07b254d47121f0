//! What every link needs, through the driver or the linker directly: the linker's own list of
//! what it read (`--dependency-file`), and a placeholder note object so that the output has a
//! `.note.omnibor` to rewrite.

use super::record::{self, Input, RecordError, Recorder};
use crate::archive;
use crate::elf;
use std::path::{Path, PathBuf};

/// The target of the link, from the first relocatable object among its inputs (or the first
/// one inside an archive among them).
pub fn find_target(inputs: &[String], cwd: &Path) -> Option<elf::Target> {
    for i in inputs {
        let p = cwd.join(i);
        let Ok(h) = record::head(&p) else { continue };
        if elf::is_elf(&h) {
            if elf::header_type(&h).is_none() {
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            if let Ok(t) = elf::Target::from_object(&bytes) {
                return Some(t);
            }
        } else if archive::is_archive(&h) {
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            let Ok(members) = archive::members(&bytes, &p) else {
                continue;
            };
            for m in members {
                let data = match m.content {
                    archive::Content::Inline(d) => d,
                    archive::Content::External(f) => match std::fs::read(f) {
                        Ok(d) => std::borrow::Cow::Owned(d),
                        Err(_) => continue,
                    },
                };
                if let Ok(t) = elf::Target::from_object(&data) {
                    return Some(t);
                }
            }
        }
    }
    None
}

/// Write the placeholder object for this target into `tmp`.
pub fn write_placeholder_object(t: &elf::Target, tmp: &Path) -> Result<PathBuf, RecordError> {
    let p = tmp.join("omnibor-note.o");
    std::fs::write(&p, elf::placeholder_object(t)).map_err(record::io_err(&p))?;
    Ok(p)
}

/// The same placeholder as assembler source, for a driver link with no object to copy the
/// target from (the driver assembles it for the right target).
pub fn write_placeholder_asm(tmp: &Path) -> Result<PathBuf, RecordError> {
    let p = tmp.join("omnibor-note.s");
    let src = "\t.section .note.omnibor,\"a\",%note\n\t.balign 4\n\
               \t.long 8, 20, 1\n\t.asciz \"OMNIBOR\"\n\t.zero 20\n\
               \t.long 8, 32, 2\n\t.asciz \"OMNIBOR\"\n\t.zero 32\n\
               \t.section .note.GNU-stack,\"\",%progbits\n";
    std::fs::write(&p, src).map_err(record::io_err(&p))?;
    Ok(p)
}

/// After a successful link: manifest inputs are what the linker read except shared
/// libraries (kept as metadata), our placeholder, and files that no longer exist (the
/// driver's temporary objects of a compile-and-link). `more` are inputs known otherwise
/// (the sources and headers of a compile-and-link).
pub fn record_link(
    rec: &Recorder,
    ld_deps: &Path,
    placeholder: Option<&Path>,
    more: Vec<String>,
    output: &Path,
    args: &[String],
) -> Result<(), RecordError> {
    let text = std::fs::read_to_string(ld_deps).map_err(|e| {
        RecordError::Other(format!(
            "the linker wrote no dependency file ({e}); it needs --dependency-file (binutils 2.35+, gold, lld, mold)"
        ))
    })?;
    let placeholder = placeholder.map(|p| rec.abs(p));
    let mut paths = more;
    let mut dynamic: Vec<Input> = Vec::new();
    for p in crate::depfile::prerequisites(&text) {
        let abs = rec.abs(Path::new(&p));
        if Some(&abs) == placeholder.as_ref() {
            continue;
        }
        let h = match record::head(&abs) {
            Ok(h) => h,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(record::io_err(&abs)(e)),
        };
        if elf::header_type(&h) == Some(3) {
            dynamic.push(rec.input(&abs)?);
        } else {
            paths.push(p);
        }
    }
    let inputs = identify_all(rec, &paths)?;
    let written = rec.output_full(output, &inputs)?;
    if !may_use_lto(args) {
        record_members(rec, &inputs, &written)?;
    }
    rec.dynamic(&written.ids, &dynamic)
}

/// With LTO the linker plugin claims IR objects and their notes never reach the output, so
/// the output's notes cannot tell which archive members were linked.
pub fn may_use_lto(args: &[String]) -> bool {
    args.iter().any(|a| {
        (a.starts_with("-flto") && a != "-flto=none")
            || a.starts_with("-plugin")
            || a.starts_with("--plugin")
            || a.starts_with("-Wl,-plugin")
            || a.starts_with("-Wl,--plugin")
    })
}

/// Which members of each input archive the linker really pulled in, told by the notes it
/// concatenated into the output: a member is linked when its manifest ID is among them.
/// Members without a note (not built under the shims) cannot be told and are kept. Trusted
/// only when every direct input with a manifest shows up among the notes too; otherwise
/// (notes discarded by a linker script, IR objects) nothing is recorded and every member
/// counts, as before.
fn record_members(
    rec: &Recorder,
    inputs: &[Input],
    w: &record::Written,
) -> Result<(), RecordError> {
    use std::collections::{BTreeMap, BTreeSet, HashSet};
    let linked: HashSet<crate::gitoid::Id> = w.before.iter().copied().collect();
    let mut archives = Vec::new();
    for i in inputs {
        if i.manifest.is_empty() {
            continue;
        }
        let is_ar = record::head(&i.path).is_ok_and(|h| archive::is_archive(&h));
        if is_ar {
            archives.push(i);
        } else if i.manifest.sha1.is_some_and(|m| !linked.contains(&m)) {
            return Ok(());
        }
    }
    if archives.is_empty() {
        return Ok(());
    }
    for alg in crate::gitoid::Alg::ALL {
        let mut pulled: BTreeMap<crate::gitoid::Id, BTreeSet<crate::gitoid::Id>> = BTreeMap::new();
        for a in &archives {
            let Some(mid) = a.manifest.get(alg) else {
                continue;
            };
            let m = rec.store.get_manifest(&mid)?;
            let set = pulled.entry(a.ids.get(alg)).or_default();
            for (member, mm) in &m.inputs {
                if mm.is_none_or(|x| linked.contains(&x)) {
                    set.insert(*member);
                }
            }
        }
        rec.store.add_members(&w.manifest.get(alg), &pulled)?;
    }
    Ok(())
}

/// Identify files once each; files that do not exist were not read (-MG headers).
pub fn identify_all(rec: &Recorder, paths: &[String]) -> Result<Vec<Input>, RecordError> {
    // keyed by the path's bytes: hashing a Path walks its components
    let mut seen: std::collections::HashSet<std::ffi::OsString> = Default::default();
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let abs = rec.abs(Path::new(p));
        if !seen.insert(abs.as_os_str().to_owned()) {
            continue;
        }
        match rec.input(&abs) {
            Ok(i) => out.push(i),
            Err(RecordError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
