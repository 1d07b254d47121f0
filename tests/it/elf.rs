//! Issue 3: the note in real objects, executables and shared libraries from real toolchains.

use crate::util::*;
use omnishim::elf;
use omnishim::gitoid::{self, Id};
use std::path::{Path, PathBuf};
use std::process::Command;

const C_MAIN: &str =
    "#include <stdio.h>\n#include \"f.h\"\nint main(void){printf(\"f=%d\\n\", f(20));return 0;}\n";
const C_F: &str = "int f(int x){return x*2+2;}\n";
const CXX_MAIN: &str = "#include <iostream>\n#include <vector>\n#include <string>\n\
    template<class T> T twice(T x){return x+x;}\n\
    int main(){std::vector<std::string> v{\"a\",\"b\"}; std::cout << twice(v[0]) << v.size() << std::endl; return 0;}\n";

pub fn test_ids(tag: &str) -> (Id, Id) {
    let i = gitoid::ids_of_bytes(tag.as_bytes());
    (i.sha1, i.sha256)
}

/// `readelf -n`: no warnings, exactly one OMNIBOR entry per type, carrying these bytes.
pub fn check_readelf(readelf: &str, path: &Path, sha1: &Id, sha256: &Id) {
    let out = Command::new(need(readelf))
        .args(["-n", "--wide"])
        .arg(path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.is_empty(),
        "{readelf} -n {}: {err}",
        path.display()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let mut seen = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim_start().starts_with("OMNIBOR") {
            let size = l.split_whitespace().nth(1).unwrap().to_string();
            // with --wide the data shares the line, else it follows on the next one
            let holder = if l.contains("description data:") {
                l
            } else {
                lines[i + 1]
            };
            let data: String = holder
                .split_once("description data:")
                .map(|(_, d)| d)
                .unwrap_or("")
                .split_whitespace()
                .collect();
            seen.push((size, data));
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("0x00000014".to_string(), sha1.hex()),
            ("0x00000020".to_string(), sha256.hex())
        ],
        "{readelf} -n {}:\n{text}",
        path.display()
    );
    assert_eq!(elf::read_note_file(path).unwrap().sha1, Some(*sha1));
}

/// `eu-readelf -n` parses every note of the file (build-id included when asked).
fn check_eu_readelf(path: &Path, want_build_id: bool) {
    let out = Command::new(need("eu-readelf"))
        .arg("-n")
        .arg(path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "eu-readelf: {err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("OMNIBOR"), "{text}");
    if want_build_id {
        assert!(text.contains("Build ID: "), "build-id note lost:\n{text}");
    }
}

fn elflint(path: &Path) -> Vec<String> {
    let out = Command::new(need("eu-elflint"))
        .arg("--gnu-ld")
        .arg(path)
        .output()
        .unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .map(|l| l.replace(&name, "FILE"))
        // section and segment numbers shift by our section; compare the complaint itself
        .map(|l| l.split_once(": ").map(|(_, b)| b.to_string()).unwrap_or(l))
        .filter(|l| !l.contains("No errors"))
        .collect()
}

/// eu-elflint may complain of nothing beyond what the file without our note gets, except its
/// "unknown object file note type" lines for our entries. When the linker's own PT_NOTE is
/// already unwalkable (mold 1.10 aligns it to 8 around 4-aligned notes), its segment-walk
/// complaints shift with our bytes and are compared by presence only.
fn check_elflint(ours: &Path, bare: &Path) {
    let before = elflint(bare);
    let segment_broken = before.iter().any(|l| l.contains("after last note"));
    for l in elflint(ours) {
        if l.contains("unknown object file note type")
            && (l.contains("'OMNIBOR'") || l.contains("owner name ''"))
        {
            continue;
        }
        if segment_broken && (l.contains("after last note") || l.contains("owner name ''")) {
            continue;
        }
        assert!(
            before.contains(&l),
            "eu-elflint complains of {}: {l}",
            ours.display()
        );
    }
}

/// The note section lies inside a PT_NOTE segment (`readelf -lW` section-to-segment map).
fn check_in_pt_note(path: &Path) {
    let text = stdout(Command::new(need("readelf")).arg("-lW").arg(path));
    let headers: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("Program Headers"))
        .skip(2)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.contains("Requesting program interpreter"))
        .collect();
    let map: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("Section to Segment mapping"))
        .skip(2)
        .collect();
    let found = map.iter().any(|l| {
        let mut w = l.split_whitespace();
        let Some(idx) = w.next().and_then(|n| n.parse::<usize>().ok()) else {
            return false;
        };
        let secs: Vec<&str> = w.collect();
        secs.contains(&".note.omnibor")
            && headers
                .get(idx)
                .is_some_and(|h| h.trim_start().starts_with("NOTE"))
    });
    assert!(
        found,
        ".note.omnibor is in no PT_NOTE of {}:\n{text}",
        path.display()
    );
}

fn compile(cc: &str, flags: &[&str], src: &Path, out: &Path) {
    run_ok(
        Command::new(need(cc))
            .args(flags)
            .arg("-c")
            .arg(src)
            .arg("-o")
            .arg(out),
    );
}

fn run_prog(p: &Path) -> String {
    stdout(&mut Command::new(p))
}

#[test]
fn objects_from_gcc_and_clang() {
    let t = Tmp::new();
    t.write("f.h", "int f(int);\n");
    let c = t.write("main.c", C_MAIN);
    let f = t.write("f.c", C_F);
    let cxx = t.write("main.cpp", CXX_MAIN);
    let (s1, s2) = test_ids("objects");
    let mut cases: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for (cc, cxxc) in [("gcc", "g++"), ("clang", "clang++")] {
        for flags in [
            vec!["-O0", "-g3"],
            vec!["-O2", "-ffunction-sections"],
            vec!["-O2", "-fPIC"],
        ] {
            cases.push((cc, "c", flags.clone()));
            cases.push((cxxc, "cxx", flags));
        }
    }
    cases.push(("gcc", "c", vec!["-O2", "-flto"]));
    cases.push(("g++", "cxx", vec!["-O2", "-flto"]));
    for (i, (cc, lang, flags)) in cases.iter().enumerate() {
        let dir = t.join(&format!("c{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let objs: Vec<PathBuf> = if *lang == "c" {
            compile(cc, flags, &c, &dir.join("main.o"));
            compile(cc, flags, &f, &dir.join("f.o"));
            vec![dir.join("main.o"), dir.join("f.o")]
        } else {
            compile(cc, flags, &cxx, &dir.join("main.o"));
            vec![dir.join("main.o")]
        };
        let main_o = &objs[0];
        let bare = dir.join("bare.o");
        std::fs::copy(main_o, &bare).unwrap();
        let before = std::fs::read(main_o).unwrap();
        run_ok(
            omnishim(&["note", "embed"])
                .arg(main_o)
                .args(["--manifest", &s1.uri(), &s2.uri()]),
        );
        let after = std::fs::read(main_o).unwrap();
        assert_eq!(
            &after[64..before.len()],
            &before[64..],
            "{cc} {flags:?}: existing bytes changed"
        );
        check_readelf("readelf", main_o, &s1, &s2);
        check_eu_readelf(main_o, false);
        check_elflint(main_o, &bare);
        // Embedding again replaces the note, never adds a second.
        let (o1, o2) = test_ids("again");
        run_ok(
            omnishim(&["note", "embed"])
                .arg(main_o)
                .args(["--manifest", &o1.uri(), &o2.uri()]),
        );
        check_readelf("readelf", main_o, &o1, &o2);
        // The object still links and the program prints the same.
        let linker = if *lang == "c" { *cc } else { cc };
        let link = |objs: &[PathBuf], out: &Path| {
            run_ok(
                Command::new(linker)
                    .args(flags.iter().filter(|f| f.starts_with("-f")))
                    .args(objs)
                    .arg("-o")
                    .arg(out),
            );
        };
        let mut bare_objs = objs.clone();
        bare_objs[0] = bare.clone();
        link(&bare_objs, &dir.join("bare"));
        link(&objs, &dir.join("prog"));
        assert_eq!(
            run_prog(&dir.join("prog")),
            run_prog(&dir.join("bare")),
            "{cc} {flags:?}"
        );
    }
}

fn placeholder_for(obj: &Path, out: &Path) {
    run_ok(
        omnishim(&["note", "placeholder", "--like"])
            .arg(obj)
            .arg("-o")
            .arg(out),
    );
}

#[test]
fn linked_outputs_with_every_linker() {
    let t = Tmp::new();
    t.write("f.h", "int f(int);\n");
    let c = t.write("main.c", C_MAIN);
    let f = t.write("f.c", C_F);
    let (s1, s2) = test_ids("linked");
    let (in1, in2) = test_ids("input");
    for pic in [false, true] {
        let tag = if pic { "pic" } else { "nopic" };
        let flag = if pic { "-fPIC" } else { "-fno-pic" };
        compile("gcc", &[flag, "-O2"], &c, &t.join(&format!("main.{tag}.o")));
        compile("gcc", &[flag, "-O2"], &f, &t.join(&format!("f.{tag}.o")));
        // an input that carries a note of its own: the output must hold only ours
        run_ok(
            omnishim(&["note", "embed"])
                .arg(t.join(&format!("f.{tag}.o")))
                .args(["--manifest", &in1.uri(), &in2.uri()]),
        );
    }
    placeholder_for(&t.join("main.pic.o"), &t.join("ph.o"));
    for ld in ["bfd", "gold", "lld", "mold"] {
        for mode in ["pie", "no-pie", "static", "shared"] {
            let tag = if mode == "no-pie" || mode == "static" {
                "nopic"
            } else {
                "pic"
            };
            let objs: Vec<PathBuf> = if mode == "shared" {
                vec![t.join("f.pic.o")]
            } else {
                vec![
                    t.join(&format!("main.{tag}.o")),
                    t.join(&format!("f.{tag}.o")),
                ]
            };
            let name = format!("{ld}-{mode}");
            let link = |extra: &[PathBuf], out: &Path| {
                run_ok(
                    Command::new("gcc")
                        .arg(format!("-fuse-ld={ld}"))
                        .arg(format!("-{mode}"))
                        .arg("-Wl,--build-id")
                        .args(&objs)
                        .args(extra)
                        .arg("-o")
                        .arg(out),
                );
            };
            let bare = t.join(&format!("{name}.bare"));
            let out = t.join(&format!("{name}.out"));
            link(&[], &bare);
            link(&[t.join("ph.o")], &out);
            std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o751))
                .unwrap();
            run_ok(omnishim(&["note", "embed"]).arg(&out).args([
                "--manifest",
                &s1.uri(),
                &s2.uri(),
            ]));
            let mode_bits = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&out).unwrap().permissions(),
            );
            assert_eq!(mode_bits & 0o777, 0o751, "{name}: file mode changed");
            check_readelf("readelf", &out, &s1, &s2);
            check_eu_readelf(&out, true);
            check_in_pt_note(&out);
            check_elflint(&out, &bare);
            if mode != "shared" {
                assert_eq!(run_prog(&out), "f=42\n", "{name}");
            } else {
                // the library still loads and works
                let user = t.join(&format!("{name}.user"));
                run_ok(
                    Command::new("gcc")
                        .arg(t.join("main.pic.o"))
                        .arg(&out)
                        .arg("-o")
                        .arg(&user),
                );
                assert_eq!(run_prog(&user), "f=42\n", "{name}");
            }
        }
    }
}

/// Other targets: 32-bit little-endian, 64-bit arm, 64-bit big-endian. Compiled by clang for
/// the target and linked by that target's binutils `ld`, freestanding (no libc for the target
/// needed): the cross gcc packages conflict with gcc-multilib, which the distribution build
/// test needs for zlib's 32-bit variant.
#[test]
fn cross_targets_elf32_and_big_endian() {
    let t = Tmp::new();
    t.write("f.h", "int f(int);\n");
    let c = t.write(
        "main.c",
        "#include \"f.h\"\nint main(void){return f(20);}\n",
    );
    let (s1, s2) = test_ids("cross");
    for (triple, class, data) in [
        ("i686-linux-gnu", "ELF32", "little endian"),
        ("aarch64-linux-gnu", "ELF64", "little endian"),
        ("s390x-linux-gnu", "ELF64", "big endian"),
    ] {
        let target = format!("--target={triple}");
        let flags = ["-O2", "-ffreestanding", target.as_str()];
        let f = t.write(&format!("{triple}/f.c"), C_F);
        let obj = t.join(&format!("{triple}/main.o"));
        let fo = t.join(&format!("{triple}/f.o"));
        let inc = format!("-I{}", t.path().display());
        compile("clang", &[&flags[..], &[inc.as_str()]].concat(), &c, &obj);
        compile("clang", &flags, &f, &fo);
        let readelf = format!("{triple}-readelf");
        let header = stdout(Command::new(need(&readelf)).arg("-h").arg(&obj));
        assert!(
            header.contains(class) && header.contains(data),
            "{triple}: not {class} {data}:\n{header}"
        );
        run_ok(
            omnishim(&["note", "embed"])
                .arg(&fo)
                .args(["--manifest", &s1.uri(), &s2.uri()]),
        );
        check_readelf(&readelf, &fo, &s1, &s2);
        let ph = t.join(&format!("{triple}/ph.o"));
        placeholder_for(&obj, &ph);
        let prog = t.join(&format!("{triple}/prog"));
        run_ok(
            Command::new(need(&format!("{triple}-ld")))
                .args(["-e", "main", "--build-id"])
                .arg(&obj)
                .arg(&fo)
                .arg(&ph)
                .arg("-o")
                .arg(&prog),
        );
        run_ok(
            omnishim(&["note", "embed"])
                .arg(&prog)
                .args(["--manifest", &s1.uri(), &s2.uri()]),
        );
        check_readelf(&readelf, &prog, &s1, &s2);
        check_in_pt_note(&prog);
    }
}

#[test]
fn strip_and_objcopy_keep_the_note() {
    let t = Tmp::new();
    t.write("f.h", "int f(int);\n");
    let c = t.write("main.c", C_MAIN);
    let f = t.write("f.c", C_F);
    let (s1, s2) = test_ids("strip");
    compile("gcc", &["-g", "-O2"], &c, &t.join("main.o"));
    compile("gcc", &["-g", "-O2"], &f, &t.join("f.o"));
    placeholder_for(&t.join("main.o"), &t.join("ph.o"));
    let prog = t.join("prog");
    run_ok(
        Command::new("gcc")
            .arg(t.join("main.o"))
            .arg(t.join("f.o"))
            .arg(t.join("ph.o"))
            .arg("-o")
            .arg(&prog),
    );
    run_ok(
        omnishim(&["note", "embed"])
            .arg(&prog)
            .args(["--manifest", &s1.uri(), &s2.uri()]),
    );
    let variants: Vec<(&str, Vec<String>)> = vec![
        ("strip", vec![]),
        (
            "strip",
            vec![
                "--remove-section=.comment".into(),
                "--remove-section=.note".into(),
            ],
        ),
        ("eu-strip", vec![]),
        ("objcopy", vec!["--only-keep-debug".into()]),
    ];
    for (i, (tool, args)) in variants.iter().enumerate() {
        let out = t.join(&format!("v{i}"));
        if *tool == "objcopy" {
            run_ok(Command::new(need(tool)).args(args).arg(&prog).arg(&out));
        } else {
            run_ok(
                Command::new(need(tool))
                    .args(args)
                    .arg(&prog)
                    .arg("-o")
                    .arg(&out),
            );
        }
        let ids = elf::read_note_file(&out).unwrap();
        assert_eq!(
            (ids.sha1, ids.sha256),
            (Some(s1), Some(s2)),
            "{tool} {args:?}"
        );
        if *tool != "objcopy" {
            check_readelf("readelf", &out, &s1, &s2);
            assert_eq!(run_prog(&out), "f=42\n");
        }
    }
}

#[test]
fn not_elf_truncated_and_corrupt_give_one_line_errors() {
    let t = Tmp::new();
    let text = t.write("text.txt", "hello\n");
    let c = t.write("f.c", C_F);
    let obj = t.join("f.o");
    compile("gcc", &[], &c, &obj);
    let bytes = std::fs::read(&obj).unwrap();
    let trunc = t.write("trunc.o", &bytes[..40]);
    let mut bad = bytes.clone();
    bad[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes()); // e_shoff far past the end
    let bad = t.write("bad.o", bad);
    for (p, want) in [
        (&text, "not an ELF file"),
        (&trunc, "truncated"),
        (&bad, "truncated or corrupt"),
    ] {
        let out = omnishim(&["note", "show"]).arg(p).output().unwrap();
        // 2: an I/O or format error (1 until issue 14 gave "don't know" its own status)
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&p.display().to_string()) && err.contains(want),
            "{err}"
        );
    }
}
