//! Dispatch of the served operations over [`State`], idempotency (ClientToken replays and
//! conflicts) and the helpers the families share (request members, ARNs, pages). The families:
//! `engagements` (engagements, contexts, members, resource associations), `invitations`,
//! `tasks` (every Start…Task, List…Tasks, Get…Task and lazy completion), `opportunities`,
//! `solutions`, `snapshots` (resource snapshots and snapshot jobs), `tags`, `settings`.
//! Response bodies hold exactly the members of the model's output shapes.
//!
//! Every function here runs inside the one state lock and never blocks.

use super::engagements as eng;
use super::error::ApiError;
use super::invitations as inv;
use super::opportunities as opp;
use super::snapshots as snap;
use super::state::*;
use super::tasks::{self, start_task_response};
use crate::model::model;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use super::tasks::settle;

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
                Some(task) => to_body(&start_task_response(task, ctx.now)),
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

pub(super) type RunResult = Result<(Vec<u8>, Option<String>), ApiError>;

fn run(state: &mut State, op: &str, ctx: &Ctx<'_>, body: &Value) -> RunResult {
    let plain = |r: Result<Value, ApiError>| r.map(|v| (to_body(&v), None));
    match op {
        "CreateEngagement" => plain(eng::create_engagement(state, ctx, body)),
        "GetEngagement" => plain(eng::get_engagement(state, ctx, body)),
        "ListEngagements" => plain(eng::list_engagements(state, ctx, body)),
        "CreateEngagementInvitation" => plain(inv::create_invitation(state, ctx, body)),
        "GetEngagementInvitation" => inv::get_invitation(state, ctx, body).map(|b| (b, None)),
        "ListEngagementInvitations" => plain(inv::list_invitations(state, ctx, body)),
        "RejectEngagementInvitation" => plain(inv::reject_invitation(state, ctx, body)),
        "StartEngagementByAcceptingInvitationTask" => tasks::start_accept(state, ctx, body),
        "ListEngagementByAcceptingInvitationTasks" => plain(tasks::list_tasks(
            state,
            ctx,
            body,
            TaskKind::AcceptInvitation,
        )),
        "StartEngagementFromOpportunityTask" => tasks::start_from_opportunity(state, ctx, body),
        "ListEngagementFromOpportunityTasks" => plain(tasks::list_tasks(
            state,
            ctx,
            body,
            TaskKind::FromOpportunity,
        )),
        "AcceptEngagementInvitation" => plain(inv::accept_invitation(state, ctx, body)),
        "ListEngagementMembers" => plain(eng::list_members(state, ctx, body)),
        "CreateEngagementContext" => plain(eng::create_context(state, ctx, body)),
        "UpdateEngagementContext" => plain(eng::update_context(state, ctx, body)),
        "ListEngagementResourceAssociations" => {
            plain(eng::list_resource_associations(state, ctx, body))
        }
        "StartOpportunityFromEngagementTask" => tasks::start_from_engagement(state, ctx, body),
        "ListOpportunityFromEngagementTasks" => plain(tasks::list_tasks(
            state,
            ctx,
            body,
            TaskKind::FromEngagement,
        )),
        "StartProspectingFromEngagementTask" => tasks::start_prospecting(state, ctx, body),
        "GetProspectingFromEngagementTask" => plain(tasks::get_prospecting(state, ctx, body)),
        "ListProspectingFromEngagementTasks" => plain(tasks::list_prospecting(state, ctx, body)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
