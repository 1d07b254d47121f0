//! `omnishim-registry`: the push and pull commands, in a binary of their own so that the
//! registry client (HTTP, TLS, an async runtime) is never loaded by the shims or the rest of
//! the CLI. `omnishim push`, `pull` and every `--registry` run it.

use super::{cache_dir, pull, push_with, Attach, Remote};
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
    Push {
        /// The digest of a manifest in REPO (`sha256:...`) every graph refers to.
        #[arg(long)]
        subject: Option<String>,
        /// Private key: also push each file's DSSE envelope as a referrer of its graph.
        #[arg(long)]
        attest: Option<PathBuf>,
        #[command(flatten)]
        c: Common,
    },
    /// Pull the files' graphs into the store, then print (JSON) the envelopes attached to
    /// each graph.
    Attestations(Common),
    /// The referrers of a manifest (`sha256:...`) of REPO.
    Referrers {
        #[arg(long)]
        plain_http: bool,
        #[arg(long)]
        artifact_type: Option<String>,
        #[arg(long)]
        json: bool,
        repo: String,
        digest: String,
    },
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
        Cmd::Push { subject, attest, c } => cmd_push(c, subject, attest),
        Cmd::Attestations(c) => cmd_attestations(c),
        Cmd::Referrers {
            plain_http,
            artifact_type,
            json,
            repo,
            digest,
        } => cmd_referrers(
            &Remote { repo, plain_http },
            &digest,
            artifact_type.as_deref(),
            json,
        ),
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

fn cmd_push(
    c: Common,
    subject: Option<String>,
    attest: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let store = match &c.store {
        Some(p) => Store::at(p),
        None => Store::from_env()?,
    };
    // the key before any upload: a bad one is one line and nothing pushed
    let key = match &attest {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(anyhow::Error::from)
                .and_then(|t| Ok(crate::attest::keys::PrivateKey::from_pem(&t)?))
                .with_context(|| p.display().to_string())?,
        ),
        None => None,
    };
    let subject = subject
        .map(|s| subject_digest(&s, &c.repo).context("--subject"))
        .transpose()?;
    let attach = Attach {
        subject,
        key: key.as_ref(),
    };
    let t = std::time::Instant::now();
    let rep = push_with(&store, &remote(&c), &c.files, c.follow_dynamic, &attach)?;
    for p in &rep.pushed {
        println!("{p}");
    }
    for p in &rep.attested {
        println!("{p}  (attestation)");
    }
    for l in &rep.incomplete {
        eprintln!("omnishim: {l}");
    }
    for l in &rep.not_attested {
        eprintln!("omnishim: {l}");
    }
    if attach.subject.is_some() || attach.key.is_some() {
        eprintln!(
            "omnishim: {} attestations pushed; {} referrers tag-schema indexes written",
            rep.attested.len(),
            rep.indexes_updated
        );
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
    Ok(if !rep.not_attested.is_empty() {
        ExitCode::FOUND
    } else if rep.incomplete.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::INCOMPLETE
    })
}

/// `--subject IMAGE@sha256:...` (or a bare digest): the digest, once IMAGE is the repository
/// pushed to (a referrer lives in its subject's repository).
fn subject_digest(subject: &str, repo: &str) -> anyhow::Result<String> {
    let (image, digest) = match subject.rsplit_once('@') {
        Some((i, d)) => (Some(i), d),
        None => (None, subject),
    };
    let ok = digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    anyhow::ensure!(ok, "{subject}: want IMAGE@sha256:<64 hex digits>");
    if let Some(i) = image.filter(|i| *i != repo) {
        anyhow::bail!(
            "{subject}: the image must be in {repo} (referrers live in their subject's repository), not {i}"
        );
    }
    Ok(digest.to_ascii_lowercase())
}

fn cmd_attestations(c: Common) -> anyhow::Result<ExitCode> {
    let store = Store::at(match &c.store {
        Some(p) => p.clone(),
        None => cache_dir()?,
    });
    let rep = pull(&store, &remote(&c), &c.files, c.follow_dynamic)?;
    let found = super::attestations::attestations(&remote(&c), &c.files)?;
    let rejected = !rep.rejected.is_empty();
    for l in &rep.rejected {
        eprintln!("omnishim: {l}");
    }
    // an envelope that cannot be used is a line; whether the file verifies is verify's call
    for f in &found {
        for l in &f.rejected {
            eprintln!(
                "omnishim: {}: {}:{}: rejected: {l}",
                f.path.display(),
                c.repo,
                f.tag
            );
        }
    }
    println!("{}", serde_json::to_string(&found)?);
    Ok(if rejected {
        ExitCode::USAGE
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_referrers(
    remote: &Remote,
    digest: &str,
    artifact_type: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let digest = subject_digest(digest, &remote.repo)?;
    let list = super::referrers::referrers_of(remote, &digest, artifact_type)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for e in &list {
            println!(
                "{}  {}",
                e.digest,
                e.artifact_type.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
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
