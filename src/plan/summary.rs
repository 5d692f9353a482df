//! The plan summary: calls per action and quota class, the lower bound on the run's duration
//! at the configured rates, and how the rolling 24-hour budgets split the run.

use super::{Campaign, Limits, Step};
use crate::model::QuotaClass;
use serde::Serialize;
use std::fmt::Write as _;

/// Poll rounds assumed per batch of waiting ids: an estimate, the real number depends on how
/// fast the service finishes the work.
pub const POLL_ROUNDS_ESTIMATE: u64 = 3;

/// Ids one call of the polling operation `poll` carries (its waiter's batch in the operation
/// table: 10 for a List…Tasks, 1 for a Get).
fn poll_batch(poll: &str) -> u64 {
    crate::model::ops::operations()
        .iter()
        .filter_map(|o| o.waiter)
        .find(|w| w.poll == poll)
        .map_or(1, |w| w.batch as u64)
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionCalls {
    pub action: String,
    pub class: String,
    pub calls: u64,
    /// Polling counts are estimates.
    pub estimate: bool,
    /// A step with `when` may run on fewer rows: the count is an upper bound.
    pub at_most: bool,
    /// A `paginate` step makes one call per page: the count is a lower bound.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub at_least: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassCalls {
    pub class: String,
    pub calls: u64,
    /// Requests per second.
    pub rate: f64,
    /// calls / rate.
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_budget: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DailySplit {
    pub class: String,
    pub calls: u64,
    pub budget: u64,
    /// Rows that fit in one rolling 24-hour window.
    pub rows_per_window: u64,
    pub windows: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub catalog: String,
    pub rows: u64,
    /// Rows in flight at once (`limits.concurrency`, or `--concurrency`).
    pub concurrency: usize,
    pub actions: Vec<ActionCalls>,
    pub classes: Vec<ClassCalls>,
    /// Lower bound on the run's duration, in seconds.
    pub min_seconds: f64,
    /// What bounds it (a class or operation and its rate).
    pub bound_by: String,
    pub fits_daily: bool,
    pub splits: Vec<DailySplit>,
    /// When a run started now would finish at the earliest (RFC 3339 UTC), waits for the
    /// rolling windows included (`--wait-for-quota` / `limits.daily_wait` waits them out).
    pub expected_finish: String,
    /// Whether the playbook waits for the quota itself (`limits.daily_wait`).
    pub daily_wait: bool,
    /// With `input.list`: the List action the rows come from when the run starts (the counts
    /// are then per row, not for the campaign).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listed_by: Option<String>,
}

fn add(actions: &mut Vec<ActionCalls>, action: &str, calls: u64, estimate: bool, at_most: bool) {
    if let Some(a) = actions.iter_mut().find(|a| a.action == action) {
        a.calls += calls;
        a.estimate |= estimate;
        a.at_most |= at_most;
    } else {
        actions.push(ActionCalls {
            action: action.to_string(),
            class: QuotaClass::of(action).to_string(),
            calls,
            estimate,
            at_most,
            at_least: false,
        });
    }
}

/// Mark `action`'s count as a lower bound (a `paginate` step: one call per page).
fn paged(actions: &mut [ActionCalls], action: &str) {
    if let Some(a) = actions.iter_mut().find(|a| a.action == action) {
        a.at_least = true;
    }
}

/// Calls of one class per row (fractional: polling is shared by 10 rows) and for setup.
fn per_row(steps: &[Step], class: QuotaClass) -> f64 {
    let mut n = 0.0;
    for s in steps {
        if QuotaClass::of(&s.action) == class {
            n += 1.0;
        }
        if s.patch().is_some_and(|u| QuotaClass::of(u.get) == class) {
            n += 1.0;
        }
        if let Some(p) = s.poll_action {
            if QuotaClass::of(p) == class {
                n += POLL_ROUNDS_ESTIMATE as f64 / poll_batch(p) as f64;
            }
        }
    }
    n
}

pub fn summarize(c: &Campaign, rows: u64) -> Summary {
    let limits: &Limits = c.limits();
    let mut actions = Vec::new();
    for s in c.setup() {
        add(&mut actions, &s.action, 1, false, s.has_when());
        if s.paginate.is_some() {
            paged(&mut actions, &s.action);
        }
        if let Some(p) = s.poll_action {
            add(&mut actions, p, POLL_ROUNDS_ESTIMATE, true, false);
        }
    }
    for s in c.steps() {
        // a patch step reads the record first, and sends nothing when it is up to date
        if let Some(u) = s.patch() {
            add(&mut actions, u.get, rows, false, s.has_when());
        }
        add(
            &mut actions,
            &s.action,
            rows,
            false,
            s.has_when() || s.patch().is_some(),
        );
        if s.paginate.is_some() {
            paged(&mut actions, &s.action);
        }
        if let Some(p) = s.poll_action {
            add(
                &mut actions,
                p,
                rows.div_ceil(poll_batch(p)) * POLL_ROUNDS_ESTIMATE,
                true,
                s.has_when(),
            );
        }
    }
    let mut classes: Vec<ClassCalls> = Vec::new();
    for a in &actions {
        let class = QuotaClass::of(&a.action);
        match classes.iter_mut().find(|c| c.class == class.name()) {
            Some(cc) => cc.calls += a.calls,
            None => classes.push(ClassCalls {
                class: class.name().to_string(),
                calls: a.calls,
                rate: limits.class_rate(class),
                seconds: 0.0,
                daily_budget: limits.daily_budget(class),
            }),
        }
    }
    let mut min_seconds = 0.0f64;
    let mut bound_by = String::new();
    for cc in &mut classes {
        cc.seconds = cc.calls as f64 / cc.rate;
        if cc.seconds > min_seconds {
            min_seconds = cc.seconds;
            bound_by = format!("{} at {}/s", cc.class, fmt_rate(cc.rate));
        }
    }
    for a in &actions {
        if let Some(r) = limits.operation_rate(&a.action) {
            let s = a.calls as f64 / r;
            if s > min_seconds {
                min_seconds = s;
                bound_by = format!("{} at {}/s", a.action, fmt_rate(r));
            }
        }
    }
    let mut splits = Vec::new();
    for cc in &classes {
        let Some(budget) = cc.daily_budget else {
            continue;
        };
        if cc.calls <= budget {
            continue;
        }
        let class = QuotaClass::parse(&cc.class).unwrap_or(QuotaClass::Write);
        let setup_calls = per_row(c.setup(), class).ceil() as u64;
        let r = per_row(c.steps(), class);
        let rows_per_window = if r > 0.0 {
            ((budget.saturating_sub(setup_calls)) as f64 / r).floor() as u64
        } else {
            rows
        };
        let windows = if rows_per_window == 0 {
            u64::MAX
        } else {
            rows.div_ceil(rows_per_window).max(1)
        };
        splits.push(DailySplit {
            class: cc.class.clone(),
            calls: cc.calls,
            budget,
            rows_per_window,
            windows,
        });
    }
    // every full window costs 24 hours; the last one, its calls at the class's rate
    for sp in &splits {
        if sp.windows <= 1 || sp.windows == u64::MAX {
            continue;
        }
        let class = QuotaClass::parse(&sp.class).unwrap_or(QuotaClass::Write);
        let last_rows = rows.saturating_sub((sp.windows - 1) * sp.rows_per_window);
        let last = last_rows as f64 * per_row(c.steps(), class) / limits.class_rate(class);
        let by_days = (sp.windows - 1) as f64 * 86_400.0 + last;
        if by_days > min_seconds {
            min_seconds = by_days;
            bound_by = format!(
                "the rolling 24-hour quota of {} ({} windows)",
                sp.class, sp.windows
            );
        }
    }
    let expected_finish = (chrono::Utc::now()
        + chrono::Duration::milliseconds((min_seconds * 1000.0) as i64))
    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Summary {
        name: c.name().to_string(),
        catalog: c.catalog().to_string(),
        rows,
        concurrency: limits.concurrency,
        actions,
        classes,
        min_seconds,
        bound_by,
        fits_daily: splits.is_empty(),
        splits,
        expected_finish,
        daily_wait: limits.daily_wait,
        listed_by: c
            .is_pending_list()
            .then(|| c.list_input().map(|l| l.action.clone()))
            .flatten(),
    }
}

fn fmt_rate(r: f64) -> String {
    if r.fract() == 0.0 {
        format!("{}", r as u64)
    } else {
        format!("{r:.3}").trim_end_matches('0').to_string()
    }
}

/// `3h 12m 5s`.
pub fn fmt_duration(secs: f64) -> String {
    let s = secs.ceil() as u64;
    let (d, h, m, s) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    if d > 0 {
        let _ = write!(out, "{d}d ");
    }
    if d > 0 || h > 0 {
        let _ = write!(out, "{h}h ");
    }
    if d > 0 || h > 0 || m > 0 {
        let _ = write!(out, "{m}m ");
    }
    let _ = write!(out, "{s}s");
    out
}

impl Summary {
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        match &self.listed_by {
            Some(action) => {
                let _ = writeln!(
                    o,
                    "plan {} (catalog {}): the rows are listed at run time ({action}, every \
                     page at the read quota), {} in flight at once; the counts below are for \
                     no rows yet",
                    self.name, self.catalog, self.concurrency
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "plan {} (catalog {}): {} rows, {} in flight at once",
                    self.name, self.catalog, self.rows, self.concurrency
                );
            }
        }
        let _ = writeln!(o, "\ncalls per action:");
        let w = self
            .actions
            .iter()
            .map(|a| a.action.len())
            .max()
            .unwrap_or(0);
        for a in &self.actions {
            let note = match (a.estimate, a.at_most) {
                (true, _) if poll_batch(&a.action) > 1 => {
                    "  (estimate: task polling, 10 tasks per call)"
                }
                (true, _) => "  (estimate: polling, one id per call)",
                (false, true) => "  (at most: a `when` or a `patch` may skip rows)",
                _ if a.at_least => "  (at least: paginate makes one call per page)",
                _ => "",
            };
            let _ = writeln!(o, "  {:<w$}  {:>9}  {}{note}", a.action, a.calls, a.class);
        }
        let _ = writeln!(o, "\ncalls per quota class:");
        for c in &self.classes {
            let daily = match c.daily_budget {
                Some(b) => format!(", {b} per 24 h"),
                None => String::new(),
            };
            let _ = writeln!(
                o,
                "  {:<16}  {:>9}  at {}/s{daily}: at least {}",
                c.class,
                c.calls,
                fmt_rate(c.rate),
                fmt_duration(c.seconds)
            );
        }
        let _ = writeln!(
            o,
            "\nminimum duration: {} (bound by {})",
            fmt_duration(self.min_seconds),
            if self.bound_by.is_empty() {
                "nothing"
            } else {
                &self.bound_by
            }
        );
        let _ = writeln!(
            o,
            "expected finish if started now: {}{}",
            self.expected_finish.replace('T', " ").replace('Z', " UTC"),
            if self.fits_daily {
                ""
            } else if self.daily_wait {
                " (limits.daily_wait: the run waits for each window)"
            } else {
                " with --wait-for-quota (waits for each window unattended)"
            }
        );
        if self.fits_daily {
            let _ = writeln!(o, "rolling 24-hour quotas: the campaign fits");
        } else {
            for s in &self.splits {
                if s.windows == u64::MAX {
                    let _ = writeln!(o, "rolling 24-hour quotas: {} needs {} calls but its budget is {}: not even one row fits; raise limits.daily.{}", s.class, s.calls, s.budget, s.class);
                } else {
                    let _ = writeln!(o, "rolling 24-hour quotas: {} needs {} calls, budget {} per 24 h: the run is split into {} windows of at most {} rows; with --wait-for-quota (or limits.daily_wait) it waits for each window and goes on unattended, otherwise it stops (exit 3) at the budget and `cosell resume` continues once the window rolls", s.class, s.calls, s.budget, s.windows, s.rows_per_window);
                }
            }
        }
        o
    }
}
