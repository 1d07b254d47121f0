//! `omnishim deny`: deny lists derived from upstream history (`deny git`) and from OSV
//! advisories (`deny osv`), in the format `check --deny` reads.
//!
//! Both reduce to one computation over a clone (read with gitoid's `gix`, never by running
//! `git`): a set V of vulnerable commits, the affected paths N, and the blobs at each path of
//! N in each commit of V. See `history` for the exact definitions (also in the README).

pub mod history;
pub mod osv;

use crate::gitoid::{self, Alg, Id};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DenyError {
    /// The repository could not be opened or read.
    #[error("{}: {msg}", repo.display())]
    Git { repo: PathBuf, msg: String },
    /// An OSV entry could not be read or says something this command cannot use.
    #[error("{}: {msg}", path.display())]
    Osv { path: PathBuf, msg: String },
    #[error("{0}")]
    Usage(String),
}

/// One range of commits: OSV's events, for `GIT`. An empty `introduced` means "0": every
/// root. `deny git` is the range {introduced, fixed..., limit = each fixed}.
#[derive(Debug, Clone, Default)]
pub struct Range {
    pub introduced: Vec<String>,
    pub fixed: Vec<String>,
    pub last_affected: Vec<String>,
    pub limit: Vec<String>,
}

/// One file version: its IDs and the first path it was found at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub path: String,
    pub sha1: Id,
    pub sha256: Id,
}

/// What a derivation found.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    /// Every version of the affected files in the vulnerable commits.
    pub vulnerable: Vec<Version>,
    /// The versions at the fixing commits that no vulnerable commit holds.
    pub fixed: Vec<Version>,
    /// The affected paths: the ones asked for (or changed by the fixes), then every other
    /// name the files had in the range.
    pub paths: Vec<String>,
    /// Paths the fixes changed that were left out as tests or docs.
    pub left_out: Vec<String>,
    /// How many commits were found vulnerable.
    pub commits: usize,
}

/// Collects versions by blob ID (sha1), keeping the first path seen.
#[derive(Default)]
pub(crate) struct Versions {
    by_sha1: BTreeMap<Vec<u8>, (String, Id)>,
}

impl Versions {
    pub(crate) fn contains(&self, sha1: &[u8]) -> bool {
        self.by_sha1.contains_key(sha1)
    }
    pub(crate) fn insert(&mut self, sha1: &[u8], path: &str, bytes: impl FnOnce() -> Vec<u8>) {
        if !self.by_sha1.contains_key(sha1) {
            let sha256 = gitoid::id_of_bytes(Alg::Sha256, &bytes());
            self.by_sha1
                .insert(sha1.to_vec(), (path.to_string(), sha256));
        }
    }
    pub(crate) fn into_sorted(self, except: &Versions) -> Vec<Version> {
        let mut v: Vec<Version> = self
            .by_sha1
            .into_iter()
            .filter(|(k, _)| !except.contains(k))
            .filter_map(|(k, (path, sha256))| {
                Some(Version {
                    path,
                    sha1: Id::from_raw(&k)?,
                    sha256,
                })
            })
            .collect();
        v.sort();
        v
    }
}

/// Paths a fix changed that are tests or docs rather than code: a directory component named
/// like a test or doc directory, a file named like project prose, or a doc/translation
/// extension. Said precisely in the README.
pub fn is_test_or_doc(path: &str) -> bool {
    const DIRS: &[&str] = &[
        "test",
        "tests",
        "testing",
        "testsuite",
        "unittest",
        "unittests",
        "t",
        "doc",
        "docs",
        "documentation",
        "man",
        "po",
        "po4a",
    ];
    const NAMES: &[&str] = &[
        "readme",
        "news",
        "changelog",
        "changes",
        "authors",
        "thanks",
        "copying",
        "license",
        "install",
        "todo",
        "history",
    ];
    const EXTS: &[&str] = &[
        "md", "rst", "txt", "texi", "texinfo", "adoc", "html", "po", "pot", "1", "2", "3", "4",
        "5", "6", "7", "8", "9",
    ];
    let lower = path.to_ascii_lowercase();
    let mut parts: Vec<&str> = lower.split('/').collect();
    let Some(name) = parts.pop() else {
        return false;
    };
    if parts.iter().any(|d| DIRS.contains(d)) {
        return true;
    }
    let stem = name.split('.').next().unwrap_or(name);
    if NAMES.contains(&stem) {
        return true;
    }
    if let Some((_, ext)) = name.rsplit_once('.') {
        if EXTS.contains(&ext) {
            return true;
        }
    }
    stem.starts_with("test_") || stem.ends_with("_test") || stem.ends_with("_tests")
}

/// The deny list text: a comment header, then for every vulnerable version one line per ID
/// and label (`ID LABEL  # path`), then with `fixed_list` the fixed versions as
/// `fixed ID LABEL  # path`.
pub fn render(d: &Derived, labels: &[String], header: &[String], fixed_list: bool) -> String {
    let mut out = String::new();
    for h in header {
        out.push_str(&format!("# {h}\n"));
    }
    out.push_str(&format!("# paths: {}\n", d.paths.join(" ")));
    out.push_str(&format!(
        "# {} vulnerable commits, {} vulnerable versions, {} fixed versions\n",
        d.commits,
        d.vulnerable.len(),
        d.fixed.len()
    ));
    let mut lines = |prefix: &str, vs: &[Version]| {
        for v in vs {
            for id in [v.sha1, v.sha256] {
                for l in labels {
                    out.push_str(&format!("{prefix}{} {l}  # {}\n", id.uri(), v.path));
                }
            }
        }
    };
    lines("", &d.vulnerable);
    if fixed_list {
        lines("fixed ", &d.fixed);
    }
    out
}

/// Labels a deny list can carry: no whitespace-only, no `#` (which starts a comment).
pub fn check_label(l: &str) -> Result<String, DenyError> {
    let t = l.trim();
    if t.is_empty() || t.contains('#') || t.contains('\n') {
        return Err(DenyError::Usage(format!(
            "label {l:?}: must be non-empty, one line, without '#'"
        )));
    }
    Ok(t.to_string())
}

/// `deny git`: the versions of the affected files between `introduced` (a root when none)
/// and the fixing commits.
pub fn derive_git(
    repo: &std::path::Path,
    fixed: &[String],
    introduced: Option<&str>,
    paths: &[String],
) -> Result<Derived, DenyError> {
    if fixed.is_empty() {
        return Err(DenyError::Usage("give at least one --fixed commit".into()));
    }
    let mut h = history::History::open(repo)?;
    let range = Range {
        introduced: introduced.into_iter().map(String::from).collect(),
        fixed: fixed.to_vec(),
        ..Range::default()
    };
    h.derive(&[range], history::Universe::FixedAncestors, paths)
}

/// `deny osv`: one entry's `GIT` ranges for the repository (its remotes' URLs, or
/// `repo_url`), and the entry's labels.
pub fn derive_osv(
    h: &mut history::History,
    entry: &std::path::Path,
    repo_url: Option<&str>,
    paths: &[String],
) -> Result<(osv::Entry, Derived), DenyError> {
    let text = std::fs::read_to_string(entry).map_err(|e| DenyError::Osv {
        path: entry.to_path_buf(),
        msg: e.to_string(),
    })?;
    let urls = match repo_url {
        Some(u) => vec![u.to_string()],
        None => h.remote_urls(),
    };
    let e = osv::parse(entry, &text, &urls)?;
    let d = h
        .derive(&e.ranges, history::Universe::AllRefs, paths)
        .map_err(|err| match err {
            DenyError::Usage(m) => DenyError::Osv {
                path: entry.to_path_buf(),
                msg: m,
            },
            other => other,
        })?;
    Ok((e, d))
}

/// Distinct strings in first-seen order.
pub(crate) fn dedup(v: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    v.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_and_docs_are_told_apart_from_code() {
        for p in [
            "tests/files/bad.xz",
            "doc/man.txt",
            "README",
            "NEWS",
            "po/de.po",
            "src/xz/xz.1",
            "src/test_foo.c",
            "ChangeLog",
        ] {
            assert!(is_test_or_doc(p), "{p}");
        }
        for p in [
            "src/liblzma/common/stream_decoder_mt.c",
            "src/lparser.c",
            "Makefile",
            "src/lua.h",
            "contest.c",
        ] {
            assert!(!is_test_or_doc(p), "{p}");
        }
    }
}
