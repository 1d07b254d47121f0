//! The slow real-world builds that several tests inspect, made once per run of the test binary
//! (on first use) and shared: xz-utils unpatched and patched, each under `omnishim run`.
//!
//! A build runs to its end inside the fixture (the unpatched one also runs `make check`), so no
//! test ever sees a tree that is still changing; tests only read the trees and their stores.
//! They live under `target/tmp/shared` (wiped per build when a run makes it again).

use crate::corpus::corpus;
use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// One wrapped build of xz-utils.
pub struct Xz {
    /// The built tree.
    pub src: PathBuf,
    /// The build's store.
    pub store: PathBuf,
    /// The public key whose private half signed the top-level outputs (`run --sign`).
    pub public_key: PathBuf,
    /// The last line `omnishim run` printed (its summary) and the signing line before it.
    pub summary: String,
}

impl Xz {
    /// The top-level outputs `run --sign` attested (an OUTPUT.intoto.json beside each), sorted.
    pub fn signed_outputs(&self) -> Vec<PathBuf> {
        let mut outputs = Vec::new();
        let mut stack = vec![self.src.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() && !p.is_symlink() {
                    stack.push(p);
                } else if let Some(out) = p
                    .to_str()
                    .and_then(|s| s.strip_suffix(".intoto.json"))
                    .map(PathBuf::from)
                {
                    outputs.push(out);
                }
            }
        }
        outputs.sort();
        outputs
    }
}

static XZ: [OnceLock<Result<Xz, String>>; 2] = [OnceLock::new(), OnceLock::new()];

/// xz-utils as Debian ships its upstream tarball (`patched` false: before Debian's fix of
/// CVE-2025-31115) or with Debian's patches applied, configured with `-O2 -g`, built with
/// `make -j2` under `omnishim run --sign`. A failed build fails every test using it with its
/// message (built once: the others do not try again).
pub fn xz(patched: bool) -> &'static Xz {
    let r = XZ[usize::from(patched)].get_or_init(|| {
        std::panic::catch_unwind(|| build_xz(patched)).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    match r {
        Ok(x) => x,
        Err(e) => panic!("the shared xz-utils build failed: {e}"),
    }
}

fn build_xz(patched: bool) -> Xz {
    for t in ["make", "gcc", "ld", "ar"] {
        need(t);
    }
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("shared")
        .join(if patched { "xz-patched" } else { "xz-orig" });
    if base.exists() {
        std::fs::remove_dir_all(&base).unwrap();
    }
    std::fs::create_dir_all(&base).unwrap();
    let src = base.join("xz");
    corpus("xz-utils", !patched, &src);
    let store = base.join("store");
    let key = base.join("signer");
    run_ok(omnishim(&["keygen", "--type", "ed25519", "-o"]).arg(&key));
    let t0 = Instant::now();
    let out = run_ok(
        omnishim(&["run", "--store"])
            .arg(&store)
            .arg("--sign")
            .arg(base.join("signer.key"))
            .args([
                "--",
                "sh",
                "-c",
                "./configure --disable-nls --disable-doc CFLAGS='-O2 -g' >/dev/null \
                 && make -j2 >/dev/null",
            ])
            .current_dir(&src)
            .env_remove("CC")
            .env_remove("CXX")
            .env_remove("OMNISHIM_CHAIN"),
    );
    let secs = t0.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().rev().take(2).collect();
    let summary = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(
        summary.contains("steps recorded") && summary.contains("top-level outputs signed"),
        "{err}"
    );
    if !patched {
        // the package's own tests, run on the wrapped build's binaries
        run_ok(
            Command::new("make")
                .args(["-j2", "check"])
                .current_dir(&src),
        );
    }
    eprintln!(
        "shared build: xz-utils {} under run --sign: {secs:.1} s\n{summary}",
        if patched { "patched" } else { "unpatched" }
    );
    Xz {
        src,
        store,
        public_key: base.join("signer.pub"),
        summary,
    }
}
