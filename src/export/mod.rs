//! `omnishim export`: the closed graph of some files, as a store of its own that `--store`
//! reads directly (and the unit `push` sends to a registry).
//!
//! What travels is a list of entries, each one store file: manifests (named by their gitoid),
//! the target index entries of roots without a note, the archive members each link pulled
//! in, the shared libraries an output links against, the lines of the path index naming the
//! graph's artifacts, and the manifests withheld on purpose. `install` checks every entry
//! before it writes any, so a bad one leaves the destination as it was.

pub mod closure;
pub mod tar;

pub use closure::{close, glob_match, root_of, Graph, Root, Withhold};

use crate::gitoid::{id_of_bytes, Id};
use crate::manifest::Manifest;
use crate::resolve::DynamicLib;
use crate::store::Store;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {msg}", path = .0.display(), msg = .1)]
    File(PathBuf, String),
    #[error("{0}")]
    Store(String),
    /// An entry that is not what it claims to be (a forged or damaged blob).
    #[error("{0}")]
    Invalid(String),
}

/// What to export.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub follow_dynamic: bool,
    /// Leave out every path and tool invocation: IDs only.
    pub redact: bool,
    pub withhold: Vec<Withhold>,
}

/// What one entry is; the ID says which store file it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Path index lines of one shard (its name, a hex digit).
    Paths(u8),
    Withheld,
    Target(Id),
    Members(Id),
    Dynamic(Id),
    Manifest(Id),
}

/// One store file of an exported graph.
#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    pub bytes: Vec<u8>,
}

/// Where the path index lines and the withheld list go (relative to a store's root).
const PATHS_DIR: &str = "metadata/omnishim/paths";
const WITHHELD: &str = "metadata/omnishim/withheld";

impl Entry {
    pub fn new(kind: Kind, bytes: Vec<u8>) -> Entry {
        Entry { kind, bytes }
    }

    /// The file's path relative to a store's root (the path index: its first shard).
    pub fn rel_path(&self) -> PathBuf {
        let s = Store::at("");
        match self.kind {
            Kind::Manifest(id) => s.object_path(&id),
            Kind::Target(a) => s.target_path(&a),
            Kind::Members(m) => s.members_path(&m),
            Kind::Dynamic(a) => s.dynamic_path(&a),
            Kind::Paths(c) => Path::new(PATHS_DIR).join(char::from(c).to_string()),
            Kind::Withheld => PathBuf::from(WITHHELD),
        }
    }

    /// The kind of entry a path relative to a store's root names: the inverse of `rel_path`,
    /// None for any other path (only the canonical spelling of an entry's path is one).
    pub fn kind_of_path(rel: &str) -> Option<Kind> {
        let id = |xx: &str, rest: &str| Id::from_hex(&format!("{xx}{rest}")).ok();
        let kind = match rel.split('/').collect::<Vec<_>>()[..] {
            ["objects", _, xx, rest] => Kind::Manifest(id(xx, rest)?),
            ["metadata", "omnishim", "targets", _, xx, rest] => Kind::Target(id(xx, rest)?),
            ["metadata", "omnishim", "members", xx, rest] => Kind::Members(id(xx, rest)?),
            ["metadata", "omnishim", "dynamic", xx, rest] => Kind::Dynamic(id(xx, rest)?),
            ["metadata", "omnishim", "paths", c] => match c.as_bytes() {
                [c] if c.is_ascii_digit() || (b'a'..=b'f').contains(c) => Kind::Paths(*c),
                _ => return None,
            },
            ["metadata", "omnishim", "withheld"] => Kind::Withheld,
            _ => return None,
        };
        // the algorithm directories and the hex digits' case must be the ones we write
        let canonical = Entry::new(kind, Vec::new()).rel_path();
        (canonical.to_str() == Some(rel)).then_some(kind)
    }

    /// Check that the bytes are what the entry claims: a manifest hashes to its ID and
    /// parses, metadata parses. One line naming the entry when not.
    pub fn validate(&self) -> Result<(), ExportError> {
        let bad = |why: String| ExportError::Invalid(format!("{}: {why}", self.describe()));
        let text = || std::str::from_utf8(&self.bytes).map_err(|_| bad("not UTF-8 text".into()));
        let ids_line = |l: &str| l.split(' ').all(|h| Id::from_hex(h).is_ok());
        match self.kind {
            Kind::Manifest(id) => {
                let got = id_of_bytes(id.alg(), &self.bytes);
                if got != id {
                    return Err(bad(format!(
                        "content hashes to {} ({} bytes): tampered or truncated",
                        got.uri(),
                        self.bytes.len()
                    )));
                }
                let m = Manifest::parse(&self.bytes).map_err(|e| bad(e.to_string()))?;
                if m.alg != id.alg() {
                    return Err(bad(format!("a {} manifest", m.alg)));
                }
            }
            Kind::Target(_) => {
                let t = text()?;
                if !t.ends_with('\n') || Id::from_hex(t.trim_end()).is_err() {
                    return Err(bad("not a manifest ID".into()));
                }
            }
            Kind::Members(_) | Kind::Withheld => {
                if !text()?.lines().all(ids_line) {
                    return Err(bad("a line that is not IDs".into()));
                }
            }
            Kind::Dynamic(_) => {
                serde_json::from_slice::<Vec<DynamicLib>>(&self.bytes)
                    .map_err(|e| bad(format!("not a shared-library record: {e}")))?;
            }
            Kind::Paths(c) => {
                if !c.is_ascii_hexdigit() {
                    return Err(bad(format!("shard {c:?} is not a hex digit")));
                }
                let ok = text()?.lines().all(|l| {
                    let mut it = l.splitn(3, ' ');
                    matches!((it.next(), it.next(), it.next()), (Some(a), Some(b), Some(p))
                        if Id::from_hex(a).is_ok() && Id::from_hex(b).is_ok() && !p.is_empty())
                });
                if !ok {
                    return Err(bad("a line that is not `<sha1> <sha256> <path>`".into()));
                }
            }
        }
        Ok(())
    }

    /// What the entry is, for messages.
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Manifest(id) => format!("manifest {}", id.uri()),
            Kind::Target(a) => format!("target index entry of {}", a.uri()),
            Kind::Members(m) => format!("pulled archive members of {}", m.uri()),
            Kind::Dynamic(a) => format!("shared libraries of {}", a.uri()),
            Kind::Paths(c) => format!("path index shard {}", char::from(c)),
            Kind::Withheld => "withheld manifest list".to_string(),
        }
    }
}

/// Merge lines into a store file: the lines already there first, then the new ones in order.
fn merge_lines(store: &Store, rel: &Path, lines: &[&str]) -> Result<(), ExportError> {
    let path = store.root().join(rel);
    let old = store
        .read_file(&path)
        .map_err(|e| ExportError::Store(e.to_string()))?
        .unwrap_or_default();
    let old = String::from_utf8_lossy(&old);
    let mut seen: HashSet<&str> = old.lines().collect();
    let new: Vec<&str> = lines.iter().copied().filter(|l| seen.insert(l)).collect();
    if new.is_empty() && !old.is_empty() {
        return Ok(());
    }
    let mut text = old.into_owned();
    for l in new {
        text.push_str(l);
        text.push('\n');
    }
    store
        .write_file(&path, text.as_bytes())
        .map_err(|e| ExportError::Store(e.to_string()))
}

/// Write entries into a store: every entry is checked first (nothing is written when one
/// fails), metadata before manifests, and the manifests in `last` (the roots) at the very
/// end, so that a root present in the store means its graph is there too.
pub fn install(store: &Store, entries: &[Entry], last: &HashSet<Id>) -> Result<(), ExportError> {
    for e in entries {
        e.validate()?;
    }
    let st = |e: crate::store::StoreError| ExportError::Store(e.to_string());
    let mut ordered: Vec<&Entry> = entries.iter().collect();
    ordered.sort_by_key(|e| match e.kind {
        Kind::Manifest(id) => (1 + last.contains(&id) as u8, e.kind),
        k => (0, k),
    });
    for e in ordered {
        match e.kind {
            Kind::Manifest(id) => {
                store.put_object(id.alg(), &e.bytes).map_err(st)?;
            }
            Kind::Paths(_) => {
                let text = String::from_utf8_lossy(&e.bytes);
                let lines: Vec<&str> = text.lines().collect();
                merge_lines(store, &e.rel_path(), &lines)?;
            }
            Kind::Withheld => {
                let text = String::from_utf8_lossy(&e.bytes);
                let lines: Vec<&str> = text.lines().collect();
                merge_lines(store, Path::new(WITHHELD), &lines)?;
            }
            _ => store
                .write_file(&store.root().join(e.rel_path()), &e.bytes)
                .map_err(st)?,
        }
    }
    Ok(())
}

/// The root manifests of a graph (both algorithms).
pub fn root_manifests(g: &Graph) -> HashSet<Id> {
    g.roots
        .iter()
        .flat_map(|r| [r.sha1, r.sha256])
        .flatten()
        .collect()
}

/// The manifests a store says were withheld by whoever exported it.
pub fn withheld_in(store: &Store) -> HashSet<Id> {
    let Ok(Some(b)) = store.read_file(&store.root().join(WITHHELD)) else {
        return HashSet::new();
    };
    String::from_utf8_lossy(&b)
        .lines()
        .filter_map(|l| Id::from_hex(l.trim()).ok())
        .collect()
}
