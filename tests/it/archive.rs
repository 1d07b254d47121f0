//! Issue 14 item 1: the archive reader agrees with `ar t` / `ar p` on every archive GNU ar and
//! llvm-ar write (GNU, BSD, thin, `/SYM64/`, long names of any length, nested thin archives),
//! and such archives built under the shims resolve to their members' sources.

use crate::util::*;
use omnishim::archive::{self, Content};
use omnishim::gitoid::{self, Id};
use omnishim::store::Store;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Member names of 1, 14, 15, 16, 17 and 40 bytes, and paths in subdirectories (15 bytes
/// each, as the kernel's `kernel/sysctl.o`, and a short one).
fn member_paths() -> Vec<String> {
    let mut v: Vec<String> = [
        "a",
        "abcdefghijkl.o",
        "abcdefghijklm.o",
        "abcdefghijklmn.o",
        "abcdefghijklmno.o",
        "kernel/sysctl.o",
        "fs/read_write.o",
        "d/e/x.o",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("{}.o", "l".repeat(38)));
    for n in &v {
        let base = Path::new(n).file_name().unwrap().len();
        assert!(n.len() == base || n.contains('/'));
    }
    assert_eq!(v[0].len(), 1);
    assert_eq!(v[4].len(), 17);
    assert_eq!(v[8].len(), 40);
    v
}

/// An object with its own symbol at each path (so every member's bytes differ).
fn objects(t: &Tmp, paths: &[String]) {
    for (i, p) in paths.iter().enumerate() {
        let src = t.write(
            &format!("src/f{i}.c"),
            format!("int f{i}(void){{return {i};}}\n"),
        );
        let out = t.join(p);
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        run_ok(Command::new("gcc").arg("-c").arg(&src).arg("-o").arg(&out));
    }
}

/// (name, bytes) of every member, as the reader sees them.
fn read_members(archive: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(archive).unwrap();
    archive::members(&bytes, archive)
        .unwrap_or_else(|e| panic!("{}: {e}", archive.display()))
        .into_iter()
        .map(|m| {
            let data = match m.content {
                Content::Inline(d) => d.into_owned(),
                Content::External(p) => std::fs::read(&p)
                    .unwrap_or_else(|e| panic!("{}: member {}: {e}", archive.display(), m.name)),
            };
            (m.name, data)
        })
        .collect()
}

/// (name, bytes) of every member, as `tool t` and `tool p` see them; BSD symbol tables,
/// which GNU ar lists as members, left out.
fn tool_members(tool: &str, dir: &Path, archive: &str) -> Vec<(String, Vec<u8>)> {
    let names = stdout(
        Command::new(need(tool))
            .current_dir(dir)
            .args(["t", archive]),
    );
    names
        .lines()
        .filter(|n| !n.starts_with("__.SYMDEF"))
        .map(|n| {
            let data = run_ok(Command::new(tool).current_dir(dir).args(["p", archive, n])).stdout;
            (n.to_string(), data)
        })
        .collect()
}

fn assert_same(what: &str, dir: &Path, archive: &str, truth: &[&str]) {
    let got = read_members(&dir.join(archive));
    assert!(!got.is_empty(), "{what}: no members");
    for tool in truth {
        let want = tool_members(tool, dir, archive);
        let names = |v: &[(String, Vec<u8>)]| v.iter().map(|m| m.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&got), names(&want), "{what}: names against {tool} t");
        for (g, w) in got.iter().zip(&want) {
            assert!(g.1 == w.1, "{what}: {} differs from {tool} p", g.0);
        }
    }
}

/// (writer, its arguments before the archive, SYM64_THRESHOLD, tools whose t / p are truth)
type Case<'a> = (&'a str, &'a [&'a str], Option<&'a str>, &'a [&'a str]);

#[test]
fn reader_agrees_with_ar_t_and_ar_p() {
    need("ar");
    need("llvm-ar");
    let t = Tmp::new();
    let paths = member_paths();
    objects(&t, &paths);
    let gnu: &[&str] = &["ar"];
    let both: &[&str] = &["ar", "llvm-ar"];
    let cases: &[Case] = &[
        ("ar", &["rc"], None, both),
        ("ar", &["rcP"], None, gnu),
        ("ar", &["rcT"], None, both),
        ("ar", &["cDPrST"], None, both),
        ("llvm-ar", &["rc"], None, both),
        ("llvm-ar", &["rcP"], None, gnu),
        ("llvm-ar", &["rcT"], None, both),
        ("llvm-ar", &["--format=bsd", "rc"], None, both),
        (
            "llvm-ar",
            &["--format=darwin", "rc"],
            Some("0"),
            &["llvm-ar"],
        ),
        ("llvm-ar", &["rc"], Some("0"), both),
        ("llvm-ar", &["rcT"], Some("0"), both),
    ];
    for (i, (tool, args, sym64, truth)) in cases.iter().enumerate() {
        let name = format!("lib{i}.a");
        let mut c = Command::new(need(tool));
        c.current_dir(t.path()).args(*args).arg(&name).args(&paths);
        match sym64 {
            Some(v) => c.env("SYM64_THRESHOLD", v),
            None => c.env_remove("SYM64_THRESHOLD"),
        };
        run_ok(&mut c);
        let what = format!(
            "{tool} {}{}",
            args.join(" "),
            if sym64.is_some() {
                " (64-bit symbol table)"
            } else {
                ""
            }
        );
        let bytes = std::fs::read(t.join(&name)).unwrap();
        // the archive really is what the case is about
        let thin = args.iter().any(|a| a.contains('T'));
        assert_eq!(bytes.starts_with(b"!<thin>\n"), thin, "{what}");
        if sym64.is_some() && !args.contains(&"--format=darwin") {
            assert!(
                bytes[8..].starts_with(b"/SYM64/ "),
                "{what}: no /SYM64/ table"
            );
        }
        if args.contains(&"--format=bsd") {
            assert!(bytes[8..].starts_with(b"#1/"), "{what}: no BSD names");
        }
        assert_same(&what, t.path(), &name, truth);
        assert_eq!(read_members(&t.join(&name)).len(), paths.len(), "{what}");
    }
    // the 15-byte paths are long-name references whose field ends in `/` (GNU ar)
    let thin = std::fs::read(t.join("lib3.a")).unwrap();
    assert!(
        thin.windows(16)
            .any(|w| w[0] == b'/' && w[15] == b'/' && w[1].is_ascii_digit()),
        "no `/N            /` header in the kernel-style thin archive"
    );
}

/// The kernel's `ar cDPrST built-in.a kernel/built-in.a ...`: GNU ar flattens thin archives
/// added to a thin archive, with paths relative to the outer archive; a regular archive added
/// to a thin one becomes references into it (`/N:M`). llvm-ar flattens the same way.
#[test]
fn nested_thin_archives_read_as_ar_flattens_them() {
    need("ar");
    need("llvm-ar");
    let t = Tmp::new();
    let paths: Vec<String> = [
        "kernel/sysctl.o",
        "kernel/sub/abcdefghijklm.o",
        "fs/read_write.o",
        "init/main.o",
        "lib/x.o",
        "lib/y.o",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    objects(&t, &paths);
    for tool in ["ar", "llvm-ar"] {
        let ar = |dir: &str, args: &[&str]| {
            run_ok(
                Command::new(need(tool))
                    .current_dir(t.join(dir))
                    .args(["cDPrST"])
                    .args(args),
            );
        };
        for f in ["built-in.a", "kernel/built-in.a", "fs/built-in.a"] {
            let _ = std::fs::remove_file(t.join(f));
        }
        ar("kernel", &["built-in.a", "sysctl.o", "sub/abcdefghijklm.o"]);
        ar("fs", &["built-in.a", "read_write.o"]);
        ar(
            ".",
            &[
                "built-in.a",
                "kernel/built-in.a",
                "fs/built-in.a",
                "init/main.o",
            ],
        );
        let got = read_members(&t.join("built-in.a"));
        let names: Vec<&str> = got.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(names, paths[..4], "{tool}: flattened paths");
        assert_same(
            &format!("{tool} nested thin"),
            t.path(),
            "built-in.a",
            &["ar"],
        );
    }
    // a regular archive inside a thin one (GNU ar only: llvm-ar 14 cannot read `/N:M`)
    let _ = std::fs::remove_file(t.join("lib/normal.a"));
    run_ok(
        Command::new("ar")
            .current_dir(t.join("lib"))
            .args(["rc", "normal.a", "x.o", "y.o"]),
    );
    run_ok(Command::new("ar").current_dir(t.path()).args([
        "cDPrST",
        "mixed.a",
        "lib/normal.a",
        "init/main.o",
    ]));
    let bytes = std::fs::read(t.join("mixed.a")).unwrap();
    assert!(
        bytes.windows(3).any(|w| w == b"/0:"),
        "no `/N:M` reference in mixed.a"
    );
    assert_same(
        "regular archive in a thin one",
        t.path(),
        "mixed.a",
        &["ar"],
    );
    let got = read_members(&t.join("mixed.a"));
    let names: Vec<&str> = got.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(names, ["x.o", "y.o", "init/main.o"]);
}

/// The archive's recorded manifest inputs (sha1), through the target index.
fn manifest_inputs(store: &Path, archive: &Path) -> BTreeSet<Id> {
    let ids = gitoid::ids_of_file(archive).unwrap();
    let s = Store::at(store);
    let m = s
        .get_target(&ids.sha1)
        .unwrap_or_else(|| panic!("{} not in the target index", archive.display()));
    s.get_manifest(&m).unwrap().inputs.keys().copied().collect()
}

#[test]
fn thin_archives_under_the_shims_resolve_to_their_sources() {
    need("ar");
    let t = Tmp::new();
    let store = t.join("store");
    // the repro
    t.write("kernel/sysctl.c", "int s(void){return 3;}\n");
    let out = run_ok(
        omnishim(&["run", "--store"])
            .arg(&store)
            .args([
                "--",
                "sh",
                "-c",
                "gcc -c kernel/sysctl.c -o kernel/sysctl.o && ar cDPrST t15.a kernel/sysctl.o",
            ])
            .current_dir(t.path())
            .env_remove("CC"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(" 0 not recorded"), "{err}");
    let want: BTreeSet<String> = [t.join("kernel/sysctl.c").display().to_string()].into();
    assert_eq!(c_source_paths(&store, &t.join("t15.a")), want);

    // kernel-style nesting, and a regular archive inside a thin one
    for (f, body) in [
        ("kernel/sub/abcdefghijklm.c", "int k(void){return 4;}\n"),
        ("fs/read_write.c", "int rw(void){return 5;}\n"),
        ("init/main.c", "int m(void){return 6;}\n"),
        ("lib/x.c", "int x(void){return 7;}\n"),
        ("lib/y.c", "int y(void){return 8;}\n"),
    ] {
        t.write(f, body);
    }
    let script = "set -e
        for f in kernel/sub/abcdefghijklm fs/read_write init/main lib/x lib/y; do gcc -c $f.c -o $f.o; done
        (cd kernel && ar cDPrST built-in.a sysctl.o sub/abcdefghijklm.o)
        (cd fs && ar cDPrST built-in.a read_write.o)
        ar cDPrST built-in.a kernel/built-in.a fs/built-in.a init/main.o
        (cd lib && ar rc normal.a x.o y.o)
        ar cDPrST mixed.a lib/normal.a init/main.o";
    let out = run_ok(
        omnishim(&["run", "--store"])
            .arg(&store)
            .args(["--", "sh", "-c", script])
            .current_dir(t.path())
            .env_remove("CC"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(" 0 not recorded"), "{err}");
    let abs = |fs: &[&str]| -> BTreeSet<String> {
        fs.iter().map(|f| t.join(f).display().to_string()).collect()
    };
    assert_eq!(
        c_source_paths(&store, &t.join("built-in.a")),
        abs(&[
            "kernel/sysctl.c",
            "kernel/sub/abcdefghijklm.c",
            "fs/read_write.c",
            "init/main.c"
        ])
    );
    assert_eq!(
        c_source_paths(&store, &t.join("mixed.a")),
        abs(&["lib/x.c", "lib/y.c", "init/main.c"])
    );
    // each archive's manifest inputs are exactly its `ar t` / `ar p` members
    for a in [
        "t15.a",
        "kernel/built-in.a",
        "fs/built-in.a",
        "built-in.a",
        "mixed.a",
    ] {
        let path = t.join(a);
        let dir = path.parent().unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        let want: BTreeSet<Id> = tool_members("ar", dir, name)
            .iter()
            .map(|(_, d)| gitoid::ids_of_bytes(d).sha1)
            .collect();
        assert_eq!(manifest_inputs(&store, &path), want, "{a}");
    }
}
