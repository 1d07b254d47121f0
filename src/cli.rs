//! The `omnishim` command line: clap definitions and thin glue to the library.

use crate::gitoid::{self, Alg, Id, Which};
use crate::manifest::Manifest;
use crate::store::Store;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "omnishim",
    version,
    about = "OmniBOR artifact dependency graphs for C/C++ builds"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum HashArg {
    Sha1,
    Sha256,
}

impl From<HashArg> for Alg {
    fn from(h: HashArg) -> Alg {
        match h {
            HashArg::Sha1 => Alg::Sha1,
            HashArg::Sha256 => Alg::Sha256,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the artifact IDs (gitoids) of files, recursing into directories.
    Id {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Only this algorithm (default: both).
        #[arg(long, value_enum)]
        hash: Option<HashArg>,
        /// One JSON object per file, as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Stored input manifests.
    Manifest {
        #[command(subcommand)]
        cmd: ManifestCmd,
    },
    /// The store itself.
    Store {
        #[command(subcommand)]
        cmd: StoreCmd,
        /// Store root (default: $OMNIBOR_DIR, else the nearest .bom upwards, else ./.bom).
        #[arg(long, global = true)]
        store: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ManifestCmd {
    /// Print a stored manifest, given its ID (URI or hex).
    Show {
        id: String,
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Store the manifests (sha1 and sha256) whose inputs are these files; print their IDs.
    Create {
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long)]
        store: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StoreCmd {
    /// Check that every object hashes to its name and every referenced manifest is present.
    Verify,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("omnishim: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// An error chain as one line: "outer: inner: cause".
pub fn one_line(e: &anyhow::Error) -> String {
    let parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        // thiserror messages often repeat their source; keep each piece once.
        if !out.iter().any(|o| o.contains(&p)) {
            out.push(p);
        }
    }
    out.join(": ").replace('\n', " ")
}

fn store_from(arg: Option<PathBuf>) -> Result<Store> {
    match arg {
        Some(p) => Ok(Store::at(p)),
        None => Store::from_env().context("cannot find the current directory"),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Id { paths, hash, json } => cmd_id(&paths, hash.map(Alg::from), json),
        Cmd::Manifest {
            cmd: ManifestCmd::Show { id, store },
        } => {
            let store = store_from(store)?;
            let id = Id::parse_any(&id)?;
            let bytes = store
                .get_object(&id)?
                .with_context(|| format!("no manifest {} in {}", id.uri(), store.root().display()))?;
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Manifest {
            cmd: ManifestCmd::Create { inputs, store },
        } => {
            let store = store_from(store)?;
            let mut ms = [Manifest::new(Alg::Sha1), Manifest::new(Alg::Sha256)];
            for p in &inputs {
                let ids = gitoid::ids_of_file(p).with_context(|| p.display().to_string())?;
                for m in ms.iter_mut() {
                    m.add(ids.get(m.alg), None);
                }
            }
            for m in &ms {
                println!("{}", store.put_manifest(m)?.uri());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Store {
            cmd: StoreCmd::Verify,
            store,
        } => {
            let store = store_from(store)?;
            let rep = store.verify()?;
            for p in &rep.problems {
                println!("{p}");
            }
            eprintln!(
                "omnishim: {} objects checked in {}, {} problems",
                rep.objects,
                store.root().display(),
                rep.problems.len()
            );
            Ok(if rep.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Files under `p` in sorted order (p itself when it is not a directory).
fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(p).with_context(|| p.display().to_string())?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .with_context(|| p.display().to_string())?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| p.display().to_string())?;
        entries.sort();
        for e in entries {
            walk(&e, out)?;
        }
    } else {
        out.push(p.to_path_buf());
    }
    Ok(())
}

fn cmd_id(paths: &[PathBuf], hash: Option<Alg>, json: bool) -> Result<ExitCode> {
    let which = hash.map_or(Which::Both, Which::One);
    let mut failed = false;
    let mut rows = Vec::new();
    for p in paths {
        let mut files = Vec::new();
        if let Err(e) = walk(p, &mut files) {
            eprintln!("omnishim: {}", one_line(&e));
            failed = true;
            continue;
        }
        for f in files {
            match gitoid::id_file(&f, which) {
                Ok(ids) => {
                    if json {
                        let mut o = serde_json::Map::new();
                        o.insert("path".into(), f.to_string_lossy().into());
                        for id in [ids.sha1, ids.sha256].into_iter().flatten() {
                            o.insert(id.alg().name().into(), id.uri().into());
                        }
                        rows.push(serde_json::Value::Object(o));
                    } else {
                        for id in [ids.sha1, ids.sha256].into_iter().flatten() {
                            println!("{}  {}", id.uri(), f.display());
                        }
                    }
                }
                Err(e) => {
                    eprintln!("omnishim: {}: {e}", f.display());
                    failed = true;
                }
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
