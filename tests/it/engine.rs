//! The engine keeps its word: a stop sends nothing more, the environment failing stops the
//! run instead of failing rows, and rows waiting on tasks leave their slots to others.

use crate::run::{accept, invite, partners_csv, write_invitations, RECEIVER, SENDER, X50};
use crate::support::{all_succeeded, Cosell, Emu};
use std::time::{Duration, Instant};

fn invitations(emu: &Emu) -> u64 {
    emu.stats()["resources"]["invitations"]
        .as_u64()
        .unwrap_or(0)
}

/// The calls the summary says were sent, for one operation.
fn summary_calls(stdout: &str, op: &str) -> u64 {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(op))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn ctrl_c_sends_none_of_the_calls_queued_behind_the_limiter() {
    // 1024 rows in flight at 5 writes/s: nearly every row's invitation waits in the limiter
    // when the signal comes. None of them may be sent after it.
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    let n = 300;
    std::fs::write(dir.path().join("partners.csv"), partners_csv(n, RECEIVER)).unwrap();
    let child = invite(&emu, dir.path(), "q")
        .args(["--concurrency", "1024", "--rate", "write=5/s"])
        .spawn_piped();
    std::thread::sleep(Duration::from_millis(2500));
    let before = invitations(&emu);
    crate::support::signal(child.id(), "-INT");
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let after = invitations(&emu);
    assert!(before > 0, "the run had started sending");
    // at 5/s at most one call is on the wire at any moment
    assert!(
        after <= before + 1,
        "{} invitations were created after the signal ({before} before it)",
        after - before
    );
    assert!(after < n as u64 / 2, "stopped early: {after}");
    // the summary counts what was sent, as the service saw it
    let served = emu.stats()["calls"]["CreateEngagementInvitation"]
        .as_u64()
        .unwrap();
    assert_eq!(
        summary_calls(&stdout, "CreateEngagementInvitation"),
        served,
        "{stdout}"
    );
    // and nothing is lost: the resume creates exactly the rest
    Cosell::in_dir(dir.path())
        .args(["resume", "q"])
        .args(X50)
        .calling_as(emu.url(), SENDER)
        .run()
        .code(0);
    all_succeeded(&dir.path().join("q/ledger.csv"));
    assert_eq!(invitations(&emu), n as u64);
}

#[test]
fn an_endpoint_that_goes_away_stops_the_run_with_exit_4_and_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let n = 40;
    std::fs::write(dir.path().join("partners.csv"), partners_csv(n, RECEIVER)).unwrap();
    let emu = Emu::start("x50", "", 1, "100ms");
    let proxy = crate::support::Proxy::start(emu.url());
    let child = Cosell::in_dir(dir.path())
        .arg("run")
        .arg(crate::run::invite_playbook(dir.path()))
        .args(["--input", "partners.csv", "--run-dir", "gone"])
        .args(X50)
        .args(["--rate", "write=10/s"])
        .calling_as(proxy.url(), SENDER)
        .spawn_piped();
    std::thread::sleep(Duration::from_millis(1500));
    proxy.cut(); // the endpoint goes away mid-run
    let sent = invitations(&emu);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("ConnectionError"), "{stderr}");
    assert!(stderr.contains("cosell resume gone"), "{stderr}");
    let ledger = crate::support::read_ledger(&dir.path().join("gone/ledger.csv"));
    assert!(
        ledger.iter().all(|r| r["status"] != "failed"),
        "no row is failed for the environment: {ledger:#?}"
    );
    assert!(sent > 0 && sent < n as u64, "{sent}");
    // the endpoint is back (here: without the proxy): the run goes on where it stopped
    Cosell::in_dir(dir.path())
        .args(["resume", "gone"])
        .args(X50)
        .calling_as(emu.url(), SENDER)
        .run()
        .code(0);
    all_succeeded(&dir.path().join("gone/ledger.csv"));
    assert_eq!(invitations(&emu), n as u64, "no duplicate, nothing lost");
}

#[test]
fn an_unreachable_endpoint_at_the_start_sends_nothing_and_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(3, RECEIVER)).unwrap();
    // a port nobody listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    Cosell::in_dir(dir.path())
        .arg("run")
        .arg(crate::run::invite_playbook(dir.path()))
        .args(["--input", "partners.csv", "--run-dir", "r"])
        .calling_as(&url, SENDER)
        .run()
        .code(4)
        .stderr_has("cannot reach the endpoint")
        .stderr_has("nothing was sent");
    assert!(
        !dir.path().join("r").exists(),
        "no run directory for a run that never started"
    );
}

#[test]
fn a_malformed_endpoint_url_is_a_usage_error() {
    for bad in [
        "localhost:4566",
        "ftp://127.0.0.1:1",
        "http://",
        "not a url",
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("partners.csv"), partners_csv(1, RECEIVER)).unwrap();
        Cosell::in_dir(dir.path())
            .arg("run")
            .arg(crate::run::invite_playbook(dir.path()))
            .args(["--input", "partners.csv"])
            .calling_as(bad, SENDER)
            .run()
            .code(2)
            .stderr_has("--endpoint-url");
    }
}

#[test]
fn rows_waiting_on_a_task_hold_no_concurrency_slot() {
    // 12 acceptances at concurrency 1 with tasks of 3 s: if a waiting row held its slot the
    // run would need 12 × 3 s; the writes alone need a quarter of a second.
    let emu = Emu::start("x50", "", 1, "3s");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(12, RECEIVER)).unwrap();
    invite(&emu, dir.path(), "send").run().code(0);
    write_invitations(dir.path());
    let t = Instant::now();
    accept(&emu, dir.path(), "recv")
        .args(["--concurrency", "1"])
        .run()
        .code(0);
    let took = t.elapsed();
    all_succeeded(&dir.path().join("recv/ledger.csv"));
    assert!(
        took < Duration::from_secs(15),
        "took {took:?}: waiting rows held their slots"
    );
}

#[test]
fn sigterm_and_sighup_stop_sending_like_ctrl_c() {
    for sig in ["-TERM", "-HUP"] {
        let emu = Emu::start("x50", "", 1, "100ms");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("partners.csv"), partners_csv(40, RECEIVER)).unwrap();
        let child = invite(&emu, dir.path(), "s")
            .args(["--concurrency", "64", "--rate", "write=5/s"])
            .spawn_piped();
        std::thread::sleep(Duration::from_millis(1500));
        let before = invitations(&emu);
        crate::support::signal(child.id(), sig);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{sig}: {stderr}");
        assert!(stderr.contains("cosell resume s"), "{sig}: {stderr}");
        assert!(
            invitations(&emu) <= before + 1,
            "{sig}: sent after the signal"
        );
    }
}
