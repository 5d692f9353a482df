//! A run directory cannot be fooled: the journal must be its own, the lock cannot be deleted
//! away, files are private, "not a run directory" is one exit code everywhere, concurrent runs
//! get their own directories; and rows are named by their CSV line in status and ledger alike.
use crate::journal::{make_run, typical_journal, write_journal};
use crate::run::{accept, invite, partners_csv, write_invitations, RECEIVER, SENDER, X50};
use crate::support::{all_succeeded, read_ledger, Cosell, Emu};
use cosell::exit;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `resume`, `resume --retry-failed`, `status` and `status --format json` on `path`, run in
/// `work` (`status` takes no connection flags): (what was run, its outcome).
fn every_command_on(work: &Path, path: &str) -> Vec<(String, crate::support::Outcome)> {
    let cmds: [Vec<&str>; 4] = [
        vec!["resume", path, "--emulate"],
        vec!["resume", path, "--retry-failed", "--emulate"],
        vec!["status", path],
        vec!["status", path, "--format", "json"],
    ];
    cmds.iter()
        .map(|args| {
            let out = Cosell::in_dir(work).args(args.iter().copied()).run();
            (args.join(" "), out)
        })
        .collect()
}

#[test]
fn not_a_run_directory_exits_2_from_every_command_and_says_what_one_is() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("plain")).unwrap();
    std::fs::write(t.path().join("file.txt"), "x").unwrap();
    for (path, why) in [
        ("missing", "no such directory"),
        ("plain", "no run.json"),
        ("file.txt", "a file, not a directory"),
    ] {
        for (cmd, out) in every_command_on(t.path(), path) {
            assert_eq!(out.code, exit::INVALID, "{cmd}: {}", out.stderr);
            for want in [
                &format!("{path}: not a run directory ({why})"),
                "holding run.json and journal.jsonl",
            ] {
                assert!(out.stderr.contains(want), "{cmd}: {}", out.stderr);
            }
        }
    }
}

#[test]
fn a_run_json_without_its_journal_is_damage_for_every_command() {
    let c = Cosell::new();
    let dir = make_run(c.path(), 3);
    std::fs::remove_file(dir.join("journal.jsonl")).unwrap();
    for (cmd, out) in every_command_on(c.path(), "runs/invite") {
        assert_eq!(out.code, exit::ENVIRONMENT, "{cmd}: {}", out.stderr);
        assert!(
            out.stderr.contains("journal.jsonl: damaged run directory")
                && out.stderr.contains("restore journal.jsonl from a backup"),
            "{cmd}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_journal_copied_in_from_another_run_is_damage_naming_both_runs() {
    let c = Cosell::new();
    let dir = make_run(c.path(), 3);
    write_journal(&dir, &typical_journal()[..3]);
    // another run's journal, under this run's run.json
    let other = c.path().join("other");
    let mut m: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    m["run_id"] = "invite-20261123T101010.123Z".into();
    let m: cosell::rundir::Manifest = serde_json::from_value(m).unwrap();
    drop(cosell::rundir::RunDir::create(&other, &m).unwrap());
    std::fs::copy(other.join("journal.jsonl"), dir.join("journal.jsonl")).unwrap();
    for (cmd, out) in every_command_on(c.path(), "runs/invite") {
        assert_eq!(out.code, exit::ENVIRONMENT, "{cmd}: {}", out.stderr);
        for want in [
            "journal.jsonl: damaged run directory: this journal belongs to run invite-20261123T101010.123Z, but run.json is run invite-20261122T194500Z",
            "put back this run's own journal",
        ] {
            assert!(out.stderr.contains(want), "{cmd}: {}", out.stderr);
        }
    }
}

#[test]
fn a_complete_garbage_last_line_is_damage_with_its_line_but_a_cut_one_is_a_torn_tail() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(2, RECEIVER)).unwrap();
    invite(&emu, dir.path(), "g").run().code(0);
    let j = dir.path().join("g/journal.jsonl");
    let good = std::fs::read(&j).unwrap();
    let lines = good.iter().filter(|&&b| b == b'\n').count();
    let mut bytes = good.clone();
    bytes.extend_from_slice(b"this is not a journal record\n");
    std::fs::write(&j, &bytes).unwrap();
    let resume = || {
        Cosell::in_dir(dir.path())
            .args(["resume", "g"])
            .args(X50)
            .calling_as(emu.url(), SENDER)
            .run()
    };
    let status = |args: &[&str]| Cosell::in_dir(dir.path()).args(args.iter().copied()).run();
    for (cmd, out) in [
        ("resume", resume()),
        ("status", status(&["status", "g"])),
        ("status json", status(&["status", "g", "--format", "json"])),
    ] {
        assert_eq!(out.code, exit::ENVIRONMENT, "{cmd}: {}", out.stderr);
        let want = format!("journal.jsonl:{}: damaged record (", lines + 1);
        assert!(out.stderr.contains(&want), "{cmd}: {}", out.stderr);
        assert!(
            out.stderr.contains("not a record cut short by a crash"),
            "{cmd}: {}",
            out.stderr
        );
    }
    // refused without touching it
    assert_eq!(std::fs::read(&j).unwrap(), bytes);

    // the same bytes without their newline: a torn tail, reported, then cut by resume
    bytes.pop();
    std::fs::write(&j, &bytes).unwrap();
    let out = status(&["status", "g", "--format", "json"]);
    out.code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["torn_tail_line"], lines as u64 + 1);
    resume().code(0);
    assert_eq!(std::fs::read(&j).unwrap()[..good.len()], good[..]);
    let out = status(&["status", "g", "--format", "json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["torn_tail_line"], Value::Null);
}

#[test]
fn deleting_run_lock_does_not_let_a_second_process_in_and_the_holder_is_named() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(40, RECEIVER)).unwrap();
    // slow: 40 invitations at 4 calls/s
    let mut child = invite(&emu, dir.path(), "l")
        .args(["--rate", "write=4/s"])
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = dir.path().join("l/run.lock");
    let deadline = Instant::now() + Duration::from_secs(20);
    // the lock is taken before run.json is written: wait for both, or a loaded machine lets
    // the resume below in between, where the directory is not a run directory yet
    while !(std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("since "))
        && dir.path().join("l/run.json").exists())
    {
        assert!(Instant::now() < deadline, "the run never took its lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_file(&lock).unwrap();
    let out = Cosell::in_dir(dir.path())
        .args(["resume", "l"])
        .args(X50)
        .calling_as(emu.url(), SENDER)
        .run();
    let running = child.try_wait().unwrap().is_none();
    let status = Cosell::in_dir(dir.path())
        .args(["status", "l", "--format", "json"])
        .run();
    let _ = child.kill();
    let _ = child.wait();
    assert!(running, "the first run ended too early for the test");
    out.code(exit::ENVIRONMENT)
        .stderr_has("in use by another cosell process")
        .stderr_has(&format!("pid {}", child.id()));
    assert!(
        !lock.exists(),
        "resume must not recreate the holder's lock file"
    );
    status.code(0);
    let v: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["running"]["pid"], child.id(), "{v:#}");
}

#[cfg(unix)]
#[test]
fn run_directory_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(2, RECEIVER)).unwrap();
    invite(&emu, dir.path(), "m").run().code(0);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let run = dir.path().join("m");
    assert_eq!(mode(&run), 0o700);
    for f in [
        "run.json",
        "journal.jsonl",
        "run.lock",
        "ledger.csv",
        "ledger.jsonl",
        "ledger.xlsx",
    ] {
        assert_eq!(mode(&run.join(f)), 0o600, "{f}");
    }
    // a resume rewrites the ledger through its .tmp files: still private
    Cosell::in_dir(dir.path())
        .args(["resume", "m"])
        .args(X50)
        .calling_as(emu.url(), SENDER)
        .run()
        .code(0);
    for f in ["ledger.csv", "ledger.jsonl", "ledger.xlsx", "run.lock"] {
        assert_eq!(mode(&run.join(f)), 0o600, "{f}");
    }
}

#[test]
fn two_runs_started_at_once_get_their_own_directories_and_both_complete() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(3, RECEIVER)).unwrap();
    let pb = crate::run::invite_playbook(dir.path());
    let start = || {
        Cosell::in_dir(dir.path())
            .arg("run")
            .arg(&pb)
            .args(["--input", "partners.csv"])
            .args(X50)
            .calling_as(emu.url(), SENDER)
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut runs: Vec<_> = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for r in &runs {
        let name = r.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("q4-reseller-invites-20"), "{name}");
        assert_eq!(all_succeeded(&r.join("ledger.csv")).len(), 3);
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(r.join("run.json")).unwrap()).unwrap();
        assert_eq!(
            m["run_id"],
            name.as_str(),
            "the run id is the directory's name"
        );
    }
    // `--run-dir` naming an existing run stays an error
    let existing = runs[0].to_string_lossy().into_owned();
    Cosell::in_dir(dir.path())
        .arg("run")
        .arg(&pb)
        .args(["--input", "partners.csv", "--run-dir", &existing])
        .args(X50)
        .calling_as(emu.url(), SENDER)
        .run()
        .stderr_has("already holds a run");
}

#[test]
fn status_text_status_json_and_the_ledger_name_the_same_rows_by_csv_line() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let c = Cosell::new();
    // record 1 spans lines 2-3 (a quoted newline), so lines are not index + 2
    let c = c
        .file(
            "in.csv",
            "id,note\neng-00000000000001,\"two\nlines\"\neng-00000000000002,x\neng-00000000000003,y\n",
        )
        .file(
            "p.yaml",
            r#"version: 1
name: lines
catalog: Sandbox
input: { csv: in.csv, key: "{{ row.id }}" }
limits: { max_failures: 100% }
setup:
  - id: eng
    action: CreateEngagement
    input: { Title: Lines, Description: Line numbers }
steps:
  - id: get
    action: GetEngagement
    input: { Identifier: "{{ row.id }}" }
"#,
        );
    let work = c.path().to_path_buf();
    let out = c
        .args(["run", "p.yaml", "--run-dir", "r"])
        .args(X50)
        .calling_as(emu.url(), SENDER)
        .run();
    out.code(exit::ROWS_FAILED);
    let ledger = read_ledger(&work.join("r/ledger.csv"));
    let ledger_lines: Vec<String> = ledger.iter().map(|r| r["line"].clone()).collect();
    assert_eq!(ledger_lines, ["2", "4", "5"]);
    // the setup's id on every row; no get_id (a Get repeats the key)
    let eng = &ledger[0]["setup_eng_id"];
    assert!(eng.starts_with("eng-"), "{ledger:?}");
    assert!(ledger.iter().all(|r| &r["setup_eng_id"] == eng));
    assert!(!ledger[0].contains_key("get_id") && !ledger[0].contains_key("row"));

    let json = Cosell::in_dir(&work)
        .args(["status", "r", "--format", "json"])
        .run();
    json.code(0);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    let failed: Vec<String> = v["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["line"].to_string())
        .collect();
    assert_eq!(failed, ledger_lines);
    assert!(v["failed"][0].get("row").is_none(), "{v:#}");
    let text = Cosell::in_dir(&work).args(["status", "r"]).run();
    text.code(0);
    for l in &ledger_lines {
        text.stdout_has(&format!("  line {l} "));
    }
    assert!(!text.stdout.contains("row "), "{}", text.stdout);
}

#[test]
fn example_ledgers_show_each_id_once_and_the_setup_engagement_on_every_row() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(3, RECEIVER)).unwrap();
    invite(&emu, dir.path(), "send").run().code(0);
    let header = |run: &str| -> String {
        let text = std::fs::read_to_string(dir.path().join(run).join("ledger.csv")).unwrap();
        text.trim_start_matches('\u{feff}')
            .split("\r\n")
            .next()
            .unwrap()
            .to_string()
    };
    const TAIL: &str = "notes,error_step,error_code,error_message,started_at,finished_at";
    assert_eq!(
        header("send"),
        format!("line,key,status,setup_engagement_id,invite_id,invitation_status,{TAIL}")
    );
    let ledger = all_succeeded(&dir.path().join("send/ledger.csv"));
    let eng = ledger[0]["setup_engagement_id"].clone();
    assert!(eng.starts_with("eng-"), "{ledger:?}");
    for r in &ledger {
        assert_eq!(r["setup_engagement_id"], eng);
        assert!(r["invite_id"].starts_with("engi-"), "{r:?}");
    }
    let jsonl = std::fs::read_to_string(dir.path().join("send/ledger.jsonl")).unwrap();
    let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["format_version"], cosell::ledger::LEDGER_FORMAT);
    assert_eq!(first["setup_ids"]["engagement"], eng.as_str());

    write_invitations(dir.path());
    accept(&emu, dir.path(), "accept").run().code(0);
    assert_eq!(
        header("accept"),
        format!("line,key,status,accept_id,status_before,sender,{TAIL}")
    );
    for r in all_succeeded(&dir.path().join("accept/ledger.csv")) {
        assert!(r["accept_id"].starts_with("task-"), "{r:?}");
        assert!(r["key"].starts_with("engi-"), "{r:?}");
    }
}
