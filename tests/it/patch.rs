//! `patch` steps against the emulator through the real binary and the real SDK: only what
//! changes is written, up-to-date records cost no write, review-locked records send nothing,
//! a concurrent writer's changes survive, a kill between the read and the write resumes
//! without a duplicate, and `plan --live` only reads.

use crate::resume::kill_and_resume;
use crate::support::{read_ledger, repo, sdk_client, Cosell, Emu};
use aws_sdk_partnercentralselling::types::{LifeCycle, Project};
use rand::SeedableRng;
use serde_json::{json, Value};
use std::path::Path;

/// The emulator's default account: the fixture's opportunities belong to it.
const OWNER: &str = "111122223333";

const PLAYBOOK: &str = "playbooks/update-opportunity-stage.yaml";

fn opp_id(i: usize) -> String {
    format!("O{}", 7_000_000 + i)
}

/// An opportunity as the fixture holds it: at `stage`, with next steps and close date.
fn opportunity(i: usize, stage: &str, next: &str, close: &str, review: &str) -> Value {
    json!({
        "Id": opp_id(i),
        "Customer": {"Account": {"CompanyName": format!("Customer {i}"), "Industry": "Other",
            "WebsiteUrl": "https://customer.example.com", "Address": {"CountryCode": "US"}}},
        "Project": {"Title": format!("Project {i}"),
            "CustomerBusinessProblem": "They need a much better data platform for analytics"},
        "LifeCycle": {"Stage": stage, "NextSteps": next, "TargetCloseDate": close,
            "ReviewStatus": review},
    })
}

/// An opportunity at Prospect, before review: what a campaign starts from.
fn prospect(i: usize) -> Value {
    opportunity(
        i,
        "Prospect",
        "Call back",
        "2027-06-30",
        "Pending Submission",
    )
}

/// An emulator holding `opps`, with quotas `quotas`.
fn emu_with(dir: &Path, quotas: &str, opps: Vec<Value>) -> Emu {
    let path = dir.join("fixture.json");
    std::fs::write(&path, json!({ "opportunities": opps }).to_string()).unwrap();
    Emu::start_adjusted(quotas, "", 0, "1s", |a| a.fixture = Some(path))
}

/// The CRM export: one row per opportunity, to `stage` with these next steps and close date.
fn pipeline(rows: &[(String, &str, &str, &str)]) -> String {
    let mut s = String::from("opportunity_id,stage,next_steps,target_close_date\n");
    for (id, stage, next, close) in rows {
        s.push_str(&format!("{id},{stage},{next},{close}\n"));
    }
    s
}

/// An emulator holding `n` opportunities at Prospect, and `pipeline.csv` in `dir` taking each
/// to `stage` with these next steps and close date.
fn prospects(dir: &Path, n: usize, stage: &str, next: &str, close: &str) -> Emu {
    let opps = (0..n).map(prospect).collect();
    let emu = emu_with(dir, "x50", opps);
    let rows: Vec<_> = (0..n).map(|i| (opp_id(i), stage, next, close)).collect();
    std::fs::write(dir.join("pipeline.csv"), pipeline(&rows)).unwrap();
    emu
}

fn calls(emu: &Emu, op: &str) -> u64 {
    emu.stats()["calls"][op].as_u64().unwrap_or(0)
}

fn get(emu: &Emu, id: &str) -> Value {
    let c = sdk_client(emu.url(), OWNER);
    let o = emu.block_on(async {
        c.get_opportunity()
            .catalog("Sandbox")
            .identifier(id)
            .send()
            .await
            .expect("GetOpportunity")
    });
    let l = o.life_cycle().unwrap();
    json!({
        "Stage": l.stage().map(|s| s.as_str()),
        "NextSteps": l.next_steps(),
        "TargetCloseDate": l.target_close_date(),
        "Title": o.project().and_then(|p| p.title()),
        "Company": o.customer().and_then(|c| c.account()).map(|a| a.company_name()),
    })
}

fn run_in(dir: &Path, emu: &Emu, extra: &[&str]) -> crate::support::Outcome {
    Cosell::in_dir(dir)
        .arg("run")
        .arg(repo().join(PLAYBOOK))
        .args(["--input", "pipeline.csv", "--run-dir", "r"])
        .args(extra)
        .calling_as(emu.url(), OWNER)
        .run()
}

#[test]
fn patch_writes_only_what_changes_and_up_to_date_records_cost_no_write() {
    let t = tempfile::tempdir().unwrap();
    let at = |i| {
        opportunity(
            i,
            "Qualified",
            "Workshop",
            "2027-03-31",
            "Pending Submission",
        )
    };
    let emu = emu_with(
        t.path(),
        "x50",
        vec![prospect(0), at(1), prospect(2), at(3), prospect(4)],
    );
    let rows: Vec<_> = (0..5)
        .map(|i| {
            // row 4's next steps cell is empty: its NextSteps stays as it is
            let next = if i == 4 { "" } else { "Workshop" };
            (opp_id(i), "Qualified", next, "2027-03-31")
        })
        .collect();
    std::fs::write(t.path().join("pipeline.csv"), pipeline(&rows)).unwrap();
    let o = run_in(
        t.path(),
        &emu,
        &["--rate", "write=50/s", "--rate", "read=500/s"],
    );
    o.code(0)
        .stdout_has("patched   3 updated, 2 unchanged (nothing sent), 0 conflicts");
    assert_eq!(calls(&emu, "GetOpportunity"), 5);
    assert_eq!(
        calls(&emu, "UpdateOpportunity"),
        3,
        "up-to-date records cost no write"
    );

    let ledger = read_ledger(&t.path().join("r/ledger.csv"));
    let changes: Vec<&str> = ledger.iter().map(|r| r["changes"].as_str()).collect();
    assert_eq!(
        changes,
        [
            "LifeCycle.NextSteps: Call back → Workshop; LifeCycle.Stage: Prospect → Qualified; \
             LifeCycle.TargetCloseDate: 2027-06-30 → 2027-03-31",
            "unchanged",
            "LifeCycle.NextSteps: Call back → Workshop; LifeCycle.Stage: Prospect → Qualified; \
             LifeCycle.TargetCloseDate: 2027-06-30 → 2027-03-31",
            "unchanged",
            "LifeCycle.Stage: Prospect → Qualified; LifeCycle.TargetCloseDate: 2027-06-30 → \
             2027-03-31",
        ]
    );
    assert!(ledger.iter().all(|r| r["status"] == "succeeded"));
    // the members the patch does not name are what they were
    assert_eq!(
        get(&emu, &opp_id(4)),
        json!({"Stage": "Qualified", "NextSteps": "Call back", "TargetCloseDate": "2027-03-31",
               "Title": "Project 4", "Company": "Customer 4"})
    );
    // the JSONL ledger keeps before and after
    let jsonl = std::fs::read_to_string(t.path().join("r/ledger.jsonl")).unwrap();
    let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["changes"]["stage"]["changes"][1],
        json!({"path": "LifeCycle.Stage", "before": "Prospect", "after": "Qualified"})
    );

    // run again: everything is up to date, nothing is written
    let again = Cosell::in_dir(t.path())
        .arg("run")
        .arg(repo().join(PLAYBOOK))
        .args(["--input", "pipeline.csv", "--run-dir", "r2"])
        .args(["--rate", "write=50/s", "--rate", "read=500/s"])
        .calling_as(emu.url(), OWNER)
        .run();
    again
        .code(0)
        .stdout_has("patched   0 updated, 5 unchanged (nothing sent)");
    assert_eq!(calls(&emu, "UpdateOpportunity"), 3);
}

#[test]
fn a_record_under_review_fails_locked_and_nothing_is_sent() {
    let t = tempfile::tempdir().unwrap();
    // one locked record in 21: within the example's max_failures of 5%
    let mut opps = vec![opportunity(0, "Qualified", "x", "2027-06-30", "Submitted")];
    opps.extend(
        (1..21).map(|i| opportunity(i, "Prospect", "x", "2027-06-30", "Pending Submission")),
    );
    let emu = emu_with(t.path(), "x50", opps);
    let rows: Vec<_> = (0..21)
        .map(|i| (opp_id(i), "Committed", "Signed", "2027-03-31"))
        .collect();
    std::fs::write(t.path().join("pipeline.csv"), pipeline(&rows)).unwrap();
    let o = run_in(
        t.path(),
        &emu,
        &["--rate", "write=50/s", "--rate", "read=500/s"],
    );
    o.code(1); // a row failed: its error is in the ledger
    let ledger = read_ledger(&t.path().join("r/ledger.csv"));
    assert_eq!(ledger[0]["status"], "failed");
    assert_eq!(ledger[0]["error_code"], "RECORD_LOCKED");
    assert!(
        ledger[0]["error_message"].contains("Submitted"),
        "{}",
        ledger[0]["error_message"]
    );
    assert!(ledger[1..].iter().all(|r| r["status"] == "succeeded"));
    assert_eq!(
        calls(&emu, "UpdateOpportunity"),
        20,
        "the locked record is not written"
    );
    assert_eq!(get(&emu, &opp_id(0))["Stage"], "Qualified");
}

#[test]
fn a_concurrent_writers_changes_survive_the_campaign() {
    let t = tempfile::tempdir().unwrap();
    let n = 20;
    let emu = prospects(t.path(), n, "Technical Validation", "", "2027-02-28");
    // the campaign: 20 updates at 10/s, while another client retitles one opportunity in five,
    // three times each, reading before every write and retrying its own conflicts
    let child = Cosell::in_dir(t.path())
        .arg("run")
        .arg(repo().join(PLAYBOOK))
        .args(["--input", "pipeline.csv", "--run-dir", "r"])
        .args(["--rate", "write=10/s", "--rate", "read=500/s"])
        .calling_as(emu.url(), OWNER)
        .spawn_piped();
    let other = sdk_client(emu.url(), OWNER);
    let retitled: Vec<usize> = (0..n).filter(|i| i % 5 == 2).collect();
    let mut other_refused = 0;
    emu.block_on(async {
        for round in 0..3 {
            for &i in &retitled {
                loop {
                    let got = other
                        .get_opportunity()
                        .catalog("Sandbox")
                        .identifier(opp_id(i))
                        .send()
                        .await
                        .unwrap();
                    let l = got.life_cycle().unwrap();
                    let p = got.project().unwrap();
                    let sent = other
                        .update_opportunity()
                        .catalog("Sandbox")
                        .identifier(got.id())
                        .last_modified_date(*got.last_modified_date())
                        .set_customer(got.customer().cloned())
                        .set_opportunity_type(got.opportunity_type().cloned())
                        .project(
                            Project::builder()
                                .title(format!("Renamed {i} #{round}"))
                                .set_customer_business_problem(
                                    p.customer_business_problem().map(str::to_string),
                                )
                                .build(),
                        )
                        .life_cycle(
                            LifeCycle::builder()
                                .set_stage(l.stage().cloned())
                                .set_next_steps(l.next_steps().map(str::to_string))
                                .set_target_close_date(l.target_close_date().map(str::to_string))
                                .set_review_status(l.review_status().cloned())
                                .build(),
                        )
                        .send()
                        .await;
                    match sent {
                        Ok(_) => break,
                        Err(e) if format!("{e:?}").contains("ConflictException") => {
                            other_refused += 1;
                        }
                        Err(e) => panic!("the other writer's update: {e:?}"),
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..n {
        let now = get(&emu, &opp_id(i));
        assert_eq!(
            now["Stage"], "Technical Validation",
            "{i}: the patch is there"
        );
        assert_eq!(now["TargetCloseDate"], "2027-02-28", "{i}");
        assert_eq!(now["NextSteps"], "Call back", "{i}: the empty cell left it");
        let title = if retitled.contains(&i) {
            format!("Renamed {i} #2")
        } else {
            format!("Project {i}")
        };
        assert_eq!(
            now["Title"], title,
            "{i}: the other writer's change is there"
        );
    }
    // every update either landed or was refused as stale: ours, the other writer's
    assert_eq!(
        calls(&emu, "UpdateOpportunity") as usize,
        n + conflicts(&stdout) + 3 * retitled.len() + other_refused,
        "{stdout}"
    );
}

/// The conflicts the run summary reports (each a refused update).
fn conflicts(stdout: &str) -> usize {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("patched   "))
        .and_then(|l| l.split(", ").nth(2))
        .and_then(|c| c.split(' ').next())
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn killed_between_read_and_write_resumes_with_each_record_written_once() {
    let t = tempfile::tempdir().unwrap();
    let n = 30;
    let emu = prospects(t.path(), n, "Qualified", "Workshop", "2027-03-31");
    let first = || {
        Cosell::in_dir(t.path())
            .arg("run")
            .arg(repo().join(PLAYBOOK))
            .args(["--input", "pipeline.csv", "--run-dir", "r"])
            .args(["--rate", "write=15/s", "--rate", "read=500/s"])
            .calling_as(emu.url(), OWNER)
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let live = kill_and_resume(&emu, t.path(), "r", OWNER, first, 4, &mut rng);
    assert!(live > 0, "no kill hit a live run");
    // a write that landed before its kill is met by the resumed read: nothing sent twice
    assert_eq!(
        calls(&emu, "UpdateOpportunity") as usize,
        n,
        "{:#}",
        emu.stats()
    );
    let ledger = read_ledger(&t.path().join("r/ledger.csv"));
    assert_eq!(ledger.len(), n);
    assert!(
        ledger.iter().all(|r| r["status"] == "succeeded"),
        "{ledger:#?}"
    );
    for i in 0..n {
        assert_eq!(get(&emu, &opp_id(i))["Stage"], "Qualified");
    }
}

#[test]
fn a_landed_write_whose_journal_entry_was_lost_resumes_unchanged() {
    // the kill came after the update landed and before the journal said so: the journal
    // ends with the step started
    let t = tempfile::tempdir().unwrap();
    let emu = emu_with(t.path(), "x50", vec![prospect(0)]);
    std::fs::write(
        t.path().join("pipeline.csv"),
        pipeline(&[(opp_id(0), "Committed", "Signed", "2027-01-31")]),
    )
    .unwrap();
    run_in(t.path(), &emu, &[]).code(0);
    assert_eq!(calls(&emu, "UpdateOpportunity"), 1);
    let jpath = t.path().join("r/journal.jsonl");
    let journal = std::fs::read_to_string(&jpath).unwrap();
    let kept: Vec<&str> = journal
        .lines()
        .take_while(|l| !l.contains("\"t\":\"patched\"") && !l.contains("\"t\":\"step_succeeded\""))
        .collect();
    assert!(
        kept.iter().any(|l| l.contains("step_started")) && kept.len() < journal.lines().count(),
        "{journal}"
    );
    std::fs::write(&jpath, kept.join("\n") + "\n").unwrap();
    let o = Cosell::in_dir(t.path())
        .args(["resume", "r"])
        .calling_as(emu.url(), OWNER)
        .run();
    o.code(0).stdout_has("patched   0 updated, 1 unchanged");
    assert_eq!(
        calls(&emu, "UpdateOpportunity"),
        1,
        "the resumed step wrote nothing"
    );
    let ledger = read_ledger(&t.path().join("r/ledger.csv"));
    assert_eq!(ledger[0]["status"], "succeeded");
    assert_eq!(ledger[0]["changes"], "unchanged");
}

#[test]
fn plan_live_shows_each_rows_changes_and_only_reads() {
    let t = tempfile::tempdir().unwrap();
    let emu = emu_with(
        t.path(),
        "x50",
        vec![
            prospect(0),
            opportunity(
                1,
                "Qualified",
                "Workshop",
                "2027-03-31",
                "Pending Submission",
            ),
            opportunity(2, "Prospect", "Call back", "2027-06-30", "Submitted"),
        ],
    );
    let rows = [
        (opp_id(0), "Qualified", "Workshop", "2027-03-31"),
        (opp_id(1), "Qualified", "Workshop", "2027-03-31"),
        (opp_id(2), "Qualified", "Workshop", "2027-03-31"),
        (opp_id(3), "Qualified", "Workshop", "2027-03-31"), // no such opportunity
    ];
    std::fs::write(t.path().join("pipeline.csv"), pipeline(&rows)).unwrap();
    let live = |format: &str| {
        Cosell::in_dir(t.path())
            .args(["plan", "--live", "--format", format])
            .arg(repo().join(PLAYBOOK))
            .args(["--input", "pipeline.csv"])
            .calling_as(emu.url(), OWNER)
            .run()
    };
    let o = live("text");
    o.code(1) // two rows would fail
        .stdout_has("    LifeCycle.Stage: Prospect → Qualified\n")
        .stdout_has("already up to date: nothing would be sent")
        .stdout_has("RECORD_LOCKED")
        .stdout_has("1 changed, 1 unchanged, 1 locked, 1 not found, 0 invalid")
        .stdout_has("4 reads sent, nothing written; `cosell run` would send 1 update");
    let j = live("json");
    j.code(1);
    let v: Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(
        v["counts"],
        json!({"changed": 1, "unchanged": 1, "locked": 1, "not_found": 1, "invalid": 0,
               "error": 0})
    );
    assert_eq!(v["previews"][0]["changes"][1]["before"], "Prospect");
    assert_eq!(v["previews"][3]["outcome"], "not_found");
    assert_eq!(v["writes"], 0);
    // the emulator saw reads only
    let stats = emu.stats();
    let sent: Vec<&String> = stats["calls"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, n)| n.as_u64() != Some(0))
        .map(|(op, _)| op)
        .collect();
    assert!(
        sent.iter()
            .all(|op| op.starts_with("Get") || *op == "GetCallerIdentity"),
        "{stats:#}"
    );
    assert_eq!(calls(&emu, "GetOpportunity"), 8);
    assert!(
        !t.path().join("runs").exists(),
        "a preview leaves no run directory"
    );
}

#[test]
fn plan_live_rehearses_the_example_offline() {
    let o = Cosell::new()
        .args(["plan", "--live", "--emulate"])
        .arg(repo().join(PLAYBOOK))
        .run();
    o.code(0)
        .stdout_has("5 changed, 0 unchanged, 0 locked, 0 not found")
        .stdout_has("LifeCycle.Stage: Prospect → Committed");
    // where to read from only means something with --live
    Cosell::new()
        .args(["plan", "--emulate"])
        .arg(repo().join(PLAYBOOK))
        .run()
        .code(2)
        .stderr_has("add --live");
}

#[test]
fn validate_checks_patches_offline_with_their_place() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("pipeline.csv"),
        "opportunity_id,stage,next_steps,target_close_date\nO1,Commited,x,31/03/2027\n",
    )
    .unwrap();
    std::fs::write(
        t.path().join("p.yaml"),
        r#"version: 1
name: bad-patches
catalog: Sandbox
input: { csv: pipeline.csv, key: "{{ row.opportunity_id }}" }
steps:
  - id: stage
    action: UpdateOpportunity
    input:
      Identifier: "{{ row.opportunity_id }}"
      LastModifiedDate: "2026-01-01T00:00:00Z"
      Project: { Title: x }
    patch:
      Identifier: O2
      LifeCycle:
        Stage: "{{ row.stage }}"
        TargetCloseDate: "{{ row.target_close_date }}"
        NextStep: "{{ row.next_steps }}"
      Customer: null
  - id: ctx
    action: UpdateEngagementContext
    input: { EngagementIdentifier: eng-abcdefghijklmn }
    patch: { Payload: { Lead: { QualificationStatus: x } } }
"#,
    )
    .unwrap();
    let o = Cosell::in_dir(t.path()).args(["validate", "p.yaml"]).run();
    o.code(2);
    insta::assert_snapshot!("patch_diagnostics", o.stderr);

    // a well-formed patch step over a spreadsheet's bad values: each caught with its row
    // and column
    std::fs::write(
        t.path().join("r.yaml"),
        r#"version: 1
name: bad-values
catalog: Sandbox
input: { csv: pipeline.csv, key: "{{ row.opportunity_id }}" }
steps:
  - id: stage
    action: UpdateOpportunity
    input: { Identifier: "{{ row.opportunity_id }}" }
    patch:
      LifeCycle:
        Stage: "{{ row.stage }}"
        TargetCloseDate: "{{ row.target_close_date }}"
        NextStep: "{{ row.next_steps }}"
      Customer: null
      OpportunityType: null
"#,
    )
    .unwrap();
    let o = Cosell::in_dir(t.path()).args(["validate", "r.yaml"]).run();
    o.code(2);
    insta::assert_snapshot!("patch_value_diagnostics", o.stderr);
    // the date's fix, pasted as it is written, validates
    let fix = o
        .stderr
        .lines()
        .find(|l| l.contains("LifeCycle.TargetCloseDate"))
        .and_then(|l| l.split("write \"").nth(1))
        .and_then(|l| l.split("\" in the playbook").next())
        .unwrap()
        .to_string();
    std::fs::write(
        t.path().join("fixed.csv"),
        "opportunity_id,stage,next_steps,target_close_date\nO1,Committed,x,31/03/2027\n",
    )
    .unwrap();
    std::fs::write(
        t.path().join("s.yaml"),
        format!(
            "version: 1\nname: fixed\ncatalog: Sandbox\ninput: {{ csv: fixed.csv, key: \"{{{{ row.opportunity_id }}}}\" }}\nsteps:\n  - id: stage\n    action: UpdateOpportunity\n    input: {{ Identifier: \"{{{{ row.opportunity_id }}}}\" }}\n    patch: {{ LifeCycle: {{ TargetCloseDate: \"{fix}\" }} }}\n"
        ),
    )
    .unwrap();
    Cosell::in_dir(t.path())
        .args(["validate", "s.yaml"])
        .run()
        .code(0)
        .stdout_has("valid; 1 row");

    // patch on an update that does not replace a whole record
    std::fs::write(
        t.path().join("q.yaml"),
        r#"version: 1
name: not-an-update
catalog: Sandbox
input: { csv: pipeline.csv, key: "{{ row.opportunity_id }}" }
steps:
  - id: invite
    action: CreateEngagementInvitation
    input: { EngagementIdentifier: eng-abcdefghijklmn }
    patch: { Invitation: {} }
"#,
    )
    .unwrap();
    let o = Cosell::in_dir(t.path()).args(["validate", "q.yaml"]).run();
    o.code(2);
    insta::assert_snapshot!("patch_not_allowed", o.stderr);
}

#[test]
fn an_engagement_context_is_patched_and_a_second_patch_of_the_same_finds_it_unchanged() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("rows.csv"), "key,title\nacme,Data lake v2\n").unwrap();
    std::fs::write(
        t.path().join("ctx.yaml"),
        r#"version: 1
name: retitle-contexts
catalog: Sandbox
input: { csv: rows.csv, key: "{{ row.key }}" }
steps:
  - id: eng
    action: CreateEngagement
    input: { Title: "Engagement {{ row.key }}", Description: "Co-sell engagement for {{ row.key }}" }
  - id: ctx
    action: CreateEngagementContext
    input:
      EngagementIdentifier: "{{ steps.eng.Id }}"
      Type: CustomerProject
      Payload:
        CustomerProject:
          Customer: { CompanyName: Acme, Industry: Other, WebsiteUrl: "https://acme.example.com", CountryCode: DE }
          Project: { Title: Data lake, BusinessProblem: They need a much better data platform for analytics, TargetCompletionDate: "2027-03-31" }
  - id: retitle
    action: UpdateEngagementContext
    input: { EngagementIdentifier: "{{ steps.eng.Id }}", ContextIdentifier: "{{ steps.ctx.ContextId }}" }
    patch: { Payload: { CustomerProject: { Project: { Title: "{{ row.title }}" } } } }
  - id: again
    action: UpdateEngagementContext
    input: { EngagementIdentifier: "{{ steps.eng.Id }}", ContextIdentifier: "{{ steps.ctx.ContextId }}" }
    patch: { Payload: { CustomerProject: { Project: { Title: "{{ row.title }}" } } } }
"#,
    )
    .unwrap();
    let o = Cosell::in_dir(t.path())
        .args(["run", "ctx.yaml", "--emulate", "--run-dir", "r"])
        .run();
    o.code(0)
        .stdout_has("patched   1 updated, 1 unchanged (nothing sent)")
        .stdout_has("UpdateEngagementContext                            1");
    let ledger = read_ledger(&t.path().join("r/ledger.csv"));
    assert_eq!(
        ledger[0]["changes"],
        "retitle: Payload.CustomerProject.Project.Title: Data lake → Data lake v2; again: unchanged"
    );
    // the context's other members are what CreateEngagementContext made
    let jsonl = std::fs::read_to_string(t.path().join("r/ledger.jsonl")).unwrap();
    let row: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(
        row["changes"]["retitle"]["changes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        row["outputs"]["again"]["EngagementId"].is_string(),
        "{row:#}"
    );
}
