//! The vulnerable commits, the affected paths and their versions, read from a clone with
//! `gix`.
//!
//! Definitions (README, "Deny lists from history"), with `A <= B` meaning "A is B or an
//! ancestor of B" over the commit graph:
//! - The universe U: `deny git`: the fixing commits and their ancestors; `deny osv`: every
//!   commit reachable from HEAD, a branch, a tag or a remote branch, or named by an event.
//! - A range's vulnerable commits: those C in U with `I <= C` for an introduced I (every C
//!   for "0"), such that no fixed F has `I <= F <= C` and no last_affected L has
//!   `I <= L < C`; with limit events, only those C with `C < Lim` (proper ancestor) for some
//!   limit Lim. `deny git` is the range {introduced (or 0), fixed..., limit = each fixed}:
//!   every commit on an ancestry path from the introducing commit (or a root) to a fix, the
//!   fix and anything below another fix excluded, merges through all their parents.
//! - The affected paths N: the paths given, or the paths each fixing commit changes against
//!   its first parent (renames' sources too) less tests and docs; then, closed over renames:
//!   for each edge P -> C with P vulnerable and C vulnerable or fixing, when the tree diff
//!   P -> C with git's default rename detection (50% similarity, no copies) renames a to b,
//!   a is in N exactly when b is.
//! - Vulnerable versions: the blob (regular or executable file) at each path of N in each
//!   vulnerable commit. Fixed versions: the blobs at each path of N in each fixing commit
//!   that are not vulnerable versions.

use super::{is_test_or_doc, DenyError, Derived, Range, Versions};
use gix::bstr::ByteSlice;
use gix::ObjectId;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Where the vulnerable commits are looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Universe {
    /// The fixing commits and their ancestors (`deny git`).
    FixedAncestors,
    /// Every commit reachable from a ref or an event (`deny osv`).
    AllRefs,
}

pub struct History {
    repo: gix::Repository,
    path: PathBuf,
    parents: HashMap<ObjectId, Vec<ObjectId>>,
    trees: HashMap<ObjectId, ObjectId>,
    blobs: HashMap<(ObjectId, String), Option<ObjectId>>,
    renames: HashMap<(ObjectId, ObjectId), Vec<(String, String)>>,
}

/// A range with its events resolved to commits; `introduced` empty means "0".
struct Resolved {
    introduced: Vec<ObjectId>,
    fixed: Vec<ObjectId>,
    last_affected: Vec<ObjectId>,
    limit: Vec<ObjectId>,
}

impl History {
    pub fn open(path: &Path) -> Result<History, DenyError> {
        let repo = gix::open(path).map_err(|e| DenyError::Git {
            repo: path.to_path_buf(),
            msg: format!("not a git repository: {e}"),
        })?;
        Ok(History {
            repo,
            path: path.to_path_buf(),
            parents: HashMap::new(),
            trees: HashMap::new(),
            blobs: HashMap::new(),
            renames: HashMap::new(),
        })
    }

    fn err(&self, msg: impl std::fmt::Display) -> DenyError {
        DenyError::Git {
            repo: self.path.clone(),
            msg: msg.to_string(),
        }
    }

    /// A commit named by a revision (a hex ID, a branch, a tag...).
    pub fn commit(&self, spec: &str) -> Result<ObjectId, DenyError> {
        let id = self
            .repo
            .rev_parse_single(spec)
            .map_err(|e| self.err(format!("{spec}: {e}")))?;
        let c = id
            .object()
            .and_then(|o| o.peel_to_commit())
            .map_err(|e| self.err(format!("{spec}: not a commit: {e}")))?;
        Ok(c.id)
    }

    /// The fetch URLs of every remote.
    pub fn remote_urls(&self) -> Vec<String> {
        let mut out = Vec::new();
        for name in self.repo.remote_names() {
            if let Ok(r) = self.repo.find_remote(name.as_bstr()) {
                if let Some(u) = r.url(gix::remote::Direction::Fetch) {
                    out.push(u.to_bstring().to_string());
                }
            }
        }
        out
    }

    fn parents_of(&mut self, id: ObjectId) -> Result<&[ObjectId], DenyError> {
        if !self.parents.contains_key(&id) {
            let c = self
                .repo
                .find_commit(id)
                .map_err(|e| self.err(format!("commit {id}: {e}")))?;
            let ps: Vec<ObjectId> = c.parent_ids().map(|p| p.detach()).collect();
            let tree = c
                .tree_id()
                .map_err(|e| self.err(format!("commit {id}: {e}")))?
                .detach();
            self.trees.insert(id, tree);
            self.parents.insert(id, ps);
        }
        Ok(&self.parents[&id])
    }

    /// Every commit reachable from the tips, tips included.
    fn ancestors(&mut self, tips: &[ObjectId]) -> Result<HashSet<ObjectId>, DenyError> {
        let mut seen = HashSet::new();
        let mut stack: Vec<ObjectId> = tips.to_vec();
        while let Some(c) = stack.pop() {
            if !seen.insert(c) {
                continue;
            }
            let ps = self.parents_of(c)?.to_vec();
            stack.extend(ps.into_iter().filter(|p| !seen.contains(p)));
        }
        Ok(seen)
    }

    /// The commits every ref points to (refs that point to no commit are passed over).
    fn ref_tips(&self) -> Result<Vec<ObjectId>, DenyError> {
        let refs = self
            .repo
            .references()
            .map_err(|e| self.err(format!("cannot read refs: {e}")))?;
        let all = refs
            .all()
            .map_err(|e| self.err(format!("cannot read refs: {e}")))?;
        let mut out = Vec::new();
        for r in all.flatten() {
            let mut r = r;
            // branches, tags and remote branches: not notes or stashes, which are no versions
            let name = r.name().as_bstr().to_string();
            if !["refs/heads/", "refs/tags/", "refs/remotes/"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                continue;
            }
            if let Ok(c) = r.peel_to_commit() {
                out.push(c.id);
            }
        }
        if let Ok(head) = self.repo.head_id() {
            out.push(head.detach());
        }
        Ok(out)
    }

    fn resolve(&self, r: &Range) -> Result<Resolved, DenyError> {
        let list = |v: &[String]| -> Result<Vec<ObjectId>, DenyError> {
            v.iter().map(|s| self.commit(s)).collect()
        };
        Ok(Resolved {
            introduced: list(
                &r.introduced
                    .iter()
                    .filter(|s| s.as_str() != "0")
                    .cloned()
                    .collect::<Vec<_>>(),
            )?,
            fixed: list(&r.fixed)?,
            last_affected: list(&r.last_affected)?,
            limit: list(&r.limit)?,
        })
    }

    /// The vulnerable commits of the ranges, over the universe, and the fixing commits.
    pub fn vulnerable(
        &mut self,
        ranges: &[Range],
        universe: Universe,
    ) -> Result<(HashSet<ObjectId>, Vec<ObjectId>), DenyError> {
        let resolved: Vec<Resolved> = ranges
            .iter()
            .map(|r| self.resolve(r))
            .collect::<Result<_, _>>()?;
        let mut tips: Vec<ObjectId> = Vec::new();
        for r in &resolved {
            tips.extend(&r.fixed);
            if universe == Universe::AllRefs {
                tips.extend(&r.introduced);
                tips.extend(&r.last_affected);
                tips.extend(&r.limit);
            }
        }
        if universe == Universe::AllRefs {
            tips.extend(self.ref_tips()?);
        }
        let all = self.ancestors(&tips)?;
        let mut children: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
        for c in &all {
            for p in &self.parents[c] {
                children.entry(*p).or_default().push(*c);
            }
        }
        let below = |from: &[ObjectId]| -> HashSet<ObjectId> {
            let mut seen = HashSet::new();
            let mut stack = from.to_vec();
            while let Some(c) = stack.pop() {
                if seen.insert(c) {
                    stack.extend(children.get(&c).into_iter().flatten().copied());
                }
            }
            seen
        };
        let mut out = HashSet::new();
        let mut fixes = Vec::new();
        for r in &resolved {
            let mut affected = HashSet::new();
            let intros: Vec<Option<ObjectId>> = if r.introduced.is_empty() {
                vec![None]
            } else {
                r.introduced.iter().copied().map(Some).collect()
            };
            for i in intros {
                let from = match i {
                    Some(i) => below(&[i]),
                    None => all.clone(),
                };
                let mut closed = HashSet::new();
                for f in r.fixed.iter().filter(|f| from.contains(*f)) {
                    closed.extend(below(&[*f]));
                }
                for l in r.last_affected.iter().filter(|l| from.contains(*l)) {
                    let mut d = below(&[*l]);
                    d.remove(l);
                    closed.extend(d);
                }
                affected.extend(from.into_iter().filter(|c| !closed.contains(c)));
            }
            if !r.limit.is_empty() {
                let mut before = self.ancestors(&r.limit)?;
                for l in &r.limit {
                    // a limit is excluded unless it is a proper ancestor of another limit
                    if !r
                        .limit
                        .iter()
                        .any(|o| o != l && self.parents_closure_has(*o, *l))
                    {
                        before.remove(l);
                    }
                }
                affected.retain(|c| before.contains(c));
            }
            out.extend(affected);
            fixes.extend(r.fixed.iter().copied());
        }
        let mut seen = HashSet::new();
        fixes.retain(|f| seen.insert(*f));
        Ok((out, fixes))
    }

    /// Whether `anc` is a proper ancestor of `of` (over the loaded graph).
    fn parents_closure_has(&self, of: ObjectId, anc: ObjectId) -> bool {
        let mut seen = HashSet::new();
        let mut stack: Vec<ObjectId> = self.parents.get(&of).cloned().unwrap_or_default();
        while let Some(c) = stack.pop() {
            if c == anc {
                return true;
            }
            if seen.insert(c) {
                stack.extend(self.parents.get(&c).into_iter().flatten().copied());
            }
        }
        false
    }

    fn tree_id(&mut self, commit: ObjectId) -> Result<ObjectId, DenyError> {
        self.parents_of(commit)?;
        Ok(self.trees[&commit])
    }

    fn tree(&self, t: ObjectId) -> Result<gix::Tree<'_>, DenyError> {
        self.repo
            .find_tree(t)
            .map_err(|e| self.err(format!("tree {t}: {e}")))
    }

    /// The blob (regular or executable file) at a path in a commit.
    fn blob_at(&mut self, commit: ObjectId, path: &str) -> Result<Option<ObjectId>, DenyError> {
        let key = (commit, path.to_string());
        if let Some(b) = self.blobs.get(&key) {
            return Ok(*b);
        }
        let t = self.tree_id(commit)?;
        let tree = self.tree(t)?;
        let e = tree
            .lookup_entry_by_path(path)
            .map_err(|e| DenyError::Git {
                repo: self.path.clone(),
                msg: format!("{commit}:{path}: {e}"),
            })?;
        let b = e.filter(|e| e.mode().is_blob()).map(|e| e.object_id());
        drop(tree);
        self.blobs.insert(key, b);
        Ok(b)
    }

    /// The tree changes from `old` (None: the empty tree) to `new`, with git's default
    /// rename detection: (source path for renames, path, is a blob) per change.
    fn changes(
        &mut self,
        old: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<Vec<(Option<String>, String)>, DenyError> {
        use gix::object::tree::diff::ChangeDetached as C;
        let new_t = self.tree_id(new)?;
        let old_t = match old {
            Some(o) => Some(self.tree_id(o)?),
            None => None,
        };
        let new_tree = self.tree(new_t)?;
        let old_tree = match old_t {
            Some(t) => Some(self.tree(t)?),
            None => None,
        };
        let opts = gix::diff::Options::default().with_rewrites(Some(Default::default()));
        let changes = self
            .repo
            .diff_tree_to_tree(old_tree.as_ref(), Some(&new_tree), opts)
            .map_err(|e| DenyError::Git {
                repo: self.path.clone(),
                msg: format!(
                    "diff {} {new}: {e}",
                    old.map(|o| o.to_string()).unwrap_or_default()
                ),
            })?;
        let mut out = Vec::new();
        for c in changes {
            match c {
                C::Addition {
                    location,
                    entry_mode,
                    ..
                }
                | C::Deletion {
                    location,
                    entry_mode,
                    ..
                } if entry_mode.is_blob() => out.push((None, location.to_string())),
                C::Modification {
                    location,
                    entry_mode,
                    previous_entry_mode,
                    ..
                } if entry_mode.is_blob() || previous_entry_mode.is_blob() => {
                    out.push((None, location.to_string()))
                }
                C::Rewrite {
                    source_location,
                    source_entry_mode,
                    location,
                    entry_mode,
                    copy: false,
                    ..
                } if entry_mode.is_blob() && source_entry_mode.is_blob() => {
                    out.push((Some(source_location.to_string()), location.to_string()))
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The renames (source, destination) between a parent and a child.
    fn renames(&mut self, p: ObjectId, c: ObjectId) -> Result<&[(String, String)], DenyError> {
        if !self.renames.contains_key(&(p, c)) {
            let r = self
                .changes(Some(p), c)?
                .into_iter()
                .filter_map(|(s, d)| Some((s?, d)))
                .collect();
            self.renames.insert((p, c), r);
        }
        Ok(&self.renames[&(p, c)])
    }

    /// The paths a fixing commit changes against its first parent (renames' sources too).
    pub fn changed_by(&mut self, fix: ObjectId) -> Result<Vec<String>, DenyError> {
        let first = self.parents_of(fix)?.first().copied();
        let mut out = BTreeSet::new();
        for (s, d) in self.changes(first, fix)? {
            out.extend(s);
            out.insert(d);
        }
        Ok(out.into_iter().collect())
    }

    /// Everything: the vulnerable commits of the ranges, the affected paths (`paths`, or
    /// those the fixes change less tests and docs) closed over renames, and the versions.
    pub fn derive(
        &mut self,
        ranges: &[Range],
        universe: Universe,
        paths: &[String],
    ) -> Result<Derived, DenyError> {
        let (vuln, fixes) = self.vulnerable(ranges, universe)?;
        let mut left_out = Vec::new();
        let mut names: Vec<String> = Vec::new();
        if paths.is_empty() {
            for f in &fixes {
                for p in self.changed_by(*f)? {
                    if is_test_or_doc(&p) {
                        left_out.push(p);
                    } else {
                        names.push(p);
                    }
                }
            }
            if names.is_empty() {
                return Err(DenyError::Usage(if fixes.is_empty() {
                    "no fixing commit to take the affected paths from: give --path".into()
                } else {
                    format!(
                        "the fixing commits change only tests and docs ({}): give --path",
                        super::dedup(left_out.iter().cloned()).join(" ")
                    )
                }));
            }
        } else {
            names.extend(paths.iter().cloned());
        }
        let mut names = super::dedup(names);
        let left_out = super::dedup(left_out);
        // every name the files had in the range: close over renames on the range's edges
        let mut edges = Vec::new();
        let mut heads: Vec<ObjectId> = vuln.iter().copied().collect();
        heads.extend(&fixes);
        heads.sort();
        heads.dedup();
        for c in &heads {
            for p in self.parents_of(*c)?.to_vec() {
                if vuln.contains(&p) {
                    edges.push((p, *c));
                }
            }
        }
        edges.sort();
        let mut set: BTreeSet<String> = names.iter().cloned().collect();
        loop {
            let mut grew = false;
            for &(p, c) in &edges {
                let mut touched = false;
                for n in set.clone() {
                    if self.blob_at(p, &n)?.is_some() != self.blob_at(c, &n)?.is_some() {
                        touched = true;
                        break;
                    }
                }
                if !touched {
                    continue;
                }
                for (a, b) in self.renames(p, c)?.to_vec() {
                    if set.contains(&a) != set.contains(&b) {
                        for n in [a, b] {
                            if set.insert(n.clone()) {
                                names.push(n);
                            }
                        }
                        grew = true;
                    }
                }
            }
            if !grew {
                break;
            }
        }
        let mut vulnerable = Versions::default();
        let mut commits: Vec<ObjectId> = vuln.iter().copied().collect();
        commits.sort();
        for c in &commits {
            for n in &names {
                if let Some(b) = self.blob_at(*c, n)? {
                    if !vulnerable.contains(b.as_bytes()) {
                        let data = self.blob_data(b)?;
                        vulnerable.insert(b.as_bytes(), n, || data);
                    }
                }
            }
        }
        let mut fixed = Versions::default();
        for f in &fixes {
            for n in &names {
                if let Some(b) = self.blob_at(*f, n)? {
                    if !fixed.contains(b.as_bytes()) && !vulnerable.contains(b.as_bytes()) {
                        let data = self.blob_data(b)?;
                        fixed.insert(b.as_bytes(), n, || data);
                    }
                }
            }
        }
        let none = Versions::default();
        let fixed = fixed.into_sorted(&vulnerable);
        Ok(Derived {
            vulnerable: vulnerable.into_sorted(&none),
            fixed,
            paths: names,
            left_out,
            commits: vuln.len(),
        })
    }

    fn blob_data(&self, b: ObjectId) -> Result<Vec<u8>, DenyError> {
        self.repo
            .find_blob(b)
            .map(|mut x| x.take_data())
            .map_err(|e| self.err(format!("blob {b}: {e}")))
    }
}
