//! Run directories on disk: `cosell status` on hand-written runs, the one-writer lock (and
//! its release when the holder is SIGKILLed), torn and newer-format journals.
use crate::support::Cosell;
use cosell::journal::{JournalWriter, Record, RowRef, RowStatus, JOURNAL_FORMAT};
use cosell::rundir::{digest_vars, Digests, Manifest, RunDir, RunDirError, RUN_FORMAT};
use serde_json::{json, Value};
use std::path::Path;

fn s(x: &str) -> String {
    x.to_string()
}

/// A run of `rows` input rows with steps invite → check, and a setup step whoami.
pub(crate) fn make_run(work: &Path, rows: usize) -> std::path::PathBuf {
    let mut csv = String::from("partner,country\n");
    for i in 0..rows {
        csv.push_str(&format!("P{i},US\n"));
    }
    std::fs::write(work.join("partners.csv"), csv).unwrap();
    std::fs::write(work.join("invite.yaml"), "name: invite\n").unwrap();
    let manifest = Manifest {
        format: RUN_FORMAT,
        run_id: s("invite-20261122T194500Z"),
        created_at: s("2026-11-22T19:45:00Z"),
        playbook_name: s("invite"),
        playbook_path: work.join("invite.yaml"),
        input_path: work.join("partners.csv"),
        vars: vec![],
        catalog: s("Sandbox"),
        digests: Digests {
            playbook: cosell::rundir::digest_file(&work.join("invite.yaml")).unwrap(),
            input: cosell::rundir::digest_file(&work.join("partners.csv")).unwrap(),
            vars: digest_vars(&[]),
        },
        cosell_version: s(env!("CARGO_PKG_VERSION")),
        step_ids: vec![s("whoami"), s("invite"), s("check")],
        setup_steps: 1,
        ledger_columns: vec![],
        total_rows: 0,
        ..Manifest::default()
    };
    let dir = work.join("runs/invite");
    RunDir::create(&dir, &manifest).unwrap();
    dir
}

fn started(row: u64, step: &str) -> Record {
    Record::StepStarted {
        row: RowRef::Row(row),
        step: s(step),
        token: Some(format!("tok-{row}-{step}")),
        digest: s("d"),
        at: s("2026-11-22T19:45:01.000Z"),
    }
}
fn succeeded(row: RowRef, step: &str) -> Record {
    Record::StepSucceeded {
        row,
        step: s(step),
        output: json!({"Id": format!("id-{step}")}),
        at: s("2026-11-22T19:45:02.000Z"),
    }
}
fn finished(row: u64, status: RowStatus) -> Record {
    Record::RowFinished {
        row: RowRef::Row(row),
        status,
        at: s("2026-11-22T19:45:03.000Z"),
    }
}

/// Append `recs` after the header `RunDir::create` wrote.
pub(crate) fn write_journal(dir: &Path, recs: &[Record]) {
    let mut w = JournalWriter::open(&dir.join("journal.jsonl")).unwrap();
    assert!(!w.is_empty(), "RunDir::create writes the header");
    for r in recs {
        w.append(r).unwrap();
    }
    w.commit().unwrap();
}

/// Rows 0..2 succeeded, row 2 failed, row 3 waiting on a task, row 4 in flight, 5..30 pending.
pub(crate) fn typical_journal() -> Vec<Record> {
    let mut recs = vec![
        Record::StepStarted {
            row: RowRef::Setup,
            step: s("whoami"),
            token: None,
            digest: s("d"),
            at: s("2026-11-22T19:45:00.500Z"),
        },
        succeeded(RowRef::Setup, "whoami"),
        Record::RowFinished {
            row: RowRef::Setup,
            status: RowStatus::Succeeded,
            at: s("t"),
        },
    ];
    for i in 0..2 {
        recs.extend([
            started(i, "invite"),
            succeeded(RowRef::Row(i), "invite"),
            started(i, "check"),
            succeeded(RowRef::Row(i), "check"),
            finished(i, RowStatus::Succeeded),
        ]);
    }
    recs.extend([
        started(2, "invite"),
        Record::StepFailed {
            row: RowRef::Row(2),
            step: s("invite"),
            code: s("ValidationException"),
            message: s("bad country"),
            at: s("t"),
        },
        finished(2, RowStatus::Failed),
        started(3, "invite"),
        succeeded(RowRef::Row(3), "invite"),
        started(3, "check"),
        Record::TaskWaiting {
            row: RowRef::Row(3),
            step: s("check"),
            task_id: s("task-0003"),
            at: s("t"),
        },
        started(4, "invite"),
    ]);
    recs
}

#[test]
fn status_shows_counts_next_steps_and_the_resume_commands() {
    let c = Cosell::new();
    let dir = make_run(c.path(), 30);
    write_journal(&dir, &typical_journal());
    let out = c.args(["status", "runs/invite"]).run();
    out.code(0)
        .stdout_has("setup     succeeded")
        .stdout_has("rows      2 succeeded, 1 failed, 0 skipped, 2 in flight, 25 pending")
        .stdout_has("(30 rows)")
        .stdout_has("line 5 ")
        .stdout_has("waiting on task task-0003")
        .stdout_has("line 6 ")
        .stdout_has("in flight: resume re-sends it with the same ClientToken")
        .stdout_has("line 7 ")
        .stdout_has("not started")
        // 27 unfinished rows: 20 listed.
        .stdout_has("… and 7 more")
        .stdout_has("resume with:  cosell resume runs/invite\n")
        .stdout_has("failed rows:\n  line 4                 invite               ValidationException: bad country\n")
        .stdout_has(
            "1 failed row(s); run them again with:  cosell resume runs/invite --retry-failed",
        );
    let unfinished = out.stdout.split("failed rows:").next().unwrap();
    assert!(!unfinished.contains("line 4 "), "{}", out.stdout);
}

#[test]
fn status_json_has_the_same_fields() {
    let c = Cosell::new();
    let dir = make_run(c.path(), 30);
    write_journal(&dir, &typical_journal());
    let out = c.args(["status", "runs/invite", "--format", "json"]).run();
    out.code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["total_rows"], 30);
    assert_eq!(v["setup"], "succeeded");
    assert_eq!(
        v["rows"],
        json!({"succeeded": 2, "failed": 1, "skipped": 0, "in_flight": 2, "pending": 25})
    );
    let unfinished = v["unfinished"].as_array().unwrap();
    assert_eq!(unfinished.len(), 20);
    assert_eq!(
        unfinished[0],
        json!({"line": 5, "record_index": 3, "next_step": "check", "state": "waiting", "task_id": "task-0003"})
    );
    assert_eq!(unfinished[1]["state"], "in_flight");
    assert_eq!(unfinished[1]["next_step"], "invite");
    assert_eq!(
        unfinished[2],
        json!({"line": 7, "record_index": 5, "next_step": "invite", "state": "not_started", "task_id": null})
    );
    assert_eq!(v["unfinished_more"], 7);
    assert_eq!(
        v["failed"],
        json!([{"line": 4, "record_index": 2, "step": "invite", "code": "ValidationException", "message": "bad country"}])
    );
    assert_eq!(v["failed_more"], 0);
    assert_eq!(v["complete"], false);
    assert_eq!(v["resume"], "cosell resume runs/invite");
    assert_eq!(
        v["retry_failed"],
        "cosell resume runs/invite --retry-failed"
    );
    assert_eq!(v["torn_tail_line"], Value::Null);
    assert_eq!(v["running"], Value::Null);
    assert_eq!(v["drift"], json!([]));
}

#[test]
fn status_names_a_changed_input() {
    let c = Cosell::new();
    let dir = make_run(c.path(), 3);
    write_journal(&dir, &typical_journal()[..3]);
    std::fs::write(c.path().join("partners.csv"), "partner,country\nP0,US\n").unwrap();
    let out = c.args(["status", "runs/invite"]).run();
    out.code(0)
        .stdout_has("changed   input changed since the run started (")
        .stdout_has("partners.csv): sha256 ")
        .stdout_has("add --force to accept the change")
        .stdout_has("(1 row)");
    assert!(!out.stdout.contains("playbook changed"), "{}", out.stdout);
}

#[test]
fn status_says_when_a_process_holds_the_run() {
    let c = Cosell::new();
    let dir = make_run(c.path(), 3);
    write_journal(&dir, &typical_journal()[..3]);
    let holder = open_eventually(&dir);
    let out = c.args(["status", "runs/invite", "--format", "json"]).run();
    drop(holder);
    out.code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["running"]["pid"], std::process::id());
    assert_eq!(v["resume"], Value::Null);
    assert_eq!(v["rows"]["pending"], 3);
}

#[test]
fn status_of_a_complete_run_and_of_a_run_that_never_started() {
    let c = Cosell::new();
    let dir = make_run(c.path(), 2);
    let mut recs = vec![succeeded(RowRef::Setup, "whoami")];
    recs.push(Record::RowFinished {
        row: RowRef::Setup,
        status: RowStatus::Succeeded,
        at: s("t"),
    });
    for i in 0..2 {
        recs.extend([
            succeeded(RowRef::Row(i), "invite"),
            succeeded(RowRef::Row(i), "check"),
            finished(i, RowStatus::Succeeded),
        ]);
    }
    write_journal(&dir, &recs);
    let out = c.args(["status", "runs/invite", "--format", "json"]).run();
    out.code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["complete"], true);
    assert_eq!(v["resume"], Value::Null);
    assert_eq!(v["retry_failed"], Value::Null);

    // Nothing journaled yet but the header: setup and every row pending.
    let c = Cosell::new();
    make_run(c.path(), 3);
    let out = c.args(["status", "runs/invite"]).run();
    out.code(0)
        .stdout_has("setup     pending")
        .stdout_has("0 in flight, 3 pending")
        .stdout_has("line 2 ")
        .stdout_has("resume with:  cosell resume runs/invite");
}

#[test]
fn status_ignores_a_torn_last_record_and_says_so() {
    let c = Cosell::new();
    let dir = make_run(c.path(), 30);
    write_journal(&dir, &typical_journal());
    let j = dir.join("journal.jsonl");
    let bytes = std::fs::read(&j).unwrap();
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    // Half of a record, as a crash mid-append leaves it.
    let mut torn = bytes.clone();
    torn.extend_from_slice(b"0badc0de {\"t\":\"row_finished\",\"row\":4,\"sta");
    std::fs::write(&j, &torn).unwrap();
    let out = c.args(["status", "runs/invite", "--format", "json"]).run();
    out.code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["torn_tail_line"], lines as u64 + 1);
    assert_eq!(v["rows"]["in_flight"], 2);
}

#[test]
fn status_refuses_a_newer_journal_and_a_damaged_middle_naming_the_line() {
    let c = Cosell::new();
    let dir = make_run(c.path(), 3);
    std::fs::remove_file(dir.join("journal.jsonl")).unwrap();
    let mut w = JournalWriter::open(&dir.join("journal.jsonl")).unwrap();
    w.append(&Record::Header {
        format: JOURNAL_FORMAT + 1,
        run_id: s("x"),
    })
    .unwrap();
    w.commit().unwrap();
    let out = c.args(["status", "runs/invite"]).run();
    out.code(cosell::exit::ENVIRONMENT)
        .stderr_has(&format!(
            "journal format {}, this cosell reads format {JOURNAL_FORMAT}",
            JOURNAL_FORMAT + 1
        ))
        .stderr_has("upgrade cosell");

    let c = Cosell::new();
    let dir = make_run(c.path(), 30);
    write_journal(&dir, &typical_journal());
    let j = dir.join("journal.jsonl");
    let text = std::fs::read_to_string(&j).unwrap();
    let damaged = text.replacen("bad country", "bad cuontry", 1);
    assert_ne!(damaged, text);
    std::fs::write(&j, damaged).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("bad country"))
        .unwrap()
        + 1;
    let out = c.args(["status", "runs/invite"]).run();
    out.code(cosell::exit::ENVIRONMENT).stderr_has(&format!(
        "journal.jsonl:{line}: damaged record (checksum mismatch)"
    ));
}

#[test]
fn status_of_something_that_is_not_a_run_directory() {
    let out = Cosell::new().args(["status", "nowhere"]).run();
    out.code(cosell::exit::INVALID)
        .stderr_has("nowhere: not a run directory");
}

#[test]
fn status_reports_a_newer_run_directory_format() {
    let c = Cosell::new();
    let dir = make_run(c.path(), 1);
    let m = dir.join("run.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
    v["format"] = json!(RUN_FORMAT + 1);
    std::fs::write(&m, v.to_string()).unwrap();
    c.args(["status", "runs/invite"])
        .run()
        .code(cosell::exit::ENVIRONMENT)
        .stderr_has("run directory format 2, this cosell reads format 1");
}

/// Open with the lock. Other tests of this process spawn children, and a child shares our
/// open files between its fork and its exec, so a lock just released may stay held for that
/// instant: retry for a while, and fail if it never becomes free.
fn open_eventually(dir: &Path) -> RunDir {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match RunDir::open(dir) {
            Ok(rd) => return rd,
            Err(RunDirError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("the lock was never released: {e}"),
        }
    }
}

#[test]
fn the_lock_stops_a_second_writer_and_is_released_when_its_holder_is_killed() {
    let t = tempfile::tempdir().unwrap();
    let dir = make_run(t.path(), 1);
    // In this process: a second open is refused while the first is alive.
    let first = open_eventually(&dir);
    match RunDir::open(&dir) {
        Err(RunDirError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
        other => panic!("want Locked, got {other:?}"),
    }
    drop(first);

    // In another process that is then SIGKILLed: flock(1) takes the same flock(2) lock on the
    // directory and holds it itself (-o: not inherited by the command it waits for).
    let mut holder = std::process::Command::new("flock")
        .args(["-o", ".", "sleep", "30"])
        .current_dir(&dir)
        .spawn()
        .expect("flock(1) from util-linux");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match RunDir::open(&dir) {
            Err(RunDirError::Locked { .. }) => break,
            Ok(rd) => drop(rd),
            Err(e) => panic!("{e}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "flock never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let e = RunDir::open(&dir).unwrap_err();
    assert!(
        e.to_string().contains("in use by another cosell process"),
        "{e}"
    );
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    let rd = open_eventually(&dir);
    assert!(rd.is_locked());
    let text = std::fs::read_to_string(dir.join("run.lock")).unwrap();
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
}
