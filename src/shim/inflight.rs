//! Steps in flight, so that a killed build leaves no silent hole, and private step
//! directories that a kill cannot leave behind.
//!
//! A step that is killed (`kill -9` of the build, a CI cancel) after its tool wrote the output
//! but before the shim recorded it leaves an output without a note that make takes as up to
//! date. Two ways out were weighed: letting the tool write to a private path and moving the
//! output into place once recorded (as ccache does) changes what the tool sees and writes
//! (DWARF names, `-MD` targets, `-gsplit-dwarf` .dwo names, messages that name the output),
//! so every such detail would have to be mended afterwards; a journal changes nothing the
//! tool sees. So each step writes a small entry into `metadata/omnishim/inflight/` of the
//! store before its tool runs (the absolute paths of its outputs) and empties it once the
//! outputs are recorded (or the tool failed): an empty entry is free, and a later step takes
//! it rather than making a file of its own. The entry is held under an exclusive `flock`
//! for the step's life: the kernel drops that lock however the step dies, so a later step
//! (or `omnishim run` at its start) that can take the lock knows the step is gone. A pid and
//! its start time would not do: builds in containers share a store through a bind mount,
//! and a pid of another pid namespace says nothing here.
//!
//! A dead step's outputs are marked out of date (their modification time set to 1 s after
//! the epoch, older than any source) rather than removed: make may already have looked at
//! them in the build running now and would then fail on a missing file, while an old file is
//! redone by the next make that looks (the one running now, when it has not looked yet), and
//! a step that consumes such a file before that warns that it is not recorded. Each marked
//! output gets a line in the step log and the reaping step one warning line.
//!
//! The journal lives in the store, not in /dev/shm: a build killed with its container loses
//! the container's /dev/shm while the build tree and the store persist.
//!
//! Reaping and registering are ordered by a lock file: a step registers its entry under a
//! shared lock, a reaper marks outputs under the exclusive lock, so an output a live step is
//! about to write (its entry is there, locked) is never marked, and no entry is half made
//! while a reaper looks.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The modification time of an output whose step was killed before recording it: older
/// than any source, so make redoes the step, and telling a consumer why it has no note.
pub const KILLED_MTIME: i64 = 1;

/// The first line of an entry.
const MAGIC: &[u8] = b"omnishim-inflight 1\n";

fn cstr(s: &OsStr) -> Option<CString> {
    CString::new(s.as_bytes()).ok()
}

fn open_at(dir: Option<&OwnedFd>, name: &OsStr, flags: i32, mode: u32) -> std::io::Result<OwnedFd> {
    let c = cstr(name).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: a valid C string and directory descriptor; the result is checked.
    let fd = unsafe {
        libc::openat(
            at,
            c.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just opened and own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn flock(fd: &OwnedFd, op: i32) -> bool {
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(fd.as_raw_fd(), op) == 0 }
}

/// A step's entry, held locked until the step ends.
struct Entry {
    dir: OwnedFd,
    name: CString,
    file: OwnedFd,
}

static CURRENT: Mutex<Option<Entry>> = Mutex::new(None);

#[cfg(test)]
fn inflight_dir(store_root: &Path) -> PathBuf {
    store_root
        .join("metadata")
        .join(crate::store::TOOL)
        .join("inflight")
}

fn open_dir(store: &crate::store::Store) -> std::io::Result<OwnedFd> {
    // never through a planted symlink: the store reaches (and makes) every directory below
    // its root one name at a time from a handle on the one above, without following a
    // link; this is a handle on the very directory it reached (the store keeps its
    // handles open for the process, so the step's later store accesses walk nothing again)
    store
        .dir_fd(&["metadata", crate::store::TOOL, "inflight"], true)
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
}

/// The names in the journal directory that are entries (hidden new ones are not).
fn entries(dirfd: &OwnedFd) -> Vec<std::ffi::OsString> {
    names(dirfd, |n| n.first().is_some_and(u8::is_ascii_digit))
}

/// The names in a directory that `keep` accepts.
fn names(dirfd: &OwnedFd, keep: impl Fn(&[u8]) -> bool) -> Vec<std::ffi::OsString> {
    crate::store::list(dirfd)
        .unwrap_or_default()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| keep(n.as_bytes()))
        .collect()
}

/// The outputs an entry names.
fn read_outputs(fd: &OwnedFd) -> Vec<PathBuf> {
    use std::io::Read;
    let Ok(dup) = fd.try_clone() else {
        return Vec::new();
    };
    let mut f = std::fs::File::from(dup);
    let mut b = Vec::new();
    if f.read_to_end(&mut b).is_err() || !b.starts_with(MAGIC) {
        return Vec::new();
    }
    b[MAGIC.len()..]
        .split(|&c| c == b'\n')
        .filter(|l| l.first() == Some(&b'/'))
        .map(|l| PathBuf::from(OsStr::from_bytes(l)))
        .collect()
}

/// Under the journal's exclusive lock: mark the outputs of every dead step that no live step
/// names, remove the dead entries, the free ones and new ones never named. Returns the
/// outputs marked.
fn reap_locked(dirfd: &OwnedFd) -> Vec<PathBuf> {
    remove_unnamed(dirfd);
    let mut dead: Vec<(std::ffi::OsString, Vec<PathBuf>, Option<Maker>)> = Vec::new();
    let mut live: std::collections::HashSet<PathBuf> = Default::default();
    for name in entries(dirfd) {
        let Ok(fd) = open_at(Some(dirfd), &name, libc::O_RDWR, 0) else {
            continue;
        };
        if flock(&fd, libc::LOCK_EX | libc::LOCK_NB) {
            // read under the lock: a step that ended between a read and our lock has
            // emptied (or removed) its entry by then, and names nothing
            if unlinked(&fd) {
                continue;
            }
            dead.push((name, read_outputs(&fd), maker(&fd)));
        } else {
            live.extend(read_outputs(&fd));
        }
    }
    let mut marked = Vec::new();
    for (name, outs, maker) in dead {
        for o in outs {
            if !live.contains(&o) && maker.is_some_and(|m| mark_out_of_date(&o, m)) {
                marked.push(o);
            }
        }
        if let Some(c) = cstr(&name) {
            // SAFETY: unlinkat with a valid directory descriptor and C string.
            unsafe { libc::unlinkat(dirfd.as_raw_fd(), c.as_ptr(), 0) };
        }
    }
    marked
}

/// The file has no name any more.
fn unlinked(fd: &OwnedFd) -> bool {
    fstat(fd).is_some_and(|st| st.st_nlink == 0)
}

fn fstat(fd: &OwnedFd) -> Option<libc::stat> {
    crate::store::fstat(fd).ok()
}

/// Who wrote a dead entry, and when (its change time: its owner cannot set that back).
/// An entry is a file that anyone who may write the journal could plant, so the outputs
/// it names are only marked when they are its owner's and changed after it was written
/// (the step's tool wrote them after the step registered): a planted entry cannot touch
/// another user's files, nor files that were not written by a build after it.
#[derive(Clone, Copy)]
struct Maker {
    uid: libc::uid_t,
    since: i64,
}

/// Seconds an output's modification time may lie before its entry's change time (clocks of
/// two file systems, e.g. a store on NFS).
const CLOCK_SLACK: i64 = 2;

fn maker(entry: &OwnedFd) -> Option<Maker> {
    let st = fstat(entry)?;
    // a hard link to some other file is no entry of ours
    (st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_nlink == 1).then_some(Maker {
        uid: st.st_uid,
        since: st.st_ctime - CLOCK_SLACK,
    })
}

/// Open an absolute path without following a symlink anywhere on it (no `.` or `..`
/// either), as `O_PATH`.
fn open_no_symlinks(p: &Path) -> Option<OwnedFd> {
    use std::path::Component;
    let mut parts = p.components();
    if parts.next() != Some(Component::RootDir) {
        return None;
    }
    let names: Vec<&OsStr> = parts
        .map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let (last, dirs) = names.split_last()?;
    let dir_flags = libc::O_PATH | libc::O_DIRECTORY;
    let mut dir = open_at(None, OsStr::new("/"), dir_flags, 0).ok()?;
    for d in dirs {
        dir = open_at(Some(&dir), d, dir_flags, 0).ok()?;
    }
    open_at(Some(&dir), last, libc::O_PATH, 0).ok()
}

/// Set a dead step's output's times to `KILLED_MTIME`; false when there is no such file or
/// the entry may not mark it: the path must lead to a regular file through no symlink, owned
/// by the entry's maker and changed after the entry was written (see `Maker`).
fn mark_out_of_date(p: &Path, maker: Maker) -> bool {
    let Some(at) = open_no_symlinks(p) else {
        return false;
    };
    let Some(st) = fstat(&at) else { return false };
    let ok = st.st_mode & libc::S_IFMT == libc::S_IFREG
        && st.st_uid == maker.uid
        && st.st_mtime >= maker.since;
    if !ok {
        return false;
    }
    // the very file checked, reopened through its O_PATH handle (a magic link of /proc:
    // followed on purpose, it cannot lead anywhere else)
    let Some(proc_path) = CString::new(format!("/proc/self/fd/{}", at.as_raw_fd())).ok() else {
        return false;
    };
    // SAFETY: a valid C string; the result is checked and owned.
    let raw = unsafe {
        libc::open(
            proc_path.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        return false;
    }
    // SAFETY: a descriptor we just opened and own.
    let f = unsafe { OwnedFd::from_raw_fd(raw) };
    let same = fstat(&f).is_some_and(|s| s.st_dev == st.st_dev && s.st_ino == st.st_ino);
    let t = libc::timespec {
        tv_sec: KILLED_MTIME,
        tv_nsec: 0,
    };
    // SAFETY: futimens on a descriptor we own, with two timespecs.
    same && unsafe { libc::futimens(f.as_raw_fd(), [t, t].as_ptr()) == 0 }
}

/// One warning line and a step-log line per output marked.
fn report(store_root: &Path, marked: &[PathBuf]) {
    if marked.is_empty() {
        return;
    }
    let store = crate::store::Store::at(store_root);
    for o in marked {
        let _ = store.log_step(&serde_json::json!({
            "status": "interrupted",
            "reason": "the step was killed before its output was recorded; marked out of date",
            "outputs": [o.to_string_lossy()],
        }));
    }
    let shown: Vec<String> = marked
        .iter()
        .take(3)
        .map(|p| p.display().to_string())
        .collect();
    eprintln!(
        "omnishim: warning: {} output{} of build steps killed before they were recorded marked out of date, so the build redoes them: {}{}",
        marked.len(),
        if marked.len() == 1 { "" } else { "s" },
        shown.join(" "),
        if marked.len() > 3 { " ..." } else { "" }
    );
}

/// The journal's lock file. Read-only when another user made it (a shared store): a local
/// `flock` needs no write access (NFS does, and there such a user keeps no journal).
fn open_lock(dirfd: &OwnedFd) -> std::io::Result<OwnedFd> {
    let name = OsStr::new("lock");
    let nofollow = libc::O_NOFOLLOW;
    let fd = open_at(
        Some(dirfd),
        name,
        libc::O_RDWR | libc::O_CREAT | nofollow,
        0o644,
    )
    .or_else(|_| open_at(Some(dirfd), name, libc::O_RDONLY | nofollow, 0))?;
    crate::store::adjust_shared(&fd, false);
    Ok(fd)
}

/// At the start of `omnishim run`: reap what killed builds left, before the build looks at
/// its files.
pub fn reap_store(store_root: &Path) {
    let Ok(dirfd) = open_dir(&crate::store::Store::at(store_root)) else {
        return;
    };
    let Ok(lock) = open_lock(&dirfd) else { return };
    if !flock(&lock, libc::LOCK_EX) {
        return;
    }
    let marked = reap_locked(&dirfd);
    drop(lock);
    report(store_root, &marked);
}

/// Free entries a step leaves for later steps to take; more are removed by the step that
/// finds them (a build that ran at -j64 leaves no 64 entries for every later step to look at).
const FREE_KEPT: usize = 4;

/// What a look through the journal found.
struct Scan {
    /// A free entry of ours, now locked: this step's.
    claimed: Option<(CString, OwnedFd)>,
    /// An entry whose step is gone left outputs to mark.
    any_dead: bool,
}

/// Under the journal's shared lock: find dead entries and take a free one. An entry whose lock
/// can be taken belongs to no live step: empty, it is free (its step ended, or was killed
/// before it named its outputs); else its step was killed (a hint only: the reaper looks again
/// under the exclusive lock). An entry is only taken when it is the user's own, regular and
/// has one name: the owner and change time of an entry are what a reaper trusts (see `Maker`).
fn scan(dirfd: &OwnedFd) -> Scan {
    let euid = crate::store::euid();
    let mut found = Scan {
        claimed: None,
        any_dead: false,
    };
    let mut spare = 0;
    for name in entries(dirfd) {
        let Ok(fd) = open_at(Some(dirfd), &name, libc::O_RDWR, 0) else {
            continue;
        };
        if !flock(&fd, libc::LOCK_EX | libc::LOCK_NB) {
            continue;
        }
        let Some(st) = fstat(&fd) else { continue };
        if st.st_nlink == 0 {
            // removed by a step of an older version that ended, or by a step trimming
            continue;
        }
        if st.st_size != 0 {
            found.any_dead = true;
            continue;
        }
        let ours =
            st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_nlink == 1 && st.st_uid == euid;
        if !ours {
            continue;
        }
        let Some(c) = cstr(&name) else { continue };
        if found.claimed.is_none() {
            found.claimed = Some((c, fd));
        } else if spare < FREE_KEPT {
            spare += 1;
        } else {
            // free and locked by us: whoever opened it meanwhile finds it locked, or without a
            // name once we let go
            // SAFETY: unlinkat with a valid directory descriptor and C string.
            unsafe { libc::unlinkat(dirfd.as_raw_fd(), c.as_ptr(), 0) };
        }
    }
    found
}

/// The name a new entry has until it is locked: not an entry's name (those start with a
/// digit), so no other step sees it, takes it for free or locks it meanwhile.
const NEW_PREFIX: &str = ".new-";

/// A new entry, locked (when a step finds no free one). Made under a hidden name and renamed
/// once locked: an empty entry that could be seen before its lock would look free, and the
/// step that took it would hold it while this one waited for the lock.
fn create_entry(dirfd: &OwnedFd) -> Option<(CString, OwnedFd)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let name = format!(
        "{}-{}.{:09}",
        std::process::id(),
        now.as_secs(),
        now.subsec_nanos()
    );
    let hidden_name = format!("{NEW_PREFIX}{name}");
    let fd = open_at(
        Some(dirfd),
        OsStr::new(&hidden_name),
        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
        0o644,
    )
    .ok()?;
    let (hidden, visible) = (cstr(OsStr::new(&hidden_name))?, cstr(OsStr::new(&name))?);
    crate::store::adjust_shared(&fd, false);
    let d = dirfd.as_raw_fd();
    // SAFETY: renameat and unlinkat with a valid directory descriptor and C strings.
    let named = flock(&fd, libc::LOCK_EX)
        && unsafe { libc::renameat(d, hidden.as_ptr(), d, visible.as_ptr()) } == 0;
    if !named {
        // SAFETY: as above
        unsafe { libc::unlinkat(d, hidden.as_ptr(), 0) };
        return None;
    }
    Some((visible, fd))
}

/// Under the journal's exclusive lock (no step is making an entry): remove hidden new
/// entries left by steps killed before they renamed them.
fn remove_unnamed(dirfd: &OwnedFd) {
    for name in names(dirfd, |n| n.starts_with(NEW_PREFIX.as_bytes())) {
        let Ok(fd) = open_at(Some(dirfd), &name, libc::O_RDWR, 0) else {
            continue;
        };
        if let (true, Some(c)) = (flock(&fd, libc::LOCK_EX | libc::LOCK_NB), cstr(&name)) {
            // SAFETY: unlinkat with a valid directory descriptor and C string.
            unsafe { libc::unlinkat(dirfd.as_raw_fd(), c.as_ptr(), 0) };
        }
    }
}

/// Before a step's tool runs: reap dead steps' entries, then register this step's outputs in
/// an entry it holds locked until it ends. Entries are reused (an empty one is free): making
/// and removing a file per step cost more than any other part of the journal (ext4 makes and
/// frees an inode each time). A store that cannot hold the entry costs the step nothing but
/// the guard (its recording will say what is wrong with the store).
pub fn begin(store: &crate::store::Store, outputs: &[PathBuf]) {
    let store_root = store.root();
    let Ok(dirfd) = open_dir(store) else {
        return;
    };
    let Ok(lock) = open_lock(&dirfd) else { return };
    if !flock(&lock, libc::LOCK_SH) {
        return;
    }
    let found = scan(&dirfd);
    let mut marked = Vec::new();
    if found.any_dead && flock(&lock, libc::LOCK_EX) {
        // an entry we took is locked, so the reaper takes it for a live step's
        marked = reap_locked(&dirfd);
        flock(&lock, libc::LOCK_SH);
    }
    let mut text = MAGIC.to_vec();
    for o in outputs {
        let b = o.as_os_str().as_bytes();
        if !b.contains(&b'\n') {
            text.extend_from_slice(b);
            text.push(b'\n');
        }
    }
    if let Some((name, fd)) = found.claimed.or_else(|| create_entry(&dirfd)) {
        // the entry is empty: one write at its start
        // SAFETY: pwrite from a buffer of the given length to a descriptor we own.
        let n = unsafe { libc::pwrite(fd.as_raw_fd(), text.as_ptr().cast(), text.len(), 0) };
        if usize::try_from(n).is_ok_and(|n| n == text.len()) {
            if let Ok(mut cur) = CURRENT.lock() {
                *cur = Some(Entry {
                    dir: dirfd,
                    name,
                    file: fd,
                });
            }
        }
    }
    drop(lock);
    report(store_root, &marked);
}

/// The step is over (recorded, failed, or its failure to record reported): empty its entry for
/// a later step to take (removed when it cannot be emptied). Killed here, the entry still names
/// the outputs: they are marked out of date although recorded, the safe side.
pub fn end() {
    let Ok(mut cur) = CURRENT.lock() else { return };
    if let Some(e) = cur.take() {
        // SAFETY: ftruncate of a descriptor we own; unlinkat with a valid directory
        // descriptor and C string.
        unsafe {
            if libc::ftruncate(e.file.as_raw_fd(), 0) != 0 {
                libc::unlinkat(e.dir.as_raw_fd(), e.name.as_ptr(), 0);
            }
        }
    }
}

/// A step's private directory (our depfiles, maps and placeholder objects), removed when
/// dropped, and by a later step when this one was killed: it is held under an exclusive
/// `flock` for the step's life, and a step making its own directory removes every other one
/// whose lock it can take. It is made under a hidden name and renamed once locked, so a
/// directory is never seen unlocked while its step lives.
pub struct PrivateDir {
    path: PathBuf,
    _fd: OwnedFd,
}

const PRIVATE_PREFIX: &str = "omnishim-step-";
const PRIVATE_NEW_PREFIX: &str = ".omnishim-step-new-";

impl PrivateDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `<pid>-<unique>`: digits and a dash.
fn is_private_name(rest: &str) -> bool {
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

/// Remove the private directories in `base` whose steps are gone.
pub fn reap_private(base: &Path) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(n) = name.to_str() else { continue };
        let old_enough = || {
            // one killed between mkdir and rename: its name is hidden, so give any live
            // owner a minute
            e.metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|d| d.as_secs() > 60)
        };
        let ours = match n.strip_prefix(PRIVATE_PREFIX) {
            Some(rest) => is_private_name(rest),
            None => n
                .strip_prefix(PRIVATE_NEW_PREFIX)
                .is_some_and(|rest| is_private_name(rest) && (old_enough() || !pid_alive(rest))),
        };
        if !ours {
            continue;
        }
        let p = base.join(n);
        // another user's directory does not open (0700); a symlink does not either
        let Ok(fd) = open_at(None, p.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0) else {
            continue;
        };
        if flock(&fd, libc::LOCK_EX | libc::LOCK_NB) {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

/// The process named by a private directory's `<pid>-...` is there (in our pid namespace;
/// one of another namespace may look gone, which only matters within the microseconds a
/// directory has its hidden name).
fn pid_alive(rest: &str) -> bool {
    let Some(pid) = rest.split('-').next() else {
        return true;
    };
    match std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")) {
        // a zombie is gone (its parent, make, may have been killed with it)
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Make a private directory in `base`, after reaping those of dead steps there.
pub fn private_dir_in(base: &Path) -> std::io::Result<PrivateDir> {
    use std::os::unix::fs::DirBuilderExt;
    reap_private(base);
    let mut last = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
    for _ in 0..16 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let unique = format!("{}-{nanos}{seq}", std::process::id());
        let hidden = base.join(format!("{PRIVATE_NEW_PREFIX}{unique}"));
        if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&hidden) {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                last = e;
                continue;
            }
            return Err(e);
        }
        let fd = match open_at(
            None,
            hidden.as_os_str(),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        ) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = std::fs::remove_dir(&hidden);
                return Err(e);
            }
        };
        flock(&fd, libc::LOCK_EX | libc::LOCK_NB);
        let path = base.join(format!("{PRIVATE_PREFIX}{unique}"));
        if let Err(e) = std::fs::rename(&hidden, &path) {
            let _ = std::fs::remove_dir(&hidden);
            return Err(e);
        }
        return Ok(PrivateDir { path, _fd: fd });
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries_in(dir: &Path) -> Vec<std::ffi::OsString> {
        entries(&open_at(None, dir.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap())
    }

    #[test]
    fn private_dirs_of_dead_steps_are_reaped_live_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        let live = private_dir_in(t.path()).unwrap();
        // a killed step's directory: nobody holds its lock
        let dead = t.path().join(format!("{PRIVATE_PREFIX}1-2"));
        std::fs::create_dir_all(dead.join("sub")).unwrap();
        std::fs::write(dead.join("sub/cc.d"), "x").unwrap();
        // not ours: left alone
        let other = t.path().join("omnishim-test1");
        std::fs::create_dir(&other).unwrap();
        let second = private_dir_in(t.path()).unwrap();
        assert!(!dead.exists());
        assert!(live.path().is_dir() && second.path().is_dir() && other.is_dir());
        let (a, b) = (live.path().to_path_buf(), second.path().to_path_buf());
        drop(live);
        drop(second);
        assert!(!a.exists() && !b.exists());
    }

    #[test]
    fn a_planted_entry_touches_nothing_it_may_not() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("store");
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        // a file that no step of a build wrote since the entry: older than it
        let old = outside.join("passwd");
        std::fs::write(&old, "root:x:0:0\n").unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        // fresh files, reached through a symlinked directory and as a symlink
        let fresh = outside.join("fresh");
        std::fs::write(&fresh, "x").unwrap();
        let linkdir = t.path().join("linkdir");
        std::os::unix::fs::symlink(&outside, &linkdir).unwrap();
        let linkfile = t.path().join("link.o");
        std::os::unix::fs::symlink(&fresh, &linkfile).unwrap();
        // another user's fresh file (only root can make one here)
        let foreign = outside.join("foreign");
        std::fs::write(&foreign, "y").unwrap();
        // SAFETY: geteuid has no preconditions
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            std::os::unix::fs::chown(&foreign, Some(65534), None).unwrap();
        }
        let dir = inflight_dir(&store);
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = MAGIC.to_vec();
        for p in [
            old.clone(),
            linkdir.join("fresh"),
            linkfile.clone(),
            outside.join("..").join("outside").join("fresh"),
            foreign.clone(),
        ] {
            text.extend_from_slice(p.as_os_str().as_bytes());
            text.push(b'\n');
        }
        std::fs::write(dir.join("9-1.0"), text).unwrap();
        let before: Vec<i64> = [&old, &fresh, &foreign]
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().mtime())
            .collect();
        reap_store(&store);
        let after: Vec<i64> = [&old, &fresh, &foreign]
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().mtime())
            .collect();
        assert_eq!(before, after, "a planted entry marked a file it may not");
        assert!(
            !dir.join("9-1.0").exists(),
            "the dead entry is removed all the same"
        );
        // the same fresh file named plainly is marked: the checks, not the file, said no
        let mut text = MAGIC.to_vec();
        text.extend_from_slice(fresh.as_os_str().as_bytes());
        text.push(b'\n');
        std::fs::write(dir.join("9-2.0"), text).unwrap();
        reap_store(&store);
        assert_eq!(std::fs::metadata(&fresh).unwrap().mtime(), KILLED_MTIME);
    }

    #[test]
    fn outputs_of_dead_entries_are_marked_live_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("store");
        let (a, b) = (t.path().join("a.o"), t.path().join("b.o"));
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "b").unwrap();
        // a dead step's entry for a.o, and one for b.o held by a live step
        let dir = inflight_dir(&store);
        std::fs::create_dir_all(&dir).unwrap();
        let entry = |o: &Path| {
            let mut t = MAGIC.to_vec();
            t.extend_from_slice(o.as_os_str().as_bytes());
            t.push(b'\n');
            t
        };
        std::fs::write(dir.join("1-1.0"), entry(&a)).unwrap();
        std::fs::write(dir.join("2-1.0"), entry(&b)).unwrap();
        let held = std::fs::File::open(dir.join("2-1.0")).unwrap();
        // SAFETY: flock on an open file
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
        begin(&crate::store::Store::at(&store), &[t.path().join("c.o")]);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&a).unwrap().mtime(), KILLED_MTIME);
        assert_ne!(std::fs::metadata(&b).unwrap().mtime(), KILLED_MTIME);
        let mut names = entries_in(&dir);
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}"); // b's and our own
        assert!(!dir.join("1-1.0").exists());
        let ours = names.iter().find(|n| *n != "2-1.0").unwrap().clone();
        assert!(std::fs::read(dir.join(&ours)).unwrap().ends_with(b"c.o\n"));
        end();
        // ours is left empty, free for the next step
        assert_eq!(std::fs::metadata(dir.join(&ours)).unwrap().len(), 0);
        assert_ne!(std::fs::metadata(dir.join("2-1.0")).unwrap().len(), 0);
    }

    fn names_and_sizes(dir: &Path) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = entries_in(dir)
            .into_iter()
            .map(|n| {
                let len = std::fs::metadata(dir.join(&n)).unwrap().len();
                (n.into_string().unwrap(), len)
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn free_entries_are_taken_again_and_spare_ones_removed() {
        let t = tempfile::tempdir().unwrap();
        let store = crate::store::Store::at(t.path().join("store"));
        let dir = inflight_dir(store.root());
        let out = t.path().join("a.o");
        begin(&store, std::slice::from_ref(&out));
        let first = names_and_sizes(&dir);
        assert_eq!(first.len(), 1);
        assert!(first[0].1 > 0);
        // made under a hidden name and renamed: nothing hidden is left
        let all: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!all.iter().any(|n| n.starts_with(NEW_PREFIX)), "{all:?}");
        end();
        assert_eq!(names_and_sizes(&dir), vec![(first[0].0.clone(), 0)]);
        // the next step takes the same file
        begin(&store, std::slice::from_ref(&out));
        let second = names_and_sizes(&dir);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].0, first[0].0);
        assert!(second[0].1 > 0);
        end();
        // a free entry another step holds is not taken; eight free ones left by a wide
        // build are cut to the spare count plus the one taken
        let held = std::fs::File::open(dir.join(&first[0].0)).unwrap();
        // SAFETY: flock on an open file
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
        for k in 0..8 {
            std::fs::write(dir.join(format!("7-{k}.0")), "").unwrap();
        }
        begin(&store, std::slice::from_ref(&out));
        let now = names_and_sizes(&dir);
        assert_eq!(now.len(), 1 + 1 + FREE_KEPT, "{now:?}");
        assert_eq!(now.iter().filter(|(_, len)| *len > 0).count(), 1, "{now:?}");
        assert!(now.iter().any(|(n, len)| *n == first[0].0 && *len == 0));
        end();
        drop(held);
        // a free entry with a second name (a hard link) is no entry to take
        let now = names_and_sizes(&dir);
        for (n, _) in &now {
            std::fs::remove_file(dir.join(n)).unwrap();
        }
        std::fs::write(t.path().join("x"), "").unwrap();
        std::fs::hard_link(t.path().join("x"), dir.join("8-1.0")).unwrap();
        begin(&store, std::slice::from_ref(&out));
        assert_eq!(std::fs::metadata(t.path().join("x")).unwrap().len(), 0);
        assert_eq!(names_and_sizes(&dir).len(), 2);
        end();
        // a new entry whose step was killed before naming it: removed by a reaper, unless
        // its step still holds it
        let left = dir.join(format!("{NEW_PREFIX}9-1.0"));
        let held_new = dir.join(format!("{NEW_PREFIX}9-2.0"));
        std::fs::write(&left, "").unwrap();
        std::fs::write(&held_new, "").unwrap();
        let holder = std::fs::File::open(&held_new).unwrap();
        // SAFETY: flock on an open file
        assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
        reap_store(store.root());
        assert!(!left.exists());
        assert!(held_new.exists());
    }

    #[test]
    fn another_users_free_entry_is_not_taken() {
        // SAFETY: geteuid has no preconditions
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test gives an entry to another user, which needs root"
        );
        let t = tempfile::tempdir().unwrap();
        let store = crate::store::Store::at(t.path().join("store"));
        let dir = inflight_dir(store.root());
        std::fs::create_dir_all(&dir).unwrap();
        let theirs = dir.join("5-1.0");
        std::fs::write(&theirs, "").unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        begin(&store, &[t.path().join("a.o")]);
        assert_eq!(std::fs::metadata(&theirs).unwrap().len(), 0);
        assert_eq!(names_and_sizes(&dir).len(), 2);
        end();
    }
}
