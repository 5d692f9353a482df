//! The ledger: the results of a run as the user reads them, `ledger.csv` (for spreadsheets),
//! `ledger.xlsx` (the same table as a workbook with typed cells, and a `Failures` sheet: see
//! [`xlsx`]) and `ledger.jsonl` (full step outputs, for programs), one line per input row in
//! input order.
//!
//! Owns: the ledger's columns and encodings, formula neutralisation, and the pieces to build a
//! ledger row from replayed journal state ([`LedgerRow::from_state`]). Must not touch: the
//! journal (the ledger is derived from it and can always be rebuilt from it), the network.
//!
//! Rebuilding is left to the coordinator, which knows each row's CSV line, key and rendered
//! `ledger.columns`: it replays the journal, builds the [`Layout`] (setup ids from the setup
//! state, [`row_step_has_id_column`] for each row step, the column names), then for every input
//! row in order calls `LedgerRow::from_state(line, key, state.rows.get(&index), row_step_ids,
//! columns)` and [`LedgerWriter::write`], then [`LedgerWriter::finish`]. The three files are
//! written to `*.tmp` (mode 0600) and renamed into place, so a reader never sees a half-written
//! ledger.
//!
//! # `ledger.csv` (format 3, see [`LEDGER_FORMAT`])
//!
//! Header: `line,key,status,setup_<step>_id…,<step>_id…,<ledger column>…,error_step,
//! error_code,error_message,started_at,finished_at` — the same for every row — then one record
//! per input row:
//! - `line`: the row's line in the input CSV where its record starts, the header being line 1:
//!   the line a spreadsheet shows, and how `validate` diagnostics and `cosell status` name rows;
//! - `key`: the playbook's row key;
//! - `status`: `succeeded`, `failed`, `skipped`, `in_flight` (started, unfinished: the run was
//!   stopped) or `pending` (not started);
//! - `setup_<step>_id`: for each setup step whose output (per the API model) has an id member
//!   ([`setup_step_has_id_column`]), the id it produced ([`id_of`]), the same on every row, so a
//!   row filtered out of the sheet still shows the engagement (or other resource) it belongs to;
//! - `<step>_id`: only for row steps that create or start something
//!   ([`row_step_has_id_column`]: the action starts with `Create` or `Start` and its output has
//!   an id member), the id the step produced ([`id_of`]), empty if it did not succeed. Other
//!   steps (`Get…`, `List…`, …) get none: their id is the row key or an earlier step's id, and a
//!   spreadsheet should not show one id under several names;
//! - the playbook's `ledger.columns`, rendered (their names may not clash with the built-in
//!   columns: `LEDGER_COLUMN_CLASH`);
//! - `notes`: what the run found beyond the outcome, `step: note` per step, `; `-separated:
//!   today, a write without a ClientToken that a retry or resume found already in place
//!   (`already in place (…)`), or an effect check that found it absent before the row failed;
//! - `error_step`, `error_code`, `error_message`: the failed step and its error;
//! - `started_at`, `finished_at`: RFC 3339 UTC.
//!
//! Format 2 had no `notes` column. Format 1 named the line column `row` and had a `<step>_id`
//! column for every row step and none for setup steps.
//!
//! Encoding: UTF-8 **with a byte-order mark** and **CRLF** line ends (RFC 4180). Excel opens a
//! CSV by double-click in the system's legacy code page unless the file starts with a BOM, which
//! would garble non-ASCII names; CRLF is what RFC 4180 specifies and what Excel writes, and
//! every other CSV reader accepts it. Any cell starting with `=`, `+`, `-`, `@`, a tab or a
//! carriage return gets a leading `'` so that a spreadsheet shows it as text instead of running
//! it as a formula (CSV injection); `ledger.jsonl` keeps the values as they are.
//!
//! # `ledger.jsonl`
//!
//! One JSON object per row: `format_version` ([`LEDGER_FORMAT`]), `line`, `key`, `status`,
//! `setup_ids` (setup step id → id), `ids` (step id → id, for the steps with a `<step>_id`
//! column), `columns` (name → value), `notes`, `error_step`, `error_code`, `error_message`,
//! `started_at`, `finished_at`, and `outputs` (step id → the step's full output as returned
//! by the API).
//!
//! The ledger is the user's own business data (customer and partner names, opportunity
//! details), so outputs are written in full, including values of members the API model marks
//! `sensitive`: the rule against sensitive values covers logs and terminal output, not this
//! file. Treat a ledger like the input CSV.

use crate::journal::{RowState, StepState};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

pub mod xlsx;
pub use xlsx::XLSX_FILE;

/// Version of the ledger's columns and of the `ledger.jsonl` objects (`format_version`).
/// 2: `row` became `line`; `<step>_id` only for steps that create or start something;
/// `setup_<step>_id` columns.
/// 3: the `notes` column (what an effect check found, per step).
/// 4: the `changes` column and `ledger.jsonl` `changes` (what `patch` steps changed).
pub const LEDGER_FORMAT: u32 = 4;
pub const CSV_FILE: &str = "ledger.csv";
pub const JSONL_FILE: &str = "ledger.jsonl";

/// The output members tried, in order, for the id a step produced: `Id` (Create… calls),
/// `TaskId` (Start…Task calls and task summaries), `ContextId` (CreateEngagementContext: the
/// context it made, not the engagement it is in), `EngagementId`, `OpportunityId`,
/// `EngagementInvitationId`, `ResourceSnapshotJobId`, `Arn`.
pub const ID_MEMBERS: [&str; 8] = [
    "Id",
    "TaskId",
    "ContextId",
    "EngagementId",
    "OpportunityId",
    "EngagementInvitationId",
    "ResourceSnapshotJobId",
    "Arn",
];

/// The id a step produced: the first of [`ID_MEMBERS`] present in its output as a non-empty
/// string (or a number).
pub fn id_of(step_output: &Value) -> Option<String> {
    let obj = step_output.as_object()?;
    ID_MEMBERS.iter().find_map(|m| match obj.get(*m)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Whether the API model's output of `action` has one of [`ID_MEMBERS`].
fn output_has_id(action: &str) -> bool {
    let m = crate::model::model();
    let Some(out) = m.operation(action).and_then(|o| o.output) else {
        return false;
    };
    let shape = m.shape(out);
    ID_MEMBERS.iter().any(|id| shape.member(id).is_some())
}

/// Whether a row step running `action` gets a `<step>_id` column: the operation creates or
/// starts something (its name starts with `Create` or `Start`) and its output, per the API
/// model, has one of [`ID_MEMBERS`]. Decided by the action alone, so the header is the same
/// for every row; a `Get…`/`List…`/`Update…` step only repeats an id the row already has.
pub fn row_step_has_id_column(action: &str) -> bool {
    (action.starts_with("Create") || action.starts_with("Start")) && output_has_id(action)
}

/// Whether a setup step running `action` gets a `setup_<step>_id` column: its output, per the
/// API model, has one of [`ID_MEMBERS`] (a setup step has no row key to repeat, and the id is
/// what every row belongs to, e.g. the engagement the invitations go to).
pub fn setup_step_has_id_column(action: &str) -> bool {
    output_has_id(action)
}

/// The columns of a ledger, the same for every row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layout {
    /// (setup step id, the id it produced, or "" when it did not succeed), for the
    /// `setup_<step>_id` columns: the same value on every row.
    pub setup_ids: Vec<(String, String)>,
    /// The row steps with a `<step>_id` column, in playbook order.
    pub id_steps: Vec<String>,
    /// The playbook's `ledger.columns` names.
    pub columns: Vec<String>,
    /// The row steps that `patch` a record: with any, a `changes` column.
    pub patch_steps: Vec<String>,
}

impl Layout {
    /// The CSV header, in order.
    pub fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = vec!["line".into(), "key".into(), "status".into()];
        h.extend(self.setup_ids.iter().map(|(s, _)| format!("setup_{s}_id")));
        h.extend(self.id_steps.iter().map(|s| format!("{s}_id")));
        h.extend(self.columns.iter().cloned());
        if !self.patch_steps.is_empty() {
            h.push("changes".into());
        }
        h.extend(
            [
                "notes",
                "error_step",
                "error_code",
                "error_message",
                "started_at",
                "finished_at",
            ]
            .map(String::from),
        );
        h
    }
}

/// One ledger line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerRow {
    /// Line of the row in the input CSV (header = line 1).
    pub line: u64,
    pub key: String,
    /// succeeded | failed | skipped | pending | in_flight
    pub status: String,
    /// (step id, id) for the steps that produced one.
    pub ids: Vec<(String, String)>,
    /// (ledger column name, rendered value).
    pub columns: Vec<(String, String)>,
    /// What the run found beyond the outcome, per step (`step: note; …`): a write already in
    /// place after a retry or resume.
    pub notes: String,
    /// What `patch` steps changed (`LifeCycle.Stage: Qualified → Committed; …`, `unchanged`
    /// when a patch found nothing to change), and per step the changes with their before and
    /// after values and the conflicts met, for `ledger.jsonl`.
    pub changes: String,
    pub patches: Map<String, Value>,
    pub error_step: String,
    pub error_code: String,
    pub error_message: String,
    pub started_at: String,
    pub finished_at: String,
    /// Step id → output, for `ledger.jsonl`.
    pub outputs: Map<String, Value>,
}

impl LedgerRow {
    /// Build a row from its replayed state (None: no record yet, so `pending`).
    /// `step_ids` are the row's steps in order; `columns` its rendered ledger columns.
    pub fn from_state(
        line: u64,
        key: String,
        state: Option<&RowState>,
        step_ids: &[String],
        columns: Vec<(String, String)>,
    ) -> LedgerRow {
        let mut row = LedgerRow {
            line,
            key,
            columns,
            status: "pending".into(),
            ..LedgerRow::default()
        };
        let Some(st) = state else { return row };
        row.status = match st.status {
            Some(s) => s.as_str().into(),
            None => "in_flight".into(),
        };
        for id in step_ids {
            if let Some(StepState::Succeeded { output }) = st.steps.get(id) {
                if let Some(v) = id_of(output) {
                    row.ids.push((id.clone(), v));
                }
                row.outputs.insert(id.clone(), output.clone());
            }
        }
        row.notes = step_ids
            .iter()
            .filter_map(|id| st.notes.get(id).map(|n| format!("{id}: {n}")))
            .collect::<Vec<_>>()
            .join("; ");
        let patched: Vec<(&String, &(Value, u32))> = step_ids
            .iter()
            .filter_map(|id| st.patches.get_key_value(id))
            .collect();
        row.changes = patched
            .iter()
            .map(|(id, (changes, _))| {
                let text = describe_changes(changes);
                if patched.len() > 1 {
                    format!("{id}: {text}")
                } else {
                    text
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        for (id, (changes, conflicts)) in patched {
            row.patches.insert(
                id.clone(),
                serde_json::json!({"changes": changes, "conflicts": conflicts}),
            );
        }
        if let Some((step, code, message)) = st.failed_step(step_ids) {
            row.error_step = step.into();
            row.error_code = code.into();
            row.error_message = message.into();
        }
        row.started_at = st.started_at.clone().unwrap_or_default();
        row.finished_at = st.finished_at.clone().unwrap_or_default();
        row
    }
}

/// What a `patch` step changed (its journaled list of `{path, before, after}`), as a cell:
/// `LifeCycle.Stage: Qualified → Committed; LifeCycle.NextSteps: (none) → Call`, or
/// `unchanged`.
pub fn describe_changes(changes: &Value) -> String {
    let show = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "(none)".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let items = changes.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() {
        return "unchanged".into();
    }
    items
        .iter()
        .map(|c| {
            format!(
                "{}: {} → {}",
                c.get("path").and_then(Value::as_str).unwrap_or(""),
                show(c.get("before")),
                show(c.get("after"))
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A cell as a spreadsheet must show it: a leading `=`, `+`, `-`, `@`, tab or carriage return
/// gets a `'` in front, so the cell is text, not a formula.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// Writes `ledger.csv.tmp`, `ledger.jsonl.tmp` and `ledger.xlsx.tmp`, renamed into place by
/// [`finish`](Self::finish).
pub struct LedgerWriter {
    dir: PathBuf,
    layout: Layout,
    csv: csv::Writer<BufWriter<File>>,
    jsonl: BufWriter<File>,
    xlsx: xlsx::XlsxLedger,
}

impl LedgerWriter {
    /// Start a ledger in `dir` with the columns of `layout`. The files are created with mode
    /// 0600: they hold customer data.
    pub fn create(dir: &Path, layout: Layout) -> io::Result<LedgerWriter> {
        let mut csv_file = BufWriter::new(crate::rundir::create_private(
            &crate::rundir::tmp_path(&dir.join(CSV_FILE)),
        )?);
        csv_file.write_all("\u{feff}".as_bytes())?;
        let mut csv = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(csv_file);
        let header = layout.header();
        csv.write_record(header.iter().map(|h| neutralise(h).into_owned()))?;
        let xlsx = xlsx::XlsxLedger::create(dir, &header, &layout.columns)?;
        let jsonl = BufWriter::new(crate::rundir::create_private(&crate::rundir::tmp_path(
            &dir.join(JSONL_FILE),
        ))?);
        Ok(LedgerWriter {
            dir: dir.to_path_buf(),
            layout,
            csv,
            jsonl,
            xlsx,
        })
    }

    /// Append one row to the three files.
    pub fn write(&mut self, row: &LedgerRow) -> io::Result<()> {
        let lookup = |pairs: &[(String, String)], name: &str| -> String {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let l = &self.layout;
        let mut rec: Vec<String> = vec![row.line.to_string(), row.key.clone(), row.status.clone()];
        rec.extend(l.setup_ids.iter().map(|(_, v)| v.clone()));
        rec.extend(l.id_steps.iter().map(|s| lookup(&row.ids, s)));
        rec.extend(l.columns.iter().map(|c| lookup(&row.columns, c)));
        if !l.patch_steps.is_empty() {
            rec.push(row.changes.clone());
        }
        rec.extend([
            row.notes.clone(),
            row.error_step.clone(),
            row.error_code.clone(),
            row.error_message.clone(),
            row.started_at.clone(),
            row.finished_at.clone(),
        ]);
        self.csv
            .write_record(rec.iter().map(|c| neutralise(c).into_owned()))?;
        self.xlsx.write(row.line, &rec, &row.status)?;
        if row.status == "failed" {
            self.xlsx.failed(
                row.line,
                &row.key,
                &row.error_step,
                &row.error_code,
                &row.error_message,
            );
        }

        let pairs = |p: &[(String, String)]| -> Value {
            Value::Object(
                p.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        };
        let mut obj = Map::new();
        obj.insert("format_version".into(), LEDGER_FORMAT.into());
        obj.insert("line".into(), row.line.into());
        obj.insert("key".into(), row.key.clone().into());
        obj.insert("status".into(), row.status.clone().into());
        obj.insert("setup_ids".into(), pairs(&l.setup_ids));
        let ids: Vec<(String, String)> = row
            .ids
            .iter()
            .filter(|(s, _)| l.id_steps.contains(s))
            .cloned()
            .collect();
        obj.insert("ids".into(), pairs(&ids));
        obj.insert("columns".into(), pairs(&row.columns));
        obj.insert("notes".into(), row.notes.clone().into());
        if !l.patch_steps.is_empty() {
            obj.insert("changes".into(), Value::Object(row.patches.clone()));
        }
        obj.insert("error_step".into(), row.error_step.clone().into());
        obj.insert("error_code".into(), row.error_code.clone().into());
        obj.insert("error_message".into(), row.error_message.clone().into());
        obj.insert("started_at".into(), row.started_at.clone().into());
        obj.insert("finished_at".into(), row.finished_at.clone().into());
        obj.insert("outputs".into(), Value::Object(row.outputs.clone()));
        serde_json::to_writer(&mut self.jsonl, &obj)?;
        self.jsonl.write_all(b"\n")
    }

    /// Flush and fsync the files (saving the workbook), rename them into place, fsync the
    /// directory.
    pub fn finish(self) -> io::Result<()> {
        let csv = self
            .csv
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))?;
        let csv = csv.into_inner().map_err(|e| e.into_error())?;
        csv.sync_all()?;
        let jsonl = self.jsonl.into_inner().map_err(|e| e.into_error())?;
        jsonl.sync_all()?;
        self.xlsx.finish()?;
        for name in [CSV_FILE, JSONL_FILE, XLSX_FILE] {
            let dest = self.dir.join(name);
            std::fs::rename(crate::rundir::tmp_path(&dest), &dest)?;
        }
        crate::rundir::sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{replay, Record, RowRef, RowStatus};
    use serde_json::json;

    #[test]
    fn neutralises_formula_starts_only() {
        for bad in [
            "=1+1",
            "+1",
            "-2",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "=HYPERLINK(\"x\")",
        ] {
            assert_eq!(neutralise(bad), format!("'{bad}"), "{bad:?}");
        }
        for ok in ["", "a=b", "Acme", "1", "'quoted", " =x", "é"] {
            assert_eq!(neutralise(ok), ok, "{ok:?}");
        }
    }

    #[test]
    fn id_of_follows_the_documented_order() {
        assert_eq!(id_of(&json!({"Arn": "arn", "Id": "i"})), Some("i".into()));
        assert_eq!(
            id_of(&json!({"EngagementId": "e", "TaskId": "t"})),
            Some("t".into())
        );
        assert_eq!(
            id_of(&json!({"OpportunityId": "o", "EngagementId": "e"})),
            Some("e".into())
        );
        assert_eq!(
            id_of(&json!({"EngagementId": "e", "ContextId": "1"})),
            Some("1".into()),
            "CreateEngagementContext made the context"
        );
        assert_eq!(id_of(&json!({"Id": "", "Arn": "a"})), Some("a".into()));
        assert_eq!(id_of(&json!({"Other": "x"})), None);
        assert_eq!(id_of(&json!("Id")), None);
    }

    #[test]
    fn id_columns_only_for_steps_that_create_or_start_something() {
        for yes in [
            "CreateEngagementInvitation",
            "CreateEngagement",
            "CreateOpportunity",
            "StartEngagementByAcceptingInvitationTask",
            "StartEngagementFromOpportunityTask",
        ] {
            assert!(row_step_has_id_column(yes), "{yes}");
            assert!(setup_step_has_id_column(yes), "{yes}");
        }
        // repeats an id the row already has; or outputs no id at all
        for no in [
            "GetEngagementInvitation",
            "GetOpportunity",
            "ListEngagementInvitations",
            "AcceptEngagementInvitation",
            "StartResourceSnapshotJob",
            "NoSuchOperation",
        ] {
            assert!(!row_step_has_id_column(no), "{no}");
        }
        // a setup step's id is context for every row, whatever made it
        assert!(setup_step_has_id_column("GetEngagement"));
        assert!(!setup_step_has_id_column("AcceptEngagementInvitation"));
    }

    fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn writes_csv_and_jsonl_from_replayed_state() {
        let t = tempfile::tempdir().unwrap();
        let steps = vec![s("invite"), s("check")];
        let recs = vec![
            Record::StepStarted {
                row: RowRef::Row(0),
                step: s("invite"),
                token: Some(s("k")),
                digest: s("d"),
                at: s("t0"),
            },
            Record::StepSucceeded {
                row: RowRef::Row(0),
                step: s("invite"),
                output: json!({"Id": "inv-1", "Arn": "arn:1"}),
                at: s("t1"),
            },
            Record::EffectChecked {
                row: RowRef::Row(0),
                step: s("check"),
                code: s("ConflictException"),
                read: s("GetEngagementInvitation"),
                in_place: true,
                detail: s("the invitation is ACCEPTED"),
                at: s("t2"),
            },
            Record::StepSucceeded {
                row: RowRef::Row(0),
                step: s("check"),
                output: json!({"Status": "PENDING"}),
                at: s("t2"),
            },
            Record::RowFinished {
                row: RowRef::Row(0),
                status: RowStatus::Succeeded,
                at: s("t3"),
            },
            Record::StepFailed {
                row: RowRef::Row(1),
                step: s("invite"),
                code: s("ValidationException"),
                message: s("=bad, \"quoted\"\nsecond line"),
                at: s("t4"),
            },
            Record::RowFinished {
                row: RowRef::Row(1),
                status: RowStatus::Failed,
                at: s("t5"),
            },
            Record::StepStarted {
                row: RowRef::Row(2),
                step: s("invite"),
                token: None,
                digest: s("d"),
                at: s("t6"),
            },
        ];
        let st = replay(&recs);
        // check is a Get: no check_id column; the setup engagement is on every row
        let layout = Layout {
            setup_ids: vec![(s("engagement"), s("eng-1"))],
            id_steps: vec![s("invite")],
            columns: vec![s("partner"), s("note")],
            patch_steps: vec![],
        };
        let mut w = LedgerWriter::create(t.path(), layout).unwrap();
        for (i, key) in ["acme", "-globex", "initech", "umbrella"]
            .iter()
            .enumerate()
        {
            let cols = vec![(s("partner"), format!("P{i}")), (s("note"), s("@x"))];
            let row =
                LedgerRow::from_state(i as u64 + 2, s(key), st.rows.get(&(i as u64)), &steps, cols);
            w.write(&row).unwrap();
        }
        assert!(t.path().join("ledger.csv.tmp").exists());
        assert!(!t.path().join("ledger.csv").exists());
        assert!(!t.path().join("ledger.xlsx").exists());
        w.finish().unwrap();
        assert!(!t.path().join("ledger.csv.tmp").exists());
        assert!(!t.path().join("ledger.xlsx.tmp").exists());
        // the workbook has the same rows, its text as written (no `'`)
        use calamine::Reader;
        let mut wb: calamine::Xlsx<_> =
            calamine::open_workbook(t.path().join("ledger.xlsx")).unwrap();
        let sheet = wb.worksheet_range("Ledger").unwrap();
        assert_eq!(sheet.height(), 5);
        assert_eq!(sheet.get_value((2, 1)).unwrap().to_string(), "-globex");
        assert_eq!(sheet.get_value((1, 6)).unwrap().to_string(), "@x");

        let bytes = std::fs::read(t.path().join("ledger.csv")).unwrap();
        assert!(bytes.starts_with("\u{feff}".as_bytes()));
        let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
        let first = text.split("\r\n").next().unwrap();
        assert_eq!(first, "line,key,status,setup_engagement_id,invite_id,partner,note,notes,error_step,error_code,error_message,started_at,finished_at");
        let mut rdr = csv::Reader::from_reader(&bytes[3..]);
        let rows: Vec<Vec<String>> = rdr
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[0],
            [
                "2",
                "acme",
                "succeeded",
                "eng-1",
                "inv-1",
                "P0",
                "'@x",
                "check: already in place (a retried call met its own earlier effect: ConflictException; GetEngagementInvitation shows the invitation is ACCEPTED)",
                "",
                "",
                "",
                "t0",
                "t3"
            ]
        );
        assert_eq!(rows[1][..3], [s("3"), s("'-globex"), s("failed")]);
        assert_eq!(
            rows[1][8..11],
            [
                s("invite"),
                s("ValidationException"),
                s("'=bad, \"quoted\"\nsecond line")
            ]
        );
        assert_eq!(rows[2][2], "in_flight");
        assert_eq!(rows[3][2], "pending");
        assert_eq!(rows[3][3], "eng-1");
        assert_eq!(rows[3][11], "");

        let jsonl = std::fs::read_to_string(t.path().join("ledger.jsonl")).unwrap();
        let objs: Vec<Value> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(objs.len(), 4);
        assert_eq!(objs[0]["format_version"], LEDGER_FORMAT);
        assert_eq!(objs[0]["line"], 2);
        assert!(objs[0].get("row").is_none());
        assert_eq!(objs[0]["setup_ids"], json!({"engagement": "eng-1"}));
        assert_eq!(objs[3]["setup_ids"], json!({"engagement": "eng-1"}));
        assert_eq!(objs[0]["ids"], json!({"invite": "inv-1"}));
        assert_eq!(objs[0]["columns"], json!({"partner": "P0", "note": "@x"}));
        assert_eq!(objs[0]["outputs"]["check"], json!({"Status": "PENDING"}));
        assert_eq!(objs[1]["key"], "-globex");
        assert_eq!(objs[1]["error_message"], "=bad, \"quoted\"\nsecond line");
        assert_eq!(objs[3]["status"], "pending");
    }
}
