//! Run benchmark (a bench binary, not a timed test): `cargo bench --bench run`.
//!
//! 1. Quota-bound campaign: a 400-row invite-and-check campaign against the emulator with
//!    `--quotas x20`, client rates set to the same x20 quotas. Reports elapsed time against
//!    the quota lower bound (400 writes at 20/s: 399 intervals, 19.95 s) and the
//!    ThrottlingExceptions served.
//! 2. Engine overhead: the same campaign shape with 2,000 rows, `--quotas none` and client
//!    limits lifted; reports the `cosell` process's CPU time (user + system) per API call.
//!
//! 3. Opportunity campaign: `playbooks/create-and-submit-opportunities.yaml` on 400 CRM rows
//!    (CreateOpportunity, AssociateOpportunity, StartEngagementFromOpportunityTask: 3 writes a
//!    row, 1,200 writes) at `--quotas x20` with client rates at the same x20 quotas. Reports
//!    elapsed time against the write bound (1,199 intervals at 20/s: 59.95 s) and the
//!    ThrottlingExceptions served.
//!
//! 4. Pipeline update: `playbooks/update-opportunity-stage.yaml` (a `patch` step) on 400
//!    opportunities, 40 of them already at the target values, at `--quotas x20` with client
//!    rates at the same x20 quotas. It must send exactly 360 UpdateOpportunity (the 40 cost a
//!    read and no write); reports elapsed time against the write bound (359 intervals at
//!    20/s: 17.95 s) and the ThrottlingExceptions served.
//!
//! All run the real release binary as a child process, so the CPU figure is the engine's
//! alone (the emulator runs in this process).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn partners(n: usize, dir: &Path) -> PathBuf {
    let mut r = csv::Reader::from_path(repo().join("examples/partners.csv")).unwrap();
    let headers = r.headers().unwrap().clone();
    let template = r.records().next().unwrap().unwrap();
    let acc = headers.iter().position(|h| h.contains("account")).unwrap();
    let path = dir.join(format!("partners-{n}.csv"));
    let mut w = csv::Writer::from_path(&path).unwrap();
    w.write_record(&headers).unwrap();
    for i in 0..n {
        let rec: Vec<String> = template
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == acc {
                    format!("{}", 200_000_000_000u64 + i as u64)
                } else {
                    v.to_string()
                }
            })
            .collect();
        w.write_record(&rec).unwrap();
    }
    w.flush().unwrap();
    path
}

fn children_cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn emulator(quotas: &str) -> (tokio::runtime::Runtime, cosell::emulator::EmulatorHandle) {
    let args = cosell::emulator::EmulatorArgs {
        bind: "127.0.0.1:0".parse().unwrap(),
        default_account: "111122223333".into(),
        invitation_ttl: "15d".into(),
        task_delay: "1s".into(),
        quotas: quotas.into(),
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let h = rt
        .block_on(cosell::emulator::start(cfg, args.bind))
        .unwrap();
    (rt, h)
}

fn crm(n: usize, dir: &Path) -> PathBuf {
    let mut r = csv::Reader::from_path(repo().join("examples/crm-opportunities.csv")).unwrap();
    let headers = r.headers().unwrap().clone();
    let template = r.records().next().unwrap().unwrap();
    let path = dir.join(format!("crm-{n}.csv"));
    let mut w = csv::Writer::from_path(&path).unwrap();
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
    w.flush().unwrap();
    path
}

fn run(url: &str, csv: &Path, dir: &Path, rates: &[&str]) -> (f64, f64, i32) {
    run_playbook("playbooks/invite-partners.yaml", url, csv, dir, rates)
}

fn run_playbook(
    playbook: &str,
    url: &str,
    csv: &Path,
    dir: &Path,
    rates: &[&str],
) -> (f64, f64, i32) {
    let cpu0 = children_cpu();
    let t0 = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosell"));
    cmd.arg("run")
        .arg(repo().join(playbook))
        .arg("--input")
        .arg(csv)
        .arg("--run-dir")
        .arg(dir)
        .args(["--endpoint-url", url, "--concurrency", "16"])
        .env("AWS_ACCESS_KEY_ID", "111111111111")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null());
    for r in rates {
        cmd.args(["--rate", r]);
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "cosell run failed: {status}");
    (
        t0.elapsed().as_secs_f64(),
        children_cpu() - cpu0,
        status.code().unwrap_or(-1),
    )
}

fn total_calls(stats: &serde_json::Value) -> u64 {
    stats["calls"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path();
    // `cargo bench --bench run -- NAME` runs the sections whose name contains NAME
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    if wanted("quota-bound") {
        quota_bound(tmp);
    }
    if wanted("engine-cpu") {
        engine_cpu(tmp);
    }
    if wanted("opportunity-campaign") {
        opportunity_campaign(tmp);
    }
    if wanted("pipeline-update") {
        pipeline_update(tmp);
    }
}

fn quota_bound(tmp: &Path) {
    // 1. quota bound
    let rows = 400;
    let csv = partners(rows, tmp);
    let (_rt, h) = emulator("x20");
    let (elapsed, _, code) = run(
        &h.url(),
        &csv,
        &tmp.join("bound"),
        &["write=20/s", "read=200/s", "engagement-write=300/s"],
    );
    let stats = h.stats();
    // 400 writes evenly spaced at 20/s: 399 intervals from the first to the last
    let bound = (rows - 1) as f64 / 20.0;
    println!(
        "quota-bound: {rows} rows invite+check, quotas x20: {elapsed:.2} s vs lower bound {bound:.2} s \
         = {:.3}x; throttled {}; exit {code}",
        elapsed / bound,
        stats["throttled"]
    );
}

fn engine_cpu(tmp: &Path) {
    // 2. engine CPU per call
    let rows = 2000;
    let csv = partners(rows, tmp);
    let (_rt2, h2) = emulator("none");
    let (elapsed, cpu, code) = run(
        &h2.url(),
        &csv,
        &tmp.join("cpu"),
        &[
            "write=1000000/s",
            "read=1000000/s",
            "engagement-write=1000000/s",
        ],
    );
    let calls = total_calls(&h2.stats());
    println!(
        "engine-cpu: {rows} rows, {calls} calls in {elapsed:.2} s ({:.0} calls/s): \
         {:.1} µs CPU per call (user+sys of the cosell process, incl. startup and validation); exit {code}",
        calls as f64 / elapsed,
        cpu / calls as f64 * 1e6
    );
}

fn opportunity_campaign(tmp: &Path) {
    // 3. the opportunity campaign: 3 writes a row
    let rows = 400;
    let csv = crm(rows, tmp);
    let (_rt3, h3) = emulator("x20");
    let (elapsed, _, code) = run_playbook(
        "playbooks/create-and-submit-opportunities.yaml",
        &h3.url(),
        &csv,
        &tmp.join("opportunities"),
        &["write=20/s", "read=200/s"],
    );
    let stats = h3.stats();
    assert_eq!(stats["resources"]["associations"], rows as u64, "{stats:#}");
    assert_eq!(stats["submissions_per_opportunity_max"], 1, "{stats:#}");
    let writes = 3 * rows;
    let bound = (writes - 1) as f64 / 20.0;
    println!(
        "opportunity-campaign: {rows} rows create+associate+start engagement ({writes} writes), \
         quotas x20: {elapsed:.2} s vs write bound {bound:.2} s = {:.3}x; throttled {}; exit {code}",
        elapsed / bound,
        stats["throttled"]
    );
}

fn pipeline_update(tmp: &Path) {
    // 4. patch 400 opportunities, 40 already up to date
    let (rows, current) = (400usize, 40usize);
    let (rt, h) = emulator("x20");
    let target = |i: usize| {
        (
            [
                "Qualified",
                "Technical Validation",
                "Business Validation",
                "Committed",
            ][i % 4],
            format!("Next steps for {i}"),
            format!("2027-0{}-15", 1 + i % 9),
        )
    };
    let mut opps = Vec::new();
    let csv = tmp.join("pipeline-400.csv");
    let mut w = csv::Writer::from_path(&csv).unwrap();
    w.write_record(["opportunity_id", "stage", "next_steps", "target_close_date"])
        .unwrap();
    for i in 0..rows {
        let id = format!("O{}", 8_000_000 + i);
        let (stage, next, close) = target(i);
        // every tenth opportunity already holds the export's values
        let life = if i % (rows / current) == 0 {
            serde_json::json!({"Stage": stage, "NextSteps": next, "TargetCloseDate": close})
        } else {
            serde_json::json!({"Stage": "Prospect", "NextSteps": "call", "TargetCloseDate": "2027-12-31"})
        };
        opps.push(serde_json::json!({"Id": id, "LifeCycle": life}));
        w.write_record([id.as_str(), stage, next.as_str(), close.as_str()])
            .unwrap();
    }
    w.flush().unwrap();
    let fixture: cosell::emulator::Fixture = serde_json::from_value(serde_json::json!({
        "account": "111111111111",
        "opportunities": opps,
    }))
    .unwrap();
    h.load_fixture(&fixture).unwrap();
    let (elapsed, _, code) = run_playbook(
        "playbooks/update-opportunity-stage.yaml",
        &h.url(),
        &csv,
        &tmp.join("pipeline"),
        &["write=20/s", "read=200/s"],
    );
    let stats = h.stats();
    let updates = stats["calls"]["UpdateOpportunity"].as_u64().unwrap();
    assert_eq!(updates, (rows - current) as u64, "{stats:#}");
    assert_eq!(stats["calls"]["GetOpportunity"], rows as u64, "{stats:#}");
    let bound = (updates - 1) as f64 / 20.0;
    println!(
        "pipeline-update: {rows} opportunities patched, {current} already current: {updates} \
         updates, quotas x20: {elapsed:.2} s vs write bound {bound:.2} s = {:.3}x; throttled {}; \
         exit {code}",
        elapsed / bound,
        stats["throttled"]
    );
    drop(rt);
}
