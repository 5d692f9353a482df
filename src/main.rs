//! The `cosell` binary: parse arguments, run, print errors in one place, exit with a stable code.
use clap::Parser;

/// Set by the panic hook when the panic is `println!` failing on a closed pipe.
static PIPE_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn main() {
    let cli = cosell::cli::Cli::parse();
    // A panic is a bug in cosell, never the user's mistake: say so, and exit with the
    // documented internal-error code instead of Rust's 101.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // `print!` panics when its reader went away (`| head`): that is no bug, leave quietly
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            PIPE_CLOSED.store(true, std::sync::atomic::Ordering::SeqCst);
            return;
        }
        eprintln!(
            "internal error: this is a bug in cosell {}, not a problem with your playbook or \
             input; please report it with the message below. A run's journal stays consistent: \
             `cosell resume` continues it.",
            env!("CARGO_PKG_VERSION")
        );
        default_hook(info);
    }));
    let code = std::panic::catch_unwind(|| cosell::run(cli)).unwrap_or_else(|_| {
        if PIPE_CLOSED.load(std::sync::atomic::Ordering::SeqCst) {
            cosell::exit::BROKEN_PIPE
        } else {
            cosell::exit::INTERNAL
        }
    });
    std::process::exit(code);
}

/// mimalloc: the engine and the journal replay allocate many small JSON values; glibc's
/// malloc made allocation the largest user-space cost (see README, Performance).
#[global_allocator]
/// Wrapped by the template memory guard (`plan::template::guard`): a runaway render stops
/// with a located error instead of an allocation failure.
static GLOBAL: cosell::plan::template::guard::Guarded<mimalloc::MiMalloc> =
    cosell::plan::template::guard::Guarded(mimalloc::MiMalloc);
