//! Command-line interface: argument definitions and dispatch to the stages.
//!
//! Owns the clap types and the mapping of each subcommand to the module that serves it.
//! Must not contain stage logic: each arm calls one function of its module.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The exit codes (README, "Exit codes"), shown by every `--help`.
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0    success: every row succeeded (or was skipped by `when`)
  1    the run finished but some rows failed (resume --retry-failed redrives them);
       plan --live: some row would fail
  2    invalid playbook, input, flags or usage; changed inputs on resume; not
       confirmed; not a run directory: nothing was sent
  3    stopped by limits.max_failures or a rolling 24-hour quota: resumable
  4    the environment failed (I/O, credentials, endpoint, locked or damaged run
       directory): resumable once fixed
  70   an internal error in cosell (a bug: please report it)
  130  interrupted (Ctrl-C, SIGTERM, SIGHUP): resumable
  141  stdout or stderr closed early (e.g. `| head`): stopped quietly"
    };
}

/// A subcommand's `--help` epilogue: its examples, then the exit codes.
macro_rules! help {
    ($examples:expr) => {
        concat!("Examples:\n", $examples, "\n\n", exit_codes!())
    };
}

#[derive(Debug, Parser)]
#[command(
    name = "cosell",
    version,
    about = "Batch workflow engine for the AWS Partner Central Selling API",
    long_about = "Validate, plan, run and resume co-sell campaigns (playbook + CSV) against \
                  AWS Partner Central, or against a faithful local emulator.",
    after_help = help!(concat!(
        "  cosell validate playbooks/invite-partners.yaml        # the dry run: every row, offline\n",
        "  cosell plan playbooks/invite-partners.yaml --show 2   # calls, quota time, requests\n",
        "  cosell run playbooks/invite-partners.yaml --emulate   # rehearse against the emulator\n",
        "  cosell run playbooks/invite-partners.yaml --profile partner-prod\n",
        "  cosell resume runs/q4-reseller-invites-20261202T101500Z\n",
        "  cosell status runs/q4-reseller-invites-20261202T101500Z\n",
        "  cosell report runs/q4-reseller-invites-20261202T101500Z   # report.html, to share"
    ))
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a playbook and every row of its input offline; send nothing.
    #[command(after_help = help!(
        "  cosell validate playbooks/invite-partners.yaml\n  cosell validate invite.yaml --input partners.csv --var engagement_title='Q1 resellers'\n  cosell validate invite.yaml --format json > diagnostics.json"
    ))]
    Validate(ValidateArgs),
    /// Validate, then show calls per action and quota class and the run's minimum duration;
    /// with --live, read each record a `patch` step updates and show what would change.
    #[command(after_help = help!(
        "  cosell plan playbooks/invite-partners.yaml\n  cosell plan invite.yaml --show 3          # the first three rendered requests\n  cosell plan invite.yaml --rate write=2/s   # preview an override\n  cosell plan playbooks/update-opportunity-stage.yaml --live --emulate   # what each row would change\n  cosell plan update.yaml --live --profile partner-prod --format json    # reads only"
    ))]
    Plan(PlanArgs),
    /// Print the JSON Schema of playbooks (for editors with the YAML language server).
    #[command(after_help = help!("  cosell schema > schemas/playbook.schema.json"))]
    Schema,
    /// Execute a playbook against Partner Central (or the embedded emulator).
    #[command(after_help = help!(
        "  cosell run playbooks/invite-partners.yaml --emulate           # rehearse offline\n  cosell run invite.yaml --profile partner-prod                 # catalog AWS asks first\n  cosell run invite.yaml --endpoint-url http://127.0.0.1:4566   # a running `cosell emulator`\n  cosell run invite.yaml --run-dir runs/q4 --concurrency 16 --rate read=5/s"
    ))]
    Run(RunArgs),
    /// Continue a stopped run from its journal (with the connection the run recorded).
    #[command(after_help = help!(
        "  cosell resume runs/q4-reseller-invites-20261202T101500Z\n  cosell resume runs/q4 --retry-failed     # run the failed rows again\n  cosell resume runs/q4 --profile other    # override the recorded connection"
    ))]
    Resume(ResumeArgs),
    /// Show the progress of a run directory.
    #[command(after_help = help!(
        "  cosell status runs/q4-reseller-invites-20261202T101500Z\n  cosell status runs/q4 --format json"
    ))]
    Status(StatusArgs),
    /// Write RUN_DIR/report.html: a self-contained page on how the run went, to share.
    #[command(after_help = help!(
        "  cosell report runs/q4-reseller-invites-20261202T101500Z\n  cosell report runs/q4 && xdg-open runs/q4/report.html   # or `open` on macOS"
    ))]
    Report(ReportArgs),
    /// Serve a local Partner Central Selling API (AWS JSON 1.0) for tests and rehearsals.
    #[command(after_help = help!(
        "  cosell emulator                                    # 127.0.0.1:4566, documented quotas\n  cosell emulator --quotas x20 --task-delay 0s --state emu.json\n  cosell emulator --faults throttle=0.05,reset=0.01 --seed 7"
    ))]
    Emulator(crate::emulator::EmulatorArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// The playbook and what feeds it: shared by validate, plan and run.
#[derive(Debug, Clone, Args)]
pub struct CampaignArgs {
    /// The playbook (YAML).
    pub playbook: PathBuf,
    /// The input, a CSV or a workbook (.xlsx, .xlsm, .xls, .ods); overrides the playbook's
    /// `input.file`/`input.csv`.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// The workbook's sheet to read (default: the playbook's `input.sheet`, else the first).
    #[arg(long, value_name = "NAME")]
    pub sheet: Option<String>,
    /// Set a playbook variable (repeatable); overrides `vars` in the playbook.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub campaign: CampaignArgs,
    /// Output format of the diagnostics.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub campaign: CampaignArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Print the first N rendered requests as JSON.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub show: usize,
    /// Preview a run with at most N rows in flight (overrides `limits.concurrency`).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Preview a run with this rate, per quota class or operation: `write=1/s` (repeatable).
    /// With `--live`, the reads go at these rates.
    #[arg(long = "rate", value_name = "CLASS_OR_OPERATION=N/s")]
    pub rates: Vec<String>,
    /// Read every record a `patch` step would update (at the read quota, never writing) and
    /// print, per row, the member-level changes the run would make.
    #[arg(long)]
    pub live: bool,
    /// With `--live`: where to read from (the same flags as `run`).
    #[command(flatten)]
    pub endpoint: EndpointArgs,
}

/// Where requests go and with which identity: shared by run, resume and `plan --live`.
#[derive(Debug, Clone, Default, Args)]
pub struct EndpointArgs {
    /// Run against an embedded emulator on an ephemeral loopback port (no AWS account needed).
    #[arg(long, conflicts_with_all = ["endpoint_url", "profile"])]
    pub emulate: bool,
    /// Send requests to this endpoint instead of AWS (for example a running `cosell emulator`).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS profile (default: the standard credential chain).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// AWS region (default us-east-1, where the service answers; resume: the run's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

/// The endpoint and how a run sends to it: shared by run and resume.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// At most N rows in flight (overrides `limits.concurrency`).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Override a rate, per quota class or operation: `write=1/s`, `GetEngagementInvitation=5/s`.
    #[arg(long = "rate", value_name = "CLASS_OR_OPERATION=N/s")]
    pub rates: Vec<String>,
    /// Do not ask for confirmation before sending to catalog AWS.
    #[arg(long)]
    pub yes: bool,
    /// When a rolling 24-hour quota is spent, wait until it has room and go on (instead of
    /// stopping with exit 3); Ctrl-C during the wait is clean and resumable.
    #[arg(long)]
    pub wait_for_quota: bool,
    /// The length of the rolling quota window (default 24h; shorter to rehearse a multi-day
    /// campaign against `cosell emulator --quota-window`).
    #[arg(long, value_name = "DURATION")]
    pub quota_window: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub campaign: CampaignArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The run directory (default `runs/<playbook name>-<UTC timestamp>`).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run directory of the stopped run.
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Resume even though the playbook, input or vars changed since the run started.
    #[arg(long)]
    pub force: bool,
    /// Run again only the rows that failed (their successful steps are kept).
    #[arg(long)]
    pub retry_failed: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub run_dir: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory (read without taking its lock; only report.html is written).
    pub run_dir: PathBuf,
}
