//! The opportunities family and solutions of the emulator, through the real SDK: update
//! replaces the record with optimistic locking and the review-status locks, Sandbox review
//! self-service, associations and their limits, submit, the AWS summary, list filters, sort and
//! pagination, ListSolutions, the account rule and the state file.

use crate::emulator::{code, config, emu, A, B};
use crate::support::sdk_client;
use aws_sdk_partnercentralselling::operation::get_opportunity::GetOpportunityOutput;
use aws_sdk_partnercentralselling::types::*;
use aws_sdk_partnercentralselling::Client;

pub(crate) fn customer(name: &str, country: CountryCode) -> Customer {
    Customer::builder()
        .account(
            Account::builder()
                .company_name(name)
                .industry(Industry::Other)
                .website_url("https://acme.example.com")
                .address(Address::builder().country_code(country).build())
                .build()
                .unwrap(),
        )
        .build()
}

pub(crate) async fn create(c: &Client, catalog: &str, token: &str, company: &str) -> String {
    c.create_opportunity()
        .catalog(catalog)
        .client_token(token)
        .partner_opportunity_identifier(format!("CRM-{token}"))
        .opportunity_type(OpportunityType::NetNewBusiness)
        .customer(customer(company, CountryCode::Us))
        .project(
            Project::builder()
                .title("Data platform")
                .customer_business_problem("They need a much better data platform for analytics")
                .build(),
        )
        .life_cycle(
            LifeCycle::builder()
                .stage(Stage::Prospect)
                .target_close_date("2027-01-31")
                .build(),
        )
        .send()
        .await
        .expect("create opportunity")
        .id()
        .to_string()
}

/// Start the engagement of opportunity `opp` with AWS (Co-Sell), with ClientToken `token`.
pub(crate) async fn start_engagement(
    c: &Client,
    opp: &str,
    token: &str,
) -> aws_sdk_partnercentralselling::operation::start_engagement_from_opportunity_task::StartEngagementFromOpportunityTaskOutput
{
    c.start_engagement_from_opportunity_task()
        .catalog("Sandbox")
        .client_token(token)
        .identifier(opp)
        .aws_submission(
            AwsSubmission::builder()
                .involvement_type(SalesInvolvementType::CoSell)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("start engagement from opportunity")
}

pub(crate) async fn get(c: &Client, catalog: &str, id: &str) -> GetOpportunityOutput {
    c.get_opportunity()
        .catalog(catalog)
        .identifier(id)
        .send()
        .await
        .expect("get opportunity")
}

/// An update that sends back what Get returned, with `review` as ReviewStatus when given.
fn update_from(
    c: &Client,
    got: &GetOpportunityOutput,
    review: Option<ReviewStatus>,
) -> aws_sdk_partnercentralselling::operation::update_opportunity::builders::UpdateOpportunityFluentBuilder
{
    let mut life = LifeCycle::builder();
    if let Some(l) = got.life_cycle() {
        life = life
            .set_stage(l.stage().cloned())
            .set_target_close_date(l.target_close_date().map(str::to_string))
            .set_review_status(l.review_status().cloned());
    }
    if let Some(r) = review {
        life = life.review_status(r);
    }
    c.update_opportunity()
        .catalog(got.catalog())
        .identifier(got.id())
        .last_modified_date(*got.last_modified_date())
        .set_customer(got.customer().cloned())
        .set_project(got.project().cloned())
        .set_opportunity_type(got.opportunity_type().cloned())
        .set_partner_opportunity_identifier(
            got.partner_opportunity_identifier().map(str::to_string),
        )
        .life_cycle(life.build())
}

async fn submit(c: &Client, catalog: &str, id: &str) {
    c.submit_opportunity()
        .catalog(catalog)
        .identifier(id)
        .involvement_type(SalesInvolvementType::CoSell)
        .visibility(Visibility::Full)
        .send()
        .await
        .expect("submit");
}

async fn associate(
    c: &Client,
    catalog: &str,
    id: &str,
    kind: RelatedEntityType,
    entity: &str,
) -> Result<(), String> {
    c.associate_opportunity()
        .catalog(catalog)
        .opportunity_identifier(id)
        .related_entity_type(kind)
        .related_entity_identifier(entity)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code(&e))
}

async fn solution_ids(c: &Client, catalog: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = None;
    loop {
        let page = c
            .list_solutions()
            .catalog(catalog)
            .max_results(5)
            .set_next_token(next)
            .send()
            .await
            .unwrap();
        out.extend(page.solution_summaries().iter().map(|x| x.id().to_string()));
        next = page.next_token().map(str::to_string);
        if next.is_none() {
            return out;
        }
    }
}

fn validation_code<
    E: aws_sdk_partnercentralselling::error::ProvideErrorMetadata + std::fmt::Debug,
>(
    e: &E,
) -> String {
    format!("{e:?}")
}

/// UpdateOpportunity replaces the record: a member the request leaves out is gone afterwards,
/// and the answer's LastModifiedDate is the one Get then reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_update_opportunity_replaces_the_whole_record() {
    let e = emu(config()).await;
    let a = sdk_client(&e.url(), A);
    let id = create(&a, "Sandbox", "u1", "Acme").await;
    let got = get(&a, "Sandbox", &id).await;
    assert!(got.project().is_some());
    let updated = update_from(&a, &got, None)
        .set_project(None)
        .customer(customer("Acme Corp", CountryCode::Us))
        .send()
        .await
        .unwrap();
    let after = get(&a, "Sandbox", &id).await;
    assert!(after.project().is_none(), "the omitted Project is gone");
    assert_eq!(
        after
            .customer()
            .and_then(|c| c.account())
            .map(|a| a.company_name()),
        Some("Acme Corp")
    );
    assert_eq!(after.last_modified_date(), updated.last_modified_date());
    assert!(after.last_modified_date() > got.last_modified_date());
    // ReviewStatus is the service's: left out, it keeps its value
    assert_eq!(
        after.life_cycle().and_then(|l| l.review_status()),
        Some(&ReviewStatus::PendingSubmission)
    );
    e.shutdown().await.unwrap();
}

/// A stale LastModifiedDate is a ConflictException; Get again and the update succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_stale_last_modified_date_is_a_conflict_then_get_and_update_succeeds() {
    let e = emu(config()).await;
    let a = sdk_client(&e.url(), A);
    let id = create(&a, "Sandbox", "s1", "Acme").await;
    let first = get(&a, "Sandbox", &id).await;
    update_from(&a, &first, None).send().await.unwrap();
    let stale = update_from(&a, &first, None).send().await.unwrap_err();
    assert_eq!(code(&stale), "ConflictException");
    let fresh = get(&a, "Sandbox", &id).await;
    update_from(&a, &fresh, None).send().await.unwrap();
    e.shutdown().await.unwrap();
}

/// No update while ReviewStatus is Submitted: a ValidationException (ACTION_NOT_PERMITTED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_submitted_opportunity_refuses_updates() {
    let e = emu(config()).await;
    let a = sdk_client(&e.url(), A);
    let id = create(&a, "Sandbox", "l1", "Acme").await;
    submit(&a, "Sandbox", &id).await;
    let got = get(&a, "Sandbox", &id).await;
    assert_eq!(
        got.life_cycle().and_then(|l| l.review_status()),
        Some(&ReviewStatus::Submitted)
    );
    let err = update_from(&a, &got, None)
        .customer(customer("Other", CountryCode::Us))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    let dbg = validation_code(&err);
    assert!(
        dbg.contains("ACTION_NOT_PERMITTED") || dbg.contains("ActionNotPermitted"),
        "{dbg}"
    );
    assert!(
        dbg.contains("BUSINESS_VALIDATION_FAILED") || dbg.contains("BusinessValidationFailed"),
        "{dbg}"
    );
    // submitting again is refused too
    let again = a
        .submit_opportunity()
        .catalog("Sandbox")
        .identifier(&id)
        .involvement_type(SalesInvolvementType::CoSell)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again), "ValidationException");
    e.shutdown().await.unwrap();
}

/// Sandbox review self-service: the partner sets Approved on a submitted opportunity; Submitted
/// cannot be set; an Approved status cannot change again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_sandbox_review_self_service_approved_is_final() {
    let e = emu(config()).await;
    let a = sdk_client(&e.url(), A);
    let id = create(&a, "Sandbox", "r1", "Acme").await;
    let got = get(&a, "Sandbox", &id).await;
    let err = update_from(&a, &got, Some(ReviewStatus::Submitted))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    submit(&a, "Sandbox", &id).await;
    let got = get(&a, "Sandbox", &id).await;
    update_from(&a, &got, Some(ReviewStatus::Approved))
        .send()
        .await
        .unwrap();
    let got = get(&a, "Sandbox", &id).await;
    assert_eq!(
        got.life_cycle().and_then(|l| l.review_status()),
        Some(&ReviewStatus::Approved)
    );
    let err = update_from(&a, &got, Some(ReviewStatus::ActionRequired))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    assert!(validation_code(&err).contains("Approved"));
    // once Approved the customer's country is frozen
    let err = update_from(&a, &got, None)
        .customer(customer("Acme", CountryCode::De))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    // other members still change
    update_from(&a, &got, None)
        .customer(customer("Acme Holdings", CountryCode::Us))
        .send()
        .await
        .unwrap();
    e.shutdown().await.unwrap();
}

/// Action Required: only the listed fields may change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_action_required_allows_only_the_listed_fields() {
    let e = emu(config()).await;
    let a = sdk_client(&e.url(), A);
    let id = create(&a, "Sandbox", "ar1", "Acme").await;
    submit(&a, "Sandbox", &id).await;
    let got = get(&a, "Sandbox", &id).await;
    update_from(&a, &got, Some(ReviewStatus::ActionRequired))
        .send()
        .await
        .unwrap();
    let got = get(&a, "Sandbox", &id).await;
    let err = update_from(&a, &got, None)
        .customer(customer("Renamed", CountryCode::Us))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    assert!(validation_code(&err).contains("CompanyName"));
    // the target close date may change
    let mut life = got.life_cycle().unwrap().clone();
    life.target_close_date = Some("2027-06-30".into());
    update_from(&a, &got, None)
        .life_cycle(life)
        .send()
        .await
        .unwrap();
    // and it can be submitted again
    submit(&a, "Sandbox", &id).await;
    e.shutdown().await.unwrap();
}

/// In the AWS catalog ReviewStatus is read-only to partners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_aws_catalog_review_status_is_read_only() {
    let e = emu(config()).await;
    let a = sdk_client(&e.url(), A);
    let id = create(&a, "AWS", "aws1", "Acme").await;
    let got = get(&a, "AWS", &id).await;
    let err = update_from(&a, &got, Some(ReviewStatus::Approved))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    assert!(
        validation_code(&err).contains("read-only") || validation_code(&err).contains("set by AWS")
    );
    // the same value is fine
    update_from(&a, &got, None).send().await.unwrap();
    // submitting in AWS needs a solution
    let err = a
        .submit_opportunity()
        .catalog("AWS")
        .identifier(&id)
        .involvement_type(SalesInvolvementType::CoSell)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    let sol = solution_ids(&a, "AWS").await;
    associate(&a, "AWS", &id, RelatedEntityType::Solutions, &sol[0])
        .await
        .unwrap();
    submit(&a, "AWS", &id).await;
    e.shutdown().await.unwrap();
}

/// Ten solutions per opportunity, the 11th is refused; a duplicate association is a
/// ConflictException; a private offer is limited to one; disassociate removes, and a second
/// disassociate is ResourceNotFound. Get shows the associations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_associate_limits_duplicates_and_disassociate() {
    let e = emu(config()).await;
    let a = sdk_client(&e.url(), A);
    let id = create(&a, "Sandbox", "as1", "Acme").await;
    let sols = solution_ids(&a, "Sandbox").await;
    assert!(sols.len() >= 11);
    for s in &sols[..10] {
        associate(&a, "Sandbox", &id, RelatedEntityType::Solutions, s)
            .await
            .unwrap();
    }
    assert_eq!(
        associate(&a, "Sandbox", &id, RelatedEntityType::Solutions, &sols[10]).await,
        Err("ValidationException".into())
    );
    assert_eq!(
        associate(&a, "Sandbox", &id, RelatedEntityType::Solutions, &sols[0]).await,
        Err("ConflictException".into())
    );
    assert_eq!(
        associate(&a, "Sandbox", &id, RelatedEntityType::Solutions, "S-999").await,
        Err("ResourceNotFoundException".into())
    );
    associate(
        &a,
        "Sandbox",
        &id,
        RelatedEntityType::AwsMarketplaceOffers,
        "offer-1",
    )
    .await
    .unwrap();
    assert_eq!(
        associate(
            &a,
            "Sandbox",
            &id,
            RelatedEntityType::AwsMarketplaceOffers,
            "offer-2"
        )
        .await,
        Err("ValidationException".into())
    );
    for n in 0..20 {
        associate(
            &a,
            "Sandbox",
            &id,
            RelatedEntityType::AwsProducts,
            &format!("p{n}"),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        associate(&a, "Sandbox", &id, RelatedEntityType::AwsProducts, "p20").await,
        Err("ValidationException".into())
    );
    let got = get(&a, "Sandbox", &id).await;
    let rel = got.related_entity_identifiers().unwrap();
    assert_eq!(rel.solutions().len(), 10);
    assert_eq!(rel.aws_products().len(), 20);
    assert_eq!(rel.aws_marketplace_offers(), ["offer-1"]);
    assert_eq!(e.stats()["resources"]["associations"], 31);

    let dis = |s: String| {
        let a = a.clone();
        let id = id.clone();
        async move {
            a.disassociate_opportunity()
                .catalog("Sandbox")
                .opportunity_identifier(&id)
                .related_entity_type(RelatedEntityType::Solutions)
                .related_entity_identifier(s)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| code(&e))
        }
    };
    dis(sols[0].clone()).await.unwrap();
    assert_eq!(
        dis(sols[0].clone()).await,
        Err("ResourceNotFoundException".into())
    );
    let got = get(&a, "Sandbox", &id).await;
    assert_eq!(
        got.related_entity_identifiers().unwrap().solutions().len(),
        9
    );
    associate(&a, "Sandbox", &id, RelatedEntityType::Solutions, &sols[10])
        .await
        .unwrap();
    e.shutdown().await.unwrap();
}

/// Submit moves ReviewStatus to Submitted; the AWS summary then reports the involvement type
/// and visibility; before, it is ResourceNotFound. Assign sets the opportunity team.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_submit_assign_and_aws_opportunity_summary() {
    let e = emu(config()).await;
    let a = sdk_client(&e.url(), A);
    let id = create(&a, "Sandbox", "sub1", "Acme").await;
    let before = a
        .get_aws_opportunity_summary()
        .catalog("Sandbox")
        .related_opportunity_identifier(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&before), "ResourceNotFoundException");
    let sol = solution_ids(&a, "Sandbox").await;
    associate(&a, "Sandbox", &id, RelatedEntityType::Solutions, &sol[0])
        .await
        .unwrap();
    a.assign_opportunity()
        .catalog("Sandbox")
        .identifier(&id)
        .assignee(
            AssigneeContact::builder()
                .email("kim@partner.example.com")
                .first_name("Kim")
                .last_name("Lee")
                .business_title("PartnerAccountManager")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    submit(&a, "Sandbox", &id).await;
    let got = get(&a, "Sandbox", &id).await;
    assert_eq!(
        got.life_cycle().and_then(|l| l.review_status()),
        Some(&ReviewStatus::Submitted)
    );
    assert_eq!(got.opportunity_team()[0].first_name(), Some("Kim"));
    let sum = a
        .get_aws_opportunity_summary()
        .catalog("Sandbox")
        .related_opportunity_identifier(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(sum.related_opportunity_id(), Some(id.as_str()));
    assert_eq!(sum.involvement_type(), Some(&SalesInvolvementType::CoSell));
    assert_eq!(sum.visibility(), Some(&Visibility::Full));
    assert_eq!(sum.catalog(), "Sandbox");
    assert_eq!(
        sum.related_entity_ids().map(|r| r.solutions().to_vec()),
        Some(vec![sol[0].clone()])
    );
    assert!(sum.life_cycle().and_then(|l| l.stage()).is_some());
    e.shutdown().await.unwrap();
}

/// ListOpportunities: filters, sort both ways, and every page collected with NextToken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_list_opportunities_filters_sort_and_pagination() {
    let e = emu(config()).await;
    let a = sdk_client(&e.url(), A);
    let names = ["Delta", "Alpha", "Echo", "Bravo", "Charlie", "Alpha"];
    let mut ids = Vec::new();
    for (i, n) in names.iter().enumerate() {
        ids.push(create(&a, "Sandbox", &format!("lst{i}"), n).await);
    }
    // another catalog and another account are not listed
    create(&a, "AWS", "lst-aws", "Zulu").await;
    create(&sdk_client(&e.url(), B), "Sandbox", "lst-b", "Zulu").await;
    submit(&a, "Sandbox", &ids[2]).await;

    let all = |sort: Option<OpportunitySort>| {
        let a = a.clone();
        async move {
            let mut out = Vec::new();
            let mut next = None;
            let mut pages = 0;
            loop {
                let p = a
                    .list_opportunities()
                    .catalog("Sandbox")
                    .max_results(4)
                    .set_sort(sort.clone())
                    .set_next_token(next)
                    .send()
                    .await
                    .unwrap();
                pages += 1;
                out.extend(p.opportunity_summaries().iter().cloned());
                next = p.next_token().map(str::to_string);
                if next.is_none() {
                    return (out, pages);
                }
            }
        }
    };
    let (every, pages) = all(None).await;
    assert_eq!(pages, 2);
    assert_eq!(
        every
            .iter()
            .map(|o| o.id().unwrap().to_string())
            .collect::<Vec<_>>(),
        ids
    );
    let sort = |by: OpportunitySortName, order: SortOrder| {
        Some(
            OpportunitySort::builder()
                .sort_by(by)
                .sort_order(order)
                .build()
                .unwrap(),
        )
    };
    let (by_name, _) = all(sort(
        OpportunitySortName::CustomerCompanyName,
        SortOrder::Ascending,
    ))
    .await;
    let got: Vec<&str> = by_name
        .iter()
        .map(|o| o.customer().unwrap().account().unwrap().company_name())
        .collect();
    assert_eq!(got, ["Alpha", "Alpha", "Bravo", "Charlie", "Delta", "Echo"]);
    let (by_id_desc, _) = all(sort(OpportunitySortName::Identifier, SortOrder::Descending)).await;
    let mut want = ids.clone();
    want.sort();
    want.reverse();
    assert_eq!(
        by_id_desc
            .iter()
            .map(|o| o.id().unwrap().to_string())
            .collect::<Vec<_>>(),
        want
    );
    // the submitted one was modified last
    let (by_mod, _) = all(sort(
        OpportunitySortName::LastModifieddate,
        SortOrder::Descending,
    ))
    .await;
    assert_eq!(by_mod[0].id(), Some(ids[2].as_str()));

    let list = a.list_opportunities().catalog("Sandbox");
    let n = |r: aws_sdk_partnercentralselling::operation::list_opportunities::ListOpportunitiesOutput| {
        r.opportunity_summaries().len()
    };
    assert_eq!(
        n(list
            .clone()
            .customer_company_name("Alpha")
            .send()
            .await
            .unwrap()),
        2
    );
    assert_eq!(
        n(list
            .clone()
            .identifier(&ids[0])
            .identifier(&ids[1])
            .send()
            .await
            .unwrap()),
        2
    );
    assert_eq!(
        n(list
            .clone()
            .life_cycle_review_status(ReviewStatus::Submitted)
            .send()
            .await
            .unwrap()),
        1
    );
    assert_eq!(
        n(list
            .clone()
            .life_cycle_stage(Stage::Prospect)
            .send()
            .await
            .unwrap()),
        6
    );
    assert_eq!(
        n(list
            .clone()
            .life_cycle_stage(Stage::Committed)
            .send()
            .await
            .unwrap()),
        0
    );
    let submitted_at = *get(&a, "Sandbox", &ids[2]).await.last_modified_date();
    let after = list
        .clone()
        .last_modified_date(
            LastModifiedDate::builder()
                .after_last_modified_date(aws_smithy_types::DateTime::from_millis(
                    submitted_at.to_millis().unwrap() - 1,
                ))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(after.opportunity_summaries().len(), 1);
    let before = list
        .clone()
        .last_modified_date(
            LastModifiedDate::builder()
                .before_last_modified_date(submitted_at)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(before.opportunity_summaries().len(), 5);
    let bad = list
        .clone()
        .next_token("nonsense")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad), "ValidationException");
    e.shutdown().await.unwrap();
}

/// ListSolutions returns the account's seeded solutions (ids per the model), with filters and
/// pages; another account has its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_list_solutions_returns_seeded_solutions() {
    let e = emu(config()).await;
    let a = sdk_client(&e.url(), A);
    let r = a.list_solutions().catalog("Sandbox").send().await.unwrap();
    assert!(!r.solution_summaries().is_empty());
    let re = regex::Regex::new("^S-[0-9]{1,19}$").unwrap();
    for s in r.solution_summaries() {
        assert!(re.is_match(s.id()), "{}", s.id());
        assert_eq!(s.catalog(), "Sandbox");
    }
    let ids = solution_ids(&a, "Sandbox").await;
    assert_eq!(ids.len(), r.solution_summaries().len());
    let active = a
        .list_solutions()
        .catalog("Sandbox")
        .status(SolutionStatus::Active)
        .send()
        .await
        .unwrap();
    assert!(active
        .solution_summaries()
        .iter()
        .all(|s| s.status() == &SolutionStatus::Active));
    assert!(active.solution_summaries().len() < ids.len());
    let one = a
        .list_solutions()
        .catalog("Sandbox")
        .identifier(&ids[3])
        .send()
        .await
        .unwrap();
    assert_eq!(one.solution_summaries().len(), 1);
    let cat = one.solution_summaries()[0].category().to_string();
    let by_cat = a
        .list_solutions()
        .catalog("Sandbox")
        .category(&cat)
        .send()
        .await
        .unwrap();
    assert!(by_cat
        .solution_summaries()
        .iter()
        .all(|s| s.category() == cat));
    let theirs = solution_ids(&sdk_client(&e.url(), B), "Sandbox").await;
    assert!(theirs.iter().all(|t| !ids.contains(t)));
    assert_eq!(
        e.stats()["resources"]["solutions"],
        ids.len() + theirs.len()
    );
    e.shutdown().await.unwrap();
}

/// Another account cannot see, update, associate or list the opportunity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_another_account_cannot_see_the_opportunity() {
    let e = emu(config()).await;
    let a = sdk_client(&e.url(), A);
    let b = sdk_client(&e.url(), B);
    let id = create(&a, "Sandbox", "own1", "Acme").await;
    let got = get(&a, "Sandbox", &id).await;
    let err = b
        .get_opportunity()
        .catalog("Sandbox")
        .identifier(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");
    let err = update_from(&b, &got, None).send().await.unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");
    let sol = solution_ids(&b, "Sandbox").await;
    assert_eq!(
        associate(&b, "Sandbox", &id, RelatedEntityType::Solutions, &sol[0]).await,
        Err("ResourceNotFoundException".into())
    );
    let err = b
        .submit_opportunity()
        .catalog("Sandbox")
        .identifier(&id)
        .involvement_type(SalesInvolvementType::CoSell)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");
    let listed = b
        .list_opportunities()
        .catalog("Sandbox")
        .send()
        .await
        .unwrap();
    assert!(listed.opportunity_summaries().is_empty());
    // nor in another catalog of the owner
    let err = a
        .get_opportunity()
        .catalog("AWS")
        .identifier(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");
    e.shutdown().await.unwrap();
}

/// The state file keeps associations, the submission, the replaced record and the solutions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_opportunity_state_round_trips_through_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let cfg = || cosell::emulator::EmulatorConfig {
        state: Some(path.clone()),
        ..config()
    };
    let e = emu(cfg()).await;
    let a = sdk_client(&e.url(), A);
    let id = create(&a, "Sandbox", "st1", "Acme").await;
    let sols = solution_ids(&a, "Sandbox").await;
    associate(&a, "Sandbox", &id, RelatedEntityType::Solutions, &sols[1])
        .await
        .unwrap();
    let got = get(&a, "Sandbox", &id).await;
    update_from(&a, &got, None)
        .set_project(None)
        .send()
        .await
        .unwrap();
    submit(&a, "Sandbox", &id).await;
    let before = get(&a, "Sandbox", &id).await;
    e.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"format\": 1"), "{text}");

    let e = emu(cfg()).await;
    let a = sdk_client(&e.url(), A);
    let after = get(&a, "Sandbox", &id).await;
    assert_eq!(after.last_modified_date(), before.last_modified_date());
    assert!(after.project().is_none());
    assert_eq!(
        after.related_entity_identifiers().unwrap().solutions(),
        [sols[1].clone()]
    );
    assert_eq!(
        after.life_cycle().and_then(|l| l.review_status()),
        Some(&ReviewStatus::Submitted)
    );
    let sum = a
        .get_aws_opportunity_summary()
        .catalog("Sandbox")
        .related_opportunity_identifier(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(sum.involvement_type(), Some(&SalesInvolvementType::CoSell));
    assert_eq!(solution_ids(&a, "Sandbox").await, sols);
    assert_eq!(e.stats()["resources"]["solutions"], sols.len());
    e.shutdown().await.unwrap();
}
