//! `omnibor-ar` and the archiver masquerade names (`ar`, `gcc-ar`, `llvm-ar`, cross names,
//! `ranlib`). After the real tool has changed an archive, its manifest is made from the members
//! as they now are, so an archive built in several steps gets the same manifest as one built
//! in one step with the same members. Archives carry no note: the store's target index maps
//! the archive's ID to its manifest.

use super::find::{self, Finder};
use super::record::{self, Input, RecordError, Recorder};
use super::{run, Invoked};
use crate::archive::{self, Content};
use crate::classify::ar::{self, ArMode};
use crate::classify::arg;
use crate::classify::Family;
use crate::elf;
use crate::gitoid;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub fn main(invoked: Invoked, args: Vec<OsString>) -> ! {
    let finder = Finder::new();
    let ranlib = matches!(
        invoked,
        Invoked::Explicit(Family::Ranlib) | Invoked::Masquerade(Family::Ranlib, _)
    );
    let tool = if ranlib {
        super::resolve_tool(&finder, &invoked, "OMNIBOR_RANLIB", "ranlib")
    } else {
        super::resolve_tool(&finder, &invoked, "OMNIBOR_AR", "ar")
    };
    let chain = finder.chain_with(&tool);
    if find::nested() {
        super::passthrough(&tool, &args, &chain, None);
    }
    let (_, expanded, _) = super::expand_args(&args);
    let archives: Vec<String> = if ranlib {
        ar::classify_ranlib(&expanded)
    } else {
        let st = ar::classify(&expanded);
        match st.mode {
            ArMode::Modify => st.archive.into_iter().collect(),
            ArMode::Read | ArMode::Info => super::passthrough(&tool, &args, &chain, None),
            ArMode::Unsupported(r) => {
                if super::strict() {
                    eprintln!("omnishim: error: not recorded: {r}");
                    std::process::exit(1);
                }
                super::passthrough(&tool, &args, &chain, Some(&r));
            }
        }
    };
    if archives.is_empty() {
        super::passthrough(&tool, &args, &chain, None);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let outputs: Vec<PathBuf> = archives
        .iter()
        .map(|a| record::absolute(&cwd, &arg::path(a)))
        .collect();
    super::begin_step(&outputs);
    let early = Recorder::new().ok();
    let status = match super::run_warming(run::command(&tool, &args, &chain), early.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("omnishim: cannot run {}: {e}", tool.display());
            super::leave(127);
        }
    };
    if !status.success() {
        run::exit_like(status);
    }
    let what = arg::display(&archives[0]);
    let result = (|| -> Result<(), RecordError> {
        let rec = Recorder::or_new(early)?;
        let mut recorded = Vec::new();
        for a in &archives {
            let a = arg::path(a);
            record_archive(&rec, &a)?;
            recorded.push(rec.abs(&a).to_string_lossy().into_owned());
        }
        super::log_recorded(&rec, &tool, &expanded, &recorded)?;
        Ok(())
    })();
    super::finish(status, &what, &outputs, result)
}

/// `ARCHIVE(MEMBER)`, as bytes: either name may not be UTF-8.
fn member_path(archive: &Path, member: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let mut b = archive.as_os_str().as_encoded_bytes().to_vec();
    b.push(b'(');
    b.extend(arg::to_bytes(member));
    b.push(b')');
    PathBuf::from(OsString::from_vec(b))
}

/// Manifest of an archive: its members as they are now, each with its own manifest.
pub fn record_archive(rec: &Recorder, path: &Path) -> Result<(), RecordError> {
    let abs = rec.abs(path);
    let bytes = std::fs::read(&abs).map_err(record::io_err(&abs))?;
    let members = archive::members(&bytes, &abs)
        .map_err(|e| RecordError::Other(format!("{}: {e}", abs.display())))?;
    let mut inputs = Vec::with_capacity(members.len());
    for m in &members {
        let input = match &m.content {
            Content::Inline(data) => {
                let ids = gitoid::ids_of_bytes(data);
                let mut manifest = if elf::is_elf(data) {
                    elf::read_note(data).unwrap_or_default()
                } else {
                    Default::default()
                };
                if manifest.is_empty() {
                    manifest = rec.target(&ids);
                }
                Input {
                    path: member_path(&abs, &m.name),
                    ids,
                    manifest,
                }
            }
            Content::External(p) => rec.input(p)?,
        };
        inputs.push(input);
    }
    rec.output(path, &inputs)?;
    Ok(())
}
