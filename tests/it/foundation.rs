//! Issue 2: gitoids against git, manifests against the omnibor crate, the store under load.

use crate::util::*;
use omnishim::gitoid::{self, Alg, Id};
use omnishim::manifest::Manifest;
use omnishim::store::Store;
use std::path::{Path, PathBuf};
use std::process::Command;

fn git_hash(repo: &Path, file: &Path) -> String {
    stdout(
        Command::new(need("git"))
            .current_dir(repo)
            .arg("hash-object")
            .arg(file),
    )
    .trim()
    .to_string()
}

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn gitoids_equal_git_hash_object() {
    let t = Tmp::new();
    let sha256_repo = t.join("repo256");
    run_ok(
        Command::new(need("git"))
            .args(["init", "-q", "--object-format=sha256"])
            .arg(&sha256_repo),
    );
    let sha1_repo = t.join("repo1");
    run_ok(
        Command::new("git")
            .args(["init", "-q", "--object-format=sha1"])
            .arg(&sha1_repo),
    );
    let mut files: Vec<PathBuf> = vec![
        t.write("empty", b""),
        t.write("hello", b"hello world"),
        t.write("cr", b"a\rb\r"),
        t.write("crlf", b"line one\r\nline two\r\n\r\n"),
        t.write("nul", b"\0\0abc\0\r\n\0"),
        t.write("k8", pseudo_random(8192, 1)),
        t.write("k8m1", pseudo_random(8191, 2)),
        t.write("k8p1", pseudo_random(8193, 3)),
        t.write("crlf_edge", {
            // a CR on a read-buffer boundary (what the omnibor crate miscounts)
            let mut v = vec![b'x'; 8191];
            v.extend_from_slice(b"\r\n\r");
            v
        }),
        t.write("r50m", pseudo_random(50 << 20, 4)),
    ];
    files.push(std::fs::canonicalize(need("gcc")).unwrap());
    for f in &files {
        let ours = gitoid::ids_of_file(f).unwrap();
        assert_eq!(
            ours.sha1.hex(),
            git_hash(&sha1_repo, f),
            "sha1 of {}",
            f.display()
        );
        assert_eq!(
            ours.sha256.hex(),
            git_hash(&sha256_repo, f),
            "sha256 of {}",
            f.display()
        );
        // The CLI prints the same, one algorithm at a time too.
        let out = stdout(omnishim(&["id", "--hash", "sha256"]).arg(f));
        assert_eq!(out, format!("{}  {}\n", ours.sha256.uri(), f.display()));
    }
}

#[test]
fn id_recurses_and_prints_json() {
    let t = Tmp::new();
    t.write("d/a", b"hello world");
    t.write("d/sub/b", b"");
    let out = stdout(omnishim(&["id"]).arg(t.join("d")));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("gitoid:blob:sha1:95d09f2b10159347eece71399a7e2e907ea3df4f  "));
    assert!(lines[3].starts_with(
        "gitoid:blob:sha256:473a0f4c3be8a93681a267e3b1e9a7dcda1185436fe141f7749120a303721813  "
    ));
    let json: serde_json::Value = serde_json::from_str(&stdout(
        omnishim(&["id", "--json", "--hash", "sha1"]).arg(t.join("d")),
    ))
    .unwrap();
    assert_eq!(
        json[1]["sha1"],
        "gitoid:blob:sha1:e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    );
    assert!(json[1].get("sha256").is_none());
}

#[test]
fn id_errors_are_one_line_naming_the_path() {
    let t = Tmp::new();
    let missing = t.join("no/such/file");
    // A socket cannot be opened for reading, even by root.
    let sock = t.join("sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    for p in [&missing, &sock] {
        let out = omnishim(&["id"]).arg(p).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&p.display().to_string()), "{err}");
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{err}"
        );
    }
}

#[test]
fn manifests_match_the_omnibor_crate() {
    use omnibor::hash_algorithm::Sha256;
    let t = Tmp::new();
    let inputs: Vec<PathBuf> = (0..20)
        .map(|i| t.write(&format!("in{i}"), pseudo_random(100 * i + 1, i as u64 + 7)))
        .collect();
    let mut m = Manifest::new(Alg::Sha256);
    for (i, p) in inputs.iter().enumerate() {
        let id = gitoid::ids_of_file(p).unwrap().sha256;
        let mf = (i % 3 == 0).then(|| gitoid::id_of_bytes(Alg::Sha256, format!("m{i}").as_bytes()));
        m.add(id, mf);
    }
    let path = t.write("manifest", m.to_bytes());
    let theirs = omnibor::InputManifest::<Sha256>::from_path(&path).unwrap();
    assert_eq!(theirs.as_bytes(), m.to_bytes());
    assert_eq!(theirs.relations().len(), 20);
    let their_id = omnibor::ArtifactIdBuilder::with_rustcrypto().identify_manifest(&theirs);
    assert_eq!(their_id.as_hex(), m.id().hex());
    // and the FORMAT.md vector through the crate
    let mut v = Manifest::new(Alg::Sha256);
    v.add(gitoid::ids_of_bytes(b"").sha256, None);
    v.add(gitoid::ids_of_bytes(b"hello world").sha256, None);
    let vp = t.write("vector", v.to_bytes());
    let theirs = omnibor::InputManifest::<Sha256>::from_path(&vp).unwrap();
    assert_eq!(
        omnibor::ArtifactIdBuilder::with_rustcrypto()
            .identify_manifest(&theirs)
            .as_hex(),
        "7087d342fc84220f19718837698f49cd1c0bde1c25c6282b9cbeaa7ac7f3fccb"
    );
}

#[test]
fn sixty_four_writers_one_store() {
    let t = Tmp::new();
    let store = t.join("store");
    let inputs: Vec<PathBuf> = (0..16)
        .map(|i| t.write(&format!("f{i}"), pseudo_random(5000 + i, i as u64 + 99)))
        .collect();
    // Process p writes 8 manifests: input windows starting at p%8 .. p%8+7, so every
    // manifest is written by many processes at once.
    let mut children = Vec::new();
    for p in 0..64usize {
        let mut script = String::new();
        for w in 0..8usize {
            let start = (p + w) % 8;
            let set: Vec<String> = inputs[start..start + 1 + (w % 4)]
                .iter()
                .map(|x| x.display().to_string())
                .collect();
            script.push_str(&format!(
                "\"$0\" manifest create --store {} {} || exit 1\n",
                store.display(),
                set.join(" ")
            ));
        }
        children.push(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg(bin())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    let mut expected = std::collections::BTreeSet::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        for l in String::from_utf8(out.stdout).unwrap().lines() {
            expected.insert(Id::from_uri(l).unwrap());
        }
    }
    // Same manifests computed in-process.
    let mut want = std::collections::BTreeSet::new();
    for start in 0..8 {
        for len in 1..=4 {
            for alg in Alg::ALL {
                let mut m = Manifest::new(alg);
                for f in &inputs[start..start + len] {
                    m.add(gitoid::ids_of_file(f).unwrap().get(alg), None);
                }
                want.insert(m.id());
            }
        }
    }
    assert_eq!(expected, want);
    run_ok(omnishim(&["store", "verify", "--store"]).arg(&store));
    // every manifest present exactly once, no temporaries left behind
    let mut found = Vec::new();
    for alg in Alg::ALL {
        let d = store.join(format!("objects/gitoid_blob_{alg}"));
        for sub in std::fs::read_dir(&d).unwrap() {
            for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
                let f = f.unwrap().path();
                let name = format!(
                    "{}{}",
                    f.parent().unwrap().file_name().unwrap().to_string_lossy(),
                    f.file_name().unwrap().to_string_lossy()
                );
                found.push(
                    Id::from_hex(&name).unwrap_or_else(|_| panic!("stray file {}", f.display())),
                );
            }
        }
    }
    found.sort();
    let want: Vec<Id> = want.into_iter().collect();
    assert_eq!(found, want);
    let s = Store::at(&store);
    for id in &want {
        assert_eq!(s.get_manifest(id).unwrap().id(), *id);
    }
}

#[test]
fn store_verify_finds_corruption_and_dangling_references() {
    let t = Tmp::new();
    let store = Store::at(t.join("s"));
    let a = gitoid::ids_of_bytes(b"a");
    let mut child = Manifest::new(Alg::Sha1);
    child.add(a.sha1, None);
    let cid = store.put_manifest(&child).unwrap();
    let mut parent = Manifest::new(Alg::Sha1);
    parent.add(gitoid::ids_of_bytes(b"b.o").sha1, Some(cid));
    let pid = store.put_manifest(&parent).unwrap();
    run_ok(omnishim(&["store", "verify", "--store"]).arg(store.root()));
    let shown = stdout(omnishim(&["manifest", "show", &pid.uri(), "--store"]).arg(store.root()));
    assert_eq!(shown.as_bytes(), parent.to_bytes());

    std::fs::remove_file(store.object_path(&cid)).unwrap();
    let out = omnishim(&["store", "verify", "--store"])
        .arg(store.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&cid.hex()));

    store.put_manifest(&child).unwrap();
    std::fs::write(store.object_path(&pid), b"gitoid:blob:sha1\n").unwrap();
    let out = omnishim(&["store", "verify", "--store"])
        .arg(store.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not to its name"));
}
