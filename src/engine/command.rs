//! `cosell run` and `cosell resume`: the glue from command-line flags to a finished run.
//!
//! Validates before anything is sent, asks before sending to catalog AWS, connects (SDK or the
//! embedded emulator), sets up the run directory, drives the coordinator, writes the ledger
//! and prints the summary. Exit codes are decided here and only here.

use super::api::ApiClient;
use super::coordinator::{Coordinator, Options, Stop, Summary};
use super::limits::{Limits, RateConfig, DAY};
use super::progress::{fmt_duration, Progress};
use super::sdk::{ConnectOptions, SdkClient};
use crate::cli::{CampaignArgs, EndpointArgs, ResumeArgs, RunArgs};
use crate::exit;
use crate::journal::{self, JournalWriter, Record, RowStatus, RunState, StepState};
use crate::ledger::{self, LedgerRow, LedgerWriter};
use crate::model::QuotaClass;
use crate::plan::{Campaign, RateTarget, RenderContext};
use crate::rundir::{
    digest_file, digest_vars, Connection, Digests, Manifest, RunDir, EMULATOR_STATE_FILE,
    RUN_FORMAT,
};
use serde_json::Map;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The partner account `--emulate` calls as.
pub const EMULATED_ACCOUNT: &str = "123456789012";

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn err(msg: impl std::fmt::Display) {
    eprintln!("error: {msg}");
}

/// `cosell run`.
pub fn run_command(args: RunArgs) -> i32 {
    let mut campaign = match Campaign::load(&args.campaign) {
        Ok(c) => c,
        Err(d) => {
            eprint!("{}", d.render_text());
            return exit::INVALID;
        }
    };
    if let Err(code) = apply_overrides(
        &mut campaign,
        args.connection.concurrency,
        &args.connection.rates,
    ) {
        return code;
    }
    // The whole campaign is validated before the first call: nothing is sent if anything fails.
    let report = campaign.validate();
    if !report.diagnostics.is_empty() {
        // warnings are shown and do not stop the run; errors do
        eprint!("{}", report.diagnostics.render_text());
    }
    if report.diagnostics.has_errors() {
        eprintln!("error: the campaign is invalid; nothing was sent");
        return exit::INVALID;
    }
    let total_rows = report.rows;
    let mut rates = rate_config(&campaign);
    match quota_window(args.connection.quota_window.as_deref()) {
        Ok(w) => rates.window = w,
        Err(e) => {
            err(e);
            return exit::INVALID;
        }
    }
    let wait_for_quota = args.connection.wait_for_quota || campaign.limits().daily_wait;
    let conn = match connection(&args.connection.endpoint, None) {
        Ok(c) => c,
        Err(e) => {
            err(e);
            return exit::INVALID;
        }
    };
    let digests = match current_digests(&campaign, &args.campaign.vars) {
        Ok(d) => d,
        Err(e) => {
            err(e);
            return exit::ENVIRONMENT;
        }
    };
    let mut step_ids: Vec<String> = campaign.setup().iter().map(|s| s.id.clone()).collect();
    step_ids.extend(campaign.steps().iter().map(|s| s.id.clone()));
    let manifest = Manifest {
        format: RUN_FORMAT,
        run_id: format!(
            "{}-{}",
            campaign.name(),
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        playbook_name: campaign.name().to_string(),
        playbook_path: absolute(campaign.playbook_path()),
        input_path: if campaign.is_pending_list() {
            PathBuf::new()
        } else {
            absolute(campaign.input_path())
        },
        input_sheet: campaign.input_sheet().map(str::to_string),
        vars: args.campaign.vars.clone(),
        catalog: campaign.catalog().to_string(),
        digests,
        cosell_version: env!("CARGO_PKG_VERSION").to_string(),
        setup_steps: campaign.setup().len(),
        step_ids,
        ledger_columns: campaign.ledger_column_names(),
        total_rows,
        connection: conn.clone(),
        account: None,
        concurrency: args.connection.concurrency,
        rates: args.connection.rates.clone(),
        wait_for_quota: args.connection.wait_for_quota,
        quota_window: args.connection.quota_window.clone(),
    };
    let campaign = Arc::new(campaign);
    let yes = args.connection.yes;
    let run_dir = args.run_dir.clone();
    let cargs = args.campaign.clone();
    let (concurrency, rate_flags) = (args.connection.concurrency, args.connection.rates.clone());
    runtime().block_on(async move {
        // A rehearsal's emulator keeps its state in the run directory, so the directory comes
        // first; against a real endpoint the account is learnt (and confirmed) first, so that
        // nothing is created for a run that is not confirmed.
        let (mut rundir, link) = if conn.emulate {
            let mut manifest = manifest;
            manifest.account = Some(EMULATED_ACCOUNT.to_string());
            let rundir = match create_rundir(run_dir.as_deref(), &manifest) {
                Ok(r) => r,
                Err(code) => return code,
            };
            let link = match connect(&conn, Some(&rundir), &campaign).await {
                Ok(l) => l,
                Err(code) => return code,
            };
            (rundir, link)
        } else {
            let link = match connect(&conn, None, &campaign).await {
                Ok(l) => l,
                Err(code) => return code,
            };
            let account = match link.client.caller_account().await {
                Ok(a) => Some(a),
                Err(e) if e.kind == super::api::ErrorKind::Config => {
                    err(format!("credentials: {e}; nothing was sent"));
                    return exit::ENVIRONMENT;
                }
                Err(e) if e.code == "ConnectionError" => {
                    err(format!(
                        "cannot reach the endpoint ({e}); nothing was sent. Check \
                         --endpoint-url, the network or the proxy, then run again"
                    ));
                    return exit::ENVIRONMENT;
                }
                Err(e) => {
                    eprintln!(
                        "warning: cannot tell which partner account these credentials belong \
                         to (STS GetCallerIdentity: {e}); resume will not be able to check it"
                    );
                    None
                }
            };
            if let Err(code) = confirm(&campaign, &conn, yes, account.as_deref(), total_rows) {
                return code;
            }
            let mut manifest = manifest;
            manifest.account = account;
            let rundir = match create_rundir(run_dir.as_deref(), &manifest) {
                Ok(r) => r,
                Err(code) => return code,
            };
            (rundir, link)
        };
        let listed = with_rows(
            campaign,
            total_rows,
            &cargs,
            (concurrency, &rate_flags),
            &link.client,
            &rates,
            &mut rundir,
        )
        .await;
        let (campaign, total_rows, prelude) = match listed {
            Ok(x) => x,
            Err(code) => {
                link.close().await;
                return code;
            }
        };
        let journal = match JournalWriter::open(&rundir.journal_path()) {
            Ok(j) => j,
            Err(e) => {
                err(format!(
                    "cannot open the journal {}: {e}",
                    rundir.journal_path().display()
                ));
                return exit::ENVIRONMENT;
            }
        };
        let code = drive(
            campaign,
            rundir,
            journal,
            link.client.clone(),
            rates,
            wait_for_quota,
            total_rows,
            RunState::default(),
            prelude,
        )
        .await;
        link.close().await;
        code
    })
}

fn create_rundir(dir: Option<&Path>, manifest: &Manifest) -> Result<RunDir, i32> {
    // runs/<name>-<UTC timestamp with ms>[-2, -3, …]: made with one mkdir each, never reused,
    // and the run id becomes the directory's name
    let created = match dir {
        Some(dir) => RunDir::create(dir, manifest),
        None => RunDir::create_unique(Path::new("runs"), &manifest.run_id, manifest),
    };
    created.map_err(|e| {
        err(&e);
        // 2: --run-dir already holds a run or other files; 4: the environment
        e.exit_code()
    })
}

/// The connection of a run: the flags, or (on resume) what the run recorded, with flags that
/// name a connection replacing it.
pub(super) fn connection(
    flags: &EndpointArgs,
    recorded: Option<&Connection>,
) -> Result<Connection, String> {
    if let Some(url) = &flags.endpoint_url {
        check_endpoint_url(url)?;
    }
    let named = flags.emulate || flags.endpoint_url.is_some() || flags.profile.is_some();
    let mut c = match recorded {
        Some(r) if !named => r.clone(),
        _ => Connection {
            emulate: flags.emulate,
            endpoint_url: flags.endpoint_url.clone(),
            profile: flags.profile.clone(),
            region: None,
        },
    };
    if let Some(r) = &flags.region {
        c.region = Some(r.clone());
    }
    if c.region.is_none() {
        c.region = Some(DEFAULT_REGION.to_string());
    }
    Ok(c)
}

/// The service answers only in us-east-1.
pub const DEFAULT_REGION: &str = "us-east-1";

/// `--endpoint-url` must be an absolute http(s) URL with a host.
fn check_endpoint_url(url: &str) -> Result<(), String> {
    let fix = "give an absolute URL such as http://127.0.0.1:4566 or https://partnercentral-selling.us-east-1.api.aws";
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("--endpoint-url {url:?} is not a URL ({e}); {fix}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(h)) if !h.is_empty() => Ok(()),
        (Some(s), _) if s != "http" && s != "https" => Err(format!(
            "--endpoint-url {url:?}: the scheme must be http or https, not {s}; {fix}"
        )),
        _ => Err(format!(
            "--endpoint-url {url:?} has no scheme or host; {fix}"
        )),
    }
}

/// A connected client, and the embedded emulator behind it (for `--emulate`).
pub(super) struct Link {
    pub(super) client: Arc<SdkClient>,
    emulator: Option<crate::emulator::EmulatorHandle>,
}

impl Link {
    pub(super) async fn close(self) {
        if let Some(h) = self.emulator {
            let _ = h.shutdown().await;
        }
    }
}

/// Connect to Partner Central, or start the embedded emulator (its state kept in `rundir`)
/// and connect to that.
pub(super) async fn connect(
    conn: &Connection,
    rundir: Option<&RunDir>,
    campaign: &Campaign,
) -> Result<Link, i32> {
    let region = conn.region.clone().unwrap_or_else(|| DEFAULT_REGION.into());
    if !conn.emulate {
        return match SdkClient::connect(&ConnectOptions {
            endpoint_url: conn.endpoint_url.clone(),
            profile: conn.profile.clone(),
            region,
            static_credentials: None,
        })
        .await
        {
            Ok(c) => Ok(Link {
                client: Arc::new(c),
                emulator: None,
            }),
            Err(e) => {
                err(e);
                Err(exit::ENVIRONMENT)
            }
        };
    }
    let config =
        match rehearsal_config(campaign, rundir.map(|r| r.path().join(EMULATOR_STATE_FILE))) {
            Ok(c) => c,
            Err(e) => {
                err(e);
                return Err(exit::INVALID);
            }
        };
    let handle = match crate::emulator::start(
        config,
        "127.0.0.1:0".parse().expect("loopback address"),
    )
    .await
    {
        Ok(h) => h,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            // the playbook's fixture does not fit the API model
            err(format!("emulate: {e}"));
            return Err(exit::INVALID);
        }
        Err(e) => {
            err(format!("cannot start the embedded emulator: {e}"));
            return Err(exit::ENVIRONMENT);
        }
    };
    eprintln!(
        "emulating Partner Central at {} (nothing leaves this machine)",
        handle.url()
    );
    let c = SdkClient::connect(&ConnectOptions {
        endpoint_url: Some(handle.url()),
        profile: None,
        region,
        // the rehearsal's partner account: the AWS documentation's example account
        static_credentials: Some((EMULATED_ACCOUNT.into(), "emulator".into())),
    })
    .await;
    match c {
        Ok(c) => Ok(Link {
            client: Arc::new(c),
            emulator: Some(handle),
        }),
        Err(e) => {
            err(e);
            let _ = handle.shutdown().await;
            Err(exit::ENVIRONMENT)
        }
    }
}

/// The embedded emulator of a rehearsal: documented quotas, the playbook's task delay and
/// fixture, and its state kept in the run directory and written through after every change
/// (a rehearsal killed with `kill -9` resumes against everything the emulator acknowledged).
/// The fixture is loaded after the state, and items that exist are left as they are, so a
/// resumed rehearsal keeps what the run already changed.
fn rehearsal_config(
    campaign: &Campaign,
    state: Option<PathBuf>,
) -> Result<crate::emulator::EmulatorConfig, String> {
    let mut config = crate::emulator::EmulatorConfig {
        persist_every_write: state.is_some(),
        state,
        ..crate::emulator::EmulatorConfig::default()
    };
    if let Some(d) = campaign.rehearsal_task_delay() {
        config.task_delay = d;
    }
    if let Some(v) = campaign.rehearsal_fixture()? {
        let mut f: crate::emulator::Fixture = serde_json::from_value(v)
            .map_err(|e| format!("{}: emulate: {e}", campaign.playbook_path().display()))?;
        // the rehearsal's partner account receives the invitations and owns the opportunities
        f.account
            .get_or_insert_with(|| EMULATED_ACCOUNT.to_string());
        config.fixture = Some(f);
    }
    Ok(config)
}

/// `cosell resume`.
pub fn resume_command(args: ResumeArgs) -> i32 {
    let rundir = match RunDir::open(&args.run_dir) {
        Ok(r) => r,
        Err(e) => {
            err(&e);
            // 2 when the path is not a run directory, 4 when it is a damaged or locked one
            return e.exit_code();
        }
    };
    let m = rundir.manifest().clone();
    let conn = match connection(&args.connection.endpoint, Some(&m.connection)) {
        Ok(c) => c,
        Err(e) => {
            err(e);
            return exit::INVALID;
        }
    };
    if conn.emulate && !rundir.path().join(EMULATOR_STATE_FILE).exists() {
        err(format!(
            "{} has no {EMULATOR_STATE_FILE}: this run was not a rehearsal with --emulate (or \
             the file was deleted), so an emulator would not know what the run already did. \
             Resume against the endpoint the run used instead",
            rundir.path().display()
        ));
        return exit::INVALID;
    }
    let cargs = CampaignArgs {
        playbook: m.playbook_path.clone(),
        // an input.list run killed before its rows were recorded: they are listed (or the
        // file it wrote is taken) again below
        input: (!m.input_path.as_os_str().is_empty()).then(|| m.input_path.clone()),
        sheet: m.input_sheet.clone(),
        vars: m.vars.clone(),
    };
    let mut campaign = match Campaign::load(&cargs) {
        Ok(c) => c,
        Err(d) => {
            eprint!("{}", d.render_text());
            return exit::INVALID;
        }
    };
    // the run's own --concurrency and --rate hold on resume, unless it is given its own
    let concurrency = args.connection.concurrency.or(m.concurrency);
    let rate_flags = if args.connection.rates.is_empty() {
        m.rates.clone()
    } else {
        args.connection.rates.clone()
    };
    if let Err(code) = apply_overrides(&mut campaign, concurrency, &rate_flags) {
        return code;
    }
    let window = match quota_window(
        args.connection
            .quota_window
            .as_deref()
            .or(m.quota_window.as_deref()),
    ) {
        Ok(w) => w,
        Err(e) => {
            err(e);
            return exit::INVALID;
        }
    };
    let wait_for_quota =
        args.connection.wait_for_quota || m.wait_for_quota || campaign.limits().daily_wait;
    // Digesting the input and reading the journal are the two long reads of a large run:
    // they go side by side. One pass over the journal positions the writer after its last
    // good record (a torn tail is cut) and keeps the records for the replay and the budgets.
    let journal_path = rundir.journal_path();
    let (digests, journal_read) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            // the journal streams into the replayed state; only the last day's call times
            // are kept (for the rolling daily budgets)
            let mut recent = DailySeeds::new(&campaign, window);
            let lean = RunState {
                lean: true,
                ..RunState::default()
            };
            let r = JournalWriter::open_and_replay_visiting(&journal_path, lean, |rec| {
                recent.visit(rec)
            });
            r.map(|(writer, state, _torn)| (writer, state, recent.finish()))
        });
        let digests = current_digests(&campaign, &m.vars);
        (digests, reader.join().expect("journal reader thread"))
    });
    let digests = match digests {
        Ok(d) => d,
        Err(e) => {
            err(e);
            return exit::ENVIRONMENT;
        }
    };
    let drift = rundir.drift(&digests);
    if !drift.is_empty() {
        if !args.force {
            for d in &drift {
                eprintln!("error: {d}");
            }
            eprintln!(
                "error: the run's inputs changed since it started; resuming could send requests \
                 the first part of the run did not plan. Restore them, or pass --force to resume \
                 with the new ones (they are validated again first)."
            );
            return exit::INVALID;
        }
        for d in &drift {
            eprintln!("warning: {d} (--force)");
        }
    }
    // Unchanged inputs were validated when the run started; changed ones are validated again.
    let total_rows = if drift.is_empty() && m.total_rows > 0 {
        m.total_rows
    } else if campaign.is_pending_list() {
        0
    } else if drift.is_empty() {
        match count_rows(campaign.input()) {
            Ok(n) => n,
            Err(e) => {
                err(e);
                return exit::ENVIRONMENT;
            }
        }
    } else {
        let report = campaign.validate();
        if !report.diagnostics.is_empty() {
            eprint!("{}", report.diagnostics.render_text());
        }
        if report.diagnostics.has_errors() {
            eprintln!("error: the changed campaign is invalid; nothing was sent");
            return exit::INVALID;
        }
        report.rows
    };
    let (journal, mut prior, seeds) = match journal_read {
        Ok(x) => x,
        Err(e) => {
            err(e);
            return exit::ENVIRONMENT;
        }
    };
    let mut rates = rate_config(&campaign);
    rates.window = window;
    let mut prelude = Prelude {
        seeds,
        records: Vec::new(),
    };
    if args.retry_failed {
        // journaled, so that a later resume sees the same rows pending
        let redrive = Record::RetryFailedRows { at: now() };
        prior.apply(&redrive);
        prelude.records.push(redrive);
    }
    let campaign = Arc::new(campaign);
    let mut rundir = rundir;
    runtime().block_on(async move {
        let link = match connect(&conn, Some(&rundir), &campaign).await {
            Ok(l) => l,
            Err(code) => return code,
        };
        // the credentials must be the run's partner account: another account's resources
        // are not this run's, and its ClientTokens would create everything again there
        if let (Some(recorded), false) = (&m.account, conn.emulate) {
            match link.client.caller_account().await {
                Ok(a) if &a == recorded => {}
                Ok(a) => {
                    err(format!(
                        "these credentials belong to partner account {a}, but the run was                          started as {recorded}; nothing was sent. Use the credentials (or                          --profile) of account {recorded}"
                    ));
                    link.close().await;
                    return exit::INVALID;
                }
                Err(e) => {
                    err(format!(
                        "cannot confirm that these credentials belong to the run's partner                          account {recorded} (STS GetCallerIdentity: {e}); nothing was sent"
                    ));
                    link.close().await;
                    return exit::ENVIRONMENT;
                }
            }
        }
        let listed = with_rows(
            campaign,
            total_rows,
            &cargs,
            (concurrency, &rate_flags),
            &link.client,
            &rates,
            &mut rundir,
        )
        .await;
        let (campaign, total_rows) = match listed {
            Ok((c, n, p)) => {
                prelude.records.extend(p.records);
                prelude.seeds.extend(p.seeds);
                (c, n)
            }
            Err(code) => {
                link.close().await;
                return code;
            }
        };
        let code = drive(
            campaign,
            rundir,
            journal,
            link.client.clone(),
            rates,
            wait_for_quota,
            total_rows,
            prior,
            prelude,
        )
        .await;
        link.close().await;
        code
    })
}

/// Records to append before the run starts, plus daily-budget seeds.
#[derive(Default)]
struct Prelude {
    records: Vec<Record>,
    seeds: Vec<(QuotaClass, SystemTime)>,
}

/// Calls sent in the last 24 hours by earlier processes of this run count against the
/// rolling daily budgets: collected while the journal streams by. A format-2 journal has a
/// `Call` record per request sent (polls and retries included: what the service counted);
/// an older one only `StepStarted`, which stands in for its call.
struct DailySeeds {
    action: HashMap<String, String>,
    horizon: SystemTime,
    /// Journal times are RFC 3339 UTC with milliseconds, so they order as strings: only the
    /// last day's records are parsed.
    horizon_text: String,
    seeds: Vec<(QuotaClass, SystemTime)>,
    /// From `StepStarted` records (used when the journal has no `Call` record).
    started: Vec<(QuotaClass, SystemTime)>,
    calls_seen: bool,
}

impl DailySeeds {
    fn new(campaign: &Campaign, window: Duration) -> Self {
        let horizon = SystemTime::now() - window;
        DailySeeds {
            action: campaign
                .setup()
                .iter()
                .chain(campaign.steps())
                .map(|s| (s.id.clone(), s.action.clone()))
                .collect(),
            horizon,
            horizon_text: chrono::DateTime::<chrono::Utc>::from(horizon)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            seeds: Vec::new(),
            started: Vec::new(),
            calls_seen: false,
        }
    }

    fn visit(&mut self, rec: &Record) {
        let (op, at, calls) = match rec {
            Record::Call { op, at, .. } => {
                self.calls_seen = true;
                (op.as_str(), at, true)
            }
            Record::StepStarted { step, at, .. } if !self.calls_seen => {
                match self.action.get(step) {
                    Some(op) => (op.as_str(), at, false),
                    None => return,
                }
            }
            _ => return,
        };
        if at.as_str() <= self.horizon_text.as_str() {
            return;
        }
        let Ok(t) = chrono::DateTime::parse_from_rfc3339(at) else {
            return;
        };
        let t: SystemTime = t.into();
        if t > self.horizon {
            let into = if calls {
                &mut self.seeds
            } else {
                &mut self.started
            };
            into.push((QuotaClass::of(op), t));
        }
    }

    /// The calls to count: the `Call` records, or for an older journal its started steps.
    fn finish(mut self) -> Vec<(QuotaClass, SystemTime)> {
        if self.calls_seen {
            self.seeds
        } else {
            std::mem::take(&mut self.started)
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn current_digests(campaign: &Campaign, vars: &[String]) -> Result<Digests, String> {
    let file = |p: &Path| {
        if p.as_os_str().is_empty() && campaign.is_pending_list() {
            // input.list before its rows are listed: nothing to digest yet
            return Ok(String::new());
        }
        digest_file(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    Ok(Digests {
        playbook: file(campaign.playbook_path())?,
        input: file(campaign.input_path())?,
        vars: digest_vars(vars),
    })
}

/// Data records in the input (header excluded).
fn count_rows(input: &crate::input::Source) -> Result<u64, String> {
    if input.is_workbook() {
        return input.record_lines().map(|l| l.len() as u64);
    }
    let path = input.path.as_path();
    if crate::input::listed::is_listed(path) {
        return crate::input::listed::count(path)
            .ok_or_else(|| format!("cannot read {}", path.display()));
    }
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut rec = csv::ByteRecord::new();
    let mut n = 0;
    while r
        .read_byte_record(&mut rec)
        .map_err(|e| format!("{}: {e}", path.display()))?
    {
        n += 1;
    }
    Ok(n)
}

/// `--quota-window DURATION` (default 24 h).
fn quota_window(flag: Option<&str>) -> Result<Duration, String> {
    match flag {
        None => Ok(DAY),
        Some(f) => crate::playbook::parse_duration(f.trim())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                format!("--quota-window {f:?} is not a duration such as 24h, 90m or 20s")
            }),
    }
}

/// `--concurrency` and `--rate`, checked like the playbook's limits (located at the flag)
/// and made the campaign's limits: from here on the campaign is the one source of truth.
/// The campaign with its rows. For `input.list` rows not listed yet: list them into the run
/// directory's `rows.jsonl` (unless an earlier process of the run did: then those rows stay),
/// load the campaign on them, validate every row (nothing but the listing's reads is sent if
/// a row is invalid), and record the rows' file, digest and count in `run.json`. Returns the
/// campaign, its row count and the listing's calls to journal; any other campaign as it is.
async fn with_rows(
    campaign: Arc<Campaign>,
    total_rows: u64,
    cargs: &CampaignArgs,
    overrides: (Option<usize>, &[String]),
    client: &SdkClient,
    rates: &RateConfig,
    rundir: &mut RunDir,
) -> Result<(Arc<Campaign>, u64, Prelude), i32> {
    if !campaign.is_pending_list() {
        return Ok((campaign, total_rows, Prelude::default()));
    }
    let path = rundir.path().join(crate::input::listed::LISTED_FILE);
    let action = campaign
        .list_input()
        .map(|l| l.action.clone())
        .unwrap_or_default();
    let limits = Limits::new(rates.clone());
    let mut prelude = Prelude::default();
    match super::listing::list_rows(client, &limits, &campaign, &path).await {
        Ok(Some(l)) => {
            let class = QuotaClass::of(&action);
            for (i, (left, took, code)) in l.attempts.iter().enumerate() {
                prelude.seeds.push((class, *left));
                prelude.records.push(Record::Call {
                    op: action.clone(),
                    at: chrono::DateTime::<chrono::Utc>::from(*left)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    ms: took.as_millis() as u64,
                    attempt: i as u32 + 1,
                    code: code.clone(),
                });
            }
            eprintln!(
                "listed {} row{} with {action} ({} page{}, {} item{} read)",
                l.kept,
                if l.kept == 1 { "" } else { "s" },
                l.pages,
                if l.pages == 1 { "" } else { "s" },
                l.items,
                if l.items == 1 { "" } else { "s" },
            );
        }
        Ok(None) => eprintln!(
            "the rows listed when the run started are in {}",
            path.display()
        ),
        Err(e) => {
            err(format!(
                "{e}; no row was started. Resume the run to list again: {}",
                resume_hint(rundir.path(), false)
            ));
            return Err(match e {
                super::listing::ListFailure::Filter { .. } => exit::INVALID,
                _ => exit::ENVIRONMENT,
            });
        }
    }
    let args = CampaignArgs {
        playbook: cargs.playbook.clone(),
        input: Some(path.clone()),
        sheet: None,
        vars: cargs.vars.clone(),
    };
    let mut listed = match Campaign::load(&args) {
        Ok(c) => c,
        Err(d) => {
            eprint!("{}", d.render_text());
            return Err(exit::INVALID);
        }
    };
    if let Err(d) = listed.apply_overrides(overrides.0, overrides.1) {
        eprint!("{}", d.render_text());
        return Err(exit::INVALID);
    }
    let report = listed.validate();
    if report.diagnostics.has_errors() {
        eprint!("{}", report.diagnostics.render_text());
        eprintln!(
            "error: the listed rows make an invalid campaign; nothing but the listing was sent"
        );
        return Err(exit::INVALID);
    }
    let digest = match digest_file(&path) {
        Ok(d) => d,
        Err(e) => {
            err(format!("cannot read {}: {e}", path.display()));
            return Err(exit::ENVIRONMENT);
        }
    };
    let rows = report.rows;
    if let Err(e) = rundir.update_manifest(|m| {
        m.input_path = absolute(&path);
        m.digests.input = digest;
        m.total_rows = rows;
    }) {
        err(format!("cannot update {}: {e}", rundir.path().display()));
        return Err(exit::ENVIRONMENT);
    }
    Ok((Arc::new(listed), rows, prelude))
}

fn apply_overrides(
    campaign: &mut Campaign,
    concurrency: Option<usize>,
    rates: &[String],
) -> Result<(), i32> {
    match campaign.apply_overrides(concurrency, rates) {
        Ok(warnings) => {
            eprint!("{}", warnings.render_text());
            Ok(())
        }
        Err(d) => {
            eprint!("{}", d.render_text());
            Err(exit::INVALID)
        }
    }
}

/// The campaign's limits (documented quotas, then `limits.rates`/`limits.daily`, then the
/// flags) as the engine's limiter configuration.
pub(super) fn rate_config(campaign: &Campaign) -> RateConfig {
    let mut cfg = RateConfig::default();
    let limits = campaign.limits();
    for (target, rate) in &limits.rates {
        match target {
            RateTarget::Class(c) => cfg.set(c.name(), *rate),
            RateTarget::Operation(op) => cfg.set(op, *rate),
        }
    }
    for (class, n) in &limits.daily {
        cfg.daily.insert(*class, *n);
    }
    cfg
}

/// Calls per row per class, for ETA and the lower bound.
pub(super) fn per_row_calls(campaign: &Campaign) -> BTreeMap<QuotaClass, f64> {
    let mut m = BTreeMap::new();
    for s in campaign.steps() {
        *m.entry(QuotaClass::of(&s.action)).or_insert(0.0) += 1.0;
        if let Some(u) = s.patch() {
            // the read before the update
            *m.entry(QuotaClass::of(u.get)).or_insert(0.0) += 1.0;
        }
        if let (Some(_), Some(w)) = (s.wait, crate::model::ops::waiter(&s.action)) {
            // at least one poll per batch (ten tasks for a List…Tasks, one for a Get)
            *m.entry(QuotaClass::of(w.poll)).or_insert(0.0) += 1.0 / w.batch as f64;
        }
    }
    m
}

/// Against catalog AWS through a real endpoint, show what will be sent, to which account,
/// and ask.
fn confirm(
    campaign: &Campaign,
    conn: &Connection,
    yes: bool,
    account: Option<&str>,
    rows: u64,
) -> Result<(), i32> {
    if campaign.catalog() != "AWS" || conn.emulate || yes {
        return Ok(());
    }
    eprint!(
        "{}",
        crate::plan::summary::summarize(campaign, rows).render_text()
    );
    let who = match account {
        Some(a) => format!("partner account {a}"),
        None => "the credentials' partner account (STS could not tell which)".to_string(),
    };
    let profile = match &conn.profile {
        Some(p) => format!("profile {p}"),
        None => match std::env::var("AWS_PROFILE") {
            Ok(p) if !p.is_empty() => format!("profile {p} (AWS_PROFILE)"),
            _ => "the default credential chain".to_string(),
        },
    };
    eprintln!(
        "This run sends the requests above to catalog AWS (live Partner Central data) as \
         {who}, with {profile}."
    );
    if !std::io::stdin().is_terminal() {
        err("catalog AWS needs confirmation: run from a terminal, or pass --yes");
        return Err(exit::INVALID);
    }
    eprint!("Proceed? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        err("not confirmed; nothing was sent");
        Err(exit::INVALID)
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive<C: ApiClient>(
    campaign: Arc<Campaign>,
    rundir: RunDir,
    mut journal: JournalWriter,
    client: Arc<C>,
    rates: RateConfig,
    wait_for_quota: bool,
    total_rows: u64,
    prior: RunState,
    prelude: Prelude,
) -> i32 {
    let journal_path = rundir.journal_path();
    if journal.is_empty() {
        let header = Record::Header {
            format: journal::JOURNAL_FORMAT,
            run_id: rundir.manifest().run_id.clone(),
        };
        if let Err(e) = journal.append(&header) {
            err(format!("cannot write the journal: {e}"));
            return exit::ENVIRONMENT;
        }
    }
    let limits = Arc::new(Limits::new(rates));
    for (c, t) in &prelude.seeds {
        limits.seed_daily(*c, *t);
    }
    for r in &prelude.records {
        if let Err(e) = journal.append(r) {
            err(format!("cannot write the journal: {e}"));
            return exit::ENVIRONMENT;
        }
    }
    let limits_cfg = campaign.limits();
    let concurrency = limits_cfg.concurrency;
    let mut opts = Options::new(concurrency, limits_cfg.max_failures, total_rows);
    opts.wait_for_quota = wait_for_quota;
    // poll as often as the most eager `wait` step asks
    if let Some(p) = campaign
        .setup()
        .iter()
        .chain(campaign.steps())
        .filter(|s| s.wait.is_some())
        .map(|s| s.poll_interval)
        .min()
    {
        opts.poll_interval = p;
    }
    let per_row = per_row_calls(&campaign);
    let class_rates: BTreeMap<QuotaClass, f64> = QuotaClass::ALL
        .iter()
        .map(|c| (*c, limits.config().class_rate(*c)))
        .collect();
    let progress = Progress::new(total_rows, per_row.clone(), class_rates.clone(), true);
    let coordinator = Coordinator::new(
        campaign.clone(),
        client,
        limits.clone(),
        journal,
        journal_path.display().to_string(),
        opts,
        progress,
    );
    // the requests sent before the coordinator (listing the rows of input.list) are this
    // process's calls too
    let mut before: BTreeMap<String, u64> = BTreeMap::new();
    for r in &prelude.records {
        if let Record::Call { op, .. } = r {
            *before.entry(op.clone()).or_default() += 1;
        }
    }
    let summary = match coordinator.run(prior).await {
        Ok(mut s) => {
            for (op, n) in before {
                *s.calls_per_class.entry(QuotaClass::of(&op)).or_default() += n;
                *s.calls.entry(op).or_default() += n;
            }
            s
        }
        Err(e) => {
            err(&e);
            return match e {
                super::coordinator::EngineError::Input(_) => exit::INVALID,
                _ => exit::ENVIRONMENT,
            };
        }
    };
    if summary.stop == Some(Stop::Aborted) {
        eprintln!(
            "aborted; the journal is consistent. Resume with:\n  {}",
            resume_hint(rundir.path(), false)
        );
        return exit::INTERRUPTED;
    }
    let ledger = match write_ledger(&campaign, &rundir) {
        Ok(l) => l,
        Err(e) => {
            err(format!("cannot write the ledger: {e}"));
            return exit::ENVIRONMENT;
        }
    };
    // the run report, after the ledger; it failing fails nothing
    let report = crate::report::write(&rundir, Some(&campaign))
        .map_err(|e| eprintln!("warning: cannot write the run report: {e}"))
        .ok();
    print_summary(
        &campaign,
        &rundir,
        &summary,
        limits.config(),
        &ledger,
        report.as_deref(),
    );
    match &summary.stop {
        Some(Stop::Interrupted) => exit::INTERRUPTED,
        Some(Stop::Environment { .. }) => exit::ENVIRONMENT,
        Some(Stop::MaxFailures { .. }) | Some(Stop::Daily(_)) => exit::STOPPED,
        Some(Stop::SetupFailed { .. }) => exit::ROWS_FAILED,
        Some(Stop::Aborted) => exit::INTERRUPTED,
        None if ledger.failed > 0 => exit::ROWS_FAILED,
        None => exit::OK,
    }
}

/// What the ledger says of the whole run (this process and earlier ones).
#[derive(Debug, Default)]
pub struct LedgerCounts {
    pub csv: PathBuf,
    /// Each succeeded setup step and the id it produced (the engagement of the campaign).
    pub setup: Vec<(String, String)>,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub in_flight: u64,
    pub pending: u64,
}

/// Rebuild the ledger from the journal: one line per input row, in input order.
pub fn write_ledger(campaign: &Campaign, rundir: &RunDir) -> Result<LedgerCounts, String> {
    let (state, _torn) =
        journal::read_and_replay(&rundir.journal_path()).map_err(|e| e.to_string())?;
    let mut setup = Map::new();
    let mut setup_ids = Vec::new();
    for s in campaign.setup() {
        if let Some(StepState::Succeeded { output }) = state.setup.steps.get(&s.id) {
            setup.insert(s.id.clone(), output.clone());
            if let Some(id) = crate::ledger::id_of(output) {
                setup_ids.push((s.id.clone(), id));
            }
        }
    }
    let step_ids: Vec<String> = campaign.steps().iter().map(|s| s.id.clone()).collect();
    let layout = ledger::Layout {
        setup_ids: campaign
            .setup()
            .iter()
            .filter(|s| ledger::setup_step_has_id_column(&s.action))
            .map(|s| {
                let id = setup.get(&s.id).and_then(ledger::id_of).unwrap_or_default();
                (s.id.clone(), id)
            })
            .collect(),
        id_steps: campaign
            .steps()
            .iter()
            .filter(|s| ledger::row_step_has_id_column(&s.action))
            .map(|s| s.id.clone())
            .collect(),
        columns: campaign.ledger_column_names(),
        patch_steps: campaign
            .steps()
            .iter()
            .filter(|s| s.patch().is_some())
            .map(|s| s.id.clone())
            .collect(),
    };
    let mut writer = LedgerWriter::create(rundir.path(), layout).map_err(|e| e.to_string())?;
    let mut counts = LedgerCounts {
        csv: rundir.path().join("ledger.csv"),
        setup: setup_ids,
        ..LedgerCounts::default()
    };
    let rows = campaign.rows().map_err(|d| d.render_text())?;
    for row in rows {
        let row = row.map_err(|d| d.to_string())?;
        let rs = state.rows.get(&row.index);
        let n = match rs.map(|r| r.status) {
            Some(Some(RowStatus::Succeeded)) => &mut counts.succeeded,
            Some(Some(RowStatus::Failed)) => &mut counts.failed,
            Some(Some(RowStatus::Skipped)) => &mut counts.skipped,
            Some(None) => &mut counts.in_flight,
            None => &mut counts.pending,
        };
        *n += 1;
        let columns = {
            let mut outputs = Map::new();
            if let Some(rs) = rs {
                for (id, st) in &rs.steps {
                    if let StepState::Succeeded { output } = st {
                        outputs.insert(id.clone(), output.clone());
                    }
                }
            }
            campaign.ledger_columns(&RenderContext {
                row: Some(&row),
                setup: &setup,
                steps: &outputs,
            })
        };
        let lr = LedgerRow::from_state(row.line, row.key.clone(), rs, &step_ids, columns);
        writer.write(&lr).map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())?;
    Ok(counts)
}

/// The command that continues a run, ready to paste: the run directory records how it
/// connects, so nothing else is needed.
pub fn resume_hint(dir: &Path, retry_failed: bool) -> String {
    let d = dir.display().to_string();
    let safe = !d.is_empty()
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@%,".contains(&b));
    let quoted = if safe {
        d
    } else {
        format!("'{}'", d.replace('\'', "'\\''"))
    };
    if retry_failed {
        format!("cosell resume {quoted} --retry-failed")
    } else {
        format!("cosell resume {quoted}")
    }
}

/// The quota lower bound of what this process sent. n calls of a class evenly spaced at its
/// rate need (n - 1) / rate from the first to the last; when n is more than the class's
/// rolling budget B allows in one window W, every B calls cost a whole window, so
/// floor((n - 1) / B) × W + ((n - 1) mod B) / rate. The last task still takes its time after
/// its Start answered (the shortest task wait observed stands for it).
pub fn quota_bound(s: &Summary, cfg: &RateConfig) -> Duration {
    let pacing = s
        .calls_per_class
        .iter()
        .map(|(c, n)| {
            let gaps = n.saturating_sub(1);
            let rate = cfg.class_rate(*c);
            match cfg.daily.get(c).copied().filter(|b| *b > 0 && gaps >= *b) {
                Some(b) => (gaps / b) as f64 * cfg.window.as_secs_f64() + (gaps % b) as f64 / rate,
                None => gaps as f64 / rate,
            }
        })
        .fold(0.0, f64::max);
    Duration::from_secs_f64(pacing) + s.min_task_wait.unwrap_or_default()
}

fn print_summary(
    campaign: &Campaign,
    rundir: &RunDir,
    s: &Summary,
    rates: &RateConfig,
    ledger: &LedgerCounts,
    report: Option<&Path>,
) {
    let bound = quota_bound(s, rates);
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(out, "run {} ({})", campaign.name(), rundir.path().display());
    for (id, output) in &ledger.setup {
        let _ = writeln!(out, "setup     {id}: {output}");
    }
    let _ = writeln!(
        out,
        "rows      {} succeeded, {} failed, {} skipped, {} not run ({} finished by this process)",
        ledger.succeeded,
        ledger.failed,
        ledger.skipped,
        ledger.pending + ledger.in_flight,
        s.succeeded + s.failed + s.skipped
    );
    let _ = writeln!(out, "calls sent");
    for (op, n) in &s.calls {
        let _ = writeln!(out, "  {op:<44} {n:>7}  ({})", QuotaClass::of(op));
    }
    let _ = writeln!(out, "throttled {}   retries {}", s.throttles, s.retries);
    if s.patched + s.unchanged > 0 {
        let _ = writeln!(
            out,
            "patched   {} updated, {} unchanged (nothing sent), {} conflicts re-read and \
             re-applied",
            s.patched, s.unchanged, s.conflicts
        );
    }
    if s.already_in_place > 0 {
        let _ = writeln!(
            out,
            "already in place {} (writes without a ClientToken whose retry met their own earlier \
             effect; the ledger's notes column names them)",
            s.already_in_place
        );
    }
    let ratio = if bound.as_secs_f64() > 0.0 {
        format!(
            " ({:.2}× the bound)",
            s.elapsed.as_secs_f64() / bound.as_secs_f64()
        )
    } else {
        String::new()
    };
    let mut waits = match s.min_task_wait {
        Some(w) => format!(", the last task's {} wait included", fmt_duration(w)),
        None => String::new(),
    };
    if !s.quota_waits.is_empty() {
        let waited: Duration = s
            .quota_waits
            .iter()
            .map(|(_, from, until)| until.duration_since(*from).unwrap_or_default())
            .sum();
        waits.push_str(&format!(
            "; waited {} for rolling windows ({} waits)",
            fmt_duration(waited),
            s.quota_waits.len()
        ));
    }
    let _ = writeln!(
        out,
        "elapsed   {} against a quota lower bound of {}{waits}{ratio}",
        fmt_duration(s.elapsed),
        fmt_duration(bound)
    );
    let _ = writeln!(out, "ledger    {}", ledger.csv.display());
    let _ = writeln!(
        out,
        "workbook  {}",
        ledger.csv.with_file_name(ledger::XLSX_FILE).display()
    );
    if let Some(p) = report {
        let _ = writeln!(out, "report    {}", p.display());
    }
    print!("{out}");
    let resume = resume_hint(rundir.path(), false);
    let redrive = resume_hint(rundir.path(), true);
    match &s.stop {
        Some(Stop::Interrupted) => {
            eprintln!("interrupted; calls in flight were journaled. Resume with:\n  {resume}")
        }
        Some(Stop::Environment { code, message }) => eprintln!(
            "stopped: {code}: {message}\nNo row was failed for it. Fix the credentials, \
             configuration or network, then resume with:\n  {resume}"
        ),
        Some(Stop::MaxFailures { failed, allowed }) => eprintln!(
            "stopped: {failed} rows failed, more than limits.max_failures allows ({allowed}). \
             Fix the cause (see the ledger), then:\n  {redrive}"
        ),
        Some(Stop::Daily(d)) => {
            let at: chrono::DateTime<chrono::Utc> = d.resume_at.into();
            eprintln!(
                "stopped: the rolling 24-hour quota of the {} class ({} calls) is used up; \
                 one more call fits at {}. Resume then with:\n  {resume}",
                d.class,
                d.limit,
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        }
        Some(Stop::SetupFailed { step, error }) => eprintln!(
            "setup step {step} failed: {error}. No row was run. Fix it, then:\n  {redrive}"
        ),
        _ if ledger.failed > 0 => eprintln!(
            "{} rows failed (see the ledger). To run only them again:\n  {redrive}",
            ledger.failed
        ),
        _ => {}
    }
}
