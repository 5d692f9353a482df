//! The run report (`report.html`), end to end through the real binary: its figures equal the
//! ledger's, it is self-contained, it holds no sensitive value, and it renders for a run with
//! failures, a redriven run and a run stopped at the daily quota.

use crate::run::{accept, invite, partners_csv, write_invitations, RECEIVER, SENDER, X50};
use crate::support::{read_ledger, Cosell, Emu};
use std::collections::BTreeMap;
use std::path::Path;

fn page(run_dir: &Path) -> String {
    std::fs::read_to_string(run_dir.join("report.html"))
        .unwrap_or_else(|e| panic!("{}/report.html: {e}", run_dir.display()))
}

/// The `data-value` of the element with `id`.
#[track_caller]
fn figure(html: &str, id: &str) -> u64 {
    let pat = format!("id=\"{id}\" data-value=\"");
    let at = html
        .find(&pat)
        .unwrap_or_else(|| panic!("no figure {id} in the report"))
        + pat.len();
    html[at..]
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("figure {id}: {e}"))
}

/// Failure groups: code → rows.
fn failure_groups(html: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for part in html.split("<div class=\"group\" data-code=\"").skip(1) {
        let code = part.split('"').next().unwrap().to_string();
        let count = part
            .split("data-count=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .parse()
            .unwrap();
        out.insert(code, count);
    }
    out
}

/// What every report must be: self-contained, a chart with data, every headline figure.
#[track_caller]
fn well_formed(html: &str) {
    assert!(html.starts_with("<!doctype html>"), "not an HTML page");
    assert!(html.trim_end().ends_with("</html>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "a network reference in the report"
    );
    assert!(!html.to_ascii_lowercase().contains("<script"), "a script");
    assert!(!html.contains("<link") && !html.contains("<img") && !html.contains("@import"));
    let buckets = html
        .split("id=\"timeline\" data-buckets=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse::<u64>().ok())
        .expect("a timeline");
    assert!(buckets > 0, "an empty chart");
    assert!(html.contains("class=\"series\""), "no series drawn");
    for id in [
        "rows-succeeded",
        "rows-failed",
        "rows-skipped",
        "rows-unchanged",
        "rows-in-flight",
        "rows-pending",
        "calls",
        "throttles",
        "retries",
    ] {
        figure(html, id);
    }
}

/// The report's rows per status and failures per code, against the ledger's.
#[track_caller]
fn matches_ledger(html: &str, ledger: &Path) {
    let rows = read_ledger(ledger);
    let status = |s: &str| rows.iter().filter(|r| r["status"] == s).count() as u64;
    assert_eq!(figure(html, "rows-total"), rows.len() as u64);
    assert_eq!(figure(html, "rows-succeeded"), status("succeeded"));
    assert_eq!(figure(html, "rows-failed"), status("failed"));
    assert_eq!(figure(html, "rows-skipped"), status("skipped"));
    assert_eq!(figure(html, "rows-in-flight"), status("in_flight"));
    assert_eq!(figure(html, "rows-pending"), status("pending"));
    assert_eq!(figure(html, "rows-unchanged"), 0);
    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows.iter().filter(|r| r["status"] == "failed") {
        *by_code.entry(r["error_code"].clone()).or_default() += 1;
    }
    assert_eq!(failure_groups(html), by_code);
}

#[test]
fn the_report_of_a_run_with_failures_and_its_redrive_equals_the_ledger() {
    let emu = Emu::start("x50", "task_failure=0.25", 5, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(24, RECEIVER)).unwrap();
    let out = invite(&emu, dir.path(), "send").run();
    out.code(0).stdout_has("report    send/report.html");
    write_invitations(dir.path());
    let out = accept(&emu, dir.path(), "acc").run();
    out.code(1).stdout_has("report    acc/report.html");
    let run = dir.path().join("acc");
    let html = page(&run);
    well_formed(&html);
    matches_ledger(&html, &run.join("ledger.csv"));
    let failed = figure(&html, "rows-failed");
    assert!(failed > 0, "task_failure=0.25 failed some of the 24 rows");
    // every request of the run is counted, polls included
    assert!(figure(&html, "calls") >= 24 * 2);
    assert!(html.contains("id=\"op-ListEngagementByAcceptingInvitationTasks\""));
    // example rows name the CSV line and the key (the invitation id) of a failed row
    let ledger = read_ledger(&run.join("ledger.csv"));
    let f = ledger.iter().find(|r| r["status"] == "failed").unwrap();
    assert!(
        html.contains(&format!(
            "<td class=\"num\">{}</td><td class=\"mono\">{}</td>",
            f["line"], f["key"]
        )),
        "example row line {} key {} missing",
        f["line"],
        f["key"]
    );
    assert!(!html.contains("id=\"attempts\""), "not a redriven run yet");

    // `cosell report` gives the same page figures, read-only
    let before = std::fs::read(run.join("journal.jsonl")).unwrap();
    Cosell::in_dir(dir.path())
        .args(["report", "acc"])
        .run()
        .code(0)
        .stdout_has("report    acc/report.html");
    assert_eq!(std::fs::read(run.join("journal.jsonl")).unwrap(), before);
    let again = page(&run);
    matches_ledger(&again, &run.join("ledger.csv"));
    // without ledger.jsonl the keys are rendered again from the playbook
    std::fs::remove_file(run.join("ledger.jsonl")).unwrap();
    Cosell::in_dir(dir.path())
        .args(["report", "acc"])
        .run()
        .code(0);
    let keyed = page(&run);
    assert!(keyed.contains(&format!("<td class=\"mono\">{}</td>", f["key"])));
    assert!(keyed.contains("the playbook&#39;s keys"));

    // redrive the failed rows: the report shows both attempts
    let out = Cosell::in_dir(dir.path())
        .args(["resume", "acc", "--retry-failed"])
        .args(X50)
        .calling_as(emu.url(), RECEIVER)
        .run();
    assert!(out.code == 0 || out.code == 1, "{out:?}");
    out.stdout_has("report    acc/report.html");
    let html = page(&run);
    well_formed(&html);
    matches_ledger(&html, &run.join("ledger.csv"));
    assert_eq!(figure(&html, "attempts"), 2);
    let attempt = |n: u32, attr: &str| -> u64 {
        let row = html
            .split(&format!("<tr class=\"attempt\" data-n=\"{n}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("no attempt {n}"));
        row.split(&format!("{attr}=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    // the first run ended with `failed` rows failed; the redrive took exactly those
    assert_eq!(attempt(0, "data-failed"), failed);
    assert_eq!(attempt(1, "data-redriven"), failed);
    assert_eq!(
        attempt(1, "data-failed"),
        figure(&html, "rows-failed"),
        "what the redrive left failed is what is failed now"
    );
}

#[test]
fn no_sensitive_value_reaches_the_report() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    // distinctive values of members the model marks sensitive: Customer.CompanyName,
    // Customer.WebsiteUrl, Project.Title / BusinessProblem (rendered from the company), Amount
    let csv = "aws_account_id,company,country,industry,website,roles,message,spend\n\
               222222222222,Zyxwvut Confidential Holdings,US,Retail,https://zyxwvut-secret.example.org,Reseller,Qwertz private note,97531\n\
               222222222222,Plughx Undisclosed Partners,GB,Retail,https://plughx-secret.example.net,Reseller,,86420\n";
    std::fs::write(dir.path().join("partners.csv"), csv).unwrap();
    // key by line (the account id repeats), and an expectation on a sensitive member that
    // fails: its message compares the values, which the report must not show
    let pb = std::fs::read_to_string(crate::support::repo().join("playbooks/invite-partners.yaml"))
        .unwrap()
        .replace("  key: \"{{ row.aws_account_id }}\"\n", "")
        .replace("  max_failures: 5%\n", "")
        .replace(
            "    expect:\n      Status: PENDING\n",
            "    expect:\n      Status: PENDING\n      Payload.OpportunityInvitation.Customer.CompanyName: \"{{ row.company }} (expected)\"\n",
        );
    assert!(pb.contains("(expected)"), "the check step has its expect");
    std::fs::write(dir.path().join("sens.yaml"), pb).unwrap();
    let out = Cosell::in_dir(dir.path())
        .args([
            "run",
            "sens.yaml",
            "--input",
            "partners.csv",
            "--run-dir",
            "s",
        ])
        .args(X50)
        .calling_as(emu.url(), SENDER)
        .run();
    out.code(1);
    let run = dir.path().join("s");
    let ledger = read_ledger(&run.join("ledger.csv"));
    assert!(ledger
        .iter()
        .all(|r| r["error_code"] == "ExpectationFailed"));
    // the ledger (the user's own data) holds the compared value; the report must not
    assert!(ledger[0]["error_message"].contains("Zyxwvut"), "{ledger:?}");
    let html = page(&run);
    well_formed(&html);
    matches_ledger(&html, &run.join("ledger.csv"));
    for needle in [
        "Zyxwvut",
        "Confidential Holdings",
        "Plughx",
        "zyxwvut-secret",
        "plughx-secret",
        "Qwertz",
        "97531",
        "86420",
    ] {
        assert!(!html.contains(needle), "{needle:?} reached the report");
    }
    // the message is still there, with the values hidden
    assert!(html.contains(
        "Payload.OpportunityInvitation.Customer.CompanyName is ‹sensitive value hidden›"
    ));
    // and so after `cosell report` loads the playbook itself
    Cosell::in_dir(dir.path())
        .args(["report", "s"])
        .run()
        .code(0);
    let html = page(&run);
    assert!(!html.contains("Zyxwvut") && !html.contains("Plughx"));
}

#[test]
fn the_report_of_a_run_stopped_at_the_daily_quota_renders() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(6, RECEIVER)).unwrap();
    let pb = std::fs::read_to_string(crate::run::invite_playbook(dir.path()))
        .unwrap()
        .replace(
            "daily: { write: 10000, read: 100000 }",
            "daily: { write: 3, read: 100000 }",
        )
        .replace("concurrency: 8", "concurrency: 1");
    std::fs::write(dir.path().join("daily.yaml"), pb).unwrap();
    let out = Cosell::in_dir(dir.path())
        .args([
            "run",
            "daily.yaml",
            "--input",
            "partners.csv",
            "--run-dir",
            "q",
        ])
        .args(X50)
        .calling_as(emu.url(), SENDER)
        .run();
    out.code(3).stdout_has("report    q/report.html");
    let run = dir.path().join("q");
    let html = page(&run);
    well_formed(&html);
    matches_ledger(&html, &run.join("ledger.csv"));
    assert_eq!(figure(&html, "rows-succeeded"), 3);
    // the row the quota stopped is in flight (its invitation is created on resume)
    assert_eq!(
        figure(&html, "rows-pending") + figure(&html, "rows-in-flight"),
        3
    );
    assert!(
        html.contains("id=\"class-write\" data-calls=\"3\""),
        "3 writes"
    );
}

#[test]
fn report_refuses_what_is_not_a_run_directory_and_names_damage() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    Cosell::in_dir(dir.path())
        .args(["report", "empty"])
        .run()
        .code(2);
    Cosell::in_dir(dir.path())
        .args(["report", "missing"])
        .run()
        .code(2);
    assert!(!dir.path().join("empty/report.html").exists());
    // a run directory whose journal has a damaged line: exit 4, nothing written
    let emu = Emu::start("x50", "", 1, "100ms");
    std::fs::write(dir.path().join("partners.csv"), partners_csv(2, RECEIVER)).unwrap();
    invite(&emu, dir.path(), "r").run().code(0);
    let j = dir.path().join("r/journal.jsonl");
    let mut bytes = std::fs::read(&j).unwrap();
    bytes.extend_from_slice(b"garbage\n");
    std::fs::write(&j, bytes).unwrap();
    std::fs::remove_file(dir.path().join("r/report.html")).unwrap();
    Cosell::in_dir(dir.path())
        .args(["report", "r"])
        .run()
        .code(4)
        .stderr_has("journal.jsonl");
    assert!(!dir.path().join("r/report.html").exists());
}
