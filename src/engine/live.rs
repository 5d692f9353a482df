//! `cosell plan PLAYBOOK --live`: the preview of a spreadsheet update against the records as
//! they are now. For every row and every `patch` step it reads the record with the step's Get
//! (at the read quota, through the same limiters and retries as a run) and decides with
//! [`crate::plan::patch::prepare`], the very function a run decides with, what the update
//! would change, or why it would be refused.
//!
//! Owns: the preview's loop, its per-row outcomes, counts and output (text or JSON).
//! Must not touch: any write (it calls only Get operations, so nothing changes anywhere), the
//! journal or a run directory (a preview leaves nothing behind), the ledger.

use super::api::{ApiClient, ErrorKind};
use super::command::{connect, connection, per_row_calls, rate_config, runtime};
use super::limits::Limits;
use super::progress::Progress;
use crate::cli::{Format, PlanArgs};
use crate::exit;
use crate::journal::RowStatus;
use crate::model::QuotaClass;
use crate::plan::patch::{prepare, Change, Prepared};
use crate::plan::{Campaign, RenderContext, Row};
use serde::Serialize;
use serde_json::{json, Map};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What one row's patch step would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// An update would be sent with these member changes.
    Changed,
    /// The record already holds the patch: nothing would be sent.
    Unchanged,
    /// The record's review status refuses the change (the run fails the row, sends nothing).
    Locked,
    /// The record does not exist (or is not shared with this account).
    NotFound,
    /// The record with the patch merged in breaks the model.
    Invalid,
    /// The preview could not decide: a template that needs a run-time value, or a read that
    /// failed for another reason (access, a spent quota).
    Error,
}

impl Outcome {
    fn word(&self) -> &'static str {
        match self {
            Outcome::Changed => "changed",
            Outcome::Unchanged => "unchanged",
            Outcome::Locked => "locked",
            Outcome::NotFound => "not found",
            Outcome::Invalid => "invalid",
            Outcome::Error => "error",
        }
    }
}

/// One row's preview for one patch step.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub line: u64,
    pub key: String,
    pub step: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// Why it is locked, not found, invalid or an error.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The error code a run would fail the row with (empty when it would not fail).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub code: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub changed: u64,
    pub unchanged: u64,
    pub locked: u64,
    pub not_found: u64,
    pub invalid: u64,
    pub error: u64,
}

impl Counts {
    fn add(&mut self, o: &Outcome) {
        *match o {
            Outcome::Changed => &mut self.changed,
            Outcome::Unchanged => &mut self.unchanged,
            Outcome::Locked => &mut self.locked,
            Outcome::NotFound => &mut self.not_found,
            Outcome::Invalid => &mut self.invalid,
            Outcome::Error => &mut self.error,
        } += 1;
    }
    fn failing(&self) -> u64 {
        self.locked + self.not_found + self.invalid + self.error
    }
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("error: {msg}");
    exit::INVALID
}

/// `cosell plan PLAYBOOK --live`. Exit 0 when every row would update or is up to date, 1 when
/// some would fail (locked, not found, invalid, unreadable), 2 for an invalid campaign, 4 when
/// the endpoint or the credentials cannot be used.
pub fn plan_live(args: &PlanArgs) -> i32 {
    let mut campaign = match Campaign::load(&args.campaign) {
        Ok(c) => c,
        Err(d) => {
            eprint!("{}", d.render_text());
            return exit::INVALID;
        }
    };
    match campaign.apply_overrides(args.concurrency, &args.rates) {
        Ok(w) => eprint!("{}", w.render_text()),
        Err(d) => {
            eprint!("{}", d.render_text());
            return exit::INVALID;
        }
    }
    let report = campaign.validate();
    eprint!("{}", report.diagnostics.render_text());
    if report.diagnostics.has_errors() {
        eprintln!("error: the campaign is invalid; nothing was read or sent");
        return exit::INVALID;
    }
    if !campaign.steps().iter().any(|s| s.patch().is_some()) {
        return fail(format!(
            "{}: --live previews `patch` steps and this playbook has none; `cosell plan` \
             without --live shows what it would send",
            campaign.playbook_path().display()
        ));
    }
    if campaign.is_pending_list() {
        return fail(format!(
            "{}: --live needs the rows in a file; rows listed at run time (input.list) are \
             not previewed",
            campaign.playbook_path().display()
        ));
    }
    let conn = match connection(&args.endpoint, None) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let campaign = Arc::new(campaign);
    let total = report.rows;
    let format = args.format;
    runtime().block_on(async move {
        let link = match connect(&conn, None, &campaign).await {
            Ok(l) => l,
            Err(code) => return code,
        };
        let limits = Arc::new(Limits::new(rate_config(&campaign)));
        let reads: BTreeMap<QuotaClass, f64> = per_row_calls(&campaign)
            .into_iter()
            .filter(|(c, _)| *c != QuotaClass::Write)
            .collect();
        let rates = reads
            .keys()
            .map(|c| (*c, limits.config().class_rate(*c)))
            .collect();
        let progress = Progress::new(total, reads, rates, format == Format::Text);
        let result = preview_all(&campaign, link.client.clone(), limits, progress).await;
        link.close().await;
        let (previews, sent, throttled) = match result {
            Ok(r) => r,
            Err((code, msg)) => {
                eprintln!("error: {msg}; nothing was sent");
                return code;
            }
        };
        let mut counts = Counts::default();
        for p in &previews {
            counts.add(&p.outcome);
        }
        match format {
            Format::Text => print!("{}", render_text(&campaign, &previews, &counts, sent)),
            Format::Json => {
                let v = json!({
                    "playbook": campaign.playbook_path().to_string_lossy(),
                    "rows": total,
                    "previews": previews,
                    "counts": counts,
                    "reads": sent,
                    "throttled": throttled,
                    "writes": 0,
                });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
        }
        if counts.failing() > 0 {
            exit::ROWS_FAILED
        } else {
            exit::OK
        }
    })
}

type Previewed = (Vec<Preview>, u64, u64);

/// Every row's previews in row order, the reads sent and the throttled ones; Err for a
/// failure that would stop any run (credentials, an unreachable endpoint, a broken input).
async fn preview_all<C: ApiClient>(
    campaign: &Arc<Campaign>,
    client: Arc<C>,
    limits: Arc<Limits>,
    mut progress: Progress,
) -> Result<Previewed, (i32, String)> {
    let mut rows = campaign
        .rows()
        .map_err(|d| (exit::INVALID, d.render_text()))?;
    let concurrency = campaign.limits().concurrency.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    let mut out: BTreeMap<u64, Vec<Preview>> = BTreeMap::new();
    let (mut sent, mut throttled) = (0u64, 0u64);
    let mut exhausted = false;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        while !exhausted && tasks.len() < concurrency {
            match rows.next() {
                None => exhausted = true,
                Some(Err(d)) => return Err((exit::INVALID, d.to_string())),
                Some(Ok(row)) => {
                    let (c, client, limits) = (campaign.clone(), client.clone(), limits.clone());
                    tasks.spawn(async move { preview_row(&c, client, limits, row).await });
                }
            }
        }
        if tasks.is_empty() {
            break;
        }
        tokio::select! {
            done = tasks.join_next() => {
                let Some(done) = done else { continue };
                let (index, previews, n, t) = done.map_err(|e| {
                    (exit::INTERNAL, format!("internal error: a preview task failed: {e}"))
                })?;
                for _ in 0..n {
                    progress.call(QuotaClass::Read);
                }
                progress.throttled(t);
                sent += n;
                throttled += t;
                // an endpoint that cannot be used fails every row alike: stop at the first
                if let Some(p) = previews.iter().find(|p| p.code == "ConnectionError" || p.code == "CredentialsError") {
                    progress.finish();
                    return Err((exit::ENVIRONMENT, format!("{}: {}", p.code, p.message)));
                }
                let failed = previews.iter().any(|p| {
                    !matches!(p.outcome, Outcome::Changed | Outcome::Unchanged)
                });
                progress.row_finished(if failed { RowStatus::Failed } else { RowStatus::Succeeded });
                out.insert(index, previews);
            }
            _ = tick.tick() => progress.tick(&limits),
        }
    }
    progress.finish();
    Ok((out.into_values().flatten().collect(), sent, throttled))
}

/// One row: each patch step's read and decision. Steps that are not patch steps are not
/// previewed (they are what `cosell plan` shows), and their outputs are not known: a patch
/// that needs one is an error of the preview, not of the row.
async fn preview_row<C: ApiClient>(
    campaign: &Campaign,
    client: Arc<C>,
    limits: Arc<Limits>,
    row: Row,
) -> (u64, Vec<Preview>, u64, u64) {
    let (empty_setup, empty_steps) = (Map::new(), Map::new());
    let ctx = RenderContext {
        row: Some(&row),
        setup: &empty_setup,
        steps: &empty_steps,
    };
    let mut previews = Vec::new();
    let (mut sent, mut throttled) = (0, 0);
    for step in campaign.steps() {
        let Some(update) = step.patch() else { continue };
        let mut p = Preview {
            line: row.line,
            key: row.key.clone(),
            step: step.id.clone(),
            outcome: Outcome::Error,
            changes: Vec::new(),
            message: String::new(),
            code: String::new(),
        };
        match campaign.when(step, &ctx) {
            Ok(true) => {}
            Ok(false) => continue, // the step would not run on this row
            Err(d) => {
                unpreviewable(&mut p, d.to_string());
                previews.push(p);
                continue;
            }
        }
        let rendered = match campaign.render(step, &ctx) {
            Ok(r) => campaign.render_patch(step, &ctx).map(|p| (r, p)),
            Err(d) => Err(d),
        };
        let (request, patch) = match rendered {
            Ok((r, Some(patch))) => (r, patch),
            Ok((_, None)) => continue,
            Err(d) => {
                unpreviewable(&mut p, d.to_string());
                previews.push(p);
                continue;
            }
        };
        let read = crate::model::update::read_request(update, &request);
        let (answer, n, t) =
            super::coordinator::read_once(client.clone(), limits.clone(), update.get, &read).await;
        sent += n;
        throttled += t;
        match answer {
            Err(e) if e.code == "ResourceNotFoundException" => {
                p.outcome = Outcome::NotFound;
                p.code = e.code;
                p.message = e.message;
            }
            Err(e) => {
                p.code = if e.kind == ErrorKind::Config {
                    "CredentialsError".into()
                } else {
                    e.code
                };
                p.message = e.message;
            }
            Ok(answer) => decide(&mut p, prepare(update, &request, &patch, &answer)),
        }
        previews.push(p);
    }
    (row.index, previews, sent, throttled)
}

fn unpreviewable(p: &mut Preview, why: String) {
    p.code = "NotPreviewable".into();
    p.message = format!("{why} (a value known only during a run cannot be previewed)");
}

fn decide(p: &mut Preview, prepared: Prepared) {
    match prepared {
        Prepared::Unchanged { .. } => p.outcome = Outcome::Unchanged,
        Prepared::Write { changes, .. } => {
            p.outcome = Outcome::Changed;
            p.changes = changes;
        }
        Prepared::Locked { changes, reason } => {
            p.outcome = Outcome::Locked;
            p.changes = changes;
            p.code = crate::plan::patch::LOCKED.into();
            p.message = reason;
        }
        Prepared::NotFound(why) => {
            p.outcome = Outcome::NotFound;
            p.code = "ResourceNotFoundException".into();
            p.message = why;
        }
        Prepared::Invalid { code, message } => {
            p.outcome = Outcome::Invalid;
            p.code = code;
            p.message = format!("the record with the patch merged in: {message}");
        }
    }
}

fn render_text(c: &Campaign, previews: &[Preview], counts: &Counts, reads: u64) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let several = c.steps().iter().filter(|s| s.patch().is_some()).count() > 1;
    let _ = writeln!(
        o,
        "live plan {} (catalog {}): what each row's update would change now",
        c.name(),
        c.catalog()
    );
    let _ = writeln!(o);
    let word = c.input().line_word();
    for p in previews {
        let step = if several {
            format!("{}: ", p.step)
        } else {
            String::new()
        };
        let what = match p.outcome {
            Outcome::Changed => String::new(),
            Outcome::Unchanged => "already up to date: nothing would be sent".into(),
            _ => format!("{}: {}", p.code, p.message),
        };
        let _ = writeln!(
            o,
            "{}",
            format!(
                "{word} {:<5} {:<20} {step}{:<10} {what}",
                p.line,
                p.key,
                p.outcome.word()
            )
            .trim_end()
        );
        // one member per line, as the ledger's changes column writes it
        for ch in &p.changes {
            let _ = writeln!(
                o,
                "    {}",
                crate::plan::patch::describe(std::slice::from_ref(ch))
            );
        }
    }
    let _ = writeln!(
        o,
        "\n{} changed, {} unchanged, {} locked, {} not found, {} invalid, {} not previewed",
        counts.changed,
        counts.unchanged,
        counts.locked,
        counts.not_found,
        counts.invalid,
        counts.error
    );
    let _ = writeln!(
        o,
        "{reads} read{} sent, nothing written; `cosell run` would send {} update{}",
        if reads == 1 { "" } else { "s" },
        counts.changed,
        if counts.changed == 1 { "" } else { "s" }
    );
    o
}
