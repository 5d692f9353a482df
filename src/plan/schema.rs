//! The JSON Schema of playbooks (`cosell schema`, committed as `schemas/playbook.schema.json`),
//! generated from the playbook key tables and the API model: each step's `input` is the schema
//! of its action's request, with member names, enums, patterns and lengths, so an editor with
//! the YAML language server completes them. Every value also accepts a template string.

use crate::model::{self, ShapeId, ShapeKind};
use crate::playbook::{self, ACTIONS, CATALOGS};
use serde_json::{json, Map, Value as J};
use std::collections::BTreeMap;

fn props(keys: &[(&str, &str)], mut make: impl FnMut(&str, &str) -> J) -> Map<String, J> {
    keys.iter()
        .map(|(k, d)| (k.to_string(), make(k, d)))
        .collect()
}

fn desc(v: J, d: &str) -> J {
    let mut v = v;
    if let Some(o) = v.as_object_mut() {
        o.insert("description".into(), J::String(d.to_string()));
    }
    v
}

/// `anyOf` the given schema or a template string.
fn or_template(v: J) -> J {
    json!({"anyOf": [v, {"$ref": "#/definitions/template"}]})
}

fn shape_schema(id: ShapeId, defs: &mut BTreeMap<String, J>, top_level: bool) -> J {
    let m = model::model();
    let s = m.shape(id);
    match &s.kind {
        ShapeKind::Structure { members, union, .. } => {
            let name = s.name.clone();
            if !defs.contains_key(&name) {
                defs.insert(name.clone(), J::Null); // recursion guard
                let mut properties = Map::new();
                let mut required = Vec::new();
                for mm in members {
                    properties.insert(mm.name.clone(), shape_schema(mm.shape, defs, false));
                    let filled = top_level && (mm.name == "Catalog" || mm.idempotency_token);
                    if mm.required && !filled {
                        required.push(J::String(mm.name.clone()));
                    }
                }
                let mut o = json!({"type": "object", "additionalProperties": false, "properties": properties});
                if !required.is_empty() {
                    o["required"] = J::Array(required);
                }
                if *union {
                    o["minProperties"] = json!(1);
                    o["maxProperties"] = json!(1);
                    o["description"] =
                        json!(format!("{}: a union, set exactly one member", s.name));
                }
                defs.insert(name.clone(), o);
            }
            json!({"$ref": format!("#/definitions/{name}")})
        }
        ShapeKind::String {
            enum_values,
            pattern,
            min,
            max,
        } => {
            let mut o = json!({"type": "string"});
            if let Some(e) = enum_values {
                o["enum"] = json!(e);
            }
            let (mut min, mut max) = (*min, *max);
            if let Some(p) = pattern {
                match length_only(&p.source) {
                    // `(?s).{a,b}` has no ECMA-262 spelling: it is a length
                    Some((a, b)) => {
                        min = Some(min.map_or(a, |m| m.max(a)));
                        max = Some(max.map_or(b, |m| m.min(b)));
                    }
                    None => o["pattern"] = json!(format!("^(?:{})$", p.source)),
                }
            }
            if let Some(n) = min.filter(|n| *n > 0) {
                o["minLength"] = json!(n);
            }
            if let Some(n) = max {
                o["maxLength"] = json!(n);
            }
            if o.as_object().is_some_and(|m| m.len() == 1) {
                return o; // any string
            }
            or_template(o)
        }
        ShapeKind::List { member, min, max } => {
            let mut o = json!({"type": "array", "items": shape_schema(*member, defs, false)});
            if let Some(n) = min {
                o["minItems"] = json!(n);
            }
            if let Some(n) = max {
                o["maxItems"] = json!(n);
            }
            or_template(o)
        }
        ShapeKind::Map { value, .. } => or_template(
            json!({"type": "object", "additionalProperties": shape_schema(*value, defs, false)}),
        ),
        ShapeKind::Integer { min, max } => {
            let mut o = json!({"type": "integer"});
            if let Some(n) = min {
                o["minimum"] = json!(n);
            }
            if let Some(n) = max {
                o["maximum"] = json!(n);
            }
            or_template(o)
        }
        ShapeKind::Long => or_template(json!({"type": "integer"})),
        ShapeKind::Double => or_template(json!({"type": "number"})),
        ShapeKind::Boolean => or_template(json!({"type": "boolean"})),
        ShapeKind::Timestamp => json!({"type": "string", "description": "ISO 8601 timestamp"}),
        ShapeKind::Blob => json!({"type": "string", "description": "base64"}),
    }
}

/// `.{a,b}` or `(?s).{a,b}` as (a, b).
fn length_only(source: &str) -> Option<(u64, u64)> {
    let rest = source.strip_prefix("(?s)").unwrap_or(source);
    let (a, b) = rest
        .strip_prefix(".{")?
        .strip_suffix('}')?
        .split_once(',')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The playbook schema.
pub fn generate() -> J {
    let m = model::model();
    let mut defs: BTreeMap<String, J> = BTreeMap::new();
    let mut branches = Vec::new();
    for a in ACTIONS.iter() {
        let Some(op) = m.operation(a) else { continue };
        let input = match op.input {
            Some(i) => shape_schema(i, &mut defs, true),
            None => json!({"type": "object"}),
        };
        let out_shape = model::ops::waiter(a).and_then(|w| w.output_shape());
        let mut out_members: Vec<String> = op
            .output
            .map(|o| {
                m.shape(o)
                    .members()
                    .iter()
                    .map(|mm| mm.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(s) = out_shape {
            for mm in m.shape(s).members() {
                if !out_members.contains(&mm.name) {
                    out_members.push(mm.name.clone());
                }
            }
        }
        let expect_props: Map<String, J> =
            out_members.into_iter().map(|n| (n, json!({}))).collect();
        branches.push(json!({
            "if": {"properties": {"action": {"const": a}}, "required": ["action"]},
            "then": {"properties": {
                "input": input,
                "expect": {"type": "object", "properties": expect_props},
            }}
        }));
    }
    let wait_actions: Vec<&str> = model::ops::asynchronous().collect();
    let paged_actions: Vec<&str> = model::ops::operations()
        .iter()
        .filter(|o| o.paginator.is_some())
        .map(|o| o.name)
        .collect();
    let step = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "action"],
        "properties": props(playbook::STEP_KEYS, |k, d| desc(match k {
            "id" => json!({"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,39}$"}),
            "action" => json!({"enum": *ACTIONS}),
            "description" => json!({"type": "string"}),
            "input" => json!({"type": "object"}),
            "when" => json!({"type": ["string", "boolean"]}),
            "paginate" => json!({"type": "boolean"}),
            "max_items" => json!({"type": "integer", "minimum": 1}),
            "expect" => json!({"type": "object"}),
            "wait" => json!({"anyOf": [
                {"type": "boolean"},
                {"type": "object", "additionalProperties": false, "properties": props(playbook::WAIT_KEYS, |_, d| desc(json!({"$ref": "#/definitions/duration"}), d))}
            ]}),
            _ => json!({}),
        }, d)),
        "allOf": branches.into_iter().chain([json!({
            "if": {"required": ["wait"]},
            "then": {"properties": {"action": {"enum": wait_actions}}}
        }), json!({
            "if": {"required": ["paginate"]},
            "then": {"properties": {"action": {"enum": paged_actions}}}
        }), json!({
            "if": {"required": ["max_items"]},
            "then": {"required": ["paginate"]}
        })]).collect::<Vec<_>>(),
    });
    let rate = json!({"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string", "pattern": "^\\s*[0-9.]+\\s*(/\\s*(s|sec|second|m|min|minute|h|hour|d|day))?\\s*$"}]});
    let class_names: Vec<&str> = model::QuotaClass::ALL.iter().map(|c| c.name()).collect();
    let mut rate_props: Map<String, J> = class_names
        .iter()
        .map(|c| (c.to_string(), rate.clone()))
        .collect();
    for a in ACTIONS.iter() {
        rate_props.insert(a.to_string(), rate.clone());
    }
    let daily_props: Map<String, J> = class_names
        .iter()
        .map(|c| (c.to_string(), json!({"type": "integer", "minimum": 1})))
        .collect();
    let mut definitions: Map<String, J> = Map::new();
    definitions.insert("template".into(), json!({"type": "string", "pattern": "\\{\\{|\\{%", "description": "A minijinja template: {{ row.column }}, {{ vars.name }}, {{ setup.id.Member }}, {{ steps.id.Member }}"}));
    definitions.insert("duration".into(), json!({"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^\\s*[0-9.]+\\s*(ms|s|m|h|d)?\\s*$"}]}));
    definitions.insert("step".into(), step);
    for (k, v) in defs {
        definitions.insert(k, v);
    }
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://github.com/cosell/cosell/schemas/playbook.schema.json",
        "title": "cosell playbook, version 1",
        "description": "Generated by `cosell schema`; do not edit.",
        "type": "object",
        "additionalProperties": false,
        "required": ["version", "name", "catalog", "steps"],
        "properties": props(playbook::TOP_KEYS, |k, d| desc(match k {
            "version" => json!({"const": playbook::VERSION}),
            "name" => json!({"type": "string", "pattern": "^[a-z0-9-]{1,40}$"}),
            "description" => json!({"type": "string"}),
            "catalog" => json!({"enum": CATALOGS}),
            "input" => {
                let listable: Vec<&str> = crate::model::ops::operations()
                    .iter()
                    .filter(|o| o.paginator.is_some())
                    .map(|o| o.name)
                    .collect();
                json!({"type": "object", "additionalProperties": false, "properties": props(playbook::INPUT_KEYS, |k, d| desc(match k {
                    "list" => json!({"type": "object", "additionalProperties": false, "required": ["action"], "properties": props(playbook::LIST_KEYS, |k, d| desc(match k {
                        "action" => json!({"enum": listable}),
                        _ => json!({"type": "object"}),
                    }, d))}),
                    _ => json!({"type": "string"}),
                }, d))})
            }
            "vars" => json!({"type": "object"}),
            "limits" => json!({"type": "object", "additionalProperties": false, "properties": props(playbook::LIMITS_KEYS, |k, d| desc(match k {
                "concurrency" => json!({"type": "integer", "minimum": 1, "maximum": 1024}),
                "rates" => json!({"type": "object", "additionalProperties": false, "properties": rate_props.clone()}),
                "daily" => json!({"type": "object", "additionalProperties": false, "properties": daily_props.clone()}),
                "max_failures" => json!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^\\s*[0-9.]+\\s*%?\\s*$"}]}),
                _ => json!({}),
            }, d))}),
            "setup" | "steps" => json!({"type": "array", "items": {"$ref": "#/definitions/step"}}),
            "ledger" => json!({"type": "object", "additionalProperties": false, "properties": {"columns": {"type": "object", "additionalProperties": {"type": "string"}}}}),
            "emulate" => {
                let fixture = json!({"type": "object", "additionalProperties": false, "properties": {
                    "account": {"type": ["string", "integer"], "description": "The rehearsal's partner account (default: the one --emulate calls as)."},
                    "company_names": {"type": "object", "additionalProperties": {"type": "string"}},
                    "invitations": {"type": "array", "items": {"type": "object", "required": ["Id"]}, "description": "As GetEngagementInvitation outputs them; only Id is required."},
                    "opportunities": {"type": "array", "items": {"type": "object", "required": ["Id"]}, "description": "As GetOpportunity outputs them; only Id is required."},
                    "engagements": {"type": "array", "items": {"type": "object", "required": ["Id"]}, "description": "As GetEngagement outputs them; only Id is required."},
                }});
                json!({"type": "object", "additionalProperties": false, "properties": props(playbook::EMULATE_KEYS, |k, d| desc(match k {
                    "task_delay" => json!({"type": ["string", "integer"]}),
                    _ => fixture.clone(),
                }, d))})
            }
            _ => json!({}),
        }, d)),
        "definitions": definitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_gets_its_request_schema() {
        let s = generate();
        let branches = s["definitions"]["step"]["allOf"].as_array().unwrap();
        assert_eq!(branches.len(), ACTIONS.len() + 3);
        let inv = &s["definitions"]["CreateEngagementInvitationRequest"];
        assert_eq!(inv["type"], "object");
        // filled in by cosell: not required in the playbook
        let req: Vec<&str> = inv["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            !req.contains(&"ClientToken") && !req.contains(&"Catalog"),
            "{req:?}"
        );
        assert!(req.contains(&"Invitation"));
    }
}
