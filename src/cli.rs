//! The `omnishim` command line: clap definitions and thin glue to the library.

use crate::elf;
use crate::gitoid::{self, Alg, Id, Which};
use crate::manifest::Manifest;
use crate::render;
use crate::resolve::{self, Gap, Resolver};
use crate::store::Store;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
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

/// The exit statuses shared by the commands that answer from the graph.
const EXIT_CHECK: &str = "Exit status:
  0  every file's graph was walked completely and nothing denied was found
  1  a denied file was found (wins over 2 and 3)
  2  usage or I/O error (a file or the deny list could not be read)
  3  nothing denied was found, but some file's graph is incomplete: it has no note (an
     unrecorded file), the store was not found, or a manifest is missing, malformed or
     unreadable. Each such file gets one line on stderr saying why.";

const EXIT_RESOLVE: &str = "Exit status:
  0  every file's graph was walked completely
  2  usage or I/O error (wins over 3)
  3  some file's graph is incomplete: it has no note (an unrecorded file), the store was not
     found, or a manifest is missing, malformed or unreadable. Each such file gets one line
     on stderr saying why.";

const EXIT_SBOM: &str = "Exit status:
  0  the file's graph was walked completely
  2  usage or I/O error
  3  the graph is incomplete (no note, store not found, a manifest missing, malformed or
     unreadable): the document is written, says so (CycloneDX: compositions aggregate
     \"incomplete\"; SPDX: the document comment), and one line on stderr says why.";

const EXIT_AUDIT: &str = "Exit status:
  0  the graph was walked completely and holds every source file DWARF names that is here
  1  DWARF names source files present here that the graph lacks
  2  usage or I/O error
  3  the graph is incomplete (no note, store not found, a manifest missing, malformed or
     unreadable); this wins over 1, since what lies below an unread manifest is unknown.
     One line on stderr says why.";

const EXIT_NOTE: &str = "Exit status:
  0  every file carries a note
  2  usage or I/O error (wins over 3)
  3  some file has no note (an unrecorded file): one line on stderr names it";

const EXIT_ATTEST: &str = "Exit status:
  0  every file was attested
  1  some file was not: it has no manifest IDs (an unrecorded file), or its graph is
     incomplete in the store or holds a manifest that does not hash to its ID (nothing is
     signed for it; one line on stderr says why)
  2  usage or I/O error (the key or a file could not be read, an output not written); 1
     wins over 2";

const EXIT_VERIFY: &str = "Exit status:
  0  every file verified: signature, subject digests, note, and the whole graph below
  1  some file did not: one line on stderr names the file and the check that failed
     (signature, wrong-key, statement, digest-mismatch, stripped, note-mismatch, no-note,
     manifest-corrupt, graph-incomplete, count-mismatch; with --registry also
     no-attestation: no usable envelope attached to the file's graph)
  2  usage or I/O error (the key, a file or its attestation could not be read); a failed
     check (1) wins over 2";

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
        /// At the end, attest the build's top-level outputs with this private key (each
        /// OUTPUT.intoto.json beside it); a file not attested makes the exit status 1.
        #[arg(long)]
        sign: Option<PathBuf>,
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
    #[command(after_help = EXIT_RESOLVE)]
    Resolve(ResolveArgs),
    /// Which binaries contain a denied file (gitoid URIs or hex IDs, one per line, each with
    /// an optional label; an ID may come on several lines with different labels).
    #[command(after_help = EXIT_CHECK)]
    Check(CheckArgs),
    /// An SPDX 2.3 or CycloneDX 1.6 JSON document of a file and every artifact in its graph.
    #[command(after_help = EXIT_SBOM)]
    Sbom(SbomArgs),
    /// Compare the source files a binary's DWARF names with the leaves of its graph (by path
    /// and by content).
    #[command(after_help = EXIT_AUDIT)]
    Audit(AuditArgs),
    /// Write a signing key pair: PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (SPKI PEM).
    Keygen(KeygenArgs),
    /// Sign each file's graph root: an in-toto Statement v1 in a DSSE envelope (FILE.intoto.json).
    #[command(after_help = EXIT_ATTEST)]
    Attest(AttestArgs),
    /// Check files against their signed attestations and their graphs in the store.
    #[command(after_help = EXIT_VERIFY)]
    Verify(VerifyArgs),
    /// Deny lists for `check` derived from upstream history: every version of the affected
    /// files in the vulnerable commits (sha1 and sha256 IDs, the label on every line).
    Deny {
        #[command(subcommand)]
        cmd: DenyCmd,
    },
    /// Write the closed graph of files (every manifest reachable from their notes, with the
    /// metadata resolve needs) as a store of its own: `resolve --store OUT` reads it.
    #[command(after_help = EXIT_EXPORT)]
    Export(ExportArgs),
    /// Push each file's graph to an OCI registry as an artifact tagged sha256-<manifest hex>.
    #[command(after_help = EXIT_PUSH)]
    Push(PushArgs),
    /// Fetch files' graphs from an OCI registry into a local store (default: the user's cache).
    #[command(after_help = EXIT_PUSH)]
    Pull(PullArgs),
    /// The OCI referrers of a manifest in a repository (the referrers API, else the
    /// tag-schema index): one line each, digest and artifactType.
    Referrers(ReferrersArgs),
    /// The store itself.
    Store {
        #[command(subcommand)]
        cmd: StoreCmd,
        /// Store root (default: $OMNIBOR_DIR, else the nearest .bom upwards, else ./.bom).
        #[arg(long, global = true)]
        store: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ResolveArgs {
    /// Files to resolve (a symlink is followed).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Only the distinct leaf files: path and gitoid per line.
    #[arg(long, conflicts_with_all = ["json", "dot"])]
    sources: bool,
    /// Nodes and edges as JSON, with each file's verdict ("complete" or "incomplete") and
    /// what is missing.
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
    /// Fetch the graphs the walk needs from this OCI repository (e.g. localhost:5000/graphs)
    /// into the store (default then: the user's cache, $XDG_CACHE_HOME/omnishim/store).
    #[arg(long)]
    registry: Option<String>,
    #[command(flatten)]
    reg: RegistryArgs,
    /// Store root (default: $OMNIBOR_DIR, else the nearest .bom upwards, else ./.bom).
    #[arg(long)]
    store: Option<PathBuf>,
}

const EXIT_EXPORT: &str = "Exit status:
  0  every file's graph was exported whole
  2  usage or I/O error
  3  some file has no manifest, or its graph names manifests the store does not hold (the
     export holds what there is; one line on stderr says what is missing)";

const EXIT_PUSH: &str = "Exit status:
  0  every file's graph was pushed (pulled) whole
  2  usage, I/O or registry error (unreachable, refused credentials, a blob that does not
     hash to its ID: nothing of that graph is cached)
  1  push --attest: some file was not attested (one line on stderr says why; 1 wins over 3)
  3  some file has no manifest, no graph in the registry, or an incomplete graph";

#[derive(Args)]
struct ExportArgs {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output directory (a store; made when missing, merged into when it exists), or, when
    /// it ends in `.tar`, a tar archive of the same (replaced when it exists).
    #[arg(short)]
    o: PathBuf,
    /// Also export the graphs of the shared libraries the files link against.
    #[arg(long)]
    follow_dynamic: bool,
    /// Leave out every path and tool invocation: IDs only.
    #[arg(long)]
    redact: bool,
    /// Leave out the graph below the artifacts matching a path glob (`*` matches across `/`,
    /// a relative glob matches any tail of a path) or an ID; only their manifest IDs stay,
    /// and resolve and check report them as withheld. Repeatable.
    #[arg(long)]
    withhold: Vec<String>,
    /// Store root (default: $OMNIBOR_DIR, else the nearest .bom upwards, else ./.bom).
    #[arg(long)]
    store: Option<PathBuf>,
}

/// Where a registry is and how to talk to it.
#[derive(Args, Clone)]
struct RegistryArgs {
    /// Plain HTTP (default for localhost and 127.0.0.1, HTTPS elsewhere).
    #[arg(long)]
    plain_http: bool,
}

#[derive(Args)]
struct PushArgs {
    /// Repository, e.g. localhost:5000/graphs or registry.example/team/graphs.
    repo: String,
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long)]
    follow_dynamic: bool,
    #[command(flatten)]
    reg: RegistryArgs,
    /// Store root (default: $OMNIBOR_DIR, else the nearest .bom upwards, else ./.bom).
    #[arg(long)]
    store: Option<PathBuf>,
    /// Attach every graph to this container image (REPO@sha256:..., in REPO): the graph
    /// manifest's OCI `subject`, listed among the image's referrers.
    #[arg(long)]
    subject: Option<String>,
    /// Private key: also push each file's DSSE envelope (as `attest` makes it) as a referrer
    /// of its graph, for `verify --registry`.
    #[arg(long)]
    attest: Option<PathBuf>,
}

#[derive(Args)]
struct ReferrersArgs {
    /// REPO@sha256:... (e.g. localhost:5000/app@sha256:...).
    image: String,
    /// Only referrers of this artifactType.
    #[arg(long)]
    artifact_type: Option<String>,
    /// The referrers as the JSON descriptors of an OCI image index.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    reg: RegistryArgs,
}

#[derive(Args)]
struct PullArgs {
    repo: String,
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also pull the graphs of the shared libraries the files link against.
    #[arg(long)]
    follow_dynamic: bool,
    #[command(flatten)]
    reg: RegistryArgs,
    /// The store to fill (default: $XDG_CACHE_HOME/omnishim/store, else ~/.cache/omnishim/store).
    #[arg(long)]
    store: Option<PathBuf>,
}

#[derive(Args)]
struct CheckArgs {
    #[arg(long, required = true)]
    deny: PathBuf,
    /// Also walk into the shared libraries each binary links against (those with notes).
    #[arg(long)]
    follow_dynamic: bool,
    /// ELF files or directories (walked recursively; files that are not ELF are skipped). A
    /// path given here is followed when it is a symlink.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// One JSON object per ELF file: verdict ("clean", "denied" or "incomplete"), the labels
    /// hit, the chains down to each denied file, and what is missing from its graph (with
    /// `fixed` lines in the list: `fixed_labels`, `fixed`, the chains to fixed versions).
    #[arg(long, conflicts_with = "openvex")]
    json: bool,
    /// An OpenVEX v0.2.0 document: per file and vulnerability (label), `affected` (the
    /// chains), `not_affected` (the complete graph holds no vulnerable version) or
    /// `under_investigation` (the graph is incomplete). The exit status is as without it.
    #[arg(long)]
    openvex: bool,
    /// The OpenVEX document's author.
    #[arg(long, default_value = "Unknown Author", requires = "openvex")]
    author: String,
    /// Fetch the graphs the walk needs from this OCI repository (e.g. localhost:5000/graphs)
    /// into the store (default then: the user's cache, $XDG_CACHE_HOME/omnishim/store).
    #[arg(long)]
    registry: Option<String>,
    #[command(flatten)]
    reg: RegistryArgs,
    /// Store root (default: $OMNIBOR_DIR, else the nearest .bom upwards, else ./.bom).
    #[arg(long)]
    store: Option<PathBuf>,
}

#[derive(Args)]
struct SbomArgs {
    file: PathBuf,
    #[arg(long, value_enum, default_value = "spdx-json")]
    format: SbomFormat,
    #[arg(long, value_enum, default_value = "sha1")]
    hash: HashArg,
    #[arg(long)]
    follow_dynamic: bool,
    /// Fetch the graphs the walk needs from this OCI repository (e.g. localhost:5000/graphs)
    /// into the store (default then: the user's cache, $XDG_CACHE_HOME/omnishim/store).
    #[arg(long)]
    registry: Option<String>,
    #[command(flatten)]
    reg: RegistryArgs,
    /// Store root (default: $OMNIBOR_DIR, else the nearest .bom upwards, else ./.bom).
    #[arg(long)]
    store: Option<PathBuf>,
}

#[derive(Args)]
struct AuditArgs {
    file: PathBuf,
    #[arg(long)]
    follow_dynamic: bool,
    /// Fetch the graphs the walk needs from this OCI repository (e.g. localhost:5000/graphs)
    /// into the store (default then: the user's cache, $XDG_CACHE_HOME/omnishim/store).
    #[arg(long)]
    registry: Option<String>,
    #[command(flatten)]
    reg: RegistryArgs,
    /// Store root (default: $OMNIBOR_DIR, else the nearest .bom upwards, else ./.bom).
    #[arg(long)]
    store: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum KeyTypeArg {
    Ed25519,
    P256,
}

#[derive(Args)]
struct KeygenArgs {
    #[arg(long = "type", value_enum, default_value = "ed25519")]
    key_type: KeyTypeArg,
    /// Output prefix: writes PREFIX.key and PREFIX.pub (neither may exist).
    #[arg(short)]
    o: PathBuf,
}

#[derive(Args)]
struct AttestArgs {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Private key: PEM PKCS#8 Ed25519 or ECDSA P-256 (as `openssl genpkey` or `keygen` write).
    #[arg(long)]
    key: PathBuf,
    /// Output: the envelope for one file, JSON lines (one envelope per line) for several.
    /// Default: FILE.intoto.json beside each file.
    #[arg(short)]
    o: Option<PathBuf>,
    /// Store root (default: $OMNIBOR_DIR, else the nearest .bom upwards, else ./.bom).
    #[arg(long)]
    store: Option<PathBuf>,
}

#[derive(Args)]
struct VerifyArgs {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Public key: PEM SPKI Ed25519 or ECDSA P-256.
    #[arg(long)]
    key: PathBuf,
    /// The envelope, or a JSON-lines bundle (the envelope whose subject is named like the
    /// file is taken). Default: FILE.intoto.json.
    #[arg(long)]
    attestation: Option<PathBuf>,
    /// One JSON object per file (as a JSON array): verdict, failed check, message.
    #[arg(long)]
    json: bool,
    /// Store root (default: $OMNIBOR_DIR, else the nearest .bom upwards, else ./.bom; with
    /// --registry, the user's cache).
    #[arg(long)]
    store: Option<PathBuf>,
    /// Find the envelopes in this OCI repository (as referrers of each file's graph, pushed
    /// with `push --attest`) and pull the graphs from it.
    #[arg(long)]
    registry: Option<String>,
    #[command(flatten)]
    reg: RegistryArgs,
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
    #[command(after_help = EXIT_NOTE)]
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
enum DenyCmd {
    /// From fixing commits: every commit on an ancestry path from the introducing commit (a
    /// root when none) to a fix, fix excluded, merges through all parents; the files under
    /// every name they had there.
    Git(DenyGitArgs),
    /// From OSV entries: their `GIT` ranges for this repository (introduced, fixed,
    /// last_affected, limit), labelled with each entry's id and aliases.
    Osv(DenyOsvArgs),
}

#[derive(Args)]
struct DenyGitArgs {
    /// The clone of the upstream repository.
    #[arg(long)]
    repo: PathBuf,
    /// A fixing commit (any revision: hex ID, branch, tag); repeatable (fixes on release
    /// branches).
    #[arg(long, required = true, num_args = 1..)]
    fixed: Vec<String>,
    /// The commit that introduced the flaw (default: every root).
    #[arg(long)]
    introduced: Option<String>,
    /// An affected path (default: the files the fixes change, less tests and docs); repeatable.
    #[arg(long = "path")]
    paths: Vec<String>,
    /// The label on every line (e.g. the CVE ID).
    #[arg(long, required = true)]
    label: String,
    /// Also list the fixed versions (the files at each fix), as `fixed ID LABEL` lines.
    #[arg(long)]
    fixed_list: bool,
}

#[derive(Args)]
struct DenyOsvArgs {
    /// OSV entries (JSON).
    #[arg(required = true)]
    entries: Vec<PathBuf>,
    /// The clone of the upstream repository.
    #[arg(long)]
    repo: PathBuf,
    /// The repository URL the entries' ranges name (default: the clone's remotes).
    #[arg(long)]
    repo_url: Option<String>,
    /// An affected path (default: the files the fixes change, less tests and docs); repeatable.
    #[arg(long = "path")]
    paths: Vec<String>,
    /// Also list the fixed versions, as `fixed ID LABEL` lines.
    #[arg(long)]
    fixed_list: bool,
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
    /// check: a denied file; audit: sources the graph lacks; store verify: problems.
    pub const FOUND: ExitCode = ExitCode(1);
    /// A usage or I/O error.
    pub const USAGE: ExitCode = ExitCode(2);
    /// Nothing found, but some file's graph could not be walked completely: "don't know".
    pub const INCOMPLETE: ExitCode = ExitCode(3);
}

impl From<u8> for ExitCode {
    fn from(code: u8) -> ExitCode {
        ExitCode(code)
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(crate::argv::args_os()) {
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
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("omnishim: {}", one_line(&e));
            ExitCode::USAGE
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

/// The store a command reads (never created: a missing one is reported as such). A file
/// given as the store is a tar export, read into a private temporary store.
fn store_from(arg: Option<PathBuf>) -> Result<Store> {
    match arg {
        Some(p) if p.is_file() => Ok(crate::export::tar::open(&p)?),
        Some(p) => Ok(Store::at(p)),
        None => Store::from_env().context("cannot find the current directory"),
    }
}

/// The store a command writes to: a directory (a tar export is read-only).
fn store_to(arg: Option<PathBuf>) -> Result<Store> {
    not_a_tar(arg.as_deref())?;
    store_from(arg)
}

/// A store to write to must not be a file (a tar export, read-only).
fn not_a_tar(arg: Option<&Path>) -> Result<()> {
    match arg.filter(|p| p.is_file()) {
        Some(p) => anyhow::bail!(
            "{}: a file (a tar export is read-only): give a store directory",
            p.display()
        ),
        None => Ok(()),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Id { paths, hash, json } => cmd_id(&paths, hash.map(Alg::from), json),
        Cmd::Manifest {
            cmd: ManifestCmd::Show { id, store },
        } => cmd_manifest_show(&id, store),
        Cmd::Manifest {
            cmd: ManifestCmd::Create { inputs, store },
        } => cmd_manifest_create(&inputs, store),
        Cmd::Note {
            cmd: NoteCmd::Show { files, json },
        } => cmd_note_show(&files, json),
        Cmd::Note {
            cmd: NoteCmd::Embed { file, manifests },
        } => cmd_note_embed(&file, &manifests),
        Cmd::Note {
            cmd: NoteCmd::Placeholder { like, o },
        } => cmd_note_placeholder(&like, &o),
        Cmd::Run { store, sign, cmd } => match sign {
            None => cmd_run(store, &cmd),
            Some(key) => cmd_run_sign(store, &key, &cmd),
        },
        Cmd::Shims { dir, prefixes } => cmd_shims(&dir, &prefixes),
        Cmd::Resolve(a) => cmd_resolve(a),
        Cmd::Check(a) => cmd_check(a),
        Cmd::Sbom(a) => cmd_sbom(a),
        Cmd::Audit(a) => cmd_audit(a),
        Cmd::Keygen(a) => cmd_keygen(a),
        Cmd::Attest(a) => cmd_attest(a),
        Cmd::Verify(a) => cmd_verify(a),
        Cmd::Deny {
            cmd: DenyCmd::Git(a),
        } => cmd_deny_git(a),
        Cmd::Deny {
            cmd: DenyCmd::Osv(a),
        } => cmd_deny_osv(a),
        Cmd::Export(a) => cmd_export(a),
        Cmd::Push(a) => cmd_push(a),
        Cmd::Pull(a) => cmd_pull(a),
        Cmd::Referrers(a) => cmd_referrers(a),
        Cmd::Store {
            cmd: StoreCmd::Verify,
            store,
        } => cmd_store_verify(store),
    }
}

/// What the commands that answer from the graph found, turned into their exit status:
/// a hit (1) over an error (2) over an incomplete graph (3) over a complete one (0).
#[derive(Default)]
struct Outcome {
    hit: bool,
    error: bool,
    incomplete: bool,
}

impl Outcome {
    fn code(&self) -> ExitCode {
        if self.hit {
            ExitCode::FOUND
        } else if self.error {
            ExitCode::USAGE
        } else if self.incomplete {
            ExitCode::INCOMPLETE
        } else {
            ExitCode::SUCCESS
        }
    }

    /// An error for stderr.
    fn error(&mut self, e: impl std::fmt::Display) {
        eprintln!("omnishim: {e}");
        self.error = true;
    }

    /// A file's gaps: its one line on stderr when there are any.
    fn gaps(&mut self, path: &Path, gaps: &[Gap]) {
        if let Some(line) = resolve::incomplete_line(path, gaps) {
            eprintln!("omnishim: {line}");
            self.incomplete = true;
        }
    }
}

fn cmd_manifest_show(id: &str, store: Option<PathBuf>) -> Result<ExitCode> {
    let store = store_from(store)?;
    let id = Id::parse_any(id)?;
    let bytes = store
        .get_object(&id)?
        .with_context(|| format!("no manifest {} in {}", id.uri(), store.root().display()))?;
    use std::io::Write;
    std::io::stdout().write_all(&bytes)?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_manifest_create(inputs: &[PathBuf], store: Option<PathBuf>) -> Result<ExitCode> {
    let store = store_to(store)?;
    let mut ms = [Manifest::new(Alg::Sha1), Manifest::new(Alg::Sha256)];
    for p in inputs {
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

/// A file without a note is an unrecorded file: exit 3, one line on stderr.
fn cmd_note_show(files: &[PathBuf], json: bool) -> Result<ExitCode> {
    let mut out = Outcome::default();
    let mut rows = Vec::new();
    for f in files {
        let ids = match elf::read_note_file(f) {
            Ok(ids) => ids,
            Err(e) => {
                out.error(e);
                continue;
            }
        };
        let gaps = if ids.is_empty() {
            vec![Gap::Unrecorded]
        } else {
            Vec::new()
        };
        out.gaps(f, &gaps);
        if json {
            rows.push(serde_json::json!({
                "path": f.to_string_lossy(),
                "sha1": ids.sha1.map(|i| i.uri()),
                "sha256": ids.sha256.map(|i| i.uri()),
                "verdict": if gaps.is_empty() { "complete" } else { "incomplete" },
                "incomplete": gaps.iter().map(Gap::to_json).collect::<Vec<_>>(),
            }));
        } else {
            print_ids(&[ids.sha1, ids.sha256], f);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(out.code())
}

fn cmd_note_embed(file: &Path, manifests: &[String]) -> Result<ExitCode> {
    let mut sha1 = None;
    let mut sha256 = None;
    for m in manifests {
        let id = Id::parse_any(m)?;
        match id.alg() {
            Alg::Sha1 => sha1 = Some(id),
            Alg::Sha256 => sha256 = Some(id),
        }
    }
    let (Some(sha1), Some(sha256)) = (sha1, sha256) else {
        anyhow::bail!("--manifest needs one sha1 and one sha256 ID");
    };
    elf::embed_file(file, &sha1, &sha256)?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_note_placeholder(like: &Path, o: &Path) -> Result<ExitCode> {
    let bytes = std::fs::read(like).with_context(|| like.display().to_string())?;
    let t = elf::Target::from_object(&bytes).with_context(|| like.display().to_string())?;
    std::fs::write(o, elf::placeholder_object(&t)).with_context(|| o.display().to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_run(store: Option<PathBuf>, cmd: &[std::ffi::OsString]) -> Result<ExitCode> {
    let store = store_to(store)?;
    let code = crate::wrap::run(store.root(), cmd)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

fn cmd_shims(dir: &Path, prefixes: &[String]) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the omnishim binary")?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    let names = crate::wrap::make_shim_dir(dir, &exe, &path, prefixes)
        .with_context(|| dir.display().to_string())?;
    eprintln!("omnishim: {} links in {}", names.len(), dir.display());
    Ok(ExitCode::SUCCESS)
}

fn cmd_resolve(a: ResolveArgs) -> Result<ExitCode> {
    let mut out = Outcome::default();
    let store = walk_store(
        a.store,
        &a.registry,
        &a.reg,
        &a.files,
        a.follow_dynamic,
        &mut out,
    )?;
    let mut r = Resolver::new(store, a.hash.into());
    let mut docs = Vec::new();
    for f in &a.files {
        let node = match r.resolve_file(f, a.follow_dynamic) {
            Ok(n) => n,
            Err(e) => {
                out.error(e);
                continue;
            }
        };
        let gaps = r.gaps(&node);
        out.gaps(f, &gaps);
        if a.sources {
            for id in resolve::leaves(&node) {
                let p = r
                    .paths(&id)
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| "?".into());
                println!("{p}  {}", id.uri());
            }
        } else if a.json {
            docs.push(render::json(&mut r, f, &node));
        } else if a.dot {
            print!("{}", render::dot(&mut r, &node));
        } else {
            print!("{}", render::tree(&mut r, f, &node));
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&docs)?);
    }
    Ok(out.code())
}

fn cmd_sbom(a: SbomArgs) -> Result<ExitCode> {
    let mut out = Outcome::default();
    let files = [a.file.clone()];
    let store = walk_store(
        a.store,
        &a.registry,
        &a.reg,
        &files,
        a.follow_dynamic,
        &mut out,
    )?;
    let mut r = Resolver::new(store, a.hash.into());
    let node = match r.resolve_file(&a.file, a.follow_dynamic) {
        Ok(n) => n,
        Err(e) => {
            out.error(e);
            return Ok(out.code());
        }
    };
    out.gaps(&a.file, &r.gaps(&node));
    let now = crate::sbom::now_utc();
    let doc = match a.format {
        SbomFormat::SpdxJson => crate::sbom::spdx(&mut r, &a.file, &node, &now),
        SbomFormat::CyclonedxJson => crate::sbom::cyclonedx(&mut r, &a.file, &node, &now),
    };
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(out.code())
}

/// Audit's "missing" needs the whole graph: with part of it unread, an incomplete graph (3)
/// wins over "missing" (1).
fn cmd_audit(a: AuditArgs) -> Result<ExitCode> {
    let mut out = Outcome::default();
    let files = [a.file.clone()];
    let store = walk_store(
        a.store,
        &a.registry,
        &a.reg,
        &files,
        a.follow_dynamic,
        &mut out,
    )?;
    let mut r = Resolver::new(store, Alg::Sha1);
    // the walk is cached: audit's own walk below reads no manifest twice
    let gaps = match r.resolve_file(&a.file, a.follow_dynamic) {
        Ok(node) => r.gaps(&node),
        Err(e) => {
            out.error(e);
            return Ok(out.code());
        }
    };
    let rep = match crate::audit::audit(&mut r, &a.file, a.follow_dynamic) {
        Ok(rep) => rep,
        Err(e) => {
            out.error(e);
            return Ok(out.code());
        }
    };
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
        a.file.display(),
        rep.dwarf_count,
        rep.leaf_count,
        rep.missing.len(),
        rep.by_content_only.len(),
        rep.not_here.len(),
        rep.graph_only.len()
    );
    out.gaps(&a.file, &gaps);
    out.hit = !rep.missing.is_empty() && !out.incomplete;
    Ok(out.code())
}

fn cmd_store_verify(arg: Option<PathBuf>) -> Result<ExitCode> {
    let store = store_from(arg.clone())?;
    let rep = store.verify()?;
    for p in &rep.problems {
        println!("{p}");
    }
    eprintln!(
        "omnishim: {} objects checked in {}, {} problems",
        rep.objects,
        // a tar export by its own name, not the temporary store it was read into
        arg.as_deref().unwrap_or(store.root()).display(),
        rep.problems.len()
    );
    Ok(if rep.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FOUND
    })
}

/// Files under `p` in sorted order (p itself when it is not a directory). What cannot be
/// walked (a symlink loop, a dangling link, an unreadable directory) is one line each in
/// `errs`, and the walk goes on with the rest. `seen`: the directories on the way down, so
/// that a link back up is a loop, not an endless walk.
fn walk(p: &Path, out: &mut Vec<PathBuf>, errs: &mut Vec<String>, seen: &mut Vec<(u64, u64)>) {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            errs.push(format!("{}: symlink loop, skipped", p.display()));
            return;
        }
        Err(e) => {
            errs.push(format!("{}: {e}", p.display()));
            return;
        }
    };
    if !meta.is_dir() {
        out.push(p.to_path_buf());
        return;
    }
    let id = (meta.dev(), meta.ino());
    if seen.contains(&id) {
        errs.push(format!(
            "{}: symlink loop (a directory it is inside), skipped",
            p.display()
        ));
        return;
    }
    let entries: std::io::Result<Vec<PathBuf>> =
        std::fs::read_dir(p).and_then(|rd| rd.map(|e| e.map(|e| e.path())).collect());
    let mut entries = match entries {
        Ok(e) => e,
        Err(e) => {
            errs.push(format!("{}: {e}", p.display()));
            return;
        }
    };
    entries.sort();
    seen.push(id);
    for e in entries {
        walk(&e, out, errs, seen);
    }
    seen.pop();
}

fn cmd_id(paths: &[PathBuf], hash: Option<Alg>, json: bool) -> Result<ExitCode> {
    let which = hash.map_or(Which::Both, Which::One);
    let mut failed = false;
    let mut rows = Vec::new();
    for p in paths {
        let (mut files, mut errs) = (Vec::new(), Vec::new());
        walk(p, &mut files, &mut errs, &mut Vec::new());
        for e in &errs {
            eprintln!("omnishim: {e}");
            failed = true;
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
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(if failed {
        ExitCode::FOUND
    } else {
        ExitCode::SUCCESS
    })
}

/// `<uri>  <path>`, one line per ID present.
fn print_ids(ids: &[Option<Id>], path: &Path) {
    for id in ids.iter().flatten() {
        println!("{}  {}", id.uri(), path.display());
    }
}

fn cmd_check(a: CheckArgs) -> Result<ExitCode> {
    use crate::respond::{self, Checker};
    let mut out = Outcome::default();
    let lists = match respond::read_lists(&a.deny) {
        Ok(l) => l,
        Err(e) => {
            out.error(e);
            return Ok(out.code());
        }
    };
    let (files, errors) = respond::elf_files(&a.paths);
    for e in &errors {
        out.error(e);
    }
    let store = walk_store(
        a.store,
        &a.registry,
        &a.reg,
        &files,
        a.follow_dynamic,
        &mut out,
    )?;
    let mut checkers: Vec<Checker> = Alg::ALL
        .iter()
        .map(|alg| Checker::with_fixed(store.clone(), *alg, lists.clone()))
        .filter(|c| !c.is_empty())
        .collect();
    let mut rows = Vec::new();
    let mut reports = Vec::new();
    let (mut hits, mut hit_files, mut incomplete_files) = (0usize, 0usize, 0usize);
    for f in &files {
        let rep = match respond::check_all(&mut checkers, f, a.follow_dynamic) {
            Ok(rep) => rep,
            Err(e) => {
                out.error(e);
                continue;
            }
        };
        if !rep.chains.is_empty() {
            hit_files += 1;
            hits += rep.chains.len();
            out.hit = true;
        }
        if !rep.gaps.is_empty() {
            incomplete_files += 1;
        }
        out.gaps(f, &rep.gaps);
        if a.json {
            rows.push(rep.to_json());
        } else if a.openvex {
            reports.push(rep);
        } else {
            print!("{}", rep.text());
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    if a.openvex {
        match respond::openvex(&reports, &lists, &a.author) {
            Ok(doc) => println!("{}", serde_json::to_string_pretty(&doc)?),
            Err(e) => out.error(e),
        }
    }
    eprintln!(
        "omnishim: {} ELF files checked, {hit_files} contain denied files ({hits} paths), {incomplete_files} incomplete",
        files.len()
    );
    Ok(out.code())
}

fn cmd_deny_git(a: DenyGitArgs) -> Result<ExitCode> {
    use crate::deny;
    let label = deny::check_label(&a.label)?;
    let d = deny::derive_git(&a.repo, &a.fixed, a.introduced.as_deref(), &a.paths)?;
    if !d.left_out.is_empty() {
        eprintln!(
            "omnishim: left out as tests or docs: {}",
            d.left_out.join(" ")
        );
    }
    let mut header = vec![format!(
        "omnishim deny git: {label}, fixed {}",
        a.fixed.join(" ")
    )];
    if let Some(i) = &a.introduced {
        header.push(format!("introduced {i}"));
    }
    print!("{}", deny::render(&d, &[label], &header, a.fixed_list));
    Ok(ExitCode::SUCCESS)
}

fn cmd_deny_osv(a: DenyOsvArgs) -> Result<ExitCode> {
    use crate::deny;
    let mut h = deny::history::History::open(&a.repo)?;
    let mut code = ExitCode::SUCCESS;
    for e in &a.entries {
        match deny::derive_osv(&mut h, e, a.repo_url.as_deref(), &a.paths) {
            Ok((entry, d)) => {
                if !d.left_out.is_empty() {
                    eprintln!(
                        "omnishim: {}: left out as tests or docs: {}",
                        e.display(),
                        d.left_out.join(" ")
                    );
                }
                let header = vec![format!("omnishim deny osv: {} ({})", entry.id, e.display())];
                print!("{}", deny::render(&d, &entry.labels, &header, a.fixed_list));
            }
            Err(err) => {
                eprintln!("omnishim: {err}");
                code = ExitCode::USAGE;
            }
        }
    }
    Ok(code)
}

fn read_text(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| p.display().to_string())
}

fn cmd_keygen(a: KeygenArgs) -> Result<ExitCode> {
    use crate::attest::keys::{KeyType, PrivateKey};
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let t = match a.key_type {
        KeyTypeArg::Ed25519 => KeyType::Ed25519,
        KeyTypeArg::P256 => KeyType::P256,
    };
    let k = PrivateKey::generate(t);
    let mut prefix = a.o.into_os_string();
    let mut key_path = prefix.clone();
    key_path.push(".key");
    prefix.push(".pub");
    let (key_path, pub_path) = (PathBuf::from(key_path), PathBuf::from(prefix));
    let write = |p: &Path, text: &str, mode: u32| -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(p)
            .with_context(|| p.display().to_string())?;
        f.write_all(text.as_bytes())
            .with_context(|| p.display().to_string())
    };
    write(&key_path, &k.to_pem()?, 0o600)?;
    write(&pub_path, &k.public().to_pem()?, 0o644)?;
    eprintln!(
        "omnishim: wrote {} and {} (keyid {})",
        key_path.display(),
        pub_path.display(),
        k.public().keyid()?
    );
    Ok(ExitCode::SUCCESS)
}

use crate::attest::subject_name;

fn read_private_key(p: &Path) -> Result<crate::attest::keys::PrivateKey> {
    crate::attest::keys::PrivateKey::from_pem(&read_text(p)?)
        .with_context(|| p.display().to_string())
}

/// `run --sign`: the key is read before the build, so a bad one fails before any work.
fn cmd_run_sign(
    store: Option<PathBuf>,
    key: &Path,
    cmd: &[std::ffi::OsString],
) -> Result<ExitCode> {
    let k = read_private_key(key)?;
    let store = store_to(store)?;
    let (code, top) = crate::wrap::run_outputs(store.root(), cmd)?;
    if code != 0 {
        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
    }
    // the build made the store if it was not there
    let store = Store::at(std::fs::canonicalize(store.root()).unwrap_or(store.root().into()));
    let code = attest_files(&top, &k, &store, None)?;
    eprintln!(
        "omnishim: {} top-level outputs signed (OUTPUT.intoto.json beside each)",
        top.len()
    );
    Ok(code)
}

fn cmd_attest(a: AttestArgs) -> Result<ExitCode> {
    let key = read_private_key(&a.key)?;
    let store = store_from(a.store)?;
    attest_files(&a.files, &key, &store, a.o.as_deref())
}

/// Attest files: FILE.intoto.json beside each, or everything into `o`.
fn attest_files(
    files: &[PathBuf],
    key: &crate::attest::keys::PrivateKey,
    store: &Store,
    o: Option<&Path>,
) -> Result<ExitCode> {
    let mut out = Outcome::default();
    let mut lines = Vec::new();
    for f in files {
        let env = match crate::attest::attest_file(f, &subject_name(f), key, store) {
            Ok(Ok(env)) => env,
            Ok(Err(line)) => {
                eprintln!("omnishim: {line}");
                out.hit = true;
                continue;
            }
            Err(e) => {
                out.error(e);
                continue;
            }
        };
        let text = serde_json::to_string(&env)?;
        if o.is_some() {
            lines.push(text);
        } else {
            let mut p = f.clone().into_os_string();
            p.push(".intoto.json");
            let p = PathBuf::from(p);
            if let Err(e) = std::fs::write(&p, format!("{text}\n")) {
                out.error(format!("{}: {e}", p.display()));
            }
        }
    }
    if let Some(o) = o {
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        std::fs::write(o, text).with_context(|| o.display().to_string())?;
    }
    Ok(out.code())
}

/// The envelopes of an attestation file: one JSON object, or JSON lines.
fn read_envelopes(p: &Path) -> Result<Vec<crate::attest::dsse::Envelope>> {
    let text = read_text(p)?;
    if let Ok(e) = serde_json::from_str(&text) {
        return Ok(vec![e]);
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}: line {}: not a DSSE envelope", p.display(), i + 1))
        })
        .collect()
}

/// Whether an envelope's (unverified) payload names the file.
fn names_file(e: &crate::attest::dsse::Envelope, name: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(e.payload.trim())
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["subject"].as_array().cloned())
        .is_some_and(|s| s.iter().any(|s| s["name"] == name))
}

/// Of a bundle, the envelope whose (unverified) payload names the file; else the first.
fn pick_envelope(
    envs: Vec<crate::attest::dsse::Envelope>,
    name: &str,
) -> Option<crate::attest::dsse::Envelope> {
    let i = envs.iter().position(|e| names_file(e, name)).unwrap_or(0);
    envs.into_iter().nth(i)
}

/// Envelopes naming the file first, the others after, each group in its order.
fn order_envelopes(
    envs: Vec<crate::attest::dsse::Envelope>,
    name: &str,
) -> Vec<crate::attest::dsse::Envelope> {
    let (mut named, rest): (Vec<_>, Vec<_>) = envs.into_iter().partition(|e| names_file(e, name));
    named.extend(rest);
    named
}

/// The envelopes attached to a file's graph in a registry; what to say when there are none.
#[derive(Default)]
struct Attached {
    envelopes: Vec<crate::attest::dsse::Envelope>,
    none: String,
}

/// Run the registry helper's `attestations`: its status, and per file (in order) the
/// envelopes attached to its graph. An entry that is not a DSSE envelope is one line, skipped.
fn registry_attestations(args: Vec<std::ffi::OsString>) -> Result<(ExitCode, Vec<Attached>)> {
    #[derive(serde::Deserialize)]
    struct Found {
        path: PathBuf,
        tag: String,
        graph: Option<String>,
        envelopes: Vec<serde_json::Value>,
    }
    let h = registry_helper()?;
    let o = std::process::Command::new(&h)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| h.display().to_string())?;
    let code = ExitCode::from(o.status.code().unwrap_or(2).clamp(0, 255) as u8);
    if o.stdout.is_empty() {
        // the helper could not use the registry at all and said why
        return Ok((code, Vec::new()));
    }
    let found: Vec<Found> = serde_json::from_slice(&o.stdout)
        .with_context(|| format!("{}: unexpected output", h.display()))?;
    let per_file = found
        .into_iter()
        .map(|f| Attached {
            none: match &f.graph {
                None => format!("the registry has no graph for it (tag {})", f.tag),
                Some(g) => format!("no usable DSSE envelope among the referrers of its graph {g}"),
            },
            envelopes: f
                .envelopes
                .into_iter()
                .filter_map(|v| match serde_json::from_value(v) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        eprintln!(
                            "omnishim: {}: an attached attestation is not a DSSE envelope: {e}",
                            f.path.display()
                        );
                        None
                    }
                })
                .collect(),
        })
        .collect();
    Ok((code, per_file))
}

fn cmd_verify(a: VerifyArgs) -> Result<ExitCode> {
    use crate::attest::{self, keys::PublicKey, Failure, FileFacts};
    let key =
        PublicKey::from_pem(&read_text(&a.key)?).with_context(|| a.key.display().to_string())?;
    let mut out = Outcome::default();
    // --registry: the graphs pulled into the cache (or --store) and, without --attestation,
    // the envelopes attached to them
    let (store, mut attached) = match &a.registry {
        None => (store_from(a.store)?, None),
        Some(_) if a.attestation.is_some() => (
            walk_store(a.store, &a.registry, &a.reg, &a.files, false, &mut out)?,
            None,
        ),
        Some(repo) => {
            let store = match a.store {
                Some(p) => p,
                None => crate::registry::cache_dir()?,
            };
            let args = helper_args("attestations", repo, &a.files, false, &a.reg, Some(&store));
            let (code, found) = registry_attestations(args)?;
            if found.len() != a.files.len() {
                // the registry could not be used at all: the helper said why
                return Ok(ExitCode::USAGE);
            }
            if code != ExitCode::SUCCESS {
                out.error = true;
            }
            (Store::at(store), Some(found))
        }
    };
    let mut rows = Vec::new();
    for (i, f) in a.files.iter().enumerate() {
        let name = subject_name(f);
        let mut none = String::new();
        let envs = match attached.as_mut() {
            Some(found) => {
                let at = found.get_mut(i).map(std::mem::take).unwrap_or_default();
                none = format!("{}: {}", a.registry.as_deref().unwrap_or_default(), at.none);
                at.envelopes
            }
            None => {
                let att = a.attestation.clone().unwrap_or_else(|| {
                    let mut p = f.clone().into_os_string();
                    p.push(".intoto.json");
                    PathBuf::from(p)
                });
                match read_envelopes(&att) {
                    Ok(envs) => match pick_envelope(envs, &name) {
                        Some(e) => vec![e],
                        None => {
                            out.error(format!("{}: no envelope", att.display()));
                            continue;
                        }
                    },
                    Err(e) => {
                        out.error(one_line(&e));
                        continue;
                    }
                }
            }
        };
        let facts = match FileFacts::read(f, &store) {
            Ok(x) => x,
            Err(e) => {
                out.error(e);
                continue;
            }
        };
        // several envelopes (several signers): verified when one of them is; else the
        // first one's failure (the one naming the file first)
        let mut r = Err(Failure {
            kind: "no-attestation",
            message: none,
        });
        for (j, env) in order_envelopes(envs, &name).iter().enumerate() {
            let this = attest::check(env, &key, &name, &facts, &store);
            if this.is_ok() || j == 0 {
                r = this;
            }
            if r.is_ok() {
                break;
            }
        }
        match &r {
            Ok(v) => eprintln!(
                "omnishim: {}: verified ({}, {} manifests below)",
                f.display(),
                v.root.sha1.uri(),
                v.manifests.0
            ),
            Err(fl) => {
                eprintln!(
                    "omnishim: {}: not verified: {}: {}",
                    f.display(),
                    fl.kind,
                    fl.message
                );
                out.hit = true;
            }
        }
        if a.json {
            rows.push(match r {
                Ok(v) => serde_json::json!({
                    "path": f.to_string_lossy(),
                    "verdict": "verified",
                    "root": {"sha1": v.root.sha1.uri(), "sha256": v.root.sha256.uri()},
                    "manifests": {"sha1": v.manifests.0, "sha256": v.manifests.1},
                }),
                Err(fl) => serde_json::json!({
                    "path": f.to_string_lossy(),
                    "verdict": "failed",
                    "check": fl.kind,
                    "message": fl.message,
                }),
            });
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    // a failed check (1) wins over an I/O error (2), as in check
    Ok(out.code())
}

/// The store a walk reads; with `--registry`, first filled with the files' graphs from the
/// registry (the default store then being the user's cache). A registry that cannot be used
/// or a graph rejected is one line each and an error (2); the walk goes on with what is there.
fn walk_store(
    store: Option<PathBuf>,
    registry: &Option<String>,
    reg: &RegistryArgs,
    files: &[PathBuf],
    follow_dynamic: bool,
    out: &mut Outcome,
) -> Result<Store> {
    let Some(repo) = registry else {
        return store_from(store);
    };
    not_a_tar(store.as_deref())?;
    let store = match store {
        Some(p) => p,
        // a plain function of the environment: none of the registry client is linked here
        None => crate::registry::cache_dir()?,
    };
    let mut args = helper_args("pull", repo, files, follow_dynamic, reg, Some(&store));
    args.insert(1, "--quiet".into());
    // the helper says what went wrong, one line each; here it only counts as an error
    match run_helper(args) {
        Ok(ExitCode::SUCCESS) | Ok(ExitCode::INCOMPLETE) => {}
        Ok(_) => out.error = true,
        Err(e) => out.error(one_line(&e)),
    }
    Ok(Store::at(store))
}

fn cmd_export(a: ExportArgs) -> Result<ExitCode> {
    use crate::export;
    let store = store_from(a.store)?;
    let opts = export::Options {
        follow_dynamic: a.follow_dynamic,
        redact: a.redact,
        withhold: a
            .withhold
            .iter()
            .map(|w| export::Withhold::parse(w))
            .collect(),
    };
    let g = export::close(&store, &a.files, &opts)?;
    let mut out = Outcome::default();
    for r in &g.roots {
        if r.sha1.is_none() && r.sha256.is_none() {
            out.gaps(&r.path, &[Gap::Unrecorded]);
        }
    }
    if let Some(m) = g.missing.first() {
        let more = g.missing.len() - 1;
        eprintln!(
            "omnishim: export incomplete: manifest {} missing from {} (and {more} more)",
            m.uri(),
            store.root().display()
        );
        out.incomplete = true;
    }
    if a.o.extension().is_some_and(|e| e == "tar") {
        export::tar::write(&a.o, &g.entries)?;
    } else {
        std::fs::create_dir_all(&a.o).with_context(|| a.o.display().to_string())?;
        export::install(&Store::at(&a.o), &g.entries, &export::root_manifests(&g))?;
    }
    let manifests = g
        .entries
        .iter()
        .filter(|e| matches!(e.kind, export::Kind::Manifest(_)))
        .count();
    eprintln!(
        "omnishim: exported {manifests} manifests and {} metadata files of {} files to {}{}",
        g.entries.len() - manifests,
        g.roots.len(),
        a.o.display(),
        if g.withheld.is_empty() {
            String::new()
        } else {
            format!(" ({} manifests withheld)", g.withheld.len())
        }
    );
    Ok(out.code())
}

/// The registry commands run in a binary of their own beside this one (the registry client
/// and its TLS stack would otherwise weigh on every shim's start-up): its path.
fn registry_helper() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the omnishim binary")?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let h = exe.with_file_name("omnishim-registry");
    anyhow::ensure!(
        h.is_file(),
        "{}: not found (the registry commands live there; it is built and installed with omnishim)",
        h.display()
    );
    Ok(h)
}

/// Run the registry helper; its exit status.
fn run_helper(args: Vec<std::ffi::OsString>) -> Result<ExitCode> {
    let h = registry_helper()?;
    let st = std::process::Command::new(&h)
        .args(args)
        .status()
        .with_context(|| h.display().to_string())?;
    Ok(ExitCode::from(st.code().unwrap_or(2).clamp(0, 255) as u8))
}

/// The helper's arguments for a push or pull.
fn helper_args(
    cmd: &str,
    repo: &str,
    files: &[PathBuf],
    follow_dynamic: bool,
    reg: &RegistryArgs,
    store: Option<&Path>,
) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec![cmd.into()];
    if follow_dynamic {
        v.push("--follow-dynamic".into());
    }
    if reg.plain_http {
        v.push("--plain-http".into());
    }
    if let Some(s) = store {
        v.push("--store".into());
        v.push(s.into());
    }
    v.push("--".into());
    v.push(repo.into());
    v.extend(files.iter().map(|f| f.clone().into_os_string()));
    v
}

fn cmd_push(a: PushArgs) -> Result<ExitCode> {
    let store = store_from(a.store)?;
    let mut args = helper_args(
        "push",
        &a.repo,
        &a.files,
        a.follow_dynamic,
        &a.reg,
        Some(store.root()),
    );
    for (flag, v) in [
        ("--subject", a.subject.map(std::ffi::OsString::from)),
        ("--attest", a.attest.map(PathBuf::into_os_string)),
    ] {
        if let Some(v) = v {
            args.splice(1..1, [flag.into(), v]);
        }
    }
    run_helper(args)
}

fn cmd_referrers(a: ReferrersArgs) -> Result<ExitCode> {
    let (repo, digest) = a
        .image
        .rsplit_once('@')
        .with_context(|| format!("{}: want REPO@sha256:...", a.image))?;
    let mut args: Vec<std::ffi::OsString> = vec!["referrers".into()];
    if a.reg.plain_http {
        args.push("--plain-http".into());
    }
    if a.json {
        args.push("--json".into());
    }
    if let Some(t) = a.artifact_type {
        args.push("--artifact-type".into());
        args.push(t.into());
    }
    args.extend(["--".into(), repo.into(), digest.into()]);
    run_helper(args)
}

fn cmd_pull(a: PullArgs) -> Result<ExitCode> {
    not_a_tar(a.store.as_deref())?;
    run_helper(helper_args(
        "pull",
        &a.repo,
        &a.files,
        a.follow_dynamic,
        &a.reg,
        a.store.as_deref(),
    ))
}
