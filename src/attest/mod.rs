//! Signed graphs: an in-toto Statement v1 whose subject is a file and whose predicate is the
//! root of its OmniBOR graph (its manifest IDs), in a DSSE envelope. A manifest ID fixes
//! every manifest and source ID below it, so signing the root vouches for the whole graph.
//! Only the `omnishim` CLI calls this (never the shims).

pub mod dsse;
pub mod keys;

use crate::gitoid::{self, Alg, Id};
use crate::resolve::{Gap, NodeState, Resolver};
use crate::store::Store;
use dsse::{DsseError, Envelope, PAYLOAD_TYPE};
use keys::{KeyError, PrivateKey, PublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Our predicate: its fields are documented in the README ("Signed graphs").
pub const PREDICATE_TYPE: &str = "https://omnibor.io/omnishim/graph/v1";

#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Resolve(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Dsse(#[from] DsseError),
    #[error("cannot serialize the statement: {0}")]
    Json(#[from] serde_json::Error),
}

/// A graph's root: the file's manifest IDs in both algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Root {
    pub sha1: Id,
    pub sha256: Id,
}

/// What a walk from a root found: the distinct manifests per algorithm, what is missing or
/// unreadable, and the manifests whose bytes do not hash to their ID.
#[derive(Debug, Default)]
pub struct Survey {
    pub sha1: usize,
    pub sha256: usize,
    pub gaps: Vec<Gap>,
    pub corrupt: Vec<Id>,
}

/// A file as attest and verify see it: its bytes' digests, its artifact IDs and the
/// manifest IDs it carries (note, or the store's target index for files without notes).
pub struct FileFacts {
    pub sha256: String,
    pub artifact: gitoid::Ids,
    pub sha1_manifest: Option<Id>,
    pub sha256_manifest: Option<Id>,
    /// An ELF file without a symbol table (stripped, or a debug-split file's stripped half).
    pub stripped: bool,
}

impl FileFacts {
    pub fn read(path: &Path, store: &Store) -> Result<FileFacts, AttestError> {
        let bytes = std::fs::read(path).map_err(|source| AttestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut m = [None, None];
        for (i, alg) in Alg::ALL.iter().enumerate() {
            let r = Resolver::new(store.clone(), *alg);
            m[i] = r.root_of(path).map_err(AttestError::Resolve)?.1;
        }
        let stripped = crate::elf::is_elf(&bytes) && {
            use object::{Object as _, ObjectSection as _};
            object::File::parse(&*bytes).is_ok_and(|f| {
                f.section_by_name(".symtab").is_none()
                    || f.section_by_name(".text")
                        .is_some_and(|s| s.kind() == object::SectionKind::UninitializedData)
            })
        };
        Ok(FileFacts {
            sha256: gitoid::to_hex(&Sha256::digest(&bytes)),
            artifact: gitoid::ids_of_bytes(&bytes),
            sha1_manifest: m[0],
            sha256_manifest: m[1],
            stripped,
        })
    }

    pub fn root(&self) -> Option<Root> {
        Some(Root {
            sha1: self.sha1_manifest?,
            sha256: self.sha256_manifest?,
        })
    }
}

/// Walk the graph below a root in both algorithms, with the same completeness rules as
/// `resolve`/`check` (`Resolver::gaps`), and hash every manifest reached.
pub fn survey(store: &Store, facts: &FileFacts, root: &Root) -> Survey {
    let mut s = Survey::default();
    for (alg, mid) in [(Alg::Sha1, root.sha1), (Alg::Sha256, root.sha256)] {
        let mut r = Resolver::new(store.clone(), alg);
        let node = r.walk(facts.artifact.get(alg), Some(mid));
        for g in r.gaps(&node) {
            crate::resolve::add_gap(&mut s.gaps, g);
        }
        let mut seen = BTreeSet::new();
        let mut stack = vec![&node];
        while let Some(n) = stack.pop() {
            if let NodeState::Manifest(id) = &n.state {
                if seen.insert(*id) {
                    let bytes = store.get_object(id).ok().flatten().unwrap_or_default();
                    if gitoid::id_of_bytes(alg, &bytes) != *id {
                        s.corrupt.push(*id);
                    }
                }
            }
            stack.extend(n.children.iter());
        }
        match alg {
            Alg::Sha1 => s.sha1 = seen.len(),
            Alg::Sha256 => s.sha256 = seen.len(),
        }
    }
    s
}

/// The in-toto Statement v1 for a file.
pub fn statement(name: &str, facts: &FileFacts, root: &Root, survey: &Survey) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": name,
            "digest": {"sha256": facts.sha256, "gitBlob": facts.artifact.sha1.hex()},
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "root": {"sha1": root.sha1.uri(), "sha256": root.sha256.uri()},
            "artifact": {"sha1": facts.artifact.sha1.uri(), "sha256": facts.artifact.sha256.uri()},
            "artifactIdAlgorithms": ["gitoid:blob:sha1", "gitoid:blob:sha256"],
            "manifests": {"sha1": survey.sha1, "sha256": survey.sha256},
            "tool": {"name": "omnishim", "version": env!("CARGO_PKG_VERSION")},
        },
    })
}

/// Sign a statement into an envelope.
pub fn envelope(statement: &Value, key: &PrivateKey) -> Result<Envelope, AttestError> {
    let body = serde_json::to_vec(statement)?;
    Ok(Envelope::sign(PAYLOAD_TYPE, &body, key)?)
}

/// The subject name: the file's name, without the directories it was found in.
pub fn subject_name(f: &Path) -> String {
    f.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| f.to_string_lossy().into_owned())
}

/// Attest one file as `attest` does: its envelope, or (inner Err) the line saying why it
/// was not attested (no manifest IDs, a corrupt manifest, an incomplete graph).
pub fn attest_file(
    path: &Path,
    name: &str,
    key: &PrivateKey,
    store: &Store,
) -> Result<Result<Envelope, String>, AttestError> {
    let facts = FileFacts::read(path, store)?;
    let Some(root) = facts.root() else {
        return Ok(Err(format!(
            "{}: not attested: no manifest IDs (unrecorded file: no OmniBOR note, nothing in the store's target index)",
            path.display()
        )));
    };
    let s = survey(store, &facts, &root);
    if let Some(id) = s.corrupt.first() {
        return Ok(Err(format!(
            "{}: not attested: manifest {} does not hash to its ID",
            path.display(),
            id.uri()
        )));
    }
    if let Some(line) = crate::resolve::incomplete_line(path, &s.gaps) {
        return Ok(Err(format!("not attested: {line}")));
    }
    Ok(Ok(envelope(&statement(name, &facts, &root, &s), key)?))
}

/// Why a file did not verify: a stable kind (for --json and tests) and one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: &'static str,
    pub message: String,
}

fn fail(kind: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        kind,
        message: message.into(),
    }
}

/// What a verified envelope said.
#[derive(Debug, Clone)]
pub struct Verified {
    pub root: Root,
    pub manifests: (usize, usize),
}

/// The signed claim: subject digests, root and manifest counts, read from a payload.
struct Claim {
    sha256: Option<String>,
    git_blob: Option<String>,
    root: Root,
    counts: Option<(usize, usize)>,
}

/// Read a signed payload as our statement (the fuzz target's way in): Ok when it is one.
#[doc(hidden)]
pub fn read_claim(body: &[u8], name: &str) -> Result<(), Failure> {
    claim(body, name).map(|_| ())
}

fn claim(body: &[u8], name: &str) -> Result<Claim, Failure> {
    let bad = |m: &str| {
        fail(
            "statement",
            format!("the signed payload is not our statement: {m}"),
        )
    };
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(&e.to_string()))?;
    if v["_type"] != STATEMENT_TYPE {
        return Err(bad(&format!("_type is {}", v["_type"])));
    }
    if v["predicateType"] != PREDICATE_TYPE {
        return Err(bad(&format!("predicateType is {}", v["predicateType"])));
    }
    let subjects = v["subject"]
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad("no subject"))?;
    // several subjects: the one named like the file, else the first
    let subj = subjects
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or(&subjects[0]);
    let d = &subj["digest"];
    let sha256 = d["sha256"].as_str().map(str::to_string);
    let git_blob = d["gitBlob"].as_str().map(str::to_string);
    if sha256.is_none() && git_blob.is_none() {
        return Err(bad("the subject has neither a sha256 nor a gitBlob digest"));
    }
    let p = &v["predicate"];
    let id = |alg: &str| {
        p["root"][alg]
            .as_str()
            .and_then(|s| Id::parse_any(s).ok())
            .filter(|i| i.alg().name() == alg)
            .ok_or_else(|| bad(&format!("predicate.root.{alg} is not a {alg} gitoid")))
    };
    let root = Root {
        sha1: id("sha1")?,
        sha256: id("sha256")?,
    };
    let n = |alg: &str| p["manifests"][alg].as_u64().map(|n| n as usize);
    let counts = n("sha1").zip(n("sha256"));
    Ok(Claim {
        sha256,
        git_blob,
        root,
        counts,
    })
}

/// Every check, in order: the signature; the statement; the subject digests against the
/// file's bytes (with the note told apart: another file of the same graph, e.g. the
/// unstripped one, or other IDs); the graph below the signed root complete in the store,
/// every manifest hashing to its ID, as many as were signed.
pub fn check(
    env: &Envelope,
    key: &PublicKey,
    name: &str,
    facts: &FileFacts,
    store: &Store,
) -> Result<Verified, Failure> {
    let body = env.verify(key).map_err(|e| match e {
        DsseError::OtherKey { .. } => fail("wrong-key", e.to_string()),
        DsseError::BadSignature | DsseError::Unsigned => fail("signature", e.to_string()),
        _ => fail("envelope", e.to_string()),
    })?;
    let c = claim(&body, name)?;
    let digest_ok = c.sha256.as_ref().is_none_or(|d| *d == facts.sha256)
        && c.git_blob
            .as_ref()
            .is_none_or(|d| *d == facts.artifact.sha1.hex());
    let note = facts.root();
    let note_ok = note == Some(c.root);
    if !digest_ok {
        let signed = c.sha256.clone().or(c.git_blob.clone()).unwrap_or_default();
        let have = if c.sha256.is_some() {
            facts.sha256.clone()
        } else {
            facts.artifact.sha1.hex()
        };
        if note.is_none() {
            return Err(fail(
                "no-note",
                format!("the file's bytes are not the signed subject's (digest {have}, signed {signed}), and it carries no manifest IDs"),
            ));
        }
        if !note_ok {
            return Err(fail(
                "note-mismatch",
                format!(
                    "the file's note holds other manifest IDs ({}) than the signed ones ({}), and its bytes are not the signed subject's",
                    note.map(|r| r.sha1.uri()).unwrap_or_default(),
                    c.root.sha1.uri()
                ),
            ));
        }
        if facts.stripped {
            return Err(fail(
                "stripped",
                format!("the subject digest is of the unstripped file (signed {signed}, this stripped file is {have}); the note still holds the signed manifest IDs, so it is the same graph: attest the files that ship"),
            ));
        }
        return Err(fail(
            "digest-mismatch",
            format!("the file's bytes are not the signed subject's (digest {have}, signed {signed}); its note still holds the signed manifest IDs, so the bytes were changed outside the note"),
        ));
    }
    if !note_ok {
        return Err(fail(
            "note-mismatch",
            "the file's note does not hold the signed manifest IDs",
        ));
    }
    let s = survey(store, facts, &c.root);
    if let Some(id) = s.corrupt.first() {
        return Err(fail(
            "manifest-corrupt",
            format!(
                "manifest {} in {} does not hash to its ID",
                id.uri(),
                store.root().display()
            ),
        ));
    }
    if let Some(g) = s.gaps.first() {
        return Err(fail("graph-incomplete", format!("graph incomplete: {g}")));
    }
    if let Some(n) = c.counts {
        if n != (s.sha1, s.sha256) {
            return Err(fail(
                "count-mismatch",
                format!(
                    "the graph has {} sha1 / {} sha256 manifests, {} / {} were signed",
                    s.sha1, s.sha256, n.0, n.1
                ),
            ));
        }
    }
    Ok(Verified {
        root: c.root,
        manifests: (s.sha1, s.sha256),
    })
}
