//! Rehearsals end to end: every example with `--emulate` and no other flag, a rehearsal
//! interrupted or killed and resumed with the printed command, a redrive through task
//! failures, and the recorded connection and account on resume.

use crate::run::{accept, invite, partners_csv, write_invitations, RECEIVER, SENDER, X50};
use crate::support::{all_succeeded, read_ledger, repo, Cosell, Emu};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The one run directory under `dir/runs`.
fn run_dir(dir: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

/// Invitations the rehearsal's emulator holds (its state file in the run directory).
fn emulated_invitations(run: &Path) -> usize {
    let text = std::fs::read_to_string(run.join("emulator-state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["invitations"].as_object().unwrap().len()
}

/// The `cosell resume …` line cosell printed, as arguments.
fn printed_resume(stderr: &str) -> Vec<String> {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("cosell resume "))
        .unwrap_or_else(|| panic!("no resume command in:\n{stderr}"));
    line.split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_example_playbook_rehearses_with_emulate_and_no_other_flag() {
    let mut names: Vec<PathBuf> = std::fs::read_dir(repo().join("playbooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "{names:?}");
    for playbook in names {
        let out = Cosell::new()
            .arg("run")
            .arg(&playbook)
            .arg("--emulate")
            .run();
        out.code(0).stderr_has("nothing leaves this machine");
        let run = run_dir(out.dir.path());
        let ledger = all_succeeded(&run.join("ledger.csv"));
        assert!(!ledger.is_empty(), "{}", playbook.display());
        assert!(run.join("emulator-state.json").exists());
    }
}

#[test]
fn an_interrupted_rehearsal_resumes_with_the_exact_printed_command() {
    let dir = tempfile::tempdir().unwrap();
    let child = Cosell::in_dir(dir.path())
        .arg("run")
        .arg(repo().join("playbooks/invite-partners.yaml"))
        .arg("--emulate")
        .spawn_piped();
    std::thread::sleep(Duration::from_millis(3500));
    crate::support::signal(child.id(), "-INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let run = run_dir(dir.path());
    let before = read_ledger(&run.join("ledger.csv"));
    assert!(
        before.iter().any(|r| r["status"] != "succeeded"),
        "stopped early"
    );
    // pasted as is: the run directory knows it was a rehearsal
    let args = printed_resume(&stderr);
    Cosell::in_dir(dir.path()).args(&args).run().code(0);
    let ledger = all_succeeded(&run.join("ledger.csv"));
    // the rehearsal's emulator kept what the first part created: one invitation per row
    assert_eq!(emulated_invitations(&run), ledger.len());
    // status reads it too
    Cosell::in_dir(dir.path())
        .arg("status")
        .arg(&run)
        .run()
        .code(0);
}

#[test]
fn a_rehearsal_killed_with_sigkill_resumes_against_what_its_emulator_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let child = Cosell::in_dir(dir.path())
        .arg("run")
        .arg(repo().join("playbooks/invite-partners.yaml"))
        .arg("--emulate")
        .spawn_piped();
    std::thread::sleep(Duration::from_millis(4200));
    crate::support::signal(child.id(), "-KILL");
    let _ = child.wait_with_output().unwrap();
    let run = run_dir(dir.path());
    let run_arg = run.strip_prefix(dir.path()).unwrap().to_path_buf();
    Cosell::in_dir(dir.path())
        .arg("resume")
        .arg(&run_arg)
        .run()
        .code(0);
    let ledger = all_succeeded(&run.join("ledger.csv"));
    assert_eq!(
        emulated_invitations(&run),
        ledger.len(),
        "no invitation twice, none lost"
    );
}

#[test]
fn a_redrive_through_failing_tasks_ends_with_every_row_accepted_once() {
    // a quarter of the acceptance tasks fail with a retryable reason; each redrive sends the
    // failed rows with a fresh ClientToken generation (the old token only replays the failure)
    let emu = Emu::start("x50", "task_failure=0.25", 7, "50ms");
    let dir = tempfile::tempdir().unwrap();
    let n = 40;
    std::fs::write(dir.path().join("partners.csv"), partners_csv(n, RECEIVER)).unwrap();
    invite(&emu, dir.path(), "send").run().code(0);
    write_invitations(dir.path());
    let first = accept(&emu, dir.path(), "recv").run();
    first.code(1).stderr_has("--retry-failed");
    let failed = read_ledger(&dir.path().join("recv/ledger.csv"))
        .iter()
        .filter(|r| r["status"] == "failed")
        .count();
    assert!(failed > 0, "the fault made some tasks fail");
    let mut redrives = 0;
    loop {
        redrives += 1;
        assert!(redrives <= 8, "still failing after 8 redrives");
        let out = Cosell::in_dir(dir.path())
            .args(["resume", "recv", "--retry-failed"])
            .args(X50)
            .calling_as(emu.url(), RECEIVER)
            .run();
        if out.code == 0 {
            break;
        }
        out.code(1);
    }
    all_succeeded(&dir.path().join("recv/ledger.csv"));
    let stats = emu.stats();
    assert_eq!(
        stats["invitations_by_status"]["ACCEPTED"], n as u64,
        "{stats:#}"
    );
    assert_eq!(
        stats["tasks_by_status"]["COMPLETE"], n as u64,
        "exactly one acceptance per invitation: {stats:#}"
    );
    assert!(stats["faults"]["task_failure"].as_u64().unwrap() >= failed as u64);
}

#[test]
fn resume_reuses_the_recorded_endpoint_and_refuses_another_account() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(30, RECEIVER)).unwrap();
    let child = invite(&emu, dir.path(), "r")
        .args(["--rate", "write=10/s"])
        .spawn_piped();
    std::thread::sleep(Duration::from_millis(1200));
    crate::support::signal(child.id(), "-INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r/run.json")).unwrap()).unwrap();
    assert_eq!(manifest["account"], SENDER);
    assert_eq!(manifest["connection"]["endpoint_url"], emu.url());
    let sent = emu.stats()["resources"]["invitations"].as_u64().unwrap();
    // another partner's credentials: refused before anything is sent
    Cosell::in_dir(dir.path())
        .args(["resume", "r"])
        .calling_as(emu.url(), RECEIVER)
        .run()
        .code(2)
        .stderr_has("belong to partner account 222222222222")
        .stderr_has(SENDER);
    assert_eq!(emu.stats()["resources"]["invitations"], sent);
    // the run's own credentials and no connection flag: the recorded endpoint is used
    Cosell::in_dir(dir.path())
        .args(["resume", "r"])
        .args(X50)
        .env("AWS_ACCESS_KEY_ID", SENDER)
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .run()
        .code(0);
    all_succeeded(&dir.path().join("r/ledger.csv"));
    assert_eq!(emu.stats()["resources"]["invitations"], 30);
}
