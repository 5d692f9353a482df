//! Dispatch of the served operations over [`State`], idempotency, the engagement, invitation
//! and task operations, task completion and the response bodies (exactly the members of the
//! model's output shapes). Opportunities are in `opportunities`, solutions in `solutions`,
//! snapshots and snapshot jobs in `snapshots`, tags in `tags`, settings in `settings`.
//!
//! Every function here runs inside the one state lock and never blocks.
//!
//! Task rules:
//! - A task is due `--task-delay` after it starts and completes lazily (the first request or
//!   stats read after that). With `--task-delay 0s` it completes inside the Start call, as the
//!   real service has been observed to do: the Start response already says `COMPLETE` (or
//!   `FAILED`) with the same result ids a later List…Tasks reports, and the effects (invitation
//!   ACCEPTED, opportunity, engagement) are in place when the response is sent.
//! - An accepting task may be started on an EXPIRED invitation and then FAILS
//!   (`InvitationValidationFailed`); on an ACCEPTED or REJECTED one the Start is a
//!   `ConflictException`.
//! - At completion the failure rules run first (expired invitation, conflicts); a task that
//!   passes them and drew the `task_failure` fault at start ends `FAILED` with its retryable
//!   `ReasonCode` (`InternalError` / `RequestThrottled`) and changes nothing else, so the
//!   invitation stays PENDING and the opportunity free: a Start with a new ClientToken begins
//!   a new task; the same ClientToken replays the failed task.
//! - Invitations carry `SenderCompanyName`: the fixture's value for fixture invitations, else
//!   the sender account's company name ([`State::company_name`]).

use super::error::ApiError;
use super::opportunities::{self as opp, opportunity_arn, owned_opportunity};
use super::snapshots as snap;
use super::state::*;
use crate::model::model;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The operations the emulator serves: the rows of the operation table marked emulated
/// ([`crate::model::ops`]); everything else is `UnknownOperationException`.
pub static OPERATIONS: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| crate::model::ops::emulated().collect());

/// Index of an operation in [`OPERATIONS`].
pub fn op_index(name: &str) -> Option<usize> {
    OPERATIONS.iter().position(|o| *o == name)
}

/// Who is calling and when.
pub struct Ctx<'a> {
    pub account: &'a str,
    pub now: Millis,
    pub ttl_ms: i64,
    pub task_delay_ms: i64,
    /// For a Start…Task: the `task_failure` fault drawn for the task it creates.
    pub task_failure: Option<&'static str>,
}

/// A successful answer.
pub struct Outcome {
    pub body: Vec<u8>,
    /// The answer is an idempotent replay of an earlier request.
    pub replay: bool,
}

pub(super) fn s<'v>(body: &'v Value, k: &str) -> &'v str {
    body.get(k).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn str_list<'v>(body: &'v Value, k: &str) -> Option<Vec<&'v str>> {
    body.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
}

pub(super) fn to_body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Run one validated request. `body` has passed `model().validate_input`.
pub fn execute(
    state: &mut State,
    op: &str,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Outcome, ApiError> {
    settle(state, ctx.now, ctx.ttl_ms);
    super::snapshots::run_jobs(state, ctx.now);
    let catalog = s(body, "Catalog");
    // the tag operations have no Catalog member (the catalog is in the ARN)
    let has_catalog = model()
        .operation(op)
        .and_then(|o| o.input)
        .is_some_and(|i| model().shape(i).member("Catalog").is_some());
    if has_catalog && catalog != "AWS" && catalog != "Sandbox" {
        return Err(ApiError::business(
            "Catalog",
            "INVALID_VALUE",
            format!("Catalog {catalog:?} is not valid: use AWS (production) or Sandbox (testing)"),
        ));
    }
    let token_member = model().operation(op).and_then(|o| o.idempotency_member());
    let mutating = !op.starts_with("Get") && !op.starts_with("List");
    let Some(member) = token_member else {
        let out = run(state, op, ctx, body)?;
        if mutating {
            state.touch();
        }
        return Ok(Outcome {
            body: out.0,
            replay: false,
        });
    };
    let key = format!("{}\u{1f}{op}\u{1f}{}", ctx.account, s(body, member));
    let hash = canonical_hash(body);
    if let Some(rec) = state.idempotency.get(&key) {
        if rec.request_hash != hash {
            return Err(ApiError::conflict(format!(
                "ClientToken {:?} was already used for a different {op} request; use a new token \
                 for a new request, or repeat the original request exactly",
                s(body, member)
            )));
        }
        let body = match &rec.task_id {
            Some(t) => match state.tasks.get(t) {
                Some(task) => to_body(&start_task_response(task)),
                None => to_body(&rec.response),
            },
            None => to_body(&rec.response),
        };
        return Ok(Outcome { body, replay: true });
    }
    let (out, task_id) = run(state, op, ctx, body)?;
    state.touch();
    let response: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
    state.idempotency.insert(
        key,
        IdempotencyRecord {
            request_hash: hash,
            response,
            task_id,
        },
    );
    Ok(Outcome {
        body: out,
        replay: false,
    })
}

/// SHA-256 over the request with object keys sorted (key order on the wire does not matter).
pub fn canonical_hash(v: &Value) -> String {
    fn feed(h: &mut Sha256, v: &Value) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                h.update(b"{");
                for k in keys {
                    h.update(serde_json::to_string(k).unwrap_or_default().as_bytes());
                    h.update(b":");
                    feed(h, &m[k]);
                    h.update(b",");
                }
                h.update(b"}");
            }
            Value::Array(a) => {
                h.update(b"[");
                for x in a {
                    feed(h, x);
                    h.update(b",");
                }
                h.update(b"]");
            }
            other => h.update(other.to_string().as_bytes()),
        }
    }
    let mut h = Sha256::new();
    feed(&mut h, v);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

type RunResult = Result<(Vec<u8>, Option<String>), ApiError>;

fn run(state: &mut State, op: &str, ctx: &Ctx<'_>, body: &Value) -> RunResult {
    let plain = |r: Result<Value, ApiError>| r.map(|v| (to_body(&v), None));
    match op {
        "CreateEngagement" => plain(create_engagement(state, ctx, body)),
        "GetEngagement" => plain(get_engagement(state, ctx, body)),
        "ListEngagements" => plain(list_engagements(state, ctx, body)),
        "CreateEngagementInvitation" => plain(create_invitation(state, ctx, body)),
        "GetEngagementInvitation" => get_invitation(state, ctx, body).map(|b| (b, None)),
        "ListEngagementInvitations" => plain(list_invitations(state, ctx, body)),
        "RejectEngagementInvitation" => plain(reject_invitation(state, ctx, body)),
        "StartEngagementByAcceptingInvitationTask" => start_accept(state, ctx, body),
        "ListEngagementByAcceptingInvitationTasks" => {
            plain(list_tasks(state, ctx, body, TaskKind::AcceptInvitation))
        }
        "StartEngagementFromOpportunityTask" => start_from_opportunity(state, ctx, body),
        "ListEngagementFromOpportunityTasks" => {
            plain(list_tasks(state, ctx, body, TaskKind::FromOpportunity))
        }
        "CreateOpportunity" => plain(super::tags::create_opportunity(state, ctx, body)),
        "GetOpportunity" => plain(opp::get_opportunity(state, ctx, body)),
        "UpdateOpportunity" => plain(opp::update_opportunity(state, ctx, body)),
        "ListOpportunities" => plain(opp::list_opportunities(state, ctx, body)),
        "AssignOpportunity" => plain(opp::assign_opportunity(state, ctx, body)),
        "AssociateOpportunity" => plain(opp::associate_opportunity(state, ctx, body, true)),
        "DisassociateOpportunity" => plain(opp::associate_opportunity(state, ctx, body, false)),
        "SubmitOpportunity" => plain(opp::submit_opportunity(state, ctx, body)),
        "GetAwsOpportunitySummary" => plain(opp::get_aws_summary(state, ctx, body)),
        "ListSolutions" => plain(super::solutions::list_solutions(state, ctx, body)),
        "CreateResourceSnapshot" => plain(snap::create_snapshot(state, ctx, body)),
        "GetResourceSnapshot" => plain(snap::get_snapshot(state, ctx, body)),
        "ListResourceSnapshots" => plain(snap::list_snapshots(state, ctx, body)),
        "CreateResourceSnapshotJob" => plain(snap::create_job(state, ctx, body)),
        "StartResourceSnapshotJob" => plain(snap::start_job(state, ctx, body)),
        "StopResourceSnapshotJob" => plain(snap::stop_job(state, ctx, body)),
        "DeleteResourceSnapshotJob" => plain(snap::delete_job(state, ctx, body)),
        "GetResourceSnapshotJob" => plain(snap::get_job(state, ctx, body)),
        "ListResourceSnapshotJobs" => plain(snap::list_jobs(state, ctx, body)),
        "TagResource" => plain(super::tags::tag_resource(state, ctx, body)),
        "UntagResource" => plain(super::tags::untag_resource(state, ctx, body)),
        "ListTagsForResource" => plain(super::tags::list_tags(state, ctx, body)),
        "GetSellingSystemSettings" => plain(super::settings::get_settings(state, ctx, body)),
        "PutSellingSystemSettings" => plain(super::settings::put_settings(state, ctx, body)),
        other => Err(ApiError::unknown_operation(format!(
            "operation {other} is not served by the emulator"
        ))),
    }
}

// ---- ARNs ----------------------------------------------------------------------------------

pub(super) fn engagement_arn(account: &str, catalog: &str, id: &str) -> String {
    format!("arn:aws:partnercentral:us-east-1:{account}:catalog/{catalog}/engagement/{id}")
}
/// `arn:aws:partnercentral::[0-9]{12}:[a-zA-Z]+/engagement-invitation/engi-…` (the model's
/// pattern for `EngagementInvitationArn`).
pub(super) fn invitation_arn(account: &str, catalog: &str, id: &str) -> String {
    format!("arn:aws:partnercentral::{account}:{catalog}/engagement-invitation/{id}")
}
fn task_arn(account: &str, catalog: &str, kind: TaskKind, id: &str) -> String {
    let k = match kind {
        TaskKind::AcceptInvitation => "engagement-by-accepting-invitation-task",
        TaskKind::FromOpportunity => "engagement-from-opportunity-task",
    };
    format!("arn:aws:partnercentral:us-east-1:{account}:catalog/{catalog}/{k}/{id}")
}

// ---- pagination ----------------------------------------------------------------------------

/// One page of `items` (already filtered and sorted) from `NextToken`.
pub(super) fn page<T>(
    body: &Value,
    items: Vec<T>,
    default_max: usize,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = body
        .get("MaxResults")
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .unwrap_or(default_max)
        .max(1);
    let start = match body.get("NextToken").and_then(Value::as_str) {
        None => 0,
        Some(t) => t
            .strip_prefix("p")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| {
                ApiError::business(
                    "NextToken",
                    "INVALID_VALUE",
                    "NextToken is not a token this service returned (or the list changed); start again without NextToken",
                )
            })?,
    };
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| format!("p{end}"));
    let page = items.into_iter().skip(start).take(end - start).collect();
    Ok((page, next))
}

pub(super) fn descending(body: &Value) -> bool {
    body.get("Sort")
        .map(|s| s["SortOrder"] == "DESCENDING")
        .unwrap_or(false)
}

pub(super) fn put_next(out: &mut Value, next: Option<String>) {
    if let Some(n) = next {
        out["NextToken"] = Value::String(n);
    }
}

// ---- engagements ---------------------------------------------------------------------------

fn create_engagement(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog").to_string();
    let id = state.new_engagement_id();
    let seq = state.next_seq();
    let e = Engagement {
        arn: engagement_arn(ctx.account, &catalog, &id),
        id: id.clone(),
        catalog,
        seq,
        title: body
            .get("Title")
            .and_then(Value::as_str)
            .map(str::to_string),
        description: body
            .get("Description")
            .and_then(Value::as_str)
            .map(str::to_string),
        contexts: body.get("Contexts").filter(|c| !c.is_null()).cloned(),
        created_at: ctx.now,
        created_by: ctx.account.to_string(),
        modified_at: ctx.now,
        modified_by: ctx.account.to_string(),
        members: vec![ctx.account.to_string()],
    };
    let out = json!({"Id": e.id, "Arn": e.arn, "ModifiedAt": iso(e.modified_at)});
    state.engagements.insert(id, e);
    Ok(out)
}

/// The engagement `identifier` (id or ARN) in `catalog`, visible to `account` as a member.
fn member_engagement<'s>(
    state: &'s State,
    catalog: &str,
    identifier: &str,
    account: &str,
) -> Result<&'s Engagement, ApiError> {
    let id = bare_id(identifier);
    let e = state
        .engagements
        .get(id)
        .filter(|e| e.catalog == catalog)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Engagement {id} was not found in catalog {catalog}"
            ))
        })?;
    if !e.members.iter().any(|m| m == account) {
        return Err(ApiError::access_denied(format!(
            "Account {account} is not a member of engagement {id}"
        )));
    }
    Ok(e)
}

fn context_types(e: &Engagement) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    if let Some(Value::Array(cs)) = &e.contexts {
        for c in cs {
            if let Some(t) = c.get("Type") {
                if !out.contains(t) {
                    out.push(t.clone());
                }
            }
        }
    }
    out
}

fn get_engagement(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> Result<Value, ApiError> {
    let e = member_engagement(
        state,
        s(body, "Catalog"),
        s(body, "Identifier"),
        ctx.account,
    )?;
    let mut out = json!({
        "Id": e.id, "Arn": e.arn,
        "CreatedAt": iso(e.created_at), "CreatedBy": e.created_by,
        "MemberCount": e.members.len(),
        "ModifiedAt": iso(e.modified_at), "ModifiedBy": e.modified_by,
    });
    if let Some(t) = &e.title {
        out["Title"] = t.clone().into();
    }
    if let Some(d) = &e.description {
        out["Description"] = d.clone().into();
    }
    if let Some(c) = &e.contexts {
        out["Contexts"] = c.clone();
    }
    Ok(out)
}

fn list_engagements(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog");
    let created_by = str_list(body, "CreatedBy");
    let exclude_created_by = str_list(body, "ExcludeCreatedBy");
    let ctx_types = str_list(body, "ContextTypes");
    let exclude_ctx = str_list(body, "ExcludeContextTypes");
    let ids: Option<Vec<&str>> =
        str_list(body, "EngagementIdentifier").map(|v| v.into_iter().map(bare_id).collect());
    let mut found: Vec<&Engagement> = state
        .engagements
        .values()
        .filter(|e| e.catalog == catalog && e.members.iter().any(|m| m == ctx.account))
        .filter(|e| {
            created_by
                .as_ref()
                .is_none_or(|l| l.contains(&e.created_by.as_str()))
        })
        .filter(|e| {
            exclude_created_by
                .as_ref()
                .is_none_or(|l| !l.contains(&e.created_by.as_str()))
        })
        .filter(|e| ids.as_ref().is_none_or(|l| l.contains(&e.id.as_str())))
        .filter(|e| {
            let types = context_types(e);
            let has = |t: &&str| types.iter().any(|x| x == *t);
            ctx_types
                .as_ref()
                .is_none_or(|l| l.is_empty() || l.iter().any(has))
                && exclude_ctx.as_ref().is_none_or(|l| !l.iter().any(has))
        })
        .collect();
    found.sort_by_key(|e| (e.created_at, e.seq));
    if descending(body) {
        found.reverse();
    }
    let (items, next) = page(body, found, 100)?;
    let list: Vec<Value> = items
        .into_iter()
        .map(|e| {
            let mut v = json!({
                "Arn": e.arn, "Id": e.id,
                "CreatedAt": iso(e.created_at), "CreatedBy": e.created_by,
                "MemberCount": e.members.len(),
                "ModifiedAt": iso(e.modified_at), "ModifiedBy": e.modified_by,
                "ContextTypes": context_types(e),
            });
            if let Some(t) = &e.title {
                v["Title"] = t.clone().into();
            }
            v
        })
        .collect();
    let mut out = json!({ "EngagementSummaryList": list });
    put_next(&mut out, next);
    Ok(out)
}

// ---- invitations ---------------------------------------------------------------------------

fn create_invitation(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog").to_string();
    let e = member_engagement(
        state,
        &catalog,
        s(body, "EngagementIdentifier"),
        ctx.account,
    )?;
    let engagement_id = e.id.clone();
    let inv = &body["Invitation"];
    let receiver = inv["Receiver"]["Account"]["AwsAccountId"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if receiver == ctx.account {
        return Err(ApiError::business(
            "Invitation.Receiver.Account.AwsAccountId",
            "INVALID_VALUE",
            "An account cannot invite itself: set the receiver to another partner account",
        ));
    }
    if e.members.contains(&receiver) {
        return Err(ApiError::conflict(format!(
            "Account {receiver} is already a member of engagement {engagement_id}"
        )));
    }
    let payload_type = inv["Payload"]
        .as_object()
        .and_then(|m| m.keys().next().cloned())
        .unwrap_or_default();
    let id = state.new_invitation_id();
    let seq = state.next_seq();
    let i = Invitation {
        arn: invitation_arn(ctx.account, &catalog, &id),
        id: id.clone(),
        catalog,
        seq,
        engagement_id,
        sender: ctx.account.to_string(),
        receiver,
        receiver_value: inv["Receiver"].clone(),
        message: s(inv, "Message").to_string(),
        payload_type,
        payload: inv["Payload"].clone(),
        status: InvitationStatus::Pending,
        invited_at: ctx.now,
        expires_at: ctx.now + ctx.ttl_ms,
        rejection_reason: None,
        sender_company_name: None,
    };
    let out = json!({"Id": i.id, "Arn": i.arn});
    state.invitations.insert(id, i);
    Ok(out)
}

/// The invitation `identifier` in `catalog`, visible to its sender and its receiver.
fn visible_invitation<'s>(
    state: &'s State,
    catalog: &str,
    identifier: &str,
    account: &str,
) -> Result<&'s Invitation, ApiError> {
    let id = bare_id(identifier);
    state
        .invitations
        .get(id)
        .filter(|i| i.catalog == catalog && (i.sender == account || i.receiver == account))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Engagement invitation {id} was not found in catalog {catalog}"
            ))
        })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InvitationOut<'a> {
    arn: &'a str,
    payload_type: &'a str,
    id: &'a str,
    engagement_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    engagement_title: Option<&'a str>,
    status: &'static str,
    invitation_date: String,
    expiration_date: String,
    sender_aws_account_id: &'a str,
    sender_company_name: String,
    receiver: &'a Value,
    catalog: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejection_reason: Option<&'a str>,
    payload: &'a Value,
    invitation_message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    engagement_description: Option<&'a str>,
}

/// The hot path: one lookup, serialised straight from borrowed state.
fn get_invitation(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> Result<Vec<u8>, ApiError> {
    let i = visible_invitation(
        state,
        s(body, "Catalog"),
        s(body, "Identifier"),
        ctx.account,
    )?;
    let e = state.engagements.get(&i.engagement_id);
    let out = InvitationOut {
        arn: &i.arn,
        payload_type: &i.payload_type,
        id: &i.id,
        engagement_id: &i.engagement_id,
        engagement_title: e.and_then(|e| e.title.as_deref()),
        status: i.status_at(ctx.now).as_str(),
        invitation_date: iso(i.invited_at),
        expiration_date: iso(i.expires_at),
        sender_aws_account_id: &i.sender,
        sender_company_name: sender_company(state, i),
        receiver: &i.receiver_value,
        catalog: &i.catalog,
        rejection_reason: i.rejection_reason.as_deref(),
        payload: &i.payload,
        invitation_message: &i.message,
        engagement_description: e.and_then(|e| e.description.as_deref()),
    };
    serde_json::to_vec(&out).map_err(|e| ApiError::internal(e.to_string()))
}

/// `SenderCompanyName` of an invitation (see the module rules).
fn sender_company(state: &State, i: &Invitation) -> String {
    i.sender_company_name
        .clone()
        .unwrap_or_else(|| state.company_name(&i.sender))
}

fn list_invitations(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog");
    let as_sender = s(body, "ParticipantType") == "SENDER";
    let payload_types = str_list(body, "PayloadType");
    let statuses = str_list(body, "Status");
    let engagements: Option<Vec<&str>> =
        str_list(body, "EngagementIdentifier").map(|v| v.into_iter().map(bare_id).collect());
    let senders = str_list(body, "SenderAwsAccountId");
    let now = ctx.now;
    let mut found: Vec<&Invitation> = state
        .invitations
        .values()
        .filter(|i| i.catalog == catalog)
        .filter(|i| {
            if as_sender {
                i.sender == ctx.account
            } else {
                i.receiver == ctx.account
            }
        })
        .filter(|i| {
            payload_types
                .as_ref()
                .is_none_or(|l| l.is_empty() || l.contains(&i.payload_type.as_str()))
        })
        .filter(|i| {
            statuses
                .as_ref()
                .is_none_or(|l| l.contains(&i.status_at(now).as_str()))
        })
        .filter(|i| {
            engagements
                .as_ref()
                .is_none_or(|l| l.contains(&i.engagement_id.as_str()))
        })
        .filter(|i| {
            senders
                .as_ref()
                .is_none_or(|l| l.contains(&i.sender.as_str()))
        })
        .collect();
    found.sort_by_key(|i| (i.invited_at, i.seq));
    // newest first unless asked otherwise
    let ascending = body
        .get("Sort")
        .is_some_and(|s| s["SortOrder"] == "ASCENDING");
    if !ascending {
        found.reverse();
    }
    let (items, next) = page(body, found, 100)?;
    let participant = if as_sender { "SENDER" } else { "RECEIVER" };
    let list: Vec<Value> = items
        .into_iter()
        .map(|i| {
            let mut v = json!({
                "Arn": i.arn, "PayloadType": i.payload_type, "Id": i.id,
                "EngagementId": i.engagement_id,
                "Status": i.status_at(now).as_str(),
                "InvitationDate": iso(i.invited_at), "ExpirationDate": iso(i.expires_at),
                "SenderAwsAccountId": i.sender,
                "SenderCompanyName": sender_company(state, i),
                "Receiver": i.receiver_value,
                "Catalog": i.catalog, "ParticipantType": participant,
            });
            if let Some(t) = state
                .engagements
                .get(&i.engagement_id)
                .and_then(|e| e.title.as_ref())
            {
                v["EngagementTitle"] = t.clone().into();
            }
            v
        })
        .collect();
    let mut out = json!({ "EngagementInvitationSummaries": list });
    put_next(&mut out, next);
    Ok(out)
}

/// The invitation for a receiver-only action (reject, accept): the sender is refused, and the
/// invitation must be PENDING, except that an accepting task may start on an EXPIRED one (it
/// then fails with `InvitationValidationFailed`, as the service reports it).
fn receiver_invitation<'s>(
    state: &'s State,
    ctx: &Ctx<'_>,
    body: &Value,
    action: &str,
) -> Result<&'s Invitation, ApiError> {
    let i = visible_invitation(
        state,
        s(body, "Catalog"),
        s(body, "Identifier"),
        ctx.account,
    )?;
    if i.receiver != ctx.account {
        return Err(ApiError::access_denied(format!(
            "Only the receiver ({}) may {action} engagement invitation {}; account {} is its sender",
            i.receiver, i.id, ctx.account
        )));
    }
    let status = i.status_at(ctx.now);
    let task_may_fail = action == "accept" && status == InvitationStatus::Expired;
    if status != InvitationStatus::Pending && !task_may_fail {
        return Err(ApiError::conflict(format!(
            "Engagement invitation {} is {}, not PENDING; it cannot be {action}ed",
            i.id,
            status.as_str()
        )));
    }
    Ok(i)
}

fn reject_invitation(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> Result<Value, ApiError> {
    let id = receiver_invitation(state, ctx, body, "reject")?.id.clone();
    if let Some(i) = state.invitations.get_mut(&id) {
        i.status = InvitationStatus::Rejected;
        i.rejection_reason = body
            .get("RejectionReason")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    Ok(json!({}))
}

// ---- tasks ---------------------------------------------------------------------------------

fn task_summary(t: &Task) -> Value {
    let mut v = json!({
        "TaskId": t.id, "TaskArn": t.arn, "StartTime": iso(t.started_at),
        "TaskStatus": t.status.as_str(),
    });
    let mut put = |k: &str, x: &Option<String>| {
        if let Some(x) = x {
            v[k] = Value::String(x.clone());
        }
    };
    put("Message", &t.message);
    put("ReasonCode", &t.reason_code);
    put("OpportunityId", &t.opportunity_id);
    put("ResourceSnapshotJobId", &t.job_id);
    if t.kind == TaskKind::FromOpportunity {
        put("EngagementId", &t.engagement_id);
    }
    put("EngagementInvitationId", &t.invitation_id);
    v
}

fn start_task_response(t: &Task) -> Value {
    task_summary(t)
}

fn new_task(state: &mut State, ctx: &Ctx<'_>, catalog: &str, kind: TaskKind) -> Task {
    let id = state.new_task_id();
    let seq = state.next_seq();
    Task {
        arn: task_arn(ctx.account, catalog, kind, &id),
        id,
        kind,
        catalog: catalog.to_string(),
        seq,
        owner: ctx.account.to_string(),
        started_at: ctx.now,
        due_at: ctx.now + ctx.task_delay_ms,
        status: TaskStatus::InProgress,
        reason_code: None,
        message: None,
        opportunity_id: None,
        engagement_id: None,
        invitation_id: None,
        job_id: None,
        injected_failure: ctx.task_failure.map(str::to_string),
    }
}

/// Store a new task; a task already due (`--task-delay 0s`) completes here, so the Start
/// response reports its final status and result ids.
fn schedule(state: &mut State, ctx: &Ctx<'_>, task: Task) -> RunResult {
    let id = task.id.clone();
    let due_now = task.due_at <= ctx.now;
    if !due_now {
        state
            .pending
            .push(std::cmp::Reverse((task.due_at, task.seq, id.clone())));
    }
    state.tasks.insert(id.clone(), task);
    if due_now {
        complete(state, &id, ctx.now, ctx.ttl_ms);
    }
    let out = start_task_response(&state.tasks[&id]);
    Ok((to_body(&out), Some(id)))
}

fn start_accept(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> RunResult {
    let inv_id = receiver_invitation(state, ctx, body, "accept")?.id.clone();
    let catalog = s(body, "Catalog").to_string();
    let mut task = new_task(state, ctx, &catalog, TaskKind::AcceptInvitation);
    task.invitation_id = Some(inv_id.clone());
    *state.accept_tasks_per_invitation.entry(inv_id).or_default() += 1;
    schedule(state, ctx, task)
}

fn start_from_opportunity(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> RunResult {
    let catalog = s(body, "Catalog").to_string();
    let o = owned_opportunity(state, &catalog, s(body, "Identifier"), ctx.account)?;
    if let Some(e) = &o.engagement_id {
        return Err(ApiError::conflict(format!(
            "Opportunity {} already started engagement {e}",
            o.id
        )));
    }
    let opp_id = o.id.clone();
    let mut task = new_task(state, ctx, &catalog, TaskKind::FromOpportunity);
    task.opportunity_id = Some(opp_id);
    schedule(state, ctx, task)
}

fn list_tasks(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
    kind: TaskKind,
) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog");
    let ids: Option<Vec<&str>> =
        str_list(body, "TaskIdentifier").map(|v| v.into_iter().map(bare_id).collect());
    let statuses = str_list(body, "TaskStatus");
    let invitations: Option<Vec<&str>> = str_list(body, "EngagementInvitationIdentifier")
        .map(|v| v.into_iter().map(bare_id).collect());
    let opportunities = str_list(body, "OpportunityIdentifier");
    let engagements: Option<Vec<&str>> =
        str_list(body, "EngagementIdentifier").map(|v| v.into_iter().map(bare_id).collect());
    let matches = |f: &Option<Vec<&str>>, v: &Option<String>| {
        f.as_ref()
            .is_none_or(|l| v.as_deref().is_some_and(|x| l.contains(&x)))
    };
    let mut found: Vec<&Task> = state
        .tasks
        .values()
        .filter(|t| t.kind == kind && t.catalog == catalog && t.owner == ctx.account)
        .filter(|t| ids.as_ref().is_none_or(|l| l.contains(&t.id.as_str())))
        .filter(|t| {
            statuses
                .as_ref()
                .is_none_or(|l| l.contains(&t.status.as_str()))
        })
        .filter(|t| matches(&invitations, &t.invitation_id))
        .filter(|t| matches(&opportunities, &t.opportunity_id))
        .filter(|t| matches(&engagements, &t.engagement_id))
        .collect();
    found.sort_by_key(|t| (t.started_at, t.seq));
    if descending(body) {
        found.reverse();
    }
    let (items, next) = page(body, found, 100)?;
    let list: Vec<Value> = items.into_iter().map(task_summary).collect();
    let mut out = json!({ "TaskSummaries": list });
    put_next(&mut out, next);
    Ok(out)
}

/// Complete every task whose delay has passed (lazily, on the next request or stats read).
pub fn settle(state: &mut State, now: Millis, ttl_ms: i64) {
    while let Some(std::cmp::Reverse((due, _, _))) = state.pending.peek() {
        if *due > now {
            break;
        }
        let Some(std::cmp::Reverse((_, _, id))) = state.pending.pop() else {
            break;
        };
        complete(state, &id, now, ttl_ms);
        state.touch();
    }
}

fn fail(state: &mut State, id: &str, reason: &str, message: String) {
    if let Some(t) = state.tasks.get_mut(id) {
        t.status = TaskStatus::Failed;
        t.reason_code = Some(reason.to_string());
        t.message = Some(message);
    }
}

/// The `task_failure` fault: FAILED with the drawn retryable reason, nothing else changes.
fn inject_failure(state: &mut State, task: &Task, reason: &str) {
    state.injected_task_failures += 1;
    let subject = match (&task.invitation_id, &task.opportunity_id) {
        (Some(i), _) if task.kind == TaskKind::AcceptInvitation => format!("invitation {i}"),
        (_, Some(o)) => format!("opportunity {o}"),
        _ => "its resource".into(),
    };
    let msg = format!(
        "The task failed with a transient error ({reason}, injected fault) before it changed \
         {subject}; start the task again with a new ClientToken"
    );
    fail(state, &task.id, reason, msg);
}

fn complete(state: &mut State, id: &str, now: Millis, ttl_ms: i64) {
    let Some(task) = state.tasks.get(id).cloned() else {
        return;
    };
    if task.status != TaskStatus::InProgress {
        return;
    }
    match task.kind {
        TaskKind::AcceptInvitation => complete_accept(state, &task, now),
        TaskKind::FromOpportunity => complete_from_opportunity(state, &task, now, ttl_ms),
    }
}

/// Accepting: the invitation must still be PENDING when the task completes; then the receiver
/// joins the engagement, gets an opportunity built from the payload, and the invitation is
/// ACCEPTED.
fn complete_accept(state: &mut State, task: &Task, now: Millis) {
    let inv_id = task.invitation_id.clone().unwrap_or_default();
    let Some(inv) = state.invitations.get(&inv_id) else {
        return fail(
            state,
            &task.id,
            "InvitationAccessDenied",
            format!("Engagement invitation {inv_id} no longer exists"),
        );
    };
    match inv.status_at(now) {
        InvitationStatus::Pending => {}
        InvitationStatus::Expired => {
            let msg = format!(
                "Engagement invitation {inv_id} expired at {} before the task completed; ask the sender for a new invitation",
                iso(inv.expires_at)
            );
            return fail(state, &task.id, "InvitationValidationFailed", msg);
        }
        other => {
            let msg = format!(
                "Engagement invitation {inv_id} is {} (another task or action got there first); it can no longer be accepted",
                other.as_str()
            );
            return fail(state, &task.id, "EngagementInvitationConflict", msg);
        }
    }
    if let Some(reason) = &task.injected_failure {
        return inject_failure(state, task, reason);
    }
    let inv = inv.clone();
    let opp_id = state.new_opportunity_id();
    let job_id = state.new_job_id();
    let seq = state.next_seq();
    let fields = opportunity_from_payload(&inv.payload);
    state.opportunities.insert(
        opp_id.clone(),
        Opportunity {
            arn: opportunity_arn(&task.owner, &inv.catalog, &opp_id),
            id: opp_id.clone(),
            catalog: inv.catalog.clone(),
            seq,
            owner: task.owner.clone(),
            fields,
            created_at: now,
            modified_at: now,
            engagement_id: Some(inv.engagement_id.clone()),
            related: Default::default(),
            submission: None,
        },
    );
    if let Some(e) = state.engagements.get_mut(&inv.engagement_id) {
        if !e.members.contains(&task.owner) {
            e.members.push(task.owner.clone());
        }
        e.modified_at = now;
        e.modified_by = task.owner.clone();
    }
    if let Some(i) = state.invitations.get_mut(&inv_id) {
        i.status = InvitationStatus::Accepted;
    }
    if let Some(t) = state.tasks.get_mut(&task.id) {
        t.status = TaskStatus::Complete;
        t.opportunity_id = Some(opp_id);
        t.job_id = Some(job_id);
        t.engagement_id = Some(inv.engagement_id);
    }
}

/// The receiver's opportunity, built from an invitation payload.
fn opportunity_from_payload(payload: &Value) -> Map<String, Value> {
    let mut f = Map::new();
    let mut account = Map::new();
    let (customer, project) = if let Some(p) = payload.get("OpportunityInvitation") {
        (&p["Customer"], Some(&p["Project"]))
    } else if let Some(p) = payload.get("LeadInvitation") {
        (&p["Customer"], None)
    } else {
        (&Value::Null, None)
    };
    for k in ["CompanyName", "Industry", "WebsiteUrl"] {
        if let Some(v) = customer.get(k) {
            account.insert(k.into(), v.clone());
        }
    }
    if let Some(c) = customer.get("CountryCode") {
        account.insert("Address".into(), json!({"CountryCode": c}));
    }
    if !account.is_empty() {
        f.insert("Customer".into(), json!({"Account": account}));
    }
    let mut life = json!({"Stage": "Prospect", "ReviewStatus": "Pending Submission"});
    if let Some(p) = project {
        let mut proj = Map::new();
        if let Some(t) = p.get("Title") {
            proj.insert("Title".into(), t.clone());
        }
        if let Some(b) = p.get("BusinessProblem") {
            proj.insert("CustomerBusinessProblem".into(), b.clone());
        }
        if let Some(x) = p.get("ExpectedCustomerSpend") {
            proj.insert("ExpectedCustomerSpend".into(), x.clone());
        }
        f.insert("Project".into(), Value::Object(proj));
        if let Some(d) = p.get("TargetCompletionDate") {
            life["TargetCloseDate"] = d.clone();
        }
    }
    f.insert("LifeCycle".into(), life);
    f.insert("OpportunityType".into(), "Net New Business".into());
    f
}

/// From an opportunity: the opportunity must not have started an engagement yet when the task
/// completes; then an engagement (owned by the caller) and an invitation to AWS (receiver
/// `aws`) are created, and the opportunity is marked Submitted.
fn complete_from_opportunity(state: &mut State, task: &Task, now: Millis, ttl_ms: i64) {
    let opp_id = task.opportunity_id.clone().unwrap_or_default();
    let Some(opp) = state.opportunities.get(&opp_id) else {
        return fail(
            state,
            &task.id,
            "OpportunityAccessDenied",
            format!("Opportunity {opp_id} no longer exists"),
        );
    };
    if let Some(e) = &opp.engagement_id {
        let msg = format!(
            "Opportunity {opp_id} already started engagement {e} (an earlier task completed first)"
        );
        return fail(state, &task.id, "OpportunityConflict", msg);
    }
    if let Some(reason) = &task.injected_failure {
        return inject_failure(state, task, reason);
    }
    let opp = opp.clone();
    let catalog = opp.catalog.clone();
    let account = &opp.fields.get("Customer").map(|c| &c["Account"]);
    let project = opp.fields.get("Project");
    let title: String = project
        .and_then(|p| p["Title"].as_str())
        .unwrap_or(&opp_id)
        .chars()
        .take(40)
        .collect();
    let problem = project
        .and_then(|p| p["CustomerBusinessProblem"].as_str())
        .map(str::to_string);
    let eng_id = state.new_engagement_id();
    let seq = state.next_seq();
    state.engagements.insert(
        eng_id.clone(),
        Engagement {
            arn: engagement_arn(&task.owner, &catalog, &eng_id),
            id: eng_id.clone(),
            catalog: catalog.clone(),
            seq,
            title: Some(title.clone()),
            description: problem
                .as_ref()
                .map(|p| p.chars().take(255).collect::<String>()),
            contexts: None,
            created_at: now,
            created_by: task.owner.clone(),
            modified_at: now,
            modified_by: task.owner.clone(),
            members: vec![task.owner.clone()],
        },
    );
    let get = |k: &str, default: &str| -> Value {
        account
            .and_then(|a| a.get(k))
            .cloned()
            .unwrap_or_else(|| default.into())
    };
    let country = account
        .and_then(|a| a["Address"].get("CountryCode"))
        .cloned()
        .unwrap_or_else(|| "US".into());
    let target = opp
        .fields
        .get("LifeCycle")
        .and_then(|l| l.get("TargetCloseDate"))
        .cloned()
        .unwrap_or_else(|| iso(now + 90 * 86_400_000)[..10].into());
    let payload = json!({"OpportunityInvitation": {
        "ReceiverResponsibilities": ["Co-Sell Facilitator"],
        "Customer": {
            "CompanyName": get("CompanyName", "Unknown"),
            "Industry": get("Industry", "Other"),
            "WebsiteUrl": get("WebsiteUrl", "https://unknown.example.com"),
            "CountryCode": country,
        },
        "Project": {
            "Title": title,
            "BusinessProblem": problem.unwrap_or_else(|| "Not stated in the opportunity".into()),
            "TargetCompletionDate": target,
            "ExpectedCustomerSpend": project.and_then(|p| p.get("ExpectedCustomerSpend")).cloned().unwrap_or_else(|| json!([])),
        },
    }});
    let inv_id = state.new_invitation_id();
    let seq = state.next_seq();
    state.invitations.insert(
        inv_id.clone(),
        Invitation {
            arn: invitation_arn(&task.owner, &catalog, &inv_id),
            id: inv_id.clone(),
            catalog: catalog.clone(),
            seq,
            engagement_id: eng_id.clone(),
            sender: task.owner.clone(),
            receiver: "aws".into(),
            receiver_value: json!({"Account": {"AwsAccountId": "aws", "Alias": "AWS"}}),
            message: format!("Opportunity {opp_id} submitted to AWS for co-sell"),
            payload_type: "OpportunityInvitation".into(),
            payload,
            status: InvitationStatus::Pending,
            invited_at: now,
            expires_at: now + ttl_ms,
            rejection_reason: None,
            sender_company_name: None,
        },
    );
    let job_id = state.new_job_id();
    if let Some(o) = state.opportunities.get_mut(&opp_id) {
        o.engagement_id = Some(eng_id.clone());
        o.modified_at = now;
        let life = o.fields.entry("LifeCycle").or_insert_with(|| json!({}));
        if life.is_object() {
            life["ReviewStatus"] = "Submitted".into();
        }
    }
    if let Some(t) = state.tasks.get_mut(&task.id) {
        t.status = TaskStatus::Complete;
        t.engagement_id = Some(eng_id);
        t.invitation_id = Some(inv_id);
        t.job_id = Some(job_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_hash_ignores_key_order_but_not_values() {
        let a = json!({"a": 1, "b": {"x": [1, 2], "y": "s"}});
        let b = json!({"b": {"y": "s", "x": [1, 2]}, "a": 1});
        let c = json!({"b": {"y": "s", "x": [2, 1]}, "a": 1});
        assert_eq!(canonical_hash(&a), canonical_hash(&b));
        assert_ne!(canonical_hash(&a), canonical_hash(&c));
    }

    #[test]
    fn every_served_operation_is_in_the_model() {
        for op in OPERATIONS.iter() {
            assert!(model().operation(op).is_some(), "{op}");
        }
    }
}
