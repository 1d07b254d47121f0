//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The multicall binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_omnishim"))
}

pub fn omnishim(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    c.env_remove("OMNIBOR_DIR").env_remove("OMNIBOR_STRICT");
    c
}

pub struct Tmp {
    pub dir: tempfile::TempDir,
}

impl Tmp {
    pub fn new() -> Tmp {
        Tmp {
            dir: tempfile::Builder::new()
                .prefix("omnishim-test")
                .tempdir()
                .expect("tempdir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

/// Run a command, panic with its output if it fails.
pub fn run_ok(c: &mut Command) -> Output {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(c: &mut Command) -> String {
    String::from_utf8(run_ok(c).stdout).unwrap()
}

/// A tool the tests need must be there: scripts/test installs it; a missing one fails.
pub fn need(tool: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !p.is_empty(),
        "required tool '{tool}' is missing: run scripts/test, which installs it"
    );
    PathBuf::from(p)
}
