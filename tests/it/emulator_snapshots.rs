//! The snapshot, snapshot-job, tag and selling-system-settings families of the emulator,
//! through the real SDK: revisions, the engagement-membership rule, the job lifecycle and its
//! conflicts, job executions, list filters, sort and pages, tags on opportunities, jobs and
//! engagements, settings by role name and ARN, account isolation and the state file.

use crate::emulator::{assert_conforms, call, code, config, emu, invite, A, B, C};
use crate::emulator_opportunities::{create, get, start_engagement};
use crate::support::sdk_client;
use aws_sdk_partnercentralselling::types::*;
use aws_sdk_partnercentralselling::Client;
use cosell::emulator::EmulatorConfig;
use serde_json::json;
use std::time::Duration;

const SUMMARY: &str = "OpportunitySummary";
const AWS_VIEW: &str = "AwsOpportunitySummaryFullView";

/// Tasks complete inside their Start call, so an engaged opportunity is one call away.
fn cfg() -> EmulatorConfig {
    EmulatorConfig {
        task_delay: Duration::ZERO,
        ..config()
    }
}

/// A new opportunity of `c` that started an engagement: (opportunity, engagement).
async fn engaged(c: &Client, token: &str, company: &str) -> (String, String) {
    let opp = create(c, "Sandbox", token, company).await;
    let t = start_engagement(c, &opp, &format!("from-{token}")).await;
    assert_eq!(t.task_status(), Some(&TaskStatus::Complete));
    (opp, t.engagement_id().unwrap().to_string())
}

async fn snapshot(
    c: &Client,
    eng: &str,
    opp: &str,
    template: &str,
    token: &str,
) -> Result<(String, i32), String> {
    c.create_resource_snapshot()
        .catalog("Sandbox")
        .client_token(token)
        .engagement_identifier(eng)
        .resource_type(ResourceType::Opportunity)
        .resource_identifier(opp)
        .resource_snapshot_template_identifier(template)
        .send()
        .await
        .map(|o| (o.arn().unwrap().to_string(), o.revision().unwrap()))
        .map_err(|e| code(&e))
}

async fn get_snapshot(
    c: &Client,
    eng: &str,
    opp: &str,
    template: &str,
    revision: Option<i32>,
) -> Result<
    aws_sdk_partnercentralselling::operation::get_resource_snapshot::GetResourceSnapshotOutput,
    String,
> {
    c.get_resource_snapshot()
        .catalog("Sandbox")
        .engagement_identifier(eng)
        .resource_type(ResourceType::Opportunity)
        .resource_identifier(opp)
        .resource_snapshot_template_identifier(template)
        .set_revision(revision)
        .send()
        .await
        .map_err(|e| code(&e))
}

async fn revisions(c: &Client, eng: &str) -> Vec<(String, i32)> {
    c.list_resource_snapshots()
        .catalog("Sandbox")
        .engagement_identifier(eng)
        .send()
        .await
        .expect("list snapshots")
        .resource_snapshot_summaries()
        .iter()
        .map(|s| {
            (
                s.resource_snapshot_template_name().unwrap().to_string(),
                s.revision().unwrap(),
            )
        })
        .collect()
}

async fn create_job(
    c: &Client,
    eng: &str,
    opp: &str,
    template: &str,
    token: &str,
) -> Result<String, String> {
    c.create_resource_snapshot_job()
        .catalog("Sandbox")
        .client_token(token)
        .engagement_identifier(eng)
        .resource_type(ResourceType::Opportunity)
        .resource_identifier(opp)
        .resource_snapshot_template_identifier(template)
        .send()
        .await
        .map(|o| o.id().unwrap().to_string())
        .map_err(|e| code(&e))
}

async fn job(
    c: &Client,
    id: &str,
) -> Result<aws_sdk_partnercentralselling::operation::get_resource_snapshot_job::GetResourceSnapshotJobOutput, String>
{
    c.get_resource_snapshot_job()
        .catalog("Sandbox")
        .resource_snapshot_job_identifier(id)
        .send()
        .await
        .map_err(|e| code(&e))
}

async fn start(c: &Client, id: &str) -> Result<(), String> {
    c.start_resource_snapshot_job()
        .catalog("Sandbox")
        .resource_snapshot_job_identifier(id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code(&e))
}

async fn stop(c: &Client, id: &str) -> Result<(), String> {
    c.stop_resource_snapshot_job()
        .catalog("Sandbox")
        .resource_snapshot_job_identifier(id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code(&e))
}

async fn delete(c: &Client, id: &str) -> Result<(), String> {
    c.delete_resource_snapshot_job()
        .catalog("Sandbox")
        .resource_snapshot_job_identifier(id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code(&e))
}

async fn add_product(c: &Client, opp: &str, product: &str) {
    c.associate_opportunity()
        .catalog("Sandbox")
        .opportunity_identifier(opp)
        .related_entity_type(RelatedEntityType::AwsProducts)
        .related_entity_identifier(product)
        .send()
        .await
        .expect("associate a product");
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().unwrap()
}

async fn tags(c: &Client, arn: &str) -> Result<Vec<(String, String)>, String> {
    c.list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map(|o| {
            o.tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        })
        .map_err(|e| code(&e))
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Revisions count from 1 per engagement + resource + template; Get answers the latest or
/// the revision asked; the payload is the opportunity's view; the checks on engagement,
/// template, opportunity and association; a ClientToken replay takes no new revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_snapshot_revisions_increment_per_engagement_resource_and_template() {
    let e = emu(cfg()).await;
    let a = sdk_client(&e.url(), A);
    let (opp, eng) = engaged(&a, "r1", "Acme").await;
    let (arn1, r1) = snapshot(&a, &eng, &opp, SUMMARY, "s1").await.unwrap();
    assert_eq!(r1, 1);
    assert!(arn1.starts_with("arn:aws:partnercentral:"), "{arn1}");
    assert_eq!(snapshot(&a, &eng, &opp, SUMMARY, "s2").await.unwrap().1, 2);
    // the same token again replays revision 2
    assert_eq!(snapshot(&a, &eng, &opp, SUMMARY, "s2").await.unwrap().1, 2);
    // another template is its own series
    assert_eq!(snapshot(&a, &eng, &opp, AWS_VIEW, "s3").await.unwrap().1, 1);
    let latest = get_snapshot(&a, &eng, &opp, SUMMARY, None).await.unwrap();
    assert_eq!(latest.revision(), Some(2));
    assert_eq!(latest.created_by(), Some(A));
    assert_eq!(latest.engagement_id(), Some(eng.as_str()));
    assert_eq!(latest.resource_id(), Some(opp.as_str()));
    let view = latest.payload().unwrap().as_opportunity_summary().unwrap();
    assert_eq!(
        view.customer()
            .and_then(|c| c.account())
            .map(|a| a.company_name()),
        Some("Acme")
    );
    assert_eq!(
        view.lifecycle().and_then(|l| l.review_status()),
        Some(&ReviewStatus::Submitted)
    );
    assert_eq!(
        view.lifecycle().and_then(|l| l.target_close_date()),
        Some("2027-01-31")
    );
    let first = get_snapshot(&a, &eng, &opp, SUMMARY, Some(1))
        .await
        .unwrap();
    assert_eq!(first.arn(), Some(arn1.as_str()));
    let aws = get_snapshot(&a, &eng, &opp, AWS_VIEW, None).await.unwrap();
    assert!(aws
        .payload()
        .unwrap()
        .is_aws_opportunity_summary_full_view());
    assert_eq!(
        get_snapshot(&a, &eng, &opp, SUMMARY, Some(3))
            .await
            .unwrap_err(),
        "ResourceNotFoundException"
    );
    assert_eq!(
        revisions(&a, &eng).await,
        vec![
            (SUMMARY.to_string(), 1),
            (SUMMARY.to_string(), 2),
            (AWS_VIEW.to_string(), 1)
        ]
    );

    // the checks
    assert_eq!(
        snapshot(&a, &eng, &opp, "NoSuchTemplate", "x1")
            .await
            .unwrap_err(),
        "ValidationException"
    );
    let loose = create(&a, "Sandbox", "r2", "Loose").await;
    assert_eq!(
        snapshot(&a, &eng, &loose, SUMMARY, "x2").await.unwrap_err(),
        "ValidationException",
        "an opportunity not associated with the engagement"
    );
    assert_eq!(
        snapshot(&a, &eng, "O1", SUMMARY, "x3").await.unwrap_err(),
        "ResourceNotFoundException"
    );
    assert_eq!(
        snapshot(&a, "eng-00000000000000", &opp, SUMMARY, "x4")
            .await
            .unwrap_err(),
        "ResourceNotFoundException"
    );

    // raw answers carry exactly the output members
    let u = e.url();
    let target = json!({"Catalog": "Sandbox", "EngagementIdentifier": eng, "ResourceType": "Opportunity",
        "ResourceIdentifier": opp, "ResourceSnapshotTemplateIdentifier": SUMMARY});
    let mut create_body = target.clone();
    create_body["ClientToken"] = "raw-1".into();
    for (op, body) in [
        ("CreateResourceSnapshot", create_body),
        ("GetResourceSnapshot", target.clone()),
        (
            "ListResourceSnapshots",
            json!({"Catalog": "Sandbox", "EngagementIdentifier": eng}),
        ),
    ] {
        let r = call(&u, A, op, &body).await;
        assert_eq!(r.status, 200, "{op}: {:#}", r.body);
        assert_conforms(op, &r.body);
    }
    e.shutdown().await.unwrap();
}

/// Every member of the engagement reads and lists its snapshots, whoever took them; a
/// non-member is refused; CreatedBy and the other filters; pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_snapshots_are_shared_with_engagement_members_only() {
    let e = emu(cfg()).await;
    let (a, b, c) = (
        sdk_client(&e.url(), A),
        sdk_client(&e.url(), B),
        sdk_client(&e.url(), C),
    );
    let (opp, eng) = engaged(&a, "m1", "Acme").await;
    snapshot(&a, &eng, &opp, SUMMARY, "m-s1").await.unwrap();
    // B joins the engagement by accepting an invitation: B's opportunity is associated with it
    let inv = invite(&a, &eng, B, "m-inv").await;
    let t = b
        .start_engagement_by_accepting_invitation_task()
        .catalog("Sandbox")
        .client_token("m-acc")
        .identifier(&inv)
        .send()
        .await
        .unwrap();
    assert_eq!(t.task_status(), Some(&TaskStatus::Complete));
    let b_opp = t.opportunity_id().unwrap().to_string();
    let got = get_snapshot(&b, &eng, &opp, SUMMARY, None).await.unwrap();
    assert_eq!(got.created_by(), Some(A));
    assert!(
        got.target_member_accounts().is_empty(),
        "taken before B joined"
    );
    snapshot(&a, &eng, &opp, SUMMARY, "m-s2").await.unwrap();
    let got = get_snapshot(&b, &eng, &opp, SUMMARY, None).await.unwrap();
    assert_eq!(got.target_member_accounts(), [B.to_string()]);
    snapshot(&b, &eng, &b_opp, SUMMARY, "m-s3").await.unwrap();
    // B cannot snapshot A's opportunity, even as a member
    assert_eq!(
        snapshot(&b, &eng, &opp, SUMMARY, "m-s4").await.unwrap_err(),
        "ResourceNotFoundException"
    );
    // a non-member is refused
    assert_eq!(
        get_snapshot(&c, &eng, &opp, SUMMARY, None)
            .await
            .unwrap_err(),
        "AccessDeniedException"
    );
    let denied = c
        .list_resource_snapshots()
        .catalog("Sandbox")
        .engagement_identifier(&eng)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&denied), "AccessDeniedException");
    // filters
    let by = |who: &str| {
        let b = b.clone();
        let (eng, who) = (eng.clone(), who.to_string());
        async move {
            b.list_resource_snapshots()
                .catalog("Sandbox")
                .engagement_identifier(eng)
                .created_by(who)
                .send()
                .await
                .unwrap()
                .resource_snapshot_summaries()
                .len()
        }
    };
    assert_eq!((by(A).await, by(B).await, by(C).await), (2, 1, 0));
    let of_b = b
        .list_resource_snapshots()
        .catalog("Sandbox")
        .engagement_identifier(&eng)
        .resource_identifier(&b_opp)
        .resource_snapshot_template_identifier(SUMMARY)
        .send()
        .await
        .unwrap();
    assert_eq!(of_b.resource_snapshot_summaries().len(), 1);
    assert_eq!(of_b.resource_snapshot_summaries()[0].created_by(), Some(B));
    // pages of one, in the order taken
    let mut seen = Vec::new();
    let mut next = None;
    loop {
        let p = b
            .list_resource_snapshots()
            .catalog("Sandbox")
            .engagement_identifier(&eng)
            .max_results(1)
            .set_next_token(next)
            .send()
            .await
            .unwrap();
        assert!(p.resource_snapshot_summaries().len() <= 1);
        seen.extend(
            p.resource_snapshot_summaries()
                .iter()
                .map(|s| (s.resource_id().unwrap().to_string(), s.revision().unwrap())),
        );
        next = p.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    assert_eq!(
        seen,
        vec![(opp.clone(), 1), (opp.clone(), 2), (b_opp.clone(), 1)]
    );
    e.shutdown().await.unwrap();
}

/// A job is Stopped when created; stopping a Stopped job and starting a Running one are
/// conflicts; only a Stopped job is deleted; an absent one is not found. A Running job
/// snapshots at start and after each change of its opportunity, and only when the view
/// changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_snapshot_job_lifecycle_conflicts_and_executions() {
    let e = emu(cfg()).await;
    let a = sdk_client(&e.url(), A);
    let (opp, eng) = engaged(&a, "j1", "Acme").await;
    let id = create_job(&a, &eng, &opp, SUMMARY, "job-1").await.unwrap();
    assert!(id.starts_with("job-") && id.len() == 17, "{id}");
    // the same token replays the job; a second job for the same series is a conflict
    assert_eq!(
        create_job(&a, &eng, &opp, SUMMARY, "job-1").await.unwrap(),
        id
    );
    assert_eq!(
        create_job(&a, &eng, &opp, SUMMARY, "job-2")
            .await
            .unwrap_err(),
        "ConflictException"
    );
    assert_eq!(
        create_job(&a, &eng, &opp, "Nope", "job-3")
            .await
            .unwrap_err(),
        "ValidationException"
    );
    let j = job(&a, &id).await.unwrap();
    assert_eq!(j.status(), Some(&ResourceSnapshotJobStatus::Stopped));
    assert_eq!(j.engagement_id(), Some(eng.as_str()));
    assert_eq!(j.resource_id(), Some(opp.as_str()));
    assert_eq!(
        j.resource_arn(),
        get(&a, "Sandbox", &opp)
            .await
            .arn()
            .map(str::to_string)
            .as_deref()
    );
    assert!(j.last_successful_execution_date().is_none());
    assert!(
        revisions(&a, &eng).await.is_empty(),
        "a Stopped job takes nothing"
    );
    assert_eq!(stop(&a, &id).await.unwrap_err(), "ConflictException");

    start(&a, &id).await.unwrap();
    let j = job(&a, &id).await.unwrap();
    assert_eq!(j.status(), Some(&ResourceSnapshotJobStatus::Running));
    assert!(j.last_successful_execution_date().is_some());
    assert_eq!(revisions(&a, &eng).await, vec![(SUMMARY.to_string(), 1)]);
    assert_eq!(start(&a, &id).await.unwrap_err(), "ConflictException");
    assert_eq!(delete(&a, &id).await.unwrap_err(), "ConflictException");

    // a change of the opportunity: one new revision with the new view
    add_product(&a, &opp, "AmazonRedshift").await;
    let got = get_snapshot(&a, &eng, &opp, SUMMARY, None).await.unwrap();
    assert_eq!(got.revision(), Some(2));
    let view = got.payload().unwrap().as_opportunity_summary().unwrap();
    assert_eq!(
        view.related_entity_identifiers().unwrap().aws_products(),
        ["AmazonRedshift".to_string()]
    );
    // reads change nothing: no new revision
    job(&a, &id).await.unwrap();
    assert_eq!(revisions(&a, &eng).await.len(), 2);
    // restarting with no change takes no new snapshot (the view is the same)
    stop(&a, &id).await.unwrap();
    assert_eq!(stop(&a, &id).await.unwrap_err(), "ConflictException");
    start(&a, &id).await.unwrap();
    assert_eq!(revisions(&a, &eng).await.len(), 2);
    // while Stopped, changes are not snapshotted
    stop(&a, &id).await.unwrap();
    add_product(&a, &opp, "AmazonS3").await;
    assert_eq!(revisions(&a, &eng).await.len(), 2);
    // starting again catches up with the change
    start(&a, &id).await.unwrap();
    assert_eq!(revisions(&a, &eng).await.len(), 3);

    // raw answers conform
    let u = e.url();
    for op in ["GetResourceSnapshotJob", "StopResourceSnapshotJob"] {
        let r = call(
            &u,
            A,
            op,
            &json!({"Catalog": "Sandbox", "ResourceSnapshotJobIdentifier": id}),
        )
        .await;
        assert_eq!(r.status, 200, "{op}: {:#}", r.body);
        assert_conforms(op, &r.body);
    }
    let r = call(
        &u,
        A,
        "ListResourceSnapshotJobs",
        &json!({"Catalog": "Sandbox"}),
    )
    .await;
    assert_conforms("ListResourceSnapshotJobs", &r.body);

    // delete the Stopped job: gone, its snapshots stay
    delete(&a, &id).await.unwrap();
    assert_eq!(job(&a, &id).await.unwrap_err(), "ResourceNotFoundException");
    assert_eq!(
        delete(&a, &id).await.unwrap_err(),
        "ResourceNotFoundException"
    );
    assert_eq!(
        start(&a, &id).await.unwrap_err(),
        "ResourceNotFoundException"
    );
    assert_eq!(
        delete(&a, "job-0000000000000").await.unwrap_err(),
        "ResourceNotFoundException"
    );
    assert_eq!(revisions(&a, &eng).await.len(), 3);
    e.shutdown().await.unwrap();
}

/// ListResourceSnapshotJobs: newest first by default, ASCENDING on request, filters by
/// engagement and status, pages; another account sees none of them and reaches none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_list_snapshot_jobs_filters_sort_pages_and_isolation() {
    let e = emu(cfg()).await;
    let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
    let (o1, e1) = engaged(&a, "l1", "Acme").await;
    let (o2, e2) = engaged(&a, "l2", "Beta").await;
    let j1 = create_job(&a, &e1, &o1, SUMMARY, "lj1").await.unwrap();
    let j2 = create_job(&a, &e1, &o1, AWS_VIEW, "lj2").await.unwrap();
    let j3 = create_job(&a, &e2, &o2, SUMMARY, "lj3").await.unwrap();
    start(&a, &j2).await.unwrap();
    let list =
        |sort: Option<SortOrder>, eng: Option<&str>, status: Option<ResourceSnapshotJobStatus>| {
            let a = a.clone();
            let eng = eng.map(str::to_string);
            async move {
                a.list_resource_snapshot_jobs()
                    .catalog("Sandbox")
                    .set_sort(sort.map(|o| {
                        SortObject::builder()
                            .sort_by(SortBy::CreatedDate)
                            .sort_order(o)
                            .build()
                    }))
                    .set_engagement_identifier(eng)
                    .set_status(status)
                    .send()
                    .await
                    .unwrap()
                    .resource_snapshot_job_summaries()
                    .iter()
                    .map(|j| j.id().unwrap().to_string())
                    .collect::<Vec<_>>()
            }
        };
    assert_eq!(
        list(None, None, None).await,
        [j3.clone(), j2.clone(), j1.clone()]
    );
    assert_eq!(
        list(Some(SortOrder::Descending), None, None).await,
        [j3.clone(), j2.clone(), j1.clone()]
    );
    assert_eq!(
        list(Some(SortOrder::Ascending), None, None).await,
        [j1.clone(), j2.clone(), j3.clone()]
    );
    assert_eq!(
        list(Some(SortOrder::Ascending), Some(&e1), None).await,
        [j1.clone(), j2.clone()]
    );
    assert_eq!(
        list(None, None, Some(ResourceSnapshotJobStatus::Running)).await,
        vec![j2.clone()]
    );
    assert_eq!(
        list(None, Some(&e2), Some(ResourceSnapshotJobStatus::Stopped)).await,
        vec![j3.clone()]
    );
    // pages of two
    let p1 = a
        .list_resource_snapshot_jobs()
        .catalog("Sandbox")
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(p1.resource_snapshot_job_summaries().len(), 2);
    let p2 = a
        .list_resource_snapshot_jobs()
        .catalog("Sandbox")
        .max_results(2)
        .next_token(p1.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(p2.resource_snapshot_job_summaries().len(), 1);
    assert_eq!(
        p2.resource_snapshot_job_summaries()[0].id(),
        Some(j1.as_str())
    );
    assert!(p2.next_token().is_none());

    // isolation: another account, another catalog
    let none = b
        .list_resource_snapshot_jobs()
        .catalog("Sandbox")
        .send()
        .await
        .unwrap();
    assert!(none.resource_snapshot_job_summaries().is_empty());
    for r in [
        job(&b, &j1).await.map(|_| ()),
        start(&b, &j1).await,
        stop(&b, &j2).await,
        delete(&b, &j3).await,
    ] {
        assert_eq!(r.unwrap_err(), "ResourceNotFoundException");
    }
    let other_catalog = a
        .get_resource_snapshot_job()
        .catalog("AWS")
        .resource_snapshot_job_identifier(&j1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&other_catalog), "ResourceNotFoundException");
    // B cannot snapshot in an engagement it is not a member of
    assert_eq!(
        create_job(&b, &e1, &o1, SUMMARY, "lj-b").await.unwrap_err(),
        "AccessDeniedException"
    );
    e.shutdown().await.unwrap();
}

/// Tags round trip on an opportunity (from CreateOpportunity and TagResource), a job and an
/// engagement; repeated Tag and Untag of an absent key succeed; duplicate keys and the
/// 200-tag limit are refused; an unknown ARN and another account's ARN are not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_tags_round_trip_limits_and_unknown_arns() {
    let e = emu(cfg()).await;
    let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
    let created = a
        .create_opportunity()
        .catalog("Sandbox")
        .client_token("t-opp")
        .opportunity_type(OpportunityType::NetNewBusiness)
        .tags(tag("team", "east"))
        .tags(tag("crm", "CRM-1"))
        .send()
        .await
        .unwrap();
    let opp_arn = get(&a, "Sandbox", created.id())
        .await
        .arn()
        .unwrap()
        .to_string();
    assert_eq!(
        tags(&a, &opp_arn).await.unwrap(),
        pairs(&[("crm", "CRM-1"), ("team", "east")])
    );
    let tag_it = |arn: &str, t: Vec<Tag>| {
        let a = a.clone();
        let arn = arn.to_string();
        async move {
            a.tag_resource()
                .resource_arn(arn)
                .set_tags(Some(t))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| code(&e))
        }
    };
    // the same tag again, then a new value and a new key
    tag_it(&opp_arn, vec![tag("team", "east")]).await.unwrap();
    tag_it(&opp_arn, vec![tag("team", "west"), tag("tier", "1")])
        .await
        .unwrap();
    assert_eq!(
        tags(&a, &opp_arn).await.unwrap(),
        pairs(&[("crm", "CRM-1"), ("team", "west"), ("tier", "1")])
    );
    // untag: an absent key is ignored
    a.untag_resource()
        .resource_arn(&opp_arn)
        .tag_keys("tier")
        .tag_keys("never-set")
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags(&a, &opp_arn).await.unwrap(),
        pairs(&[("crm", "CRM-1"), ("team", "west")])
    );
    // a key twice in one request
    assert_eq!(
        tag_it(&opp_arn, vec![tag("k", "1"), tag("k", "2")])
            .await
            .unwrap_err(),
        "ValidationException"
    );
    // the limit: 200 tags per resource
    let many: Vec<Tag> = (0..198).map(|i| tag(&format!("k{i:03}"), "v")).collect();
    tag_it(&opp_arn, many).await.unwrap();
    assert_eq!(tags(&a, &opp_arn).await.unwrap().len(), 200);
    assert_eq!(
        tag_it(&opp_arn, vec![tag("one-more", "v")])
            .await
            .unwrap_err(),
        "ValidationException"
    );
    tag_it(&opp_arn, vec![tag("team", "north")]).await.unwrap();
    assert_eq!(tags(&a, &opp_arn).await.unwrap().len(), 200);

    // a job with Tags, and an engagement
    let (o, eng) = engaged(&a, "t1", "Acme").await;
    let j = a
        .create_resource_snapshot_job()
        .catalog("Sandbox")
        .client_token("t-job")
        .engagement_identifier(&eng)
        .resource_type(ResourceType::Opportunity)
        .resource_identifier(&o)
        .resource_snapshot_template_identifier(SUMMARY)
        .tags(tag("purpose", "sync"))
        .send()
        .await
        .unwrap();
    let job_arn = j.arn().unwrap().to_string();
    assert_eq!(
        tags(&a, &job_arn).await.unwrap(),
        pairs(&[("purpose", "sync")])
    );
    let eng_arn = a
        .get_engagement()
        .catalog("Sandbox")
        .identifier(&eng)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    assert!(tags(&a, &eng_arn).await.unwrap().is_empty());
    tag_it(&eng_arn, vec![tag("region", "emea")]).await.unwrap();
    assert_eq!(
        tags(&a, &eng_arn).await.unwrap(),
        pairs(&[("region", "emea")])
    );
    // raw answer conforms
    let r = call(
        &e.url(),
        A,
        "ListTagsForResource",
        &json!({"ResourceArn": job_arn}),
    )
    .await;
    assert_conforms("ListTagsForResource", &r.body);
    // deleting the job drops its tags
    delete(&a, j.id().unwrap()).await.unwrap();
    assert_eq!(
        tags(&a, &job_arn).await.unwrap_err(),
        "ResourceNotFoundException"
    );

    // unknown ARN (well formed) and another account's resource
    let unknown = format!("arn:aws:partnercentral:us-east-1:{A}:catalog/Sandbox/opportunity/O1");
    assert_eq!(
        tags(&a, &unknown).await.unwrap_err(),
        "ResourceNotFoundException"
    );
    assert_eq!(
        tag_it(&unknown, vec![tag("a", "b")]).await.unwrap_err(),
        "ResourceNotFoundException"
    );
    for r in [
        tags(&b, &opp_arn).await.map(|_| ()),
        b.tag_resource()
            .resource_arn(&opp_arn)
            .tags(tag("x", "y"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| code(&e)),
        b.untag_resource()
            .resource_arn(&opp_arn)
            .tag_keys("team")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| code(&e)),
    ] {
        assert_eq!(r.unwrap_err(), "ResourceNotFoundException");
    }
    assert_eq!(tags(&a, &opp_arn).await.unwrap().len(), 200);
    e.shutdown().await.unwrap();
}

/// Settings per account and catalog: a role name becomes the ARN in the caller's account, an
/// ARN is kept, another account's ARN is refused, a Put without a role changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_selling_system_settings_round_trip_by_name_and_arn() {
    let e = emu(cfg()).await;
    let (a, b) = (sdk_client(&e.url(), A), sdk_client(&e.url(), B));
    let role = |c: &Client, catalog: &str| {
        let c = c.clone();
        let catalog = catalog.to_string();
        async move {
            c.get_selling_system_settings()
                .catalog(catalog)
                .send()
                .await
                .unwrap()
                .resource_snapshot_job_role_arn()
                .map(str::to_string)
        }
    };
    assert_eq!(role(&a, "Sandbox").await, None);
    let put = a
        .put_selling_system_settings()
        .catalog("Sandbox")
        .resource_snapshot_job_role_identifier("SnapshotRole")
        .send()
        .await
        .unwrap();
    let want = format!("arn:aws:iam::{A}:role/SnapshotRole");
    assert_eq!(put.resource_snapshot_job_role_arn(), Some(want.as_str()));
    assert_eq!(put.catalog(), "Sandbox");
    assert_eq!(role(&a, "Sandbox").await.as_deref(), Some(want.as_str()));
    let by_arn = format!("arn:aws:iam::{A}:role/team/OtherRole");
    a.put_selling_system_settings()
        .catalog("Sandbox")
        .resource_snapshot_job_role_identifier(&by_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(role(&a, "Sandbox").await.as_deref(), Some(by_arn.as_str()));
    // another account's role
    let foreign = a
        .put_selling_system_settings()
        .catalog("Sandbox")
        .resource_snapshot_job_role_identifier(format!("arn:aws:iam::{B}:role/Theirs"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&foreign), "ValidationException");
    // no role in the request: unchanged
    let same = a
        .put_selling_system_settings()
        .catalog("Sandbox")
        .send()
        .await
        .unwrap();
    assert_eq!(same.resource_snapshot_job_role_arn(), Some(by_arn.as_str()));
    // other catalog, other account
    assert_eq!(role(&a, "AWS").await, None);
    assert_eq!(role(&b, "Sandbox").await, None);
    let u = e.url();
    for (op, body) in [
        ("GetSellingSystemSettings", json!({"Catalog": "Sandbox"})),
        (
            "PutSellingSystemSettings",
            json!({"Catalog": "Sandbox", "ResourceSnapshotJobRoleIdentifier": "R"}),
        ),
    ] {
        let r = call(&u, A, op, &body).await;
        assert_eq!(r.status, 200, "{op}: {:#}", r.body);
        assert_conforms(op, &r.body);
    }
    e.shutdown().await.unwrap();
}

/// Snapshots, a Running job, tags and settings survive a restart on the state file, and the
/// job keeps executing afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_snapshot_state_round_trips_through_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let with_state = || EmulatorConfig {
        state: Some(path.clone()),
        ..cfg()
    };
    let e = emu(with_state()).await;
    let a = sdk_client(&e.url(), A);
    let (opp, eng) = engaged(&a, "f1", "Acme").await;
    snapshot(&a, &eng, &opp, AWS_VIEW, "f-s1").await.unwrap();
    let id = create_job(&a, &eng, &opp, SUMMARY, "f-j1").await.unwrap();
    start(&a, &id).await.unwrap();
    let job_arn = job(&a, &id).await.unwrap().arn().unwrap().to_string();
    a.tag_resource()
        .resource_arn(&job_arn)
        .tags(tag("k", "v"))
        .send()
        .await
        .unwrap();
    a.put_selling_system_settings()
        .catalog("Sandbox")
        .resource_snapshot_job_role_identifier("SnapshotRole")
        .send()
        .await
        .unwrap();
    let before = job(&a, &id).await.unwrap();
    let stats = e.stats();
    assert_eq!(stats["resources"]["resource_snapshots"], 2);
    assert_eq!(stats["resources"]["resource_snapshot_jobs"], 1);
    e.shutdown().await.unwrap();

    let e = emu(with_state()).await;
    let a = sdk_client(&e.url(), A);
    let after = job(&a, &id).await.unwrap();
    assert_eq!(after.status(), Some(&ResourceSnapshotJobStatus::Running));
    assert_eq!(
        after.last_successful_execution_date(),
        before.last_successful_execution_date()
    );
    assert_eq!(
        revisions(&a, &eng).await,
        vec![(AWS_VIEW.to_string(), 1), (SUMMARY.to_string(), 1)]
    );
    assert_eq!(tags(&a, &job_arn).await.unwrap(), pairs(&[("k", "v")]));
    let role = a
        .get_selling_system_settings()
        .catalog("Sandbox")
        .send()
        .await
        .unwrap();
    assert_eq!(
        role.resource_snapshot_job_role_arn(),
        Some(format!("arn:aws:iam::{A}:role/SnapshotRole").as_str())
    );
    // the restored Running job still follows its opportunity
    add_product(&a, &opp, "AmazonRedshift").await;
    assert_eq!(
        get_snapshot(&a, &eng, &opp, SUMMARY, None)
            .await
            .unwrap()
            .revision(),
        Some(2)
    );
    e.shutdown().await.unwrap();
}
