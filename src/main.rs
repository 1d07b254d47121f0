//! One multicall binary: `omnishim` (the CLI) and the shims, told apart by argv[0].

use omnishim::classify::{family_of, Family};
use omnishim::shim::{self, Invoked};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os();
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
