//! One multicall binary: `omnishim` (the CLI) and the shims, told apart by argv[0].

use std::process::ExitCode;

fn main() -> ExitCode {
    omnishim::cli::main()
}
