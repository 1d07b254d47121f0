//! The `omnishim` command line: clap definitions and thin glue to the library.

use crate::elf;
use crate::gitoid::{self, Alg, Id, Which};
use crate::manifest::Manifest;
use crate::render;
use crate::resolve::{self, Resolver};
use crate::store::Store;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

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
    /// Read or embed the `.note.omnibor` ELF note.
    Note {
        #[command(subcommand)]
        cmd: NoteCmd,
    },
    /// Run a whole build under the shims: `omnishim run -- make -j8`.
    Run {
        /// Store root (default: $OMNIBOR_DIR, else the nearest .bom upwards, else ./.bom).
        #[arg(long)]
        store: Option<PathBuf>,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<std::ffi::OsString>,
    },
    /// Make a shim directory: links named like the tools (and like those found on PATH), for
    /// a packager to put first on PATH.
    Shims {
        dir: PathBuf,
        /// Also make links for this toolchain prefix (e.g. aarch64-linux-gnu); repeatable.
        #[arg(long = "prefix")]
        prefixes: Vec<String>,
    },
    /// Walk from files back to the sources they were made from.
    Resolve {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only the distinct leaf files: path and gitoid per line.
        #[arg(long, conflicts_with_all = ["json", "dot"])]
        sources: bool,
        /// Nodes and edges as JSON.
        #[arg(long, conflicts_with = "dot")]
        json: bool,
        /// Graphviz.
        #[arg(long)]
        dot: bool,
        /// Also walk into the shared libraries the file links against (when they carry notes).
        #[arg(long)]
        follow_dynamic: bool,
        #[arg(long, value_enum, default_value = "sha1")]
        hash: HashArg,
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Which binaries contain a denied file (gitoid URIs or hex IDs, one per line, optional
    /// label). Exit status 1 when anything is found, 0 when nothing, 2 on errors.
    Check {
        #[arg(long, required = true)]
        deny: PathBuf,
        /// Also walk into the shared libraries each binary links against.
        #[arg(long)]
        follow_dynamic: bool,
        /// ELF files or directories (walked recursively; files that are not ELF are skipped).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// An SPDX 2.3 or CycloneDX 1.6 JSON document of a file and every artifact in its graph.
    Sbom {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "spdx-json")]
        format: SbomFormat,
        #[arg(long, value_enum, default_value = "sha1")]
        hash: HashArg,
        #[arg(long)]
        follow_dynamic: bool,
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Compare the source files a binary's DWARF names with the leaves of its graph (by path
    /// and by content). Exit status 1 when DWARF names a file present here that the graph lacks.
    Audit {
        file: PathBuf,
        #[arg(long)]
        follow_dynamic: bool,
        #[arg(long)]
        store: Option<PathBuf>,
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

#[derive(Clone, Copy, ValueEnum)]
enum SbomFormat {
    SpdxJson,
    CyclonedxJson,
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
enum NoteCmd {
    /// Print the manifest IDs held in the notes of ELF files.
    Show {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Embed manifest IDs (one sha1 and one sha256, URI or hex) into an ELF file: appended to a
    /// relocatable object, rewritten in place in a linked file.
    Embed {
        file: PathBuf,
        #[arg(long = "manifest", required = true, num_args = 1..)]
        manifests: Vec<String>,
    },
    /// Write the placeholder note object a link needs, for the target of an existing object.
    Placeholder {
        /// A relocatable object of the link's target (class, byte order, machine, flags).
        #[arg(long)]
        like: PathBuf,
        #[arg(short)]
        o: PathBuf,
    },
}

#[derive(Subcommand)]
enum StoreCmd {
    /// Check that every object hashes to its name and every referenced manifest is present.
    Verify,
}

/// A process exit status (main leaves through `std::process::exit`, without the Rust
/// runtime's `main`: see main.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitCode(pub u8);

impl ExitCode {
    pub const SUCCESS: ExitCode = ExitCode(0);
}

impl From<u8> for ExitCode {
    fn from(code: u8) -> ExitCode {
        ExitCode(code)
    }
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
            let bytes = store.get_object(&id)?.with_context(|| {
                format!("no manifest {} in {}", id.uri(), store.root().display())
            })?;
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
        Cmd::Note {
            cmd: NoteCmd::Show { files, json },
        } => {
            let mut failed = false;
            let mut rows = Vec::new();
            for f in &files {
                match elf::read_note_file(f) {
                    Ok(ids) if json => rows.push(serde_json::json!({
                        "path": f.to_string_lossy(),
                        "sha1": ids.sha1.map(|i| i.uri()),
                        "sha256": ids.sha256.map(|i| i.uri()),
                    })),
                    Ok(ids) if ids.is_empty() => println!("{}: no OmniBOR note", f.display()),
                    Ok(ids) => print_ids(&[ids.sha1, ids.sha256], f),
                    Err(e) => {
                        eprintln!("omnishim: {e}");
                        failed = true;
                    }
                }
            }
            finish_listing(json, rows, failed)
        }
        Cmd::Note {
            cmd: NoteCmd::Embed { file, manifests },
        } => {
            let mut sha1 = None;
            let mut sha256 = None;
            for m in &manifests {
                let id = Id::parse_any(m)?;
                match id.alg() {
                    Alg::Sha1 => sha1 = Some(id),
                    Alg::Sha256 => sha256 = Some(id),
                }
            }
            let (Some(sha1), Some(sha256)) = (sha1, sha256) else {
                anyhow::bail!("--manifest needs one sha1 and one sha256 ID");
            };
            elf::embed_file(&file, &sha1, &sha256)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Note {
            cmd: NoteCmd::Placeholder { like, o },
        } => {
            let bytes = std::fs::read(&like).with_context(|| like.display().to_string())?;
            let t = elf::Target::from_object(&bytes).with_context(|| like.display().to_string())?;
            std::fs::write(&o, elf::placeholder_object(&t))
                .with_context(|| o.display().to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Resolve {
            files,
            sources,
            json,
            dot,
            follow_dynamic,
            hash,
            store,
        } => {
            let mut r = Resolver::new(store_from(store)?, hash.into());
            let mut failed = false;
            let mut docs = Vec::new();
            for f in &files {
                let node = match r.resolve_file(f, follow_dynamic) {
                    Ok(n) => n,
                    Err(e) => {
                        eprintln!("omnishim: {e}");
                        failed = true;
                        continue;
                    }
                };
                if sources {
                    for id in resolve::leaves(&node) {
                        let p = r
                            .paths(&id)
                            .into_iter()
                            .next()
                            .unwrap_or_else(|| "?".into());
                        println!("{p}  {}", id.uri());
                    }
                } else if json {
                    docs.push(render::json(&mut r, f, &node));
                } else if dot {
                    print!("{}", render::dot(&mut r, &node));
                } else {
                    print!("{}", render::tree(&mut r, f, &node));
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&docs)?);
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Run { store, cmd } => {
            let store = store_from(store)?;
            let code = crate::wrap::run(store.root(), &cmd)?;
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
        Cmd::Shims { dir, prefixes } => {
            let exe = std::env::current_exe().context("cannot find the omnishim binary")?;
            let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
            let path: Vec<PathBuf> = std::env::var_os("PATH")
                .map(|v| std::env::split_paths(&v).collect())
                .unwrap_or_default();
            let names = crate::wrap::make_shim_dir(&dir, &exe, &path, &prefixes)
                .with_context(|| dir.display().to_string())?;
            eprintln!("omnishim: {} links in {}", names.len(), dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check {
            deny,
            follow_dynamic,
            paths,
            store,
        } => cmd_check(&deny, follow_dynamic, &paths, store),
        Cmd::Sbom {
            file,
            format,
            hash,
            follow_dynamic,
            store,
        } => {
            let mut r = Resolver::new(store_from(store)?, hash.into());
            let node = r
                .resolve_file(&file, follow_dynamic)
                .map_err(anyhow::Error::msg)?;
            let now = crate::sbom::now_utc();
            let doc = match format {
                SbomFormat::SpdxJson => crate::sbom::spdx(&mut r, &file, &node, &now),
                SbomFormat::CyclonedxJson => crate::sbom::cyclonedx(&mut r, &file, &node, &now),
            };
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Audit {
            file,
            follow_dynamic,
            store,
        } => {
            let mut r = Resolver::new(store_from(store)?, Alg::Sha1);
            let rep =
                crate::audit::audit(&mut r, &file, follow_dynamic).map_err(anyhow::Error::msg)?;
            for p in &rep.missing {
                println!("missing from the graph: {}", p.display());
            }
            for p in &rep.by_content_only {
                println!(
                    "in the graph by content only (another path): {}",
                    p.display()
                );
            }
            for p in &rep.not_here {
                println!("named by DWARF, not on this machine: {}", p.display());
            }
            for p in &rep.graph_only {
                println!("in the graph, not named by DWARF: {p}");
            }
            eprintln!(
                "omnishim: {}: DWARF names {} files, the graph has {} leaves; {} missing from the graph, {} by content only, {} not on this machine, {} only in the graph",
                file.display(),
                rep.dwarf_count,
                rep.leaf_count,
                rep.missing.len(),
                rep.by_content_only.len(),
                rep.not_here.len(),
                rep.graph_only.len()
            );
            Ok(if rep.missing.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
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
                        print_ids(&[ids.sha1, ids.sha256], &f);
                    }
                }
                Err(e) => {
                    eprintln!("omnishim: {}: {e}", f.display());
                    failed = true;
                }
            }
        }
    }
    finish_listing(json, rows, failed)
}

/// `<uri>  <path>`, one line per ID present.
fn print_ids(ids: &[Option<Id>], path: &Path) {
    for id in ids.iter().flatten() {
        println!("{}  {}", id.uri(), path.display());
    }
}

/// The end of a per-file listing: the JSON array when asked, exit 1 when any file failed.
fn finish_listing(json: bool, rows: Vec<serde_json::Value>, failed: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_check(
    deny: &Path,
    follow_dynamic: bool,
    paths: &[PathBuf],
    store: Option<PathBuf>,
) -> Result<ExitCode> {
    use crate::respond::{self, Checker};
    let list = match respond::read_deny(deny) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("omnishim: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let store = store_from(store)?;
    let mut checkers: Vec<Checker> = Alg::ALL
        .iter()
        .map(|a| Checker::new(store.clone(), *a, list.clone()))
        .filter(|c| !c.is_empty())
        .collect();
    let (files, mut errors) = respond::elf_files(paths);
    let mut hits = 0usize;
    let mut hit_files = 0usize;
    for f in &files {
        let mut any = false;
        for c in checkers.iter_mut() {
            match c.check_file(f, follow_dynamic) {
                Ok(found) => {
                    for h in found {
                        any = true;
                        hits += 1;
                        let chain: Vec<String> = h
                            .chain
                            .iter()
                            .map(|id| {
                                let p = c.resolver.paths(id).into_iter().next();
                                p.unwrap_or_else(|| id.hex())
                            })
                            .collect();
                        let label = if h.label.is_empty() {
                            String::new()
                        } else {
                            format!("{} ", h.label)
                        };
                        println!(
                            "{}: {label}{} via {} -> {}",
                            f.display(),
                            h.id.uri(),
                            f.display(),
                            chain.join(" -> ")
                        );
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if any {
            hit_files += 1;
        }
    }
    for e in &errors {
        eprintln!("omnishim: {e}");
    }
    eprintln!(
        "omnishim: {} ELF files checked, {hit_files} contain denied files ({hits} paths)",
        files.len()
    );
    Ok(if !errors.is_empty() {
        ExitCode::from(2)
    } else if hits > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
