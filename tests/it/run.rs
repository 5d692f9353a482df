//! `cosell run` end to end: the real binary, the real SDK, an emulator over loopback.

use crate::support::{all_succeeded, read_ledger, repo, Cosell, Emu};
use std::path::Path;

pub const SENDER: &str = "111111111111";
pub const RECEIVER: &str = "222222222222";

/// Client rates that match an emulator started with `--quotas x50`.
pub const X50: [&str; 6] = [
    "--rate",
    "write=50/s",
    "--rate",
    "read=500/s",
    "--rate",
    "engagement-write=750/s",
];

/// `n` partner rows in the shape of `examples/partners.csv`, every one inviting `receiver`.
pub fn partners_csv(n: usize, receiver: &str) -> String {
    let mut r = csv::Reader::from_path(repo().join("examples/partners.csv")).unwrap();
    let headers = r.headers().unwrap().clone();
    let template = r.records().next().unwrap().unwrap();
    let account_col = headers
        .iter()
        .position(|h| h.contains("account"))
        .expect("partners.csv has an account id column");
    let key_col = headers
        .iter()
        .position(|h| h.contains("company") || h.contains("name"));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&headers).unwrap();
    for i in 0..n {
        let rec: Vec<String> = template
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == account_col {
                    receiver.to_string()
                } else if Some(c) == key_col {
                    format!("{v} {i}")
                } else {
                    v.to_string()
                }
            })
            .collect();
        w.write_record(&rec).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

/// The invitation ids of a sender's ledger, as the CSV the accept playbook reads.
pub fn invitations_csv(ledger: &Path) -> String {
    let mut r = csv::Reader::from_path(repo().join("examples/invitations.csv")).unwrap();
    let headers = r.headers().unwrap().clone();
    let template = r.records().next().unwrap().unwrap();
    let id_col = headers
        .iter()
        .position(|h| h.contains("invitation"))
        .expect("invitations.csv has an invitation id column");
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&headers).unwrap();
    for row in read_ledger(ledger) {
        let id = row
            .get("invitation_id")
            .or_else(|| row.get("invite_id"))
            .cloned()
            .expect("the invite ledger has the invitation id");
        let rec: Vec<String> = template
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == id_col {
                    id.clone()
                } else {
                    v.to_string()
                }
            })
            .collect();
        w.write_record(&rec).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

/// The example accept playbook, polling every 200 ms instead of 5 s (tasks in the test
/// emulator take 100-300 ms), written next to the test's CSVs.
pub fn accept_playbook(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo().join("playbooks/accept-invitations.yaml")).unwrap();
    assert!(text.contains("interval: 5s"), "the example polls every 5 s");
    let path = dir.join("accept.yaml");
    std::fs::write(&path, text.replace("interval: 5s", "interval: 200ms")).unwrap();
    path
}

/// The example invite playbook keyed by company instead of account id, so that one test
/// receiver account can be invited once per row (and accept them all as one partner).
pub fn invite_playbook(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo().join("playbooks/invite-partners.yaml")).unwrap();
    let keyed = r#"key: "{{ row.aws_account_id }}""#;
    assert!(text.contains(keyed), "the example keys rows by account id");
    let path = dir.join("invite.yaml");
    std::fs::write(&path, text.replace(keyed, r#"key: "{{ row.company }}""#)).unwrap();
    path
}

/// `invitations.csv` in `dir`, from the invite run `send`'s ledger.
pub fn write_invitations(dir: &Path) {
    let csv = invitations_csv(&dir.join("send/ledger.csv"));
    std::fs::write(dir.join("invitations.csv"), csv).unwrap();
}

/// The receiver's accept run over `invitations.csv` in `dir`.
pub fn accept(emu: &Emu, dir: &Path, run_dir: &str) -> Cosell {
    Cosell::in_dir(dir)
        .arg("run")
        .arg(accept_playbook(dir))
        .args(["--input", "invitations.csv", "--run-dir", run_dir])
        .args(X50)
        .calling_as(emu.url(), RECEIVER)
}

pub fn invite(emu: &Emu, dir: &Path, run_dir: &str) -> Cosell {
    Cosell::in_dir(dir)
        .arg("run")
        .arg(invite_playbook(dir))
        .args(["--input", "partners.csv", "--run-dir", run_dir])
        .args(X50)
        .calling_as(emu.url(), SENDER)
}

fn count(stats: &serde_json::Value, path: &[&str]) -> u64 {
    let mut v = stats;
    for p in path {
        v = &v[*p];
    }
    v.as_u64().unwrap_or(0)
}

#[test]
fn invite_then_accept_across_two_accounts_through_faults() {
    let emu = Emu::start(
        "x50",
        "throttle=0.05,internal=0.03,reset=0.03,latency=20ms@0.05",
        11,
        "200ms",
    );
    let dir = tempfile::tempdir().unwrap();
    let n = 40;
    std::fs::write(dir.path().join("partners.csv"), partners_csv(n, RECEIVER)).unwrap();

    let out = invite(&emu, dir.path(), "send").run();
    out.code(0).stdout_has("40 succeeded, 0 failed");
    let ledger = read_ledger(&dir.path().join("send/ledger.csv"));
    assert_eq!(ledger.len(), n);
    assert!(
        ledger.iter().all(|r| r["status"] == "succeeded"),
        "{ledger:#?}"
    );
    let stats = emu.stats();
    assert_eq!(
        count(&stats, &["resources", "invitations"]),
        n as u64,
        "{stats:#}"
    );
    assert_eq!(count(&stats, &["resources", "engagements"]), 1, "{stats:#}");
    let faults = &stats["faults"];
    assert!(
        faults
            .as_object()
            .map(|f| f.values().any(|v| v.as_u64() > Some(0)))
            .unwrap_or(false),
        "faults were injected: {stats:#}"
    );

    // the receiver accepts every invitation, as a second partner account
    write_invitations(dir.path());
    let out = accept(&emu, dir.path(), "accept").run();
    out.code(0);
    all_succeeded(&dir.path().join("accept/ledger.csv"));
    let stats = emu.stats();
    assert_eq!(
        count(&stats, &["invitations_by_status", "ACCEPTED"]),
        n as u64,
        "{stats:#}"
    );
    assert_eq!(
        count(&stats, &["tasks_started_per_invitation_max"]),
        1,
        "{stats:#}"
    );
}

#[test]
fn a_failed_expectation_and_a_failed_task_land_in_the_ledger_with_the_reason() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(3, RECEIVER)).unwrap();
    invite(&emu, dir.path(), "send").run().code(0);
    let invitations = invitations_csv(&dir.path().join("send/ledger.csv"));
    std::fs::write(dir.path().join("invitations.csv"), &invitations).unwrap();
    // accept once: succeeds
    accept(&emu, dir.path(), "a1").run().code(0);
    // the sender checks again: the invite playbook's `expect: Status PENDING` no longer holds
    let check = r#"version: 1
name: recheck
catalog: Sandbox
input:
  csv: invitations.csv
steps:
  - id: check
    action: GetEngagementInvitation
    input: { Identifier: "{{ row.invitation_id }}" }
    expect: { Status: PENDING }
"#;
    std::fs::write(dir.path().join("recheck.yaml"), check).unwrap();
    let out = Cosell::in_dir(dir.path())
        .args(["run", "recheck.yaml", "--run-dir", "r1"])
        .args(X50)
        .calling_as(emu.url(), SENDER)
        .run();
    out.code(1);
    let ledger = read_ledger(&dir.path().join("r1/ledger.csv"));
    assert_eq!(ledger.len(), 3);
    for r in &ledger {
        assert_eq!(r["status"], "failed");
        assert_eq!(r["error_step"], "check");
        assert_eq!(r["error_code"], "ExpectationFailed");
        assert!(r["error_message"].contains("ACCEPTED"), "{r:?}");
    }
}

#[test]
fn a_task_that_fails_lands_in_the_ledger_with_its_reason_code() {
    // invitations expire after 3 s; acceptance tasks take 5 s, so they complete too late
    let emu = Emu::start_with_ttl("x50", "", 1, "5s", "3s");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(2, RECEIVER)).unwrap();
    invite(&emu, dir.path(), "send").run().code(0);
    write_invitations(dir.path());
    let out = accept(&emu, dir.path(), "late").run();
    out.code(1).stderr_has("2 rows failed");
    for r in read_ledger(&dir.path().join("late/ledger.csv")) {
        assert_eq!(r["status"], "failed", "{r:?}");
        assert_eq!(r["error_step"], "accept");
        assert_eq!(r["error_code"], "InvitationValidationFailed", "{r:?}");
        assert!(r["error_message"].starts_with("task task-"), "{r:?}");
        assert_eq!(r["status_before"], "PENDING");
    }
}

#[test]
fn a_wait_that_times_out_fails_the_row_and_names_the_task() {
    let emu = Emu::start("x50", "", 1, "30s");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(1, RECEIVER)).unwrap();
    invite(&emu, dir.path(), "send").run().code(0);
    write_invitations(dir.path());
    let pb = std::fs::read_to_string(accept_playbook(dir.path()))
        .unwrap()
        .replace("timeout: 10m", "timeout: 1s");
    std::fs::write(dir.path().join("impatient.yaml"), pb).unwrap();
    Cosell::in_dir(dir.path())
        .args([
            "run",
            "impatient.yaml",
            "--input",
            "invitations.csv",
            "--run-dir",
            "t",
        ])
        .args(X50)
        .calling_as(emu.url(), RECEIVER)
        .run()
        .code(1);
    let r = &read_ledger(&dir.path().join("t/ledger.csv"))[0];
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error_code"], "WaitTimeout");
    assert!(r["error_message"].starts_with("task task-"), "{r:?}");
}

#[test]
fn engagements_from_opportunities_wait_for_their_tasks() {
    let emu = Emu::start("x50", "", 1, "200ms");
    let client = crate::support::sdk_client(emu.url(), SENDER);
    let mut ids = Vec::new();
    for i in 0..5 {
        let out = emu
            .block_on(
                client
                    .create_opportunity()
                    .catalog("Sandbox")
                    .client_token(format!("opp-{i}"))
                    .partner_opportunity_identifier(format!("CRM-{i}"))
                    .send(),
            )
            .expect("create opportunity");
        ids.push(out.id().to_string());
    }
    let dir = tempfile::tempdir().unwrap();
    let mut r = csv::Reader::from_path(repo().join("examples/opportunities.csv")).unwrap();
    let headers = r.headers().unwrap().clone();
    let template = r.records().next().unwrap().unwrap();
    let col = headers.iter().position(|h| h == "opportunity_id").unwrap();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&headers).unwrap();
    for id in &ids {
        let rec: Vec<String> = template
            .iter()
            .enumerate()
            .map(|(c, v)| if c == col { id.clone() } else { v.to_string() })
            .collect();
        w.write_record(&rec).unwrap();
    }
    std::fs::write(
        dir.path().join("opportunities.csv"),
        w.into_inner().unwrap(),
    )
    .unwrap();
    let pb = std::fs::read_to_string(repo().join("playbooks/engagements-from-opportunities.yaml"))
        .unwrap()
        .replace(
            "wait: { timeout: 15m }",
            "wait: { timeout: 15m, interval: 200ms }",
        );
    std::fs::write(dir.path().join("eo.yaml"), pb).unwrap();
    Cosell::in_dir(dir.path())
        .args([
            "run",
            "eo.yaml",
            "--input",
            "opportunities.csv",
            "--run-dir",
            "eo",
        ])
        .args(X50)
        .calling_as(emu.url(), SENDER)
        .run()
        .code(0);
    let ledger = read_ledger(&dir.path().join("eo/ledger.csv"));
    assert_eq!(ledger.len(), 5);
    for r in &ledger {
        assert_eq!(r["status"], "succeeded", "{r:?}");
        assert!(r["engagement_id"].starts_with("eng-"), "{r:?}");
        assert!(r["start_id"].starts_with("task-"), "{r:?}");
    }
    let stats = emu.stats();
    assert_eq!(stats["resources"]["engagements"], 5, "{stats:#}");
}

#[test]
fn the_daily_quota_stops_the_run_and_counts_earlier_calls_on_resume() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(6, RECEIVER)).unwrap();
    let pb = std::fs::read_to_string(invite_playbook(dir.path()))
        .unwrap()
        .replace(
            "daily: { write: 10000, read: 100000 }",
            "daily: { write: 3, read: 100000 }",
        )
        .replace("concurrency: 8", "concurrency: 1");
    assert!(pb.contains("write: 3,"), "the example sets limits.daily");
    std::fs::write(dir.path().join("daily.yaml"), pb).unwrap();
    let run = || {
        Cosell::in_dir(dir.path())
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
    };
    let out = run().run();
    out.code(3)
        .stderr_has("the rolling 24-hour quota of the write class (3 calls) is used up")
        .stderr_has("cosell resume q");
    let ledger = read_ledger(&dir.path().join("q/ledger.csv"));
    let done = ledger.iter().filter(|r| r["status"] == "succeeded").count();
    assert_eq!(done, 3, "{ledger:#?}");
    assert_eq!(emu.stats()["resources"]["invitations"], 3);
    // within the same 24 hours, resume knows the three earlier writes and sends nothing
    let out = resume_in(dir.path(), emu.url(), "q");
    out.code(3).stderr_has("write class (3 calls) is used up");
    assert_eq!(emu.stats()["resources"]["invitations"], 3);
}

fn resume_in(dir: &Path, endpoint: &str, run_dir: &str) -> crate::support::Outcome {
    Cosell::in_dir(dir)
        .args(["resume", run_dir])
        .args(X50)
        .calling_as(endpoint, SENDER)
        .run()
}

#[test]
fn logs_at_trace_level_carry_no_secret_and_no_sensitive_value() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(2, RECEIVER)).unwrap();
    let out = invite(&emu, dir.path(), "t")
        .env("RUST_LOG", "trace")
        .env("AWS_SECRET_ACCESS_KEY", "SECRET-never-in-logs")
        .run();
    out.code(0);
    assert!(out.stderr.len() > 10_000, "trace logging was on");
    for needle in [
        "SECRET-never-in-logs",
        "Signature=",
        // values of members the model marks sensitive: the customer's website and the
        // receiver's account id (Customer.WebsiteUrl, Receiver.Account.AwsAccountId)
        "northwind.example.com",
        RECEIVER,
    ] {
        assert!(!out.stderr.contains(needle), "{needle:?} reached the logs");
    }
}

#[test]
fn an_invalid_campaign_sends_nothing_and_exits_2() {
    let emu = Emu::start("none", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    let mut csv = partners_csv(3, RECEIVER);
    csv = csv.replacen(RECEIVER, "2222222222220", 1); // 13 digits: not an account id
    std::fs::write(dir.path().join("partners.csv"), csv).unwrap();
    let out = invite(&emu, dir.path(), "bad").run();
    out.code(2).stderr_has("nothing was sent");
    let stats = emu.stats();
    let calls: u64 = stats["calls"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0);
    assert_eq!(calls, 0, "{stats:#}");
}

#[test]
fn the_endpoint_and_a_profile_come_from_the_standard_aws_configuration() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(2, RECEIVER)).unwrap();
    // a named profile in a credentials file, the endpoint from the service's env variable
    std::fs::write(
        dir.path().join("credentials"),
        format!(
            "[cosell-test]\naws_access_key_id = {SENDER}\naws_secret_access_key = from-profile\n"
        ),
    )
    .unwrap();
    Cosell::in_dir(dir.path())
        .arg("run")
        .arg(invite_playbook(dir.path()))
        .args([
            "--input",
            "partners.csv",
            "--run-dir",
            "p",
            "--profile",
            "cosell-test",
        ])
        .args(X50)
        .env("AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING", emu.url())
        .env("AWS_SHARED_CREDENTIALS_FILE", "credentials")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .run()
        .code(0);
    // the invitations were sent as the profile's partner account
    let client = crate::support::sdk_client(emu.url(), SENDER);
    let ledger = read_ledger(&dir.path().join("p/ledger.csv"));
    for r in &ledger {
        let inv = emu
            .block_on(
                client
                    .get_engagement_invitation()
                    .catalog("Sandbox")
                    .identifier(&r["invite_id"])
                    .send(),
            )
            .unwrap();
        assert_eq!(inv.sender_aws_account_id(), Some(SENDER));
    }
    // a profile that does not exist is an environment error naming it, before any call
    let out = Cosell::in_dir(dir.path())
        .arg("run")
        .arg(invite_playbook(dir.path()))
        .args([
            "--input",
            "partners.csv",
            "--run-dir",
            "p2",
            "--profile",
            "nope",
        ])
        .env("AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING", emu.url())
        .env("AWS_SHARED_CREDENTIALS_FILE", "credentials")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .run();
    out.code(4).stderr_has("nope");
}

#[test]
fn a_bad_rate_flag_is_refused_before_anything_is_sent() {
    for (flag, says) in [
        (
            "write=fast",
            "--rate write=fast: error[INVALID_LIMIT]: rate \"fast\" for write is not a rate such as 1/s, 30/m or 3600/h",
        ),
        (
            "writes=1/s",
            "--rate writes=1/s: error[UNKNOWN_RATE_TARGET]: \"writes\" is neither a quota class (read, write, engagement-write, prospecting-get, prospecting-list, prospecting-write) nor an operation name; did you mean \"write\"?",
        ),
    ] {
        Cosell::new()
            .arg("run")
            .arg(repo().join("playbooks/invite-partners.yaml"))
            .args(["--rate", flag])
            .calling_as("http://127.0.0.1:9", SENDER)
            .run()
            .code(2)
            .stderr_has(says);
    }
}

#[test]
fn catalog_aws_needs_confirmation_when_not_interactive() {
    let dir = tempfile::tempdir().unwrap();
    let pb = std::fs::read_to_string(invite_playbook(dir.path()))
        .unwrap()
        .replace("catalog: Sandbox", "catalog: AWS");
    std::fs::write(dir.path().join("aws.yaml"), pb).unwrap();
    std::fs::write(dir.path().join("partners.csv"), partners_csv(2, RECEIVER)).unwrap();
    let emu = Emu::start("aws", "", 1, "100ms");
    let out = Cosell::in_dir(dir.path())
        .args(["run", "aws.yaml", "--input", "partners.csv"])
        .calling_as(emu.url(), SENDER)
        .run();
    // the confirmation names the account the credentials belong to
    out.code(2)
        .stderr_has("--yes")
        .stderr_has(&format!("partner account {SENDER}"));
    assert_eq!(
        emu.stats()["resources"]["engagements"],
        0,
        "nothing was sent"
    );
    assert!(
        !dir.path().join("runs").exists(),
        "no run directory for a refused run"
    );
}

#[test]
fn max_failures_stops_the_run_with_exit_3() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    // invitations that do not exist: every row fails with ResourceNotFoundException
    let ids: String = (0..20).map(|i| format!("engi-{:013}\n", i)).collect();
    let pb = r#"version: 1
name: missing
catalog: Sandbox
input:
  csv: ids.csv
limits:
  concurrency: 1
  max_failures: 3
steps:
  - id: get
    action: GetEngagementInvitation
    input: { Identifier: "{{ row.id }}" }
"#;
    std::fs::write(dir.path().join("ids.csv"), format!("id\n{ids}")).unwrap();
    std::fs::write(dir.path().join("missing.yaml"), pb).unwrap();
    let out = Cosell::in_dir(dir.path())
        .args(["run", "missing.yaml", "--run-dir", "m"])
        .args(X50)
        .calling_as(emu.url(), SENDER)
        .run();
    out.code(3).stderr_has("max_failures");
    let ledger = read_ledger(&dir.path().join("m/ledger.csv"));
    assert_eq!(ledger.len(), 20);
    let failed = ledger.iter().filter(|r| r["status"] == "failed").count();
    assert_eq!(failed, 4, "stops at the first failure over the limit");
    assert!(ledger.iter().any(|r| r["status"] == "pending"));
    assert_eq!(
        ledger.iter().find(|r| r["status"] == "failed").unwrap()["error_code"],
        "ResourceNotFoundException"
    );
}

#[test]
fn emulate_runs_the_example_campaign_with_no_account() {
    let dir = tempfile::tempdir().unwrap();
    let out = Cosell::in_dir(dir.path())
        .arg("run")
        .arg(repo().join("playbooks/invite-partners.yaml"))
        .args(["--emulate", "--run-dir", "demo"])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .run();
    out.code(0).stdout_has("0 failed");
    assert!(dir.path().join("demo/ledger.csv").exists());
    assert!(dir.path().join("demo/ledger.jsonl").exists());
}

/// An operation far from the invitation corner runs as an action through the SDK bridge:
/// the selling-system settings, written then read back and checked with `expect`.
#[test]
fn an_operation_outside_the_invitation_corner_is_sent_through_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pb.yaml"),
        r#"version: 1
name: settings
catalog: Sandbox
input: { csv: rows.csv, key: "{{ row.role }}" }
steps:
  - id: put
    action: PutSellingSystemSettings
    input: { ResourceSnapshotJobRoleIdentifier: "{{ row.role }}" }
  - id: get
    action: GetSellingSystemSettings
    input: {}
    expect:
      Catalog: Sandbox
ledger:
  columns:
    role_arn: "{{ steps.get.ResourceSnapshotJobRoleArn }}"
"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("rows.csv"), "role\nSnapshotRole\n").unwrap();
    let out = Cosell::in_dir(dir.path())
        .args(["run", "pb.yaml", "--emulate", "--run-dir", "demo"])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .run();
    out.code(0)
        .stdout_has("PutSellingSystemSettings")
        .stdout_has("GetSellingSystemSettings");
    let ledger = crate::support::read_ledger(&dir.path().join("demo/ledger.csv"));
    assert_eq!(ledger[0]["status"], "succeeded", "{ledger:?}");
    let arn = &ledger[0]["role_arn"];
    assert!(
        arn.starts_with("arn:aws:iam::") && arn.ends_with(":role/SnapshotRole"),
        "{arn}"
    );
}

/// `paginate: true` follows the paginator through the real SDK against the emulator: each page
/// is a call at the read quota, and the step's output holds every page's items; `max_items`
/// stops after enough items and cuts the list.
#[test]
fn a_paginated_list_collects_every_page_into_the_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pb.yaml"),
        r#"version: 1
name: list-all
catalog: Sandbox
input: { csv: rows.csv, key: "{{ row.id }}" }
steps:
  - id: all
    action: ListEngagementInvitations
    input: { ParticipantType: RECEIVER, MaxResults: 1 }
    paginate: true
  - id: two
    action: ListEngagementInvitations
    input: { ParticipantType: RECEIVER, MaxResults: 1 }
    paginate: true
    max_items: 2
ledger:
  columns:
    all: "{{ steps.all.EngagementInvitationSummaries | map(attribute='Id') | sort | join(' ') }}"
    two: "{{ steps.two.EngagementInvitationSummaries | length }}"
emulate:
  each_row:
    invitations:
      - Id: "{{ row.id }}"
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rows.csv"),
        "id\nengi-0000000000001\nengi-0000000000002\nengi-0000000000003\n",
    )
    .unwrap();
    let out = Cosell::in_dir(dir.path())
        .args(["run", "pb.yaml", "--emulate", "--run-dir", "demo"])
        .args(["--concurrency", "1"])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .run();
    // 3 rows x (3 pages + 2 pages), one item a page
    out.code(0)
        .stdout_has("3 succeeded")
        .stdout_has("ListEngagementInvitations                         15  (read)");
    let ledger = std::fs::read_to_string(dir.path().join("demo/ledger.csv")).unwrap();
    let rows: Vec<&str> = ledger.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{ledger}");
    for r in rows {
        assert!(
            r.contains(",succeeded,engi-0000000000001 engi-0000000000002 engi-0000000000003,2,"),
            "{ledger}"
        );
    }
}
