//! The shims: one wrapped build step, end to end.
//!
//! find the real tool -> classify argv (pure) -> plan what to add -> run the tool untouched
//! -> collect the tool's own lists -> identify inputs -> record manifests -> embed the note.
//! Nothing after `run` may change what the user sees; a failure there is one warning line on
//! stderr, or with `OMNIBOR_STRICT=1` an error and exit status 1.

pub mod cc;
pub mod find;
pub mod record;
pub mod run;

use crate::classify::Family;
use std::ffi::OsString;
use std::path::Path;

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

/// The one line a failure to record prints. Returns the exit status to use on top of the
/// tool's (None: keep the tool's).
pub fn report_failure(what: &str, err: &dyn std::fmt::Display) -> Option<i32> {
    let msg = err.to_string().replace('\n', " ");
    if strict() {
        eprintln!("omnishim: error: {what}: not recorded: {msg}");
        Some(1)
    } else {
        eprintln!("omnishim: warning: {what}: not recorded: {msg}");
        None
    }
}

/// Log a step we pass through without recording (the reason goes to the store's step log,
/// not to the terminal: the build must look as it would without us).
pub fn log_unrecorded(tool: &Path, args: &[OsString], reason: &str) {
    if let Ok(rec) = record::Recorder::new() {
        let _ = rec.store.log_step(&serde_json::json!({
            "status": "not recorded",
            "reason": reason,
            "tool": tool.to_string_lossy(),
            "cwd": rec.cwd.to_string_lossy(),
            "argv": args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
        }));
    }
}

/// Entry point for every shim name.
pub fn main(invoked: Invoked, args: Vec<OsString>) -> ! {
    match invoked {
        Invoked::Explicit(Family::Cc | Family::Cxx)
        | Invoked::Masquerade(Family::Cc | Family::Cxx, _) => cc::main(invoked, args),
        Invoked::Explicit(f) | Invoked::Masquerade(f, _) => passthrough_only(f, &invoked, args),
    }
}

/// Linker and archiver steps are not recorded yet: run the real tool exactly as asked.
fn passthrough_only(f: Family, invoked: &Invoked, args: Vec<OsString>) -> ! {
    let finder = find::Finder::new();
    let name = match invoked {
        Invoked::Masquerade(_, n) => n.clone(),
        Invoked::Explicit(_) => match f {
            Family::Ld => std::env::var("OMNIBOR_LD").unwrap_or_else(|_| "ld".into()),
            Family::Ar => std::env::var("OMNIBOR_AR").unwrap_or_else(|_| "ar".into()),
            Family::Ranlib => "ranlib".into(),
            Family::Cc => "cc".into(),
            Family::Cxx => "c++".into(),
        },
    };
    let tool = match finder.find(&name) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("omnishim: {e}");
            std::process::exit(127);
        }
    };
    if !find::nested() {
        log_unrecorded(
            &tool,
            &args,
            "linker and archiver steps are not recorded yet",
        );
    }
    let cmd = run::command(&tool, &args, &finder.chain_with(&tool));
    let e = run::exec(cmd);
    eprintln!("omnishim: cannot run {}: {e}", tool.display());
    std::process::exit(127)
}
