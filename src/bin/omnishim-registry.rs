//! The registry commands' own binary (see `omnishim::registry::cli`).

fn main() {
    std::process::exit(omnishim::registry::cli::main().0.into())
}
