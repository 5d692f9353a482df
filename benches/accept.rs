//! Receiver-flow benchmark (a bench binary, not a timed test): `cargo bench --bench accept`.
//!
//! 200 pending invitations (an emulator fixture) are accepted with the example `accept-invitations` playbook
//! (get, accept while PENDING, wait for the task) against the emulator with `--quotas x20`
//! and tasks that take 10 s, client rates at the same x20 quotas, polling every second.
//! The physical bound is the writes at the write rate plus one task's duration:
//! 200 ÷ 20/s + 10 s = 20 s. A client that keeps a row's slot while its task runs, or that
//! polls a task already COMPLETE, needs far longer. Reports elapsed time against that bound
//! and the ThrottlingExceptions served.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const SENDER: &str = "111111111111";
const RECEIVER: &str = "222222222222";
const ROWS: usize = 200;
const TASK: Duration = Duration::from_secs(10);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // the 200 pending invitations, addressed to the receiver, as a rehearsal fixture
    let ids: Vec<String> = (0..ROWS).map(|i| format!("engi-{i:013}")).collect();
    let fixture = cosell::emulator::Fixture {
        account: Some(RECEIVER.into()),
        invitations: ids
            .iter()
            .map(|id| {
                let mut m = serde_json::Map::new();
                m.insert("Id".into(), id.clone().into());
                m.insert("SenderAwsAccountId".into(), SENDER.into());
                m
            })
            .collect(),
        ..Default::default()
    };
    let cfg = cosell::emulator::EmulatorConfig {
        task_delay: TASK,
        quotas: cosell::emulator::Quotas::parse("x20").unwrap(),
        fixture: Some(fixture),
        ..cosell::emulator::EmulatorConfig::default()
    };
    let h = rt
        .block_on(cosell::emulator::start(cfg, "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let url = h.url();
    let throttled_before = h.stats()["throttled"].as_u64().unwrap_or(0);

    let tmp = tempfile::tempdir().unwrap();
    let mut csv = String::from("invitation_id,partner,note\n");
    for id in &ids {
        csv.push_str(&format!("{id},Partner,\n"));
    }
    std::fs::write(tmp.path().join("invitations.csv"), csv).unwrap();
    let playbook = std::fs::read_to_string(repo().join("playbooks/accept-invitations.yaml"))
        .unwrap()
        .replace("interval: 5s", "interval: 1s");
    std::fs::write(tmp.path().join("accept.yaml"), playbook).unwrap();

    let t0 = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_cosell"))
        .current_dir(tmp.path())
        .args([
            "run",
            "accept.yaml",
            "--input",
            "invitations.csv",
            "--run-dir",
            "r",
        ])
        .args(["--endpoint-url", &url, "--concurrency", "16"])
        .args(["--rate", "write=20/s", "--rate", "read=200/s"])
        .env("AWS_ACCESS_KEY_ID", RECEIVER)
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    let elapsed = t0.elapsed().as_secs_f64();
    assert!(status.success(), "cosell run failed: {status}");
    let stats = h.stats();
    let bound = ROWS as f64 / 20.0 + TASK.as_secs_f64();
    println!(
        "accept-bound: {ROWS} invitations get+accept+wait, quotas x20, tasks {}s, concurrency 16: \
         {elapsed:.2} s vs bound {bound:.2} s (writes/rate + task delay) = {:.3}x; throttled {}; \
         polls {}",
        TASK.as_secs(),
        elapsed / bound,
        stats["throttled"].as_u64().unwrap_or(0) - throttled_before,
        stats["calls"]["ListEngagementByAcceptingInvitationTasks"]
    );
    rt.block_on(h.shutdown()).unwrap();
}
