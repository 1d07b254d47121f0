//! `verify --registry`: the DSSE envelopes attached to files' graphs, found from the files
//! alone (note → graph tag → graph manifest digest → its referrers of the DSSE type → each
//! envelope manifest, checked against its digest → its layer, checked against its digest).
//! Nothing here trusts an envelope: `verify` checks each with the key, the file and the graph.

use super::referrers::{self, DSSE_TYPE};
use super::{lookup, sha256_digest, RegistryError, Remote, Session};
use oci_client::manifest::{OciImageManifest, OCI_IMAGE_MEDIA_TYPE};
use oci_client::RegistryOperation;
use serde::Serialize;
use std::path::PathBuf;

/// At most this many envelopes are read per graph (a referrers list is registry data).
const MAX_ENVELOPES: usize = 32;

/// The envelopes found for one file.
#[derive(Debug, Serialize)]
pub struct Found {
    pub path: PathBuf,
    /// The graph's tag, and its manifest's digest when the registry has it.
    pub tag: String,
    pub graph: Option<String>,
    /// Each envelope's JSON, as fetched (its blob checked against its digest).
    pub envelopes: Vec<serde_json::Value>,
    /// One line per referrer that could not be used (altered, not ours): why.
    pub rejected: Vec<String>,
}

/// The envelopes attached to each file's graph.
pub fn attestations(remote: &Remote, files: &[PathBuf]) -> Result<Vec<Found>, RegistryError> {
    let s = Session::open(remote, RegistryOperation::Pull)?;
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let mut found = Found {
            path: f.clone(),
            tag: String::new(),
            graph: None,
            envelopes: Vec::new(),
            rejected: Vec::new(),
        };
        match lookup(f) {
            Ok((tag, _, _)) => {
                found.tag = tag;
                one(&s, &mut found)?;
            }
            Err(e) => found.rejected.push(e),
        }
        out.push(found);
    }
    Ok(out)
}

fn one(s: &Session, found: &mut Found) -> Result<(), RegistryError> {
    let r = s.reference(&found.tag);
    let body = match s.rt.block_on(
        s.client
            .pull_manifest_raw(&r, &s.auth, &[OCI_IMAGE_MEDIA_TYPE]),
    ) {
        Ok((b, _)) => b,
        Err(e) if super::is_not_found(&e) => return Ok(()),
        Err(e) => return Err(s.err(&e)),
    };
    // the referrers are keyed by the digest of the bytes served
    let graph = sha256_digest(&body);
    found.graph = Some(graph.clone());
    for e in referrers::list(s, &graph, Some(DSSE_TYPE))?
        .iter()
        .take(MAX_ENVELOPES)
    {
        match envelope(s, &e.digest, &graph) {
            Ok(v) => found.envelopes.push(v),
            Err(why) => found
                .rejected
                .push(format!("attestation {}: {why}", e.digest)),
        }
    }
    Ok(())
}

/// One envelope artifact: its manifest (checked against its digest, of our type, referring to
/// the graph), then its layer (checked against its digest and size).
fn envelope(s: &Session, digest: &str, graph: &str) -> Result<serde_json::Value, String> {
    let body = referrers::manifest_by_digest(s, digest, &[OCI_IMAGE_MEDIA_TYPE])
        .map_err(|e| e.to_string())?
        .ok_or("listed as a referrer, but the registry does not have it")?;
    let m: OciImageManifest =
        serde_json::from_slice(&body).map_err(|e| format!("not an OCI image manifest: {e}"))?;
    if m.artifact_type.as_deref() != Some(DSSE_TYPE) {
        return Err(format!(
            "artifactType {:?}, not {DSSE_TYPE}",
            m.artifact_type
        ));
    }
    if m.subject.as_ref().map(|d| d.digest.as_str()) != Some(graph) {
        return Err(format!("its subject is not the graph {graph}"));
    }
    let layer = m
        .layers
        .iter()
        .find(|l| l.media_type == DSSE_TYPE)
        .ok_or_else(|| format!("no layer of media type {DSSE_TYPE}"))?;
    let r = s.reference("attestation");
    let bytes = s.fetch_blob(&r, layer)?;
    serde_json::from_slice(&bytes).map_err(|e| format!("blob {}: not JSON: {e}", layer.digest))
}
