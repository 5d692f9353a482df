//! Unattended multi-day campaigns: `--wait-for-quota` waits out a spent rolling window and
//! goes on, rehearsed with a short window (`--quota-window`) and a small budget (`--daily`).

use crate::run::{partners_csv, RECEIVER, SENDER};
use crate::support::{all_succeeded, repo, Cosell, Emu};
use std::path::Path;
use std::time::{Duration, Instant};

/// The example invite playbook with a rolling write budget of `budget`, keyed by company.
fn budget_playbook(dir: &Path, budget: u64) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo().join("playbooks/invite-partners.yaml")).unwrap();
    let daily = "daily: { write: 10000, read: 100000 }";
    assert!(text.contains(daily), "the example sets its daily budgets");
    let text = text
        .replace(
            daily,
            &format!("daily: {{ write: {budget}, read: 100000 }}"),
        )
        .replace(
            r#"key: "{{ row.aws_account_id }}""#,
            r#"key: "{{ row.company }}""#,
        );
    let path = dir.join("invite.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn emulator(budget: u64, window: &str) -> Emu {
    Emu::start_adjusted("x20", "", 1, "100ms", |a| {
        a.daily = vec![format!("write={budget}")];
        a.quota_window = window.into();
    })
}

fn campaign(emu: &Emu, dir: &Path, budget: u64, window: &str) -> Cosell {
    Cosell::in_dir(dir)
        .arg("run")
        .arg(budget_playbook(dir, budget))
        .args([
            "--input",
            "partners.csv",
            "--run-dir",
            "r",
            "--wait-for-quota",
        ])
        .args(["--quota-window", window])
        .args(["--rate", "write=20/s", "--rate", "read=200/s"])
        .args(["--rate", "engagement-write=300/s"])
        .calling_as(emu.url(), SENDER)
}

#[test]
fn a_three_window_campaign_runs_unattended_at_the_window_bound_without_throttling() {
    // 250 writes, 100 per 20 s window, 20 writes/s: two full windows plus the last 50 writes
    let (n, budget, window) = (250, 100, 20.0);
    let emu = emulator(budget, "20s");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(n, RECEIVER)).unwrap();
    let t = Instant::now();
    let out = campaign(&emu, dir.path(), budget, "20s").run();
    let took = t.elapsed().as_secs_f64();
    out.code(0).stderr_has("waiting for the write quota");
    all_succeeded(&dir.path().join("r/ledger.csv"));
    let stats = emu.stats();
    assert_eq!(stats["throttled"], 0, "{stats:#}");
    assert_eq!(stats["resources"]["invitations"], n as u64);
    let bound = 2.0 * window + (n as f64 - 2.0 * budget as f64 - 1.0) / 20.0;
    assert!(
        took <= 1.1 * bound,
        "took {took:.1} s, the three-window bound is {bound:.1} s"
    );
    assert!(
        took >= 2.0 * window,
        "the windows were waited out: {took:.1} s"
    );
    eprintln!(
        "three-window campaign: {took:.2} s against a bound of {bound:.2} s ({:.3}x)",
        took / bound
    );
    // the waits are in the journal, for the report
    let journal = std::fs::read_to_string(dir.path().join("r/journal.jsonl")).unwrap();
    assert!(
        journal.matches(r#""t":"quota_wait""#).count() >= 2,
        "two waits journaled"
    );
}

#[test]
fn ctrl_c_during_a_quota_wait_is_clean_and_the_resume_waits_for_the_same_window() {
    let (n, budget) = (8, 5);
    let emu = emulator(budget, "10s");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(n, RECEIVER)).unwrap();
    let child = campaign(&emu, dir.path(), budget, "10s").spawn_piped();
    std::thread::sleep(Duration::from_millis(3000));
    crate::support::signal(child.id(), "-INT");
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the wait ended at once"
    );
    assert!(stderr.contains("waiting for the write quota"), "{stderr}");
    assert!(stderr.contains(" UTC ("), "{stderr}");
    assert_eq!(emu.stats()["resources"]["invitations"], budget);
    // the resume counts the five calls of the window (from the journal) and waits, too
    Cosell::in_dir(dir.path())
        .args(["resume", "r"])
        .calling_as(emu.url(), SENDER)
        .run()
        .code(0);
    all_succeeded(&dir.path().join("r/ledger.csv"));
    let stats = emu.stats();
    assert_eq!(stats["throttled"], 0, "{stats:#}");
    assert_eq!(stats["resources"]["invitations"], n as u64);
}
