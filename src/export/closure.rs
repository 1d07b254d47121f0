//! The closed graph of some files: every manifest reachable from their roots (both
//! algorithms), and the metadata a walk needs to name and follow what it reaches.

use super::{Entry, ExportError, Kind, Options};
use crate::elf;
use crate::gitoid::{self, Alg, Id, Ids};
use crate::manifest::Manifest;
use crate::resolve::DynamicLib;
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// One file asked about: its IDs and its root manifests (from the note, else the target
/// index).
#[derive(Clone, Debug)]
pub struct Root {
    pub path: PathBuf,
    pub ids: Ids,
    pub sha1: Option<Id>,
    pub sha256: Option<Id>,
    /// The manifests came from the target index (the file carries no note).
    pub from_targets: bool,
}

impl Root {
    pub fn manifest(&self, alg: Alg) -> Option<Id> {
        match alg {
            Alg::Sha1 => self.sha1,
            Alg::Sha256 => self.sha256,
        }
    }
}

/// The roots of a file, read from the file and the store.
pub fn root_of(store: &Store, path: &Path) -> Result<Root, ExportError> {
    let io = |e: std::io::Error| ExportError::File(path.to_path_buf(), e.to_string());
    let ids = gitoid::ids_of_file(path).map_err(io)?;
    let head = crate::shim::record::head(path).map_err(io)?;
    let note = if elf::is_elf(&head) {
        elf::read_note_file(path)
            .map_err(|e| ExportError::File(path.to_path_buf(), e.to_string()))?
    } else {
        Default::default()
    };
    let mut root = Root {
        path: path.to_path_buf(),
        ids,
        sha1: note.sha1,
        sha256: note.sha256,
        from_targets: false,
    };
    if note.is_empty() {
        root.sha1 = store.get_target(&ids.sha1);
        root.sha256 = store.get_target(&ids.sha256);
        root.from_targets = root.sha1.is_some() || root.sha256.is_some();
    }
    Ok(root)
}

/// A `--withhold` pattern: an ID (artifact or manifest, hex or URI), or a path glob.
#[derive(Clone, Debug)]
pub enum Withhold {
    Id(Id),
    Glob(String),
}

impl Withhold {
    pub fn parse(s: &str) -> Withhold {
        match Id::parse_any(&s.to_ascii_lowercase()) {
            Ok(id) => Withhold::Id(id),
            Err(_) => Withhold::Glob(s.to_string()),
        }
    }
}

/// `*` matches any run of characters (slashes too), `?` one character. A pattern that does
/// not start with `/` may match any tail of the path that starts after a `/`, so that
/// `src/private/*` matches `/home/b/proj/src/private/x.o`.
pub fn glob_match(pat: &str, path: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        let (mut pi, mut si) = (0, 0);
        let (mut star, mut mark) = (None, 0);
        while si < s.len() {
            if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
                pi += 1;
                si += 1;
            } else if pi < p.len() && p[pi] == b'*' {
                star = Some(pi);
                mark = si;
                pi += 1;
            } else if let Some(st) = star {
                pi = st + 1;
                mark += 1;
                si = mark;
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
    let (p, s) = (pat.as_bytes(), path.as_bytes());
    if m(p, s) || pat.starts_with('/') {
        return m(p, s);
    }
    s.iter()
        .enumerate()
        .filter(|(_, &c)| c == b'/')
        .any(|(i, _)| m(p, &s[i + 1..]))
}

/// One path index line: (its shard, sha1 hex, sha256 hex, path).
type PathLine = (u8, String, String, String);

/// The path index, read once, in shard and line order: ID hex -> the lines naming it.
struct PathIndex {
    lines: Vec<PathLine>,
    by_id: HashMap<String, Vec<usize>>,
}

impl PathIndex {
    fn read(store: &Store) -> PathIndex {
        let mut idx = PathIndex {
            lines: Vec::new(),
            by_id: HashMap::new(),
        };
        let dir = store
            .root()
            .join("metadata")
            .join(crate::store::TOOL)
            .join("paths");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return idx;
        };
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        let mut seen = HashSet::new();
        for p in names {
            // the shims write 16 shards named by a hex digit; anything else is not ours
            let shard = match p.file_name().map(|n| n.as_encoded_bytes()) {
                Some([c]) if c.is_ascii_hexdigit() => *c,
                _ => continue,
            };
            let Ok(Some(bytes)) = store.read_file(&p) else {
                continue;
            };
            for line in String::from_utf8_lossy(&bytes).lines() {
                let mut it = line.splitn(3, ' ');
                let (Some(a), Some(b), Some(path)) = (it.next(), it.next(), it.next()) else {
                    continue;
                };
                if Id::from_hex(a).is_err()
                    || Id::from_hex(b).is_err()
                    || !seen.insert(line.to_string())
                {
                    continue;
                }
                let n = idx.lines.len();
                idx.lines.push((shard, a.into(), b.into(), path.into()));
                idx.by_id.entry(a.into()).or_default().push(n);
                idx.by_id.entry(b.into()).or_default().push(n);
            }
        }
        idx
    }

    fn of(&self, id: &Id) -> impl Iterator<Item = (usize, &PathLine)> {
        self.by_id
            .get(&id.hex())
            .into_iter()
            .flatten()
            .map(|&i| (i, &self.lines[i]))
    }
}

/// What a closure holds, before it is written anywhere.
pub struct Graph {
    pub roots: Vec<Root>,
    pub entries: Vec<Entry>,
    /// Manifests the graph names that the store does not hold (the export is incomplete).
    pub missing: Vec<Id>,
    /// Manifests left out on purpose (`--withhold`).
    pub withheld: BTreeSet<Id>,
}

/// Gather the closed graph of `files` from `store`.
pub fn close(store: &Store, files: &[PathBuf], opts: &Options) -> Result<Graph, ExportError> {
    let index = PathIndex::read(store);
    let withheld_ids: HashSet<Id> = opts
        .withhold
        .iter()
        .filter_map(|w| match w {
            Withhold::Id(id) => Some(*id),
            Withhold::Glob(_) => None,
        })
        .collect();
    let globs: Vec<&str> = opts
        .withhold
        .iter()
        .filter_map(|w| match w {
            Withhold::Glob(g) => Some(g.as_str()),
            Withhold::Id(_) => None,
        })
        .collect();
    // an artifact is withheld when named by either of its IDs, or one of its paths matches
    let is_withheld = |a: &Id, m: Option<&Id>| -> bool {
        if withheld_ids.contains(a) || m.is_some_and(|m| withheld_ids.contains(m)) {
            return true;
        }
        index.of(a).any(|(_, (_, s1, s2, p))| {
            globs.iter().any(|g| glob_match(g, p))
                || [s1, s2]
                    .iter()
                    .filter_map(|h| Id::from_hex(h).ok())
                    .any(|i| withheld_ids.contains(&i))
        })
    };

    let mut roots = Vec::new();
    let mut queue: Vec<Id> = Vec::new();
    let mut dyn_queue: Vec<Id> = Vec::new();
    let mut artifacts: HashSet<Id> = HashSet::new();
    let mut targets: BTreeMap<Id, Id> = BTreeMap::new();
    let mut withheld = BTreeSet::new();
    for f in files {
        let root = root_of(store, f)?;
        for alg in Alg::ALL {
            let a = root.ids.get(alg);
            artifacts.insert(a);
            if let Some(m) = root.manifest(alg) {
                if root.from_targets {
                    targets.insert(a, m);
                }
                if is_withheld(&a, Some(&m)) {
                    withheld.insert(m);
                } else {
                    queue.push(m);
                }
            }
        }
        dyn_queue.push(root.ids.sha1);
        roots.push(root);
    }

    let mut entries = Vec::new();
    let mut done: HashSet<Id> = HashSet::new();
    let mut missing = Vec::new();
    let mut dyn_done: HashSet<Id> = HashSet::new();
    loop {
        if let Some(mid) = queue.pop() {
            if !done.insert(mid) {
                continue;
            }
            let bytes = store
                .get_object(&mid)
                .map_err(|e| ExportError::Store(e.to_string()))?;
            let Some(bytes) = bytes else {
                missing.push(mid);
                continue;
            };
            let m = Manifest::parse(&bytes).map_err(|e| {
                ExportError::Store(format!("{}: {e}", store.object_path(&mid).display()))
            })?;
            for (a, mf) in &m.inputs {
                artifacts.insert(*a);
                let Some(mf) = mf else { continue };
                if is_withheld(a, Some(mf)) {
                    withheld.insert(*mf);
                } else {
                    queue.push(*mf);
                }
            }
            if let Ok(Some(b)) = store.read_file(&store.members_path(&mid)) {
                entries.push(Entry::new(Kind::Members(mid), b));
            }
            entries.push(Entry::new(Kind::Manifest(mid), bytes));
        } else if let Some(sha1) = dyn_queue.pop() {
            if !dyn_done.insert(sha1) {
                continue;
            }
            let Ok(Some(b)) = store.read_file(&store.dynamic_path(&sha1)) else {
                continue;
            };
            let Ok(mut libs) = serde_json::from_slice::<Vec<DynamicLib>>(&b) else {
                continue;
            };
            for lib in &libs {
                let (Ok(s1), Ok(s2)) = (Id::from_hex(&lib.sha1), Id::from_hex(&lib.sha256)) else {
                    continue;
                };
                artifacts.insert(s1);
                artifacts.insert(s2);
                if !opts.follow_dynamic {
                    continue;
                }
                for m in [&lib.manifest_sha1, &lib.manifest_sha256] {
                    let Some(Ok(m)) = m.as_deref().map(Id::from_hex) else {
                        continue;
                    };
                    if is_withheld(&s1, Some(&m)) {
                        withheld.insert(m);
                    } else {
                        queue.push(m);
                    }
                }
                dyn_queue.push(s1);
            }
            let bytes = if opts.redact {
                for l in libs.iter_mut() {
                    l.path.clear();
                }
                serde_json::to_vec(&libs).map_err(|e| ExportError::Store(e.to_string()))?
            } else {
                b
            };
            entries.push(Entry::new(Kind::Dynamic(sha1), bytes));
        } else {
            break;
        }
    }
    for (a, m) in &targets {
        entries.push(Entry::new(
            Kind::Target(*a),
            format!("{}\n", m.hex()).into_bytes(),
        ));
    }
    if !opts.redact {
        // the lines kept in their shards and their order: a walk names an artifact by the
        // first path it reads, which should be the same here as in the source store
        let mut keep = BTreeSet::new();
        for a in &artifacts {
            for (i, (_, _, _, p)) in index.of(a) {
                // a withheld artifact keeps its IDs, not where it was
                let hidden = !globs.is_empty() && globs.iter().any(|g| glob_match(g, p));
                if !hidden {
                    keep.insert(i);
                }
            }
        }
        let mut shards: BTreeMap<u8, String> = BTreeMap::new();
        for i in keep {
            let (shard, s1, s2, p) = &index.lines[i];
            let text = shards.entry(*shard).or_default();
            for part in [s1.as_str(), " ", s2, " ", p, "\n"] {
                text.push_str(part);
            }
        }
        for (shard, text) in shards {
            entries.push(Entry::new(Kind::Paths(shard), text.into_bytes()));
        }
    }
    if !withheld.is_empty() {
        let text: String = withheld.iter().map(|m| format!("{}\n", m.hex())).collect();
        entries.push(Entry::new(Kind::Withheld, text.into_bytes()));
    }
    entries.sort_by_key(|e| e.kind);
    Ok(Graph {
        roots,
        entries,
        missing,
        withheld,
    })
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("src/private/*", "/h/p/src/private/x.o"));
        assert!(glob_match("src/private/*", "src/private/a/b.c"));
        assert!(!glob_match("src/private/*", "/h/p/src/public/x.o"));
        assert!(!glob_match("/src/*", "/h/src/x"));
        assert!(glob_match("*.o", "/a/b.o"));
        assert!(glob_match("?.c", "/a/b.c"));
        assert!(!glob_match("?.c", "/a/bb.c"));
    }
}
