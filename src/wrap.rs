//! `omnishim run -- <build>`: a masquerade directory first on PATH, one store for every step,
//! and a summary at the end.

use crate::classify::family_of;
use crate::elf;
use crate::gitoid::Id;
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Tool names every shim directory has, whatever is installed (and, with a toolchain prefix,
/// `<prefix>-<name>` for each).
pub const TOOL_NAMES: &[&str] = &[
    "cc",
    "c++",
    "gcc",
    "g++",
    "clang",
    "clang++",
    "ld",
    "ld.bfd",
    "ld.gold",
    "ld.lld",
    "ar",
    "ranlib",
    "gcc-ar",
    "gcc-ranlib",
];

/// The shims' own names.
pub const OWN_NAMES: &[&str] = &["omnibor-cc", "omnibor-c++", "omnibor-ld", "omnibor-ar"];

/// Create (or complete) a shim directory: links to this binary named like the tools, plus
/// every tool name of a known family found on `path` (cross prefixes, versions) and the
/// given prefixes (`aarch64-linux-gnu` gives `aarch64-linux-gnu-gcc`, `-ld`...).
pub fn make_shim_dir(
    dir: &Path,
    exe: &Path,
    path: &[PathBuf],
    prefixes: &[String],
) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut names: BTreeSet<String> = OWN_NAMES
        .iter()
        .chain(TOOL_NAMES)
        .map(|s| s.to_string())
        .collect();
    for p in path {
        if p == dir {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(p) else {
            continue;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if family_of(&n).is_some() {
                names.insert(n);
            }
        }
    }
    for pre in prefixes {
        for t in TOOL_NAMES {
            names.insert(format!("{pre}-{t}"));
        }
    }
    for n in &names {
        let link = dir.join(n);
        let ok = std::fs::read_link(&link).is_ok_and(|t| t == exe);
        if !ok {
            let _ = std::fs::remove_file(&link);
            // another process may have made it meanwhile: fine as long as it is there
            if let Err(e) = std::os::unix::fs::symlink(exe, &link) {
                if e.kind() != std::io::ErrorKind::AlreadyExists {
                    return Err(e);
                }
            }
        }
    }
    Ok(names.into_iter().collect())
}

/// What `omnishim run` set up: the store and its shim directory.
struct Setup {
    root: PathBuf,
    shims: PathBuf,
}

fn setup(store_root: &Path, path: &[PathBuf]) -> anyhow::Result<Setup> {
    use anyhow::Context;
    std::fs::create_dir_all(store_root).with_context(|| store_root.display().to_string())?;
    let root =
        std::fs::canonicalize(store_root).with_context(|| store_root.display().to_string())?;
    let exe = std::env::current_exe().context("cannot find the omnishim binary")?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let shims = root.join("metadata").join(crate::store::TOOL).join("shims");
    // the shim directory is the one place in the store that holds symlinks (ours): reach it
    // without following any
    Store::at(&root)
        .make_dir(&shims)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(make_shim_dir(&shims, &exe, path, &[])?))
        .with_context(|| format!("cannot make the shim directory {}", shims.display()))?;
    Ok(Setup { root, shims })
}

/// Run a build under the shims; returns its exit status code. Like the shims, it fails
/// open: a store it cannot set up (read-only, another user's) is one warning and the build
/// runs unwrapped; with `OMNIBOR_STRICT=1` it is an error and the build does not run.
pub fn run(store_root: &Path, cmd: &[OsString]) -> anyhow::Result<i32> {
    Ok(run_outputs(store_root, cmd)?.0)
}

/// `run`, also returning the run's top-level outputs (as the summary names them; none when
/// the build ran unwrapped).
pub fn run_outputs(store_root: &Path, cmd: &[OsString]) -> anyhow::Result<(i32, Vec<PathBuf>)> {
    use anyhow::Context;
    let (prog, args) = cmd.split_first().context("no command to run")?;
    let path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    let mut c = std::process::Command::new(prog);
    c.args(args);
    let set = match setup(store_root, &path) {
        Ok(s) => Some(s),
        Err(e) if crate::shim::strict() => return Err(e),
        Err(e) => {
            eprintln!(
                "omnishim: warning: not recording: {}; running the build without the shims",
                crate::cli::one_line(&e)
            );
            None
        }
    };
    let mut before = None;
    if let Some(Setup { root, shims }) = &set {
        // outputs of steps a killed build left unrecorded: marked out of date before the
        // build looks at them, so that it redoes them
        crate::shim::inflight::reap_store(root);
        crate::shim::reap_private_dirs();
        let store = Store::at(root);
        let mut new_path = vec![shims.clone()];
        new_path.extend(path.iter().filter(|p| *p != shims).cloned());
        let log = store.steps_log();
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        before = Some((store, log, log_start, count_objects(root)));
        c.env("PATH", std::env::join_paths(&new_path)?)
            .env("OMNIBOR_DIR", root)
            .env_remove(crate::shim::find::CHAIN_ENV);
        // the steps of a recursive make read headers across the tree: the store's hash
        // cache keeps those, not the user's (see `HashCache::for_step`)
        match std::env::current_dir() {
            Ok(tree) => c.env(crate::store::BUILD_TREE_ENV, tree),
            Err(_) => c.env_remove(crate::store::BUILD_TREE_ENV),
        };
        // CMake and Meson keep the absolute compiler path they find at configure time: point
        // CC and CXX at the shims (by the name the user chose, when it has a link).
        for (var, default) in [("CC", "cc"), ("CXX", "c++")] {
            let name = std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty() && !v.contains(' '));
            let base = name
                .as_deref()
                .map(|n| n.rsplit('/').next().unwrap_or(n).to_string())
                .unwrap_or_else(|| default.to_string());
            let link = shims.join(&base);
            if link.exists() && name.as_deref().is_none_or(|n| !n.contains('/')) {
                c.env(var, &link);
            }
        }
    }
    let status = crate::shim::run::run(c)
        .with_context(|| format!("cannot run {}", prog.to_string_lossy()))?;
    let mut top = Vec::new();
    if let Some((store, log, log_start, objects_before)) = before {
        top = summary(&store, &log, log_start, objects_before);
    }
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(1));
    Ok((code, top))
}

/// The reasons steps were not recorded, most frequent first: a few, each kept short (a
/// failure's reason is its warning text, and a build may have many distinct ones); the
/// step log has them all.
fn not_recorded_text(reasons: &BTreeMap<String, usize>, log: &Path) -> String {
    const SHOWN: usize = 5;
    const WIDTH: usize = 100;
    let mut by_count: Vec<(&String, &usize)> = reasons.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = by_count
        .iter()
        .take(SHOWN)
        .map(|(r, n)| {
            let short: String = if r.chars().count() > WIDTH {
                r.chars().take(WIDTH - 3).collect::<String>() + "..."
            } else {
                r.to_string()
            };
            format!("{n} ({short})")
        })
        .collect();
    if by_count.len() > SHOWN {
        let rest: usize = by_count[SHOWN..].iter().map(|(_, n)| **n).sum();
        parts.push(format!(
            "{rest} for {} other reasons (see {})",
            by_count.len() - SHOWN,
            log.display()
        ));
    }
    parts.join(", ")
}

fn count_objects(root: &Path) -> usize {
    let mut n = 0;
    for alg in ["sha1", "sha256"] {
        let d = root.join("objects").join(format!("gitoid_blob_{alg}"));
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        for sub in rd.flatten() {
            n += std::fs::read_dir(sub.path())
                .map(|r| r.count())
                .unwrap_or(0);
        }
    }
    n
}

/// One paragraph on stderr: steps recorded, not recorded (with reasons), manifests written,
/// top-level outputs (recorded outputs no other recorded output of this run took as input).
fn summary(store: &Store, log: &Path, start: u64, objects_before: usize) -> Vec<PathBuf> {
    let text = store.read_file(log).ok().flatten().unwrap_or_default();
    let new = text.get(start as usize..).unwrap_or(&[]);
    let mut recorded = 0;
    let mut self_us = 0u64;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut outputs: Vec<PathBuf> = Vec::new();
    for line in String::from_utf8_lossy(new).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        self_us += v["self_us"].as_u64().unwrap_or(0);
        if v["status"] == "interrupted" {
            continue; // a killed earlier build's output, warned about at the start
        }
        if v["status"] == "recorded" {
            recorded += 1;
            for o in v["outputs"].as_array().into_iter().flatten() {
                if let Some(s) = o.as_str() {
                    outputs.push(PathBuf::from(s));
                }
            }
        } else {
            *reasons
                .entry(v["reason"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
    }
    outputs.sort();
    outputs.dedup();
    // which outputs feed others
    let cache = crate::store::HashCache::new(store);
    let mut consumed: HashSet<Id> = HashSet::new();
    let mut ids: Vec<(PathBuf, Id)> = Vec::new();
    for o in &outputs {
        // the shims remembered their outputs' IDs: no second hash of them
        let Ok(i) = cache.ids(o) else {
            continue;
        };
        ids.push((o.clone(), i.sha1));
        let m = elf::read_note_file(o)
            .ok()
            .and_then(|n| n.sha1)
            .or_else(|| store.get_target(&i.sha1));
        if let Some(m) = m.and_then(|m| store.get_manifest(&m).ok()) {
            consumed.extend(m.inputs.keys().copied());
        }
    }
    let top_paths: Vec<PathBuf> = ids
        .iter()
        .filter(|(_, id)| !consumed.contains(id))
        .map(|(p, _)| p.clone())
        .collect();
    let top: Vec<String> = top_paths.iter().map(|p| p.display().to_string()).collect();
    let not = not_recorded_text(&reasons, log);
    let manifests = count_objects(store.root()).saturating_sub(objects_before);
    eprintln!(
        "omnishim: {recorded} steps recorded; {} not recorded{}{}; {manifests} new manifests in {}; the shims' own CPU time {:.2} s; top-level outputs: {}",
        reasons.values().sum::<usize>(),
        if not.is_empty() { "" } else { ": " },
        not,
        store.root().display(),
        self_us as f64 / 1e6,
        if top.is_empty() { "none".to_string() } else { top.join(" ") }
    );
    top_paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_recorded_reasons_most_frequent_first_short_and_capped() {
        let mut r: BTreeMap<String, usize> = BTreeMap::new();
        assert_eq!(not_recorded_text(&r, Path::new("/s/steps.log")), "");
        r.insert("output to standard output".into(), 2);
        r.insert(format!("x.o: {}", "y".repeat(200)), 1);
        let text = not_recorded_text(&r, Path::new("/s/steps.log"));
        assert!(
            text.starts_with("2 (output to standard output), 1 (x.o: yyy"),
            "{text}"
        );
        assert!(text.ends_with("y...)"), "{text}");
        assert!(text.len() < 150, "{text}");
        for i in 0..6 {
            r.insert(format!("reason {i}"), 1);
        }
        let text = not_recorded_text(&r, Path::new("/s/steps.log"));
        assert_eq!(text.matches(" (").count(), 6, "{text}");
        assert!(
            text.ends_with(", 3 for 3 other reasons (see /s/steps.log)"),
            "{text}"
        );
    }
}
