//! Opening what lies inside the store without ever following a symlink.
//!
//! The root is the user's choice and is opened like any path; everything below it is reached
//! one name at a time from a handle on its directory, with `O_NOFOLLOW` (and `O_DIRECTORY` for
//! directories). A symlink or a file of a foreign type (FIFO, socket, device) where the store
//! keeps a file or a directory is refused with an error naming it: never followed, never
//! truncated, never written. New files are created with `O_EXCL` and renamed into place, so a
//! file the store did not create is never written through (appends to logs excepted: those go
//! only to a regular file with one link).
//!
//! Modes are git's: objects 0444, other files 0644, directories 0755, all under the umask;
//! `OMNIBOR_SHARED=group` adds the group's write bit (and set-group-ID on directories) for a
//! store a team shares, whatever the umask.

use super::StoreError;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub const DIR_MODE: u32 = 0o755;
pub const FILE_MODE: u32 = 0o644;
pub const OBJECT_MODE: u32 = 0o444;

/// How the names of files being written whole begin (`Dir::create_temp`): readers skip them.
const TEMP: &str = ".tmp";

/// A file being written whole, or one a killed writer left.
pub fn is_temp(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(TEMP.as_bytes())
}

/// What an entry is, as `lstat` tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other(&'static str),
}

impl Kind {
    pub fn of(mode: libc::mode_t) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO => Kind::Other("a FIFO"),
            libc::S_IFSOCK => Kind::Other("a socket"),
            libc::S_IFCHR => Kind::Other("a character device"),
            libc::S_IFBLK => Kind::Other("a block device"),
            _ => Kind::Other("a file of unknown type"),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Kind::File => "a regular file",
            Kind::Dir => "a directory",
            Kind::Symlink => "a symbolic link",
            Kind::Other(s) => s,
        }
    }
}

/// `OMNIBOR_SHARED=group`: a store a team writes to.
fn shared_group() -> bool {
    static SHARED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SHARED.get_or_init(|| std::env::var_os("OMNIBOR_SHARED").is_some_and(|v| v == "group"))
}

/// In a group-shared store, give the group what the owner has (like git's
/// `core.sharedRepository=group`), whatever the umask took away.
pub(crate) fn adjust_shared(fd: &OwnedFd, dir: bool) {
    if !shared_group() {
        return;
    }
    if let Ok(st) = fstat(fd) {
        let mode = st.st_mode & 0o7777;
        let mut want = mode | ((mode & 0o700) >> 3);
        if dir {
            want |= libc::S_ISGID;
        }
        if want != mode {
            // SAFETY: fchmod on a descriptor we own
            unsafe { libc::fchmod(fd.as_raw_fd(), want) };
        }
    }
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Open a path (relative to the working directory) with `flags`, close-on-exec. Through
/// `openat`: musl's `open` (std's `File::open`) follows an `O_CLOEXEC` open with an
/// `fcntl(F_SETFD)` for kernels older than 2.6.23, one more system call per file, and a link
/// step opens a dozen or two.
pub fn open_path(path: &Path, flags: libc::c_int) -> io::Result<File> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: openat with a NUL-terminated path; the result is checked and owned.
    let fd = cvt(unsafe { libc::openat(libc::AT_FDCWD, c.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: a descriptor we just opened and own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// A whole file, as `std::fs::read` reads it, opened as `open_path` opens.
pub fn read_path(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = open_path(path, libc::O_RDONLY)?;
    let size = fstat(&f).map_or(0, |st| usize::try_from(st.st_size).unwrap_or(0));
    let mut out = Vec::with_capacity(size);
    f.read_to_end(&mut out)?;
    Ok(out)
}

/// The first bytes of a file, zeros past its end (to tell ELF files, their type, and
/// archives without reading them whole).
pub fn read_head(path: &Path) -> io::Result<[u8; 20]> {
    use std::io::Read;
    let mut b = [0u8; 20];
    let mut f = open_path(path, libc::O_RDONLY)?;
    let mut n = 0;
    while n < b.len() {
        let k = f.read(&mut b[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(b)
}

/// The user we run as (asked once: a shim checks the owner of every log it maps).
pub fn euid() -> libc::uid_t {
    static EUID: std::sync::OnceLock<libc::uid_t> = std::sync::OnceLock::new();
    // SAFETY: geteuid has no failure and no side effect
    *EUID.get_or_init(|| unsafe { libc::geteuid() })
}

pub fn fstat(fd: &impl AsRawFd) -> io::Result<libc::stat> {
    // SAFETY: fstat only writes the struct it is given
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// A directory inside the store (or its root), with the path it was reached by for messages.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Open the store root, following symlinks in its path (the user chose it); create it
    /// (and its parents) when asked. None when it does not exist and `create` is false.
    pub fn root(path: &Path, create: bool) -> Result<Option<Dir>, StoreError> {
        let io_err = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let open = || open_path(path, libc::O_RDONLY | libc::O_DIRECTORY);
        let mut opened = open();
        let mut made = false;
        if create
            && opened
                .as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
        {
            made = true;
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(path)
                .map_err(io_err)?;
            opened = open();
        }
        let fd = match opened {
            Ok(f) => OwnedFd::from(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(e)),
        };
        if made {
            adjust_shared(&fd, true);
        }
        Ok(Some(Dir {
            fd,
            path: path.to_path_buf(),
        }))
    }

    /// Open a parent directory given by the caller (not inside a store), following symlinks.
    pub fn open_plain(path: &Path) -> Result<Dir, StoreError> {
        Dir::root(path, true)?.ok_or_else(|| StoreError::Io {
            path: path.to_path_buf(),
            source: io::ErrorKind::NotFound.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, name: &OsStr) -> impl FnOnce(io::Error) -> StoreError {
        let path = self.path.join(name);
        move |source| StoreError::Io { path, source }
    }

    fn refused(&self, name: &OsStr, found: Kind, want: &str) -> StoreError {
        StoreError::Refused {
            path: self.path.join(name),
            why: format!("{} where the store keeps {want}", found.describe()),
        }
    }

    /// What `name` is, without following it; None when there is nothing.
    pub fn stat(&self, name: &OsStr) -> Result<Option<libc::stat>, StoreError> {
        let c = cstr(name).map_err(self.io(name))?;
        // SAFETY: fstatat only writes the struct it is given
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::NotFound {
                return Ok(None);
            }
            return Err(self.io(name)(e));
        }
        Ok(Some(st))
    }

    pub fn kind(&self, name: &OsStr) -> Result<Option<Kind>, StoreError> {
        Ok(self.stat(name)?.map(|st| Kind::of(st.st_mode)))
    }

    /// The error for an entry an open refused (ELOOP, ENOTDIR...): say what is there instead.
    fn explain(&self, name: &OsStr, e: io::Error, want: &str) -> StoreError {
        match self.kind(name) {
            Ok(Some(k)) if k != Kind::File && k != Kind::Dir => self.refused(name, k, want),
            Ok(Some(k)) if (k == Kind::Dir) != (want == "a directory") => {
                self.refused(name, k, want)
            }
            _ => self.io(name)(e),
        }
    }

    /// A subdirectory, never through a symlink; created (0755 under the umask) when asked.
    /// None when it does not exist and `create` is false.
    pub fn sub(&self, name: &OsStr, create: bool) -> Result<Option<Dir>, StoreError> {
        self.sub_with(name, create, DIR_MODE, true)
    }

    /// A subdirectory this user alone may change (made 0700 when asked): None when it is
    /// missing, or owned by another user, or writable by the group or others.
    pub fn sub_private(&self, name: &OsStr, create: bool) -> Result<Option<Dir>, StoreError> {
        let Some(d) = self.sub_with(name, create, 0o700, false)? else {
            return Ok(None);
        };
        let st = fstat(&d.fd).map_err(self.io(name))?;
        Ok((mine(&st) && st.st_mode & 0o022 == 0).then_some(d))
    }

    fn sub_with(
        &self,
        name: &OsStr,
        create: bool,
        mode: u32,
        shared: bool,
    ) -> Result<Option<Dir>, StoreError> {
        let c = cstr(name).map_err(self.io(name))?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let open = || {
            // SAFETY: openat with a NUL-terminated name
            let fd = unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags) };
            if fd < 0 {
                Err(io::Error::last_os_error())
            } else {
                // SAFETY: a descriptor openat just gave us
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            }
        };
        // open first: the directories a step uses exist but for its first time, and a failed
        // mkdirat on every level of every path cost each step a dozen system calls
        let mut made = false;
        let fd = match open() {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                // SAFETY: mkdirat with a NUL-terminated name; it never follows a final symlink
                let r = unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), mode) };
                if r == 0 {
                    made = true;
                } else {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::AlreadyExists {
                        return Err(self.io(name)(e));
                    }
                }
                open().map_err(|e| self.explain(name, e, "a directory"))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.explain(name, e, "a directory")),
        };
        if made && shared {
            adjust_shared(&fd, true);
        }
        Ok(Some(Dir {
            fd,
            path: self.path.join(name),
        }))
    }

    /// Walk down relative names (each one a plain name).
    pub fn walk<'a>(
        &self,
        names: impl IntoIterator<Item = &'a OsStr>,
        create: bool,
    ) -> Result<Option<Dir>, StoreError> {
        let mut it = names.into_iter();
        let Some(first) = it.next() else {
            return Ok(Some(self.dup()?));
        };
        let Some(mut d) = self.sub(first, create)? else {
            return Ok(None);
        };
        for n in it {
            let Some(next) = d.sub(n, create)? else {
                return Ok(None);
            };
            d = next;
        }
        Ok(Some(d))
    }

    /// A descriptor of our own on this directory.
    pub fn dup_fd(&self) -> Result<OwnedFd, StoreError> {
        self.fd.try_clone().map_err(|source| StoreError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn dup(&self) -> Result<Dir, StoreError> {
        Ok(Dir {
            fd: self.fd.try_clone().map_err(|source| StoreError::Io {
                path: self.path.clone(),
                source,
            })?,
            path: self.path.clone(),
        })
    }

    fn open_raw(&self, name: &OsStr, flags: libc::c_int, mode: u32) -> io::Result<File> {
        let c = cstr(name)?;
        let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
        // SAFETY: openat with a NUL-terminated name
        let fd = unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, mode) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor openat just gave us
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Check an opened entry is a regular file (O_NOFOLLOW refused symlinks already; the
    /// non-blocking open kept a FIFO from hanging us).
    fn regular(&self, name: &OsStr, f: &File, one_link: bool) -> Result<libc::stat, StoreError> {
        let st = fstat(f).map_err(self.io(name))?;
        let k = Kind::of(st.st_mode);
        if k != Kind::File {
            return Err(self.refused(name, k, "a file"));
        }
        if one_link && st.st_nlink != 1 {
            return Err(StoreError::Refused {
                path: self.path.join(name),
                why: format!(
                    "a file with {} hard links (writing it would change another file)",
                    st.st_nlink
                ),
            });
        }
        Ok(st)
    }

    /// A regular file's bytes; None when there is none.
    pub fn read(&self, name: &OsStr) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_owned(name, false)
    }

    /// `read`; with `private`, a file another user owns is refused.
    pub fn read_owned(&self, name: &OsStr, private: bool) -> Result<Option<Vec<u8>>, StoreError> {
        let f = match self.open_raw(name, libc::O_RDONLY, 0) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.explain(name, e, "a file")),
        };
        let st = self.regular(name, &f, false)?;
        if private && !mine(&st) {
            return Err(self.foreign(name));
        }
        // the size fstat gave: read that much and stop (`read_to_end` would ask for the size
        // and the position again, and read once more to see the end). A log appended to
        // meanwhile is read up to that size, as it was when opened.
        let size = usize::try_from(st.st_size).unwrap_or(0);
        read_up_to(&f, size).map(Some).map_err(self.io(name))
    }

    /// `read_owned` of a file of ours, mapped rather than read when it is `map_from` bytes
    /// or more: the page cache's own pages, with no copy into new memory, of which a lookup
    /// that scans from the end touches only the last few (a log of the user's cache may
    /// grow to a megabyte). A smaller one is read: into the heap, it costs less than a
    /// mapping's system calls, page faults and unmapping. Only for files no one else may
    /// write (the user's own cache, a 0700 directory): a file truncated under a mapping
    /// would stop the process at the next read, and nothing of ours truncates a log or the
    /// snapshot (both are replaced by a rename).
    pub fn load_owned(&self, name: &OsStr, map_from: usize) -> Result<Option<Loaded>, StoreError> {
        let f = match self.open_raw(name, libc::O_RDONLY, 0) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.explain(name, e, "a file")),
        };
        let st = self.regular(name, &f, false)?;
        if !mine(&st) {
            return Err(self.foreign(name));
        }
        let len = usize::try_from(st.st_size).unwrap_or(0);
        let loaded = if len >= map_from {
            Mapped::of(&f, len).map(Loaded::Mapped)
        } else {
            read_up_to(&f, len).map(Loaded::Read)
        };
        loaded.map(Some).map_err(self.io(name))
    }

    /// Open a log for appending, creating it (0644 under the umask). Only a regular file with
    /// one link: appending to a hard link would write to a file outside the store.
    pub fn open_append(&self, name: &OsStr) -> Result<File, StoreError> {
        let f = self
            .open_raw(
                name,
                // read too: the hash cache reads what others appended since (Shard::catch_up)
                libc::O_RDWR | libc::O_APPEND | libc::O_CREAT,
                FILE_MODE,
            )
            .map_err(|e| self.explain(name, e, "a file"))?;
        let st = self.regular(name, &f, true)?;
        if shared_group() && st.st_size == 0 {
            adjust_shared(&OwnedFd::from(f.try_clone().map_err(self.io(name))?), false);
        }
        Ok(f)
    }

    /// `open_append`; with `private`, a file another user owns is refused.
    pub fn open_append_owned(&self, name: &OsStr, private: bool) -> Result<File, StoreError> {
        let f = self.open_append(name)?;
        if private && !fstat(&f).is_ok_and(|st| mine(&st)) {
            return Err(self.foreign(name));
        }
        Ok(f)
    }

    fn foreign(&self, name: &OsStr) -> StoreError {
        StoreError::Refused {
            path: self.path.join(name),
            why: "a file another user owns in this user's own cache".into(),
        }
    }

    /// Open (creating) a lock file: never written, so only its type matters.
    pub fn open_lock(&self, name: &OsStr) -> Result<File, StoreError> {
        let f = self
            .open_raw(name, libc::O_RDONLY | libc::O_CREAT, FILE_MODE)
            .map_err(|e| self.explain(name, e, "a file"))?;
        self.regular(name, &f, false)?;
        Ok(f)
    }

    /// Write a new file whole under a temporary name, then rename it to `name` (replacing a
    /// regular file there; refusing anything else). Readers see the old file or the new one.
    pub fn write_replace(&self, name: &OsStr, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
        match self.kind(name)? {
            None | Some(Kind::File) => {}
            Some(k) => return Err(self.refused(name, k, "a file")),
        }
        let (tmp, mut f) = self.create_temp(mode)?;
        let done = f
            .write_all(bytes)
            .map_err(self.io(name))
            .and_then(|()| self.rename(&tmp, name));
        if done.is_err() {
            self.unlink(&tmp);
        }
        done
    }

    /// Create a new temporary file (`is_temp`, skipped by readers) with `O_EXCL`.
    fn create_temp(&self, mode: u32) -> Result<(OsString, File), StoreError> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        for _ in 0..100 {
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let name = OsString::from(format!(
                "{TEMP}{:x}.{:x}.{:x}",
                std::process::id(),
                n,
                nanos.wrapping_add(n.wrapping_mul(7919))
            ));
            match self.open_raw(&name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, mode) {
                Ok(f) => {
                    if shared_group() {
                        adjust_shared(
                            &OwnedFd::from(f.try_clone().map_err(self.io(&name))?),
                            false,
                        );
                    }
                    return Ok((name, f));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(self.io(&name)(e)),
            }
        }
        Err(self.io(OsStr::new(TEMP))(
            io::ErrorKind::AlreadyExists.into(),
        ))
    }

    fn rename(&self, from: &OsStr, to: &OsStr) -> Result<(), StoreError> {
        let (a, b) = (
            cstr(from).map_err(self.io(from))?,
            cstr(to).map_err(self.io(to))?,
        );
        let fd = self.fd.as_raw_fd();
        // SAFETY: renameat with NUL-terminated names; it replaces the entry, never follows it
        cvt(unsafe { libc::renameat(fd, a.as_ptr(), fd, b.as_ptr()) }).map_err(self.io(to))?;
        Ok(())
    }

    fn unlink(&self, name: &OsStr) {
        if let Ok(c) = cstr(name) {
            // SAFETY: unlinkat with a NUL-terminated name
            unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) };
        }
    }

    /// Remove the temporary files (`create_temp`'s) a killed writer left here. Only for a
    /// directory whose writers of whole files all hold one lock, the caller holding it now:
    /// another writer's file in progress would go too.
    pub fn remove_temps(&self) {
        for (name, kind) in self.entries().unwrap_or_default() {
            if kind == Kind::File && is_temp(&name) {
                self.unlink(&name);
            }
        }
    }

    /// The names in this directory (not `.` and `..`) with what each is (never followed).
    pub fn entries(&self) -> Result<Vec<(OsString, Kind)>, StoreError> {
        let io_err = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let mut out = Vec::new();
        for (name, dtype) in list(&self.fd).map_err(io_err)? {
            let kind = match dtype {
                libc::DT_REG => Kind::File,
                libc::DT_DIR => Kind::Dir,
                libc::DT_LNK => Kind::Symlink,
                _ => match self.kind(&name) {
                    Ok(Some(k)) => k,
                    _ => continue, // gone meanwhile
                },
            };
            out.push((name, kind));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// The names in the directory `dir` is a handle on (not `.` and `..`), each with its
/// `d_type`. Read with `getdents64` into a buffer on the stack through a descriptor of its own
/// (a duplicate would share its offset with the handle, which callers keep and reuse):
/// `opendir` has libc allocate, and a shim lists the journal at every step.
pub fn list(dir: &impl AsRawFd) -> io::Result<Vec<(OsString, u8)>> {
    // SAFETY: openat of "." below a directory descriptor the caller holds
    let raw = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: a descriptor openat just gave us
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: getdents64 fills at most `buf.len()` bytes of the buffer it is given.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = usize::try_from(n).unwrap_or(0);
        if n == 0 {
            return Ok(out);
        }
        // records: inode (8), offset (8), record length (2), type (1), NUL-ended name
        let mut at = 0;
        while at + 19 < n {
            let len = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            if len < 20 || at + len > n {
                break;
            }
            let name = &buf[at + 19..at + len];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                out.push((OsString::from_vec(name.to_vec()), buf[at + 18]));
            }
            at += len;
        }
    }
}

/// Owned by the user we run as.
fn mine(st: &libc::stat) -> bool {
    st.st_uid == euid()
}

/// A path's plain names below `root`, or None when it does not lie strictly inside it.
pub fn names_below<'a>(root: &Path, path: &'a Path) -> Option<Vec<&'a OsStr>> {
    let rel = path.strip_prefix(root).ok()?;
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Whether mappings stay when dropped (see `keep_mappings`).
static KEEP_MAPPINGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Leave every mapping in place until the process ends: a shim calls this, since unmapping
/// after its tool ran would flush the TLB of every CPU the tool ran on (see
/// `shim::keep_memory`), and a shim ends moments later.
pub fn keep_mappings() {
    KEEP_MAPPINGS.store(true, Ordering::Relaxed);
}

/// Whether this process keeps its mappings to the end (a shim; the musl heap asks too).
pub fn mappings_kept() -> bool {
    KEEP_MAPPINGS.load(Ordering::Relaxed)
}

/// A file's bytes as `Dir::load_owned` had them: read, or mapped.
pub enum Loaded {
    Read(Vec<u8>),
    Mapped(Mapped),
}

impl Loaded {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Loaded::Read(v) => v,
            Loaded::Mapped(m) => m.bytes(),
        }
    }
}

/// The first bytes of a file, mapped read-only and private.
pub struct Mapped {
    ptr: *const u8,
    len: usize,
}

// SAFETY: a read-only mapping that nothing writes through; it may be read from any thread
unsafe impl Send for Mapped {}
// SAFETY: as above
unsafe impl Sync for Mapped {}

impl Mapped {
    fn of(f: &File, len: usize) -> io::Result<Mapped> {
        if len == 0 {
            return Ok(Mapped {
                ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
                len: 0,
            });
        }
        // SAFETY: a new private read-only mapping of an open file; the result is checked
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapped { ptr: p.cast(), len })
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes mapped readable for as long as self lives
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len > 0 && !KEEP_MAPPINGS.load(Ordering::Relaxed) {
            // SAFETY: the mapping made in `of`, unmapped once
            unsafe { libc::munmap(self.ptr.cast_mut().cast(), self.len) };
        }
    }
}

/// Up to `size` bytes from the start of a file, in as few reads as the kernel allows (one,
/// for a file of that size; `read_to_end` starts with a small read and grows); fewer if the
/// file is shorter by now. The buffer is not zeroed first (the bytes read are the only ones
/// kept): zeroing a shared library's 200 KB costs more than reading it from the page cache.
pub(crate) fn read_up_to(f: &File, size: usize) -> io::Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(size);
    while out.len() < size {
        let n = out.len();
        // SAFETY: pread writes at most `size - n` bytes into the spare capacity after the
        // `n` bytes read so far, and returns how many it wrote; only those become part of
        // the vector.
        let k = unsafe {
            libc::pread(
                f.as_raw_fd(),
                out.as_mut_ptr().add(n).cast(),
                size - n,
                n as libc::off_t,
            )
        };
        match k {
            0 => break,
            // SAFETY: the `k` bytes after `n` were just written
            k if k > 0 => unsafe { out.set_len(n + k as usize) },
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_path_opens_close_on_exec_and_read_path_reads_all() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let f = open_path(&p, libc::O_RDONLY).unwrap();
        // SAFETY: F_GETFD on a descriptor we own
        let fl = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(fl & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        assert_eq!(read_path(&p).unwrap(), b"abc");
        let missing = t.path().join("none");
        assert_eq!(
            read_path(&missing).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // relative to the working directory, as std's File::open
        let rel = open_path(Path::new("."), libc::O_RDONLY | libc::O_DIRECTORY);
        assert!(rel.is_ok());
        assert_eq!(euid(), unsafe { libc::geteuid() });
    }

    #[test]
    fn load_owned_reads_small_files_maps_large_ones_and_refuses_the_rest() {
        assert_eq!(
            euid(),
            0,
            "this test gives a file to another user, which needs root"
        );
        let t = tempfile::tempdir().unwrap();
        let small: Vec<u8> = (0..100u8).collect();
        let large: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(t.path().join("small"), &small).unwrap();
        std::fs::write(t.path().join("large"), &large).unwrap();
        std::os::unix::fs::symlink("small", t.path().join("link")).unwrap();
        std::fs::write(t.path().join("theirs"), b"x").unwrap();
        std::os::unix::fs::chown(t.path().join("theirs"), Some(65534), Some(65534)).unwrap();
        let d = Dir::root(t.path(), false).unwrap().unwrap();
        let load = |name: &str| d.load_owned(OsStr::new(name), 64 << 10);
        match load("small").unwrap() {
            Some(Loaded::Read(b)) => assert_eq!(b, small),
            _ => panic!("a small file is read"),
        }
        match load("large").unwrap() {
            Some(Loaded::Mapped(m)) => assert_eq!(m.bytes(), &large[..]),
            _ => panic!("a large file is mapped"),
        }
        assert!(load("none").unwrap().is_none());
        // never through a symlink, never another user's file
        assert!(load("link").is_err());
        assert!(load("theirs").is_err());
    }
}
