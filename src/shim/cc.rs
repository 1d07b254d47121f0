//! `omnibor-cc` / `omnibor-c++` and the compiler masquerade names.
//!
//! What the compiler read comes from the compiler itself: `-MD -MF <private file>` added to
//! the command (or the user's own `-MD` depfile, with `-MMD` widened to `-MD` so that system
//! headers are listed too). What the linker combined comes from the linker itself:
//! `-Wl,--dependency-file=<private file>` (ld.bfd 2.35+, gold, lld, mold). A placeholder
//! note object joins every link so the output has a `.note.omnibor` to rewrite.

use super::find::{self, Finder};
use super::link;
use super::record::{self, Recorder};
use super::scratch::Scratch;
use super::{run, Invoked};
use crate::classify::gcc::{self, CcStep, DepPlan, Mode};
use crate::classify::{arg, rsp, Family};
use crate::depfile;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The real compiler and the arguments that go before the user's: `ccache gcc ...` runs
/// `ccache` with `gcc` first.
struct Resolved {
    tool: PathBuf,
    pre: Vec<OsString>,
    args: Vec<OsString>,
}

fn looks_like_program(finder: &Finder, a: &OsString) -> bool {
    let Some(s) = a.to_str() else { return false };
    !s.starts_with('-') && !s.starts_with('@') && gcc::lang_of(s).is_none() && finder.resolves(s)
}

fn resolve(
    finder: &Finder,
    invoked: &Invoked,
    args: Vec<OsString>,
) -> Result<Resolved, find::FindError> {
    match invoked {
        Invoked::Masquerade(_, name) => Ok(Resolved {
            tool: finder.find(name)?,
            pre: Vec::new(),
            args,
        }),
        Invoked::Explicit(fam) => {
            // prefix mode: omnibor-cc gcc -c x.c / omnibor-cc ccache gcc -c x.c
            if let Some(first) = args.first().filter(|a| looks_like_program(finder, a)) {
                let tool = finder.find(&first.to_string_lossy())?;
                let mut rest: Vec<OsString> = args[1..].to_vec();
                let mut pre = Vec::new();
                if find::is_wrapper(&first.to_string_lossy())
                    && rest.first().is_some_and(|a| looks_like_program(finder, a))
                {
                    pre.push(rest.remove(0));
                }
                return Ok(Resolved {
                    tool,
                    pre,
                    args: rest,
                });
            }
            let (var, default) = match fam {
                Family::Cxx => ("OMNIBOR_CXX", "c++"),
                _ => ("OMNIBOR_CC", "cc"),
            };
            let setting = std::env::var(var).ok().filter(|s| !s.trim().is_empty());
            let words: Vec<String> = match &setting {
                Some(s) => s.split_whitespace().map(str::to_string).collect(),
                None => vec![default.to_string()],
            };
            let tool = finder.find(&words[0])?;
            Ok(Resolved {
                tool,
                pre: words[1..].iter().map(OsString::from).collect(),
                args,
            })
        }
    }
}

pub fn main(invoked: Invoked, args: Vec<OsString>) -> ! {
    let finder = Finder::new();
    let r = match resolve(&finder, &invoked, args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("omnishim: {e}");
            std::process::exit(127);
        }
    };
    let chain = finder.chain_with(&r.tool);
    super::phase::mark("resolve");
    super::set_step(&r.tool, &r.args);
    let passthrough = |reason: Option<&str>| -> ! {
        if let Some(reason) = reason {
            super::log_unrecorded(&r.tool, &r.args, reason);
        }
        let mut all = r.pre.clone();
        all.extend(r.args.iter().cloned());
        let e = run::exec(run::command(&r.tool, &all, &chain));
        eprintln!("omnishim: cannot run {}: {e}", r.tool.display());
        std::process::exit(127)
    };
    if find::nested() {
        passthrough(None);
    }
    // bytes that are not UTF-8 ride along in the strings (see `classify::arg`)
    let strs: Vec<String> = r.args.iter().map(|a| arg::from_os(a)).collect();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let (expanded, had_rsp) = rsp::expand(&strs, &cwd);
    let step = gcc::classify(&expanded);
    super::phase::mark("classify");
    match &step.mode {
        Mode::Info | Mode::Preprocess | Mode::NoOutput => passthrough(None),
        Mode::Unsupported(reason) => {
            if super::strict() {
                super::log_unrecorded(&r.tool, &r.args, reason);
                eprintln!("omnishim: error: not recorded: {reason}");
                std::process::exit(1);
            }
            passthrough(Some(reason));
        }
        _ => {}
    }
    // Compiler probes write to /dev/null (`gcc -S -o /dev/null -xc /dev/null`): a device,
    // FIFO or socket holds no artifact, and must not get a note or a place in the index.
    if step
        .outputs()
        .iter()
        .any(|o| super::not_regular(&arg::path(o)))
    {
        passthrough(Some(super::NOT_REGULAR_OUTPUT));
    }
    let mut scratch = Scratch::new(&r.tool);
    // one recorder for the step: its open directories serve the plan and the recording
    let early = Recorder::new().ok();
    let ctx = Ctx {
        r: &r,
        chain: &chain,
        rec: early.as_ref(),
    };
    let plan = match plan(&step, &expanded, &strs, had_rsp, &mut scratch, &ctx) {
        Ok(p) => p,
        Err(e) => {
            drop(scratch);
            if let Some(code) = super::report_failure("step", &e) {
                std::process::exit(code);
            }
            passthrough(None);
        }
    };
    let outputs = step.outputs();
    let abs_outputs: Vec<PathBuf> = outputs
        .iter()
        .map(|o| record::absolute(&cwd, &arg::path(o)))
        .collect();
    super::phase::mark("plan");
    super::begin_step(&abs_outputs);
    super::phase::mark("inflight_begin");
    let mut all = r.pre.clone();
    all.extend(plan.args.iter().map(|a| arg::to_os(a)));
    let cmd = run::command(&r.tool, &all, &chain);
    if links(&step) && r.pre.is_empty() {
        if let Some(p) = path_without_our_ld(&finder) {
            run::set_inherited("PATH", &p);
        }
    }
    super::phase::mark("command");
    let status = match super::run_warming(cmd, early.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            drop(scratch);
            eprintln!("omnishim: cannot run {}: {e}", r.tool.display());
            super::leave(127);
        }
    };
    if !status.success() {
        drop(scratch);
        run::exit_like(status);
    }
    super::phase::mark("tool");
    let what = outputs
        .first()
        .map(|o| arg::display(o))
        .unwrap_or_else(|| "step".into());
    let result = collect_and_record(&ctx, &step, &expanded, &plan, &mut scratch, &strs);
    super::phase::mark("record");
    drop(scratch);
    super::phase::mark("scratch_removed");
    if let Err(e) = result {
        if let Some(code) = super::report_failure(&what, &e) {
            super::remove_unrecorded(&abs_outputs);
            super::leave(code);
        }
    }
    run::exit_like(status)
}

/// PATH for the driver of a link we record, without the directories whose `ld` is this very
/// binary (a masquerade directory). collect2 looks `ld` up on PATH: it would start a second
/// shim, a whole process start (about 0.6 ms of CPU here), only for that shim to see it is
/// nested and hand the call on to the next `ld` on PATH, the one the driver now finds
/// itself. None when PATH has no such directory. (A masquerade directory holds only shims,
/// so nothing else the driver runs is lost with it; a wrapper in front of the driver keeps
/// PATH as it is.)
fn path_without_our_ld(finder: &Finder) -> Option<OsString> {
    let path = std::env::var_os("PATH")?;
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let kept: Vec<&PathBuf> = dirs
        .iter()
        .filter(|d| !finder.is_self(&d.join("ld")))
        .collect();
    if kept.len() == dirs.len() {
        return None;
    }
    std::env::join_paths(kept).ok()
}

/// Leave out of a compile's inputs what is no regular file: /dev/null as a source (a
/// probe compiling an empty file), /dev/stdin, /dev/fd/N from a shell's process
/// substitution. Such a file has no content of its own to identify (/dev/null would get the
/// ID of every empty file, a FIFO reads differently each time and reading it again would
/// steal or block on the writer's data), so it is no input of the output. Only the
/// sources and paths under /dev and /proc can be such files in a depfile: headers are
/// read as regular files, and checking them all would cost a stat each.
fn drop_special_inputs(deps: &mut Vec<String>, sources: &[gcc::Source]) {
    deps.retain(|d| {
        let suspect = d.starts_with("/dev/")
            || d.starts_with("/proc/")
            || sources.iter().any(|s| s.path == *d);
        !(suspect && super::not_regular(&arg::path(d)))
    });
}

/// What we add to the command, and where the lists will be.
struct Plan {
    /// The argv to run (without the program and any wrapper prefix).
    args: Vec<String>,
    /// Where the compiler writes the list of files it read, if a single depfile covers the
    /// step; None means: ask the compiler again per source after the step (`-M`).
    depfile: Option<PathBuf>,
    /// The linker's dependency file, for steps that link.
    ld_deps: Option<PathBuf>,
    /// Our placeholder object (to leave out of the manifest).
    placeholder: Option<PathBuf>,
    /// The link's map, which tells the archive members it pulled in.
    map: link::LinkMap,
}

fn links(step: &CcStep) -> bool {
    matches!(step.mode, Mode::Link | Mode::CompileLink)
}

fn compiles(step: &CcStep) -> bool {
    matches!(
        step.mode,
        Mode::Compile | Mode::Assemble | Mode::CompileLink
    )
}

/// The arguments that choose the target of a driver (and so of a placeholder object).
fn target_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if matches!(
            a.as_str(),
            "-target" | "-B" | "--sysroot" | "-mllvm" | "-arch"
        ) {
            out.extend(args[i..(i + 2).min(args.len())].iter().cloned());
            i += 2;
            continue;
        }
        if a.starts_with("-m")
            || a.starts_with("--target")
            || a.starts_with("--sysroot")
            || a.starts_with("-B")
            || a.starts_with("-specs")
            || a.starts_with("--specs")
        {
            out.push(a.clone());
        }
        i += 1;
    }
    out
}

/// A placeholder object for a driver link that has no object to copy the target from
/// (`cc a.c -o prog`, every configure test): assembled once per compiler and target options,
/// then kept in the store, so such links do not pay for an extra assembler run each time.
fn cached_placeholder(ctx: &Ctx, expanded: &[String], scratch: &mut Scratch) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let (r, chain, rec) = (ctx.r, ctx.chain, ctx.rec?);
    let meta = std::fs::metadata(&r.tool).ok()?;
    let targets = target_args(expanded);
    let mut key = format!("{}\0{}\0{}", r.tool.display(), meta.mtime(), meta.size());
    for a in r
        .pre
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .chain(targets.iter().cloned())
    {
        key.push('\0');
        key.push_str(&a);
    }
    let name = crate::gitoid::id_of_bytes(crate::gitoid::Alg::Sha1, key.as_bytes()).hex();
    let path = rec
        .store
        .root()
        .join("metadata")
        .join(crate::store::TOOL)
        // placeholders-2: the note in our COMDAT group (earlier ones had none)
        .join("placeholders-2")
        .join(format!("{name}.o"));
    if rec.store.is_file(&path) {
        return Some(path);
    }
    let src = link::write_placeholder_asm(scratch).ok()?;
    // the assembler makes its object itself: a real file
    let obj = scratch.dir_path("omnibor-note-cached.o").ok()?;
    let mut args: Vec<OsString> = r.pre.clone();
    args.extend(targets.iter().map(|a| arg::to_os(a)));
    args.extend(["-c", "-x", "assembler"].map(OsString::from));
    args.push(src.into());
    args.push("-o".into());
    args.push(obj.clone().into());
    let mut cmd = run::command(&r.tool, &args, chain);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if !cmd.status().ok()?.success() {
        return None;
    }
    let bytes = crate::store::read_path(&obj).ok()?;
    rec.store.write_file(&path, &bytes).ok()?;
    Some(path)
}

/// What a step's parts share: the tool, the shim chain, the step's recorder (None when it
/// could not be made before the tool ran).
struct Ctx<'a> {
    r: &'a Resolved,
    chain: &'a [PathBuf],
    rec: Option<&'a Recorder>,
}

fn plan(
    step: &CcStep,
    expanded: &[String],
    original: &[String],
    had_rsp: bool,
    scratch: &mut Scratch,
    ctx: &Ctx,
) -> Result<Plan, record::RecordError> {
    let mut modified: Vec<String> = expanded.to_vec();
    let mut changed = false;
    let mut extra: Vec<String> = Vec::new();
    let mut depfile = None;
    if compiles(step) {
        // The user's depfile must stay byte for byte what the bare compiler writes.
        match step.deps_plan(env_system_dirs()) {
            DepPlan::Private => {
                let d = scratch
                    .file("cc.d")
                    .map_err(record::io_err(Path::new("cc.d")))?;
                extra.extend(["-MD".into(), "-MF".into(), arg::from_path(&d)]);
                depfile = Some(d);
            }
            DepPlan::User(f) => depfile = Some(arg::path(&f)),
            DepPlan::Widen(f) => {
                // no system include directory: -MD lists what -MMD lists, and system
                // headers included through a `#pragma GCC system_header` too
                for &i in &step.dep.mmd_at {
                    modified[i] = "-MD".into();
                    changed = true;
                }
                if let Some((i, f, true)) = &step.dep.wp {
                    modified[*i] = format!("-Wp,-MD,{f}");
                    changed = true;
                }
                depfile = Some(arg::path(&f));
            }
            DepPlan::Rerun => {}
        }
    }
    let mut ld_deps = None;
    let mut placeholder = None;
    let mut map = link::LinkMap::Unavailable;
    if links(step) {
        let d = scratch
            .file("ld.d")
            .map_err(record::io_err(Path::new("ld.d")))?;
        extra.push(format!("-Wl,--dependency-file={}", arg::from_path(&d)));
        ld_deps = Some(d);
        let largs = crate::classify::ld::driver_linker_args(expanded);
        map = match crate::classify::ld::user_map(&largs) {
            Some(crate::classify::ld::UserMap::File(f)) => link::LinkMap::File(arg::path(&f)),
            Some(crate::classify::ld::UserMap::Stdout) => link::LinkMap::Unavailable,
            None if crate::classify::ld::may_pull_members(expanded) => {
                // lld tries a map's path first by making a file beside it and renaming it
                // over the path: a real file
                let m = scratch
                    .dir_path("ld.map")
                    .map_err(record::io_err(Path::new("ld.map")))?;
                extra.push(format!("-Wl,-Map={}", arg::from_path(&m)));
                link::LinkMap::File(m)
            }
            None => link::LinkMap::Unavailable,
        };
        if !step.relocatable {
            let cwd = std::env::current_dir().unwrap_or_default();
            let path = match link::find_target(&step.link_inputs, &cwd) {
                Some(t) => {
                    if step.x_used {
                        extra.extend(["-x".into(), "none".into()]);
                    }
                    link::write_placeholder_object(&t, scratch)?
                }
                None => match cached_placeholder(ctx, expanded, scratch) {
                    Some(p) => {
                        if step.x_used {
                            extra.extend(["-x".into(), "none".into()]);
                        }
                        p
                    }
                    None => {
                        extra.extend(["-x".into(), "assembler".into()]);
                        link::write_placeholder_asm(scratch)?
                    }
                },
            };
            extra.push(arg::from_path(&path));
            placeholder = Some(path);
        }
    }
    let mut args = if changed {
        if had_rsp {
            // the changed argument may sit in a response file: hand over our own
            let text: Vec<String> = modified.iter().map(|a| rsp::quote(a)).collect();
            let f = scratch
                .file_with("args.rsp", &arg::to_bytes(&text.join("\n")))
                .map_err(record::io_err(Path::new("args.rsp")))?;
            vec![format!("@{}", arg::from_path(&f))]
        } else {
            modified
        }
    } else {
        original.to_vec()
    };
    args.extend(extra);
    Ok(Plan {
        args,
        depfile,
        ld_deps,
        placeholder,
        map,
    })
}

/// The environment adds system include directories (headers a `-MMD` depfile leaves out).
fn env_system_dirs() -> bool {
    ["C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "OBJC_INCLUDE_PATH"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|p| !p.is_empty()))
}

/// Run the compiler again with `-M` for one source: what it reads for that source.
fn rerun_deps(
    r: &Resolved,
    step: &CcStep,
    expanded: &[String],
    chain: &[PathBuf],
    src: &gcc::Source,
    out: &Path,
    scratch: &Scratch,
) -> Result<Vec<String>, record::RecordError> {
    let mut args: Vec<OsString> = r.pre.clone();
    let control: std::collections::HashSet<usize> = step.control_idx.iter().copied().collect();
    for (i, a) in expanded.iter().enumerate() {
        if !control.contains(&i) {
            args.push(arg::to_os(a));
        } else if step.dep.wp_dep_at.contains(&i) {
            // the user's depfile must not be written again; the rest of the -Wp stays
            if let Some(rest) = gcc::wp_strip_deps(a) {
                args.push(arg::to_os(&rest));
            }
        }
    }
    args.extend(["-E", "-M", "-MF"].map(OsString::from));
    args.push(out.into());
    match &src.lang {
        Some(l) => args.extend([OsString::from("-x"), OsString::from(l)]),
        None if step.x_used => args.extend(["-x", "none"].map(OsString::from)),
        None => {}
    }
    args.push(arg::to_os(&src.path));
    let mut cmd = run::command(&r.tool, &args, chain);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let st = cmd.status().map_err(record::io_err(&r.tool))?;
    if !st.success() {
        return Err(record::RecordError::Other(format!(
            "'{} -M' for {} failed",
            r.tool.display(),
            arg::display(&src.path)
        )));
    }
    read_deps(scratch, out)
}

fn is_plain_asm(s: &gcc::Source) -> bool {
    s.lang.as_deref().or_else(|| gcc::lang_of(&s.path)) == Some("assembler")
}

fn read_deps(scratch: &Scratch, path: &Path) -> Result<Vec<String>, record::RecordError> {
    let text = scratch.read(path).map_err(record::io_err(path))?;
    Ok(depfile::prerequisites(&text))
}

fn collect_and_record(
    ctx: &Ctx,
    step: &CcStep,
    expanded: &[String],
    plan: &Plan,
    scratch: &mut Scratch,
    original: &[String],
) -> Result<(), record::RecordError> {
    let (r, chain) = (ctx.r, ctx.chain);
    let made;
    let rec = match ctx.rec {
        Some(rec) => rec,
        None => {
            made = Recorder::new()?;
            &made
        }
    };
    super::phase::mark("recorder");
    let outputs = step.outputs();
    // What the compiler read, per source.
    let mut per_source: Vec<Vec<String>> = Vec::new();
    if compiles(step) {
        match &plan.depfile {
            Some(d) => match read_deps(scratch, &rec.abs(d)) {
                Ok(deps) => per_source.push(deps),
                // Plain assembler (.s) is not preprocessed, so no depfile is written; the
                // assembler read the source (its .include/.incbin files are not known).
                Err(_) if step.sources.iter().all(is_plain_asm) => {
                    per_source.push(step.sources.iter().map(|s| s.path.clone()).collect())
                }
                Err(e) => return Err(e),
            },
            None => {
                for (k, src) in step.sources.iter().enumerate() {
                    let name = format!("m{k}.d");
                    let out = scratch
                        .file(&name)
                        .map_err(record::io_err(Path::new(&name)))?;
                    per_source.push(rerun_deps(r, step, expanded, chain, src, &out, scratch)?);
                }
            }
        }
    }
    for deps in &mut per_source {
        drop_special_inputs(deps, &step.sources);
    }
    super::phase::mark("depfile");
    let mut recorded: Vec<String> = Vec::new();
    match step.mode {
        Mode::Compile | Mode::Assemble => {
            for (out, deps) in outputs.iter().zip(&per_source) {
                let inputs = link::identify_all(rec, deps)?;
                super::phase::mark("identify");
                let out = arg::path(out);
                rec.output(&out, &inputs)?;
                recorded.push(rec.abs(&out).to_string_lossy().into_owned());
            }
        }
        Mode::Link | Mode::CompileLink => {
            let ld = plan
                .ld_deps
                .as_ref()
                .ok_or_else(|| record::RecordError::Other("no linker dependency file".into()))?;
            let out = &arg::path(&outputs[0]);
            link::record_link(
                rec,
                scratch.read(ld),
                plan.placeholder.as_deref(),
                per_source.concat(),
                out,
                expanded,
                &plan.map,
            )?;
            recorded.push(rec.abs(out).to_string_lossy().into_owned());
        }
        _ => {}
    }
    super::phase::mark("outputs");
    super::log_recorded(rec, &r.tool, original, &recorded)?;
    super::phase::mark("step_log");
    Ok(())
}
