//! Issue 4: the driver classifier as a table (argv -> mode, outputs, depfile, sources), and
//! its output names checked against what `gcc -###` and `clang -###` say they would write.
//!
//! The rows restate, as our own data, the kinds of cases sccache's gcc/clang argument tests
//! and ccache's argument-processing tests cover: default output names, every -o form, -x
//! before and after inputs, the -MD/-MMD/-MF/-MT/-MQ/-Wp,-MD combinations, options whose value
//! is a separate argument, informational calls, stdin, several sources.

use crate::util::*;
use omnishim::classify::gcc::{classify, wp_strip_deps, DepPlan, Mode};
use std::collections::BTreeSet;
use std::process::Command;

/// argv | mode | outputs (space separated, "-" none) | user depfile ("-" none) | sources
const ROWS: &[(&str, &str, &str, &str, &str)] = &[
    ("-c foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -o foo.o", "compile", "foo.o", "-", "foo.c"),
    (
        "-c foo.c -o out/bar.o",
        "compile",
        "out/bar.o",
        "-",
        "foo.c",
    ),
    ("-c src/foo.c", "compile", "foo.o", "-", "src/foo.c"),
    ("-c -o foo.o foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-ofoo.o -c foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.cpp", "compile", "foo.o", "-", "foo.cpp"),
    ("-c foo.cc", "compile", "foo.o", "-", "foo.cc"),
    ("-c foo.cxx", "compile", "foo.o", "-", "foo.cxx"),
    ("-c foo.C", "compile", "foo.o", "-", "foo.C"),
    ("-c foo.c++", "compile", "foo.o", "-", "foo.c++"),
    ("-c foo.cp", "compile", "foo.o", "-", "foo.cp"),
    ("-c foo.CPP", "compile", "foo.o", "-", "foo.CPP"),
    ("-c foo.i", "compile", "foo.o", "-", "foo.i"),
    ("-c foo.ii", "compile", "foo.o", "-", "foo.ii"),
    ("-c foo.s", "compile", "foo.o", "-", "foo.s"),
    ("-c foo.S", "compile", "foo.o", "-", "foo.S"),
    ("-c foo.sx", "compile", "foo.o", "-", "foo.sx"),
    ("-c foo.m", "compile", "foo.o", "-", "foo.m"),
    ("-c foo.mm", "compile", "foo.o", "-", "foo.mm"),
    ("-c a.c b.c", "compile", "a.o b.o", "-", "a.c b.c"),
    ("-c a.c b.c -o x.o", "unsupported", "-", "-", "a.c b.c"),
    (
        "-c dir.with.dots/foo.c",
        "compile",
        "foo.o",
        "-",
        "dir.with.dots/foo.c",
    ),
    ("-c foo", "nooutput", "-", "-", "-"),
    ("-c foo.o", "nooutput", "-", "-", "-"),
    ("-c", "info", "-", "-", "-"),
    ("foo.c", "compilelink", "a.out", "-", "foo.c"),
    ("foo.c -o prog", "compilelink", "prog", "-", "foo.c"),
    ("a.o b.o -o prog", "link", "prog", "-", "-"),
    ("a.o", "link", "a.out", "-", "-"),
    ("a.o -lm -o p", "link", "p", "-", "-"),
    ("-lm a.o", "link", "a.out", "-", "-"),
    ("-shared -fPIC a.o -o libx.so", "link", "libx.so", "-", "-"),
    ("-static a.o -o p", "link", "p", "-", "-"),
    ("-r a.o b.o -o ab.o", "link", "ab.o", "-", "-"),
    ("-S foo.c", "assemble", "foo.s", "-", "foo.c"),
    ("-S foo.c -o out.s", "assemble", "out.s", "-", "foo.c"),
    ("-S a.c b.c", "assemble", "a.s b.s", "-", "a.c b.c"),
    ("-E foo.c", "preprocess", "-", "-", "foo.c"),
    ("-E foo.c -o foo.i", "preprocess", "-", "-", "foo.c"),
    ("-M foo.c", "preprocess", "-", "-", "foo.c"),
    ("-MM foo.c", "preprocess", "-", "-", "foo.c"),
    ("-M -MF d foo.c", "preprocess", "-", "-", "foo.c"),
    ("-fsyntax-only foo.c", "nooutput", "-", "-", "foo.c"),
    ("--version", "info", "-", "-", "-"),
    ("-v", "info", "-", "-", "-"),
    ("-dumpmachine", "info", "-", "-", "-"),
    ("-dumpversion", "info", "-", "-", "-"),
    ("-dumpfullversion", "info", "-", "-", "-"),
    ("-print-file-name=crt1.o", "info", "-", "-", "-"),
    ("-print-search-dirs", "info", "-", "-", "-"),
    ("-print-prog-name=ld", "info", "-", "-", "-"),
    ("-print-multiarch", "info", "-", "-", "-"),
    ("--print-file-name=libc.so", "info", "-", "-", "-"),
    ("--help", "info", "-", "-", "-"),
    ("-### -c foo.c", "info", "-", "-", "foo.c"),
    ("", "info", "-", "-", "-"),
    ("-v -c foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-O2 -Wall -g", "info", "-", "-", "-"),
    ("-x c -c foo.txt", "compile", "foo.o", "-", "foo.txt"),
    ("-x c++ -c foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.txt -x c", "nooutput", "-", "-", "-"),
    (
        "-x c -c a.txt -x none b.c",
        "compile",
        "a.o b.o",
        "-",
        "a.txt b.c",
    ),
    ("-xc -c foo.h1", "compile", "foo.o", "-", "foo.h1"),
    ("-x c-header -c foo.h", "compile", "foo.h.gch", "-", "foo.h"),
    ("-c foo.h", "compile", "foo.h.gch", "-", "foo.h"),
    (
        "-c inc/foo.hpp",
        "compile",
        "inc/foo.hpp.gch",
        "-",
        "inc/foo.hpp",
    ),
    ("foo.h", "compile", "foo.h.gch", "-", "foo.h"),
    (
        "-x c-header foo.h -o pch/foo.h.gch",
        "compile",
        "pch/foo.h.gch",
        "-",
        "foo.h",
    ),
    ("-x assembler -c foo.x", "compile", "foo.o", "-", "foo.x"),
    (
        "-x assembler-with-cpp -c foo.x",
        "compile",
        "foo.o",
        "-",
        "foo.x",
    ),
    ("-x c -", "unsupported", "-", "-", "-"),
    ("-E -x c -", "preprocess", "-", "-", "-"),
    ("-c -x c - -o out.o", "unsupported", "-", "-", "-"),
    ("-c foo.c -o", "unsupported", "-", "-", "foo.c"),
    ("--output=x.o -c foo.c", "compile", "x.o", "-", "foo.c"),
    ("--output x.o -c foo.c", "compile", "x.o", "-", "foo.c"),
    ("-o x.o -o y.o -c foo.c", "compile", "y.o", "-", "foo.c"),
    ("-c foo.c -o -", "unsupported", "-", "-", "foo.c"),
    ("foo.c -o -", "unsupported", "-", "-", "foo.c"),
    ("-c foo.c -MD", "compile", "foo.o", "foo.d", "foo.c"),
    ("-c foo.c -MMD", "compile", "foo.o", "foo.d", "foo.c"),
    (
        "-c foo.c -o out/foo.o -MD",
        "compile",
        "out/foo.o",
        "out/foo.d",
        "foo.c",
    ),
    (
        "-c foo.c -o out/foo.obj -MD",
        "compile",
        "out/foo.obj",
        "out/foo.d",
        "foo.c",
    ),
    (
        "-c foo.c -o out/foo -MD",
        "compile",
        "out/foo",
        "out/foo.d",
        "foo.c",
    ),
    (
        "-c foo.c -MD -MF deps/foo.dep",
        "compile",
        "foo.o",
        "deps/foo.dep",
        "foo.c",
    ),
    (
        "-c foo.c -MD -MFdeps.d",
        "compile",
        "foo.o",
        "deps.d",
        "foo.c",
    ),
    (
        "-c foo.c -MMD -MF x.d -MT tgt",
        "compile",
        "foo.o",
        "x.d",
        "foo.c",
    ),
    ("-c foo.c -MD -MQ q", "compile", "foo.o", "foo.d", "foo.c"),
    ("-c foo.c -MD -MP", "compile", "foo.o", "foo.d", "foo.c"),
    (
        "-c foo.c -MD -MT a -MT b",
        "compile",
        "foo.o",
        "foo.d",
        "foo.c",
    ),
    (
        "-c foo.c -Wp,-MD,dep.d",
        "compile",
        "foo.o",
        "dep.d",
        "foo.c",
    ),
    (
        "-c foo.c -Wp,-MMD,dep.d",
        "compile",
        "foo.o",
        "dep.d",
        "foo.c",
    ),
    // gcc writes dep.d, clang foo.d: no fixed name (the step asks `-M` again)
    (
        "-c foo.c -Wp,-MD,dep.d,-MT,x",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    (
        "-c foo.c -Wp,-MD,dep.d -Wp,-MT,x",
        "compile",
        "foo.o",
        "dep.d",
        "foo.c",
    ),
    (
        "-c foo.c -Wp,-MMD,dep.d -Wp,-MQ,x -Wp,-MP",
        "compile",
        "foo.o",
        "dep.d",
        "foo.c",
    ),
    ("-c foo.c -Wp,-MQ,x", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -Wp,-MF,x.d", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -Wp,-M", "unsupported", "-", "-", "foo.c"),
    ("-c foo.c -Wp,-MMD", "unsupported", "-", "-", "foo.c"),
    ("-c foo.c -Wp,-MD,d.d,-MG", "unsupported", "-", "-", "foo.c"),
    ("-c foo.c -Wp,-DFOO", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -MF x.d", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -MT x", "compile", "foo.o", "-", "foo.c"),
    ("-S foo.c -MD", "assemble", "foo.s", "foo.d", "foo.c"),
    ("-c foo.c -M", "preprocess", "-", "-", "foo.c"),
    ("foo.c -MD -o prog", "compilelink", "prog", "-", "foo.c"),
    (
        "foo.c -MD -MF d.d -o prog",
        "compilelink",
        "prog",
        "d.d",
        "foo.c",
    ),
    (
        "foo.c -c -o x.o -MMD -MF x.d",
        "compile",
        "x.o",
        "x.d",
        "foo.c",
    ),
    (
        "-c foo.c -o foo.o -MD -MF /abs/foo.d",
        "compile",
        "foo.o",
        "/abs/foo.d",
        "foo.c",
    ),
    ("-c foo.c -I inc", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -include pre.h", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -isystem /x", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -D X", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -U X", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -idirafter d", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -imacros m.h", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -iquote q", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -isysroot s", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -iprefix p", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -iwithprefix p", "compile", "foo.o", "-", "foo.c"),
    (
        "-c foo.c -iwithprefixbefore p",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    (
        "-c foo.c --param max-inline-insns-single=1000",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    ("-c foo.c --sysroot /sr", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c --sysroot=/sr", "compile", "foo.o", "-", "foo.c"),
    (
        "-c foo.c -Xclang -load -Xclang plugin.so",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    (
        "-c foo.c -Xpreprocessor -DX",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    (
        "-c foo.c -Xassembler --noexecstack",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    (
        "a.o -Xlinker -rpath -Xlinker /x -o p",
        "link",
        "p",
        "-",
        "-",
    ),
    (
        "-c foo.c -aux-info aux.txt",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    (
        "-c foo.c -target x86_64-linux-gnu",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    ("-c foo.c -arch x86_64", "compile", "foo.o", "-", "foo.c"),
    (
        "-c foo.c -mllvm -inline-threshold=10",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    ("-c foo.c -B /opt/bin", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -dumpbase foo", "compile", "foo.o", "-", "foo.c"),
    ("-c foo.c -dumpdir d/", "compile", "foo.o", "-", "foo.c"),
    ("a.o -L lib -l m -o p", "link", "p", "-", "-"),
    ("a.o -T script.ld -o p", "link", "p", "-", "-"),
    ("a.o -u sym -o p", "link", "p", "-", "-"),
    ("a.o -z now -o p", "link", "p", "-", "-"),
    (
        "-c foo.c -gcc-toolchain /t",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    ("-c foo.c -MJ db.json", "compile", "foo.o", "-", "foo.c"),
    (
        "-c foo.c -include-pch pre.pch",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    (
        "-c foo.c --serialize-diagnostics d.dia",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    ("-c -O2 foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c -g foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c -fPIC foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c -Wall foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c -std=c11 foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c -pipe foo.c", "compile", "foo.o", "-", "foo.c"),
    (
        "-c -fprofile-generate foo.c",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    ("-c --coverage foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c -gsplit-dwarf foo.c", "compile", "foo.o", "-", "foo.c"),
    (
        "-c -fdiagnostics-color=always foo.c",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    ("-c -save-temps foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c -flto foo.c", "compile", "foo.o", "-", "foo.c"),
    (
        "-c -ffunction-sections -fdata-sections foo.c",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    ("-c -m32 foo.c", "compile", "foo.o", "-", "foo.c"),
    (
        "-c -march=x86-64-v2 foo.c",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    ("-c -Werror=format foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c -Wl,--as-needed foo.c", "compile", "foo.o", "-", "foo.c"),
    (
        "-c -Wa,--noexecstack foo.c",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    ("-c -rdynamic foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c -static foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c -nostdinc foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c -undef foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c -- foo.c", "compile", "foo.o", "-", "foo.c"),
    ("-c -- -foo.c", "compile", "-foo.o", "-", "-foo.c"),
    ("-lfoo -o p", "link", "p", "-", "-"),
    ("-r -o ab.o a.o b.o", "link", "ab.o", "-", "-"),
    ("-nostdlib a.o -o p", "link", "p", "-", "-"),
    ("-c foo.c bar.o", "compile", "foo.o", "-", "foo.c"),
    ("foo.c bar.o -o p", "compilelink", "p", "-", "foo.c"),
    ("-c ./foo.c", "compile", "foo.o", "-", "./foo.c"),
    (
        "-c ../src/foo.c -o ../obj/foo.o",
        "compile",
        "../obj/foo.o",
        "-",
        "../src/foo.c",
    ),
    ("-c foo.c -o foo", "compile", "foo", "-", "foo.c"),
    (
        "-x c++-header -c foo.hh -o foo.hh.gch",
        "compile",
        "foo.hh.gch",
        "-",
        "foo.hh",
    ),
    ("-S -x c foo.in", "assemble", "foo.s", "-", "foo.in"),
    ("-c foo.F90", "compile", "foo.o", "-", "foo.F90"),
    ("-E -c foo.c", "preprocess", "-", "-", "foo.c"),
    ("-c -S foo.c", "assemble", "foo.s", "-", "foo.c"),
    ("-fsyntax-only -c foo.c", "nooutput", "-", "-", "foo.c"),
    (
        "-c foo.c -fsanitize=address -fno-omit-frame-pointer",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    (
        "-c foo.c -DNAME=\\\"x\\\"",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    (
        "-c foo.c -I. -Iinclude -I../x",
        "compile",
        "foo.o",
        "-",
        "foo.c",
    ),
    (
        "-fPIC -shared a.c b.c -o libab.so",
        "compilelink",
        "libab.so",
        "-",
        "a.c b.c",
    ),
    ("a.c b.c", "compilelink", "a.out", "-", "a.c b.c"),
    ("-c -MD a.c b.c", "compile", "a.o b.o", "-", "a.c b.c"),
];

fn mode_name(m: &Mode) -> &'static str {
    match m {
        Mode::Compile => "compile",
        Mode::Assemble => "assemble",
        Mode::Preprocess => "preprocess",
        Mode::NoOutput => "nooutput",
        Mode::CompileLink => "compilelink",
        Mode::Link => "link",
        Mode::Info => "info",
        Mode::Unsupported(_) => "unsupported",
    }
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn list(s: &str) -> Vec<String> {
    if s == "-" {
        Vec::new()
    } else {
        words(s)
    }
}

#[test]
fn classifier_table() {
    assert!(ROWS.len() >= 150, "{} rows", ROWS.len());
    eprintln!("{} classifier rows", ROWS.len());
    let mut failures = Vec::new();
    for (argv, mode, outs, dep, srcs) in ROWS {
        let st = classify(&words(argv));
        let got_mode = mode_name(&st.mode);
        let got_outs = st.outputs();
        let got_dep = st.user_depfile().unwrap_or_else(|| "-".into());
        let got_srcs: Vec<String> = st.sources.iter().map(|s| s.path.clone()).collect();
        // sources are compared where the step compiles or links something
        let want_srcs = if matches!(*mode, "unsupported" | "info" | "preprocess") {
            got_srcs.clone()
        } else {
            list(srcs)
        };
        let ok = got_mode == *mode
            && got_outs == list(outs)
            && (got_mode != "compile" && got_mode != "assemble" && got_mode != "compilelink"
                || got_dep == *dep)
            && got_srcs == want_srcs;
        if !ok {
            failures.push(format!(
                "{argv:?}: got {got_mode} {got_outs:?} dep {got_dep} srcs {got_srcs:?}, want {mode} {outs} dep {dep} srcs {srcs}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The relative `-o` targets in what `<cc> -###` prints: the files the driver writes.
fn driver_outputs(cc: &str, dir: &std::path::Path, argv: &[String]) -> Option<BTreeSet<String>> {
    let out = Command::new(need(cc))
        .current_dir(dir)
        .arg("-###")
        .args(argv)
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stderr);
    if text.contains("error:") {
        return None; // gcc -### exits 0 even for options it rejects (e.g. `--`)
    }
    let mut set = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with(' ')) {
        let toks = omnishim::classify::rsp::tokenize(line);
        for (k, t) in toks.iter().enumerate() {
            match t.strip_prefix("--output-pch=") {
                Some("") => set.extend(toks.get(k + 1).cloned()),
                Some(p) => {
                    set.insert(p.to_string());
                }
                None => {}
            }
        }
        // a tool given -o twice writes the last one
        let last_o = toks
            .windows(2)
            .filter(|w| w[0] == "-o")
            .map(|w| w[1].clone())
            .next_back();
        if let Some(o) = last_o.filter(|o| !o.starts_with('/') && o != "-") {
            set.insert(o);
        }
    }
    Some(set)
}

#[test]
fn outputs_match_gcc_and_clang_dry_runs() {
    let t = Tmp::new();
    for f in [
        "foo.c",
        "a.c",
        "b.c",
        "src/foo.c",
        "dir.with.dots/foo.c",
        "foo.cpp",
        "foo.cc",
        "foo.s",
        "foo.S",
        "foo.h",
        "inc/foo.hpp",
        "foo.txt",
        "a.txt",
        "foo.i",
        "a.o",
        "b.o",
        "bar.o",
        "foo.hh",
        "foo.in",
    ] {
        t.write(f, "");
    }
    std::fs::create_dir_all(t.join("out")).unwrap();
    let mut checked = 0;
    for cc in ["gcc", "clang"] {
        for (argv, mode, outs, _, _) in ROWS {
            if !matches!(*mode, "compile" | "assemble" | "link" | "compilelink")
                || argv.contains("save-temps")
                || argv.contains("-arch")
                || argv.contains("-gcc-toolchain")
                || argv.contains("-Xclang")
                || argv.contains("-mllvm")
                || argv.contains("-MJ")
                || argv.contains("-include-pch")
                || argv.contains("--serialize-diagnostics")
                || argv.contains("-target")
                || argv.contains(".F90")
                || argv.contains(".m")
                || argv.contains("-gsplit-dwarf")
                || argv.contains("--coverage")
                || argv.contains("profile")
                || argv.contains("-flto")
            {
                continue;
            }
            let argv = words(argv);
            let Some(mut got) = driver_outputs(cc, t.path(), &argv) else {
                continue;
            };
            // collect2 writes a.out by default without naming it
            let last_is_link = matches!(*mode, "link" | "compilelink")
                && !argv.iter().any(|a| a.starts_with("-o"));
            if got.is_empty() && last_is_link {
                got.insert("a.out".into());
            }
            let ours: BTreeSet<String> = list(outs).into_iter().collect();
            assert_eq!(got, ours, "{cc} -### {argv:?}");
            checked += 1;
        }
    }
    assert!(checked >= 120, "only {checked} rows checked against -###");
    eprintln!("{checked} (row, driver) pairs checked against -###");
}

/// How a one-source compile gets its list of inputs: from the user's depfile when that
/// lists everything, widened from -MMD only where no system header can be left out,
/// otherwise from a separate `-M` run (the user's depfile untouched).
#[test]
fn depfile_plans() {
    let user = |f: &str| DepPlan::User(f.into());
    let widen = |f: &str| DepPlan::Widen(f.into());
    for (argv, want) in [
        ("-c a.c", DepPlan::Private),
        ("-c a.c -MD", user("a.d")),
        ("-c a.c -MD -MF x.d -MT t", user("x.d")),
        ("-c a.c -Wp,-MD,.a.o.d", user(".a.o.d")),
        ("-c a.c -Wp,-MD,.a.o.d -Wp,-MT,a.o", user(".a.o.d")),
        ("-c a.c -Wp,-MD,.a.o.d -Wp,-DX,-MQ,a.o", user(".a.o.d")),
        ("-c a.c -Wp,-MMD,.a.o.d", DepPlan::Rerun),
        ("-c a.c -MMD", DepPlan::Rerun),
        ("-nostdinc -c a.c -Wp,-MMD,.a.o.d", widen(".a.o.d")),
        ("-nostdinc -c a.c -MMD -MF x.d", widen("x.d")),
        ("-nostdinc -isystem i -c a.c -MMD", DepPlan::Rerun),
        ("-nostdinc -idirafter i -c a.c -MMD", DepPlan::Rerun),
        ("-nostdinc -Wp,-isystem,i -c a.c -MMD", DepPlan::Rerun),
        ("-nostdinc -Bx -c a.c -MMD", DepPlan::Rerun),
        ("-c a.c -Wp,-MMD,d,-MT,t", DepPlan::Rerun),
        ("-c a.c -Wp,-MF,d", DepPlan::Rerun),
        ("-c a.c -MT t", DepPlan::Rerun),
        ("-c a.c -Wp,-MQ,t", DepPlan::Rerun),
        ("-c a.c b.c -MD", DepPlan::Rerun),
    ] {
        assert_eq!(classify(&words(argv)).deps_plan(false), want, "{argv}");
    }
    // the environment's system directories (C_INCLUDE_PATH) count too
    assert_eq!(
        classify(&words("-nostdinc -c a.c -MMD")).deps_plan(true),
        DepPlan::Rerun
    );
    assert_eq!(wp_strip_deps("-Wp,-MD,d.d"), None);
    assert_eq!(
        wp_strip_deps("-Wp,-MD,d.d,-DX,-MT,t,-I,inc"),
        Some("-Wp,-DX,-I,inc".into())
    );
    assert_eq!(wp_strip_deps("-Wp,-MTt,-MP,-UY"), Some("-Wp,-UY".into()));
}
