//! cosell: a batch workflow engine for the AWS Partner Central Selling API.
//!
//! Data flows one way: playbook + CSV (`playbook`, `input`) → expansion and offline
//! validation (`plan`, `model`) → scheduler and API client (`engine`) → `journal` → `ledger`.
//! The `emulator` is a separate local Partner Central that shares only `model`.

pub mod cli;
pub mod emulator;
pub mod engine;
pub mod exit;
pub mod input;
pub mod journal;
pub mod ledger;
pub mod model;
pub mod plan;
pub mod playbook;
pub mod report;
pub mod rundir;

/// Run one command and return the process exit code. Errors are printed here, once.
pub fn run(cli: cli::Cli) -> i32 {
    use cli::Command;
    init_tracing();
    match cli.command {
        Command::Validate(a) => plan::commands::validate(&a),
        Command::Plan(a) if a.live => engine::live::plan_live(&a),
        Command::Plan(a) => plan::commands::plan(&a),
        Command::Schema => plan::commands::schema(),
        Command::Run(a) => engine::command::run_command(a),
        Command::Resume(a) => engine::command::resume_command(a),
        Command::Status(a) => journal::status::run(&a),
        Command::Report(a) => report::run(&a),
        Command::Emulator(a) => emulator::main(a),
    }
}

/// Logs go to stderr under `RUST_LOG` (default: warnings). The SDK's own crates stay at
/// warnings unless named, and no cosell log line carries credentials or request bodies.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
