//! The `cosell` binary: parse arguments, run, print errors in one place, exit with a stable code.
use clap::Parser;

fn main() {
    let cli = cosell::cli::Cli::parse();
    let code = cosell::run(cli);
    std::process::exit(code);
}

/// mimalloc: the engine and the journal replay allocate many small JSON values; glibc's
/// malloc made allocation the largest user-space cost (see README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
