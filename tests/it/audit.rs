//! Issue 14 item 6: `omnishim audit` of relocatable objects (`gcc -c`, `clang -c`, `ld -r`)
//! applies the DWARF sections' relocations, with DWARF 4 and 5.

use crate::util::*;
use omnishim::audit::dwarf_sources;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sources(file: &Path) -> BTreeSet<PathBuf> {
    let bytes = std::fs::read(file).unwrap();
    dwarf_sources(&bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn audit(store: &Path, file: &Path) -> Output {
    omnishim(&["audit", "--store"])
        .arg(store)
        .arg(file)
        .output()
        .unwrap()
}

fn assert_clean(what: &str, out: &Output) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{what}: {text}");
    assert!(!text.contains("missing from the graph:"), "{what}: {text}");
    assert!(!text.contains("not on this machine:"), "{what}: {text}");
}

/// Sources whose abbreviation tables differ (a struct, a float, a header's inline function),
/// so that a second unit read with the first one's abbreviations fails or reads garbage.
fn write_sources(t: &Tmp) {
    t.write("inc/a.h", "static inline int twice(int x){return 2*x;}\n");
    t.write(
        "a.c",
        "#include \"inc/a.h\"\nint a(int v){return twice(v);}\n",
    );
    t.write(
        "s.S",
        ".text\n.globl asmf\nasmf:\n\tret\n.section .note.GNU-stack,\"\",%progbits\n",
    );
    t.write(
        "sub/b.c",
        "struct p { double x; float y; };\ndouble b(struct p *q){return q->x + q->y;}\n",
    );
}

#[test]
fn audit_of_relocatable_objects_names_their_sources() {
    for cc in ["gcc", "clang"] {
        need(cc);
        for dwarf in ["-gdwarf-4", "-gdwarf-5"] {
            let what = format!("{cc} {dwarf}");
            let t = Tmp::new();
            let store = t.join("store");
            write_sources(&t);
            for (src, obj) in [("a.c", "a.o"), ("sub/b.c", "sub/b.o"), ("s.S", "s.o")] {
                run_ok(
                    shimmed(&t, "omnibor-cc", &store)
                        .current_dir(t.path())
                        .env("OMNIBOR_CC", cc)
                        .args(["-g", dwarf, "-c", src, "-o", obj]),
                );
            }
            let a = sources(&t.join("a.o"));
            assert!(a.contains(&t.join("a.c")), "{what}: {a:?}");
            assert!(a.contains(&t.join("inc/a.h")), "{what}: {a:?}");
            assert!(
                a.iter().all(|p| p.exists()),
                "{what}: a path DWARF names is wrong: {a:?}"
            );
            let b = sources(&t.join("sub/b.o"));
            assert!(b.contains(&t.join("sub/b.c")), "{what}: {b:?}");
            assert_clean(&format!("{what} a.o"), &audit(&store, &t.join("a.o")));
            assert_clean(&format!("{what} b.o"), &audit(&store, &t.join("sub/b.o")));

            // the objects in one relocatable file: each unit's abbreviations, strings and line
            // table are found through the relocations ld -r rewrote (the assembler's unit
            // first, as in the kernel's vmlinux.o: read without relocations, the next unit
            // used its small abbreviation table, "unknown abbreviation code")
            run_ok(
                shimmed(&t, "omnibor-ld", &store)
                    .current_dir(t.path())
                    .args(["-r", "s.o", "a.o", "sub/b.o", "-o", "ab.o"]),
            );
            let ab = sources(&t.join("ab.o"));
            for f in ["s.S", "a.c", "inc/a.h", "sub/b.c"] {
                assert!(ab.contains(&t.join(f)), "{what} ld -r: {f} not in {ab:?}");
            }
            assert!(ab.iter().all(|p| p.exists()), "{what} ld -r: {ab:?}");
            assert_clean(&format!("{what} ld -r"), &audit(&store, &t.join("ab.o")));

            // and without the shims, in the other order, read by the library
            run_ok(
                Command::new("ld")
                    .current_dir(t.path())
                    .args(["-r", "sub/b.o", "a.o", "s.o", "-o", "ba.o"]),
            );
            assert_eq!(sources(&t.join("ba.o")), ab, "{what} bare ld -r");
        }
    }
}

/// A linked program's DWARF (no relocations applied: it has none) reads as before.
#[test]
fn audit_of_a_linked_program_is_unchanged() {
    let t = Tmp::new();
    let store = t.join("store");
    write_sources(&t);
    t.write("m.c", "int a(int);\nint main(void){return a(0);}\n");
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-g", "-gdwarf-5", "m.c", "a.c", "sub/b.c", "-o", "prog"]),
    );
    let s = sources(&t.join("prog"));
    for f in ["m.c", "a.c", "inc/a.h", "sub/b.c"] {
        assert!(s.contains(&t.join(f)), "{f} not in {s:?}");
    }
    assert_clean("prog", &audit(&store, &t.join("prog")));
}
