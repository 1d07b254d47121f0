//! Issue 17 (local part): `keygen`, `attest` and `verify` with a store. Envelopes are checked
//! by the ecosystem's own code (securesystemslib's DSSE Envelope.verify, the in-toto
//! attestation Statement v1 bindings), and envelopes signed by securesystemslib verify here.

use crate::util::*;
use omnishim::elf;
use omnishim::store::Store;
use std::path::{Path, PathBuf};
use std::process::Output;

impl Built {
    /// `omnishim attest FILE --key KEY -o OUT`
    fn attest(&self, file: &Path, key: &Path, out: &Path) {
        run_ok(omnishim(&["attest", "--store"]).args([
            self.store.as_os_str(),
            file.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]));
    }
    /// `omnishim verify FILE --key PUB --attestation A --store S --json`
    fn verify(&self, file: &Path, key: &Path, att: &Path, store: &Path) -> Output {
        omnishim(&["verify", "--json"])
            .arg(file)
            .arg("--key")
            .arg(key)
            .arg("--attestation")
            .arg(att)
            .arg("--store")
            .arg(store)
            .output()
            .unwrap()
    }
    /// The failed check's kind (and exit 1), or "verified" (and exit 0).
    fn verdict(&self, file: &Path, key: &Path, att: &Path, store: &Path) -> String {
        let out = self.verify(file, key, att, store);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("verify --json: {e}; stderr: {err}"));
        let row = &v[0];
        let code = out.status.code();
        if row["verdict"] == "verified" {
            assert_eq!(code, Some(0), "{err}");
            assert!(err.contains("verified"), "{err}");
            "verified".into()
        } else {
            assert_eq!(code, Some(1), "{err}");
            // one line on stderr naming the file and the check
            let kind = row["check"].as_str().unwrap().to_string();
            assert!(
                err.contains(&format!("{}: not verified: {kind}: ", file.display())),
                "{err}"
            );
            kind
        }
    }
    /// The manifest (sha1) a file's note names, as a store path.
    fn manifest_path(&self, store: &Path, file: &str) -> PathBuf {
        let id = elf::read_note_file(&self.t.join(file))
            .unwrap()
            .sha1
            .unwrap();
        Store::at(store).object_path(&id)
    }
}

/// A key pair: from `omnishim keygen` or `openssl genpkey`.
fn keypair(t: &Tmp, name: &str, kind: &str, openssl: bool) -> (PathBuf, PathBuf) {
    let (key, public) = (
        t.join(&format!("{name}.key")),
        t.join(&format!("{name}.pub")),
    );
    if openssl {
        need("openssl");
        let alg: &[&str] = if kind == "ed25519" {
            &["-algorithm", "ed25519"]
        } else {
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        };
        run_ok(
            std::process::Command::new("openssl")
                .arg("genpkey")
                .args(alg)
                .arg("-out")
                .arg(&key),
        );
        run_ok(
            std::process::Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&key)
                .arg("-out")
                .arg(&public),
        );
    } else {
        run_ok(omnishim(&["keygen", "--type", kind, "-o"]).arg(t.join(name)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    assert!(std::fs::read_to_string(&key)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(std::fs::read_to_string(&public)
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    (key, public)
}

fn python(script: &str, args: &[&Path]) -> Output {
    need("python3");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python oracle failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// securesystemslib verifies our envelope with the public key (which also proves the keyid is
/// its own), and the payload parses and validates as an in-toto Statement v1; prints the
/// statement as JSON.
const ORACLE_VERIFY: &str = r#"
import sys, json
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.signer import SSlibKey
from securesystemslib.dsse import Envelope
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
env = Envelope.from_dict(json.load(open(sys.argv[1])))
key = SSlibKey.from_crypto(load_pem_public_key(open(sys.argv[2], 'rb').read()))
env.verify([key], 1)
assert env.payload_type == "application/vnd.in-toto+json"
st = Statement.copy_from_pb(json_format.Parse(env.payload, statement_pb2.Statement()))
st.validate()
print(env.payload.decode())
"#;

/// securesystemslib signs a statement (argv[1]: payload bytes) with a PEM private key
/// (argv[2]) into a DSSE envelope (argv[3]).
const ORACLE_SIGN: &str = r#"
import sys, json
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from securesystemslib.dsse import Envelope
signer = CryptoSigner(load_pem_private_key(open(sys.argv[2], 'rb').read(), None))
env = Envelope(open(sys.argv[1], 'rb').read(), "application/vnd.in-toto+json", {})
env.sign(signer)
json.dump(env.to_dict(), open(sys.argv[3], 'w'))
"#;

#[test]
fn attest_verifies_here_and_with_securesystemslib_for_every_key_kind() {
    let b = Built::new();
    let note = elf::read_note_file(&b.prog()).unwrap();
    for (name, kind, openssl) in [
        ("ed", "ed25519", false),
        ("ec", "p256", false),
        ("ossl-ed", "ed25519", true),
        ("ossl-ec", "p256", true),
    ] {
        let (key, public) = keypair(&b.t, name, kind, openssl);
        let env = b.t.join(&format!("{name}.intoto.json"));
        b.attest(&b.prog(), &key, &env);
        assert_eq!(
            b.verdict(&b.prog(), &public, &env, &b.store),
            "verified",
            "{name}"
        );
        let out = python(ORACLE_VERIFY, &[&env, &public]);
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(st["predicateType"], "https://omnibor.io/omnishim/graph/v1");
        let p = &st["predicate"];
        assert_eq!(p["root"]["sha1"], note.sha1.unwrap().uri());
        assert_eq!(p["root"]["sha256"], note.sha256.unwrap().uri());
        // prog's manifest and a.o's
        assert_eq!(p["manifests"]["sha1"], 2);
        assert_eq!(p["manifests"]["sha256"], 2);
        let ids = omnishim::gitoid::ids_of_file(&b.prog()).unwrap();
        assert_eq!(st["subject"][0]["name"], "prog");
        assert_eq!(st["subject"][0]["digest"]["gitBlob"], ids.sha1.hex());

        // securesystemslib signs our statement: that envelope verifies here too
        let payload =
            b.t.write(&format!("{name}.payload"), out.stdout.trim_ascii_end());
        let theirs = b.t.join(&format!("{name}.sslib.json"));
        python(ORACLE_SIGN, &[&payload, &key, &theirs]);
        assert_eq!(
            b.verdict(&b.prog(), &public, &theirs, &b.store),
            "verified",
            "{name}: securesystemslib's envelope"
        );
    }
    // the default output: FILE.intoto.json beside the file, found by verify
    let (key, public) = keypair(&b.t, "dflt", "ed25519", false);
    run_ok(
        omnishim(&["attest", "--store"])
            .arg(&b.store)
            .arg(b.prog())
            .arg("--key")
            .arg(&key),
    );
    let out = omnishim(&["verify", "--store"])
        .arg(&b.store)
        .arg(b.prog())
        .arg("--key")
        .arg(&public)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn attest_bundle_of_several_files_verifies_each() {
    let b = Built::new();
    let (key, public) = keypair(&b.t, "k", "p256", false);
    let bundle = b.t.join("bundle.jsonl");
    run_ok(
        omnishim(&["attest", "--store"])
            .arg(&b.store)
            .arg(b.prog())
            .arg(b.t.join("a.o"))
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(&bundle),
    );
    assert_eq!(std::fs::read_to_string(&bundle).unwrap().lines().count(), 2);
    for f in ["prog", "a.o"] {
        assert_eq!(
            b.verdict(&b.t.join(f), &public, &bundle, &b.store),
            "verified",
            "{f}"
        );
    }
    // an unrecorded file is not attested: exit 1, one line
    let c = b.t.write("plain.txt", "x\n");
    let out = omnishim(&["attest", "--store"])
        .arg(&b.store)
        .arg(&c)
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain.txt: not attested"));
}

/// Copy a file, let `f` change the copy.
fn tampered(b: &Built, name: &str, f: impl FnOnce(&Path)) -> PathBuf {
    let p = b.t.join(name);
    std::fs::copy(b.prog(), &p).unwrap();
    f(&p);
    p
}

/// A copy of the store, writable.
fn store_copy(b: &Built, name: &str) -> PathBuf {
    let s = b.t.join(name);
    run_ok(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(&b.store)
            .arg(&s),
    );
    run_ok(
        std::process::Command::new("chmod")
            .args(["-R", "u+w"])
            .arg(&s),
    );
    s
}

/// Rewrite an envelope's JSON.
fn edit_envelope(
    b: &Built,
    env: &Path,
    name: &str,
    f: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env).unwrap()).unwrap();
    f(&mut v);
    b.t.write(name, serde_json::to_string(&v).unwrap())
}

#[test]
fn tampering_is_rejected_each_with_its_own_reason() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let b = Built::new();
    for kind in ["ed25519", "p256"] {
        let (key, public) = keypair(&b.t, kind, kind, false);
        let env = b.t.join(&format!("{kind}.intoto.json"));
        b.attest(&b.prog(), &key, &env);
        let v = |file: &Path, public: &Path, att: &Path, store: &Path| {
            b.verdict(file, public, att, store)
        };
        assert_eq!(v(&b.prog(), &public, &env, &b.store), "verified");

        // one byte of the binary changed (in the .comment string, outside the note)
        let bytes = std::fs::read(b.prog()).unwrap();
        let at = bytes.windows(4).position(|w| w == b"GCC:").unwrap();
        let p = tampered(&b, "byte", |p| {
            let mut x = bytes.clone();
            x[at] = b'g';
            std::fs::write(p, x).unwrap();
        });
        assert_eq!(v(&p, &public, &env, &b.store), "digest-mismatch", "{kind}");

        // stripped: the note is kept, the bytes are not the signed ones
        need("strip");
        let p = tampered(&b, "stripped", |p| {
            run_ok(std::process::Command::new("strip").arg(p));
        });
        assert_eq!(v(&p, &public, &env, &b.store), "stripped", "{kind}");
        let out = b.verify(&p, &public, &env, &b.store);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("the subject digest is of the unstripped file"),
            "{err}"
        );
        assert!(
            err.contains("the note still holds the signed manifest IDs"),
            "{err}"
        );

        // the note's IDs changed: a.o's manifest IDs embedded instead
        let ao = elf::read_note_file(&b.t.join("a.o")).unwrap();
        let p = tampered(&b, "renoted", |p| {
            run_ok(omnishim(&["note", "embed"]).arg(p).args([
                "--manifest",
                &ao.sha1.unwrap().uri(),
                &ao.sha256.unwrap().uri(),
            ]));
        });
        assert_eq!(v(&p, &public, &env, &b.store), "note-mismatch", "{kind}");

        // one manifest in the store altered (a.o's, below the root)
        let s = store_copy(&b, &format!("altered-{kind}"));
        let m = b.manifest_path(&s, "a.o");
        let mut text = std::fs::read(&m).unwrap();
        text.extend_from_slice(b"blob 0000000000000000000000000000000000000000\n");
        std::fs::write(&m, text).unwrap();
        assert_eq!(
            v(&b.prog(), &public, &env, &s),
            "manifest-corrupt",
            "{kind}"
        );

        // one manifest removed
        let s = store_copy(&b, &format!("removed-{kind}"));
        std::fs::remove_file(b.manifest_path(&s, "a.o")).unwrap();
        assert_eq!(
            v(&b.prog(), &public, &env, &s),
            "graph-incomplete",
            "{kind}"
        );

        // the payload changed (still a well-formed statement)
        let e = edit_envelope(&b, &env, "payload.json", |v| {
            let body = b64.decode(v["payload"].as_str().unwrap()).unwrap();
            let body = String::from_utf8(body)
                .unwrap()
                .replace("\"prog\"", "\"prug\"");
            v["payload"] = b64.encode(body).into();
        });
        assert_eq!(v(&b.prog(), &public, &e, &b.store), "signature", "{kind}");

        // the signature changed
        let e = edit_envelope(&b, &env, "sig.json", |v| {
            let mut sig = b64
                .decode(v["signatures"][0]["sig"].as_str().unwrap())
                .unwrap();
            let n = sig.len() - 5;
            sig[n] ^= 1;
            v["signatures"][0]["sig"] = b64.encode(sig).into();
        });
        assert_eq!(v(&b.prog(), &public, &e, &b.store), "signature", "{kind}");

        // a different key
        let (_, other) = keypair(&b.t, &format!("other-{kind}"), kind, false);
        assert_eq!(v(&b.prog(), &other, &env, &b.store), "wrong-key", "{kind}");
    }
}

#[test]
fn run_sign_attests_the_top_level_outputs() {
    let t = Tmp::new();
    let store = t.join("store");
    t.write("a.c", "int a(void){return 1;}\n");
    t.write("m.c", "int a(void);\nint main(void){return a()-1;}\n");
    run_ok(omnishim(&["keygen", "--type", "p256", "-o"]).arg(t.join("k")));
    let out = omnishim(&["run", "--store"])
        .arg(&store)
        .arg("--sign")
        .arg(t.join("k.key"))
        .args(["--", "sh", "-c", "cc -c a.c && cc m.c a.o -o prog"])
        .current_dir(t.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("1 top-level outputs signed"), "{err}");
    // a.o went into prog: not a top-level output, not attested
    assert!(!t.join("a.o.intoto.json").exists());
    let out = omnishim(&["verify", "--store"])
        .arg(&store)
        .arg(t.join("prog"))
        .arg("--key")
        .arg(t.join("k.pub"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // a bad key fails before the build runs
    let bad = t.write("bad.key", "not a key\n");
    let out = omnishim(&["run", "--store"])
        .arg(&store)
        .arg("--sign")
        .arg(&bad)
        .args(["--", "touch", "ran"])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!t.join("ran").exists());
}

/// Issue 17: xz-utils built under `omnishim run --sign` (the shared build): every top-level
/// output verifies against its attestation and the build's store; attesting them all again
/// into one bundle and verifying that bundle works too. Prints the attest and verify times.
#[test]
fn xz_built_under_run_sign_every_top_level_output_verifies() {
    let x = crate::builds::xz(false);
    let outputs = x.signed_outputs();
    let names: Vec<String> = outputs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["liblzma.so.5.4.1", "xz", "xzdec", "lzmainfo"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} not signed: {names:?}"
        );
    }
    assert!(
        x.summary
            .contains(&format!("{} top-level outputs signed", outputs.len())),
        "{}\n{names:?}",
        x.summary
    );
    let verify = |att: Option<&Path>| {
        let mut c = omnishim(&["verify", "--json", "--store"]);
        c.arg(&x.store).arg("--key").arg(&x.public_key);
        if let Some(a) = att {
            c.arg("--attestation").arg(a);
        }
        let t0 = std::time::Instant::now();
        let out = c.args(&outputs).output().unwrap();
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rows.len(), outputs.len());
        for r in &rows {
            assert_eq!(r["verdict"], "verified", "{r}");
        }
        secs
    };
    let verify_secs = verify(None);
    let t = Tmp::new();
    let bundle = t.join("xz.intoto.jsonl");
    let t0 = std::time::Instant::now();
    run_ok(
        omnishim(&["attest", "--store"])
            .arg(&x.store)
            .arg("--key")
            .arg(x.public_key.with_extension("key"))
            .arg("-o")
            .arg(&bundle)
            .args(&outputs),
    );
    let attest_secs = t0.elapsed().as_secs_f64();
    let bundle_secs = verify(Some(&bundle));
    let manifests = std::fs::read_dir(x.store.join("objects/gitoid_blob_sha256"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum::<usize>();
    eprintln!(
        "xz-utils, {} top-level outputs, {manifests} sha256 manifests in the store: \
         attest {attest_secs:.3} s, verify {verify_secs:.3} s (bundle: {bundle_secs:.3} s)",
        outputs.len()
    );
}
