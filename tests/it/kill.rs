//! Issue 15, items 3, 4 and 7: a killed build leaves no silent hole and no private
//! directories, `omnishim run` fails open, a strict failure removes its output, the hash
//! cache keeps one line per file version under -j, `id` goes on past a symlink loop.

use crate::util::*;
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A project of `progs` programs, each made of a main and `per` other sources sharing a
/// header; returns each program's path and its expected sources.
fn project(dir: &Path, progs: usize, per: usize) -> Vec<(PathBuf, BTreeSet<String>)> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("common.h"), "#define COMMON 7\n").unwrap();
    let mut mk = String::from("all:");
    for p in 0..progs {
        mk.push_str(&format!(" prog{p}"));
    }
    mk.push_str("\n%.o: %.c common.h\n\tgcc -c $< -o $@\n");
    let mut out = Vec::new();
    for p in 0..progs {
        let mut srcs = BTreeSet::new();
        let mut main = String::from("#include \"common.h\"\n");
        let mut objs = Vec::new();
        for i in 0..per {
            let name = format!("p{p}_f{i}.c");
            std::fs::write(
                dir.join(&name),
                format!("#include \"common.h\"\nint f_{p}_{i}(void) {{ return COMMON + {i}; }}\n"),
            )
            .unwrap();
            main.push_str(&format!("int f_{p}_{i}(void);\n"));
            srcs.insert(dir.join(&name).display().to_string());
            objs.push(format!("p{p}_f{i}.o"));
        }
        main.push_str("int main(void) { int s = 0;\n");
        for i in 0..per {
            main.push_str(&format!("s += f_{p}_{i}();\n"));
        }
        main.push_str("return s == 0; }\n");
        let m = format!("p{p}_main.c");
        std::fs::write(dir.join(&m), main).unwrap();
        srcs.insert(dir.join(&m).display().to_string());
        objs.push(format!("p{p}_main.o"));
        mk.push_str(&format!("prog{p}: {}\n\tgcc -o $@ $^\n", objs.join(" ")));
        out.push((dir.join(format!("prog{p}")), srcs));
    }
    std::fs::write(dir.join("Makefile"), mk).unwrap();
    out
}

/// What a killed step may leave in the private temporary directory.
fn leftovers(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Kill a process group whose leader we spawned.
fn kill_group(child: &mut std::process::Child) {
    // SAFETY: signalling the process group of a child we started in its own group
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.wait();
    // until every process of the group is gone (a CI job that was cancelled is over)
    for _ in 0..500 {
        // SAFETY: signal 0 only asks whether the group has a process
        if unsafe { libc::kill(-(child.id() as i32), 0) } != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_kill_as_the_compiler_exits_leaves_no_silent_hole() {
    let gcc = need("gcc");
    need("make");
    let t = Tmp::new();
    let store = t.join("store");
    let tmp = t.join("shm");
    std::fs::create_dir_all(&tmp).unwrap();
    let dir = t.join("src");
    let progs = project(&dir, 1, 3);
    let (prog, want) = &progs[0];
    // a stand-in compiler in front of gcc: it compiles, then kills the whole build (its
    // process group) as it exits, the first time it compiles p0_f0.c
    let standin = t.join("standin");
    std::fs::create_dir_all(&standin).unwrap();
    let mark = t.join("killed-once");
    let script = format!(
        "#!/bin/sh\n{gcc} \"$@\" || exit $?\ncase \" $* \" in *\" p0_f0.c \"*)\n  if [ ! -e {mark} ]; then\n    : > {mark}\n    read -r _ _ _ _ pgid _ < /proc/$$/stat\n    kill -9 -$pgid\n    sleep 5\n  fi;;\nesac\n",
        gcc = gcc.display(),
        mark = mark.display()
    );
    let sc = standin.join("gcc");
    std::fs::write(&sc, script).unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&sc));
    let shims = shim_dir(&t, &["gcc"]);
    let path = std::env::join_paths(
        [shims.clone(), standin.clone()]
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let make = |args: &[&str]| {
        let mut c = Command::new("make");
        c.args(args)
            .current_dir(&dir)
            .env("PATH", &path)
            .env("OMNIBOR_DIR", &store)
            .env("OMNISHIM_TMPDIR", &tmp)
            .env_remove("OMNIBOR_STRICT")
            .env_remove("OMNISHIM_CHAIN")
            .env_remove("MAKEFLAGS");
        c
    };
    let st = make(&[]).process_group(0).status().unwrap();
    assert!(!st.success(), "the build was to be killed");
    assert!(mark.exists() && dir.join("p0_f0.o").exists());
    // the rerun of make either redoes the object or says it is not recorded
    let out = make(&[]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let srcs = c_source_paths(&store, prog);
    let f0 = dir.join("p0_f0.o").display().to_string();
    assert!(
        srcs == *want || (err.contains(&f0) && err.contains("not recorded")),
        "rerun neither recorded p0_f0.c nor said p0_f0.o is not recorded: {srcs:?}\n{err}"
    );
    // and the build after that has the whole graph
    run_ok(&mut make(&[]));
    assert_eq!(c_source_paths(&store, prog), *want);
    assert_eq!(leftovers(&tmp), Vec::<String>::new());
    // the step log says what was marked
    let log = std::fs::read_to_string(store.join("metadata/omnishim/steps.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("\"interrupted\"") && l.contains("p0_f0.o")),
        "{log}"
    );
}

/// A small pseudo-random sequence (no dependency), seeded from the clock and printed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn random_kills_of_a_parallel_build_then_a_rerun_give_every_graph_whole() {
    need("gcc");
    need("make");
    let t = Tmp::new();
    let store = t.join("store");
    let tmp = t.join("shm");
    std::fs::create_dir_all(&tmp).unwrap();
    let dir = t.join("src");
    let progs = project(&dir, 4, 15);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut rng = Lcg(seed);
    let run = || {
        let mut c = omnishim(&["run", "--store"]);
        c.arg(&store)
            .args(["--", "make", "-j8"])
            .current_dir(&dir)
            .env("OMNISHIM_TMPDIR", &tmp)
            .env_remove("MAKEFLAGS")
            .env_remove("OMNISHIM_CHAIN")
            .env_remove("CC")
            .env_remove("CXX");
        c
    };
    let clean = || {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            if n.ends_with(".o") || n.starts_with("prog") {
                std::fs::remove_file(&p).unwrap();
            }
        }
    };
    for round in 0..6 {
        if round % 2 == 0 {
            clean();
        }
        let mut child = run()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30 + rng.next(1500)));
        kill_group(&mut child);
    }
    let out = run_ok(&mut run());
    let err = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(store.join("metadata/omnishim/steps.log")).unwrap();
    eprintln!(
        "{} outputs of killed steps marked out of date",
        log.matches("\"interrupted\"").count()
    );
    for (prog, want) in &progs {
        assert_eq!(
            c_source_paths(&store, prog),
            *want,
            "{}: {err}",
            prog.display()
        );
    }
    assert_eq!(leftovers(&tmp), Vec::<String>::new());
    // entries are kept for reuse once emptied: none may still name an output
    let named: Vec<_> = std::fs::read_dir(store.join("metadata/omnishim/inflight"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "lock" && e.metadata().unwrap().len() != 0)
        .map(|e| e.file_name())
        .collect();
    assert!(named.is_empty(), "journal entries left: {named:?}");
}

/// A directory nobody (uid 65534) may enter and read.
fn open_to_all(p: &Path) {
    run_ok(Command::new("chmod").arg("755").arg(p));
}

fn as_nobody(program: &Path) -> Command {
    let mut c = Command::new(need("setpriv"));
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(program)
        .env_remove("OMNIBOR_DIR")
        .env_remove("OMNIBOR_STRICT")
        .env_remove("OMNISHIM_CHAIN")
        .env_remove("MAKEFLAGS");
    c
}

#[test]
fn run_with_a_store_it_cannot_write_runs_the_build_unwrapped_with_one_warning() {
    need("make");
    need("cc");
    let t = Tmp::new();
    open_to_all(t.path());
    // a store owned by root, mode 0555: nobody cannot make the shim directory in it
    let store = t.join("store");
    std::fs::create_dir_all(&store).unwrap();
    run_ok(Command::new("chmod").arg("555").arg(&store));
    let dir = t.join("src");
    t.write("src/a.c", "int main(void) { return 0; }\n");
    t.write("src/Makefile", "a: a.c\n\tcc a.c -o a\n");
    run_ok(Command::new("chown").args(["-R", "65534:65534"]).arg(&dir));
    let out = as_nobody(&bin())
        .args(["run", "--store"])
        .arg(&store)
        .args(["--", "make"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(dir.join("a").is_file(), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("omnishim:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("warning"), "{err}");
    std::fs::remove_file(dir.join("a")).unwrap();
    // strict: an error, and the build does not run
    let out = as_nobody(&bin())
        .args(["run", "--store"])
        .arg(&store)
        .args(["--", "make"])
        .current_dir(&dir)
        .env("OMNIBOR_STRICT", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!dir.join("a").exists());
}

#[test]
fn a_strict_failure_to_record_removes_the_output() {
    need("cc");
    let t = Tmp::new();
    t.write("a.c", "int a(void) { return 1; }\n");
    // a store that is a file: recording fails after the compiler succeeded
    let store = t.write("not-a-store", "x");
    let out = shimmed(&t, "omnibor-cc", &store)
        .args(["-c", "a.c", "-o", "a.o"])
        .current_dir(t.path())
        .env("OMNIBOR_STRICT", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not recorded"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !t.join("a.o").exists(),
        "the unrecorded output is still there"
    );
    // not strict: the output stays, with a warning
    let out = shimmed(&t, "omnibor-cc", &store)
        .args(["-c", "a.c", "-o", "a.o"])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(t.join("a.o").is_file());
}

#[test]
fn id_of_a_directory_with_symlink_loops_lists_the_rest() {
    let t = Tmp::new();
    t.write("d/a.txt", "a");
    t.write("d/sub/b.txt", "b");
    std::os::unix::fs::symlink("loop", t.join("d/loop")).unwrap();
    std::os::unix::fs::symlink("..", t.join("d/sub/up")).unwrap();
    let out = omnishim(&["id"]).arg(t.join("d")).output().unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    for f in ["d/a.txt", "d/sub/b.txt"] {
        assert_eq!(
            so.lines()
                .filter(|l| l.ends_with(&t.join(f).display().to_string()))
                .count(),
            2,
            "{f}: {so}\n{se}"
        );
    }
    let loops: Vec<&str> = se.lines().filter(|l| l.contains("loop")).collect();
    assert_eq!(loops.len(), 2, "{se}");
    assert!(loops.iter().any(|l| l.contains("d/loop:")), "{se}");
    assert!(loops.iter().any(|l| l.contains("d/sub/up:")), "{se}");
    assert_eq!(se.lines().count(), 2, "{se}");
}

#[test]
fn the_hash_cache_has_one_line_per_file_version_under_j8() {
    need("gcc");
    need("make");
    let t = Tmp::new();
    let store = t.join("store");
    let dir = t.join("src");
    // 100 sources sharing their headers (and the system's)
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("common.h"),
        "#include <stdio.h>\n#include <stdlib.h>\n",
    )
    .unwrap();
    let mut mk = String::from("all:");
    for i in 0..100 {
        std::fs::write(
            dir.join(format!("f{i}.c")),
            format!("#include \"common.h\"\nint f{i}(void) {{ return {i}; }}\n"),
        )
        .unwrap();
        mk.push_str(&format!(" f{i}.o"));
    }
    mk.push_str("\n%.o: %.c\n\tgcc -c $< -o $@\n");
    std::fs::write(dir.join("Makefile"), mk).unwrap();
    run_ok(
        omnishim(&["run", "--store"])
            .arg(&store)
            .args(["--", "make", "-j8"])
            .current_dir(&dir)
            .env_remove("MAKEFLAGS")
            .env_remove("OMNISHIM_CHAIN"),
    );
    let mut keys = Vec::new();
    for e in std::fs::read_dir(store.join("metadata/omnishim/hashcache")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        keys.extend(
            text.lines()
                .map(|l| l.split(' ').next().unwrap().to_string()),
        );
    }
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert!(keys.len() > 100, "{}", keys.len());
    assert_eq!(keys.len(), unique.len(), "duplicate hash-cache lines");
}
