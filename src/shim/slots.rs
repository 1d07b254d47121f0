//! The journal's slot files (see `inflight`): one per user, `slots-<uid>`, made of
//! fixed-size slots, each the entry of one step in flight, held under an open-file-description
//! lock on its byte range for the step's life.
//!
//! Why not a file per step: making a file costs the store's file system an inode each time
//! (ext4 here: finding a free inode among the ones steps keep freeing was most of the
//! journal's ~0.12 ms of CPU per step in `perf`), and removing it another directory change;
//! a slot costs a lock and a write in a file that is there already. The guarantee is the one
//! of entry files: the kernel drops a slot's lock however the step dies, so a slot with an
//! entry that can be locked is a dead step's.
//!
//! A slot file is its owner's word only: it must be a regular file with one link, owned by
//! the uid its name says, writable by no one else. Its entries name outputs and carry the
//! time they were written, which stands in for an entry file's change time: all an owner
//! could do with a false one is have the owner's own files marked out of date.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Bytes per slot. An entry (a header, the step's output paths, an end line) that does not
/// fit goes to an entry file of its own.
pub const SLOT: usize = 512;
/// More slots than this in one file is no journal of ours.
const MAX_SLOTS: usize = 4096;
const HEAD: &[u8] = b"omnishim-slot 1 ";
const END: &[u8] = b"end\n";

pub fn name_for(uid: libc::uid_t) -> String {
    format!("slots-{uid}")
}

/// The uid a slot file's name gives.
pub fn uid_of_name(name: &OsStr) -> Option<libc::uid_t> {
    let digits = std::str::from_utf8(name.as_bytes())
        .ok()?
        .strip_prefix("slots-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A step's entry, as a slot holds it.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    /// When it was written (seconds since the epoch).
    pub since: i64,
    pub outputs: Vec<PathBuf>,
}

/// The text of an entry, or None when it does not fit a slot.
pub fn encode(since: i64, outputs: &[PathBuf]) -> Option<Vec<u8>> {
    let mut t = HEAD.to_vec();
    t.extend_from_slice(since.to_string().as_bytes());
    t.push(b'\n');
    for o in outputs {
        let b = o.as_os_str().as_bytes();
        if !b.contains(&b'\n') && !b.contains(&0) {
            t.extend_from_slice(b);
            t.push(b'\n');
        }
    }
    t.extend_from_slice(END);
    (t.len() <= SLOT).then_some(t)
}

/// The entry a slot holds: None for a free slot, and for one whose writing was cut short
/// (its step died before its tool ran).
pub fn decode(slot: &[u8]) -> Option<Entry> {
    let rest = slot.strip_prefix(HEAD)?;
    let text = &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())];
    let body = text.strip_suffix(END)?;
    let mut lines = body.split(|&b| b == b'\n');
    let since: i64 = std::str::from_utf8(lines.next()?).ok()?.parse().ok()?;
    let outputs = lines
        .filter(|l| l.first() == Some(&b'/'))
        .map(|l| PathBuf::from(OsStr::from_bytes(l)))
        .collect();
    Some(Entry { since, outputs })
}

fn lock_op(fd: &OwnedFd, cmd: i32, kind: i32, i: usize) -> Option<libc::flock> {
    // SAFETY: an all-zero flock is a valid value
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = (i * SLOT) as libc::off_t;
    fl.l_len = SLOT as libc::off_t;
    // SAFETY: fcntl reads and writes only the struct it is given; the descriptor is ours
    (unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &mut fl) } == 0).then_some(fl)
}

/// Take slot `i` without waiting: true when no one else held it.
pub fn try_lock(fd: &OwnedFd, i: usize) -> bool {
    lock_op(fd, libc::F_OFD_SETLK, libc::F_WRLCK, i).is_some()
}

pub fn unlock(fd: &OwnedFd, i: usize) {
    lock_op(fd, libc::F_OFD_SETLK, libc::F_UNLCK, i);
}

/// No one holds slot `i` (a look only: it may be taken the moment after).
pub fn unheld(fd: &OwnedFd, i: usize) -> bool {
    lock_op(fd, libc::F_OFD_GETLK, libc::F_WRLCK, i)
        .is_some_and(|fl| fl.l_type == libc::F_UNLCK as libc::c_short)
}

fn read_at(fd: &OwnedFd, len: usize, at: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    // SAFETY: pread writes at most `len` bytes into the buffer given
    let n = unsafe {
        libc::pread(
            fd.as_raw_fd(),
            b.as_mut_ptr().cast(),
            len,
            at as libc::off_t,
        )
    };
    b.truncate(usize::try_from(n).unwrap_or(0));
    b
}

/// The file's slots as they are now (at most `MAX_SLOTS`).
pub fn read_all(fd: &OwnedFd) -> Vec<u8> {
    // SAFETY: fstat fills the struct it is given
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Vec::new();
    }
    let len = usize::try_from(st.st_size)
        .unwrap_or(0)
        .min(SLOT * MAX_SLOTS);
    read_at(fd, len, 0)
}

/// Slot `i` as it is now.
pub fn read_slot(fd: &OwnedFd, i: usize) -> Vec<u8> {
    read_at(fd, SLOT, i * SLOT)
}

/// Slot `i` of what `read_all` gave (empty past the end).
pub fn slot(all: &[u8], i: usize) -> &[u8] {
    let start = (i * SLOT).min(all.len());
    &all[start..((i + 1) * SLOT).min(all.len())]
}

pub fn write_slot(fd: &OwnedFd, i: usize, text: &[u8]) -> bool {
    // SAFETY: pwrite reads `text.len()` bytes from the buffer given
    let n = unsafe {
        libc::pwrite(
            fd.as_raw_fd(),
            text.as_ptr().cast(),
            text.len(),
            (i * SLOT) as libc::off_t,
        )
    };
    usize::try_from(n) == Ok(text.len())
}

/// Free slot `i`: without its first byte it holds no entry.
pub fn clear(fd: &OwnedFd, i: usize) {
    write_slot(fd, i, &[0]);
}

/// The slot file is its owner's word: a regular file with one link, owned by `uid`, that
/// no one else may write.
pub fn trusted(fd: &OwnedFd, uid: libc::uid_t) -> bool {
    // SAFETY: fstat fills the struct it is given
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    st.st_mode & libc::S_IFMT == libc::S_IFREG
        && st.st_nlink == 1
        && st.st_uid == uid
        && st.st_mode & 0o022 == 0
}

/// How many slots `all` spans.
pub fn count(all: &[u8]) -> usize {
    all.len().div_ceil(SLOT)
}

/// The slots to look through for a free one: those there are and one more.
pub fn candidates(all: &[u8]) -> usize {
    (count(all) + 1).min(MAX_SLOTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_and_cut_or_freed_slots_hold_none() {
        let outs = vec![PathBuf::from("/b/x.o"), PathBuf::from("/b/y.dwo")];
        let t = encode(1_700_000_000, &outs).unwrap();
        let mut slot = t.clone();
        slot.resize(SLOT, 0);
        let want = Entry {
            since: 1_700_000_000,
            outputs: outs,
        };
        assert_eq!(decode(&slot), Some(want));
        // cut short anywhere: no entry
        for n in 0..t.len() {
            assert_eq!(decode(&t[..n]), None, "{n}");
        }
        slot[0] = 0;
        assert_eq!(decode(&slot), None);
        let long = vec![PathBuf::from(format!("/{}", "a".repeat(SLOT)))];
        assert_eq!(encode(1, &long), None);
        assert_eq!(uid_of_name(OsStr::new("slots-1000")), Some(1000));
        for bad in ["slots-", "slots-x", "slots-+1", "slots-1.bak"] {
            assert_eq!(uid_of_name(OsStr::new(bad)), None, "{bad}");
        }
    }
}
