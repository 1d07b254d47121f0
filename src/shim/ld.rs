//! `omnibor-ld` and the linker masquerade names (`ld`, `ld.bfd`, `ld.gold`, `ld.lld`, `mold`,
//! cross-prefixed names): the same mechanism as driver links, with the linker's own options.

use super::find::{self, Finder};
use super::record::{RecordError, Recorder};
use super::scratch::Scratch;
use super::{link, run, Invoked};
use crate::classify::arg;
use crate::classify::ld::{self, LdMode};
use std::ffi::OsString;

pub fn main(invoked: Invoked, args: Vec<OsString>) -> ! {
    let finder = Finder::new();
    let tool = super::resolve_tool(&finder, &invoked, "OMNIBOR_LD", "ld");
    let chain = finder.chain_with(&tool);
    if find::nested() {
        // below a compiler shim (collect2 calling ld): the outer shim records the link
        super::passthrough(&tool, &args, &chain, None);
    }
    let (_, expanded, _) = super::expand_args(&args);
    let step = ld::classify(&expanded);
    match &step.mode {
        LdMode::Info => super::passthrough(&tool, &args, &chain, None),
        LdMode::Unsupported(r) => {
            if super::strict() {
                eprintln!("omnishim: error: not recorded: {r}");
                std::process::exit(1);
            }
            super::passthrough(&tool, &args, &chain, Some(r));
        }
        _ => {}
    }
    // `ld -o /dev/null` (a probe): nothing to record, the output is no file of its own
    let output = arg::path(&step.output);
    if super::not_regular(&output) {
        super::passthrough(&tool, &args, &chain, Some(super::NOT_REGULAR_OUTPUT));
    }
    let mut scratch = Scratch::new(&tool);
    let deps = match scratch.file("ld.d") {
        Ok(d) => d,
        Err(e) => {
            drop(scratch);
            if let Some(code) = super::report_failure(
                &arg::display(&step.output),
                &format!("cannot make a scratch file: {e}"),
            ) {
                std::process::exit(code);
            }
            super::passthrough(&tool, &args, &chain, None);
        }
    };
    let mut all: Vec<OsString> = args.clone();
    all.push(arg::to_os(&format!(
        "--dependency-file={}",
        arg::from_path(&deps)
    )));
    let map = match ld::user_map(&expanded) {
        Some(ld::UserMap::File(f)) => link::LinkMap::File(arg::path(&f)),
        Some(ld::UserMap::Stdout) => link::LinkMap::Unavailable,
        // a real file: lld tries a map's path by making a file beside it (see cc.rs)
        None if ld::may_pull_members(&expanded) => match scratch.dir_path("ld.map") {
            Ok(m) => {
                all.push(arg::to_os(&format!("-Map={}", arg::from_path(&m))));
                link::LinkMap::File(m)
            }
            // every member counts, as with a map on standard output
            Err(_) => link::LinkMap::Unavailable,
        },
        None => link::LinkMap::Unavailable,
    };
    let mut placeholder = None;
    if step.mode == LdMode::Link {
        let cwd = std::env::current_dir().unwrap_or_default();
        if let Some(t) = link::find_target(&step.inputs, &cwd) {
            match link::write_placeholder_object(&t, &mut scratch) {
                Ok(p) => {
                    if step.format_set {
                        all.push("--format=default".into());
                    }
                    all.push(p.clone().into());
                    placeholder = Some(p);
                }
                Err(e) => {
                    if let Some(code) = super::report_failure(&arg::display(&step.output), &e) {
                        drop(scratch);
                        std::process::exit(code);
                    }
                }
            }
        }
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let outputs = [super::record::absolute(&cwd, &output)];
    super::begin_step(&outputs);
    let early = Recorder::new().ok();
    let status = match super::run_warming(run::command(&tool, &all, &chain), early.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            drop(scratch);
            eprintln!("omnishim: cannot run {}: {e}", tool.display());
            super::leave(127);
        }
    };
    if !status.success() {
        drop(scratch);
        run::exit_like(status);
    }
    let result = (|| -> Result<(), RecordError> {
        let rec = Recorder::or_new(early)?;
        let out = output.as_path();
        link::record_link(
            &rec,
            scratch.read(&deps),
            placeholder.as_deref(),
            Vec::new(),
            out,
            &expanded,
            &map,
        )?;
        let outputs = [rec.abs(out).to_string_lossy().into_owned()];
        super::log_recorded(&rec, &tool, &expanded, &outputs)?;
        Ok(())
    })();
    drop(scratch);
    super::finish(status, &arg::display(&step.output), &outputs, result)
}
