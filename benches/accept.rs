//! Receiver-flow benchmark (a bench binary, not a timed test): `cargo bench --bench accept`.
//!
//! 200 pending invitations are accepted with the example `accept-invitations` playbook
//! (get, accept while PENDING, wait for the task) against the emulator with `--quotas x20`
//! and tasks that take 10 s, client rates at the same x20 quotas, polling every second.
//! The physical bound is the writes at the write rate plus one task's duration:
//! 200 ÷ 20/s + 10 s = 20 s. A client that keeps a row's slot while its task runs, or that
//! polls a task already COMPLETE, needs far longer. Reports elapsed time against that bound
//! and the ThrottlingExceptions served.

use aws_sdk_partnercentralselling::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_partnercentralselling::types::{
    AccountReceiver, Customer, Invitation, OpportunityInvitationPayload, Payload, Project,
    Receiver, ReceiverResponsibility,
};
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

fn client(url: &str, account: &str) -> aws_sdk_partnercentralselling::Client {
    let conf = aws_sdk_partnercentralselling::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new(account, "bench", None, None, "bench"))
        .build();
    aws_sdk_partnercentralselling::Client::from_conf(conf)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = cosell::emulator::EmulatorConfig {
        task_delay: TASK,
        quotas: cosell::emulator::Quotas::parse("x20").unwrap(),
        ..cosell::emulator::EmulatorConfig::default()
    };
    let h = rt
        .block_on(cosell::emulator::start(cfg, "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let url = h.url();

    // the sender's 200 invitations (paced under the emulator's x20 write quota)
    let ids: Vec<String> = rt.block_on(async {
        let c = client(&url, SENDER);
        let eng = c
            .create_engagement()
            .catalog("Sandbox")
            .client_token("bench-engagement")
            .title("Bench")
            .description("Receiver-flow benchmark")
            .send()
            .await
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..ROWS {
            tokio::time::sleep(Duration::from_millis(55)).await;
            let inv = Invitation::builder()
                .message("Join us")
                .receiver(Receiver::Account(
                    AccountReceiver::builder()
                        .aws_account_id(RECEIVER)
                        .build()
                        .unwrap(),
                ))
                .payload(Payload::OpportunityInvitation(
                    OpportunityInvitationPayload::builder()
                        .receiver_responsibilities(ReceiverResponsibility::CoSellFacilitator)
                        .customer(
                            Customer::builder()
                                .company_name(format!("Customer {i}"))
                                .country_code("US".into())
                                .industry("Retail".into())
                                .website_url("https://example.com")
                                .build()
                                .unwrap(),
                        )
                        .project(
                            Project::builder()
                                .title("Data platform")
                                .business_problem("Needs a modern analytics platform on AWS")
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                ))
                .build()
                .unwrap();
            let out = c
                .create_engagement_invitation()
                .catalog("Sandbox")
                .client_token(format!("bench-invite-{i}"))
                .engagement_identifier(eng.id().unwrap())
                .invitation(inv)
                .send()
                .await
                .unwrap();
            ids.push(out.id().unwrap().to_string());
        }
        ids
    });
    // the seeding used the write budget of this second: let the emulator's bucket refill
    std::thread::sleep(Duration::from_secs(2));
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
