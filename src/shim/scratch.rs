//! A step's scratch files: our depfiles, the linker's dependency file, a placeholder object,
//! a response file (a link map is always a real file: lld first tries a map's path by making
//! a file beside it).
//!
//! Where the real tool is a compiler driver or linker binary (not a wrapper such as ccache,
//! not a script), each file is an anonymous memory file (`memfd_create`) that the tool opens
//! by the name `/proc/<our pid>/fd/<n>`: no directory to make, lock and remove per step
//! (those cost a step about 0.17 ms of CPU here), and nothing a kill can leave behind. Such
//! tools open the paths they are given and write them in place; a wrapper may write through
//! a temporary file renamed over the path, which cannot work there, so any other tool gets
//! a private directory (see `inflight::PrivateDir`), as does a system where the name does
//! not lead back to the memory file (no /proc, another pid namespace's /proc).

use super::inflight::PrivateDir;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub struct Scratch {
    /// Memory files may be used (None: the tool may have them, not known yet whether
    /// their names reach them).
    memory: Option<bool>,
    /// The memory files by the names handed out, held open for the step's life (the tool
    /// reaches them through ours).
    files: Vec<(PathBuf, std::fs::File)>,
    /// The private directory, made at the first file that needs it.
    dir: Option<PrivateDir>,
}

/// The file a path names once symlinks in its last component are followed (enough to know
/// what the file is called; `canonicalize` would also resolve every directory).
fn final_target(tool: &Path) -> Option<PathBuf> {
    let mut p = tool.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&p) {
            Ok(t) if t.is_absolute() => p = t,
            Ok(t) => p = p.parent()?.join(t),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Some(p),
            Err(_) => return None,
        }
    }
    None
}

/// The tool opens the paths it is given itself: an ELF executable whose real name (links
/// followed) is a compiler driver or a linker.
fn opens_paths_itself(tool: &Path) -> bool {
    let Some(real) = final_target(tool) else {
        return false;
    };
    let Some(name) = real.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    // lld's one binary is reached as ld.lld
    let known = crate::classify::family_of(name).is_some() || name == "lld";
    // compiler caches and wrappers may write through a temporary file
    known
        && !super::find::is_wrapper(name)
        && super::record::head(&real).is_ok_and(|h| crate::elf::is_elf(&h))
}

fn memfd(name: &str) -> std::io::Result<OwnedFd> {
    let c =
        CString::new(name).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid C string; the result is checked and owned.
    let fd = unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just made and own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The name other processes reach our descriptor by.
fn proc_name(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        fd.as_raw_fd()
    ))
}

fn identity(fd: &impl AsRawFd) -> Option<(u64, u64)> {
    crate::store::fstat(fd)
        .ok()
        .map(|st| (st.st_dev, st.st_ino))
}

/// The name leads back to the very memory file (a /proc of this pid namespace).
fn reachable(fd: &OwnedFd) -> bool {
    crate::store::open_path(&proc_name(fd), libc::O_RDONLY)
        .ok()
        .and_then(|f| identity(&f))
        .is_some_and(|id| Some(id) == identity(fd))
}

impl Scratch {
    /// Scratch files for a step whose real tool is `tool`.
    pub fn new(tool: &Path) -> Scratch {
        Scratch {
            memory: (!opens_paths_itself(tool)).then_some(false),
            files: Vec::new(),
            dir: None,
        }
    }

    fn memory_file(&mut self, name: &str) -> Option<OwnedFd> {
        if self.memory == Some(false) {
            return None;
        }
        let fd = memfd(name).ok();
        if self.memory.is_none() {
            self.memory = Some(fd.as_ref().is_some_and(reachable));
        }
        fd.filter(|_| self.memory == Some(true))
    }

    fn dir(&mut self) -> std::io::Result<&Path> {
        let d = match self.dir.take() {
            Some(d) => d,
            None => super::private_tmp()?,
        };
        Ok(self.dir.insert(d).path())
    }

    /// An empty file for the tool to write (`name` names it in the private directory).
    pub fn file(&mut self, name: &str) -> std::io::Result<PathBuf> {
        self.file_with(name, &[])
    }

    /// A file holding `bytes`, for the tool to read.
    pub fn file_with(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        if let Some(fd) = self.memory_file(name) {
            let p = proc_name(&fd);
            let mut f = std::fs::File::from(fd);
            f.write_all(bytes)?;
            self.files.push((p.clone(), f));
            return Ok(p);
        }
        let p = self.dir()?.join(name);
        if !bytes.is_empty() {
            std::fs::write(&p, bytes)?;
        }
        Ok(p)
    }

    /// What a scratch file (or any other file) holds now: ours are read through the
    /// descriptor we hold, without opening their /proc name again. A memory file is there
    /// from the start, so one the tool left empty reads as a file it did not write (every
    /// list a tool writes us names at least its output).
    pub fn read(&self, p: &Path) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        match self.files.iter().find(|(q, _)| q == p) {
            Some((_, f)) => {
                let mut b = Vec::new();
                let mut f = f;
                std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0))?;
                f.read_to_end(&mut b)?;
                if b.is_empty() {
                    return Err(std::io::ErrorKind::NotFound.into());
                }
                Ok(b)
            }
            None => crate::store::read_path(p),
        }
    }

    /// A path in the private directory (for a file the tool makes itself, such as an
    /// assembler's object).
    pub fn dir_path(&mut self, name: &str) -> std::io::Result<PathBuf> {
        Ok(self.dir()?.join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_file_is_reached_by_its_name_and_a_script_gets_a_directory() {
        let gcc = Path::new("/usr/bin/gcc");
        let mut s = Scratch::new(gcc);
        let p = s.file_with("t", b"abc").unwrap();
        assert!(p.starts_with("/proc"), "{}", p.display());
        // another process writes it by name, and we read what it wrote
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf xyz > {}", p.display()))
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(std::fs::read(&p).unwrap(), b"xyz");
        let dir =
            std::env::temp_dir().join(format!("omnishim-scratch-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("gcc");
        std::fs::write(&script, "#!/bin/sh\nexec gcc \"$@\"\n").unwrap();
        let mut s = Scratch::new(&script);
        let p = s.file("d").unwrap();
        assert!(!p.starts_with("/proc"), "{}", p.display());
        drop(s);
        assert!(!p.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
