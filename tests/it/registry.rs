//! Export, and graphs through an OCI registry: Debian's `docker-registry` (the reference
//! distribution server) on 127.0.0.1 at a free port with its own storage, stopped on drop.

use crate::util::{need, omnishim, recorded_prog, run_ok, shimmed, stdout, Tmp};
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// A running registry; killed when dropped.
pub(crate) struct Registry {
    child: Child,
    pub(crate) addr: String,
    dir: Tmp,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// `htpasswd`: (user, password) for basic auth.
    pub(crate) fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        let bin = need("docker-registry");
        let dir = Tmp::new();
        let addr = format!("127.0.0.1:{}", free_port());
        let mut yml = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        if let Some((u, p)) = htpasswd {
            let out = run_ok(Command::new(need("htpasswd")).args(["-Bbn", u, p]));
            std::fs::write(dir.join("htpasswd"), out.stdout).unwrap();
            yml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: omnishim-test\n    path: {}\n",
                dir.join("htpasswd").display()
            ));
        }
        let cfg = dir.write("config.yml", yml);
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let r = Registry { child, addr, dir };
        for _ in 0..200 {
            if std::net::TcpStream::connect(&r.addr).is_ok() {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("docker-registry did not start: {}", r.log());
    }

    pub(crate) fn repo(&self) -> String {
        format!("{}/graphs", self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Blob uploads the registry has been asked to start so far.
    fn uploads(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"POST /v2/") && l.contains("/blobs/uploads/"))
            .count()
    }

    /// The registry's own file holding a blob.
    pub(crate) fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("data")
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command run where a responder would: no OMNIBOR_DIR, a fresh cache, in `dir`.
pub(crate) fn responder(args: &[&str], dir: &Path, cache: &Path) -> Command {
    let mut c = omnishim(args);
    c.current_dir(dir)
        .env("XDG_CACHE_HOME", cache)
        .env("DOCKER_CONFIG", cache.join("no-docker-config"));
    c
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Regular files below a directory.
fn files_below(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(d) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn sources(store: &Path, file: &Path) -> String {
    stdout(
        omnishim(&["resolve", "--sources", "--store"])
            .arg(store)
            .arg(file),
    )
}

/// `omnishim export -o OUT --store STORE FILE`.
fn export_cmd(out: &Path, store: &Path, file: &Path) -> Command {
    let mut c = omnishim(&["export", "-o"]);
    c.arg(out).arg("--store").arg(store).arg(file);
    c
}

#[test]
fn export_is_a_store_resolve_reads() {
    let (t, store) = recorded_prog();
    let out = t.join("exp");
    run_ok(&mut export_cmd(&out, &store, &t.join("prog")));
    let want = sources(&store, &t.join("prog"));
    assert!(want.contains("/a.c  gitoid:blob:sha1:"), "{want}");
    assert_eq!(sources(&out, &t.join("prog")), want);
    // both algorithms, and nothing else of the store (no step log)
    let files = files_below(&out);
    assert!(files
        .iter()
        .any(|f| f.to_string_lossy().contains("gitoid_blob_sha256")));
    assert!(!files.iter().any(|f| f.ends_with("steps.log")), "{files:?}");
    run_ok(omnishim(&["store", "verify", "--store"]).arg(&out));
}

/// `omnishim` with TMPDIR in `tmp`, to see that a tar store leaves nothing behind.
fn with_tmpdir(args: &[&str], tmp: &Path) -> Command {
    let mut c = omnishim(args);
    c.env("TMPDIR", tmp);
    c
}

#[test]
fn export_tar_answers_like_the_directory_export() {
    let (t, store) = recorded_prog();
    let prog = t.join("prog");
    let tmp = t.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let export = |out: &Path, from: &Path| run_ok(export_cmd(out, from, &prog).env("TMPDIR", &tmp));
    let (dir, tar) = (t.join("exp"), t.join("exp.tar"));
    export(&dir, &store);
    export(&tar, &store);
    assert!(tar.is_file());
    let want = sources(&dir, &prog);
    assert!(want.contains("/a.c  gitoid:blob:sha1:"), "{want}");
    assert_eq!(sources(&tar, &prog), want);
    // check: the same verdicts and chains, denied and clean
    let a_id = stdout(omnishim(&["id", "--hash", "sha1"]).arg(t.join("a.c")));
    let deny = t.write(
        "deny",
        format!("{} CVE-TAR-1\n", a_id.split_whitespace().next().unwrap()),
    );
    let clean = t.write("clean", "0000000000000000000000000000000000000000 x\n");
    for (list, code) in [(&deny, 1), (&clean, 0)] {
        let check = |s: &Path| {
            with_tmpdir(&["check", "--json", "--deny"], &tmp)
                .arg(list)
                .arg("--store")
                .arg(s)
                .arg(&prog)
                .output()
                .unwrap()
        };
        let (a, b) = (check(&dir), check(&tar));
        assert_eq!(a.status.code(), Some(code), "{}", err(&a));
        assert_eq!(b.status.code(), Some(code), "{}", err(&b));
        assert_eq!(a.stdout, b.stdout);
    }
    run_ok(with_tmpdir(&["store", "verify", "--store"], &tmp).arg(&tar));
    // deterministic: the same export again, and an export of the tar store, byte for byte
    let again = t.join("again.tar");
    export(&again, &store);
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&tar).unwrap());
    let round = t.join("round.tar");
    export(&round, &tar);
    assert_eq!(std::fs::read(&round).unwrap(), std::fs::read(&tar).unwrap());
    // sorted names, fixed times and owners, regular files only
    let mut ar = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    let mut names = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(
            (h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap()),
            (0, 0, 0)
        );
        assert!(h.entry_type().is_file());
        names.push(e.path().unwrap().into_owned());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), files_below(&dir).len());
    // read-only: a command that writes a store refuses it
    let o = omnishim(&["manifest", "create", "--store"])
        .arg(&tar)
        .arg(t.join("a.c"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("read-only"), "{}", err(&o));
    // the temporary stores the tar was read into are gone
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

/// A tar archive of `good` entries plus one more, its header written as given (no checks
/// on the name: hostile archives are what this makes).
fn hostile_tar(out: &Path, good: &[(tar::Header, Vec<u8>)], extra: (&[u8], tar::EntryType, &[u8])) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    for (h, d) in good {
        b.append(h, d.as_slice()).unwrap();
    }
    let (name, ty, data) = extra;
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(ty);
    h.set_size(data.len() as u64);
    if matches!(ty, tar::EntryType::Symlink | tar::EntryType::Link) {
        h.set_link_name("/etc/passwd").unwrap();
    }
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.finish().unwrap();
}

#[test]
fn hostile_tar_exports_rejected_one_line() {
    let (t, store) = recorded_prog();
    let prog = t.join("prog");
    let tar = t.join("exp.tar");
    run_ok(&mut export_cmd(&tar, &store, &prog));
    let mut good = Vec::new();
    let mut ar = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut d = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut d).unwrap();
        good.push((h, d));
    }
    let first = String::from_utf8(good[0].0.path_bytes().into_owned()).unwrap();
    let paths0 = "metadata/omnishim/paths/0";
    use tar::EntryType as T;
    let cases: Vec<(&str, &str, T, &[u8], &str)> = vec![
        (
            "dotdot",
            "../x",
            T::Regular,
            b"x",
            "not a file of an omnishim export",
        ),
        (
            "inner-dotdot",
            "objects/../../x",
            T::Regular,
            b"x",
            "not a file of an omnishim export",
        ),
        (
            "absolute",
            "/tmp/x",
            T::Regular,
            b"x",
            "not a file of an omnishim export",
        ),
        ("symlink", paths0, T::Symlink, b"", "a symlink"),
        ("hardlink", paths0, T::Link, b"", "a hard link"),
        ("device", paths0, T::Char, b"", "a device"),
        ("duplicate", &first, T::Regular, &good[0].1, "named twice"),
    ];
    let tmp = t.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let sub = t.join("sub");
    std::fs::create_dir(&sub).unwrap();
    for (file, name, ty, data, why) in cases {
        let bad = sub.join(format!("{file}.tar"));
        hostile_tar(&bad, &good, (name.as_bytes(), ty, data));
        let o = with_tmpdir(&["resolve", "--store"], &tmp)
            .arg(&bad)
            .arg(&prog)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{file}: {}", err(&o));
        let e = err(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.contains(&format!("{file}.tar: entry \"{name}\": {why}")),
            "{file}: {e}"
        );
        assert!(o.stdout.is_empty());
    }
    // a header claiming more than any export entry holds
    let huge = sub.join("huge.tar");
    let mut h = tar::Header::new_gnu();
    h.set_path(paths0).unwrap();
    h.set_size(10 << 30);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend([0u8; 1024]);
    std::fs::write(&huge, bytes).unwrap();
    let o = with_tmpdir(&["check", "--deny"], &tmp)
        .arg(t.write("deny", "0000000000000000000000000000000000000000 x\n"))
        .arg("--store")
        .arg(&huge)
        .arg(&prog)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("too large"), "{}", err(&o));
    // nothing written outside, nothing left behind
    assert!(!t.join("x").exists() && !sub.join("x").exists());
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

#[test]
fn export_redact_and_withhold() {
    let t = Tmp::new();
    let store = t.join("store");
    t.write("src/private/p.c", "int p(void){return 2;}\n");
    t.write("m.c", "int p(void);\nint main(void){return p()-2;}\n");
    let cc = |args: &[&str]| {
        run_ok(
            shimmed(&t, "omnibor-cc", &store)
                .current_dir(t.path())
                .args(args),
        )
    };
    cc(&["-c", "src/private/p.c", "-o", "src/private/p.o"]);
    cc(&["m.c", "src/private/p.o", "-o", "prog"]);
    let prog = t.join("prog");

    // --redact: no path anywhere in the export; resolve prints IDs only
    let red = t.join("redacted");
    run_ok(
        omnishim(&["export", "--redact", "-o"])
            .arg(&red)
            .arg("--store")
            .arg(&store)
            .arg(&prog),
    );
    let name = t.path().file_name().unwrap().to_string_lossy().into_owned();
    for f in files_below(&red) {
        let b = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&b).contains(&name)
                && !String::from_utf8_lossy(&b).contains(".c"),
            "{} names a path",
            f.display()
        );
    }
    let s = sources(&red, &prog);
    assert!(
        !s.is_empty() && !s.contains(&name) && s.lines().all(|l| l.starts_with("?  ")),
        "{s}"
    );

    // --withhold: the private object's graph is left out, reported as withheld; check is
    // incomplete (3), never clean
    let wh = t.join("withheld");
    run_ok(
        omnishim(&["export", "--withhold", "src/private/*", "-o"])
            .arg(&wh)
            .arg("--store")
            .arg(&store)
            .arg(&prog),
    );
    let all = files_below(&wh)
        .iter()
        .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
        .collect::<String>();
    assert!(!all.contains("src/private"), "{all}");
    let deny = t.write("deny", "0000000000000000000000000000000000000000 nothing\n");
    let o = omnishim(&["check", "--deny"])
        .arg(&deny)
        .arg("--store")
        .arg(&wh)
        .arg(&prog)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("withheld"), "{}", err(&o));
    // and the full store says clean
    let o = omnishim(&["check", "--deny"])
        .arg(&deny)
        .arg("--store")
        .arg(&store)
        .arg(&prog)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = omnishim(&["resolve", "--store"])
        .arg(&wh)
        .arg(&prog)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stdout).contains("withheld by the exporter"));
}

#[test]
fn push_pull_round_trip_and_second_push_uploads_nothing() {
    let reg = Registry::start(None);
    let (t, store) = recorded_prog();
    let prog = t.join("prog");
    let push = || {
        run_ok(
            omnishim(&["push", "--store"])
                .arg(&store)
                .arg(reg.repo())
                .arg(&prog),
        )
    };
    let first = push();
    let tag_line = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(tag_line.contains(":sha256-"), "{tag_line}");
    let before = reg.uploads();
    assert!(before >= 5, "{}", reg.log());
    let second = push();
    assert_eq!(reg.uploads(), before, "a second push uploaded blobs");
    assert!(err(&second).contains(" 0 uploaded"), "{}", err(&second));

    let pulled = t.join("pulled");
    run_ok(
        omnishim(&["pull", "--store"])
            .arg(&pulled)
            .arg(reg.repo())
            .arg(&prog),
    );
    assert_eq!(sources(&pulled, &prog), sources(&store, &prog));
    run_ok(omnishim(&["store", "verify", "--store"]).arg(&pulled));

    // an independent client (curl on the registry API) reads the manifest; every blob's
    // sha256 and every manifest layer's gitoid (git hash-object) check out from raw bytes
    let tag = tag_line.trim().rsplit(':').next().unwrap().to_string();
    let base = format!("http://{}/v2/graphs", reg.addr);
    let man = run_ok(Command::new(need("curl")).args([
        "-sf",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &format!("{base}/manifests/{tag}"),
    ]))
    .stdout;
    let v: serde_json::Value = serde_json::from_slice(&man).unwrap();
    assert_eq!(v["artifactType"], "application/vnd.omnibor.graph.v1");
    assert_eq!(
        v["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let layers = v["layers"].as_array().unwrap();
    let git = need("git");
    let sha256_repo = t.join("git256");
    run_ok(
        Command::new(&git)
            .args(["init", "-q", "--object-format=sha256"])
            .arg(&sha256_repo),
    );
    let mut gitoids = 0;
    for l in layers {
        let d = l["digest"].as_str().unwrap();
        let blob = run_ok(Command::new("curl").args(["-sf", &format!("{base}/blobs/{d}")])).stdout;
        let got = format!("sha256:{}", hex(&sha2::Sha256::digest(&blob)));
        assert_eq!(got, d);
        assert_eq!(l["size"].as_u64().unwrap(), blob.len() as u64);
        if l["mediaType"] == "application/vnd.omnibor.manifest.v1+text" {
            let uri = l["annotations"]["dev.omnibor.gitoid"].as_str().unwrap();
            let f = t.write("blob", &blob);
            let mut c = Command::new(&git);
            if uri.contains(":sha256:") {
                c.current_dir(&sha256_repo);
            }
            let h = stdout(c.arg("hash-object").arg(&f));
            assert!(uri.ends_with(h.trim()), "{uri} vs {h}");
            gitoids += 1;
        }
    }
    assert_eq!(gitoids, 4, "{v}");
    let root = v["annotations"]["dev.omnibor.manifest.sha256"]
        .as_str()
        .unwrap();
    assert!(tag.ends_with(root.rsplit(':').next().unwrap()));

    // and ORAS's own client (oras-py) reads the same from the registry
    let note = stdout(omnishim(&["note", "show"]).arg(&prog));
    let ids: Vec<&str> = note.lines().filter_map(|l| l.split("  ").next()).collect();
    assert_eq!(ids.len(), 2, "{note}");
    let got = oras_check(
        &reg.addr,
        "graphs",
        &tag,
        ids[0],
        ids[1],
        &t.join("no-docker"),
    );
    assert_eq!(
        got,
        format!("ok {} blobs, {gitoids} manifests", layers.len() + 1)
    );
}

/// An independent reader: oras-py (ORAS's Python SDK) gets the manifest by tag and every
/// blob over plain HTTP, and checks from the raw bytes that each blob's sha256 is its
/// digest, each manifest layer hashes (a git blob object, sha1 or sha256) to its gitoid
/// annotation, and the root manifest annotations are the IDs the binary's note carries.
const ORAS_CHECK: &str = r#"
import hashlib, sys
import oras.provider
addr, repo, tag, want1, want256 = sys.argv[1:]
ref = f"{addr}/{repo}:{tag}"
reg = oras.provider.Registry(hostname=addr, insecure=True)
m = reg.get_manifest(ref, allowed_media_type=["application/vnd.oci.image.manifest.v1+json"])
def bad(why):
    sys.exit(f"oras check: {why}")
if m.get("artifactType") != "application/vnd.omnibor.graph.v1":
    bad(f"artifactType {m.get('artifactType')}")
ids = set()
blobs = [m["config"]] + m["layers"]
for d in blobs:
    r = reg.get_blob(ref, d["digest"])
    r.raise_for_status()
    data = r.content
    if "sha256:" + hashlib.sha256(data).hexdigest() != d["digest"] or len(data) != d["size"]:
        bad(f"blob {d['digest']}: its bytes do not match")
    if d["mediaType"] == "application/vnd.omnibor.manifest.v1+text":
        uri = d["annotations"]["dev.omnibor.gitoid"]
        alg = uri.split(":")[2]
        h = hashlib.new(alg, b"blob %d\0" % len(data) + data).hexdigest()
        if uri != f"gitoid:blob:{alg}:{h}":
            bad(f"layer {d['digest']} hashes to {h}, annotated {uri}")
        ids.add(uri)
a = m["annotations"]
roots = (a["dev.omnibor.manifest.sha1"], a["dev.omnibor.manifest.sha256"])
if roots != (want1, want256):
    bad(f"root manifests {roots}, the note says {(want1, want256)}")
if not set(roots) <= ids:
    bad("a root manifest is not among the layers")
print(f"ok {len(blobs)} blobs, {len(ids)} manifests")
"#;

/// Run `ORAS_CHECK`; its one line of output.
fn oras_check(addr: &str, repo: &str, tag: &str, sha1: &str, sha256: &str, cfg: &Path) -> String {
    let o = Command::new(need("python3"))
        .args(["-c", ORAS_CHECK, addr, repo, tag, sha1, sha256])
        .env("DOCKER_CONFIG", cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn responder_checks_and_resolves_from_the_registry_alone() {
    let reg = Registry::start(None);
    let (t, store) = recorded_prog();
    let prog = t.join("prog");
    run_ok(
        omnishim(&["push", "--store"])
            .arg(&store)
            .arg(reg.repo())
            .arg(&prog),
    );
    // a machine that never saw the build: copies of the shipped file, no store, fresh cache
    let ship = Tmp::new();
    std::fs::create_dir(ship.join("bin")).unwrap();
    std::fs::copy(&prog, ship.join("bin/prog")).unwrap();
    let cache = ship.join("cache");
    let a_c = stdout(omnishim(&["id", "--hash", "sha1"]).arg(t.join("a.c")));
    let a_id = a_c.split_whitespace().next().unwrap();
    ship.write("deny", format!("{a_id} CVE-TEST-1\n"));
    let o = responder(
        &["check", "--deny", "deny", "--registry", &reg.repo(), "bin"],
        ship.path(),
        &cache,
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("CVE-TEST-1"));
    assert!(
        !ship.join(".bom").exists(),
        "a store was made in the responder's directory"
    );

    // the cache now answers without the registry, and resolve equals the builder's
    let o = run_ok(&mut responder(
        &[
            "resolve",
            "--sources",
            "--registry",
            &reg.repo(),
            "bin/prog",
        ],
        ship.path(),
        &cache,
    ));
    assert_eq!(String::from_utf8_lossy(&o.stdout), sources(&store, &prog));
    // a file whose graph the registry lacks: incomplete (3), not clean
    t.write("b.c", "int b(void){return 3;}\n");
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-c", "b.c"]),
    );
    std::fs::copy(t.join("b.o"), ship.join("bin/other")).unwrap();
    let o = responder(
        &[
            "check",
            "--deny",
            "deny",
            "--registry",
            &reg.repo(),
            "bin/other",
        ],
        ship.path(),
        &cache,
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
}

#[test]
fn registry_faults_one_line_nothing_cached() {
    let (t, store) = recorded_prog();
    let prog = t.join("prog");
    let cache = t.join("cache");
    let objects = |c: &Path| {
        files_below(c)
            .into_iter()
            .filter(|f| f.to_string_lossy().contains("/objects/"))
            .count()
    };
    t.write("deny", "0000000000000000000000000000000000000000\n");

    // registry down
    let down = format!("127.0.0.1:{}/graphs", free_port());
    let o = responder(
        &["check", "--deny", "deny", "--registry", &down, "prog"],
        t.path(),
        &cache,
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let line = err(&o);
    assert!(
        line.lines()
            .any(|l| l.contains(&down) && l.contains("onnect")),
        "{line}"
    );
    assert_eq!(objects(&cache), 0);

    // a blob altered inside the registry's storage
    let reg = Registry::start(None);
    let pushed = run_ok(
        omnishim(&["push", "--store"])
            .arg(&store)
            .arg(reg.repo())
            .arg(&prog),
    );
    let tag = String::from_utf8_lossy(&pushed.stdout)
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let man = run_ok(Command::new(need("curl")).args([
        "-sf",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &format!("http://{}/v2/graphs/manifests/{tag}", reg.addr),
    ]))
    .stdout;
    let v: serde_json::Value = serde_json::from_slice(&man).unwrap();
    let layer = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["mediaType"] == "application/vnd.omnibor.manifest.v1+text")
        .unwrap();
    let digest = layer["digest"].as_str().unwrap();
    let f = reg.blob_file(digest);
    let mut b = std::fs::read(&f).unwrap();
    let last = b.len() - 2;
    b[last] = if b[last] == b'0' { b'1' } else { b'0' };
    std::fs::write(&f, &b).unwrap();
    let o = responder(&["pull", &reg.repo(), "prog"], t.path(), &cache)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let e = err(&o);
    assert!(
        e.lines()
            .any(|l| l.contains("rejected") && l.contains(&digest[7..19])),
        "{e}"
    );
    assert_eq!(
        objects(&cache),
        0,
        "a rejected graph left objects in the cache"
    );
    // truncated
    std::fs::write(&f, &b[..b.len() / 2]).unwrap();
    let o = responder(
        &["check", "--deny", "deny", "--registry", &reg.repo(), "prog"],
        t.path(),
        &cache,
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("rejected"), "{}", err(&o));
    assert_eq!(objects(&cache), 0);
    drop(reg);

    // 401 without credentials; the credentials from a DOCKER_CONFIG make it pass
    let reg = Registry::start(Some(("builder", "s3cret")));
    let o = omnishim(&["push", "--store"])
        .arg(&store)
        .arg(reg.repo())
        .arg(&prog)
        .env("DOCKER_CONFIG", t.join("none"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("401"), "{}", err(&o));
    assert_eq!(err(&o).lines().count(), 1, "{}", err(&o));
    let dc = t.join("docker");
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("builder:s3cret");
    t.write(
        "docker/config.json",
        format!("{{\"auths\":{{\"{}\":{{\"auth\":\"{auth}\"}}}}}}", reg.addr),
    );
    run_ok(
        omnishim(&["push", "--store"])
            .arg(&store)
            .arg(reg.repo())
            .arg(&prog)
            .env("DOCKER_CONFIG", &dc),
    );
    let mut c = responder(
        &["resolve", "--sources", "--registry", &reg.repo(), "prog"],
        t.path(),
        &t.join("cache2"),
    );
    c.env("DOCKER_CONFIG", &dc);
    assert_eq!(
        String::from_utf8_lossy(&run_ok(&mut c).stdout),
        sources(&store, &prog)
    );
}

/// A fake docker credential helper `docker-credential-NAME` in `dir`: the script's body
/// after it has read the registry host from stdin into `$host` (and noted it in NAME.asked).
fn cred_helper(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(format!("docker-credential-{name}"));
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 9\nhost=$(cat)\necho \"$host\" >> {}\n{body}\n",
            dir.join(format!("{name}.asked")).display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn docker_credential_helpers_give_the_credentials() {
    let (t, store) = recorded_prog();
    let prog = t.join("prog");
    let reg = Registry::start(Some(("builder", "s3cret")));
    let bin = t.join("bin");
    cred_helper(
        &bin,
        "omnitest",
        r#"printf '{"ServerURL":"%s","Username":"builder","Secret":"s3cret"}' "$host""#,
    );
    cred_helper(&bin, "omnibroken", "echo 'keychain locked' >&2; exit 1");
    cred_helper(
        &bin,
        "omniempty",
        "echo 'credentials not found in native keychain'; exit 1",
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let push = |config: String| {
        let dc = t.join("docker");
        t.write("docker/config.json", config);
        omnishim(&["push", "--store"])
            .arg(&store)
            .arg(reg.repo())
            .arg(&prog)
            .env("DOCKER_CONFIG", &dc)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    // credHelpers for this registry, and credsStore for every registry: the helper is asked
    // for this registry's host, and its answer logs in
    for (config, asked) in [
        (
            format!(r#"{{"credHelpers":{{"{}":"omnitest"}}}}"#, reg.addr),
            1,
        ),
        (r#"{"auths":{},"credsStore":"omnitest"}"#.to_string(), 2),
    ] {
        let o = push(config);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        let got = std::fs::read_to_string(bin.join("omnitest.asked")).unwrap();
        assert_eq!(got, format!("{}\n", reg.addr).repeat(asked));
    }
    // a helper that fails: one line naming it and what it said, exit 2
    let o = push(format!(
        r#"{{"credHelpers":{{"{}":"omnibroken"}}}}"#,
        reg.addr
    ));
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let e = err(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("docker-credential-omnibroken get") && e.contains("keychain locked"),
        "{e}"
    );
    // a helper that is not there: one line
    let o = push(r#"{"credsStore":"omnimissing"}"#.to_string());
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let e = err(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("docker-credential-omnimissing"), "{e}");
    // a helper holding nothing for the host: anonymous, so the registry's 401
    let o = push(r#"{"credsStore":"omniempty"}"#.to_string());
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("401"), "{}", err(&o));
    assert_eq!(
        std::fs::read_to_string(bin.join("omniempty.asked")).unwrap(),
        format!("{}\n", reg.addr)
    );
}

#[test]
fn registry_follows_shared_libraries_and_finds_archives_by_content() {
    let reg = Registry::start(None);
    let t = Tmp::new();
    let store = t.join("store");
    t.write("a.c", "int a(void){return 1;}\n");
    t.write("m.c", "int a(void);\nint main(void){return a()-1;}\n");
    let cc = |prog: &str, args: &[&str]| {
        run_ok(shimmed(&t, prog, &store).current_dir(t.path()).args(args));
    };
    cc("omnibor-cc", &["-fPIC", "-c", "a.c"]);
    cc("omnibor-cc", &["-shared", "a.o", "-o", "libfoo.so"]);
    cc("omnibor-cc", &["m.c", "-L.", "-lfoo", "-o", "prog"]);
    cc("omnibor-ar", &["rcs", "liba.a", "a.o"]);
    // each file its own graph; the program's names the library only through its record
    let o = run_ok(
        omnishim(&["push", "--store"])
            .arg(&store)
            .arg(reg.repo())
            .args(["prog", "libfoo.so", "liba.a"])
            .current_dir(t.path()),
    );
    let tags = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        tags.contains("liba.a  ") && tags.contains(":artifact-sha256-"),
        "{tags}"
    );
    let ship = Tmp::new();
    for f in ["prog", "libfoo.so", "liba.a"] {
        std::fs::copy(t.join(f), ship.join(f)).unwrap();
    }
    let a_id = stdout(omnishim(&["id", "--hash", "sha1"]).arg(t.join("a.c")));
    ship.write(
        "deny",
        format!("{} bad\n", a_id.split_whitespace().next().unwrap()),
    );
    let cache = ship.join("cache");
    let check = |extra: &[&str], f: &str| {
        let mut args = vec!["check", "--deny", "deny", "--registry"];
        let repo = reg.repo();
        args.push(&repo);
        args.extend_from_slice(extra);
        args.push(f);
        responder(&args, ship.path(), &cache).output().unwrap()
    };
    let o = check(&[], "prog");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = check(&["--follow-dynamic"], "prog");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("libfoo.so"));
    // an archive has no note: its graph is found by its own content ID
    let o = run_ok(&mut responder(
        &["resolve", "--sources", "--registry", &reg.repo(), "liba.a"],
        ship.path(),
        &cache,
    ));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        sources(&store, &t.join("liba.a"))
    );
}

/// The uploaded and total blob counts of a push, from its summary line.
fn push_counts(o: &Output) -> (usize, usize) {
    let e = err(o);
    let line = e
        .lines()
        .rev()
        .find(|l| l.contains(" blobs ("))
        .unwrap_or_else(|| panic!("{e}"));
    let num = |after: &str| -> usize {
        let i = line.find(after).unwrap();
        line[..i].rsplit(' ').next().unwrap().parse().unwrap()
    };
    (num(" uploaded"), num(" blobs ("))
}

/// Issue 16's end-to-end goal: xz built unpatched and patched and zlib, their programs and
/// libraries pushed; a machine with only copies of the files and no store answers from the
/// registry alone.
#[test]
fn xz_and_zlib_graphs_answer_from_the_registry_alone() {
    use crate::corpus::{corpus, wrapped_build};
    let t = Tmp::new();
    let build = |name: &str, pkg: &str, orig: bool, script: &str| -> (PathBuf, PathBuf) {
        let src = t.join(name);
        corpus(pkg, orig, &src);
        let store = t.join(&format!("{name}.bom"));
        wrapped_build(&src, &store, script);
        (src, store)
    };
    // the xz builds are the suite's shared ones (made once, read by several tests)
    let (xo, xn) = (crate::builds::xz(false), crate::builds::xz(true));
    let (old, old_store) = (xo.src.clone(), xo.store.clone());
    let (new, new_store) = (xn.src.clone(), xn.store.clone());
    let (zlib, zlib_store) = build(
        "zlib",
        "zlib",
        false,
        "./configure >/dev/null && make -j2 >/dev/null",
    );
    let lib = "src/liblzma/.libs/liblzma.so.5.4.1";
    let prog = "src/xz/.libs/xz";

    let reg = Registry::start(None);
    let push = |store: &Path, files: &[PathBuf]| {
        let t0 = std::time::Instant::now();
        let o = run_ok(
            omnishim(&["push", "--store"])
                .arg(store)
                .arg(reg.repo())
                .args(files),
        );
        (o, t0.elapsed())
    };
    let old_files = [old.join(lib), old.join(prog)];
    let (o, took) = push(&old_store, &old_files);
    let (up, total) = push_counts(&o);
    eprintln!(
        "figures: push of xz (liblzma + xz): {}; {:.2} s wall",
        err(&o).trim(),
        took.as_secs_f64()
    );
    assert!(up > 100 && up <= total + 1, "{}", err(&o));
    // the same graphs again: no blob uploaded
    let before = reg.uploads();
    let (o, _) = push(&old_store, &old_files);
    assert_eq!(push_counts(&o).0, 0, "{}", err(&o));
    assert_eq!(reg.uploads(), before);
    // the patched build, then zlib: only what is new is uploaded (the registry's count of
    // upload starts equals what the push says it uploaded)
    let (o, _) = push(&new_store, &[new.join(lib), new.join(prog)]);
    let (up_new, total_new) = push_counts(&o);
    assert!(
        up_new < total_new,
        "the patched build shares manifests with the first: {}",
        err(&o)
    );
    let before = reg.uploads();
    let (o, _) = push(
        &zlib_store,
        &[zlib.join("libz.so.1.2.13"), zlib.join("minigzip")],
    );
    let (up_z, _) = push_counts(&o);
    assert!(up_z > 0);
    // (the empty config is there already)
    assert_eq!(reg.uploads() - before, up_z, "{}", err(&o));

    // the responder: copies of the files, no store anywhere, a fresh cache
    let ship = Tmp::new();
    for (dir, src) in [("old", &old), ("new", &new)] {
        std::fs::create_dir(ship.join(dir)).unwrap();
        std::fs::copy(src.join(lib), ship.join(dir).join("liblzma.so.5.4.1")).unwrap();
        std::fs::copy(src.join(prog), ship.join(dir).join("xz")).unwrap();
    }
    std::fs::copy(zlib.join("libz.so.1.2.13"), ship.join("libz.so.1.2.13")).unwrap();
    let blob = stdout(
        Command::new(need("git"))
            .arg("hash-object")
            .arg(old.join("src/liblzma/common/stream_decoder_mt.c")),
    );
    ship.write("deny", format!("{} CVE-2025-31115\n", blob.trim()));
    let cache = ship.join("cache");
    let repo = reg.repo();
    let check = |extra: &[&str], f: &str| {
        let mut args = vec!["check", "--deny", "deny", "--registry", repo.as_str()];
        args.extend_from_slice(extra);
        args.push(f);
        responder(&args, ship.path(), &cache).output().unwrap()
    };
    let t0 = std::time::Instant::now();
    let o = check(&[], "old/liblzma.so.5.4.1");
    eprintln!(
        "figures: first check --registry of liblzma (pull into an empty cache + walk): {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("CVE-2025-31115"));
    let o = check(&[], "new/liblzma.so.5.4.1");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = check(&[], "old/xz");
    assert_eq!(
        o.status.code(),
        Some(0),
        "xz links liblzma dynamically: {}",
        err(&o)
    );
    let o = check(&["--follow-dynamic"], "old/xz");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let o = check(&["--follow-dynamic"], "new/xz");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = check(&[], "libz.so.1.2.13");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = run_ok(&mut responder(
        &[
            "resolve",
            "--sources",
            "--registry",
            &repo,
            "old/liblzma.so.5.4.1",
        ],
        ship.path(),
        // a fresh cache: one that also holds the patched build's graph knows the files both
        // builds share by both builds' paths
        &ship.join("cache-resolve"),
    ));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        sources(&old_store, &old.join(lib))
    );
    // pull figures: the whole of xz's graph into a fresh store
    let t0 = std::time::Instant::now();
    let o = run_ok(
        responder(&["pull", "--store", "fresh", &repo], ship.path(), &cache)
            .args(["old/liblzma.so.5.4.1", "old/xz"]),
    );
    eprintln!(
        "figures: pull of xz (liblzma + xz): {}; {:.2} s wall",
        err(&o).trim(),
        t0.elapsed().as_secs_f64()
    );
}
