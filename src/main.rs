//! The `cosell` binary: parse arguments, run, print errors in one place, exit with a stable code.
use clap::Parser;

fn main() {
    let cli = cosell::cli::Cli::parse();
    let code = cosell::run(cli);
    std::process::exit(code);
}
