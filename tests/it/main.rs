//! The one integration test binary: real tools, real files, a temp dir per test.

mod cc;
mod classify;
mod corpus;
mod elf;
mod foundation;
mod kernel;
mod ldar;
mod respond;
mod run;
mod util;
