//! `omnishim check`: which binaries contain a known-bad file, and through what chain.
//!
//! The deny list holds gitoid URIs or bare hex IDs (40 hex = sha1 = a git blob ID, 64 hex =
//! sha256), one per line, with `#` comments and an optional label after the ID; one ID may
//! come back on several lines with different labels (one file version, several CVEs), and
//! every label is kept. A line `fixed ID LABEL` names a fixed version instead (what
//! `deny --fixed-list` prints): `check` reports it as "fixed version present" where a graph
//! holds it, and it never makes a file denied. Hits below a
//! manifest are computed once per manifest and shared by every binary that reaches it, so a
//! whole directory of binaries costs little more than its largest graph.

use crate::elf;
use crate::gitoid::{self, Alg, Id};
use crate::resolve::{add_gap, Gap, NodeState, Resolver};
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

/// A deny list: ID -> its distinct labels, in the order the list gives them (none when no
/// line names one).
pub type DenyList = HashMap<Id, Vec<String>>;

/// A deny list and the fixed versions it names (`fixed ID LABEL` lines).
#[derive(Debug, Clone, Default)]
pub struct Lists {
    pub deny: DenyList,
    pub fixed: DenyList,
}

/// Parse a deny list (its `fixed` lines are left out: see `parse_lists`).
pub fn parse_deny(path: &Path, text: &str) -> Result<DenyList, DenyError> {
    Ok(parse_lists(path, text)?.deny)
}

/// Parse a deny list with its fixed versions.
pub fn parse_lists(path: &Path, text: &str) -> Result<Lists, DenyError> {
    let mut out = Lists::default();
    for (i, raw) in text.lines().enumerate() {
        let mut line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut fixed = false;
        if let Some(rest) = line.strip_prefix("fixed") {
            if rest.starts_with(char::is_whitespace) {
                fixed = true;
                line = rest.trim_start();
            }
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
        let map = if fixed { &mut out.fixed } else { &mut out.deny };
        let labels = map.entry(id).or_default();
        if !label.is_empty() && !labels.iter().any(|l| l == label) {
            labels.push(label.to_string());
        }
    }
    Ok(out)
}

pub fn read_deny(path: &Path) -> Result<DenyList, DenyError> {
    Ok(read_lists(path)?.deny)
}

pub fn read_lists(path: &Path) -> Result<Lists, DenyError> {
    let text = std::fs::read_to_string(path).map_err(|source| DenyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_lists(path, &text)
}

/// One hit: the chain of artifacts from the binary's first input down to the denied file.
#[derive(Debug, Clone)]
pub struct Hit {
    pub binary: PathBuf,
    pub id: Id,
    /// Every label the deny list gives the ID.
    pub labels: Vec<String>,
    pub chain: Vec<Id>,
    /// The ID is on the deny list (it may also, or only, be a fixed version).
    pub denied: bool,
    /// The labels whose fixed version the ID is.
    pub fixed: Vec<String>,
}

/// What one file's check found: its hits, and what in its graph could not be read.
#[derive(Debug, Clone, Default)]
pub struct FileCheck {
    pub hits: Vec<Hit>,
    pub gaps: Vec<Gap>,
}

/// Below one manifest: chains down to denied artifacts, and the gaps met on the way.
#[derive(Default)]
struct Below {
    chains: Vec<Vec<Id>>,
    gaps: Vec<Gap>,
}

/// A manifest, and (link manifest, archive) when only the members that link pulled count.
type MemoKey = (Id, Option<(Id, Id)>);

/// Checks binaries against a deny list, for one algorithm.
pub struct Checker {
    pub resolver: Resolver,
    deny: DenyList,
    fixed: DenyList,
    memo: HashMap<MemoKey, Rc<Below>>,
    on_stack: std::collections::HashSet<Id>,
}

impl Checker {
    pub fn new(store: Store, alg: Alg, deny: DenyList) -> Checker {
        Checker::with_fixed(
            store,
            alg,
            Lists {
                deny,
                fixed: DenyList::new(),
            },
        )
    }

    /// A checker that also finds the fixed versions the lists name.
    pub fn with_fixed(store: Store, alg: Alg, lists: Lists) -> Checker {
        let of_alg = |l: DenyList| l.into_iter().filter(|(k, _)| k.alg() == alg).collect();
        Checker {
            resolver: Resolver::new(store, alg),
            deny: of_alg(lists.deny),
            fixed: of_alg(lists.fixed),
            memo: HashMap::new(),
            on_stack: Default::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.fixed.is_empty()
    }

    /// Whether a chain ends at this artifact.
    fn wanted(&self, a: &Id) -> bool {
        self.deny.contains_key(a) || self.fixed.contains_key(a)
    }

    /// Chains from the inputs of a manifest down to denied artifacts. `via`: (link manifest,
    /// archive artifact) when this is an archive below a link that recorded which of its
    /// members it pulled in; only those count.
    fn below(&mut self, manifest: Id, via: Option<(Id, Id)>) -> Rc<Below> {
        let key = (manifest, via);
        if let Some(c) = self.memo.get(&key) {
            return c.clone();
        }
        if !self.on_stack.insert(manifest) {
            return Rc::new(Below::default()); // a cycle: nothing new below
        }
        let mut out = Below::default();
        let only = via.and_then(|(link, ar)| self.resolver.members(&link)?.get(&ar).cloned());
        let pulled = self.resolver.members(&manifest);
        match self.resolver.load(&manifest) {
            Ok(m) => {
                for (a, mf) in &m.inputs {
                    if only.as_ref().is_some_and(|o| !o.contains(a)) {
                        continue;
                    }
                    if self.wanted(a) {
                        out.chains.push(vec![*a]);
                    }
                    if let Some(mf) = mf {
                        let via = pulled
                            .as_ref()
                            .filter(|p| p.contains_key(a))
                            .map(|_| (manifest, *a));
                        let sub = self.below(*mf, via);
                        for c in &sub.chains {
                            let mut chain = Vec::with_capacity(c.len() + 1);
                            chain.push(*a);
                            chain.extend_from_slice(c);
                            out.chains.push(chain);
                        }
                        for g in &sub.gaps {
                            add_gap(&mut out.gaps, g.clone());
                        }
                    }
                }
            }
            Err(state) => out.gaps.extend(self.resolver.gap_of(&state)),
        }
        self.on_stack.remove(&manifest);
        let rc = Rc::new(out);
        self.memo.insert(key, rc.clone());
        rc
    }

    /// Hits and gaps in one file. Only the note is read (the file is hashed only when it has
    /// none, or to follow the shared libraries recorded for it).
    pub fn check_file(&mut self, path: &Path, follow_dynamic: bool) -> Result<FileCheck, String> {
        let alg = self.resolver.alg;
        let note = elf::read_note_file(path).map_err(|e| e.to_string())?;
        let mut roots: Vec<(Vec<Id>, Id)> = Vec::new(); // (prefix chain, manifest)
        let mut gaps = Vec::new();
        let mut ids = None;
        match note.get(alg) {
            Some(m) => roots.push((Vec::new(), m)),
            None => {
                let i =
                    gitoid::ids_of_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
                match self.resolver.store.get_target(&i.get(alg)) {
                    Some(m) => roots.push((Vec::new(), m)),
                    None => gaps.extend(self.resolver.gap_of(&NodeState::Unrecorded)),
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
            let below = self.below(m, None);
            for c in &below.chains {
                let mut chain = prefix.clone();
                chain.extend_from_slice(c);
                let Some(&id) = chain.last() else { continue };
                hits.push(Hit {
                    binary: path.to_path_buf(),
                    id,
                    labels: self.deny.get(&id).cloned().unwrap_or_default(),
                    chain,
                    denied: self.deny.contains_key(&id),
                    fixed: self.fixed.get(&id).cloned().unwrap_or_default(),
                });
            }
            for g in &below.gaps {
                add_gap(&mut gaps, g.clone());
            }
        }
        Ok(FileCheck { hits, gaps })
    }
}

/// One step of a chain: an artifact and the first path it was seen at.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: Id,
    pub path: Option<String>,
}

/// A denied file reached from a binary, with its labels and the chain down to it.
#[derive(Debug, Clone)]
pub struct Chain {
    pub denied: Id,
    pub labels: Vec<String>,
    pub steps: Vec<Step>,
}

impl Chain {
    /// The steps below the checked file, each by its path (its hex ID when it has none).
    fn steps_text(&self) -> String {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|s| s.path.clone().unwrap_or_else(|| s.id.hex()))
            .collect();
        steps.join(" -> ")
    }
}

/// One file checked with every algorithm's checker: its verdict and what it rests on.
#[derive(Debug, Clone)]
pub struct Report {
    pub file: PathBuf,
    pub chains: Vec<Chain>,
    /// The distinct labels of every denied file reached, in first-seen order.
    pub labels: Vec<String>,
    pub gaps: Vec<Gap>,
    /// Chains down to fixed versions (`denied` is the fixed version's ID, `labels` those it
    /// fixes).
    pub fixed: Vec<Chain>,
}

impl Report {
    /// "denied" (a hit, whatever else), "incomplete" (no hit, some gap), or "clean".
    pub fn verdict(&self) -> &'static str {
        if !self.chains.is_empty() {
            "denied"
        } else if !self.gaps.is_empty() {
            "incomplete"
        } else {
            "clean"
        }
    }

    /// One line per chain, then the labels hit.
    pub fn text(&self) -> String {
        let f = self.file.display();
        let mut out = String::new();
        for c in &self.chains {
            let label = if c.labels.is_empty() {
                String::new()
            } else {
                format!("{} ", c.labels.join(", "))
            };
            out.push_str(&format!(
                "{f}: {label}{} via {f} -> {}\n",
                c.denied.uri(),
                c.steps_text()
            ));
        }
        if !self.labels.is_empty() {
            out.push_str(&format!("{f}: labels: {}\n", self.labels.join(", ")));
        }
        for c in &self.fixed {
            out.push_str(&format!(
                "{f}: fixed version present: {} {} via {f} -> {}\n",
                c.labels.join(", "),
                c.denied.uri(),
                c.steps_text()
            ));
        }
        out
    }

    /// The labels whose fixed version the graph holds, in first-seen order.
    pub fn fixed_labels(&self) -> Vec<String> {
        crate::deny::dedup(self.fixed.iter().flat_map(|c| c.labels.iter().cloned()))
    }

    /// Each chain starts at the binary itself (hashed here: only files with hits are).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let file = self.file.to_string_lossy();
        let ids = if self.chains.is_empty() && self.fixed.is_empty() {
            None
        } else {
            gitoid::ids_of_file(&self.file).ok()
        };
        let to_json = |key: &str, cs: &[Chain]| -> Vec<serde_json::Value> {
            cs.iter()
                .map(|c| {
                    let first = json!({
                        "id": ids.as_ref().map(|i| i.get(c.denied.alg()).uri()),
                        "path": file,
                    });
                    let steps: Vec<serde_json::Value> = std::iter::once(first)
                        .chain(
                            c.steps
                                .iter()
                                .map(|s| json!({ "id": s.id.uri(), "path": s.path })),
                        )
                        .collect();
                    json!({ key: c.denied.uri(), "labels": c.labels, "steps": steps })
                })
                .collect()
        };
        json!({
            "file": file,
            "verdict": self.verdict(),
            "labels": self.labels,
            "chains": to_json("denied", &self.chains),
            "incomplete": self.gaps.iter().map(Gap::to_json).collect::<Vec<_>>(),
            "fixed_labels": self.fixed_labels(),
            "fixed": to_json("fixed", &self.fixed),
        })
    }
}

/// Check one file with every checker (one per algorithm of the deny list).
pub fn check_all(
    checkers: &mut [Checker],
    path: &Path,
    follow_dynamic: bool,
) -> Result<Report, String> {
    let mut rep = Report {
        file: path.to_path_buf(),
        chains: Vec::new(),
        labels: Vec::new(),
        gaps: Vec::new(),
        fixed: Vec::new(),
    };
    for c in checkers.iter_mut() {
        let fc = c.check_file(path, follow_dynamic)?;
        for h in fc.hits {
            let steps: Vec<Step> = h
                .chain
                .iter()
                .map(|id| Step {
                    id: *id,
                    path: c.resolver.paths(id).into_iter().next(),
                })
                .collect();
            if !h.fixed.is_empty() {
                rep.fixed.push(Chain {
                    denied: h.id,
                    labels: h.fixed.clone(),
                    steps: steps.clone(),
                });
            }
            if !h.denied {
                continue;
            }
            for l in &h.labels {
                if !rep.labels.contains(l) {
                    rep.labels.push(l.clone());
                }
            }
            rep.chains.push(Chain {
                denied: h.id,
                labels: h.labels,
                steps,
            });
        }
        for g in fc.gaps {
            add_gap(&mut rep.gaps, g);
        }
    }
    Ok(rep)
}

/// ELF files under the given paths (directories walked recursively, in sorted order). A path
/// given is followed when it is a symlink; inside the walk a symlinked directory is skipped
/// (no loops, no trees outside the one asked about), and a symlinked file is checked only when
/// the walk does not reach the file it names anyway (`libz.so -> libz.so.1.3` is checked once,
/// as `libz.so.1.3`).
pub fn elf_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    use std::os::unix::fs::MetadataExt;
    // (path, (device, inode), reached through a symlink inside a walk)
    let mut found: Vec<(PathBuf, (u64, u64), bool)> = Vec::new();
    let mut errors = Vec::new();
    // (path, given on the command line)
    let mut stack: Vec<(PathBuf, bool)> = paths.iter().rev().map(|p| (p.clone(), true)).collect();
    while let Some((p, given)) = stack.pop() {
        let lmeta = if given {
            std::fs::metadata(&p)
        } else {
            std::fs::symlink_metadata(&p)
        };
        let mut meta = match lmeta {
            Ok(m) => m,
            Err(e) => {
                errors.push(format!("{}: {e}", p.display()));
                continue;
            }
        };
        let linked = meta.file_type().is_symlink();
        if linked {
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => meta = m,
                _ => continue, // a directory, a dangling link, a device: not walked
            }
        }
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(&p) {
                Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
                Err(e) => {
                    errors.push(format!("{}: {e}", p.display()));
                    continue;
                }
            };
            entries.sort();
            stack.extend(entries.into_iter().rev().map(|e| (e, false)));
        } else if meta.is_file() && crate::shim::record::head(&p).is_ok_and(|h| elf::is_elf(&h)) {
            found.push((p, (meta.dev(), meta.ino()), linked));
        }
    }
    let direct: std::collections::HashSet<(u64, u64)> = found
        .iter()
        .filter(|(_, _, linked)| !linked)
        .map(|(_, k, _)| *k)
        .collect();
    let mut linked_seen = std::collections::HashSet::new();
    let out = found
        .into_iter()
        .filter(|(_, k, linked)| !linked || (!direct.contains(k) && linked_seen.insert(*k)))
        .map(|(p, _, _)| p)
        .collect();
    (out, errors)
}

/// A chain as text: `FILE -> step -> ... -> the file at its end (its gitoid)`.
fn chain_text(file: &Path, c: &Chain) -> String {
    let steps: Vec<String> = c
        .steps
        .iter()
        .map(|s| s.path.clone().unwrap_or_else(|| s.id.uri()))
        .collect();
    format!(
        "{} -> {} ({})",
        file.display(),
        steps.join(" -> "),
        c.denied.uri()
    )
}

/// Percent-encode a purl qualifier value.
fn purl_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The product a statement is about: the file's gitoid as `@id`, its plain hashes, and a
/// generic purl naming the file and its path.
fn vex_product(file: &Path) -> Result<serde_json::Value, String> {
    use sha1::Digest as _;
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let gid = gitoid::id_of_bytes(Alg::Sha1, &bytes);
    let s1 = gitoid::to_hex(&sha1::Sha1::digest(&bytes));
    let s256 = gitoid::to_hex(&sha2::Sha256::digest(&bytes));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(serde_json::json!({
        "@id": gid.uri(),
        "identifiers": {
            "purl": format!(
                "pkg:generic/{}?checksum=sha1:{s1},sha256:{s256}&file_name={}",
                purl_escape(&name),
                purl_escape(&file.to_string_lossy())
            ),
        },
        "hashes": { "sha1": s1, "sha-256": s256 },
    }))
}

/// An OpenVEX v0.2.0 document: for each file checked and each vulnerability the lists name
/// (each distinct label), `affected` where the graph holds a denied version (the chains as
/// impact statement), `not_affected` (`vulnerable_code_not_present`) where the complete
/// graph holds none, `under_investigation` where the graph is incomplete. A denied version
/// without a label is its own vulnerability, named by its gitoid.
pub fn openvex(
    reports: &[Report],
    lists: &Lists,
    author: &str,
) -> Result<serde_json::Value, String> {
    use serde_json::json;
    let mut vulns: Vec<String> = lists
        .deny
        .values()
        .chain(lists.fixed.values())
        .flatten()
        .cloned()
        .collect();
    vulns.sort();
    vulns.dedup();
    let mut statements = Vec::new();
    for r in reports {
        let product = vex_product(&r.file)?;
        let fixed_note = |name: &str| -> String {
            let met: Vec<String> = r
                .fixed
                .iter()
                .filter(|c| c.labels.iter().any(|l| l == name))
                .map(|c| chain_text(&r.file, c))
                .collect();
            if met.is_empty() {
                String::new()
            } else {
                format!(" Fixed version present: {}.", met.join("; "))
            }
        };
        let affected = |name: &str, chains: Vec<&Chain>| -> serde_json::Value {
            let texts: Vec<String> = chains.iter().map(|c| chain_text(&r.file, c)).collect();
            let mut ids: Vec<String> = chains.iter().map(|c| c.denied.uri()).collect();
            ids.sort();
            ids.dedup();
            let subs: Vec<serde_json::Value> = ids.iter().map(|i| json!({ "@id": i })).collect();
            let mut p = product.clone();
            p["subcomponents"] = json!(subs);
            json!({
                "vulnerability": { "name": name },
                "products": [p],
                "status": "affected",
                "impact_statement": format!(
                    "The OmniBOR graph of {} holds a vulnerable version: {}.",
                    r.file.display(),
                    texts.join("; ")
                ),
                "action_statement": format!(
                    "Rebuild {} from fixed versions of the files named ({}).",
                    r.file.display(),
                    ids.join(", ")
                ),
            })
        };
        for v in &vulns {
            let hit: Vec<&Chain> = r
                .chains
                .iter()
                .filter(|c| c.labels.iter().any(|l| l == v))
                .collect();
            if !hit.is_empty() {
                statements.push(affected(v, hit));
            } else if !r.gaps.is_empty() {
                let why: Vec<String> = r.gaps.iter().map(|g| g.to_string()).collect();
                statements.push(json!({
                    "vulnerability": { "name": v },
                    "products": [product.clone()],
                    "status": "under_investigation",
                    "status_notes": format!(
                        "No vulnerable version was found in the OmniBOR graph of {}, but the graph is incomplete: {}.{}",
                        r.file.display(),
                        why.join("; "),
                        fixed_note(v)
                    ),
                }));
            } else {
                statements.push(json!({
                    "vulnerability": { "name": v },
                    "products": [product.clone()],
                    "status": "not_affected",
                    "justification": "vulnerable_code_not_present",
                    "impact_statement": format!(
                        "The complete OmniBOR graph of {} holds none of the vulnerable versions listed.{}",
                        r.file.display(),
                        fixed_note(v)
                    ),
                }));
            }
        }
        let mut unlabeled: Vec<&Chain> = r.chains.iter().filter(|c| c.labels.is_empty()).collect();
        unlabeled.sort_by_key(|c| c.denied.uri());
        let mut i = 0;
        while i < unlabeled.len() {
            let id = unlabeled[i].denied;
            let group: Vec<&Chain> = unlabeled[i..]
                .iter()
                .take_while(|c| c.denied == id)
                .copied()
                .collect();
            i += group.len();
            statements.push(affected(&id.uri(), group));
        }
    }
    if statements.is_empty() {
        return Err(
            "nothing to state: no file was checked, or the deny list names no vulnerability (no labels) and nothing denied was found"
                .into(),
        );
    }
    let st = json!(statements);
    let doc_id = gitoid::to_hex(&{
        use sha2::Digest as _;
        sha2::Sha256::digest(st.to_string().as_bytes())
    });
    Ok(json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": format!("https://openvex.dev/docs/public/vex-{doc_id}"),
        "author": author,
        "timestamp": crate::sbom::now_utc(),
        "version": 1,
        "tooling": concat!("omnishim ", env!("CARGO_PKG_VERSION"), " check --openvex"),
        "statements": st,
    }))
}
