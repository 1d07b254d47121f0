//! `omnishim-registry`: the push and pull commands, in a binary of their own so that the
//! registry client (HTTP, TLS, an async runtime) is never loaded by the shims or the rest of
//! the CLI. `omnishim push`, `pull` and every `--registry` run it.

use super::{cache_dir, pull, push, Remote};
use crate::cli::{one_line, ExitCode};
use crate::store::Store;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "omnishim-registry",
    version,
    about = "OmniBOR graphs in OCI registries (run by omnishim)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Common {
    #[arg(long)]
    follow_dynamic: bool,
    #[arg(long)]
    plain_http: bool,
    #[arg(long)]
    store: Option<PathBuf>,
    repo: String,
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    Push(Common),
    Pull {
        /// Only the lines that say what went wrong (for a walk's prefetch).
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        c: Common,
    },
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::USAGE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let r = match cli.cmd {
        Cmd::Push(c) => cmd_push(c),
        Cmd::Pull { quiet, c } => cmd_pull(c, quiet),
    };
    r.unwrap_or_else(|e| {
        eprintln!("omnishim: {}", one_line(&e));
        ExitCode::USAGE
    })
}

fn remote(c: &Common) -> Remote {
    Remote {
        repo: c.repo.clone(),
        plain_http: c.plain_http,
    }
}

fn cmd_push(c: Common) -> anyhow::Result<ExitCode> {
    let store = match &c.store {
        Some(p) => Store::at(p),
        None => Store::from_env()?,
    };
    let t = std::time::Instant::now();
    let rep = push(&store, &remote(&c), &c.files, c.follow_dynamic)?;
    for p in &rep.pushed {
        println!("{p}");
    }
    for l in &rep.incomplete {
        eprintln!("omnishim: {l}");
    }
    eprintln!(
        "omnishim: pushed {} graphs to {}: {} blobs ({} bytes), {} uploaded ({} bytes), in {:.2} s",
        rep.files,
        c.repo,
        rep.blobs,
        rep.total_bytes,
        rep.uploaded,
        rep.uploaded_bytes,
        t.elapsed().as_secs_f64()
    );
    Ok(if rep.incomplete.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::INCOMPLETE
    })
}

fn cmd_pull(c: Common, quiet: bool) -> anyhow::Result<ExitCode> {
    let store = Store::at(match &c.store {
        Some(p) => p.clone(),
        None => cache_dir()?,
    });
    let t = std::time::Instant::now();
    let rep = pull(&store, &remote(&c), &c.files, c.follow_dynamic)?;
    for l in &rep.rejected {
        eprintln!("omnishim: {l}");
    }
    if !quiet {
        for l in &rep.not_found {
            eprintln!("omnishim: {l}");
        }
        eprintln!(
            "omnishim: pulled {} graphs into {} ({} already there): {} blobs fetched ({} bytes), in {:.2} s",
            rep.graphs,
            store.root().display(),
            rep.cached,
            rep.fetched,
            rep.fetched_bytes,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(if !rep.rejected.is_empty() {
        ExitCode::USAGE
    } else if !rep.not_found.is_empty() {
        ExitCode::INCOMPLETE
    } else {
        ExitCode::SUCCESS
    })
}
