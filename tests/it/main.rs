//! The one integration test binary: real tools, real files, a temp dir per test.

mod archive;
mod attest;
mod audit;
mod builds;
mod bytes;
mod cc;
mod classify;
mod corpus;
mod deny;
mod elf;
mod foundation;
mod kernel;
mod kill;
mod ldar;
mod note;
mod referrers;
mod registry;
mod respond;
mod run;
mod store;
mod util;
mod verdict;
