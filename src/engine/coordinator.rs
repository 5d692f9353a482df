//! The run loop: one coordinator that owns all run state.
//!
//! It renders each step's request (through `plan`), journals it, and hands the call to a
//! worker task; workers own nothing but their request, wait for the rate limiters, call the
//! API with retries, and send the result back. The coordinator `select!`s over worker results,
//! the task-poll timer, the progress timer and signals. Records are group-committed: every
//! record produced while handling one event is appended, then the journal is fsynced once,
//! and only then are the calls that depend on those records started.

use super::api::{ApiClient, ApiError, ErrorKind};
use super::limits::{backoff, DailyExhausted, Limits};
use super::progress::Progress;
use crate::journal::{JournalWriter, Record, RowRef, RowStatus, RunState, StepState};
use crate::model::effects::{EffectCheck, Verdict};
use crate::model::ops::{self, Waiter};
use crate::model::QuotaClass;
use crate::plan::{Campaign, MaxFailures, RenderContext, Row};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// How the run is driven.
#[derive(Debug, Clone)]
pub struct Options {
    pub concurrency: usize,
    pub max_failures: MaxFailures,
    /// Rows in the input (for percentages and progress).
    pub total_rows: u64,
    pub poll_interval: Duration,
    /// Attempts per call for retryable errors (throttling, 5xx, transport).
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// `--wait-for-quota` / `limits.daily_wait`: a spent rolling window is waited out, not a
    /// stop.
    pub wait_for_quota: bool,
}

impl Options {
    pub fn new(concurrency: usize, max_failures: MaxFailures, total_rows: u64) -> Self {
        Options {
            concurrency: concurrency.max(1),
            max_failures,
            total_rows,
            poll_interval: Duration::from_millis(1000),
            max_attempts: 8,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(20),
            wait_for_quota: false,
        }
    }
}

/// Why the run ended before every row was processed.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    MaxFailures {
        failed: u64,
        allowed: String,
    },
    Daily(DailyExhausted),
    SetupFailed {
        step: String,
        error: String,
    },
    Interrupted,
    /// A second signal: leave at once.
    Aborted,
    /// Credentials, configuration or the endpoint failed: nothing more can be sent until the
    /// environment is fixed. The call that met it stays in flight for resume.
    Environment {
        code: String,
        message: String,
    },
}

/// What happened, for the summary table.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Rows finished by an earlier process of this run (resume).
    pub already_done: u64,
    /// Requests sent, per operation (every attempt that left, retries included): what the
    /// service counted.
    pub calls: BTreeMap<String, u64>,
    pub calls_per_class: BTreeMap<QuotaClass, u64>,
    pub throttles: u64,
    pub retries: u64,
    /// Steps whose write was refused after an attempt with an unknown outcome, and whose
    /// effect check found the effect already in place (so they succeeded).
    pub already_in_place: u64,
    /// `patch` steps that sent an update, and those that found nothing to change (and sent
    /// nothing).
    pub patched: u64,
    pub unchanged: u64,
    /// Updates refused as stale and re-applied on a fresh read.
    pub conflicts: u64,
    pub elapsed: Duration,
    pub stop: Option<Stop>,
    /// Waits for a rolling window, per class: (from, until) of each.
    pub quota_waits: Vec<(QuotaClass, std::time::SystemTime, std::time::SystemTime)>,
    /// The shortest time a task took from its Start answer to the poll that saw it settle
    /// (None when no task was awaited): the part of the quota bound that no pacing can hide.
    pub min_task_wait: Option<Duration>,
}

/// An engine failure that is not a row's failure.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot write the journal {path}: {source}")]
    Journal {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Input(String),
    #[error("credentials or configuration: {0}")]
    Config(String),
}

struct Active {
    row: Option<Row>,
    /// Index of the next step to run.
    next: usize,
    outputs: Map<String, Value>,
    any_ran: bool,
    /// ClientToken generation per step (bumped by each redrive of a failed step).
    generations: BTreeMap<String, u32>,
    /// The items a `paginate` step has collected from the pages so far.
    paged: Vec<Value>,
    /// The step an earlier process left in flight (started, outcome unknown): its first
    /// attempt here may meet that process's effect.
    resumed_in_flight: Option<usize>,
}

struct Waiting {
    rref: RowRef,
    step: usize,
    task_id: String,
    /// The table's waiter of the step's operation.
    waiter: Waiter,
    deadline: Instant,
    /// When the Start call answered (None for a wait taken over from an earlier process).
    since: Option<Instant>,
}

enum Done {
    Call {
        rref: RowRef,
        step: usize,
        /// The request sent (a waiter may take its id from it; a page follows it).
        request: Value,
        result: Result<Value, CallFailure>,
        /// A refusal met after an attempt whose outcome was unknown, and what the effect
        /// check found (`result` is already its verdict).
        effect: Option<EffectNote>,
        /// A `patch` step's decision on the record it read (with `result` Ok).
        patched: Option<PatchNote>,
    },
    Poll {
        waiter: Waiter,
        ids: Vec<String>,
        result: Result<Value, CallFailure>,
    },
}

/// What an effect check found ([`crate::model::effects`]).
#[derive(Debug, Clone, PartialEq)]
struct EffectNote {
    /// The write's refusal.
    code: String,
    read: &'static str,
    in_place: bool,
    detail: String,
}

/// What a `patch` step changed (empty: unchanged, nothing sent) and how many stale updates it
/// re-applied on the way.
#[derive(Debug, Clone, PartialEq)]
struct PatchNote {
    changes: Vec<crate::plan::patch::Change>,
    conflicts: u32,
}

/// Stale updates (someone else wrote between the read and the write) a `patch` step re-reads
/// and re-applies before the row fails with the conflict.
pub const MAX_CONFLICTS: u32 = 5;

#[derive(Debug)]
enum CallFailure {
    Api(ApiError),
    Daily(DailyExhausted),
    /// The run is stopping: the call was not sent (or not retried).
    Cancelled,
}

struct WorkerStats {
    op: String,
    /// Attempts that were sent.
    sent: u64,
    throttles: u64,
    retries: u64,
    /// Each attempt sent: when it left, how long its answer took, its error code.
    attempts: Vec<(std::time::SystemTime, Duration, Option<String>)>,
}

/// Resolves once the run is stopping (never, if the coordinator is gone).
async fn stopping(rx: &mut tokio::sync::watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn digest(v: &Value) -> String {
    let mut h = Sha256::new();
    h.update(v.to_string().as_bytes());
    format!("{:x}", h.finalize())
}

/// A failure that no row can be blamed for: credentials or configuration, or an endpoint that
/// could not be reached even after every retry.
fn is_environment(e: &ApiError) -> bool {
    matches!(e.kind, ErrorKind::Config | ErrorKind::Transport)
}

/// What a worker needs besides its request: the client, the limiters, the retry policy, the
/// stop signal and where to say it waits for a rolling window.
#[derive(Clone)]
struct Worker<C: ApiClient> {
    client: Arc<C>,
    limits: Arc<Limits>,
    opts: (u32, Duration, Duration),
    stop: tokio::sync::watch::Receiver<bool>,
    quota_wait: Option<tokio::sync::mpsc::UnboundedSender<DailyExhausted>>,
}

/// An attempt that failed this way may have been applied before the answer was lost.
fn may_have_landed(e: &ApiError) -> bool {
    matches!(e.kind, ErrorKind::Server | ErrorKind::Transport)
}

/// A step's call: [`call_with_retries`], then, for a write without a ClientToken that is
/// refused after an attempt whose outcome is unknown (an earlier attempt here met a dropped
/// connection or a 5xx, or `uncertain`: an earlier process left the step in flight), the
/// effect check: its read, through the same limiters, decides whether the refusal is this
/// step's own earlier effect (the step succeeds with the output the read gives) or a real
/// conflict (the refusal stands, saying what the read showed). A read that cannot be made
/// (stopping, a daily budget, the environment) leaves the step in flight.
async fn call_step<C: ApiClient>(
    w: Worker<C>,
    op: String,
    request: Value,
    uncertain: bool,
) -> (
    Result<Value, CallFailure>,
    Vec<WorkerStats>,
    Option<EffectNote>,
) {
    let (result, stats, landed) = call_with_retries(&w, &op, &request).await;
    let check = ops::operation(&op).and_then(|o| o.effect);
    let (Some(check), Err(CallFailure::Api(e))) = (check, &result) else {
        return (result, vec![stats], None);
    };
    if e.kind != ErrorKind::Client || !(uncertain || landed) {
        return (result, vec![stats], None);
    }
    let e = e.clone();
    let (verdict, read_stats) = effect_check(&w, check, &request).await;
    let stats = vec![stats, read_stats];
    let verdict = match verdict {
        Ok(v) => v,
        Err(f) => return (Err(f), stats, None),
    };
    let (result, in_place, detail) = match verdict {
        Verdict::InPlace(output) => (Ok(output), true, check.in_place.to_string()),
        Verdict::Absent(why) => {
            let mut e = e.clone();
            e.message = format!("{} (checked with {}: {why})", e.message, check.read);
            (Err(CallFailure::Api(e)), false, why)
        }
    };
    let note = EffectNote {
        code: e.code,
        read: check.read,
        in_place,
        detail,
    };
    (result, stats, Some(note))
}

/// A `patch` step: read the record with its Get (read class), decide with
/// [`crate::plan::patch::prepare`] on the record read, and send the whole record with the
/// version read, unless nothing changes (then nothing is sent) or the record's review status
/// refuses the change. An update refused as stale (ConflictException: someone else wrote
/// since the read) is read again and re-applied, at most [`MAX_CONFLICTS`] times: the other
/// writer's changes are in the new read, so they survive. A write retried after an attempt
/// that may have landed, or re-run by resume, meets its own effect on the read and ends
/// unchanged.
async fn patch_step<C: ApiClient>(
    w: Worker<C>,
    update: &'static crate::model::update::UpdateSpec,
    request: Value,
    patch: Value,
) -> (
    Result<Value, CallFailure>,
    Vec<WorkerStats>,
    Option<PatchNote>,
) {
    use crate::plan::patch::{prepare, Prepared, LOCKED};
    let refused = |code: &str, message: String| {
        Err(CallFailure::Api(ApiError {
            kind: ErrorKind::Client,
            code: code.to_string(),
            message,
        }))
    };
    let read = crate::model::update::read_request(update, &request);
    let mut stats = Vec::new();
    let mut conflicts = 0u32;
    // the changes of an update refused as stale after an attempt that may have landed: when
    // the next read shows the patch in place, that attempt made them
    let mut own: Option<Vec<crate::plan::patch::Change>> = None;
    loop {
        let (answer, st, _) = call_with_retries(&w, update.get, &read).await;
        stats.push(st);
        let answer = match answer {
            Ok(a) => a,
            Err(f) => return (Err(f), stats, None),
        };
        let (merged, changes) = match prepare(update, &request, &patch, &answer) {
            Prepared::Unchanged { output } => {
                let note = match own.take() {
                    // the refusal was this step's own landed attempt, not another writer
                    Some(changes) => PatchNote {
                        changes,
                        conflicts: conflicts - 1,
                    },
                    None => PatchNote {
                        changes: Vec::new(),
                        conflicts,
                    },
                };
                return (Ok(output), stats, Some(note));
            }
            Prepared::Write { request, changes } => (request, changes),
            Prepared::Locked { reason, .. } => return (refused(LOCKED, reason), stats, None),
            Prepared::NotFound(why) => {
                return (refused("ResourceNotFoundException", why), stats, None)
            }
            Prepared::Invalid { code, message } => {
                let message = format!("the record with the patch merged in: {message}");
                return (refused(&code, message), stats, None);
            }
        };
        let (result, st, landed) = call_with_retries(&w, update.update, &merged).await;
        stats.push(st);
        match result {
            Err(CallFailure::Api(e))
                if e.code == "ConflictException" && conflicts < MAX_CONFLICTS =>
            {
                conflicts += 1;
                own = landed.then_some(changes);
                tracing::debug!(op = update.update, conflicts, "stale update: reading again");
            }
            Ok(output) => return (Ok(output), stats, Some(PatchNote { changes, conflicts })),
            Err(f) => return (Err(f), stats, None),
        }
    }
}

/// One read outside a run (`plan --live`): through `limits`, retried like a step's call
/// (throttling, 5xx, transport), never stopped early. Returns the answer and the attempts
/// sent, and the throttled ones.
pub(super) async fn read_once<C: ApiClient>(
    client: Arc<C>,
    limits: Arc<Limits>,
    op: &str,
    request: &Value,
) -> (Result<Value, ApiError>, u64, u64) {
    let o = Options::new(1, MaxFailures::Count(0), 0);
    // the sender stays alive for the read: it never stops
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let w = Worker {
        client,
        limits,
        opts: (o.max_attempts, o.backoff_base, o.backoff_cap),
        stop,
        quota_wait: None,
    };
    let (r, stats, _) = call_with_retries(&w, op, request).await;
    let r = r.map_err(|f| match f {
        CallFailure::Api(e) => e,
        CallFailure::Daily(d) => ApiError {
            kind: ErrorKind::Client,
            code: "DailyQuotaExhausted".into(),
            message: format!(
                "the rolling 24-hour {} quota ({} calls) is spent",
                d.class, d.limit
            ),
        },
        CallFailure::Cancelled => ApiError {
            kind: ErrorKind::Client,
            code: "Cancelled".into(),
            message: "the read was cancelled".into(),
        },
    });
    (r, stats.sent, stats.throttles)
}

/// The read of an effect check, and its verdict on the write `request`.
async fn effect_check<C: ApiClient>(
    w: &Worker<C>,
    check: &'static EffectCheck,
    request: &Value,
) -> (Result<Verdict, CallFailure>, WorkerStats) {
    let read_request = (check.read_request)(request);
    let (answer, stats, _) = call_with_retries(w, check.read, &read_request).await;
    let verdict = match &answer {
        Ok(v) => Ok((check.judge)(request, Ok(v))),
        Err(CallFailure::Api(e)) if e.kind == ErrorKind::Client => {
            Ok((check.judge)(request, Err(e.code.as_str())))
        }
        Err(_) => Err(answer.unwrap_err()),
    };
    (verdict, stats)
}

/// One worker: wait for the limiters, call, retry retryable errors with backoff. Once the
/// run is stopping, a call still waiting for its turn (or for its next attempt) is not sent:
/// only calls already on the wire finish. The flag says whether an attempt failed in a way
/// that may have been applied ([`may_have_landed`]).
async fn call_with_retries<C: ApiClient>(
    w: &Worker<C>,
    op: &str,
    request: &Value,
) -> (Result<Value, CallFailure>, WorkerStats, bool) {
    let (client, limits, quota_wait) = (&w.client, &w.limits, &w.quota_wait);
    let mut stop = w.stop.clone();
    let op = op.to_string();
    let mut landed = false;
    let (max_attempts, base, cap) = w.opts;
    let mut stats = WorkerStats {
        op: op.clone(),
        sent: 0,
        throttles: 0,
        retries: 0,
        attempts: Vec::new(),
    };
    let mut attempt = 0u32;
    loop {
        let turn = tokio::select! {
            biased;
            _ = stopping(&mut stop) => return (Err(CallFailure::Cancelled), stats, landed),
            t = limits.acquire(&op) => t,
        };
        if let Err(d) = turn {
            let Some(tx) = &quota_wait else {
                return (Err(CallFailure::Daily(d)), stats, landed);
            };
            // wait until the oldest call of the window has left it, then take a turn again
            // (others may be waiting for the same slot: the next one waits for the next)
            let until = d.resume_at;
            let _ = tx.send(d);
            let wait = until
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            tokio::select! {
                biased;
                _ = stopping(&mut stop) => return (Err(CallFailure::Cancelled), stats, landed),
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        if *stop.borrow() {
            return (Err(CallFailure::Cancelled), stats, landed);
        }
        stats.sent += 1;
        let (left, t0) = (std::time::SystemTime::now(), Instant::now());
        let answer = client.call(&op, request.clone()).await;
        stats.attempts.push((
            left,
            t0.elapsed(),
            answer.as_ref().err().map(|e| e.code.clone()),
        ));
        match answer {
            Ok(v) => {
                limits.succeeded(&op);
                return (Ok(v), stats, landed);
            }
            Err(e) => {
                if e.kind == ErrorKind::Throttling {
                    stats.throttles += 1;
                    limits.throttled(&op);
                }
                attempt += 1;
                if !e.retryable() || attempt >= max_attempts {
                    return (Err(CallFailure::Api(e)), stats, landed);
                }
                landed |= may_have_landed(&e);
                stats.retries += 1;
                tracing::debug!(op, code = %e.code, attempt, "retrying");
                tokio::select! {
                    biased;
                    _ = stopping(&mut stop) => return (Err(CallFailure::Cancelled), stats, landed),
                    _ = tokio::time::sleep(backoff(attempt - 1, base, cap)) => {}
                }
            }
        }
    }
}

/// The coordinator. `prior` is the replayed journal (empty for a new run).
pub struct Coordinator<C: ApiClient> {
    campaign: Arc<Campaign>,
    client: Arc<C>,
    limits: Arc<Limits>,
    journal: JournalWriter,
    journal_path: String,
    opts: Options,
    progress: Progress,
    setup_outputs: Map<String, Value>,
    active: HashMap<RowRef, Active>,
    waiting: Vec<Waiting>,
    polls_in_flight: usize,
    workers: JoinSet<(Done, Vec<WorkerStats>)>,
    /// Calls to start after the next commit: (row, step, action, request, whether an earlier
    /// process left this step in flight, a `patch` step's rendered patch).
    to_spawn: Vec<(RowRef, usize, String, Value, bool, Option<Value>)>,
    summary: Summary,
    stop: Option<Stop>,
    /// Tells workers the run is stopping (set with `stop`).
    stop_tx: tokio::sync::watch::Sender<bool>,
    /// Workers waiting for a rolling window say so here (with `wait_for_quota`).
    quota_tx: tokio::sync::mpsc::UnboundedSender<DailyExhausted>,
    quota_rx: tokio::sync::mpsc::UnboundedReceiver<DailyExhausted>,
    /// Until when each class is known to wait (so one wait is journaled once).
    waiting_for: BTreeMap<QuotaClass, std::time::SystemTime>,
    dirty: bool,
}

/// Rows waiting on a task hold no concurrency slot; this bounds how many may wait at once.
const MAX_WAITING: usize = 10_000;

impl<C: ApiClient> Coordinator<C> {
    pub fn new(
        campaign: Arc<Campaign>,
        client: Arc<C>,
        limits: Arc<Limits>,
        journal: JournalWriter,
        journal_path: String,
        opts: Options,
        progress: Progress,
    ) -> Self {
        let (quota_tx, quota_rx) = tokio::sync::mpsc::unbounded_channel();
        Coordinator {
            campaign,
            client,
            limits,
            journal,
            journal_path,
            opts,
            progress,
            setup_outputs: Map::new(),
            active: HashMap::new(),
            waiting: Vec::new(),
            polls_in_flight: 0,
            workers: JoinSet::new(),
            to_spawn: Vec::new(),
            summary: Summary::default(),
            stop: None,
            stop_tx: tokio::sync::watch::channel(false).0,
            quota_tx,
            quota_rx,
            waiting_for: BTreeMap::new(),
            dirty: false,
        }
    }

    fn record(&mut self, rec: Record) -> Result<(), EngineError> {
        self.dirty = true;
        self.journal
            .append(&rec)
            .map_err(|source| EngineError::Journal {
                path: self.journal_path.clone(),
                source,
            })
    }

    /// Make every appended record durable, then start the calls that depended on them.
    fn commit_and_spawn(&mut self) -> Result<(), EngineError> {
        if self.dirty {
            self.journal
                .commit()
                .map_err(|source| EngineError::Journal {
                    path: self.journal_path.clone(),
                    source,
                })?;
            self.dirty = false;
        }
        if self.stop.is_some() {
            // stopping: calls queued behind the limiters are not sent, and what was
            // journaled as started stays in flight for resume
            self.stop_tx.send_replace(true);
            self.to_spawn.clear();
        }
        for (rref, step, op, request, uncertain, patch) in std::mem::take(&mut self.to_spawn) {
            let w = self.worker();
            let update = patch
                .is_some()
                .then(|| crate::model::update::spec(&op))
                .flatten();
            self.workers.spawn(async move {
                let (result, stats, effect, patched) = match (update, patch) {
                    (Some(u), Some(p)) => {
                        let (r, s, n) = patch_step(w, u, request.clone(), p).await;
                        (r, s, None, n)
                    }
                    _ => {
                        let (r, s, e) = call_step(w, op, request.clone(), uncertain).await;
                        (r, s, e, None)
                    }
                };
                (
                    Done::Call {
                        rref,
                        step,
                        request,
                        result,
                        effect,
                        patched,
                    },
                    stats,
                )
            });
        }
        Ok(())
    }

    fn worker(&self) -> Worker<C> {
        Worker {
            client: self.client.clone(),
            limits: self.limits.clone(),
            opts: (
                self.opts.max_attempts,
                self.opts.backoff_base,
                self.opts.backoff_cap,
            ),
            stop: self.stop_tx.subscribe(),
            quota_wait: self.opts.wait_for_quota.then(|| self.quota_tx.clone()),
        }
    }

    fn steps_of(&self, rref: RowRef) -> &[crate::plan::Step] {
        match rref {
            RowRef::Setup => self.campaign.setup(),
            RowRef::Row(_) => self.campaign.steps(),
        }
    }

    /// Run a row forward until it needs a call, waits for a task, or finishes.
    fn advance(&mut self, rref: RowRef) -> Result<(), EngineError> {
        loop {
            let campaign = self.campaign.clone();
            let steps = match rref {
                RowRef::Setup => campaign.setup(),
                RowRef::Row(_) => campaign.steps(),
            };
            let Some(a) = self.active.get(&rref) else {
                return Ok(());
            };
            if a.next >= steps.len() {
                let status = if a.any_ran || steps.is_empty() {
                    RowStatus::Succeeded
                } else {
                    RowStatus::Skipped
                };
                return self.finish_row(rref, status);
            }
            if self.stop.is_some() {
                // stopping: no new calls; the row stays unfinished in the journal
                self.active.remove(&rref);
                return Ok(());
            }
            let step = &steps[a.next];
            let step_idx = a.next;
            let ctx = RenderContext {
                row: a.row.as_ref(),
                setup: &self.setup_outputs,
                steps: &a.outputs,
            };
            match campaign.when(step, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    self.record(Record::StepSkipped {
                        row: rref,
                        step: step.id.clone(),
                        reason: "when is false".into(),
                        at: now(),
                    })?;
                    self.active.get_mut(&rref).unwrap().next += 1;
                    continue;
                }
                Err(d) => {
                    let msg = d.to_string();
                    return self.fail_step(rref, step_idx, "TemplateError", &msg);
                }
            }
            let mut request = match campaign.render(step, &ctx) {
                Ok(r) => r,
                Err(d) => {
                    let msg = d.to_string();
                    return self.fail_step(rref, step_idx, "TemplateError", &msg);
                }
            };
            // a redriven step is a new request: a fresh ClientToken generation, since the
            // same token would only return the original failed result
            if let Some(g) = a.generations.get(&step.id).copied().filter(|g| *g > 0) {
                let key = match (rref, a.row.as_ref()) {
                    (RowRef::Row(_), Some(r)) => r.key.as_str(),
                    _ => crate::plan::SETUP_KEY,
                };
                let default = crate::plan::client_token(campaign.name(), key, &step.id);
                if let Some(tok) = crate::model::model()
                    .operation(&step.action)
                    .and_then(|o| o.idempotency_member())
                {
                    if request.get(tok).and_then(Value::as_str) == Some(default.as_str()) {
                        request[tok] = Value::String(crate::plan::client_token_generation(
                            campaign.name(),
                            key,
                            &step.id,
                            g,
                        ));
                    }
                }
            }
            let patch = match campaign.render_patch(step, &ctx) {
                Ok(p) => p,
                Err(d) => {
                    let msg = d.to_string();
                    return self.fail_step(rref, step_idx, "TemplateError", &msg);
                }
            };
            // The offline validation covered every row; run-time values (earlier outputs)
            // are checked here, before anything is sent (a patch step's whole request is
            // checked once it is merged with the record it reads).
            let model = crate::model::model();
            let violations = match &patch {
                Some(p) => {
                    let mut both = request.clone();
                    if let (Some(o), Some(p)) = (both.as_object_mut(), p.as_object()) {
                        o.extend(p.clone());
                    }
                    model.check_patch(&step.action, &both)
                }
                None => model.validate_input(&step.action, &request),
            };
            if let Some(v) = violations.first() {
                let msg = format!("{}: {}", v.path, v.message);
                return self.fail_step(rref, step_idx, v.code.as_str(), &msg);
            }
            let digested = match &patch {
                Some(p) => digest(&serde_json::json!({"input": request, "patch": p})),
                None => digest(&request),
            };
            let token = request
                .get("ClientToken")
                .and_then(Value::as_str)
                .map(str::to_string);
            self.record(Record::StepStarted {
                row: rref,
                step: step.id.clone(),
                token,
                digest: digested,
                at: now(),
            })?;
            let a = self.active.get_mut(&rref).unwrap();
            a.any_ran = true;
            let uncertain = a.resumed_in_flight.take() == Some(step_idx);
            self.to_spawn.push((
                rref,
                step_idx,
                step.action.clone(),
                request,
                uncertain,
                patch,
            ));
            return Ok(());
        }
    }

    fn fail_step(
        &mut self,
        rref: RowRef,
        step_idx: usize,
        code: &str,
        message: &str,
    ) -> Result<(), EngineError> {
        let step_id = self.steps_of(rref)[step_idx].id.clone();
        self.record(Record::StepFailed {
            row: rref,
            step: step_id.clone(),
            code: code.to_string(),
            message: message.to_string(),
            at: now(),
        })?;
        if rref == RowRef::Setup {
            self.stop = Some(Stop::SetupFailed {
                step: step_id,
                error: format!("{code}: {message}"),
            });
        }
        self.finish_row(rref, RowStatus::Failed)
    }

    fn finish_row(&mut self, rref: RowRef, status: RowStatus) -> Result<(), EngineError> {
        self.active.remove(&rref);
        self.record(Record::RowFinished {
            row: rref,
            status,
            at: now(),
        })?;
        if rref == RowRef::Setup {
            return Ok(());
        }
        match status {
            RowStatus::Succeeded => self.summary.succeeded += 1,
            RowStatus::Skipped => self.summary.skipped += 1,
            RowStatus::Failed => {
                self.summary.failed += 1;
                let failed = self.summary.failed;
                let (over, allowed) = match self.opts.max_failures {
                    MaxFailures::Count(n) => (failed > n, format!("{n} rows")),
                    MaxFailures::Percent(p) => (
                        (failed as f64) > p / 100.0 * self.opts.total_rows as f64,
                        format!("{p}% of {} rows", self.opts.total_rows),
                    ),
                };
                if over && self.stop.is_none() {
                    self.stop = Some(Stop::MaxFailures { failed, allowed });
                }
            }
        }
        self.progress.row_finished(status);
        Ok(())
    }

    fn step_succeeded(
        &mut self,
        rref: RowRef,
        step_idx: usize,
        output: Value,
    ) -> Result<(), EngineError> {
        let campaign = self.campaign.clone();
        let step = &self.steps_of(rref)[step_idx];
        let step_id = step.id.clone();
        let Some(a) = self.active.get(&rref) else {
            return Ok(());
        };
        let ctx = RenderContext {
            row: a.row.as_ref(),
            setup: &self.setup_outputs,
            steps: &a.outputs,
        };
        let expect = campaign.check_expect(step, &output, &ctx);
        self.record(Record::StepSucceeded {
            row: rref,
            step: step_id.clone(),
            output: output.clone(),
            at: now(),
        })?;
        if let Err(mismatch) = expect {
            return self.fail_step(rref, step_idx, "ExpectationFailed", &mismatch);
        }
        if rref == RowRef::Setup {
            self.setup_outputs.insert(step_id.clone(), output.clone());
        }
        let a = self.active.get_mut(&rref).unwrap();
        a.outputs.insert(step_id, output);
        a.next = step_idx + 1;
        self.advance(rref)
    }

    fn on_call(
        &mut self,
        rref: RowRef,
        step_idx: usize,
        request: Value,
        result: Result<Value, CallFailure>,
    ) -> Result<(), EngineError> {
        let step = self.steps_of(rref)[step_idx].clone();
        match result {
            Ok(output) => {
                if let Some(p) = step.paginate {
                    return self.on_page(rref, step_idx, p, request, output);
                }
                if let (Some(timeout), Some(waiter)) = (step.wait, ops::waiter(&step.action)) {
                    let id = waiter.id_of(&request, &output);
                    match id {
                        Some(id) if waiter.start_is_pending(&output) => {
                            let id = id.to_string();
                            self.record(Record::TaskWaiting {
                                row: rref,
                                step: step.id.clone(),
                                task_id: id.clone(),
                                at: now(),
                            })?;
                            self.waiting.push(Waiting {
                                rref,
                                step: step_idx,
                                task_id: id,
                                waiter,
                                deadline: Instant::now() + timeout,
                                since: Some(Instant::now()),
                            });
                            return Ok(());
                        }
                        // a start that already answered its final status is not polled
                        id => {
                            let id = id.unwrap_or("").to_string();
                            return self.task_settled(rref, step_idx, waiter, &id, output);
                        }
                    }
                }
                self.step_succeeded(rref, step_idx, output)
            }
            Err(CallFailure::Api(e)) if is_environment(&e) => {
                // not the row's fault: the row stays in flight and resume re-sends the call
                // (with the same ClientToken) once the environment is fixed
                if self.stop.is_none() {
                    self.stop = Some(Stop::Environment {
                        code: e.code.clone(),
                        message: e.message.clone(),
                    });
                }
                self.active.remove(&rref);
                Ok(())
            }
            Err(CallFailure::Api(e)) => self.fail_step(rref, step_idx, &e.code, &e.message),
            Err(CallFailure::Daily(d)) => {
                if self.stop.is_none() {
                    self.stop = Some(Stop::Daily(d));
                }
                // the step was journaled as started and never sent: resume sends it
                self.active.remove(&rref);
                Ok(())
            }
            Err(CallFailure::Cancelled) => {
                // stopping: not sent (or its outcome unknown); resume sends it with the same
                // ClientToken
                self.active.remove(&rref);
                Ok(())
            }
        }
    }

    /// One page of a `paginate` step: collect its items; follow the paginator's token (at the
    /// operation's quota, through the same limiters) until the last page or `max_items`; then
    /// the step's output is the last page with every collected item under the result key.
    fn on_page(
        &mut self,
        rref: RowRef,
        step_idx: usize,
        p: crate::plan::Paginate,
        request: Value,
        mut output: Value,
    ) -> Result<(), EngineError> {
        let pg = p.paginator;
        let Some(a) = self.active.get_mut(&rref) else {
            return Ok(());
        };
        if let Some(Value::Array(items)) = output.get_mut(&pg.result_key).map(Value::take) {
            a.paged.extend(items);
        }
        let full = p.max_items.is_some_and(|m| a.paged.len() as u64 >= m);
        let token = output
            .get(&pg.output_token)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if let (Some(token), false) = (token, full) {
            if self.stop.is_some() {
                // stopping: the step stays in flight and resume reads it again from page one
                self.active.remove(&rref);
                return Ok(());
            }
            let mut next = request;
            next[pg.input_token.as_str()] = Value::String(token);
            let action = self.steps_of(rref)[step_idx].action.clone();
            self.to_spawn
                .push((rref, step_idx, action, next, false, None));
            return Ok(());
        }
        let mut items = std::mem::take(&mut a.paged);
        if let Some(m) = p.max_items {
            items.truncate(m as usize);
        }
        if let Value::Object(o) = &mut output {
            o.remove(&pg.output_token);
            o.insert(pg.result_key.clone(), Value::Array(items));
        }
        self.step_succeeded(rref, step_idx, output)
    }

    /// Awaited work finished (a task reached COMPLETE or FAILED, a Get answered a final
    /// state), or its start call answered with a final status.
    fn task_settled(
        &mut self,
        rref: RowRef,
        step_idx: usize,
        waiter: Waiter,
        id: &str,
        answer: Value,
    ) -> Result<(), EngineError> {
        match waiter.progress(&answer) {
            ops::Progress::Failed { code, message } => self.fail_step(
                rref,
                step_idx,
                &code,
                &format!("{} {id}: {message}", waiter.noun()),
            ),
            _ => self.step_succeeded(rref, step_idx, answer),
        }
    }

    fn spawn_polls(&mut self) -> Result<(), EngineError> {
        let now_i = Instant::now();
        // time-outs first
        let mut expired = Vec::new();
        self.waiting.retain(|w| {
            if w.deadline <= now_i {
                expired.push((w.rref, w.step, w.task_id.clone(), w.waiter.noun()));
                false
            } else {
                true
            }
        });
        for (rref, step, id, noun) in expired {
            self.fail_step(
                rref,
                step,
                "WaitTimeout",
                &format!("{noun} {id} did not finish within the step's wait timeout"),
            )?;
        }
        // one request per waiter batch: up to 10 task ids for a List…Tasks, one id for a Get
        let mut by_op: BTreeMap<&'static str, (Waiter, Vec<String>)> = BTreeMap::new();
        for w in &self.waiting {
            by_op
                .entry(w.waiter.poll)
                .or_insert_with(|| (w.waiter, Vec::new()))
                .1
                .push(w.task_id.clone());
        }
        let catalog = self.campaign.catalog().to_string();
        for (op, (waiter, ids)) in by_op {
            for chunk in ids.chunks(waiter.batch) {
                let ids = chunk.to_vec();
                let request = waiter.poll_request(&catalog, &ids);
                let w = self.worker();
                self.polls_in_flight += 1;
                self.workers.spawn(async move {
                    let (result, stats, _) = call_with_retries(&w, op, &request).await;
                    (
                        Done::Poll {
                            waiter,
                            ids,
                            result,
                        },
                        vec![stats],
                    )
                });
            }
        }
        Ok(())
    }

    fn on_poll(
        &mut self,
        waiter: Waiter,
        ids: Vec<String>,
        result: Result<Value, CallFailure>,
    ) -> Result<(), EngineError> {
        self.polls_in_flight -= 1;
        let out = match result {
            Ok(v) => v,
            Err(CallFailure::Cancelled) => return Ok(()),
            Err(CallFailure::Daily(d)) => {
                if self.stop.is_none() {
                    self.stop = Some(Stop::Daily(d));
                }
                return Ok(());
            }
            Err(CallFailure::Api(e)) if is_environment(&e) => {
                if self.stop.is_none() {
                    self.stop = Some(Stop::Environment {
                        code: e.code,
                        message: e.message,
                    });
                }
                return Ok(());
            }
            Err(CallFailure::Api(e)) => {
                // a failed poll is not a failed task: the next tick polls again
                tracing::warn!(code = %e.code, "task poll failed: {}", e.message);
                return Ok(());
            }
        };
        for (id, answer) in waiter.answers(&ids, &out) {
            if waiter.progress(answer) == ops::Progress::Running {
                continue;
            }
            if let Some(pos) = self
                .waiting
                .iter()
                .position(|w| w.task_id == id && w.waiter.poll == waiter.poll)
            {
                let w = self.waiting.swap_remove(pos);
                if let Some(since) = w.since {
                    let took = since.elapsed();
                    let m = self.summary.min_task_wait.get_or_insert(took);
                    *m = (*m).min(took);
                }
                self.task_settled(w.rref, w.step, waiter, &id, answer.clone())?;
            }
        }
        Ok(())
    }

    /// Bring a row into the active set, restoring what the journal says of it.
    fn activate(
        &mut self,
        rref: RowRef,
        row: Option<Row>,
        prior: Option<&crate::journal::RowState>,
    ) -> Result<(), EngineError> {
        let mut a = Active {
            row,
            next: 0,
            outputs: Map::new(),
            any_ran: false,
            generations: prior.map(|p| p.generations.clone()).unwrap_or_default(),
            paged: Vec::new(),
            resumed_in_flight: None,
        };
        let mut resume_wait = None;
        if let Some(p) = prior {
            let steps = self.steps_of(rref);
            for (i, s) in steps.iter().enumerate() {
                match p.steps.get(&s.id) {
                    Some(StepState::Succeeded { output }) => {
                        a.outputs.insert(s.id.clone(), output.clone());
                        a.next = i + 1;
                        a.any_ran = true;
                    }
                    Some(StepState::Skipped { .. }) => a.next = i + 1,
                    Some(StepState::Waiting { task_id, .. }) => {
                        a.any_ran = true;
                        resume_wait = Some((i, task_id.clone(), s.action.clone(), s.wait));
                        break;
                    }
                    Some(StepState::InFlight { .. }) => {
                        a.resumed_in_flight = Some(i);
                        break;
                    }
                    _ => break,
                }
            }
        }
        self.active.insert(rref, a);
        if let Some((i, task_id, action, wait)) = resume_wait {
            if let Some(waiter) = ops::waiter(&action) {
                self.waiting.push(Waiting {
                    rref,
                    step: i,
                    task_id,
                    waiter,
                    deadline: Instant::now() + wait.unwrap_or(Duration::from_secs(600)),
                    since: None,
                });
                return Ok(());
            }
        }
        self.advance(rref)
    }

    /// Count a worker's calls, and journal each attempt it sent (for the daily budgets of a
    /// resume and for the run report), in the same group commit as its result.
    fn absorb(&mut self, stats: Vec<WorkerStats>) -> Result<(), EngineError> {
        for s in stats {
            self.absorb_one(s)?;
        }
        Ok(())
    }

    fn absorb_one(&mut self, stats: WorkerStats) -> Result<(), EngineError> {
        for (i, (left, took, code)) in stats.attempts.iter().enumerate() {
            self.record(Record::Call {
                op: stats.op.clone(),
                at: chrono::DateTime::<chrono::Utc>::from(*left)
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ms: took.as_millis() as u64,
                attempt: i as u32 + 1,
                code: code.clone(),
            })?;
        }
        // the progress line shows calls answered per second, per class of the operation
        // sent (a patch step's read is a read); a call spawned waits for its turn in the
        // limiter, so counting spawns would misreport the pace
        let class = QuotaClass::of(&stats.op);
        for _ in 0..stats.sent {
            self.progress.call(class);
        }
        if stats.sent > 0 {
            *self.summary.calls.entry(stats.op.clone()).or_default() += stats.sent;
            *self
                .summary
                .calls_per_class
                .entry(QuotaClass::of(&stats.op))
                .or_default() += stats.sent;
        }
        self.summary.throttles += stats.throttles;
        self.summary.retries += stats.retries;
        self.progress.throttled(stats.throttles);
        Ok(())
    }

    /// Run setup, then every row. Returns the summary; the journal is committed.
    pub async fn run(mut self, prior: RunState) -> Result<Summary, EngineError> {
        let started = Instant::now();
        let mut signals = Signals::new();
        let mut poll_tick = tokio::time::interval(self.opts.poll_interval);
        poll_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut progress_tick = tokio::time::interval(Duration::from_millis(250));

        // ---- setup
        let setup_done = prior.setup.status == Some(RowStatus::Succeeded);
        if setup_done {
            for s in self.campaign.setup() {
                if let Some(StepState::Succeeded { output }) = prior.setup.steps.get(&s.id) {
                    self.setup_outputs.insert(s.id.clone(), output.clone());
                }
            }
        } else if !self.campaign.setup().is_empty() {
            for s in self.campaign.setup().to_vec() {
                if let Some(StepState::Succeeded { output }) = prior.setup.steps.get(&s.id) {
                    self.setup_outputs.insert(s.id.clone(), output.clone());
                }
            }
            self.activate(RowRef::Setup, None, Some(&prior.setup))?;
            self.commit_and_spawn()?;
            while self.active.contains_key(&RowRef::Setup) {
                tokio::select! {
                    Some(joined) = self.workers.join_next() => {
                        let (done, stats) = joined.expect("worker panicked");
                        self.absorb(stats)?;
                        self.dispatch(done)?;
                    }
                    _ = poll_tick.tick(), if !self.waiting.is_empty() && self.polls_in_flight == 0 => self.spawn_polls()?,
                    Some(d) = self.quota_rx.recv() => self.on_quota_wait(d)?,
                    sig = signals.next() => {
                        if sig { self.stop = Some(Stop::Aborted); break; }
                        self.stop = Some(Stop::Interrupted);
                    }
                }
                self.commit_and_spawn()?;
                if self.stop.is_some() && self.workers.is_empty() {
                    break;
                }
            }
            if self.stop.is_some() {
                self.journal_commit()?;
                self.summary.stop = self.stop.take();
                self.summary.elapsed = started.elapsed();
                return Ok(self.summary);
            }
        }

        // ---- rows
        let mut rows = self
            .campaign
            .rows()
            .map_err(|d| EngineError::Input(d.render_text()))?;
        let mut rows_exhausted = false;
        loop {
            // fill the window
            // a row waiting on a task holds no slot: the slots are for rows with calls to make
            while !rows_exhausted
                && self.stop.is_none()
                && self.active.len() - self.waiting.len().min(self.active.len())
                    < self.opts.concurrency
                && self.waiting.len() < MAX_WAITING
            {
                // rows an earlier process finished are passed over without building them
                let finished = |i: u64| prior.rows.get(&i).is_some_and(|p| p.status.is_some());
                match rows.next_unless(finished) {
                    None => rows_exhausted = true,
                    Some(Err(d)) => return Err(EngineError::Input(d.to_string())),
                    Some(Ok(None)) => {
                        self.summary.already_done += 1;
                        self.progress.row_already_done();
                    }
                    Some(Ok(Some(row))) => {
                        let idx = row.index;
                        self.activate(RowRef::Row(idx), Some(row), prior.rows.get(&idx))?;
                    }
                }
            }
            self.commit_and_spawn()?;
            if self.active.is_empty() && (rows_exhausted || self.stop.is_some()) {
                break;
            }
            if self.stop.is_some() && self.workers.is_empty() {
                // only waiting tasks remain: they stay waiting in the journal
                break;
            }
            tokio::select! {
                Some(joined) = self.workers.join_next() => {
                    let (done, stats) = joined.expect("worker panicked");
                    self.absorb(stats)?;
                    self.dispatch(done)?;
                    // take every other result that is already in, so one group commit
                    // covers them all
                    while let Some(joined) = self.workers.try_join_next() {
                        let (done, stats) = joined.expect("worker panicked");
                        self.absorb(stats)?;
                        self.dispatch(done)?;
                    }
                }
                _ = poll_tick.tick(), if !self.waiting.is_empty() && self.polls_in_flight == 0 && self.stop.is_none() => self.spawn_polls()?,
                _ = progress_tick.tick() => self.progress.tick(&self.limits),
                Some(d) = self.quota_rx.recv() => self.on_quota_wait(d)?,
                sig = signals.next() => {
                    if sig {
                        self.stop = Some(Stop::Aborted);
                        break;
                    }
                    if self.stop.is_none() { self.stop = Some(Stop::Interrupted); }
                    self.progress.note("interrupted: finishing calls in flight (press Ctrl-C again to leave at once)");
                }
            }
        }
        self.journal_commit()?;
        self.progress.finish();
        self.summary.stop = self.stop.take();
        self.summary.elapsed = started.elapsed();
        Ok(self.summary)
    }

    /// A worker waits for room in a class's rolling window: journal the wait once (until a
    /// later one) and say what is waited for, until when, in UTC and local time.
    fn on_quota_wait(&mut self, d: DailyExhausted) -> Result<(), EngineError> {
        let now = std::time::SystemTime::now();
        match self.waiting_for.get(&d.class) {
            Some(until) if *until >= d.resume_at => return Ok(()),
            // a window frees its slots one by one, as its calls leave it: a wait that ended
            // a moment ago and another now are one wait for that window
            Some(until) if *until + Duration::from_secs(2) > now => {
                // the same wait, for the next slot: extend it silently
                if let Some(w) = self
                    .summary
                    .quota_waits
                    .iter_mut()
                    .rev()
                    .find(|w| w.0 == d.class)
                {
                    w.2 = d.resume_at;
                }
                self.waiting_for.insert(d.class, d.resume_at);
                return Ok(());
            }
            _ => {}
        }
        self.waiting_for.insert(d.class, d.resume_at);
        self.summary.quota_waits.push((d.class, now, d.resume_at));
        let utc: chrono::DateTime<chrono::Utc> = d.resume_at.into();
        let local: chrono::DateTime<chrono::Local> = d.resume_at.into();
        self.record(Record::QuotaWait {
            class: d.class.name().to_string(),
            at: self::now(),
            until: utc.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })?;
        self.progress.note(&format!(
            "waiting for the {} quota: the {} calls its rolling window allows are used; the \
             next fits at {} UTC ({} local). Ctrl-C stops cleanly, and resume goes on.",
            d.class,
            d.limit,
            utc.format("%Y-%m-%d %H:%M:%S"),
            local.format("%Y-%m-%d %H:%M:%S %Z")
        ));
        self.journal_commit()
    }

    fn journal_commit(&mut self) -> Result<(), EngineError> {
        self.journal
            .commit()
            .map_err(|source| EngineError::Journal {
                path: self.journal_path.clone(),
                source,
            })
    }

    fn dispatch(&mut self, done: Done) -> Result<(), EngineError> {
        match done {
            Done::Call {
                rref,
                step,
                request,
                result,
                effect,
                patched,
            } => {
                if let Some(n) = patched {
                    let step_id = self.steps_of(rref)[step].id.clone();
                    if n.changes.is_empty() {
                        self.summary.unchanged += 1;
                    } else {
                        self.summary.patched += 1;
                    }
                    self.summary.conflicts += n.conflicts as u64;
                    self.record(Record::Patched {
                        row: rref,
                        step: step_id,
                        changes: serde_json::to_value(&n.changes).unwrap_or_default(),
                        conflicts: n.conflicts,
                        at: now(),
                    })?;
                }
                if let Some(n) = effect {
                    let step_id = self.steps_of(rref)[step].id.clone();
                    if n.in_place {
                        self.summary.already_in_place += 1;
                    }
                    self.record(Record::EffectChecked {
                        row: rref,
                        step: step_id,
                        code: n.code,
                        read: n.read.to_string(),
                        in_place: n.in_place,
                        detail: n.detail,
                        at: now(),
                    })?;
                }
                self.on_call(rref, step, request, result)
            }
            Done::Poll {
                waiter,
                ids,
                result,
            } => self.on_poll(waiter, ids, result),
        }
    }
}

/// SIGINT / SIGTERM / SIGHUP: `next()` resolves with `false` on the first signal, `true` on
/// the second.
struct Signals {
    count: u32,
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
    match s.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            count: 0,
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }
    async fn next(&mut self) -> bool {
        tokio::select! {
            _ = recv(&mut self.int) => {},
            _ = recv(&mut self.term) => {},
            _ = recv(&mut self.hup) => {},
        }
        self.count += 1;
        self.count > 1
    }
}

#[cfg(test)]
mod tests {
    //! The coordinator through a scripted [`ApiClient`]: what it sends, in which order, and
    //! what it leaves for resume. The SDK and the emulator are covered by the integration
    //! tests; here the point is the run loop's own decisions.
    use super::*;
    use crate::engine::limits::RateConfig;
    use serde_json::json;
    use std::sync::Mutex;

    /// The script: (operation, request, call number from 1) → the answer.
    type Script = Box<dyn Fn(&str, &Value, usize) -> Result<Value, ApiError> + Send + Sync>;

    /// Answers each call from a script and records it.
    struct Scripted {
        calls: Mutex<Vec<(String, Value)>>,
        answer: Script,
    }

    impl Scripted {
        fn new(
            f: impl Fn(&str, &Value, usize) -> Result<Value, ApiError> + Send + Sync + 'static,
        ) -> Arc<Self> {
            Arc::new(Scripted {
                calls: Mutex::new(Vec::new()),
                answer: Box::new(f),
            })
        }
        fn ops(&self) -> Vec<String> {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .map(|c| c.0.clone())
                .collect()
        }
    }

    impl ApiClient for Scripted {
        fn call(
            &self,
            operation: &str,
            request: Value,
        ) -> impl std::future::Future<Output = Result<Value, ApiError>> + Send {
            let n = {
                let mut c = self.calls.lock().unwrap();
                c.push((operation.to_string(), request.clone()));
                c.len()
            };
            let r = (self.answer)(operation, &request, n);
            async move { r }
        }
    }

    const ACCEPT: &str = r#"
version: 1
name: accept-test
catalog: Sandbox
input: { csv: rows.csv, key: "{{ row.id }}" }
steps:
  - id: accept
    action: StartEngagementByAcceptingInvitationTask
    input: { Identifier: "{{ row.id }}" }
    wait: { timeout: 1m, interval: 20ms }
"#;

    struct Fixture {
        _dir: tempfile::TempDir,
        campaign: Arc<Campaign>,
        journal: JournalWriter,
    }

    fn fixture(rows: usize) -> Fixture {
        let mut csv = String::from("id\n");
        for i in 0..rows {
            csv.push_str(&format!("engi-{i:013}\n"));
        }
        fixture_with(ACCEPT, &csv)
    }

    fn fixture_with(playbook: &str, csv: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pb.yaml"), playbook).unwrap();
        std::fs::write(dir.path().join("rows.csv"), csv).unwrap();
        let campaign = Campaign::load(&crate::cli::CampaignArgs {
            playbook: dir.path().join("pb.yaml"),
            input: None,
            sheet: None,
            vars: vec![],
        })
        .unwrap();
        let journal =
            JournalWriter::create(&dir.path().join("journal.jsonl"), "accept-test-run").unwrap();
        Fixture {
            _dir: dir,
            campaign: Arc::new(campaign),
            journal,
        }
    }

    async fn drive(
        f: Fixture,
        client: Arc<Scripted>,
        concurrency: usize,
        prior: RunState,
    ) -> Summary {
        let _dir = f._dir;
        drive_parts(f.campaign, f.journal, client, concurrency, prior).await
    }

    async fn drive_parts(
        campaign: Arc<Campaign>,
        journal: JournalWriter,
        client: Arc<Scripted>,
        concurrency: usize,
        prior: RunState,
    ) -> Summary {
        let mut cfg = RateConfig::default();
        cfg.set("write", 1000.0);
        cfg.set("read", 1000.0);
        let mut opts = Options::new(concurrency, MaxFailures::Count(u64::MAX), 0);
        opts.poll_interval = Duration::from_millis(20);
        opts.backoff_base = Duration::from_millis(1);
        let c = Coordinator::new(
            campaign,
            client,
            Arc::new(Limits::new(cfg)),
            journal,
            "journal.jsonl".into(),
            opts,
            Progress::new(0, BTreeMap::new(), BTreeMap::new(), false),
        );
        c.run(prior).await.unwrap()
    }

    fn task(id: usize, status: &str) -> Value {
        json!({"TaskId": format!("oit-task-{id:013}"), "TaskStatus": status})
    }

    const PATCH: &str = r#"
version: 1
name: patch-test
catalog: Sandbox
input: { csv: rows.csv, key: "{{ row.id }}" }
steps:
  - id: stage
    action: UpdateOpportunity
    input: { Identifier: "{{ row.id }}" }
    patch: { LifeCycle: { Stage: Committed } }
"#;

    /// A GetOpportunity answer at `version`, with `title`.
    fn record(version: u32, stage: &str, title: &str) -> Value {
        json!({
            "Id": "O1", "Catalog": "Sandbox",
            "LastModifiedDate": format!("2026-12-01T00:00:0{version}Z"),
            "Project": {"Title": title},
            "LifeCycle": {"Stage": stage, "ReviewStatus": "Pending Submission"},
        })
    }

    /// The patch playbook on one row, O1, one row in flight.
    async fn patch_one(client: Arc<Scripted>) -> Summary {
        drive(
            fixture_with(PATCH, "id\nO1\n"),
            client,
            1,
            RunState::default(),
        )
        .await
    }

    fn conflict() -> ApiError {
        ApiError {
            kind: ErrorKind::Client,
            code: "ConflictException".into(),
            message: "stale".into(),
        }
    }

    #[tokio::test]
    async fn a_stale_update_is_read_again_and_reapplied_over_the_other_writers_change() {
        // the first update meets another writer's change (a new title, a new version): the
        // second read has it, and the second update carries both
        let client = Scripted::new(|op, _, n| match (op, n) {
            ("GetOpportunity", 1) => Ok(record(1, "Prospect", "Ours")),
            ("UpdateOpportunity", 2) => Err(conflict()),
            ("GetOpportunity", 3) => Ok(record(2, "Prospect", "Theirs")),
            ("UpdateOpportunity", 4) => {
                Ok(json!({"Id": "O1", "LastModifiedDate": "2026-12-01T00:00:03Z"}))
            }
            other => panic!("unexpected call {other:?}"),
        });
        let s = patch_one(client.clone()).await;
        assert_eq!((s.succeeded, s.patched, s.conflicts), (1, 1, 1));
        let calls = client.calls.lock().unwrap().clone();
        assert_eq!(
            calls[0].1,
            json!({"Identifier": "O1", "Catalog": "Sandbox"})
        );
        let sent = &calls[3].1;
        assert_eq!(
            sent["LastModifiedDate"], "2026-12-01T00:00:02Z",
            "the version read last"
        );
        assert_eq!(
            sent["Project"]["Title"], "Theirs",
            "the other writer's change survives"
        );
        assert_eq!(
            sent["LifeCycle"]["Stage"], "Committed",
            "the patch is re-applied"
        );
    }

    #[tokio::test]
    async fn an_update_whose_lost_answer_landed_reports_its_own_changes_not_a_conflict() {
        // the first attempt's answer is lost (a 5xx after it landed), the retry is stale, and
        // the re-read shows the patch in place: this step changed it
        let client = Scripted::new(|op, _, n| match (op, n) {
            ("GetOpportunity", 1) => Ok(record(1, "Prospect", "T")),
            ("UpdateOpportunity", 2) => Err(ApiError {
                kind: ErrorKind::Server,
                code: "InternalServerException".into(),
                message: "lost".into(),
            }),
            ("UpdateOpportunity", 3) => Err(conflict()),
            ("GetOpportunity", 4) => Ok(record(2, "Committed", "T")),
            other => panic!("unexpected call {other:?}"),
        });
        let s = patch_one(client.clone()).await;
        assert_eq!(
            (s.succeeded, s.patched, s.unchanged, s.conflicts),
            (1, 1, 0, 0)
        );
    }

    #[tokio::test]
    async fn conflicts_are_bounded_and_an_up_to_date_record_sends_nothing() {
        // always stale: MAX_CONFLICTS re-reads, then the row fails with the conflict
        let client = Scripted::new(|op, _, _| match op {
            "GetOpportunity" => Ok(record(1, "Prospect", "T")),
            _ => Err(conflict()),
        });
        let s = patch_one(client.clone()).await;
        assert_eq!(s.failed, 1);
        let updates = client
            .ops()
            .iter()
            .filter(|o| *o == "UpdateOpportunity")
            .count();
        assert_eq!(updates as u32, MAX_CONFLICTS + 1);
        // already Committed: one read, no write
        let client = Scripted::new(|op, _, _| match op {
            "GetOpportunity" => Ok(record(1, "Committed", "T")),
            other => panic!("{other} sent for an up-to-date record"),
        });
        let s = patch_one(client.clone()).await;
        assert_eq!((s.succeeded, s.patched, s.unchanged), (1, 0, 1));
        assert_eq!(client.ops(), ["GetOpportunity"]);
    }

    #[tokio::test]
    async fn a_start_that_answers_complete_is_not_polled() {
        let client = Scripted::new(|_, _, n| Ok(task(n, "COMPLETE")));
        let s = drive(fixture(5), client.clone(), 2, RunState::default()).await;
        assert_eq!(s.succeeded, 5);
        assert!(
            client.ops().iter().all(|o| o.starts_with("Start")),
            "{:?}",
            client.ops()
        );
    }

    #[tokio::test]
    async fn rows_waiting_on_tasks_leave_their_slot_to_the_next_row() {
        // every task stays IN_PROGRESS until all five were started: with concurrency 1 that
        // can only finish if a waiting row holds no slot
        let started = Arc::new(Mutex::new(0usize));
        let st = started.clone();
        let client = Scripted::new(move |op, req, n| {
            if op.starts_with("Start") {
                *st.lock().unwrap() += 1;
                return Ok(task(n, "IN_PROGRESS"));
            }
            let done = *st.lock().unwrap() == 5;
            let ids = req["TaskIdentifier"].as_array().unwrap();
            let status = if done { "COMPLETE" } else { "IN_PROGRESS" };
            let sums: Vec<Value> = ids
                .iter()
                .map(|i| json!({"TaskId": i, "TaskStatus": status}))
                .collect();
            Ok(json!({ "TaskSummaries": sums }))
        });
        let s = tokio::time::timeout(
            Duration::from_secs(10),
            drive(fixture(5), client.clone(), 1, RunState::default()),
        )
        .await
        .expect("the run finished: waiting rows did not hold the one slot");
        assert_eq!(s.succeeded, 5);
        assert!(s.min_task_wait.is_some());
    }

    #[tokio::test]
    async fn an_environment_failure_stops_the_run_and_sends_nothing_more() {
        let client = Scripted::new(|_, _, _| {
            Err(ApiError {
                kind: ErrorKind::Config,
                code: "CredentialsError".into(),
                message: "expired".into(),
            })
        });
        let s = drive(fixture(50), client.clone(), 4, RunState::default()).await;
        assert!(
            matches!(s.stop, Some(Stop::Environment { .. })),
            "{:?}",
            s.stop
        );
        assert_eq!(s.failed, 0, "no row is blamed");
        // the calls already handed to workers may go out; nothing after the stop
        assert!(client.ops().len() <= 4, "{} calls", client.ops().len());
        assert_eq!(s.calls.values().sum::<u64>(), client.ops().len() as u64);
    }

    const ASSOCIATE: &str = r#"
version: 1
name: assoc-test
catalog: Sandbox
input: { csv: rows.csv, key: "{{ row.id }}" }
steps:
  - id: associate
    action: AssociateOpportunity
    input:
      OpportunityIdentifier: "{{ row.id }}"
      RelatedEntityType: Solutions
      RelatedEntityIdentifier: S-0000001
"#;

    fn err(kind: ErrorKind, code: &str) -> ApiError {
        ApiError {
            kind,
            code: code.into(),
            message: "refused".into(),
        }
    }

    /// One AssociateOpportunity row: `attempts` answers the writes in turn (then Conflict),
    /// `solutions` is what GetOpportunity shows. Returns the summary, the calls and the
    /// journal's records.
    async fn associate_once(
        first: Result<Value, ApiError>,
        solutions: &'static [&'static str],
        prior: impl Fn(&mut RunState),
    ) -> (Summary, Vec<String>, Vec<Record>) {
        let f = fixture_with(ASSOCIATE, "id\nO1234567890\n");
        let path = f._dir.path().join("journal.jsonl");
        let first = Mutex::new(Some(first));
        let client = Scripted::new(move |op, _, _| match op {
            "AssociateOpportunity" => first
                .lock()
                .unwrap()
                .take()
                .unwrap_or(Err(err(ErrorKind::Client, "ConflictException"))),
            "GetOpportunity" => Ok(json!({"Id": "O1234567890",
                "RelatedEntityIdentifiers": {"Solutions": solutions}})),
            other => panic!("unexpected {other}"),
        });
        let mut st = RunState::default();
        prior(&mut st);
        let s = drive_parts(f.campaign, f.journal, client.clone(), 1, st).await;
        let records = crate::journal::read(&path).unwrap().records;
        (s, client.ops(), records)
    }

    fn effect_records(records: &[Record]) -> Vec<(bool, String)> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::EffectChecked {
                    in_place, detail, ..
                } => Some((*in_place, detail.clone())),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_retry_that_meets_its_own_association_succeeds_as_already_in_place() {
        let (s, ops, records) = associate_once(
            Err(err(ErrorKind::Transport, "ConnectionReset")),
            &["S-0000001"],
            |_| {},
        )
        .await;
        assert_eq!((s.succeeded, s.failed, s.already_in_place), (1, 0, 1));
        assert_eq!(
            ops,
            [
                "AssociateOpportunity",
                "AssociateOpportunity",
                "GetOpportunity"
            ]
        );
        assert_eq!(effect_records(&records).len(), 1);
        assert!(effect_records(&records)[0].0);
        // the check is journaled before the step's outcome
        let pos = |f: &dyn Fn(&Record) -> bool| records.iter().position(f).unwrap();
        assert!(
            pos(&|r| matches!(r, Record::EffectChecked { .. }))
                < pos(&|r| matches!(r, Record::StepSucceeded { .. }))
        );
        let st = crate::journal::replay(&records);
        assert!(st.rows[&0].notes["associate"].starts_with("already in place"));
    }

    #[tokio::test]
    async fn a_retry_refused_by_someone_elses_change_still_fails_with_the_reason() {
        let (s, ops, records) = associate_once(
            Err(err(ErrorKind::Server, "InternalServerException")),
            &["S-0000009"],
            |_| {},
        )
        .await;
        assert_eq!((s.succeeded, s.failed, s.already_in_place), (0, 1, 0));
        assert_eq!(ops.last().unwrap(), "GetOpportunity");
        let e = effect_records(&records);
        assert_eq!(e.len(), 1);
        assert!(!e[0].0 && e[0].1.contains("not associated"), "{e:?}");
        let st = crate::journal::replay(&records);
        let steps = ["associate".to_string()];
        let (_, code, message) = st.rows[&0].failed_step(&steps).unwrap();
        assert_eq!(code, "ConflictException");
        assert!(message.contains("checked with GetOpportunity"), "{message}");
    }

    #[tokio::test]
    async fn a_first_attempt_refusal_is_the_services_answer_and_is_not_checked() {
        let (s, ops, records) = associate_once(
            Err(err(ErrorKind::Client, "ConflictException")),
            &["S-0000001"],
            |_| {},
        )
        .await;
        assert_eq!((s.succeeded, s.failed), (0, 1));
        assert_eq!(ops, ["AssociateOpportunity"]);
        assert!(effect_records(&records).is_empty());
    }

    #[tokio::test]
    async fn a_step_left_in_flight_by_a_killed_process_is_checked_on_resume() {
        let (s, ops, records) = associate_once(
            Err(err(ErrorKind::Client, "ConflictException")),
            &["S-0000001"],
            |st| {
                st.apply(&Record::StepStarted {
                    row: RowRef::Row(0),
                    step: "associate".into(),
                    token: None,
                    digest: String::new(),
                    at: "t".into(),
                })
            },
        )
        .await;
        assert_eq!((s.succeeded, s.failed, s.already_in_place), (1, 0, 1));
        assert_eq!(ops, ["AssociateOpportunity", "GetOpportunity"]);
        assert!(effect_records(&records)[0].0);
    }

    #[tokio::test]
    async fn a_redriven_step_sends_a_new_client_token_generation() {
        let f = fixture(1);
        let key = "engi-0000000000000";
        let default = crate::plan::client_token("accept-test", key, "accept");
        let mut prior = RunState::default();
        for rec in [
            Record::StepStarted {
                row: RowRef::Row(0),
                step: "accept".into(),
                token: Some(default.clone()),
                digest: String::new(),
                at: "t".into(),
            },
            Record::StepFailed {
                row: RowRef::Row(0),
                step: "accept".into(),
                code: "InternalError".into(),
                message: "task failed".into(),
                at: "t".into(),
            },
            Record::RowFinished {
                row: RowRef::Row(0),
                status: RowStatus::Failed,
                at: "t".into(),
            },
            Record::RetryFailedRows { at: "t".into() },
        ] {
            prior.apply(&rec);
        }
        let client = Scripted::new(|_, _, n| Ok(task(n, "COMPLETE")));
        let s = drive(f, client.clone(), 1, prior).await;
        assert_eq!(s.succeeded, 1);
        let sent = client.calls.lock().unwrap()[0].1["ClientToken"].clone();
        assert_ne!(
            sent,
            json!(default),
            "the failed attempt's token only replays the failure"
        );
        assert_eq!(
            sent,
            json!(crate::plan::client_token_generation(
                "accept-test",
                key,
                "accept",
                1
            ))
        );
    }

    const SNAPSHOT: &str = r#"
version: 1
name: snapshot-test
catalog: Sandbox
input: { csv: rows.csv, key: "{{ row.id }}" }
steps:
  - id: start
    action: StartResourceSnapshotJob
    input: { ResourceSnapshotJobIdentifier: "{{ row.id }}" }
    wait: { timeout: 1m, interval: 20ms }
"#;

    /// StartResourceSnapshotJob answers nothing: the job id comes from the request, and each
    /// job is polled with its own GetResourceSnapshotJob until it has executed.
    #[tokio::test]
    async fn a_snapshot_job_is_polled_by_id_until_it_has_executed() {
        let gets = Arc::new(Mutex::new(0usize));
        let g = gets.clone();
        let client = Scripted::new(move |op, req, _| match op {
            "StartResourceSnapshotJob" => Ok(json!({})),
            "GetResourceSnapshotJob" => {
                let id = req["ResourceSnapshotJobIdentifier"].as_str().unwrap();
                assert!(req["ResourceSnapshotJobIdentifier"].is_string());
                let mut n = g.lock().unwrap();
                *n += 1;
                Ok(match (id, *n > 2) {
                    (_, false) => json!({"Id": id, "Status": "Running"}),
                    ("job-000000000000b", true) => {
                        json!({"Id": id, "Status": "Stopped", "LastFailure": "role denied"})
                    }
                    (_, true) => json!({"Id": id, "Status": "Running",
                        "LastSuccessfulExecutionDate": "2026-12-01T00:00:00Z"}),
                })
            }
            other => panic!("unexpected {other}"),
        });
        let f = fixture_with(SNAPSHOT, "id\njob-000000000000a\njob-000000000000b\n");
        let s = tokio::time::timeout(
            Duration::from_secs(10),
            drive(f, client.clone(), 2, RunState::default()),
        )
        .await
        .unwrap();
        assert_eq!((s.succeeded, s.failed), (1, 1));
        let calls = client.calls.lock().unwrap();
        let polled: Vec<&Value> = calls
            .iter()
            .filter(|c| c.0 == "GetResourceSnapshotJob")
            .map(|c| &c.1)
            .collect();
        assert!(polled.len() >= 3);
        for p in polled {
            assert_eq!(p["Catalog"], "Sandbox");
            assert!(crate::model::model()
                .validate_input("GetResourceSnapshotJob", p)
                .is_empty());
        }
    }

    const PROSPECTING: &str = r#"
version: 1
name: prospecting-test
catalog: Sandbox
input: { csv: rows.csv, key: "{{ row.id }}" }
steps:
  - id: prospect
    action: StartProspectingFromEngagementTask
    input: { Identifiers: ["{{ row.id }}"], TaskName: "p {{ row.id }}" }
    wait: { timeout: 1m, interval: 20ms }
"#;

    /// A prospecting task is polled with GetProspectingFromEngagementTask by its id until the
    /// answer has an EndTime; a start that already answers COMPLETED is not polled.
    #[tokio::test]
    async fn a_prospecting_task_is_polled_by_id_until_it_ends() {
        let client = Scripted::new(move |op, req, n| match op {
            "StartProspectingFromEngagementTask" => {
                let status = if req["Identifiers"][0] == "eng-0000000000000a" {
                    "COMPLETED"
                } else {
                    "PENDING"
                };
                Ok(json!({"TaskId": format!("task-{n:014}"), "TaskStatus": status}))
            }
            "GetProspectingFromEngagementTask" => {
                let id = req["TaskIdentifier"].as_str().unwrap();
                Ok(if n < 5 {
                    json!({"TaskId": id})
                } else {
                    json!({"TaskId": id, "EndTime": "2026-12-01T00:00:00Z", "Engagements": []})
                })
            }
            other => panic!("unexpected {other}"),
        });
        let f = fixture_with(PROSPECTING, "id\neng-0000000000000a\neng-0000000000000b\n");
        let s = tokio::time::timeout(
            Duration::from_secs(10),
            drive(f, client.clone(), 2, RunState::default()),
        )
        .await
        .unwrap();
        assert_eq!(s.succeeded, 2);
        let calls = client.calls.lock().unwrap();
        let polled: Vec<&Value> = calls
            .iter()
            .filter(|c| c.0 == "GetProspectingFromEngagementTask")
            .map(|c| &c.1)
            .collect();
        assert!(!polled.is_empty());
        // only the PENDING task is polled
        assert!(polled
            .iter()
            .all(|p| p["TaskIdentifier"] != "task-00000000000001"));
    }

    const PAGED: &str = r#"
version: 1
name: paged-test
catalog: Sandbox
input: { csv: rows.csv, key: "{{ row.id }}" }
steps:
  - id: all
    action: ListSolutions
    input: { MaxResults: 2 }
    paginate: true
  - id: some
    action: ListSolutions
    input: { MaxResults: 2 }
    paginate: true
    max_items: 3
"#;

    /// `paginate: true` follows NextToken page by page (each page a call of its own, at the
    /// operation's quota) and the step's output holds every page's items; `max_items` stops
    /// early and cuts the list.
    #[tokio::test]
    async fn a_paginated_step_collects_every_page_and_max_items_stops_early() {
        let client = Scripted::new(|op, req, _| {
            assert_eq!(op, "ListSolutions");
            let page: usize = req
                .get("NextToken")
                .and_then(Value::as_str)
                .map_or(0, |t| t.trim_start_matches("p").parse().unwrap());
            let items: Vec<Value> = (page * 2..(page * 2 + 2).min(5))
                .map(|i| json!({"Id": format!("S-{:07}", i + 1)}))
                .collect();
            let mut out = json!({ "SolutionSummaries": items });
            if page < 2 {
                out["NextToken"] = json!(format!("p{}", page + 1));
            }
            Ok(out)
        });
        let mut f = fixture_with(PAGED, "id\nr1\n");
        // keep the directory (and the journal in it) past the run
        let kept = std::mem::replace(&mut f._dir, tempfile::tempdir().unwrap());
        let journal_dir = kept.path().to_path_buf();
        let s = drive(f, client.clone(), 1, RunState::default()).await;
        assert_eq!(s.succeeded, 1);
        let calls = client.calls.lock().unwrap();
        let tokens: Vec<Option<&str>> = calls.iter().map(|c| c.1["NextToken"].as_str()).collect();
        // all: three pages; some: two pages (4 items >= 3)
        assert_eq!(
            tokens,
            [None, Some("p1"), Some("p2"), None, Some("p1")],
            "{calls:?}"
        );
        assert!(calls.iter().all(|c| c.1["MaxResults"] == 2));
        assert_eq!(s.calls["ListSolutions"], 5);
        drop(calls);
        let (state, _) =
            crate::journal::read_and_replay(&journal_dir.join("journal.jsonl")).unwrap();
        let output = |step: &str| match &state.rows[&0].steps[step] {
            StepState::Succeeded { output } => output.clone(),
            other => panic!("{step}: {other:?}"),
        };
        let outputs = [output("all"), output("some")];
        let ids = |o: &Value| -> Vec<String> {
            o["SolutionSummaries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["Id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(&outputs[0]).len(), 5);
        assert_eq!(ids(&outputs[1]), ["S-0000001", "S-0000002", "S-0000003"]);
        assert!(outputs.iter().all(|o| o.get("NextToken").is_none()));
    }
}
