//! Resume benchmark (a bench binary, not a timed test): `cargo bench --bench resume`.
//!
//! Builds a run directory for the invite playbook over 100,000 rows whose journal says 99%
//! of them are done (setup done, 99,000 rows invited and checked), then starts the real
//! `cosell resume` against an in-process emulator and measures the time from process start
//! to the first request the emulator receives. Target (issue 5): within 1 s.

mod common;

use cosell::journal::{JournalWriter, Record, RowRef, RowStatus, JOURNAL_FORMAT};
use cosell::rundir::RunDir;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROWS: u64 = 100_000;

fn total_calls(stats: &serde_json::Value) -> u64 {
    stats["calls"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0)
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let args = cosell::emulator::EmulatorArgs {
        bind: "127.0.0.1:0".parse().unwrap(),
        default_account: "111122223333".into(),
        invitation_ttl: "15d".into(),
        task_delay: "1s".into(),
        quotas: "none".into(),
        daily: vec![],
        quota_window: "24h".into(),
        faults: String::new(),
        seed: 0,
        state: None,
        persist_every_write: false,
        fixture: None,
        header_read_timeout: "10s".into(),
        idle_timeout: "60s".into(),
    };
    let cfg = cosell::emulator::EmulatorConfig::from_args(&args).unwrap();
    let emu = rt
        .block_on(cosell::emulator::start(cfg, args.bind))
        .unwrap();

    // the input: 100,000 partners with distinct account ids
    let input = common::partners_csv(tmp.path(), ROWS);

    // the run directory, 99% done
    let dir = tmp.path().join("run");
    let manifest = common::invite_manifest("bench-resume", &input, ROWS);
    {
        let rd = RunDir::create(&dir, &manifest).unwrap();
        let mut j = JournalWriter::open(&rd.journal_path()).unwrap();
        // the 99,000 done rows ran over the previous days: outside the rolling 24-hour
        // window (within it, 99,000 writes would exceed the daily quota and resume would
        // rightly stop at once with exit 3)
        let at = (chrono::Utc::now() - chrono::Duration::days(2))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        j.append(&Record::Header {
            format: JOURNAL_FORMAT,
            run_id: "bench-resume".into(),
        })
        .unwrap();
        let eng = "eng-0000benchmark0";
        j.append(&Record::StepSucceeded {
            row: RowRef::Setup,
            step: "engagement".into(),
            output: json!({"Id": eng, "Arn": format!("arn:aws:partnercentral:us-east-1:111111111111:catalog/Sandbox/engagement/{eng}")}),
            at: at.clone(),
        })
        .unwrap();
        j.append(&Record::RowFinished {
            row: RowRef::Setup,
            status: RowStatus::Succeeded,
            at: at.clone(),
        })
        .unwrap();
        for i in 0..ROWS * 99 / 100 {
            let row = RowRef::Row(i);
            let id = format!("engi-{i:013}");
            for (step, output) in [
                (
                    "invite",
                    json!({"Id": id, "Arn": format!("arn:aws:partnercentral::111111111111:Sandbox/engagement-invitation/{id}")}),
                ),
                (
                    "check",
                    json!({"Id": id, "Catalog": "Sandbox", "Status": "PENDING", "EngagementId": eng}),
                ),
            ] {
                j.append(&Record::StepStarted {
                    row,
                    step: step.into(),
                    token: Some(format!("cosell-{i:040}")),
                    digest: format!("{i:064x}"),
                    at: at.clone(),
                })
                .unwrap();
                j.append(&Record::StepSucceeded {
                    row,
                    step: step.into(),
                    output,
                    at: at.clone(),
                })
                .unwrap();
            }
            j.append(&Record::RowFinished {
                row,
                status: RowStatus::Succeeded,
                at: at.clone(),
            })
            .unwrap();
        }
        j.commit().unwrap();
    }
    let journal_bytes = std::fs::metadata(dir.join("journal.jsonl")).unwrap().len();

    let mut times = Vec::new();
    for attempt in 0..5 {
        // let the requests of the previous (killed) attempt drain before counting
        std::thread::sleep(Duration::from_millis(500));
        let before = total_calls(&emu.stats());
        let t0 = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cosell"))
            .arg("resume")
            .arg(&dir)
            .args(["--endpoint-url", &emu.url(), "--rate", "write=1000/s"])
            .env("AWS_ACCESS_KEY_ID", "111111111111")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let first = loop {
            if total_calls(&emu.stats()) > before {
                break t0.elapsed();
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("cosell resume exited ({status}) before sending a request");
            }
            if t0.elapsed() > Duration::from_secs(30) {
                panic!("no request within 30 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let _ = child.kill();
        let _ = child.wait();
        let s = first.as_secs_f64();
        times.push(s);
        println!("resume attempt {attempt}: first request after {s:.3} s");
    }
    times.sort_by(f64::total_cmp);
    println!(
        "resume: {ROWS} rows, 99% done, journal {:.1} MB: first request after {:.3} s \
         (median of 5; min {:.3} s, max {:.3} s)",
        journal_bytes as f64 / 1e6,
        times[2],
        times[0],
        times[4]
    );
}
