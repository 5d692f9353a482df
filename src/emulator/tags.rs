//! Tags: TagResource, UntagResource and ListTagsForResource over [`State`], and the `Tags` of
//! the create requests that carry them (CreateOpportunity, CreateResourceSnapshotJob).
//!
//! Rules enforced here:
//! - Taggable resources are the ones the emulator holds under a `TaggableResourceArn`:
//!   opportunities, engagements, resource snapshot jobs and engagement tasks, named by their
//!   exact ARN. A resource is tagged by the account that owns it (the opportunity's owner, the
//!   engagement's creator, the job's or task's owner): an ARN of no such resource, or of
//!   another account's, is `ResourceNotFoundException`.
//! - TagResource adds or overwrites keys; repeating a Tag with the same values succeeds and
//!   changes nothing. A request naming one key twice is a `ValidationException`
//!   (`DUPLICATE_KEY_VALUE` at `Tags`). A resource holds at most [`MAX_TAGS`] tags (the
//!   model's `TagList` maximum, which ListTagsForResource must be able to answer); a Tag that
//!   would exceed it is a `ValidationException` (`TOO_MANY_VALUES` at `Tags`) and changes
//!   nothing. Key and value patterns are the model's, checked before dispatch.
//! - UntagResource removes the keys named; a key the resource does not have is ignored.
//! - ListTagsForResource answers every tag, ordered by key (`[]` for a resource without tags).
//! - `Tags` in CreateOpportunity and CreateResourceSnapshotJob are checked like TagResource's
//!   before the resource is created, and stored on it. Deleting a job drops its tags.

use super::error::ApiError;
use super::opportunities::{self as opp, opportunity_arn};
use super::ops::{s, Ctx};
use super::state::State;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// The most tags one resource holds (`TagList` max in the model).
pub const MAX_TAGS: usize = 200;

/// The tags of every tagged resource.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tags {
    /// Resource ARN → key → value.
    #[serde(default)]
    pub by_arn: HashMap<String, BTreeMap<String, String>>,
}

/// The owner of the resource named by `arn`, if the emulator holds one.
fn owner_of<'s>(state: &'s State, arn: &str) -> Option<&'s str> {
    let id = arn.rsplit('/').next()?;
    if let Some(o) = state.opportunities.get(id).filter(|o| o.arn == arn) {
        return Some(&o.owner);
    }
    if let Some(e) = state.engagements.get(id).filter(|e| e.arn == arn) {
        return Some(&e.created_by);
    }
    if let Some(j) = state.snapshots.jobs.get(id).filter(|j| j.arn == arn) {
        return Some(&j.owner);
    }
    if let Some(t) = state.tasks.get(id).filter(|t| t.arn == arn) {
        return Some(&t.owner);
    }
    None
}

fn check_resource(state: &State, ctx: &Ctx<'_>, arn: &str) -> Result<(), ApiError> {
    match owner_of(state, arn) {
        Some(o) if o == ctx.account => Ok(()),
        _ => Err(ApiError::not_found(format!(
            "No taggable resource of account {} has the ARN {arn}",
            ctx.account
        ))),
    }
}

/// The `Tags` of a request as (key, value) pairs, refusing a key named twice.
pub(super) fn request_tags(body: &Value) -> Result<Vec<(String, String)>, ApiError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for t in body
        .get("Tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (k, v) = (s(t, "Key").to_string(), s(t, "Value").to_string());
        if out.iter().any(|(x, _)| *x == k) {
            return Err(ApiError::business(
                "Tags",
                "DUPLICATE_KEY_VALUE",
                format!("Tag key {k:?} appears more than once in the request"),
            ));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// Merge `tags` into the resource's, unless the result would exceed [`MAX_TAGS`].
fn merge(state: &mut State, arn: &str, tags: Vec<(String, String)>) -> Result<(), ApiError> {
    let current = state.tags.by_arn.get(arn);
    let added = tags
        .iter()
        .filter(|(k, _)| current.is_none_or(|c| !c.contains_key(k)))
        .count();
    let total = current.map_or(0, BTreeMap::len) + added;
    if total > MAX_TAGS {
        return Err(ApiError::business(
            "Tags",
            "TOO_MANY_VALUES",
            format!(
                "The resource would have {total} tags; a resource holds at most {MAX_TAGS} \
                 (untag some first)"
            ),
        ));
    }
    store(state, arn, tags);
    Ok(())
}

/// Store `tags` on `arn` (already checked).
pub(super) fn store(state: &mut State, arn: &str, tags: Vec<(String, String)>) {
    if tags.is_empty() {
        return;
    }
    let entry = state.tags.by_arn.entry(arn.to_string()).or_default();
    for (k, v) in tags {
        entry.insert(k, v);
    }
}

pub(super) fn tag_resource(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let arn = s(body, "ResourceArn");
    check_resource(state, ctx, arn)?;
    let tags = request_tags(body)?;
    merge(state, arn, tags)?;
    Ok(json!({}))
}

pub(super) fn untag_resource(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let arn = s(body, "ResourceArn");
    check_resource(state, ctx, arn)?;
    if let Some(t) = state.tags.by_arn.get_mut(arn) {
        for k in super::ops::str_list(body, "TagKeys").unwrap_or_default() {
            t.remove(k);
        }
        if t.is_empty() {
            state.tags.by_arn.remove(arn);
        }
    }
    Ok(json!({}))
}

pub(super) fn list_tags(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> Result<Value, ApiError> {
    let arn = s(body, "ResourceArn");
    check_resource(state, ctx, arn)?;
    let tags: Vec<Value> = state
        .tags
        .by_arn
        .get(arn)
        .into_iter()
        .flatten()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    Ok(json!({ "Tags": tags }))
}

/// CreateOpportunity with its `Tags`: checked first, stored on the new opportunity.
pub(super) fn create_opportunity(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let tags = request_tags(body)?;
    let out = opp::create_opportunity(state, ctx, body)?;
    let arn = opportunity_arn(ctx.account, s(body, "Catalog"), s(&out, "Id"));
    store(state, &arn, tags);
    Ok(out)
}
