//! The engagement family of the emulator, through the real SDK: AcceptEngagementInvitation
//! (membership, conflicts), ListEngagementMembers, engagement contexts with optimistic locking,
//! ListEngagementResourceAssociations, StartOpportunityFromEngagementTask and its list, and the
//! prospecting tasks' lifecycle; every new operation's raw answer against the model.

use crate::emulator::{assert_conforms, call, code, config, emu, engagement, invite, A, B, C};
use crate::emulator_opportunities::{create, get, start_engagement};
use crate::support::sdk_client;
use aws_sdk_partnercentralselling::types::*;
use aws_sdk_partnercentralselling::Client;
use serde_json::json;
use std::time::{Duration, Instant};

fn project_context(company: &str, title: &str) -> CustomerProjectsContext {
    CustomerProjectsContext::builder()
        .customer(
            EngagementCustomer::builder()
                .industry(Industry::AerospaceSatellite)
                .company_name(company)
                .website_url("https://acme.example.com")
                .country_code(CountryCode::De)
                .build()
                .unwrap(),
        )
        .project(
            EngagementCustomerProjectDetails::builder()
                .title(title)
                .business_problem("They need a much better data platform for analytics")
                .target_completion_date("2027-03-31")
                .build()
                .unwrap(),
        )
        .build()
}

async fn add_context(c: &Client, eng: &str, token: &str, title: &str) -> String {
    c.create_engagement_context()
        .catalog("Sandbox")
        .engagement_identifier(eng)
        .client_token(token)
        .r#type(EngagementContextType::CustomerProject)
        .payload(EngagementContextPayload::CustomerProject(project_context(
            "Acme", title,
        )))
        .send()
        .await
        .expect("create context")
        .context_id()
        .unwrap()
        .to_string()
}

async fn accept(c: &Client, inv: &str) {
    c.accept_engagement_invitation()
        .catalog("Sandbox")
        .identifier(inv)
        .send()
        .await
        .expect("accept invitation");
}

async fn members(c: &Client, eng: &str) -> Vec<String> {
    c.list_engagement_members()
        .catalog("Sandbox")
        .identifier(eng)
        .send()
        .await
        .expect("list members")
        .engagement_member_list()
        .iter()
        .map(|m| m.account_id().unwrap_or("").to_string())
        .collect()
}

/// Poll an opportunity-from-engagement task until it leaves IN_PROGRESS.
async fn from_engagement_done(c: &Client, task: &str) -> ListOpportunityFromEngagementTaskSummary {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let out = c
            .list_opportunity_from_engagement_tasks()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_accept_invitation_makes_a_member_and_a_second_accept_is_a_conflict() {
    let e = emu(config()).await;
    let (a, b, c) = (
        sdk_client(&e.url(), A),
        sdk_client(&e.url(), B),
        sdk_client(&e.url(), C),
    );
    let eng = engagement(&a, "e1").await;
    let inv = invite(&a, &eng, B, "i1").await;
    // before accepting, B is no member
    let err = b
        .list_engagement_members()
        .catalog("Sandbox")
        .identifier(&eng)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDeniedException");
    let before = a
        .get_engagement()
        .catalog("Sandbox")
        .identifier(&eng)
        .send()
        .await
        .unwrap();
    // the sender may not accept its own invitation
    let err = a
        .accept_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDeniedException");
    accept(&b, &inv).await;
    assert_eq!(members(&b, &eng).await, vec![A, B]);
    let got = b
        .get_engagement()
        .catalog("Sandbox")
        .identifier(&eng)
        .send()
        .await
        .expect("a member may get the engagement");
    assert_eq!(got.member_count(), Some(2));
    assert!(got.modified_at().unwrap() > before.modified_at().unwrap());
    assert_eq!(got.modified_by(), Some(B));
    let status = b
        .get_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), Some(&InvitationStatus::Accepted));
    // accepting creates no opportunity (StartOpportunityFromEngagementTask does)
    let opps = b
        .list_opportunities()
        .catalog("Sandbox")
        .send()
        .await
        .unwrap();
    assert!(opps.opportunity_summaries().is_empty());
    // a second accept, and a reject after the accept, are conflicts
    let again = b
        .accept_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again), "ConflictException");
    let reject = b
        .reject_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&reject), "ConflictException");
    // a REJECTED invitation cannot be accepted
    let inv_c = invite(&a, &eng, C, "i2").await;
    c.reject_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv_c)
        .send()
        .await
        .unwrap();
    let err = c
        .accept_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv_c)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ConflictException");
    assert_eq!(members(&a, &eng).await, vec![A, B]);
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_accepting_an_expired_invitation_is_refused() {
    let e = emu(cosell::emulator::EmulatorConfig {
        invitation_ttl: Duration::from_millis(300),
        ..config()
    })
    .await;
    let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
    let eng = engagement(&a, "e1").await;
    let inv = invite(&a, &eng, B, "i1").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let err = b
        .accept_engagement_invitation()
        .catalog("Sandbox")
        .identifier(&inv)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ConflictException");
    assert!(format!("{err:?}").contains("EXPIRED"), "{err:?}");
    assert_eq!(members(&a, &eng).await, vec![A]);
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_engagement_members_are_listed_page_by_page() {
    let e = emu(config()).await;
    let (a, b, c) = (
        sdk_client(&e.url(), A),
        sdk_client(&e.url(), B),
        sdk_client(&e.url(), C),
    );
    let eng = engagement(&a, "e1").await;
    let ib = invite(&a, &eng, B, "ib").await;
    let ic = invite(&a, &eng, C, "ic").await;
    accept(&b, &ib).await;
    accept(&c, &ic).await;
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = c
            .list_engagement_members()
            .catalog("Sandbox")
            .identifier(&eng)
            .max_results(2)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(out.engagement_member_list().len() <= 2);
        for m in out.engagement_member_list() {
            seen.push(m.account_id().unwrap().to_string());
            assert_eq!(
                m.company_name(),
                Some(format!("Partner {}", m.account_id().unwrap()).as_str())
            );
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, vec![A, B, C]);
    // the SDK paginator agrees
    let all: Vec<_> = a
        .list_engagement_members()
        .catalog("Sandbox")
        .identifier(&eng)
        .max_results(1)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_engagement_contexts_show_in_get_and_a_stale_update_is_a_conflict() {
    let e = emu(config()).await;
    let (a, c) = (sdk_client(&e.url(), A), sdk_client(&e.url(), C));
    let eng = engagement(&a, "e1").await;
    let created = a
        .create_engagement_context()
        .catalog("Sandbox")
        .engagement_identifier(&eng)
        .client_token("c1")
        .r#type(EngagementContextType::CustomerProject)
        .payload(EngagementContextPayload::CustomerProject(project_context(
            "Acme", "First",
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(created.context_id(), Some("1"));
    assert_eq!(created.engagement_id(), Some(eng.as_str()));
    let got = a
        .get_engagement()
        .catalog("Sandbox")
        .identifier(&eng)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.modified_at(),
        created.engagement_last_modified_at(),
        "EngagementLastModifiedAt is GetEngagement's ModifiedAt"
    );
    assert_eq!(got.arn(), created.engagement_arn());
    let ctxs = got.contexts();
    assert_eq!(ctxs.len(), 1);
    assert_eq!(ctxs[0].id(), Some("1"));
    assert_eq!(ctxs[0].r#type(), &EngagementContextType::CustomerProject);
    let EngagementContextPayload::CustomerProject(p) = ctxs[0].payload().unwrap() else {
        panic!("{:?}", ctxs[0]);
    };
    assert_eq!(p.project().unwrap().title(), "First");
    // the same ClientToken replays the same context; a new one adds the next id
    let replay = a
        .create_engagement_context()
        .catalog("Sandbox")
        .engagement_identifier(&eng)
        .client_token("c1")
        .r#type(EngagementContextType::CustomerProject)
        .payload(EngagementContextPayload::CustomerProject(project_context(
            "Acme", "First",
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.context_id(), Some("1"));
    assert_eq!(add_context(&a, &eng, "c2", "Second").await, "2");
    let current = a
        .get_engagement()
        .catalog("Sandbox")
        .identifier(&eng)
        .send()
        .await
        .unwrap();
    assert_eq!(current.contexts().len(), 2);
    let update = |at: &aws_smithy_types::DateTime, id: &str, title: &str| {
        a.update_engagement_context()
            .catalog("Sandbox")
            .engagement_identifier(&eng)
            .context_identifier(id)
            .engagement_last_modified_at(*at)
            .r#type(EngagementContextType::CustomerProject)
            .payload(UpdateEngagementContextPayload::CustomerProject(
                project_context("Acme Corp", title),
            ))
    };
    // stale: the time of the first create, before the second context changed the engagement
    let stale = update(created.engagement_last_modified_at().unwrap(), "1", "Stale")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&stale), "ConflictException");
    let unknown = update(current.modified_at().unwrap(), "9", "Nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&unknown), "ResourceNotFoundException");
    let wrong_type = a
        .update_engagement_context()
        .catalog("Sandbox")
        .engagement_identifier(&eng)
        .context_identifier("1")
        .engagement_last_modified_at(*current.modified_at().unwrap())
        .r#type(EngagementContextType::Lead)
        .payload(UpdateEngagementContextPayload::CustomerProject(
            project_context("Acme", "x"),
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&wrong_type), "ValidationException");
    let updated = update(current.modified_at().unwrap(), "1", "Replaced")
        .send()
        .await
        .unwrap();
    assert_eq!(updated.context_id(), "1");
    let after = a
        .get_engagement()
        .catalog("Sandbox")
        .identifier(&eng)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.modified_at(),
        Some(updated.engagement_last_modified_at())
    );
    assert!(after.modified_at() > current.modified_at());
    let EngagementContextPayload::CustomerProject(p) = after.contexts()[0].payload().unwrap()
    else {
        panic!()
    };
    assert_eq!(p.project().unwrap().title(), "Replaced");
    assert_eq!(p.customer().unwrap().company_name(), "Acme Corp");
    let EngagementContextPayload::CustomerProject(p2) = after.contexts()[1].payload().unwrap()
    else {
        panic!()
    };
    assert_eq!(
        p2.project().unwrap().title(),
        "Second",
        "other contexts stay"
    );
    // the same update again carries the now-stale time
    let again = update(current.modified_at().unwrap(), "1", "Replaced")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again), "ConflictException");
    // a non-member may not add a context
    let err = c
        .create_engagement_context()
        .catalog("Sandbox")
        .engagement_identifier(&eng)
        .client_token("x")
        .r#type(EngagementContextType::CustomerProject)
        .payload(EngagementContextPayload::CustomerProject(project_context(
            "Acme", "Intruder",
        )))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDeniedException");
    // at most five contexts
    for i in 3..=5 {
        assert_eq!(
            add_context(&a, &eng, &format!("c{i}"), "More").await,
            i.to_string()
        );
    }
    let sixth = a
        .create_engagement_context()
        .catalog("Sandbox")
        .engagement_identifier(&eng)
        .client_token("c6")
        .r#type(EngagementContextType::CustomerProject)
        .payload(EngagementContextPayload::CustomerProject(project_context(
            "Acme", "Sixth",
        )))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&sixth), "ServiceQuotaExceededException");
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_opportunity_from_engagement_task_creates_and_associates_the_opportunity() {
    let e = emu(config()).await;
    let (a, b, c) = (
        sdk_client(&e.url(), A),
        sdk_client(&e.url(), B),
        sdk_client(&e.url(), C),
    );
    let eng = engagement(&a, "e1").await;
    let ctx = add_context(&a, &eng, "c1", "Lakehouse").await;
    let inv = invite(&a, &eng, B, "i1").await;
    accept(&b, &inv).await;
    let start = |cl: &Client, token: &str, context: &str| {
        cl.start_opportunity_from_engagement_task()
            .catalog("Sandbox")
            .client_token(token)
            .identifier(&eng)
            .context_identifier(context)
    };
    let started = start(&b, "t1", &ctx).send().await.unwrap();
    assert_eq!(started.task_status(), Some(&TaskStatus::InProgress));
    let task = started.task_id().unwrap().to_string();
    let done = from_engagement_done(&b, &task).await;
    assert_eq!(done.task_status(), Some(&TaskStatus::Complete), "{done:?}");
    assert_eq!(done.engagement_id(), Some(eng.as_str()));
    assert_eq!(done.context_id(), Some(ctx.as_str()));
    assert!(done.resource_snapshot_job_id().is_some());
    let opp = done.opportunity_id().unwrap().to_string();
    // the opportunity is the caller's, built from the CustomerProject context
    let o = get(&b, "Sandbox", &opp).await;
    let account = o.customer().unwrap().account().unwrap();
    assert_eq!(account.company_name(), "Acme");
    assert_eq!(
        account.address().unwrap().country_code(),
        Some(&CountryCode::De)
    );
    assert_eq!(o.project().unwrap().title(), Some("Lakehouse"));
    assert_eq!(
        o.life_cycle().unwrap().target_close_date(),
        Some("2027-03-31")
    );
    // associated with the engagement, visible to every member
    let assoc = a
        .list_engagement_resource_associations()
        .catalog("Sandbox")
        .engagement_identifier(&eng)
        .send()
        .await
        .unwrap();
    let list = assoc.engagement_resource_association_summaries();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].resource_id(), Some(opp.as_str()));
    assert_eq!(list[0].resource_type(), Some(&ResourceType::Opportunity));
    assert_eq!(list[0].created_by(), Some(B));
    assert_eq!(list[0].catalog(), "Sandbox");
    // the same ClientToken replays the finished task; a new start for the same context is a
    // conflict
    let replay = start(&b, "t1", &ctx).send().await.unwrap();
    assert_eq!(replay.task_id(), Some(task.as_str()));
    assert_eq!(replay.task_status(), Some(&TaskStatus::Complete));
    assert_eq!(replay.opportunity_id(), Some(opp.as_str()));
    let dup = start(&b, "t2", &ctx).send().await.unwrap_err();
    assert_eq!(code(&dup), "ConflictException");
    // an unknown context fails the task with ContextNotFound
    let missing = start(&b, "t3", "7").send().await.unwrap();
    let failed = from_engagement_done(&b, missing.task_id().unwrap()).await;
    assert_eq!(failed.task_status(), Some(&TaskStatus::Failed));
    assert_eq!(failed.reason_code(), Some(&ReasonCode::ContextNotFound));
    assert!(failed.opportunity_id().is_none());
    // filters of the task list
    let by_ctx = b
        .list_opportunity_from_engagement_tasks()
        .catalog("Sandbox")
        .context_identifier("7")
        .send()
        .await
        .unwrap();
    assert_eq!(by_ctx.task_summaries().len(), 1);
    let by_status = b
        .list_opportunity_from_engagement_tasks()
        .catalog("Sandbox")
        .task_status(TaskStatus::Complete)
        .engagement_identifier(&eng)
        .send()
        .await
        .unwrap();
    assert_eq!(by_status.task_summaries()[0].task_id(), Some(task.as_str()));
    // a non-member may not start one, nor list the engagement's associations
    let err = start(&c, "t4", &ctx).send().await.unwrap_err();
    assert_eq!(code(&err), "AccessDeniedException");
    let err = c
        .list_engagement_resource_associations()
        .catalog("Sandbox")
        .engagement_identifier(&eng)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDeniedException");
    let none = c
        .list_engagement_resource_associations()
        .catalog("Sandbox")
        .send()
        .await
        .unwrap();
    assert!(none.engagement_resource_association_summaries().is_empty());
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_opportunity_from_engagement_completes_in_the_start_call_with_no_delay() {
    let e = emu(cosell::emulator::EmulatorConfig {
        task_delay: Duration::ZERO,
        ..config()
    })
    .await;
    let a = sdk_client(&e.url(), A);
    let eng = engagement(&a, "e1").await;
    let ctx = add_context(&a, &eng, "c1", "Now").await;
    let out = a
        .start_opportunity_from_engagement_task()
        .catalog("Sandbox")
        .client_token("t1")
        .identifier(&eng)
        .context_identifier(&ctx)
        .send()
        .await
        .unwrap();
    assert_eq!(out.task_status(), Some(&TaskStatus::Complete));
    let opp = out.opportunity_id().unwrap();
    assert_eq!(get(&a, "Sandbox", opp).await.id(), opp);
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_resource_associations_filter_and_page() {
    let e = emu(config()).await;
    let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
    // two opportunities of A start engagements; one of B starts another
    let mut opps = Vec::new();
    for (c, t) in [(&a, "o1"), (&a, "o2"), (&b, "o3")] {
        let opp = create(c, "Sandbox", t, "Acme").await;
        start_engagement(c, &opp, &format!("s-{t}")).await;
        opps.push(opp);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all: Vec<EngagementResourceAssociationSummary> = a
        .list_engagement_resource_associations()
        .catalog("Sandbox")
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|s| s.resource_id().unwrap()).collect();
    assert_eq!(
        ids,
        vec![opps[0].as_str(), opps[1].as_str()],
        "only A's engagements"
    );
    let by_res = a
        .list_engagement_resource_associations()
        .catalog("Sandbox")
        .resource_type(ResourceType::Opportunity)
        .resource_identifier(&opps[1])
        .send()
        .await
        .unwrap();
    assert_eq!(by_res.engagement_resource_association_summaries().len(), 1);
    let eng1 = by_res.engagement_resource_association_summaries()[0]
        .engagement_id()
        .unwrap()
        .to_string();
    let by_creator = a
        .list_engagement_resource_associations()
        .catalog("Sandbox")
        .created_by(B)
        .send()
        .await
        .unwrap();
    assert!(by_creator
        .engagement_resource_association_summaries()
        .is_empty());
    let by_eng = a
        .list_engagement_resource_associations()
        .catalog("Sandbox")
        .engagement_identifier(&eng1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_eng.engagement_resource_association_summaries()[0].resource_id(),
        Some(opps[1].as_str())
    );
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_prospecting_task_goes_pending_in_progress_completed_per_engagement() {
    let e = emu(cosell::emulator::EmulatorConfig {
        task_delay: Duration::from_millis(600),
        ..config()
    })
    .await;
    let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
    let mine = engagement(&a, "e1").await;
    add_context(&a, &mine, "c1", "Prospect me").await;
    let theirs = engagement(&b, "e2").await;
    let start = a
        .start_prospecting_from_engagement_task()
        .catalog("Sandbox")
        .client_token("p1")
        .task_name("Q3 prospecting")
        .identifiers(&mine)
        .identifiers(&theirs)
        .send()
        .await
        .unwrap();
    assert_eq!(start.task_status(), &ProspectingTaskStatus::Pending);
    assert_eq!(start.identifiers(), [mine.clone(), theirs.clone()]);
    let task = start.task_id().unwrap().to_string();
    assert!(
        regex::Regex::new("^task-[0-9a-z]{14}$")
            .unwrap()
            .is_match(&task),
        "{task}"
    );
    assert!(start
        .task_arn()
        .unwrap()
        .contains(":catalog/Sandbox/prospecting-from-engagement-task/"));
    let poll = || {
        a.get_prospecting_from_engagement_task()
            .catalog("Sandbox")
            .task_identifier(&task)
            .send()
    };
    let first = poll().await.unwrap();
    assert!(first.end_time().is_none());
    assert_eq!(
        first.engagements()[0].status(),
        &ProspectingTaskStatus::Pending
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let mid = poll().await.unwrap();
    assert!(mid.end_time().is_none());
    assert_eq!(
        mid.engagements()[0].status(),
        &ProspectingTaskStatus::InProgress
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let done = poll().await.unwrap();
    assert!(done.end_time().is_some(), "{done:?}");
    assert_eq!(done.task_name(), "Q3 prospecting");
    let results = done.engagements();
    assert_eq!(results[0].engagement_identifier(), mine);
    assert_eq!(results[0].status(), &ProspectingTaskStatus::Completed);
    assert_eq!(results[1].engagement_identifier(), theirs);
    assert_eq!(results[1].status(), &ProspectingTaskStatus::Failed);
    assert_eq!(results[1].reason_code(), Some("EngagementAccessDenied"));
    // the completed engagement holds a ProspectingResult context naming the task
    let got = a
        .get_engagement()
        .catalog("Sandbox")
        .identifier(&mine)
        .send()
        .await
        .unwrap();
    let pr = got
        .contexts()
        .iter()
        .find(|c| c.r#type() == &EngagementContextType::ProspectingResult)
        .expect("a prospecting result context");
    let EngagementContextPayload::ProspectingResult(r) = pr.payload().unwrap() else {
        panic!("{pr:?}")
    };
    let aws = r.aws().unwrap();
    assert_eq!(aws.task_id(), Some(task.as_str()));
    assert_eq!(aws.customer().unwrap().account_name(), Some("Acme"));
    // B's engagement did not change
    let untouched = b
        .get_engagement()
        .catalog("Sandbox")
        .identifier(&theirs)
        .send()
        .await
        .unwrap();
    assert!(untouched.contexts().is_empty());
    // list: counts, name filter, replay of the start
    let listed = a
        .list_prospecting_from_engagement_tasks()
        .catalog("Sandbox")
        .task_name("Q3 prospecting")
        .send()
        .await
        .unwrap();
    let s = &listed.task_summaries()[0];
    assert_eq!(s.task_id(), task);
    assert_eq!(
        (
            s.total_engagement_count(),
            s.completed_engagement_count(),
            s.failed_engagement_count()
        ),
        (2, 1, 1)
    );
    assert!(s.end_time().is_some());
    let replay = a
        .start_prospecting_from_engagement_task()
        .catalog("Sandbox")
        .client_token("p1")
        .task_name("Q3 prospecting")
        .identifiers(&mine)
        .identifiers(&theirs)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.task_id(), Some(task.as_str()));
    assert_eq!(replay.task_status(), &ProspectingTaskStatus::Completed);
    // another account does not see the task
    let err = b
        .get_prospecting_from_engagement_task()
        .catalog("Sandbox")
        .task_identifier(&task)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");
    assert!(b
        .list_prospecting_from_engagement_tasks()
        .catalog("Sandbox")
        .send()
        .await
        .unwrap()
        .task_summaries()
        .is_empty());
    // an engagement listed twice is refused
    let err = a
        .start_prospecting_from_engagement_task()
        .catalog("Sandbox")
        .client_token("p2")
        .task_name("dup")
        .identifiers(&mine)
        .identifiers(&mine)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    e.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_prospecting_tasks_list_by_page_and_sort() {
    let e = emu(cosell::emulator::EmulatorConfig {
        task_delay: Duration::ZERO,
        ..config()
    })
    .await;
    let a = sdk_client(&e.url(), A);
    let eng = engagement(&a, "e1").await;
    let mut ids = Vec::new();
    for name in ["b", "a", "c"] {
        let out = a
            .start_prospecting_from_engagement_task()
            .catalog("Sandbox")
            .client_token(name)
            .task_name(name)
            .identifiers(&eng)
            .send()
            .await
            .unwrap();
        assert_eq!(out.task_status(), &ProspectingTaskStatus::Completed);
        ids.push(out.task_id().unwrap().to_string());
    }
    let pages: Vec<_> = a
        .list_prospecting_from_engagement_tasks()
        .catalog("Sandbox")
        .max_results(2)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    let listed: Vec<String> = pages
        .iter()
        .flat_map(|p| p.task_summaries().iter().map(|s| s.task_id().to_string()))
        .collect();
    assert_eq!(listed, ids, "oldest first by default");
    let by_name = a
        .list_prospecting_from_engagement_tasks()
        .catalog("Sandbox")
        .sort(
            ProspectingFromEngagementTaskSort::builder()
                .sort_by(ProspectingFromEngagementTaskSortName::TaskName)
                .sort_order(SortOrder::Descending)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = by_name
        .task_summaries()
        .iter()
        .map(|s| s.task_name())
        .collect();
    assert_eq!(names, vec!["c", "b", "a"]);
    e.shutdown().await.unwrap();
}

/// Every new operation's raw answer has exactly the members of its output shape, and the
/// waiters of the operation table read the task answers as the engine will.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_engagement_family_answers_conform_to_the_model_and_the_waiters() {
    let e = emu(cosell::emulator::EmulatorConfig {
        task_delay: Duration::from_millis(100),
        ..config()
    })
    .await;
    let u = e.url();
    let ok = |r: crate::emulator::Raw, op: &str| {
        assert_eq!(r.status, 200, "{op}: {:#}", r.body);
        assert_conforms(op, &r.body);
        r.body
    };
    let eng = ok(
        call(
            &u,
            A,
            "CreateEngagement",
            &json!({"Catalog": "Sandbox", "ClientToken": "t1", "Title": "T", "Description": "D"}),
        )
        .await,
        "CreateEngagement",
    )["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let customer = json!({"Industry": "Aerospace", "CompanyName": "Acme", "WebsiteUrl": "https://acme.example.com", "CountryCode": "US"});
    let project = json!({"Title": "DP", "BusinessProblem": "They need a much better data platform", "TargetCompletionDate": "2027-01-31"});
    let created = ok(
        call(&u, A, "CreateEngagementContext", &json!({"Catalog": "Sandbox", "ClientToken": "c1", "EngagementIdentifier": eng,
            "Type": "CustomerProject", "Payload": {"CustomerProject": {"Customer": customer, "Project": project}}})).await,
        "CreateEngagementContext",
    );
    let lead = ok(
        call(&u, A, "CreateEngagementContext", &json!({"Catalog": "Sandbox", "ClientToken": "c2", "EngagementIdentifier": eng,
            "Type": "Lead", "Payload": {"Lead": {"Customer": {"CompanyName": "Acme"},
                "Interactions": [{"SourceType": "Web", "SourceId": "s1", "SourceName": "site", "Contact": {"BusinessTitle": "CTO", "Email": "cto@acme.example.com", "FirstName": "Ada", "LastName": "L"}}]}}})).await,
        "CreateEngagementContext",
    );
    let updated = ok(
        call(&u, A, "UpdateEngagementContext", &json!({"Catalog": "Sandbox", "EngagementIdentifier": eng,
            "ContextIdentifier": lead["ContextId"], "EngagementLastModifiedAt": lead["EngagementLastModifiedAt"],
            "Type": "Lead", "Payload": {"Lead": {"Customer": {"CompanyName": "Acme Corp"}, "QualificationStatus": "Qualified",
                "Interaction": {"SourceType": "Event", "SourceId": "s2", "SourceName": "summit", "Contact": {"BusinessTitle": "CEO", "Email": "ceo@acme.example.com", "FirstName": "Bo", "LastName": "K"}}}}})).await,
        "UpdateEngagementContext",
    );
    let got = ok(
        call(
            &u,
            A,
            "GetEngagement",
            &json!({"Catalog": "Sandbox", "Identifier": eng}),
        )
        .await,
        "GetEngagement",
    );
    assert_eq!(got["ModifiedAt"], updated["EngagementLastModifiedAt"]);
    let stored_lead = &got["Contexts"][1]["Payload"]["Lead"];
    assert_eq!(stored_lead["Customer"]["CompanyName"], "Acme Corp");
    assert_eq!(
        stored_lead["Interactions"].as_array().unwrap().len(),
        2,
        "the update's Interaction joins the lead's Interactions: {stored_lead:#}"
    );
    let invitation = json!({"Message": "m", "Receiver": {"Account": {"AwsAccountId": B}},
        "Payload": {"OpportunityInvitation": {"ReceiverResponsibilities": ["Distributor"],
            "Customer": customer,
            "Project": {"BusinessProblem": "They need a much better data platform", "Title": "DP", "TargetCompletionDate": "2027-01-31",
                "ExpectedCustomerSpend": [{"Amount": "1000", "CurrencyCode": "USD", "Frequency": "Monthly", "TargetCompany": "AWS"}]}}}});
    let inv = ok(
        call(&u, A, "CreateEngagementInvitation", &json!({"Catalog": "Sandbox", "ClientToken": "i1", "EngagementIdentifier": eng, "Invitation": invitation})).await,
        "CreateEngagementInvitation",
    )["Id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        call(
            &u,
            B,
            "AcceptEngagementInvitation",
            &json!({"Catalog": "Sandbox", "Identifier": inv}),
        )
        .await,
        "AcceptEngagementInvitation",
    );
    ok(
        call(
            &u,
            B,
            "ListEngagementMembers",
            &json!({"Catalog": "Sandbox", "Identifier": eng, "MaxResults": 1}),
        )
        .await,
        "ListEngagementMembers",
    );
    let table = |op: &str| cosell::model::ops::operation(op).unwrap().waiter.unwrap();
    let start = ok(
        call(&u, B, "StartOpportunityFromEngagementTask", &json!({"Catalog": "Sandbox", "ClientToken": "s1",
            "Identifier": eng, "ContextIdentifier": created["ContextId"], "Tags": [{"Key": "k", "Value": "v"}]})).await,
        "StartOpportunityFromEngagementTask",
    );
    let w = table("StartOpportunityFromEngagementTask");
    assert!(w.start_is_pending(&start));
    let id = w.id_of(&json!({}), &start).unwrap().to_string();
    let prospect = ok(
        call(
            &u,
            A,
            "StartProspectingFromEngagementTask",
            &json!({"Catalog": "Sandbox", "ClientToken": "p1",
            "Identifiers": [eng], "TaskName": "n"}),
        )
        .await,
        "StartProspectingFromEngagementTask",
    );
    let pw = table("StartProspectingFromEngagementTask");
    assert!(pw.start_is_pending(&prospect));
    let pid = pw.id_of(&json!({}), &prospect).unwrap().to_string();
    let poll_running = ok(
        call(
            &u,
            A,
            pw.poll,
            &pw.poll_request("Sandbox", std::slice::from_ref(&pid)),
        )
        .await,
        pw.poll,
    );
    assert_eq!(
        pw.progress(&poll_running),
        cosell::model::ops::Progress::Running
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let polled = ok(
        call(
            &u,
            B,
            w.poll,
            &w.poll_request("Sandbox", std::slice::from_ref(&id)),
        )
        .await,
        w.poll,
    );
    let answers = w.answers(std::slice::from_ref(&id), &polled);
    assert_eq!(answers.len(), 1);
    assert_eq!(
        w.progress(answers[0].1),
        cosell::model::ops::Progress::Succeeded
    );
    let polled = ok(
        call(
            &u,
            A,
            pw.poll,
            &pw.poll_request("Sandbox", std::slice::from_ref(&pid)),
        )
        .await,
        pw.poll,
    );
    assert_eq!(
        pw.progress(&polled),
        cosell::model::ops::Progress::Succeeded
    );
    ok(
        call(
            &u,
            A,
            "ListProspectingFromEngagementTasks",
            &json!({"Catalog": "Sandbox"}),
        )
        .await,
        "ListProspectingFromEngagementTasks",
    );
    ok(
        call(
            &u,
            B,
            "ListEngagementResourceAssociations",
            &json!({"Catalog": "Sandbox", "EngagementIdentifier": eng}),
        )
        .await,
        "ListEngagementResourceAssociations",
    );
    // GetEngagement with every kind of context, and the receiver's opportunity
    let got = ok(
        call(
            &u,
            A,
            "GetEngagement",
            &json!({"Catalog": "Sandbox", "Identifier": eng}),
        )
        .await,
        "GetEngagement",
    );
    assert_eq!(got["Contexts"].as_array().unwrap().len(), 3, "{got:#}");
    let opp = polled_opportunity(&u, &id).await;
    ok(
        call(
            &u,
            B,
            "GetOpportunity",
            &json!({"Catalog": "Sandbox", "Identifier": opp}),
        )
        .await,
        "GetOpportunity",
    );
    e.shutdown().await.unwrap();
}

async fn polled_opportunity(u: &str, task: &str) -> String {
    let r = call(
        u,
        B,
        "ListOpportunityFromEngagementTasks",
        &json!({"Catalog": "Sandbox", "TaskIdentifier": [task]}),
    )
    .await;
    r.body["TaskSummaries"][0]["OpportunityId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A Lead context makes an opportunity unless it is disqualified; a ProspectingResult context
/// makes none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_opportunity_from_a_lead_context_and_the_refused_contexts() {
    let e = emu(cosell::emulator::EmulatorConfig {
        task_delay: Duration::ZERO,
        ..config()
    })
    .await;
    let u = e.url();
    let a = sdk_client(&u, A);
    let eng = engagement(&a, "e1").await;
    let lead = |token: &str, status: &str| {
        json!({"Catalog": "Sandbox", "ClientToken": token, "EngagementIdentifier": eng, "Type": "Lead",
            "Payload": {"Lead": {"QualificationStatus": status,
                "Customer": {"CompanyName": "Leadco", "Address": {"CountryCode": "FR"}},
                "Interactions": [{"SourceType": "Web", "SourceId": "s1", "SourceName": "site",
                    "Contact": {"BusinessTitle": "CTO", "Email": "c@leadco.example.com", "FirstName": "A", "LastName": "B"}}]}}})
    };
    let ok_ctx = call(&u, A, "CreateEngagementContext", &lead("l1", "Qualified"))
        .await
        .body["ContextId"]
        .as_str()
        .unwrap()
        .to_string();
    let bad_ctx = call(
        &u,
        A,
        "CreateEngagementContext",
        &lead("l2", "Disqualified"),
    )
    .await
    .body["ContextId"]
        .as_str()
        .unwrap()
        .to_string();
    let start = |token: &str, ctx: &str| {
        a.start_opportunity_from_engagement_task()
            .catalog("Sandbox")
            .client_token(token)
            .identifier(&eng)
            .context_identifier(ctx)
            .send()
    };
    let done = start("t1", &ok_ctx).await.unwrap();
    assert_eq!(done.task_status(), Some(&TaskStatus::Complete), "{done:?}");
    let o = get(&a, "Sandbox", done.opportunity_id().unwrap()).await;
    let account = o.customer().unwrap().account().unwrap();
    assert_eq!(account.company_name(), "Leadco");
    assert_eq!(
        account.address().unwrap().country_code(),
        Some(&CountryCode::Fr)
    );
    let refused = start("t2", &bad_ctx).await.unwrap();
    assert_eq!(refused.task_status(), Some(&TaskStatus::Failed));
    assert_eq!(
        refused.reason_code(),
        Some(&ReasonCode::DisqualifiedLeadNotPermitted)
    );
    // prospecting adds a ProspectingResult context; no opportunity comes from it
    let p = a
        .start_prospecting_from_engagement_task()
        .catalog("Sandbox")
        .client_token("p1")
        .task_name("p")
        .identifiers(&eng)
        .send()
        .await
        .unwrap();
    assert_eq!(p.task_status(), &ProspectingTaskStatus::Completed);
    let got = a
        .get_engagement()
        .catalog("Sandbox")
        .identifier(&eng)
        .send()
        .await
        .unwrap();
    let pr = got.contexts().last().unwrap();
    assert_eq!(pr.r#type(), &EngagementContextType::ProspectingResult);
    let refused = start("t3", pr.id().unwrap()).await.unwrap();
    assert_eq!(
        refused.reason_code(),
        Some(&ReasonCode::OpportunityValidationFailed)
    );
    e.shutdown().await.unwrap();
}
