//! Issue 6: real packages from the corpus built under `omnishim run`.

use crate::util::*;
use omnishim::elf;
use omnishim::gitoid;
use omnishim::store::Store;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Fetch a Debian source package (cached) and copy it to `dest`.
pub fn corpus(pkg: &str, orig: bool, dest: &Path) {
    let fetch = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/fetch");
    let mut c = Command::new("bash");
    c.arg(&fetch);
    if orig {
        c.arg("--orig");
    }
    let dir = stdout(c.arg(pkg));
    let dir = dir.lines().last().unwrap().trim();
    run_ok(Command::new("cp").arg("-a").arg(dir).arg(dest));
}

/// `omnishim run -- sh -c SCRIPT` in `dir` with the store at `store`.
pub fn wrapped_build(dir: &Path, store: &Path, script: &str) -> String {
    let out = run_ok(
        omnishim(&["run", "--store"])
            .arg(store)
            .args(["--", "sh", "-c", script])
            .current_dir(dir)
            .env_remove("CC")
            .env_remove("CXX")
            .env_remove("OMNISHIM_CHAIN"),
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let summary = err.lines().last().unwrap_or("").to_string();
    assert!(
        summary.starts_with("omnishim: ") && summary.contains("steps recorded"),
        "{err}"
    );
    summary
}

/// ELF files under a directory (symlinks not followed).
pub fn elf_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                if !p.ends_with(".bom") {
                    stack.push(p);
                }
            } else if ft.is_file() {
                let h = std::fs::read(&p)
                    .map(|b| b.get(..4).map(|x| x.to_vec()))
                    .ok()
                    .flatten();
                if h.as_deref() == Some(b"\x7fELF") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// Every ELF file the build made (those not in the source tree before it) carries a note
/// whose manifests (both) are in the store.
pub fn check_all_notes(dir: &Path, store: &Path, before: &[PathBuf]) -> Vec<PathBuf> {
    let s = Store::at(store);
    let files: Vec<PathBuf> = elf_files(dir)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert!(!files.is_empty());
    for f in &files {
        let n = elf::read_note_file(f).unwrap_or_else(|e| panic!("{e}"));
        let (Some(a), Some(b)) = (n.sha1, n.sha256) else {
            panic!("{} has no OmniBOR note", f.display())
        };
        s.get_manifest(&a)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        s.get_manifest(&b)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    run_ok(omnishim(&["store", "verify", "--store"]).arg(store));
    files
}

/// The .c files compiled into a binary, from its DWARF compile units (built with -g),
/// limited to those under `root`.
pub fn dwarf_c_files(bin: &Path, root: &Path) -> BTreeSet<PathBuf> {
    let text = stdout(
        Command::new(need("readelf"))
            .arg("--debug-dump=info")
            .arg("--dwarf-depth=1")
            .arg(bin),
    );
    let mut out = BTreeSet::new();
    let (mut name, mut dir): (Option<String>, Option<String>) = (None, None);
    let mut in_cu = false;
    let mut flush = |name: &mut Option<String>, dir: &mut Option<String>| {
        if let (Some(n), Some(d)) = (name.take(), dir.take()) {
            let p = Path::new(&d).join(&n);
            let p = omnishim::shim::record::absolute(Path::new("/"), &p);
            if p.starts_with(root) && n.ends_with(".c") {
                out.insert(p);
            }
        }
    };
    for line in text.lines() {
        if line.contains("Abbrev Number") {
            flush(&mut name, &mut dir);
            in_cu = line.contains("DW_TAG_compile_unit");
            continue;
        }
        if !in_cu {
            continue;
        }
        let value = || line.rsplit(": ").next().unwrap_or("").trim().to_string();
        if line.contains("DW_AT_name") {
            name = Some(value());
        } else if line.contains("DW_AT_comp_dir") {
            dir = Some(value());
        }
    }
    flush(&mut name, &mut dir);
    out
}

/// The .c files a binary's graph reaches, under `root`.
pub fn graph_c_files(bin: &Path, store: &Path, root: &Path) -> BTreeSet<PathBuf> {
    let text = stdout(
        omnishim(&["resolve", "--sources", "--store"])
            .arg(store)
            .arg(bin),
    );
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let (path, uri) = line.rsplit_once("  ").unwrap();
        let id = omnishim::gitoid::Id::from_uri(uri).unwrap();
        let p = PathBuf::from(path);
        if p.starts_with(root) && path.ends_with(".c") {
            // the file there now is the one the build read
            assert_eq!(gitoid::ids_of_file(&p).unwrap().sha1, id, "{path}");
            out.insert(p);
        }
    }
    out
}

/// The .c files of a binary's graph under `root`: those reached without passing through a
/// static archive, and all of them. A link's manifest lists a static archive as one input
/// and the archive's manifest lists all its members, so members the linker did not pull in
/// are reached too.
pub fn graph_c_sets(
    bin: &Path,
    store: &Path,
    root: &Path,
) -> (BTreeSet<PathBuf>, BTreeSet<PathBuf>) {
    let v: serde_json::Value = serde_json::from_str(&stdout(
        omnishim(&["resolve", "--json", "--store"])
            .arg(store)
            .arg(bin),
    ))
    .unwrap();
    let doc = &v[0];
    let nodes = doc["nodes"].as_object().unwrap();
    let mut children: std::collections::HashMap<String, Vec<String>> = Default::default();
    for e in doc["edges"].as_array().unwrap() {
        children
            .entry(e["from"].as_str().unwrap().into())
            .or_default()
            .push(e["to"].as_str().unwrap().into());
    }
    let path_of = |id: &str| {
        nodes[id]["paths"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|p| p.as_str())
            .map(PathBuf::from)
    };
    let is_archive = |id: &str| {
        path_of(id)
            .and_then(|p| std::fs::read(p).ok())
            .is_some_and(|b| b.starts_with(b"!<arch>"))
    };
    let (mut direct, mut all) = (BTreeSet::new(), BTreeSet::new());
    let mut stack = vec![(doc["root"].as_str().unwrap().to_string(), false)];
    let mut seen = std::collections::HashSet::new();
    while let Some((id, via_archive)) = stack.pop() {
        if !seen.insert((id.clone(), via_archive)) {
            continue;
        }
        if let Some(p) = path_of(&id) {
            if p.starts_with(root) && p.extension().is_some_and(|e| e == "c") {
                all.insert(p.clone());
                if !via_archive {
                    direct.insert(p);
                }
            }
        }
        let via = via_archive || is_archive(&id);
        for c in children.get(&id).into_iter().flatten() {
            stack.push((c.clone(), via));
        }
    }
    (direct, all)
}

/// DWARF (what was compiled in) against the graph: every source the binary was compiled from
/// is reached, every source reached outside archives was compiled in, and what the graph has
/// beyond DWARF are members of static archives the link read but did not pull in.
fn check_graphs_against_dwarf(bins: &[PathBuf], store: &Path, root: &Path) {
    for b in bins {
        // omnishim audit (gimli) agrees: nothing DWARF names is missing from the graph
        let out = omnishim(&["audit", "--store"])
            .arg(store)
            .arg(b)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}{err}",
            b.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(err.contains(" 0 missing from the graph"), "{err}");
        let truth = dwarf_c_files(b, root);
        assert!(
            !truth.is_empty(),
            "{}: no DWARF compile units (built without -g?)",
            b.display()
        );
        let (direct, all) = graph_c_sets(b, store, root);
        assert_eq!(
            all,
            graph_c_files(b, store, root),
            "{}: --sources and --json disagree",
            b.display()
        );
        let missing: Vec<_> = truth.difference(&all).collect();
        assert!(
            missing.is_empty(),
            "{}: compiled in but not in the graph: {missing:?}",
            b.display()
        );
        let extra: Vec<_> = direct.difference(&truth).collect();
        assert!(
            extra.is_empty(),
            "{}: in the graph outside archives but not compiled in: {extra:?}",
            b.display()
        );
    }
}

#[test]
fn zlib_wrapped_tests_pass_and_graphs_match_dwarf() {
    let t = Tmp::new();
    let src = t.join("zlib");
    corpus("zlib", false, &src);
    let before = elf_files(&src);
    let store = t.join("store");
    wrapped_build(
        &src,
        &store,
        "CFLAGS='-O2 -g' ./configure >/dev/null && make -j2 >/dev/null",
    );
    let test = run_ok(Command::new("make").arg("test").current_dir(&src));
    assert!(String::from_utf8_lossy(&test.stdout).contains("*** zlib test OK ***"));
    check_all_notes(&src, &store, &before);
    let bins: Vec<PathBuf> = [
        "libz.so.1.2.13",
        "libz.a",
        "example",
        "minigzip",
        "examplesh",
        "example64",
    ]
    .iter()
    .map(|b| src.join(b))
    .filter(|p| !p.ends_with("libz.a"))
    .collect();
    check_graphs_against_dwarf(&bins, &store, &src);
    // the static library: its graph reaches the sources of its members
    let lib_a = graph_c_files(&src.join("libz.a"), &store, &src);
    assert_eq!(
        lib_a,
        graph_c_files(&src.join("libz.so.1.2.13"), &store, &src)
    );
}

#[test]
fn zlib_j1_and_j8_give_identical_stores_and_binaries() {
    let t = Tmp::new();
    let src = t.join("zlib");
    let mut trees = Vec::new();
    for (k, jobs) in ["-j1", "-j8"].iter().enumerate() {
        if src.exists() {
            std::fs::remove_dir_all(&src).unwrap();
        }
        corpus("zlib", false, &src);
        let store = t.join(&format!("store{k}"));
        // configure's own test programs have names made from its PID: not reproducible, so
        // configure runs outside; the build itself is what must give the same store
        run_ok(
            Command::new("sh")
                .args(["-c", "./configure >/dev/null"])
                .current_dir(&src),
        );
        wrapped_build(&src, &store, &format!("make {jobs} >/dev/null"));
        let bins: Vec<(PathBuf, Vec<u8>)> = elf_files(&src)
            .into_iter()
            .map(|p| {
                let b = std::fs::read(&p).unwrap();
                (p, b)
            })
            .collect();
        let objects = tree_of(&store.join("objects"));
        assert!(objects.len() > 20, "{} objects", objects.len());
        trees.push((bins, objects));
    }
    let names = |t: &Vec<(PathBuf, Vec<u8>)>| t.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&trees[0].1),
        names(&trees[1].1),
        "objects/ differ between -j1 and -j8"
    );
    assert!(
        trees[0].1 == trees[1].1,
        "object contents differ between -j1 and -j8"
    );
    assert_eq!(trees[0].0.len(), trees[1].0.len());
    for ((p, a), (_, b)) in trees[0].0.iter().zip(&trees[1].0) {
        assert!(a == b, "{} differs between -j1 and -j8", p.display());
    }
}

/// Every file below `dir`: relative path -> bytes.
fn tree_of(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn lua_wrapped_interpreter_works_and_graphs_match_dwarf() {
    let t = Tmp::new();
    let src = t.join("lua");
    corpus("lua5.4", true, &src);
    let before = elf_files(&src);
    let store = t.join("store");
    wrapped_build(&src, &store, "make -j2 linux MYCFLAGS=-g >/dev/null");
    let lua = src.join("src/lua");
    let mut c = Command::new(&lua);
    c.args(["-e", "local t={} for i=1,10 do t[#t+1]=i*i end print(table.concat(t,','), 2^10, string.format('%q','x'))"]);
    assert_eq!(
        stdout(&mut c),
        "1,4,9,16,25,36,49,64,81,100\t1024.0\t\"x\"\n"
    );
    check_all_notes(&src, &store, &before);
    check_graphs_against_dwarf(&[lua, src.join("src/luac")], &store, &src);
    let lib = graph_c_files(&src.join("src/liblua.a"), &store, &src);
    assert!(lib.len() > 25, "{lib:?}");
}

#[test]
fn xz_wrapped_make_check_passes_and_graphs_match_dwarf() {
    let t = Tmp::new();
    let src = t.join("xz");
    corpus("xz-utils", true, &src);
    let before = elf_files(&src); // xz ships prebuilt test binaries
    let store = t.join("store");
    let summary = wrapped_build(
        &src,
        &store,
        "./configure --disable-nls --disable-doc CFLAGS='-O2 -g' >/dev/null && make -j2 >/dev/null",
    );
    assert!(!summary.contains("top-level outputs: none"), "{summary}");
    run_ok(
        Command::new("make")
            .args(["-j2", "check"])
            .current_dir(&src),
    );
    check_all_notes(&src, &store, &before);
    let bins = vec![
        src.join("src/liblzma/.libs/liblzma.so.5.4.1"),
        src.join("src/xz/.libs/xz"),
        src.join("src/xzdec/.libs/xzdec"),
    ];
    check_graphs_against_dwarf(&bins, &store, &src);

    // The responder: the unpatched stream_decoder_mt.c (CVE-2025-31115) by its git blob ID.
    let vulnerable = src.join("src/liblzma/common/stream_decoder_mt.c");
    let blob = stdout(
        Command::new(need("git"))
            .arg("hash-object")
            .arg(&vulnerable),
    );
    let deny = t.write(
        "deny.txt",
        format!(
            "# unpatched multithreaded decoder\n{} CVE-2025-31115\n",
            blob.trim()
        ),
    );
    let check = |args: &[&str], paths: &[PathBuf]| {
        omnishim(&["check", "--deny"])
            .arg(&deny)
            .args(args)
            .arg("--store")
            .arg(&store)
            .args(paths)
            .output()
            .unwrap()
    };
    let out = check(&[], &[src.join("src/liblzma/.libs")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("liblzma.so.5.4.1: CVE-2025-31115 gitoid:blob:sha1:")
            && text.contains("stream_decoder_mt.c"),
        "{text}"
    );
    let xz = src.join("src/xz/.libs/xz");
    assert_eq!(
        check(&[], &[xz.clone()]).status.code(),
        Some(0),
        "xz links liblzma dynamically"
    );
    let out = check(&["--follow-dynamic"], &[xz]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("liblzma.so"));
    // the whole tree at once, cold: every hit is a real one
    let out = check(&["--follow-dynamic"], &[src.clone()]);
    assert_eq!(out.status.code(), Some(1));
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("ELF files checked"), "{summary}");
}

#[test]
fn xz_patched_build_passes_the_same_deny_list() {
    let t = Tmp::new();
    let orig = t.join("orig");
    corpus("xz-utils", true, &orig);
    let blob = stdout(
        Command::new(need("git"))
            .arg("hash-object")
            .arg(orig.join("src/liblzma/common/stream_decoder_mt.c")),
    );
    let src = t.join("xz");
    corpus("xz-utils", false, &src);
    let fixed = stdout(
        Command::new("git")
            .arg("hash-object")
            .arg(src.join("src/liblzma/common/stream_decoder_mt.c")),
    );
    assert_ne!(blob, fixed, "the Debian patch changes the file");
    let store = t.join("store");
    wrapped_build(
        &src,
        &store,
        "./configure --disable-nls --disable-doc >/dev/null && make -j2 >/dev/null",
    );
    let deny = t.write("deny.txt", format!("{} CVE-2025-31115\n", blob.trim()));
    let out = omnishim(&["check", "--follow-dynamic", "--deny"])
        .arg(&deny)
        .arg("--store")
        .arg(&store)
        .arg(&src)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // and the fixed file is what its liblzma was made from
    let deny_fixed = t.write("fixed.txt", format!("{} fixed\n", fixed.trim()));
    let lib = src.join("src/liblzma/.libs/liblzma.so.5.4.1");
    let out = omnishim(&["check", "--deny"])
        .arg(&deny_fixed)
        .arg("--store")
        .arg(&store)
        .arg(&lib)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn dpkg_buildpackage_zlib_notes_survive_into_the_debs() {
    let t = Tmp::new();
    let src = t.join("zlib");
    corpus("zlib", false, &src);
    let store = t.join("store");
    run_ok(
        Command::new(need("dpkg-checkbuilddeps"))
            .args(["-P", "nobiarch"])
            .current_dir(&src),
    );
    wrapped_build(
        &src,
        &store,
        "dpkg-buildpackage -b -uc -us -Pnobiarch >/dev/null 2>&1",
    );
    let debs: Vec<PathBuf> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert!(debs.len() >= 3, "{debs:?}");
    let x = t.join("x");
    for d in &debs {
        run_ok(Command::new(need("dpkg-deb")).arg("-x").arg(d).arg(&x));
    }
    // debhelper stripped them (dh_strip: strip, objcopy) and compressed debug info (dwz)
    let files = check_all_notes(&x, &store, &[]);
    let libs: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.to_string_lossy().contains("libz.so.1.2.13"))
        .collect();
    assert!(!libs.is_empty(), "{files:?}");
    // each reaches zlib's inflate.c (debian/rules builds from copies of the tree: by ID)
    let inflate = gitoid::ids_of_file(&src.join("inflate.c"))
        .unwrap()
        .sha1
        .uri();
    for f in files {
        let out = stdout(
            omnishim(&["resolve", "--sources", "--store"])
                .arg(&store)
                .arg(&f),
        );
        assert!(
            out.contains(&inflate),
            "{}: {inflate} not reached",
            f.display()
        );
    }
}
