//! Issue 4: compiles and links through the compiler driver, on real gcc and clang.

use crate::elf::test_ids;
use crate::util::*;
use omnishim::elf;
use omnishim::gitoid::{self, Alg, Id};
use omnishim::manifest::Manifest;
use omnishim::store::Store;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const SRC: &str = "#include <stdio.h>\n#include <math.h>\n#include \"local.h\"\n\
    int main(void){printf(\"%d %f\\n\", LOCAL, sqrt(2.0));return 0;}\n";

fn gitoid_set(paths: &[String], cwd: &Path) -> BTreeSet<Id> {
    paths
        .iter()
        .map(|p| {
            gitoid::ids_of_file(&cwd.join(p))
                .unwrap_or_else(|e| panic!("{p}: {e}"))
                .sha1
        })
        .collect()
}

fn manifest_inputs(store: &Path, file: &Path) -> BTreeSet<Id> {
    let note = elf::read_note_file(file).unwrap();
    let id = note
        .sha1
        .unwrap_or_else(|| panic!("{} has no note", file.display()));
    let m = Store::at(store).get_manifest(&id).unwrap();
    // the sha256 manifest must be there too and list the same number of inputs
    let m2 = Store::at(store)
        .get_manifest(&note.sha256.unwrap())
        .unwrap();
    assert_eq!(m.inputs.len(), m2.inputs.len());
    m.inputs.keys().copied().collect()
}

/// What `<cc> -M <flags> src` lists: every file the preprocessor reads.
fn dash_m(cc: &str, cwd: &Path, flags: &[&str], src: &str) -> Vec<String> {
    let out = stdout(
        Command::new(need(cc))
            .current_dir(cwd)
            .args(flags)
            .arg("-M")
            .arg(src),
    );
    omnishim::depfile::prerequisites(&out)
}

#[test]
fn object_manifest_equals_dash_m_for_gcc_and_clang() {
    for cc in ["gcc", "clang"] {
        let t = Tmp::new();
        let store = t.join("store");
        t.write("inc/local.h", "#define LOCAL 7\n#include <stdint.h>\n");
        t.write("force.h", "#include <stddef.h>\n");
        t.write("src.c", SRC);
        let flags = ["-O2", "-Iinc", "-include", "force.h"];
        run_ok(
            shimmed(&t, "omnibor-cc", &store)
                .current_dir(t.path())
                .env("OMNIBOR_CC", cc)
                .args(flags)
                .args(["-c", "src.c", "-o", "src.o"]),
        );
        let want = gitoid_set(&dash_m(cc, t.path(), &flags, "src.c"), t.path());
        assert!(want.len() > 10, "{cc}: system headers expected in -M");
        assert_eq!(manifest_inputs(&store, &t.join("src.o")), want, "{cc}");
        run_ok(omnishim(&["store", "verify", "--store"]).arg(&store));
    }
}

#[test]
fn user_mmd_depfile_still_written_and_unchanged() {
    let t = Tmp::new();
    let store = t.join("store");
    t.write("inc/local.h", "#define LOCAL 7\n");
    t.write("src.c", SRC);
    run_ok(Command::new("gcc").current_dir(t.path()).args([
        "-Iinc", "-c", "src.c", "-o", "bare.o", "-MMD", "-MF", "bare.d",
    ]));
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args([
                "-Iinc", "-c", "src.c", "-o", "src.o", "-MMD", "-MF", "src.d",
            ]),
    );
    let bare: BTreeSet<String> =
        omnishim::depfile::prerequisites(std::fs::read_to_string(t.join("bare.d")).unwrap())
            .into_iter()
            .collect();
    let ours: BTreeSet<String> =
        omnishim::depfile::prerequisites(std::fs::read_to_string(t.join("src.d")).unwrap())
            .into_iter()
            .collect();
    // what the bare compiler lists, not more (system headers stay out of it)
    assert_eq!(ours, bare);
    let rules = omnishim::depfile::parse(std::fs::read_to_string(t.join("src.d")).unwrap());
    assert_eq!(rules[0].targets, vec!["src.o"]);
    // and the manifest has the system headers -MMD leaves out
    let want = gitoid_set(&dash_m("gcc", t.path(), &["-Iinc"], "src.c"), t.path());
    assert_eq!(manifest_inputs(&store, &t.join("src.o")), want);
    // -Wp,-MMD,file: the same, default -MD name too
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-Iinc", "-c", "src.c", "-o", "w.o", "-Wp,-MMD,w.dep"]),
    );
    assert!(t.join("w.dep").exists());
    assert_eq!(manifest_inputs(&store, &t.join("w.o")), want);
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-Iinc", "-c", "src.c", "-MD"]),
    );
    assert!(t.join("src.d").exists());
}

#[test]
fn several_sources_in_one_command() {
    let t = Tmp::new();
    let store = t.join("store");
    t.write("inc/local.h", "#define LOCAL 7\n");
    t.write("a.c", "#include \"local.h\"\nint a(void){return LOCAL;}\n");
    t.write(
        "b.c",
        "#include <string.h>\nint b(const char*s){return (int)strlen(s);}\n",
    );
    t.write(
        "m.c",
        "int a(void); int b(const char*);\nint main(void){return a()+b(\"xy\")-9;}\n",
    );
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-Iinc", "-c", "a.c", "b.c"]),
    );
    for src in ["a", "b"] {
        let want = gitoid_set(
            &dash_m("gcc", t.path(), &["-Iinc"], &format!("{src}.c")),
            t.path(),
        );
        assert_eq!(
            manifest_inputs(&store, &t.join(&format!("{src}.o"))),
            want,
            "{src}"
        );
    }
    // compile and link in one: sources, headers and linker inputs; no temporary objects
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-Iinc", "a.c", "b.c", "m.c", "-o", "prog"]),
    );
    run_ok(&mut Command::new(t.join("prog")));
    let inputs = manifest_inputs(&store, &t.join("prog"));
    for src in ["a.c", "b.c", "m.c", "inc/local.h", "/usr/include/string.h"] {
        let id = gitoid::ids_of_file(&t.path().join(src)).unwrap().sha1;
        assert!(
            inputs.contains(&id),
            "{src} missing from the program's manifest"
        );
    }
    let crt =
        String::from_utf8(run_ok(Command::new("gcc").arg("-print-file-name=crtbeginS.o")).stdout)
            .unwrap();
    assert!(inputs.contains(&gitoid::ids_of_file(Path::new(crt.trim())).unwrap().sha1));
    let paths: Vec<String> =
        Store::at(&store).paths_of(&gitoid::ids_of_file(&t.join("prog")).unwrap().sha1);
    assert_eq!(paths, vec![t.join("prog").display().to_string()]);
}

/// Inputs the linker reports with --trace (archive members as their archive), shared
/// libraries left out, as gitoids.
fn trace_inputs(tool: &str, cwd: &Path, argv: &[String], tmp: &Path) -> BTreeSet<Id> {
    let out = Command::new(tool)
        .current_dir(cwd)
        .args(argv)
        .args(["-Wl,--trace", "-o"])
        .arg(tmp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut set = BTreeSet::new();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for line in text.lines() {
        let mut l = line.trim().trim_start_matches("trace: ").to_string();
        if l.is_empty() || l.contains(": warning") || l.starts_with("mold: ") {
            continue;
        }
        // bfd: "(archive)member"; gold, lld, mold: "archive(member)"
        if let Some(rest) = l.strip_prefix('(') {
            l = rest.split(')').next().unwrap().to_string();
        } else if l.ends_with(')') {
            l = l[..l.rfind('(').unwrap()].to_string();
        }
        let p = cwd.join(&l);
        if !p.exists() {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        if elf::header_type(&bytes) == Some(3) {
            continue; // shared library
        }
        set.insert(gitoid::ids_of_bytes(&bytes).sha1);
    }
    set
}

fn is_archive_or_script(store_paths: &[String]) -> bool {
    store_paths.iter().any(|p| {
        let b = std::fs::read(p).unwrap_or_default();
        b.starts_with(b"!<arch>")
            || b.starts_with(b"!<thin>")
            || (!b.is_empty() && !b.starts_with(b"\x7fELF") && b.is_ascii())
    })
}

fn build_examples(t: &Tmp, store: &Path, cc: &str, cxx: &str, ldflags: &str) -> PathBuf {
    let out = t.join(&format!("build-{cc}-{}", ldflags.replace(['=', ' '], "_")));
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    run_ok(
        shimmed(t, "make", store)
            .arg("-s")
            .arg("-C")
            .arg(&examples)
            .arg(format!("O={}", out.display()))
            .arg("CC=omnibor-cc")
            .arg("CXX=omnibor-c++")
            .arg(format!("LDFLAGS={ldflags}"))
            .env("OMNIBOR_CC", cc)
            .env("OMNIBOR_CXX", cxx),
    );
    out
}

fn check_examples_build(t: &Tmp, store: &Path, out: &Path, exact_trace: bool) {
    // the programs run as before
    assert_eq!(
        stdout(&mut Command::new(out.join("hello"))),
        "hello, OMNIBOR! (2 words, digit sum 10)\n"
    );
    assert_eq!(
        stdout(&mut Command::new(out.join("wordcount"))),
        "words: 6\n"
    );
    // every ELF file has a note whose manifests are in the store
    let elves: Vec<PathBuf> = tree_of(out)
        .into_iter()
        .filter(|(_, bytes)| elf::is_elf(bytes))
        .map(|(rel, _)| out.join(rel))
        .collect();
    assert_eq!(elves.len(), 8, "{elves:?}"); // 5 objects, 2 programs, 1 shared library
    let s = Store::at(store);
    for f in &elves {
        let n = elf::read_note_file(f).unwrap();
        for id in [n.sha1.unwrap(), n.sha256.unwrap()] {
            s.get_manifest(&id)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        }
    }
    run_ok(omnishim(&["store", "verify", "--store"]).arg(store));
    // each link's manifest against the linker's own --trace
    let log = std::fs::read_to_string(s.steps_log()).unwrap();
    let mut links = 0;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let argv: Vec<String> = v["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        if argv.iter().any(|a| a == "-c") || v["status"] != "recorded" {
            continue;
        }
        let output = PathBuf::from(v["outputs"][0].as_str().unwrap());
        if !output.starts_with(out) {
            continue;
        }
        links += 1;
        let cwd = PathBuf::from(v["cwd"].as_str().unwrap());
        let trace = trace_inputs(
            v["tool"].as_str().unwrap(),
            &cwd,
            &argv,
            &t.join("trace.out"),
        );
        let ours = manifest_inputs(store, &output);
        if exact_trace {
            assert_eq!(ours, trace, "{}: manifest vs ld --trace", output.display());
        } else {
            assert!(
                ours.is_superset(&trace),
                "{}: trace has inputs the manifest lacks",
                output.display()
            );
            for extra in ours.difference(&trace) {
                let paths = s.paths_of(extra);
                assert!(
                    is_archive_or_script(&paths),
                    "{}: {extra} ({paths:?}) is neither an archive nor a script",
                    output.display()
                );
            }
        }
    }
    assert_eq!(links, 3);
}

#[test]
fn examples_with_gcc_and_every_linker() {
    for (ld, exact) in [
        ("", true),
        ("-fuse-ld=bfd", true),
        ("-fuse-ld=gold", false),
        ("-fuse-ld=lld", false),
        ("-fuse-ld=mold", false),
    ] {
        let t = Tmp::new();
        let store = t.join("store");
        let out = build_examples(&t, &store, "gcc", "g++", ld);
        check_examples_build(&t, &store, &out, exact);
    }
}

#[test]
fn examples_with_clang() {
    for ld in ["", "-fuse-ld=lld"] {
        let t = Tmp::new();
        let store = t.join("store");
        let out = build_examples(&t, &store, "clang", "clang++", ld);
        check_examples_build(&t, &store, &out, ld.is_empty());
    }
}

fn compare_wrapped_and_bare(t: &Tmp, args: &[&str]) -> i32 {
    let store = t.join("store");
    let bare = Command::new("gcc")
        .current_dir(t.path())
        .args(args)
        .output()
        .unwrap();
    let wrapped = shimmed(t, "omnibor-cc", &store)
        .current_dir(t.path())
        .env("OMNIBOR_CC", "gcc")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(wrapped.status.code(), bare.status.code(), "{args:?}");
    assert_eq!(
        String::from_utf8_lossy(&wrapped.stdout),
        String::from_utf8_lossy(&bare.stdout),
        "{args:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(&wrapped.stderr),
        String::from_utf8_lossy(&bare.stderr),
        "{args:?}"
    );
    bare.status.code().unwrap()
}

#[test]
fn wrapped_and_bare_look_the_same() {
    let t = Tmp::new();
    t.write("bad.c", "int main(void){ return undefined_thing; }\n");
    t.write("warn.c", "int f(int x){ int unused; return x; }\n");
    t.write(
        "ok.c",
        "#include <stdio.h>\nint main(void){ puts(\"ok\"); return 0; }\n",
    );
    assert_eq!(
        compare_wrapped_and_bare(&t, &["-c", "bad.c", "-o", "bad.o"]),
        1
    );
    assert_eq!(
        compare_wrapped_and_bare(&t, &["-Wall", "-Werror", "-c", "warn.c", "-o", "warn.o"]),
        1
    );
    assert_eq!(
        compare_wrapped_and_bare(&t, &["-Wall", "-c", "warn.c", "-o", "warn.o"]),
        0
    );
    assert_eq!(compare_wrapped_and_bare(&t, &["ok.c", "-o", "ok"]), 0);
    assert_eq!(compare_wrapped_and_bare(&t, &["missing.c", "-o", "x"]), 1);
    assert_eq!(compare_wrapped_and_bare(&t, &["--version"]), 0);
    assert_eq!(compare_wrapped_and_bare(&t, &["-E", "ok.c"]), 0);
    // a failed compile records nothing
    let objects = t.join("store/objects");
    let before = count_files(&objects);
    let _ = shimmed(&t, "omnibor-cc", &t.join("store"))
        .current_dir(t.path())
        .args(["-c", "bad.c"])
        .output()
        .unwrap();
    assert_eq!(count_files(&objects), before);
    assert!(!t.join("bad.o").exists());
}

fn count_files(d: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(d) else {
        return 0;
    };
    rd.map(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            count_files(&p)
        } else {
            1
        }
    })
    .sum()
}

#[test]
fn masquerade_through_another_wrapper_and_prefix_mode() {
    let t = Tmp::new();
    let store = t.join("store");
    let shims = shim_dir(&t, &["gcc", "cc", "x86_64-linux-gnu-gcc-12"]);
    // a wrapper directory between us and the compiler, calling `gcc` from PATH again as
    // ccache and distcc do
    let wrap = t.join("wrap");
    std::fs::create_dir_all(&wrap).unwrap();
    let script = wrap.join("gcc");
    std::fs::write(
        &script,
        "#!/bin/sh\necho wrapped >> \"$WRAP_LOG\"\nexec gcc \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut path = vec![shims.clone(), wrap.clone()];
    path.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap()));
    let path = std::env::join_paths(path).unwrap();
    t.write("x.c", "int x(void){return 1;}\n");
    for name in ["gcc", "x86_64-linux-gnu-gcc-12"] {
        run_ok(
            Command::new(name)
                .current_dir(t.path())
                .env("PATH", &path)
                .env("OMNIBOR_DIR", &store)
                .env("WRAP_LOG", t.join("log"))
                .env_remove("OMNISHIM_CHAIN")
                .args(["-c", "x.c", "-o", &format!("{name}.o")]),
        );
        assert!(elf::read_note_file(&t.join(&format!("{name}.o")))
            .unwrap()
            .sha1
            .is_some());
    }
    assert_eq!(std::fs::read_to_string(t.join("log")).unwrap(), "wrapped\n");
    // prefix mode: omnibor-cc gcc ..., and through a wrapper program
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["gcc", "-c", "x.c", "-o", "p.o"]),
    );
    assert!(elf::read_note_file(&t.join("p.o")).unwrap().sha1.is_some());
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .env("WRAP_LOG", t.join("log2"))
            .arg(&script)
            .args(["-c", "x.c", "-o", "q.o"]),
    );
    assert!(elf::read_note_file(&t.join("q.o")).unwrap().sha1.is_some());
    // a PATH with nothing real behind the shim: one clear line, no loop
    let out = Command::new(shims.join("gcc"))
        .current_dir(t.path())
        .env("PATH", std::env::join_paths([&shims]).unwrap())
        .env_remove("OMNISHIM_CHAIN")
        .args(["-c", "x.c"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "omnishim: cannot find the real 'gcc' on PATH (other than omnishim itself)"
    );
}

/// The lines of the shard logs in a hash-cache directory.
fn cache_lines(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        v.extend(text.lines().map(str::to_string));
    }
    v
}

#[test]
fn hash_cache_is_keyed_on_file_identity() {
    let t = Tmp::new();
    let store = t.join("store");
    let user_cache = t.join("cache");
    t.write("h.h", "#define V 1\n");
    for i in 0..4 {
        t.write(
            &format!("s{i}.c"),
            format!("#include \"h.h\"\nint s{i}(void){{return V;}}\n"),
        );
        run_ok(
            shimmed(&t, "omnibor-cc", &store)
                .current_dir(t.path())
                .env("XDG_CACHE_HOME", &user_cache)
                .args(["-c", &format!("s{i}.c")]),
        );
    }
    // stdc-predef.h, outside the build tree, is the user's cache's: once
    let user = cache_lines(&user_cache.join("omnishim/hashcache"));
    let predef = gitoid::ids_of_file(Path::new("/usr/include/stdc-predef.h")).unwrap();
    assert_eq!(
        user.iter()
            .filter(|l| l.contains(&predef.sha1.hex()))
            .count(),
        1,
        "{user:#?}"
    );
    // entries: lines of the shard logs under hashcache/ whose key is a file's identity
    // (an ELF file's entry has a line `<key>+type` beside it)
    let cache = store.join("metadata/omnishim/hashcache");
    let lines = || cache_lines(&cache);
    let entries = || -> Vec<String> {
        let own = |l: &String| !l.split(' ').next().unwrap_or("").contains('+');
        lines().into_iter().filter(own).collect()
    };
    let entries_after_four = entries().len();
    // s0..s3.c, h.h and the four objects, each once
    assert_eq!(entries_after_four, 9, "{:#?}", entries());
    // each object's type line says it is no shared library
    let objects: Vec<String> = lines()
        .into_iter()
        .filter(|l| l.contains("+type "))
        .collect();
    assert_eq!(objects.len(), 4, "{objects:#?}");
    assert!(objects.iter().all(|l| l.ends_with(" elf")), "{objects:#?}");
    // same size, new content: the new ID must be recorded, never the cached one
    std::thread::sleep(std::time::Duration::from_millis(20));
    t.write("h.h", "#define V 2\n");
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .env("XDG_CACHE_HOME", &user_cache)
            .args(["-c", "s0.c"]),
    );
    let new_id = gitoid::ids_of_file(&t.join("h.h")).unwrap().sha1;
    assert!(manifest_inputs(&store, &t.join("s0.o")).contains(&new_id));
    // s0.c and stdc-predef.h are unchanged (cache hits); new entries: the rewritten header,
    // and the new s0.o, remembered from the bytes the shim wrote (so a link reading it next
    // does not hash it again): its entry holds the object's real IDs
    let now = entries();
    assert_eq!(now.len(), entries_after_four + 2);
    let o = gitoid::ids_of_file(&t.join("s0.o")).unwrap();
    let want = format!(" {} {} elf", o.sha1.hex(), o.sha256.hex());
    let found = now.iter().filter(|l| l.ends_with(&want)).count();
    assert_eq!(found, 1, "no cache entry with s0.o's IDs");
}

/// The per-user hash cache (files outside the build tree, shared by every store of the user)
/// never serves a stale ID: a header outside the build tree and outside the store (so the
/// user's cache keeps it, like a system header; here reached with -isystem, since a test
/// cannot change /usr/include) is changed in place to the same size and given back its old
/// modification time (`touch -r`), then a build with a fresh store (so nothing but the
/// user's cache could hold the old ID) records the new content. Device, inode, size and
/// mtime are all unchanged: only the ctime in the key (which no user can set back) tells
/// the two versions apart. The old identity is in the user's snapshot too (see below), which
/// must not serve it either.
#[test]
fn user_hash_cache_never_serves_a_stale_id_after_touch_r() {
    need("gcc");
    need("touch");
    let t = Tmp::new();
    let sys = t.join("sysinc");
    let proj = t.join("proj");
    let user_cache = t.join("cache");
    std::fs::create_dir_all(&sys).unwrap();
    std::fs::create_dir_all(&proj).unwrap();
    let header = sys.join("v.h");
    std::fs::write(&header, "#define V 1\n").unwrap();
    std::fs::write(proj.join("a.c"), "#include <v.h>\nint a(void){return V;}\n").unwrap();
    // the user's cache keeps no entry for a file changed within the last second
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let build = |store: &Path| {
        run_ok(
            shimmed(&t, "omnibor-cc", store)
                .current_dir(&proj)
                .env("XDG_CACHE_HOME", &user_cache)
                .args(["-isystem", sys.to_str().unwrap(), "-c", "a.c"]),
        );
    };
    build(&t.join("store1"));
    let old = gitoid::ids_of_file(&header).unwrap();
    let entry = |ids: &gitoid::Ids| {
        cache_lines(&user_cache.join("omnishim/hashcache"))
            .iter()
            .any(|l| l.contains(&format!(" {} {} ", ids.sha1.hex(), ids.sha256.hex())))
    };
    assert!(
        entry(&old),
        "the first build left no user-cache entry for v.h"
    );
    assert!(manifest_inputs(&t.join("store1"), &proj.join("a.o")).contains(&old.sha1));
    // nor is the header in the store's own cache: only the user's could serve it
    let store_lines = cache_lines(&t.join("store1/metadata/omnishim/hashcache"));
    assert!(!store_lines.iter().any(|l| l.contains(&old.sha1.hex())));
    // the user's snapshot of its logs serves lookups: with the logs emptied, a build with a
    // fresh store still finds v.h (and the system headers) there, and hashes nothing again
    let logs = user_cache.join("omnishim/hashcache");
    assert!(
        user_cache.join("omnishim/hashcache.snapshot").is_file(),
        "the first build wrote no snapshot of the user's cache"
    );
    for e in std::fs::read_dir(&logs).unwrap() {
        std::fs::write(e.unwrap().path(), "").unwrap();
    }
    build(&t.join("store1b"));
    assert!(manifest_inputs(&t.join("store1b"), &proj.join("a.o")).contains(&old.sha1));
    assert_eq!(
        cache_lines(&logs),
        Vec::<String>::new(),
        "a file the snapshot has was hashed again"
    );
    // in place, same size, then the old times back
    let reference = t.join("times");
    run_ok(Command::new("touch").arg("-r").arg(&header).arg(&reference));
    let before = std::fs::metadata(&header).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&header)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"#define V 2\n"))
        .unwrap();
    run_ok(Command::new("touch").arg("-r").arg(&reference).arg(&header));
    use std::os::unix::fs::MetadataExt;
    let after = std::fs::metadata(&header).unwrap();
    assert_eq!(
        (
            before.dev(),
            before.ino(),
            before.size(),
            before.mtime(),
            before.mtime_nsec()
        ),
        (
            after.dev(),
            after.ino(),
            after.size(),
            after.mtime(),
            after.mtime_nsec()
        )
    );
    assert_ne!(
        (before.ctime(), before.ctime_nsec()),
        (after.ctime(), after.ctime_nsec())
    );
    let new = gitoid::ids_of_file(&header).unwrap();
    assert_ne!(new.sha1, old.sha1);
    build(&t.join("store2"));
    let inputs = manifest_inputs(&t.join("store2"), &proj.join("a.o"));
    assert!(inputs.contains(&new.sha1), "the new v.h is not recorded");
    assert!(!inputs.contains(&old.sha1), "a stale v.h ID was served");
}

#[test]
fn a_recursive_makes_sibling_headers_stay_in_the_stores_cache_under_omnishim_run() {
    need("gcc");
    let t = Tmp::new();
    let tree = t.join("tree");
    t.write("tree/common/c.h", "#define C 3\n");
    t.write(
        "tree/sub/a.c",
        "#include \"../common/c.h\"\n#include <v.h>\nint a(void){return C+V;}\n",
    );
    t.write("sysinc/v.h", "#define V 1\n");
    // the user's cache keeps no entry for a file changed within the last second
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (c_h, v_h) = (
        gitoid::ids_of_file(&tree.join("common/c.h")).unwrap(),
        gitoid::ids_of_file(&t.join("sysinc/v.h")).unwrap(),
    );
    let has = |dir: &Path, ids: &gitoid::Ids| {
        dir.is_dir()
            && cache_lines(dir)
                .iter()
                .any(|l| l.contains(&format!(" {} {} ", ids.sha1.hex(), ids.sha256.hex())))
    };
    let args = ["-isystem", "../../sysinc", "-c", "a.c"];
    // a step in `sub` under `omnishim run` started at the top: `common` is the build's own
    let (store, cache) = (t.join("store1"), t.join("cache1"));
    run_ok(
        omnishim(&["run", "--store"])
            .arg(&store)
            .args([
                "--",
                "sh",
                "-c",
                &format!("cd sub && gcc {}", args.join(" ")),
            ])
            .current_dir(&tree)
            .env("XDG_CACHE_HOME", &cache)
            .env_remove("CC"),
    );
    let inputs = manifest_inputs(&store, &tree.join("sub/a.o"));
    assert!(inputs.contains(&c_h.sha1) && inputs.contains(&v_h.sha1));
    let (user, local) = (
        cache.join("omnishim/hashcache"),
        store.join("metadata/omnishim/hashcache"),
    );
    assert!(has(&local, &c_h), "c.h is not in the store's cache");
    assert!(
        !has(&user, &c_h),
        "c.h, the tree's own, went to the user's cache"
    );
    assert!(
        has(&user, &v_h),
        "v.h, outside the tree, is not in the user's cache"
    );
    assert!(!has(&local, &v_h));
    // the same step by the shim alone knows only its own directory and the store: `common`
    // goes to the user's cache (what `omnishim run` changes), with the same IDs recorded
    let (store, cache) = (t.join("store2"), t.join("cache2"));
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(tree.join("sub"))
            .env("XDG_CACHE_HOME", &cache)
            .args(args),
    );
    assert_eq!(manifest_inputs(&store, &tree.join("sub/a.o")), inputs);
    assert!(has(&cache.join("omnishim/hashcache"), &c_h));
}

#[test]
fn strict_mode_and_recording_failures() {
    let t = Tmp::new();
    t.write("x.c", "int x(void){return 1;}\n");
    // a store that cannot be written: the build still succeeds, with one warning line
    t.write("notadir", "file");
    let out = shimmed(&t, "omnibor-cc", &t.join("notadir/store"))
        .current_dir(t.path())
        .args(["-c", "x.c"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("omnishim: warning: x.o: not recorded: "),
        "{err}"
    );
    assert!(t.join("x.o").exists());
    let out = shimmed(&t, "omnibor-cc", &t.join("notadir/store"))
        .current_dir(t.path())
        .env("OMNIBOR_STRICT", "1")
        .args(["-c", "x.c"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("omnishim: error: x.o: not recorded: ")
    );
    // something we do not record passes through (logged in the store, silent on the terminal)
    let store = t.join("store");
    let out = shimmed(&t, "omnibor-cc", &store)
        .current_dir(t.path())
        .args(["-S", "x.c", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty());
    let log = std::fs::read_to_string(Store::at(&store).steps_log()).unwrap();
    assert!(
        log.contains("not recorded") && log.contains("output to standard output"),
        "{log}"
    );
    let out = shimmed(&t, "omnibor-cc", &store)
        .current_dir(t.path())
        .env("OMNIBOR_STRICT", "1")
        .args(["-S", "x.c", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn signals_reach_the_compiler() {
    let t = Tmp::new();
    let mut big = String::new();
    for i in 0..60000 {
        big.push_str(&format!("int f{i}(int x){{return x*{i}+(x>>3);}}\n"));
    }
    t.write("big.c", big);
    let store = t.join("store");
    let mut child = shimmed(&t, "omnibor-cc", &store)
        .current_dir(t.path())
        .args(["-O2", "-c", "big.c"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGTERM), "{st:?}");
    assert!(!t.join("big.o").exists());
    let _ = (Alg::Sha1, Manifest::new(Alg::Sha1), test_ids("unused"));
}

/// Outputs that cannot carry a note (assembly from -S, LLVM bitcode from clang -flto) get
/// their manifests through the target index, and graphs go through them.
#[test]
fn assembly_and_bitcode_outputs_use_the_target_index() {
    let t = Tmp::new();
    let store = t.join("store");
    t.write("a.c", "#include <stdlib.h>\nint a(void){return abs(-2);}\n");
    t.write("m.c", "int a(void);\nint main(void){return a()-2;}\n");
    // -S, then assemble the .s: the object's manifest names the .s with its manifest
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-S", "a.c"]),
    );
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-c", "a.s", "-o", "a_from_s.o"]),
    );
    let s = Store::at(&store);
    let asm = gitoid::ids_of_file(&t.join("a.s")).unwrap();
    let asm_m = s.get_target(&asm.sha1).expect("a.s in the target index");
    let obj_m = s
        .get_manifest(
            &elf::read_note_file(&t.join("a_from_s.o"))
                .unwrap()
                .sha1
                .unwrap(),
        )
        .unwrap();
    assert_eq!(obj_m.inputs.get(&asm.sha1), Some(&Some(asm_m)));
    // clang -flto: bitcode objects, linked with lld
    for f in ["a", "m"] {
        run_ok(
            shimmed(&t, "omnibor-cc", &store)
                .current_dir(t.path())
                .env("OMNIBOR_CC", "clang")
                .args(["-flto", "-c", &format!("{f}.c"), "-o", &format!("{f}.bc.o")]),
        );
        let b = std::fs::read(t.join(&format!("{f}.bc.o"))).unwrap();
        assert!(b.starts_with(b"BC\xc0\xde"), "{f}: not bitcode");
        assert!(s.get_target(&gitoid::ids_of_bytes(&b).sha1).is_some());
    }
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .env("OMNIBOR_CC", "clang")
            .args(["-flto", "-fuse-ld=lld", "a.bc.o", "m.bc.o", "-o", "prog"]),
    );
    run_ok(&mut Command::new(t.join("prog")));
    let srcs = stdout(
        omnishim(&["resolve", "--sources", "--store"])
            .arg(&store)
            .arg(t.join("prog")),
    );
    for f in ["a.c", "m.c"] {
        assert!(
            srcs.contains(&gitoid::ids_of_file(&t.join(f)).unwrap().sha1.hex()),
            "{f}:\n{srcs}"
        );
    }
}

/// Every file under `dir` (relative path -> bytes), but `skip`.
fn tree(dir: &Path, skip: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    tree_of(dir)
        .into_iter()
        .filter(|(rel, _)| dir.join(rel) != skip)
        .collect()
}

/// Compile `src.c` with `flags` bare in one directory and through the shim in a copy of
/// it: the same exit status and messages, every file but the object the same bytes (the
/// user's depfile, with its -MT/-MQ target), and the object's manifest what `<cc> -M`
/// lists. Returns whether the compile succeeded.
fn depfile_form(cc: &str, flags: &[&str], local: bool) -> bool {
    let t = Tmp::new();
    let store = t.join("store");
    for d in ["bare", "wrapped"] {
        let src = if local {
            // no system header at all: what a kernel compile (-nostdinc) reads
            "#include \"local.h\"\n#include <sys.h>\nint main(void){return LOCAL+SYS;}\n"
        } else {
            SRC
        };
        t.write(&format!("{d}/src.c"), src);
        t.write(&format!("{d}/inc/local.h"), "#define LOCAL 7\n");
        t.write(&format!("{d}/sys/sys.h"), "#define SYS 1\n");
        std::fs::create_dir_all(t.join(&format!("{d}/obj"))).unwrap();
        std::fs::create_dir_all(t.join(&format!("{d}/dep"))).unwrap();
    }
    let mut args: Vec<&str> = vec!["-Iinc", "-Isys", "-c", "src.c", "-o", "obj/src.o"];
    args.extend(flags);
    let bare = Command::new(need(cc))
        .current_dir(t.join("bare"))
        .args(&args)
        .output()
        .unwrap();
    let wrapped = shimmed(&t, "omnibor-cc", &store)
        .current_dir(t.join("wrapped"))
        .env("OMNIBOR_CC", cc)
        .args(&args)
        .output()
        .unwrap();
    let what = format!("{cc} {flags:?}");
    assert_eq!(wrapped.status.code(), bare.status.code(), "{what}");
    assert_eq!(
        String::from_utf8_lossy(&wrapped.stderr),
        String::from_utf8_lossy(&bare.stderr),
        "{what}"
    );
    let b = tree(&t.join("bare"), &t.join("bare/obj/src.o"));
    let w = tree(&t.join("wrapped"), &t.join("wrapped/obj/src.o"));
    let names = |m: &std::collections::BTreeMap<PathBuf, Vec<u8>>| -> Vec<PathBuf> {
        m.keys().cloned().collect()
    };
    assert_eq!(names(&w), names(&b), "{what}: files written");
    for (p, bytes) in &b {
        assert_eq!(
            String::from_utf8_lossy(&w[p]),
            String::from_utf8_lossy(bytes),
            "{what}: {}",
            p.display()
        );
    }
    if !bare.status.success() {
        return false;
    }
    // a depfile was written, or the comparison above says little
    let asks = flags
        .iter()
        .any(|f| f.contains("-MD") || f.contains("-MMD"));
    assert!(
        !asks
            || b.keys()
                .any(|p| p.starts_with("dep") || p.extension().is_some_and(|e| e == "d")),
        "{what}: no depfile in {:?}",
        names(&b)
    );
    let cwd = t.join("wrapped");
    // the flags that choose include directories, without the dependency options
    let mut m_flags: Vec<&str> = args[..2].to_vec();
    for (k, f) in flags.iter().enumerate() {
        if *f == "-nostdinc" || *f == "-isystem" || (k > 0 && flags[k - 1] == "-isystem") {
            m_flags.push(f);
        }
    }
    let want = gitoid_set(&dash_m(cc, &cwd, &m_flags, "src.c"), &cwd);
    assert!(want.len() >= if local { 3 } else { 10 }, "{what}: {want:?}");
    assert_eq!(
        manifest_inputs(&store, &cwd.join("obj/src.o")),
        want,
        "{what}: manifest vs {cc} -M"
    );
    true
}

/// Kbuild compiles with `-Wp,-MMD,dir/.file.o.d`, objtool's build with
/// `-Wp,-MD,path/.file.o.d -Wp,-MT,path/file.o`: each -Wp form is recorded with exactly the
/// files `-M` lists, and the user's depfile is what the bare compiler writes.
#[test]
fn wp_depfile_forms_recorded_and_depfile_unchanged() {
    for cc in ["gcc", "clang"] {
        for flags in [
            &["-Wp,-MD,dep/src.o.d"][..],
            &["-Wp,-MMD,dep/src.o.d"],
            &["-Wp,-MD,dep/src.o.d", "-Wp,-MT,obj/src.o"],
            &["-Wp,-MMD,dep/src.o.d", "-Wp,-MT,obj/src.o"],
            // comma-joined: gcc passes it all on; clang keeps -MMD and writes obj/src.d
            &["-Wp,-MMD,dep/src.o.d,-MT,obj/src.o"],
            &["-Wp,-MD,dep/src.o.d,-MQ,obj/$src.o"],
            &["-Wp,-MD,dep/src.o.d", "-Wp,-MQ,obj/$src.o", "-Wp,-MP"],
            &["-MD", "-Wp,-MQ,obj/$src.o"],
            &["-MMD", "-MP", "-MT", "obj/x.o"],
            &["-MMD", "-MF", "dep/src.d"],
        ] {
            assert!(depfile_form(cc, flags, false), "{cc} {flags:?} failed");
        }
        // -MT/-MQ without -MD: gcc refuses them (and must still refuse), clang records
        let ok = depfile_form(cc, &["-Wp,-MQ,obj/src.o"], false);
        assert_eq!(ok, cc == "clang", "{cc} -Wp,-MQ alone");
        // no system include directory (Kbuild's -nostdinc): -MMD is widened in place, the
        // depfile still the same bytes
        for flags in [
            &["-nostdinc", "-Wp,-MMD,dep/.src.o.d"][..],
            &["-nostdinc", "-MMD"],
        ] {
            assert!(depfile_form(cc, flags, true), "{cc} {flags:?} failed");
        }
        // a system directory given: -MMD leaves it out of the depfile, the manifest has it
        assert!(depfile_form(
            cc,
            &["-nostdinc", "-isystem", "sys", "-Wp,-MMD,dep/.src.o.d"],
            true
        ));
    }
}

/// -Wp dependency options we cannot follow pass through, logged with the reason.
#[test]
fn wp_forms_not_recorded_are_logged() {
    let t = Tmp::new();
    let store = t.join("store");
    t.write("x.c", "int x(void){return 1;}\n");
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .env("OMNIBOR_CC", "gcc")
            .args(["-c", "x.c", "-Wp,-M"]),
    );
    let log = std::fs::read_to_string(Store::at(&store).steps_log()).unwrap();
    let v: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(v["status"], "not recorded", "{log}");
    assert_eq!(v["reason"], "dependency option -M in -Wp,-M", "{log}");
}

/// A compiler wrapper script that writes the depfile it is given through a temporary file
/// renamed over the path (as some caches do) still gets a path it can do that with: the
/// shim's scratch files are memory files (`/proc/<pid>/fd/<n>`) only for compiler and linker
/// binaries, and the step's graph is what `gcc -M` says either way.
#[test]
fn a_wrapper_that_renames_over_the_depfile_still_works() {
    let gcc = need("gcc");
    let t = Tmp::new();
    let store = t.join("store");
    t.write("h.h", "#define ONE 1\n");
    t.write(
        "a.c",
        "#include \"h.h\"\n#include <stdio.h>\nint a(void){return ONE;}\n",
    );
    // -MF <file> goes to gcc as <file>.tmp, moved over <file> afterwards
    let script = t.write(
        "wrap/cc-renaming",
        format!(
            "#!/bin/sh\nmf=\nfor a in \"$@\"; do\n  if [ \"$prev\" = -MF ]; then mf=$a; fi\n  prev=$a\ndone\n\
             [ -n \"$mf\" ] || exec {gcc} \"$@\"\n\
             for a in \"$@\"; do\n  if [ \"$a\" = \"$mf\" ]; then set -- \"$@\" \"$mf.tmp\"; else set -- \"$@\" \"$a\"; fi\n  shift\ndone\n\
             {gcc} \"$@\" || exit $?\nmv \"$mf.tmp\" \"$mf\"\n",
            gcc = gcc.display()
        ),
    );
    run_ok(Command::new("chmod").arg("+x").arg(&script));
    for (tool, obj) in [(&gcc, "direct.o"), (&script, "wrapped.o")] {
        run_ok(
            shimmed(&t, "omnibor-cc", &store)
                .current_dir(t.path())
                .env("OMNIBOR_CC", tool)
                .env("OMNIBOR_STRICT", "1")
                .args(["-c", "a.c", "-o", obj]),
        );
        let want = gitoid_set(&dash_m("gcc", t.path(), &[], "a.c"), t.path());
        assert_eq!(manifest_inputs(&store, &t.join(obj)), want, "{obj}");
    }
}

/// A link tells its shared libraries apart from its other inputs by the hash cache's type
/// lines, without opening each input. A user's cache an older version wrote has no such
/// lines: the link then reads the inputs' headers, records exactly what it records with the
/// lines, and completes the cache (libc.so.6 said to be a shared library, crt1.o not).
#[test]
fn links_sort_shared_libraries_alike_with_and_without_type_lines_in_the_cache() {
    need("gcc");
    let t = Tmp::new();
    let user_cache = t.join("cache");
    t.write(
        "main.c",
        "#include <stdio.h>\nint main(void){puts(\"x\");return 0;}\n",
    );
    let link = |store: &Path| {
        let _ = std::fs::remove_file(t.join("prog"));
        run_ok(
            shimmed(&t, "omnibor-cc", store)
                .current_dir(t.path())
                .env("XDG_CACHE_HOME", &user_cache)
                .args(["main.c", "-o", "prog"]),
        );
        // the shared libraries kept beside the output, and its manifest's inputs
        let dynamic: Vec<Vec<u8>> = tree_of(&store.join("metadata/omnishim/dynamic"))
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect();
        (dynamic, manifest_inputs(store, &t.join("prog")))
    };
    let shards = user_cache.join("omnishim/hashcache");
    let first = link(&t.join("store1"));
    let libc = std::fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6")
        .or_else(|_| std::fs::canonicalize("/usr/lib/x86_64-linux-gnu/libc.so.6"))
        .unwrap();
    let records: Vec<String> = first
        .0
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(
        records.len() == 1 && records[0].contains("libc.so.6"),
        "{records:?}"
    );
    let type_lines = || -> Vec<String> {
        cache_lines(&shards)
            .into_iter()
            .filter(|l| l.contains("+type "))
            .collect()
    };
    let libc_ids = gitoid::ids_of_file(&libc).unwrap();
    let says = |ids: &gitoid::Ids, kind: &str| {
        let want = format!(" {} {} {kind}", ids.sha1.hex(), ids.sha256.hex());
        type_lines().iter().filter(|l| l.ends_with(&want)).count()
    };
    assert_eq!(says(&libc_ids, "dyn"), 1, "{:#?}", type_lines());
    // as an older version leaves the user's cache: no type lines, and no snapshot
    std::fs::remove_file(user_cache.join("omnishim/hashcache.snapshot")).unwrap();
    for e in std::fs::read_dir(&shards).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| !l.contains("+type "))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&p, kept).unwrap();
    }
    assert!(type_lines().is_empty());
    let second = link(&t.join("store2"));
    assert_eq!(first, second);
    // completed once, by the link that read the headers
    assert_eq!(says(&libc_ids, "dyn"), 1, "{:#?}", type_lines());
    let crt: Vec<PathBuf> = ["Scrt1.o", "crt1.o"]
        .iter()
        .map(|n| Path::new("/usr/lib/x86_64-linux-gnu").join(n))
        .filter(|p| p.exists())
        .collect();
    let not_shared: usize = crt
        .iter()
        .map(|p| says(&gitoid::ids_of_file(p).unwrap(), "elf"))
        .sum();
    assert!(not_shared >= 1, "{:#?}", type_lines());
    let third = link(&t.join("store3"));
    assert_eq!(first, third);
    assert_eq!(says(&libc_ids, "dyn"), 1);
}
