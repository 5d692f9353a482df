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
pub mod model;
pub mod plan;
pub mod playbook;

/// Run one command and return the process exit code. Errors are printed here, once.
pub fn run(cli: cli::Cli) -> i32 {
    use cli::Command;
    match cli.command {
        Command::Validate(a) => plan::commands::validate(&a),
        Command::Plan(a) => plan::commands::plan(&a),
        Command::Schema => plan::commands::schema(),
        Command::Run(_) | Command::Resume(_) | Command::Status(_) | Command::Emulator(_) => {
            eprintln!("error: this command is not built yet");
            exit::INTERNAL
        }
    }
}
