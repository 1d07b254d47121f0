//! The hash cache: file identity -> both IDs, in 64 append-only shard logs.

use super::safe::{Dir, Loaded, Mapped, FILE_MODE};
use super::snapshot::{self, Identity, Snapshot};
use super::{Store, StoreError};
use crate::gitoid::{self, Alg, Id, Ids};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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
    /// The store's logs (None: no cache at all).
    local: Option<Logs>,
    /// The user's logs, for files outside the build tree (see `for_step`).
    user: Option<Logs>,
    /// Files below these are the build's own: the store's logs keep them.
    build: Vec<PathBuf>,
}

struct Shard {
    /// The log's whole lines when it was read: the user's own logs read or, when large,
    /// mapped (see `Dir::load_owned`), the store's read. A lookup looks through them for the
    /// key, rather than indexing every line when the log is read: a step looks up a few files per shard,
    /// while a shard of the user's cache may hold hundreds of lines (every header of
    /// /usr/include shares one).
    base: Loaded,
    /// How much of `base` is whole lines.
    base_len: usize,
    /// Whole lines appended since, by this process or (read in `catch_up`) by others: kept
    /// apart so that an append does not copy the log's text into a larger buffer.
    extra: String,
    /// Where the last line of each key starts in `base`, by the key's FNV-1a hash, built
    /// at the shard's third lookup: scanning costs a step about 3 us a header in the
    /// user's shard of a system directory (hundreds of lines), an index about 40 ns a line
    /// once. A step that looks up one or two files of a shard does not pay for it.
    index: Option<std::collections::HashMap<u64, u32, PassHash>>,
    lookups: u32,
    appender: Option<fs::File>,
}

/// A hasher for keys that are hashes already.
#[derive(Default, Clone, Copy)]
struct PassHash(u64);

impl std::hash::Hasher for PassHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // only u64 keys reach here (write_u64); anything else still hashes
        self.0 = fnv1a(bytes);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl std::hash::BuildHasher for PassHash {
    type Hasher = PassHash;
    fn build_hasher(&self) -> PassHash {
        PassHash(0)
    }
}

pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Shard {
    /// A log's text. Only whole lines count: a last line without its newline may still be
    /// being written.
    fn new(base: Loaded) -> Shard {
        let b = base.bytes();
        let base_len = b.iter().rposition(|&c| c == b'\n').map_or(0, |e| e + 1);
        Shard {
            base,
            base_len,
            extra: String::new(),
            index: None,
            lookups: 0,
            appender: None,
        }
    }

    /// How much of the log this shard knows.
    fn known(&self) -> u64 {
        (self.base_len + self.extra.len()) as u64
    }

    /// Append whole lines (each ending in a newline) to the text.
    fn push(&mut self, line: &str) {
        self.extra.push_str(line);
    }

    /// Take in the whole lines appended to the log since it was read; true when `key` has
    /// an entry now. Only from a line boundary: a log that started over meanwhile, or took
    /// a line from a writer that does not lock, is not read again.
    fn catch_up(&mut self, f: &fs::File, key: &str) -> Option<Cached> {
        use std::os::unix::fs::FileExt;
        let known = self.known();
        let len = f.metadata().map_or(0, |m| m.len());
        if len > known {
            // from the newline that ends what we know
            let from = known.saturating_sub(1);
            let mut buf = vec![0u8; (len - from) as usize];
            if f.read_exact_at(&mut buf, from).is_ok() && (known == 0 || buf[0] == b'\n') {
                let buf = &buf[(known - from) as usize..];
                let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |e| e + 1);
                if let Ok(text) = std::str::from_utf8(&buf[..end]) {
                    self.push(text);
                }
            }
        }
        self.get(key)
    }

    /// The entry of the last line whose key is `key` (a later line is a newer entry); a
    /// line that does not parse is no entry.
    fn get(&mut self, key: &str) -> Option<Cached> {
        if let Some(c) = last_entry(self.extra.as_bytes(), key) {
            return Some(c);
        }
        let base = &self.base.bytes()[..self.base_len];
        self.lookups += 1;
        if self.index.is_none() && self.lookups >= 3 && base.len() > 4096 {
            self.index = Some(index_lines(base));
        }
        match &self.index {
            Some(ix) => {
                let start = *ix.get(&fnv1a(key.as_bytes()))? as usize;
                let line = &base[start..];
                let end = line.iter().position(|&b| b == b'\n')?;
                match entry_of_line(&line[..end], key) {
                    Some(c) => Some(c),
                    // two keys with one hash: the index holds the other one's line
                    None => last_entry(base, key),
                }
            }
            None => last_entry(base, key),
        }
    }
}

/// Where each key's last line starts in `text` (whole lines), by the key's hash.
fn index_lines(text: &[u8]) -> std::collections::HashMap<u64, u32, PassHash> {
    let mut ix = std::collections::HashMap::with_capacity_and_hasher(text.len() / 128, PassHash(0));
    let mut start = 0;
    while start < text.len() {
        let end = next_newline(&text[start..]).map_or(text.len(), |n| start + n);
        let line = &text[start..end];
        if let (Some(sp), Ok(at)) = (line.iter().position(|&b| b == b' '), u32::try_from(start)) {
            ix.insert(fnv1a(&line[..sp]), at);
        }
        start = end + 1;
    }
    ix
}

/// The entry a line gives for `key`, if it is that key's line.
fn entry_of_line(line: &[u8], key: &str) -> Option<Cached> {
    let k = key.as_bytes();
    if line.len() > k.len() && line.starts_with(k) && line[k.len()] == b' ' {
        // a line that is not UTF-8 is no entry
        return std::str::from_utf8(&line[k.len() + 1..])
            .ok()
            .and_then(parse_entry);
    }
    None
}

/// Where the last newline of `hay` is. On x86_64 the SSE2 search, which every such CPU has:
/// the generic one first asks the CPU which extensions it has (a dozen `cpuid`
/// instructions, each a trap to the hypervisor in a virtual machine: about 50 us at every
/// shim start, where nothing else needs the answer).
fn last_newline(hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(s) = memchr::arch::x86_64::sse2::memchr::One::new(b'\n') {
        return s.rfind(hay);
    }
    memchr::memrchr(b'\n', hay)
}

/// Where the first newline of `hay` is (SSE2 on x86_64, as `last_newline`).
fn next_newline(hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(s) = memchr::arch::x86_64::sse2::memchr::One::new(b'\n') {
        return s.find(hay);
    }
    memchr::memchr(b'\n', hay)
}

/// The entry of the last line of `text` (whole lines) whose key is `key`. Lines are taken
/// from the end, one `memrchr` each: no set-up per lookup (a substring search builds its
/// searcher for every key, which cost more than this on the small logs a step reads) and no
/// index of the lines never asked for.
fn last_entry(text: &[u8], key: &str) -> Option<Cached> {
    let k = key.as_bytes();
    // every line ends in '\n': the last one ends the text
    let mut end = text.len().checked_sub(1)?;
    loop {
        let start = last_newline(&text[..end]).map_or(0, |n| n + 1);
        let line = &text[start..end];
        if line.len() > k.len() && line.starts_with(k) && line[k.len()] == b' ' {
            return entry_of_line(line, key);
        }
        end = start.checked_sub(1)?;
    }
}

const SHARD_COUNT: u64 = snapshot::SHARDS as u64;
/// A log of the user's cache this big or bigger is mapped, a smaller one read (see
/// `Dir::load_owned`; a log of a few hundred entries is 30-60 KB).
const MAP_FROM: usize = 64 << 10;
const SHARD_CAP: u64 = 1 << 20;

/// Where a set of shard logs lives.
enum Home {
    /// `metadata/omnishim/hashcache` of a store.
    Store(Store),
    /// The user's own cache directory (`$XDG_CACHE_HOME/omnishim/hashcache`), for files
    /// outside the build tree.
    User(PathBuf),
}

/// One directory of shard logs, opened the first time it is needed.
struct Logs {
    home: Home,
    /// The shard directory (without following symlinks); `Some(None)`: looked, none usable.
    dir: std::cell::RefCell<Option<Option<std::sync::Arc<Dir>>>>,
    /// The user's `omnishim` directory, which holds the shard directory and the snapshot.
    parent: std::cell::OnceCell<Dir>,
    shards: std::cell::RefCell<std::collections::HashMap<String, Shard>>,
    /// The user's snapshot, mapped at the first look (None: none, or not a whole one).
    snapshot: std::cell::OnceCell<Option<Snapshot<Mapped>>>,
    /// This process found an entry the snapshot lacks, or appended one: the snapshot is
    /// behind the logs.
    behind: std::cell::Cell<bool>,
}

impl Logs {
    fn new(home: Home) -> Logs {
        Logs {
            home,
            dir: Default::default(),
            parent: Default::default(),
            shards: Default::default(),
            snapshot: Default::default(),
            behind: Default::default(),
        }
    }

    /// The user's logs only trust what this user owns.
    fn private(&self) -> bool {
        matches!(self.home, Home::User(_))
    }

    /// Run `f` on the shard directory (None: no directory yet and not `create`, or a user
    /// cache directory that is not this user's alone).
    fn with_dir<T>(
        &self,
        create: bool,
        f: impl FnOnce(&Dir) -> T,
    ) -> Result<Option<T>, StoreError> {
        let mut slot = self.dir.borrow_mut();
        let retry = create && matches!(self.home, Home::Store(_));
        if slot.as_ref().is_none_or(|d| d.is_none() && retry) {
            let d = match &self.home {
                Home::Store(store) => store.dir(&["metadata", super::TOOL, "hashcache"], create)?,
                // made at the first look: once, not again per entry when it cannot be
                Home::User(base) => user_dirs(base, true).map(|(parent, d)| {
                    let _ = self.parent.set(parent);
                    std::sync::Arc::new(d)
                }),
            };
            *slot = Some(d);
        }
        Ok(slot.as_ref().and_then(|d| d.as_deref()).map(f))
    }

    /// A shard log's text. A symlink or a foreign file is an error (the store is refused);
    /// anything else that keeps us from reading it (another user's store) is an empty log.
    /// In the user's cache, a log another user owns is no log at all.
    fn read_shard(&self, name: &str) -> Result<Loaded, StoreError> {
        let private = self.private();
        let empty = || Loaded::Read(Vec::new());
        let text = if private {
            self.with_dir(false, |d| d.load_owned(OsStr::new(name), MAP_FROM))
        } else {
            self.with_dir(false, |d| {
                d.read_owned(OsStr::new(name), false)
                    .map(|b| b.map(Loaded::Read))
            })
        };
        let text = match text {
            Ok(Some(Ok(Some(t)))) => t,
            Ok(None | Some(Ok(None))) => return Ok(empty()),
            Err(e) | Ok(Some(Err(e))) => {
                return if e.is_refusal() && !private {
                    Err(e)
                } else {
                    Ok(empty())
                }
            }
        };
        if text.bytes().len() as u64 > SHARD_CAP {
            // start over with a new empty log renamed into place (never truncating the
            // file that is there); appends racing with it may be lost: it is a cache
            let _ = self.with_dir(false, |d| d.write_replace(OsStr::new(name), b"", FILE_MODE));
            return Ok(empty());
        }
        Ok(text)
    }

    /// Run `f` on a shard, reading its log the first time this process needs it.
    fn with_shard<T>(&self, name: &str, f: impl FnOnce(&mut Shard) -> T) -> Result<T, StoreError> {
        let mut shards = self.shards.borrow_mut();
        if let Some(shard) = shards.get_mut(name) {
            return Ok(f(shard));
        }
        let shard = shards
            .entry(name.to_string())
            .or_insert(Shard::new(self.read_shard(name)?));
        Ok(f(shard))
    }

    /// Append lines of one file's IDs, `(key, kind)` each (`kind`: `elf` or `-` in a file's
    /// own line, `dyn` or `elf` in its type line), in one write, unless the first key has an
    /// entry already.
    fn add(&self, path: &Path, lines: &[(&str, &str)], ids: &Ids) {
        let Some(&(key, _)) = lines.first() else {
            return;
        };
        let (sha1, sha256) = (ids.sha1.hex(), ids.sha256.hex());
        let line: String = lines
            .iter()
            .map(|(k, kind)| format!("{k} {sha1} {sha256} {kind}\n"))
            .collect();
        let name = HashCache::shard_of(path);
        let private = self.private();
        let _ = self.with_shard(&name, |s| {
            if s.appender.is_none() {
                // a log we may not write (another user's store) or that is refused: the
                // entry is simply not kept (reading it was refused loudly already)
                s.appender = self
                    .with_dir(true, |d| {
                        d.open_append_owned(OsStr::new(&name), private).ok()
                    })
                    .ok()
                    .flatten()
                    .flatten();
            }
            let Some(f) = s.appender.take() else { return };
            // under -j several steps miss on one header at once: under the log's lock, read
            // what others appended since, and append only when the entry is still missing
            let locked = f.lock().is_ok();
            if !locked || s.catch_up(&f, key).is_none() {
                // one write call: appends of concurrent steps never interleave
                if (&f).write_all(line.as_bytes()).is_ok() {
                    s.push(&line);
                    self.behind.set(true);
                }
            }
            if locked {
                let _ = f.unlock();
            }
            s.appender = Some(f);
        });
    }

    /// A file's own line, and for an ELF file (`shared` is Some) its type line.
    fn add_with_type(&self, path: &Path, key: &str, ids: &Ids, shared: Option<bool>) {
        match shared {
            None => self.add(path, &[(key, "-")], ids),
            Some(shared) => self.add(
                path,
                &[(key, "elf"), (&type_key(key), type_kind(shared))],
                ids,
            ),
        }
    }

    fn find(&self, path: &Path, key: &str) -> Result<Option<Cached>, StoreError> {
        self.find_in(&HashCache::shard_of(path), key)
    }

    /// `find` in the shard of the file's directory, named once for a file's three keys.
    fn find_in(&self, shard: &str, key: &str) -> Result<Option<Cached>, StoreError> {
        self.with_shard(shard, |s| s.get(key))
    }

    /// The logs' directory is there (or could be made) and is ours to use.
    fn usable(&self) -> bool {
        matches!(self.with_dir(true, |_| ()), Ok(Some(())))
    }

    /// The user's snapshot, mapped the first time (None for a store's logs).
    fn snapshot(&self) -> Option<&Snapshot<Mapped>> {
        if !self.private() {
            return None;
        }
        self.snapshot
            .get_or_init(|| {
                self.usable().then_some(())?;
                let parent = self.parent.get()?;
                match parent.load_owned(OsStr::new(SNAPSHOT), 0) {
                    Ok(Some(Loaded::Mapped(m))) => Snapshot::new(m),
                    _ => None,
                }
            })
            .as_ref()
    }

    /// Write a new snapshot of the user's logs when this process found them ahead of it,
    /// unless another process is writing one now, or the last was written less than
    /// `SNAPSHOT_EVERY` ago or less than a thousand times what reading the logs took then.
    /// Some builds add to the logs all the time: where the tree is not known (see
    /// `build_roots`), a recursive make's step in `src/liblzma` reads headers of
    /// `src/common`, outside its directory, which the user's cache keeps, under new
    /// identities in every fresh tree. A snapshot (about 10 ms for 1 MB of logs) once a
    /// second cost xz-utils' build more than the snapshot saved it; once in ten seconds it
    /// costs such a build 0.1% of one CPU, and a snapshot that lags behind only sends
    /// lookups to the logs, as before there was one.
    fn settle(&self) {
        if !self.private() || !self.behind.get() {
            return;
        }
        let now = now_ns();
        if let Some(s) = self.snapshot() {
            let every = SNAPSHOT_EVERY.max(s.cost_ns().saturating_mul(1000));
            if now.saturating_sub(s.written_ns()) < every {
                return;
            }
        }
        let Some(parent) = self.parent.get() else {
            return;
        };
        let Ok(lock) = parent.open_lock(OsStr::new(SNAPSHOT_LOCK)) else {
            return;
        };
        if lock.try_lock().is_err() {
            return;
        }
        // a step killed while writing one left its file (2 MB here); the lock says none is
        // being written now
        parent.remove_temps();
        let mut texts = Vec::with_capacity(SHARD_COUNT as usize);
        let _ = self.with_dir(false, |d| {
            for i in 0..SHARD_COUNT {
                if let Ok(Some(l)) = d.load_owned(OsStr::new(&format!("{i:02x}")), MAP_FROM) {
                    texts.push((i as usize, l));
                }
            }
        });
        let bytes: Vec<(usize, &[u8])> = texts.iter().map(|(i, l)| (*i, l.bytes())).collect();
        let entries = fold(&bytes);
        let cost = now_ns().saturating_sub(now);
        let _ = parent.write_replace(
            OsStr::new(SNAPSHOT),
            &snapshot::encode(&entries, now, cost),
            FILE_MODE,
        );
        let _ = lock.unlock();
        self.behind.set(false);
    }
}

/// The snapshot's name in the user's `omnishim` directory, and its writers' lock.
const SNAPSHOT: &str = "hashcache.snapshot";
const SNAPSHOT_LOCK: &str = "hashcache.snapshot.lock";
/// The least time between two snapshots, in ns.
const SNAPSHOT_EVERY: u64 = 10_000_000_000;

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Every identity the logs' whole lines give (each log with its shard number), with what a
/// lookup in the logs would answer for it (its own line, its `+nonote` and `+type` lines
/// with the same IDs) and the shards whose logs hold it (bit k: shard k). An identity whose
/// lines disagree (two IDs for one identity, in one log or two) is left out: the logs answer
/// it, as before. So is a line whose key is not exactly what `HashCache::key` writes.
pub(super) fn fold(texts: &[(usize, &[u8])]) -> Vec<(Identity, Cached, u64)> {
    /// A line's answer: IDs, ELF, shared (as `parse_entry` reads it).
    type Said = (Ids, bool, Option<bool>);
    #[derive(Default)]
    struct Seen {
        own: Option<Said>,
        no_note: Option<Said>,
        ty: Option<Said>,
        conflict: bool,
        shards: u64,
    }
    let mut seen: std::collections::HashMap<Identity, Seen> = Default::default();
    let mut order: Vec<Identity> = Vec::new();
    for &(shard, text) in texts {
        let end = last_newline(text).map_or(0, |e| e + 1);
        for line in text[..end].split(|&b| b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            let Some((key, rest)) = line.split_once(' ') else {
                continue;
            };
            let (base, kind) = match key.rsplit_once('+') {
                Some((b, k @ ("nonote" | "type"))) => (b, k),
                Some(_) => continue,
                None => (key, ""),
            };
            let (Some(id), Some(c)) = (identity_of_key(base), parse_entry(rest)) else {
                continue;
            };
            let s = seen.entry(id).or_insert_with(|| {
                order.push(id);
                Seen::default()
            });
            if kind.is_empty() {
                // the logs answer a lookup from the log of the file's directory: so does
                // the snapshot, from that shard's table
                s.shards |= 1u64.checked_shl(shard as u32).unwrap_or(0);
            }
            let slot = match kind {
                "nonote" => &mut s.no_note,
                "type" => &mut s.ty,
                _ => &mut s.own,
            };
            let said = (c.ids, c.elf, c.shared);
            match slot {
                Some(old) if *old != said => s.conflict = true,
                _ => *slot = Some(said),
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| {
            let s = seen.remove(&id).filter(|s| !s.conflict)?;
            let (ids, elf, shared) = s.own?;
            // a `+nonote` or `+type` line counts only with the IDs of the file's own line
            let same = |l: Option<Said>| l.filter(|l| l.0 == ids);
            Some((
                id,
                Cached {
                    ids,
                    elf,
                    no_note: elf && same(s.no_note).is_some(),
                    mtime: None,
                    shared: if elf {
                        same(s.ty).map(|t| t.2 == Some(true))
                    } else {
                        shared
                    },
                },
                s.shards,
            ))
        })
        .collect()
}

/// The identity a key names, when the key is exactly what `HashCache::key` writes for it.
fn identity_of_key(key: &str) -> Option<Identity> {
    let mut id: Identity = [0; 7];
    let mut rest = key;
    for (i, v) in id.iter_mut().enumerate() {
        let end = if i == 6 {
            rest.len()
        } else {
            rest.find(['-', '.'])?
        };
        *v = u64::from_str_radix(&rest[..end], 16).ok()?;
        rest = rest.get(end + 1..).unwrap_or("");
    }
    // a sign, leading zeros, other separators: not a key `key_of_identity` writes
    (key_of_identity(&id) == key).then_some(id)
}

impl HashCache {
    /// Open the logs' directories ahead of the first lookup (the user's is made when
    /// missing, as that lookup would make it; the store's is not).
    pub fn warm(&self) {
        if let Some(u) = &self.user {
            u.usable();
            u.snapshot();
        }
        if let Some(l) = &self.local {
            let _ = l.with_dir(false, |_| ());
        }
    }
}

impl HashCache {
    /// At the end of a step: bring the user's snapshot up to the logs, when this step found
    /// them ahead of it (see `Logs::settle`).
    pub fn settle(&self) {
        if let Some(u) = &self.user {
            u.settle();
        }
    }
}

/// Set by `omnishim run` for its build: the directory it was started in.
pub const BUILD_TREE_ENV: &str = "OMNISHIM_BUILD_TREE";

/// The directories whose files are the build's own, kept in the store's logs rather than the
/// user's: the step's directory, the store, the tree `omnishim run` was started in, and the
/// directory holding a `.bom` store. A recursive make's steps read headers of sibling
/// directories (xz-utils' `src/liblzma` reads `../common/*.h` and `../../config.h`): in the
/// user's cache these would be new identities in every fresh tree, growing its logs and
/// keeping its snapshot behind. Never a directory holding the system's headers and
/// libraries (`/`, `/usr`, ...): they would then be the build's, hashed again by every fresh
/// store and trusted to the store's logs, which others may write, rather than the user's own.
/// Which cache a file goes to changes how often it is hashed, never its ID.
fn build_roots(store: &Path, cwd: &Path, tree: Option<&Path>) -> Vec<PathBuf> {
    const SYSTEM: [&str; 5] = ["/usr/include", "/usr/lib", "/usr/local", "/lib", "/opt"];
    let bom_parent = (store.file_name() == Some(OsStr::new(super::STORE_DIR)))
        .then(|| store.parent())
        .flatten();
    let mut roots = vec![cwd.to_path_buf(), store.to_path_buf()];
    for extra in [tree, bom_parent].into_iter().flatten() {
        // a relative path would be taken from wherever the step runs
        if extra.is_absolute()
            && !SYSTEM.iter().any(|s| Path::new(s).starts_with(extra))
            && !roots.iter().any(|r| extra.starts_with(r))
        {
            roots.push(extra.to_path_buf());
        }
    }
    roots
}

/// Is the path below (or at) one of the roots? As `Path::starts_with`, over the bytes when
/// both are spelled plainly (every input a step looks up is folded so), rather than walking
/// both paths' components again for each root at every lookup.
fn in_tree(path: &Path, roots: &[PathBuf]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let plain = |b: &[u8]| {
        !(b.windows(2).any(|w| w == b"//")
            || b.windows(3).any(|w| w == b"/./")
            || b.ends_with(b"/")
            || b.ends_with(b"/.")
            || b.starts_with(b"./"))
    };
    let p = path.as_os_str().as_bytes();
    let p_plain = plain(p);
    roots.iter().any(|r| {
        let r = r.as_os_str().as_bytes();
        if !(p_plain && plain(r)) || r.is_empty() {
            return path.starts_with(Path::new(OsStr::from_bytes(r)));
        }
        p.starts_with(r) && (p.len() == r.len() || p[r.len()] == b'/')
    })
}

/// The user's cache directory: `$XDG_CACHE_HOME` (an absolute path), else `$HOME/.cache`.
fn user_home() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let home = || {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|h| h.join(".cache"))
    };
    xdg.or_else(home)
}

/// `omnishim` below the user's cache directory (which holds the snapshot) and the logs'
/// `omnishim/hashcache`, made 0700 and reached without following symlinks. None when they
/// cannot be had, or when either of the two directories is not this user's alone (owned by
/// someone else, or writable by the group or others): another user could then plant
/// entries, and a forged entry would be believed.
fn user_dirs(base: &Path, create: bool) -> Option<(Dir, Dir)> {
    let root = Dir::root(base, create).ok()??;
    let ours = root.sub_private(OsStr::new(super::TOOL), create).ok()??;
    let logs = ours.sub_private(OsStr::new("hashcache"), create).ok()??;
    Some((ours, logs))
}

impl HashCache {
    pub fn new(store: &Store) -> HashCache {
        HashCache {
            local: Some(Logs::new(Home::Store(store.clone()))),
            user: None,
            build: Vec::new(),
        }
    }

    /// A step's cache: the store's logs for files of the build tree (see `build_roots`),
    /// the user's own cache for every other file (system headers, crt files, libraries), so
    /// that a fresh store does not hash them again. Both are keyed alike.
    pub fn for_step(store: &Store, cwd: &Path) -> HashCache {
        let disabled = std::env::var_os("OMNISHIM_USER_CACHE").is_some_and(|v| v == "0");
        let tree = std::env::var_os(BUILD_TREE_ENV).map(PathBuf::from);
        HashCache {
            local: Some(Logs::new(Home::Store(store.clone()))),
            user: user_home()
                .filter(|_| !disabled)
                .map(|h| Logs::new(Home::User(h))),
            build: build_roots(store.root(), cwd, tree.as_deref()),
        }
    }

    pub fn disabled() -> HashCache {
        HashCache {
            local: None,
            user: None,
            build: Vec::new(),
        }
    }

    /// The logs for a file (None: no cache).
    fn logs_for(&self, path: &Path) -> Option<&Logs> {
        match &self.user {
            // no usable cache of the user's own (no home, another user's directory): the
            // store keeps these files' entries, as it keeps the build's
            Some(u) if !in_tree(path, &self.build) && u.usable() => Some(u),
            _ => self.local.as_ref(),
        }
    }

    /// The entry key for a file's identity.
    fn key(meta: &fs::Metadata) -> String {
        key_of_identity(&identity(meta))
    }

    /// The shard log for a file: FNV-1a of its directory's path.
    pub(super) fn shard_of(path: &Path) -> String {
        format!("{:02x}", Self::shard_index(path))
    }

    /// `shard_of` as a number.
    fn shard_index(path: &Path) -> usize {
        use std::os::unix::ffi::OsStrExt;
        let dir = path.parent().unwrap_or(Path::new(""));
        (fnv1a(dir.as_os_str().as_bytes()) % SHARD_COUNT) as usize
    }

    /// Remember the IDs of a file we have just written ourselves (a step's output with its
    /// note), computed from the bytes written, so that the step reading it next (a link, an
    /// archive) does not hash it again. Nothing is kept if its size is not `len` any more.
    /// `shared`: whether the bytes are a shared library, None when they are no ELF file.
    pub fn remember(&self, path: &Path, ids: &Ids, len: u64, shared: Option<bool>) {
        let Some(logs) = self.logs_for(path) else {
            return;
        };
        let Ok(meta) = fs::metadata(path) else { return };
        if !meta.is_file() || meta.len() != len || (logs.private() && recent(&meta)) {
            return;
        }
        logs.add_with_type(path, &Self::key(&meta), ids, shared);
    }

    /// Both IDs of a file, from the cache when its identity is unchanged.
    pub fn ids(&self, path: &Path) -> io::Result<Ids> {
        self.lookup(path).map(|c| c.ids)
    }

    /// IDs and whether the file is ELF (so that a cache hit needs no other read of the file).
    /// A cache log the store refuses (a symlink, a foreign file) is an error.
    pub fn lookup(&self, path: &Path) -> io::Result<Cached> {
        let Some(logs) = self.logs_for(path) else {
            return hash_with_kind(path);
        };
        let before = fs::metadata(path)?;
        if !before.is_file() {
            return hash_with_kind(path); // gives the proper error
        }
        let id = identity(&before);
        let shard = Self::shard_index(path);
        if let Some(mut c) = logs.snapshot().and_then(|s| s.get(shard, &id)) {
            c.mtime = Some(std::os::unix::fs::MetadataExt::mtime(&before));
            return Ok(c);
        }
        let key = key_of_identity(&id);
        let shard = format!("{shard:02x}");
        if let Some(mut c) = logs.find_in(&shard, &key).map_err(io::Error::other)? {
            logs.behind.set(true);
            c.mtime = Some(std::os::unix::fs::MetadataExt::mtime(&before));
            if c.elf {
                let same = |n: &Cached| n.ids == c.ids;
                c.no_note = logs
                    .find_in(&shard, &no_note_key(&key))
                    .ok()
                    .flatten()
                    .is_some_and(|n| same(&n));
                c.shared = logs
                    .find_in(&shard, &type_key(&key))
                    .ok()
                    .flatten()
                    .filter(same)
                    .map(|t| t.shared == Some(true));
            }
            return Ok(c);
        }
        let mut c = hash_with_kind(path)?;
        c.mtime = Some(std::os::unix::fs::MetadataExt::mtime(&before));
        // Only cache when the file did not change while we read it.
        if fs::metadata(path).is_ok_and(|after| Self::key(&after) == key)
            && !(logs.private() && recent(&before))
        {
            logs.add_with_type(path, &key, &c.ids, c.elf.then_some(c.shared == Some(true)));
        }
        Ok(c)
    }
}

impl HashCache {
    /// Say that an ELF file just looked up (`seen`, its entry) carries no note of ours, so
    /// that later steps need not read it to find out.
    pub fn note_absent(&self, path: &Path, seen: &Cached) {
        if !seen.no_note {
            self.note(path, seen, no_note_key, "elf");
        }
    }

    /// Say whether an ELF file just looked up (`seen`, its entry, which did not say) is a
    /// shared library: an entry an older version wrote is then completed once, not read
    /// around at every link.
    pub fn note_type(&self, path: &Path, seen: &Cached, shared: bool) {
        if seen.shared.is_none() {
            self.note(path, seen, type_key, type_kind(shared));
        }
    }

    /// A line of `kind` under `key_of(key)` beside an ELF file's entry. Kept only while the
    /// file is as it was when looked up (its identity is the entry's key).
    fn note(&self, path: &Path, seen: &Cached, key_of: fn(&str) -> String, kind: &str) {
        let Some(logs) = self.logs_for(path) else {
            return;
        };
        let Ok(meta) = fs::metadata(path) else { return };
        if !seen.elf || (logs.private() && recent(&meta)) {
            return;
        }
        let key = Self::key(&meta);
        // the entry must be the one the lookup gave: same key, same IDs
        if !logs
            .find(path, &key)
            .ok()
            .flatten()
            .is_some_and(|c| c.ids == seen.ids && c.elf)
        {
            return;
        }
        logs.add(path, &[(&key_of(&key), kind)], &seen.ids);
    }
}

/// The key of the line that says a file's entry is an ELF file without a note of ours.
fn no_note_key(key: &str) -> String {
    format!("{key}+nonote")
}

/// The key of the line that says whether an ELF file is a shared library (`dyn`) or not
/// (`elf`): a link sorts its inputs by that without opening them. Like `+nonote`, a key of
/// its own: a binary that does not know it reads the file's own line as before.
fn type_key(key: &str) -> String {
    format!("{key}+type")
}

fn type_kind(shared: bool) -> &'static str {
    if shared {
        "dyn"
    } else {
        "elf"
    }
}

/// What proves a file unchanged: device, inode, size, mtime and ctime (s and ns; signed
/// values in two's complement).
fn identity(meta: &fs::Metadata) -> Identity {
    use std::os::unix::fs::MetadataExt;
    [
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.ctime() as u64,
        meta.ctime_nsec() as u64,
    ]
}

/// An identity's key: what `format!("{:x}-{:x}-{:x}-{:x}.{:x}-{:x}.{:x}", ...)` writes,
/// without the formatting machinery (every input of every step makes one).
fn key_of_identity(vals: &Identity) -> String {
    let mut k = String::with_capacity(64);
    push_hex(&mut k, vals[0]);
    for (sep, v) in ['-', '-', '-', '.', '-', '.'].into_iter().zip(&vals[1..]) {
        k.push(sep);
        push_hex(&mut k, *v);
    }
    k
}

/// Append `n` in lower-case hex, without leading zeros.
fn push_hex(s: &mut String, mut n: u64) {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = D[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        s.push(char::from(b));
    }
}

/// Changed less than a second ago. File times come from a clock that moves in ticks of a
/// few milliseconds, so a file written twice within one tick, to the same size, keeps its
/// identity; the user's cache, which outlives builds and is shared by all of them, keeps
/// no entry for a file that may still be in such a tick.
fn recent(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let ctime = i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec());
    now - ctime < 1_000_000_000
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
    if sha1.alg() != Alg::Sha1 || sha256.alg() != Alg::Sha256 || !matches!(k, "elf" | "-" | "dyn") {
        return None;
    }
    // `dyn` only ever stands in a type line; a file's own line says `elf` or `-`
    Some(Cached {
        ids: Ids { sha1, sha256 },
        elf: k != "-",
        no_note: false,
        mtime: None,
        shared: match k {
            "-" => Some(false),
            "dyn" => Some(true),
            _ => None,
        },
    })
}

/// The entry for `key` in a log's text (the fuzz target's way in).
#[doc(hidden)]
pub fn find_entry(text: &str, key: &str) -> Option<Cached> {
    Shard::new(Loaded::Read(text.as_bytes().to_vec())).get(key)
}

/// The entry for `key` found through a shard's index (the fuzz target checks it against
/// `find_entry`).
#[doc(hidden)]
pub fn find_entry_indexed(text: &str, key: &str) -> Option<Cached> {
    let mut s = Shard::new(Loaded::Read(text.as_bytes().to_vec()));
    s.index = Some(index_lines(&s.base.bytes()[..s.base_len]));
    s.get(key)
}

/// What the hash cache knows of a file.
#[derive(Clone, Copy, Debug)]
pub struct Cached {
    pub ids: Ids,
    pub elf: bool,
    /// An ELF file read before and found to carry no note of ours (a system library or start
    /// file), whose note need not be looked for again while it is unchanged: a second line
    /// keyed `<key>+nonote` with the same IDs says so. A key of its own, not a kind of its
    /// own: a binary that does not know it never matches that key, so it still reads the
    /// entry (a new kind in the entry's own line would be a miss to it, and a user cache
    /// shared by two versions would hash libc again at every link).
    pub no_note: bool,
    /// The modification time the lookup saw, when it looked (a reader asking whether a killed
    /// step left the file need not `stat` it again).
    pub mtime: Option<i64>,
    /// An ELF file of type ET_DYN (a shared library): false for every file that is no ELF
    /// file; None for an ELF file whose entry does not say (an older version wrote it).
    pub shared: Option<bool>,
}

fn hash_with_kind(path: &Path) -> io::Result<Cached> {
    let ids = gitoid::ids_of_file(path)?;
    let head = super::read_head(path)?;
    let elf = crate::elf::is_elf(&head);
    let shared = Some(crate::elf::is_shared_header(&head));
    Ok(Cached {
        ids,
        elf,
        no_note: false,
        mtime: None,
        shared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // the index answers as the scan does, on each of these texts
        for t in [&text, &line("1-2-34"), &bad, &bad[..bad.len() - text.len()]] {
            for k in ["1-2-3", "1-2-34", "01-2-3", "2"] {
                assert_eq!(
                    find_entry(t, k).map(|c| (c.ids, c.elf)),
                    find_entry_indexed(t, k).map(|c| (c.ids, c.elf)),
                    "{k} in {t:?}"
                );
            }
        }
    }

    #[test]
    fn shard_index_finds_the_newest_line_of_each_key() {
        let ids: Vec<Ids> = (0..3u8).map(|i| gitoid::ids_of_bytes(&[i])).collect();
        let line = |k: &str, i: usize, kind: &str| {
            format!("{k} {} {} {kind}\n", ids[i].sha1.hex(), ids[i].sha256.hex())
        };
        // 300 keys, each written twice (the second time with other IDs), one key's newest
        // line torn in the middle, and a last line without its newline
        let mut text = String::new();
        for round in 0..2 {
            for k in 0..300 {
                text.push_str(&line(&format!("fe00-{k:x}-10-1.0-1.0"), round, "-"));
            }
        }
        text.push_str("fe00-7-10-1.0-1.0 zz\n");
        text.push_str(line("fe00-8-10-1.0-1.0", 2, "elf").trim_end());
        let mut shard = Shard::new(Loaded::Read(text.clone().into_bytes()));
        for k in 0..300 {
            let key = format!("fe00-{k:x}-10-1.0-1.0");
            let got = shard.get(&key).map(|c| c.ids);
            let want = if k == 7 { None } else { Some(ids[1]) };
            assert_eq!(got, want, "{key}");
            assert_eq!(find_entry(&text, &key).map(|c| c.ids), want, "scan, {key}");
        }
        assert!(shard.index.is_some(), "a shard looked up often is indexed");
        assert!(shard.get("fe00-12c-10-1.0-1.0").is_none());
    }

    #[test]
    fn key_is_what_format_writes() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("x");
        fs::write(&f, "x").unwrap();
        let m = fs::metadata(&f).unwrap();
        let want = format!(
            "{:x}-{:x}-{:x}-{:x}.{:x}-{:x}.{:x}",
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        );
        assert_eq!(HashCache::key(&m), want);
        for n in [0u64, 1, 15, 16, 255, u64::MAX, -1i64 as u64] {
            let mut s = String::new();
            push_hex(&mut s, n);
            assert_eq!(s, format!("{n:x}"));
        }
        assert_eq!(format!("{:x}", -1i64), format!("{:x}", -1i64 as u64));
    }

    #[test]
    fn in_tree_answers_as_paths_starts_with() {
        let roots: Vec<PathBuf> = ["/b/src", "/w/t/.bom", "/x/./y", "/s/", "rel/dir", "/"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let paths = [
            "/b/src",
            "/b/src/a.h",
            "/b/srcx/a.h",
            "/b/sr",
            "/b",
            "/b/src/../../etc/passwd",
            "/b//src/a.h",
            "/b/./src/a.h",
            "/b/src/",
            "/w/t/.bom/objects",
            "/w/t/.bomb",
            "/x/y/z",
            "/x/./y/z",
            "/s",
            "/s/q",
            "/sq",
            "rel/dir/f",
            "./rel/dir/f",
            "rel/dirx",
            "/usr/include/stdio.h",
        ];
        for p in paths {
            for r in &roots {
                let one = std::slice::from_ref(r);
                assert_eq!(
                    in_tree(Path::new(p), one),
                    Path::new(p).starts_with(r),
                    "{p} under {}",
                    r.display()
                );
            }
        }
    }

    #[test]
    fn the_build_tree_is_the_steps_directory_the_store_and_the_runs_tree_never_a_system_one() {
        let p = |s: &str| PathBuf::from(s);
        let roots = |store: &str, cwd: &str, tree: Option<&str>| {
            build_roots(Path::new(store), Path::new(cwd), tree.map(Path::new))
        };
        // `omnishim run` started at the top of a recursive make
        assert_eq!(
            roots("/b/store", "/b/src/src/liblzma", Some("/b/src")),
            [p("/b/src/src/liblzma"), p("/b/store"), p("/b/src")]
        );
        // a `.bom` store: the directory holding it is the tree
        assert_eq!(
            roots("/w/t/.bom", "/w/t/lib", None),
            [p("/w/t/lib"), p("/w/t/.bom"), p("/w/t")]
        );
        // a tree already covered adds nothing; the root directory and relative paths never
        // count (every system header would be the build's, or the step's own directory
        // would decide)
        assert_eq!(roots("/.bom", "/w", Some("/w/sub")), [p("/w"), p("/.bom")]);
        assert_eq!(roots("/s", "/w", Some("/")), [p("/w"), p("/s")]);
        for system in ["/usr", "/usr/lib", "/usr/local", "/opt"] {
            assert_eq!(
                roots("/s", "/w", Some(system)),
                [p("/w"), p("/s")],
                "{system}"
            );
        }
        assert_eq!(roots("/usr/.bom", "/w", None), [p("/w"), p("/usr/.bom")]);
        // a tree below such a directory is a tree like any other
        assert_eq!(
            roots("/s", "/usr/src/linux/kernel", Some("/usr/src/linux")),
            [p("/usr/src/linux/kernel"), p("/s"), p("/usr/src/linux")]
        );
        assert_eq!(roots("/s", "/w", Some("rel")), [p("/w"), p("/s")]);
        // only a store named `.bom` says where its tree is
        assert_eq!(
            roots("/w/t/store", "/w/t/a", None),
            [p("/w/t/a"), p("/w/t/store")]
        );
    }

    #[test]
    fn a_snapshot_writer_removes_what_a_killed_writer_left() {
        let t = tempfile::tempdir().unwrap();
        let logs = Logs::new(Home::User(t.path().to_path_buf()));
        assert_eq!(logs.with_dir(true, |_| ()).unwrap(), Some(()));
        let dir = t.path().join("omnishim");
        std::fs::write(dir.join(".tmp1f.0.2a"), b"half a snapshot").unwrap();
        std::fs::write(dir.join("keep"), b"").unwrap();
        logs.behind.set(true);
        logs.settle();
        assert!(dir.join(SNAPSHOT).is_file());
        assert!(!dir.join(".tmp1f.0.2a").exists());
        assert!(dir.join("keep").exists() && dir.join(SNAPSHOT_LOCK).exists());
    }

    #[test]
    fn user_cache_dir_is_private_and_never_through_a_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("cache");
        assert!(user_dirs(&base, true).is_some());
        let ours = base.join("omnishim");
        let logs = ours.join("hashcache");
        for d in [&ours, &logs] {
            let mode = fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        // writable by others: another user could plant entries
        fs::set_permissions(&logs, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(user_dirs(&base, true).is_none());
        fs::set_permissions(&logs, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(user_dirs(&base, true).is_some());
        // a symlink where our directory goes is not followed (nor replaced)
        let elsewhere = t.path().join("elsewhere");
        fs::create_dir_all(elsewhere.join("hashcache")).unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(
            elsewhere.join("hashcache"),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        fs::rename(&ours, t.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &ours).unwrap();
        assert!(user_dirs(&base, true).is_none());
        assert!(fs::symlink_metadata(&ours)
            .unwrap()
            .file_type()
            .is_symlink());
        // owned by another user (only root can make one here)
        fs::remove_file(&ours).unwrap();
        fs::rename(t.path().join("moved"), &ours).unwrap();
        // SAFETY: geteuid has no failure and no side effect
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&logs, Some(65534), None).unwrap();
            assert!(user_dirs(&base, true).is_none());
        }
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
    fn an_elf_file_without_a_note_is_said_so_until_it_changes() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::at(t.path().join("store"));
        let f = t.path().join("crt1.o");
        fs::write(&f, b"\x7fELF one").unwrap();
        let a = HashCache::new(&s).lookup(&f).unwrap();
        assert!(a.elf && !a.no_note);
        HashCache::new(&s).note_absent(&f, &a);
        let b = HashCache::new(&s).lookup(&f).unwrap();
        assert!(b.elf && b.no_note && b.ids == a.ids);
        // the entry's own line is untouched: a reader that knows nothing of `+nonote` (an
        // older binary sharing the user's cache) still finds it
        let log = s.meta().join("hashcache").join(HashCache::shard_of(&f));
        let text = fs::read_to_string(&log).unwrap();
        let key = text.split(' ').next().unwrap();
        assert!(find_entry(&text, key).is_some_and(|c| c.elf && c.ids == a.ids));
        // its own line, its type line, the `+nonote` line
        assert_eq!(text.lines().count(), 3);
        // changed in place, same size: its note must be looked for again
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(&f, b"\x7fELF two").unwrap();
        let c = HashCache::new(&s).lookup(&f).unwrap();
        assert!(c.elf && !c.no_note && c.ids != a.ids);
        // what was seen of the old contents says nothing of the new
        HashCache::new(&s).note_absent(&f, &b);
        HashCache::new(&s).note_absent(&f, &a);
        assert!(!HashCache::new(&s).lookup(&f).unwrap().no_note);
        // a file that is no ELF file is never said to lack a note
        let h = t.path().join("x.h");
        fs::write(&h, "x").unwrap();
        let x = HashCache::new(&s).lookup(&h).unwrap();
        HashCache::new(&s).note_absent(&h, &x);
        assert!(!HashCache::new(&s).lookup(&h).unwrap().no_note);
    }

    #[test]
    fn whether_an_elf_file_is_a_shared_library_is_kept_beside_its_entry() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::at(t.path().join("store"));
        // ELF headers of 64-bit little-endian files of type ET_DYN (3) and ET_REL (1)
        let header = |e_type: u8| {
            let mut h = b"\x7fELF\x02\x01\x01".to_vec();
            h.resize(16, 0);
            h.extend([e_type, 0, 0x3e, 0]);
            h
        };
        let so = t.path().join("libz.so.1");
        let obj = t.path().join("crt1.o");
        let h = t.path().join("z.h");
        fs::write(&so, header(3)).unwrap();
        fs::write(&obj, header(1)).unwrap();
        fs::write(&h, "int z;").unwrap();
        // a miss reads the type; a hit (a new process) has it from the type line
        for (f, shared) in [(&so, true), (&obj, false), (&h, false)] {
            let miss = HashCache::new(&s).lookup(f).unwrap();
            let hit = HashCache::new(&s).lookup(f).unwrap();
            assert_eq!(miss.shared, Some(shared), "{}", f.display());
            assert_eq!(hit.shared, Some(shared), "{}", f.display());
            assert_eq!(hit.elf, f != &h);
        }
        let log = s.meta().join("hashcache").join(HashCache::shard_of(&so));
        let text = fs::read_to_string(&log).unwrap();
        assert_eq!(text.matches("+type ").count(), 2, "{text}");
        assert!(find_entry(&text, "x").is_none());
        // an entry an older version wrote has no type line: the type is not known until a
        // reader that looked at the header says it, once
        let old: String = text
            .lines()
            .filter(|l| !l.contains("+type "))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(&log, &old).unwrap();
        let c = HashCache::new(&s).lookup(&so).unwrap();
        assert!(c.elf && c.shared.is_none());
        HashCache::new(&s).note_type(&so, &c, true);
        HashCache::new(&s).note_type(&so, &c, true);
        assert_eq!(HashCache::new(&s).lookup(&so).unwrap().shared, Some(true));
        let text = fs::read_to_string(&log).unwrap();
        assert_eq!(text.matches("+type ").count(), 1, "{text}");
        // the file's own line still says `elf`, as an older reader expects
        let key = HashCache::key(&fs::metadata(&so).unwrap());
        let own: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{key} ")))
            .collect();
        assert!(own.len() == 1 && own[0].ends_with(" elf"), "{text}");
        // a type line for other contents says nothing of these
        let d = gitoid::ids_of_bytes(b"other");
        fs::write(
            &log,
            format!("{old}{key}+type {} {} dyn\n", d.sha1.hex(), d.sha256.hex()),
        )
        .unwrap();
        assert!(HashCache::new(&s).lookup(&so).unwrap().shared.is_none());
        // a changed file is looked at again
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(&so, header(1)).unwrap();
        assert_eq!(HashCache::new(&s).lookup(&so).unwrap().shared, Some(false));
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

    /// What a lookup in the logs answers for a key (its own line, then its `+nonote` and
    /// `+type` lines with the same IDs), as `HashCache::lookup` puts it together.
    fn from_logs(texts: &[&str], key: &str) -> Option<Cached> {
        let find = |k: &str| texts.iter().rev().find_map(|t| find_entry(t, k));
        let mut c = find(key)?;
        if c.elf {
            c.no_note = find(&no_note_key(key)).is_some_and(|n| n.ids == c.ids);
            c.shared = find(&type_key(key))
                .filter(|t| t.ids == c.ids)
                .map(|t| t.shared == Some(true));
        }
        Some(c)
    }

    #[test]
    fn the_snapshot_answers_what_the_logs_answer_or_nothing() {
        let ids: Vec<Ids> = (0..4u8).map(|i| gitoid::ids_of_bytes(&[i])).collect();
        let line = |k: &str, i: usize, kind: &str| {
            format!("{k} {} {} {kind}\n", ids[i].sha1.hex(), ids[i].sha256.hex())
        };
        let key =
            |i: u64| key_of_identity(&[0xfe00, 0x3e000 + i, 10 + i, 0x69efc3a9, i, 0x69efc3aa, 7]);
        let a = [
            line(&key(0), 0, "-"),   // a header
            line(&key(1), 1, "elf"), // crt1.o: no note, not shared
            line(&no_note_key(&key(1)), 1, "elf"),
            line(&type_key(&key(1)), 1, "elf"),
            line(&key(2), 2, "elf"), // libc.so.6
            line(&type_key(&key(2)), 2, "dyn"),
            line(&key(3), 3, "elf"), // an older entry: type unknown
            line(&no_note_key(&key(3)), 0, "elf"), // ...lines of other IDs count not
            line(&type_key(&key(3)), 0, "dyn"),
            line(&key(4), 0, "-"), // two IDs for one identity
            line(&key(4), 1, "-"),
            line(&key(5), 2, "-"), // in two logs, twice the same
            "0fe00-1-2-3.4-5.6 ".to_string() + &line("x", 0, "-")[2..], // not a key we write
            line(&key(9), 0, "-").trim_end().to_string(), // still being written
        ]
        .concat();
        let b = [
            line(&key(5), 2, "-"),
            line(&key(6), 3, "elf"),
            line(&key(7), 1, "-"),
            line(&key(7), 2, "-"),
        ]
        .concat();
        let texts = [a.as_str(), b.as_str()];
        let folded = fold(&[(0, a.as_bytes()), (5, b.as_bytes())]);
        // each identity in the shards of the logs holding its own line
        let shards_of = |i: u64| {
            let id = identity_of_key(&key(i)).unwrap();
            folded.iter().find(|e| e.0 == id).map(|e| e.2)
        };
        assert_eq!(shards_of(5), Some(1 | 1 << 5));
        assert_eq!(shards_of(6), Some(1 << 5));
        assert_eq!(shards_of(0), Some(1));
        let bytes = snapshot::encode(&folded, 1, 1);
        let snap = Snapshot::new(&bytes[..]).unwrap();
        let got = |i: u64| {
            let id = identity_of_key(&key(i)).unwrap();
            snap.get(0, &id).or_else(|| snap.get(5, &id))
        };
        let mut answered = 0;
        for i in 0..10 {
            let (s, l) = (got(i), from_logs(&texts, &key(i)));
            match (s, l) {
                (Some(s), Some(l)) => {
                    assert_eq!(
                        (s.ids, s.elf, s.no_note, s.shared),
                        (l.ids, l.elf, l.no_note, l.shared),
                        "key {i}"
                    );
                    answered += 1;
                }
                // what the snapshot leaves to the logs
                (None, _) => {}
                (Some(_), None) => panic!("the snapshot answers key {i}, the logs do not"),
            }
        }
        assert_eq!(answered, 6, "0, 1, 2, 3, 5 and 6 come from the snapshot");
        for i in [4, 7, 8, 9] {
            assert!(got(i).is_none(), "key {i}");
        }
        assert!(got(1).is_some_and(|c| c.no_note && c.shared == Some(false)));
        assert!(got(2).is_some_and(|c| !c.no_note && c.shared == Some(true)));
        assert!(got(3).is_some_and(|c| !c.no_note && c.shared.is_none()));
        // keys and identities map one to one; other spellings are no keys
        for k in ["1-2-3-4.5-6.7", "fe00-3e720-99e-69efc3a9.0-69efc3a9.0"] {
            assert_eq!(
                identity_of_key(k).map(|i| key_of_identity(&i)).as_deref(),
                Some(k)
            );
        }
        for k in [
            "01-2-3-4.5-6.7",
            "1-2-3-4-5-6.7",
            "1-2-3-4.5-6",
            "+1-2-3-4.5-6.7",
            "1-2-3-4.5-6.7.8",
            "1-2-3-4.5-6.7 ",
        ] {
            assert!(identity_of_key(k).is_none(), "{k}");
        }
    }
}
