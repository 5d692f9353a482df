//! The `cosell` binary: parse arguments, run, print errors in one place, exit with a stable code.
use clap::Parser;

fn main() {
    let cli = cosell::cli::Cli::parse();
    // A panic is a bug in cosell, never the user's mistake: say so, and exit with the
    // documented internal-error code instead of Rust's 101.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!(
            "internal error: this is a bug in cosell {}, not a problem with your playbook or \
             input; please report it with the message below. A run's journal stays consistent: \
             `cosell resume` continues it.",
            env!("CARGO_PKG_VERSION")
        );
        default_hook(info);
    }));
    let code = std::panic::catch_unwind(|| cosell::run(cli)).unwrap_or(cosell::exit::INTERNAL);
    std::process::exit(code);
}

/// mimalloc: the engine and the journal replay allocate many small JSON values; glibc's
/// malloc made allocation the largest user-space cost (see README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
