//! Issue 15: a store nobody can turn against its user. Planted symlinks and foreign files are
//! refused (never followed, never written through), modes are git's, and `note embed` keeps a
//! file's owner and mode and refuses what it may not write.

use crate::util::*;
use omnishim::elf;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NOBODY: [&str; 3] = ["--reuid=65534", "--regid=65534", "--clear-groups"];

/// Make the test's directory traversable by another user.
fn open_up(t: &Tmp) {
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The project: b.c in libb.a (made by omnibor-ar), main.c compiled and linked with it in one
/// step (so the link pulls a member and links libc: members and dynamic records).
fn write_project(t: &Tmp) -> PathBuf {
    let p = t.join("proj");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("b.c"), "int b(void){return 2;}\n").unwrap();
    std::fs::write(
        p.join("main.c"),
        "int b(void);\nint main(void){return b()-2;}\n",
    )
    .unwrap();
    p
}

/// The three steps of the build, each run through the shims; their outputs.
fn build(t: &Tmp, proj: &Path, store: &Path, wrap: &[&str]) -> Vec<Output> {
    for f in ["b.o", "libb.a", "prog"] {
        let _ = std::fs::remove_file(proj.join(f));
    }
    let steps: [(&str, &[&str]); 3] = [
        ("omnibor-cc", &["-c", "b.c", "-o", "b.o"]),
        ("omnibor-ar", &["rcs", "libb.a", "b.o"]),
        ("omnibor-cc", &["main.c", "libb.a", "-o", "prog"]),
    ];
    steps
        .iter()
        .map(|(tool, args)| {
            let mut c = if wrap.is_empty() {
                shimmed(t, tool, store)
            } else {
                let mut c = shimmed(t, wrap[0], store);
                c.args(&wrap[1..]).arg(tool);
                c
            };
            let out = c.current_dir(proj).args(*args).output().unwrap();
            assert!(
                out.status.success(),
                "{tool} {args:?}: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            out
        })
        .collect()
}

/// Everything under a path, never followed: relative name -> (type, mode, bytes).
fn snapshot(root: &Path) -> BTreeMap<String, (String, u32, Vec<u8>)> {
    fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, (String, u32, Vec<u8>)>) {
        let m = std::fs::symlink_metadata(p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let ft = m.file_type();
        if ft.is_dir() {
            out.insert(rel, ("dir".into(), m.mode(), Vec::new()));
            let mut names: Vec<PathBuf> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for n in names {
                walk(root, &n, out);
            }
        } else if ft.is_file() {
            out.insert(rel, ("file".into(), m.mode(), std::fs::read(p).unwrap()));
        } else {
            out.insert(rel, (format!("{ft:?}"), m.mode(), Vec::new()));
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Every entry of a store, relative to its root, with whether it is a directory.
fn entries(store: &Path) -> Vec<(String, bool)> {
    snapshot(store)
        .into_iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, (ty, _, _))| (k, ty == "dir"))
        .collect()
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "{}",
        p.display()
    );
}

/// Every store path a shim writes or reads, planted as a symlink to an outside file or
/// directory (or as a FIFO, or a hard link to an outside file where the store appends): the
/// build still succeeds with at most one warning line per step (at least one in all, naming
/// the refused path), nothing outside changes, the read commands change nothing either,
/// `store verify` flags it and `manifest show` refuses a planted object.
#[test]
fn planted_symlinks_are_refused_and_nothing_outside_changes() {
    need("gcc");
    need("ar");
    let t = Tmp::new();
    let proj = write_project(&t);
    // a reference build tells which directories and objects a build makes
    let reference = t.join("reference");
    build(&t, &proj, &reference, &[]);
    let prog_note = elf::read_note_file(&proj.join("prog")).unwrap();
    let prog_manifest = prog_note.sha1.expect("prog has a note");
    let ref_entries = entries(&reference);
    let under = |prefix: &str, dirs: bool| -> Vec<String> {
        ref_entries
            .iter()
            .filter(|(k, d)| {
                *d == dirs
                    && k.starts_with(prefix)
                    && !k[prefix.len()..].contains('/')
                    && k.len() > prefix.len()
            })
            .map(|(k, _)| k.clone())
            .collect()
    };
    let obj_rel = format!(
        "objects/gitoid_blob_sha1/{}/{}",
        &prog_manifest.hex()[..2],
        &prog_manifest.hex()[2..]
    );
    let m = "metadata/omnishim/";
    let shards: Vec<String> = (0..64).map(|i| format!("{m}hashcache/{i:02x}")).collect();
    let paths: Vec<String> = (0..16).map(|i| format!("{m}paths/{i:x}")).collect();
    // (what, planted paths, a directory?, a FIFO instead of a symlink?)
    let cases: Vec<(&str, Vec<String>, bool, &str)> = vec![
        ("every hash-cache shard", shards, false, "symlink"),
        ("steps.log", vec![format!("{m}steps.log")], false, "symlink"),
        (
            "steps.log as a FIFO",
            vec![format!("{m}steps.log")],
            false,
            "fifo",
        ),
        ("every path-index shard", paths.clone(), false, "symlink"),
        (
            "every path-index shard as a hard link",
            paths,
            false,
            "hardlink",
        ),
        (
            "steps.log as a hard link",
            vec![format!("{m}steps.log")],
            false,
            "hardlink",
        ),
        (
            "the members lock",
            vec![format!("{m}members.lock")],
            false,
            "symlink",
        ),
        (
            "the object of prog's manifest",
            vec![obj_rel.clone()],
            false,
            "symlink",
        ),
        (
            "every object directory",
            under("objects/gitoid_blob_sha1/", true),
            true,
            "symlink",
        ),
        (
            "every target index directory",
            under(&format!("{m}targets/sha1/"), true),
            true,
            "symlink",
        ),
        (
            "every members directory",
            under(&format!("{m}members/"), true),
            true,
            "symlink",
        ),
        (
            "every dynamic directory",
            under(&format!("{m}dynamic/"), true),
            true,
            "symlink",
        ),
        (
            "the hash-cache directory",
            vec![format!("{m}hashcache")],
            true,
            "symlink",
        ),
        (
            "the target index",
            vec![format!("{m}targets")],
            true,
            "symlink",
        ),
        ("the path index", vec![format!("{m}paths")], true, "symlink"),
        (
            "the tool's metadata directory",
            vec![m.trim_end_matches('/').to_string()],
            true,
            "symlink",
        ),
        (
            "the objects directory",
            vec!["objects".into()],
            true,
            "symlink",
        ),
    ];
    for (what, planted, is_dir, how) in &cases {
        assert!(!planted.is_empty(), "{what}: the reference build made none");
        let case = t.join(&format!("case-{}", what.replace(' ', "-")));
        let store = case.join("store");
        let outside = case.join("outside");
        std::fs::create_dir_all(outside.join("dir")).unwrap();
        // more than the hash cache's 1 MiB cap: a shard rewrite must not truncate it
        let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(outside.join("file"), &big).unwrap();
        std::fs::write(outside.join("dir/keep"), b"keep me\n").unwrap();
        for p in planted {
            let at = store.join(p);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            let target = outside.join(if *is_dir { "dir" } else { "file" });
            match *how {
                "fifo" => mkfifo(&at),
                "hardlink" => std::fs::hard_link(target, &at).unwrap(),
                _ => std::os::unix::fs::symlink(target, &at).unwrap(),
            }
        }
        let before = snapshot(&outside);
        let outs = build(&t, &proj, &store, &[]);
        let mut warned = Vec::new();
        for o in &outs {
            let err = String::from_utf8_lossy(&o.stderr);
            let lines: Vec<&str> = err.lines().collect();
            assert!(lines.len() <= 1, "{what}: more than one line: {err}");
            for l in lines {
                assert!(l.starts_with("omnishim: warning: "), "{what}: {l}");
                warned.push(l.to_string());
            }
        }
        let named = |l: &String| {
            l.contains("refused")
                && planted.iter().any(|p| {
                    l.contains(&store.join(p).display().to_string())
                        || l.contains(&format!("{}:", store.join(p).display()))
                })
        };
        assert!(
            warned.iter().any(named),
            "{what}: no warning names the refused path: {warned:?}"
        );
        // the read commands
        let deny = case.join("deny.txt");
        let b_id = omnishim::gitoid::ids_of_file(&proj.join("b.c")).unwrap();
        std::fs::write(&deny, format!("{} CVE-TEST\n", b_id.sha1.hex())).unwrap();
        for args in [
            vec!["resolve", "--sources"],
            vec!["check", "--deny", deny.to_str().unwrap()],
        ] {
            let o = omnishim(&args)
                .arg("--store")
                .arg(&store)
                .arg(proj.join("prog"))
                .output()
                .unwrap();
            assert_ne!(o.status.code(), Some(101), "{what}: {args:?} panicked");
        }
        let show = omnishim(&["manifest", "show", &prog_manifest.uri(), "--store"])
            .arg(&store)
            .output()
            .unwrap();
        if planted.iter().any(|p| obj_rel.starts_with(p.as_str())) {
            assert!(!show.status.success(), "{what}: manifest show followed it");
            assert!(show.stdout.is_empty(), "{what}");
            let err = String::from_utf8_lossy(&show.stderr);
            assert!(
                err.contains("refused") && err.lines().count() == 1,
                "{what}: {err}"
            );
        }
        // a strict build fails on the refusal
        if *what == "steps.log" {
            let _ = std::fs::remove_file(proj.join("b.o"));
            let o = shimmed(&t, "omnibor-cc", &store)
                .env("OMNIBOR_STRICT", "1")
                .current_dir(&proj)
                .args(["-c", "b.c", "-o", "b.o"])
                .output()
                .unwrap();
            assert!(!o.status.success(), "strict: {what}");
            assert!(
                String::from_utf8_lossy(&o.stderr).starts_with("omnishim: error: "),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert!(
            snapshot(&outside) == before,
            "{what}: the outside tree changed"
        );
        let v = omnishim(&["store", "verify", "--store"])
            .arg(&store)
            .output()
            .unwrap();
        assert_eq!(v.status.code(), Some(1), "{what}: store verify");
        let report = String::from_utf8_lossy(&v.stdout);
        for p in planted {
            let line = format!("{}: a ", store.join(p).display());
            assert!(
                report.contains(&line),
                "{what}: verify does not flag {p}: {report}"
            );
        }
    }
}

/// `omnishim run` keeps its shim links in the store: a planted symlink there is not followed
/// (the links never land outside) and `store verify` flags it.
#[test]
fn run_does_not_make_its_shims_through_a_planted_symlink() {
    let t = Tmp::new();
    let store = t.join("store");
    let outside = t.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep"), b"keep me\n").unwrap();
    std::fs::create_dir_all(store.join("metadata/omnishim")).unwrap();
    std::os::unix::fs::symlink(&outside, store.join("metadata/omnishim/shims")).unwrap();
    let before = snapshot(&outside);
    let o = omnishim(&["run", "--store"])
        .arg(&store)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(101));
    assert!(
        snapshot(&outside) == before,
        "shim links made outside the store"
    );
    let v = omnishim(&["store", "verify", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&v.stdout).contains("metadata/omnishim/shims: a symbolic link"));
}

/// A store written under umask 022 is readable by everyone (objects 0444, other files 0644,
/// directories 0755): another user resolves a binary's sources and finds a denied file.
/// `store verify` flags a writable object and a file writable by everyone.
#[test]
fn umask_022_store_is_readable_by_another_user() {
    need("gcc");
    need("ar");
    need("setpriv");
    let t = Tmp::new();
    open_up(&t);
    let proj = write_project(&t);
    let store = t.join("store");
    build(
        &t,
        &proj,
        &store,
        &["sh", "-c", "umask 022; exec \"$0\" \"$@\""],
    );
    for (rel, (ty, mode, _)) in snapshot(&store) {
        let mode = mode & 0o7777;
        let want = if ty == "dir" {
            0o755
        } else if rel.starts_with("objects/") {
            0o444
        } else {
            0o644
        };
        assert_eq!(mode, want, "{rel}: {ty} mode {mode:04o}");
    }
    let b_id = omnishim::gitoid::ids_of_file(&proj.join("b.c")).unwrap();
    let deny = t.write("deny.txt", format!("{} CVE-TEST-b\n", b_id.sha1.hex()));
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new(need("setpriv"));
        c.args(NOBODY)
            .arg(bin())
            .args(args)
            .arg("--store")
            .arg(&store)
            .arg(proj.join("prog"))
            .env_remove("OMNIBOR_DIR");
        c.output().unwrap()
    };
    let o = as_nobody(&["resolve", "--sources"]);
    let srcs = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "resolve as nobody: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for f in ["main.c", "b.c"] {
        assert!(
            srcs.contains(&proj.join(f).display().to_string()),
            "{f}: {srcs}"
        );
    }
    let o = as_nobody(&["check", "--deny", deny.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "check as nobody: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("CVE-TEST-b"));
    // nobody's reads added nothing to the store
    let v = omnishim(&["store", "verify", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    // wrong modes are problems
    let prog_manifest = elf::read_note_file(&proj.join("prog"))
        .unwrap()
        .sha1
        .unwrap();
    let obj = omnishim::store::Store::at(&store).object_path(&prog_manifest);
    std::fs::set_permissions(&obj, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = store.join("metadata/omnishim/steps.log");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
    let v = omnishim(&["store", "verify", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(1));
    let report = String::from_utf8_lossy(&v.stdout);
    assert!(
        report.contains(&format!("{}: a writable object", obj.display())),
        "{report}"
    );
    assert!(
        report.contains(&format!("{}: a file writable by everyone", log.display())),
        "{report}"
    );
}

/// `OMNIBOR_SHARED=group`: the group gets what the owner has (and directories are
/// set-group-ID), whatever the umask; objects stay read-only.
#[test]
fn group_shared_store_under_umask_077() {
    need("gcc");
    let t = Tmp::new();
    let proj = write_project(&t);
    let store = t.join("store");
    run_ok(
        shimmed(&t, "sh", &store)
            .env("OMNIBOR_SHARED", "group")
            .current_dir(&proj)
            .args(["-c", "umask 077; exec omnibor-cc -c b.c -o b.o"]),
    );
    let snap = snapshot(&store);
    assert!(snap
        .keys()
        .any(|k| k.starts_with("objects/gitoid_blob_sha1/")));
    for (rel, (ty, mode, _)) in snap {
        let mode = mode & 0o7777;
        let want = if ty == "dir" {
            0o2770
        } else if rel.starts_with("objects/") {
            0o440
        } else {
            0o660
        };
        assert_eq!(mode, want, "{rel:?}: {ty} mode {mode:04o}");
    }
}

/// `note embed` as another user on a root-owned 0444 file in a directory everyone may write:
/// refused in one line, the file unchanged (bytes, owner, mode). Root embeds into a file
/// owned by someone else without taking it over, and a read-only file keeps its mode.
#[test]
fn note_embed_keeps_owner_and_mode_and_refuses_what_it_may_not_write() {
    need("gcc");
    need("setpriv");
    let t = Tmp::new();
    open_up(&t);
    let dir = t.join("shared");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let src = t.write("x.c", "int x(void){return 1;}\n");
    let obj = dir.join("x.o");
    run_ok(
        Command::new(need("gcc"))
            .args(["-c", "-o"])
            .arg(&obj)
            .arg(&src),
    );
    std::fs::set_permissions(&obj, std::fs::Permissions::from_mode(0o444)).unwrap();
    let ids = omnishim::gitoid::ids_of_bytes(b"some manifest");
    let embed = |file: &Path, who: &[&str]| {
        let mut c = if who.is_empty() {
            Command::new(bin())
        } else {
            let mut c = Command::new(need("setpriv"));
            c.args(who).arg(bin());
            c
        };
        c.args(["note", "embed"])
            .arg(file)
            .args([
                "--manifest",
                &ids.sha1.uri(),
                "--manifest",
                &ids.sha256.uri(),
            ])
            .output()
            .unwrap()
    };
    let state = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (
            std::fs::read(p).unwrap(),
            m.uid(),
            m.gid(),
            m.mode(),
            m.ino(),
        )
    };
    let before = state(&obj);
    let o = embed(&obj, &NOBODY);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "embedded as nobody: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&obj.display().to_string()), "{err}");
    assert!(state(&obj) == before, "the file changed");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "a temporary file was left behind"
    );
    // root may write it: the note goes in, owner and mode stay
    run_ok(Command::new(bin()).args(["note", "embed"]).arg(&obj).args([
        "--manifest",
        &ids.sha1.uri(),
        "--manifest",
        &ids.sha256.uri(),
    ]));
    let after = state(&obj);
    assert_eq!((after.1, after.2, after.3), (before.1, before.2, before.3));
    assert_eq!(elf::read_note_file(&obj).unwrap().sha1, Some(ids.sha1));
    // root embedding into nobody's file leaves it nobody's
    let theirs = dir.join("theirs.o");
    std::fs::write(&theirs, &before.0).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o640)).unwrap();
    let o = embed(&theirs, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = std::fs::metadata(&theirs).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (65534, 65534, 0o640));
    assert_eq!(elf::read_note_file(&theirs).unwrap().sha1, Some(ids.sha1));
}
