//! The process's arguments, as the C `main` received them.
//!
//! The binary has no Rust runtime `main` (see main.rs). glibc hands argc/argv to the
//! initialisers Rust's std registers, so `std::env::args_os` works there without one; musl
//! does not, and std then sees no arguments at all. So `main` records what it was given
//! here, and every reader of the arguments asks here (falling back on std's view, which is
//! what a library caller such as a test sees).

use std::ffi::{c_char, CStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::sync::OnceLock;

static ARGS: OnceLock<Vec<OsString>> = OnceLock::new();

/// Record the arguments `main` was given.
///
/// # Safety
/// `argv` must hold `argc` valid C strings, as the C `main` receives it.
pub unsafe fn record(argc: std::ffi::c_int, argv: *const *const c_char) {
    let mut v = Vec::with_capacity(argc.max(0) as usize);
    for i in 0..argc.max(0) as usize {
        // SAFETY: the caller vouches for argc entries of valid C strings
        let p = unsafe { *argv.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: as above
        v.push(OsString::from_vec(
            unsafe { CStr::from_ptr(p) }.to_bytes().to_vec(),
        ));
    }
    let _ = ARGS.set(v);
}

/// The program name alone (argv[0]), without copying the rest of a long command line.
pub fn arg0() -> Option<OsString> {
    match ARGS.get() {
        Some(a) => a.first().cloned(),
        None => std::env::args_os().next(),
    }
}

/// The arguments, program name first.
pub fn args_os() -> impl Iterator<Item = OsString> {
    let v: Vec<OsString> = match ARGS.get() {
        Some(a) => a.clone(),
        None => std::env::args_os().collect(),
    };
    v.into_iter()
}
