//! omnishim: OmniBOR artifact dependency graphs for C/C++ builds.
//!
//! The library holds the formats (gitoid, manifest, store, elf) and the build-step logic
//! (classify, depfile, shim); `cli` is the `omnishim` command and `main.rs` dispatches the
//! multicall binary on the name it was run as.

pub mod archive;
pub mod argv;
pub mod attest;
pub mod audit;
pub mod classify;
pub mod cli;
pub mod deny;
pub mod depfile;
pub mod elf;
pub mod export;
pub mod gitoid;
#[cfg(target_env = "musl")]
pub mod heap;
pub mod manifest;
pub mod registry;
pub mod render;
pub mod resolve;
pub mod respond;
pub mod sbom;
pub mod shim;
pub mod store;
pub mod wrap;
