//! Updates that replace a whole record, and how a record read with its Get becomes the update
//! request that would leave it as it is (the base a `patch` step merges its changes into).
//!
//! UpdateOpportunity replaces the whole opportunity and UpdateEngagementContext the whole
//! context (`behaviours.md`, update semantics): a member the request leaves out becomes null.
//! So an update that changes one member must send every other member as it is, with the
//! version it read (`LastModifiedDate`, `EngagementLastModifiedAt`: a stale one is refused).
//! Per update operation, [`UPDATES`] names its Get and where the record and its version are;
//! [`base_request`] maps the Get's answer to the update's input shape by the model: members the
//! two shapes share are kept, recursively (a member only the Get has, read-only to the update,
//! is dropped), and the record's `Id` becomes the update's identifier.
//!
//! Pure: shapes and JSON in, JSON out.

use super::{model, ShapeId, ShapeKind};
use serde_json::{Map, Value};

/// Where an update operation's record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateSpec {
    /// The update (replaces the whole record).
    pub update: &'static str,
    /// The read that returns the record.
    pub get: &'static str,
    /// The update's member naming the record, and the Get's request member that takes it.
    pub identifier: (&'static str, &'static str),
    /// The update's version member (optimistic locking) and the Get output member it is read
    /// from (on the Get's top level, not the record's).
    pub version: (&'static str, &'static str),
    /// For a record nested in the Get's answer: the list member that holds it and the update's
    /// member that picks it by its `Id` (UpdateEngagementContext: `Contexts`,
    /// `ContextIdentifier`). None: the answer is the record.
    pub nested: Option<(&'static str, &'static str)>,
}

/// Every update operation of the model that replaces a whole record.
pub const UPDATES: &[UpdateSpec] = &[
    UpdateSpec {
        update: "UpdateOpportunity",
        get: "GetOpportunity",
        identifier: ("Identifier", "Identifier"),
        version: ("LastModifiedDate", "LastModifiedDate"),
        nested: None,
    },
    UpdateSpec {
        update: "UpdateEngagementContext",
        get: "GetEngagement",
        identifier: ("EngagementIdentifier", "Identifier"),
        version: ("EngagementLastModifiedAt", "ModifiedAt"),
        nested: Some(("Contexts", "ContextIdentifier")),
    },
];

/// The spec of an update operation, if it replaces a whole record.
pub fn spec(update: &str) -> Option<&'static UpdateSpec> {
    UPDATES.iter().find(|u| u.update == update)
}

/// `value` (of some output shape) cut down to `target`: for structures, the members `target`
/// has, each projected in turn; lists item by item; maps value by value; anything else as it
/// is. Members of `value` that `target` lacks are dropped.
pub fn project(target: ShapeId, value: &Value) -> Value {
    let m = model();
    match (&m.shape(target).kind, value) {
        (ShapeKind::Structure { members, .. }, Value::Object(o)) => Value::Object(
            members
                .iter()
                .filter_map(|mm| {
                    o.get(&mm.name)
                        .filter(|v| !v.is_null())
                        .map(|v| (mm.name.clone(), project(mm.shape, v)))
                })
                .collect(),
        ),
        (ShapeKind::List { member, .. }, Value::Array(items)) => {
            Value::Array(items.iter().map(|i| project(*member, i)).collect())
        }
        (ShapeKind::Map { value: vs, .. }, Value::Object(o)) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), project(*vs, v)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// Why a base request could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseError {
    /// The nested record (the context) is not in the Get's answer.
    NotFound(String),
}

/// The update request that leaves the record as `answer` (the Get's output) shows it: the
/// shared members projected to the update's input shape, the identifier, the version and, for
/// a nested record, the parent's identifier. `request` is the update request as the playbook
/// gives it (its identifier members pick the record and are kept).
pub fn base_request(
    spec: &UpdateSpec,
    request: &Value,
    answer: &Value,
) -> Result<Value, BaseError> {
    let m = model();
    let input = m
        .operation(spec.update)
        .and_then(|o| o.input)
        .expect("update operations have an input");
    let record = match spec.nested {
        None => answer.clone(),
        Some((list, pick)) => {
            let want = request.get(pick).and_then(Value::as_str).unwrap_or("");
            answer
                .get(list)
                .and_then(Value::as_array)
                .and_then(|l| {
                    l.iter()
                        .find(|c| c.get("Id").and_then(Value::as_str) == Some(want))
                })
                .cloned()
                .ok_or_else(|| BaseError::NotFound(format!("{list} has no {want:?}")))?
        }
    };
    let mut out = match project(input, &record) {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    // the record's own id is not an update member: the identifiers come from the request
    out.remove("Id");
    for k in [spec.identifier.0]
        .into_iter()
        .chain(spec.nested.map(|(_, pick)| pick))
        .chain(["Catalog"])
    {
        if let Some(v) = request.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    if !out.contains_key(spec.identifier.0) {
        if let Some(id) = answer.get("Id") {
            out.insert(spec.identifier.0.to_string(), id.clone());
        }
    }
    if let Some(v) = answer.get(spec.version.1) {
        out.insert(spec.version.0.to_string(), v.clone());
    }
    Ok(Value::Object(out))
}

/// What may change while ReviewStatus is `Action Required` (developer guide, working with
/// opportunity updates): the customer's address and website, the target close date and the
/// expected spend.
pub const ACTION_REQUIRED_EDITABLE: &[&str] = &[
    "Customer.Account.Address",
    "Customer.Account.WebsiteUrl",
    "LifeCycle.TargetCloseDate",
    "Project.ExpectedCustomerSpend",
];

/// The members of the AWS review itself (Sandbox review self-service may set them).
pub const REVIEW_MEMBERS: &[&str] = &[
    "LifeCycle.ReviewStatus",
    "LifeCycle.ReviewComments",
    "LifeCycle.ReviewStatusReason",
];

/// The Get request that reads the record an update `request` names: the update's identifier
/// under the Get's name, and the catalog (what a `patch` step and `plan --live` read with).
pub fn read_request(update: &UpdateSpec, request: &Value) -> Value {
    let mut read = Map::new();
    for (from, to) in [update.identifier, ("Catalog", "Catalog")] {
        if let Some(v) = request.get(from) {
            read.insert(to.to_string(), v.clone());
        }
    }
    Value::Object(read)
}

/// Whether the dotted `path` is `member` or inside it.
fn within(path: &str, member: &str) -> bool {
    path == member
        || path
            .strip_prefix(member)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// Why the service would refuse an update that changes the members at `changed` (dotted
/// paths) of the record `answer` because of the record's review status (`behaviours.md`,
/// review-status locks), or None when nothing locks them. Only opportunities have a review.
pub fn review_lock(spec: &UpdateSpec, answer: &Value, changed: &[&str]) -> Option<String> {
    if spec.update != "UpdateOpportunity" {
        return None;
    }
    let status = answer
        .get("LifeCycle")
        .and_then(|l| l.get("ReviewStatus"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let outside = |allowed: &[&str]| -> Vec<&str> {
        changed
            .iter()
            .copied()
            .filter(|c| !allowed.iter().any(|a| within(c, a)))
            .collect()
    };
    match status {
        "Submitted" | "In review" if !outside(REVIEW_MEMBERS).is_empty() => Some(format!(
            "the opportunity's ReviewStatus is {status}: no update is accepted while AWS reviews \
             it; run the row again once the review has ended"
        )),
        "Action Required" => {
            let allowed: Vec<&str> = ACTION_REQUIRED_EDITABLE
                .iter()
                .chain(REVIEW_MEMBERS)
                .copied()
                .collect();
            let bad = outside(&allowed);
            (!bad.is_empty()).then(|| {
                format!(
                    "the opportunity's ReviewStatus is Action Required: only {} may change, not \
                     {}; remove those members from the patch for this row",
                    ACTION_REQUIRED_EDITABLE.join(", "),
                    bad.join(", ")
                )
            })
        }
        "Approved"
            if changed
                .iter()
                .any(|c| within(c, "Customer.Account.Address.CountryCode")) =>
        {
            Some(
                "the opportunity is Approved: the customer's country is frozen; leave \
                 Customer.Account.Address.CountryCode out of the patch"
                    .into(),
            )
        }
        _ => None,
    }
}

/// The output an update would have answered for a record it leaves as it is (a `patch` that
/// changes nothing sends nothing): the update's output members, from the Get's `answer` and
/// the update `request`.
pub fn unchanged_output(spec: &UpdateSpec, request: &Value, answer: &Value) -> Value {
    let m = model();
    let output = m
        .operation(spec.update)
        .and_then(|o| o.output)
        .expect("update operations have an output");
    let mut out = match project(output, answer) {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    if spec.update == "UpdateEngagementContext" {
        for (to, from) in [
            ("EngagementId", "Id"),
            ("EngagementArn", "Arn"),
            ("EngagementLastModifiedAt", "ModifiedAt"),
        ] {
            if let Some(v) = answer.get(from) {
                out.insert(to.into(), v.clone());
            }
        }
        if let Some(v) = request.get("ContextIdentifier") {
            out.insert("ContextId".into(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ShapeKind;
    use serde_json::json;

    /// A value for every member of `shape`, to `depth` levels: strings "x", numbers 1, lists
    /// of one item. Not valid against patterns: the point is the members.
    fn full(shape: ShapeId, depth: u32) -> Value {
        let m = model();
        match &m.shape(shape).kind {
            ShapeKind::Structure { members, .. } if depth > 0 => Value::Object(
                members
                    .iter()
                    .map(|mm| (mm.name.clone(), full(mm.shape, depth - 1)))
                    .collect(),
            ),
            ShapeKind::Structure { .. } => json!({}),
            ShapeKind::List { member, .. } => json!([full(*member, depth.saturating_sub(1))]),
            ShapeKind::Map { value, .. } => json!({"k": full(*value, depth.saturating_sub(1))}),
            ShapeKind::Integer { .. } | ShapeKind::Long | ShapeKind::Double => json!(1),
            ShapeKind::Boolean => json!(true),
            _ => json!("x"),
        }
    }

    /// Every member of `v` is a member of `shape`, at every level.
    fn fits(shape: ShapeId, v: &Value, path: &str) -> Result<(), String> {
        let m = model();
        match (&m.shape(shape).kind, v) {
            (ShapeKind::Structure { .. }, Value::Object(o)) => {
                for (k, x) in o {
                    let mm = m
                        .shape(shape)
                        .member(k)
                        .ok_or_else(|| format!("{path}.{k} is not in the update's shape"))?;
                    fits(mm.shape, x, &format!("{path}.{k}"))?;
                }
                Ok(())
            }
            (ShapeKind::List { member, .. }, Value::Array(items)) => {
                items.iter().try_for_each(|i| fits(*member, i, path))
            }
            _ => Ok(()),
        }
    }

    #[test]
    fn every_whole_record_update_of_the_model_has_a_spec_that_fits_the_model() {
        let m = model();
        // the model's Update… operations that carry a version member replace a whole record
        let mut versioned: Vec<&str> = m
            .operations()
            .iter()
            .filter(|o| o.name.starts_with("Update"))
            .filter(|o| {
                o.input
                    .map(|i| {
                        m.shape(i).members().iter().any(|mm| {
                            mm.name == "LastModifiedDate" || mm.name.ends_with("LastModifiedAt")
                        })
                    })
                    .unwrap_or(false)
            })
            .map(|o| o.name.as_str())
            .collect();
        versioned.sort_unstable();
        let mut specs: Vec<&str> = UPDATES.iter().map(|u| u.update).collect();
        specs.sort_unstable();
        assert_eq!(versioned, specs);
        for u in UPDATES {
            let upd = m.operation(u.update).unwrap().input.unwrap();
            let get = m.operation(u.get).unwrap();
            assert!(
                m.shape(upd).member(u.identifier.0).is_some(),
                "{}",
                u.update
            );
            assert!(m.shape(upd).member(u.version.0).is_some(), "{}", u.update);
            assert!(
                m.shape(get.input.unwrap()).member(u.identifier.1).is_some(),
                "{}",
                u.get
            );
            let out = get.output.unwrap();
            assert!(m.shape(out).member(u.version.1).is_some(), "{}", u.get);
            if let Some((list, pick)) = u.nested {
                assert!(m.shape(out).member(list).is_some(), "{}", u.get);
                assert!(m.shape(upd).member(pick).is_some(), "{}", u.update);
            }
            // a full answer maps to a request whose every member is the update's, and which
            // carries the identifier and the version
            let mut answer = full(out, 8);
            let mut req = json!({u.identifier.0: "id-from-request", "Catalog": "Sandbox"});
            if let Some((list, pick)) = u.nested {
                answer[list][0]["Id"] = json!("1");
                req[pick] = json!("1");
            }
            let base = base_request(u, &req, &answer).unwrap();
            fits(upd, &base, u.update).unwrap();
            assert_eq!(base[u.identifier.0], "id-from-request");
            assert_eq!(base[u.version.0], answer[u.version.1]);
            assert!(base.as_object().unwrap().len() > 3, "{base}");
        }
    }

    #[test]
    fn an_opportunity_maps_with_its_shared_members_and_read_only_ones_dropped() {
        let u = spec("UpdateOpportunity").unwrap();
        let answer = json!({
            "Id": "O1", "Arn": "arn:o1", "Catalog": "Sandbox",
            "LastModifiedDate": "2026-12-01T00:00:00.000Z", "CreatedDate": "2026-11-01T00:00:00.000Z",
            "RelatedEntityIdentifiers": {"Solutions": ["S-1"]},
            "LifeCycle": {"Stage": "Prospect", "ReviewStatus": "Pending Submission", "NextSteps": "call"},
            "Customer": {"Account": {"CompanyName": "Acme"}},
            "OpportunityTeam": [{"Email": "a@example.com"}]
        });
        let base = base_request(
            u,
            &json!({"Identifier": "O1", "Catalog": "Sandbox"}),
            &answer,
        )
        .unwrap();
        assert_eq!(
            base,
            json!({
                "Catalog": "Sandbox", "Identifier": "O1",
                "LastModifiedDate": "2026-12-01T00:00:00.000Z",
                "LifeCycle": {"Stage": "Prospect", "ReviewStatus": "Pending Submission", "NextSteps": "call"},
                "Customer": {"Account": {"CompanyName": "Acme"}}
            })
        );
    }

    #[test]
    fn a_context_is_picked_by_its_id_and_takes_the_engagements_version() {
        let u = spec("UpdateEngagementContext").unwrap();
        let answer = json!({
            "Id": "eng-1", "ModifiedAt": "2026-12-01T00:00:00.000Z",
            "Contexts": [
                {"Id": "1", "Type": "CustomerProject", "Payload": {"CustomerProject": {"Project": {"Title": "A"}}}},
                {"Id": "2", "Type": "Lead", "Payload": {"Lead": {"Customer": {"CompanyName": "Acme"},
                    "Interactions": [{"SourceType": "Event"}]}}}
            ]
        });
        let req = json!({"EngagementIdentifier": "eng-1", "ContextIdentifier": "2"});
        let base = base_request(u, &req, &answer).unwrap();
        assert_eq!(base["ContextIdentifier"], "2");
        assert_eq!(base["EngagementIdentifier"], "eng-1");
        assert_eq!(base["EngagementLastModifiedAt"], "2026-12-01T00:00:00.000Z");
        assert_eq!(base["Type"], "Lead");
        // the stored list of interactions is not a member of the update's Lead
        assert_eq!(
            base["Payload"],
            json!({"Lead": {"Customer": {"CompanyName": "Acme"}}})
        );
        let missing = json!({"EngagementIdentifier": "eng-1", "ContextIdentifier": "9"});
        assert!(matches!(
            base_request(u, &missing, &answer),
            Err(BaseError::NotFound(_))
        ));
    }

    #[test]
    fn review_locks_follow_the_documented_statuses() {
        let u = spec("UpdateOpportunity").unwrap();
        let at = |status: &str| json!({"LifeCycle": {"ReviewStatus": status}});
        let stage = ["LifeCycle.Stage"];
        for s in ["Submitted", "In review"] {
            let why = review_lock(u, &at(s), &stage).expect(s);
            assert!(why.contains(s), "{why}");
            // review self-service members alone are not locked
            assert_eq!(review_lock(u, &at(s), &["LifeCycle.ReviewStatus"]), None);
        }
        for s in ["Pending Submission", "Rejected", "Approved", ""] {
            assert_eq!(review_lock(u, &at(s), &stage), None, "{s}");
        }
        // Action Required: only the listed members
        let ar = at("Action Required");
        assert_eq!(review_lock(u, &ar, &["LifeCycle.TargetCloseDate"]), None);
        let why = review_lock(u, &ar, &["LifeCycle.TargetCloseDate", "Project.Title"]).unwrap();
        assert!(why.contains("not Project.Title"), "{why}");
        // Approved: the customer's country is frozen, the rest is not
        let country = ["Customer.Account.Address.CountryCode"];
        assert!(review_lock(u, &at("Approved"), &country).is_some());
        assert_eq!(
            review_lock(u, &at("Approved"), &["Customer.Account.Address.City"]),
            None
        );
        // engagement contexts have no review
        let c = spec("UpdateEngagementContext").unwrap();
        assert_eq!(review_lock(c, &at("Submitted"), &stage), None);
    }

    #[test]
    fn the_output_of_an_update_not_sent_fits_the_updates_output_shape() {
        let m = model();
        for u in UPDATES {
            let op = m.operation(u.update).unwrap();
            let get = m.operation(u.get).unwrap();
            let answer = full(get.output.unwrap(), 3);
            let request = match u.nested {
                Some(_) => json!({"EngagementIdentifier": "eng-1", "ContextIdentifier": "1"}),
                None => json!({"Identifier": "O1"}),
            };
            let out = unchanged_output(u, &request, &answer);
            fits(op.output.unwrap(), &out, u.update).unwrap();
            let out = out.as_object().unwrap();
            // every required output member is there
            for member in m.shape(op.output.unwrap()).members() {
                if member.required {
                    assert!(
                        out.contains_key(&member.name),
                        "{}: {} missing",
                        u.update,
                        member.name
                    );
                }
            }
        }
    }
}
