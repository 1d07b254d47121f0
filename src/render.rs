//! Printing resolved graphs: an indented tree, JSON nodes and edges, Graphviz.

use crate::resolve::{Node, NodeState, Resolver};
use std::collections::HashSet;
use std::fmt::Write;
use std::path::Path;

fn state_note(n: &Node) -> String {
    match &n.state {
        NodeState::Leaf | NodeState::Manifest(_) => String::new(),
        NodeState::Missing(m) => format!("  [manifest {} missing from the store]", m.hex()),
        NodeState::Malformed(m, e) => format!("  [manifest {} malformed: {e}]", m.hex()),
        NodeState::Unreadable(m, e) => format!("  [manifest {} unreadable: {e}]", m.hex()),
        NodeState::Unrecorded => "  [no note: unrecorded file]".to_string(),
        NodeState::Cycle(m) => format!("  [cycle through manifest {}]", m.hex()),
        NodeState::Withheld(m) => format!("  [manifest {} withheld by the exporter]", m.hex()),
    }
}

fn label(r: &mut Resolver, n: &Node) -> String {
    r.paths(&n.artifact)
        .into_iter()
        .next()
        .unwrap_or_else(|| "?".into())
}

/// The indented tree, each node once in full; a subtree already printed is abbreviated.
pub fn tree(r: &mut Resolver, root_path: &Path, root: &Node) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  {}{}",
        root_path.display(),
        root.artifact.uri(),
        state_note(root)
    );
    let mut printed = HashSet::new();
    fn go(
        r: &mut Resolver,
        n: &Node,
        prefix: &str,
        out: &mut String,
        printed: &mut HashSet<(crate::gitoid::Id, usize)>,
    ) {
        let count = n.children.len();
        for (i, c) in n.children.iter().enumerate() {
            let last = i + 1 == count;
            let (branch, cont) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            let dynamic = if c.dynamic { " (shared library)" } else { "" };
            // an archive shows the members its parent link pulled in, which differ per link
            let again = !c.children.is_empty() && !printed.insert((c.artifact, c.omitted));
            let unlinked = match c.omitted {
                0 => String::new(),
                1 => "  (1 member not linked)".to_string(),
                k => format!("  ({k} members not linked)"),
            };
            let _ = writeln!(
                out,
                "{prefix}{branch}{}  {}{dynamic}{}{unlinked}{}",
                label(r, c),
                c.artifact.hex(),
                state_note(c),
                if again { "  (see above)" } else { "" }
            );
            if !again {
                go(r, c, &format!("{prefix}{cont}"), out, printed);
            }
        }
    }
    go(r, root, "", &mut out, &mut printed);
    out
}

/// Nodes (artifact ID, paths, manifest, problem) and edges (parent -> input), with the
/// file's verdict: "complete", or "incomplete" and every gap.
pub fn json(r: &mut Resolver, root_path: &Path, root: &Node) -> serde_json::Value {
    let gaps = r.gaps(root);
    let mut nodes = serde_json::Map::new();
    let mut edges = Vec::new();
    let mut seen = HashSet::new();
    fn go(
        r: &mut Resolver,
        n: &Node,
        nodes: &mut serde_json::Map<String, serde_json::Value>,
        edges: &mut Vec<serde_json::Value>,
        seen: &mut HashSet<(crate::gitoid::Id, crate::gitoid::Id)>,
    ) {
        let uri = n.artifact.uri();
        if !nodes.contains_key(&uri) {
            let manifest = match &n.state {
                NodeState::Manifest(m)
                | NodeState::Missing(m)
                | NodeState::Malformed(m, _)
                | NodeState::Unreadable(m, _)
                | NodeState::Cycle(m)
                | NodeState::Withheld(m) => Some(m.uri()),
                NodeState::Leaf | NodeState::Unrecorded => None,
            };
            // "[...]" around the note is for the tree
            let problem = state_note(n)
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            nodes.insert(
                uri.clone(),
                serde_json::json!({
                    "paths": r.paths(&n.artifact),
                    "manifest": manifest,
                    "problem": if problem.is_empty() { None } else { Some(problem) },
                }),
            );
        }
        for c in &n.children {
            if seen.insert((n.artifact, c.artifact)) {
                edges.push(serde_json::json!({
                    "from": uri, "to": c.artifact.uri(),
                    "kind": if c.dynamic { "dynamic" } else { "input" },
                }));
                go(r, c, nodes, edges, seen);
            }
        }
    }
    go(r, root, &mut nodes, &mut edges, &mut seen);
    serde_json::json!({
        "file": root_path.to_string_lossy(),
        "root": root.artifact.uri(),
        "verdict": if gaps.is_empty() { "complete" } else { "incomplete" },
        "incomplete": gaps.iter().map(|g| g.to_json()).collect::<Vec<_>>(),
        "nodes": nodes,
        "edges": edges,
    })
}

/// Graphviz digraph, one node per artifact, labelled with its first known path.
pub fn dot(r: &mut Resolver, root: &Node) -> String {
    let mut out = String::from("digraph omnibor {\n  rankdir=LR;\n  node [shape=box];\n");
    let mut seen_nodes = HashSet::new();
    let mut seen_edges = HashSet::new();
    fn go(
        r: &mut Resolver,
        n: &Node,
        out: &mut String,
        sn: &mut HashSet<crate::gitoid::Id>,
        se: &mut HashSet<(crate::gitoid::Id, crate::gitoid::Id)>,
    ) {
        if sn.insert(n.artifact) {
            let l = label(r, n).replace('"', "\\\"");
            let _ = writeln!(
                out,
                "  \"{}\" [label=\"{}\\n{}\"];",
                n.artifact.hex(),
                l,
                &n.artifact.hex()[..12]
            );
        }
        for c in &n.children {
            if se.insert((n.artifact, c.artifact)) {
                let style = if c.dynamic { " [style=dashed]" } else { "" };
                let _ = writeln!(
                    out,
                    "  \"{}\" -> \"{}\"{style};",
                    n.artifact.hex(),
                    c.artifact.hex()
                );
                go(r, c, out, sn, se);
            }
        }
    }
    go(r, root, &mut out, &mut seen_nodes, &mut seen_edges);
    out.push_str("}\n");
    out
}
