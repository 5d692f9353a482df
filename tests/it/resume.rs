//! Kill, interrupt, resume and redrive: `cosell resume` against an emulator with faults.

use crate::run::{accept, invite, partners_csv, write_invitations, RECEIVER, SENDER, X50};
use crate::support::{all_succeeded, read_ledger, Cosell, Emu};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

pub(crate) fn spawn(c: Cosell) -> Child {
    c.command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn resume(emu: &Emu, dir: &Path, run_dir: &str, account: &str) -> Cosell {
    Cosell::in_dir(dir)
        .args(["resume", run_dir])
        .args(X50)
        .calling_as(emu.url(), account)
}

/// Start `first()`, then kill it (SIGKILL) `kills` times at seeded random moments, resuming
/// each time; finally resume to the end. Returns how many kills hit a live process. A kill
/// before the run directory exists (the run was still connecting) left nothing to resume:
/// as a user would, the run is started again.
pub(crate) fn kill_and_resume(
    emu: &Emu,
    dir: &Path,
    run_dir: &str,
    account: &str,
    first: impl Fn() -> Cosell,
    kills: usize,
    rng: &mut rand::rngs::StdRng,
) -> usize {
    let mut live = 0;
    let started = || dir.join(run_dir).join("run.json").exists();
    let mut child = spawn(first());
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.random_range(150..700)));
        if child.try_wait().unwrap().is_none() {
            live += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        child = spawn(if started() {
            resume(emu, dir, run_dir, account)
        } else {
            let _ = std::fs::remove_dir_all(dir.join(run_dir));
            first()
        });
    }
    let _ = child.kill();
    let _ = child.wait();
    if !started() {
        let _ = std::fs::remove_dir_all(dir.join(run_dir));
        first().run().code(0);
    }
    let out = resume(emu, dir, run_dir, account).run();
    out.code(0);
    live
}

#[test]
fn twenty_kills_lose_nothing_and_duplicate_nothing() {
    let emu = Emu::start("x50", "throttle=0.03,internal=0.02,reset=0.02", 5, "300ms");
    let dir = tempfile::tempdir().unwrap();
    let n = 200;
    std::fs::write(dir.path().join("partners.csv"), partners_csv(n, RECEIVER)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261122);

    let first = || invite(&emu, dir.path(), "send");
    let live = kill_and_resume(&emu, dir.path(), "send", SENDER, first, 12, &mut rng);
    assert!(live >= 8, "most kills must hit a running process ({live})");
    let ledger = read_ledger(&dir.path().join("send/ledger.csv"));
    assert_eq!(ledger.len(), n);
    for r in &ledger {
        assert_eq!(r["status"], "succeeded", "{r:?}");
        assert!(r["invite_id"].starts_with("engi-"), "{r:?}");
    }
    let stats = emu.stats();
    assert_eq!(stats["resources"]["invitations"], n as u64, "{stats:#}");
    assert_eq!(stats["resources"]["engagements"], 1, "{stats:#}");

    // the receiver accepts them all, killed ten more times on the way
    write_invitations(dir.path());
    let first = || accept(&emu, dir.path(), "accept");
    kill_and_resume(&emu, dir.path(), "accept", RECEIVER, first, 10, &mut rng);
    all_succeeded(&dir.path().join("accept/ledger.csv"));
    let stats = emu.stats();
    assert_eq!(
        stats["invitations_by_status"]["ACCEPTED"], n as u64,
        "{stats:#}"
    );
    assert_eq!(stats["tasks_started_per_invitation_max"], 1, "{stats:#}");
}

#[test]
fn ctrl_c_stops_cleanly_with_the_resume_command_and_resume_finishes() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    let n = 60;
    std::fs::write(dir.path().join("partners.csv"), partners_csv(n, RECEIVER)).unwrap();
    // slower than the quota so the interrupt lands mid-run
    let child = invite(&emu, dir.path(), "int")
        .args(["--rate", "write=20/s"])
        .spawn_piped();
    std::thread::sleep(Duration::from_millis(1200));
    crate::support::signal(child.id(), "-INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cosell resume int"), "{stderr}");
    let ledger = read_ledger(&dir.path().join("int/ledger.csv"));
    assert!(
        ledger.iter().any(|r| r["status"] == "pending"),
        "stopped early"
    );
    resume(&emu, dir.path(), "int", SENDER).run().code(0);
    all_succeeded(&dir.path().join("int/ledger.csv"));
    assert_eq!(emu.stats()["resources"]["invitations"], n as u64);
}

#[test]
fn a_second_ctrl_c_leaves_at_once_and_the_journal_still_resumes() {
    let emu = Emu::start("x50", "latency=3s@1.0", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    let n = 8;
    std::fs::write(dir.path().join("partners.csv"), partners_csv(n, RECEIVER)).unwrap();
    // every call takes 3 s: both signals land while calls are in flight
    let child = invite(&emu, dir.path(), "abort").spawn_piped();
    std::thread::sleep(Duration::from_millis(4500));
    crate::support::signal(child.id(), "-INT");
    std::thread::sleep(Duration::from_millis(50));
    crate::support::signal(child.id(), "-INT");
    let t = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("aborted"), "{stderr}");
    assert!(stderr.contains("cosell resume abort"), "{stderr}");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "left at once, not after the calls in flight (3 s each)"
    );
    resume(&emu, dir.path(), "abort", SENDER).run().code(0);
    all_succeeded(&dir.path().join("abort/ledger.csv"));
    assert_eq!(emu.stats()["resources"]["invitations"], n as u64);
}

#[test]
fn resume_refuses_changed_inputs_unless_forced() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(30, RECEIVER)).unwrap();
    let mut child = spawn(invite(&emu, dir.path(), "d").args(["--rate", "write=10/s"]));
    std::thread::sleep(Duration::from_millis(900));
    let _ = child.kill();
    let _ = child.wait();
    // the spreadsheet changes under the run
    std::fs::write(dir.path().join("partners.csv"), partners_csv(31, RECEIVER)).unwrap();
    let out = resume(&emu, dir.path(), "d", SENDER).run();
    out.code(2).stderr_has("input").stderr_has("--force");
    resume(&emu, dir.path(), "d", SENDER)
        .arg("--force")
        .run()
        .code(0);
    assert_eq!(
        read_ledger(&dir.path().join("d/ledger.csv")).len(),
        31,
        "the forced resume runs the new input"
    );
}

#[test]
fn a_second_process_on_the_same_run_directory_is_refused() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(30, RECEIVER)).unwrap();
    let mut child = spawn(invite(&emu, dir.path(), "l").args(["--rate", "write=5/s"]));
    std::thread::sleep(Duration::from_millis(800));
    let out = resume(&emu, dir.path(), "l", SENDER).run();
    out.code(4).stderr_has("lock");
    let _ = child.kill();
    let _ = child.wait();
    // the killed holder's lock is stale: resume takes over
    resume(&emu, dir.path(), "l", SENDER).run().code(0);
}

#[test]
fn retry_failed_runs_only_the_failed_rows_again() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(4, RECEIVER)).unwrap();
    invite(&emu, dir.path(), "send").run().code(0);
    write_invitations(dir.path());
    // the sender waits for acceptance: fails while invitations are still pending
    let pb = r#"version: 1
name: await-accept
catalog: Sandbox
input:
  csv: invitations.csv
steps:
  - id: check
    action: GetEngagementInvitation
    input: { Identifier: "{{ row.invitation_id }}" }
    expect: { Status: ACCEPTED }
"#;
    std::fs::write(dir.path().join("await.yaml"), pb).unwrap();
    Cosell::in_dir(dir.path())
        .args(["run", "await.yaml", "--run-dir", "w"])
        .args(X50)
        .calling_as(emu.url(), SENDER)
        .run()
        .code(1)
        .stderr_has("--retry-failed");
    let calls_before = emu.stats()["calls"]["GetEngagementInvitation"]
        .as_u64()
        .unwrap();
    accept(&emu, dir.path(), "acc").run().code(0);
    let accept_gets = emu.stats()["calls"]["GetEngagementInvitation"]
        .as_u64()
        .unwrap()
        - calls_before;
    // a plain resume has nothing to do: every row is finished (failed)
    resume(&emu, dir.path(), "w", SENDER).run().code(1);
    resume(&emu, dir.path(), "w", SENDER)
        .arg("--retry-failed")
        .run()
        .code(0);
    let gets = emu.stats()["calls"]["GetEngagementInvitation"]
        .as_u64()
        .unwrap();
    assert_eq!(
        gets - calls_before - accept_gets,
        4,
        "only the four failed rows ran again"
    );
    all_succeeded(&dir.path().join("w/ledger.csv"));
}
