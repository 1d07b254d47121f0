#![no_main]
//! One multicall binary: `omnishim` (the CLI) and the shims, told apart by argv[0].

use omnishim::classify::{family_of, Family};
use omnishim::cli::ExitCode;
use omnishim::shim::{self, Invoked};

/// A musl build's allocator (see `heap`).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: omnishim::heap::Heap = omnishim::heap::Heap::new();

// No Rust runtime start-up: a shim starts for every compile, link and archive step, and the
// runtime's own start (it reads /proc/self/maps to place the main thread's stack guard and
// installs stack-overflow handlers) costs every step time and gives a shim nothing. The
// arguments are recorded here for `omnishim::argv` (musl hands std none without a Rust
// main); leaving goes through `std::process::exit`, which flushes stdout. SIGPIPE keeps the
// disposition we were started with (the runtime would ignore it): `omnishim resolve ... |
// head` ends quietly.
#[no_mangle]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    // SAFETY: argc and argv as the C runtime hands them to main
    unsafe { omnishim::argv::record(argc, argv) };
    std::process::exit(start().0.into())
}

fn start() -> ExitCode {
    let mut args = omnishim::argv::args_os();
    let argv0 = args.next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let invoked = match name.as_str() {
        "omnishim" => return omnishim::cli::main(),
        "omnibor-cc" => Invoked::Explicit(Family::Cc),
        "omnibor-c++" => Invoked::Explicit(Family::Cxx),
        "omnibor-ld" => Invoked::Explicit(Family::Ld),
        "omnibor-ar" => Invoked::Explicit(Family::Ar),
        other => match family_of(other) {
            Some(f) => Invoked::Masquerade(f, other.to_string()),
            None => return omnishim::cli::main(),
        },
    };
    shim::main(invoked, args.collect())
}
