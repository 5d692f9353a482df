//! Effect checks for the writes that carry no idempotency token: how cosell tells, after a
//! retry or a resume meets the effect of its own earlier attempt, that the effect is already in
//! place, and from a real conflict.
//!
//! Fourteen mutating operations have no ClientToken (`behaviours.md`, Idempotency). When an
//! attempt of such a write may have landed without cosell seeing the answer (a connection
//! dropped or a 5xx after sending, or a kill while the call was on the wire), the next attempt
//! can be refused because the first one worked: an association that already exists, an
//! invitation no longer PENDING because this run accepted it, a stale `LastModifiedDate` because
//! this run's update changed it. For each operation this table names the read that tells and
//! how its answer is judged:
//! - the write's own answer decides when it succeeds (a repeated Tag, Untag, Put or Assign);
//! - otherwise the read decides: the effect in place ⇒ the step succeeds, the journal records
//!   `EffectChecked … in_place` and the ledger says so; the effect absent ⇒ the write's own
//!   error stands (someone else changed the state: a real conflict) and the row fails with it.
//!
//! The check runs only after an attempt whose outcome cosell does not know; a first attempt's
//! refusal is always the service's answer. Pure: requests and answers in, verdicts out.

use serde_json::{json, Map, Value};

/// How one write's effect is checked.
#[derive(Debug)]
pub struct EffectCheck {
    /// The read that tells (a `Get…`/`List…` of the same resource).
    pub read: &'static str,
    /// The read request for the write request.
    pub read_request: fn(&Value) -> Value,
    /// The verdict on the read's answer (or the read's error code).
    pub judge: fn(&Value, Result<&Value, &str>) -> Verdict,
    /// What "in place" means, for messages and README.
    pub in_place: &'static str,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The effect is there: the step's output (the write's output shape, from the read).
    InPlace(Value),
    /// It is not: why, in a sentence.
    Absent(String),
}

fn s<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn catalog(req: &Value) -> Value {
    req.get("Catalog").cloned().unwrap_or(Value::Null)
}

/// `want` is contained in `have`: maps compare the members `want` has (the service may add
/// members of its own), lists element by element, scalars by value. Strings compare also
/// as numbers, so "10000.0" and "10000" agree.
pub fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| contains(hv, wv)) || wv.is_null()),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(a, b)| contains(a, b))
        }
        (Value::String(a), Value::String(b)) if a != b => {
            matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
        }
        (a, b) => a == b,
    }
}

fn invitation_request(req: &Value) -> Value {
    json!({"Catalog": catalog(req), "Identifier": req["Identifier"]})
}

fn invitation_is(want: &str, read: Result<&Value, &str>) -> Verdict {
    match read {
        Ok(inv) if s(inv, "Status") == want => Verdict::InPlace(json!({})),
        Ok(inv) => Verdict::Absent(format!(
            "the invitation is {}, not {want}",
            s(inv, "Status")
        )),
        Err(code) => Verdict::Absent(format!("the invitation could not be read ({code})")),
    }
}

fn judge_accepted(_: &Value, read: Result<&Value, &str>) -> Verdict {
    invitation_is("ACCEPTED", read)
}

fn judge_rejected(_: &Value, read: Result<&Value, &str>) -> Verdict {
    invitation_is("REJECTED", read)
}

fn opportunity_request(req: &Value) -> Value {
    let id = req
        .get("OpportunityIdentifier")
        .or_else(|| req.get("Identifier"))
        .cloned()
        .unwrap_or(Value::Null);
    json!({"Catalog": catalog(req), "Identifier": id})
}

fn associated(req: &Value, opp: &Value) -> bool {
    let (kind, id) = (
        s(req, "RelatedEntityType"),
        s(req, "RelatedEntityIdentifier"),
    );
    opp.get("RelatedEntityIdentifiers")
        .and_then(|r| r.get(kind))
        .and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|v| v.as_str() == Some(id)))
}

fn judge_associate(req: &Value, read: Result<&Value, &str>) -> Verdict {
    match read {
        Ok(opp) if associated(req, opp) => Verdict::InPlace(json!({})),
        Ok(_) => Verdict::Absent(format!(
            "{} {} is not associated with the opportunity",
            s(req, "RelatedEntityType"),
            s(req, "RelatedEntityIdentifier")
        )),
        Err(code) => Verdict::Absent(format!("the opportunity could not be read ({code})")),
    }
}

fn judge_disassociate(req: &Value, read: Result<&Value, &str>) -> Verdict {
    match read {
        Ok(opp) if !associated(req, opp) => Verdict::InPlace(json!({})),
        Ok(_) => Verdict::Absent(format!(
            "{} {} is still associated with the opportunity",
            s(req, "RelatedEntityType"),
            s(req, "RelatedEntityIdentifier")
        )),
        Err(code) => Verdict::Absent(format!("the opportunity could not be read ({code})")),
    }
}

fn judge_assign(req: &Value, read: Result<&Value, &str>) -> Verdict {
    let email = req
        .get("Assignee")
        .map(|a| s(a, "Email"))
        .unwrap_or("")
        .to_ascii_lowercase();
    match read {
        Ok(opp) => {
            let team = opp.get("OpportunityTeam").and_then(Value::as_array);
            if team.is_some_and(|t| {
                t.iter()
                    .any(|c| s(c, "Email").to_ascii_lowercase() == email)
            }) {
                Verdict::InPlace(json!({}))
            } else {
                Verdict::Absent(format!("{email} is not on the opportunity's team"))
            }
        }
        Err(code) => Verdict::Absent(format!("the opportunity could not be read ({code})")),
    }
}

/// Review statuses an opportunity reaches by a submission (and keeps until AWS decides).
const SUBMITTED: &[&str] = &["Submitted", "In review", "Approved"];

fn judge_submit(_: &Value, read: Result<&Value, &str>) -> Verdict {
    match read {
        Ok(opp) => {
            let status = opp
                .get("LifeCycle")
                .map(|l| s(l, "ReviewStatus"))
                .unwrap_or("");
            if SUBMITTED.contains(&status) {
                Verdict::InPlace(json!({}))
            } else {
                Verdict::Absent(format!("the opportunity's review status is {status:?}"))
            }
        }
        Err(code) => Verdict::Absent(format!("the opportunity could not be read ({code})")),
    }
}

/// Members of an update request that name the record or its version, not its content.
const UPDATE_KEYS: &[&str] = &[
    "Catalog",
    "Identifier",
    "LastModifiedDate",
    "EngagementIdentifier",
    "ContextIdentifier",
    "EngagementLastModifiedAt",
];

fn content(req: &Value) -> Value {
    let mut m = req.as_object().cloned().unwrap_or_default();
    m.retain(|k, _| !UPDATE_KEYS.contains(&k.as_str()));
    Value::Object(m)
}

fn judge_update_opportunity(req: &Value, read: Result<&Value, &str>) -> Verdict {
    match read {
        Ok(opp) if contains(opp, &content(req)) => Verdict::InPlace(json!({
            "Id": opp.get("Id").cloned().unwrap_or(Value::Null),
            "LastModifiedDate": opp.get("LastModifiedDate").cloned().unwrap_or(Value::Null),
        })),
        Ok(opp) => Verdict::Absent(format!(
            "the opportunity was changed by someone else since {} (now {})",
            s(req, "LastModifiedDate"),
            s(opp, "LastModifiedDate")
        )),
        Err(code) => Verdict::Absent(format!("the opportunity could not be read ({code})")),
    }
}

fn engagement_request(req: &Value) -> Value {
    json!({"Catalog": catalog(req), "Identifier": req["EngagementIdentifier"]})
}

/// The stored context payload holds what an update sent. A `Lead` update carries one
/// `Interaction` that the service adds to the stored `Interactions` list (the update shape has
/// no list): it is in place when the list has it.
fn context_holds(stored: &Value, sent: &Value) -> bool {
    let mut sent = sent.clone();
    let interaction = sent
        .get_mut("Lead")
        .and_then(Value::as_object_mut)
        .and_then(|l| l.remove("Interaction"));
    if let Some(i) = interaction {
        let listed = stored
            .pointer("/Lead/Interactions")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|have| contains(have, &i)));
        if !listed {
            return false;
        }
    }
    contains(stored, &sent)
}

fn judge_update_context(req: &Value, read: Result<&Value, &str>) -> Verdict {
    let id = s(req, "ContextIdentifier");
    match read {
        Ok(e) => {
            let ctx = e
                .get("Contexts")
                .and_then(Value::as_array)
                .and_then(|l| l.iter().find(|c| s(c, "Id") == id));
            let want = req.get("Payload").cloned().unwrap_or(Value::Null);
            match ctx {
                Some(c) if c.get("Payload").is_some_and(|p| context_holds(p, &want)) => {
                    Verdict::InPlace(json!({
                        "EngagementId": e.get("Id").cloned().unwrap_or(Value::Null),
                        "EngagementArn": e.get("Arn").cloned().unwrap_or(Value::Null),
                        "EngagementLastModifiedAt":
                            e.get("ModifiedAt").cloned().unwrap_or(Value::Null),
                        "ContextId": id,
                    }))
                }
                Some(_) => Verdict::Absent(format!(
                    "context {id} was changed by someone else since {}",
                    s(req, "EngagementLastModifiedAt")
                )),
                None => Verdict::Absent(format!("the engagement has no context {id}")),
            }
        }
        Err(code) => Verdict::Absent(format!("the engagement could not be read ({code})")),
    }
}

fn tags_request(req: &Value) -> Value {
    json!({"ResourceArn": req["ResourceArn"]})
}

fn tag_map(read: &Value) -> Map<String, Value> {
    read.get("Tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            (
                s(t, "Key").to_string(),
                t.get("Value").cloned().unwrap_or_default(),
            )
        })
        .collect()
}

fn judge_tag(req: &Value, read: Result<&Value, &str>) -> Verdict {
    match read {
        Ok(r) => {
            let have = tag_map(r);
            let missing: Vec<&str> = req
                .get("Tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|t| have.get(s(t, "Key")) != t.get("Value"))
                .map(|t| s(t, "Key"))
                .collect();
            if missing.is_empty() {
                Verdict::InPlace(json!({}))
            } else {
                Verdict::Absent(format!("tags not in place: {}", missing.join(", ")))
            }
        }
        Err(code) => Verdict::Absent(format!("the tags could not be read ({code})")),
    }
}

fn judge_untag(req: &Value, read: Result<&Value, &str>) -> Verdict {
    match read {
        Ok(r) => {
            let have = tag_map(r);
            let left: Vec<&str> = req
                .get("TagKeys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|k| have.contains_key(*k))
                .collect();
            if left.is_empty() {
                Verdict::InPlace(json!({}))
            } else {
                Verdict::Absent(format!("tags still present: {}", left.join(", ")))
            }
        }
        Err(code) => Verdict::Absent(format!("the tags could not be read ({code})")),
    }
}

fn job_request(req: &Value) -> Value {
    json!({"Catalog": catalog(req),
           "ResourceSnapshotJobIdentifier": req["ResourceSnapshotJobIdentifier"]})
}

fn job_is(want: &str, read: Result<&Value, &str>) -> Verdict {
    match read {
        Ok(j) if s(j, "Status") == want => Verdict::InPlace(json!({})),
        Ok(j) => Verdict::Absent(format!("the job is {}, not {want}", s(j, "Status"))),
        Err(code) => Verdict::Absent(format!("the job could not be read ({code})")),
    }
}

fn judge_running(_: &Value, read: Result<&Value, &str>) -> Verdict {
    job_is("Running", read)
}

fn judge_stopped(_: &Value, read: Result<&Value, &str>) -> Verdict {
    job_is("Stopped", read)
}

fn judge_delete_job(_: &Value, read: Result<&Value, &str>) -> Verdict {
    match read {
        Err("ResourceNotFoundException") => Verdict::InPlace(json!({})),
        Ok(j) => Verdict::Absent(format!("the job still exists ({})", s(j, "Status"))),
        Err(code) => Verdict::Absent(format!("the job could not be read ({code})")),
    }
}

fn settings_request(req: &Value) -> Value {
    json!({"Catalog": catalog(req)})
}

fn judge_settings(req: &Value, read: Result<&Value, &str>) -> Verdict {
    let want = s(req, "ResourceSnapshotJobRoleIdentifier");
    match read {
        Ok(r) => {
            let arn = s(r, "ResourceSnapshotJobRoleArn");
            // the identifier is a role name or its ARN
            if !want.is_empty() && (arn == want || arn.ends_with(&format!("/{want}"))) {
                Verdict::InPlace(r.clone())
            } else {
                Verdict::Absent(format!("the role is {arn:?}, not {want:?}"))
            }
        }
        Err(code) => Verdict::Absent(format!("the settings could not be read ({code})")),
    }
}

/// The check of each write without a token, by operation name.
pub const CHECKS: &[(&str, EffectCheck)] = &[
    (
        "AcceptEngagementInvitation",
        EffectCheck {
            read: "GetEngagementInvitation",
            read_request: invitation_request,
            judge: judge_accepted,
            in_place: "the invitation is ACCEPTED",
        },
    ),
    (
        "RejectEngagementInvitation",
        EffectCheck {
            read: "GetEngagementInvitation",
            read_request: invitation_request,
            judge: judge_rejected,
            in_place: "the invitation is REJECTED",
        },
    ),
    (
        "AssociateOpportunity",
        EffectCheck {
            read: "GetOpportunity",
            read_request: opportunity_request,
            judge: judge_associate,
            in_place: "the entity is among the opportunity's RelatedEntityIdentifiers",
        },
    ),
    (
        "DisassociateOpportunity",
        EffectCheck {
            read: "GetOpportunity",
            read_request: opportunity_request,
            judge: judge_disassociate,
            in_place: "the entity is no longer among the opportunity's RelatedEntityIdentifiers",
        },
    ),
    (
        "AssignOpportunity",
        EffectCheck {
            read: "GetOpportunity",
            read_request: opportunity_request,
            judge: judge_assign,
            in_place: "the assignee is on the OpportunityTeam",
        },
    ),
    (
        "SubmitOpportunity",
        EffectCheck {
            read: "GetOpportunity",
            read_request: opportunity_request,
            judge: judge_submit,
            in_place: "the review status is Submitted, In review or Approved",
        },
    ),
    (
        "UpdateOpportunity",
        EffectCheck {
            read: "GetOpportunity",
            read_request: opportunity_request,
            judge: judge_update_opportunity,
            in_place: "the record holds every member the update sent",
        },
    ),
    (
        "UpdateEngagementContext",
        EffectCheck {
            read: "GetEngagement",
            read_request: engagement_request,
            judge: judge_update_context,
            in_place: "the context's payload holds every member the update sent",
        },
    ),
    (
        "TagResource",
        EffectCheck {
            read: "ListTagsForResource",
            read_request: tags_request,
            judge: judge_tag,
            in_place: "every tag has the value sent",
        },
    ),
    (
        "UntagResource",
        EffectCheck {
            read: "ListTagsForResource",
            read_request: tags_request,
            judge: judge_untag,
            in_place: "no key sent is left",
        },
    ),
    (
        "StartResourceSnapshotJob",
        EffectCheck {
            read: "GetResourceSnapshotJob",
            read_request: job_request,
            judge: judge_running,
            in_place: "the job is Running",
        },
    ),
    (
        "StopResourceSnapshotJob",
        EffectCheck {
            read: "GetResourceSnapshotJob",
            read_request: job_request,
            judge: judge_stopped,
            in_place: "the job is Stopped",
        },
    ),
    (
        "DeleteResourceSnapshotJob",
        EffectCheck {
            read: "GetResourceSnapshotJob",
            read_request: job_request,
            judge: judge_delete_job,
            in_place: "the job is gone (ResourceNotFoundException)",
        },
    ),
    (
        "PutSellingSystemSettings",
        EffectCheck {
            read: "GetSellingSystemSettings",
            read_request: settings_request,
            judge: judge_settings,
            in_place: "the settings name the role sent",
        },
    ),
];

/// The check of `op`, if it is a write without a token.
pub fn check(op: &str) -> Option<&'static EffectCheck> {
    CHECKS.iter().find(|(n, _)| *n == op).map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{model, ops};

    /// A valid request of each write, as a playbook would send it.
    fn sample(op: &str) -> Value {
        let opp = "O1234567890";
        match op {
            "AcceptEngagementInvitation" => {
                json!({"Catalog": "AWS", "Identifier": "engi-0123456789abc"})
            }
            "RejectEngagementInvitation" => {
                json!({"Catalog": "AWS", "Identifier": "engi-0123456789abc"})
            }
            "AssociateOpportunity" | "DisassociateOpportunity" => json!({"Catalog": "AWS",
                "OpportunityIdentifier": opp, "RelatedEntityType": "Solutions",
                "RelatedEntityIdentifier": "S-0000001"}),
            "AssignOpportunity" => json!({"Catalog": "AWS", "Identifier": opp, "Assignee": {
                "Email": "a@example.com", "FirstName": "A", "LastName": "B", "BusinessTitle": "PartnerAccountManager"}}),
            "SubmitOpportunity" => {
                json!({"Catalog": "AWS", "Identifier": opp, "InvolvementType": "Co-Sell"})
            }
            "UpdateOpportunity" => json!({"Catalog": "AWS", "Identifier": opp,
                "LastModifiedDate": "2026-01-01T00:00:00Z", "LifeCycle": {"Stage": "Qualified"}}),
            "UpdateEngagementContext" => {
                json!({"Catalog": "AWS", "EngagementIdentifier": "eng-0123456789abcd",
                "ContextIdentifier": "1", "EngagementLastModifiedAt": "2026-01-01T00:00:00Z",
                "Type": "CustomerProject", "Payload": {"CustomerProject": {"Project": {"Title": "Data platform",
                "BusinessProblem": "The customer needs a data platform for analytics.",
                "TargetCompletionDate": "2026-12-31"}}}})
            }
            "TagResource" => {
                json!({"ResourceArn": "arn:aws:partnercentral:us-east-1:123456789012:catalog/AWS/opportunity/O1234567890",
                "Tags": [{"Key": "k", "Value": "v"}]})
            }
            "UntagResource" => {
                json!({"ResourceArn": "arn:aws:partnercentral:us-east-1:123456789012:catalog/AWS/opportunity/O1234567890",
                "TagKeys": ["k"]})
            }
            "StartResourceSnapshotJob"
            | "StopResourceSnapshotJob"
            | "DeleteResourceSnapshotJob" => {
                json!({"Catalog": "AWS", "ResourceSnapshotJobIdentifier": "job-0123456789abc"})
            }
            "PutSellingSystemSettings" => {
                json!({"Catalog": "AWS", "ResourceSnapshotJobRoleIdentifier": "SnapshotRole"})
            }
            other => panic!("no sample for {other}"),
        }
    }

    #[test]
    fn every_write_without_a_token_has_a_check_whose_read_is_a_valid_request() {
        let unprotected: Vec<&str> = ops::operations()
            .iter()
            .filter(|r| r.mutates && r.idempotency_member.is_none())
            .map(|r| r.name)
            .collect();
        assert_eq!(unprotected.len(), CHECKS.len());
        for op in unprotected {
            let c = check(op).unwrap_or_else(|| panic!("{op} has no effect check"));
            assert!(!ops::operation(c.read).unwrap().mutates, "{op}: {}", c.read);
            let req = sample(op);
            let v = model().validate_input(op, &req);
            assert!(v.is_empty(), "{op} sample: {v:?}");
            let read = (c.read_request)(&req);
            let v = model().validate_input(c.read, &read);
            assert!(v.is_empty(), "{op} → {}: {v:?}", c.read);
        }
        for (op, _) in CHECKS {
            let r = ops::operation(op).unwrap();
            assert!(r.mutates && r.idempotency_member.is_none(), "{op}");
        }
    }

    #[test]
    fn in_place_outputs_are_of_the_write_output_shape() {
        let m = model();
        let cases = [
            (
                "UpdateOpportunity",
                json!({"Id": "O1", "LastModifiedDate": "2026-01-02T00:00:00Z",
                       "LifeCycle": {"Stage": "Qualified", "ReviewStatus": "Pending Submission"}}),
            ),
            (
                "UpdateEngagementContext",
                json!({"Id": "eng-1", "Arn": "arn", "ModifiedAt": "2026-01-02T00:00:00Z",
                       "Contexts": [{"Id": "1", "Type": "CustomerProject",
                         "Payload": sample("UpdateEngagementContext")["Payload"]}]}),
            ),
            (
                "PutSellingSystemSettings",
                json!({"Catalog": "AWS",
                       "ResourceSnapshotJobRoleArn": "arn:aws:iam::123456789012:role/SnapshotRole"}),
            ),
        ];
        for (op, read) in cases {
            let c = check(op).unwrap();
            let Verdict::InPlace(out) = (c.judge)(&sample(op), Ok(&read)) else {
                panic!("{op} not in place");
            };
            let shape = m.shape(m.operation(op).unwrap().output.unwrap());
            for k in out.as_object().unwrap().keys() {
                assert!(shape.member(k).is_some(), "{op} output {k}");
            }
        }
    }

    #[test]
    fn verdicts_tell_our_effect_from_someone_elses() {
        let assoc = check("AssociateOpportunity").unwrap();
        let req = sample("AssociateOpportunity");
        let with = json!({"RelatedEntityIdentifiers": {"Solutions": ["S-0000001"]}});
        let other = json!({"RelatedEntityIdentifiers": {"Solutions": ["S-0000002"]}});
        assert_eq!((assoc.judge)(&req, Ok(&with)), Verdict::InPlace(json!({})));
        assert!(matches!(
            (assoc.judge)(&req, Ok(&other)),
            Verdict::Absent(_)
        ));
        let dis = check("DisassociateOpportunity").unwrap();
        assert!(matches!((dis.judge)(&req, Ok(&with)), Verdict::Absent(_)));
        assert!(matches!((dis.judge)(&req, Ok(&other)), Verdict::InPlace(_)));

        let acc = check("AcceptEngagementInvitation").unwrap();
        let req = sample("AcceptEngagementInvitation");
        assert!(matches!(
            (acc.judge)(&req, Ok(&json!({"Status": "ACCEPTED"}))),
            Verdict::InPlace(_)
        ));
        let Verdict::Absent(why) = (acc.judge)(&req, Ok(&json!({"Status": "REJECTED"}))) else {
            panic!()
        };
        assert!(why.contains("REJECTED"), "{why}");
        let rej = check("RejectEngagementInvitation").unwrap();
        assert!(matches!(
            (rej.judge)(&req, Ok(&json!({"Status": "ACCEPTED"}))),
            Verdict::Absent(_)
        ));

        let up = check("UpdateOpportunity").unwrap();
        let req = sample("UpdateOpportunity");
        let ours = json!({"Id": "O1", "LastModifiedDate": "later",
            "LifeCycle": {"Stage": "Qualified", "ReviewStatus": "Pending Submission"}});
        let theirs =
            json!({"Id": "O1", "LastModifiedDate": "later", "LifeCycle": {"Stage": "Committed"}});
        assert!(matches!((up.judge)(&req, Ok(&ours)), Verdict::InPlace(_)));
        assert!(matches!((up.judge)(&req, Ok(&theirs)), Verdict::Absent(_)));

        let del = check("DeleteResourceSnapshotJob").unwrap();
        let req = sample("DeleteResourceSnapshotJob");
        assert!(matches!(
            (del.judge)(&req, Err("ResourceNotFoundException")),
            Verdict::InPlace(_)
        ));
        assert!(matches!(
            (del.judge)(&req, Ok(&json!({"Status": "Stopped"}))),
            Verdict::Absent(_)
        ));
        assert!(matches!(
            (del.judge)(&req, Err("AccessDeniedException")),
            Verdict::Absent(_)
        ));

        let tag = check("TagResource").unwrap();
        let req = sample("TagResource");
        let have = json!({"Tags": [{"Key": "k", "Value": "v"}, {"Key": "x", "Value": "y"}]});
        let changed = json!({"Tags": [{"Key": "k", "Value": "w"}]});
        assert!(matches!((tag.judge)(&req, Ok(&have)), Verdict::InPlace(_)));
        assert!(matches!(
            (tag.judge)(&req, Ok(&changed)),
            Verdict::Absent(_)
        ));
        let untag = check("UntagResource").unwrap();
        let req = sample("UntagResource");
        assert!(matches!((untag.judge)(&req, Ok(&have)), Verdict::Absent(_)));
        assert!(matches!(
            (untag.judge)(&req, Ok(&json!({"Tags": []}))),
            Verdict::InPlace(_)
        ));

        let sub = check("SubmitOpportunity").unwrap();
        let req = sample("SubmitOpportunity");
        let submitted = json!({"LifeCycle": {"ReviewStatus": "Submitted"}});
        let pending = json!({"LifeCycle": {"ReviewStatus": "Pending Submission"}});
        assert!(matches!(
            (sub.judge)(&req, Ok(&submitted)),
            Verdict::InPlace(_)
        ));
        assert!(matches!(
            (sub.judge)(&req, Ok(&pending)),
            Verdict::Absent(_)
        ));

        let put = check("PutSellingSystemSettings").unwrap();
        let req = sample("PutSellingSystemSettings");
        let other = json!({"ResourceSnapshotJobRoleArn": "arn:aws:iam::1:role/Other"});
        assert!(matches!((put.judge)(&req, Ok(&other)), Verdict::Absent(_)));
    }

    #[test]
    fn a_lead_update_is_in_place_when_its_interaction_is_listed() {
        let sent = json!({"Lead": {"Customer": {"CompanyName": "Acme"},
            "Interaction": {"SourceType": "Event", "ContactBusinessTitle": "CTO"}}});
        let stored = json!({"Lead": {"Customer": {"CompanyName": "Acme", "CountryCode": "US"},
            "Interactions": [{"SourceType": "Web"},
                             {"SourceType": "Event", "ContactBusinessTitle": "CTO"}]}});
        assert!(context_holds(&stored, &sent));
        let without = json!({"Lead": {"Customer": {"CompanyName": "Acme"},
            "Interactions": [{"SourceType": "Web"}]}});
        assert!(!context_holds(&without, &sent));
    }

    #[test]
    fn containment_compares_what_was_sent() {
        assert!(contains(
            &json!({"a": 1, "b": {"c": 2, "d": 3}}),
            &json!({"b": {"c": 2}})
        ));
        assert!(!contains(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!contains(&json!({"l": [1, 2]}), &json!({"l": [1]})));
        assert!(contains(&json!({"x": "10000.0"}), &json!({"x": "10000"})));
        assert!(contains(&json!({}), &json!({"gone": null})));
        assert!(!contains(&json!({}), &json!({"a": 1})));
    }
}
