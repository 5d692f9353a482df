//! `cosell run` and `cosell resume`: the glue from command-line flags to a finished run.
//!
//! Validates before anything is sent, asks before sending to catalog AWS, connects (SDK or the
//! embedded emulator), sets up the run directory, drives the coordinator, writes the ledger
//! and prints the summary. Exit codes are decided here and only here.

use super::api::ApiClient;
use super::coordinator::{poll_operation, Coordinator, Options, Stop, Summary};
use super::limits::{Limits, RateConfig, DAY};
use super::progress::{fmt_duration, Progress};
use super::sdk::{ConnectOptions, SdkClient};
use crate::cli::{CampaignArgs, ConnectionArgs, ResumeArgs, RunArgs};
use crate::exit;
use crate::journal::{self, JournalWriter, Record, RowStatus, RunState, StepState};
use crate::ledger::{LedgerRow, LedgerWriter};
use crate::model::QuotaClass;
use crate::plan::{Campaign, RateTarget, RenderContext};
use crate::rundir::{digest_file, digest_vars, Digests, Manifest, RunDir, RUN_FORMAT};
use serde_json::Map;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The partner account `--emulate` calls as.
pub const EMULATED_ACCOUNT: &str = "123456789012";

fn runtime() -> tokio::runtime::Runtime {
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
    let campaign = match Campaign::load(&args.campaign) {
        Ok(c) => c,
        Err(d) => {
            eprint!("{}", d.render_text());
            return exit::INVALID;
        }
    };
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
    let rates = match rate_config(&campaign, &args.connection) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return exit::INVALID;
        }
    };
    if let Err(code) = confirm(&campaign, &args.connection, total_rows) {
        return code;
    }
    let dir = args.run_dir.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "{}-{}",
            campaign.name(),
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    });
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
        input_path: absolute(campaign.input_path()),
        vars: args.campaign.vars.clone(),
        catalog: campaign.catalog().to_string(),
        digests,
        cosell_version: env!("CARGO_PKG_VERSION").to_string(),
        setup_steps: campaign.setup().len(),
        step_ids,
        ledger_columns: campaign.ledger_column_names(),
        total_rows,
    };
    let rundir = match RunDir::create(&dir, &manifest) {
        Ok(r) => r,
        Err(e) => {
            err(e);
            return exit::ENVIRONMENT;
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
    let campaign = Arc::new(campaign);
    execute(
        campaign,
        rundir,
        journal,
        &args.connection,
        rates,
        total_rows,
        RunState::default(),
        Prelude::default(),
    )
}

/// `cosell resume`.
pub fn resume_command(args: ResumeArgs) -> i32 {
    let rundir = match RunDir::open(&args.run_dir) {
        Ok(r) => r,
        Err(e) => {
            err(e);
            return exit::ENVIRONMENT;
        }
    };
    let m = rundir.manifest().clone();
    let cargs = CampaignArgs {
        playbook: m.playbook_path.clone(),
        input: Some(m.input_path.clone()),
        vars: m.vars.clone(),
    };
    let campaign = match Campaign::load(&cargs) {
        Ok(c) => c,
        Err(d) => {
            eprint!("{}", d.render_text());
            return exit::INVALID;
        }
    };
    // Digesting the input and reading the journal are the two long reads of a large run:
    // they go side by side. One pass over the journal positions the writer after its last
    // good record (a torn tail is cut) and keeps the records for the replay and the budgets.
    let journal_path = rundir.journal_path();
    let (digests, journal_read) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            // the journal streams into the replayed state; only the last day's call times
            // are kept (for the rolling daily budgets)
            let mut recent = DailySeeds::new(&campaign);
            let lean = RunState {
                lean: true,
                ..RunState::default()
            };
            let r = JournalWriter::open_and_replay_visiting(&journal_path, lean, |rec| {
                recent.visit(rec)
            });
            r.map(|(writer, state, _torn)| (writer, state, recent.seeds))
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
    } else if drift.is_empty() {
        match count_rows(campaign.input_path()) {
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
    let rates = match rate_config(&campaign, &args.connection) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return exit::INVALID;
        }
    };
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
    execute(
        Arc::new(campaign),
        rundir,
        journal,
        &args.connection,
        rates,
        total_rows,
        prior,
        prelude,
    )
}

/// Records to append before the run starts, plus daily-budget seeds.
#[derive(Default)]
struct Prelude {
    records: Vec<Record>,
    seeds: Vec<(QuotaClass, SystemTime)>,
}

/// Calls started in the last 24 hours by earlier processes of this run count against the
/// rolling daily budgets: collected while the journal streams by.
struct DailySeeds {
    action: HashMap<String, String>,
    horizon: SystemTime,
    /// Journal times are RFC 3339 UTC with milliseconds, so they order as strings: only the
    /// last day's records are parsed.
    horizon_text: String,
    seeds: Vec<(QuotaClass, SystemTime)>,
}

impl DailySeeds {
    fn new(campaign: &Campaign) -> Self {
        let horizon = SystemTime::now() - DAY;
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
        }
    }

    fn visit(&mut self, rec: &Record) {
        if let Record::StepStarted { step, at, .. } = rec {
            if at.as_str() <= self.horizon_text.as_str() {
                return;
            }
            let (Some(op), Ok(t)) = (
                self.action.get(step),
                chrono::DateTime::parse_from_rfc3339(at),
            ) else {
                return;
            };
            let t: SystemTime = t.into();
            if t > self.horizon {
                self.seeds.push((QuotaClass::of(op), t));
            }
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
    let file = |p: &Path| digest_file(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    Ok(Digests {
        playbook: file(campaign.playbook_path())?,
        input: file(campaign.input_path())?,
        vars: digest_vars(vars),
    })
}

/// Data records in a CSV (header excluded).
fn count_rows(path: &Path) -> Result<u64, String> {
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

/// Documented quotas, then the playbook's `limits.rates`/`limits.daily`, then `--rate`.
fn rate_config(campaign: &Campaign, conn: &ConnectionArgs) -> Result<RateConfig, String> {
    let mut cfg = RateConfig::default();
    // `--concurrency` and `--rate` are checked like the playbook's limits, by the plan module
    let (limits, warnings) = campaign
        .limits_with_overrides(conn.concurrency, &conn.rates)
        .map_err(|d| d.render_text().trim_end().to_string())?;
    eprint!("{}", warnings.render_text());
    for (target, rate) in &limits.rates {
        match target {
            RateTarget::Class(c) => cfg.set(c.name(), *rate),
            RateTarget::Operation(op) => cfg.set(op, *rate),
        }
    }
    for (class, n) in &limits.daily {
        cfg.daily.insert(*class, *n);
    }
    Ok(cfg)
}

/// Calls per row per class, for ETA and the lower bound.
fn per_row_calls(campaign: &Campaign) -> BTreeMap<QuotaClass, f64> {
    let mut m = BTreeMap::new();
    for s in campaign.steps() {
        *m.entry(QuotaClass::of(&s.action)).or_insert(0.0) += 1.0;
        if let (Some(_), Some(list)) = (s.wait, poll_operation(&s.action)) {
            // at least one poll per ten tasks
            *m.entry(QuotaClass::of(list)).or_insert(0.0) += 0.1;
        }
    }
    m
}

/// Against catalog AWS through a real endpoint, show what will be sent and ask.
fn confirm(campaign: &Campaign, conn: &ConnectionArgs, rows: u64) -> Result<(), i32> {
    if campaign.catalog() != "AWS" || conn.emulate || conn.yes {
        return Ok(());
    }
    eprint!(
        "{}",
        crate::plan::summary::summarize(campaign, rows).render_text()
    );
    eprintln!(
        "This run sends the requests above to catalog AWS (live Partner Central data) as \
         the configured credentials' partner account."
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
fn execute(
    campaign: Arc<Campaign>,
    rundir: RunDir,
    journal: JournalWriter,
    conn: &ConnectionArgs,
    rates: RateConfig,
    total_rows: u64,
    prior: RunState,
    prelude: Prelude,
) -> i32 {
    let rt = runtime();
    rt.block_on(async move {
        let mut emulator = None;
        let client = if conn.emulate {
            let handle = match crate::emulator::start(
                crate::emulator::EmulatorConfig::default(),
                "127.0.0.1:0".parse().expect("loopback address"),
            )
            .await
            {
                Ok(h) => h,
                Err(e) => {
                    err(format!("cannot start the embedded emulator: {e}"));
                    return exit::ENVIRONMENT;
                }
            };
            eprintln!(
                "emulating Partner Central at {} (nothing leaves this machine)",
                handle.url()
            );
            let c = SdkClient::connect(&ConnectOptions {
                endpoint_url: Some(handle.url()),
                profile: None,
                region: conn.region.clone(),
                // the rehearsal's sender: the AWS documentation's example account
                static_credentials: Some((EMULATED_ACCOUNT.into(), "emulator".into())),
            })
            .await;
            emulator = Some(handle);
            c
        } else {
            SdkClient::connect(&ConnectOptions {
                endpoint_url: conn.endpoint_url.clone(),
                profile: conn.profile.clone(),
                region: conn.region.clone(),
                static_credentials: None,
            })
            .await
        };
        let client = match client {
            Ok(c) => Arc::new(c),
            Err(e) => {
                err(e);
                return exit::ENVIRONMENT;
            }
        };
        let code = drive(
            campaign, rundir, journal, client, conn, rates, total_rows, prior, prelude,
        )
        .await;
        if let Some(h) = emulator {
            let _ = h.shutdown().await;
        }
        code
    })
}

#[allow(clippy::too_many_arguments)]
async fn drive<C: ApiClient>(
    campaign: Arc<Campaign>,
    rundir: RunDir,
    mut journal: JournalWriter,
    client: Arc<C>,
    conn: &ConnectionArgs,
    rates: RateConfig,
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
    let concurrency = conn.concurrency.unwrap_or(limits_cfg.concurrency);
    let mut opts = Options::new(concurrency, limits_cfg.max_failures, total_rows);
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
    let summary = match coordinator.run(prior).await {
        Ok(s) => s,
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
            "aborted; the journal is consistent. Resume with:\n  cosell resume {}",
            rundir.path().display()
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
    print_summary(&campaign, &rundir, &summary, &class_rates, &ledger);
    match &summary.stop {
        Some(Stop::Interrupted) => exit::INTERRUPTED,
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
    for s in campaign.setup() {
        if let Some(StepState::Succeeded { output }) = state.setup.steps.get(&s.id) {
            setup.insert(s.id.clone(), output.clone());
        }
    }
    let step_ids: Vec<String> = campaign.steps().iter().map(|s| s.id.clone()).collect();
    let mut writer =
        LedgerWriter::create(rundir.path(), &step_ids, &campaign.ledger_column_names())
            .map_err(|e| e.to_string())?;
    let mut counts = LedgerCounts {
        csv: rundir.path().join("ledger.csv"),
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

fn print_summary(
    campaign: &Campaign,
    rundir: &RunDir,
    s: &Summary,
    rates: &BTreeMap<QuotaClass, f64>,
    ledger: &LedgerCounts,
) {
    // n calls evenly spaced at a rate r need (n - 1) / r from the first to the last
    let bound = s
        .calls_per_class
        .iter()
        .map(|(c, n)| n.saturating_sub(1) as f64 / rates.get(c).copied().unwrap_or(1.0))
        .fold(0.0, f64::max);
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(out, "run {} ({})", campaign.name(), rundir.path().display());
    let _ = writeln!(
        out,
        "rows      {} succeeded, {} failed, {} skipped, {} not run ({} finished by this process)",
        ledger.succeeded,
        ledger.failed,
        ledger.skipped,
        ledger.pending + ledger.in_flight,
        s.succeeded + s.failed + s.skipped
    );
    let _ = writeln!(out, "calls");
    for (op, n) in &s.calls {
        let _ = writeln!(out, "  {op:<44} {n:>7}  ({})", QuotaClass::of(op));
    }
    let _ = writeln!(out, "throttled {}   retries {}", s.throttles, s.retries);
    let ratio = if bound > 0.0 {
        format!(" ({:.2}× the bound)", s.elapsed.as_secs_f64() / bound)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "elapsed   {} against a quota lower bound of {}{ratio}",
        fmt_duration(s.elapsed),
        fmt_duration(Duration::from_secs_f64(bound))
    );
    let _ = writeln!(out, "ledger    {}", ledger.csv.display());
    print!("{out}");
    let dir = rundir.path().display();
    match &s.stop {
        Some(Stop::Interrupted) => eprintln!(
            "interrupted; calls in flight were journaled. Resume with:\n  cosell resume {dir}"
        ),
        Some(Stop::MaxFailures { failed, allowed }) => eprintln!(
            "stopped: {failed} rows failed, more than limits.max_failures allows ({allowed}). \
             Fix the cause (see the ledger), then:\n  cosell resume {dir} --retry-failed"
        ),
        Some(Stop::Daily(d)) => {
            let at: chrono::DateTime<chrono::Utc> = d.resume_at.into();
            eprintln!(
                "stopped: the rolling 24-hour quota of the {} class ({} calls) is used up; \
                 one more call fits at {}. Resume then with:\n  cosell resume {dir}",
                d.class,
                d.limit,
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        }
        Some(Stop::SetupFailed { step, error }) => eprintln!(
            "setup step {step} failed: {error}. No row was run. Fix it, then:\n  cosell resume {dir} --retry-failed"
        ),
        _ if ledger.failed > 0 => eprintln!(
            "{} rows failed (see the ledger). To run only them again:\n  cosell resume {dir} --retry-failed",
            ledger.failed
        ),
        _ => {}
    }
}
