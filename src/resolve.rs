//! Walking the graph: from a file (its note, or the target index) through stored manifests
//! down to the source files. Each manifest is loaded once per run; missing or malformed
//! manifests and cycles are reported on the node and never stop the walk.

use crate::elf;
use crate::gitoid::{self, Alg, Id};
use crate::manifest::Manifest;
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What is known of one node of the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// A leaf: no manifest known (a source file, a header, a foreign object).
    Leaf,
    /// Has a manifest, loaded.
    Manifest(Id),
    /// Has a manifest ID but the store does not hold it.
    Missing(Id),
    /// The manifest is there but does not parse.
    Malformed(Id, String),
    /// The manifest is there but cannot be read (the OS error, e.g. another user's 0600 file).
    Unreadable(Id, String),
    /// Already on the path from the root: a cycle.
    Cycle(Id),
    /// The file asked about has no manifest: no note, nothing in the store's target index.
    /// (Only ever a root: below a manifest, an input without one is a `Leaf`.)
    Unrecorded,
    /// Left out on purpose by whoever exported the graph (`export --withhold`).
    Withheld(Id),
}

/// Why a file's graph could not be walked completely. Any gap makes an answer "unknown"
/// rather than "clean".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gap {
    /// The file itself has no manifest: not built under the shims.
    Unrecorded,
    /// The store directory does not exist, so no manifest can be read.
    NoStore(PathBuf),
    Missing(Id),
    Malformed(Id, String),
    Unreadable(Id, String),
    /// The exporter left this manifest's subgraph out (`export --withhold`).
    Withheld(Id),
}

impl Gap {
    /// A stable name for JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Gap::Unrecorded => "no-note",
            Gap::NoStore(_) => "store-not-found",
            Gap::Missing(_) => "manifest-missing",
            Gap::Malformed(..) => "manifest-malformed",
            Gap::Unreadable(..) => "manifest-unreadable",
            Gap::Withheld(_) => "withheld",
        }
    }

    pub fn manifest(&self) -> Option<Id> {
        match self {
            Gap::Missing(m) | Gap::Malformed(m, _) | Gap::Unreadable(m, _) | Gap::Withheld(m) => {
                Some(*m)
            }
            Gap::Unrecorded | Gap::NoStore(_) => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.kind(),
            "manifest": self.manifest().map(|m| m.uri()),
            "message": self.to_string(),
        })
    }
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gap::Unrecorded => write!(
                f,
                "no note (unrecorded file: no OmniBOR note, and no manifest for it in the store)"
            ),
            Gap::NoStore(p) => write!(
                f,
                "store not found: {} does not exist (set OMNIBOR_DIR or --store)",
                p.display()
            ),
            Gap::Missing(m) => write!(f, "manifest {} missing from the store", m.uri()),
            Gap::Malformed(m, e) => write!(f, "manifest {} malformed: {e}", m.uri()),
            Gap::Unreadable(m, e) => write!(f, "manifest {} unreadable: {e}", m.uri()),
            Gap::Withheld(m) => write!(
                f,
                "manifest {} withheld by the exporter (the graph below it was left out)",
                m.uri()
            ),
        }
    }
}

/// Add a gap once.
pub fn add_gap(gaps: &mut Vec<Gap>, g: Gap) {
    if !gaps.contains(&g) {
        gaps.push(g);
    }
}

/// One line (for stderr) naming a file whose graph is incomplete and why; with several gaps
/// the first is named and the others counted (`--json` lists them all).
pub fn incomplete_line(path: &Path, gaps: &[Gap]) -> Option<String> {
    let first = gaps.first()?;
    let more = match gaps.len() {
        1 => String::new(),
        2 => " (and 1 more problem)".to_string(),
        n => format!(" (and {} more problems)", n - 1),
    };
    Some(format!("{}: incomplete: {first}{more}", path.display()))
}

#[derive(Clone, Debug)]
pub struct Node {
    pub artifact: Id,
    pub state: NodeState,
    pub children: Vec<Node>,
    /// Reached as a shared library the parent links against, not as a manifest input.
    pub dynamic: bool,
    /// Inputs of this node's manifest left out because the parent link did not use them
    /// (members of an archive the linker did not pull in).
    pub omitted: usize,
}

type Members = std::collections::BTreeMap<Id, std::collections::BTreeSet<Id>>;

/// A resolver over one store, with everything it loads cached for the run.
pub struct Resolver {
    pub store: Store,
    pub alg: Alg,
    /// Whether the store's directory exists (checked once: reading never creates it).
    store_found: bool,
    manifests: HashMap<Id, Result<Manifest, NodeState>>,
    paths: Option<HashMap<String, Vec<String>>>,
    twins: HashMap<String, String>,
    members: HashMap<Id, Option<std::rc::Rc<Members>>>,
    /// Manifests the store's exporter left out on purpose.
    withheld: HashSet<Id>,
}

impl Resolver {
    pub fn new(store: Store, alg: Alg) -> Resolver {
        let store_found = store.root().is_dir();
        Resolver {
            alg,
            store_found,
            manifests: HashMap::new(),
            paths: None,
            twins: HashMap::new(),
            members: HashMap::new(),
            withheld: if store_found {
                crate::export::withheld_in(&store)
            } else {
                HashSet::new()
            },
            store,
        }
    }

    /// The root of a file: its IDs, and its manifest from the note or the target index.
    pub fn root_of(&self, path: &Path) -> Result<(Id, Option<Id>), String> {
        let ids = gitoid::ids_of_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let artifact = ids.get(self.alg);
        let bytes_head =
            crate::shim::record::head(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if elf::is_elf(&bytes_head) {
            let note = elf::read_note_file(path).map_err(|e| e.to_string())?;
            if let Some(m) = note.get(self.alg) {
                return Ok((artifact, Some(m)));
            }
        }
        Ok((artifact, self.store.get_target(&artifact)))
    }

    /// A manifest from the store, loaded once per run.
    pub fn load(&mut self, id: &Id) -> Result<Manifest, NodeState> {
        if !self.manifests.contains_key(id) {
            let r = match self.store.get_object(id) {
                Ok(Some(b)) => {
                    Manifest::parse(&b).map_err(|e| NodeState::Malformed(*id, e.to_string()))
                }
                Ok(None) if self.withheld.contains(id) => Err(NodeState::Withheld(*id)),
                Ok(None) => Err(NodeState::Missing(*id)),
                Err(e) => Err(NodeState::Unreadable(*id, e.to_string())),
            };
            self.manifests.insert(*id, r);
        }
        self.manifests[id].clone()
    }

    /// What a node's state leaves unknown, if anything. Without a store every manifest is
    /// missing: that is said once, as "store not found".
    pub fn gap_of(&self, state: &NodeState) -> Option<Gap> {
        if !self.store_found
            && matches!(
                state,
                NodeState::Missing(_)
                    | NodeState::Malformed(..)
                    | NodeState::Unreadable(..)
                    | NodeState::Unrecorded
            )
        {
            return Some(Gap::NoStore(self.store.root().to_path_buf()));
        }
        match state {
            NodeState::Leaf | NodeState::Manifest(_) | NodeState::Cycle(_) => None,
            NodeState::Missing(m) => Some(Gap::Missing(*m)),
            NodeState::Malformed(m, e) => Some(Gap::Malformed(*m, e.clone())),
            NodeState::Unreadable(m, e) => Some(Gap::Unreadable(*m, e.clone())),
            NodeState::Unrecorded => Some(Gap::Unrecorded),
            NodeState::Withheld(m) => Some(Gap::Withheld(*m)),
        }
    }

    /// Every gap in a resolved graph, each once, in walk order.
    pub fn gaps(&self, root: &Node) -> Vec<Gap> {
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(n) = stack.pop() {
            if let Some(g) = self.gap_of(&n.state) {
                add_gap(&mut out, g);
            }
            stack.extend(n.children.iter().rev());
        }
        out
    }

    /// The archive members the links with this manifest pulled in, when recorded (loaded
    /// once per run).
    pub fn members(&mut self, manifest: &Id) -> Option<std::rc::Rc<Members>> {
        if !self.members.contains_key(manifest) {
            let m = self.store.members(manifest).map(std::rc::Rc::new);
            self.members.insert(*manifest, m);
        }
        self.members[manifest].clone()
    }

    /// The graph below an artifact with a known (or unknown) manifest.
    pub fn walk(&mut self, artifact: Id, manifest: Option<Id>) -> Node {
        let mut stack = HashSet::new();
        self.walk_inner(artifact, manifest, &mut stack, None)
    }

    /// The graph of a file asked about: like `walk`, but a root without a manifest is
    /// `Unrecorded` (a file nobody recorded), not a source leaf.
    pub fn walk_root(&mut self, artifact: Id, manifest: Option<Id>) -> Node {
        let mut node = self.walk(artifact, manifest);
        if manifest.is_none() {
            node.state = NodeState::Unrecorded;
        }
        node
    }

    /// `only`: the inputs to keep (an archive below a link: the members it pulled in).
    fn walk_inner(
        &mut self,
        artifact: Id,
        manifest: Option<Id>,
        stack: &mut HashSet<Id>,
        only: Option<&std::collections::BTreeSet<Id>>,
    ) -> Node {
        let Some(mid) = manifest else {
            return Node {
                artifact,
                state: NodeState::Leaf,
                children: Vec::new(),
                dynamic: false,
                omitted: 0,
            };
        };
        if stack.contains(&mid) {
            return Node {
                artifact,
                state: NodeState::Cycle(mid),
                children: Vec::new(),
                dynamic: false,
                omitted: 0,
            };
        }
        let m = match self.load(&mid) {
            Ok(m) => m,
            Err(state) => {
                return Node {
                    artifact,
                    state,
                    children: Vec::new(),
                    dynamic: false,
                    omitted: 0,
                }
            }
        };
        stack.insert(mid);
        let pulled = self.members(&mid);
        let mut children = Vec::with_capacity(m.inputs.len());
        let mut omitted = 0;
        for (a, mf) in &m.inputs {
            if only.is_some_and(|o| !o.contains(a)) {
                omitted += 1;
                continue;
            }
            let sub = pulled.as_ref().and_then(|p| p.get(a));
            children.push(self.walk_inner(*a, *mf, stack, sub));
        }
        stack.remove(&mid);
        Node {
            artifact,
            state: NodeState::Manifest(mid),
            children,
            dynamic: false,
            omitted,
        }
    }

    /// Paths an artifact was seen at (from the store's path index, loaded once).
    pub fn paths(&mut self, id: &Id) -> Vec<String> {
        if self.paths.is_none() {
            let mut map: HashMap<String, Vec<String>> = HashMap::new();
            let dir = self
                .store
                .root()
                .join("metadata")
                .join(crate::store::TOOL)
                .join("paths");
            if let Ok(rd) = std::fs::read_dir(&dir) {
                // shards in name order: which path names an artifact seen at several must not
                // depend on the order the file system lists them in (an export or a pull
                // writes the same shards in another order)
                let mut shards: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
                shards.sort();
                for shard in shards {
                    // a path that is not UTF-8 is shown with U+FFFD (the walk is by ID)
                    let Ok(bytes) = std::fs::read(&shard) else {
                        continue;
                    };
                    let text = String::from_utf8_lossy(&bytes);
                    for line in text.lines() {
                        let mut it = line.splitn(3, ' ');
                        let (Some(a), Some(b), Some(p)) = (it.next(), it.next(), it.next()) else {
                            continue;
                        };
                        self.twins.insert(a.to_string(), b.to_string());
                        self.twins.insert(b.to_string(), a.to_string());
                        for k in [a, b] {
                            let v = map.entry(k.to_string()).or_default();
                            if !v.iter().any(|x| x == p) {
                                v.push(p.to_string());
                            }
                        }
                    }
                }
            }
            self.paths = Some(map);
        }
        self.paths
            .as_ref()
            .and_then(|m| m.get(&id.hex()).cloned())
            .unwrap_or_default()
    }
}

impl Resolver {
    /// The same artifact's ID in the other algorithm, when the path index knows it.
    pub fn twin(&mut self, id: &Id) -> Option<Id> {
        self.paths(id);
        self.twins.get(&id.hex()).and_then(|h| Id::from_hex(h).ok())
    }
}

/// A shared library an artifact links against, as recorded at link time.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct DynamicLib {
    pub path: String,
    pub sha1: String,
    pub sha256: String,
    pub manifest_sha1: Option<String>,
    pub manifest_sha256: Option<String>,
}

impl Resolver {
    /// Shared libraries recorded for the artifact whose sha1 ID is given.
    pub fn dynamic_of(&self, sha1: &Id) -> Vec<DynamicLib> {
        self.store
            .read_file(&self.store.dynamic_path(sha1))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The graph of a file, and with `follow_dynamic` the graphs of the shared libraries it
    /// links against (those that carry notes) as further children, recursively.
    pub fn resolve_file(&mut self, path: &Path, follow_dynamic: bool) -> Result<Node, String> {
        let ids = gitoid::ids_of_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (artifact, manifest) = self.root_of(path)?;
        let mut node = self.walk_root(artifact, manifest);
        if follow_dynamic {
            let mut seen = HashSet::new();
            self.add_dynamic(&mut node, &ids.sha1, &mut seen);
        }
        Ok(node)
    }

    fn add_dynamic(&mut self, node: &mut Node, sha1: &Id, seen: &mut HashSet<Id>) {
        if !seen.insert(*sha1) {
            return;
        }
        for lib in self.dynamic_of(sha1) {
            let (a, m) = match self.alg {
                Alg::Sha1 => (&lib.sha1, &lib.manifest_sha1),
                Alg::Sha256 => (&lib.sha256, &lib.manifest_sha256),
            };
            let (Ok(a), Some(Ok(m))) = (Id::from_hex(a), m.as_deref().map(Id::from_hex)) else {
                continue; // a library without a note: nothing to follow
            };
            let mut child = self.walk(a, Some(m));
            child.dynamic = true;
            if let Ok(lib_sha1) = Id::from_hex(&lib.sha1) {
                self.add_dynamic(&mut child, &lib_sha1, seen);
            }
            node.children.push(child);
        }
    }
}

/// Distinct leaves of a graph, in first-seen order.
pub fn leaves(n: &Node) -> Vec<Id> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    fn go(n: &Node, out: &mut Vec<Id>, seen: &mut HashSet<Id>) {
        if n.children.is_empty() && matches!(n.state, NodeState::Leaf) {
            if seen.insert(n.artifact) {
                out.push(n.artifact);
            }
            return;
        }
        for c in &n.children {
            go(c, out, seen);
        }
    }
    go(n, &mut out, &mut seen);
    out
}

/// The chain from the root down to every node whose artifact is in `wanted`.
pub fn find_paths(n: &Node, wanted: &HashSet<Id>) -> Vec<Vec<Id>> {
    let mut out = Vec::new();
    let mut chain = Vec::new();
    fn go(n: &Node, wanted: &HashSet<Id>, chain: &mut Vec<Id>, out: &mut Vec<Vec<Id>>) {
        chain.push(n.artifact);
        if wanted.contains(&n.artifact) {
            out.push(chain.clone());
        }
        for c in &n.children {
            go(c, wanted, chain, out);
        }
        chain.pop();
    }
    go(n, wanted, &mut chain, &mut out);
    out
}
