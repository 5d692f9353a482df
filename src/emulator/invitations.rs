//! Engagement invitations: Create, Get, List, Reject, Accept.
//!
//! Rules enforced here:
//! - Only the receiver may reject or accept an invitation (the sender is
//!   `AccessDeniedException`; any other account does not see it: `ResourceNotFoundException`).
//! - AcceptEngagementInvitation (no ClientToken) needs a PENDING invitation: one that is
//!   ACCEPTED, REJECTED or EXPIRED is a `ConflictException`, so a repeated accept is a conflict
//!   (the effect check reads the invitation to tell it was this client's). The receiver becomes
//!   a member of the engagement ([`join_engagement`], the same effect a completed accepting
//!   task has) and the invitation is ACCEPTED; unlike the accepting task it creates no
//!   opportunity (StartOpportunityFromEngagementTask does that from a context).
//! - Invitations carry `SenderCompanyName`: the fixture's value for fixture invitations, else
//!   the sender account's company name ([`State::company_name`]).

use super::engagements::member_engagement;
use super::error::ApiError;
use super::opportunities::bump;
use super::ops::{invitation_arn, page, put_next, s, str_list, Ctx};
use super::state::*;
use serde::Serialize;
use serde_json::{json, Value};

pub(super) fn create_invitation(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
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
pub(super) fn visible_invitation<'s>(
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
pub(super) fn get_invitation(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Vec<u8>, ApiError> {
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
pub(super) fn sender_company(state: &State, i: &Invitation) -> String {
    i.sender_company_name
        .clone()
        .unwrap_or_else(|| state.company_name(&i.sender))
}

pub(super) fn list_invitations(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
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
/// invitation must be PENDING, except that an accepting task may start on an EXPIRED one
/// (`expired_may_start`; it then fails with `InvitationValidationFailed`, as the service
/// reports it).
pub(super) fn receiver_invitation<'s>(
    state: &'s State,
    ctx: &Ctx<'_>,
    body: &Value,
    action: &str,
    expired_may_start: bool,
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
    let task_may_fail = expired_may_start && status == InvitationStatus::Expired;
    if status != InvitationStatus::Pending && !task_may_fail {
        return Err(ApiError::conflict(format!(
            "Engagement invitation {} is {}, not PENDING; it cannot be {action}ed",
            i.id,
            status.as_str()
        )));
    }
    Ok(i)
}

pub(super) fn reject_invitation(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let id = receiver_invitation(state, ctx, body, "reject", false)?
        .id
        .clone();
    if let Some(i) = state.invitations.get_mut(&id) {
        i.status = InvitationStatus::Rejected;
        i.rejection_reason = body
            .get("RejectionReason")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    Ok(json!({}))
}

pub(super) fn accept_invitation(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let id = receiver_invitation(state, ctx, body, "accept", false)?
        .id
        .clone();
    join_engagement(state, &id, ctx.account, ctx.now);
    Ok(json!({}))
}

/// Accepting an invitation: `account` joins the invitation's engagement (which changes: a
/// strictly later `ModifiedAt`, `ModifiedBy` the new member) and the invitation is ACCEPTED.
/// Shared by AcceptEngagementInvitation and the accepting task's completion.
pub(super) fn join_engagement(state: &mut State, invitation_id: &str, account: &str, now: Millis) {
    let Some(i) = state.invitations.get_mut(invitation_id) else {
        return;
    };
    i.status = InvitationStatus::Accepted;
    let engagement_id = i.engagement_id.clone();
    if let Some(e) = state.engagements.get_mut(&engagement_id) {
        if !e.members.iter().any(|m| m == account) {
            e.members.push(account.to_string());
        }
        e.modified_at = bump(e.modified_at, now);
        e.modified_by = account.to_string();
    }
}
