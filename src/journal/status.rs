//! `cosell status RUN_DIR [--format json]`: where a run stands, read from its journal.
//!
//! Owns: the status report and its text and JSON renderings. Read-only: it takes no lock (a
//! running `run`/`resume` may be appending; status then shows a slightly old picture) and writes
//! nothing. Must not touch: the network, the ledger.

use super::{JournalError, RowCounts, RowState, RowStatus, RunState, StepState, TornTail};
use crate::rundir::{RunDir, RunDirError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How many unfinished rows are listed one by one.
pub const LISTED_ROWS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The status of a run directory; `--format json` prints it as is.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub run_dir: PathBuf,
    pub run_id: String,
    pub created_at: String,
    pub playbook_name: String,
    pub playbook: PathBuf,
    pub input: PathBuf,
    /// Data rows in the input (None when the input cannot be read any more).
    pub total_rows: Option<u64>,
    /// Why `total_rows` is unknown.
    pub input_error: Option<String>,
    /// succeeded | failed | skipped | in_flight | pending | none (no setup)
    pub setup: String,
    /// `pending` is None when `total_rows` is.
    pub rows: Counts,
    /// The first [`LISTED_ROWS`] unfinished rows, in input order.
    pub unfinished: Vec<Unfinished>,
    /// Unfinished rows not listed (pending ones too when the input cannot be read).
    pub unfinished_more: u64,
    /// The first [`LISTED_ROWS`] failed rows, in input order, with their error.
    pub failed: Vec<FailedRow>,
    /// Failed rows not listed.
    pub failed_more: u64,
    /// Set when the journal's last record is incomplete and ignored (torn by a crash, or
    /// being written by the running process).
    pub torn_tail_line: Option<u64>,
    /// What changed in the playbook or the input since the run started (`resume` refuses
    /// without `--force`); one sentence each.
    pub drift: Vec<String>,
    /// Set while a `run`/`resume` holds the directory's lock.
    pub running: Option<crate::rundir::LockHolder>,
    /// Every row finished, none failed... or nothing left for a plain resume.
    pub complete: bool,
    /// `cosell resume <dir>`, or None when there is nothing to resume.
    pub resume: Option<String>,
    /// `cosell resume <dir> --retry-failed` when rows failed.
    pub retry_failed: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub in_flight: u64,
    pub pending: Option<u64>,
}

/// Rows are named by `line`, as everywhere (ledger `line` column, `validate` diagnostics): the
/// line of the input CSV where the row's record starts, the header being line 1.
/// `record_index` is the journal's internal 0-based index among the data records (header
/// excluded); it is not a line number, and only identifies the row when the input cannot be
/// read any more (`line` is then null).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unfinished {
    /// Line in the input CSV where the row starts (header = 1), when the input can be read.
    pub line: Option<u64>,
    /// 0-based index among the input's data records (not a line number).
    pub record_index: u64,
    /// The first step not yet succeeded or skipped (None: all done, awaiting its finish).
    pub next_step: Option<String>,
    /// not_started | in_flight | waiting | failed
    pub state: String,
    /// The task polled on resume when `state` is `waiting`.
    pub task_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailedRow {
    /// As in [`Unfinished`].
    pub line: Option<u64>,
    pub record_index: u64,
    /// The failed step, code and message (empty when the row failed without a step error).
    pub step: String,
    pub code: String,
    pub message: String,
}

/// Build the status of the run in `dir`.
pub fn status(dir: &Path) -> Result<Status, StatusError> {
    let rd = RunDir::open_readonly(dir)?;
    let m = rd.manifest();
    let (state, torn) = super::read_and_replay(&rd.journal_path())?;
    // an input.list run stopped before its rows were listed has no input file yet
    let unlisted = m.input_path.as_os_str().is_empty();
    let (lines, input_error) = if unlisted {
        (None, None)
    } else {
        match count_rows(&m.input_path, m.input_sheet.as_deref()) {
            Ok(l) => (Some(l), None),
            Err(e) => (None, Some(format!("{}: {e}", m.input_path.display()))),
        }
    };
    let total = lines.as_ref().map(|l| l.len() as u64);
    let running = rd.holder();
    let mut s = build(
        &rd,
        &state,
        torn.as_ref(),
        lines.as_deref(),
        input_error,
        total,
    );
    let digest =
        |p: &Path| crate::rundir::digest_file(p).unwrap_or_else(|e| format!("(unreadable: {e})"));
    s.drift = rd.drift(&crate::rundir::Digests {
        playbook: digest(&m.playbook_path),
        input: if unlisted {
            String::new()
        } else {
            digest(&m.input_path)
        },
        vars: m.digests.vars.clone(),
    });
    if let Some(h) = running {
        // Not resumable while it runs.
        s.resume = None;
        s.retry_failed = None;
        s.running = Some(h);
    }
    Ok(s)
}

/// The line of each data record of a CSV (header excluded), or the row of each of a sheet.
fn count_rows(path: &Path, sheet: Option<&str>) -> Result<Vec<u64>, String> {
    if crate::input::workbook::is_workbook(path) {
        let source = crate::input::Source {
            path: path.to_path_buf(),
            display: path.display().to_string(),
            sheet: sheet.map(str::to_string),
        };
        return source.record_lines();
    }
    count_csv_rows(path).map_err(|e| e.to_string())
}

fn count_csv_rows(path: &Path) -> Result<Vec<u64>, csv::Error> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_path(path)?;
    let mut rec = csv::ByteRecord::new();
    let mut lines = Vec::new();
    while rdr.read_byte_record(&mut rec)? {
        lines.push(rec.position().map(|p| p.line()).unwrap_or(0));
    }
    Ok(lines)
}

fn setup_label(setup: &RowState, has_setup: bool) -> String {
    match setup.status {
        Some(s) => s.as_str().into(),
        None if !setup.steps.is_empty() => "in_flight".into(),
        None if has_setup => "pending".into(),
        None => "none".into(),
    }
}

fn unfinished(
    index: u64,
    line: Option<u64>,
    st: Option<&RowState>,
    steps: &[String],
) -> Unfinished {
    let empty = RowState::default();
    let st = st.unwrap_or(&empty);
    let next = st.next_step(steps);
    let (state, task_id) = match next.and_then(|n| st.steps.get(n)) {
        None => ("not_started", None),
        Some(StepState::InFlight { .. }) => ("in_flight", None),
        Some(StepState::Waiting { task_id, .. }) => ("waiting", Some(task_id.clone())),
        Some(StepState::Failed { .. }) => ("failed", None),
        Some(StepState::Succeeded { .. } | StepState::Skipped { .. }) => unreachable!(),
    };
    Unfinished {
        line,
        record_index: index,
        next_step: next.map(String::from),
        state: state.into(),
        task_id,
    }
}

fn build(
    rd: &RunDir,
    state: &RunState,
    torn: Option<&TornTail>,
    lines: Option<&[u64]>,
    input_error: Option<String>,
    total: Option<u64>,
) -> Status {
    let m = rd.manifest();
    let steps = m.row_step_ids();
    let c: RowCounts = state.counts(total.unwrap_or(0));
    let rows = Counts {
        succeeded: c.succeeded,
        failed: c.failed,
        skipped: c.skipped,
        in_flight: c.in_flight,
        pending: total.map(|_| c.pending),
    };
    // Unfinished rows in input order: those with records but no status, and those without
    // records (pending) when the row count is known.
    let line_of = |i: u64| lines.and_then(|l| l.get(i as usize).copied());
    let mut listed = Vec::new();
    let mut more = 0u64;
    let push = |listed: &mut Vec<Unfinished>, more: &mut u64, i: u64, st: Option<&RowState>| {
        if listed.len() < LISTED_ROWS {
            listed.push(unfinished(i, line_of(i), st, steps));
        } else {
            *more += 1;
        }
    };
    let in_flight: BTreeMap<u64, &RowState> = state
        .rows
        .iter()
        .filter(|(_, r)| r.status.is_none())
        .map(|(i, r)| (*i, r))
        .collect();
    match total {
        Some(total) => {
            let mut i = 0;
            while i < total {
                match state.rows.get(&i) {
                    Some(r) if r.status.is_none() => push(&mut listed, &mut more, i, Some(r)),
                    Some(_) => {}
                    None => {
                        if listed.len() >= LISTED_ROWS {
                            // Count the remaining pending rows without walking them one by one.
                            let later_records = state.rows.range(i..total).count() as u64;
                            let later_in_flight = in_flight.range(i..total).count() as u64;
                            more += (total - i) - later_records + later_in_flight;
                            break;
                        }
                        push(&mut listed, &mut more, i, None);
                    }
                }
                i += 1;
            }
        }
        None => {
            for (i, r) in &in_flight {
                push(&mut listed, &mut more, *i, Some(r));
            }
        }
    }
    let failed_rows: Vec<(u64, &RowState)> = state
        .rows
        .iter()
        .filter(|(_, r)| r.status == Some(RowStatus::Failed))
        .map(|(i, r)| (*i, r))
        .collect();
    let failed: Vec<FailedRow> = failed_rows
        .iter()
        .take(LISTED_ROWS)
        .map(|&(i, r)| {
            let (step, code, message) = r.failed_step(steps).unwrap_or(("", "", ""));
            FailedRow {
                line: line_of(i),
                record_index: i,
                step: step.into(),
                code: code.into(),
                message: message.into(),
            }
        })
        .collect();
    let failed_more = failed_rows.len().saturating_sub(LISTED_ROWS) as u64;
    let dir = shell_quote(&rd.path().display().to_string());
    let setup = setup_label(&state.setup, !m.setup_step_ids().is_empty());
    let setup_unfinished = setup == "in_flight" || setup == "pending";
    let anything_left = c.in_flight > 0 || c.pending > 0 || setup_unfinished || total.is_none();
    let any_failed = c.failed > 0 || setup == "failed";
    Status {
        run_dir: rd.path().to_path_buf(),
        run_id: m.run_id.clone(),
        created_at: m.created_at.clone(),
        playbook_name: m.playbook_name.clone(),
        playbook: m.playbook_path.clone(),
        input: m.input_path.clone(),
        total_rows: total,
        input_error,
        setup,
        rows,
        unfinished: listed,
        unfinished_more: more,
        failed,
        failed_more,
        torn_tail_line: torn.map(|t| t.line),
        drift: Vec::new(),
        running: None,
        complete: !anything_left && !any_failed,
        resume: anything_left.then(|| format!("cosell resume {dir}")),
        retry_failed: any_failed.then(|| format!("cosell resume {dir} --retry-failed")),
    }
}

/// Quote a path for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:@,%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// How the text form names a row: `line 5`, as the ledger's `line` column and a spreadsheet
/// do; when the input cannot be read, `record 4 (line unknown)` (the 1-based data record).
fn place(line: Option<u64>, record_index: u64) -> String {
    match line {
        Some(l) => format!("line {l}"),
        None => format!("record {} (line unknown)", record_index + 1),
    }
}

/// Render the text form.
pub fn render_text(s: &Status) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "run       {} (created {})", s.run_id, s.created_at);
    let _ = writeln!(
        o,
        "playbook  {} ({})",
        s.playbook_name,
        s.playbook.display()
    );
    match (s.total_rows, &s.input_error) {
        (Some(n), _) => {
            let plural = if n == 1 { "" } else { "s" };
            let _ = writeln!(o, "input     {} ({n} row{plural})", s.input.display());
        }
        (None, Some(e)) => {
            let _ = writeln!(o, "input     cannot be read, pending rows unknown: {e}");
        }
        (None, None) if s.input.as_os_str().is_empty() => {
            let _ = writeln!(
                o,
                "input     not listed yet: the run stopped while listing the rows of \
                 input.list; resume lists them"
            );
        }
        (None, None) => {}
    }
    let _ = writeln!(o, "setup     {}", s.setup.replace('_', " "));
    let r = &s.rows;
    let pending = r
        .pending
        .map(|p| p.to_string())
        .unwrap_or_else(|| "?".into());
    let _ = writeln!(
        o,
        "rows      {} succeeded, {} failed, {} skipped, {} in flight, {pending} pending",
        r.succeeded, r.failed, r.skipped, r.in_flight
    );
    if let Some(h) = &s.running {
        let mut who = vec![h
            .pid
            .map(|p| format!("pid {p}"))
            .unwrap_or_else(|| "pid unknown".into())];
        if let Some(host) = &h.host {
            who.push(format!("on {host}"));
        }
        if let Some(t) = &h.since {
            who.push(format!("since {t}"));
        }
        let who = who.join(", ");
        let _ = writeln!(o, "running   yes ({who}): this is a snapshot");
    }
    if let Some(line) = s.torn_tail_line {
        let why = if s.running.is_some() {
            "being written"
        } else {
            "cut short by a crash"
        };
        let _ = writeln!(
            o,
            "journal   the last record (line {line}) is {why} and is ignored; resume redoes that step with the same ClientToken"
        );
    }
    if !s.unfinished.is_empty() {
        let _ = writeln!(o, "\nunfinished rows (next step):");
        for u in &s.unfinished {
            let place = place(u.line, u.record_index);
            let what = match (u.state.as_str(), &u.task_id) {
                ("waiting", Some(t)) => format!("waiting on task {t}"),
                ("in_flight", _) => {
                    "in flight: resume re-sends it with the same ClientToken".into()
                }
                ("failed", _) => "failed, row not finished".into(),
                _ => "not started".into(),
            };
            let _ = writeln!(
                o,
                "  {place:<22} {:<20} {what}",
                u.next_step.as_deref().unwrap_or("(all steps done)")
            );
        }
        if s.unfinished_more > 0 {
            let _ = writeln!(o, "  … and {} more", s.unfinished_more);
        }
    }
    if !s.failed.is_empty() {
        let _ = writeln!(o, "\nfailed rows:");
        for f in &s.failed {
            let place = place(f.line, f.record_index);
            // One line each: the message may hold newlines.
            let message = f.message.replace(['\n', '\r'], " ");
            let _ = writeln!(o, "  {place:<22} {:<20} {}: {message}", f.step, f.code);
        }
        if s.failed_more > 0 {
            let _ = writeln!(
                o,
                "  … and {} more (see ledger.xlsx, sheet Failures, or ledger.csv)",
                s.failed_more
            );
        }
    }
    let _ = writeln!(o);
    if s.complete {
        let _ = writeln!(o, "the run is complete: every row finished and none failed");
    }
    for d in &s.drift {
        let _ = writeln!(o, "changed   {d}");
    }
    if !s.drift.is_empty() {
        let _ = writeln!(
            o,
            "          resume refuses to continue with changed files; restore them, or add --force to accept the change"
        );
    }
    if s.running.is_some() {
        let _ = writeln!(
            o,
            "a cosell process is working on this run; run `cosell status` again to follow it"
        );
    }
    if let Some(cmd) = &s.resume {
        let _ = writeln!(o, "resume with:  {cmd}");
    }
    if let Some(cmd) = &s.retry_failed {
        let _ = writeln!(
            o,
            "{} failed row(s){}; run them again with:  {cmd}",
            r.failed,
            if s.setup == "failed" {
                " and a failed setup"
            } else {
                ""
            }
        );
    }
    o
}

/// The `cosell status` command.
pub fn run(args: &crate::cli::StatusArgs) -> i32 {
    match status(&args.run_dir) {
        Ok(s) => {
            match args.format {
                crate::cli::Format::Text => print!("{}", render_text(&s)),
                crate::cli::Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&s).expect("status serialises")
                ),
            }
            crate::exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            // 2: not a run directory (as for `resume`); 4: a damaged or unreadable one
            match e {
                StatusError::RunDir(e) => e.exit_code(),
                StatusError::Journal(_) => crate::exit::ENVIRONMENT,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("runs/invite-2026"), "runs/invite-2026");
        assert_eq!(shell_quote("my runs/it's"), "'my runs/it'\\''s'");
    }
}
