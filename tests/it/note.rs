//! Issue 14: one note per linked output, of fixed size whatever the number of inputs, with
//! every linker, through `ld -r`, archives and linker scripts that gather notes.

use crate::util::*;
use object::{Object, ObjectSection, ObjectSegment};
use std::path::Path;
use std::process::Command;

/// OMNIBOR entries `readelf -n` finds anywhere in the file.
fn omnibor_entries(path: &Path) -> usize {
    let text = stdout(
        Command::new(need("readelf"))
            .args(["-n", "--wide"])
            .arg(path),
    );
    text.lines()
        .filter(|l| l.trim_start().starts_with("OMNIBOR "))
        .count()
}

/// Sum of the sizes of the allocated note sections, and of the loaded segments.
fn note_and_loaded_size(path: &Path) -> (u64, u64) {
    let data = std::fs::read(path).unwrap();
    let f = object::File::parse(&*data).unwrap();
    let notes = f
        .sections()
        .filter(|s| {
            matches!(
                s.flags(),
                object::SectionFlags::Elf { sh_flags } if sh_flags & 2 != 0
            ) && s.kind() == object::SectionKind::Note
        })
        .map(|s| s.size())
        .sum();
    let loaded = f.segments().map(|s| s.size()).sum();
    (notes, loaded)
}

/// Many sources, built in `dir` under the shims (or bare, for comparison): 12 objects linked
/// directly, 8 in an archive (of which the program needs 4), 8 combined by `ld -r`.
fn many_objects(t: &Tmp, store: &Path, dir: &Path, wrapped: bool) -> (Vec<String>, Vec<String>) {
    std::fs::create_dir_all(dir).unwrap();
    let tool = |shim: &str, bare: &str| {
        let mut c = if wrapped {
            shimmed(t, shim, store)
        } else {
            Command::new(bare)
        };
        c.current_dir(dir);
        c
    };
    let mut direct = Vec::new();
    let mut want = Vec::new();
    let mut calls = String::new();
    for k in 0..28 {
        let name = format!("s{k}.c");
        std::fs::write(
            dir.join(&name),
            format!("int f{k}(int x){{return x+{k};}}\n"),
        )
        .unwrap();
        run_ok(tool("omnibor-cc", "gcc").args(["-fPIC", "-O1", "-c", &name]));
        // the archive's odd members are not called: the linker leaves them out
        if k < 12 || (12..20).contains(&k) && k % 2 == 0 || k >= 20 {
            calls.push_str(&format!("extern int f{k}(int); s += f{k}(1);\n"));
            want.push(name.clone());
        }
        if k < 12 {
            direct.push(format!("s{k}.o"));
        }
    }
    let archive: Vec<String> = (12..20).map(|k| format!("s{k}.o")).collect();
    run_ok(
        tool("omnibor-ar", "ar")
            .args(["rcs", "libmany.a"])
            .args(&archive),
    );
    let relocs: Vec<String> = (20..28).map(|k| format!("s{k}.o")).collect();
    run_ok(
        tool("omnibor-ld", "ld")
            .args(["-r", "-o", "combined.o"])
            .args(&relocs),
    );
    std::fs::write(
        dir.join("main.c"),
        format!("int main(void){{int s=0;\n{calls}return s==0;}}\n"),
    )
    .unwrap();
    run_ok(tool("omnibor-cc", "gcc").args(["-fPIC", "-c", "main.c"]));
    want.push("main.c".into());
    want.sort();
    direct.push("combined.o".into());
    (direct, want)
}

/// The `.c` file names among `resolve --sources` lines, sorted.
fn c_sources(store: &Path, file: &Path) -> Vec<String> {
    let srcs = stdout(
        omnishim(&["resolve", "--sources", "--store"])
            .arg(store)
            .arg(file),
    );
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

#[test]
fn one_small_note_per_output_with_every_linker() {
    let t = Tmp::new();
    let store = t.join("store");
    let (w, b) = (t.join("wrapped"), t.join("bare"));
    let (direct, want) = many_objects(&t, &store, &w, true);
    many_objects(&t, &store, &b, false);
    // ld -r keeps one copy of the note in its COMDAT group
    assert_eq!(omnibor_entries(&w.join("combined.o")), 2);
    for ld in ["bfd", "gold", "lld", "mold"] {
        for (mode, extra) in [("exe", &[][..]), ("gc", &["-Wl,--gc-sections"][..])] {
            let out = w.join(format!("prog-{ld}-{mode}"));
            let bare = b.join(format!("prog-{ld}-{mode}"));
            let link = |mut c: Command, o: &Path| {
                run_ok(
                    c.current_dir(o.parent().unwrap())
                        .arg(format!("-fuse-ld={ld}"))
                        .args(extra)
                        .arg("main.o")
                        .args(&direct)
                        .arg("libmany.a")
                        .arg("-o")
                        .arg(o),
                );
            };
            link(shimmed(&t, "omnibor-cc", &store), &out);
            link(Command::new("gcc"), &bare);
            let what = format!("{ld} {mode}");
            assert_eq!(omnibor_entries(&out), 2, "{what}");
            let (n_ours, l_ours) = note_and_loaded_size(&out);
            let (n_bare, l_bare) = note_and_loaded_size(&bare);
            // our two entries and nothing else: 92 bytes of notes over the bare link
            assert_eq!(n_ours, n_bare + 92, "{what}");
            assert!(l_ours <= l_bare + 4096, "{what}: {l_ours} vs {l_bare}");
            assert_eq!(c_sources(&store, &out), want, "{what}");
            assert!(
                Command::new(&out).status().unwrap().success(),
                "{what}: program fails"
            );
        }
        // a shared library linked by the linker directly
        let so = w.join(format!("lib-{ld}.so"));
        let linker = match ld {
            "mold" => "mold".to_string(),
            other => format!("ld.{other}"),
        };
        run_ok(
            shimmed(&t, "omnibor-ld", &store)
                .current_dir(&w)
                .env("OMNIBOR_LD", need(&linker))
                .arg("-shared")
                .args(&direct)
                .arg("-o")
                .arg(&so),
        );
        assert_eq!(omnibor_entries(&so), 2, "{ld} -shared");
        let (n, _) = note_and_loaded_size(&so);
        assert!(n <= 128, "{ld} -shared: {n} bytes of notes");
    }
}

/// A linker script that gathers every `.note.*` into one `.notes` section, as the Linux
/// kernel's does: the output still gets its note, found inside `.notes`. (mold takes no
/// SECTIONS scripts.)
#[test]
fn notes_gathered_by_a_linker_script() {
    let t = Tmp::new();
    let store = t.join("store");
    let (w, b) = (t.join("wrapped"), t.join("bare"));
    let mut names: Vec<String> = Vec::new();
    for dir in [&w, &b] {
        std::fs::create_dir_all(dir).unwrap();
        names.clear();
        for k in 0..7 {
            let (name, text) = if k < 6 {
                (
                    format!("k{k}.c"),
                    format!("int k{k}(int x){{return x*{k};}}\n"),
                )
            } else {
                (
                    "start.c".to_string(),
                    "int k1(int);\nvoid _start(void){ for(;;) k1(3); }\n".to_string(),
                )
            };
            std::fs::write(dir.join(&name), text).unwrap();
            let mut c = if dir == &w {
                shimmed(&t, "omnibor-cc", &store)
            } else {
                Command::new("gcc")
            };
            run_ok(c.current_dir(dir).args(["-O1", "-fno-pic", "-c", &name]));
            names.push(name.replace(".c", ".o"));
        }
        // the kernel's scripts discard .note.GNU-stack, which would make .notes PROGBITS
        std::fs::write(
            dir.join("gather.lds"),
            "SECTIONS {\n  /DISCARD/ : { *(.note.GNU-stack) }\n  . = 0x400000;\n  \
             .text : { *(.text*) }\n  .notes : { KEEP(*(.note.*)) }\n  \
             .data : { *(.data*) *(.bss*) }\n  /DISCARD/ : { *(.comment) *(.eh_frame) }\n}\n",
        )
        .unwrap();
    }
    for ld in ["bfd", "gold", "lld"] {
        let out = w.join(format!("gathered-{ld}"));
        let bare = b.join(format!("gathered-{ld}"));
        let link = |mut c: Command, o: &Path| {
            run_ok(
                c.current_dir(o.parent().unwrap())
                    .args(["-nostdlib", "-static", "-no-pie", "-Wl,--build-id"])
                    .arg(format!("-fuse-ld={ld}"))
                    .arg("-Tgather.lds")
                    .args(&names)
                    .arg("-o")
                    .arg(o),
            );
        };
        link(shimmed(&t, "omnibor-cc", &store), &out);
        link(Command::new("gcc"), &bare);
        let sections = stdout(Command::new(need("readelf")).args(["-SW"]).arg(&out));
        assert!(!sections.contains(".note.omnibor"), "{ld}: {sections}");
        assert_eq!(omnibor_entries(&out), 2, "{ld}");
        let (n_ours, _) = note_and_loaded_size(&out);
        let (n_bare, _) = note_and_loaded_size(&bare);
        assert_eq!(n_ours, n_bare + 92, "{ld}");
        let mut want: Vec<String> = (0..6).map(|k| format!("k{k}.c")).collect();
        want.push("start.c".into());
        want.sort();
        assert_eq!(c_sources(&store, &out), want, "{ld}");
    }
}

/// An object that already carries a `.note.omnibor` outside our group (written by another
/// tool, or by an older omnishim) gets ours in the group; the old one is kept in the file but
/// excluded from links, so the linked output still holds only its own two entries.
#[test]
fn notes_outside_the_group_are_left_out_of_links() {
    let t = Tmp::new();
    let store = t.join("store");
    t.write(
        "old.s",
        "\t.section .note.omnibor,\"a\",%note\n\t.balign 4\n\
         \t.long 8, 20, 1\n\t.asciz \"OMNIBOR\"\n\t.fill 20, 1, 0x11\n\
         \t.text\n\t.globl old\nold:\n\tret\n\t.section .note.GNU-stack,\"\",%progbits\n",
    );
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-c", "old.s"]),
    );
    let sections = stdout(
        Command::new(need("readelf"))
            .args(["-SW"])
            .arg(t.join("old.o")),
    );
    let notes: Vec<&str> = sections
        .lines()
        .filter(|l| l.contains(".note.omnibor"))
        .collect();
    assert_eq!(notes.len(), 2, "{sections}");
    // the old one excluded (E), ours in the group (G) and retained (R)
    assert!(notes[0].contains(" AE "), "{sections}");
    assert!(notes[1].contains(" AGR "), "{sections}");
    let note = omnishim::elf::read_note_file(&t.join("old.o")).unwrap();
    assert!(note.sha1.is_some() && note.sha256.is_some());
    assert_ne!(note.sha1.unwrap().as_bytes(), &[0x11u8; 20][..]);
    t.write("m.c", "void old(void);\nint main(void){old();return 0;}\n");
    for ld in ["bfd", "gold", "lld", "mold"] {
        let out = format!("m-{ld}");
        run_ok(
            shimmed(&t, "omnibor-cc", &store)
                .current_dir(t.path())
                .arg(format!("-fuse-ld={ld}"))
                .args(["m.c", "old.o", "-o", &out]),
        );
        assert_eq!(omnibor_entries(&t.join(&out)), 2, "{ld}");
        let (n, _) = note_and_loaded_size(&t.join(&out));
        let (bare_n, _) = {
            let bare = t.join(&format!("bare-{ld}"));
            run_ok(
                Command::new("gcc")
                    .current_dir(t.path())
                    .arg(format!("-fuse-ld={ld}"))
                    .args(["m.c", "-x", "assembler", "old.s", "-o"])
                    .arg(&bare),
            );
            note_and_loaded_size(&bare)
        };
        // the bare link carries the old 40-byte note; ours carries our 92 bytes instead
        // (mold 1.10 ignores SHF_EXCLUDE: the old entry stays, turned into a padding note)
        let old_kept = if ld == "mold" { 40 } else { 0 };
        assert_eq!(n, bare_n - 40 + old_kept + 92, "{ld}");
    }
}

/// A linker script that discards every note (the kernel's realmode.lds): the output cannot
/// carry one, so it is recorded in the target index by its ID, and resolves like any file.
#[test]
fn outputs_whose_notes_are_discarded_are_recorded_by_id() {
    let t = Tmp::new();
    let store = t.join("store");
    t.write(
        "r.c",
        "int r(int x){return x+1;}\nvoid _start(void){ for(;;) r(1); }\n",
    );
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-O1", "-fno-pic", "-c", "r.c"]),
    );
    t.write(
        "nonotes.lds",
        "SECTIONS {\n  . = 0x1000;\n  .text : { *(.text*) }\n  .data : { *(.data*) *(.bss*) }\n  \
         /DISCARD/ : { *(.note*) *(.comment) *(.eh_frame) }\n}\n",
    );
    for ld in ["bfd", "gold", "lld"] {
        let out = format!("nonotes-{ld}.elf");
        let o = shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .env("OMNIBOR_STRICT", "1")
            .args(["-nostdlib", "-static", "-no-pie", "-Tnonotes.lds"])
            .arg(format!("-fuse-ld={ld}"))
            .args(["r.o", "-o", &out])
            .output()
            .unwrap();
        assert!(o.status.success(), "{ld}: {o:?}");
        // the linker may warn of its own (a discarded build-id note); we add nothing
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("omnishim:"), "{ld}: {err}");
        assert_eq!(omnibor_entries(&t.join(&out)), 0, "{ld}");
        assert_eq!(c_sources(&store, &t.join(&out)), ["r.c"], "{ld}");
    }
}
