//! Engagements: Create, Get, List, their contexts (CreateEngagementContext,
//! UpdateEngagementContext), ListEngagementMembers and ListEngagementResourceAssociations.
//!
//! Rules enforced here:
//! - Membership: an engagement's members are its creator and every account that accepted an
//!   invitation to it (AcceptEngagementInvitation or a completed accepting task). Only members
//!   may Get it, list its members, create or update its contexts or filter its resource
//!   associations: anyone else is `AccessDeniedException`; an unknown id (or one in the other
//!   catalog) is `ResourceNotFoundException`. ListEngagements shows only the caller's.
//! - Contexts: every context has an `Id`, `"1"`, `"2"`, … in the order they were added (ids
//!   are never reused; they fit both `EngagementContextIdentifier` and the
//!   `ContextIdentifier` StartOpportunityFromEngagementTask takes). An engagement holds at most
//!   5 contexts (`EngagementContexts` max 5): one more is `ServiceQuotaExceededException`.
//! - The payload's union member must be the one `Type` names (`CustomerProject`, `Lead`,
//!   `ProspectingResult`), else `ValidationException` (`INVALID_VALUE` at `Payload`).
//! - Creating or updating a context changes the engagement: `ModifiedAt` becomes strictly
//!   later and `ModifiedBy` the caller; the answer's `EngagementLastModifiedAt` is that new
//!   `ModifiedAt` (what GetEngagement then reports).
//! - UpdateEngagementContext (optimistic locking, like UpdateOpportunity): an unknown
//!   `ContextIdentifier` is `ResourceNotFoundException`; `EngagementLastModifiedAt` must equal
//!   the engagement's current `ModifiedAt`, else `ConflictException` (GetEngagement again and
//!   retry); `Type` must be the context's type (`INVALID_VALUE` at `Type`). The payload replaces
//!   the context's payload; for a `Lead` the update's single `Interaction` (the update shape
//!   has no list) is added to the stored `Interactions` (at most 10: one more is
//!   `ServiceQuotaExceededException`), and `Customer`, `QualificationStatus`, `Insights` are
//!   replaced.
//! - ListEngagementMembers: the members in the order they joined (creator first) with their
//!   company name; `MaxResults` 1–10 (default 10) and `NextToken`.
//! - ListEngagementResourceAssociations: one association per opportunity tied to an engagement
//!   (the opportunity a StartEngagementFromOpportunityTask started it from, the opportunity an
//!   accepting task or StartOpportunityFromEngagementTask created), `CreatedBy` the
//!   opportunity's owner; only engagements the caller is a member of; filters
//!   `EngagementIdentifier`, `ResourceType`, `ResourceIdentifier`, `CreatedBy` (all exact);
//!   ordered by engagement creation then opportunity; `MaxResults` (default 100) and
//!   `NextToken`. (The service also requires a snapshot by the caller in the engagement;
//!   snapshots are not emulated here, so that condition is not applied.)

use super::error::ApiError;
use super::opportunities::{bump, timestamp};
use super::ops::{descending, engagement_arn, page, put_next, s, str_list, Ctx};
use super::state::*;
use serde_json::{json, Map, Value};

/// Most contexts an engagement holds (`EngagementContexts` max 5).
pub(super) const MAX_CONTEXTS: usize = 5;
/// Most interactions a lead context holds (`LeadInteractionList` max 10).
const MAX_INTERACTIONS: usize = 10;

pub(super) fn create_engagement(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
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
        contexts: body.get("Contexts").filter(|c| !c.is_null()).map(|c| {
            let mut c = c.clone();
            number_contexts(&mut c, true);
            c
        }),
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
pub(super) fn member_engagement<'s>(
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

pub(super) fn context_types(e: &Engagement) -> Vec<Value> {
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

pub(super) fn get_engagement(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
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
        let mut c = c.clone();
        number_contexts(&mut c, false);
        out["Contexts"] = c;
    }
    Ok(out)
}

pub(super) fn list_engagements(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
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

// ---- contexts ------------------------------------------------------------------------------

/// Give contexts their `Id` (`"1"`, `"2"`, … by position), first member: every context when
/// `all`, else only those without one (engagements stored before contexts had ids).
pub(super) fn number_contexts(contexts: &mut Value, all: bool) {
    let Value::Array(cs) = contexts else { return };
    for (i, c) in cs.iter_mut().enumerate() {
        let Value::Object(m) = c else { continue };
        if !all && m.get("Id").is_some_and(Value::is_string) {
            continue;
        }
        let mut out = Map::new();
        out.insert("Id".into(), (i + 1).to_string().into());
        for (k, v) in std::mem::take(m) {
            if k != "Id" {
                out.insert(k, v);
            }
        }
        *m = out;
    }
}

/// The engagement's contexts, numbered, as a mutable list.
fn contexts_mut(e: &mut Engagement) -> &mut Vec<Value> {
    let cs = e.contexts.get_or_insert_with(|| json!([]));
    if !cs.is_array() {
        *cs = json!([]);
    }
    number_contexts(cs, false);
    cs.as_array_mut().expect("an array")
}

/// The context `id` of an engagement.
pub(super) fn find_context<'e>(e: &'e Engagement, id: &str) -> Option<&'e Value> {
    e.contexts
        .as_ref()
        .and_then(Value::as_array)?
        .iter()
        .enumerate()
        .find(|(i, c)| match c.get("Id").and_then(Value::as_str) {
            Some(x) => x == id,
            None => (i + 1).to_string() == id,
        })
        .map(|(_, c)| c)
}

/// The payload's union member must be the one `Type` names.
fn payload_of_type<'v>(body: &'v Value, ty: &str) -> Result<&'v Value, ApiError> {
    let member = body["Payload"]
        .as_object()
        .and_then(|m| m.keys().next().map(String::as_str))
        .unwrap_or("");
    if member != ty {
        return Err(ApiError::business(
            "Payload",
            "INVALID_VALUE",
            format!("Type is {ty} but the payload carries {member:?}: send Payload.{ty}"),
        ));
    }
    Ok(&body["Payload"])
}

/// The answer of CreateEngagementContext and UpdateEngagementContext.
fn context_answer(e: &Engagement, context_id: &str) -> Value {
    json!({"EngagementId": e.id, "EngagementArn": e.arn,
        "EngagementLastModifiedAt": iso(e.modified_at), "ContextId": context_id})
}

fn touch_engagement(e: &mut Engagement, ctx: &Ctx<'_>) {
    e.modified_at = bump(e.modified_at, ctx.now);
    e.modified_by = ctx.account.to_string();
}

pub(super) fn create_context(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let id = member_engagement(
        state,
        s(body, "Catalog"),
        s(body, "EngagementIdentifier"),
        ctx.account,
    )?
    .id
    .clone();
    let ty = s(body, "Type");
    let payload = payload_of_type(body, ty)?.clone();
    let e = state.engagements.get_mut(&id).expect("checked above");
    let cs = contexts_mut(e);
    if cs.len() >= MAX_CONTEXTS {
        return Err(ApiError::service_quota_exceeded(format!(
            "Engagement {id} already has {MAX_CONTEXTS} contexts, the most it may hold; update one \
             with UpdateEngagementContext instead"
        )));
    }
    let next = cs
        .iter()
        .filter_map(|c| c.get("Id")?.as_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    let context_id = next.to_string();
    cs.push(json!({"Id": context_id, "Type": ty, "Payload": payload}));
    touch_engagement(e, ctx);
    Ok(context_answer(e, &context_id))
}

pub(super) fn update_context(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let e = member_engagement(
        state,
        s(body, "Catalog"),
        s(body, "EngagementIdentifier"),
        ctx.account,
    )?;
    let id = e.id.clone();
    let context_id = s(body, "ContextIdentifier");
    let Some(current) = find_context(e, context_id) else {
        return Err(ApiError::not_found(format!(
            "Engagement {id} has no context {context_id}"
        )));
    };
    let sent = timestamp(body.get("EngagementLastModifiedAt"));
    if sent != Some(e.modified_at) {
        return Err(ApiError::conflict(format!(
            "Engagement {id} was modified at {} (EngagementLastModifiedAt {} is stale): call \
             GetEngagement, apply the change to its current contexts and retry with its ModifiedAt",
            iso(e.modified_at),
            body.get("EngagementLastModifiedAt").unwrap_or(&Value::Null)
        )));
    }
    let ty = s(body, "Type");
    let stored_ty = s(current, "Type");
    if ty != stored_ty {
        return Err(ApiError::business(
            "Type",
            "INVALID_VALUE",
            format!("Context {context_id} of engagement {id} is a {stored_ty} context, not {ty}"),
        ));
    }
    let sent_payload = payload_of_type(body, ty)?;
    let payload = if ty == "Lead" {
        let mut lead = current["Payload"]["Lead"].clone();
        if !lead.is_object() {
            lead = json!({});
        }
        let update = &sent_payload["Lead"];
        for k in ["Customer", "QualificationStatus", "Insights"] {
            match update.get(k) {
                Some(v) => lead[k] = v.clone(),
                None => {
                    if let Some(m) = lead.as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        if let Some(i) = update.get("Interaction") {
            let list = lead
                .as_object_mut()
                .expect("an object")
                .entry("Interactions")
                .or_insert_with(|| json!([]));
            if !list.is_array() {
                *list = json!([]);
            }
            let list = list.as_array_mut().expect("an array");
            if list.len() >= MAX_INTERACTIONS {
                return Err(ApiError::service_quota_exceeded(format!(
                    "Lead context {context_id} of engagement {id} already holds \
                     {MAX_INTERACTIONS} interactions, the most it may hold"
                )));
            }
            list.push(i.clone());
        }
        json!({"Lead": lead})
    } else {
        sent_payload.clone()
    };
    let e = state.engagements.get_mut(&id).expect("checked above");
    let cs = contexts_mut(e);
    if let Some(c) = cs.iter_mut().find(|c| s(c, "Id") == context_id) {
        c["Payload"] = payload;
    }
    touch_engagement(e, ctx);
    Ok(context_answer(e, context_id))
}

// ---- members and resource associations -----------------------------------------------------

pub(super) fn list_members(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let e = member_engagement(
        state,
        s(body, "Catalog"),
        s(body, "Identifier"),
        ctx.account,
    )?;
    let (items, next) = page(body, e.members.iter().collect(), 10)?;
    let list: Vec<Value> = items
        .into_iter()
        .map(|m| json!({"AccountId": m, "CompanyName": state.company_name(m)}))
        .collect();
    let mut out = json!({ "EngagementMemberList": list });
    put_next(&mut out, next);
    Ok(out)
}

pub(super) fn list_resource_associations(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog");
    let engagement = body.get("EngagementIdentifier").and_then(Value::as_str);
    if let Some(id) = engagement {
        member_engagement(state, catalog, id, ctx.account)?;
    }
    let rtype = body.get("ResourceType").and_then(Value::as_str);
    let resource = body.get("ResourceIdentifier").and_then(Value::as_str);
    let created_by = body.get("CreatedBy").and_then(Value::as_str);
    let mut found: Vec<(&Engagement, &Opportunity)> = state
        .opportunities
        .values()
        .filter(|o| o.catalog == catalog)
        .filter_map(|o| {
            let e = state.engagements.get(o.engagement_id.as_deref()?)?;
            (e.catalog == catalog && e.members.iter().any(|m| m == ctx.account)).then_some((e, o))
        })
        .filter(|(e, o)| {
            engagement.is_none_or(|x| x == e.id)
                && rtype.is_none_or(|x| x == "Opportunity")
                && resource.is_none_or(|x| x == o.id)
                && created_by.is_none_or(|x| x == o.owner)
        })
        .collect();
    found.sort_by_key(|(e, o)| (e.created_at, e.seq, o.seq));
    let (items, next) = page(body, found, 100)?;
    let list: Vec<Value> = items
        .into_iter()
        .map(|(e, o)| {
            json!({"Catalog": e.catalog, "EngagementId": e.id, "ResourceType": "Opportunity",
                "ResourceId": o.id, "CreatedBy": o.owner})
        })
        .collect();
    let mut out = json!({ "EngagementResourceAssociationSummaries": list });
    put_next(&mut out, next);
    Ok(out)
}
