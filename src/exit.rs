//! Exit codes: documented in README, stable across releases.

/// Every row succeeded, or the command did what was asked.
pub const OK: i32 = 0;
/// The run finished, but some rows failed (see the ledger); `plan --live`: some row would fail.
pub const ROWS_FAILED: i32 = 1;
/// Invalid playbook, input or usage: nothing was sent.
pub const INVALID: i32 = 2;
/// Stopped early by `limits.max_failures` or by a rolling 24-hour quota; resumable.
pub const STOPPED: i32 = 3;
/// The environment failed the run: I/O, credentials, endpoint, a locked run directory.
pub const ENVIRONMENT: i32 = 4;
/// A bug in cosell itself (please report it).
pub const INTERNAL: i32 = 70;
/// Interrupted by Ctrl-C / SIGTERM / SIGHUP; resumable.
pub const INTERRUPTED: i32 = 130;
/// Standard output or error was closed early (`cosell schema | head -1`): what a shell shows
/// for a tool ended by SIGPIPE; cosell stops with no message.
pub const BROKEN_PIPE: i32 = 141;
