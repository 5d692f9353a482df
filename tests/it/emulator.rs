//! The emulator, driven over real HTTP by the real SDK (and by raw HTTP where the SDK cannot
//! produce the request: unsigned, malformed, oversized).

use crate::support::sdk_client;
use aws_sdk_partnercentralselling::error::ProvideErrorMetadata;
use aws_sdk_partnercentralselling::types::*;
use aws_sdk_partnercentralselling::Client;
use cosell::emulator::{start, EmulatorConfig, EmulatorHandle, Faults, Quotas};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const A: &str = "111111111111";
pub(crate) const B: &str = "222222222222";
pub(crate) const C: &str = "333333333333";

pub(crate) fn config() -> EmulatorConfig {
    EmulatorConfig {
        task_delay: Duration::from_millis(150),
        quotas: Quotas::None,
        ..EmulatorConfig::default()
    }
}

pub(crate) async fn emu(config: EmulatorConfig) -> EmulatorHandle {
    start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("emulator starts")
}

pub(crate) fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<no code>").to_string()
}

pub(crate) async fn engagement(c: &Client, token: &str) -> String {
    c.create_engagement()
        .catalog("Sandbox")
        .client_token(token)
        .title("Data platform")
        .description("Joint engagement for Acme")
        .send()
        .await
        .expect("create engagement")
        .id()
        .unwrap()
        .to_string()
}

pub(crate) fn invitation(receiver: &str) -> Invitation {
    let customer = EngagementCustomer::builder()
        .industry(Industry::AerospaceSatellite)
        .company_name("Acme")
        .website_url("https://acme.example.com")
        .country_code(CountryCode::Us)
        .build()
        .unwrap();
    let project = ProjectDetails::builder()
        .business_problem("They need a much better data platform for analytics")
        .title("Data platform")
        .target_completion_date("2027-01-31")
        .expected_customer_spend(
            ExpectedCustomerSpend::builder()
                .amount("1000")
                .currency_code(CurrencyCode::Usd)
                .frequency(PaymentFrequency::Monthly)
                .target_company("AWS")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    Invitation::builder()
        .message("Join us on Acme")
        .receiver(Receiver::Account(
            AccountReceiver::builder()
                .aws_account_id(receiver)
                .build()
                .unwrap(),
        ))
        .payload(Payload::OpportunityInvitation(
            OpportunityInvitationPayload::builder()
                .receiver_responsibilities(ReceiverResponsibility::CoSellFacilitator)
                .customer(customer)
                .project(project)
                .build()
                .unwrap(),
        ))
        .build()
        .unwrap()
}

pub(crate) async fn invite(c: &Client, eng: &str, receiver: &str, token: &str) -> String {
    c.create_engagement_invitation()
        .catalog("Sandbox")
        .client_token(token)
        .engagement_identifier(eng)
        .invitation(invitation(receiver))
        .send()
        .await
        .expect("create invitation")
        .id()
        .to_string()
}

/// Poll an accepting task until it leaves IN_PROGRESS.
pub(crate) async fn accept_task_done(
    c: &Client,
    task: &str,
) -> ListEngagementByAcceptingInvitationTaskSummary {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let out = c
            .list_engagement_by_accepting_invitation_tasks()
            .catalog("Sandbox")
            .task_identifier(task)
            .send()
            .await
            .expect("list tasks");
        let t = out.task_summaries()[0].clone();
        if t.task_status() != Some(&TaskStatus::InProgress) {
            return t;
        }
        assert!(Instant::now() < until, "task {task} never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- raw HTTP ------------------------------------------------------------------------------

pub(crate) struct Raw {
    pub status: u16,
    pub headers: String,
    pub body: Value,
}

const SIGNED: &str = "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/partnercentral-selling/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000";

pub(crate) fn auth_for(account: &str) -> String {
    SIGNED.replace("AKID", account)
}

/// One request over a fresh TCP connection; `None` when the server dropped the connection
/// without answering.
pub(crate) async fn raw(url: &str, head: &str, body: &[u8]) -> Option<Raw> {
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{head}Host: {addr}\r\nConnection: close\r\n").into_bytes();
    if !head.to_ascii_lowercase().contains("content-length") {
        req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    s.write_all(&req).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    if buf.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").expect("http response");
    let status = headers[9..12].parse().unwrap();
    Some(Raw {
        status,
        headers: headers.to_ascii_lowercase(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    })
}

pub(crate) async fn call(url: &str, account: &str, op: &str, body: &Value) -> Raw {
    let head = format!(
        "POST / HTTP/1.1\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: AWSPartnerCentralSelling.{op}\r\nAuthorization: {}\r\n",
        auth_for(account)
    );
    raw(url, &head, body.to_string().as_bytes())
        .await
        .expect("an answer")
}

/// The response must contain exactly the members of the model's output shape, with every
/// required member present and every value in its declared form.
pub(crate) fn assert_conforms(op: &str, body: &Value) {
    let m = cosell::model::model();
    let out = m.operation(op).unwrap().output;
    match out {
        Some(shape) => {
            let mut v = Vec::new();
            m.validate_shape(shape, body, &mut v);
            assert!(
                v.is_empty(),
                "{op} response does not conform: {v:#?}\n{body:#}"
            );
        }
        None => assert_eq!(body, &json!({}), "{op} has no output members"),
    }
}

// ---- tests ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_and_receiver_flow_across_two_accounts_with_the_sdk() {
    let e = emu(config()).await;
    let (a, b, c) = (
        sdk_client(&e.url(), A),
        sdk_client(&e.url(), B),
        sdk_client(&e.url(), C),
    );
    let eng = engagement(&a, "eng-1").await;
    let got = a
        .get_engagement()
        .catalog("Sandbox")
        .identifier(&eng)
        .send()
        .await
        .unwrap();
    assert_eq!(got.created_by(), Some(A));
    assert_eq!(got.member_count(), Some(1));
    assert_eq!(got.title(), Some("Data platform"));
    // catalogs are separate worlds
    let e404 = a
        .get_engagement()
        .catalog("AWS")
        .identifier(&eng)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e404), "ResourceNotFoundException");

    let inv = invite(&a, &eng, B, "inv-1").await;
    assert!(inv.starts_with("engi-") && inv.len() == 18, "{inv}");
    // the receiver is not a member yet
    let denied = b
        .get_engagement()
        .catalog("Sandbox")
        .identifier(&eng)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&denied), "AccessDeniedException");

    for (client, who) in [(&a, "sender"), (&b, "receiver")] {
        let g = client
            .get_engagement_invitation()
            .catalog("Sandbox")
            .identifier(&inv)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{who} gets the invitation: {e:?}"));
        assert_eq!(g.status(), Some(&InvitationStatus::Pending));
        assert_eq!(g.sender_aws_account_id(), Some(A));
        assert_eq!(g.engagement_id(), Some(eng.as_str()));
        assert_eq!(
            g.payload_type(),
            Some(&EngagementInvitationPayloadType::OpportunityInvitation)
        );
        assert!(g.expiration_date().unwrap().secs() > g.invitation_date().unwrap().secs());
    }
    let nf = c
        .get_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&nf), "ResourceNotFoundException");

    let sent = a
        .list_engagement_invitations()
        .catalog("Sandbox")
        .participant_type(ParticipantType::Sender)
        .send()
        .await
        .unwrap();
    let s = &sent.engagement_invitation_summaries()[0];
    assert_eq!(
        (s.id(), s.participant_type()),
        (inv.as_str(), Some(&ParticipantType::Sender))
    );
    let received = b
        .list_engagement_invitations()
        .catalog("Sandbox")
        .participant_type(ParticipantType::Receiver)
        .status(InvitationStatus::Pending)
        .send()
        .await
        .unwrap();
    let r = &received.engagement_invitation_summaries()[0];
    assert_eq!(
        (r.id(), r.participant_type()),
        (inv.as_str(), Some(&ParticipantType::Receiver))
    );
    assert!(b
        .list_engagement_invitations()
        .catalog("Sandbox")
        .participant_type(ParticipantType::Sender)
        .send()
        .await
        .unwrap()
        .engagement_invitation_summaries()
        .is_empty());

    // only the receiver accepts or rejects
    let by_sender = a
        .start_engagement_by_accepting_invitation_task()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&by_sender), "AccessDeniedException");
    let reject_by_sender = a
        .reject_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&reject_by_sender), "AccessDeniedException");

    let started = b
        .start_engagement_by_accepting_invitation_task()
        .catalog("Sandbox")
        .identifier(&inv)
        .client_token("accept-1")
        .send()
        .await
        .unwrap();
    assert_eq!(started.task_status(), Some(&TaskStatus::InProgress));
    assert_eq!(started.engagement_invitation_id(), Some(inv.as_str()));
    let task = started.task_id().unwrap().to_string();
    assert!(task.starts_with("task-"), "{task}");
    let done = accept_task_done(&b, &task).await;
    assert_eq!(done.task_status(), Some(&TaskStatus::Complete));
    let opp = done
        .opportunity_id()
        .expect("an opportunity for the receiver");
    assert!(done.resource_snapshot_job_id().unwrap().starts_with("job-"));
    assert_eq!(done.engagement_invitation_id(), Some(inv.as_str()));

    let o = b
        .get_opportunity()
        .catalog("Sandbox")
        .identifier(opp)
        .send()
        .await
        .unwrap();
    assert_eq!(o.id(), opp);
    assert_eq!(
        o.customer()
            .and_then(|c| c.account())
            .map(|a| a.company_name()),
        Some("Acme")
    );
    let g = a
        .get_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap();
    assert_eq!(g.status(), Some(&InvitationStatus::Accepted));
    let joined = b
        .get_engagement()
        .catalog("Sandbox")
        .identifier(&eng)
        .send()
        .await
        .unwrap();
    assert_eq!(joined.member_count(), Some(2));
    let listed = b
        .list_engagements()
        .catalog("Sandbox")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.engagement_summary_list()[0].id(), Some(eng.as_str()));

    // accepting again: the invitation is no longer PENDING
    let again = b
        .start_engagement_by_accepting_invitation_task()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again), "ConflictException");

    // reject a second invitation (to C), then it cannot be accepted
    let inv2 = invite(&a, &eng, C, "inv-2").await;
    c.reject_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv2)
        .rejection_reason("Not a fit")
        .send()
        .await
        .unwrap();
    let g2 = c
        .get_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv2)
        .send()
        .await
        .unwrap();
    assert_eq!(g2.status(), Some(&InvitationStatus::Rejected));
    assert_eq!(g2.rejection_reason(), Some("Not a fit"));
    let after_reject = c
        .start_engagement_by_accepting_invitation_task()
        .catalog("Sandbox")
        .identifier(&inv2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&after_reject), "ConflictException");
    // inviting an existing member conflicts; a missing engagement is not found
    let member = a
        .create_engagement_invitation()
        .catalog("Sandbox")
        .engagement_identifier(&eng)
        .invitation(invitation(B))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&member), "ConflictException");
    let missing = a
        .create_engagement_invitation()
        .catalog("Sandbox")
        .engagement_identifier("eng-00000000000000")
        .invitation(invitation(B))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "ResourceNotFoundException");
    // a non-member cannot invite
    let outsider = c
        .create_engagement_invitation()
        .catalog("Sandbox")
        .engagement_identifier(&eng)
        .invitation(invitation(A))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&outsider), "AccessDeniedException");

    let stats = e.stats();
    assert_eq!(stats["invitations_by_status"]["ACCEPTED"], 1);
    assert_eq!(stats["invitations_by_status"]["REJECTED"], 1);
    assert_eq!(stats["tasks_started_per_invitation_max"], 1);
    assert_eq!(stats["resources"]["opportunities"], 1);
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engagement_from_opportunity_creates_an_engagement_and_an_invitation_to_aws() {
    // long enough that the second task surely starts before the first completes
    let e = emu(EmulatorConfig {
        task_delay: Duration::from_millis(800),
        ..config()
    })
    .await;
    let a = sdk_client(&e.url(), A);
    let created = a
        .create_opportunity()
        .catalog("Sandbox")
        .client_token("opp-1")
        .partner_opportunity_identifier("CRM-42")
        .customer(
            Customer::builder()
                .account(
                    Account::builder()
                        .company_name("Acme")
                        .industry(Industry::AerospaceSatellite)
                        .website_url("https://acme.example.com")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .project(
            Project::builder()
                .title("Data platform")
                .customer_business_problem("They need a much better data platform for analytics")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let opp = created.id().to_string();
    assert!(opp.starts_with('O'));
    assert_eq!(created.partner_opportunity_identifier(), Some("CRM-42"));
    let got = a
        .get_opportunity()
        .catalog("Sandbox")
        .identifier(&opp)
        .send()
        .await
        .unwrap();
    assert_eq!(got.partner_opportunity_identifier(), Some("CRM-42"));
    assert_eq!(got.project().and_then(|p| p.title()), Some("Data platform"));

    let missing = a
        .start_engagement_from_opportunity_task()
        .catalog("Sandbox")
        .identifier("O999")
        .aws_submission(
            AwsSubmission::builder()
                .involvement_type(SalesInvolvementType::CoSell)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "ResourceNotFoundException");

    let submission = AwsSubmission::builder()
        .involvement_type(SalesInvolvementType::CoSell)
        .visibility(Visibility::Full)
        .build()
        .unwrap();
    let started = a
        .start_engagement_from_opportunity_task()
        .catalog("Sandbox")
        .identifier(&opp)
        .aws_submission(submission.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(started.task_status(), Some(&TaskStatus::InProgress));
    assert_eq!(started.opportunity_id(), Some(opp.as_str()));
    // a second task for the same opportunity, started before the first completes: it fails
    // at completion (the deterministic OpportunityConflict rule)
    let second = a
        .start_engagement_from_opportunity_task()
        .catalog("Sandbox")
        .identifier(&opp)
        .aws_submission(submission.clone())
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let tasks = a
        .list_engagement_from_opportunity_tasks()
        .catalog("Sandbox")
        .opportunity_identifier(&opp)
        .sort(
            ListTasksSortBase::builder()
                .sort_order(SortOrder::Ascending)
                .sort_by(ListTasksSortName::StartTime)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let t = tasks.task_summaries();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].task_id(), started.task_id());
    assert_eq!(t[0].task_status(), Some(&TaskStatus::Complete));
    let eng = t[0].engagement_id().expect("engagement id");
    assert!(t[0]
        .engagement_invitation_id()
        .unwrap()
        .starts_with("engi-"));
    assert!(t[0].resource_snapshot_job_id().unwrap().starts_with("job-"));
    assert_eq!(t[1].task_id(), second.task_id());
    assert_eq!(t[1].task_status(), Some(&TaskStatus::Failed));
    assert_eq!(t[1].reason_code(), Some(&ReasonCode::OpportunityConflict));
    assert!(t[1].message().unwrap().contains(&opp));
    // now the opportunity is engaged: a new start is refused at once
    let third = a
        .start_engagement_from_opportunity_task()
        .catalog("Sandbox")
        .identifier(&opp)
        .aws_submission(submission)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&third), "ConflictException");
    let g = a
        .get_engagement()
        .catalog("Sandbox")
        .identifier(eng)
        .send()
        .await
        .unwrap();
    assert_eq!(g.title(), Some("Data platform"));
    let sent = a
        .list_engagement_invitations()
        .catalog("Sandbox")
        .participant_type(ParticipantType::Sender)
        .engagement_identifier(eng)
        .send()
        .await
        .unwrap();
    let s = &sent.engagement_invitation_summaries()[0];
    assert_eq!(
        s.receiver(),
        Some(&Receiver::Account(
            AccountReceiver::builder()
                .aws_account_id("aws")
                .alias("AWS")
                .build()
                .unwrap()
        ))
    );
    // filters: by engagement and by status
    let by_eng = a
        .list_engagement_from_opportunity_tasks()
        .catalog("Sandbox")
        .engagement_identifier(eng)
        .send()
        .await
        .unwrap();
    assert_eq!(by_eng.task_summaries().len(), 1);
    let failed = a
        .list_engagement_from_opportunity_tasks()
        .catalog("Sandbox")
        .task_status(TaskStatus::Failed)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.task_summaries()[0].task_id(), second.task_id());
    e.shutdown().await.unwrap();
}

/// Every operation's raw response has exactly the members of the model's output shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_conforms_to_the_model_output_shape() {
    let e = emu(config()).await;
    let u = e.url();
    let ok = |r: Raw, op: &str| {
        assert_eq!(r.status, 200, "{op}: {:#}", r.body);
        assert!(r.headers.contains("x-amzn-requestid: "), "{}", r.headers);
        assert_conforms(op, &r.body);
        r.body
    };
    let eng = ok(
        call(&u, A, "CreateEngagement", &json!({"Catalog": "Sandbox", "ClientToken": "t1", "Title": "T", "Description": "D",
            "Contexts": [{"Type": "CustomerProject", "Payload": {"CustomerProject": {"Customer": {"Industry": "Aerospace", "CompanyName": "Acme", "WebsiteUrl": "https://acme.example.com", "CountryCode": "US"}}}}]})).await,
        "CreateEngagement",
    )["Id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        call(
            &u,
            A,
            "GetEngagement",
            &json!({"Catalog": "Sandbox", "Identifier": eng}),
        )
        .await,
        "GetEngagement",
    );
    ok(
        call(
            &u,
            A,
            "ListEngagements",
            &json!({"Catalog": "Sandbox", "ContextTypes": ["CustomerProject"]}),
        )
        .await,
        "ListEngagements",
    );
    let invitation = json!({"Message": "m", "Receiver": {"Account": {"AwsAccountId": B}},
        "Payload": {"OpportunityInvitation": {"ReceiverResponsibilities": ["Distributor"],
            "Customer": {"CompanyName": "Acme", "CountryCode": "US", "Industry": "Aerospace", "WebsiteUrl": "https://acme.example.com"},
            "Project": {"BusinessProblem": "They need a much better data platform", "Title": "DP", "TargetCompletionDate": "2027-01-31",
                "ExpectedCustomerSpend": [{"Amount": "1000", "CurrencyCode": "USD", "Frequency": "Monthly", "TargetCompany": "AWS"}]}}}});
    let mk = |t: &str| json!({"Catalog": "Sandbox", "ClientToken": t, "EngagementIdentifier": eng, "Invitation": invitation});
    let inv = ok(
        call(&u, A, "CreateEngagementInvitation", &mk("i1")).await,
        "CreateEngagementInvitation",
    )["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let inv2 = ok(
        call(&u, A, "CreateEngagementInvitation", &mk("i2")).await,
        "CreateEngagementInvitation",
    )["Id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        call(
            &u,
            B,
            "GetEngagementInvitation",
            &json!({"Catalog": "Sandbox", "Identifier": inv}),
        )
        .await,
        "GetEngagementInvitation",
    );
    ok(
        call(
            &u,
            B,
            "ListEngagementInvitations",
            &json!({"Catalog": "Sandbox", "ParticipantType": "RECEIVER"}),
        )
        .await,
        "ListEngagementInvitations",
    );
    ok(
        call(
            &u,
            B,
            "RejectEngagementInvitation",
            &json!({"Catalog": "Sandbox", "Identifier": inv2, "RejectionReason": "no"}),
        )
        .await,
        "RejectEngagementInvitation",
    );
    ok(
        call(
            &u,
            B,
            "StartEngagementByAcceptingInvitationTask",
            &json!({"Catalog": "Sandbox", "ClientToken": "a1", "Identifier": inv}),
        )
        .await,
        "StartEngagementByAcceptingInvitationTask",
    );
    let opp = ok(call(&u, A, "CreateOpportunity", &json!({"Catalog": "Sandbox", "ClientToken": "o1", "Origin": "Partner Referral",
        "Customer": {"Account": {"CompanyName": "Acme", "Address": {"CountryCode": "US"}}}, "Project": {"Title": "P"}, "Tags": [{"Key": "k", "Value": "v"}]})).await, "CreateOpportunity")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(call(&u, A, "StartEngagementFromOpportunityTask", &json!({"Catalog": "Sandbox", "ClientToken": "s1", "Identifier": opp, "AwsSubmission": {"InvolvementType": "Co-Sell"}})).await, "StartEngagementFromOpportunityTask");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let accepted = ok(
        call(
            &u,
            B,
            "ListEngagementByAcceptingInvitationTasks",
            &json!({"Catalog": "Sandbox"}),
        )
        .await,
        "ListEngagementByAcceptingInvitationTasks",
    );
    assert_eq!(accepted["TaskSummaries"][0]["TaskStatus"], "COMPLETE");
    let from = ok(
        call(
            &u,
            A,
            "ListEngagementFromOpportunityTasks",
            &json!({"Catalog": "Sandbox"}),
        )
        .await,
        "ListEngagementFromOpportunityTasks",
    );
    assert_eq!(from["TaskSummaries"][0]["TaskStatus"], "COMPLETE");
    ok(
        call(
            &u,
            A,
            "GetOpportunity",
            &json!({"Catalog": "Sandbox", "Identifier": opp}),
        )
        .await,
        "GetOpportunity",
    );
    let recv_opp = accepted["TaskSummaries"][0]["OpportunityId"]
        .as_str()
        .unwrap();
    ok(
        call(
            &u,
            B,
            "GetOpportunity",
            &json!({"Catalog": "Sandbox", "Identifier": recv_opp}),
        )
        .await,
        "GetOpportunity",
    );
    // the AWS-bound invitation made by the from-opportunity task conforms too
    let aws_inv = from["TaskSummaries"][0]["EngagementInvitationId"]
        .as_str()
        .unwrap();
    ok(
        call(
            &u,
            A,
            "GetEngagementInvitation",
            &json!({"Catalog": "Sandbox", "Identifier": aws_inv}),
        )
        .await,
        "GetEngagementInvitation",
    );
    e.shutdown().await.unwrap();
}

/// The ErrorList of a ValidationException from ListEngagementByAcceptingInvitationTasks.
async fn list_tasks_violations(
    req: aws_sdk_partnercentralselling::operation::list_engagement_by_accepting_invitation_tasks::builders::ListEngagementByAcceptingInvitationTasksFluentBuilder,
) -> (String, Vec<(String, String)>) {
    use aws_sdk_partnercentralselling::operation::list_engagement_by_accepting_invitation_tasks::ListEngagementByAcceptingInvitationTasksError as E;
    match req.send().await.unwrap_err().into_service_error() {
        E::ValidationException(v) => (
            v.reason().as_str().to_string(),
            v.error_list()
                .iter()
                .map(|x| {
                    (
                        x.field_name().unwrap_or("").to_string(),
                        x.code().as_str().to_string(),
                    )
                })
                .collect(),
        ),
        other => panic!("expected ValidationException, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_validation_code_reaches_the_sdk_as_a_parsed_error_list() {
    let e = emu(config()).await;
    let a = sdk_client(&e.url(), A);
    let base = || {
        a.list_engagement_by_accepting_invitation_tasks()
            .catalog("Sandbox")
    };
    let cases: Vec<(_, &str, &str)> = vec![
        (
            a.list_engagement_by_accepting_invitation_tasks(),
            "Catalog",
            "REQUIRED_FIELD_MISSING",
        ),
        (
            base().task_status(TaskStatus::from("DONE")),
            "TaskStatus[0]",
            "INVALID_ENUM_VALUE",
        ),
        (
            base().task_identifier("nope"),
            "TaskIdentifier[0]",
            "INVALID_STRING_FORMAT",
        ),
        (
            base().set_task_identifier(Some(vec![])),
            "TaskIdentifier",
            "NOT_ENOUGH_VALUES",
        ),
        (
            base().set_task_identifier(Some((0..11).map(|i| format!("task-{i:013}")).collect())),
            "TaskIdentifier",
            "TOO_MANY_VALUES",
        ),
        (base().max_results(0), "MaxResults", "VALUE_OUT_OF_RANGE"),
        (base().max_results(1001), "MaxResults", "VALUE_OUT_OF_RANGE"),
    ];
    for (req, field, want) in cases {
        let (reason, list) = list_tasks_violations(req).await;
        assert_eq!(reason, "REQUEST_VALIDATION_FAILED");
        assert!(
            list.contains(&(field.to_string(), want.to_string())),
            "{field} {want} not in {list:?}"
        );
    }
    // INVALID_VALUE: an unknown member, which the SDK cannot produce, so rewrite its body
    let req = base().customize().mutate_request(|r| {
        let body = r#"{"Catalog":"Sandbox","TaskIdentifer":["task-0000000000000"]}"#;
        *r.body_mut() = aws_smithy_types::body::SdkBody::from(body);
        r.headers_mut()
            .insert("content-length", body.len().to_string());
    });
    use aws_sdk_partnercentralselling::operation::list_engagement_by_accepting_invitation_tasks::ListEngagementByAcceptingInvitationTasksError as E;
    match req.send().await.unwrap_err().into_service_error() {
        E::ValidationException(v) => {
            let x = &v.error_list()[0];
            assert_eq!(x.field_name(), Some("TaskIdentifer"));
            assert_eq!(x.code(), &ValidationExceptionErrorCode::InvalidValue);
            assert!(x.message().contains("TaskIdentifier"), "{}", x.message());
        }
        other => panic!("{other:?}"),
    }
    // a nested path, as the validator names it
    let bad = a
        .create_engagement_invitation()
        .catalog("Sandbox")
        .engagement_identifier("eng-00000000000000")
        .invitation(invitation("1234567890123"))
        .send()
        .await
        .unwrap_err();
    use aws_sdk_partnercentralselling::operation::create_engagement_invitation::CreateEngagementInvitationError as CE;
    match bad.into_service_error() {
        CE::ValidationException(v) => {
            assert_eq!(
                v.error_list()[0].field_name(),
                Some("Invitation.Receiver.Account.AwsAccountId")
            );
            assert_eq!(
                v.error_list()[0].code(),
                &ValidationExceptionErrorCode::InvalidStringFormat
            );
        }
        other => panic!("{other:?}"),
    }
    // business rule: an unknown catalog passes the pattern but not the service
    let biz = a
        .list_engagements()
        .catalog("Production")
        .send()
        .await
        .unwrap_err();
    use aws_sdk_partnercentralselling::operation::list_engagements::ListEngagementsError as LE;
    match biz.into_service_error() {
        LE::ValidationException(v) => {
            assert_eq!(
                v.reason(),
                &ValidationExceptionReason::BusinessValidationFailed
            );
            assert_eq!(v.error_list()[0].field_name(), Some("Catalog"));
        }
        other => panic!("{other:?}"),
    }
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_client_token_replays_and_a_changed_request_conflicts() {
    let e = emu(config()).await;
    let a = sdk_client(&e.url(), A);
    let first = engagement(&a, "same-token").await;
    let again = engagement(&a, "same-token").await;
    assert_eq!(first, again);
    assert_eq!(e.stats()["resources"]["engagements"], 1);
    assert_eq!(e.stats()["idempotent_replays"], 1);
    // another account with the same token is a different request
    let b = sdk_client(&e.url(), B);
    assert_ne!(engagement(&b, "same-token").await, first);
    let changed = a
        .create_engagement()
        .catalog("Sandbox")
        .client_token("same-token")
        .title("Another title")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&changed), "ConflictException");
    assert_eq!(e.stats()["resources"]["engagements"], 2);

    // a replayed accept returns the same task, with its current status, and starts nothing
    let inv = invite(&a, &first, B, "inv").await;
    let start = || {
        b.start_engagement_by_accepting_invitation_task()
            .catalog("Sandbox")
            .identifier(&inv)
            .client_token("accept-once")
    };
    let t1 = start().send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t2 = start().send().await.unwrap();
    assert_eq!(t1.task_id(), t2.task_id());
    assert_eq!(t2.task_status(), Some(&TaskStatus::Complete));
    assert!(t2.opportunity_id().is_some());
    let s = e.stats();
    assert_eq!(s["tasks_started_per_invitation_max"], 1);
    assert_eq!(s["resources"]["tasks"], 1);
    assert_eq!(s["idempotent_replays"], 2);
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_throttle_a_burst_at_the_configured_rate() {
    let e = emu(EmulatorConfig {
        quotas: Quotas::Scaled(0.1),
        ..config()
    })
    .await;
    let a = sdk_client(&e.url(), A);
    // write class: 1/s × 0.1, burst max(0.1, 2) = 2
    let mut outcomes = Vec::new();
    for i in 0..4 {
        let r = a
            .create_opportunity()
            .catalog("Sandbox")
            .client_token(format!("o{i}"))
            .send()
            .await;
        outcomes.push(r.map(|_| "ok".to_string()).unwrap_or_else(|e| code(&e)));
    }
    assert_eq!(
        outcomes,
        ["ok", "ok", "ThrottlingException", "ThrottlingException"]
    );
    // reads are another class; another account has its own bucket
    a.list_engagements()
        .catalog("Sandbox")
        .send()
        .await
        .unwrap();
    sdk_client(&e.url(), B)
        .create_opportunity()
        .catalog("Sandbox")
        .send()
        .await
        .unwrap();
    let s = e.stats();
    assert_eq!(s["throttled"], 2);
    assert_eq!(s["resources"]["opportunities"], 3);
    assert_eq!(s["calls"]["CreateOpportunity"], 5);
    e.shutdown().await.unwrap();

    // x0.0002: the rolling 24-hour write budget is 10,000 × 0.0002 = 2
    let e = emu(EmulatorConfig {
        quotas: Quotas::Scaled(0.0002),
        ..config()
    })
    .await;
    let a = sdk_client(&e.url(), A);
    for _ in 0..2 {
        a.create_opportunity()
            .catalog("Sandbox")
            .send()
            .await
            .unwrap();
    }
    let over = a
        .create_opportunity()
        .catalog("Sandbox")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&over), "ThrottlingException");
    assert!(over.message().unwrap().contains("24-hour"), "{over:?}");
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_expire_and_a_task_fails_when_its_invitation_expires_first() {
    let e = emu(EmulatorConfig {
        invitation_ttl: Duration::from_millis(800),
        task_delay: Duration::from_millis(1200),
        ..config()
    })
    .await;
    let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
    let eng = engagement(&a, "e").await;
    let inv = invite(&a, &eng, B, "i1").await;
    // accepted in time, but the invitation expires before the task completes
    let started = b
        .start_engagement_by_accepting_invitation_task()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap();
    let done = accept_task_done(&b, started.task_id().unwrap()).await;
    assert_eq!(done.task_status(), Some(&TaskStatus::Failed));
    assert_eq!(
        done.reason_code(),
        Some(&ReasonCode::InvitationValidationFailed)
    );
    assert!(
        done.message().unwrap().contains("expired"),
        "{:?}",
        done.message()
    );
    assert!(done.opportunity_id().is_none());
    let g = b
        .get_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap();
    assert_eq!(g.status(), Some(&InvitationStatus::Expired));
    // a Start on an invitation that has already expired starts a task that fails
    let late = b
        .start_engagement_by_accepting_invitation_task()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap();
    let late = accept_task_done(&b, late.task_id().unwrap()).await;
    assert_eq!(
        late.reason_code(),
        Some(&ReasonCode::InvitationValidationFailed)
    );
    let expired = b
        .list_engagement_invitations()
        .catalog("Sandbox")
        .participant_type(ParticipantType::Receiver)
        .status(InvitationStatus::Expired)
        .send()
        .await
        .unwrap();
    assert_eq!(expired.engagement_invitation_summaries().len(), 1);
    assert_eq!(e.stats()["invitations_by_status"]["EXPIRED"], 1);
    assert_eq!(e.stats()["resources"]["opportunities"], 0);
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_accepting_task_for_one_invitation_fails_at_completion() {
    let e = emu(EmulatorConfig {
        task_delay: Duration::from_millis(800),
        ..config()
    })
    .await;
    let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
    let eng = engagement(&a, "e").await;
    let inv = invite(&a, &eng, B, "i1").await;
    let mut ids = Vec::new();
    for token in ["t1", "t2"] {
        let t = b
            .start_engagement_by_accepting_invitation_task()
            .catalog("Sandbox")
            .identifier(&inv)
            .client_token(token)
            .send()
            .await
            .unwrap();
        ids.push(t.task_id().unwrap().to_string());
    }
    let first = accept_task_done(&b, &ids[0]).await;
    let second = accept_task_done(&b, &ids[1]).await;
    assert_eq!(first.task_status(), Some(&TaskStatus::Complete));
    assert_eq!(second.task_status(), Some(&TaskStatus::Failed));
    assert_eq!(
        second.reason_code(),
        Some(&ReasonCode::EngagementInvitationConflict)
    );
    assert_eq!(e.stats()["tasks_started_per_invitation_max"], 2);
    // filter by invitation and status
    let failed = b
        .list_engagement_by_accepting_invitation_tasks()
        .catalog("Sandbox")
        .engagement_invitation_identifier(&inv)
        .task_status(TaskStatus::Failed)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.task_summaries().len(), 1);
    assert_eq!(failed.task_summaries()[0].task_id(), Some(ids[1].as_str()));
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_paginate_with_next_token_and_sort() {
    let e = emu(EmulatorConfig {
        task_delay: Duration::from_secs(60),
        ..config()
    })
    .await;
    let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
    let mut engs = Vec::new();
    let mut invs = Vec::new();
    for i in 0..5 {
        let eng = engagement(&a, &format!("e{i}")).await;
        invs.push(invite(&a, &eng, B, &format!("i{i}")).await);
        engs.push(eng);
    }
    // invitations, newest first by default, 2 per page
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = b
            .list_engagement_invitations()
            .catalog("Sandbox")
            .participant_type(ParticipantType::Receiver)
            .max_results(2)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        seen.extend(
            out.engagement_invitation_summaries()
                .iter()
                .map(|s| s.id().to_string()),
        );
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let mut newest_first = invs.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    // engagements, ascending by creation
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = a
            .list_engagements()
            .catalog("Sandbox")
            .max_results(3)
            .sort(
                EngagementSort::builder()
                    .sort_order(SortOrder::Ascending)
                    .sort_by(EngagementSortName::CreatedDate)
                    .build()
                    .unwrap(),
            )
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        seen.extend(
            out.engagement_summary_list()
                .iter()
                .map(|s| s.id().unwrap().to_string()),
        );
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, engs);
    // tasks: TaskIdentifier filter, MaxResults, NextToken, descending sort
    let mut tasks = Vec::new();
    for inv in &invs {
        let t = b
            .start_engagement_by_accepting_invitation_task()
            .catalog("Sandbox")
            .identifier(inv)
            .send()
            .await
            .unwrap();
        tasks.push(t.task_id().unwrap().to_string());
    }
    let desc = ListTasksSortBase::builder()
        .sort_order(SortOrder::Descending)
        .sort_by(ListTasksSortName::StartTime)
        .build()
        .unwrap();
    let p1 = b
        .list_engagement_by_accepting_invitation_tasks()
        .catalog("Sandbox")
        .set_task_identifier(Some(tasks[..4].to_vec()))
        .sort(desc.clone())
        .max_results(3)
        .send()
        .await
        .unwrap();
    let p2 = b
        .list_engagement_by_accepting_invitation_tasks()
        .catalog("Sandbox")
        .set_task_identifier(Some(tasks[..4].to_vec()))
        .sort(desc)
        .max_results(3)
        .next_token(p1.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert!(p2.next_token().is_none());
    let got: Vec<&str> = p1
        .task_summaries()
        .iter()
        .chain(p2.task_summaries())
        .map(|t| t.task_id().unwrap())
        .collect();
    let want: Vec<&str> = tasks[..4].iter().rev().map(String::as_str).collect();
    assert_eq!(got, want);
    let bad = b
        .list_engagements()
        .catalog("Sandbox")
        .next_token("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad), "ValidationException");
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_malformed_and_hostile_requests_get_aws_errors_and_the_server_keeps_answering() {
    let e = emu(config()).await;
    let u = e.url();
    let ok_body = br#"{"Catalog":"Sandbox","Identifier":"engi-0000000000000"}"#;
    let head = |extra: &str| {
        format!("POST / HTTP/1.1\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: AWSPartnerCentralSelling.GetEngagementInvitation\r\n{extra}")
    };
    let signed = format!("Authorization: {}\r\n", auth_for(A));

    let r = raw(&u, &head(""), ok_body).await.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.body["__type"], "MissingAuthenticationTokenException");
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("Authentication"));

    let r = raw(&u, &head(&signed), ok_body).await.unwrap();
    assert_eq!(r.body["__type"], "ResourceNotFoundException");
    assert!(r.headers.contains("x-amzn-requestid"));

    let r = raw(&u, &head(&signed), b"{\"Catalog\": ").await.unwrap();
    assert_eq!(
        (r.status, r.body["__type"].as_str()),
        (400, Some("SerializationException"))
    );
    let r = raw(&u, &head(&signed), b"[1,2]").await.unwrap();
    assert_eq!(r.body["__type"], "SerializationException");

    let wrong_ct = format!("POST / HTTP/1.1\r\nContent-Type: text/plain\r\nX-Amz-Target: AWSPartnerCentralSelling.GetEngagementInvitation\r\n{signed}");
    let r = raw(&u, &wrong_ct, ok_body).await.unwrap();
    assert_eq!(
        (r.status, r.body["__type"].as_str()),
        (400, Some("SerializationException"))
    );
    assert!(r.body["message"].as_str().unwrap().contains("Content-Type"));

    // an operation of the model the emulator does not serve (any row of the table not emulated)
    let unserved = cosell::model::ops::operations()
        .iter()
        .find(|o| !o.emulated)
        .map(|o| format!("AWSPartnerCentralSelling.{}", o.name));
    for target in [
        "AWSPartnerCentralSelling.DeleteEverything".to_string(),
        unserved.unwrap_or_else(|| "AWSPartnerCentralSelling.DeleteEverything".into()),
        "Other.GetEngagement".to_string(),
    ] {
        let h = format!("POST / HTTP/1.1\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: {target}\r\n{signed}");
        let r = raw(&u, &h, b"{}").await.unwrap();
        assert_eq!(
            (r.status, r.body["__type"].as_str()),
            (400, Some("UnknownOperationException")),
            "{target}"
        );
    }

    // oversized: refused from the declared length, without reading the body
    let big = head(&format!("{signed}Content-Length: {}\r\n", 2 << 20));
    let r = raw(&u, &big, b"").await.unwrap();
    assert_eq!(
        (r.status, r.body["__type"].as_str()),
        (413, Some("RequestEntityTooLargeException"))
    );

    // deep nesting: serde_json's recursion limit answers, the stack survives
    let deep = format!(
        "{{\"Catalog\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let r = raw(&u, &head(&signed), deep.as_bytes()).await.unwrap();
    assert_eq!(r.body["__type"], "SerializationException");
    assert!(
        r.body["message"].as_str().unwrap().contains("recursion"),
        "{}",
        r.body
    );
    // nesting within serde's limit is a validation error, not a crash
    let nested = format!("{{\"Catalog\":{}1{}}}", "[".repeat(100), "]".repeat(100));
    let r = raw(&u, &head(&signed), nested.as_bytes()).await.unwrap();
    assert_eq!(r.body["__type"], "ValidationException");

    // still answering, over keep-alive too
    let r = raw(&u, "GET /_emulator/stats HTTP/1.1\r\n", b"")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // every signed call with the target counts (the unsigned one is refused before)
    assert_eq!(r.body["calls"]["GetEngagementInvitation"], 7);
    let sdk = sdk_client(&u, A);
    for i in 0..20 {
        sdk.create_engagement()
            .catalog("Sandbox")
            .client_token(format!("k{i}"))
            .send()
            .await
            .unwrap();
    }
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connections_are_served() {
    let e = emu(config()).await;
    let u = e.url();
    let body = json!({"Catalog": "Sandbox", "ClientToken": "x"});
    let mut set = tokio::task::JoinSet::new();
    for i in 0..400 {
        let u = u.clone();
        let mut body = body.clone();
        body["ClientToken"] = json!(format!("c{i}"));
        set.spawn(async move { call(&u, A, "CreateEngagement", &body).await.status });
    }
    let mut n = 0;
    while let Some(s) = set.join_next().await {
        assert_eq!(s.unwrap(), 200);
        n += 1;
    }
    assert_eq!(n, 400);
    assert_eq!(e.stats()["resources"]["engagements"], 400);
    e.shutdown().await.unwrap();
}

/// Outcome of each call under a fault mix: "ok", an error code, or "dropped".
async fn fault_run(seed: u64) -> (Vec<String>, Value) {
    let e = emu(EmulatorConfig {
        faults: Faults::parse("throttle=0.2,internal=0.1,reset=0.3,latency=10ms@0.1").unwrap(),
        seed,
        ..config()
    })
    .await;
    let a = sdk_client(&e.url(), A);
    let mut out = Vec::new();
    for i in 0..40 {
        let r = a
            .create_engagement()
            .catalog("Sandbox")
            .client_token(format!("t{i}"))
            .send()
            .await;
        out.push(match r {
            Ok(_) => "ok".to_string(),
            Err(err) => match err.code() {
                Some(c) => c.to_string(),
                None => "dropped".to_string(),
            },
        });
    }
    let stats = e.stats();
    e.shutdown().await.unwrap();
    (out, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_deterministic_under_a_seed_and_resets_straddle_the_effect() {
    let (one, s1) = fault_run(7).await;
    let (two, s2) = fault_run(7).await;
    assert_eq!(one, two);
    assert_eq!(s1["faults"], s2["faults"]);
    let (other, _) = fault_run(8).await;
    assert_ne!(one, other, "another seed, another sequence");
    for kind in [
        "ThrottlingException",
        "InternalServerException",
        "dropped",
        "ok",
    ] {
        assert!(one.iter().any(|o| o == kind), "{kind} missing from {one:?}");
    }
    let f = &s1["faults"];
    assert!(f["reset_before_effect"].as_u64().unwrap() > 0, "{f}");
    assert!(f["reset_after_effect"].as_u64().unwrap() > 0, "{f}");
    assert!(f["latency"].as_u64().unwrap() > 0, "{f}");
    let dropped = one.iter().filter(|o| *o == "dropped").count() as u64;
    assert_eq!(dropped, f["reset"].as_u64().unwrap());
    assert_eq!(
        one.iter().filter(|o| *o == "ThrottlingException").count() as u64,
        f["throttle"].as_u64().unwrap()
    );
    // a reset after the effect created the engagement; before the effect it did not
    let ok = one.iter().filter(|o| *o == "ok").count() as u64;
    assert_eq!(
        s1["resources"]["engagements"].as_u64().unwrap(),
        ok + f["reset_after_effect"].as_u64().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_response_is_recovered_by_retrying_with_the_same_client_token() {
    // with this seed the first attempts include a reset after the effect (the engagement
    // exists, the answer is lost); the retry with the same token must find it, not make another
    let faults = Faults::parse("reset=0.5").unwrap();
    let e = emu(EmulatorConfig {
        faults,
        seed: 3,
        ..config()
    })
    .await;
    let a = sdk_client(&e.url(), A);
    let mut created = None;
    for _ in 0..20 {
        match a
            .create_engagement()
            .catalog("Sandbox")
            .client_token("one")
            .title("T")
            .send()
            .await
        {
            Ok(o) => {
                created = Some(o.id().unwrap().to_string());
                break;
            }
            Err(err) => assert!(err.code().is_none(), "only drops expected: {err:?}"),
        }
    }
    assert!(created.is_some());
    let s = e.stats();
    assert_eq!(s["resources"]["engagements"], 1, "{s}");
    assert!(
        s["faults"]["reset_after_effect"].as_u64().unwrap() >= 1,
        "{s}"
    );
    // every call that got past the reset-before point, except the first, was a replay
    let calls = s["calls"]["CreateEngagement"].as_u64().unwrap();
    let before = s["faults"]["reset_before_effect"].as_u64().unwrap();
    assert_eq!(
        s["idempotent_replays"].as_u64().unwrap(),
        calls - before - 1,
        "{s}"
    );
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart_through_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emu.json");
    let cfg = EmulatorConfig {
        state: Some(path.clone()),
        ..config()
    };
    let e = emu(cfg.clone()).await;
    let a = sdk_client(&e.url(), A);
    let eng = engagement(&a, "persist").await;
    let inv = invite(&a, &eng, B, "inv").await;
    e.shutdown().await.unwrap();
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(saved["format"], 1);

    let e = emu(cfg).await;
    let a = sdk_client(&e.url(), A);
    let g = a
        .get_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap();
    assert_eq!(g.engagement_id(), Some(eng.as_str()));
    // idempotency records survive too
    assert_eq!(engagement(&a, "persist").await, eng);
    assert_eq!(e.stats()["resources"]["engagements"], 1);
    e.shutdown().await.unwrap();
}

#[test]
fn the_cli_starts_serves_and_rejects_bad_flags() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cosell"))
        .args([
            "emulator",
            "--bind",
            "127.0.0.1:0",
            "--task-delay",
            "100ms",
            "--state",
        ])
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("cosell emulator listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(line.contains("account rule"), "{line}");
    let url = line.split_whitespace().nth(4).unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let a = sdk_client(&url, "AKIDEXAMPLE");
        let eng = engagement(&a, "cli").await;
        a.get_engagement()
            .catalog("Sandbox")
            .identifier(&eng)
            .send()
            .await
            .unwrap()
            .created_by()
            .unwrap()
            .to_string()
    });
    assert_eq!(
        id, "111122223333",
        "a non-numeric key is the default account"
    );
    // Ctrl-C: a clean stop that writes the state file
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(cosell::exit::OK));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["format"], 1);
    assert_eq!(saved["engagements"].as_object().unwrap().len(), 1);

    let out = crate::support::Cosell::new()
        .args(["emulator", "--quotas", "fast"])
        .run();
    out.code(cosell::exit::INVALID).stderr_has("--quotas");
    let out = crate::support::Cosell::new()
        .args(["emulator", "--faults", "reset=2"])
        .run();
    out.code(cosell::exit::INVALID).stderr_has("--faults");
}

/// The operation table says which operations the emulator serves: each of those is in the
/// model and answered (a validation or not-found answer for an empty request, never
/// `UnknownOperationException`); every other operation of the table is answered
/// `UnknownOperationException`, and the stats count exactly the served ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_the_table_says_is_emulated_is_served_and_no_other() {
    let e = emu(config()).await;
    let u = e.url();
    let rows = cosell::model::ops::operations();
    assert_eq!(rows.len(), cosell::model::model().operations().len());
    let mut served = Vec::new();
    for row in rows {
        assert!(cosell::model::model().operation(row.name).is_some());
        let r = call(&u, A, row.name, &json!({})).await;
        let code = r.body["__type"].as_str().unwrap_or("").to_string();
        if row.emulated {
            assert_ne!(
                code, "UnknownOperationException",
                "{} is not served",
                row.name
            );
            served.push(row.name);
        } else {
            assert_eq!(r.status, 400, "{}", row.name);
            assert_eq!(code, "UnknownOperationException", "{} {}", row.name, r.body);
        }
    }
    assert_eq!(served.len(), cosell::model::ops::emulated().count());
    let stats = raw(&u, "GET /_emulator/stats HTTP/1.1\r\n", b"")
        .await
        .unwrap()
        .body;
    let counted: Vec<&str> = stats["calls"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = served.clone();
    want.sort_unstable();
    let mut counted = counted;
    counted.sort_unstable();
    assert_eq!(counted, want);
    e.shutdown().await.unwrap();
}
