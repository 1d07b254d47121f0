//! Issue 5: direct linker and archiver steps (GNU ar, llvm-ar, ld.bfd, gold, lld).

use crate::util::*;
use omnishim::elf;
use omnishim::gitoid::{self, Id};
use omnishim::store::Store;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The archive's stored manifest inputs (sha1), found through the target index.
fn archive_manifest(store: &Path, archive: &Path) -> BTreeSet<Id> {
    let ids = gitoid::ids_of_file(archive).unwrap();
    let s = Store::at(store);
    let m = s
        .get_target(&ids.sha1)
        .unwrap_or_else(|| panic!("{} not in the target index", archive.display()));
    let m256 = s.get_target(&ids.sha256).unwrap();
    let inputs: BTreeSet<Id> = s.get_manifest(&m).unwrap().inputs.keys().copied().collect();
    assert_eq!(s.get_manifest(&m256).unwrap().inputs.len(), inputs.len());
    inputs
}

/// What `ar t` lists, as gitoids of the members' contents (`ar p`), or for a thin archive of
/// the files it refers to.
fn ar_t_members(arbin: &str, dir: &Path, archive: &str, thin: bool) -> BTreeSet<Id> {
    let names = stdout(
        Command::new(need(arbin))
            .current_dir(dir)
            .args(["t", archive]),
    );
    names
        .lines()
        .map(|n| {
            if thin {
                let p = if Path::new(n).is_absolute() {
                    n.into()
                } else {
                    dir.join(n)
                };
                gitoid::ids_of_file(&p).unwrap().sha1
            } else {
                let data =
                    run_ok(Command::new(arbin).current_dir(dir).args(["p", archive, n])).stdout;
                gitoid::ids_of_bytes(&data).sha1
            }
        })
        .collect()
}

fn objects(t: &Tmp) {
    for (n, body) in [
        ("a", "int a(void){return 1;}\n"),
        ("b", "int b(void){return 2;}\n"),
        ("c", "int c(void){return 3;}\n"),
    ] {
        t.write(&format!("{n}.c"), body);
        run_ok(
            shimmed(t, "omnibor-cc", &t.join("store"))
                .current_dir(t.path())
                .args(["-c", &format!("{n}.c")]),
        );
    }
    t.write("b2.c", "int b(void){return 22;}\n");
    run_ok(
        shimmed(t, "omnibor-cc", &t.join("store"))
            .current_dir(t.path())
            .args(["-c", "b2.c", "-o", "sub/b.o"])
            .env("X", "1"),
    );
}

#[test]
fn archives_step_by_step_with_gnu_ar_and_llvm_ar() {
    for arbin in ["ar", "llvm-ar"] {
        let t = Tmp::new();
        std::fs::create_dir_all(t.join("sub")).unwrap();
        objects(&t);
        let store = t.join("store");
        let ar = |args: &[&str]| {
            run_ok(
                shimmed(&t, "omnibor-ar", &store)
                    .current_dir(t.path())
                    .env("OMNIBOR_AR", arbin)
                    .args(args),
            );
        };
        let check = |archive: &str, thin: bool| {
            let ours = archive_manifest(&store, &t.join(archive));
            assert_eq!(
                ours,
                ar_t_members(arbin, t.path(), archive, thin),
                "{arbin} {archive}"
            );
            ours
        };
        ar(&["rcs", "one.a", "a.o", "b.o", "c.o"]);
        let one = check("one.a", false);
        // q then s, in steps
        ar(&["q", "steps.a", "a.o"]);
        ar(&["q", "steps.a", "b.o"]);
        ar(&["q", "steps.a", "c.o"]);
        ar(&["s", "steps.a"]);
        assert_eq!(
            check("steps.a", false),
            one,
            "{arbin}: step by step differs from one step"
        );
        // r replaces a member by name
        ar(&["rc", "rep.a", "a.o", "b.o"]);
        ar(&["r", "rep.a", "sub/b.o"]);
        let rep = check("rep.a", false);
        assert!(rep.contains(&gitoid::ids_of_file(&t.join("sub/b.o")).unwrap().sha1));
        assert!(!rep.contains(&gitoid::ids_of_file(&t.join("b.o")).unwrap().sha1));
        // d removes one
        ar(&["d", "one.a", "b.o"]);
        assert_eq!(check("one.a", false).len(), 2);
        // thin archives refer to the files
        ar(&["rcsT", "thin.a", "a.o", "sub/b.o"]);
        check("thin.a", true);
        // @file member lists
        t.write("members.rsp", "a.o\nc.o\n");
        ar(&["rcs", "rsp.a", "@members.rsp"]);
        assert_eq!(check("rsp.a", false).len(), 2);
        // deterministic or not, the members and so the manifest are the same
        ar(&["rcsD", "det.a", "a.o", "c.o"]);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        ar(&["rcsU", "undet.a", "a.o", "c.o"]);
        assert_eq!(check("det.a", false), check("undet.a", false));
        // the members carry their own manifests
        let s = Store::at(&store);
        let ids = gitoid::ids_of_file(&t.join("det.a")).unwrap();
        let m = s.get_manifest(&s.get_target(&ids.sha1).unwrap()).unwrap();
        assert!(
            m.inputs.values().all(|v| v.is_some()),
            "{arbin}: member without manifest"
        );
        // read-only operations record nothing
        let log_lines = std::fs::read_to_string(s.steps_log())
            .unwrap()
            .lines()
            .count();
        run_ok(
            shimmed(&t, "omnibor-ar", &store)
                .current_dir(t.path())
                .env("OMNIBOR_AR", arbin)
                .args(["t", "det.a"]),
        );
        assert_eq!(
            std::fs::read_to_string(s.steps_log())
                .unwrap()
                .lines()
                .count(),
            log_lines
        );
    }
}

#[test]
fn ld_r_then_link_reaches_both_sources() {
    for linker in ["ld.bfd", "ld.gold", "ld.lld"] {
        let t = Tmp::new();
        let store = t.join("store");
        std::fs::create_dir_all(t.join("sub")).unwrap();
        objects(&t);
        t.write(
            "main.c",
            "int a(void); int b(void);\nint main(void){return a()+b()-3;}\n",
        );
        run_ok(
            shimmed(&t, "omnibor-ld", &store)
                .current_dir(t.path())
                .env("OMNIBOR_LD", linker)
                .args(["-r", "a.o", "b.o", "-o", "ab.o"]),
        );
        // ab.o holds exactly one note, its own
        let ab = std::fs::read(t.join("ab.o")).unwrap();
        let own = elf::read_note(&ab).unwrap();
        crate::elf::check_readelf(
            "readelf",
            &t.join("ab.o"),
            &own.sha1.unwrap(),
            &own.sha256.unwrap(),
        );
        let m = Store::at(&store).get_manifest(&own.sha1.unwrap()).unwrap();
        let want: BTreeSet<Id> = ["a.o", "b.o"]
            .iter()
            .map(|f| gitoid::ids_of_file(&t.join(f)).unwrap().sha1)
            .collect();
        assert_eq!(
            m.inputs.keys().copied().collect::<BTreeSet<_>>(),
            want,
            "{linker}"
        );
        run_ok(
            shimmed(&t, "omnibor-cc", &store)
                .current_dir(t.path())
                .args(["main.c", "ab.o", "-o", "prog"]),
        );
        run_ok(&mut Command::new(t.join("prog")));
        let srcs = stdout(
            omnishim(&["resolve", "--sources", "--store"])
                .arg(&store)
                .arg(t.join("prog")),
        );
        for f in ["a.c", "b.c", "main.c"] {
            let id = gitoid::ids_of_file(&t.join(f)).unwrap().sha1;
            assert!(
                srcs.contains(&id.hex()),
                "{linker}: {f} not reached:\n{srcs}"
            );
        }
    }
}

#[test]
fn direct_shared_link_and_static_library_program() {
    for linker in ["ld.bfd", "ld.gold", "ld.lld"] {
        let t = Tmp::new();
        let store = t.join("store");
        std::fs::create_dir_all(t.join("sub")).unwrap();
        t.write("a.c", "int a(void){return 1;}\n");
        run_ok(
            shimmed(&t, "omnibor-cc", &store)
                .current_dir(t.path())
                .args(["-fPIC", "-c", "a.c"]),
        );
        run_ok(
            shimmed(&t, "omnibor-ld", &store)
                .current_dir(t.path())
                .env("OMNIBOR_LD", linker)
                .args(["-shared", "a.o", "-o", "liba.so"]),
        );
        let note = elf::read_note_file(&t.join("liba.so")).unwrap();
        crate::elf::check_readelf(
            "readelf",
            &t.join("liba.so"),
            &note.sha1.unwrap(),
            &note.sha256.unwrap(),
        );
        let m = Store::at(&store).get_manifest(&note.sha1.unwrap()).unwrap();
        assert_eq!(m.inputs.len(), 1, "{linker}");
        assert_eq!(
            m.inputs.keys().next().copied(),
            Some(gitoid::ids_of_file(&t.join("a.o")).unwrap().sha1)
        );
    }
    // a program linked against a static library built by omnibor-ar reaches all its sources
    let (t, store) = abc_library();
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["main.c", "-L.", "-labc", "-o", "prog"]),
    );
    let srcs = stdout(
        omnishim(&["resolve", "--sources", "--store"])
            .arg(&store)
            .arg(t.join("prog")),
    );
    // b.o is in the archive but nothing needs it: the linker did not pull it in
    assert_eq!(c_sources(&srcs), ["a.c", "c.c", "main.c"], "{srcs}");
}

/// libabc.a (a.o b.o c.o) made by omnibor-ar, and main.c that needs a() and c() only.
fn abc_library() -> (Tmp, std::path::PathBuf) {
    let t = Tmp::new();
    let store = t.join("store");
    std::fs::create_dir_all(t.join("sub")).unwrap();
    objects(&t);
    run_ok(
        shimmed(&t, "omnibor-ar", &store)
            .current_dir(t.path())
            .args(["rcs", "libabc.a", "a.o", "b.o", "c.o"]),
    );
    t.write(
        "main.c",
        "int a(void); int c(void);\nint main(void){return a()+c()-4;}\n",
    );
    (t, store)
}

/// The `.c` file names among `resolve --sources` lines, sorted.
fn c_sources(srcs: &str) -> Vec<String> {
    let mut v: Vec<String> = srcs
        .lines()
        .filter_map(|l| l.split("  ").next())
        .filter(|p| p.ends_with(".c"))
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A program's graph holds the archive members the linker really pulled in (the notes it
/// concatenated into the output tell which), with every linker, also with --gc-sections;
/// `check` follows the same view; --whole-archive pulls everything; LTO links fall back to
/// every member (the notes of IR objects never reach the output).
#[test]
fn archive_members_the_linker_pulled_in() {
    let (t, store) = abc_library();
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-c", "main.c"]),
    );
    let deny = |f: &str| {
        let id = gitoid::ids_of_file(&t.join(f)).unwrap().sha1;
        t.write(&format!("deny-{f}"), format!("{} CVE-TEST-{f}\n", id.hex()))
    };
    let (deny_a, deny_b) = (deny("a.c"), deny("b.c"));
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("bfd", &[], &["a.c", "c.c", "main.c"]),
        ("bfd", &["-Wl,--gc-sections"], &["a.c", "c.c", "main.c"]),
        ("gold", &[], &["a.c", "c.c", "main.c"]),
        ("gold", &["-Wl,--gc-sections"], &["a.c", "c.c", "main.c"]),
        ("lld", &[], &["a.c", "c.c", "main.c"]),
        ("lld", &["-Wl,--gc-sections"], &["a.c", "c.c", "main.c"]),
        ("mold", &[], &["a.c", "c.c", "main.c"]),
        ("mold", &["-Wl,--gc-sections"], &["a.c", "c.c", "main.c"]),
        (
            "bfd",
            &["-Wl,--whole-archive"],
            &["a.c", "b.c", "c.c", "main.c"],
        ),
        ("bfd", &["-flto"], &["a.c", "b.c", "c.c", "main.c"]),
    ];
    for (k, (linker, extra, want)) in cases.iter().enumerate() {
        let prog = format!("prog{k}");
        let mut c = shimmed(&t, "omnibor-cc", &store);
        c.current_dir(t.path())
            .arg(format!("-fuse-ld={linker}"))
            .args(["main.o", "-o", &prog])
            .args(*extra)
            .arg("libabc.a");
        if extra.contains(&"-Wl,--whole-archive") {
            c.arg("-Wl,--no-whole-archive");
        }
        run_ok(&mut c);
        let what = format!("{linker} {extra:?}");
        let srcs = stdout(
            omnishim(&["resolve", "--sources", "--store"])
                .arg(&store)
                .arg(t.join(&prog)),
        );
        assert_eq!(c_sources(&srcs), *want, "{what}");
        // the same with the sha256 graph
        let srcs256 = stdout(
            omnishim(&["resolve", "--sources", "--hash", "sha256", "--store"])
                .arg(&store)
                .arg(t.join(&prog)),
        );
        assert_eq!(c_sources(&srcs256), *want, "{what} sha256");
        let check = |list: &Path| {
            omnishim(&["check", "--store"])
                .arg(&store)
                .arg("--deny")
                .arg(list)
                .arg(t.join(&prog))
                .output()
                .unwrap()
        };
        let hit = check(&deny_a);
        assert_eq!(hit.status.code(), Some(1), "{what}");
        assert!(String::from_utf8_lossy(&hit.stdout).contains("CVE-TEST-a.c"));
        let b = check(&deny_b);
        let b_in = want.contains(&"b.c");
        assert_eq!(b.status.code(), Some(b_in as i32), "{what}: {b:?}");
        if !b_in {
            let tree = stdout(
                omnishim(&["resolve", "--store"])
                    .arg(&store)
                    .arg(t.join(&prog)),
            );
            assert!(tree.contains("(1 member not linked)"), "{tree}");
        }
    }
}

#[test]
fn failing_ar_and_ld_pass_through_byte_for_byte() {
    let t = Tmp::new();
    let store = t.join("store");
    std::fs::create_dir_all(t.join("sub")).unwrap();
    objects(&t);
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        ("omnibor-ar", "ar", vec!["rcs", "x.a", "missing.o"]),
        ("omnibor-ar", "ar", vec!["z", "x.a"]),
        ("omnibor-ar", "ar", vec!["d", "nonexistent.a", "a.o"]),
        ("omnibor-ar", "ar", vec!["--version"]),
        ("omnibor-ld", "ld", vec!["missing.o", "-o", "p"]),
        ("omnibor-ld", "ld", vec!["-r", "a.o", "a.o", "-o", "dup.o"]),
        ("omnibor-ld", "ld", vec!["--version"]),
        // masquerade names, found on PATH the way make finds them
        ("ar", "ar", vec!["rcs", "x.a", "missing.o"]),
        ("ar", "ar", vec!["rcsu", "y.a", "a.o"]),
        ("ld", "ld", vec!["missing.o", "-o", "p"]),
    ];
    shim_dir(&t, &["ar", "ld"]);
    for (k, (shim, real, args)) in cases.into_iter().enumerate() {
        // the same files in two directories: these commands may create or change them
        let (dir_bare, dir_ours) = (t.join(&format!("bare{k}")), t.join(&format!("ours{k}")));
        for d in [&dir_bare, &dir_ours] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::copy(t.join("a.o"), d.join("a.o")).unwrap();
        }
        let bare = Command::new(real)
            .current_dir(&dir_bare)
            .args(&args)
            .output()
            .unwrap();
        let ours = shimmed(&t, shim, &store)
            .current_dir(&dir_ours)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(ours.status.code(), bare.status.code(), "{shim} {args:?}");
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&bare.stdout),
            "{shim} {args:?}"
        );
        // binutils print argv[0] whole ("ar: ...", "ld: cannot find ..."): byte for byte
        assert_eq!(
            String::from_utf8_lossy(&ours.stderr),
            String::from_utf8_lossy(&bare.stderr),
            "{shim} {args:?}"
        );
    }
}
