//! Finding the real tool behind a shim, so that a shim can never run itself.
//!
//! Every tool we start gets `OMNISHIM_CHAIN` in its environment: the tools already chosen on
//! the way down, and the mark that a shim is already recording this step. A shim reached again
//! below (ccache or distcc calling `gcc` from PATH, collect2 calling `ld`) skips itself and
//! every tool in the chain, and records nothing: the outermost shim records the step.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const CHAIN_ENV: &str = "OMNISHIM_CHAIN";
/// More tools than this in one chain is a loop (a PATH that leads back to us).
const MAX_CHAIN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("cannot find the real '{0}' on PATH (other than omnishim itself)")]
    NotFound(String),
    #[error("loop: '{name}' leads back to omnishim again and again (chain: {chain}); check PATH and the OMNIBOR_CC/OMNIBOR_CXX settings")]
    Loop { name: String, chain: String },
}

/// Identity of a file: (device, inode).
fn identity(p: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// Identity of the running binary: a `stat` through /proc's link to it (one system call
/// where `current_exe` reads the link and then the path).
pub fn self_identity() -> Option<(u64, u64)> {
    identity(Path::new("/proc/self/exe"))
}

/// The chain of tools already chosen above us, from the environment.
pub fn chain_from_env() -> Vec<PathBuf> {
    std::env::var_os(CHAIN_ENV)
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Are we below another shim of the same step?
pub fn nested() -> bool {
    std::env::var_os(CHAIN_ENV).is_some()
}

pub fn chain_value(chain: &[PathBuf]) -> OsString {
    std::env::join_paths(chain).unwrap_or_default()
}

/// Resolves program names to real tools, never to this executable.
pub struct Finder {
    self_id: Option<(u64, u64)>,
    path: Vec<PathBuf>,
    chain: Vec<PathBuf>,
    chain_ids: Vec<(u64, u64)>,
}

impl Finder {
    pub fn new() -> Finder {
        let self_id = self_identity();
        let path = std::env::var_os("PATH")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        let chain = chain_from_env();
        let chain_ids = chain.iter().filter_map(|p| identity(p)).collect();
        Finder {
            self_id,
            path,
            chain,
            chain_ids,
        }
    }

    /// Is this path us (a link to, or a copy at the same inode of, the running binary)?
    pub fn is_self(&self, p: &Path) -> bool {
        identity(p).is_some_and(|id| Some(id) == self.self_id)
    }

    fn usable(&self, p: &Path) -> bool {
        // one stat for the three questions (every PATH lookup of every step asks them)
        let Ok(m) = std::fs::metadata(p) else {
            return false;
        };
        let id = (m.dev(), m.ino());
        m.is_file()
            && m.mode() & 0o111 != 0
            && Some(id) != self.self_id
            && !self.chain_ids.contains(&id)
    }

    /// A program name (looked up on PATH) or path, resolved to a real tool.
    pub fn find(&self, name: &str) -> Result<PathBuf, FindError> {
        if self.chain.len() >= MAX_CHAIN {
            return Err(FindError::Loop {
                name: name.to_string(),
                chain: self
                    .chain
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" -> "),
            });
        }
        if name.contains('/') {
            let p = PathBuf::from(name);
            return if self.usable(&p) {
                Ok(p)
            } else {
                Err(FindError::NotFound(name.to_string()))
            };
        }
        for dir in &self.path {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let cand = dir.join(name);
            if self.usable(&cand) {
                return Ok(cand);
            }
        }
        Err(FindError::NotFound(name.to_string()))
    }

    /// Does this name resolve to some executable (used to tell `omnibor-cc gcc ...` from
    /// `omnibor-cc x.c ...`)?
    pub fn resolves(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// The chain to hand to a tool we start.
    pub fn chain_with(&self, tool: &Path) -> Vec<PathBuf> {
        let mut c = self.chain.clone();
        c.push(tool.to_path_buf());
        c
    }
}

impl Default for Finder {
    fn default() -> Self {
        Finder::new()
    }
}

/// Compiler wrappers that take the compiler as their first argument.
pub fn is_wrapper(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    matches!(
        base,
        "ccache" | "distcc" | "icecc" | "sccache" | "buildcache"
    )
}
