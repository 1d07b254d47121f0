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

/// A directory of shim links: the `omnibor-*` names, and masquerade names when asked.
pub fn shim_dir(t: &Tmp, masquerade: &[&str]) -> PathBuf {
    let d = t.join("shims");
    std::fs::create_dir_all(&d).unwrap();
    for n in [
        "omnibor-cc",
        "omnibor-c++",
        "omnibor-ld",
        "omnibor-ar",
        "omnishim",
    ]
    .iter()
    .chain(masquerade)
    {
        let l = d.join(n);
        if !l.exists() {
            std::os::unix::fs::symlink(bin(), &l).unwrap();
        }
    }
    d
}

/// PATH with `dir` first.
pub fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut v = vec![dir.to_path_buf()];
    v.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(v).unwrap()
}

/// A command run the way a build would run it under the shims.
pub fn shimmed(t: &Tmp, program: &str, store: &Path) -> Command {
    let d = shim_dir(t, &[]);
    let mut c = Command::new(program);
    c.env("PATH", path_with(&d))
        .env("OMNIBOR_DIR", store)
        .env_remove("OMNIBOR_STRICT")
        .env_remove("OMNISHIM_CHAIN")
        .env_remove("OMNIBOR_CC")
        .env_remove("OMNIBOR_CXX");
    c
}

/// A recorded program `prog` (m.c linked with a.o, both built with -g under the shims) and
/// its store: the temp dir and the store path.
pub fn recorded_prog() -> (Tmp, PathBuf) {
    let t = Tmp::new();
    let store = t.join("store");
    t.write("a.c", "int a(void){return 1;}\n");
    t.write("m.c", "int a(void);\nint main(void){return a()-1;}\n");
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-g", "-c", "a.c"]),
    );
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-g", "m.c", "a.o", "-o", "prog"]),
    );
    (t, store)
}

/// The absolute `.c` paths among `resolve --sources` lines.
pub fn c_source_paths(store: &Path, file: &Path) -> std::collections::BTreeSet<String> {
    let out = stdout(
        omnishim(&["resolve", "--sources", "--store"])
            .arg(store)
            .arg(file),
    );
    out.lines()
        .filter_map(|l| l.split("  ").next())
        .filter(|p| p.ends_with(".c"))
        .map(String::from)
        .collect()
}

/// `recorded_prog` as a value: the program `prog` and its store, for tests that add their
/// own methods (attest, verdict).
pub struct Built {
    pub t: Tmp,
    pub store: PathBuf,
}

impl Built {
    pub fn new() -> Built {
        let (t, store) = recorded_prog();
        Built { t, store }
    }
    pub fn prog(&self) -> PathBuf {
        self.t.join("prog")
    }
}

/// Every file below `dir`: relative path -> bytes.
pub fn tree_of(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}
