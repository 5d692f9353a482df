//! The journal: an append-only, checksummed record of every state change of a run
//! (`journal.jsonl` in the run directory), its reader, and `replay`, the pure function that
//! turns records into the state `resume`, `status` and the ledger start from.
//!
//! Owns: the record types and their on-disk encoding, torn-tail detection, the format version,
//! replay semantics, and the `cosell status` command (`status`).
//! Must not touch: the network, the scheduler's decisions (the coordinator in `engine` decides
//! what to write and when to commit), the ledger's format.
//!
//! # Encoding
//!
//! One record per line: `<crc32 of the JSON, 8 lowercase hex digits> <JSON>\n`. The first record
//! is a [`Record::Header`] carrying [`JOURNAL_FORMAT`] and the run id of the `run.json` beside
//! it; it is written (and fsynced) when the run directory is created, before `run.json`
//! ([`JournalWriter::create`]), so a run directory's journal is never missing or headerless,
//! and a journal whose header names another run id was copied in from elsewhere (both are
//! damage, checked by `RunDir::open`/`open_readonly` with [`read_header`]).
//!
//! A crash in the middle of an append leaves a last line with **no terminating newline**: that
//! line is the *torn tail*; the reader ignores it and [`JournalWriter::open`] truncates it before
//! appending. Any **complete** line (ending in `\n`) whose checksum or JSON is bad is damage, not
//! a crash, wherever it is (even as the last line): an error naming its line, never guessed
//! around ([`JournalError::Corrupt`]).
//!
//! Files are created with mode 0600 (they hold customer data).
//!
//! # Durability policy (group commit)
//!
//! [`JournalWriter::append`] only buffers. [`JournalWriter::commit`] writes the buffer and
//! `fdatasync`s the file; only then are the appended records durable. The coordinator appends
//! the records of everything that happened since the last commit and calls `commit()` once per
//! batch, and always **before anything that depends on them**:
//!
//! - `StepStarted` (with its ClientToken) is committed before the request is sent, so a resumed
//!   run re-sends a started step with the same token instead of minting a new one;
//! - `TaskWaiting` is committed before the task is polled, so a resume polls the same task id
//!   instead of starting a second task;
//! - `StepSucceeded`/`StepFailed`/`RowFinished` are committed before the ledger is written and
//!   before the process exits with a status that reports them.
//!
//! A crash therefore loses at most the records of the batch being committed; each lost record
//! only makes `resume` redo work that is idempotent (same ClientToken, same task id, a read).
//!
//! # How `run` and `resume` use this
//!
//! - `run`: `RunDir::create` (or `create_unique`), which writes the journal with its
//!   [`Record::Header`], then [`JournalWriter::open`] on `RunDir::journal_path()` (not
//!   [`is_empty`](JournalWriter::is_empty): no second header is needed).
//! - `resume`: `RunDir::open` (lock, newer-format refusal, journal present and of this run),
//!   `RunDir::drift`, then
//!   [`JournalWriter::open_and_replay`] (one streaming read: state, torn tail cut, writer
//!   positioned; or [`JournalWriter::open_and_read`] + [`replay_owned`] to keep the records).
//!   With `--retry-failed`, append [`Record::RetryFailedRows`], commit, and
//!   apply it to the state ([`RunState::apply`]). Then for each row:
//!   `RowState::next_step(row_step_ids)` is where it continues; an `InFlight` step is re-sent
//!   with its recorded token, a `Waiting` one polls its recorded task id, `Succeeded` outputs
//!   feed the templates; rows absent from `RunState::rows` have not started.
//! - `status`: `RunDir::open_readonly` and [`read_and_replay`]; no lock, no writes.

mod replay;
pub mod status;

pub use replay::{replay, replay_owned, RowCounts, RowState, RunState, StepState};

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The version of the journal encoding and record set. Bump it when an older cosell could
/// misread a journal written by a newer one; older cosells then refuse it.
/// 3: [`Record::EffectChecked`].
/// 4: [`Record::Patched`].
pub const JOURNAL_FORMAT: u32 = 4;

/// Now, as the journal writes timestamps: RFC 3339, UTC, milliseconds.
pub fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Which row a record is about: `setup` (run once before the rows) or a data row by its
/// 0-based index among the CSV's records (header excluded). JSON: `"setup"` or the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RowRef {
    Setup,
    Row(u64),
}

impl Serialize for RowRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RowRef::Setup => s.serialize_str("setup"),
            RowRef::Row(n) => s.serialize_u64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for RowRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RowRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"setup\" or a row index")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<RowRef, E> {
                Ok(RowRef::Row(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<RowRef, E> {
                u64::try_from(n)
                    .map(RowRef::Row)
                    .map_err(|_| E::custom("negative row index"))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RowRef, E> {
                if s == "setup" {
                    Ok(RowRef::Setup)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(s), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// How a row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    Succeeded,
    Failed,
    Skipped,
}

impl RowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Succeeded => "succeeded",
            RowStatus::Failed => "failed",
            RowStatus::Skipped => "skipped",
        }
    }
}

/// One journal record. `at` is an RFC 3339 UTC timestamp ([`timestamp`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Record {
    /// Always the first record.
    Header { format: u32, run_id: String },
    /// A step's request is about to be sent (committed before sending). `digest` is the
    /// sha256 of the rendered request; `token` its ClientToken for mutating calls.
    StepStarted {
        row: RowRef,
        step: String,
        token: Option<String>,
        digest: String,
        at: String,
    },
    /// A `Start…Task` call answered with this task id: a resume polls it instead of starting
    /// a new task.
    TaskWaiting {
        row: RowRef,
        step: String,
        task_id: String,
        at: String,
    },
    StepSucceeded {
        row: RowRef,
        step: String,
        output: serde_json::Value,
        at: String,
    },
    /// The step's `when` was false.
    StepSkipped {
        row: RowRef,
        step: String,
        reason: String,
        at: String,
    },
    StepFailed {
        row: RowRef,
        step: String,
        code: String,
        message: String,
        at: String,
    },
    RowFinished {
        row: RowRef,
        status: RowStatus,
        at: String,
    },
    /// Written by `resume --retry-failed`: rows that had failed become pending again, keeping
    /// their succeeded steps (see [`replay`]).
    RetryFailedRows { at: String },
    /// (Format 2.) One request that was sent, polls and retries included: the operation, when
    /// it left (`at`), how long its answer took (`ms`), which attempt of its call it was (1 for
    /// the first), and the error code it met (None: it succeeded). The rolling daily budgets
    /// of a resumed run and the run report are computed from these. Replay ignores them.
    Call {
        op: String,
        at: String,
        ms: u64,
        attempt: u32,
        code: Option<String>,
    },
    /// (Format 3.) A write without a ClientToken was refused (`code`) after an earlier attempt
    /// of it may have landed (a dropped connection or a 5xx, or a kill while it was on the
    /// wire), and `read` was asked whether the effect is already in place
    /// ([`crate::model::effects`]). `in_place`: it is, and the step succeeds (its
    /// `StepSucceeded` follows); otherwise the refusal stands (its `StepFailed` follows).
    /// `detail` says what the read showed. Written before the step's outcome, in the same
    /// commit.
    EffectChecked {
        row: RowRef,
        step: String,
        code: String,
        read: String,
        in_place: bool,
        detail: String,
        at: String,
    },
    /// (Format 4.) A `patch` step read its record and decided: `changes` (a JSON list of
    /// `{path, before, after}`, `before`/`after` absent for a member that was or becomes
    /// absent) is what its update changed, or empty when the record already held the patch
    /// and nothing was sent (the step is `unchanged`). `conflicts`: how many updates were
    /// refused as stale (`ConflictException`: someone else wrote between the read and the
    /// write) and re-read and re-applied first. Written before the step's `StepSucceeded` (or
    /// `StepFailed`, when the record is locked), in the same commit.
    Patched {
        row: RowRef,
        step: String,
        changes: serde_json::Value,
        conflicts: u32,
        at: String,
    },
    /// (Format 2.) The run waited for room in a quota class's rolling 24-hour window
    /// (`--wait-for-quota`), from `at` until `until`. Replay ignores it.
    QuotaWait {
        class: String,
        at: String,
        until: String,
    },
}

impl Record {
    /// The row a record is about (None for `Header` and `RetryFailedRows`).
    pub fn row(&self) -> Option<RowRef> {
        match self {
            Record::StepStarted { row, .. }
            | Record::TaskWaiting { row, .. }
            | Record::StepSucceeded { row, .. }
            | Record::StepSkipped { row, .. }
            | Record::StepFailed { row, .. }
            | Record::EffectChecked { row, .. }
            | Record::Patched { row, .. }
            | Record::RowFinished { row, .. } => Some(*row),
            Record::Header { .. }
            | Record::RetryFailedRows { .. }
            | Record::Call { .. }
            | Record::QuotaWait { .. } => None,
        }
    }

    /// The step a record is about (None for row-level and run-level records).
    pub fn step(&self) -> Option<&str> {
        match self {
            Record::StepStarted { step, .. }
            | Record::TaskWaiting { step, .. }
            | Record::StepSucceeded { step, .. }
            | Record::StepSkipped { step, .. }
            | Record::EffectChecked { step, .. }
            | Record::Patched { step, .. }
            | Record::StepFailed { step, .. } => Some(step),
            _ => None,
        }
    }
}

/// The fast path of reading: a flat struct (serde's internally tagged enums buffer every
/// record), converted to a [`Record`]. Must accept exactly what `Record`'s `Serialize` writes;
/// the round-trip tests check it.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Header,
    StepStarted,
    TaskWaiting,
    StepSucceeded,
    StepSkipped,
    StepFailed,
    RowFinished,
    RetryFailedRows,
    Call,
    QuotaWait,
    EffectChecked,
    Patched,
}

#[derive(Deserialize)]
struct Raw {
    t: Kind,
    format: Option<u32>,
    run_id: Option<String>,
    row: Option<RowRef>,
    step: Option<String>,
    token: Option<String>,
    digest: Option<String>,
    task_id: Option<String>,
    /// Present-but-null must stay `Some(Value::Null)`.
    #[serde(default, deserialize_with = "present")]
    output: Option<serde_json::Value>,
    reason: Option<String>,
    code: Option<String>,
    message: Option<String>,
    status: Option<RowStatus>,
    at: Option<String>,
    op: Option<String>,
    ms: Option<u64>,
    attempt: Option<u32>,
    class: Option<String>,
    until: Option<String>,
    read: Option<String>,
    in_place: Option<bool>,
    detail: Option<String>,
    changes: Option<serde_json::Value>,
    conflicts: Option<u32>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

fn parse_record(json: &[u8]) -> Result<Record, String> {
    let r: Raw = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    fn need<T>(v: Option<T>, field: &str) -> Result<T, String> {
        v.ok_or_else(|| format!("missing field `{field}`"))
    }
    Ok(match r.t {
        Kind::Header => Record::Header {
            format: need(r.format, "format")?,
            run_id: need(r.run_id, "run_id")?,
        },
        Kind::StepStarted => Record::StepStarted {
            row: need(r.row, "row")?,
            step: need(r.step, "step")?,
            token: r.token,
            digest: need(r.digest, "digest")?,
            at: need(r.at, "at")?,
        },
        Kind::TaskWaiting => Record::TaskWaiting {
            row: need(r.row, "row")?,
            step: need(r.step, "step")?,
            task_id: need(r.task_id, "task_id")?,
            at: need(r.at, "at")?,
        },
        Kind::StepSucceeded => Record::StepSucceeded {
            row: need(r.row, "row")?,
            step: need(r.step, "step")?,
            output: need(r.output, "output")?,
            at: need(r.at, "at")?,
        },
        Kind::StepSkipped => Record::StepSkipped {
            row: need(r.row, "row")?,
            step: need(r.step, "step")?,
            reason: need(r.reason, "reason")?,
            at: need(r.at, "at")?,
        },
        Kind::StepFailed => Record::StepFailed {
            row: need(r.row, "row")?,
            step: need(r.step, "step")?,
            code: need(r.code, "code")?,
            message: need(r.message, "message")?,
            at: need(r.at, "at")?,
        },
        Kind::RowFinished => Record::RowFinished {
            row: need(r.row, "row")?,
            status: need(r.status, "status")?,
            at: need(r.at, "at")?,
        },
        Kind::RetryFailedRows => Record::RetryFailedRows {
            at: need(r.at, "at")?,
        },
        Kind::Call => Record::Call {
            op: need(r.op, "op")?,
            at: need(r.at, "at")?,
            ms: need(r.ms, "ms")?,
            attempt: need(r.attempt, "attempt")?,
            code: r.code,
        },
        Kind::EffectChecked => Record::EffectChecked {
            row: need(r.row, "row")?,
            step: need(r.step, "step")?,
            code: need(r.code, "code")?,
            read: need(r.read, "read")?,
            in_place: need(r.in_place, "in_place")?,
            detail: need(r.detail, "detail")?,
            at: need(r.at, "at")?,
        },
        Kind::Patched => Record::Patched {
            row: need(r.row, "row")?,
            step: need(r.step, "step")?,
            changes: need(r.changes, "changes")?,
            conflicts: need(r.conflicts, "conflicts")?,
            at: need(r.at, "at")?,
        },
        Kind::QuotaWait => Record::QuotaWait {
            class: need(r.class, "class")?,
            at: need(r.at, "at")?,
            until: need(r.until, "until")?,
        },
    })
}

/// Errors reading a journal. Each names the file and line, and the fix.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{}:{line}: damaged record ({reason}); the line is complete, so it is not a record cut short by a crash (only an unterminated last line is), and cosell will not guess. Restore the journal from a backup, or keep only the lines before it (`head -n {} {} > journal.fixed && mv journal.fixed {}`) to drop the records from there on; their steps are then re-sent with the same ClientTokens",
        path.display(), line - 1, path.display(), path.display()
    )]
    Corrupt {
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        reason: String,
    },
    #[error(
        "{}: written by a newer cosell (journal format {found}, this cosell reads format {supported} and older); upgrade cosell to resume or inspect this run",
        path.display()
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "{}:1: the first record is not a journal header; this file was not written by cosell (or its start was overwritten) — restore it from a backup",
        path.display()
    )]
    NoHeader { path: PathBuf },
}

/// A torn last record that was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// 1-based line where the torn part starts.
    pub line: u64,
    /// Byte offset where the torn part starts (the length of the good prefix).
    pub offset: u64,
    /// How many bytes were ignored.
    pub bytes: u64,
}

/// What [`read`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalContents {
    /// The good records, header first.
    pub records: Vec<Record>,
    /// Set when a torn tail was ignored.
    pub torn: Option<TornTail>,
}

/// Check one line (without its `\n`); return the JSON part when the checksum holds.
fn check_line(line: &[u8]) -> Result<&[u8], String> {
    if line.len() < 10 || line[8] != b' ' {
        return Err("no checksum".into());
    }
    let hex = std::str::from_utf8(&line[..8]).map_err(|_| "bad checksum field".to_string())?;
    let want = u32::from_str_radix(hex, 16).map_err(|_| "bad checksum field".to_string())?;
    let json = &line[9..];
    if crc32fast::hash(json) != want {
        return Err("checksum mismatch".into());
    }
    Ok(json)
}

/// Read buffer size: large sequential reads, without holding the whole journal in memory.
const READ_BUFFER: usize = 1 << 20;

/// Find the torn tail, if any: a last line with no terminating newline. `parse` (given the
/// 1-based line number) decides whether a checksummed line is good. A complete line (with its
/// newline) that fails its checksum or `parse` is an error naming it, wherever it is. Streams: memory holds the parsed
/// records, not the file.
///
/// Sequential on purpose: parsing on several threads was slower on a busy 2-core machine
/// (allocator contention), and the single-threaded read of a 100,000-row journal is well
/// within the resume budget (see `benches/replay.rs`).
fn scan<T>(
    path: &Path,
    mut input: impl io::BufRead,
    parse: impl Fn(u64, &[u8]) -> Result<T, String>,
    mut sink: impl FnMut(T),
) -> Result<(usize, Option<TornTail>), JournalError> {
    let mut good = 0usize;
    let mut bad: Option<(u64, u64, String)> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut offset = 0u64;
    let mut lineno = 0u64;
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|source| JournalError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        lineno += 1;
        match buf.split_last() {
            Some((b'\n', line)) => {
                // A complete line: whatever is wrong with it, a crash did not do it (a crash
                // only cuts the last line short), so it is damage, even as the last line.
                match check_line(line).and_then(|json| parse(lineno, json)) {
                    Ok(v) => {
                        good += 1;
                        sink(v)
                    }
                    Err(reason) => {
                        return Err(JournalError::Corrupt {
                            path: path.to_path_buf(),
                            line: lineno,
                            reason,
                        })
                    }
                }
            }
            // No newline: read_until only stops short of one at the end of the file, so this
            // is the last line, cut short by a crash in the middle of an append (or zeros a
            // file system left in an unwritten tail).
            _ => bad = Some((lineno, offset, "unterminated".to_string())),
        }
        offset += n as u64;
    }
    let torn = bad.map(|(line, start, _reason): (u64, u64, String)| TornTail {
        line,
        offset: start,
        bytes: offset - start,
    });
    Ok((good, torn))
}

/// Read a journal: the good records and, if one was ignored, the torn tail.
/// A missing file is an empty journal. A header of a newer format is refused.
pub fn read(path: &Path) -> Result<JournalContents, JournalError> {
    match File::open(path) {
        Ok(f) => parse_to_vec(path, io::BufReader::with_capacity(READ_BUFFER, f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(JournalContents {
            records: Vec::new(),
            torn: None,
        }),
        Err(source) => Err(JournalError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The format of a newer-format header line, if `json` is one.
fn newer_header(json: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let found = v.get("format").and_then(|f| f.as_u64())?;
    (v.get("t").and_then(|t| t.as_str()) == Some("header") && found > JOURNAL_FORMAT as u64)
        .then_some(found)
}

fn newer_error(path: &Path, found: u64) -> JournalError {
    JournalError::NewerFormat {
        path: path.to_path_buf(),
        found: u32::try_from(found).unwrap_or(u32::MAX),
        supported: JOURNAL_FORMAT,
    }
}

/// Parse a journal into `sink`, record by record; returns how many records and the torn tail.
/// On error the sink may have seen records: discard what it built.
fn parse_input(
    path: &Path,
    input: impl io::BufRead,
    mut sink: impl FnMut(Record),
) -> Result<(usize, Option<TornTail>), JournalError> {
    let newer = std::cell::Cell::new(None);
    let mut no_header = false;
    let mut first = true;
    let (n, torn) = scan(
        path,
        input,
        |lineno, json| {
            if newer.get().is_some() {
                // Interpret nothing of a newer format; reported below.
                return Ok(None);
            }
            if lineno == 1 {
                // Check the version before the record set: a newer format may have new records.
                if let Some(found) = newer_header(json) {
                    newer.set(Some(found));
                    return Ok(None);
                }
            }
            parse_record(json).map(Some)
        },
        |rec| {
            if let Some(rec) = rec {
                if first && !matches!(rec, Record::Header { .. }) {
                    no_header = true;
                }
                first = false;
                if !no_header {
                    sink(rec)
                }
            }
        },
    )?;
    if let Some(found) = newer.get() {
        return Err(newer_error(path, found));
    }
    if no_header {
        return Err(JournalError::NoHeader {
            path: path.to_path_buf(),
        });
    }
    Ok((n, torn))
}

/// A journal's header: its format and the run it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalHeader {
    pub format: u32,
    pub run_id: String,
}

/// Read only the first record of a journal, which must be its header. `Ok(None)`: no such
/// file. An empty file, a first line cut short or a first record of another kind is
/// [`JournalError::NoHeader`] (the header is fsynced before `run.json` is written, so none of
/// them is a crash); a newer format is [`JournalError::NewerFormat`].
pub fn read_header(path: &Path) -> Result<Option<JournalHeader>, JournalError> {
    use io::BufRead;
    let io_err = |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let mut line = Vec::new();
    io::BufReader::new(f)
        .read_until(b'\n', &mut line)
        .map_err(io_err)?;
    let no_header = || JournalError::NoHeader {
        path: path.to_path_buf(),
    };
    let Some((b'\n', line)) = line.split_last() else {
        return Err(no_header());
    };
    let json = check_line(line).map_err(|reason| JournalError::Corrupt {
        path: path.to_path_buf(),
        line: 1,
        reason,
    })?;
    if let Some(found) = newer_header(json) {
        return Err(newer_error(path, found));
    }
    match parse_record(json) {
        Ok(Record::Header { format, run_id }) => Ok(Some(JournalHeader { format, run_id })),
        _ => Err(no_header()),
    }
}

/// Whether a journal holds nothing beyond (at most) its header line: what a `run` leaves when
/// it crashes while creating its run directory, before `run.json` and before anything was sent.
/// A missing file counts as header-only.
pub fn is_header_only(path: &Path) -> Result<bool, JournalError> {
    use io::BufRead;
    let io_err = |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(io_err(e)),
    };
    let mut r = io::BufReader::new(f);
    let mut first = Vec::new();
    r.read_until(b'\n', &mut first).map_err(io_err)?;
    let header_or_torn = match first.split_last() {
        Some((b'\n', line)) => check_line(line)
            .map(|json| matches!(parse_record(json), Ok(Record::Header { .. })))
            .unwrap_or(false),
        _ => true,
    };
    let mut rest = [0u8; 1];
    let more = r.read(&mut rest).map_err(io_err)?;
    Ok(header_or_torn && more == 0)
}

/// [`read`] and [`replay`] in one pass, without building the list of records (for `status`).
pub fn read_and_replay(path: &Path) -> Result<(RunState, Option<TornTail>), JournalError> {
    read_and_replay_visiting(path, RunState::default(), |_, _| {})
}

/// [`read_and_replay`] into `state` (e.g. a `lean` one), showing each record to `visit`
/// with the state as it stands before the record is applied: read-only, one pass, no list
/// of records (for the run report).
pub fn read_and_replay_visiting(
    path: &Path,
    mut state: RunState,
    mut visit: impl FnMut(&Record, &RunState),
) -> Result<(RunState, Option<TornTail>), JournalError> {
    let torn = match File::open(path) {
        Ok(f) => {
            let input = io::BufReader::with_capacity(READ_BUFFER, f);
            parse_input(path, input, |r| {
                visit(&r, &state);
                state.apply_owned(r)
            })?
            .1
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(JournalError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    Ok((state, torn))
}

fn parse_to_vec(path: &Path, input: impl io::BufRead) -> Result<JournalContents, JournalError> {
    let mut records = Vec::new();
    let (_, torn) = parse_input(path, input, |r| records.push(r))?;
    Ok(JournalContents { records, torn })
}

/// Encode one record as its journal line (with the trailing `\n`).
pub fn encode(rec: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(b"00000000 ");
    serde_json::to_writer(&mut *out, rec).expect("a record serialises");
    let crc = crc32fast::hash(&out[start + 9..]);
    let hex = format!("{crc:08x}");
    out[start..start + 8].copy_from_slice(hex.as_bytes());
    out.push(b'\n');
}

/// Appends records to a journal; see the module docs for the durability policy.
#[derive(Debug)]
pub struct JournalWriter {
    path: PathBuf,
    file: BufWriter<File>,
    line: Vec<u8>,
    empty: bool,
}

impl JournalWriter {
    /// Open a journal for appending, creating it if missing. A torn tail left by a crash is
    /// truncated first (and the truncation made durable), so appends stay well-formed.
    /// When [`is_empty`](Self::is_empty), the first record appended must be a
    /// [`Record::Header`]. A journal of a newer format is refused (`InvalidData`). Only
    /// checksums and the header are verified; see [`open_and_read`](Self::open_and_read) to read
    /// the records too.
    pub fn open(path: &Path) -> io::Result<JournalWriter> {
        Self::open_with(path, |input| {
            let newer = std::cell::Cell::new(None);
            let (good, torn) = scan(
                path,
                input,
                |lineno, json| {
                    if lineno == 1 {
                        newer.set(newer_header(json));
                    }
                    Ok(())
                },
                |()| {},
            )?;
            match newer.get() {
                Some(found) => Err(newer_error(path, found)),
                None => Ok((good, torn)),
            }
        })
        .map_err(|e| match e {
            JournalError::Io { source, .. } => source,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        })
    }

    /// Create the journal of a new run (replacing any file at `path`, mode 0600) with its
    /// [`Record::Header`] for `run_id`, fsynced together with its directory entry before this
    /// returns. `RunDir::create` calls it before writing `run.json`.
    pub fn create(path: &Path, run_id: &str) -> io::Result<JournalWriter> {
        let mut file = crate::rundir::create_private(path)?;
        let mut line = Vec::with_capacity(1024);
        encode(
            &Record::Header {
                format: JOURNAL_FORMAT,
                run_id: run_id.to_string(),
            },
            &mut line,
        );
        file.write_all(&line)?;
        file.sync_data()?;
        crate::rundir::sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        Ok(JournalWriter {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(256 * 1024, file),
            line,
            empty: false,
        })
    }

    /// What `resume` does: read the journal once, return its records and a writer positioned
    /// after the last good one (a torn tail is truncated as in [`open`](Self::open)).
    pub fn open_and_read(path: &Path) -> Result<(JournalWriter, JournalContents), JournalError> {
        let mut contents = None;
        let w = Self::open_with(path, |input| {
            let c = parse_to_vec(path, input)?;
            let n = c.records.len();
            let torn = c.torn.clone();
            contents = Some(c);
            Ok((n, torn))
        })?;
        Ok((w, contents.expect("set by open_with")))
    }

    /// The fastest start for `resume`: read the journal once, replaying each record as it is
    /// parsed (no list of records is built), and return the state, the torn tail if one was
    /// cut, and a writer positioned after the last good record. Same checks as
    /// [`open_and_read`](Self::open_and_read); the state equals `replay` of its records.
    pub fn open_and_replay(
        path: &Path,
    ) -> Result<(JournalWriter, RunState, Option<TornTail>), JournalError> {
        Self::open_and_replay_visiting(path, RunState::default(), |_| {})
    }

    /// [`open_and_replay`](Self::open_and_replay) into `state` (e.g. a `lean` one), showing
    /// each record to `visit` before it is applied (resume counts the last day's calls this
    /// way, without keeping the records).
    pub fn open_and_replay_visiting(
        path: &Path,
        mut state: RunState,
        mut visit: impl FnMut(&Record),
    ) -> Result<(JournalWriter, RunState, Option<TornTail>), JournalError> {
        let mut torn_out = None;
        let w = Self::open_with(path, |input| {
            let (n, torn) = parse_input(path, input, |r| {
                visit(&r);
                state.apply_owned(r)
            })?;
            torn_out = torn.clone();
            Ok((n, torn))
        })?;
        Ok((w, state, torn_out))
    }

    fn open_with(
        path: &Path,
        check: impl FnOnce(&mut dyn io::BufRead) -> Result<(usize, Option<TornTail>), JournalError>,
    ) -> Result<JournalWriter, JournalError> {
        let io_err = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let existed = path.exists();
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io_err)?;
        crate::rundir::restrict(&file).map_err(io_err)?;
        let (good, torn) = check(&mut io::BufReader::with_capacity(READ_BUFFER, &file))?;
        let end = match torn {
            Some(t) => {
                file.set_len(t.offset).map_err(io_err)?;
                file.sync_data().map_err(io_err)?;
                t.offset
            }
            None => file.metadata().map_err(io_err)?.len(),
        };
        file.seek(io::SeekFrom::Start(end)).map_err(io_err)?;
        if !existed {
            crate::rundir::sync_dir(path.parent().unwrap_or(Path::new("."))).map_err(io_err)?;
        }
        Ok(JournalWriter {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(256 * 1024, file),
            line: Vec::with_capacity(1024),
            empty: good == 0,
        })
    }

    /// True when the journal holds no record yet (a header must come first).
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Buffer one record. Not durable until [`commit`](Self::commit).
    pub fn append(&mut self, rec: &Record) -> io::Result<()> {
        if self.empty && !matches!(rec, Record::Header { .. }) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: the first journal record must be a header",
                    self.path.display()
                ),
            ));
        }
        self.empty = false;
        self.line.clear();
        encode(rec, &mut self.line);
        self.file.write_all(&self.line)
    }

    /// Write everything appended so far and `fdatasync` it: the group commit.
    pub fn commit(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> Record {
        Record::Header {
            format: JOURNAL_FORMAT,
            run_id: "r1".into(),
        }
    }

    fn sample() -> Vec<Record> {
        vec![
            header(),
            Record::StepStarted {
                row: RowRef::Setup,
                step: "whoami".into(),
                token: None,
                digest: "d0".into(),
                at: "2026-11-22T19:45:00.000Z".into(),
            },
            Record::StepSucceeded {
                row: RowRef::Setup,
                step: "whoami".into(),
                output: serde_json::json!({"Id": "a", "ü": [1, 2]}),
                at: "2026-11-22T19:45:01.000Z".into(),
            },
            Record::StepStarted {
                row: RowRef::Row(7),
                step: "invite".into(),
                token: Some("tok-7".into()),
                digest: "d1".into(),
                at: "t".into(),
            },
            Record::TaskWaiting {
                row: RowRef::Row(7),
                step: "invite".into(),
                task_id: "task-1".into(),
                at: "t".into(),
            },
            Record::StepFailed {
                row: RowRef::Row(7),
                step: "invite".into(),
                code: "ValidationException".into(),
                message: "bad\nthing".into(),
                at: "t".into(),
            },
            Record::StepSkipped {
                row: RowRef::Row(8),
                step: "invite".into(),
                reason: "when was false".into(),
                at: "t".into(),
            },
            Record::RowFinished {
                row: RowRef::Row(7),
                status: RowStatus::Failed,
                at: "t".into(),
            },
            Record::RetryFailedRows { at: "t".into() },
            Record::Call {
                op: "GetEngagementInvitation".into(),
                at: "t".into(),
                ms: 12,
                attempt: 2,
                code: Some("ThrottlingException".into()),
            },
            Record::Call {
                op: "CreateEngagementInvitation".into(),
                at: "t".into(),
                ms: 3,
                attempt: 1,
                code: None,
            },
            Record::QuotaWait {
                class: "write".into(),
                at: "t".into(),
                until: "u".into(),
            },
        ]
    }

    fn write_all(path: &Path, recs: &[Record]) {
        let mut w = JournalWriter::open(path).unwrap();
        for r in recs {
            w.append(r).unwrap();
        }
        w.commit().unwrap();
    }

    #[test]
    fn encoding_is_crc_space_json_newline() {
        let mut out = Vec::new();
        encode(
            &Record::RowFinished {
                row: RowRef::Row(3),
                status: RowStatus::Succeeded,
                at: "t".into(),
            },
            &mut out,
        );
        let s = String::from_utf8(out).unwrap();
        let json = r#"{"t":"row_finished","row":3,"status":"succeeded","at":"t"}"#;
        assert_eq!(
            s,
            format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes()))
        );
        let mut out = Vec::new();
        encode(&sample()[1], &mut out);
        assert!(String::from_utf8(out).unwrap().contains(r#""row":"setup""#));
    }

    #[test]
    fn round_trip_and_reopen_appends() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("journal.jsonl");
        let recs = sample();
        write_all(&p, &recs[..4]);
        let mut w = JournalWriter::open(&p).unwrap();
        assert!(!w.is_empty());
        for r in &recs[4..] {
            w.append(r).unwrap();
        }
        w.commit().unwrap();
        let got = read(&p).unwrap();
        assert_eq!(got.records, recs);
        assert_eq!(got.torn, None);
        assert_eq!(recs[0].row(), None);
        assert_eq!(recs[3].row(), Some(RowRef::Row(7)));
        assert_eq!(recs[3].step(), Some("invite"));
        assert_eq!(recs[7].step(), None);
    }

    #[test]
    fn missing_file_is_empty_and_first_record_must_be_a_header() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("journal.jsonl");
        assert_eq!(read(&p).unwrap().records, vec![]);
        let mut w = JournalWriter::open(&p).unwrap();
        assert!(w.is_empty());
        assert!(w.append(&sample()[1]).is_err());
        // A file that starts with another record is refused on read.
        let mut bytes = Vec::new();
        encode(&sample()[1], &mut bytes);
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(read(&p), Err(JournalError::NoHeader { .. })));
    }

    #[test]
    fn torn_last_record_is_ignored_and_truncated_by_the_writer() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("journal.jsonl");
        let recs = sample();
        write_all(&p, &recs);
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..full.len() - 5]).unwrap();
        let got = read(&p).unwrap();
        assert_eq!(got.records, recs[..recs.len() - 1]);
        let torn = got.torn.clone().unwrap();
        assert_eq!(torn.line, recs.len() as u64);
        // The writer cuts the torn tail and appends after the last good record.
        let (mut w, c) = JournalWriter::open_and_read(&p).unwrap();
        assert_eq!(c, got);
        assert!(!w.is_empty());
        w.append(&recs[recs.len() - 1]).unwrap();
        w.commit().unwrap();
        let got = read(&p).unwrap();
        assert_eq!(got.records, recs);
        assert_eq!(got.torn, None);
    }

    #[test]
    fn zero_filled_tail_is_torn_but_a_bad_middle_line_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("journal.jsonl");
        let recs = sample();
        write_all(&p, &recs);
        let mut bytes = std::fs::read(&p).unwrap();
        let good_len = bytes.len();
        bytes.extend_from_slice(&[0u8; 4096]);
        std::fs::write(&p, &bytes).unwrap();
        let got = read(&p).unwrap();
        assert_eq!(got.records, recs);
        assert_eq!(got.torn.unwrap().offset, good_len as u64);

        // Flip one byte inside line 3's JSON.
        let mut bytes = bytes[..good_len].to_vec();
        let line3: usize = bytes
            .split_inclusive(|&b| b == b'\n')
            .take(2)
            .map(<[u8]>::len)
            .sum();
        bytes[line3 + 20] ^= 0x01;
        std::fs::write(&p, &bytes).unwrap();
        let e = read(&p).unwrap_err();
        assert!(matches!(e, JournalError::Corrupt { line: 3, .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("journal.jsonl:3:") && msg.contains("checksum"),
            "{msg}"
        );
        // The writer refuses too rather than truncating good records.
        assert!(JournalWriter::open(&p).is_err());
    }

    #[test]
    fn a_complete_garbage_line_is_damage_even_as_the_last_line() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("journal.jsonl");
        let recs = sample();
        write_all(&p, &recs);
        let good = std::fs::read(&p).unwrap();
        let n = recs.len() as u64;
        for garbage in [
            &b"garbage\n"[..],
            b"00000000 {\"t\":\"row_finished\"}\n",
            b"\n",
        ] {
            let mut bytes = good.clone();
            bytes.extend_from_slice(garbage);
            std::fs::write(&p, &bytes).unwrap();
            let e = read(&p).unwrap_err();
            assert!(
                matches!(e, JournalError::Corrupt { line, .. } if line == n + 1),
                "{e}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("journal.jsonl:{}:", n + 1)) && msg.contains("head -n"),
                "{msg}"
            );
            assert!(read_and_replay(&p).is_err());
            assert!(JournalWriter::open_and_replay(&p).is_err());
            // nothing was truncated
            assert_eq!(std::fs::read(&p).unwrap(), bytes);
        }
        // a checksummed record of an unknown kind on a complete line is damage too
        let mut bytes = good.clone();
        let json = br#"{"t":"nonsense"}"#;
        bytes.extend_from_slice(format!("{:08x} ", crc32fast::hash(json)).as_bytes());
        bytes.extend_from_slice(json);
        bytes.push(b'\n');
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(read(&p), Err(JournalError::Corrupt { .. })));
        // the same garbage without its newline is a torn tail
        let mut bytes = good.clone();
        bytes.extend_from_slice(b"garbage");
        std::fs::write(&p, &bytes).unwrap();
        let got = read(&p).unwrap();
        assert_eq!(got.records, recs);
        assert_eq!(got.torn.unwrap().line, n + 1);
    }

    #[test]
    fn create_writes_the_header_and_read_header_checks_only_the_first_line() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("journal.jsonl");
        assert_eq!(read_header(&p).unwrap(), None);
        assert!(is_header_only(&p).unwrap());
        let mut w = JournalWriter::create(&p, "r1").unwrap();
        assert!(!w.is_empty());
        assert_eq!(
            read_header(&p).unwrap(),
            Some(JournalHeader {
                format: JOURNAL_FORMAT,
                run_id: "r1".into()
            })
        );
        assert!(is_header_only(&p).unwrap());
        w.append(&sample()[1]).unwrap();
        w.commit().unwrap();
        assert!(!is_header_only(&p).unwrap());
        assert_eq!(read(&p).unwrap().records, sample()[..2]);
        // create replaces what was there
        drop(JournalWriter::create(&p, "r2").unwrap());
        assert_eq!(read(&p).unwrap().records.len(), 1);
        assert_eq!(read_header(&p).unwrap().unwrap().run_id, "r2");
        // a first line cut short, or of another kind
        std::fs::write(&p, b"1234").unwrap();
        assert!(matches!(
            read_header(&p),
            Err(JournalError::NoHeader { .. })
        ));
        let mut bytes = Vec::new();
        encode(&sample()[1], &mut bytes);
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(
            read_header(&p),
            Err(JournalError::NoHeader { .. })
        ));
        assert!(!is_header_only(&p).unwrap());
    }

    #[test]
    fn newer_format_is_refused_naming_both_versions() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("journal.jsonl");
        let mut bytes = Vec::new();
        encode(
            &Record::Header {
                format: JOURNAL_FORMAT + 1,
                run_id: "r".into(),
            },
            &mut bytes,
        );
        // A record kind this version does not know.
        let json = br#"{"t":"from_the_future","x":1}"#;
        bytes.extend_from_slice(format!("{:08x} ", crc32fast::hash(json)).as_bytes());
        bytes.extend_from_slice(json);
        bytes.push(b'\n');
        std::fs::write(&p, &bytes).unwrap();
        let e = read(&p).unwrap_err();
        assert!(
            matches!(
                e,
                JournalError::NewerFormat {
                    found: 5,
                    supported: 4,
                    ..
                }
            ),
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("format 5") && msg.contains("format 4"),
            "{msg}"
        );
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        let row = prop_oneof![Just(RowRef::Setup), (0u64..1000).prop_map(RowRef::Row)];
        let text = "[a-z\\n\"\\\\é ]{0,12}";
        prop_oneof![
            (row.clone(), text, proptest::option::of(text), text).prop_map(
                |(row, step, token, digest)| {
                    Record::StepStarted {
                        row,
                        step,
                        token,
                        digest,
                        at: "t".into(),
                    }
                }
            ),
            (row.clone(), text, text).prop_map(|(row, step, task_id)| Record::TaskWaiting {
                row,
                step,
                task_id,
                at: "t".into()
            }),
            (row.clone(), text, text).prop_map(|(row, step, v)| Record::StepSucceeded {
                row,
                step,
                output: serde_json::json!({ "Id": v, "n": [1, 2.5, null] }),
                at: "t".into()
            }),
            (row.clone(), text, text, text).prop_map(|(row, step, code, message)| {
                Record::StepFailed {
                    row,
                    step,
                    code,
                    message,
                    at: "t".into(),
                }
            }),
            (
                row.clone(),
                prop_oneof![
                    Just(RowStatus::Succeeded),
                    Just(RowStatus::Failed),
                    Just(RowStatus::Skipped)
                ]
            )
                .prop_map(|(row, status)| Record::RowFinished {
                    row,
                    status,
                    at: "t".into()
                }),
            Just(Record::RetryFailedRows { at: "t".into() }),
            (text, 0u64..100_000, 1u32..9, proptest::option::of(text)).prop_map(
                |(op, ms, attempt, code)| Record::Call {
                    op,
                    at: "t".into(),
                    ms,
                    attempt,
                    code,
                }
            ),
            text.prop_map(|class| Record::QuotaWait {
                class,
                at: "t".into(),
                until: "u".into(),
            }),
            (row.clone(), text, 0u32..5).prop_map(|(row, path, conflicts)| {
                Record::Patched {
                    row,
                    step: "s".into(),
                    changes: serde_json::json!([{"path": path, "before": "a", "after": 1}]),
                    conflicts,
                    at: "t".into(),
                }
            }),
            (row.clone(), text, text, proptest::bool::ANY).prop_map(
                |(row, code, detail, in_place)| {
                    Record::EffectChecked {
                        row,
                        step: "s".into(),
                        code,
                        read: "GetOpportunity".into(),
                        in_place,
                        detail,
                        at: "t".into(),
                    }
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Write, cut at any byte, read: always a prefix of what was written, never an error.
        #[test]
        fn truncation_at_any_byte_reads_a_prefix(
            body in proptest::collection::vec(arb_record(), 0..20),
            cut in any::<proptest::sample::Index>(),
        ) {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().join("journal.jsonl");
            let mut recs = vec![header()];
            recs.extend(body);
            write_all(&p, &recs);
            let full = std::fs::read(&p).unwrap();
            let at = cut.index(full.len() + 1);
            std::fs::write(&p, &full[..at]).unwrap();
            let got = read(&p).unwrap();
            prop_assert!(got.records.len() <= recs.len());
            prop_assert_eq!(&got.records[..], &recs[..got.records.len()]);
            // Exactly the complete lines survive; the torn flag says whether bytes were dropped.
            let complete = full[..at].iter().filter(|&&b| b == b'\n').count();
            prop_assert_eq!(got.records.len(), complete);
            prop_assert_eq!(got.torn.is_some(), at > 0 && full[at - 1] != b'\n');
            // And the writer continues a well-formed journal from there.
            let (st, t2) = read_and_replay(&p).unwrap();
            prop_assert_eq!(&st, &replay(&got.records));
            prop_assert_eq!(&t2, &got.torn);
            let snapshot = std::fs::read(&p).unwrap();
            let (w2, state, torn) = JournalWriter::open_and_replay(&p).unwrap();
            drop(w2);
            prop_assert_eq!(state, replay(&got.records));
            prop_assert_eq!(&torn, &got.torn);
            std::fs::write(&p, &snapshot).unwrap();
            let (mut w, c) = JournalWriter::open_and_read(&p).unwrap();
            prop_assert_eq!(&c, &got);
            prop_assert_eq!(w.is_empty(), got.records.is_empty());
            let next = if got.records.is_empty() { header() } else { Record::RetryFailedRows { at: "x".into() } };
            w.append(&next).unwrap();
            w.commit().unwrap();
            let again = read(&p).unwrap();
            prop_assert_eq!(again.torn, None);
            prop_assert_eq!(again.records.len(), got.records.len() + 1);
        }
    }
}
