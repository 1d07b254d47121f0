//! Issue 6: `omnishim run` around the build systems people use, and ccache in the chain.

use crate::corpus::{check_all_notes, elf_files, wrapped_build};
use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn examples_copy(t: &Tmp) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dst = t.join("ex");
    run_ok(Command::new("cp").arg("-a").arg(&src).arg(&dst));
    let _ = std::fs::remove_dir_all(dst.join("build"));
    dst
}

fn check_programs(build: &Path) {
    let hello = elf_files(build)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "hello"))
        .expect("hello built");
    assert_eq!(
        stdout(&mut Command::new(&hello)),
        "hello, OMNIBOR! (2 words, digit sum 10)\n"
    );
}

#[test]
fn cmake_with_makefiles_and_with_ninja() {
    for gen in ["Unix Makefiles", "Ninja"] {
        let t = Tmp::new();
        let dir = examples_copy(&t);
        let store = t.join("store");
        let summary = wrapped_build(
            &dir,
            &store,
            &format!("cmake -S . -B b -G '{gen}' >/dev/null && cmake --build b >/dev/null"),
        );
        assert!(
            summary.contains("steps recorded; 0 not recorded"),
            "{gen}: {summary}"
        );
        let files = check_all_notes(&dir.join("b"), &store, &[]);
        assert!(files.len() >= 7, "{gen}: {files:?}");
        check_programs(&dir.join("b"));
        // CMake kept the shim path from configure time: a rebuild outside `omnishim run`
        // still records into the same store
        std::fs::write(
            dir.join("lib/numutil.c"),
            std::fs::read_to_string(dir.join("lib/numutil.c")).unwrap() + "\n/* touched */\n",
        )
        .unwrap();
        run_ok(
            Command::new("cmake")
                .args(["--build", "b"])
                .current_dir(&dir)
                .env_remove("OMNIBOR_DIR"),
        );
        check_all_notes(&dir.join("b"), &store, &[]);
    }
}

#[test]
fn meson_with_ninja() {
    let t = Tmp::new();
    let dir = examples_copy(&t);
    let store = t.join("store");
    let summary = wrapped_build(
        &dir,
        &store,
        "meson setup b >/dev/null && ninja -C b >/dev/null",
    );
    assert!(summary.contains("steps recorded"), "{summary}");
    check_all_notes(&dir.join("b"), &store, &[]);
    check_programs(&dir.join("b"));
}

#[test]
fn ccache_in_the_chain_records_hits_too() {
    let t = Tmp::new();
    let dir = examples_copy(&t);
    let ccache_dir = t.join("ccache");
    let mut notes = Vec::new();
    for round in 0..2 {
        let store = t.join(&format!("store{round}"));
        let build = t.join(&format!("build{round}"));
        // /usr/lib/ccache holds gcc, cc, g++ links to ccache; the shims come first
        let out = run_ok(
            omnishim(&["run", "--store"])
                .arg(&store)
                .args(["--", "make", "-s", "-C"])
                .arg(&dir)
                .arg(format!("O={}", build.display()))
                .env(
                    "PATH",
                    format!("/usr/lib/ccache:{}", std::env::var("PATH").unwrap()),
                )
                .env("CCACHE_DIR", &ccache_dir)
                .env_remove("CC")
                .env_remove("CXX"),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("steps recorded"), "{err}");
        check_all_notes(&build, &store, &[]);
        check_programs(&build);
        let shown = stdout(omnishim(&["note", "show"]).arg(build.join("app/hello.o")));
        // the IDs, without the path (each round builds in its own directory)
        notes.push(
            shown
                .lines()
                .map(|l| l.split_whitespace().next().unwrap().to_string())
                .collect::<Vec<_>>(),
        );
    }
    let stats = stdout(
        Command::new(need("ccache"))
            .arg("-s")
            .env("CCACHE_DIR", &ccache_dir),
    );
    let hits = stats
        .lines()
        .find(|l| l.trim_start().starts_with("Hits:") || l.contains("cache hit"))
        .unwrap_or_else(|| panic!("no hit line in ccache -s:\n{stats}"));
    assert!(
        !hits.split_whitespace().any(|w| w == "0"),
        "ccache had no hits: {hits}\n{stats}"
    );
    // same sources, same manifests, whether ccache compiled or replayed the object
    assert_eq!(notes[0], notes[1]);
}

#[test]
fn run_passes_the_exit_status_and_prints_a_summary() {
    let t = Tmp::new();
    t.write("x.c", "int x(void){return 1;}\n");
    let out = omnishim(&["run", "--store"])
        .arg(t.join("store"))
        .args([
            "--",
            "sh",
            "-c",
            "cc -c x.c && cc -S x.c -o - >/dev/null && exit 7",
        ])
        .current_dir(t.path())
        .env_remove("CC")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("omnishim: 1 steps recorded; 1 not recorded: 1 (output to standard output); 2 new manifests"), "{err}");
    assert!(
        err.contains(&format!("top-level outputs: {}", t.join("x.o").display())),
        "{err}"
    );
    // each step logs the shim process's own CPU time (children excluded); the summary adds
    // them up
    let log = std::fs::read_to_string(t.join("store/metadata/omnishim/steps.log")).unwrap();
    let mut total = 0;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let us = v["self_us"]
            .as_u64()
            .unwrap_or_else(|| panic!("no self_us: {line}"));
        // a process that ran, and a sane figure
        assert!(us > 0 && us < 2_000_000, "{line}");
        total += us;
    }
    assert!(
        err.contains(&format!(
            "the shims' own CPU time {:.2} s;",
            total as f64 / 1e6
        )),
        "{err}"
    );
}

/// A step that fails to record (the `omnishim: warning:` case: the build goes on) is in the
/// step log with the warning's text, and the summary counts it.
#[test]
fn a_step_that_fails_to_record_is_logged_and_counted() {
    let t = Tmp::new();
    t.write("x.c", "int x(void){return 1;}\n");
    t.write("y.c", "int y(void){return 2;}\n");
    // a compiler front end that drops the dependency-file options, as some vendor drivers
    // and old wrappers do: the object is built, the list of what it read is not
    let cc = t.write(
        "fe/cc",
        "#!/bin/bash\nout=()\nskip=0\nfor a in \"$@\"; do\n  \
         if [ $skip = 1 ]; then skip=0; continue; fi\n  \
         case \"$a\" in -MD|-MMD) continue;; -MF) skip=1; continue;; esac\n  \
         out+=(\"$a\")\ndone\nexec gcc \"${out[@]}\"\n",
    );
    std::fs::set_permissions(&cc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let store = t.join("store");
    let out = omnishim(&["run", "--store"])
        .arg(&store)
        .args(["--", "sh", "-c", "cc -c x.c && gcc -c y.c"])
        .current_dir(t.path())
        .env("PATH", path_with(&t.join("fe")))
        .env_remove("CC")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(t.join("x.o").exists() && t.join("y.o").exists());
    let warning = err
        .lines()
        .find(|l| l.starts_with("omnishim: warning: x.o: not recorded: "))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    let text = warning.trim_start_matches("omnishim: warning: x.o: not recorded: ");
    assert!(
        err.contains("omnishim: 1 steps recorded; 1 not recorded: 1 (x.o: "),
        "{err}"
    );
    let log = std::fs::read_to_string(store.join("metadata/omnishim/steps.log")).unwrap();
    let failed: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["status"] == "not recorded")
        .collect();
    assert_eq!(failed.len(), 1, "{log}");
    assert_eq!(failed[0]["reason"], format!("x.o: {text}"), "{log}");
    assert!(failed[0]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "x.c"));
    assert!(
        failed[0]["tool"].as_str().unwrap().ends_with("fe/cc"),
        "{log}"
    );
}

/// Compiler probes write to /dev/null: it is never an output (nothing stored, no note, not
/// in the path index, not a top-level output), stays a character device, and as a source
/// it is no input.
#[test]
fn dev_null_is_never_an_output_nor_an_input() {
    use std::os::unix::fs::FileTypeExt;
    let t = Tmp::new();
    t.write("x.c", "int x(void){return 1;}\n");
    let store = t.join("store");
    let out = omnishim(&["run", "--store"])
        .arg(&store)
        .args([
            "--",
            "sh",
            "-c",
            "gcc -S -o /dev/null -xc /dev/null && gcc -c -o /dev/null x.c \
             && gcc -c -xc /dev/null -o probe.o && gcc -c x.c",
        ])
        .current_dir(t.path())
        .env_remove("CC")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(
            "omnishim: 2 steps recorded; 2 not recorded: 2 (output is not a regular file);"
        ),
        "{err}"
    );
    let top = err.split("top-level outputs: ").nth(1).unwrap().trim();
    assert_eq!(
        top,
        format!(
            "{} {}",
            t.join("probe.o").display(),
            t.join("x.o").display()
        )
    );
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    let s = omnishim::store::Store::at(&store);
    let empty = omnishim::gitoid::ids_of_bytes(b"");
    assert!(s.paths_of(&empty.sha1).is_empty());
    assert!(s.get_target(&empty.sha1).is_none());
    let index = std::fs::read_dir(store.join("metadata/omnishim/paths"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(!index.contains("/dev/null"), "{index}");
    // the probe object read only what gcc -M lists besides the empty source
    let note = omnishim::elf::read_note_file(&t.join("probe.o")).unwrap();
    let m = s.get_manifest(&note.sha1.unwrap()).unwrap();
    let dash_m = stdout(Command::new("gcc").args(["-M", "-xc", "/dev/null"]));
    let want: std::collections::BTreeSet<_> = omnishim::depfile::prerequisites(&dash_m)
        .iter()
        .filter(|p| *p != "/dev/null")
        .map(|p| omnishim::gitoid::ids_of_file(Path::new(p)).unwrap().sha1)
        .collect();
    let got: std::collections::BTreeSet<_> = m.inputs.keys().copied().collect();
    assert_eq!(got, want);
    assert!(!got.contains(&empty.sha1));
}
