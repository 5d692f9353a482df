//! The emulator features offline rehearsals need (issue 8): connection timeouts, immediate
//! task completion, injected task failures, a locked write-through state file, sender company
//! names, STS GetCallerIdentity and fixtures. Real SDK clients over real HTTP.

use crate::emulator::{accept_task_done, auth_for, config, emu, engagement, invite, raw, A, B};
use crate::support::sdk_client;
use aws_sdk_partnercentralselling::types::*;
use aws_sdk_partnercentralselling::Client;
use cosell::emulator::{EmulatorConfig, Faults, Fixture};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn submission() -> AwsSubmission {
    AwsSubmission::builder()
        .involvement_type(SalesInvolvementType::CoSell)
        .visibility(Visibility::Full)
        .build()
        .unwrap()
}

async fn accept(c: &Client, inv: &str, token: &str) -> aws_sdk_partnercentralselling::operation::start_engagement_by_accepting_invitation_task::StartEngagementByAcceptingInvitationTaskOutput{
    c.start_engagement_by_accepting_invitation_task()
        .catalog("Sandbox")
        .identifier(inv)
        .client_token(token)
        .send()
        .await
        .expect("start accepting task")
}

async fn invitation_status(c: &Client, inv: &str) -> InvitationStatus {
    c.get_engagement_invitation()
        .catalog("Sandbox")
        .identifier(inv)
        .send()
        .await
        .expect("get invitation")
        .status()
        .cloned()
        .unwrap()
}

/// Wait until the server closes `s` (EOF or reset); the time it took, or `None` after `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(t0.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t0.elapsed()),
            Ok(Ok(_)) => continue, // a response; keep waiting for the close
        }
    }
}

// ---- 1. timeouts ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_kept_alive_and_slow_header_connections_are_closed_within_their_bounds() {
    let e = emu(EmulatorConfig {
        header_read_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(1500),
        ..config()
    })
    .await;
    let addr = e.addr();
    let t0 = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // a kept-alive connection that made one request and then went quiet
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(format!("GET /_emulator/stats HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut first = [0u8; 64];
    let n = kept.read(&mut first).await.unwrap();
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&first[..n])
    );
    // slowloris: one header byte every 100 ms, never finishing the head
    let slow = TcpStream::connect(addr).await.unwrap();
    let (mut slow_r, mut slow_w) = slow.into_split();
    let writer = tokio::spawn(async move {
        let _ = slow_w.write_all(b"POST / HTTP/1.1\r\nX-Slow: ").await;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow_w.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    let slow_closed = {
        let t = Instant::now();
        let mut buf = [0u8; 256];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), slow_r.read(&mut buf)).await {
                Err(_) => panic!("the slow-header connection was never closed"),
                Ok(Ok(0)) | Ok(Err(_)) => break t.elapsed(),
                Ok(Ok(_)) => continue,
            }
        }
    };
    writer.abort();
    // the head bound (400 ms), not the idle bound (1.5 s): it kept sending bytes all along
    assert!(
        slow_closed >= Duration::from_millis(350) && slow_closed < Duration::from_millis(1200),
        "slow header connection closed after {slow_closed:?}"
    );
    // the idle ones are still open before their bound ...
    let mut peek = [0u8; 1];
    for s in &mut idle {
        let r = tokio::time::timeout(Duration::from_millis(20), s.read(&mut peek)).await;
        assert!(r.is_err(), "an idle connection was closed before its bound");
    }
    // ... and closed after it
    for s in idle.iter_mut().chain(std::iter::once(&mut kept)) {
        let left = Duration::from_millis(4000).saturating_sub(t0.elapsed());
        let got = closed_within(s, left).await;
        assert!(got.is_some(), "an idle connection was never closed");
    }
    let total = t0.elapsed();
    assert!(
        total >= Duration::from_millis(1400),
        "idle connections closed too early ({total:?})"
    );
    // the emulator still answers
    let a = sdk_client(&e.url(), A);
    let eng = engagement(&a, "after-timeouts").await;
    assert!(eng.starts_with("eng-"));
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_never_arrives_is_answered_408_and_closed() {
    let e = emu(EmulatorConfig {
        header_read_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let addr = e.addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: AWSPartnerCentralSelling.ListEngagements\r\nAuthorization: {}\r\n\
         Content-Length: 100\r\n\r\n{{\"Cat",
        auth_for(A)
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("RequestTimeoutException"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    e.shutdown().await.unwrap();
}

// ---- 2. --task-delay 0s --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_task_delay_answers_complete_in_the_start_response_with_the_listed_ids() {
    let e = emu(EmulatorConfig {
        task_delay: Duration::ZERO,
        ..config()
    })
    .await;
    let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
    let eng = engagement(&a, "e0").await;
    let inv = invite(&a, &eng, B, "i0").await;
    let started = accept(&b, &inv, "accept-0").await;
    assert_eq!(started.task_status(), Some(&TaskStatus::Complete));
    let opp = started.opportunity_id().expect("OpportunityId").to_string();
    let job = started
        .resource_snapshot_job_id()
        .expect("ResourceSnapshotJobId")
        .to_string();
    assert_eq!(started.engagement_invitation_id(), Some(inv.as_str()));
    assert!(started.reason_code().is_none());
    // the effects are there at once
    assert_eq!(
        invitation_status(&b, &inv).await,
        InvitationStatus::Accepted
    );
    let got = b
        .get_opportunity()
        .catalog("Sandbox")
        .identifier(&opp)
        .send()
        .await
        .unwrap();
    assert_eq!(got.id(), opp);
    b.get_engagement()
        .catalog("Sandbox")
        .identifier(&eng)
        .send()
        .await
        .expect("the receiver is a member now");
    // a later List reports the same
    let listed = b
        .list_engagement_by_accepting_invitation_tasks()
        .catalog("Sandbox")
        .task_identifier(started.task_id().unwrap())
        .send()
        .await
        .unwrap();
    let t = &listed.task_summaries()[0];
    assert_eq!(t.task_status(), Some(&TaskStatus::Complete));
    assert_eq!(t.opportunity_id(), Some(opp.as_str()));
    assert_eq!(t.resource_snapshot_job_id(), Some(job.as_str()));
    assert_eq!(t.engagement_invitation_id(), Some(inv.as_str()));
    // the same token replays the completed task
    let again = accept(&b, &inv, "accept-0").await;
    assert_eq!(again.task_id(), started.task_id());
    assert_eq!(again.opportunity_id(), Some(opp.as_str()));

    // from an opportunity
    let n = e
        .load_fixture(&Fixture {
            account: Some(A.into()),
            opportunities: vec![json!({"Id": "O1000000001"}).as_object().unwrap().clone()],
            ..Fixture::default()
        })
        .unwrap();
    assert_eq!(n, 1);
    let s = a
        .start_engagement_from_opportunity_task()
        .catalog("Sandbox")
        .identifier("O1000000001")
        .client_token("from-opp-0")
        .aws_submission(submission())
        .send()
        .await
        .unwrap();
    assert_eq!(s.task_status(), Some(&TaskStatus::Complete));
    let new_eng = s.engagement_id().expect("EngagementId").to_string();
    let to_aws = s
        .engagement_invitation_id()
        .expect("EngagementInvitationId")
        .to_string();
    assert_eq!(s.opportunity_id(), Some("O1000000001"));
    let listed = a
        .list_engagement_from_opportunity_tasks()
        .catalog("Sandbox")
        .task_identifier(s.task_id().unwrap())
        .send()
        .await
        .unwrap();
    let t = &listed.task_summaries()[0];
    assert_eq!(t.engagement_id(), Some(new_eng.as_str()));
    assert_eq!(t.engagement_invitation_id(), Some(to_aws.as_str()));
    assert_eq!(t.resource_snapshot_job_id(), s.resource_snapshot_job_id());
    a.get_engagement()
        .catalog("Sandbox")
        .identifier(&new_eng)
        .send()
        .await
        .expect("the engagement exists at once");
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_task_delay_on_an_expired_invitation_answers_failed_in_the_start_response() {
    let e = emu(EmulatorConfig {
        task_delay: Duration::ZERO,
        invitation_ttl: Duration::from_millis(200),
        ..config()
    })
    .await;
    let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
    let eng = engagement(&a, "e").await;
    let inv = invite(&a, &eng, B, "i").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = accept(&b, &inv, "late").await;
    assert_eq!(started.task_status(), Some(&TaskStatus::Failed));
    assert_eq!(
        started.reason_code(),
        Some(&ReasonCode::InvitationValidationFailed)
    );
    assert!(started.message().unwrap().contains("expired"));
    assert!(started.opportunity_id().is_none());
    assert_eq!(invitation_status(&b, &inv).await, InvitationStatus::Expired);
    e.shutdown().await.unwrap();
}

// ---- 3. task_failure fault -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_task_failure_leaves_the_invitation_pending_for_a_redrive() {
    for delay in [Duration::ZERO, Duration::from_millis(100)] {
        let e = emu(EmulatorConfig {
            task_delay: delay,
            faults: Faults::parse("task_failure=1").unwrap(),
            ..config()
        })
        .await;
        let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
        let eng = engagement(&a, "e").await;
        let inv = invite(&a, &eng, B, "i").await;
        let started = accept(&b, &inv, "first").await;
        let failed = accept_task_done(&b, started.task_id().unwrap()).await;
        assert_eq!(failed.task_status(), Some(&TaskStatus::Failed), "{delay:?}");
        let reason = failed.reason_code().unwrap();
        assert!(
            [ReasonCode::InternalError, ReasonCode::RequestThrottled].contains(reason),
            "{reason:?}"
        );
        assert!(failed.message().unwrap().contains("new ClientToken"));
        assert!(failed.opportunity_id().is_none());
        assert_eq!(invitation_status(&b, &inv).await, InvitationStatus::Pending);
        assert_eq!(e.stats()["faults"]["task_failure"], 1);
        assert_eq!(e.stats()["resources"]["opportunities"], 0);
        // the same token replays the failure
        let replay = accept(&b, &inv, "first").await;
        assert_eq!(replay.task_id(), started.task_id());
        assert_eq!(replay.task_status(), Some(&TaskStatus::Failed));
        assert_eq!(replay.reason_code(), Some(reason));
        e.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_with_a_new_token_succeeds_where_the_seeded_fault_passes() {
    // seeded: find, deterministically, a failed first task and a passing redrive
    let e = emu(EmulatorConfig {
        task_delay: Duration::ZERO,
        faults: Faults::parse("task_failure=0.5").unwrap(),
        seed: 3,
        ..config()
    })
    .await;
    let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
    let eng = engagement(&a, "e").await;
    let inv = invite(&a, &eng, B, "i").await;
    let mut outcomes = Vec::new();
    for n in 0..20 {
        let t = accept(&b, &inv, &format!("try-{n}")).await;
        outcomes.push(t.task_status().cloned().unwrap());
        if t.task_status() == Some(&TaskStatus::Complete) {
            break;
        }
        assert_eq!(invitation_status(&b, &inv).await, InvitationStatus::Pending);
    }
    assert_eq!(outcomes.last(), Some(&TaskStatus::Complete), "{outcomes:?}");
    assert_eq!(
        invitation_status(&b, &inv).await,
        InvitationStatus::Accepted
    );
    let failures = outcomes.len() as u64 - 1;
    assert_eq!(e.stats()["faults"]["task_failure"], failures);
    e.shutdown().await.unwrap();
    // the same seed gives the same sequence
    let e2 = emu(EmulatorConfig {
        task_delay: Duration::ZERO,
        faults: Faults::parse("task_failure=0.5").unwrap(),
        seed: 3,
        ..config()
    })
    .await;
    let (a, b) = (sdk_client(&e2.url(), A), sdk_client(&e2.url(), B));
    let eng = engagement(&a, "e").await;
    let inv = invite(&a, &eng, B, "i").await;
    let mut again = Vec::new();
    for n in 0..outcomes.len() {
        again.push(
            accept(&b, &inv, &format!("try-{n}"))
                .await
                .task_status()
                .cloned()
                .unwrap(),
        );
    }
    assert_eq!(again, outcomes);
    e2.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_failure_on_a_from_opportunity_task_leaves_the_opportunity_free() {
    let e = emu(EmulatorConfig {
        task_delay: Duration::ZERO,
        faults: Faults::parse("task_failure=1").unwrap(),
        ..config()
    })
    .await;
    e.load_fixture(
        &Fixture::from_yaml("account: '111111111111'\nopportunities:\n  - Id: O42\n").unwrap(),
    )
    .unwrap();
    let a = sdk_client(&e.url(), A);
    let start = |token: &'static str| {
        a.start_engagement_from_opportunity_task()
            .catalog("Sandbox")
            .identifier("O42")
            .client_token(token)
            .aws_submission(submission())
            .send()
    };
    let s = start("one").await.unwrap();
    assert_eq!(s.task_status(), Some(&TaskStatus::Failed));
    assert!(s.engagement_id().is_none());
    // not consumed: a new token may start another task (which fails again under p = 1)
    let s2 = start("two").await.unwrap();
    assert_ne!(s2.task_id(), s.task_id());
    assert_eq!(e.stats()["resources"]["engagements"], 0);
    e.shutdown().await.unwrap();
}

// ---- 4. state file: lock, mode, write-through ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_emulator_on_a_locked_state_file_fails_naming_the_file_and_pid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emu.json");
    let cfg = EmulatorConfig {
        state: Some(path.clone()),
        ..config()
    };
    let first = emu(cfg.clone()).await;
    let err = cosell::emulator::start(cfg.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .err()
        .expect("the second emulator must not start");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    first.shutdown().await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the state file holds customer data");
    }
    // released at shutdown
    let again = emu(cfg).await;
    again.shutdown().await.unwrap();
    // write-through without a state file is refused
    let bad = cosell::emulator::start(
        EmulatorConfig {
            persist_every_write: true,
            ..config()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .err()
    .unwrap();
    assert!(bad.to_string().contains("state"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_puts_every_acknowledged_change_in_the_file_before_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emu.json");
    let e = emu(EmulatorConfig {
        state: Some(path.clone()),
        persist_every_write: true,
        task_delay: Duration::ZERO,
        ..config()
    })
    .await;
    let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
    let read =
        || -> Value { serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap() };
    let eng = engagement(&a, "wt").await;
    assert!(read()["engagements"].get(&eng).is_some());
    let inv = invite(&a, &eng, B, "wt-i").await;
    assert_eq!(read()["invitations"][&inv]["status"], "PENDING");
    accept(&b, &inv, "wt-a").await;
    assert_eq!(read()["invitations"][&inv]["status"], "ACCEPTED");
    assert_eq!(read()["tasks"].as_object().unwrap().len(), 1);
    e.shutdown().await.unwrap();
}

#[test]
fn a_killed_cli_emulator_with_write_through_keeps_what_it_acknowledged() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let spawn = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cosell"))
            .args(["emulator", "--bind", "127.0.0.1:0", "--task-delay", "0s"])
            .arg("--state")
            .arg(&state)
            .arg("--persist-every-write")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.split_whitespace().nth(4).map(str::to_string);
        (child, url, line)
    };
    let (mut child, url, line) = spawn();
    let url = url.unwrap_or_else(|| panic!("no address in {line:?}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (eng, inv) = rt.block_on(async {
        let (a, b) = (sdk_client(&url, A), sdk_client(&url, B));
        let eng = engagement(&a, "k").await;
        let inv = invite(&a, &eng, B, "k-i").await;
        accept(&b, &inv, "k-a").await;
        (eng, inv)
    });
    // a second CLI emulator on the same file: refused at once, exit 4
    let second = Command::new(env!("CARGO_BIN_EXE_cosell"))
        .args(["emulator", "--bind", "127.0.0.1:0", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(cosell::exit::ENVIRONMENT));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&state.display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {}", child.id())), "{err}");
    // kill -9: no shutdown, no final write
    child.kill().unwrap();
    child.wait().unwrap();
    rt.block_on(async {
        let e = emu(EmulatorConfig {
            state: Some(state.clone()),
            ..config()
        })
        .await;
        let b = sdk_client(&e.url(), B);
        assert_eq!(
            invitation_status(&b, &inv).await,
            InvitationStatus::Accepted
        );
        b.get_engagement()
            .catalog("Sandbox")
            .identifier(&eng)
            .send()
            .await
            .expect("the engagement survived, with B as a member");
        e.shutdown().await.unwrap();
    });
}

// ---- 5 + 7. SenderCompanyName and fixtures -------------------------------------------------

const FIXTURE: &str = r#"
account: 222222222222
company_names:
  "111111111111": Acme Partners
invitations:
  - Id: engi-fixture000001
    SenderCompanyName: AWS Partner Team
    Payload:
      OpportunityInvitation:
        ReceiverResponsibilities: [Co-Sell Facilitator]
        Customer:
          CompanyName: Example Corp
          Industry: Other
          WebsiteUrl: https://example.com
          CountryCode: US
        Project:
          Title: Migration
          BusinessProblem: They want to move their data warehouse to the cloud
          TargetCompletionDate: "2027-06-30"
          ExpectedCustomerSpend:
            - Amount: "5000"
              CurrencyCode: USD
              Frequency: Monthly
              TargetCompany: AWS
  - Id: engi-fixture000002
    SenderAwsAccountId: 111111111111
opportunities:
  - Id: O2000000001
    Project:
      Title: Analytics
      CustomerBusinessProblem: They need dashboards for their sales team
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixture_gives_invitations_to_accept_and_opportunities_to_start_from() {
    let fixture = Fixture::from_yaml(FIXTURE).expect("the YAML fixture parses");
    assert_eq!(fixture.account.as_deref(), Some(B));
    let e = emu(EmulatorConfig {
        fixture: Some(fixture.clone()),
        ..config()
    })
    .await;
    assert_eq!(e.stats()["resources"]["invitations"], 2);
    let b = sdk_client(&e.url(), B);
    let g = b
        .get_engagement_invitation()
        .catalog("Sandbox")
        .identifier("engi-fixture000001")
        .send()
        .await
        .unwrap();
    assert_eq!(g.status(), Some(&InvitationStatus::Pending));
    assert_eq!(g.sender_company_name(), Some("AWS Partner Team"));
    assert_eq!(g.sender_aws_account_id(), Some("aws"));
    assert_eq!(
        g.payload_type(),
        Some(&EngagementInvitationPayloadType::OpportunityInvitation)
    );
    assert_eq!(g.engagement_title(), Some("Migration"));
    let listed = b
        .list_engagement_invitations()
        .catalog("Sandbox")
        .participant_type(ParticipantType::Receiver)
        .send()
        .await
        .unwrap();
    let names: Vec<(&str, Option<&str>)> = listed
        .engagement_invitation_summaries()
        .iter()
        .map(|s| (s.id(), s.sender_company_name()))
        .collect();
    assert!(
        names.contains(&("engi-fixture000001", Some("AWS Partner Team"))),
        "{names:?}"
    );
    assert!(
        names.contains(&("engi-fixture000002", Some("Acme Partners"))),
        "{names:?}"
    );
    // the receiver accepts it
    let t = accept(&b, "engi-fixture000001", "fx").await;
    let done = accept_task_done(&b, t.task_id().unwrap()).await;
    assert_eq!(done.task_status(), Some(&TaskStatus::Complete));
    assert_eq!(
        invitation_status(&b, "engi-fixture000001").await,
        InvitationStatus::Accepted
    );
    // the fixture opportunity starts an engagement
    let s = b
        .start_engagement_from_opportunity_task()
        .catalog("Sandbox")
        .identifier("O2000000001")
        .client_token("fx-opp")
        .aws_submission(submission())
        .send()
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let done = loop {
        let l = b
            .list_engagement_from_opportunity_tasks()
            .catalog("Sandbox")
            .task_identifier(s.task_id().unwrap())
            .send()
            .await
            .unwrap();
        let t = l.task_summaries()[0].clone();
        if t.task_status() != Some(&TaskStatus::InProgress) {
            break t;
        }
        assert!(Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.task_status(), Some(&TaskStatus::Complete));
    assert!(done.engagement_id().is_some());
    // loading again adds nothing and resets nothing
    assert_eq!(e.load_fixture(&fixture).unwrap(), 0);
    assert_eq!(
        invitation_status(&b, "engi-fixture000001").await,
        InvitationStatus::Accepted
    );
    // API-created invitations name the sender's company: the default for an unnamed account
    let a = sdk_client(&e.url(), "333333333333");
    let eng = engagement(&a, "named").await;
    let inv = invite(&a, &eng, B, "named-i").await;
    let g = b
        .get_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap();
    assert_eq!(g.sender_company_name(), Some("Partner 333333333333"));
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_fixture_item_is_an_error_naming_the_item_and_member_and_loads_nothing() {
    let e = emu(config()).await;
    let cases = [
        (
            "invitations:\n  - Id: engi-ok00000000001\n  - Id: inv-1\n",
            "invitations[1].Id",
        ),
        (
            "opportunities:\n  - Id: O1\n    Customer:\n      Account:\n        Industry: Spaceships\n",
            "opportunities[0].Customer.Account.Industry",
        ),
        ("invitations:\n  - Status: PENDING\n", "invitations[0].Id"),
        (
            "invitations:\n  - Id: engi-ok00000000001\n    Status: MAYBE\n",
            "invitations[0].Status",
        ),
        (
            "opportunities:\n  - Id: O1\n    Colour: red\n",
            "opportunities[0].Colour",
        ),
    ];
    for (yaml, at) in cases {
        let f = Fixture::from_yaml(yaml).unwrap();
        let err = e.load_fixture(&f).unwrap_err();
        assert!(err.contains(at), "{at}: {err}");
        assert!(err.contains("nothing was loaded"), "{err}");
    }
    assert_eq!(e.stats()["resources"]["invitations"], 0);
    assert!(
        Fixture::from_yaml("invitation: []").is_err(),
        "unknown top-level key"
    );
    // a bad fixture at start stops the start
    let bad = cosell::emulator::start(
        EmulatorConfig {
            fixture: Some(Fixture::from_yaml("opportunities:\n  - Id: X1\n").unwrap()),
            ..config()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .err()
    .unwrap();
    assert!(bad.to_string().contains("opportunities[0].Id"), "{bad}");
    e.shutdown().await.unwrap();
}

#[test]
fn the_cli_loads_a_fixture_file_and_names_a_bad_one() {
    let ok = crate::support::Cosell::new()
        .file("fx.yaml", "invitations:\n  - Id: inv-bad\n")
        .args(["emulator", "--bind", "127.0.0.1:0", "--fixture", "fx.yaml"])
        .run();
    ok.code(cosell::exit::INVALID)
        .stderr_has("fx.yaml")
        .stderr_has("invitations[0].Id");
    let missing = crate::support::Cosell::new()
        .args(["emulator", "--fixture", "nope.json"])
        .run();
    missing
        .code(cosell::exit::INVALID)
        .stderr_has("--fixture nope.json");
}

// ---- 6. STS --------------------------------------------------------------------------------

fn sts_client(endpoint: &str, access_key_id: &str) -> aws_sdk_sts::Client {
    use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            access_key_id,
            "test-secret",
            None,
            None,
            "test",
        ))
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_get_caller_identity_names_the_account_outside_the_quotas() {
    // one read per second at most: STS calls must not use it
    let e = emu(EmulatorConfig {
        quotas: cosell::emulator::Quotas::Scaled(0.0001),
        ..config()
    })
    .await;
    for (key, account) in [(B, B), ("AKIDEXAMPLE", "111122223333")] {
        for _ in 0..5 {
            let id = sts_client(&e.url(), key)
                .get_caller_identity()
                .send()
                .await
                .unwrap();
            assert_eq!(id.account(), Some(account));
            assert_eq!(
                id.arn(),
                Some(format!("arn:aws:iam::{account}:user/emulator").as_str())
            );
            assert!(id.user_id().is_some_and(|u| !u.is_empty()));
        }
    }
    assert_eq!(e.stats()["sts_calls"], 10);
    assert_eq!(e.stats()["throttled"], 0);
    let calls: u64 = e.stats()["calls"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(calls, 0);
    // unsigned: STS's XML error
    let head = "POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n";
    let addr = e.url().trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    s.write_all(
        format!(
            "{head}Host: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert!(
        text.contains("<Code>MissingAuthenticationToken</Code>"),
        "{text}"
    );
    assert!(text.contains("<ErrorResponse"), "{text}");
    // another action
    let r = raw(
        &e.url(),
        &format!(
            "POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: {}\r\n",
            auth_for(A)
        ),
        b"Action=AssumeRole&Version=2011-06-15",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.headers.contains("text/xml"));
    e.shutdown().await.unwrap();
}
