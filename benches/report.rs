//! Report benchmark (a bench binary, not a timed test): `cargo bench --bench report`.
//!
//! Builds a run directory for the invite playbook over 100,000 rows, synthetically: setup
//! done, every row invited and checked (1% failed with an error code), one `Call` record per
//! request (1% throttled and retried), over a day and a half at the documented write rate with
//! one daily-quota wait, and its `ledger.jsonl`. Then times the real `cosell report` (release
//! binary) from process start to exit. Target (issue 12): within 2 s.

mod common;

use cosell::journal::{JournalWriter, Record, RowRef, RowStatus, JOURNAL_FORMAT};
use cosell::rundir::RunDir;
use serde_json::json;
use std::io::Write;
use std::process::Command;
use std::time::Instant;

const ROWS: u64 = 100_000;

fn at(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    // the input: 100,000 partners with distinct account ids
    let input = common::partners_csv(tmp.path(), ROWS);

    let dir = tmp.path().join("run");
    let manifest = common::invite_manifest("bench-report", &input, ROWS);
    let t0: i64 = 1_795_000_000_000;
    {
        let rd = RunDir::create(&dir, &manifest).unwrap();
        let mut j = JournalWriter::open(&rd.journal_path()).unwrap();
        j.append(&Record::Header {
            format: JOURNAL_FORMAT,
            run_id: "bench-report".into(),
        })
        .unwrap();
        let eng = "eng-0000benchmark0";
        j.append(&Record::Call {
            op: "CreateEngagement".into(),
            at: at(t0),
            ms: 80,
            attempt: 1,
            code: None,
        })
        .unwrap();
        j.append(&Record::StepSucceeded {
            row: RowRef::Setup,
            step: "engagement".into(),
            output: json!({"Id": eng, "Arn": format!("arn:aws:partnercentral:us-east-1:111111111111:catalog/Sandbox/engagement/{eng}")}),
            at: at(t0),
        })
        .unwrap();
        j.append(&Record::RowFinished {
            row: RowRef::Setup,
            status: RowStatus::Succeeded,
            at: at(t0),
        })
        .unwrap();
        // one write a second; halfway, a six-hour wait for the rolling window
        let mut now = t0 + 1000;
        for i in 0..ROWS {
            if i == 50_000 {
                j.append(&Record::QuotaWait {
                    class: "write".into(),
                    at: at(now),
                    until: at(now + 6 * 3_600_000),
                })
                .unwrap();
                now += 6 * 3_600_000;
            }
            let row = RowRef::Row(i);
            let id = format!("engi-{i:013}");
            let a = at(now);
            j.append(&Record::StepStarted {
                row,
                step: "invite".into(),
                token: Some(format!("cosell-{i:040}")),
                digest: format!("{i:064x}"),
                at: a.clone(),
            })
            .unwrap();
            if i % 100 == 7 {
                j.append(&Record::Call {
                    op: "CreateEngagementInvitation".into(),
                    at: a.clone(),
                    ms: 40,
                    attempt: 1,
                    code: Some("ThrottlingException".into()),
                })
                .unwrap();
            }
            j.append(&Record::Call {
                op: "CreateEngagementInvitation".into(),
                at: a.clone(),
                ms: 60 + (i % 97),
                attempt: if i % 100 == 7 { 2 } else { 1 },
                code: None,
            })
            .unwrap();
            j.append(&Record::StepSucceeded {
                row,
                step: "invite".into(),
                output: json!({"Id": id, "Arn": format!("arn:aws:partnercentral::111111111111:Sandbox/engagement-invitation/{id}")}),
                at: a.clone(),
            })
            .unwrap();
            j.append(&Record::StepStarted {
                row,
                step: "check".into(),
                token: None,
                digest: format!("{i:064x}"),
                at: a.clone(),
            })
            .unwrap();
            j.append(&Record::Call {
                op: "GetEngagementInvitation".into(),
                at: at(now + 100),
                ms: 20 + (i % 31),
                attempt: 1,
                code: None,
            })
            .unwrap();
            let failed = i % 100 == 42;
            if failed {
                j.append(&Record::StepFailed {
                    row,
                    step: "check".into(),
                    code: "ExpectationFailed".into(),
                    message: "Status is \"EXPIRED\", expected \"PENDING\"".into(),
                    at: a.clone(),
                })
                .unwrap();
            } else {
                j.append(&Record::StepSucceeded {
                    row,
                    step: "check".into(),
                    output: json!({"Id": id, "Catalog": "Sandbox", "Status": "PENDING", "EngagementId": eng}),
                    at: a.clone(),
                })
                .unwrap();
            }
            j.append(&Record::RowFinished {
                row,
                status: if failed {
                    RowStatus::Failed
                } else {
                    RowStatus::Succeeded
                },
                at: a,
            })
            .unwrap();
            now += 1000;
        }
        j.commit().unwrap();
    }
    // the ledger the run would have left (line, key, status, error)
    {
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(dir.join("ledger.jsonl")).unwrap());
        for i in 0..ROWS {
            let failed = i % 100 == 42;
            let o = json!({"format_version": 2, "line": i + 2, "key": format!("{}", 200_000_000_000 + i),
                "status": if failed { "failed" } else { "succeeded" },
                "outputs": {"invite": {"Id": format!("engi-{i:013}")}}});
            serde_json::to_writer(&mut f, &o).unwrap();
            f.write_all(b"\n").unwrap();
        }
    }
    let journal_bytes = std::fs::metadata(dir.join("journal.jsonl")).unwrap().len();

    let mut times = Vec::new();
    for attempt in 0..5 {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_cosell"))
            .arg("report")
            .arg(&dir)
            .output()
            .unwrap();
        let s = t.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "cosell report: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        times.push(s);
        println!("report attempt {attempt}: {s:.3} s");
    }
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("id=\"rows-succeeded\" data-value=\"99000\""));
    assert!(html.contains("id=\"rows-failed\" data-value=\"1000\""));
    times.sort_by(f64::total_cmp);
    println!(
        "report: {ROWS} rows, journal {:.1} MB ({} calls): report.html ({:.0} KB) written in {:.3} s \
         (median of 5; min {:.3} s, max {:.3} s)",
        journal_bytes as f64 / 1e6,
        ROWS * 2 + ROWS / 100 + 1,
        html.len() as f64 / 1e3,
        times[2],
        times[0],
        times[4]
    );
    assert!(times[2] <= 2.0, "over the 2 s target");
}
