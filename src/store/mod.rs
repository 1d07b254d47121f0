//! The store: content-addressed manifests plus our metadata indexes.
//!
//! Layout (FORMAT.md section 3):
//! - `objects/gitoid_blob_<alg>/<xx>/<rest>`: manifest bytes, named by their gitoid (0444).
//! - `metadata/omnishim/targets/<alg>/<xx>/<rest>`: artifact ID -> manifest ID (one file per
//!   artifact, replaced atomically; for files that cannot carry a note).
//! - `metadata/omnishim/paths/<x>`: append-only lines `<sha1> <sha256> <path>`, one append
//!   per step into the shard of its output's sha1, under an exclusive lock so concurrent steps
//!   never interleave.
//! - `metadata/omnishim/hashcache/<key>`: file identity -> both IDs (see `HashCache`).
//! - `metadata/omnishim/members/<xx>/<rest>`: for a link's manifest ID, the members of each
//!   input archive the linker pulled in (lines `<archive> <member>...`, sorted).
//! - `metadata/omnishim/dynamic/<xx>/<rest>`: the shared libraries an output links against.
//!
//! Every whole-file write goes to a temporary file in the destination directory and is renamed
//! into place, so readers see either nothing or the complete file, whatever runs at once.
//! Nothing below the root is reached through a symlink (see `safe`): a store holding one where
//! it keeps a file or a directory is refused, loudly, and never written through.

mod hashcache;
mod safe;
mod snapshot;
pub(crate) use safe::{
    adjust_shared, euid, fstat, list, open_path, read_head, read_path, read_up_to,
};

#[doc(hidden)]
pub use hashcache::find_entry as hashcache_entry;
#[doc(hidden)]
pub use hashcache::find_entry_indexed as hashcache_entry_indexed;
pub use hashcache::BUILD_TREE_ENV;
pub use hashcache::{Cached, HashCache};
pub use safe::{keep_mappings, mappings_kept};
use safe::{Dir, Kind, FILE_MODE, OBJECT_MODE};

use crate::gitoid::{id_of_bytes, Alg, Id, Ids};
use crate::manifest::Manifest;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const TOOL: &str = "omnishim";
/// The name of a store found by walking up from a step's directory.
pub const STORE_DIR: &str = ".bom";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Manifest {
        path: PathBuf,
        source: crate::manifest::ManifestError,
    },
    #[error("no manifest {0} in the store")]
    Missing(Id),
    /// A symlink, a foreign file type or a shared file where the store keeps its own files.
    #[error("{path}: refused: {why}")]
    Refused { path: PathBuf, why: String },
    #[error("{0}: not inside the store {1}")]
    Outside(PathBuf, PathBuf),
}

impl StoreError {
    /// The store holds something it will not follow or write through.
    pub fn is_refusal(&self) -> bool {
        matches!(self, StoreError::Refused { .. })
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    /// Directory handles opened once per process and reused (see `dir`).
    handles: std::sync::Arc<std::sync::Mutex<Handles>>,
    /// A temporary directory the store lives in (a tar export read back), removed when the
    /// last clone of the store is dropped.
    _keep: Option<std::sync::Arc<tempfile::TempDir>>,
}

/// The store's root and its fixed directories (`metadata/omnishim/paths`,
/// `objects/gitoid_blob_sha1`...), each opened the first time it is needed. A step touches
/// them a dozen times; walking from the root every time cost three to five `openat` and as
/// many `close` calls each. The two-hex-digit fan-out directories are not kept, so that a
/// process reading many objects holds a bounded number of descriptors. A handle stays on the
/// directory it was opened on (nothing is ever looked up again through a path).
#[derive(Debug, Default)]
struct Handles {
    root: Option<std::sync::Arc<Dir>>,
    dirs: std::collections::HashMap<Vec<u8>, std::sync::Arc<Dir>>,
}

/// A directory worth keeping open: not a two-hex-digit fan-out directory.
fn keep_open(name: &OsStr) -> bool {
    let b = name.as_encoded_bytes();
    !(b.len() == 2 && b.iter().all(u8::is_ascii_hexdigit))
}

/// The two-hex-digit directory and the file name of an ID.
fn split_hex(id: &Id) -> (String, String) {
    let hex = id.hex();
    (hex[..2].to_string(), hex[2..].to_string())
}

impl Store {
    pub fn at(root: impl Into<PathBuf>) -> Store {
        Store {
            root: root.into(),
            handles: Default::default(),
            _keep: None,
        }
    }

    /// The same store, keeping `dir` (where it lives) until it is dropped.
    pub fn keeping(mut self, dir: tempfile::TempDir) -> Store {
        self._keep = Some(std::sync::Arc::new(dir));
        self
    }

    /// `$OMNIBOR_DIR`, else the nearest `.bom` upwards from `cwd`, else `cwd/.bom`.
    pub fn locate(env_dir: Option<&std::ffi::OsStr>, cwd: &Path) -> Store {
        if let Some(d) = env_dir.filter(|d| !d.is_empty()) {
            return Store::at(cwd.join(d));
        }
        for dir in cwd.ancestors() {
            let cand = dir.join(STORE_DIR);
            if cand.is_dir() {
                return Store::at(cand);
            }
        }
        Store::at(cwd.join(STORE_DIR))
    }

    /// The store the current process should use.
    pub fn from_env() -> io::Result<Store> {
        let cwd = std::env::current_dir()?;
        Ok(Store::locate(
            std::env::var_os("OMNIBOR_DIR").as_deref(),
            &cwd,
        ))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn object_path(&self, id: &Id) -> PathBuf {
        let (xx, rest) = split_hex(id);
        self.root
            .join("objects")
            .join(format!("gitoid_blob_{}", id.alg()))
            .join(xx)
            .join(rest)
    }

    pub(crate) fn meta(&self) -> PathBuf {
        self.root.join("metadata").join(TOOL)
    }

    /// A directory below the root, reached without following symlinks; created when asked.
    /// None when it (or the root) does not exist and `create` is false.
    fn dir<S: AsRef<OsStr>>(
        &self,
        names: &[S],
        create: bool,
    ) -> Result<Option<std::sync::Arc<Dir>>, StoreError> {
        use std::sync::Arc;
        let mut h = self
            .handles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let root = match &h.root {
            Some(r) => r.clone(),
            None => {
                let Some(r) = Dir::root(&self.root, create)? else {
                    return Ok(None);
                };
                let r = Arc::new(r);
                h.root = Some(r.clone());
                r
            }
        };
        let names: Vec<&OsStr> = names.iter().map(|n| n.as_ref()).collect();
        // the key of each prefix: the names joined by '/' (a name never holds one), so that
        // every prefix's key is a slice of the whole one
        let mut key: Vec<u8> = Vec::with_capacity(64);
        let mut ends = Vec::with_capacity(names.len());
        for n in &names {
            key.extend_from_slice(n.as_encoded_bytes());
            ends.push(key.len());
            key.push(b'/');
        }
        // the deepest directory already open on the way
        let mut at = names.len();
        let mut d = loop {
            if at == 0 {
                break root;
            }
            if let Some(d) = h.dirs.get(&key[..ends[at - 1]]) {
                break d.clone();
            }
            at -= 1;
        };
        let mut kept = true;
        for (i, n) in names.iter().enumerate().skip(at) {
            let Some(next) = d.sub(n, create)? else {
                return Ok(None);
            };
            d = Arc::new(next);
            kept = kept && keep_open(n);
            if kept {
                h.dirs.insert(key[..ends[i]].to_vec(), d.clone());
            }
        }
        Ok(Some(d))
    }

    /// Open the directories a step writes into, when they are there (see
    /// `Recorder::warm`): the object directories, the step log's and the path index's.
    pub fn warm(&self) {
        for names in [
            &["objects", "gitoid_blob_sha1"][..],
            &["objects", "gitoid_blob_sha256"],
            &["metadata", TOOL, "paths"],
        ] {
            let _ = self.dir(names, false);
        }
    }

    /// A descriptor of its own on a directory below the root, reached like `dir` (never
    /// through a symlink); created when asked. None when it does not exist and `create` is
    /// false.
    pub(crate) fn dir_fd(
        &self,
        names: &[&str],
        create: bool,
    ) -> Result<Option<std::os::fd::OwnedFd>, StoreError> {
        match self.dir(names, create)? {
            Some(d) => d.dup_fd().map(Some),
            None => Ok(None),
        }
    }

    /// The directory and the name of a path inside the store.
    fn locate_inside<'a>(&self, path: &'a Path) -> Result<(Vec<&'a OsStr>, &'a OsStr), StoreError> {
        let mut names = safe::names_below(&self.root, path)
            .ok_or_else(|| StoreError::Outside(path.to_path_buf(), self.root.clone()))?;
        let name = names
            .pop()
            .ok_or_else(|| StoreError::Outside(path.to_path_buf(), self.root.clone()))?;
        Ok((names, name))
    }

    /// Read a file inside the store (a path under its root), never through a symlink.
    /// None when it is not there.
    pub fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        let (dirs, name) = self.locate_inside(path)?;
        match self.dir(&dirs, false)? {
            Some(d) => d.read(name),
            None => Ok(None),
        }
    }

    /// Whether a regular file is there (reached without following symlinks).
    pub fn is_file(&self, path: &Path) -> bool {
        let Ok((dirs, name)) = self.locate_inside(path) else {
            return false;
        };
        matches!(
            self.dir(&dirs, false).map(|d| d.map(|d| d.kind(name))),
            Ok(Some(Ok(Some(Kind::File))))
        )
    }

    /// Write a whole file inside the store (0644 under the umask), atomically, never through
    /// a symlink; an equal file already there is left alone (a rename over an existing file
    /// costs a flush on ext4).
    pub fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let (dirs, name) = self.locate_inside(path)?;
        let Some(d) = self.dir(&dirs, true)? else {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: io::ErrorKind::NotFound.into(),
            });
        };
        if d.read(name)?.as_deref() == Some(bytes) {
            return Ok(());
        }
        d.write_replace(name, bytes, FILE_MODE)
    }

    /// Make a directory inside the store (and those above it), never through a symlink.
    pub fn make_dir(&self, path: &Path) -> Result<(), StoreError> {
        let names = safe::names_below(&self.root, path)
            .ok_or_else(|| StoreError::Outside(path.to_path_buf(), self.root.clone()))?;
        self.dir(&names, true).map(|_| ())
    }

    /// Write bytes as a content-addressed object (0444 under the umask); returns their ID.
    /// Existing objects are left alone (same name, same bytes).
    pub fn put_object(&self, alg: Alg, bytes: &[u8]) -> Result<Id, StoreError> {
        let id = id_of_bytes(alg, bytes);
        let (xx, rest) = split_hex(&id);
        let blob = format!("gitoid_blob_{alg}");
        let Some(d) = self.dir(&["objects", blob.as_str(), xx.as_str()], true)? else {
            return Err(StoreError::Missing(id));
        };
        match d.kind(OsStr::new(&rest))? {
            Some(Kind::File) => {}
            None => d.write_replace(OsStr::new(&rest), bytes, OBJECT_MODE)?,
            Some(k) => {
                return Err(StoreError::Refused {
                    path: d.path().join(&rest),
                    why: format!("{} where the store keeps a file", k.describe()),
                })
            }
        }
        Ok(id)
    }

    pub fn put_manifest(&self, m: &Manifest) -> Result<Id, StoreError> {
        self.put_object(m.alg, &m.to_bytes())
    }

    /// An object's bytes; None when it is not there. An object that is a symlink or not a
    /// regular file is an error (never followed).
    pub fn get_object(&self, id: &Id) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_file(&self.object_path(id))
    }

    pub fn get_manifest(&self, id: &Id) -> Result<Manifest, StoreError> {
        let bytes = self.get_object(id)?.ok_or(StoreError::Missing(*id))?;
        Manifest::parse(&bytes).map_err(|source| StoreError::Manifest {
            path: self.object_path(id),
            source,
        })
    }

    pub fn target_path(&self, artifact: &Id) -> PathBuf {
        let (xx, rest) = split_hex(artifact);
        self.meta()
            .join("targets")
            .join(artifact.alg().name())
            .join(xx)
            .join(rest)
    }

    /// Record artifact -> manifest for files that carry no note (archives, assembly, bitcode).
    pub fn set_target(&self, artifact: &Id, manifest: &Id) -> Result<(), StoreError> {
        let want = format!("{}\n", manifest.hex());
        self.write_file(&self.target_path(artifact), want.as_bytes())
    }

    /// The first bytes of the IDs the target index holds for one algorithm (its two-hex-digit
    /// directories).
    pub fn target_prefixes(&self, alg: Alg) -> std::collections::HashSet<u8> {
        let Ok(Some(d)) = self.dir(&["metadata", TOOL, "targets", alg.name()], false) else {
            return Default::default();
        };
        d.entries()
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, k)| *k == Kind::Dir)
            .filter_map(|(name, _)| {
                let name = name.to_str()?;
                (name.len() == 2).then_some(())?;
                u8::from_str_radix(name, 16).ok()
            })
            .collect()
    }

    pub fn get_target(&self, artifact: &Id) -> Option<Id> {
        let b = self.read_file(&self.target_path(artifact)).ok()??;
        Id::from_hex(std::str::from_utf8(&b).ok()?.trim_end()).ok()
    }

    /// Remember a path an artifact was seen at, as its bytes (a name need not be UTF-8;
    /// readers show such bytes as U+FFFD). Paths holding a newline cannot be a line; they
    /// are simply not indexed.
    pub fn add_path(&self, ids: &Ids, path: &Path) -> Result<(), StoreError> {
        self.add_paths(&[(ids, path)])
    }

    /// Remember many (artifact, path) pairs of one step in one locked append, to the shard of
    /// the first pair (a step's output): one write per step however many inputs it has.
    /// Readers read every shard.
    pub fn add_paths(&self, pairs: &[(&Ids, &Path)]) -> Result<(), StoreError> {
        let Some((first, _)) = pairs.first() else {
            return Ok(());
        };
        let mut text: Vec<u8> = Vec::with_capacity(pairs.len() * 170);
        for (ids, path) in pairs {
            let p = path.as_os_str().as_encoded_bytes();
            if p.contains(&b'\n') {
                continue;
            }
            ids.sha1.push_hex(&mut text);
            text.push(b' ');
            ids.sha256.push_hex(&mut text);
            text.push(b' ');
            text.extend_from_slice(p);
            text.push(b'\n');
        }
        // 16 shards keep lock waits short under make -j; more would only cost file creations
        // (a few hundred microseconds each on the disk measured) in every new store
        let shard = first.sha1.hex()[..1].to_string();
        self.append_locked(&["metadata", TOOL, "paths"], &shard, &text)
    }

    /// Append one record under an exclusive lock, in one write.
    fn append_locked(&self, dirs: &[&str], name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = || {
            dirs.iter()
                .fold(self.root.clone(), |p, d| p.join(d))
                .join(name)
        };
        let d = self
            .dir(dirs, true)?
            .ok_or_else(|| StoreError::Outside(path(), self.root.clone()))?;
        let mut f = d.open_append(OsStr::new(name))?;
        let io_err = |source| StoreError::Io {
            path: path(),
            source,
        };
        f.lock().map_err(io_err)?;
        let r = f.write_all(bytes).map_err(io_err);
        let _ = f.unlock();
        r
    }

    /// Where the shared libraries an output links against are kept (keyed by its sha1 ID).
    /// Read and write it with `read_file` and `write_file`.
    pub fn dynamic_path(&self, artifact: &Id) -> PathBuf {
        let (xx, rest) = split_hex(artifact);
        self.meta().join("dynamic").join(xx).join(rest)
    }

    /// Which archive members the links with this manifest really pulled in (keyed by the
    /// link's manifest ID, one file per algorithm). Lines `<archive> <member>...`.
    pub fn members_path(&self, manifest: &Id) -> PathBuf {
        let (xx, rest) = split_hex(manifest);
        self.meta().join("members").join(xx).join(rest)
    }

    /// Record pulled members. Links with one manifest normally pull the same members, so an
    /// equal file is left alone; otherwise (e.g. `--whole-archive` on the same inputs) the union
    /// is written, under a lock, whole and sorted so that the result does not depend on order.
    pub fn add_members(
        &self,
        manifest: &Id,
        pulled: &std::collections::BTreeMap<Id, std::collections::BTreeSet<Id>>,
    ) -> Result<(), StoreError> {
        let path = self.members_path(manifest);
        let render = |m: &std::collections::BTreeMap<Id, std::collections::BTreeSet<Id>>| {
            let mut text = String::new();
            for (a, ms) in m {
                text.push_str(&a.hex());
                for x in ms {
                    text.push(' ');
                    text.push_str(&x.hex());
                }
                text.push('\n');
            }
            text
        };
        let want = render(pulled);
        if self.read_file(&path)?.as_deref() == Some(want.as_bytes()) {
            return Ok(());
        }
        let meta = self
            .dir(&["metadata", TOOL], true)?
            .ok_or_else(|| StoreError::Outside(path.clone(), self.root.clone()))?;
        let lock = meta.open_lock(OsStr::new("members.lock"))?;
        let lock_path = self.meta().join("members.lock");
        lock.lock().map_err(|source| StoreError::Io {
            path: lock_path,
            source,
        })?;
        let r = self
            .members_locked(manifest, pulled)
            .and_then(|all| self.write_file(&path, render(&all).as_bytes()));
        let _ = lock.unlock();
        r
    }

    fn members_locked(
        &self,
        manifest: &Id,
        pulled: &std::collections::BTreeMap<Id, std::collections::BTreeSet<Id>>,
    ) -> Result<std::collections::BTreeMap<Id, std::collections::BTreeSet<Id>>, StoreError> {
        let mut all = self.read_members(manifest)?.unwrap_or_default();
        for (a, ms) in pulled {
            all.entry(*a).or_default().extend(ms.iter().copied());
        }
        Ok(all)
    }

    fn read_members(
        &self,
        manifest: &Id,
    ) -> Result<Option<std::collections::BTreeMap<Id, std::collections::BTreeSet<Id>>>, StoreError>
    {
        let Some(bytes) = self.read_file(&self.members_path(manifest))? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut out = std::collections::BTreeMap::new();
        for line in text.lines() {
            let mut it = line.split(' ').map(Id::from_hex);
            let Some(Ok(a)) = it.next() else { continue };
            let set: &mut std::collections::BTreeSet<Id> = out.entry(a).or_default();
            set.extend(it.flatten());
        }
        Ok(Some(out))
    }

    /// The pulled members recorded for a link's manifest, when any were.
    pub fn members(
        &self,
        manifest: &Id,
    ) -> Option<std::collections::BTreeMap<Id, std::collections::BTreeSet<Id>>> {
        self.read_members(manifest).ok().flatten()
    }

    /// The step log: one JSON line per wrapped step, recorded or not.
    pub fn steps_log(&self) -> PathBuf {
        self.meta().join("steps.log")
    }

    pub fn log_step(&self, record: &serde_json::Value) -> Result<(), StoreError> {
        let mut line = record.to_string();
        line.push('\n');
        self.append_locked(&["metadata", TOOL], "steps.log", line.as_bytes())
    }

    /// Every path recorded for an artifact (either algorithm's ID), oldest first, deduplicated.
    pub fn paths_of(&self, id: &Id) -> Vec<String> {
        let Ok(Some(dir)) = self.dir(&["metadata", TOOL, "paths"], false) else {
            return Vec::new();
        };
        let hex = id.hex();
        let mut out: Vec<String> = Vec::new();
        for (name, kind) in dir.entries().unwrap_or_default() {
            if kind != Kind::File || name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let Ok(Some(bytes)) = dir.read(&name) else {
                continue;
            };
            for line in String::from_utf8_lossy(&bytes).lines() {
                let mut it = line.splitn(3, ' ');
                let (Some(a), Some(b), Some(p)) = (it.next(), it.next(), it.next()) else {
                    continue;
                };
                if (a == hex || b == hex) && !out.iter().any(|x| x == p) {
                    out.push(p.to_string());
                }
            }
        }
        out
    }

    /// Check every object: content hashes to its name, it parses, and every manifest it
    /// references is present; and the whole tree: no symlinks (but the shim links `run`
    /// makes), no foreign files, no writable objects, nothing writable by everyone, no
    /// hard-linked log. Returns one line per problem.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut rep = VerifyReport::default();
        let Some(root) = Dir::root(&self.root, false)? else {
            return Ok(rep);
        };
        verify_tree(&root, &mut Vec::new(), &mut rep)?;
        for alg in Alg::ALL {
            let blob = format!("gitoid_blob_{alg}");
            let dir = match root.walk([OsStr::new("objects"), OsStr::new(&blob)], false) {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) => {
                    rep.problems.push(e.to_string());
                    continue;
                }
            };
            for (xx, kind) in dir.entries()? {
                if kind != Kind::Dir {
                    continue; // reported by verify_tree
                }
                let Some(sub) = dir.sub(&xx, false)? else {
                    continue;
                };
                for (rest, kind) in sub.entries()? {
                    if kind != Kind::File || safe::is_temp(&rest) {
                        continue;
                    }
                    rep.objects += 1;
                    self.verify_object(alg, &sub, &xx, &rest, &mut rep)?;
                }
            }
        }
        Ok(rep)
    }

    fn verify_object(
        &self,
        alg: Alg,
        dir: &Dir,
        xx: &OsStr,
        rest: &OsStr,
        rep: &mut VerifyReport,
    ) -> Result<(), StoreError> {
        let path = dir.path().join(rest);
        let bytes = match dir.read(rest) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(()), // gone meanwhile
            Err(e) if e.is_refusal() => {
                rep.problems.push(e.to_string());
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let name = format!("{}{}", xx.to_string_lossy(), rest.to_string_lossy());
        let id = id_of_bytes(alg, &bytes);
        if id.hex() != name {
            rep.problems.push(format!(
                "{}: content hashes to {}, not to its name",
                path.display(),
                id.hex()
            ));
            return Ok(());
        }
        match Manifest::parse(&bytes) {
            Err(e) => rep
                .problems
                .push(format!("{}: not a manifest: {e}", path.display())),
            Ok(m) => {
                if m.alg != alg {
                    rep.problems.push(format!(
                        "{}: a {} manifest under gitoid_blob_{alg}",
                        path.display(),
                        m.alg
                    ));
                }
                for (a, mf) in &m.inputs {
                    if let Some(mf) = mf {
                        if !self.is_file(&self.object_path(mf)) {
                            rep.problems.push(format!(
                                "{}: input {} refers to manifest {} which is not in the store",
                                id.uri(),
                                a.hex(),
                                mf.hex()
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Walk the tree under `dir` (at `rel` below the root) without following anything, and
/// report what the store never holds.
fn verify_tree(
    dir: &Dir,
    rel: &mut Vec<std::ffi::OsString>,
    rep: &mut VerifyReport,
) -> Result<(), StoreError> {
    let under = |parts: &[&str]| {
        rel.len() >= parts.len() && rel.iter().zip(parts).all(|(a, b)| a == OsStr::new(b))
    };
    let in_objects = under(&["objects"]);
    // `omnishim run` keeps links to its own binary there
    let in_shims = under(&["metadata", TOOL, "shims"]) && rel.len() == 3;
    let in_metadata = under(&["metadata"]);
    for (name, kind) in dir.entries()? {
        let path = dir.path().join(&name);
        let st = match dir.stat(&name)? {
            Some(st) => st,
            None => continue,
        };
        let mode = st.st_mode & 0o7777;
        match kind {
            Kind::Symlink if in_shims => {}
            Kind::Symlink | Kind::Other(_) => rep.problems.push(format!(
                "{}: {} (the store holds only directories and regular files; it never follows one)",
                path.display(),
                kind.describe()
            )),
            Kind::Dir => {
                if mode & 0o002 != 0 {
                    rep.problems.push(format!(
                        "{}: a directory writable by everyone (mode {mode:04o})",
                        path.display()
                    ));
                }
                if mode & 0o700 != 0o700 {
                    rep.problems.push(format!(
                        "{}: a directory its owner cannot use (mode {mode:04o})",
                        path.display()
                    ));
                }
                if let Some(sub) = dir.sub(&name, false)? {
                    rel.push(name.clone());
                    verify_tree(&sub, rel, rep)?;
                    rel.pop();
                }
            }
            Kind::File => {
                let tmp = safe::is_temp(&name);
                if in_objects && !tmp && mode & 0o222 != 0 {
                    rep.problems.push(format!(
                        "{}: a writable object (mode {mode:04o}; objects are immutable, 0444)",
                        path.display()
                    ));
                } else if mode & 0o002 != 0 {
                    rep.problems.push(format!(
                        "{}: a file writable by everyone (mode {mode:04o})",
                        path.display()
                    ));
                }
                if mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
                    rep.problems.push(format!(
                        "{}: a set-user-ID or set-group-ID file (mode {mode:04o})",
                        path.display()
                    ));
                }
                if in_metadata && st.st_nlink > 1 {
                    rep.problems.push(format!(
                        "{}: a file with {} hard links (the store's logs are its own)",
                        path.display(),
                        st.st_nlink
                    ));
                }
            }
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub objects: usize,
    pub problems: Vec<String>,
}

/// Write a whole file atomically (0644 under the umask): temporary file in the same
/// directory, then rename. For files outside a store, or a test's forged object; the store
/// itself writes through `Store::write_file`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| StoreError::Io {
        path: path.to_path_buf(),
        source: io::ErrorKind::InvalidInput.into(),
    })?;
    Dir::open_plain(dir)?.write_replace(name, bytes, FILE_MODE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitoid;
    use std::fs;

    #[test]
    fn locate_prefers_env_then_nearest_bom() {
        let t = tempfile::tempdir().unwrap();
        let deep = t.path().join("a/b/c");
        fs::create_dir_all(&deep).unwrap();
        assert_eq!(Store::locate(None, &deep).root(), deep.join(".bom"));
        fs::create_dir_all(t.path().join("a/.bom")).unwrap();
        assert_eq!(Store::locate(None, &deep).root(), t.path().join("a/.bom"));
        let env = std::ffi::OsString::from("/x/y");
        assert_eq!(Store::locate(Some(&env), &deep).root(), Path::new("/x/y"));
    }

    #[test]
    fn objects_targets_paths() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::at(t.path());
        let mut m = Manifest::new(Alg::Sha1);
        let h = gitoid::ids_of_bytes(b"hello world");
        m.add(h.sha1, None);
        let id = s.put_manifest(&m).unwrap();
        assert_eq!(s.put_manifest(&m).unwrap(), id);
        assert_eq!(s.get_manifest(&id).unwrap(), m);
        assert!(s
            .object_path(&id)
            .starts_with(t.path().join("objects/gitoid_blob_sha1")));
        s.set_target(&h.sha1, &id).unwrap();
        assert_eq!(s.get_target(&h.sha1), Some(id));
        s.add_path(&h, Path::new("/a/b")).unwrap();
        s.add_path(&h, Path::new("/a/b")).unwrap();
        assert_eq!(s.paths_of(&h.sha256), vec!["/a/b".to_string()]);
        assert!(s.verify().unwrap().problems.is_empty());
    }
}
