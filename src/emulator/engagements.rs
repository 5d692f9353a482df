//! Engagements: Create, Get, List.
//!
//! Rules enforced here:
//! - Visibility: an engagement is visible to its members only (the creator, and every account
//!   that accepted an invitation to it); Get by a non-member is `AccessDeniedException`, List
//!   shows only the caller's engagements.

use super::error::ApiError;
use super::ops::{descending, engagement_arn, page, put_next, s, str_list, Ctx};
use super::state::*;
use serde_json::{json, Value};

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
        out["Contexts"] = c.clone();
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
