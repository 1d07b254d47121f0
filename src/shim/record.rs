//! Turning what a step read and wrote into manifests, notes and index entries.

use crate::elf::{self, NoteIds};
use crate::gitoid::{self, Alg, Ids};
use crate::store::{Cached, HashCache, Store, StoreError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Note(#[from] elf::NoteFileError),
    #[error("{}: not a regular file", .0.display())]
    NotRegular(PathBuf),
    #[error("{0}")]
    Other(String),
}

pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One input of a step: where it was, its IDs, and its own manifests when it has any.
#[derive(Clone, Debug)]
pub struct Input {
    pub path: PathBuf,
    pub ids: Ids,
    pub manifest: NoteIds,
}

/// A shared library an output links against (metadata, not a manifest input).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Dynamic {
    pub path: String,
    pub sha1: String,
    pub sha256: String,
    pub manifest_sha1: Option<String>,
    pub manifest_sha256: Option<String>,
}

/// What recording an output wrote.
pub struct Written {
    pub ids: Ids,
    pub manifest: Ids,
}

pub struct Recorder {
    pub store: Store,
    cache: HashCache,
    pub cwd: PathBuf,
    /// The `targets/sha1/<xx>` directories there are, read once: most inputs (every header)
    /// have no target, and a missing directory answers that without a lookup per input.
    /// Steps that made targets this one reads ran before it started.
    target_dirs: std::cell::OnceCell<std::collections::HashSet<u8>>,
}

/// `cwd/p`, with `.` and `..` folded lexically (symlinks are left as the tool saw them).
pub fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    if already_folded(p) {
        return p.to_path_buf(); // most inputs of a link, every path a second time
    }
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    // over the bytes: `Path::components` cost a link step as much as its path index
    // (gcc's own paths, `.../12/../../../x86_64-linux-gnu/crt1.o`, all need folding)
    let bytes = joined.as_os_str().as_bytes();
    let rooted = bytes.first() == Some(&b'/');
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    for c in bytes.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                let keep = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(keep);
            }
            name => {
                if rooted || !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name);
            }
        }
    }
    if rooted && out.is_empty() {
        out.push(b'/');
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// An absolute path that folding leaves as it is: no `.`, `..` or empty component, no
/// trailing slash.
fn already_folded(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let b = p.as_os_str().as_bytes();
    b.len() > 1
        && b[0] == b'/'
        && b[1..]
            .split(|&c| c == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// A shim reached through the directory `omnishim run` makes inside a store
/// (`<root>/metadata/omnishim/shims/<name>`) belongs to that store, also when a build system
/// kept its path and calls it later outside `omnishim run` (`make check` after configure).
fn store_of_shim_dir() -> Option<std::ffi::OsString> {
    let argv0 = PathBuf::from(crate::argv::arg0()?);
    let dir = argv0.parent()?;
    if dir.file_name()? != "shims" {
        return None;
    }
    let meta = dir.parent()?;
    if meta.file_name()? != crate::store::TOOL || meta.parent()?.file_name()? != "metadata" {
        return None;
    }
    Some(meta.parent()?.parent()?.as_os_str().to_owned())
}

pub(crate) use crate::store::read_head as head;

/// The store a step records into: `OMNIBOR_DIR`, the store of the shim directory it was
/// reached through, else the nearest `.bom`.
/// One per process (a shim's working directory and environment do not change), so that the
/// journal, the recorder and the step log share the store's open directory handles.
pub fn store_for_step() -> Store {
    static STORE: std::sync::OnceLock<Store> = std::sync::OnceLock::new();
    STORE
        .get_or_init(|| {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            store_in(&cwd)
        })
        .clone()
}

fn store_in(cwd: &Path) -> Store {
    let env = std::env::var_os("OMNIBOR_DIR").filter(|v| !v.is_empty());
    match env.or_else(store_of_shim_dir) {
        Some(d) => Store::at(cwd.join(d)),
        None => Store::locate(None, cwd),
    }
}

/// An ELF input without a note that a killed step left (see `inflight`): say which, and why
/// this output's graph lacks what it was made from. `mtime`: the one the hash cache saw, else
/// the file is looked at.
fn warn_if_killed(path: &Path, mtime: Option<i64>) {
    use std::os::unix::fs::MetadataExt;
    let mtime = mtime.or_else(|| std::fs::metadata(path).ok().map(|m| m.mtime()));
    if mtime == Some(super::inflight::KILLED_MTIME) {
        eprintln!(
            "omnishim: warning: {}: not recorded: the step that made it was killed before recording it; the next build redoes it",
            path.display()
        );
    }
}

impl Recorder {
    pub fn new() -> Result<Recorder, RecordError> {
        let cwd = std::env::current_dir().map_err(io_err(Path::new(".")))?;
        let store = store_for_step();
        let cache = HashCache::for_step(&store, &cwd);
        Ok(Recorder {
            store,
            cache,
            cwd,
            target_dirs: Default::default(),
        })
    }

    /// What recording needs whatever the tool does, done while it runs (`run::run_while`):
    /// the hash functions' CPU feature checks (each a `cpuid` instruction, a trap to the
    /// hypervisor in a VM: about 6 us each here, four of them), the store's directories and
    /// the hash caches' directories opened. Nothing is written; only the user's cache
    /// directory is made when missing, as the first lookup would make it.
    pub fn warm(&self) {
        gitoid::ids_of_bytes(b"");
        self.store.warm();
        self.cache.warm();
    }

    /// The recorder made before the tool ran, else a new one (why it could not be made is
    /// then the step's recording failure).
    pub fn or_new(early: Option<Recorder>) -> Result<Recorder, RecordError> {
        match early {
            Some(r) => Ok(r),
            None => Recorder::new(),
        }
    }

    pub fn abs(&self, p: &Path) -> PathBuf {
        absolute(&self.cwd, p)
    }

    /// At the end of a recorded step (see `HashCache::settle`).
    pub fn settle(&self) {
        self.cache.settle();
    }

    /// Identify an input: IDs through the hash cache; manifests from its note when it is an
    /// ELF file, else from the store's target index (archives, assembly, bitcode).
    pub fn input(&self, p: &Path) -> Result<Input, RecordError> {
        Ok(self.input_cached(p)?.0)
    }

    /// `input`, and whether the file is a shared library (an ELF file of type ET_DYN): the
    /// hash cache says so, else (an entry an older version wrote) the file's header, which
    /// the cache is then told.
    pub fn input_and_shared(&self, p: &Path) -> Result<(Input, bool), RecordError> {
        let (input, cached) = self.input_cached(p)?;
        let shared = match cached.shared {
            Some(s) => s,
            None => {
                let h = head(&input.path).map_err(io_err(&input.path))?;
                let s = elf::is_shared_header(&h);
                self.cache.note_type(&input.path, &cached, s);
                s
            }
        };
        Ok((input, shared))
    }

    /// `input` of a path already absolute and folded (see `abs`).
    pub fn input_at(&self, path: PathBuf) -> Result<Input, RecordError> {
        Ok(self.input_cached_at(path)?.0)
    }

    fn input_cached(&self, p: &Path) -> Result<(Input, Cached), RecordError> {
        self.input_cached_at(self.abs(p))
    }

    fn input_cached_at(&self, path: PathBuf) -> Result<(Input, Cached), RecordError> {
        let cached = self.cache.lookup(&path).map_err(io_err(&path))?;
        let ids = cached.ids;
        let mut manifest = NoteIds::default();
        if cached.elf && !cached.no_note {
            // A note we cannot read is an input without a manifest, not a failed step.
            match elf::read_note_file(&path) {
                Ok(n) if n.is_empty() => self.cache.note_absent(&path, &cached),
                Ok(n) => manifest = n,
                Err(_) => {}
            }
        }
        if manifest.is_empty() {
            manifest = self.target(&ids);
        }
        if cached.elf && manifest.is_empty() {
            warn_if_killed(&path, cached.mtime);
        }
        Ok((
            Input {
                path,
                ids,
                manifest,
            },
            cached,
        ))
    }

    /// Manifests from the target index; both are always recorded together, so a file with
    /// no sha1 entry (every header) costs one lookup.
    pub fn target(&self, ids: &Ids) -> NoteIds {
        let dirs = self
            .target_dirs
            .get_or_init(|| self.store.target_prefixes(gitoid::Alg::Sha1));
        if !ids
            .sha1
            .as_bytes()
            .first()
            .is_some_and(|b| dirs.contains(b))
        {
            return NoteIds::default();
        }
        match self.store.get_target(&ids.sha1) {
            None => NoteIds::default(),
            sha1 => NoteIds {
                sha1,
                sha256: self.store.get_target(&ids.sha256),
            },
        }
    }

    /// Store both manifests of these inputs; returns (sha1, sha256) manifest IDs.
    pub fn manifests(&self, inputs: &[Input]) -> Result<Ids, RecordError> {
        let mut out = Vec::with_capacity(2);
        for alg in Alg::ALL {
            let mut pairs: Vec<_> = inputs
                .iter()
                .map(|i| (i.ids.get(alg), i.manifest.get(alg)))
                .collect();
            let bytes = crate::manifest::canonical_bytes(alg, &mut pairs);
            out.push(self.store.put_object(alg, &bytes)?);
        }
        Ok(Ids {
            sha1: out[0],
            sha256: out[1],
        })
    }

    /// Record one output: manifests, then the note (or the target index for files that
    /// cannot carry one), then the path index for the output and its inputs.
    pub fn output(&self, out: &Path, inputs: &[Input]) -> Result<Ids, RecordError> {
        Ok(self.output_full(out, inputs)?.ids)
    }

    /// `output`, also returning the output's manifests.
    pub fn output_full(&self, out: &Path, inputs: &[Input]) -> Result<Written, RecordError> {
        let path = self.abs(out);
        // /dev/null and other devices, FIFOs, sockets: no artifact to identify, nothing to
        // store, and no note to write into them (the shims pass such steps through first)
        if !std::fs::metadata(&path).map_err(io_err(&path))?.is_file() {
            return Err(RecordError::NotRegular(path));
        }
        let m = self.manifests(inputs)?;
        let bytes = crate::store::read_path(&path).map_err(io_err(&path))?;
        let embedded = match elf::elf_type(&bytes) {
            Some(_) => match elf::embed_any(&bytes, &m.sha1, &m.sha256) {
                Ok(new) => Some(new),
                // a linker script discarded every note (the kernel's realmode.lds): the
                // output is known by its ID in the target index, like a file with no notes
                Err(elf::ElfError::NoSection) => None,
                Err(err) => {
                    return Err(elf::NoteFileError::Elf {
                        path: path.clone(),
                        err,
                    }
                    .into())
                }
            },
            None => None,
        };
        let ids = match embedded {
            Some(new) => {
                elf::update_file(&path, &bytes, &new).map_err(io_err(&path))?;
                let ids = gitoid::ids_of_bytes(&new);
                self.cache.remember(
                    &path,
                    &ids,
                    new.len() as u64,
                    Some(elf::is_shared_header(&new)),
                );
                ids
            }
            None => {
                let ids = gitoid::ids_of_bytes(&bytes);
                self.store.set_target(&ids.sha1, &m.sha1)?;
                self.store.set_target(&ids.sha256, &m.sha256)?;
                let shared = elf::is_elf(&bytes).then(|| elf::is_shared_header(&bytes));
                self.cache.remember(&path, &ids, bytes.len() as u64, shared);
                ids
            }
        };
        let mut paths: Vec<(&Ids, &Path)> = vec![(&ids, path.as_path())];
        paths.extend(inputs.iter().map(|i| (&i.ids, i.path.as_path())));
        self.store.add_paths(&paths)?;
        Ok(Written { ids, manifest: m })
    }

    /// Shared libraries an output links against, kept beside the output's ID.
    pub fn dynamic(&self, out: &Ids, libs: &[Input]) -> Result<(), RecordError> {
        if libs.is_empty() {
            return Ok(());
        }
        let rows: Vec<Dynamic> = libs
            .iter()
            .map(|l| Dynamic {
                path: l.path.to_string_lossy().into_owned(),
                sha1: l.ids.sha1.hex(),
                sha256: l.ids.sha256.hex(),
                manifest_sha1: l.manifest.sha1.map(|i| i.hex()),
                manifest_sha256: l.manifest.sha256.map(|i| i.hex()),
            })
            .collect();
        let json =
            serde_json::to_vec_pretty(&rows).map_err(|e| RecordError::Other(e.to_string()))?;
        // a rebuild of the same output leaves an equal record alone
        self.store
            .write_file(&self.store.dynamic_path(&out.sha1), &json)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_folds_dots_and_slashes_and_keeps_folded_paths() {
        let cwd = Path::new("/work/src");
        for (p, want) in [
            ("/usr/include/stdio.h", "/usr/include/stdio.h"),
            ("/usr/./include//stdio.h", "/usr/include/stdio.h"),
            ("/usr/lib/../include/stdio.h", "/usr/include/stdio.h"),
            ("/usr/include/", "/usr/include"),
            ("/usr/include/.", "/usr/include"),
            ("/usr/include/..", "/usr"),
            ("/", "/"),
            ("a.h", "/work/src/a.h"),
            ("../../x/./y.h", "/x/y.h"),
            ("./lib/.hidden", "/work/src/lib/.hidden"),
            ("/a/..b/c.", "/a/..b/c."),
            ("/..", "/"),
            ("/../a/../../b", "/b"),
            ("a/../../b", "/work/b"),
            (
                "/usr/lib/gcc/x86_64-linux-gnu/12/../../../x86_64-linux-gnu/crt1.o",
                "/usr/lib/x86_64-linux-gnu/crt1.o",
            ),
        ] {
            assert_eq!(absolute(cwd, Path::new(p)), Path::new(want), "{p}");
        }
        // a working directory that could not be had ("."): relative, as `Path` folds it
        assert_eq!(
            absolute(Path::new("."), Path::new("a/./b/../c")),
            Path::new("a/c")
        );
        assert_eq!(absolute(Path::new("."), Path::new("..")), Path::new(""));
        assert!(already_folded(Path::new("/a/..b/c.")));
        assert!(!already_folded(Path::new("/a/../b")));
        assert!(!already_folded(Path::new("/a//b")));
        assert!(!already_folded(Path::new("a/b")));
    }
}
