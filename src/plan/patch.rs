//! The merge of a `patch` into a record's update request: what a spreadsheet row says should
//! change, on top of everything else the record holds.
//!
//! Rules (the rendered patch over the base request of [`crate::model::update::base_request`]):
//! - maps merge, member by member, at every depth;
//! - a list replaces the list it lands on (its items are the new items; a CRM export holds
//!   the whole list, not a diff);
//! - an explicit `null` removes the member (the update then sends it absent: cleared);
//! - a member the patch does not have is left as it is; a template that renders empty (an
//!   empty cell) leaves no member in the rendered patch, so an empty cell leaves the record's
//!   value alone, and so does an empty string;
//! - a scalar replaces what is there; a map over a scalar (or over nothing) becomes that map,
//!   its `null`s and empties dropped, when it sets anything: a patch map that only removes or
//!   leaves members creates nothing and replaces nothing.
//!
//! Pure: JSON in, JSON out. [`changes`] lists what a merge changed, member by member (an empty
//! list means the update would change nothing, so none need be sent). [`prepare`] is the whole
//! decision a `patch` step makes on the record it read, shared by `cosell run` (the engine
//! sends what it decides) and `cosell plan --live` (which only shows it).

use crate::model::update::{self, UpdateSpec};
use serde_json::{Map, Value};

/// `patch` merged into `base` by the rules above.
pub fn merge(base: &Value, patch: &Value) -> Value {
    match patch {
        Value::Object(p) => {
            let mut out = match base {
                Value::Object(b) => b.clone(),
                _ => Map::new(),
            };
            for (k, pv) in p {
                match pv {
                    Value::Null => {
                        out.remove(k);
                    }
                    Value::String(s) if s.is_empty() => {}
                    Value::Object(_) => {
                        let had_map = out.get(k).is_some_and(Value::is_object);
                        let merged = merge(out.get(k).unwrap_or(&Value::Null), pv);
                        // a patch map that sets nothing creates nothing and replaces nothing
                        if had_map || merged.as_object().is_some_and(|m| !m.is_empty()) {
                            out.insert(k.clone(), merged);
                        }
                    }
                    _ => {
                        out.insert(k.clone(), pv.clone());
                    }
                }
            }
            Value::Object(out)
        }
        Value::String(s) if s.is_empty() => base.clone(),
        p => p.clone(),
    }
}

/// One member a merge changed: its dotted path, the value before (None: absent) and after.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// The members that differ between `before` and `after`, as leaves: maps are compared member
/// by member; a list or scalar that differs is one change. Sorted by path.
pub fn changes(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    diff(before, after, &mut String::new(), &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn diff(a: &Value, b: &Value, path: &mut String, out: &mut Vec<Change>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff(p, q, path, out),
                    (p, q) => out.push(Change {
                        path: path.clone(),
                        before: p.cloned(),
                        after: q.cloned(),
                    }),
                }
                path.truncate(len);
            }
        }
        (p, q) if p != q => out.push(Change {
            path: path.clone(),
            before: Some(p.clone()),
            after: Some(q.clone()),
        }),
        _ => {}
    }
}

/// What a `patch` step does with the record its Get returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// The merged request equals the record: nothing is sent. `output` stands in for the
    /// update's answer ([`update::unchanged_output`]).
    Unchanged { output: Value },
    /// Send `request` (the whole record, the patch merged in, the version read).
    Write {
        request: Value,
        changes: Vec<Change>,
    },
    /// The record's review status refuses these changes: nothing is sent.
    Locked {
        changes: Vec<Change>,
        reason: String,
    },
    /// The nested record (an engagement's context) is not in the answer.
    NotFound(String),
    /// The merged request breaks the model (a value from the record itself, or what the
    /// patch made of it): `path: message` per violation, and the first violation's code.
    Invalid { code: String, message: String },
}

/// The row error code of a record locked by its review status.
pub const LOCKED: &str = "RECORD_LOCKED";

/// Decide a patch step on the record read: `request` is the rendered input (the identifiers),
/// `patch` the rendered patch and `answer` the Get's output.
pub fn prepare(spec: &UpdateSpec, request: &Value, patch: &Value, answer: &Value) -> Prepared {
    let base = match update::base_request(spec, request, answer) {
        Ok(b) => b,
        Err(update::BaseError::NotFound(why)) => return Prepared::NotFound(why),
    };
    let merged = merge(&base, patch);
    let changes = changes(&base, &merged);
    if changes.is_empty() {
        return Prepared::Unchanged {
            output: update::unchanged_output(spec, request, answer),
        };
    }
    let record = match spec.nested {
        None => answer.clone(),
        Some(_) => Value::Null,
    };
    let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    if let Some(reason) = update::review_lock(spec, &record, &paths) {
        return Prepared::Locked { changes, reason };
    }
    let violations = crate::model::model().validate_input(spec.update, &merged);
    if let Some(first) = violations.first() {
        return Prepared::Invalid {
            code: first.code.as_str().to_string(),
            message: violations
                .iter()
                .map(|v| format!("{}: {}", v.path, v.message))
                .collect::<Vec<_>>()
                .join("; "),
        };
    }
    Prepared::Write {
        request: merged,
        changes,
    }
}

/// A value as the ledger shows it: strings bare, absent as `(none)`, anything else as JSON.
fn show(v: &Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => "(none)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `LifeCycle.Stage: Qualified → Committed`, one per change, `; `-separated.
pub fn describe(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| format!("{}: {} → {}", c.path, show(&c.before), show(&c.after)))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn the_rules_by_example() {
        let base = json!({
            "Identifier": "O1",
            "LifeCycle": {"Stage": "Prospect", "NextSteps": "call", "TargetCloseDate": "2027-01-31"},
            "Project": {"DeliveryModels": ["SaaS or PaaS", "Managed Services"], "Title": "T"},
            "Marketing": {"Source": "None"}
        });
        let patch = json!({
            "LifeCycle": {"Stage": "Qualified", "NextSteps": ""},
            "Project": {"DeliveryModels": ["Professional Services"]},
            "Marketing": null
        });
        let merged = merge(&base, &patch);
        assert_eq!(
            merged,
            json!({
                "Identifier": "O1",
                "LifeCycle": {"Stage": "Qualified", "NextSteps": "call", "TargetCloseDate": "2027-01-31"},
                "Project": {"DeliveryModels": ["Professional Services"], "Title": "T"}
            })
        );
        let c = changes(&base, &merged);
        let paths: Vec<&str> = c.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            ["LifeCycle.Stage", "Marketing", "Project.DeliveryModels"]
        );
        assert_eq!(c[0].before, Some(json!("Prospect")));
        assert_eq!(c[0].after, Some(json!("Qualified")));
        assert_eq!(c[1].after, None);
        // a patch of what is already there changes nothing
        assert!(changes(
            &base,
            &merge(&base, &json!({"LifeCycle": {"Stage": "Prospect"}}))
        )
        .is_empty());
        // a map over nothing: its nulls and empties dropped
        assert_eq!(
            merge(&json!({}), &json!({"A": {"B": 1, "C": null, "D": ""}})),
            json!({"A": {"B": 1}})
        );
    }

    #[test]
    fn prepare_decides_write_unchanged_locked_invalid_and_not_found() {
        let u = update::spec("UpdateOpportunity").unwrap();
        let answer = |review: &str| {
            json!({
                "Id": "O1", "Catalog": "Sandbox", "Arn": "arn:x",
                "LastModifiedDate": "2026-12-01T00:00:00.000Z", "CreatedDate": "2026-11-01T00:00:00.000Z",
                "Project": {"Title": "T"},
                "LifeCycle": {"Stage": "Prospect", "ReviewStatus": review},
            })
        };
        let req = json!({"Identifier": "O1", "Catalog": "Sandbox"});
        let to = |stage: &str| json!({"LifeCycle": {"Stage": stage}});
        match prepare(u, &req, &to("Qualified"), &answer("Pending Submission")) {
            Prepared::Write { request, changes } => {
                // the whole record, the version read, read-only members dropped
                assert_eq!(request["LastModifiedDate"], "2026-12-01T00:00:00.000Z");
                assert_eq!(request["Project"]["Title"], "T");
                assert_eq!(request["LifeCycle"]["Stage"], "Qualified");
                assert!(request.get("Arn").is_none() && request.get("CreatedDate").is_none());
                assert_eq!(describe(&changes), "LifeCycle.Stage: Prospect → Qualified");
            }
            other => panic!("{other:?}"),
        }
        match prepare(u, &req, &to("Prospect"), &answer("Pending Submission")) {
            Prepared::Unchanged { output } => {
                assert_eq!(output["Id"], "O1");
                assert_eq!(output["LastModifiedDate"], "2026-12-01T00:00:00.000Z");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            prepare(u, &req, &to("Qualified"), &answer("Submitted")),
            Prepared::Locked { .. }
        ));
        // an unchanged record under review is not a failure: nothing would be sent
        assert!(matches!(
            prepare(u, &req, &to("Prospect"), &answer("Submitted")),
            Prepared::Unchanged { .. }
        ));
        match prepare(u, &req, &to("Someday"), &answer("Pending Submission")) {
            Prepared::Invalid { code, message } => {
                assert_eq!(code, "INVALID_ENUM_VALUE");
                assert!(message.contains("LifeCycle.Stage"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let c = update::spec("UpdateEngagementContext").unwrap();
        let ctx_req = json!({"EngagementIdentifier": "eng-1", "ContextIdentifier": "9"});
        assert!(matches!(
            prepare(
                c,
                &ctx_req,
                &json!({}),
                &json!({"Id": "eng-1", "Contexts": []})
            ),
            Prepared::NotFound(_)
        ));
    }

    /// The oracle: flatten to leaf paths, apply the patch's leaves, rebuild. Lists and
    /// scalars are leaves; a patch leaf of null deletes the path and everything under it; an
    /// empty string is no leaf at all.
    fn flatten(v: &Value, prefix: Vec<String>, out: &mut BTreeMap<Vec<String>, Value>) {
        match v {
            Value::Object(o) if !o.is_empty() => {
                for (k, x) in o {
                    let mut p = prefix.clone();
                    p.push(k.clone());
                    flatten(x, p, out);
                }
            }
            Value::Object(_) => {
                out.insert(prefix, json!({}));
            }
            other => {
                out.insert(prefix, other.clone());
            }
        }
    }

    fn oracle(base: &Value, patch: &Value) -> Value {
        let mut leaves = BTreeMap::new();
        flatten(base, vec![], &mut leaves);
        let mut p = BTreeMap::new();
        flatten(patch, vec![], &mut p);
        for (path, v) in p {
            match v {
                Value::String(s) if s.is_empty() => {}
                // an empty patch map sets nothing
                Value::Object(e) if e.is_empty() => {}
                Value::Null => {
                    let parent = &path[..path.len() - 1];
                    let parent_was_map = !parent.is_empty()
                        && leaves.iter().any(|(k, x)| {
                            k.starts_with(parent) && (k.len() > parent.len() || x.is_object())
                        });
                    leaves.retain(|k, _| !k.starts_with(&path));
                    if parent_was_map && !leaves.keys().any(|k| k.starts_with(parent)) {
                        leaves.insert(parent.to_vec(), json!({}));
                    }
                }
                v => {
                    // a leaf replaces the subtree under it, and any leaf (scalar, or empty
                    // map) above it
                    leaves.retain(|k, _| !k.starts_with(&path) && !path.starts_with(k));
                    leaves.insert(path, v);
                }
            }
        }
        let mut root = json!({});
        for (path, v) in leaves {
            let mut at = &mut root;
            for seg in &path[..path.len().saturating_sub(1)] {
                at = at
                    .as_object_mut()
                    .unwrap()
                    .entry(seg.clone())
                    .or_insert_with(|| json!({}));
            }
            match path.last() {
                Some(last) => {
                    at.as_object_mut().unwrap().insert(last.clone(), v);
                }
                None => root = v,
            }
        }
        root
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            Just(json!("")),
            "[a-c]{1,2}".prop_map(Value::String),
            (0i64..3).prop_map(|n| json!(n)),
            prop::collection::vec("[a-c]".prop_map(Value::String), 0..3).prop_map(Value::Array),
        ]
    }

    fn tree() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 3, |inner| {
            prop::collection::btree_map("[a-c]", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    /// A record as a Get returns it: maps of non-null values, no empty strings.
    fn record() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            "[a-c]{1,2}".prop_map(Value::String),
            (0i64..3).prop_map(|n| json!(n)),
            prop::collection::vec("[a-c]".prop_map(Value::String), 0..3).prop_map(Value::Array),
        ];
        leaf.prop_recursive(3, 24, 3, |inner| {
            prop::collection::btree_map("[a-c]", inner, 1..3)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
        .prop_map(|v| match v {
            Value::Object(_) => v,
            other => json!({"a": other}),
        })
    }

    fn patch() -> impl Strategy<Value = Value> {
        tree().prop_map(|v| match v {
            Value::Object(_) => v,
            other => json!({"b": other}),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn merge_agrees_with_the_leaf_oracle(base in record(), p in patch()) {
            prop_assert_eq!(merge(&base, &p), oracle(&base, &p));
        }

        #[test]
        fn merging_twice_is_merging_once(base in record(), p in patch()) {
            let once = merge(&base, &p);
            prop_assert_eq!(merge(&once, &p), once.clone());
            // and what the second merge changes is nothing
            prop_assert!(changes(&once, &merge(&once, &p)).is_empty());
        }

        #[test]
        fn the_changes_rebuild_the_merge(base in record(), p in patch()) {
            let after = merge(&base, &p);
            let mut rebuilt = base.clone();
            for c in changes(&base, &after) {
                let segs: Vec<&str> = c.path.split('.').collect();
                let mut at = &mut rebuilt;
                for s in &segs[..segs.len() - 1] {
                    at = at.as_object_mut().unwrap().entry(s.to_string()).or_insert_with(|| json!({}));
                    if !at.is_object() { *at = json!({}); }
                }
                let o = at.as_object_mut().unwrap();
                match c.after {
                    Some(v) => { o.insert(segs[segs.len() - 1].to_string(), v); }
                    None => { o.remove(segs[segs.len() - 1]); }
                }
            }
            prop_assert_eq!(rebuilt, after);
        }
    }
}
