//! The store: content-addressed manifests plus our metadata indexes.
//!
//! Layout (FORMAT.md section 3):
//! - `objects/gitoid_blob_<alg>/<xx>/<rest>`: manifest bytes, named by their gitoid.
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

use crate::gitoid::{self, id_of_bytes, Alg, Id, Ids};
use crate::manifest::Manifest;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const TOOL: &str = "omnishim";

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
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn at(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// `$OMNIBOR_DIR`, else the nearest `.bom` upwards from `cwd`, else `cwd/.bom`.
    pub fn locate(env_dir: Option<&std::ffi::OsStr>, cwd: &Path) -> Store {
        if let Some(d) = env_dir.filter(|d| !d.is_empty()) {
            return Store::at(cwd.join(d));
        }
        for dir in cwd.ancestors() {
            let cand = dir.join(".bom");
            if cand.is_dir() {
                return Store::at(cand);
            }
        }
        Store::at(cwd.join(".bom"))
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
        let hex = id.hex();
        self.root
            .join("objects")
            .join(format!("gitoid_blob_{}", id.alg()))
            .join(&hex[..2])
            .join(&hex[2..])
    }

    fn meta(&self) -> PathBuf {
        self.root.join("metadata").join(TOOL)
    }

    /// Write bytes as a content-addressed object; returns their ID. Existing objects are left
    /// alone (same name, same bytes).
    pub fn put_object(&self, alg: Alg, bytes: &[u8]) -> Result<Id, StoreError> {
        let id = id_of_bytes(alg, bytes);
        let path = self.object_path(&id);
        if !path.exists() {
            write_atomic(&path, bytes)?;
        }
        Ok(id)
    }

    pub fn put_manifest(&self, m: &Manifest) -> Result<Id, StoreError> {
        self.put_object(m.alg, &m.to_bytes())
    }

    pub fn get_object(&self, id: &Id) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.object_path(id);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    pub fn get_manifest(&self, id: &Id) -> Result<Manifest, StoreError> {
        let bytes = self.get_object(id)?.ok_or(StoreError::Missing(*id))?;
        Manifest::parse(&bytes).map_err(|source| StoreError::Manifest {
            path: self.object_path(id),
            source,
        })
    }

    fn target_path(&self, artifact: &Id) -> PathBuf {
        let hex = artifact.hex();
        self.meta()
            .join("targets")
            .join(artifact.alg().name())
            .join(&hex[..2])
            .join(&hex[2..])
    }

    /// Record artifact -> manifest for files that carry no note (archives, assembly, bitcode).
    pub fn set_target(&self, artifact: &Id, manifest: &Id) -> Result<(), StoreError> {
        let path = self.target_path(artifact);
        let want = format!("{}\n", manifest.hex());
        if fs::read(&path).ok().as_deref() == Some(want.as_bytes()) {
            return Ok(());
        }
        write_atomic(&path, want.as_bytes())
    }

    /// The first bytes of the IDs the target index holds for one algorithm (its two-hex-digit
    /// directories).
    pub fn target_prefixes(&self, alg: Alg) -> std::collections::HashSet<u8> {
        let dir = self.meta().join("targets").join(alg.name());
        fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| {
                    let name = e.ok()?.file_name();
                    let name = name.to_str()?;
                    (name.len() == 2).then_some(())?;
                    u8::from_str_radix(name, 16).ok()
                })
                .collect()
            })
            .unwrap_or_default()
    }

    pub fn get_target(&self, artifact: &Id) -> Option<Id> {
        let s = fs::read_to_string(self.target_path(artifact)).ok()?;
        Id::from_hex(s.trim_end()).ok()
    }

    /// Remember a path an artifact was seen at.
    /// (Paths holding a newline cannot be a line; they are simply not indexed.)
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
        let mut text = String::with_capacity(pairs.len() * 170);
        for (ids, path) in pairs {
            let p = path.to_string_lossy();
            if p.contains('\n') {
                continue;
            }
            for part in [&ids.sha1.hex(), " ", &ids.sha256.hex(), " ", &p, "\n"] {
                text.push_str(part);
            }
        }
        // 16 shards keep lock waits short under make -j; more would only cost file creations
        // (a few hundred microseconds each on the disk measured) in every new store
        let shard = first.sha1.hex()[..1].to_string();
        append_locked(&self.meta().join("paths").join(shard), text.as_bytes())
    }

    /// Where the shared libraries an output links against are kept (keyed by its sha1 ID).
    pub fn dynamic_path(&self, artifact: &Id) -> PathBuf {
        let hex = artifact.hex();
        self.meta().join("dynamic").join(&hex[..2]).join(&hex[2..])
    }

    /// Which archive members the links with this manifest really pulled in (keyed by the
    /// link's manifest ID, one file per algorithm). Lines `<archive> <member>...`.
    pub fn members_path(&self, manifest: &Id) -> PathBuf {
        let hex = manifest.hex();
        self.meta().join("members").join(&hex[..2]).join(&hex[2..])
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
        if fs::read_to_string(&path).is_ok_and(|t| t == want) {
            return Ok(());
        }
        let lock_path = self.meta().join("members.lock");
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        lock.lock().map_err(io_err(&lock_path))?;
        let mut all = self.members(manifest).unwrap_or_default();
        for (a, ms) in pulled {
            all.entry(*a).or_default().extend(ms.iter().copied());
        }
        let r = write_atomic(&path, render(&all).as_bytes());
        let _ = lock.unlock();
        r
    }

    /// The pulled members recorded for a link's manifest, when any were.
    pub fn members(
        &self,
        manifest: &Id,
    ) -> Option<std::collections::BTreeMap<Id, std::collections::BTreeSet<Id>>> {
        let text = fs::read_to_string(self.members_path(manifest)).ok()?;
        let mut out = std::collections::BTreeMap::new();
        for line in text.lines() {
            let mut it = line.split(' ').map(Id::from_hex);
            let Some(Ok(a)) = it.next() else { continue };
            let set: &mut std::collections::BTreeSet<Id> = out.entry(a).or_default();
            set.extend(it.flatten());
        }
        Some(out)
    }

    /// The step log: one JSON line per wrapped step, recorded or not.
    pub fn steps_log(&self) -> PathBuf {
        self.meta().join("steps.log")
    }

    pub fn log_step(&self, record: &serde_json::Value) -> Result<(), StoreError> {
        let mut line = record.to_string();
        line.push('\n');
        append_locked(&self.steps_log(), line.as_bytes())
    }

    /// Every path recorded for an artifact (either algorithm's ID), oldest first, deduplicated.
    pub fn paths_of(&self, id: &Id) -> Vec<String> {
        let dir = self.meta().join("paths");
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        let hex = id.hex();
        let mut out: Vec<String> = Vec::new();
        for f in files {
            let Ok(text) = fs::read_to_string(&f) else {
                continue;
            };
            for line in text.lines() {
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
    /// references is present. Returns one line per problem.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut rep = VerifyReport::default();
        for alg in Alg::ALL {
            let dir = self.root.join("objects").join(format!("gitoid_blob_{alg}"));
            for path in list_objects(&dir)? {
                rep.objects += 1;
                let bytes = fs::read(&path).map_err(io_err(&path))?;
                let name = object_name(&path);
                let id = id_of_bytes(alg, &bytes);
                if id.hex() != name {
                    rep.problems.push(format!(
                        "{}: content hashes to {}, not to its name",
                        path.display(),
                        id.hex()
                    ));
                    continue;
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
                                if !self.object_path(mf).is_file() {
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
            }
        }
        Ok(rep)
    }
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub objects: usize,
    pub problems: Vec<String>,
}

fn object_name(path: &Path) -> String {
    let rest = path.file_name().map(|s| s.to_string_lossy().into_owned());
    let pre = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned());
    format!("{}{}", pre.unwrap_or_default(), rest.unwrap_or_default())
}

/// Files under `dir/<xx>/`, skipping our in-flight temporaries.
fn list_objects(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for sub in rd {
        let sub = sub.map_err(io_err(dir))?.path();
        if !sub.is_dir() {
            continue;
        }
        for f in fs::read_dir(&sub).map_err(io_err(&sub))? {
            let f = f.map_err(io_err(&sub))?.path();
            let tmp = f
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"));
            if !tmp {
                out.push(f);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Write a whole file atomically: temporary file in the same directory, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    Ok(())
}

/// Append one record under an exclusive lock, in one write.
pub fn append_locked(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))?;
    f.lock().map_err(io_err(path))?;
    let r = f.write_all(bytes).map_err(io_err(path));
    let _ = f.unlock();
    r
}

/// A persistent cache of file IDs, keyed by what proves a file unchanged: device, inode, size,
/// mtime and ctime in nanoseconds. Any write to the file changes ctime, so a stale entry can
/// never be hit.
///
/// Entries are lines `<key> <sha1> <sha256> <elf|->` appended to one of 64 shard logs, chosen by
/// the file's directory (so a step, whose inputs sit in a few directories, reads a few small
/// logs). An append is one `write` with `O_APPEND`: concurrent steps never interleave, and the
/// only thing a reader can see half-written is a last line without its newline, which is
/// ignored. A new entry costs an append, not a file creation (which costs a few hundred
/// microseconds on ext4, more than hashing a header). A log that has grown past
/// `SHARD_CAP` (stale entries of rebuilt files) starts over: it is a cache.
pub struct HashCache {
    dir: Option<PathBuf>,
    shards: std::cell::RefCell<std::collections::HashMap<String, Shard>>,
}

struct Shard {
    /// The log's whole lines, and where each key's line starts (keyed by the key's FNV hash:
    /// no allocation per line; a lookup compares the key itself, so a hash collision is only
    /// a miss).
    text: String,
    index: std::collections::HashMap<u64, usize, std::hash::BuildHasherDefault<KeyHash>>,
    appender: Option<fs::File>,
}

/// The FNV-1a hash is the map's hash already: pass it through.
#[derive(Default)]
struct KeyHash(u64);

impl std::hash::Hasher for KeyHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Shard {
    /// Index a log's text. Only whole lines count: a last line without its newline may still
    /// be being written.
    fn new(mut text: String) -> Shard {
        text.truncate(text.rfind('\n').map_or(0, |e| e + 1));
        let mut shard = Shard {
            index: Default::default(),
            text: String::new(),
            appender: None,
        };
        shard.index.reserve(text.len() / 160);
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            if let Some((k, _)) = line.split_once(' ') {
                shard.index.insert(fnv1a(k.as_bytes()), at);
            }
            at += line.len();
        }
        shard.text = text;
        shard
    }

    /// Append a whole line (ending in a newline) to the text and the index.
    fn push(&mut self, line: &str) {
        if let Some((k, _)) = line.split_once(' ') {
            self.index.insert(fnv1a(k.as_bytes()), self.text.len());
        }
        self.text.push_str(line);
    }

    /// Take in the whole lines appended to the log since it was read; true when `key` has
    /// an entry now. Only from a line boundary: a log that started over meanwhile, or took
    /// a line from a writer that does not lock, is not read again.
    fn catch_up(&mut self, f: &fs::File, key: &str) -> bool {
        use std::os::unix::fs::FileExt;
        let known = self.text.len() as u64;
        let len = f.metadata().map_or(0, |m| m.len());
        if len > known {
            // from the newline that ends what we know
            let from = known.saturating_sub(1);
            let mut buf = vec![0u8; (len - from) as usize];
            if f.read_exact_at(&mut buf, from).is_ok() && (known == 0 || buf[0] == b'\n') {
                let buf = &buf[(known - from) as usize..];
                let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |e| e + 1);
                if let Ok(text) = std::str::from_utf8(&buf[..end]) {
                    for line in text.split_inclusive('\n') {
                        self.push(line);
                    }
                }
            }
        }
        self.get(key).is_some()
    }

    fn get(&self, key: &str) -> Option<Cached> {
        let at = *self.index.get(&fnv1a(key.as_bytes()))?;
        let line = self.text[at..].split('\n').next()?;
        let (k, rest) = line.split_once(' ')?;
        if k != key {
            return None;
        }
        parse_entry(rest)
    }
}

const SHARD_COUNT: u64 = 64;
const SHARD_CAP: u64 = 1 << 20;

impl HashCache {
    pub fn new(store: &Store) -> HashCache {
        HashCache {
            dir: Some(store.meta().join("hashcache")),
            shards: Default::default(),
        }
    }

    pub fn disabled() -> HashCache {
        HashCache {
            dir: None,
            shards: Default::default(),
        }
    }

    /// The entry key for a file's identity.
    fn key(meta: &fs::Metadata) -> String {
        use std::os::unix::fs::MetadataExt;
        format!(
            "{:x}-{:x}-{:x}-{:x}.{:x}-{:x}.{:x}",
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        )
    }

    /// The shard log for a file: FNV-1a of its directory's path.
    fn shard_of(path: &Path) -> String {
        use std::os::unix::ffi::OsStrExt;
        let dir = path.parent().unwrap_or(Path::new(""));
        format!("{:02x}", fnv1a(dir.as_os_str().as_bytes()) % SHARD_COUNT)
    }

    /// Run `f` on a shard, reading its log the first time this process needs it.
    fn with_shard<T>(&self, dir: &Path, name: &str, f: impl FnOnce(&mut Shard) -> T) -> T {
        let mut shards = self.shards.borrow_mut();
        let shard = shards.entry(name.to_string()).or_insert_with(|| {
            let path = dir.join(name);
            let mut text = fs::read_to_string(&path).unwrap_or_default();
            if text.len() as u64 > SHARD_CAP {
                // start over; a concurrent append may land in the emptied log, which is fine
                if let Ok(f) = OpenOptions::new().write(true).open(&path) {
                    let _ = f.set_len(0);
                }
                text.clear();
            }
            Shard::new(text)
        });
        f(shard)
    }

    fn add(&self, path: &Path, key: &str, c: &Cached) {
        let Some(dir) = &self.dir else { return };
        let kind = if c.elf { "elf" } else { "-" };
        let line = format!("{key} {} {} {kind}\n", c.ids.sha1.hex(), c.ids.sha256.hex());
        let name = Self::shard_of(path);
        self.with_shard(dir, &name, |s| {
            if s.appender.is_none() {
                let _ = fs::create_dir_all(dir);
                s.appender = OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(dir.join(&name))
                    .ok();
            }
            let Some(f) = s.appender.take() else { return };
            // under -j several steps miss on one header at once: under the log's lock, read
            // what others appended since, and append only when the entry is still missing
            let locked = f.lock().is_ok();
            if !locked || !s.catch_up(&f, key) {
                // one write call: appends of concurrent steps never interleave
                if (&f).write_all(line.as_bytes()).is_ok() {
                    s.push(&line);
                }
            }
            if locked {
                let _ = f.unlock();
            }
            s.appender = Some(f);
        });
    }

    fn find(&self, path: &Path, key: &str) -> Option<Cached> {
        let dir = self.dir.as_ref()?;
        self.with_shard(dir, &Self::shard_of(path), |s| s.get(key))
    }

    /// Remember the IDs of a file we have just written ourselves (a step's output with its
    /// note), computed from the bytes written, so that the step reading it next (a link, an
    /// archive) does not hash it again. Nothing is kept if its size is not `len` any more.
    pub fn remember(&self, path: &Path, ids: &Ids, len: u64, elf: bool) {
        if self.dir.is_none() {
            return;
        }
        let Ok(meta) = fs::metadata(path) else { return };
        if !meta.is_file() || meta.len() != len {
            return;
        }
        self.add(path, &Self::key(&meta), &Cached { ids: *ids, elf });
    }

    /// Both IDs of a file, from the cache when its identity is unchanged.
    pub fn ids(&self, path: &Path) -> io::Result<Ids> {
        self.lookup(path).map(|c| c.ids)
    }

    /// IDs and whether the file is ELF (so that a cache hit needs no other read of the file).
    pub fn lookup(&self, path: &Path) -> io::Result<Cached> {
        if self.dir.is_none() {
            return hash_with_kind(path);
        }
        let before = fs::metadata(path)?;
        if !before.is_file() {
            return hash_with_kind(path); // gives the proper error
        }
        let key = Self::key(&before);
        if let Some(c) = self.find(path, &key) {
            return Ok(c);
        }
        let c = hash_with_kind(path)?;
        // Only cache when the file did not change while we read it.
        if fs::metadata(path).is_ok_and(|after| Self::key(&after) == key) {
            self.add(path, &key, &c);
        }
        Ok(c)
    }
}

/// An entry's IDs and kind (`<sha1> <sha256> <elf|->`); a line that does not parse is no
/// entry.
fn parse_entry(rest: &str) -> Option<Cached> {
    let mut w = rest.split(' ');
    let (Some(a), Some(b), Some(k), None) = (w.next(), w.next(), w.next(), w.next()) else {
        return None;
    };
    let (Ok(sha1), Ok(sha256)) = (Id::from_hex(a), Id::from_hex(b)) else {
        return None;
    };
    if sha1.alg() != Alg::Sha1 || sha256.alg() != Alg::Sha256 || !(k == "elf" || k == "-") {
        return None;
    }
    Some(Cached {
        ids: Ids { sha1, sha256 },
        elf: k == "elf",
    })
}

#[cfg(test)]
fn find_entry(text: &str, key: &str) -> Option<Cached> {
    Shard::new(text.to_string()).get(key)
}

/// What the hash cache knows of a file.
#[derive(Clone, Copy, Debug)]
pub struct Cached {
    pub ids: Ids,
    pub elf: bool,
}

fn hash_with_kind(path: &Path) -> io::Result<Cached> {
    let ids = gitoid::ids_of_file(path)?;
    let mut head = [0u8; 4];
    let elf = {
        use std::io::Read;
        let mut f = fs::File::open(path)?;
        f.read_exact(&mut head).is_ok() && &head == b"\x7fELF"
    };
    Ok(Cached { ids, elf })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn hash_cache_entries_are_whole_lines_of_the_exact_key() {
        let a = gitoid::ids_of_bytes(b"a");
        let line = |k: &str| format!("{k} {} {} elf\n", a.sha1.hex(), a.sha256.hex());
        let text = line("1-2-3");
        assert!(find_entry(&text, "1-2-3").is_some_and(|c| c.elf && c.ids == a));
        // a key that only starts with, or ends with, the one asked for
        assert!(find_entry(&line("1-2-34"), "1-2-3").is_none());
        assert!(find_entry(&line("01-2-3"), "1-2-3").is_none());
        // a last line still being written (no newline yet)
        assert!(find_entry(text.trim_end(), "1-2-3").is_none());
        // torn or foreign lines are no entries; a later good line still is
        let bad = format!(
            "1-2-3 {} {}\n1-2-3 zz {} -\n{text}",
            a.sha1.hex(),
            a.sha1.hex(),
            a.sha256.hex()
        );
        assert!(find_entry(&bad, "1-2-3").is_some_and(|c| c.ids == a));
        assert!(find_entry(&bad[..bad.len() - text.len()], "1-2-3").is_none());
    }

    #[test]
    fn hash_cache_hits_only_an_unchanged_file() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::at(t.path().join("store"));
        let f = t.path().join("x.h");
        fs::write(&f, "one").unwrap();
        let one = gitoid::ids_of_bytes(b"one");
        assert_eq!(HashCache::new(&s).ids(&f).unwrap(), one);
        // a forged entry for the file's identity is believed by a new process: it is a cache
        let log = s.meta().join("hashcache").join(HashCache::shard_of(&f));
        let text = fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().count(), 1);
        let forged = gitoid::ids_of_bytes(b"forged");
        let key = text.split(' ').next().unwrap();
        fs::write(
            &log,
            format!("{key} {} {} -\n", forged.sha1.hex(), forged.sha256.hex()),
        )
        .unwrap();
        assert_eq!(HashCache::new(&s).ids(&f).unwrap(), forged);
        // any write changes the identity (same size included): never the old entry
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(&f, "two").unwrap();
        assert_eq!(
            HashCache::new(&s).ids(&f).unwrap(),
            gitoid::ids_of_bytes(b"two")
        );
        assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 2);
    }

    #[test]
    fn hash_cache_appends_from_many_writers_stay_whole() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::at(t.path().join("store"));
        let dir = t.path().join("src");
        fs::create_dir_all(&dir).unwrap();
        for i in 0..400 {
            fs::write(dir.join(format!("f{i}")), format!("file {i}")).unwrap();
        }
        std::thread::scope(|scope| {
            for w in 0..8 {
                let (s, dir) = (&s, &dir);
                scope.spawn(move || {
                    let c = HashCache::new(s); // each its own files, like separate steps
                    for i in (w..400).step_by(8) {
                        c.ids(&dir.join(format!("f{i}"))).unwrap();
                    }
                });
            }
        });
        let log = s
            .meta()
            .join("hashcache")
            .join(HashCache::shard_of(&dir.join("f0")));
        let text = fs::read_to_string(log).unwrap();
        assert_eq!(text.lines().count(), 400);
        let c = HashCache::new(&s);
        for i in 0..400 {
            let p = dir.join(format!("f{i}"));
            let key = HashCache::key(&fs::metadata(&p).unwrap());
            assert_eq!(
                find_entry(&text, &key).map(|c| c.ids),
                Some(gitoid::ids_of_bytes(format!("file {i}").as_bytes()))
            );
            assert_eq!(
                c.ids(&p).unwrap(),
                gitoid::ids_of_bytes(format!("file {i}").as_bytes())
            );
        }
        // hits add nothing
        assert_eq!(
            fs::read_to_string(
                s.meta()
                    .join("hashcache")
                    .join(HashCache::shard_of(&dir.join("f0")))
            )
            .unwrap()
            .lines()
            .count(),
            400
        );
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
