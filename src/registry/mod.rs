//! Graphs in an OCI registry: `push`, `pull`, and the `--registry` fetch before a walk.
//!
//! Layout: one OCI 1.1 image manifest per pushed file, `artifactType`
//! `application/vnd.omnibor.graph.v1`, the empty config (`{}`), one layer per store file of
//! the file's exported graph (see `crate::export`), tagged `sha256-<hex of the file's sha256
//! manifest ID>` (and `artifact-sha256-<hex of the file's own sha256 ID>` for a file without
//! a note, whose manifest only the target index knows). Blobs are content-addressed: a push
//! asks (HEAD) before it uploads. A pull checks every blob against its OCI digest, every
//! manifest against its gitoid, and writes nothing of a graph unless all of it checked out.
//!
//! The client is async (oci-client on tokio); a current-thread runtime is made only here, so
//! nothing of it runs unless a registry command does.

pub mod attestations;
pub mod cli;
pub mod docker;
pub mod referrers;

use crate::export::{self, Entry, Kind, Options};
use crate::gitoid::{Alg, Id};
use crate::resolve::DynamicLib;
use crate::store::Store;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OCI_IMAGE_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

pub const ARTIFACT_TYPE: &str = "application/vnd.omnibor.graph.v1";
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
pub const MT_MANIFEST: &str = "application/vnd.omnibor.manifest.v1+text";
pub const MT_TARGET: &str = "application/vnd.omnishim.target.v1+text";
pub const MT_MEMBERS: &str = "application/vnd.omnishim.members.v1+text";
pub const MT_DYNAMIC: &str = "application/vnd.omnishim.dynamic.v1+json";
pub const MT_PATHS: &str = "application/vnd.omnishim.paths.v1+text";
pub const MT_WITHHELD: &str = "application/vnd.omnishim.withheld.v1+text";
/// On a layer: the gitoid URI its store file is keyed by.
pub const ANN_ID: &str = "dev.omnibor.gitoid";
/// On the image manifest: the file's root manifests and its own IDs.
pub const ANN_ROOT_SHA1: &str = "dev.omnibor.manifest.sha1";
pub const ANN_ROOT_SHA256: &str = "dev.omnibor.manifest.sha256";
pub const ANN_ARTIFACT_SHA1: &str = "dev.omnibor.artifact.sha1";
pub const ANN_ARTIFACT_SHA256: &str = "dev.omnibor.artifact.sha256";
/// On an attestation artifact: the keyid of its envelope's signature (a hint, as in DSSE).
pub const ANN_KEYID: &str = "dev.omnishim.keyid";
/// On a path index layer: the shard (a hex digit) its lines belong to.
pub const ANN_SHARD: &str = "dev.omnishim.shard";
const TITLE: &str = "org.opencontainers.image.title";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}: {1}")]
    Repo(String, String),
    #[error("{0}")]
    Other(String),
}

/// A repository and how to reach it.
#[derive(Clone, Debug)]
pub struct Remote {
    /// `host[:port]/path`.
    pub repo: String,
    pub plain_http: bool,
}

/// The user's cache store: `$XDG_CACHE_HOME/omnishim/store`, else `~/.cache/omnishim/store`.
pub fn cache_dir() -> Result<PathBuf, RegistryError> {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("omnishim").join("store"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            RegistryError::Other("no cache directory: set XDG_CACHE_HOME or HOME".into())
        })?;
    Ok(PathBuf::from(home)
        .join(".cache")
        .join("omnishim")
        .join("store"))
}

/// The tag of a file's graph, from its sha256 manifest ID.
pub fn tag_of_manifest(m: &Id) -> String {
    format!("sha256-{}", m.hex())
}

/// The tag of a noteless file's graph, from its own sha256 ID.
pub fn tag_of_artifact(a: &Id) -> String {
    format!("artifact-sha256-{}", a.hex())
}

fn sha256_digest(b: &[u8]) -> String {
    format!("sha256:{}", crate::gitoid::to_hex(&Sha256::digest(b)))
}

fn media_type(k: &Kind) -> &'static str {
    match k {
        Kind::Manifest(_) => MT_MANIFEST,
        Kind::Target(_) => MT_TARGET,
        Kind::Members(_) => MT_MEMBERS,
        Kind::Dynamic(_) => MT_DYNAMIC,
        Kind::Paths(_) => MT_PATHS,
        Kind::Withheld => MT_WITHHELD,
    }
}

/// The kind of a layer, from its media type and its ID annotation.
fn kind_of(d: &OciDescriptor) -> Result<Kind, String> {
    let id = || -> Result<Id, String> {
        let a = d
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANN_ID))
            .ok_or_else(|| format!("layer {}: no {ANN_ID} annotation", d.digest))?;
        Id::from_uri(a).map_err(|e| format!("layer {}: {ANN_ID}: {e}", d.digest))
    };
    Ok(match d.media_type.as_str() {
        MT_MANIFEST => Kind::Manifest(id()?),
        MT_TARGET => Kind::Target(id()?),
        MT_MEMBERS => Kind::Members(id()?),
        MT_DYNAMIC => Kind::Dynamic(id()?),
        MT_PATHS => {
            let shard = d
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_SHARD))
                .and_then(|s| match s.as_bytes() {
                    [c] if c.is_ascii_hexdigit() => Some(*c),
                    _ => None,
                })
                .ok_or_else(|| {
                    format!(
                        "layer {}: no {ANN_SHARD} annotation (a hex digit)",
                        d.digest
                    )
                })?;
            Kind::Paths(shard)
        }
        MT_WITHHELD => Kind::Withheld,
        other => return Err(format!("layer {}: unknown media type {other}", d.digest)),
    })
}

fn layer_of(e: &Entry) -> OciDescriptor {
    let mut ann = BTreeMap::new();
    ann.insert(
        TITLE.to_string(),
        e.rel_path().to_string_lossy().into_owned(),
    );
    match e.kind {
        Kind::Manifest(id) | Kind::Target(id) | Kind::Members(id) | Kind::Dynamic(id) => {
            ann.insert(ANN_ID.to_string(), id.uri());
        }
        Kind::Paths(c) => {
            ann.insert(ANN_SHARD.to_string(), char::from(c).to_string());
        }
        Kind::Withheld => {}
    }
    OciDescriptor {
        media_type: media_type(&e.kind).to_string(),
        digest: sha256_digest(&e.bytes),
        size: e.bytes.len() as i64,
        urls: None,
        annotations: Some(ann),
        artifact_type: None,
    }
}

/// What a push did.
#[derive(Debug, Default)]
pub struct PushReport {
    pub files: usize,
    pub blobs: usize,
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub total_bytes: u64,
    /// One line per file that was not pushed whole (no manifest, manifests missing).
    pub incomplete: Vec<String>,
    /// `file  repo:tag` per pushed file.
    pub pushed: Vec<String>,
    /// `file  repo@digest` per attestation pushed (`--attest`).
    pub attested: Vec<String>,
    /// One line per file not attested (why).
    pub not_attested: Vec<String>,
    /// Tag-schema referrers indexes written (a registry without the referrers API).
    pub indexes_updated: usize,
}

/// What a pull did.
#[derive(Debug, Default)]
pub struct PullReport {
    pub fetched: usize,
    pub fetched_bytes: u64,
    /// Graphs found already in the store.
    pub cached: usize,
    pub graphs: usize,
    /// Files whose graph the registry does not have (the walk will say what is missing).
    pub not_found: Vec<String>,
    /// Graphs rejected: a blob that does not hash to its ID, a layer that is not ours. One
    /// line each; nothing of that graph was written.
    pub rejected: Vec<String>,
}

struct Session {
    rt: tokio::runtime::Runtime,
    client: Client,
    auth: RegistryAuth,
    registry: String,
    repository: String,
}

fn is_loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(h, "localhost" | "127.0.0.1" | "[::1]" | "::1") || h.starts_with("127.")
}

fn describe(e: &OciDistributionError) -> String {
    match e {
        OciDistributionError::RequestError(r) => {
            // reqwest's own text hides the cause (connection refused, TLS) in its source chain
            let mut s = r.to_string();
            let mut src = std::error::Error::source(r);
            while let Some(c) = src {
                let t = c.to_string();
                if !s.contains(&t) {
                    s.push_str(": ");
                    s.push_str(&t);
                }
                src = c.source();
            }
            s
        }
        OciDistributionError::UnauthorizedError { .. } => {
            "401 unauthorized: no or wrong credentials (docker login: auths or a credential helper in $DOCKER_CONFIG/config.json)"
                .to_string()
        }
        other => other.to_string(),
    }
    .replace('\n', " ")
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
            matches!(
                x.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        _ => false,
    }
}

impl Session {
    fn open(remote: &Remote, op: RegistryOperation) -> Result<Session, RegistryError> {
        let (registry, repository) = remote.repo.split_once('/').ok_or_else(|| {
            RegistryError::Other(format!(
                "{}: not a repository (want host[:port]/name)",
                remote.repo
            ))
        })?;
        let protocol = if remote.plain_http || is_loopback(registry) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            use_monolithic_push: true,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        };
        let client = Client::try_from(config)
            .map_err(|e| RegistryError::Repo(remote.repo.clone(), describe(&e)))?;
        let auth = match docker::credentials(registry).map_err(RegistryError::Other)? {
            Some((u, p)) => RegistryAuth::Basic(u, p),
            None => RegistryAuth::Anonymous,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RegistryError::Other(format!("cannot start the async runtime: {e}")))?;
        let s = Session {
            rt,
            client,
            auth,
            registry: registry.to_string(),
            repository: repository.to_string(),
        };
        // one round trip up front: an unreachable registry or refused credentials is one
        // line, before any work
        let probe = s.reference("probe");
        s.rt.block_on(s.client.auth(&probe, &s.auth, op))
            .map_err(|e| s.err(&e))?;
        Ok(s)
    }

    fn err(&self, e: &OciDistributionError) -> RegistryError {
        RegistryError::Repo(
            format!("{}/{}", self.registry, self.repository),
            describe(e),
        )
    }

    /// `host[:port]/name`, for messages.
    fn repo(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    fn reference(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.registry.clone(),
            self.repository.clone(),
            tag.to_string(),
        )
    }

    /// Upload the blobs the registry does not have (asked with HEAD first), several at once.
    /// Returns how many were uploaded and their bytes.
    fn ensure_blobs(
        &self,
        r: &Reference,
        blobs: Vec<(String, &[u8])>,
    ) -> Result<(usize, u64), RegistryError> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let client = &self.client;
        let work = stream::iter(blobs.into_iter().map(|(digest, bytes)| async move {
            if client.blob_exists(r, &digest).await? {
                return Ok((0usize, 0u64));
            }
            client.push_blob(r, bytes.to_vec(), &digest).await?;
            Ok::<_, OciDistributionError>((1, bytes.len() as u64))
        }))
        .buffer_unordered(8)
        .try_fold(
            (0usize, 0u64),
            |a, b| async move { Ok((a.0 + b.0, a.1 + b.1)) },
        );
        self.rt.block_on(work).map_err(|e| self.err(&e))
    }

    fn fetch_blob(&self, r: &Reference, d: &OciDescriptor) -> Result<Vec<u8>, String> {
        let mut out: Vec<u8> = Vec::new();
        self.rt
            .block_on(self.client.pull_blob(r, d, &mut out))
            .map_err(|e| format!("blob {}: {}", d.digest, describe(&e)))?;
        // checked here too, whatever the client did: size, then digest
        if out.len() as i64 != d.size {
            return Err(format!(
                "blob {}: {} bytes, the manifest says {}: truncated or altered",
                d.digest,
                out.len(),
                d.size
            ));
        }
        let got = sha256_digest(&out);
        if got != d.digest {
            return Err(format!(
                "blob {}: content hashes to {got}: altered",
                d.digest
            ));
        }
        Ok(out)
    }
}

/// Push each file's graph (the export closure of that file) as one artifact.
pub fn push(
    store: &Store,
    remote: &Remote,
    files: &[PathBuf],
    follow_dynamic: bool,
) -> Result<PushReport, RegistryError> {
    push_with(store, remote, files, follow_dynamic, &Attach::default())
}

/// What a push attaches beyond the graphs.
#[derive(Default)]
pub struct Attach<'a> {
    /// `--subject`: the digest of a manifest in the same repository (a container image) that
    /// every graph pushed refers to, as an OCI referrer.
    pub subject: Option<String>,
    /// `--attest`: each file's DSSE envelope (as `attest` makes it), pushed as a referrer of
    /// the file's graph artifact.
    pub key: Option<&'a crate::attest::keys::PrivateKey>,
}

/// `push`, with a subject and attestations.
pub fn push_with(
    store: &Store,
    remote: &Remote,
    files: &[PathBuf],
    follow_dynamic: bool,
    attach: &Attach,
) -> Result<PushReport, RegistryError> {
    let s = Session::open(remote, RegistryOperation::Push)?;
    // the subject first: a missing one stops the push before anything is uploaded
    let subject = match &attach.subject {
        Some(d) => Some(referrers::subject(&s, d)?.ok_or_else(|| {
            RegistryError::Repo(
                remote.repo.clone(),
                format!("subject {d}: no such manifest in the repository (a graph's subject must be pushed there first)"),
            )
        })?),
        None => None,
    };
    let mut rep = PushReport::default();
    let opts = Options {
        follow_dynamic,
        ..Default::default()
    };
    let empty = b"{}";
    let empty_digest = sha256_digest(empty);
    let mut known: HashSet<String> = HashSet::new();
    for f in files {
        let g = export::close(store, std::slice::from_ref(f), &opts)
            .map_err(|e| RegistryError::Other(e.to_string()))?;
        let Some(root) = g.roots.first() else {
            continue;
        };
        let Some(m256) = root.sha256 else {
            rep.incomplete.push(format!(
                "{}: not pushed: no manifest (no OmniBOR note, nothing in the store's target index)",
                f.display()
            ));
            continue;
        };
        if let Some(m) = g.missing.first() {
            rep.incomplete.push(format!(
                "{}: pushed incomplete: manifest {} (and {} more) missing from the store",
                f.display(),
                m.uri(),
                g.missing.len() - 1
            ));
        }
        let mut tags = vec![tag_of_manifest(&m256)];
        if root.from_targets {
            tags.push(tag_of_artifact(&root.ids.sha256));
        }
        let r = s.reference(&tags[0]);
        let mut layers = Vec::with_capacity(g.entries.len());
        let mut todo: Vec<(String, &[u8])> = Vec::new();
        for e in &g.entries {
            let d = layer_of(e);
            rep.blobs += 1;
            rep.total_bytes += e.bytes.len() as u64;
            if known.insert(d.digest.clone()) {
                todo.push((d.digest.clone(), &e.bytes));
            }
            layers.push(d);
        }
        if known.insert(empty_digest.clone()) {
            todo.push((empty_digest.clone(), empty));
        }
        let (n, bytes) = s.ensure_blobs(&r, todo)?;
        rep.uploaded += n;
        rep.uploaded_bytes += bytes;
        let mut ann = BTreeMap::new();
        for (k, v) in [
            (ANN_ROOT_SHA256, Some(m256)),
            (ANN_ROOT_SHA1, root.sha1),
            (ANN_ARTIFACT_SHA1, Some(root.ids.sha1)),
            (ANN_ARTIFACT_SHA256, Some(root.ids.sha256)),
        ] {
            if let Some(v) = v {
                ann.insert(k.to_string(), v.uri());
            }
        }
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
            config: OciDescriptor {
                media_type: EMPTY_CONFIG.to_string(),
                digest: empty_digest.clone(),
                size: 2,
                urls: None,
                annotations: None,
                artifact_type: None,
            },
            layers,
            subject: subject.clone(),
            artifact_type: Some(ARTIFACT_TYPE.to_string()),
            annotations: Some(ann),
        };
        let body =
            serde_json::to_vec(&manifest).map_err(|e| RegistryError::Other(e.to_string()))?;
        for t in &tags {
            let ct = reqwest_header(OCI_IMAGE_MEDIA_TYPE);
            s.rt.block_on(
                s.client
                    .push_manifest_raw(&s.reference(t), body.clone(), ct),
            )
            .map_err(|e| s.err(&e))?;
            rep.pushed
                .push(format!("{}  {}:{t}", f.display(), remote.repo));
        }
        rep.files += 1;
        if subject.is_some() && referrers::register(&s, &manifest, &body)? {
            rep.indexes_updated += 1;
        }
        if let Some(key) = attach.key {
            let graph = referrers::descriptor_of(&body);
            match crate::attest::attest_file(f, &crate::attest::subject_name(f), key, store) {
                Ok(Ok(env)) => {
                    let (d, added) = push_envelope(&s, &env, graph, &manifest)?;
                    rep.indexes_updated += usize::from(added);
                    rep.attested
                        .push(format!("{}  {}@{d}", f.display(), remote.repo));
                }
                Ok(Err(line)) => rep.not_attested.push(line),
                Err(e) => rep
                    .not_attested
                    .push(format!("{}: not attested: {e}", f.display())),
            }
        }
    }
    Ok(rep)
}

/// Push a file's envelope as an artifact referring to its graph artifact `graph`: artifactType
/// and one layer of the DSSE media type, the empty config, the graph's root annotations. Its
/// digest, and whether a tag-schema index was written.
fn push_envelope(
    s: &Session,
    env: &crate::attest::dsse::Envelope,
    graph: OciDescriptor,
    graph_manifest: &OciImageManifest,
) -> Result<(String, bool), RegistryError> {
    let bytes = serde_json::to_vec(env).map_err(|e| RegistryError::Other(e.to_string()))?;
    let digest = sha256_digest(&bytes);
    let empty = b"{}";
    let r = s.reference("attestation");
    s.ensure_blobs(
        &r,
        vec![
            (digest.clone(), &bytes[..]),
            (sha256_digest(empty), &empty[..]),
        ],
    )?;
    let mut ann = BTreeMap::new();
    for k in [ANN_ROOT_SHA1, ANN_ROOT_SHA256] {
        if let Some(v) = graph_manifest.annotations.as_ref().and_then(|a| a.get(k)) {
            ann.insert(k.to_string(), v.clone());
        }
    }
    if let Some(k) = env.signatures.first().filter(|g| !g.keyid.is_empty()) {
        ann.insert(ANN_KEYID.to_string(), k.keyid.clone());
    }
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
        config: OciDescriptor {
            media_type: EMPTY_CONFIG.to_string(),
            digest: sha256_digest(empty),
            size: 2,
            urls: None,
            annotations: None,
            artifact_type: None,
        },
        layers: vec![OciDescriptor {
            media_type: referrers::DSSE_TYPE.to_string(),
            digest,
            size: bytes.len() as i64,
            urls: None,
            annotations: None,
            artifact_type: None,
        }],
        subject: Some(graph),
        artifact_type: Some(referrers::DSSE_TYPE.to_string()),
        annotations: Some(ann),
    };
    let (d, added) = referrers::push_referrer(s, &manifest)?;
    Ok((d.digest, added))
}

fn reqwest_header(v: &'static str) -> http::HeaderValue {
    http::HeaderValue::from_static(v)
}

/// The tag to look a file up by, and the manifests its graph must hold (none for a noteless
/// file, whose manifests come with the graph's target entry).
fn lookup(path: &Path) -> Result<(String, Vec<Id>, crate::gitoid::Ids), String> {
    let root = export::root_of(&Store::at("/nonexistent"), path).map_err(|e| e.to_string())?;
    let roots: Vec<Id> = [root.sha1, root.sha256].into_iter().flatten().collect();
    let tag = match root.sha256 {
        Some(m) => tag_of_manifest(&m),
        None => tag_of_artifact(&root.ids.sha256),
    };
    Ok((tag, roots, root.ids))
}

/// Fetch the graphs of files into `store`, each graph once; with `follow_dynamic` also the
/// graphs of the shared libraries their records name (found by their own tags).
pub fn pull(
    store: &Store,
    remote: &Remote,
    files: &[PathBuf],
    follow_dynamic: bool,
) -> Result<PullReport, RegistryError> {
    let mut rep = PullReport::default();
    let mut session: Option<Session> = None;
    // (tag, manifests it must hold, sha1 of the artifact for its shared libraries, what to
    // call it in messages)
    let mut queue: Vec<(String, Vec<Id>, Option<Id>, String)> = Vec::new();
    for f in files {
        match lookup(f) {
            Ok((tag, roots, ids)) => {
                queue.push((tag, roots, Some(ids.sha1), f.display().to_string()))
            }
            Err(e) => rep.rejected.push(e),
        }
    }
    queue.reverse();
    let mut seen_tags = HashSet::new();
    let mut seen_dyn = HashSet::new();
    while let Some((tag, roots, sha1, name)) = queue.pop() {
        if !seen_tags.insert(tag.clone()) {
            continue;
        }
        let cached =
            !roots.is_empty() && roots.iter().all(|m| store.is_file(&store.object_path(m)));
        if cached {
            rep.cached += 1;
        } else {
            if session.is_none() {
                session = Some(Session::open(remote, RegistryOperation::Pull)?);
            }
            let Some(s) = session.as_ref() else { continue };
            match pull_one(s, store, &tag, &roots, &mut rep) {
                Ok(true) => rep.graphs += 1,
                Ok(false) => {
                    rep.not_found
                        .push(format!("{name}: no graph in {} (tag {tag})", remote.repo));
                    continue;
                }
                Err(Fatal(e)) => return Err(e),
                Err(Reject(line)) => {
                    rep.rejected
                        .push(format!("{name}: {}:{tag}: rejected: {line}", remote.repo));
                    continue;
                }
            }
        }
        if !follow_dynamic {
            continue;
        }
        let Some(sha1) = sha1 else { continue };
        if !seen_dyn.insert(sha1) {
            continue;
        }
        let libs: Vec<DynamicLib> = store
            .read_file(&store.dynamic_path(&sha1))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for lib in libs {
            let (Some(Ok(m256)), Ok(s1)) = (
                lib.manifest_sha256.as_deref().map(Id::from_hex),
                Id::from_hex(&lib.sha1),
            ) else {
                continue;
            };
            let mut roots = vec![m256];
            if let Some(Ok(m1)) = lib.manifest_sha1.as_deref().map(Id::from_hex) {
                roots.push(m1);
            }
            let label = if lib.path.is_empty() {
                lib.sha1.clone()
            } else {
                lib.path.clone()
            };
            queue.push((tag_of_manifest(&m256), roots, Some(s1), label));
        }
    }
    Ok(rep)
}

enum PullError {
    /// The registry cannot be used at all (unreachable, credentials refused).
    Fatal(RegistryError),
    /// This graph is not what it claims: nothing of it is written.
    Reject(String),
}
use PullError::{Fatal, Reject};

/// One tagged graph into the store. Ok(false): no such tag.
fn pull_one(
    s: &Session,
    store: &Store,
    tag: &str,
    roots: &[Id],
    rep: &mut PullReport,
) -> Result<bool, PullError> {
    let r = s.reference(tag);
    let got = s.rt.block_on(
        s.client
            .pull_manifest_raw(&r, &s.auth, &[OCI_IMAGE_MEDIA_TYPE]),
    );
    let (body, _digest) = match got {
        Ok(x) => x,
        Err(e) if is_not_found(&e) => return Ok(false),
        Err(e) => return Err(Fatal(s.err(&e))),
    };
    let m: OciImageManifest = serde_json::from_slice(&body)
        .map_err(|e| Reject(format!("not an OCI image manifest: {e}")))?;
    if m.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        return Err(Reject(format!(
            "artifactType {:?}, not {ARTIFACT_TYPE}",
            m.artifact_type.unwrap_or_default()
        )));
    }
    let mut entries = Vec::with_capacity(m.layers.len());
    let mut fetched = (0usize, 0u64);
    for d in &m.layers {
        let kind = kind_of(d).map_err(Reject)?;
        if let Kind::Manifest(id) = kind {
            // content-addressed: one already here is the same bytes
            if store.is_file(&store.object_path(&id)) {
                continue;
            }
        }
        let bytes = s.fetch_blob(&r, d).map_err(Reject)?;
        fetched.0 += 1;
        fetched.1 += bytes.len() as u64;
        let e = Entry::new(kind, bytes);
        e.validate().map_err(|e| Reject(format!("{e}")))?;
        entries.push(e);
    }
    // the graph must hold the manifests the file's note names (a noteless file: its target)
    for want in roots {
        let held = entries.iter().any(|e| e.kind == Kind::Manifest(*want))
            || store.is_file(&store.object_path(want));
        if !held {
            return Err(Reject(format!(
                "the artifact does not hold the file's manifest {}",
                want.uri()
            )));
        }
    }
    let last: HashSet<Id> = if roots.is_empty() {
        entries
            .iter()
            .filter_map(|e| match e.kind {
                Kind::Target(_) => std::str::from_utf8(&e.bytes)
                    .ok()
                    .and_then(|t| Id::from_hex(t.trim_end()).ok()),
                _ => None,
            })
            .collect()
    } else {
        roots.iter().copied().collect()
    };
    export::install(store, &entries, &last).map_err(|e| match e {
        export::ExportError::Invalid(x) => Reject(x),
        other => Fatal(RegistryError::Other(other.to_string())),
    })?;
    rep.fetched += fetched.0;
    rep.fetched_bytes += fetched.1;
    let _ = Alg::ALL;
    Ok(true)
}
