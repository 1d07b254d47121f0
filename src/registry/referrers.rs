//! OCI 1.1 referrers (distribution-spec "Listing Referrers", "Referrers Tag Schema"): an
//! artifact attached to a subject manifest by its `subject` descriptor, and the list of a
//! subject's referrers.
//!
//! Listing is oci-client's `pull_referrers` (the referrers API, else the image index tagged
//! by the tag schema). oci-client has no helper for the pushing side, so attaching is here:
//! after the referrer is pushed, the subject's referrers are listed; when the new manifest is
//! not among them (a registry without the API, such as distribution 2.8), it is appended to
//! the tag-schema index (fetched, or a new one), which is pushed again. An entry already there
//! is not added twice.

use super::{describe, is_not_found, sha256_digest, RegistryError, Session};
use oci_client::manifest::{
    ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::Reference;
use std::collections::BTreeMap;

/// The artifactType (and layer media type) of an attestation: one DSSE envelope.
pub const DSSE_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// The tag-schema tag of a digest: its algorithm truncated to 32 characters, `-`, its encoded
/// part truncated to 64, characters a tag may not hold replaced with `-`.
pub fn fallback_tag(digest: &str) -> String {
    let (alg, enc) = digest.split_once(':').unwrap_or(("", digest));
    let t: String =
        alg.chars().take(32).collect::<String>() + "-" + &enc.chars().take(64).collect::<String>();
    t.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A manifest of this repository by digest: its bytes, checked against the digest.
pub(super) fn manifest_by_digest(
    s: &Session,
    digest: &str,
    accept: &[&str],
) -> Result<Option<Vec<u8>>, RegistryError> {
    let r = Reference::with_digest(s.registry.clone(), s.repository.clone(), digest.to_string());
    let body = match s
        .rt
        .block_on(s.client.pull_manifest_raw(&r, &s.auth, accept))
    {
        Ok((b, _)) => b.to_vec(),
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(s.err(&e)),
    };
    let got = sha256_digest(&body);
    if got != digest {
        return Err(RegistryError::Repo(
            s.repo(),
            format!("manifest {digest}: content hashes to {got}: altered"),
        ));
    }
    Ok(Some(body))
}

/// The subject descriptor of a manifest the registry holds (an image, an index, or a Docker
/// v2 manifest or list): its media type, digest and size as the registry serves it. None
/// when the registry does not have it.
pub(super) fn subject(s: &Session, digest: &str) -> Result<Option<OciDescriptor>, RegistryError> {
    let accept = [
        OCI_IMAGE_MEDIA_TYPE,
        OCI_IMAGE_INDEX_MEDIA_TYPE,
        IMAGE_MANIFEST_MEDIA_TYPE,
        IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    ];
    let Some(body) = manifest_by_digest(s, digest, &accept)? else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| RegistryError::Repo(s.repo(), format!("{digest}: not a manifest: {e}")))?;
    // mediaType is optional in OCI manifests: an index is told by its `manifests`
    let media_type = match v["mediaType"].as_str() {
        Some(m) => m.to_string(),
        None if v.get("manifests").is_some() => OCI_IMAGE_INDEX_MEDIA_TYPE.to_string(),
        None => OCI_IMAGE_MEDIA_TYPE.to_string(),
    };
    Ok(Some(OciDescriptor {
        media_type,
        digest: digest.to_string(),
        size: body.len() as i64,
        urls: None,
        annotations: None,
        artifact_type: None,
    }))
}

/// The referrers of a subject digest, of one artifact type when given (filtered here too:
/// the API may ignore the filter, and the tag schema has none).
pub(super) fn list(
    s: &Session,
    subject_digest: &str,
    artifact_type: Option<&str>,
) -> Result<Vec<ImageIndexEntry>, RegistryError> {
    let r = Reference::with_digest(
        s.registry.clone(),
        s.repository.clone(),
        subject_digest.to_string(),
    );
    let idx =
        s.rt.block_on(s.client.pull_referrers(&r, artifact_type))
            .map_err(|e| s.err(&e))?;
    Ok(idx
        .manifests
        .into_iter()
        .filter(|e| artifact_type.is_none_or(|t| e.artifact_type.as_deref() == Some(t)))
        .collect())
}

/// `omnishim referrers`: the referrers of a manifest of the repository, of one artifact type
/// when given.
pub fn referrers_of(
    remote: &super::Remote,
    digest: &str,
    artifact_type: Option<&str>,
) -> Result<Vec<ImageIndexEntry>, RegistryError> {
    let s = Session::open(remote, oci_client::RegistryOperation::Pull)?;
    list(&s, digest, artifact_type)
}

/// Push `manifest` (which has a `subject`) by digest and make it a listed referrer of its
/// subject. Its descriptor, and whether the tag-schema index was written.
pub(super) fn push_referrer(
    s: &Session,
    manifest: &OciImageManifest,
) -> Result<(OciDescriptor, bool), RegistryError> {
    let body = serde_json::to_vec(manifest).map_err(|e| RegistryError::Other(e.to_string()))?;
    let d = descriptor_of(&body);
    let r = Reference::with_digest(s.registry.clone(), s.repository.clone(), d.digest.clone());
    s.rt.block_on(s.client.push_manifest_raw(
        &r,
        body.clone(),
        http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
    ))
    .map_err(|e| s.err(&e))?;
    let added = register(s, manifest, &body)?;
    Ok((d, added))
}

/// The descriptor of an OCI image manifest's bytes.
pub(super) fn descriptor_of(body: &[u8]) -> OciDescriptor {
    OciDescriptor {
        media_type: OCI_IMAGE_MEDIA_TYPE.to_string(),
        digest: sha256_digest(body),
        size: body.len() as i64,
        urls: None,
        annotations: None,
        artifact_type: None,
    }
}

/// Make a pushed manifest (`body`, which has a `subject`) a listed referrer of its subject:
/// nothing to do when the subject's referrers already list it (the API, or the tag schema
/// from an earlier push); else it is added to the tag-schema index. True when it was added.
pub(super) fn register(
    s: &Session,
    manifest: &OciImageManifest,
    body: &[u8],
) -> Result<bool, RegistryError> {
    let subj = manifest
        .subject
        .as_ref()
        .ok_or_else(|| RegistryError::Other("a referrer without a subject".into()))?;
    let digest = sha256_digest(body);
    if list(s, &subj.digest, None)?
        .iter()
        .any(|e| e.digest == digest)
    {
        return Ok(false);
    }
    let entry = ImageIndexEntry {
        media_type: OCI_IMAGE_MEDIA_TYPE.to_string(),
        digest,
        size: body.len() as i64,
        platform: None,
        // as the spec asks: the manifest's artifactType (else its config's media type) and
        // all its annotations
        artifact_type: Some(
            manifest
                .artifact_type
                .clone()
                .unwrap_or_else(|| manifest.config.media_type.clone()),
        ),
        annotations: manifest.annotations.clone(),
    };
    add_to_fallback(s, &subj.digest, entry)?;
    Ok(true)
}

/// Append an entry to the tag-schema index of a subject (made when there is none).
fn add_to_fallback(
    s: &Session,
    subject_digest: &str,
    entry: ImageIndexEntry,
) -> Result<(), RegistryError> {
    let tag = fallback_tag(subject_digest);
    let r = s.reference(&tag);
    let mut idx = match s.rt.block_on(s.client.pull_manifest_raw(
        &r,
        &s.auth,
        &[OCI_IMAGE_INDEX_MEDIA_TYPE],
    )) {
        Ok((b, _)) => {
            let idx: OciImageIndex = serde_json::from_slice(&b)
                .ok()
                .filter(|i: &OciImageIndex| {
                    i.media_type.as_deref().unwrap_or(OCI_IMAGE_INDEX_MEDIA_TYPE)
                        == OCI_IMAGE_INDEX_MEDIA_TYPE
                })
                .ok_or_else(|| {
                    RegistryError::Repo(
                        s.repo(),
                        format!("tag {tag} holds something other than an image index: the referrers list of {subject_digest} was not updated"),
                    )
                })?;
            idx
        }
        Err(e) if is_not_found(&e) => OciImageIndex {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_INDEX_MEDIA_TYPE.to_string()),
            manifests: Vec::new(),
            artifact_type: None,
            annotations: None::<BTreeMap<String, String>>,
        },
        Err(e) => {
            return Err(RegistryError::Repo(
                s.repo(),
                format!("{tag}: {}", describe(&e)),
            ))
        }
    };
    if idx.manifests.iter().any(|e| e.digest == entry.digest) {
        return Ok(());
    }
    idx.manifests.push(entry);
    let body = serde_json::to_vec(&idx).map_err(|e| RegistryError::Other(e.to_string()))?;
    s.rt.block_on(s.client.push_manifest_raw(
        &r,
        body,
        http::HeaderValue::from_static(OCI_IMAGE_INDEX_MEDIA_TYPE),
    ))
    .map_err(|e| s.err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fallback_tag;

    #[test]
    fn tag_schema_examples_of_the_spec() {
        let a64 = "a".repeat(64);
        assert_eq!(
            fallback_tag(&format!("sha256:{a64}")),
            format!("sha256-{a64}")
        );
        assert_eq!(
            fallback_tag(&format!("sha512:{}", "a".repeat(128))),
            format!("sha512-{a64}")
        );
        assert_eq!(
            fallback_tag("test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+overall+truncation:alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLotsOfCharactersToExcerciseEncodedTruncation"),
            "test-algorithm-using-algorithm-s-alsoSome-InTheEncodedSectionToShowHyphenReplacementAndLotsAndLot"
        );
    }
}
