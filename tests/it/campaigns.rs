//! The opportunity campaigns of the example playbooks, through the binary against the
//! emulator: create, associate and submit from a CRM export (also killed and resumed under
//! faults that drop connections after the effect), accept AWS referrals, and the lead to
//! opportunity runbook; and every kind of write without a ClientToken under connection
//! resets, each retry that meets its own effect recognised by its effect check.

use crate::resume::kill_and_resume;
use crate::run::X50;
use crate::support::{read_ledger, repo, Cosell, Emu};
use cosell::journal::Record;
use rand::SeedableRng;
use std::path::{Path, PathBuf};

/// Rehearse an example playbook as a user would: `cosell run playbooks/X.yaml --emulate`, from
/// an empty directory, with no AWS account; every row must succeed. Returns its ledger.
pub(crate) fn rehearse(playbook: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let dir = tempfile::tempdir().unwrap();
    Cosell::in_dir(dir.path())
        .arg("run")
        .arg(repo().join("playbooks").join(playbook))
        .args(["--emulate", "--run-dir", "r"])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .run()
        .code(0)
        .stdout_has("0 failed");
    let ledger = read_ledger(&dir.path().join("r/ledger.csv"));
    assert!(!ledger.is_empty());
    for r in &ledger {
        assert_eq!(r["status"], "succeeded", "{playbook}: {r:?}");
    }
    ledger
}

#[test]
fn the_lead_to_opportunity_runbook_rehearses_with_its_csv() {
    for r in rehearse("lead-to-opportunity.yaml") {
        assert_eq!(r["lead_status_before"], "PENDING", "{r:?}");
        assert!(r["opportunity_id"].starts_with('O'), "{r:?}");
        assert!(r["engagement_id"].starts_with("eng-"), "{r:?}");
        assert!(r["convert_id"].starts_with("task-"), "{r:?}");
    }
}

#[test]
fn the_create_and_submit_example_rehearses_with_its_csv() {
    for r in rehearse("create-and-submit-opportunities.yaml") {
        assert!(r["opportunity_id"].starts_with('O'), "{r:?}");
        assert!(r["engagement_id"].starts_with("eng-"), "{r:?}");
    }
}

#[test]
fn the_accept_aws_referrals_example_rehearses_with_its_csv() {
    for r in rehearse("accept-aws-referrals.yaml") {
        assert_eq!(
            (r["status_before"].as_str(), r["sender"].as_str()),
            ("PENDING", "AWS")
        );
        assert!(r["opportunity_id"].starts_with('O'), "{r:?}");
        assert_eq!(r["stage"], "Prospect", "{r:?}");
    }
}

/// Only pending opportunity invitations from AWS are accepted: one already accepted and one
/// from a partner are read and left alone (their rows succeed with no accept).
#[test]
fn accept_aws_referrals_accepts_only_pending_invitations_from_aws() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("fixture.yaml");
    std::fs::write(
        &fixture,
        format!(
            "account: \"{PARTNER}\"\ninvitations:\n\
             - {{ Id: engi-a0500000000a1 }}\n\
             - {{ Id: engi-a0500000000b2, Status: ACCEPTED }}\n\
             - {{ Id: engi-a0500000000c3, SenderAwsAccountId: \"444455556666\" }}\n\
             - {{ Id: engi-a0500000000d4 }}\n"
        ),
    )
    .unwrap();
    let emu = Emu::start_adjusted("x50", "", 1, "100ms", |a| {
        a.fixture = Some(fixture.clone());
    });
    std::fs::copy(
        repo().join("examples/aws-referrals.csv"),
        dir.path().join("referrals.csv"),
    )
    .unwrap();
    Cosell::in_dir(dir.path())
        .arg("run")
        .arg(repo().join("playbooks/accept-aws-referrals.yaml"))
        .args(["--input", "referrals.csv", "--run-dir", "r"])
        .args(X50)
        .calling_as(emu.url(), PARTNER)
        .run()
        .code(0);
    let ledger = read_ledger(&dir.path().join("r/ledger.csv"));
    let accepted: Vec<&str> = ledger
        .iter()
        .filter(|r| r["opportunity_id"].starts_with('O'))
        .map(|r| r["key"].as_str())
        .collect();
    assert_eq!(accepted, ["engi-a0500000000a1", "engi-a0500000000d4"]);
    assert!(ledger.iter().all(|r| r["status"] == "succeeded"));
    let stats = emu.stats();
    assert_eq!(stats["invitations_by_status"]["ACCEPTED"], 3, "{stats:#}");
    assert_eq!(stats["invitations_by_status"]["PENDING"], 1, "{stats:#}");
}

/// The account the campaigns run as.
pub const PARTNER: &str = "111122223333";

/// `n` rows in the shape of `examples/crm-opportunities.csv`, each its own CRM id and company.
pub fn crm_csv(n: usize) -> String {
    let mut r = csv::Reader::from_path(repo().join("examples/crm-opportunities.csv")).unwrap();
    let headers = r.headers().unwrap().clone();
    let template = r.records().next().unwrap().unwrap();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&headers).unwrap();
    for i in 0..n {
        let rec: Vec<String> = headers
            .iter()
            .zip(template.iter())
            .map(|(h, v)| match h {
                "crm_id" => format!("CRM-{i:05}"),
                "company" => format!("{v} {i}"),
                _ => v.to_string(),
            })
            .collect();
        w.write_record(&rec).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

/// The example playbook, reading `crm.csv` beside it.
pub fn create_submit_playbook(dir: &Path) -> PathBuf {
    let text =
        std::fs::read_to_string(repo().join("playbooks/create-and-submit-opportunities.yaml"))
            .unwrap();
    let csv = "csv: ../examples/crm-opportunities.csv";
    assert!(text.contains(csv));
    let path = dir.join("create-submit.yaml");
    std::fs::write(&path, text.replace(csv, "csv: crm.csv")).unwrap();
    path
}

fn create_submit(emu: &Emu, dir: &Path, run_dir: &str) -> Cosell {
    Cosell::in_dir(dir)
        .arg("run")
        .arg(create_submit_playbook(dir))
        .args(["--run-dir", run_dir])
        .args(X50)
        .calling_as(emu.url(), PARTNER)
}

#[test]
fn create_associate_submit_runs_through_the_binary() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crm.csv"), crm_csv(6)).unwrap();
    create_submit(&emu, dir.path(), "r")
        .run()
        .code(0)
        .stdout_has("StartEngagementFromOpportunityTask");
    let ledger = read_ledger(&dir.path().join("r/ledger.csv"));
    assert_eq!(ledger.len(), 6);
    for r in &ledger {
        assert_eq!(r["status"], "succeeded", "{r:?}");
        assert!(r["opportunity_id"].starts_with('O'), "{r:?}");
        assert!(r["engagement_id"].starts_with("eng-"), "{r:?}");
        assert_eq!(r["notes"], "", "{r:?}");
    }
    let stats = emu.stats();
    assert_eq!(stats["resources"]["opportunities"], 6, "{stats:#}");
    assert_eq!(stats["resources"]["associations"], 6, "{stats:#}");
    assert_eq!(stats["submissions_per_opportunity_max"], 1, "{stats:#}");
}

/// The kill test of exactly-once: SIGKILL at 15 seeded moments, resume each time, under
/// connection resets (half of them after the effect, so the answer is lost) and 5xx. The
/// association has no ClientToken: a retry or resume that meets its own association is
/// recognised, not failed, and nothing is done twice.
#[test]
fn fifteen_kills_under_resets_associate_and_submit_each_opportunity_exactly_once() {
    let emu = Emu::start("x50", "reset=0.1,internal=0.02", 9, "300ms");
    let dir = tempfile::tempdir().unwrap();
    let n = 200;
    std::fs::write(dir.path().join("crm.csv"), crm_csv(n)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261202);
    let first = || create_submit(&emu, dir.path(), "r");
    let live = kill_and_resume(&emu, dir.path(), "r", PARTNER, first, 15, &mut rng);
    assert!(live >= 10, "most kills must hit a running process ({live})");

    let ledger = read_ledger(&dir.path().join("r/ledger.csv"));
    assert_eq!(ledger.len(), n);
    for r in &ledger {
        assert_eq!(r["status"], "succeeded", "{r:?}");
        assert!(r["engagement_id"].starts_with("eng-"), "{r:?}");
    }
    let stats = emu.stats();
    let res = &stats["resources"];
    assert_eq!(res["opportunities"], n as u64, "{stats:#}");
    assert_eq!(res["associations"], n as u64, "{stats:#}");
    assert_eq!(res["engagements"], n as u64, "{stats:#}");
    assert_eq!(stats["submissions_per_opportunity_max"], 1, "{stats:#}");
    assert_eq!(stats["tasks_by_status"]["COMPLETE"], n as u64, "{stats:#}");
    assert_eq!(stats["tasks_by_status"]["FAILED"], 0, "{stats:#}");

    // the resets after the effect met their own association at least once, and the journal
    // says so; every check found the effect in place (nobody else touched these)
    let records = cosell::journal::read(&dir.path().join("r/journal.jsonl"))
        .unwrap()
        .records;
    let checks: Vec<(&str, bool)> = records
        .iter()
        .filter_map(|r| match r {
            Record::EffectChecked { read, in_place, .. } => Some((read.as_str(), *in_place)),
            _ => None,
        })
        .collect();
    assert!(!checks.is_empty(), "no retry met its own effect");
    assert!(
        checks
            .iter()
            .all(|&(read, ok)| read == "GetOpportunity" && ok),
        "{checks:?}"
    );
    let noted = ledger
        .iter()
        .filter(|r| r["notes"].starts_with("solution: already in place"))
        .count();
    assert_eq!(
        noted,
        checks.len(),
        "every check is on its row's ledger line"
    );
}

/// Every family's writes without a ClientToken in one playbook (`exactly-once.yaml`):
/// associate, disassociate, assign, update (optimistic lock), tag, untag, the engagement
/// context update (optimistic lock), start/stop/delete of a snapshot job, and the settings.
/// Under resets (half after the effect, so the answer is lost) and 5xx, a retry meets its own
/// effect again and again: each time the check reads the resource, finds the effect in place,
/// and the row goes on. Nothing fails and nothing is done twice.
#[test]
fn retries_of_every_write_without_a_token_recognise_their_own_effect() {
    let emu = Emu::start("x50", "reset=0.2,internal=0.05", 42, "200ms");
    let dir = tempfile::tempdir().unwrap();
    let n = 20;
    let mut csv = String::from("crm_id,company\n");
    for i in 0..n {
        csv.push_str(&format!("C{i:03},Company {i}\n"));
    }
    std::fs::write(dir.path().join("rows.csv"), csv).unwrap();
    std::fs::copy(
        repo().join("tests/it/exactly-once.yaml"),
        dir.path().join("pb.yaml"),
    )
    .unwrap();
    let out = Cosell::in_dir(dir.path())
        .args(["run", "pb.yaml", "--run-dir", "r"])
        .args(X50)
        .calling_as(emu.url(), PARTNER)
        .run();
    out.code(0).stdout_has("already in place");
    let ledger = read_ledger(&dir.path().join("r/ledger.csv"));
    assert_eq!(ledger.len(), n);
    for r in &ledger {
        assert_eq!(r["status"], "succeeded", "{r:?}");
    }
    let records = cosell::journal::read(&dir.path().join("r/journal.jsonl"))
        .unwrap()
        .records;
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for r in &records {
        if let Record::EffectChecked {
            step,
            in_place,
            detail,
            ..
        } = r
        {
            assert!(in_place, "{step}: {detail}");
            *checked.entry(step.clone()).or_default() += 1;
        }
    }
    assert!(checked.len() >= 3, "checks met: {checked:?}");
    let stats = emu.stats();
    let res = &stats["resources"];
    assert_eq!(res["opportunities"], n as u64, "{stats:#}");
    // the solution stays, the product was associated and disassociated once
    assert_eq!(res["associations"], n as u64, "{stats:#}");
    assert_eq!(res["engagements"], n as u64, "{stats:#}");
    // every job was deleted, and with it its tags; the opportunities keep theirs
    assert_eq!(res["resource_snapshot_jobs"], 0, "{stats:#}");
    assert_eq!(res["tagged_resources"], n as u64, "{stats:#}");
    assert_eq!(stats["submissions_per_opportunity_max"], 1, "{stats:#}");
}
