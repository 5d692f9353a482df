//! `input.list`: rows from a List operation, listed when the run starts, kept in the run
//! directory, checked offline against the item shape; the examples that use it; kills during
//! the listing and during the run.

use crate::campaigns::rehearse;
use crate::resume::spawn;
use crate::support::{read_ledger, Cosell, Emu};
use std::time::{Duration, Instant};

const PARTNER: &str = "111122223333";

const ACCEPT_LISTED: &str = r#"version: 1
name: accept-listed
catalog: Sandbox
input:
  list:
    action: ListEngagementInvitations
    input: { ParticipantType: RECEIVER, Status: [PENDING], MaxResults: 2 }
  where: "row.PayloadType == 'OpportunityInvitation'"
  key: "{{ row.Id }}"
steps:
  - id: accept
    action: StartEngagementByAcceptingInvitationTask
    input: { Identifier: "{{ row.Id }}" }
    wait: { timeout: 2m, interval: 200ms }
    expect: { TaskStatus: COMPLETE }
ledger:
  columns:
    sender: "{{ row.SenderCompanyName }}"
"#;

#[test]
fn validate_checks_listed_rows_against_the_item_shape_offline() {
    let bad = ACCEPT_LISTED.replace("Status: [PENDING]", "Status: [PENDNG]");
    let o = Cosell::new()
        .file("p.yaml", bad)
        .args(["validate", "p.yaml"])
        .run();
    o.code(2)
        .stderr_has("p.yaml:6:5: error[INVALID_ENUM_VALUE]: input.list.input.Status[0]: \"PENDNG\" is not one of ACCEPTED, PENDING, REJECTED, EXPIRED; did you mean \"PENDING\"?");
    let o = Cosell::new()
        .file(
            "p.yaml",
            ACCEPT_LISTED.replace(
                "sender: \"{{ row.SenderCompanyName }}\"",
                "sender: \"{{ row.SenderCompany }}\"",
            ),
        )
        .args(["validate", "p.yaml"])
        .run();
    o.code(2).stderr_has(
        "p.yaml:18:13: error[UNKNOWN_ROW_MEMBER]: row.SenderCompany: the rows are the items of ListEngagementInvitations (EngagementInvitationSummaries), which have no member \"SenderCompany\"",
    )
    .stderr_has("did you mean \"SenderCompanyName\"?");
    // nested members too
    let o = Cosell::new()
        .file(
            "p.yaml",
            ACCEPT_LISTED.replace(
                "sender: \"{{ row.SenderCompanyName }}\"",
                "receiver: \"{{ row.Receiver.Acount.AwsAccountId }}\"",
            ),
        )
        .args(["validate", "p.yaml"])
        .run();
    o.code(2).stderr_has(
        "p.yaml:18:15: error[UNKNOWN_ROW_MEMBER]: row.Receiver.Acount: row.Receiver has no member \"Acount\"; it has: Account; did you mean \"Account\"?",
    );
    let o = Cosell::new()
        .file(
            "p.yaml",
            ACCEPT_LISTED.replace("ListEngagementInvitations", "GetEngagementInvitation"),
        )
        .args(["validate", "p.yaml"])
        .run();
    o.code(2).stderr_has("error[LIST_NOT_PAGINATED]: input.list.action GetEngagementInvitation is not a paginated List operation; rows can come from: ");
    let o = Cosell::new()
        .file(
            "p.yaml",
            ACCEPT_LISTED.replace("input:\n  list:", "input:\n  csv: rows.csv\n  list:"),
        )
        .args(["validate", "p.yaml"])
        .run();
    o.code(2)
        .stderr_has("error[INPUT_CONFLICT]: input has both a file (line 5) and list");
    let o = Cosell::new()
        .file("p.yaml", "version: 1\nname: w\ncatalog: Sandbox\ninput: { csv: rows.csv, where: \"row.x == 1\" }\nsteps:\n  - id: g\n    action: GetEngagementInvitation\n    input: { Identifier: \"{{ row.x }}\" }\n")
        .file("rows.csv", "x\nengi-0123456789abc\n")
        .args(["validate", "p.yaml"])
        .run();
    o.code(2).stderr_has("error[WHERE_WITHOUT_LIST]");
    // a valid one says when its rows come
    let o = Cosell::new()
        .file("p.yaml", ACCEPT_LISTED)
        .args(["validate", "p.yaml"])
        .run();
    o.code(0)
        .stdout_has("valid; rows listed at run time by ListEngagementInvitations");
    let o = Cosell::new()
        .file("p.yaml", ACCEPT_LISTED)
        .args(["plan", "p.yaml"])
        .run();
    o.code(0)
        .stdout_has("the rows are listed at run time (ListEngagementInvitations");
}

fn fixture(n: usize) -> String {
    let mut f = format!("account: \"{PARTNER}\"\ninvitations:\n");
    for i in 0..n {
        f.push_str(&format!("  - {{ Id: engi-{i:013} }}\n"));
    }
    // not rows: already answered, and a lead
    f.push_str("  - { Id: engi-acc0000000000, Status: ACCEPTED }\n");
    f.push_str("  - { Id: engi-rej0000000000, Status: REJECTED }\n");
    f.push_str("  - Id: engi-1ead000000000\n    Payload:\n      LeadInvitation:\n        Customer: { CompanyName: Acme }\n        Interaction: { ContactBusinessTitle: CTO }\n");
    f
}

fn run(emu: &Emu, dir: &std::path::Path, rates: &[&str]) -> Cosell {
    let mut c = Cosell::in_dir(dir).args(["run", "pb.yaml", "--run-dir", "r", "--yes"]);
    for r in rates {
        c = c.args(["--rate", r]);
    }
    c.calling_as(emu.url(), PARTNER)
}

#[test]
fn a_listed_accept_run_accepts_exactly_the_pending_opportunity_invitations() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fixture.yaml"), fixture(5)).unwrap();
    let f = dir.path().join("fixture.yaml");
    let emu = Emu::start_adjusted("x50", "", 1, "100ms", |a| a.fixture = Some(f.clone()));
    std::fs::write(dir.path().join("pb.yaml"), ACCEPT_LISTED).unwrap();
    run(&emu, dir.path(), &["write=50/s", "read=500/s"])
        .run()
        .code(0)
        .stderr_has("listed 5 rows with ListEngagementInvitations (3 pages, 6 items read)")
        .stdout_has("ListEngagementInvitations                          3  (read)");
    let ledger = read_ledger(&dir.path().join("r/ledger.csv"));
    let mut keys: Vec<&str> = ledger.iter().map(|r| r["key"].as_str()).collect();
    keys.sort_unstable();
    let want: Vec<String> = (0..5).map(|i| format!("engi-{i:013}")).collect();
    assert_eq!(keys, want);
    assert!(ledger
        .iter()
        .all(|r| r["status"] == "succeeded" && r["sender"] == "AWS"));
    let stats = emu.stats();
    assert_eq!(stats["invitations_by_status"]["ACCEPTED"], 6, "{stats:#}");
    assert_eq!(stats["invitations_by_status"]["PENDING"], 1, "{stats:#}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r/run.json")).unwrap()).unwrap();
    assert_eq!(m["total_rows"], 5);
    assert!(
        m["input_path"].as_str().unwrap().ends_with("r/rows.jsonl"),
        "{m}"
    );
}

/// Killed while listing (no rows.jsonl yet: resume lists again), then killed while running
/// (the list has changed: accepted invitations left the PENDING list, but resume works on the
/// rows the run started with), then resumed to the end: every row accepted once.
#[test]
fn kills_during_the_listing_and_the_run_resume_to_the_same_rows() {
    let n = 24;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fixture.yaml"), fixture(n)).unwrap();
    let f = dir.path().join("fixture.yaml");
    let emu = Emu::start_adjusted("x50", "", 1, "100ms", |a| a.fixture = Some(f.clone()));
    std::fs::write(dir.path().join("pb.yaml"), ACCEPT_LISTED).unwrap();
    let rows = dir.path().join("r/rows.jsonl");
    // 14 pages at 4 reads/s: the listing takes over 3 s
    let rates = ["write=4/s", "read=4/s"];
    let mut child = spawn(run(&emu, dir.path(), &rates));
    let t0 = Instant::now();
    while !dir.path().join("r/run.json").exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(800));
    assert!(!rows.exists(), "the kill must come during the listing");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        emu.stats()["invitations_by_status"]["PENDING"],
        n as u64 + 1
    );
    Cosell::in_dir(dir.path())
        .args(["status", "r"])
        .run()
        .code(0)
        .stdout_has(
            "input     not listed yet: the run stopped while listing the rows of input.list; \
             resume lists them",
        )
        .stdout_has("resume with:");

    let resume = || {
        Cosell::in_dir(dir.path())
            .args(["resume", "r", "--rate", rates[0], "--rate", rates[1]])
            .calling_as(emu.url(), PARTNER)
    };
    let mut child = spawn(resume());
    let t0 = Instant::now();
    while !rows.exists() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let listed = std::fs::read(&rows).unwrap();
    // some accepted, not all
    let t0 = Instant::now();
    while emu.stats()["invitations_by_status"]["ACCEPTED"]
        .as_u64()
        .unwrap()
        < 4
        && t0.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let accepted = emu.stats()["invitations_by_status"]["ACCEPTED"]
        .as_u64()
        .unwrap();
    assert!(
        accepted < n as u64,
        "the kill must come during the run ({accepted})"
    );

    resume().run().code(0);
    assert_eq!(
        std::fs::read(&rows).unwrap(),
        listed,
        "resume keeps the rows it listed"
    );
    let ledger = read_ledger(&dir.path().join("r/ledger.csv"));
    assert_eq!(ledger.len(), n);
    assert!(
        ledger.iter().all(|r| r["status"] == "succeeded"),
        "{ledger:?}"
    );
    let stats = emu.stats();
    assert_eq!(
        stats["invitations_by_status"]["ACCEPTED"],
        n as u64 + 1,
        "{stats:#}"
    );
    assert_eq!(stats["tasks_started_per_invitation_max"], 1, "{stats:#}");
}

#[test]
fn the_accept_all_pending_example_rehearses_without_a_csv() {
    let ledger = rehearse("accept-all-pending.yaml");
    assert_eq!(
        ledger.len(),
        3,
        "the three pending opportunity invitations: {ledger:?}"
    );
    assert!(ledger
        .iter()
        .all(|r| r["status"] == "succeeded" && !r["customer"].is_empty()));
}

#[test]
fn the_export_example_is_reads_only_and_flattens_its_columns() {
    let ledger = rehearse("export-opportunities.yaml");
    assert_eq!(ledger.len(), 3);
    let submitted = ledger.iter().find(|r| r["key"] == "O1000000001").unwrap();
    assert_eq!(submitted["customer"], "Northwind Traders");
    assert_eq!(submitted["review_status"], "Submitted");
    assert_eq!(submitted["aws_involvement"], "Co-Sell");
    let other = ledger.iter().find(|r| r["key"] == "O1000000002").unwrap();
    assert_eq!(
        (other["country"].as_str(), other["aws_stage"].as_str()),
        ("GB", "")
    );
}
