//! Issue 14, "What it must show": the Linux kernel (Debian's 6.1 source, `tinyconfig`, x86_64)
//! built under `omnishim run`, checked against Kbuild's own record of what went into vmlinux.
//!
//! Two builds of the same configuration, one wrapped and one bare (for the loaded-size
//! comparison), made once per run of the test binary and shared by the tests below. Each takes
//! about 5 minutes on 2 cores; they run one after the other. The trees live under
//! `target/tmp/kernel` (wiped when a run starts, removed when the last kernel test ends); with
//! `OMNISHIM_KERNEL_KEEP=1` they stay, and a later run with it reuses finished builds (to work
//! on the checks; a changed omnishim needs a fresh build, so unset it then).
//!
//! The configuration is `tinyconfig` plus `CONFIG_VMLINUX_MAP`, so that Kbuild's final link
//! writes `vmlinux.map`: its "Archive member included" section is the linker's own word on
//! which `lib.a` members it pulled in, and its `LOAD` lines name the other inputs.

use crate::corpus::corpus;
use crate::util::*;
use omnishim::gitoid;
use omnishim::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// The two built trees and the wrapped build's store.
struct Kernel {
    base: PathBuf,
    wrapped: PathBuf,
    bare: PathBuf,
    store: PathBuf,
}

static KERNEL: OnceLock<Result<Kernel, String>> = OnceLock::new();
/// The kernel tests in this file (the last one to end removes the trees).
const KERNEL_TESTS: usize = 7; // keep equal to the #[test] fns below
static ENDED: AtomicUsize = AtomicUsize::new(0);

/// Held by each kernel test: counts it as ended even when it panics.
struct Ended;
impl Drop for Ended {
    fn drop(&mut self) {
        if ENDED.fetch_add(1, Ordering::SeqCst) + 1 == KERNEL_TESTS && !keep() {
            if let Some(Ok(k)) = KERNEL.get() {
                let _ = std::fs::remove_dir_all(&k.base);
            }
        }
    }
}

fn keep() -> bool {
    std::env::var_os("OMNISHIM_KERNEL_KEEP").is_some_and(|v| v == "1")
}

/// The built trees, building them on first use. A failed build fails every kernel test with
/// its message (once: the others do not build again).
fn kernel() -> (&'static Kernel, Ended) {
    let k = KERNEL.get_or_init(|| {
        std::panic::catch_unwind(build).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    match k {
        Ok(k) => (k, Ended),
        Err(e) => panic!("the kernel builds failed: {e}"),
    }
}

const MAKE: &str = "make ARCH=x86_64";

fn build() -> Kernel {
    for t in ["make", "gcc", "ld", "ar", "flex", "bison", "bc", "perl"] {
        need(t);
    }
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel");
    let k = Kernel {
        wrapped: base.join("wrapped"),
        bare: base.join("bare"),
        store: base.join("store"),
        base: base.clone(),
    };
    let done = base.join("built");
    if keep() && done.is_file() {
        eprintln!("kernel: reusing the builds in {}", base.display());
        return k;
    }
    if base.exists() {
        std::fs::remove_dir_all(&base).unwrap();
    }
    std::fs::create_dir_all(&base).unwrap();
    for tree in [&k.bare, &k.wrapped] {
        corpus("linux", true, tree);
        sh_ok(
            tree,
            &format!(
                "{MAKE} tinyconfig >/dev/null && scripts/config --enable VMLINUX_MAP \
                 && {MAKE} olddefconfig >/dev/null && grep -qx CONFIG_VMLINUX_MAP=y .config"
            ),
        );
    }
    let bare = timed(&k.bare, &format!("{MAKE} -j2 vmlinux >build.log 2>&1"));
    let omnishim = bin();
    let wrapped = timed(
        &k.wrapped,
        &format!(
            "'{}' run --store '{}' -- {MAKE} -j2 vmlinux >build.log 2>run.log",
            omnishim.display(),
            k.store.display()
        ),
    );
    let run_log = std::fs::read_to_string(k.wrapped.join("run.log")).unwrap();
    let summary = run_log.lines().last().unwrap_or("");
    assert!(
        summary.starts_with("omnishim: ") && summary.contains("steps recorded"),
        "{run_log}"
    );
    let report = format!(
        "kernel builds (make -j2 vmlinux, tinyconfig): bare {bare}; wrapped {wrapped}; \
         CPU wrapped/bare {:.3}; wall wrapped/bare {:.3}\n{summary}\n",
        wrapped.cpu() / bare.cpu(),
        wrapped.wall / bare.wall
    );
    eprint!("{report}");
    std::fs::write(base.join("times.txt"), &report).unwrap();
    std::fs::write(&done, "").unwrap();
    k
}

/// `sh -c SCRIPT` in `dir`, no shims, no store: the environment of a user's shell.
fn sh(dir: &Path, script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script])
        .current_dir(dir)
        .env_remove("CC")
        .env_remove("CXX")
        .env_remove("ARCH")
        .env_remove("MAKEFLAGS")
        .env_remove("OMNIBOR_DIR")
        .env_remove("OMNIBOR_STRICT")
        .env_remove("OMNISHIM_CHAIN");
    c
}

fn sh_ok(dir: &Path, script: &str) -> String {
    String::from_utf8_lossy(&run_ok(&mut sh(dir, script)).stdout).into_owned()
}

struct Times {
    wall: f64,
    user: f64,
    sys: f64,
}

impl Times {
    fn cpu(&self) -> f64 {
        self.user + self.sys
    }
}

impl std::fmt::Display for Times {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "wall {:.1} s, CPU {:.1} s (user {:.1} + sys {:.1})",
            self.wall,
            self.cpu(),
            self.user,
            self.sys
        )
    }
}

/// Run a build script and measure it: wall time here, CPU time of all its processes by the
/// shell's `times` (children's user and system time; its second line).
fn timed(dir: &Path, script: &str) -> Times {
    let start = Instant::now();
    let out = sh(
        dir,
        &format!("{script}\nrc=$?\ntimes >build.times\nexit $rc"),
    )
    .output()
    .unwrap();
    let wall = start.elapsed().as_secs_f64();
    let tail = |f: &str| {
        let t = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    assert!(
        out.status.success(),
        "{script} in {} failed: {}\n{}\n{}",
        dir.display(),
        out.status,
        tail("build.log"),
        tail("run.log")
    );
    let times = std::fs::read_to_string(dir.join("build.times")).unwrap();
    let child = times.lines().nth(1).unwrap_or("");
    let secs = |s: &str| -> f64 {
        let s = s.trim_end_matches('s');
        let (m, s) = s.split_once('m').unwrap_or(("0", s));
        m.parse::<f64>().unwrap() * 60.0 + s.parse::<f64>().unwrap()
    };
    let mut it = child.split_whitespace().map(secs);
    let (user, sys) = (it.next().unwrap(), it.next().unwrap());
    Times { wall, user, sys }
}

// ---------------------------------------------------------------------------------------------
// ELF, read here without omnishim's own reader (whose results are under test)

struct Section {
    name: String,
    kind: u32,
    offset: u64,
    size: u64,
}

struct Segment {
    kind: u32,
    offset: u64,
    filesz: u64,
    memsz: u64,
}

/// Sections and segments of a little-endian ELF file (32- or 64-bit: realmode.elf is 32-bit).
fn elf_layout(bytes: &[u8]) -> (Vec<Section>, Vec<Segment>) {
    assert!(
        bytes.starts_with(b"\x7fELF") && bytes[5] == 1,
        "not a LE ELF"
    );
    let is64 = bytes[4] == 2;
    let u16_at = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().unwrap()) as u64;
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) as u64;
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let word = |o: usize| if is64 { u64_at(o) } else { u32_at(o) };
    let (phoff, shoff, phentsize, phnum, shentsize, shnum, shstrndx) = if is64 {
        (
            u64_at(0x20),
            u64_at(0x28),
            u16_at(0x36),
            u16_at(0x38),
            u16_at(0x3a),
            u16_at(0x3c),
            u16_at(0x3e),
        )
    } else {
        (
            u32_at(0x1c),
            u32_at(0x20),
            u16_at(0x2a),
            u16_at(0x2c),
            u16_at(0x2e),
            u16_at(0x30),
            u16_at(0x32),
        )
    };
    let mut segments = Vec::new();
    for i in 0..phnum {
        let o = (phoff + i * phentsize) as usize;
        let kind = u32_at(o) as u32;
        let (offset, filesz, memsz) = if is64 {
            (u64_at(o + 8), u64_at(o + 32), u64_at(o + 40))
        } else {
            (u32_at(o + 4), u32_at(o + 16), u32_at(o + 20))
        };
        segments.push(Segment {
            kind,
            offset,
            filesz,
            memsz,
        });
    }
    let mut raw = Vec::new();
    for i in 0..shnum {
        let o = (shoff + i * shentsize) as usize;
        let name = u32_at(o);
        let kind = u32_at(o + 4) as u32;
        let (offset, size) = if is64 {
            (word(o + 0x18), word(o + 0x20))
        } else {
            (word(o + 0x10), word(o + 0x14))
        };
        raw.push((name, kind, offset, size));
    }
    let strtab = raw
        .get(shstrndx as usize)
        .map(|s| s.2 as usize)
        .unwrap_or(0);
    let sections = raw
        .into_iter()
        .map(|(name, kind, offset, size)| {
            let s = &bytes[strtab + name as usize..];
            let end = s.iter().position(|&b| b == 0).unwrap_or(0);
            Section {
                name: String::from_utf8_lossy(&s[..end]).into_owned(),
                kind,
                offset,
                size,
            }
        })
        .collect();
    (sections, segments)
}

/// OMNIBOR entries in a block of notes: (sha1 entries, sha256 entries, their bytes).
fn omnibor_entries(notes: &[u8]) -> (usize, usize, usize) {
    let (mut sha1, mut sha256, mut bytes) = (0, 0, 0);
    let mut o = 0;
    let al = |n: usize| (n + 3) & !3;
    while o + 12 <= notes.len() {
        let namesz = u32::from_le_bytes(notes[o..o + 4].try_into().unwrap()) as usize;
        let descsz = u32::from_le_bytes(notes[o + 4..o + 8].try_into().unwrap()) as usize;
        let size = 12 + al(namesz) + al(descsz);
        if notes.get(o + 12..o + 12 + namesz) == Some(b"OMNIBOR\0") {
            match descsz {
                20 => sha1 += 1,
                32 | 33 => sha256 += 1,
                _ => panic!("an OMNIBOR note of {descsz} bytes"),
            }
            bytes += size;
        }
        o += size;
    }
    (sha1, sha256, bytes)
}

/// The OMNIBOR entries of a file: in its note sections, and in its PT_NOTE segments.
struct NoteCount {
    sections: (usize, usize, usize),
    segments: (usize, usize, usize),
    /// Size of the section named `.notes` (where the kernel's linker script gathers notes).
    dot_notes: Option<u64>,
    /// Size of a `.note.omnibor` section, if there is one.
    note_omnibor: Option<u64>,
}

fn count_notes(file: &Path) -> NoteCount {
    let b = std::fs::read(file).unwrap();
    let (sections, segments) = elf_layout(&b);
    let add =
        |a: (usize, usize, usize), b: (usize, usize, usize)| (a.0 + b.0, a.1 + b.1, a.2 + b.2);
    let mut n = NoteCount {
        sections: (0, 0, 0),
        segments: (0, 0, 0),
        dot_notes: None,
        note_omnibor: None,
    };
    for s in &sections {
        if s.kind == 7 {
            let d = &b[s.offset as usize..(s.offset + s.size) as usize];
            n.sections = add(n.sections, omnibor_entries(d));
        }
        match s.name.as_str() {
            ".notes" => n.dot_notes = Some(s.size),
            ".note.omnibor" => n.note_omnibor = Some(s.size),
            _ => {}
        }
    }
    for p in segments.iter().filter(|p| p.kind == 4) {
        let d = &b[p.offset as usize..(p.offset + p.filesz) as usize];
        n.segments = add(n.segments, omnibor_entries(d));
    }
    n
}

fn loaded_size(file: &Path) -> u64 {
    let (_, segments) = elf_layout(&std::fs::read(file).unwrap());
    segments
        .iter()
        .filter(|p| p.kind == 1)
        .map(|p| p.memsz)
        .sum()
}

/// Exactly one OMNIBOR entry per algorithm, in the note sections and (for a file with
/// program headers) in its PT_NOTE segments; at most 128 bytes of them.
fn assert_one_small_note(file: &Path, n: &NoteCount, has_phdrs: bool) {
    let f = file.display();
    assert_eq!(
        (n.sections.0, n.sections.1),
        (1, 1),
        "{f}: OMNIBOR entries (sha1, sha256) in its note sections, {} bytes of them",
        n.sections.2
    );
    if has_phdrs {
        assert_eq!(
            (n.segments.0, n.segments.1),
            (1, 1),
            "{f}: OMNIBOR entries (sha1, sha256) in its PT_NOTE segments"
        );
    }
    assert!(
        n.sections.2 <= 128,
        "{f}: {} bytes of OMNIBOR notes",
        n.sections.2
    );
    if let Some(s) = n.note_omnibor {
        assert!(s <= 128, "{f}: .note.omnibor is {s} bytes");
    }
}

// ---------------------------------------------------------------------------------------------
// Kbuild's record

/// `source_` and `deps_` of an object (or other Kbuild target) from its `.NAME.cmd` file
/// (None without one).
/// Paths as Kbuild wrote them (relative to the tree, or absolute for the compiler's own
/// headers); `$(wildcard ...)` entries (config dependencies, files that may not exist) dropped.
struct Cmd {
    source: String,
    deps: Vec<String>,
}

fn cmd_file(tree: &Path, target: &str) -> Option<Cmd> {
    let p = Path::new(target);
    let name = format!(".{}.cmd", p.file_name()?.to_str()?);
    let file = tree.join(p.parent().unwrap_or(Path::new(""))).join(name);
    let text = std::fs::read_to_string(&file).ok()?;
    let mut source = None;
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        if let Some(s) = line.strip_prefix(&format!("source_{target} := ")) {
            source = Some(s.trim().to_string());
        } else if line.starts_with(&format!("deps_{target} := ")) {
            in_deps = true;
        } else if in_deps {
            let l = line.trim().trim_end_matches('\\').trim();
            if l.is_empty() {
                in_deps = false;
            } else if !l.starts_with("$(wildcard") {
                deps.push(l.to_string());
            }
        }
    }
    // (tools/ objects' .cmd files, written by tools/build, have no source_ line)
    Some(Cmd {
        source: source?,
        deps,
    })
}

/// A path Kbuild or a tool printed, relative to the tree when it is inside it.
fn rel(tree: &Path, p: &str) -> String {
    let pb = Path::new(p);
    let abs = if pb.is_absolute() {
        pb.to_path_buf()
    } else {
        tree.join(pb)
    };
    let abs = omnishim::shim::record::absolute(Path::new("/"), &abs);
    match abs.strip_prefix(tree) {
        Ok(r) => r.to_string_lossy().into_owned(),
        Err(_) => abs.to_string_lossy().into_owned(),
    }
}

/// `ar t` of an archive, flattened (members that are archives replaced by their members), as
/// paths relative to the tree (thin archives name their members from where `ar` ran, the
/// tree's top; otherwise from the archive's directory).
fn ar_members(tree: &Path, archive: &str) -> Vec<String> {
    let out = stdout(
        Command::new(need("ar"))
            .arg("t")
            .arg(archive)
            .current_dir(tree),
    );
    let dir = Path::new(archive).parent().unwrap_or(Path::new(""));
    let mut v = Vec::new();
    for m in out.lines() {
        let mut r = rel(tree, m);
        if !tree.join(&r).is_file() {
            r = rel(tree, &dir.join(m).to_string_lossy());
        }
        let is_ar = std::fs::read(tree.join(&r)).is_ok_and(|b| b.starts_with(b"!<arch>"));
        if is_ar {
            v.extend(ar_members(tree, &r));
        } else {
            v.push(r);
        }
    }
    v
}

fn is_thin(file: &Path) -> bool {
    std::fs::read(file).is_ok_and(|b| b.starts_with(b"!<thin>\n"))
}

/// What Kbuild's final link of vmlinux read, from the tree and `vmlinux.map`:
/// the objects (members of vmlinux.a, lib.a members pulled in, other objects loaded) and the
/// linker script.
struct Linked {
    objects: BTreeSet<String>,
    pulled: BTreeSet<String>,
    loaded: Vec<String>,
}

fn linked(tree: &Path) -> Linked {
    let map = std::fs::read_to_string(tree.join("vmlinux.map")).unwrap();
    let mut pulled = BTreeSet::new();
    let mut loaded = Vec::new();
    // entries: a member at column 0 (a thin archive's member by its path, another's as
    // `archive(member)`), then why: `(--whole-archive)` or the file and symbol that pulled it
    // in, on the same line or the next
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut in_members = false;
    for line in map.lines() {
        if line.starts_with("Archive member included") {
            in_members = true;
            continue;
        }
        if line.starts_with("Discarded input sections")
            || line.starts_with("Memory Configuration")
            || line.starts_with("Linker script and memory map")
        {
            in_members = false;
        }
        if in_members && !line.is_empty() {
            if line.starts_with(char::is_whitespace) {
                if let Some(e) = entries.last_mut() {
                    if e.1.is_empty() {
                        e.1 = line.trim().to_string();
                    }
                }
            } else {
                let (tok, why) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                let member = match tok.strip_suffix(')').and_then(|t| t.split_once(".a(")) {
                    Some((archive, member)) => {
                        let m = rel(tree, member);
                        if tree.join(&m).is_file() {
                            m
                        } else {
                            let d = Path::new(archive).parent().unwrap_or(Path::new(""));
                            rel(tree, &d.join(member).to_string_lossy())
                        }
                    }
                    None => rel(tree, tok),
                };
                entries.push((member, why.trim().to_string()));
            }
        }
        if let Some(f) = line.strip_prefix("LOAD ") {
            loaded.push(rel(tree, f.trim()));
        }
    }
    for (m, why) in &entries {
        if why != "(--whole-archive)" {
            pulled.insert(m.clone());
        }
    }
    let mut objects: BTreeSet<String> = ar_members(tree, "vmlinux.a").into_iter().collect();
    let whole: BTreeSet<String> = entries
        .iter()
        .filter(|(_, why)| why == "(--whole-archive)")
        .map(|(m, _)| m.clone())
        .collect();
    assert_eq!(
        objects, whole,
        "ar t vmlinux.a against vmlinux.map's --whole-archive members"
    );
    objects.extend(pulled.iter().cloned());
    for l in &loaded {
        if !l.ends_with(".a") && !l.starts_with('/') {
            objects.insert(l.clone());
        }
    }
    assert!(
        loaded.iter().any(|l| l == "vmlinux.a") && objects.len() > 300,
        "vmlinux.map: loaded {loaded:?}, {} objects",
        objects.len()
    );
    Linked {
        objects,
        pulled,
        loaded,
    }
}

fn sha1_uri(p: &Path) -> String {
    gitoid::ids_of_file(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .sha1
        .uri()
}

/// `omnishim resolve --sources` of a file: (path, ID) lines; its exit status and stderr.
fn resolve_sources(k: &Kernel, file: &Path) -> (Option<i32>, Vec<(String, String)>, String) {
    let out = omnishim(&["resolve", "--sources", "--store"])
        .arg(&k.store)
        .arg(file)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit_once("  "))
        .map(|(p, id)| (rel(&k.wrapped, p), id.to_string()))
        .collect();
    (
        out.status.code(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn kernel_vmlinux_carries_one_small_note() {
    let (k, _e) = kernel();
    let vmlinux = k.wrapped.join("vmlinux");
    let n = count_notes(&vmlinux);
    let bare = count_notes(&k.bare.join("vmlinux"));
    eprintln!(
        "kernel: .notes of vmlinux: bare {:?} bytes, wrapped {:?} bytes; OMNIBOR entries \
         (sha1, sha256, bytes) in sections {:?}, in PT_NOTE {:?}",
        bare.dot_notes, n.dot_notes, n.sections, n.segments
    );
    assert_eq!(
        bare.sections,
        (0, 0, 0),
        "the bare build has no OmniBOR notes"
    );
    assert_one_small_note(&vmlinux, &n, true);
    // the bare link plus one note: the gathered notes grow by at most the note itself
    let (b, w) = (bare.dot_notes.unwrap_or(0), n.dot_notes.unwrap_or(0));
    assert!(w <= b + 128, ".notes: bare {b} bytes, wrapped {w}");
    // and the note names manifests the store holds
    let ids = omnishim::elf::read_note_file(&vmlinux).unwrap_or_else(|e| panic!("{e}"));
    let s = Store::at(&k.store);
    for id in [ids.sha1, ids.sha256] {
        let id = id.unwrap_or_else(|| panic!("vmlinux: omnishim reads no note"));
        s.get_manifest(&id)
            .unwrap_or_else(|e| panic!("vmlinux: {e}"));
    }
}

/// The sources of vmlinux are what Kbuild says went into it. The linked objects: every member
/// of vmlinux.a, the lib.a members the final link pulled in (vmlinux.map), and the other
/// objects it loaded (init/version-timestamp.o, which has a `.cmd`; with CONFIG_KALLSYMS, which
/// tinyconfig leaves off, `.tmp_vmlinux.kallsymsN.o`, assembled by link-vmlinux.sh from the
/// `.S` kallsyms generated, with no `.cmd`: its `.S` is then required, and its few headers
/// must be in some `deps_` list like any other). Each object is a node of the graph, so its
/// `source_` file must be listed, and anything else listed must be in some `deps_` list, or be
/// `include/generated/autoconf.h` (`-include`d through kconfig.h; fixdep drops it from
/// `deps_`).
/// The linker script `arch/x86/kernel/vmlinux.lds` is an input too (the linker names it in its
/// dependency file, as it does version scripts). cpp made it from `vmlinux.lds.S` (it has a
/// `.cmd`); the shims pass preprocessing through unrecorded, so today the script is a leaf of
/// its own. Either is right: the script, or its `source_` (and then its `deps_` allowed), must
/// be listed.
/// Compared by content (sha1 gitoid), since `--sources` prints one path per distinct content.
#[test]
fn kernel_vmlinux_sources_are_kbuilds() {
    let (k, _e) = kernel();
    let t = &k.wrapped;
    let l = linked(t);
    // the wrapped link took the same objects as the bare one
    let b = linked(&k.bare);
    assert_eq!(
        l.objects, b.objects,
        "objects linked into vmlinux: wrapped against bare build"
    );
    let mut required: BTreeMap<String, String> = BTreeMap::new(); // path -> for which target
    let mut allowed: BTreeSet<String> = BTreeSet::new();
    let mut no_cmd = Vec::new();
    for o in &l.objects {
        match cmd_file(t, o) {
            Some(c) => {
                required.insert(rel(t, &c.source), o.clone());
                allowed.extend(c.deps.iter().map(|d| rel(t, d)));
            }
            None => no_cmd.push(o.clone()),
        }
    }
    // only the kallsyms object has no .cmd
    for o in &no_cmd {
        let s = o.strip_suffix(".o").unwrap_or(o);
        assert!(
            s.starts_with(".tmp_vmlinux.kallsyms") && t.join(format!("{s}.S")).is_file(),
            "{o}: linked into vmlinux, without a .cmd file"
        );
        required.insert(format!("{s}.S"), o.clone());
    }
    allowed.extend(required.keys().cloned());
    allowed.insert("include/generated/autoconf.h".into());
    let script = "arch/x86/kernel/vmlinux.lds";
    let script_cmd = cmd_file(t, script).unwrap_or_else(|| panic!("{script}: no .cmd"));
    let script_source = rel(t, &script_cmd.source);
    allowed.insert(script.into());
    allowed.insert(script_source.clone());
    allowed.extend(script_cmd.deps.iter().map(|d| rel(t, d)));
    let id_of = |p: &str| sha1_uri(&t.join(p));
    // (a deps_ file gone after the build cannot be compared; none is, in 6.1)
    let allowed_ids: BTreeMap<String, String> = allowed
        .iter()
        .filter(|p| t.join(p).is_file())
        .map(|p| (id_of(p), p.clone()))
        .collect();

    let (code, listed, err) = resolve_sources(k, &t.join("vmlinux"));
    eprintln!(
        "kernel: {} objects linked ({} pulled from lib.a archives; loaded {:?}); {} source_ \
         files, {} allowed files; resolve --sources lists {}",
        l.objects.len(),
        l.pulled.len(),
        l.loaded,
        required.len(),
        allowed.len(),
        listed.len()
    );
    assert_eq!(code, Some(0), "resolve --sources vmlinux: {err}");
    let listed_ids: BTreeSet<&String> = listed.iter().map(|(_, id)| id).collect();
    let mut missing: Vec<String> = required
        .iter()
        .filter(|(p, _)| !listed_ids.contains(&id_of(p)))
        .map(|(p, o)| format!("{p} (of {o})"))
        .collect();
    if !listed_ids.contains(&id_of(script)) && !listed_ids.contains(&id_of(&script_source)) {
        missing.push(format!("{script} (or its source {script_source})"));
    }
    let extra: Vec<&String> = listed
        .iter()
        .filter(|(_, id)| !allowed_ids.contains_key(id))
        .map(|(p, _)| p)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "vmlinux: {} source_ files not listed: {:?}{}; {} listed files in no deps_ list: {:?}{}",
        missing.len(),
        &missing[..missing.len().min(20)],
        if missing.len() > 20 { " ..." } else { "" },
        extra.len(),
        &extra[..extra.len().min(20)],
        if extra.len() > 20 { " ..." } else { "" },
    );
}

#[test]
fn kernel_check_deny_fork_c_finds_it() {
    let (k, _e) = kernel();
    let fork = k.wrapped.join("kernel/fork.c");
    let blob = stdout(Command::new(need("git")).arg("hash-object").arg(&fork));
    let deny = k.base.join("deny-fork.txt");
    std::fs::write(&deny, format!("{} CVE-TEST-FORK\n", blob.trim())).unwrap();
    let out = omnishim(&["check", "--deny"])
        .arg(&deny)
        .arg("--store")
        .arg(&k.store)
        .arg(k.wrapped.join("vmlinux"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "check vmlinux: {text}{err}");
    assert!(
        text.contains("CVE-TEST-FORK") && text.contains("kernel/fork.c"),
        "check vmlinux: {text}{err}"
    );
}

/// Every archive of the tree resolves to its `ar t` members: the objects below it in the
/// graph (archives below it walked through, for thin archives of thin archives) are the
/// flattened `ar t` list, by path and by content; and its sources include each member's
/// `source_` where Kbuild wrote a `.cmd` for it.
#[test]
fn kernel_every_archive_resolves_to_its_members() {
    let (k, _e) = kernel();
    let t = &k.wrapped;
    let found = sh_ok(t, "find . -name '*.a' -type f");
    let archives: Vec<String> = found.lines().map(|a| rel(t, a)).collect();
    assert!(archives.len() > 40, "{archives:?}");
    let mut failures = Vec::new();
    let mut nonempty = 0;
    for a in &archives {
        let members = ar_members(t, a);
        if !members.is_empty() {
            nonempty += 1;
        }
        let thin = is_thin(&t.join(a));
        // by content: thin members are the files named; others by `ar p`
        let want: BTreeMap<String, String> = members
            .iter()
            .map(|m| {
                let id = if thin {
                    sha1_uri(&t.join(m))
                } else {
                    let b = run_ok(
                        Command::new("ar")
                            .arg("p")
                            .arg(a)
                            .arg(Path::new(m).file_name().unwrap())
                            .current_dir(t),
                    )
                    .stdout;
                    gitoid::ids_of_bytes(&b).sha1.uri()
                };
                (id, m.clone())
            })
            .collect();
        let out = omnishim(&["resolve", "--json", "--store"])
            .arg(&k.store)
            .arg(t.join(a))
            .output()
            .unwrap();
        if out.status.code() != Some(0) {
            failures.push(format!(
                "{a} ({} members): resolve exits {:?}: {}",
                members.len(),
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let doc = &v[0];
        let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in doc["edges"].as_array().unwrap() {
            children
                .entry(e["from"].as_str().unwrap().into())
                .or_default()
                .push(e["to"].as_str().unwrap().into());
        }
        let paths = |id: &str| -> Vec<String> {
            doc["nodes"][id]["paths"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str())
                        .map(|p| rel(t, p))
                        .collect()
                })
                .unwrap_or_default()
        };
        let is_archive = |id: &str| {
            paths(id)
                .iter()
                .any(|p| std::fs::read(t.join(p)).is_ok_and(|b| b.starts_with(b"!<arch>")))
        };
        // the objects below: walk down through archives
        let mut below: BTreeSet<String> = BTreeSet::new();
        let mut stack = vec![doc["root"].as_str().unwrap().to_string()];
        let mut seen = BTreeSet::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            for c in children.get(&id).into_iter().flatten() {
                if is_archive(c) {
                    stack.push(c.clone());
                } else {
                    below.insert(c.clone());
                }
            }
        }
        let want_ids: BTreeSet<String> = want.keys().cloned().collect();
        if below != want_ids {
            let missing: Vec<&String> = want
                .iter()
                .filter(|(id, _)| !below.contains(*id))
                .map(|(_, m)| m)
                .collect();
            let extra: Vec<Vec<String>> = below
                .iter()
                .filter(|id| !want.contains_key(*id))
                .map(|id| paths(id))
                .collect();
            failures.push(format!(
                "{a}: {} members, {} objects below it; members not below: {:?}; objects below \
                 that are not members: {:?}",
                members.len(),
                below.len(),
                &missing[..missing.len().min(5)],
                &extra[..extra.len().min(5)]
            ));
            continue;
        }
        // by path: each member is recorded where ar found it
        for (id, m) in &want {
            if thin && !paths(id).contains(m) {
                failures.push(format!("{a}: member {m} recorded at {:?}", paths(id)));
            }
        }
        // and its sources include every member's source_
        let (_, listed, _) = resolve_sources(k, &t.join(a));
        let listed: BTreeSet<String> = listed.into_iter().map(|(_, id)| id).collect();
        for m in &members {
            if let Some(c) = cmd_file(t, m) {
                let s = rel(t, &c.source);
                if !listed.contains(&sha1_uri(&t.join(&s))) {
                    failures.push(format!(
                        "{a}: member {m}'s source {s} not among its sources"
                    ));
                }
            }
        }
    }
    eprintln!(
        "kernel: {} archives ({nonempty} non-empty), {} failing",
        archives.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} archives do not resolve to their members:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn kernel_vmlinux_loaded_size_is_the_bare_ones() {
    let (k, _e) = kernel();
    let bare = loaded_size(&k.bare.join("vmlinux"));
    let wrapped = loaded_size(&k.wrapped.join("vmlinux"));
    eprintln!(
        "kernel: vmlinux loaded size (sum of PT_LOAD memsz): bare {bare}, wrapped {wrapped} \
         (+{})",
        wrapped as i64 - bare as i64
    );
    assert!(
        wrapped <= bare + 4096,
        "vmlinux loaded size: bare {bare} bytes, wrapped {wrapped} (+{})",
        wrapped - bare
    );
}

/// The other linked outputs made with note-gathering linker scripts: the vDSO (its script
/// puts notes in `.note`) and the real-mode blob (32-bit).
#[test]
fn kernel_vdso_and_realmode_are_recorded() {
    let (k, _e) = kernel();
    let mut failures = Vec::new();
    for (file, source) in [
        (
            "arch/x86/entry/vdso/vdso64.so.dbg",
            "arch/x86/entry/vdso/vclock_gettime.c",
        ),
        (
            "arch/x86/realmode/rm/realmode.elf",
            "arch/x86/realmode/rm/trampoline_64.S",
        ),
    ] {
        let p = k.wrapped.join(file);
        let (code, listed, err) = resolve_sources(k, &p);
        let want = sha1_uri(&k.wrapped.join(source));
        if code != Some(0) || !listed.iter().any(|(_, id)| *id == want) {
            failures.push(format!(
                "{file}: resolve --sources exits {code:?}, {} sources, {source} {}: {}",
                listed.len(),
                if listed.iter().any(|(_, id)| *id == want) {
                    "among them"
                } else {
                    "not among them"
                },
                err.trim()
            ));
        }
        let n = count_notes(&p);
        // realmode.lds discards every `.note*` input (no note can reach realmode.elf, which
        // becomes a flat binary): it is recorded by its ID in the store's target index and
        // must carry no note; the vDSO gathers notes into its `.note` and carries ours
        let want = if file.ends_with("realmode.elf") {
            (0, 0)
        } else {
            (1, 1)
        };
        if (n.sections.0, n.sections.1) != want || n.sections.2 > 128 {
            failures.push(format!(
                "{file}: OMNIBOR entries (sha1, sha256, bytes) {:?} in sections, {:?} in PT_NOTE",
                n.sections, n.segments
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The run records vmlinux: no warning about it (today: "no .note.omnibor section to
/// rewrite"), and the summary names it among the top-level outputs.
#[test]
fn kernel_run_records_vmlinux() {
    let (k, _e) = kernel();
    let log = std::fs::read_to_string(k.wrapped.join("run.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let (summary, rest) = lines.split_last().unwrap();
    let warnings: Vec<&&str> = rest.iter().filter(|l| l.starts_with("omnishim")).collect();
    eprintln!(
        "kernel: run.log: {} lines from omnishim before the summary; summary: {summary}",
        warnings.len()
    );
    // (warnings about its inputs, vmlinux.a among them, are the archive test's business)
    let about: Vec<&&&str> = warnings
        .iter()
        .filter(|w| w.contains(" vmlinux: "))
        .collect();
    assert!(about.is_empty(), "{about:#?}");
    let vmlinux = k.wrapped.join("vmlinux");
    let top = summary
        .split_once("top-level outputs: ")
        .map(|(_, t)| t)
        .unwrap_or("");
    assert!(
        top.split(' ').any(|o| Path::new(o) == vmlinux),
        "vmlinux is not among the top-level outputs: {summary}"
    );
}
