//! Issue 15, item 5: arguments and paths as bytes end to end. A source, a header, an object,
//! an archive and a program named with bytes that are not UTF-8 are recorded like any other,
//! in strict mode too; the path index holds the very bytes; `resolve` shows them as U+FFFD.

use crate::util::*;
use omnishim::elf;
use omnishim::gitoid;
use omnishim::manifest::Manifest;
use omnishim::store::Store;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn name(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// The sha1 IDs of a file's manifest inputs.
fn inputs(store: &Path, file: &Path) -> std::collections::BTreeSet<gitoid::Id> {
    let note = elf::read_note_file(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let id = note
        .sha1
        .unwrap_or_else(|| panic!("{} has no note", file.display()));
    let m: Manifest = Store::at(store).get_manifest(&id).unwrap();
    m.inputs.keys().copied().collect()
}

fn sha1(p: &Path) -> gitoid::Id {
    gitoid::ids_of_file(p).unwrap().sha1
}

/// Every path index line of the store, as bytes.
fn path_index(store: &Path) -> Vec<u8> {
    let dir = store.join("metadata").join("omnishim").join("paths");
    let mut all = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        all.extend(std::fs::read(e.unwrap().path()).unwrap());
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn sources_named_with_non_utf8_bytes_are_recorded_end_to_end() {
    need("gcc");
    need("ar");
    need("ld");
    for strict in [false, true] {
        let t = Tmp::new();
        let store = t.join("store");
        let src: PathBuf = t.path().join(name(b"a\xff.c"));
        let hdr: PathBuf = t.path().join(name(b"h\xfe.h"));
        std::fs::write(&hdr, "#define ONE 1\n").unwrap();
        std::fs::write(&src, b"#include \"h\xfe.h\"\nint f(void){return ONE;}\n").unwrap();
        t.write("m.c", "int f(void);\nint main(void){return f()-1;}\n");
        let cmd = |program: &str| {
            let mut c = shimmed(&t, program, &store);
            c.current_dir(t.path());
            if strict {
                c.env("OMNIBOR_STRICT", "1");
            }
            c
        };
        let quiet = |out: std::process::Output, what: &str| {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!err.contains("omnishim"), "{what} (strict {strict}): {err}");
        };

        // compile: gcc names the object after the source's bytes
        let out = run_ok(cmd("omnibor-cc").arg("-c").arg(name(b"a\xff.c")));
        quiet(out, "compile");
        let obj = t.path().join(name(b"a\xff.o"));
        let got = inputs(&store, &obj);
        assert!(
            got.contains(&sha1(&src)) && got.contains(&sha1(&hdr)),
            "the object's manifest lists the source and the header, found by their bytes"
        );

        // the same through a response file holding the bytes
        std::fs::write(t.join("args.rsp"), b"-c a\xff.c -o r\xff.o\n").unwrap();
        quiet(
            run_ok(cmd("omnibor-cc").arg("@args.rsp")),
            "compile via @file",
        );
        assert_eq!(
            inputs(&store, &t.path().join(name(b"r\xff.o"))),
            inputs(&store, &obj)
        );

        // the linker directly, the archiver, and a driver link through the archive (its
        // map names the archive and the member by their bytes)
        let rel = t.path().join(name(b"rel\xff.o"));
        quiet(
            run_ok(cmd("omnibor-ld").arg("-r").arg(&obj).arg("-o").arg(&rel)),
            "ld -r",
        );
        assert_eq!(inputs(&store, &rel), [sha1(&obj)].into_iter().collect());
        quiet(
            run_ok(
                cmd("omnibor-ar")
                    .arg("rcs")
                    .arg(name(b"lib\xff.a"))
                    .arg(&obj),
            ),
            "ar",
        );
        let prog = t.path().join(name(b"prog\xff"));
        quiet(
            run_ok(
                cmd("omnibor-cc")
                    .arg("m.c")
                    .arg(name(b"lib\xff.a"))
                    .arg("-o")
                    .arg(&prog),
            ),
            "link",
        );

        // nothing passed through unrecorded
        let log = std::fs::read(store.join("metadata/omnishim/steps.log")).unwrap();
        let log = String::from_utf8_lossy(&log);
        assert!(!log.contains("not recorded"), "{log}");
        assert_eq!(log.lines().count(), 5, "{log}");

        // the path index holds the bytes
        let index = path_index(&store);
        for p in [&src, &hdr, &obj, &prog] {
            assert!(
                contains(&index, p.as_os_str().as_bytes()),
                "{} is not in the path index as its bytes",
                p.display()
            );
        }

        // resolve walks the graph exactly and shows the names with U+FFFD
        let out = run_ok(
            omnishim(&["resolve", "--sources", "--store"])
                .arg(&store)
                .arg(&prog),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let shown = |p: &Path| p.to_string_lossy().into_owned();
        for p in [&src, &hdr] {
            assert!(
                text.lines().any(|l| l.starts_with(&shown(p))),
                "resolve --sources lacks {}:\n{text}",
                shown(p)
            );
        }
        assert!(text.contains(&shown(&t.join("m.c"))), "{text}");
    }
}
