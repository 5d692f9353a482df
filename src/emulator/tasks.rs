//! The asynchronous tasks: StartEngagementByAcceptingInvitationTask,
//! StartEngagementFromOpportunityTask, StartOpportunityFromEngagementTask and their List…Tasks
//! (filters `TaskIdentifier` 1–10, `TaskStatus`, and the ids each model lists; oldest first
//! unless `Sort` says DESCENDING); the prospecting tasks (Start, Get, List); lazy completion.
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
//! - StartOpportunityFromEngagementTask: only a member of the engagement may start it
//!   (`AccessDeniedException`; unknown engagement `ResourceNotFoundException`); a Start for a
//!   context the caller already made an opportunity from is a `ConflictException`. At
//!   completion: an unknown context FAILS (`ContextNotFound`), a disqualified Lead
//!   (`QualificationStatus` "Disqualified") FAILS (`DisqualifiedLeadNotPermitted`), a
//!   ProspectingResult context FAILS (`OpportunityValidationFailed`), an opportunity made from
//!   the same context meanwhile FAILS the task (`OpportunityConflict`). Otherwise the caller
//!   gets an opportunity built from the CustomerProject (customer, project title and problem,
//!   target close date) or Lead (customer) context, associated with the engagement (it shows
//!   in ListEngagementResourceAssociations), and the summary reports `OpportunityId`,
//!   `ResourceSnapshotJobId`, `EngagementId`, `ContextId`.
//! - Prospecting tasks (`ProspectingTaskStatus`): ids are `task-` + 14 characters and ARNs
//!   `arn:aws:partnercentral-selling:…/prospecting-from-engagement-task/…`, as the model says.
//!   The status is PENDING in the first half of `--task-delay`, IN_PROGRESS in the second, then
//!   COMPLETED (or FAILED for the `task_failure` fault, every engagement FAILED and nothing
//!   changed). Each engagement is processed on its own: one the caller is not a member of
//!   FAILS (`EngagementAccessDenied`), an unknown one (`EngagementNotFound`), one with 5
//!   contexts (`ServiceQuotaExceeded`); every other gets a `ProspectingResult` context (the
//!   task's id, ARN, name, times and the customer of its first CustomerProject context) and is
//!   COMPLETED. Get (owner only, else `ResourceNotFoundException`) reports `EndTime` once the
//!   task finished (the waiter's signal) and a status per engagement; `EngagementContextId` is
//!   left out because the model's pattern for it (`ctx-…`) cannot name a context (context ids
//!   are `.{1,3}`): the context is found by its `TaskId`. An engagement listed twice is a
//!   `ValidationException` (`DUPLICATE_KEY_VALUE`). List filters TaskIdentifier, TaskName,
//!   StartAfter/StartBefore (exclusive), sorts by StartTime (default, oldest first), TaskName
//!   or FailedEngagementCount, and pages (`MaxResults` default 100).

use super::engagements::{find_context, member_engagement, number_contexts, MAX_CONTEXTS};
use super::error::ApiError;
use super::invitations::{join_engagement, receiver_invitation};
use super::opportunities::{bump, opportunity_arn, owned_opportunity, timestamp};
use super::ops::{
    descending, engagement_arn, invitation_arn, page, put_next, s, str_list, to_body, Ctx,
    RunResult,
};
use super::state::*;
use serde_json::{json, Map, Value};

fn task_arn(account: &str, catalog: &str, kind: TaskKind, id: &str) -> String {
    let k = match kind {
        TaskKind::AcceptInvitation => "engagement-by-accepting-invitation-task",
        TaskKind::FromOpportunity => "engagement-from-opportunity-task",
        TaskKind::FromEngagement => "opportunity-from-engagement-task",
        // `ProspectingTaskArn`: arn:aws:partnercentral-selling:…:catalog/…/prospecting-…
        TaskKind::Prospecting => {
            return format!(
                "arn:aws:partnercentral-selling:us-east-1:{account}:catalog/{catalog}/prospecting-from-engagement-task/{id}"
            )
        }
    };
    format!("arn:aws:partnercentral:us-east-1:{account}:catalog/{catalog}/{k}/{id}")
}

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
    if matches!(t.kind, TaskKind::FromOpportunity | TaskKind::FromEngagement) {
        put("EngagementId", &t.engagement_id);
    }
    if t.kind == TaskKind::FromEngagement {
        put("ContextId", &t.context_id);
    } else {
        put("EngagementInvitationId", &t.invitation_id);
    }
    v
}

/// The answer of a Start…Task (also on an idempotent replay, with the task's status at `now`).
pub(super) fn start_task_response(t: &Task, now: Millis) -> Value {
    match t.kind {
        TaskKind::Prospecting => prospecting_start_response(t, now),
        _ => task_summary(t),
    }
}

fn new_task(state: &mut State, ctx: &Ctx<'_>, catalog: &str, kind: TaskKind) -> Task {
    let id = if kind == TaskKind::Prospecting {
        state.new_prospecting_task_id()
    } else {
        state.new_task_id()
    };
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
        context_id: None,
        name: None,
        prospects: Vec::new(),
        ended_at: None,
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
    let out = start_task_response(&state.tasks[&id], ctx.now);
    Ok((to_body(&out), Some(id)))
}

pub(super) fn start_accept(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> RunResult {
    let inv_id = receiver_invitation(state, ctx, body, "accept", true)?
        .id
        .clone();
    let catalog = s(body, "Catalog").to_string();
    let mut task = new_task(state, ctx, &catalog, TaskKind::AcceptInvitation);
    task.invitation_id = Some(inv_id.clone());
    *state.accept_tasks_per_invitation.entry(inv_id).or_default() += 1;
    schedule(state, ctx, task)
}

pub(super) fn start_from_opportunity(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> RunResult {
    let catalog = s(body, "Catalog").to_string();
    let o = owned_opportunity(state, &catalog, s(body, "Identifier"), ctx.account)?;
    // an opportunity made from an engagement context already belongs to that engagement:
    // it may still be started (the task then uses that engagement); one already submitted to
    // AWS may not
    if o.submissions > 0 {
        let e = o.engagement_id.as_deref().unwrap_or("none");
        return Err(ApiError::conflict(format!(
            "Opportunity {} was already submitted to AWS (engagement {e})",
            o.id
        )));
    }
    let opp_id = o.id.clone();
    let mut task = new_task(state, ctx, &catalog, TaskKind::FromOpportunity);
    task.opportunity_id = Some(opp_id);
    schedule(state, ctx, task)
}

pub(super) fn list_tasks(
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
    let contexts = str_list(body, "ContextIdentifier");
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
        .filter(|t| matches(&contexts, &t.context_id))
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

fn fail(state: &mut State, id: &str, now: Millis, reason: &str, message: String) {
    if let Some(t) = state.tasks.get_mut(id) {
        t.status = TaskStatus::Failed;
        t.ended_at = Some(now);
        t.reason_code = Some(reason.to_string());
        t.message = Some(message);
    }
}

/// The `task_failure` fault: FAILED with the drawn retryable reason, nothing else changes.
fn inject_failure(state: &mut State, task: &Task, now: Millis, reason: &str) {
    state.injected_task_failures += 1;
    let subject = match (&task.invitation_id, &task.opportunity_id) {
        (Some(i), _) if task.kind == TaskKind::AcceptInvitation => format!("invitation {i}"),
        (_, Some(o)) => format!("opportunity {o}"),
        _ if task.kind == TaskKind::FromEngagement => {
            format!("engagement {}", task.engagement_id.as_deref().unwrap_or(""))
        }
        _ if task.kind == TaskKind::Prospecting => "any engagement".into(),
        _ => "its resource".into(),
    };
    let msg = format!(
        "The task failed with a transient error ({reason}, injected fault) before it changed \
         {subject}; start the task again with a new ClientToken"
    );
    fail(state, &task.id, now, reason, msg);
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
        TaskKind::FromEngagement => complete_from_engagement(state, &task, now),
        TaskKind::Prospecting => complete_prospecting(state, &task, now),
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
            now,
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
            return fail(state, &task.id, now, "InvitationValidationFailed", msg);
        }
        other => {
            let msg = format!(
                "Engagement invitation {inv_id} is {} (another task or action got there first); it can no longer be accepted",
                other.as_str()
            );
            return fail(state, &task.id, now, "EngagementInvitationConflict", msg);
        }
    }
    if let Some(reason) = &task.injected_failure {
        return inject_failure(state, task, now, reason);
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
            submissions: 0,
        },
    );
    join_engagement(state, &inv_id, &task.owner, now);
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

/// From an opportunity: the opportunity must not have been submitted to AWS yet when the task
/// completes (Start refuses one already submitted: `ConflictException`); then the engagement
/// it belongs to (one it was made from, by StartOpportunityFromEngagementTask) or else a new
/// engagement owned by the caller gets an invitation to AWS (receiver `aws`), and the
/// opportunity is marked Submitted.
fn complete_from_opportunity(state: &mut State, task: &Task, now: Millis, ttl_ms: i64) {
    let opp_id = task.opportunity_id.clone().unwrap_or_default();
    let Some(opp) = state.opportunities.get(&opp_id) else {
        return fail(
            state,
            &task.id,
            now,
            "OpportunityAccessDenied",
            format!("Opportunity {opp_id} no longer exists"),
        );
    };
    if opp.submissions > 0 {
        let e = opp.engagement_id.as_deref().unwrap_or("none");
        let msg = format!(
            "Opportunity {opp_id} already started engagement {e} (an earlier task completed first)"
        );
        return fail(state, &task.id, now, "OpportunityConflict", msg);
    }
    if let Some(reason) = &task.injected_failure {
        return inject_failure(state, task, now, reason);
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
    // the engagement the opportunity belongs to (made from its context), else a new one
    let existing = opp
        .engagement_id
        .clone()
        .filter(|e| state.engagements.contains_key(e));
    let eng_id = match existing {
        Some(e) => e,
        None => {
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
            eng_id
        }
    };
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
        o.submissions += 1;
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

// ---- opportunity from engagement -----------------------------------------------------------

/// An opportunity of `owner` already made from this engagement context by a completed task.
fn opportunity_from_context(
    state: &State,
    owner: &str,
    engagement: &str,
    context: &str,
) -> Option<String> {
    state
        .tasks
        .values()
        .find(|t| {
            t.kind == TaskKind::FromEngagement
                && t.status == TaskStatus::Complete
                && t.owner == owner
                && t.engagement_id.as_deref() == Some(engagement)
                && t.context_id.as_deref() == Some(context)
        })
        .and_then(|t| t.opportunity_id.clone())
}

pub(super) fn start_from_engagement(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> RunResult {
    let catalog = s(body, "Catalog").to_string();
    let e = member_engagement(state, &catalog, s(body, "Identifier"), ctx.account)?;
    let eng_id = e.id.clone();
    let context = s(body, "ContextIdentifier").to_string();
    if let Some(o) = opportunity_from_context(state, ctx.account, &eng_id, &context) {
        return Err(ApiError::conflict(format!(
            "Opportunity {o} was already created from context {context} of engagement {eng_id}"
        )));
    }
    let mut task = new_task(state, ctx, &catalog, TaskKind::FromEngagement);
    task.engagement_id = Some(eng_id);
    task.context_id = Some(context);
    schedule(state, ctx, task)
}

/// From an engagement context: the context must exist (else `ContextNotFound`), be a
/// CustomerProject or a Lead that is not disqualified (`DisqualifiedLeadNotPermitted`; a
/// ProspectingResult is `OpportunityValidationFailed`), and no opportunity of the caller may
/// have come from it meanwhile (`OpportunityConflict`); then the caller gets an opportunity
/// built from the context, associated with the engagement.
fn complete_from_engagement(state: &mut State, task: &Task, now: Millis) {
    let eng_id = task.engagement_id.clone().unwrap_or_default();
    let context_id = task.context_id.clone().unwrap_or_default();
    let Some(e) = state.engagements.get(&eng_id) else {
        let msg = format!("Engagement {eng_id} no longer exists");
        return fail(state, &task.id, now, "EngagementAccessDenied", msg);
    };
    let Some(context) = find_context(e, &context_id).cloned() else {
        let msg = format!("Engagement {eng_id} has no context {context_id}");
        return fail(state, &task.id, now, "ContextNotFound", msg);
    };
    let catalog = e.catalog.clone();
    let payload = match s(&context, "Type") {
        "CustomerProject" => {
            json!({"OpportunityInvitation": context["Payload"]["CustomerProject"]})
        }
        "Lead" => {
            let lead = &context["Payload"]["Lead"];
            if s(lead, "QualificationStatus").eq_ignore_ascii_case("disqualified") {
                let msg = format!(
                    "Lead context {context_id} of engagement {eng_id} is disqualified; no opportunity can be made from it"
                );
                return fail(state, &task.id, now, "DisqualifiedLeadNotPermitted", msg);
            }
            let mut customer = lead["Customer"].clone();
            if let Some(c) = lead["Customer"]["Address"].get("CountryCode") {
                customer["CountryCode"] = c.clone();
            }
            json!({"LeadInvitation": {"Customer": customer}})
        }
        other => {
            let msg = format!(
                "Context {context_id} of engagement {eng_id} is a {other} context; an opportunity is made from a CustomerProject or Lead context"
            );
            return fail(state, &task.id, now, "OpportunityValidationFailed", msg);
        }
    };
    if let Some(o) = opportunity_from_context(state, &task.owner, &eng_id, &context_id) {
        let msg = format!(
            "Opportunity {o} was already created from context {context_id} of engagement {eng_id} (an earlier task completed first)"
        );
        return fail(state, &task.id, now, "OpportunityConflict", msg);
    }
    if let Some(reason) = &task.injected_failure {
        return inject_failure(state, task, now, reason);
    }
    let opp_id = state.new_opportunity_id();
    let job_id = state.new_job_id();
    let seq = state.next_seq();
    state.opportunities.insert(
        opp_id.clone(),
        Opportunity {
            arn: opportunity_arn(&task.owner, &catalog, &opp_id),
            id: opp_id.clone(),
            catalog,
            seq,
            owner: task.owner.clone(),
            fields: opportunity_from_payload(&payload),
            created_at: now,
            modified_at: now,
            engagement_id: Some(eng_id),
            related: Default::default(),
            submission: None,
            submissions: 0,
        },
    );
    if let Some(t) = state.tasks.get_mut(&task.id) {
        t.status = TaskStatus::Complete;
        t.ended_at = Some(now);
        t.opportunity_id = Some(opp_id);
        t.job_id = Some(job_id);
    }
}

// ---- prospecting ---------------------------------------------------------------------------

/// `ProspectingTaskStatus` of a prospecting task (or one of its engagements) at `now`:
/// PENDING in the first half of the delay, IN_PROGRESS in the second, then COMPLETED/FAILED.
fn prospecting_status(t: &Task, status: TaskStatus, now: Millis) -> &'static str {
    match status {
        TaskStatus::Complete => "COMPLETED",
        TaskStatus::Failed => "FAILED",
        TaskStatus::InProgress if now < t.started_at + (t.due_at - t.started_at) / 2 => "PENDING",
        TaskStatus::InProgress => "IN_PROGRESS",
    }
}

fn prospecting_start_response(t: &Task, now: Millis) -> Value {
    let ids: Vec<&str> = t
        .prospects
        .iter()
        .map(|p| p.engagement_id.as_str())
        .collect();
    let mut v = json!({
        "Identifiers": ids, "TaskName": t.name.as_deref().unwrap_or(""),
        "StartTime": iso(t.started_at), "TaskId": t.id, "TaskArn": t.arn,
        "TaskStatus": prospecting_status(t, t.status, now),
    });
    if let Some(m) = &t.message {
        v["Message"] = m.clone().into();
    }
    if let Some(r) = &t.reason_code {
        v["ReasonCode"] = r.clone().into();
    }
    v
}

pub(super) fn start_prospecting(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> RunResult {
    let catalog = s(body, "Catalog").to_string();
    let ids = str_list(body, "Identifiers").unwrap_or_default();
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            return Err(ApiError::business(
                &format!("Identifiers[{i}]"),
                "DUPLICATE_KEY_VALUE",
                format!("Engagement {id} is listed twice; list each engagement once"),
            ));
        }
    }
    let mut task = new_task(state, ctx, &catalog, TaskKind::Prospecting);
    task.name = Some(s(body, "TaskName").to_string());
    task.prospects = ids
        .iter()
        .map(|id| Prospect {
            engagement_id: id.to_string(),
            status: TaskStatus::InProgress,
            reason_code: None,
            message: None,
        })
        .collect();
    schedule(state, ctx, task)
}

/// Prospecting: each engagement independently. One the caller is not a member of (or that
/// does not exist in the catalog) FAILS (`EngagementAccessDenied` / `EngagementNotFound`), one
/// with 5 contexts FAILS (`ServiceQuotaExceeded`); every other gets a ProspectingResult context
/// and is COMPLETED. The `task_failure` fault fails every engagement and changes nothing.
fn complete_prospecting(state: &mut State, task: &Task, now: Millis) {
    let mut prospects = task.prospects.clone();
    let injected = task.injected_failure.clone();
    if injected.is_some() {
        state.injected_task_failures += 1;
    }
    let mut failed = 0;
    for p in prospects.iter_mut() {
        let outcome = match state.engagements.get_mut(&p.engagement_id) {
            _ if injected.is_some() => Err((
                injected.clone().unwrap_or_default(),
                "A transient error (injected fault) stopped the task before it changed this engagement; start a new task with a new ClientToken".to_string(),
            )),
            Some(e) if e.catalog == task.catalog && e.members.contains(&task.owner) => {
                let cs = e.contexts.get_or_insert_with(|| json!([]));
                if !cs.is_array() {
                    *cs = json!([]);
                }
                number_contexts(cs, false);
                let list = cs.as_array_mut().expect("an array");
                if list.len() >= MAX_CONTEXTS {
                    Err(("ServiceQuotaExceeded".to_string(), format!(
                        "Engagement {} already has {MAX_CONTEXTS} contexts; no prospecting result can be added",
                        p.engagement_id
                    )))
                } else {
                    let customer = list
                        .iter()
                        .find(|c| s(c, "Type") == "CustomerProject")
                        .map(|c| &c["Payload"]["CustomerProject"]["Customer"])
                        .filter(|c| c.is_object());
                    let mut aws = json!({
                        "StartTime": iso(task.started_at), "EndTime": iso(now),
                        "TaskId": task.id, "TaskArn": task.arn,
                        "TaskName": task.name.as_deref().unwrap_or(""),
                    });
                    if let Some(c) = customer {
                        let mut pc = Map::new();
                        for (from, to) in [("CompanyName", "AccountName"), ("CountryCode", "Country"), ("Industry", "Industry")] {
                            if let Some(v) = c.get(from) {
                                pc.insert(to.into(), v.clone());
                            }
                        }
                        aws["Customer"] = Value::Object(pc);
                    }
                    let next = list
                        .iter()
                        .filter_map(|c| c.get("Id")?.as_str()?.parse::<u64>().ok())
                        .max()
                        .unwrap_or(0)
                        + 1;
                    list.push(json!({"Id": next.to_string(), "Type": "ProspectingResult",
                        "Payload": {"ProspectingResult": {"Aws": aws}}}));
                    e.modified_at = bump(e.modified_at, now);
                    e.modified_by = task.owner.clone();
                    Ok(())
                }
            }
            Some(e) if e.catalog == task.catalog => Err((
                "EngagementAccessDenied".to_string(),
                format!("Account {} is not a member of engagement {}", task.owner, p.engagement_id),
            )),
            _ => Err((
                "EngagementNotFound".to_string(),
                format!("Engagement {} was not found in catalog {}", p.engagement_id, task.catalog),
            )),
        };
        match outcome {
            Ok(()) => p.status = TaskStatus::Complete,
            Err((code, msg)) => {
                failed += 1;
                p.status = TaskStatus::Failed;
                p.reason_code = Some(code);
                p.message = Some(msg);
            }
        }
    }
    if let Some(t) = state.tasks.get_mut(&task.id) {
        t.prospects = prospects;
        t.ended_at = Some(now);
        if let Some(reason) = injected {
            t.status = TaskStatus::Failed;
            t.reason_code = Some(reason);
            t.message = Some(format!(
                "The task failed with a transient error (injected fault) before it changed any engagement ({failed} failed); start the task again with a new ClientToken"
            ));
        } else {
            t.status = TaskStatus::Complete;
        }
    }
}

/// The prospecting task `TaskIdentifier` of the caller in the catalog.
fn own_prospecting<'s>(
    state: &'s State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<&'s Task, ApiError> {
    let catalog = s(body, "Catalog");
    let id = bare_id(s(body, "TaskIdentifier"));
    state
        .tasks
        .get(id)
        .filter(|t| {
            t.kind == TaskKind::Prospecting && t.catalog == catalog && t.owner == ctx.account
        })
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Prospecting task {id} was not found in catalog {catalog}"
            ))
        })
}

pub(super) fn get_prospecting(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let t = own_prospecting(state, ctx, body)?;
    let engagements: Vec<Value> = t
        .prospects
        .iter()
        .map(|p| {
            let mut v = json!({"EngagementIdentifier": p.engagement_id,
                "Status": prospecting_status(t, p.status, ctx.now)});
            if let Some(r) = &p.reason_code {
                v["ReasonCode"] = r.clone().into();
            }
            if let Some(m) = &p.message {
                v["Message"] = m.clone().into();
            }
            v
        })
        .collect();
    let mut out = json!({"TaskId": t.id, "TaskArn": t.arn,
        "TaskName": t.name.as_deref().unwrap_or(""), "StartTime": iso(t.started_at)});
    if let Some(end) = t.ended_at {
        out["EndTime"] = iso(end).into();
    }
    out["Engagements"] = Value::Array(engagements);
    Ok(out)
}

fn prospect_counts(t: &Task) -> (usize, usize) {
    let done = t
        .prospects
        .iter()
        .filter(|p| p.status == TaskStatus::Complete)
        .count();
    let failed = t
        .prospects
        .iter()
        .filter(|p| p.status == TaskStatus::Failed)
        .count();
    (done, failed)
}

pub(super) fn list_prospecting(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog");
    let ids = str_list(body, "TaskIdentifier");
    let names = str_list(body, "TaskName");
    let after = timestamp(body.get("StartAfter"));
    let before = timestamp(body.get("StartBefore"));
    let mut found: Vec<&Task> = state
        .tasks
        .values()
        .filter(|t| {
            t.kind == TaskKind::Prospecting && t.catalog == catalog && t.owner == ctx.account
        })
        .filter(|t| {
            ids.as_ref()
                .is_none_or(|l| l.is_empty() || l.contains(&t.id.as_str()))
        })
        .filter(|t| {
            names
                .as_ref()
                .is_none_or(|l| l.is_empty() || l.contains(&t.name.as_deref().unwrap_or("")))
        })
        .filter(|t| after.is_none_or(|a| t.started_at > a))
        .filter(|t| before.is_none_or(|b| t.started_at < b))
        .collect();
    match body.get("Sort").map(|s| s["SortBy"].as_str().unwrap_or("")) {
        Some("TaskName") => found.sort_by(|a, b| (&a.name, a.seq).cmp(&(&b.name, b.seq))),
        Some("FailedEngagementCount") => found.sort_by_key(|t| (prospect_counts(t).1, t.seq)),
        _ => found.sort_by_key(|t| (t.started_at, t.seq)),
    }
    if descending(body) {
        found.reverse();
    }
    let (items, next) = page(body, found, 100)?;
    let list: Vec<Value> = items
        .into_iter()
        .map(|t| {
            let (done, failed) = prospect_counts(t);
            let mut v = json!({"TaskId": t.id, "TaskArn": t.arn,
                "TaskName": t.name.as_deref().unwrap_or(""), "StartTime": iso(t.started_at),
                "TotalEngagementCount": t.prospects.len(),
                "CompletedEngagementCount": done, "FailedEngagementCount": failed});
            if let Some(end) = t.ended_at {
                v["EndTime"] = iso(end).into();
            }
            v
        })
        .collect();
    let mut out = json!({ "TaskSummaries": list });
    put_next(&mut out, next);
    Ok(out)
}
