//! Opportunities: Create, Get, List, Update, Assign, Associate, Disassociate, Submit and
//! GetAwsOpportunitySummary over [`State`] (the rules of `behaviours.md`, Opportunities).
//!
//! Rules enforced here:
//! - Ownership: an opportunity belongs to the account that created it (or accepted the
//!   invitation it came from) in its catalog; for any other account or catalog every operation
//!   answers `ResourceNotFoundException`, and List does not show it (as for engagement tasks).
//! - Create stores the members of the request that GetOpportunity returns; a missing
//!   `LifeCycle.ReviewStatus` is `Pending Submission`.
//! - Get returns the stored record with `RelatedEntityIdentifiers` (every association, one list
//!   per entity type) and the current `LastModifiedDate`.
//! - Update replaces the record: every member of UpdateOpportunity's input that the request
//!   leaves out is absent afterwards; members the input cannot carry (`OpportunityTeam`, the
//!   associations) are kept. `LifeCycle.ReviewStatus` is the service's: left out, it keeps
//!   its value. The checks run in this order:
//!   1. `LastModifiedDate` must equal the stored value, else `ConflictException` (read again
//!      and retry). Every successful change (update, assign, associate, disassociate, submit)
//!      sets a new, strictly later `LastModifiedDate`.
//!   2. ReviewStatus changes: in the AWS catalog ReviewStatus is read-only; in Sandbox the
//!      partner may set `Approved`, `Rejected` or `Action Required` (review self-service), never
//!      `Submitted`, `In review` or `Pending Submission`, and an `Approved` status cannot change
//!      again.
//!   3. While ReviewStatus is `Submitted` or `In review` no update is accepted, except the
//!      Sandbox self-service review itself (a ReviewStatus change with, at most,
//!      `ReviewComments`/`ReviewStatusReason`).
//!   4. In `Action Required` only [`ACTION_REQUIRED_EDITABLE`] may change (besides the review
//!      members).
//!   5. Once `Approved`, the customer's country (`Customer.Account.Address.CountryCode`) is
//!      frozen.
//!
//!   Each refusal of 2–5 is a `ValidationException` with `Reason` BUSINESS_VALIDATION_FAILED
//!   and one ErrorList entry, code `ACTION_NOT_PERMITTED`, naming the field.
//! - Associations ([`LIMITS`]): per opportunity at most 20 `AwsProducts`, 10 `Solutions`, 10
//!   `AwsMarketplaceSolutions`, 10 `AwsMarketplaceProducts`, 1 `AwsMarketplaceOffers` (private
//!   offer); `AwsMarketplaceOfferSets` has no documented limit. One more is a
//!   `ValidationException` (`TOO_MANY_VALUES` at `RelatedEntityIdentifier`). A solution must be
//!   one of the caller's solutions in the catalog (else `ResourceNotFoundException`); other
//!   entity identifiers are taken as given. Associating what is already associated is a
//!   `ConflictException` (observed; the model does not list it). Disassociating what is not
//!   associated is a `ResourceNotFoundException` (the model's errors have no better answer).
//! - Submit moves ReviewStatus to `Submitted` and records InvolvementType and Visibility. It is
//!   accepted from `Pending Submission`, `Action Required` or `Rejected`; otherwise
//!   `ValidationException` `INVALID_RESOURCE_STATE`. In the AWS catalog a solution must be
//!   associated first (`REQUIRED_FIELD_MISSING` at `RelatedEntityIdentifiers.Solutions`).
//! - Assign makes the assignee the opportunity's team (`OpportunityTeam`: one contact).
//! - GetAwsOpportunitySummary answers for an opportunity that was submitted (SubmitOpportunity
//!   or a completed StartEngagementFromOpportunityTask) or engaged; for any other it is a
//!   `ResourceNotFoundException`.
//! - ListOpportunities filters by Identifier, LastModifiedDate (After/Before, exclusive),
//!   CreatedDate (After/Before, exclusive), TargetCloseDate (After/Before, inclusive dates),
//!   LifeCycleStage, LifeCycleReviewStatus and CustomerCompanyName (exact); sorts by any
//!   `OpportunitySortName` (default: CreatedDate ascending, ties in creation order); pages with
//!   `MaxResults` (default 20) and `NextToken`.

use super::error::ApiError;
use super::ops::{descending, page, put_next, s, str_list, Ctx};
use super::state::*;
use crate::model::model;
use serde_json::{json, Map, Value};

/// Per-opportunity association limits per `RelatedEntityType` (quotas.md); a type not listed
/// has no documented limit.
pub const LIMITS: &[(&str, usize)] = &[
    ("AwsProducts", 20),
    ("Solutions", 10),
    ("AwsMarketplaceSolutions", 10),
    ("AwsMarketplaceProducts", 10),
    ("AwsMarketplaceOffers", 1),
];

use crate::model::update::{ACTION_REQUIRED_EDITABLE, REVIEW_MEMBERS};

/// ReviewStatus values a partner may set in Sandbox (review self-service).
const SELF_SERVICE: &[&str] = &["Approved", "Rejected", "Action Required"];

const PENDING: &str = "Pending Submission";

pub(super) fn opportunity_arn(account: &str, catalog: &str, id: &str) -> String {
    format!("arn:aws:partnercentral:us-east-1:{account}:catalog/{catalog}/opportunity/{id}")
}

/// The opportunity `id` in `catalog`, owned by `account` (else ResourceNotFound).
pub(super) fn owned_opportunity<'s>(
    state: &'s State,
    catalog: &str,
    id: &str,
    account: &str,
) -> Result<&'s Opportunity, ApiError> {
    state
        .opportunities
        .get(id)
        .filter(|o| o.catalog == catalog && o.owner == account)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Opportunity {id} was not found in catalog {catalog}"
            ))
        })
}

fn owned_mut<'s>(
    state: &'s mut State,
    catalog: &str,
    id: &str,
    account: &str,
) -> Result<&'s mut Opportunity, ApiError> {
    owned_opportunity(state, catalog, id, account)?;
    Ok(state.opportunities.get_mut(id).expect("checked above"))
}

/// A strictly later modification time than `prev`.
pub(super) fn bump(prev: Millis, now: Millis) -> Millis {
    now.max(prev + 1)
}

fn not_permitted(field: &str, message: String) -> ApiError {
    ApiError::business(field, "ACTION_NOT_PERMITTED", message)
}

/// A request timestamp (ISO 8601 string, or epoch seconds) in milliseconds.
pub(super) fn timestamp(v: Option<&Value>) -> Option<Millis> {
    match v? {
        Value::String(t) => chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|d| d.timestamp_millis()),
        Value::Number(n) => n.as_f64().map(|f| (f * 1000.0).round() as Millis),
        _ => None,
    }
}

fn review_status(fields: &Map<String, Value>) -> &str {
    fields
        .get("LifeCycle")
        .and_then(|l| l.get("ReviewStatus"))
        .and_then(Value::as_str)
        .unwrap_or(PENDING)
}

fn set_review_status(fields: &mut Map<String, Value>, status: &str) {
    let life = fields
        .entry("LifeCycle")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(l) = life.as_object_mut() {
        l.insert("ReviewStatus".into(), status.into());
    }
}

/// The members of `shape_op`'s `io` shape (input or output).
fn members_of(op: &str, input: bool) -> Vec<String> {
    let m = model();
    m.operation(op)
        .and_then(|o| if input { o.input } else { o.output })
        .map(|id| {
            m.shape(id)
                .members()
                .iter()
                .map(|mb| mb.name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// `fields` without the dotted `paths`, and without objects left empty.
fn without(fields: &Map<String, Value>, paths: &[&str]) -> Value {
    fn remove(v: &mut Value, path: &[&str]) {
        let Some(obj) = v.as_object_mut() else {
            return;
        };
        match path {
            [] => {}
            [last] => {
                obj.remove(*last);
            }
            [head, rest @ ..] => {
                if let Some(child) = obj.get_mut(*head) {
                    remove(child, rest);
                }
            }
        }
    }
    fn prune(v: &mut Value) {
        if let Some(obj) = v.as_object_mut() {
            for c in obj.values_mut() {
                prune(c);
            }
            obj.retain(|_, c| !matches!(c, Value::Object(m) if m.is_empty()));
        }
    }
    let mut v = Value::Object(fields.clone());
    for p in paths {
        remove(&mut v, &p.split('.').collect::<Vec<_>>());
    }
    prune(&mut v);
    v
}

/// The first top-level (or `LifeCycle.`/`Customer.`/`Project.` nested) member that differs,
/// for the error message.
fn first_difference(a: &Value, b: &Value, prefix: &str) -> String {
    if let (Some(x), Some(y)) = (a.as_object(), b.as_object()) {
        let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let (u, v) = (x.get(k), y.get(k));
            if u != v {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                return match (u, v) {
                    (Some(u), Some(v)) if u.is_object() && v.is_object() => {
                        first_difference(u, v, &path)
                    }
                    _ => path,
                };
            }
        }
    }
    if prefix.is_empty() {
        "request".into()
    } else {
        prefix.into()
    }
}

fn country(fields: &Map<String, Value>) -> Option<&Value> {
    fields
        .get("Customer")?
        .get("Account")?
        .get("Address")?
        .get("CountryCode")
}

// ---- create, get ---------------------------------------------------------------------------

pub(super) fn create_opportunity(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog").to_string();
    let m = model();
    let out_shape = m
        .operation("GetOpportunity")
        .and_then(|o| o.output)
        .map(|id| m.shape(id));
    let mut fields = Map::new();
    if let (Some(obj), Some(shape)) = (body.as_object(), out_shape) {
        for (k, v) in obj {
            if k != "Catalog" && shape.member(k).is_some() && !v.is_null() {
                fields.insert(k.clone(), v.clone());
            }
        }
    }
    if fields
        .get("LifeCycle")
        .and_then(|l| l.get("ReviewStatus"))
        .is_none()
    {
        set_review_status(&mut fields, PENDING);
    }
    let id = state.new_opportunity_id();
    let seq = state.next_seq();
    let o = Opportunity {
        arn: opportunity_arn(ctx.account, &catalog, &id),
        id: id.clone(),
        catalog,
        seq,
        owner: ctx.account.to_string(),
        fields,
        created_at: ctx.now,
        modified_at: ctx.now,
        engagement_id: None,
        related: Default::default(),
        submission: None,
        submissions: 0,
    };
    let mut out = json!({"Id": o.id, "LastModifiedDate": iso(o.modified_at)});
    if let Some(p) = o.fields.get("PartnerOpportunityIdentifier") {
        out["PartnerOpportunityIdentifier"] = p.clone();
    }
    state.opportunities.insert(id, o);
    Ok(out)
}

fn related_value(o: &Opportunity) -> Value {
    let mut m = Map::new();
    for (k, v) in &o.related {
        if !v.is_empty() {
            m.insert(k.clone(), json!(v));
        }
    }
    Value::Object(m)
}

pub(super) fn get_opportunity(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let o = owned_opportunity(
        state,
        s(body, "Catalog"),
        s(body, "Identifier"),
        ctx.account,
    )?;
    let mut out = Map::new();
    out.insert("Catalog".into(), o.catalog.clone().into());
    for (k, v) in &o.fields {
        out.insert(k.clone(), v.clone());
    }
    out.insert("Id".into(), o.id.clone().into());
    out.insert("Arn".into(), o.arn.clone().into());
    out.insert("LastModifiedDate".into(), iso(o.modified_at).into());
    out.insert("CreatedDate".into(), iso(o.created_at).into());
    out.insert("RelatedEntityIdentifiers".into(), related_value(o));
    Ok(Value::Object(out))
}

// ---- update --------------------------------------------------------------------------------

pub(super) fn update_opportunity(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog").to_string();
    let id = s(body, "Identifier").to_string();
    let o = owned_opportunity(state, &catalog, &id, ctx.account)?;
    let sent = timestamp(body.get("LastModifiedDate"));
    if sent != Some(o.modified_at) {
        return Err(ApiError::conflict(format!(
            "Opportunity {id} was modified at {} (LastModifiedDate {} is stale): \
             GetOpportunity again, reapply the change and retry",
            iso(o.modified_at),
            body.get("LastModifiedDate").unwrap_or(&Value::Null)
        )));
    }
    // the new record: what the input cannot carry is kept, the rest comes from the request
    let input = members_of("UpdateOpportunity", true);
    let output = members_of("GetOpportunity", false);
    let mut fields: Map<String, Value> = o
        .fields
        .iter()
        .filter(|(k, _)| !input.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(obj) = body.as_object() {
        for (k, v) in obj {
            let control = matches!(k.as_str(), "Catalog" | "Identifier" | "LastModifiedDate");
            if !control && output.contains(k) && !v.is_null() {
                fields.insert(k.clone(), v.clone());
            }
        }
    }
    let old = review_status(&o.fields).to_string();
    let requested = fields
        .get("LifeCycle")
        .and_then(|l| l.get("ReviewStatus"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let new = requested.unwrap_or_else(|| old.clone());
    set_review_status(&mut fields, &new);
    let field = "LifeCycle.ReviewStatus";
    let changes_status = new != old;
    if changes_status {
        if catalog != "Sandbox" {
            return Err(not_permitted(
                field,
                format!(
                    "ReviewStatus is set by AWS's review in the {catalog} catalog; send the stored \
                     value ({old}) or leave it out"
                ),
            ));
        }
        if old == "Approved" {
            return Err(not_permitted(
                field,
                format!("Opportunity {id} is Approved; its ReviewStatus cannot change again"),
            ));
        }
        if !SELF_SERVICE.contains(&new.as_str()) {
            return Err(not_permitted(
                field,
                format!(
                    "ReviewStatus {new:?} cannot be set by the partner (Sandbox review \
                     self-service sets Approved, Rejected or Action Required; use \
                     SubmitOpportunity to submit)"
                ),
            ));
        }
    }
    let diff_outside = |allowed: &[&str]| {
        let (a, b) = (without(&o.fields, allowed), without(&fields, allowed));
        (a != b).then(|| first_difference(&a, &b, ""))
    };
    if old == "Submitted" || old == "In review" {
        let self_service = changes_status && diff_outside(REVIEW_MEMBERS).is_none();
        if !self_service {
            return Err(not_permitted(
                field,
                format!("Opportunity {id} is {old}: no update is accepted while AWS reviews it"),
            ));
        }
    }
    if old == "Action Required" {
        let allowed: Vec<&str> = ACTION_REQUIRED_EDITABLE
            .iter()
            .chain(REVIEW_MEMBERS)
            .copied()
            .collect();
        if let Some(f) = diff_outside(&allowed) {
            return Err(not_permitted(
                &f,
                format!(
                    "Opportunity {id} is Action Required: only {} may change, not {f}",
                    ACTION_REQUIRED_EDITABLE.join(", ")
                ),
            ));
        }
    }
    if old == "Approved" && country(&o.fields) != country(&fields) {
        return Err(not_permitted(
            "Customer.Account.Address.CountryCode",
            format!("Opportunity {id} is Approved: the customer's country is frozen"),
        ));
    }
    let o = owned_mut(state, &catalog, &id, ctx.account)?;
    o.fields = fields;
    o.modified_at = bump(o.modified_at, ctx.now);
    Ok(json!({"Id": o.id, "LastModifiedDate": iso(o.modified_at)}))
}

// ---- assign, associate, submit -------------------------------------------------------------

pub(super) fn assign_opportunity(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let o = owned_mut(
        state,
        s(body, "Catalog"),
        s(body, "Identifier"),
        ctx.account,
    )?;
    let mut contact = Map::new();
    if let Some(a) = body.get("Assignee").and_then(Value::as_object) {
        for k in ["Email", "FirstName", "LastName", "BusinessTitle", "Phone"] {
            if let Some(v) = a.get(k) {
                contact.insert(k.into(), v.clone());
            }
        }
    }
    o.fields
        .insert("OpportunityTeam".into(), json!([Value::Object(contact)]));
    o.modified_at = bump(o.modified_at, ctx.now);
    Ok(json!({}))
}

pub(super) fn associate_opportunity(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
    associate: bool,
) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog").to_string();
    let id = s(body, "OpportunityIdentifier").to_string();
    let kind = s(body, "RelatedEntityType").to_string();
    let entity = s(body, "RelatedEntityIdentifier").to_string();
    owned_opportunity(state, &catalog, &id, ctx.account)?;
    if associate && kind == "Solutions" {
        super::solutions::ensure_seeded(state, ctx, &catalog);
        let known = state
            .solutions
            .get(&entity)
            .is_some_and(|x| x.catalog == catalog && x.owner == ctx.account);
        if !known {
            return Err(ApiError::not_found(format!(
                "Solution {entity} was not found in catalog {catalog} (ListSolutions lists yours)"
            )));
        }
    }
    let o = owned_mut(state, &catalog, &id, ctx.account)?;
    let list = o.related.entry(kind.clone()).or_default();
    let present = list.contains(&entity);
    if associate {
        if present {
            return Err(ApiError::conflict(format!(
                "{kind} {entity} is already associated with opportunity {id}"
            )));
        }
        if let Some((_, limit)) = LIMITS.iter().find(|(k, _)| *k == kind) {
            if list.len() >= *limit {
                return Err(ApiError::business(
                    "RelatedEntityIdentifier",
                    "TOO_MANY_VALUES",
                    format!(
                        "Opportunity {id} already has {limit} {kind} associated, the most it may \
                         have; disassociate one first"
                    ),
                ));
            }
        }
        list.push(entity);
    } else {
        if !present {
            return Err(ApiError::not_found(format!(
                "{kind} {entity} is not associated with opportunity {id}"
            )));
        }
        list.retain(|e| *e != entity);
        if list.is_empty() {
            o.related.remove(&kind);
        }
    }
    o.modified_at = bump(o.modified_at, ctx.now);
    Ok(json!({}))
}

pub(super) fn submit_opportunity(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog").to_string();
    let id = s(body, "Identifier").to_string();
    let o = owned_mut(state, &catalog, &id, ctx.account)?;
    let old = review_status(&o.fields).to_string();
    if !matches!(old.as_str(), PENDING | "Action Required" | "Rejected") {
        return Err(ApiError::business(
            "LifeCycle.ReviewStatus",
            "INVALID_RESOURCE_STATE",
            format!(
                "Opportunity {id} is {old}; only an opportunity that is Pending Submission, \
                 Action Required or Rejected can be submitted"
            ),
        ));
    }
    if catalog == "AWS" && o.related.get("Solutions").is_none_or(Vec::is_empty) {
        return Err(ApiError::business(
            "RelatedEntityIdentifiers.Solutions",
            "REQUIRED_FIELD_MISSING",
            format!(
                "Opportunity {id} has no solution: associate one (AssociateOpportunity, \
                 RelatedEntityType Solutions) before submitting in the AWS catalog"
            ),
        ));
    }
    set_review_status(&mut o.fields, "Submitted");
    o.submissions += 1;
    o.submission = Some(Submission {
        involvement_type: s(body, "InvolvementType").to_string(),
        visibility: body
            .get("Visibility")
            .and_then(Value::as_str)
            .map(str::to_string),
        submitted_at: ctx.now,
    });
    o.modified_at = bump(o.modified_at, ctx.now);
    Ok(json!({}))
}

// ---- AWS summary ---------------------------------------------------------------------------

pub(super) fn get_aws_summary(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog");
    let id = s(body, "RelatedOpportunityIdentifier");
    let o = owned_opportunity(state, catalog, id, ctx.account)?;
    let status = review_status(&o.fields);
    if o.submission.is_none() && o.engagement_id.is_none() && status == PENDING {
        return Err(ApiError::not_found(format!(
            "Opportunity {id} has no AWS opportunity yet: submit it (SubmitOpportunity or \
             StartEngagementFromOpportunityTask) first"
        )));
    }
    let stage = match status {
        "Approved" => "Qualified",
        "Rejected" => "Closed Incomplete",
        "Action Required" => "On-hold",
        _ => "Not Started",
    };
    let mut life = json!({"Stage": stage, "NextSteps": "AWS is reviewing the opportunity"});
    if let Some(t) = o
        .fields
        .get("LifeCycle")
        .and_then(|l| l.get("TargetCloseDate"))
    {
        life["TargetCloseDate"] = t.clone();
    }
    let (involvement, visibility) = match &o.submission {
        Some(sub) => (
            sub.involvement_type.clone(),
            sub.visibility.clone().unwrap_or_else(|| "Full".into()),
        ),
        None => ("Co-Sell".into(), "Full".into()),
    };
    let mut related = Map::new();
    for k in [
        "AwsProducts",
        "Solutions",
        "AwsMarketplaceSolutions",
        "AwsMarketplaceProducts",
    ] {
        if let Some(v) = o.related.get(k).filter(|v| !v.is_empty()) {
            related.insert(k.into(), json!(v));
        }
    }
    let mut out = json!({
        "Catalog": o.catalog,
        "RelatedOpportunityId": o.id,
        "Origin": "Partner Referral",
        "InvolvementType": involvement,
        "Visibility": visibility,
        "LifeCycle": life,
        "OpportunityTeam": [{
            "FirstName": "Alex", "LastName": "Rivera",
            "Email": "alex.rivera@amazon.example.com", "BusinessTitle": "PDM",
        }],
        "Insights": {"EngagementScore": "Medium",
                     "NextBestActions": "Review the opportunity with your AWS partner manager"},
        "RelatedEntityIds": related,
    });
    if let Some(spend) = o
        .fields
        .get("Project")
        .and_then(|p| p.get("ExpectedCustomerSpend"))
    {
        out["Project"] = json!({"ExpectedCustomerSpend": spend});
    }
    Ok(out)
}

// ---- list ----------------------------------------------------------------------------------

fn company(o: &Opportunity) -> &str {
    o.fields
        .get("Customer")
        .and_then(|c| c.get("Account"))
        .and_then(|a| a.get("CompanyName"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn life_str<'o>(o: &'o Opportunity, k: &str) -> Option<&'o str> {
    o.fields
        .get("LifeCycle")
        .and_then(|l| l.get(k))
        .and_then(Value::as_str)
}

fn pick(src: Option<&Value>, keys: &[&str]) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(obj) = src.and_then(Value::as_object) {
        for k in keys {
            if let Some(v) = obj.get(*k) {
                m.insert((*k).into(), v.clone());
            }
        }
    }
    m
}

fn summary(o: &Opportunity) -> Value {
    let mut v = json!({
        "Catalog": o.catalog, "Id": o.id, "Arn": o.arn,
        "LastModifiedDate": iso(o.modified_at), "CreatedDate": iso(o.created_at),
    });
    for k in ["PartnerOpportunityIdentifier", "OpportunityType"] {
        if let Some(x) = o.fields.get(k) {
            v[k] = x.clone();
        }
    }
    let life = pick(
        o.fields.get("LifeCycle"),
        &[
            "Stage",
            "ClosedLostReason",
            "NextSteps",
            "TargetCloseDate",
            "ReviewStatus",
            "ReviewComments",
            "ReviewStatusReason",
        ],
    );
    if !life.is_empty() {
        v["LifeCycle"] = Value::Object(life);
    }
    let account = o.fields.get("Customer").and_then(|c| c.get("Account"));
    let mut acc = pick(
        account,
        &["Industry", "OtherIndustry", "CompanyName", "WebsiteUrl"],
    );
    let addr = pick(
        account.and_then(|a| a.get("Address")),
        &["City", "PostalCode", "StateOrRegion", "CountryCode"],
    );
    if !addr.is_empty() {
        acc.insert("Address".into(), Value::Object(addr));
    }
    // AccountSummary requires CompanyName
    if acc.contains_key("CompanyName") {
        v["Customer"] = json!({"Account": acc});
    }
    let proj = pick(
        o.fields.get("Project"),
        &[
            "DeliveryModels",
            "ExpectedCustomerSpend",
            "ExpectedContractDuration",
        ],
    );
    if !proj.is_empty() {
        v["Project"] = Value::Object(proj);
    }
    v
}

pub(super) fn list_opportunities(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog");
    let ids = str_list(body, "Identifier");
    let stages = str_list(body, "LifeCycleStage");
    let statuses = str_list(body, "LifeCycleReviewStatus");
    let companies = str_list(body, "CustomerCompanyName");
    let range = |k: &str, after: &str, before: &str| {
        let f = body.get(k);
        (
            timestamp(f.and_then(|f| f.get(after))),
            timestamp(f.and_then(|f| f.get(before))),
        )
    };
    let (mod_after, mod_before) = range(
        "LastModifiedDate",
        "AfterLastModifiedDate",
        "BeforeLastModifiedDate",
    );
    let (cr_after, cr_before) = range("CreatedDate", "AfterCreatedDate", "BeforeCreatedDate");
    let close = body.get("TargetCloseDate");
    let close_after = close
        .and_then(|c| c.get("AfterTargetCloseDate"))
        .and_then(Value::as_str);
    let close_before = close
        .and_then(|c| c.get("BeforeTargetCloseDate"))
        .and_then(Value::as_str);
    let in_list = |l: &Option<Vec<&str>>, v: &str| l.as_ref().is_none_or(|l| l.contains(&v));
    let mut found: Vec<&Opportunity> = state
        .opportunities
        .values()
        .filter(|o| o.catalog == catalog && o.owner == ctx.account)
        .filter(|o| in_list(&ids, &o.id))
        .filter(|o| in_list(&stages, life_str(o, "Stage").unwrap_or("")))
        .filter(|o| in_list(&statuses, review_status(&o.fields)))
        .filter(|o| in_list(&companies, company(o)))
        .filter(|o| mod_after.is_none_or(|t| o.modified_at > t))
        .filter(|o| mod_before.is_none_or(|t| o.modified_at < t))
        .filter(|o| cr_after.is_none_or(|t| o.created_at > t))
        .filter(|o| cr_before.is_none_or(|t| o.created_at < t))
        .filter(|o| {
            let d = life_str(o, "TargetCloseDate");
            close_after.is_none_or(|a| d.is_some_and(|d| d >= a))
                && close_before.is_none_or(|b| d.is_some_and(|d| d <= b))
        })
        .collect();
    let by = body
        .get("Sort")
        .and_then(|s| s.get("SortBy"))
        .and_then(Value::as_str)
        .unwrap_or("CreatedDate");
    found.sort_by(|a, b| {
        let key = match by {
            "LastModifiedDate" => a.modified_at.cmp(&b.modified_at),
            "Identifier" => a.id.cmp(&b.id),
            "CustomerCompanyName" => company(a).cmp(company(b)),
            "TargetCloseDate" => {
                life_str(a, "TargetCloseDate").cmp(&life_str(b, "TargetCloseDate"))
            }
            _ => a.created_at.cmp(&b.created_at),
        };
        key.then(a.seq.cmp(&b.seq))
    });
    if descending(body) {
        found.reverse();
    }
    let (items, next) = page(body, found, 20)?;
    let list: Vec<Value> = items.into_iter().map(summary).collect();
    let mut out = json!({ "OpportunitySummaries": list });
    put_next(&mut out, next);
    Ok(out)
}
