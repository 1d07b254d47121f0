//! `omnishim check`: which binaries contain a known-bad file, and through what chain.
//!
//! The deny list holds gitoid URIs or bare hex IDs (40 hex = sha1 = a git blob ID, 64 hex =
//! sha256), one per line, with `#` comments and an optional label after the ID. Hits below a
//! manifest are computed once per manifest and shared by every binary that reaches it, so a
//! whole directory of binaries costs little more than its largest graph.

use crate::elf;
use crate::gitoid::{self, Alg, Id};
use crate::resolve::Resolver;
use crate::store::Store;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

#[derive(Debug, thiserror::Error)]
pub enum DenyError {
    #[error("{path}:{line}: {msg}")]
    Line {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Parse a deny list: ID -> label.
pub fn parse_deny(path: &Path, text: &str) -> Result<HashMap<Id, String>, DenyError> {
    let mut out = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (id, label) = match line.split_once(char::is_whitespace) {
            Some((a, b)) => (a, b.trim()),
            None => (line, ""),
        };
        let id = Id::parse_any(&id.to_ascii_lowercase()).map_err(|e| DenyError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            msg: e.to_string(),
        })?;
        out.insert(id, label.to_string());
    }
    Ok(out)
}

pub fn read_deny(path: &Path) -> Result<HashMap<Id, String>, DenyError> {
    let text = std::fs::read_to_string(path).map_err(|source| DenyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_deny(path, &text)
}

/// One hit: the chain of artifacts from the binary's first input down to the denied file.
#[derive(Debug, Clone)]
pub struct Hit {
    pub binary: PathBuf,
    pub id: Id,
    pub label: String,
    pub chain: Vec<Id>,
}

type Chains = Rc<Vec<Vec<Id>>>;

/// Checks binaries against a deny list, for one algorithm.
pub struct Checker {
    pub resolver: Resolver,
    deny: HashMap<Id, String>,
    memo: HashMap<(Id, Option<(Id, Id)>), Chains>,
    on_stack: std::collections::HashSet<Id>,
}

impl Checker {
    pub fn new(store: Store, alg: Alg, deny: HashMap<Id, String>) -> Checker {
        let deny = deny.into_iter().filter(|(k, _)| k.alg() == alg).collect();
        Checker {
            resolver: Resolver::new(store, alg),
            deny,
            memo: HashMap::new(),
            on_stack: Default::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.deny.is_empty()
    }

    /// Chains from the inputs of a manifest down to denied artifacts. `via`: (link manifest,
    /// archive artifact) when this is an archive below a link that recorded which of its
    /// members it pulled in; only those count.
    fn below(&mut self, manifest: Id, via: Option<(Id, Id)>) -> Chains {
        let key = (manifest, via);
        if let Some(c) = self.memo.get(&key) {
            return c.clone();
        }
        if !self.on_stack.insert(manifest) {
            return Rc::new(Vec::new()); // a cycle: nothing new below
        }
        let mut out = Vec::new();
        let only = via.and_then(|(link, ar)| self.resolver.members(&link)?.get(&ar).cloned());
        let pulled = self.resolver.members(&manifest);
        if let Ok(m) = self.resolver.load(&manifest) {
            for (a, mf) in &m.inputs {
                if only.as_ref().is_some_and(|o| !o.contains(a)) {
                    continue;
                }
                if self.deny.contains_key(a) {
                    out.push(vec![*a]);
                }
                if let Some(mf) = mf {
                    let via = pulled
                        .as_ref()
                        .filter(|p| p.contains_key(a))
                        .map(|_| (manifest, *a));
                    for c in self.below(*mf, via).iter() {
                        let mut chain = Vec::with_capacity(c.len() + 1);
                        chain.push(*a);
                        chain.extend_from_slice(c);
                        out.push(chain);
                    }
                }
            }
        }
        self.on_stack.remove(&manifest);
        let rc = Rc::new(out);
        self.memo.insert(key, rc.clone());
        rc
    }

    /// Hits in one file. Only the note is read (the file is hashed only when it has none, or
    /// to follow the shared libraries recorded for it).
    pub fn check_file(&mut self, path: &Path, follow_dynamic: bool) -> Result<Vec<Hit>, String> {
        let alg = self.resolver.alg;
        let note = elf::read_note_file(path).map_err(|e| e.to_string())?;
        let mut roots: Vec<(Vec<Id>, Id)> = Vec::new(); // (prefix chain, manifest)
        let mut ids = None;
        match note.get(alg) {
            Some(m) => roots.push((Vec::new(), m)),
            None => {
                let i =
                    gitoid::ids_of_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
                if let Some(m) = self.resolver.store.get_target(&i.get(alg)) {
                    roots.push((Vec::new(), m));
                }
                ids = Some(i);
            }
        }
        if follow_dynamic {
            let i = match ids {
                Some(i) => i,
                None => {
                    gitoid::ids_of_file(path).map_err(|e| format!("{}: {e}", path.display()))?
                }
            };
            let mut seen = std::collections::HashSet::new();
            let mut queue = vec![(Vec::<Id>::new(), i.sha1)];
            while let Some((prefix, sha1)) = queue.pop() {
                if !seen.insert(sha1) {
                    continue;
                }
                for lib in self.resolver.dynamic_of(&sha1) {
                    let (a, m) = match alg {
                        Alg::Sha1 => (&lib.sha1, &lib.manifest_sha1),
                        Alg::Sha256 => (&lib.sha256, &lib.manifest_sha256),
                    };
                    let Ok(a) = Id::from_hex(a) else { continue };
                    let mut p = prefix.clone();
                    p.push(a);
                    if let Some(Ok(m)) = m.as_deref().map(Id::from_hex) {
                        roots.push((p.clone(), m));
                    }
                    if let Ok(s1) = Id::from_hex(&lib.sha1) {
                        queue.push((p, s1));
                    }
                }
            }
        }
        let mut hits = Vec::new();
        for (prefix, m) in roots {
            for c in self.below(m, None).iter() {
                let mut chain = prefix.clone();
                chain.extend_from_slice(c);
                let Some(&id) = chain.last() else { continue };
                hits.push(Hit {
                    binary: path.to_path_buf(),
                    id,
                    label: self.deny.get(&id).cloned().unwrap_or_default(),
                    chain,
                });
            }
        }
        Ok(hits)
    }
}

/// ELF files under the given paths (directories walked recursively, in sorted order).
pub fn elf_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut stack: Vec<PathBuf> = paths.iter().rev().cloned().collect();
    while let Some(p) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) => {
                errors.push(format!("{}: {e}", p.display()));
                continue;
            }
        };
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(&p) {
                Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
                Err(e) => {
                    errors.push(format!("{}: {e}", p.display()));
                    continue;
                }
            };
            entries.sort();
            stack.extend(entries.into_iter().rev());
        } else if meta.is_file() && crate::shim::record::head(&p).is_ok_and(|h| elf::is_elf(&h)) {
            out.push(p);
        }
    }
    (out, errors)
}
