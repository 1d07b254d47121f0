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

/// DWARF (what was compiled in) against the graph: the `.c` files a binary's graph reaches
/// are exactly those its compile units name (archive members the linker did not pull in are
/// not reached: the link recorded which members it took); `omnishim audit` agrees.
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
        let graph = graph_c_files(b, store, root);
        let missing: Vec<_> = truth.difference(&graph).collect();
        let extra: Vec<_> = graph.difference(&truth).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{}: compiled in but not in the graph: {missing:?}; in the graph but not compiled in: {extra:?}",
            b.display()
        );
    }
}

/// `sh -c SCRIPT` in `dir` with no shims anywhere: the reference build.
pub fn bare_build(dir: &Path, script: &str) {
    run_ok(
        Command::new("sh")
            .args(["-c", script])
            .current_dir(dir)
            .env_remove("CC")
            .env_remove("CXX")
            .env_remove("OMNIBOR_DIR")
            .env_remove("OMNISHIM_CHAIN"),
    );
}

/// The depfile the compiler wrote for an object in the bare build: `-MD` beside the object,
/// or automake's `.deps/` (`.Plo` for libtool objects, whose PIC copy is in `.libs/`).
fn depfile_for(bare: &Path, object_rel: &Path) -> Option<PathBuf> {
    let stem = object_rel.file_stem()?.to_string_lossy().into_owned();
    let dir = object_rel.parent()?;
    let mut cands = Vec::new();
    if dir.file_name().is_some_and(|n| n == ".libs") {
        cands.push(dir.parent()?.join(".deps").join(format!("{stem}.Plo")));
    } else if object_rel.extension().is_some_and(|e| e == "lo") {
        // zlib compiles its PIC objects as objs/x.o and renames them to x.lo
        cands.push(dir.join("objs").join(format!("{stem}.d")));
    } else {
        cands.push(dir.join(".deps").join(format!("{stem}.Po")));
        cands.push(dir.join(".deps").join(format!("{stem}.Plo")));
        cands.push(dir.join(format!("{stem}.d")));
    }
    cands
        .into_iter()
        .map(|c| bare.join(c))
        .find(|c| c.is_file())
}

/// The prerequisites of a depfile's first rule.
fn first_rule(depfile: &Path) -> Vec<String> {
    let text =
        std::fs::read_to_string(depfile).unwrap_or_else(|e| panic!("{}: {e}", depfile.display()));
    let joined = text.replace("\\\n", " ");
    let first = joined.lines().next().unwrap_or("");
    let (_, prereqs) = first
        .split_once(": ")
        .unwrap_or_else(|| panic!("{}: no rule", depfile.display()));
    prereqs.split_whitespace().map(String::from).collect()
}

/// The files a depfile's first rule names (the object's source and every header), as absolute
/// paths. Relative names are relative to where the compiler ran: the directory (for automake,
/// the parent of `.deps/`) or an ancestor of it up to `bare`, whichever holds the source.
fn depfile_inputs(depfile: &Path, bare: &Path) -> BTreeSet<PathBuf> {
    let names = first_rule(depfile);
    let source = names[0].as_str();
    let mut base = depfile.parent().unwrap().to_path_buf();
    let cwd = loop {
        if base.join(source).is_file() || Path::new(source).is_absolute() {
            break base;
        }
        assert!(
            base != bare && base.pop(),
            "{}: cannot tell where {source} was compiled",
            depfile.display()
        );
    };
    names
        .iter()
        .map(|n| omnishim::shim::record::absolute(&cwd, Path::new(n)))
        .collect()
}

/// A binary's graph as `resolve --json` prints it.
struct Graph {
    root: String,
    nodes: serde_json::Map<String, serde_json::Value>,
    children: std::collections::BTreeMap<String, Vec<String>>,
}

fn graph_json(bin: &Path, store: &Path) -> Graph {
    let v: serde_json::Value = serde_json::from_str(&stdout(
        omnishim(&["resolve", "--json", "--store"])
            .arg(store)
            .arg(bin),
    ))
    .unwrap();
    let doc = &v[0];
    let mut children: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for e in doc["edges"].as_array().unwrap() {
        children
            .entry(e["from"].as_str().unwrap().into())
            .or_default()
            .push(e["to"].as_str().unwrap().into());
    }
    Graph {
        root: doc["root"].as_str().unwrap().into(),
        nodes: doc["nodes"].as_object().unwrap().clone(),
        children,
    }
}

impl Graph {
    fn paths(&self, id: &str) -> Vec<PathBuf> {
        self.nodes[id]["paths"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default()
    }
    fn is_leaf(&self, id: &str) -> bool {
        self.nodes[id]["manifest"].is_null()
    }
    fn is_archive(&self, id: &str) -> bool {
        self.paths(id)
            .iter()
            .any(|p| std::fs::read(p).is_ok_and(|b| b.starts_with(b"!<arch>")))
    }
}

/// The link's own leaf inputs by the linker's dependency file of the bare build (`ldd`,
/// relative names being relative to the directory it is in, where make ran the link):
/// everything it read but shared libraries and what the build itself made (objects and
/// archives, which are nodes of the graph, not leaves).
fn link_leaves(ldd: &Path, bare: &Path) -> BTreeSet<String> {
    let cwd = ldd.parent().unwrap();
    let mut out = BTreeSet::new();
    for n in first_rule(ldd) {
        let p = omnishim::shim::record::absolute(cwd, Path::new(&n));
        let Ok(b) = std::fs::read(&p) else { continue };
        let elf_type = (b.starts_with(b"\x7fELF") && b.len() > 18).then(|| b[16]);
        if elf_type == Some(3) {
            continue; // a shared library: metadata, not an input
        }
        if p.starts_with(bare) && (elf_type.is_some() || b.starts_with(b"!<arch>")) {
            continue;
        }
        out.insert(gitoid::ids_of_bytes(&b).sha1.uri());
    }
    out
}

/// `resolve --sources` of each binary against the truth from a bare build of the same tree,
/// made with the compiler's and the linker's own dependency files: for every object in the
/// graph, the files below it (its source and every header, system headers included) are
/// exactly those the compiler named in the bare build's depfile for that object, by path and
/// by content; the leaves the link itself read (crt files, libc and libgcc archives and
/// scripts, version scripts) are exactly the linker's list (`bins`: binary, and its linker
/// dependency file relative to the bare tree); `--sources` is the union of both.
fn check_sources_against_bare_build(
    bins: &[(PathBuf, &str)],
    store: &Path,
    root: &Path,
    bare: &Path,
) {
    let uri_of = |p: &Path| gitoid::ids_of_file(p).unwrap().sha1.uri();
    for (b, ldd) in bins {
        let g = graph_json(b, store);
        let (mut compiled, mut linked) = (BTreeSet::new(), BTreeSet::new());
        let mut objects = 0;
        for (id, kids) in &g.children {
            let leaves = kids.iter().filter(|k| g.is_leaf(k)).cloned();
            if *id == g.root || g.is_archive(id) {
                linked.extend(leaves);
                continue;
            }
            let leaves: BTreeSet<String> = leaves.collect();
            let paths = g.paths(id);
            let Some(dep) = paths
                .iter()
                .filter_map(|p| p.strip_prefix(root).ok())
                .find_map(|rel| depfile_for(bare, rel))
            else {
                panic!(
                    "{}: no bare-build depfile for the object at {paths:?}",
                    b.display()
                )
            };
            let truth = depfile_inputs(&dep, bare);
            let want: BTreeSet<String> = truth.iter().map(|p| uri_of(p)).collect();
            assert_eq!(
                leaves,
                want,
                "{}: object {paths:?} against {} ({truth:?})",
                b.display(),
                dep.display()
            );
            // the same files by path: in-tree files at the same place in the wrapped tree
            for t in &truth {
                let w = match t.strip_prefix(bare) {
                    Ok(rel) => root.join(rel),
                    Err(_) => t.clone(),
                };
                let id = uri_of(t);
                assert!(
                    g.paths(&id).contains(&w),
                    "{}: {} not recorded at {}",
                    b.display(),
                    id,
                    w.display()
                );
            }
            compiled.extend(want);
            objects += 1;
        }
        assert!(objects > 0, "{}: no objects in the graph", b.display());
        let want = link_leaves(&bare.join(ldd), bare);
        let show =
            |s: &BTreeSet<String>| -> Vec<Vec<PathBuf>> { s.iter().map(|i| g.paths(i)).collect() };
        assert_eq!(
            linked,
            want,
            "{}: link leaves {:?}, the linker read {:?}",
            b.display(),
            show(&linked),
            want.iter().collect::<Vec<_>>()
        );
        let sources: BTreeSet<String> = stdout(
            omnishim(&["resolve", "--sources", "--store"])
                .arg(store)
                .arg(b),
        )
        .lines()
        .map(|l| l.rsplit_once("  ").unwrap().1.to_string())
        .collect();
        let all: BTreeSet<String> = compiled.union(&linked).cloned().collect();
        assert_eq!(sources, all, "{}: --sources", b.display());
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
    let bare = t.join("bare");
    corpus("zlib", false, &bare);
    bare_build(
        &bare,
        "CFLAGS='-O2 -g -MD' ./configure >/dev/null && make -j2 'LDFLAGS=-Wl,--dependency-file=$@.ldd' >/dev/null",
    );
    let with_ldd: Vec<(PathBuf, &str)> = bins
        .iter()
        .zip([
            "libz.so.1.2.13.ldd",
            "example.ldd",
            "minigzip.ldd",
            "examplesh.ldd",
            "example64.ldd",
        ])
        .map(|(b, l)| (b.clone(), l))
        .collect();
    check_sources_against_bare_build(&with_ldd, &store, &src, &bare);
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
    let mut pulled = Vec::new();
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
        // which archive members each link pulled in: whole sorted files, so equal too
        let members = tree_of(&store.join("metadata/omnishim/members"));
        assert!(!members.is_empty(), "no link recorded its archive members");
        pulled.push(members);
        trees.push((bins, objects));
    }
    assert!(
        pulled[0] == pulled[1],
        "pulled-member records differ between -j1 and -j8"
    );
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
    let bins = [lua, src.join("src/luac")];
    check_graphs_against_dwarf(&bins, &store, &src);
    let bare = t.join("bare");
    corpus("lua5.4", true, &bare);
    bare_build(
        &bare,
        "make -j2 linux 'MYCFLAGS=-g -MD' 'MYLDFLAGS=-Wl,--dependency-file=$@.ldd' >/dev/null",
    );
    let [lua, luac] = bins;
    check_sources_against_bare_build(
        &[(lua, "src/lua.ldd"), (luac, "src/luac.ldd")],
        &store,
        &src,
        &bare,
    );
    let lib = graph_c_files(&src.join("src/liblua.a"), &store, &src);
    assert!(lib.len() > 25, "{lib:?}");
}

#[test]
fn xz_wrapped_make_check_passes_and_graphs_match_dwarf() {
    // built and `make check`ed once, shared with the other tests that inspect it
    let x = crate::builds::xz(false);
    let (src, store) = (x.src.clone(), x.store.clone());
    assert!(
        !x.summary.contains("top-level outputs: none"),
        "{}",
        x.summary
    );
    let t = Tmp::new();
    // xz ships prebuilt test binaries: those of a pristine copy are not the build's
    let pristine = t.join("pristine");
    corpus("xz-utils", true, &pristine);
    let before: Vec<PathBuf> = elf_files(&pristine)
        .iter()
        .map(|f| src.join(f.strip_prefix(&pristine).unwrap()))
        .collect();
    assert!(!before.is_empty());
    check_all_notes(&src, &store, &before);
    let bins = vec![
        src.join("src/liblzma/.libs/liblzma.so.5.4.1"),
        src.join("src/xz/.libs/xz"),
        src.join("src/xzdec/.libs/xzdec"),
    ];
    check_graphs_against_dwarf(&bins, &store, &src);
    let bare = t.join("bare");
    corpus("xz-utils", true, &bare);
    bare_build(
        &bare,
        "./configure --disable-nls --disable-doc CFLAGS='-O2 -g' 'LDFLAGS=-Wl,--dependency-file=$@.ldd' >/dev/null && make -j2 >/dev/null",
    );
    let with_ldd: Vec<(PathBuf, &str)> = bins
        .iter()
        .zip([
            "src/liblzma/liblzma.la.ldd",
            "src/xz/xz.ldd",
            "src/xzdec/xzdec.ldd",
        ])
        .map(|(b, l)| (b.clone(), l))
        .collect();
    check_sources_against_bare_build(&with_ldd, &store, &src, &bare);

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
        check(&[], std::slice::from_ref(&xz)).status.code(),
        Some(0),
        "xz links liblzma dynamically"
    );
    let out = check(&["--follow-dynamic"], &[xz]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("liblzma.so"));
    // the whole tree at once, cold: every hit is a real one
    let out = check(&["--follow-dynamic"], std::slice::from_ref(&src));
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
    let x = crate::builds::xz(true);
    let (src, store) = (x.src.clone(), x.store.clone());
    let fixed = stdout(
        Command::new("git")
            .arg("hash-object")
            .arg(src.join("src/liblzma/common/stream_decoder_mt.c")),
    );
    assert_ne!(blob, fixed, "the Debian patch changes the file");
    let deny = t.write("deny.txt", format!("{} CVE-2025-31115\n", blob.trim()));
    let out = omnishim(&["check", "--follow-dynamic", "--deny"])
        .arg(&deny)
        .arg("--store")
        .arg(&store)
        .arg(&src)
        .output()
        .unwrap();
    // Nothing denied; but xz ships two prebuilt test binaries nobody recorded, so the answer
    // for the tree is "incomplete" (3), not "clean" (0), and only those two are named.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut unknown: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(": incomplete: no note"))
        .map(|l| l.rsplit_once("/tests/").map_or(l, |(_, f)| f))
        .map(|f| f.split(':').next().unwrap_or(f))
        .collect();
    unknown.sort();
    assert_eq!(
        unknown,
        ["compress_prepared_bcj_sparc", "compress_prepared_bcj_x86"],
        "{err}"
    );
    assert_eq!(err.matches(": incomplete: ").count(), 2, "{err}");
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
    run_ok(Command::new(need("dpkg-checkbuilddeps")).current_dir(&src));
    wrapped_build(&src, &store, "dpkg-buildpackage -b -uc -us >/dev/null 2>&1");
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
    // the biarch variant (lib32z1, built with gcc -m32 under the same shims) too
    let lib32: Vec<&PathBuf> = libs
        .iter()
        .copied()
        .filter(|f| f.to_string_lossy().contains("/usr/lib32/"))
        .collect();
    assert_eq!(lib32.len(), 1, "{files:?}");
    let header = stdout(Command::new(need("readelf")).arg("-h").arg(lib32[0]));
    assert!(header.contains("ELF32"), "{header}");
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
