//! What every link needs, through the driver or the linker directly: the linker's own list of
//! what it read (`--dependency-file`), and a placeholder note object so that the output has a
//! `.note.omnibor` to rewrite.

use super::record::{self, Input, RecordError, Recorder};
use super::scratch::Scratch;
use crate::archive;
use crate::classify::arg;
use crate::elf;
use std::path::{Path, PathBuf};

/// The target of the link, from the first relocatable object among its inputs (or the first
/// one inside an archive among them).
pub fn find_target(inputs: &[String], cwd: &Path) -> Option<elf::Target> {
    for i in inputs {
        let p = cwd.join(arg::path(i));
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

/// Write the placeholder object for this target into a scratch file.
pub fn write_placeholder_object(
    t: &elf::Target,
    scratch: &mut Scratch,
) -> Result<PathBuf, RecordError> {
    let name = "omnibor-note.o";
    scratch
        .file_with(name, &elf::placeholder_object(t))
        .map_err(record::io_err(Path::new(name)))
}

/// The same placeholder as assembler source, for a driver link with no object to copy the
/// target from (the driver assembles it for the right target).
pub fn write_placeholder_asm(scratch: &mut Scratch) -> Result<PathBuf, RecordError> {
    let name = "omnibor-note.s";
    scratch
        .file_with(name, elf::placeholder_asm().as_bytes())
        .map_err(record::io_err(Path::new(name)))
}

/// Where the link's map is, for telling which archive members the linker pulled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkMap {
    /// Our private map file (`-Map=<file>`), or the user's own, read after the link.
    File(PathBuf),
    /// None can be had (the user asked for the map on standard output): every member counts.
    Unavailable,
}

/// After a successful link (`ld_deps`: the text of the linker's dependency file, as
/// `Scratch::read` gives it): manifest inputs are what the linker read except shared
/// libraries (kept as metadata), our placeholder, and files that no longer exist (the
/// driver's temporary objects of a compile-and-link). `more` are inputs known otherwise
/// (the sources and headers of a compile-and-link).
pub fn record_link(
    rec: &Recorder,
    ld_deps: std::io::Result<Vec<u8>>,
    placeholder: Option<&Path>,
    more: Vec<String>,
    output: &Path,
    args: &[String],
    map: &LinkMap,
) -> Result<(), RecordError> {
    let text = ld_deps.map_err(|e| {
        RecordError::Other(format!(
            "the linker wrote no dependency file ({e}); it needs --dependency-file (binutils 2.35+, gold, lld, mold)"
        ))
    })?;
    let placeholder = placeholder.map(|p| rec.abs(p));
    // what the compile part of the step read, then the linker's inputs, each once
    let mut inputs = identify_all(rec, &more)?;
    let mut seen: std::collections::HashSet<std::ffi::OsString> = inputs
        .iter()
        .map(|i| i.path.as_os_str().to_owned())
        .collect();
    let mut dynamic: Vec<Input> = Vec::new();
    for p in crate::depfile::prerequisites(&text) {
        let abs = rec.abs(&arg::path(&p));
        if Some(&abs) == placeholder.as_ref() || !seen.insert(abs.as_os_str().to_owned()) {
            continue;
        }
        // shared libraries are told apart by the hash cache, without opening each input
        match rec.input_and_shared(&abs) {
            Ok((i, true)) => dynamic.push(i),
            Ok((i, false)) => inputs.push(i),
            // the driver's own temporary object, removed once it linked
            Err(RecordError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    super::phase::mark("identify");
    let written = rec.output_full(output, &inputs)?;
    super::phase::mark("output");
    if let (LinkMap::File(f), false) = (map, may_use_lto(args)) {
        record_members(rec, &inputs, &written, f)?;
    }
    let r = rec.dynamic(&written.ids, &dynamic);
    super::phase::mark("members_dynamic");
    r
}

/// With LTO the linker's map names the objects it compiled itself (lld and mold write
/// `<internal>` or `ld-temp.o`), not the archive members they came from.
pub fn may_use_lto(args: &[String]) -> bool {
    args.iter().any(|a| {
        (a.starts_with("-flto") && a != "-flto=none")
            || a.starts_with("-plugin")
            || a.starts_with("--plugin")
            || a.starts_with("-Wl,-plugin")
            || a.starts_with("-Wl,--plugin")
    })
}

/// What a link map says was linked: archive members as `ARCHIVE(MEMBER)` (ld.bfd and gold
/// for regular archives, lld and mold for all, `:(section)` after it), and, when asked
/// (`files`), plain file paths (ld.bfd names a thin archive's members by their own path).
#[derive(Debug, Default)]
pub struct MapRefs {
    pub members: std::collections::HashSet<(PathBuf, String)>,
    pub files: std::collections::HashSet<PathBuf>,
}

/// Read the references of a map. Paths are made absolute against the link's directory, once
/// per distinct spelling (a map names the same archive on thousands of lines).
pub fn map_refs(text: &str, files: bool, abs: &dyn Fn(&Path) -> PathBuf) -> MapRefs {
    let mut r = MapRefs::default();
    let mut seen: std::collections::HashMap<&str, PathBuf> = Default::default();
    fn absolute<'t>(
        seen: &mut std::collections::HashMap<&'t str, PathBuf>,
        p: &'t str,
        abs: &dyn Fn(&Path) -> PathBuf,
    ) -> PathBuf {
        seen.entry(p).or_insert_with(|| abs(&arg::path(p))).clone()
    }
    for tok in text.split_ascii_whitespace() {
        if !tok.contains('(') {
            if files && !tok.starts_with("0x") && (tok.contains('/') || tok.ends_with(".o")) {
                let f = absolute(&mut seen, tok, abs);
                r.files.insert(f);
            }
            continue;
        }
        // lld and mold: `lib.a(m.o):(.text)`
        let tok = match tok.find("):(") {
            Some(i) => &tok[..i + 1],
            None => tok,
        };
        if let Some(stripped) = tok.strip_suffix(')') {
            if let Some(open) = stripped.find('(') {
                let (ar, member) = (&stripped[..open], &stripped[open + 1..]);
                if !ar.is_empty() && !member.is_empty() && !ar.starts_with("0x") {
                    let ar = absolute(&mut seen, ar, abs);
                    r.members.insert((ar, member.to_string()));
                }
            }
        }
    }
    r
}

/// Which members of each input archive the linker really pulled in, told by its map: a
/// member is linked when the map names it. The set is kept per link manifest, so `resolve`,
/// `check`, `sbom` and `audit` show only those members below the archive.
fn record_members(
    rec: &Recorder,
    inputs: &[Input],
    w: &record::Written,
    map: &Path,
) -> Result<(), RecordError> {
    use std::collections::{BTreeMap, BTreeSet};
    // (input, is it thin): one look at each input's first bytes
    let archives: Vec<(&Input, bool)> = inputs
        .iter()
        .filter(|i| !i.manifest.is_empty())
        .filter_map(|i| {
            let h = record::head(&i.path).ok()?;
            archive::is_archive(&h).then(|| (i, h.starts_with(b"!<thin>")))
        })
        .collect();
    if archives.is_empty() {
        return Ok(());
    }
    let map = rec.abs(map);
    let text = std::fs::read(&map).map_err(record::io_err(&map))?;
    let thin = archives.iter().any(|&(_, thin)| thin);
    // names as bytes, like the archive's member names (see `classify::arg`)
    let refs = map_refs(&arg::from_bytes(&text), thin, &|p| rec.abs(p));
    let mut pulled: [BTreeMap<crate::gitoid::Id, BTreeSet<crate::gitoid::Id>>; 2] =
        Default::default();
    for (a, _) in archives {
        let bytes = std::fs::read(&a.path).map_err(record::io_err(&a.path))?;
        let members = archive::members(&bytes, &a.path)
            .map_err(|e| RecordError::Other(format!("{}: {e}", a.path.display())))?;
        let mut linked = Vec::new();
        for m in members {
            let named = refs.members.contains(&(a.path.clone(), m.name.clone()));
            let ids = match m.content {
                archive::Content::Inline(d) if named => crate::gitoid::ids_of_bytes(&d),
                archive::Content::External(f) => {
                    let f = rec.abs(&f);
                    if !named && !refs.files.contains(&f) {
                        continue;
                    }
                    rec.input(&f)?.ids
                }
                _ => continue,
            };
            linked.push(ids);
        }
        let s1 = pulled[0].entry(a.ids.sha1).or_default();
        s1.extend(linked.iter().map(|i| i.sha1));
        let s256 = pulled[1].entry(a.ids.sha256).or_default();
        s256.extend(linked.iter().map(|i| i.sha256));
    }
    for (k, alg) in crate::gitoid::Alg::ALL.iter().enumerate() {
        rec.store.add_members(&w.manifest.get(*alg), &pulled[k])?;
    }
    Ok(())
}

/// Identify files once each; files that do not exist were not read (-MG headers).
pub fn identify_all(rec: &Recorder, paths: &[String]) -> Result<Vec<Input>, RecordError> {
    let abs: Vec<PathBuf> = paths.iter().map(|p| rec.abs(&arg::path(p))).collect();
    // keyed by the path's bytes (hashing a Path walks its components), borrowed: each path
    // then goes to its input as it is
    let keep: Vec<bool> = {
        let mut seen: std::collections::HashSet<&std::ffi::OsStr> = Default::default();
        abs.iter().map(|p| seen.insert(p.as_os_str())).collect()
    };
    let mut out = Vec::with_capacity(paths.len());
    for (p, keep) in abs.into_iter().zip(keep) {
        if !keep {
            continue;
        }
        match rec.input_at(p) {
            Ok(i) => out.push(i),
            Err(RecordError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
