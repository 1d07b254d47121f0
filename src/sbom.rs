//! SBOM documents of a resolved graph: SPDX 2.3 JSON and CycloneDX 1.6 JSON, every artifact
//! with its gitoids in the fields FORMAT.md section 5 names, and the graph's edges as
//! relationships (SPDX GENERATED_FROM, CycloneDX dependencies).

use crate::gitoid::Id;
use crate::resolve::{Node, NodeState, Resolver};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every artifact of a graph once: artifact -> (sha256 ID when known, manifest, inputs).
struct Flat {
    order: Vec<Id>,
    inputs: BTreeMap<Id, BTreeSet<Id>>,
    manifests: BTreeMap<Id, Id>,
}

fn flatten(root: &Node) -> Flat {
    let mut f = Flat {
        order: Vec::new(),
        inputs: BTreeMap::new(),
        manifests: BTreeMap::new(),
    };
    fn go(n: &Node, f: &mut Flat) {
        if !f.inputs.contains_key(&n.artifact) {
            f.order.push(n.artifact);
            f.inputs.insert(n.artifact, BTreeSet::new());
        }
        if let NodeState::Manifest(m) = &n.state {
            f.manifests.insert(n.artifact, *m);
        }
        for c in &n.children {
            let fresh = f
                .inputs
                .get_mut(&n.artifact)
                .is_some_and(|s| s.insert(c.artifact));
            if fresh || !f.inputs.contains_key(&c.artifact) {
                go(c, f);
            }
        }
    }
    go(root, &mut f);
    f
}

fn name_of(r: &mut Resolver, id: &Id, root_path: &Path, root: &Id) -> String {
    if id == root {
        return root_path.display().to_string();
    }
    r.paths(id).into_iter().next().unwrap_or_else(|| id.uri())
}

/// A stable document identity from the root's ID (same graph, same names).
fn uuid_from(id: &Id) -> String {
    let h = id.hex();
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// An incomplete graph is said in the document too, not only by the exit status.
pub fn spdx(r: &mut Resolver, root_path: &Path, root: &Node, created: &str) -> Value {
    let f = flatten(root);
    let gaps = r.gaps(root);
    let spdx_id = |id: &Id| format!("SPDXRef-{}-{}", id.alg(), id.hex());
    let mut packages = Vec::new();
    for id in &f.order {
        let mut refs = vec![json!({
            "referenceCategory": "PERSISTENT-ID",
            "referenceType": "gitoid",
            "referenceLocator": id.uri(),
        })];
        if let Some(t) = r.twin(id) {
            refs.push(json!({
                "referenceCategory": "PERSISTENT-ID",
                "referenceType": "gitoid",
                "referenceLocator": t.uri(),
            }));
        }
        if let Some(m) = f.manifests.get(id) {
            refs.push(json!({
                "referenceCategory": "PERSISTENT-ID",
                "referenceType": "gitoid",
                "referenceLocator": m.uri(),
                "comment": "OmniBOR input manifest of this artifact",
            }));
        }
        packages.push(json!({
            "name": name_of(r, id, root_path, &root.artifact),
            "SPDXID": spdx_id(id),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": if *id == root.artifact { "APPLICATION" } else { "FILE" },
            "externalRefs": refs,
        }));
    }
    let mut rels = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": spdx_id(&root.artifact),
    })];
    for (from, tos) in &f.inputs {
        for to in tos {
            rels.push(json!({
                "spdxElementId": spdx_id(from),
                "relationshipType": "GENERATED_FROM",
                "relatedSpdxElement": spdx_id(to),
            }));
        }
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("omnibor-{}", root_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
        "documentNamespace": format!("https://omnibor.io/spdx/{}", root.artifact.uri().replace(':', "/")),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: omnishim-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": rels,
    });
    if !gaps.is_empty() {
        let why: Vec<String> = gaps.iter().map(|g| g.to_string()).collect();
        doc["comment"] = json!(format!(
            "Incomplete OmniBOR graph (what lies below is unknown): {}",
            why.join("; ")
        ));
    }
    doc
}

pub fn cyclonedx(r: &mut Resolver, root_path: &Path, root: &Node, created: &str) -> Value {
    let f = flatten(root);
    let complete = r.gaps(root).is_empty();
    let bom_ref = |id: &Id| id.uri();
    let component = |r: &mut Resolver, id: &Id| {
        // omniborId holds artifact IDs (both algorithms when known); the input manifest ID
        // travels as a property
        let mut ids = vec![id.uri()];
        ids.extend(r.twin(id).map(|t| t.uri()));
        ids.sort();
        let mut c = json!({
            "type": if *id == root.artifact { "application" } else { "file" },
            "bom-ref": bom_ref(id),
            "name": name_of(r, id, root_path, &root.artifact),
            "omniborId": ids,
        });
        if let Some(m) = f.manifests.get(id) {
            c["properties"] = json!([{ "name": "omnibor:inputManifest", "value": m.uri() }]);
        }
        c
    };
    let meta_component = component(r, &root.artifact);
    let components: Vec<Value> = f
        .order
        .iter()
        .filter(|id| **id != root.artifact)
        .map(|id| component(r, id))
        .collect();
    let deps: Vec<Value> = f
        .order
        .iter()
        .map(|id| {
            json!({
                "ref": bom_ref(id),
                "dependsOn": f.inputs[id].iter().map(bom_ref).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid_from(&root.artifact)),
        "version": 1,
        "metadata": {
            "timestamp": created,
            "tools": { "components": [{ "type": "application", "name": "omnishim", "version": env!("CARGO_PKG_VERSION") }] },
            "component": meta_component,
        },
        "components": components,
        "dependencies": deps,
        // whether the root's dependency graph is known in full
        "compositions": [{
            "aggregate": if complete { "complete" } else { "incomplete" },
            "dependencies": [bom_ref(&root.artifact)],
        }],
    })
}

/// Now, as an RFC 3339 UTC timestamp (seconds), without a date crate.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
