//! The shims: one wrapped build step, end to end.
//!
//! find the real tool -> classify argv (pure) -> plan what to add -> run the tool untouched
//! -> collect the tool's own lists -> identify inputs -> record manifests -> embed the note.
//! Nothing after `run` may change what the user sees; a failure there is one warning line on
//! stderr, or with `OMNIBOR_STRICT=1` an error and exit status 1.

pub mod ar;
pub mod cc;
pub mod find;
pub mod inflight;
pub mod ld;
pub mod link;
pub mod phase;
pub mod record;
pub mod run;
pub mod scratch;

use crate::classify::Family;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// How the shim was reached.
#[derive(Clone, Debug)]
pub enum Invoked {
    /// `omnibor-cc`, `omnibor-c++`...: the real tool comes from the environment or argv.
    Explicit(Family),
    /// A link named like the real tool (`gcc`, `x86_64-linux-gnu-gcc-12`, `ld.lld`).
    Masquerade(Family, String),
}

pub fn strict() -> bool {
    std::env::var_os("OMNIBOR_STRICT").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The real tool and its arguments, once known, for the step log of a failure.
static STEP: std::sync::OnceLock<(PathBuf, Vec<String>)> = std::sync::OnceLock::new();

/// Name the step's real tool and arguments (for `report_failure`'s log line).
pub fn set_step(tool: &Path, args: &[OsString]) {
    let _ = STEP.set((
        tool.to_path_buf(),
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    ));
}

/// The one line a failure to record prints; the step goes to the store's step log as not
/// recorded, with that line's text as its reason. Returns the exit status to use on top of
/// the tool's (None: keep the tool's).
pub fn report_failure(what: &str, err: &dyn std::fmt::Display) -> Option<i32> {
    let msg = err.to_string().replace('\n', " ");
    let reason = format!("{what}: {msg}");
    let (tool, args) = match STEP.get() {
        Some((t, a)) => (t.clone(), a.clone()),
        None => {
            // ld and ar shims: the name they were called by, and their arguments
            let mut all = crate::argv::args_os().map(|a| a.to_string_lossy().into_owned());
            (PathBuf::from(all.next().unwrap_or_default()), all.collect())
        }
    };
    log_not_recorded(&tool, &args, &reason);
    if strict() {
        eprintln!("omnishim: error: {what}: not recorded: {msg}");
        Some(1)
    } else {
        eprintln!("omnishim: warning: {what}: not recorded: {msg}");
        None
    }
}

/// Append a step's record to the store's step log, with the CPU time this shim process has
/// used itself so far (`self_us`), so that the wrapper's own cost can be told apart from the
/// tools' in a noisy build.
fn log_step(
    store: &crate::store::Store,
    mut record: serde_json::Value,
) -> Result<(), crate::store::StoreError> {
    record["self_us"] = self_cpu_us().into();
    store.log_step(&record)
}

/// Log a step whose outputs were recorded.
pub fn log_recorded(
    rec: &record::Recorder,
    tool: &Path,
    argv: &[String],
    outputs: &[String],
) -> Result<(), crate::store::StoreError> {
    // before the step's CPU time is taken, which then counts a snapshot it wrote
    rec.settle();
    log_step(
        &rec.store,
        serde_json::json!({
            "status": "recorded",
            "tool": tool.to_string_lossy(),
            "cwd": rec.cwd.to_string_lossy(),
            "argv": argv.iter().map(|a| crate::classify::arg::display(a)).collect::<Vec<_>>(),
            "outputs": outputs,
        }),
    )
}

/// The CPU time this shim process has used itself (user + system, not its children), in
/// microseconds.
fn self_cpu_us() -> u64 {
    // SAFETY: getrusage only writes the struct it is given
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    let us = |t: libc::timeval| (t.tv_sec as u64) * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// Log a step we pass through without recording (the reason goes to the store's step log,
/// not to the terminal: the build must look as it would without us).
pub fn log_unrecorded(tool: &Path, args: &[OsString], reason: &str) {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    log_not_recorded(tool, &args, reason);
}

/// A step without a record in the store's step log, with why. A store that cannot be
/// written loses the line (the failure that caused it is on stderr already).
fn log_not_recorded(tool: &Path, args: &[String], reason: &str) {
    if let Ok(rec) = record::Recorder::new() {
        let _ = log_step(
            &rec.store,
            serde_json::json!({
                "status": "not recorded",
                "reason": reason,
                "tool": tool.to_string_lossy(),
                "cwd": rec.cwd.to_string_lossy(),
                "argv": args,
            }),
        );
    }
}

/// Entry point for every shim name.
pub fn main(invoked: Invoked, args: Vec<OsString>) -> ! {
    phase::start();
    // what the process cost before we ran (the parent's side of fork, exec) is not ours
    phase::mark("start");
    keep_memory();
    match &invoked {
        Invoked::Explicit(Family::Cc | Family::Cxx)
        | Invoked::Masquerade(Family::Cc | Family::Cxx, _) => cc::main(invoked, args),
        Invoked::Explicit(Family::Ld) | Invoked::Masquerade(Family::Ld, _) => {
            ld::main(invoked, args)
        }
        _ => ar::main(invoked, args),
    }
}

/// Big buffers (the note parts of a shared library, an output read whole) come from the
/// heap, and the heap is never given back: once the tool has run, returning memory to the
/// kernel (munmap, or a trimmed heap) flushes the TLB of every CPU the vfork'ed tool ran
/// on, an interprocessor interrupt that waits for a busy CPU (measured here under load:
/// 1.3-2 ms for one 1.9 MB buffer, in a step whose own work takes 1 ms). A shim ends
/// moments later, which frees it all at once.
fn keep_memory() {
    crate::store::keep_mappings();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters (32 MiB: glibc's largest)
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// The real tool for a linker or archiver shim: the masquerade name, or for `omnibor-ld` /
/// `omnibor-ar` the setting in `var` (else `default`). Exits with a clear line if none.
pub fn resolve_tool(finder: &find::Finder, invoked: &Invoked, var: &str, default: &str) -> PathBuf {
    let name = match invoked {
        Invoked::Masquerade(_, n) => n.clone(),
        Invoked::Explicit(_) => std::env::var(var)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| default.to_string()),
    };
    let invoked_with_path = crate::argv::arg0().is_some_and(|a| a.to_string_lossy().contains('/'));
    if !name.contains('/') && !invoked_with_path {
        // binutils print argv[0] whole in their messages ("ar: ...", not "/usr/bin/ar: ...")
        let _ = run::ARG0.set(OsString::from(&name));
    }
    match finder.find(&name) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("omnishim: {e}");
            std::process::exit(127);
        }
    }
}

/// Replace this process with the real tool, logging why the step is not recorded.
pub fn passthrough(tool: &Path, args: &[OsString], chain: &[PathBuf], reason: Option<&str>) -> ! {
    if let Some(r) = reason {
        log_unrecorded(tool, args, r);
    }
    let e = run::exec(run::command(tool, args, chain));
    eprintln!("omnishim: cannot run {}: {e}", tool.display());
    std::process::exit(127)
}

/// Arguments as strings with response files expanded; bytes that are not UTF-8 ride along
/// (see `classify::arg`).
pub fn expand_args(args: &[OsString]) -> (Vec<String>, Vec<String>, bool) {
    let strs: Vec<String> = args
        .iter()
        .map(|a| crate::classify::arg::from_os(a))
        .collect();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let (expanded, had) = crate::classify::rsp::expand(&strs, &cwd);
    (strs, expanded, had)
}

/// Finish a step whose tool succeeded: report a recording failure (one line, or an error in
/// strict mode, which also removes the `outputs`) and leave with the tool's status.
pub fn finish(
    status: std::process::ExitStatus,
    what: &str,
    outputs: &[PathBuf],
    result: Result<(), record::RecordError>,
) -> ! {
    if let Err(e) = result {
        if let Some(code) = report_failure(what, &e) {
            remove_unrecorded(outputs);
            leave(code);
        }
    }
    run::exit_like(status)
}

/// The step's private directory, for scratch files that are not memory files (see
/// `scratch`): our depfiles and placeholder object. Creating a file costs
/// a few hundred microseconds on a disk file system here and a step makes two or three, so
/// it goes to a memory file system when there is one: `OMNISHIM_TMPDIR` if set, else
/// `/dev/shm`, else the usual temporary directory. The tool's own temporary files are not
/// affected (its environment is left alone). Directories of killed steps are reaped there
/// (see `inflight::PrivateDir`).
pub fn private_tmp() -> std::io::Result<inflight::PrivateDir> {
    if let Some(d) = std::env::var_os("OMNISHIM_TMPDIR").filter(|d| !d.is_empty()) {
        return inflight::private_dir_in(Path::new(&d));
    }
    match inflight::private_dir_in(Path::new("/dev/shm")) {
        Ok(t) => Ok(t),
        Err(_) => inflight::private_dir_in(&std::env::temp_dir()),
    }
}

/// Remove the private directories killed steps left (at the start of `omnishim run`).
pub fn reap_private_dirs() {
    match std::env::var_os("OMNISHIM_TMPDIR").filter(|d| !d.is_empty()) {
        Some(d) => inflight::reap_private(Path::new(&d)),
        None => {
            inflight::reap_private(Path::new("/dev/shm"));
            inflight::reap_private(&std::env::temp_dir());
        }
    }
}

/// Register the step's outputs in the store's journal of steps in flight before its tool
/// runs (and reap what killed steps left there).
/// Run the tool, warming the step's recorder while it runs (see `Recorder::warm`).
pub fn run_warming(
    cmd: std::process::Command,
    rec: Option<&record::Recorder>,
) -> std::io::Result<std::process::ExitStatus> {
    run::run_while(cmd, || rec.map_or((), record::Recorder::warm))
}

pub fn begin_step(outputs: &[PathBuf]) {
    let store = record::store_for_step();
    inflight::begin(&store, outputs);
}

/// Leave with an error status of our own (a strict-mode failure): the step is over.
pub fn leave(code: i32) -> ! {
    inflight::end();
    std::process::exit(code)
}

/// A strict-mode failure to record removes the outputs it could not record, as a failed
/// compiler would, so that the next make retries the step.
pub fn remove_unrecorded(outputs: &[PathBuf]) {
    for o in outputs {
        if std::fs::symlink_metadata(o).is_ok_and(|m| m.is_file()) {
            let _ = std::fs::remove_file(o);
        }
    }
}

/// The reason logged for a step whose output is not a regular file.
pub(crate) const NOT_REGULAR_OUTPUT: &str = "output is not a regular file";

/// The path exists and is not a regular file (a device such as /dev/null, a FIFO, a
/// socket, a directory); symlinks are followed.
pub(crate) fn not_regular(p: &std::path::Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| !m.is_file())
}
