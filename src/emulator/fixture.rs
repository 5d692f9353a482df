//! Rehearsal fixtures: resources that exist before a rehearsal starts (invitations to accept,
//! opportunities to start engagements from, engagements), loaded at start
//! (`EmulatorConfig::fixture`, `cosell emulator --fixture FILE`) or into a running emulator
//! (`EmulatorHandle::load_fixture`).
//!
//! Rules:
//! - Items are written with the API's member names, as the matching Get… operation outputs
//!   them (`GetEngagementInvitation`, `GetOpportunity`, `GetEngagement`). Only `Id` is
//!   required. Each item, with its defaults filled in, must conform to that output shape of
//!   the official model, and its `Id` to the model's identifier pattern
//!   (`engi-[0-9a-z]{13}`, `O[0-9]{1,19}`, `eng-[0-9a-z]{14}`); a bad item is an error that
//!   names the list, the item index and the member (`invitations[1].Payload…CountryCode`).
//!   Ids must be unique within a fixture. Nothing is loaded unless every item is valid.
//! - The fixture's `account` (default: the emulator's default account) is the rehearsal's own
//!   partner account: the receiver of invitations, the owner of opportunities, a member of
//!   engagements.
//! - Invitation defaults: `Catalog` `Sandbox`, `Status` `PENDING`, `SenderAwsAccountId` `aws`
//!   (an invitation from AWS), `Receiver` the fixture account, an `OpportunityInvitation`
//!   `Payload` (and `PayloadType` read off the payload), `InvitationDate` now,
//!   `ExpirationDate` `InvitationDate` + `--invitation-ttl`, a generated engagement (or the
//!   given `EngagementId`, created when it does not exist). `SenderCompanyName` defaults to the
//!   sender's company name: `company_names[sender]`, `AWS` for `aws`, else
//!   `Partner <account>`.
//! - Opportunity defaults: `Catalog` `Sandbox`, `OpportunityType` `Net New Business`,
//!   `LifeCycle` `{Stage: Prospect, ReviewStatus: Pending Submission}`, a placeholder
//!   `Customer` and `Project`; `CreatedDate`/`LastModifiedDate` now.
//! - Loading is idempotent: an item whose `Id` already exists is left exactly as it is (a
//!   resumed rehearsal keeps what the run changed); the count of added items is returned. A
//!   company name already known is kept too.
//! - Account ids may be unquoted numbers in YAML; they are read as strings.

use super::opportunities::opportunity_arn;
use super::ops::{engagement_arn, invitation_arn};
use super::state::*;
use crate::model::model;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// Resources to create before a rehearsal. See the module documentation for every default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// The rehearsal's partner account (12 digits): receiver of the invitations, owner of the
    /// opportunities. Default: the emulator's `default_account`.
    #[serde(
        default,
        deserialize_with = "opt_account",
        skip_serializing_if = "Option::is_none"
    )]
    pub account: Option<String>,
    /// Company names per partner account (`SenderCompanyName` of their invitations).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub company_names: BTreeMap<String, String>,
    /// Engagements, as `GetEngagement` outputs them (`Id`, `Title`, `Description`,
    /// `CreatedBy`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub engagements: Vec<Map<String, Value>>,
    /// Engagement invitations, as `GetEngagementInvitation` outputs them (`Id`, `Status`,
    /// `SenderAwsAccountId`, `SenderCompanyName`, `PayloadType`, `Payload`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invitations: Vec<Map<String, Value>>,
    /// Opportunities, as `GetOpportunity` outputs them (`Id`, `Customer`, `LifeCycle`,
    /// `Project`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opportunities: Vec<Map<String, Value>>,
}

fn opt_account<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(format!("{n:0>12}"))),
        Some(other) => Err(serde::de::Error::custom(format!(
            "account must be a 12-digit partner account id, not {other}"
        ))),
    }
}

impl Fixture {
    /// Parse a JSON fixture.
    pub fn from_json(text: &str) -> Result<Fixture, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// Parse a YAML fixture (YAML 1.2; JSON is YAML too).
    pub fn from_yaml(text: &str) -> Result<Fixture, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    /// Read a fixture file: JSON when the name ends in `.json`, YAML otherwise. The error names
    /// the file.
    pub fn from_file(path: &Path) -> Result<Fixture, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--fixture {}: cannot read the file: {e}", path.display()))?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let parsed = if json {
            Fixture::from_json(&text)
        } else {
            Fixture::from_yaml(&text)
        };
        parsed.map_err(|e| {
            format!(
                "--fixture {}: not a fixture ({e}); expected top-level keys account, \
                 company_names, engagements, invitations, opportunities",
                path.display()
            )
        })
    }
}

/// Where a fixture is loaded, and the clock.
pub struct LoadCtx<'a> {
    pub default_account: &'a str,
    pub ttl_ms: i64,
    pub now: Millis,
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Account ids written as YAML numbers become strings.
fn account_string(v: &mut Value) {
    if let Value::Number(n) = v {
        *v = Value::String(format!("{n:0>12}"));
    }
}

fn violations(shape: &str, v: &Value) -> Vec<(String, String)> {
    let m = model();
    let Some(id) = m.shape_id(shape) else {
        return vec![(String::new(), format!("the model has no shape {shape}"))];
    };
    let mut out = Vec::new();
    m.validate_shape(id, v, &mut out);
    out.into_iter()
        .map(|v| (v.path, format!("{} ({})", v.message, v.code.as_str())))
        .collect()
}

fn date(v: Option<&Value>, default: Millis) -> Millis {
    v.and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.timestamp_millis())
        .unwrap_or(default)
}

struct Errors(Vec<String>);

impl Errors {
    fn item(&mut self, list: &str, i: usize, member: &str, why: impl Into<String>) {
        let at = if member.is_empty() {
            format!("{list}[{i}]")
        } else {
            format!("{list}[{i}].{member}")
        };
        self.0.push(format!("fixture {at}: {}", why.into()));
    }
}

/// The `Id` of an item, checked against the model's identifier shape.
fn item_id(
    item: &Map<String, Value>,
    list: &str,
    i: usize,
    shape: &str,
    example: &str,
    seen: &mut HashSet<String>,
    errs: &mut Errors,
) -> Option<String> {
    let Some(id) = item.get("Id").and_then(Value::as_str) else {
        errs.item(
            list,
            i,
            "Id",
            format!("is required (a string such as {example})"),
        );
        return None;
    };
    if !violations(shape, &Value::String(id.into())).is_empty() {
        errs.item(
            list,
            i,
            "Id",
            format!(
                "{id:?} does not match the model's {shape} pattern; use an id such as {example}"
            ),
        );
        return None;
    }
    if !seen.insert(id.to_string()) {
        errs.item(
            list,
            i,
            "Id",
            format!("{id:?} appears twice in the fixture"),
        );
        return None;
    }
    Some(id.to_string())
}

fn catalog(item: &Map<String, Value>, list: &str, i: usize, errs: &mut Errors) -> String {
    match item.get("Catalog") {
        None => "Sandbox".into(),
        Some(Value::String(c)) if c == "AWS" || c == "Sandbox" => c.clone(),
        Some(other) => {
            errs.item(list, i, "Catalog", format!("{other} is not AWS or Sandbox"));
            "Sandbox".into()
        }
    }
}

fn shape_errors(shape: &str, out: &Value, list: &str, i: usize, errs: &mut Errors) {
    for (path, why) in violations(shape, out) {
        errs.item(list, i, &path, why);
    }
}

fn default_payload(id: &str, now: Millis) -> Value {
    json!({"OpportunityInvitation": {
        "ReceiverResponsibilities": ["Co-Sell Facilitator"],
        "Customer": {
            "CompanyName": "Example Customer",
            "Industry": "Other",
            "WebsiteUrl": "https://customer.example.com",
            "CountryCode": "US",
        },
        "Project": {
            "Title": format!("Rehearsal {id}"),
            "BusinessProblem": "A placeholder business problem for an offline rehearsal",
            "TargetCompletionDate": iso(now + 90 * 86_400_000)[..10].to_string(),
            "ExpectedCustomerSpend": [{
                "Amount": "1000", "CurrencyCode": "USD", "Frequency": "Monthly",
                "TargetCompany": "AWS",
            }],
        },
    }})
}

/// Load `fixture` into `state` (see the module rules). Returns how many items were added.
pub fn load(state: &mut State, fixture: &Fixture, ctx: &LoadCtx<'_>) -> Result<usize, String> {
    let account = fixture
        .account
        .clone()
        .unwrap_or_else(|| ctx.default_account.to_string());
    if !is_account(&account) {
        return Err(format!(
            "fixture account {account:?}: a partner account is 12 digits, e.g. 111122223333"
        ));
    }
    for (acct, name) in &fixture.company_names {
        if !(is_account(acct) || acct == "aws") || name.is_empty() || name.chars().count() > 120 {
            return Err(format!(
                "fixture company_names[{acct:?}]: needs a 12-digit account (or aws) and a name of 1 to 120 characters"
            ));
        }
    }
    for (acct, name) in &fixture.company_names {
        state
            .company_names
            .entry(acct.clone())
            .or_insert_with(|| name.clone());
    }
    let mut errs = Errors(Vec::new());
    let mut seen = HashSet::new();
    let mut new_engagements: Vec<Engagement> = Vec::new();
    let mut new_invitations: Vec<Invitation> = Vec::new();
    let mut new_opportunities: Vec<Opportunity> = Vec::new();
    let now = ctx.now;

    // ---- engagements
    for (i, item) in fixture.engagements.iter().enumerate() {
        let list = "engagements";
        let mut item = item.clone();
        for k in ["CreatedBy", "ModifiedBy"] {
            if let Some(v) = item.get_mut(k) {
                account_string(v);
            }
        }
        let Some(id) = item_id(
            &item,
            list,
            i,
            "EngagementIdentifier",
            "eng-0000000000000a",
            &mut seen,
            &mut errs,
        ) else {
            continue;
        };
        let cat = catalog(&item, list, i, &mut errs);
        let created_by = item
            .get("CreatedBy")
            .and_then(Value::as_str)
            .unwrap_or(&account)
            .to_string();
        let created_at = date(item.get("CreatedAt"), now);
        let e = Engagement {
            arn: engagement_arn(&created_by, &cat, &id),
            id: id.clone(),
            catalog: cat,
            seq: 0,
            title: item
                .get("Title")
                .and_then(Value::as_str)
                .map(str::to_string),
            description: item
                .get("Description")
                .and_then(Value::as_str)
                .map(str::to_string),
            contexts: item.get("Contexts").cloned(),
            created_at,
            created_by: created_by.clone(),
            modified_at: date(item.get("ModifiedAt"), created_at),
            modified_by: item
                .get("ModifiedBy")
                .and_then(Value::as_str)
                .unwrap_or(&created_by)
                .to_string(),
            members: if created_by == account {
                vec![account.clone()]
            } else {
                vec![created_by.clone(), account.clone()]
            },
        };
        let mut out = item.clone();
        out.remove("Catalog");
        out.insert("Arn".into(), e.arn.clone().into());
        out.entry("CreatedBy").or_insert(created_by.into());
        shape_errors(
            "GetEngagementResponse",
            &Value::Object(out),
            list,
            i,
            &mut errs,
        );
        new_engagements.push(e);
    }

    // ---- invitations
    for (i, item) in fixture.invitations.iter().enumerate() {
        let list = "invitations";
        let mut item = item.clone();
        if let Some(v) = item.get_mut("SenderAwsAccountId") {
            account_string(v);
        }
        if let Some(v) = item
            .get_mut("Receiver")
            .and_then(|r| r.get_mut("Account"))
            .and_then(|a| a.get_mut("AwsAccountId"))
        {
            account_string(v);
        }
        let Some(id) = item_id(
            &item,
            list,
            i,
            "EngagementInvitationIdentifier",
            "engi-000000000000a",
            &mut seen,
            &mut errs,
        ) else {
            continue;
        };
        let cat = catalog(&item, list, i, &mut errs);
        let sender = item
            .get("SenderAwsAccountId")
            .and_then(Value::as_str)
            .unwrap_or("aws")
            .to_string();
        let receiver_value = item
            .get("Receiver")
            .cloned()
            .unwrap_or_else(|| json!({"Account": {"AwsAccountId": account}}));
        let receiver = receiver_value["Account"]["AwsAccountId"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if receiver == sender {
            errs.item(list, i, "Receiver", "the receiver must not be the sender");
        }
        let payload = item
            .get("Payload")
            .cloned()
            .unwrap_or_else(|| default_payload(&id, now));
        let payload_type = item
            .get("PayloadType")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| payload.as_object().and_then(|m| m.keys().next().cloned()))
            .unwrap_or_else(|| "OpportunityInvitation".into());
        if payload.get(&payload_type).is_none() {
            errs.item(
                list,
                i,
                "PayloadType",
                format!("{payload_type:?} does not name the Payload's member"),
            );
        }
        let status = match item
            .get("Status")
            .and_then(Value::as_str)
            .unwrap_or("PENDING")
        {
            "PENDING" => InvitationStatus::Pending,
            "ACCEPTED" => InvitationStatus::Accepted,
            "REJECTED" => InvitationStatus::Rejected,
            "EXPIRED" => InvitationStatus::Expired,
            other => {
                errs.item(
                    list,
                    i,
                    "Status",
                    format!("{other:?} is not PENDING, ACCEPTED, REJECTED or EXPIRED"),
                );
                InvitationStatus::Pending
            }
        };
        let invited_at = date(item.get("InvitationDate"), now);
        let expires_at = date(item.get("ExpirationDate"), invited_at + ctx.ttl_ms);
        let arn_owner = if is_account(&sender) {
            sender.clone()
        } else {
            receiver.clone()
        };
        let title = item
            .get("EngagementTitle")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                payload[&payload_type]["Project"]["Title"]
                    .as_str()
                    .map(|t| t.chars().take(40).collect())
            });
        let engagement_id = match item.get("EngagementId").and_then(Value::as_str) {
            Some(e) => e.to_string(),
            None if state.invitations.contains_key(&id) => String::new(),
            None => state.new_engagement_id(),
        };
        let inv = Invitation {
            arn: invitation_arn(&arn_owner, &cat, &id),
            id: id.clone(),
            catalog: cat.clone(),
            seq: 0,
            engagement_id: engagement_id.clone(),
            sender: sender.clone(),
            receiver: receiver.clone(),
            receiver_value: receiver_value.clone(),
            message: item
                .get("InvitationMessage")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("Co-sell invitation {id}")),
            payload_type: payload_type.clone(),
            payload: payload.clone(),
            status,
            invited_at,
            expires_at,
            rejection_reason: item
                .get("RejectionReason")
                .and_then(Value::as_str)
                .map(str::to_string),
            sender_company_name: item
                .get("SenderCompanyName")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        let mut out = item.clone();
        out.insert("Catalog".into(), cat.clone().into());
        out.insert("Arn".into(), inv.arn.clone().into());
        out.insert("SenderAwsAccountId".into(), sender.clone().into());
        out.insert("Receiver".into(), receiver_value);
        out.insert("Payload".into(), payload);
        out.insert("PayloadType".into(), payload_type.into());
        out.insert("InvitationMessage".into(), inv.message.clone().into());
        if !engagement_id.is_empty() {
            out.insert("EngagementId".into(), engagement_id.clone().into());
        }
        shape_errors(
            "GetEngagementInvitationResponse",
            &Value::Object(out),
            list,
            i,
            &mut errs,
        );
        // the invitation's engagement, unless the state or the fixture has it
        if !engagement_id.is_empty()
            && !state.engagements.contains_key(&engagement_id)
            && !new_engagements.iter().any(|e| e.id == engagement_id)
            && !state.invitations.contains_key(&id)
        {
            let owner = arn_owner.clone();
            new_engagements.push(Engagement {
                arn: engagement_arn(&owner, &cat, &engagement_id),
                id: engagement_id.clone(),
                catalog: cat,
                seq: 0,
                title,
                description: item
                    .get("EngagementDescription")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                contexts: None,
                created_at: invited_at,
                created_by: inv.sender.clone(),
                modified_at: invited_at,
                modified_by: inv.sender.clone(),
                members: vec![inv.sender.clone()],
            });
        }
        new_invitations.push(inv);
    }

    // ---- opportunities
    const DERIVED: [&str; 6] = [
        "Id",
        "Arn",
        "Catalog",
        "LastModifiedDate",
        "CreatedDate",
        "RelatedEntityIdentifiers",
    ];
    for (i, item) in fixture.opportunities.iter().enumerate() {
        let list = "opportunities";
        let Some(id) = item_id(
            item,
            list,
            i,
            "OpportunityIdentifier",
            "O1234567890",
            &mut seen,
            &mut errs,
        ) else {
            continue;
        };
        let cat = catalog(item, list, i, &mut errs);
        let mut fields: Map<String, Value> = item
            .iter()
            .filter(|(k, _)| !DERIVED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        fields
            .entry("OpportunityType")
            .or_insert_with(|| "Net New Business".into());
        fields
            .entry("LifeCycle")
            .or_insert_with(|| json!({"Stage": "Prospect", "ReviewStatus": "Pending Submission"}));
        fields.entry("Customer").or_insert_with(|| {
            json!({"Account": {
                "CompanyName": "Example Customer", "Industry": "Other",
                "WebsiteUrl": "https://customer.example.com",
                "Address": {"CountryCode": "US"},
            }})
        });
        fields.entry("Project").or_insert_with(|| {
            json!({
                "Title": format!("Rehearsal {id}"),
                "CustomerBusinessProblem": "A placeholder business problem for an offline rehearsal",
            })
        });
        let created_at = date(item.get("CreatedDate"), now);
        let o = Opportunity {
            arn: opportunity_arn(&account, &cat, &id),
            id: id.clone(),
            catalog: cat.clone(),
            seq: 0,
            owner: account.clone(),
            fields: fields.clone(),
            created_at,
            modified_at: date(item.get("LastModifiedDate"), created_at),
            engagement_id: None,
            related: Default::default(),
            submission: None,
            submissions: 0,
        };
        let mut out = fields;
        out.insert("Catalog".into(), cat.into());
        out.insert("Id".into(), id.into());
        out.insert("Arn".into(), o.arn.clone().into());
        out.insert("LastModifiedDate".into(), iso(o.modified_at).into());
        out.insert("CreatedDate".into(), iso(o.created_at).into());
        out.insert(
            "RelatedEntityIdentifiers".into(),
            item.get("RelatedEntityIdentifiers")
                .cloned()
                .unwrap_or_else(|| json!({})),
        );
        shape_errors(
            "GetOpportunityResponse",
            &Value::Object(out),
            list,
            i,
            &mut errs,
        );
        new_opportunities.push(o);
    }

    if !errs.0.is_empty() {
        let n = errs.0.len();
        let mut msg = errs.0.into_iter().take(10).collect::<Vec<_>>().join("; ");
        if n > 10 {
            msg.push_str(&format!("; and {} more", n - 10));
        }
        return Err(format!(
            "{msg} (nothing was loaded; fix the fixture: members are the API's, as the Get… \
             operation outputs them)"
        ));
    }

    let mut added = 0;
    for mut e in new_engagements {
        if !state.engagements.contains_key(&e.id) {
            e.seq = state.next_seq();
            state.engagements.insert(e.id.clone(), e);
            added += 1;
        }
    }
    for mut inv in new_invitations {
        if state.invitations.contains_key(&inv.id) {
            continue;
        }
        inv.seq = state.next_seq();
        if let Some(e) = state.engagements.get_mut(&inv.engagement_id) {
            if !e.members.contains(&inv.sender) {
                e.members.push(inv.sender.clone());
            }
            if inv.status == InvitationStatus::Accepted && !e.members.contains(&inv.receiver) {
                e.members.push(inv.receiver.clone());
            }
        }
        state.invitations.insert(inv.id.clone(), inv);
        added += 1;
    }
    for mut o in new_opportunities {
        if !state.opportunities.contains_key(&o.id) {
            o.seq = state.next_seq();
            state.opportunities.insert(o.id.clone(), o);
            added += 1;
        }
    }
    if added > 0 || !fixture.company_names.is_empty() {
        state.touch();
    }
    Ok(added)
}
