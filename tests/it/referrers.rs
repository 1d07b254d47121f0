//! OCI referrers (issues 16 and 17): `push --subject` attaches graphs to a container image,
//! `push --attest` attaches DSSE envelopes to graphs, `verify --registry` finds them from the
//! binary alone. The test registry (distribution 2.8) has no referrers API, so everything goes
//! through the tag-schema fallback index, read here independently with curl.

use crate::registry::{responder, Registry};
use crate::util::*;
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GRAPH_TYPE: &str = "application/vnd.omnibor.graph.v1";
const DSSE_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn digest_of(b: &[u8]) -> String {
    let h = sha2::Sha256::digest(b);
    format!(
        "sha256:{}",
        h.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn curl(args: &[&str]) -> Output {
    Command::new(need("curl"))
        .args(["-s", "--max-time", "20"])
        .args(args)
        .output()
        .unwrap()
}

/// A manifest (by tag or digest) as the registry serves it: bytes, or None on 404.
fn get_manifest(r: &Registry, reference: &str, accept: &str) -> Option<Vec<u8>> {
    let url = format!("http://{}/v2/graphs/manifests/{reference}", r.addr);
    let o = curl(&[
        "-w",
        "\n%{http_code}",
        "-H",
        &format!("Accept: {accept}"),
        &url,
    ]);
    let text = o.stdout;
    let split = text.iter().rposition(|&b| b == b'\n').unwrap();
    let code = String::from_utf8_lossy(&text[split + 1..]).into_owned();
    match code.as_str() {
        "200" => Some(text[..split].to_vec()),
        "404" => None,
        c => panic!("GET {url}: HTTP {c}: {}", String::from_utf8_lossy(&text)),
    }
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap()
}

/// The tag-schema index of a subject, read with curl: its entries.
fn fallback_entries(r: &Registry, subject: &str) -> Vec<serde_json::Value> {
    let tag = subject.replace(':', "-");
    match get_manifest(r, &tag, INDEX) {
        Some(b) => {
            let v = json(&b);
            assert_eq!(v["mediaType"], INDEX, "{v}");
            v["manifests"].as_array().unwrap().clone()
        }
        None => Vec::new(),
    }
}

/// Upload a blob with the two-step monolithic upload of the distribution API.
fn put_blob(r: &Registry, bytes: &[u8], t: &Tmp) -> String {
    let d = digest_of(bytes);
    let f = t.write(&format!("blob-{}", &d[7..19]), bytes);
    let o = curl(&[
        "-i",
        "-X",
        "POST",
        &format!("http://{}/v2/graphs/blobs/uploads/", r.addr),
    ]);
    let head = String::from_utf8_lossy(&o.stdout).into_owned();
    let loc = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or(l.strip_prefix("location: "))
        })
        .unwrap_or_else(|| panic!("no upload location: {head}"))
        .trim()
        .to_string();
    let loc = if loc.starts_with('/') {
        format!("http://{}{loc}", r.addr)
    } else {
        loc
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let o = curl(&[
        "-f",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", f.display()),
        &format!("{loc}{sep}digest={d}"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    d
}

/// A small container image (a config and one layer) tagged `app`: its manifest digest.
fn push_image(r: &Registry, t: &Tmp) -> String {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"not really a tar, but the registry does not look";
    let (cd, ld) = (put_blob(r, config, t), put_blob(r, layer, t));
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
    });
    let body = serde_json::to_vec(&m).unwrap();
    let f = t.write("image.json", &body);
    let o = curl(&[
        "-f",
        "-X",
        "PUT",
        "-H",
        &format!("Content-Type: {MANIFEST}"),
        "--data-binary",
        &format!("@{}", f.display()),
        &format!("http://{}/v2/graphs/manifests/app", r.addr),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    digest_of(&body)
}

/// The digest of the graph artifact a file's note leads to (tag `sha256-<manifest hex>`).
fn graph_digest(r: &Registry, file: &Path) -> (String, serde_json::Value) {
    let m256 = omnishim::elf::read_note_file(file).unwrap().sha256.unwrap();
    let body = get_manifest(r, &format!("sha256-{}", m256.hex()), MANIFEST)
        .unwrap_or_else(|| panic!("no graph for {}", file.display()));
    (digest_of(&body), json(&body))
}

fn push(b: &Built, r: &Registry, extra: &[&str]) -> Output {
    omnishim(&["push", "--store"])
        .arg(&b.store)
        .args(extra)
        .arg(r.repo())
        .arg(b.prog())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn referrers_push_subject_attaches_the_graph_to_an_image() {
    let r = Registry::start(None);
    let t = Tmp::new();
    let image = push_image(&r, &t);
    let b = Built::new();
    let subject = format!("{}@{image}", r.repo());

    // a missing subject: one line, exit 2, nothing pushed
    let zeros = format!("{}@sha256:{}", r.repo(), "0".repeat(64));
    let o = push(&b, &r, &["--subject", &zeros]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no such manifest"), "{err}");
    let m256 = omnishim::elf::read_note_file(&b.prog())
        .unwrap()
        .sha256
        .unwrap();
    assert!(get_manifest(&r, &format!("sha256-{}", m256.hex()), MANIFEST).is_none());

    // a subject in another repository is refused before anything is done
    let o = push(&b, &r, &["--subject", &format!("{}/other@{image}", r.addr)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    let o = push(&b, &r, &["--subject", &subject]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (gd, gm) = graph_digest(&r, &b.prog());
    assert_eq!(gm["subject"]["digest"], image.as_str(), "{gm}");
    assert_eq!(gm["subject"]["mediaType"], MANIFEST, "{gm}");
    let image_size = get_manifest(&r, &image, MANIFEST).unwrap().len();
    assert_eq!(gm["subject"]["size"], image_size, "{gm}");

    // independently: the tag-schema index of the image lists the graph, with its type and
    // annotations
    let entries = fallback_entries(&r, &image);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["digest"], gd.as_str());
    assert_eq!(entries[0]["artifactType"], GRAPH_TYPE);
    assert_eq!(
        entries[0]["annotations"]["dev.omnibor.manifest.sha256"],
        m256.uri().as_str()
    );

    // our own listing, filtered and not
    let list = stdout(&mut omnishim(&["referrers", &subject]));
    assert_eq!(list, format!("{gd}  {GRAPH_TYPE}\n"));
    let list = stdout(&mut omnishim(&[
        "referrers",
        "--artifact-type",
        DSSE_TYPE,
        &subject,
    ]));
    assert_eq!(list, "");
    let list: serde_json::Value = serde_json::from_str(&stdout(&mut omnishim(&[
        "referrers",
        "--json",
        "--artifact-type",
        GRAPH_TYPE,
        &subject,
    ])))
    .unwrap();
    assert_eq!(list[0]["digest"], gd.as_str(), "{list}");

    // pushing again adds no second entry
    let o = push(&b, &r, &["--subject", &subject]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(fallback_entries(&r, &image).len(), 1);
    // the image itself is untouched
    assert_eq!(
        get_manifest(&r, "app", MANIFEST).map(|b| digest_of(&b)),
        Some(image)
    );
}

/// A clean directory holding only a copy of the program and a public key.
fn clean_copy(file: &Path, public: &Path) -> (Tmp, PathBuf, PathBuf) {
    let c = Tmp::new();
    let f = c.join(file.file_name().unwrap().to_str().unwrap());
    std::fs::copy(file, &f).unwrap();
    let k = c.join("signer.pub");
    std::fs::copy(public, &k).unwrap();
    (c, f, k)
}

/// `verify --json --key K --registry REPO FILES` in a clean directory with a fresh cache:
/// exit status, the rows, stderr.
fn verify_from_registry(
    dir: &Path,
    key: &Path,
    repo: &str,
    files: &[PathBuf],
) -> (Option<i32>, Vec<serde_json::Value>, String) {
    let cache = Tmp::new();
    let o = responder(&["verify", "--json", "--registry", repo], dir, cache.path())
        .arg("--key")
        .arg(key)
        .args(files)
        .env_remove("OMNIBOR_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("verify --json: {e}: {}", text(&o)));
    (o.status.code(), rows, err)
}

fn keygen(t: &Tmp, name: &str) -> PathBuf {
    let p = t.join(name);
    run_ok(omnishim(&["keygen", "-o"]).arg(&p));
    p
}

#[test]
fn referrers_push_attest_then_verify_from_the_registry_alone() {
    let r = Registry::start(None);
    let b = Built::new();
    let keys = Tmp::new();
    let (k1, k2) = (keygen(&keys, "one"), keygen(&keys, "two"));
    let key = |k: &Path, ext: &str| k.with_extension(ext);

    let o = push(&b, &r, &["--attest", key(&k1, "key").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (gd, _) = graph_digest(&r, &b.prog());
    let entries = fallback_entries(&r, &gd);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["artifactType"], DSSE_TYPE);
    let env1 = entries[0]["digest"].as_str().unwrap().to_string();
    // the envelope artifact: one DSSE layer holding what `attest` writes, subject the graph
    let em = json(&get_manifest(&r, &env1, MANIFEST).unwrap());
    assert_eq!(em["artifactType"], DSSE_TYPE);
    assert_eq!(em["subject"]["digest"], gd.as_str());
    assert_eq!(
        em["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(em["layers"].as_array().unwrap().len(), 1);
    assert_eq!(em["layers"][0]["mediaType"], DSSE_TYPE);
    let blob1 = em["layers"][0]["digest"].as_str().unwrap().to_string();
    let envelope: serde_json::Value = json(&std::fs::read(r.blob_file(&blob1)).unwrap());
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");

    // from the binary alone
    let (c, f, pub1) = clean_copy(&b.prog(), &key(&k1, "pub"));
    let (code, rows, err) =
        verify_from_registry(c.path(), &pub1, &r.repo(), std::slice::from_ref(&f));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(rows[0]["verdict"], "verified", "{rows:?}");

    // another key's public half: not verified
    let pub2 = c.join("two.pub");
    std::fs::copy(key(&k2, "pub"), &pub2).unwrap();
    let (code, rows, err) =
        verify_from_registry(c.path(), &pub2, &r.repo(), std::slice::from_ref(&f));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(rows[0]["check"], "wrong-key", "{rows:?}");
    assert!(
        err.contains(&format!("{}: not verified: wrong-key", f.display())),
        "{err}"
    );

    // a second signer: two envelopes, each verifies with its own key; pushing again adds none
    for _ in 0..2 {
        let o = push(&b, &r, &["--attest", key(&k2, "key").to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    assert_eq!(fallback_entries(&r, &gd).len(), 2);
    let (code, rows, err) =
        verify_from_registry(c.path(), &pub2, &r.repo(), std::slice::from_ref(&f));
    assert_eq!(
        (code, rows[0]["verdict"].as_str()),
        (Some(0), Some("verified")),
        "{err}"
    );

    // the first envelope altered inside the registry's storage: rejected with a line naming
    // its blob; the only envelope left is the other key's: not verified (1)
    let bf = r.blob_file(&blob1);
    let mut bytes = std::fs::read(&bf).unwrap();
    let i = bytes
        .iter()
        .rposition(|&c| c.is_ascii_alphanumeric())
        .unwrap();
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    std::fs::write(&bf, &bytes).unwrap();
    let (code, rows, err) =
        verify_from_registry(c.path(), &pub1, &r.repo(), std::slice::from_ref(&f));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(rows[0]["check"], "wrong-key", "{rows:?}");
    let line: Vec<&str> = err.lines().filter(|l| l.contains(&blob1)).collect();
    assert!(
        line.len() == 1 && line[0].contains("rejected: attestation"),
        "{err}"
    );
    // the other signer's envelope still verifies
    let (code, _, err) = verify_from_registry(c.path(), &pub2, &r.repo(), std::slice::from_ref(&f));
    assert_eq!(code, Some(0), "{err}");

    // --attestation with --registry: the envelope from the file, the graph from the registry
    let att = c.join("prog.intoto.json");
    run_ok(
        omnishim(&["attest", "--store"])
            .arg(&b.store)
            .arg("--key")
            .arg(key(&k1, "key"))
            .arg("-o")
            .arg(&att)
            .arg(b.prog()),
    );
    let cache = Tmp::new();
    let o = responder(&["verify", "--registry", &r.repo()], c.path(), cache.path())
        .arg("--attestation")
        .arg(&att)
        .arg("--key")
        .arg(&pub1)
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // a file whose graph is not in the registry: no attestation (1), and says so
    let r2 = Registry::start(None);
    let (code, rows, err) =
        verify_from_registry(c.path(), &pub1, &r2.repo(), std::slice::from_ref(&f));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(rows[0]["check"], "no-attestation", "{rows:?}");
    assert!(
        rows[0]["message"]
            .as_str()
            .unwrap()
            .contains("the registry has no graph for it"),
        "{rows:?}"
    );
}

/// Issue 17's registry goal: xz-utils built under `run --sign` (the shared build), its
/// top-level outputs pushed with `push --attest`; a clean directory holding only copies of
/// those files and the public key (no store, no OMNIBOR_DIR, a fresh cache) verifies every
/// one of them with `--registry`. Prints the push and verify times.
#[test]
fn xz_outputs_verify_from_the_registry_alone() {
    let x = crate::builds::xz(false);
    let outputs = x.signed_outputs();
    assert!(outputs.len() >= 4, "{outputs:?}");
    let r = Registry::start(None);
    let t0 = std::time::Instant::now();
    let o = omnishim(&["push", "--store"])
        .arg(&x.store)
        .arg("--attest")
        .arg(x.public_key.with_extension("key"))
        .arg(r.repo())
        .args(&outputs)
        .output()
        .unwrap();
    let push_secs = t0.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let attested = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.ends_with("(attestation)"))
        .count();
    assert_eq!(attested, outputs.len(), "{}", text(&o));

    // only copies of the files (each under its path in the tree) and the public key
    let clean = Tmp::new();
    let mut files = Vec::new();
    for f in &outputs {
        let rel = f.strip_prefix(&x.src).unwrap();
        let dst = clean.path().join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(f, &dst).unwrap();
        files.push(dst);
    }
    let key = clean.join("signer.pub");
    std::fs::copy(&x.public_key, &key).unwrap();
    let t0 = std::time::Instant::now();
    let (code, rows, err) = verify_from_registry(clean.path(), &key, &r.repo(), &files);
    let verify_secs = t0.elapsed().as_secs_f64();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(rows.len(), files.len());
    for row in &rows {
        assert_eq!(row["verdict"], "verified", "{row}");
    }
    assert!(!clean.path().join(".bom").exists());

    // tamper through the registry: the liblzma envelope's blob altered in the registry's
    // storage: rejected with a line naming it; that file is not verified (1)
    let lib = files
        .iter()
        .find(|f| f.file_name().unwrap() == "liblzma.so.5.4.1")
        .unwrap()
        .clone();
    let (gd, _) = graph_digest(&r, &lib);
    let e = &fallback_entries(&r, &gd)[0];
    let em = json(&get_manifest(&r, e["digest"].as_str().unwrap(), MANIFEST).unwrap());
    let blob = em["layers"][0]["digest"].as_str().unwrap().to_string();
    let bf = r.blob_file(&blob);
    let mut bytes = std::fs::read(&bf).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    std::fs::write(&bf, &bytes).unwrap();
    let (code, rows, err) = verify_from_registry(clean.path(), &key, &r.repo(), &files);
    assert_eq!(code, Some(1), "{err}");
    for row in &rows {
        let want = if Path::new(row["path"].as_str().unwrap()) == lib {
            "failed"
        } else {
            "verified"
        };
        assert_eq!(row["verdict"], want, "{row}");
    }
    assert!(
        err.lines()
            .any(|l| l.contains(&blob) && l.contains("rejected: attestation")),
        "{err}"
    );
    eprintln!(
        "figures: xz-utils, {} top-level outputs: push --attest {push_secs:.2} s, verify --registry (fresh cache) {verify_secs:.2} s",
        outputs.len()
    );
}
