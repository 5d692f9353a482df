//! The run report: `RUN_DIR/report.html`, one self-contained page an alliance manager can
//! forward (`cosell report RUN_DIR`, and written by every `run`/`resume` after the ledger).
//!
//! Owns: the figures of the report ([`Report`], built in one streaming pass over the
//! journal) and their HTML rendering ([`html`]). Read-only over the run directory except
//! for `report.html` itself: no lock is taken (a running process may be appending; the
//! report is then a snapshot), nothing else is written. Must not touch: the network, the
//! journal's or the ledger's formats.
//!
//! # Sources
//!
//! - Row outcomes, step outcomes, failures and redrives: the replayed journal (the same
//!   fold as `status` and the ledger, so the figures equal the ledger's). The replay is
//!   `lean`: outputs of finished rows are dropped as they finish.
//! - Calls, throttles, retries, latencies and the timeline: the journal's `Call` records;
//!   the daily-window waits: its `QuotaWait` records.
//! - Rates (the quota lines and the quota bound): the campaign's limits (the playbook loaded
//!   with the run's paths, vars, `--concurrency` and `--rate`), or the documented quotas when
//!   the playbook cannot be loaded any more.
//! - The line and key of the example rows of each failure: `ledger.jsonl` (its n-th object is
//!   the n-th input record), else the keys rendered again from the campaign's rows, else the
//!   CSV lines alone (no keys), else the 1-based record number.
//!
//! # What it never holds
//!
//! The report is meant to be shared, so it holds ids, keys, codes and messages only: no step
//! output and no request is printed. Messages come from the service and the engine, which
//! avoid sensitive values; still, each message shown is scrubbed ([`scrub`]): an
//! `ExpectationFailed` message quotes the compared values, which are hidden when the member
//! (or anything inside it) is `sensitive` in the API model (all of them when the playbook
//! cannot be loaded), and any value of a sensitive member found in the row's own step outputs
//! or the setup's outputs is replaced wherever it appears.

pub mod html;

use crate::journal::{
    self, JournalError, Record, RowRef, RowState, RowStatus, RunState, StepState,
};
use crate::model::{self, QuotaClass, ShapeId, ShapeKind};
use crate::plan::Campaign;
use crate::rundir::{RunDir, RunDirError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The report's file name in the run directory.
pub const FILE: &str = "report.html";
/// Example rows shown per error code.
pub const EXAMPLES: usize = 10;
/// Messages are cut to this many characters.
pub const MESSAGE_CHARS: usize = 200;
/// A stretch without any call longer than this, and not a daily-quota wait, counts as the run
/// not running (stopped between two processes) rather than as working time.
pub const IDLE_GAP_MS: i64 = 120_000;
/// Runs shorter than this are charted per second, longer ones per minute.
pub const PER_SECOND_BELOW_MS: i64 = 10 * 60 * 1000;
/// The error code of a throttled call.
pub const THROTTLING: &str = "ThrottlingException";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ReportError {
    /// 2: not a run directory; 4: a damaged or unreadable one, or the report cannot be
    /// written (as `status` maps them).
    pub fn exit_code(&self) -> i32 {
        match self {
            ReportError::RunDir(e) => e.exit_code(),
            _ => crate::exit::ENVIRONMENT,
        }
    }
}

/// Rows by where they stand. `unchanged` is kept as a slot for an outcome cosell does not
/// have yet (always 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rows {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub unchanged: u64,
    pub in_flight: u64,
    pub pending: u64,
}

/// Calls of one quota class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassStats {
    pub class: QuotaClass,
    pub calls: u64,
    pub throttles: u64,
    pub retries: u64,
    /// Requests per second: the run's configured rate (or the documented quota).
    pub rate: f64,
    pub daily: Option<u64>,
}

/// Calls and latencies of one operation.
#[derive(Debug, Clone, PartialEq)]
pub struct OpStats {
    pub op: String,
    pub class: QuotaClass,
    pub calls: u64,
    pub errors: u64,
    pub throttles: u64,
    pub retries: u64,
    /// Milliseconds.
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// Calls per bucket per class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// Epoch ms of the first bucket.
    pub start_ms: i64,
    pub bucket_ms: i64,
    /// The unit of the chart: 1000 (calls per second) or 60,000 (calls per minute).
    pub unit_ms: i64,
    /// Per class with calls: the count in each bucket.
    pub series: Vec<(QuotaClass, Vec<u32>)>,
}

/// A wait for room in a class's rolling daily window.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub class: String,
    pub from_ms: i64,
    pub until_ms: i64,
}

/// How one row step ended across the rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutcome {
    pub id: String,
    pub action: Option<String>,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Started (or waiting on its task) and not finished.
    pub in_flight: u64,
    /// Not reached: an earlier step failed or was not done, or the row did not start.
    pub not_reached: u64,
}

/// One row shown as an example of a failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The row's line in the input CSV (None: unknown, and `index` names it); None and
    /// `setup` for the setup.
    pub line: Option<u64>,
    pub index: u64,
    pub setup: bool,
    pub key: Option<String>,
    pub step: String,
    /// Scrubbed and cut to [`MESSAGE_CHARS`].
    pub message: String,
}

/// The failed rows of one error code.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureGroup {
    /// The failed step's error code ("" when a row failed without a step error).
    pub code: String,
    pub count: u64,
    /// Failed step → rows.
    pub steps: BTreeMap<String, u64>,
    pub examples: Vec<Example>,
}

/// One attempt of a redriven run: the first run, then each `resume --retry-failed`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attempt {
    /// 0 for the first run, then 1, 2, … per redrive.
    pub n: u32,
    /// When it started (the first record; the redrive record).
    pub at: Option<String>,
    /// Rows failed when it started (what a redrive redrove).
    pub redriven: u64,
    /// Of those rows (all rows for the first run), where they stood when the next attempt
    /// started (or now).
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub unfinished: u64,
}

/// Everything the report shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub run_id: String,
    pub run_dir: String,
    pub playbook_name: String,
    pub catalog: String,
    pub created_at: String,
    pub generated_at: String,
    pub setup: String,
    pub rows: Rows,
    /// Epoch ms of the first and the last record (the last call's answer included).
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    /// Spent waiting for the daily quota, ms.
    pub waiting_ms: i64,
    /// Spent with no call and no wait (the run was not running), ms.
    pub idle_ms: i64,
    /// The quota lower bound of the calls sent: max over classes of (n - 1) / rate, seconds.
    pub bound_s: f64,
    pub calls: u64,
    pub throttles: u64,
    pub retries: u64,
    pub classes: Vec<ClassStats>,
    pub ops: Vec<OpStats>,
    pub timeline: Timeline,
    pub waits: Vec<Wait>,
    pub steps: Vec<StepOutcome>,
    pub failures: Vec<FailureGroup>,
    pub attempts: Vec<Attempt>,
    /// Where the rates come from, in words.
    pub rates_source: String,
    /// Where the example rows' lines and keys come from, in words.
    pub keys_source: String,
    /// The journal's last record was cut short (or is being written) and is ignored.
    pub torn_tail: bool,
}

impl Report {
    /// From the first to the last record, ms.
    pub fn elapsed_ms(&self) -> i64 {
        match (self.first_ms, self.last_ms) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => 0,
        }
    }
    /// Elapsed less the daily-quota waits and the idle stretches, ms.
    pub fn active_ms(&self) -> i64 {
        (self.elapsed_ms() - self.waiting_ms - self.idle_ms).max(0)
    }
}

fn epoch_ms(at: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// What is folded while the journal streams by.
#[derive(Default)]
struct Acc {
    first_ms: Option<i64>,
    last_at: Option<String>,
    last_call_end: Option<i64>,
    /// op → (latencies ms, errors, throttles, retries)
    ops: BTreeMap<String, (Vec<u32>, u64, u64, u64)>,
    /// second → calls per class (index in `QuotaClass::ALL`)
    seconds: HashMap<i64, [u32; 6]>,
    waits: Vec<Wait>,
    steps: BTreeMap<String, StepOutcome>,
    /// (redrive record's `at`, rows failed then)
    redrives: Vec<(String, BTreeSet<u64>)>,
    /// Row statuses when each redrive started, for the attempt before it.
    snapshots: Vec<BTreeMap<u64, Option<RowStatus>>>,
}

fn class_index(c: QuotaClass) -> usize {
    QuotaClass::ALL.iter().position(|x| *x == c).unwrap_or(0)
}

/// Tally one row's steps into `steps` (in `ids` order: a step after the first one not done
/// is "not reached" unless it has a state).
fn tally(steps: &mut BTreeMap<String, StepOutcome>, ids: &[String], st: Option<&RowState>) {
    for id in ids {
        let o = steps.entry(id.clone()).or_default();
        match st.and_then(|s| s.steps.get(id)) {
            Some(StepState::Succeeded { .. }) => o.succeeded += 1,
            Some(StepState::Skipped { .. }) => o.skipped += 1,
            Some(StepState::Failed { .. }) => o.failed += 1,
            Some(StepState::InFlight { .. } | StepState::Waiting { .. }) => o.in_flight += 1,
            None => o.not_reached += 1,
        }
    }
}

impl Acc {
    fn visit(&mut self, rec: &Record, state: &RunState, row_steps: &[String]) {
        let at = match rec {
            Record::Header { .. } => return,
            Record::StepStarted { at, .. }
            | Record::TaskWaiting { at, .. }
            | Record::StepSucceeded { at, .. }
            | Record::StepSkipped { at, .. }
            | Record::StepFailed { at, .. }
            | Record::EffectChecked { at, .. }
            | Record::Patched { at, .. }
            | Record::RowFinished { at, .. }
            | Record::RetryFailedRows { at }
            | Record::Call { at, .. }
            | Record::QuotaWait { at, .. } => at,
        };
        if self.first_ms.is_none() {
            self.first_ms = epoch_ms(at);
        }
        match &self.last_at {
            Some(l) if l == at => {}
            _ => self.last_at = Some(at.clone()),
        }
        match rec {
            Record::Call {
                op,
                at,
                ms,
                attempt,
                code,
            } => {
                let e = self.ops.entry(op.clone()).or_default();
                e.0.push((*ms).min(u32::MAX as u64) as u32);
                if code.is_some() {
                    e.1 += 1;
                }
                if code.as_deref() == Some(THROTTLING) {
                    e.2 += 1;
                }
                if *attempt > 1 {
                    e.3 += 1;
                }
                if let Some(t) = epoch_ms(at) {
                    self.seconds.entry(t.div_euclid(1000)).or_default()
                        [class_index(QuotaClass::of(op))] += 1;
                    let end = t + *ms as i64;
                    if self.last_call_end.is_none_or(|l| end > l) {
                        self.last_call_end = Some(end);
                    }
                }
            }
            Record::QuotaWait { class, at, until } => {
                if let (Some(a), Some(b)) = (epoch_ms(at), epoch_ms(until)) {
                    self.waits.push(Wait {
                        class: class.clone(),
                        from_ms: a,
                        until_ms: b.max(a),
                    });
                }
            }
            Record::RowFinished {
                row: RowRef::Row(i),
                status,
                ..
            } if *status != RowStatus::Failed => {
                // A row that finishes succeeded or skipped never changes again, and the lean
                // replay forgets its steps once this record is applied: tally it now.
                tally(&mut self.steps, row_steps, state.rows.get(i));
            }
            Record::RetryFailedRows { at } => {
                let failed: BTreeSet<u64> = state
                    .rows
                    .iter()
                    .filter(|(_, r)| r.status == Some(RowStatus::Failed))
                    .map(|(i, _)| *i)
                    .collect();
                self.snapshots
                    .push(state.rows.iter().map(|(i, r)| (*i, r.status)).collect());
                self.redrives.push((at.clone(), failed));
            }
            _ => {}
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // nearest rank
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as u64
}

/// The campaign of a run directory as the run used it: its playbook, input and vars, with
/// its `--concurrency` and `--rate`. Err: why it cannot be loaded.
pub fn load_campaign(rd: &RunDir) -> Result<Campaign, String> {
    let m = rd.manifest();
    let args = crate::cli::CampaignArgs {
        playbook: m.playbook_path.clone(),
        input: Some(m.input_path.clone()),
        sheet: m.input_sheet.clone(),
        vars: m.vars.clone(),
    };
    let mut c = Campaign::load(&args).map_err(|d| first_line(&d.render_text()))?;
    c.apply_overrides(m.concurrency, &m.rates)
        .map_err(|d| first_line(&d.render_text()))?;
    Ok(c)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

/// Build the report of the run in `rd`; `campaign` when the caller has it (a run that just
/// ended), otherwise it is loaded from the run's playbook.
pub fn build(rd: &RunDir, campaign: Option<&Campaign>) -> Result<Report, ReportError> {
    let m = rd.manifest();
    let loaded;
    let (campaign, rates_source) = match campaign {
        Some(c) => (Some(c), "the run's limits".to_string()),
        None => match load_campaign(rd) {
            Ok(c) => {
                loaded = c;
                (Some(&loaded), "the run's limits".to_string())
            }
            Err(e) => (
                None,
                format!("the documented quotas (the playbook cannot be loaded: {e})"),
            ),
        },
    };
    let row_steps: Vec<String> = m.row_step_ids().to_vec();
    let mut acc = Acc::default();
    let (state, torn) = journal::read_and_replay_visiting(
        &rd.journal_path(),
        RunState {
            lean: true,
            ..RunState::default()
        },
        |rec, st| acc.visit(rec, st, &row_steps),
    )?;

    let total = if m.total_rows > 0 {
        m.total_rows
    } else {
        state.rows.keys().next_back().map_or(0, |i| i + 1)
    };
    let c = state.counts(total);
    let rows = Rows {
        total,
        succeeded: c.succeeded,
        failed: c.failed,
        skipped: c.skipped,
        unchanged: 0,
        in_flight: c.in_flight,
        pending: c.pending,
    };

    // steps: rows still holding their steps (failed, unfinished), then those never started
    for r in state.rows.values() {
        if matches!(r.status, None | Some(RowStatus::Failed)) {
            tally(&mut acc.steps, &row_steps, Some(r));
        }
    }
    for _ in 0..c.pending {
        tally(&mut acc.steps, &row_steps, None);
    }
    let steps: Vec<StepOutcome> = row_steps
        .iter()
        .map(|id| {
            let mut o = acc.steps.remove(id).unwrap_or_default();
            o.id = id.clone();
            o.action = campaign.and_then(|c| c.step(id)).map(|s| s.action.clone());
            o
        })
        .collect();

    // rates and calls
    let rate_of = |cl: QuotaClass| match campaign {
        Some(c) => c.limits().class_rate(cl),
        None => cl.documented().rate,
    };
    let daily_of = |cl: QuotaClass| match campaign {
        Some(c) => c.limits().daily_budget(cl),
        None => cl.documented().daily,
    };
    let mut classes: Vec<ClassStats> = Vec::new();
    let mut ops = Vec::new();
    for (op, (mut lat, errors, throttles, retries)) in std::mem::take(&mut acc.ops) {
        lat.sort_unstable();
        let class = QuotaClass::of(&op);
        let cs = match classes.iter_mut().find(|c| c.class == class) {
            Some(c) => c,
            None => {
                classes.push(ClassStats {
                    class,
                    calls: 0,
                    throttles: 0,
                    retries: 0,
                    rate: rate_of(class),
                    daily: daily_of(class),
                });
                classes.last_mut().expect("just pushed")
            }
        };
        cs.calls += lat.len() as u64;
        cs.throttles += throttles;
        cs.retries += retries;
        ops.push(OpStats {
            class,
            calls: lat.len() as u64,
            errors,
            throttles,
            retries,
            p50: percentile(&lat, 50.0),
            p90: percentile(&lat, 90.0),
            p99: percentile(&lat, 99.0),
            max: lat.last().copied().unwrap_or(0) as u64,
            op,
        });
    }
    classes.sort_by_key(|c| c.class);
    let bound_s = classes
        .iter()
        .map(|c| c.calls.saturating_sub(1) as f64 / c.rate.max(1e-9))
        .fold(0.0, f64::max);

    // time
    let last_ms = [acc.last_at.as_deref().and_then(epoch_ms), acc.last_call_end]
        .into_iter()
        .flatten()
        .max();
    let first_ms = acc.first_ms;
    acc.waits.sort_by_key(|w| w.from_ms);
    let waiting_ms = union_len(acc.waits.iter().map(|w| (w.from_ms, w.until_ms)));
    let mut secs: Vec<i64> = acc.seconds.keys().copied().collect();
    secs.sort_unstable();
    let idle_ms = idle(&secs, &acc.waits);
    let timeline = timeline(&acc.seconds, &secs, first_ms, last_ms);

    // failures, by code, examples in input order
    let mut groups: BTreeMap<String, FailureGroup> = BTreeMap::new();
    let setup_ids = m.setup_step_ids();
    let mut failed_rows: Vec<(bool, u64, &RowState)> = Vec::new();
    if state.setup.status == Some(RowStatus::Failed) {
        failed_rows.push((true, 0, &state.setup));
    }
    failed_rows.extend(
        state
            .rows
            .iter()
            .filter(|(_, r)| r.status == Some(RowStatus::Failed))
            .map(|(i, r)| (false, *i, r)),
    );
    for (setup, i, r) in &failed_rows {
        let ids = if *setup { setup_ids } else { &row_steps[..] };
        let (step, code, message) = r.failed_step(ids).unwrap_or(("", "", ""));
        let g = groups
            .entry(code.to_string())
            .or_insert_with(|| FailureGroup {
                code: code.to_string(),
                count: 0,
                steps: BTreeMap::new(),
                examples: Vec::new(),
            });
        g.count += 1;
        *g.steps.entry(step.to_string()).or_default() += 1;
        if g.examples.len() < EXAMPLES {
            let shape = campaign
                .and_then(|c| c.step(step))
                .and_then(|s| s.output_shape());
            let mut known = Vec::new();
            if let Some(c) = campaign {
                sensitive_values_of(c, r, &mut known);
                sensitive_values_of(c, &state.setup, &mut known);
            }
            g.examples.push(Example {
                line: None,
                index: *i,
                setup: *setup,
                key: None,
                step: step.to_string(),
                message: cut(&scrub(message, code, shape, campaign.is_some(), &known)),
            });
        }
    }
    let mut failures: Vec<FailureGroup> = groups.into_values().collect();
    failures.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
    let keys_source = identify(rd, campaign, &mut failures);

    // attempts
    let mut attempts = Vec::new();
    let first_at = first_ms
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let boundaries: Vec<Option<&BTreeMap<u64, Option<RowStatus>>>> = acc
        .snapshots
        .iter()
        .map(Some)
        .chain(std::iter::once(None))
        .collect();
    let now: BTreeMap<u64, Option<RowStatus>> =
        state.rows.iter().map(|(i, r)| (*i, r.status)).collect();
    let status_at = |b: Option<&BTreeMap<u64, Option<RowStatus>>>, i: u64| {
        b.unwrap_or(&now).get(&i).copied().flatten()
    };
    if !acc.redrives.is_empty() {
        // the first run: every row, where it stood when the first redrive started
        let b = boundaries[0].expect("a snapshot per redrive");
        let mut a = Attempt {
            n: 0,
            at: first_at,
            redriven: 0,
            ..Attempt::default()
        };
        for i in 0..total {
            count_status(&mut a, b.get(&i).copied().flatten());
        }
        attempts.push(a);
        for (k, (at, failed)) in acc.redrives.iter().enumerate() {
            let b = boundaries[k + 1];
            let mut a = Attempt {
                n: k as u32 + 1,
                at: Some(at.clone()),
                redriven: failed.len() as u64,
                ..Attempt::default()
            };
            for i in failed {
                count_status(&mut a, status_at(b, *i));
            }
            attempts.push(a);
        }
    }

    Ok(Report {
        run_id: m.run_id.clone(),
        run_dir: rd.path().display().to_string(),
        playbook_name: m.playbook_name.clone(),
        catalog: m.catalog.clone(),
        created_at: m.created_at.clone(),
        generated_at: journal::timestamp(),
        setup: match state.setup.status {
            Some(s) => s.as_str().to_string(),
            None if !state.setup.steps.is_empty() => "in flight".into(),
            None if !setup_ids.is_empty() => "pending".into(),
            None => "none".into(),
        },
        rows,
        first_ms,
        last_ms,
        waiting_ms,
        idle_ms,
        bound_s,
        calls: classes.iter().map(|c| c.calls).sum(),
        throttles: classes.iter().map(|c| c.throttles).sum(),
        retries: classes.iter().map(|c| c.retries).sum(),
        classes,
        ops,
        timeline,
        waits: acc.waits,
        steps,
        failures,
        attempts,
        rates_source,
        keys_source,
        torn_tail: torn.is_some(),
    })
}

fn count_status(a: &mut Attempt, s: Option<RowStatus>) {
    match s {
        Some(RowStatus::Succeeded) => a.succeeded += 1,
        Some(RowStatus::Failed) => a.failed += 1,
        Some(RowStatus::Skipped) => a.skipped += 1,
        None => a.unfinished += 1,
    }
}

/// Total length of the union of spans.
fn union_len(spans: impl Iterator<Item = (i64, i64)>) -> i64 {
    let mut v: Vec<(i64, i64)> = spans.collect();
    v.sort_unstable();
    let mut total = 0;
    let mut cur: Option<(i64, i64)> = None;
    for (a, b) in v {
        match &mut cur {
            Some((_, e)) if a <= *e => *e = (*e).max(b),
            _ => {
                if let Some((s, e)) = cur {
                    total += e - s;
                }
                cur = Some((a, b));
            }
        }
    }
    if let Some((s, e)) = cur {
        total += e - s;
    }
    total
}

/// Stretches longer than [`IDLE_GAP_MS`] between two calls, less what daily-quota waits
/// cover of them.
fn idle(secs: &[i64], waits: &[Wait]) -> i64 {
    let mut total = 0;
    for w in secs.windows(2) {
        let (a, b) = (w[0] * 1000 + 1000, w[1] * 1000);
        if b - a > IDLE_GAP_MS {
            let covered = union_len(
                waits
                    .iter()
                    .filter(|x| x.until_ms > a && x.from_ms < b)
                    .map(|x| (x.from_ms.max(a), x.until_ms.min(b))),
            );
            total += (b - a) - covered;
        }
    }
    total
}

/// Bucket the per-second counts: per second for runs under [`PER_SECOND_BELOW_MS`], per
/// minute above, coarser buckets (5 min, 15 min, 1 h, 4 h, 1 day) to stay under 720 of them.
fn timeline(
    seconds: &HashMap<i64, [u32; 6]>,
    secs: &[i64],
    first_ms: Option<i64>,
    last_ms: Option<i64>,
) -> Timeline {
    let (Some(&s0), Some(&s1)) = (secs.first(), secs.last()) else {
        return Timeline::default();
    };
    let start = first_ms.unwrap_or(s0 * 1000).min(s0 * 1000);
    let end = last_ms.unwrap_or(s1 * 1000 + 1000).max(s1 * 1000 + 1000);
    let span = end - start;
    let (unit_ms, bucket_ms) = if span < PER_SECOND_BELOW_MS {
        (1000, 1000)
    } else {
        let b = [1, 5, 15, 60, 240, 1440]
            .into_iter()
            .map(|m| m * 60_000)
            .find(|b| span / b < 720)
            .unwrap_or(1440 * 60_000);
        (60_000, b)
    };
    let start = start.div_euclid(bucket_ms) * bucket_ms;
    let n = ((end - start) / bucket_ms + 1) as usize;
    let mut per: [Vec<u32>; 6] = Default::default();
    for (s, counts) in seconds {
        let b = ((s * 1000 - start) / bucket_ms) as usize;
        for (k, c) in counts.iter().enumerate() {
            if *c > 0 {
                let v = &mut per[k];
                if v.is_empty() {
                    v.resize(n, 0);
                }
                v[b.min(n - 1)] += c;
            }
        }
    }
    Timeline {
        start_ms: start,
        bucket_ms,
        unit_ms,
        series: QuotaClass::ALL
            .iter()
            .zip(per)
            .filter(|(_, v)| !v.is_empty())
            .map(|(c, v)| (*c, v))
            .collect(),
    }
}

/// Fill in the line and key of each example row; returns where they came from.
fn identify(rd: &RunDir, campaign: Option<&Campaign>, failures: &mut [FailureGroup]) -> String {
    let wanted: BTreeSet<u64> = failures
        .iter()
        .flat_map(|g| g.examples.iter())
        .filter(|e| !e.setup)
        .map(|e| e.index)
        .collect();
    let mut found: HashMap<u64, (Option<u64>, Option<String>)> = HashMap::new();
    let source = if wanted.is_empty()
        || read_ledger(
            &rd.path().join(crate::ledger::JSONL_FILE),
            &wanted,
            &mut found,
        ) {
        "ledger.jsonl".to_string()
    } else if campaign.is_some_and(|c| rows_from_campaign(c, &wanted, &mut found)) {
        "the playbook's keys (ledger.jsonl is missing)".to_string()
    } else if csv_lines(rd.manifest(), &wanted, &mut found) {
        "the input's lines; keys unknown (no ledger.jsonl, and the playbook cannot be loaded)"
            .to_string()
    } else {
        found.clear();
        "record numbers; lines and keys unknown (no ledger.jsonl, and neither the playbook nor \
         the input can be read)"
            .to_string()
    };
    for e in failures.iter_mut().flat_map(|g| g.examples.iter_mut()) {
        if let Some((line, key)) = found.get(&e.index).filter(|_| !e.setup) {
            e.line = *line;
            e.key = key.clone();
        }
    }
    source
}

/// `ledger.jsonl`: the n-th line is the n-th input record; only the wanted lines are parsed.
fn read_ledger(
    path: &Path,
    wanted: &BTreeSet<u64>,
    found: &mut HashMap<u64, (Option<u64>, Option<String>)>,
) -> bool {
    #[derive(serde::Deserialize)]
    struct Line {
        line: u64,
        key: String,
    }
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let mut r = std::io::BufReader::with_capacity(1 << 20, f);
    let mut buf = Vec::new();
    let last = *wanted.last().expect("not empty");
    let mut i = 0u64;
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if wanted.contains(&i) {
            match serde_json::from_slice::<Line>(&buf) {
                Ok(l) => {
                    found.insert(i, (Some(l.line), Some(l.key)));
                }
                Err(_) => {
                    found.clear();
                    return false;
                }
            }
        }
        if i >= last {
            break;
        }
        i += 1;
    }
    found.len() == wanted.len()
}

/// Render the wanted rows' keys again from the campaign's input (other rows are passed over).
fn rows_from_campaign(
    c: &Campaign,
    wanted: &BTreeSet<u64>,
    found: &mut HashMap<u64, (Option<u64>, Option<String>)>,
) -> bool {
    let Ok(mut rows) = c.rows() else {
        return false;
    };
    let last = *wanted.last().expect("not empty");
    while let Some(r) = rows.next_unless(|i| !wanted.contains(&i)) {
        match r {
            Ok(Some(row)) => {
                let done = row.index >= last;
                found.insert(row.index, (Some(row.line), Some(row.key)));
                if done {
                    break;
                }
            }
            Ok(None) => {}
            Err(_) => {
                found.clear();
                return false;
            }
        }
    }
    !found.is_empty()
}

/// The CSV line (or sheet row) of the wanted records, no keys.
fn csv_lines(
    m: &crate::rundir::Manifest,
    wanted: &BTreeSet<u64>,
    found: &mut HashMap<u64, (Option<u64>, Option<String>)>,
) -> bool {
    let path = m.input_path.as_path();
    if crate::input::workbook::is_workbook(path) {
        let source = crate::input::Source {
            path: path.to_path_buf(),
            display: path.display().to_string(),
            sheet: m.input_sheet.clone(),
        };
        for (i, line) in source
            .record_lines()
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            if wanted.contains(&(i as u64)) {
                found.insert(i as u64, (Some(line), None));
            }
        }
        return !found.is_empty();
    }
    let Ok(mut rdr) = csv::ReaderBuilder::new().flexible(true).from_path(path) else {
        return false;
    };
    let mut rec = csv::ByteRecord::new();
    let mut i = 0u64;
    while let Ok(true) = rdr.read_byte_record(&mut rec) {
        if wanted.contains(&i) {
            found.insert(i, (rec.position().map(|p| p.line()), None));
        }
        i += 1;
    }
    !found.is_empty()
}

/// Cut a message to [`MESSAGE_CHARS`] characters, on one line.
fn cut(s: &str) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one.char_indices().nth(MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

/// What replaces a hidden value.
pub const HIDDEN: &str = "‹sensitive value hidden›";

/// Whether a shape is, or holds, a `sensitive` shape.
fn holds_sensitive(id: ShapeId, depth: u32) -> bool {
    let m = model::model();
    let s = m.shape(id);
    if s.sensitive {
        return true;
    }
    if depth > 12 {
        return false;
    }
    match &s.kind {
        ShapeKind::Structure { members, .. } => members
            .iter()
            .any(|mm| holds_sensitive(mm.shape, depth + 1)),
        ShapeKind::List { member, .. } => holds_sensitive(*member, depth + 1),
        ShapeKind::Map { key, value, .. } => {
            holds_sensitive(*key, depth + 1) || holds_sensitive(*value, depth + 1)
        }
        _ => false,
    }
}

/// Values of sensitive members in `output` (walked along `shape`), 4 characters or longer.
fn collect_sensitive(v: &serde_json::Value, shape: ShapeId, depth: u32, out: &mut Vec<String>) {
    let m = model::model();
    let s = m.shape(shape);
    if depth > 16 {
        return;
    }
    if s.sensitive {
        let mut leaves = Vec::new();
        leaves_of(v, &mut leaves);
        out.extend(leaves.into_iter().filter(|x| x.chars().count() >= 4));
        return;
    }
    match (&s.kind, v) {
        (ShapeKind::Structure { members, .. }, serde_json::Value::Object(o)) => {
            for mm in members {
                if let Some(x) = o.get(&mm.name) {
                    collect_sensitive(x, mm.shape, depth + 1, out);
                }
            }
        }
        (ShapeKind::List { member, .. }, serde_json::Value::Array(a)) => {
            for x in a {
                collect_sensitive(x, *member, depth + 1, out);
            }
        }
        (ShapeKind::Map { value, .. }, serde_json::Value::Object(o)) => {
            for x in o.values() {
                collect_sensitive(x, *value, depth + 1, out);
            }
        }
        _ => {}
    }
}

fn leaves_of(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Number(n) => out.push(n.to_string()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| leaves_of(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| leaves_of(x, out)),
        _ => {}
    }
}

/// The sensitive values in the succeeded step outputs of a row (or the setup).
fn sensitive_values_of(c: &Campaign, r: &RowState, out: &mut Vec<String>) {
    for (id, st) in &r.steps {
        if let (StepState::Succeeded { output }, Some(shape)) =
            (st, c.step(id).and_then(|s| s.output_shape()))
        {
            collect_sensitive(output, shape, 0, out);
        }
    }
}

/// A message as the report may show it. `ExpectationFailed` messages (`PATH is GOT, expected
/// WANT`, `; `-separated) have GOT and WANT hidden when the member at PATH holds a sensitive
/// shape (every one when `shapes_known` is false: the playbook could not be loaded); then
/// every value of `known` (sensitive values the run's outputs hold) is replaced.
pub fn scrub(
    message: &str,
    code: &str,
    output_shape: Option<ShapeId>,
    shapes_known: bool,
    known: &[String],
) -> String {
    let mut out = if code == "ExpectationFailed" {
        message
            .split("; ")
            .map(|part| {
                let path = part.split(' ').next().unwrap_or("");
                let hide = match output_shape {
                    Some(root) if shapes_known => {
                        let segs: Vec<&str> = path.split('.').collect();
                        match model::model().shape_at_path(root, &segs) {
                            Some(id) => holds_sensitive(id, 0),
                            // unknown to the model: nothing says it is safe
                            None => true,
                        }
                    }
                    _ => true,
                };
                if !hide {
                    part.to_string()
                } else if part.starts_with("expect ") {
                    // a template error of the expected value: no value in it
                    part.to_string()
                } else if part.contains(" is missing from the output") {
                    format!("{path} is missing from the output, expected {HIDDEN}")
                } else {
                    format!("{path} is {HIDDEN}, expected {HIDDEN}")
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        message.to_string()
    };
    let mut known: Vec<&String> = known.iter().collect();
    // longest first, so that a value inside another is not left half-replaced
    known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    for k in known {
        if out.contains(k.as_str()) {
            out = out.replace(k.as_str(), HIDDEN);
        }
    }
    out
}

/// `2026-11-22 10:15:00 UTC` (with seconds, or without).
pub fn fmt_ms(ms: i64, seconds: bool) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) if seconds => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Some(t) => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        None => "?".into(),
    }
}

/// Build and write `report.html` into the run directory (atomically, mode 0600).
pub fn write(rd: &RunDir, campaign: Option<&Campaign>) -> Result<PathBuf, ReportError> {
    let report = build(rd, campaign)?;
    let page = html::render(&report);
    let path = rd.path().join(FILE);
    crate::rundir::write_atomically(&path, page.as_bytes()).map_err(|source| {
        ReportError::Write {
            path: path.clone(),
            source,
        }
    })?;
    Ok(path)
}

/// The `cosell report` command.
pub fn run(args: &crate::cli::ReportArgs) -> i32 {
    let result = RunDir::open_readonly(&args.run_dir)
        .map_err(ReportError::from)
        .and_then(|rd| write(&rd, None));
    match result {
        Ok(path) => {
            println!("report    {}", path.display());
            crate::exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 90.0), 90);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn union_and_idle_time() {
        assert_eq!(union_len([(0, 10), (5, 20), (30, 40)].into_iter()), 30);
        let waits = [Wait {
            class: "write".into(),
            from_ms: 10_000,
            until_ms: 200_000,
        }];
        // a 299 s gap, 190 s of it a quota wait
        assert_eq!(idle(&[0, 300], &waits), 299_000 - 190_000);
        // gaps under two minutes are working time
        assert_eq!(idle(&[0, 100], &[]), 0);
    }

    #[test]
    fn scrub_hides_sensitive_expectations_and_known_values() {
        let m = model::model();
        let out = m
            .operation("GetEngagementInvitation")
            .and_then(|o| o.output)
            .unwrap();
        let msg = r#"Status is "ACCEPTED", expected "PENDING"; Payload.OpportunityInvitation.Customer.CompanyName is "Acme Secret", expected "Other""#;
        let s = scrub(msg, "ExpectationFailed", Some(out), true, &[]);
        assert!(s.contains(r#"Status is "ACCEPTED""#), "{s}");
        assert!(!s.contains("Acme Secret") && !s.contains("Other"), "{s}");
        // without the playbook, every compared value is hidden
        let s = scrub(msg, "ExpectationFailed", None, false, &[]);
        assert!(!s.contains("ACCEPTED"), "{s}");
        // a known sensitive value is replaced in any message
        let s = scrub(
            "conflict with Acme Secret Ltd",
            "ConflictException",
            None,
            true,
            &["Acme Secret Ltd".into()],
        );
        assert_eq!(s, format!("conflict with {HIDDEN}"));
    }

    #[test]
    fn messages_are_cut_on_one_line() {
        let long = "é".repeat(300);
        let c = cut(&long);
        assert_eq!(c.chars().count(), MESSAGE_CHARS + 1);
        assert_eq!(cut("a\nb"), "a b");
    }

    #[test]
    fn timeline_is_per_second_for_short_runs_and_per_minute_for_long_ones() {
        let mut s = HashMap::new();
        s.insert(100, [1, 2, 0, 0, 0, 0]);
        s.insert(160, [3, 0, 0, 0, 0, 0]);
        let t = timeline(&s, &[100, 160], Some(100_000), Some(161_000));
        assert_eq!((t.unit_ms, t.bucket_ms), (1000, 1000));
        assert_eq!(t.series.len(), 2);
        assert_eq!(t.series[0].1.iter().sum::<u32>(), 4);
        let mut s = HashMap::new();
        s.insert(0, [1, 0, 0, 0, 0, 0]);
        s.insert(3600, [1, 0, 0, 0, 0, 0]);
        let t = timeline(&s, &[0, 3600], Some(0), Some(3_601_000));
        assert_eq!((t.unit_ms, t.bucket_ms), (60_000, 60_000));
        assert_eq!(t.series[0].1.len(), 61);
    }
}
