//! The generic request validator: any JSON value against any shape, to any depth.
//!
//! The walk keeps the member path as a stack of borrowed segments and formats it only when a
//! violation is found, so a valid request costs no allocation beyond the result vector.

use super::{nearest, Model, ShapeId, ShapeKind};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;

/// A string value that starts with this prefix stands for a value only known at run time (an
/// earlier step's output). The validator checks its type but not its content.
pub const DEFERRED_PREFIX: &str = "\u{1}deferred:";

/// The validation error codes of the API (`ValidationExceptionErrorCode`) that the model's
/// constraints can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    RequiredFieldMissing,
    InvalidEnumValue,
    InvalidStringFormat,
    InvalidValue,
    NotEnoughValues,
    TooManyValues,
    ValueOutOfRange,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::RequiredFieldMissing => "REQUIRED_FIELD_MISSING",
            ErrorCode::InvalidEnumValue => "INVALID_ENUM_VALUE",
            ErrorCode::InvalidStringFormat => "INVALID_STRING_FORMAT",
            ErrorCode::InvalidValue => "INVALID_VALUE",
            ErrorCode::NotEnoughValues => "NOT_ENOUGH_VALUES",
            ErrorCode::TooManyValues => "TOO_MANY_VALUES",
            ErrorCode::ValueOutOfRange => "VALUE_OUT_OF_RANGE",
        }
    }
}

/// One broken rule, at one member path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// Member path from the request root: `Invitation.Receiver.Account.AwsAccountId`,
    /// `Invitation.Payload.OpportunityInvitation.SenderContacts[0].Email`.
    pub path: String,
    pub code: ErrorCode,
    /// What is wrong, in words (never echoes a value of a `sensitive` shape).
    pub message: String,
    /// For enums and unknown members: the nearest allowed value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<&'static str>,
}

#[derive(Clone, Copy)]
enum Seg<'v> {
    Member(&'v str),
    Index(usize),
    Key(&'v str),
}

struct Walker<'v, 'o> {
    model: &'static Model,
    path: Vec<Seg<'v>>,
    out: &'o mut Vec<Violation>,
}

impl Model {
    /// Validate `value` as the input of `operation`. Unknown operations yield one violation
    /// at the root.
    pub fn validate_input(&'static self, operation: &str, value: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        match self.operation(operation).and_then(|o| o.input) {
            Some(input) => self.validate_shape(input, value, &mut out),
            None => out.push(Violation {
                path: String::new(),
                code: ErrorCode::InvalidValue,
                message: format!("unknown operation {operation}"),
                suggestion: self.nearest_operation(operation).map(|s| {
                    // names live as long as the model
                    let s: &'static str = self
                        .operations()
                        .iter()
                        .find(|o| o.name == s)
                        .map(|o| o.name.as_str())
                        .unwrap_or("");
                    s
                }),
            }),
        }
        out
    }

    /// Validate `value` against the shape `shape`, appending violations to `out`.
    pub fn validate_shape(&'static self, shape: ShapeId, value: &Value, out: &mut Vec<Violation>) {
        let mut w = Walker {
            model: self,
            path: Vec::with_capacity(8),
            out,
        };
        w.walk(shape, value);
    }
}

fn fmt_path(path: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Member(m) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(m);
            }
            Seg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
            Seg::Key(k) => {
                let _ = write!(s, "[{k:?}]");
            }
        }
    }
    s
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn list_preview(values: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut s = values
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if values.len() > SHOWN {
        let _ = write!(s, ", … ({} values)", values.len());
    }
    s
}

impl<'v> Walker<'v, '_> {
    fn report(&mut self, code: ErrorCode, message: String, suggestion: Option<&'static str>) {
        self.out.push(Violation {
            path: fmt_path(&self.path),
            code,
            message,
            suggestion,
        });
    }

    fn walk(&mut self, id: ShapeId, value: &'v Value) {
        let model = self.model;
        let shape = model.shape(id);
        let sensitive = shape.sensitive;
        match &shape.kind {
            ShapeKind::Structure { members, union, .. } => {
                let Value::Object(obj) = value else {
                    return self.type_error(shape.json_type(), value);
                };
                let mut set = 0usize;
                for m in members {
                    match obj.get(m.name.as_str()) {
                        None | Some(Value::Null) => {
                            if m.required {
                                self.path.push(Seg::Member(&m.name));
                                self.report(
                                    ErrorCode::RequiredFieldMissing,
                                    format!(
                                        "required member {} is missing ({})",
                                        m.name,
                                        model.shape(m.shape).json_type()
                                    ),
                                    None,
                                );
                                self.path.pop();
                            }
                        }
                        Some(v) => {
                            set += 1;
                            self.path.push(Seg::Member(&m.name));
                            self.walk(m.shape, v);
                            self.path.pop();
                        }
                    }
                }
                if set < obj.len() {
                    for (k, v) in obj {
                        if v.is_null() || shape.member(k).is_some() {
                            continue;
                        }
                        let suggestion = nearest(k, members.iter().map(|m| m.name.as_str()));
                        self.path.push(Seg::Member(k));
                        let names = members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>();
                        self.report(
                            ErrorCode::InvalidValue,
                            format!(
                                "unknown member {k} of {}; allowed: {}",
                                shape.name,
                                names.join(", ")
                            ),
                            suggestion,
                        );
                        self.path.pop();
                    }
                }
                if *union && set != 1 {
                    let names = members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>();
                    self.report(
                        ErrorCode::InvalidValue,
                        format!(
                            "{} is a union: set exactly one of {} (found {set})",
                            shape.name,
                            names.join(", ")
                        ),
                        None,
                    );
                }
            }
            ShapeKind::String {
                enum_values,
                pattern,
                min,
                max,
            } => {
                let Value::String(s) = value else {
                    return self.type_error("string", value);
                };
                if s.starts_with(DEFERRED_PREFIX) {
                    return;
                }
                if let Some(allowed) = enum_values {
                    if !allowed.iter().any(|a| a == s) {
                        let suggestion = nearest(s, allowed.iter().map(String::as_str));
                        let shown = if sensitive {
                            "value".to_string()
                        } else {
                            format!("{s:?}")
                        };
                        self.report(
                            ErrorCode::InvalidEnumValue,
                            format!("{shown} is not one of {}", list_preview(allowed)),
                            suggestion,
                        );
                    }
                    return;
                }
                if min.is_some() || max.is_some() {
                    let n = s.chars().count() as u64;
                    if let Some(lo) = min.filter(|lo| n < *lo) {
                        return self.report(
                            ErrorCode::InvalidStringFormat,
                            format!("is {n} characters long; at least {lo} required"),
                            None,
                        );
                    }
                    if let Some(hi) = max.filter(|hi| n > *hi) {
                        return self.report(
                            ErrorCode::InvalidStringFormat,
                            format!("is {n} characters long; at most {hi} allowed"),
                            None,
                        );
                    }
                }
                if let Some(p) = pattern {
                    if !p.is_match(s) {
                        let shown = if sensitive {
                            "value".to_string()
                        } else {
                            format!("{s:?}")
                        };
                        self.report(
                            ErrorCode::InvalidStringFormat,
                            format!("{shown} does not match the pattern {}", p.source),
                            None,
                        );
                    }
                }
            }
            ShapeKind::List { member, min, max } => {
                let Value::Array(items) = value else {
                    return self.type_error("list", value);
                };
                let n = items.len() as u64;
                if let Some(lo) = min.filter(|lo| n < *lo) {
                    self.report(
                        ErrorCode::NotEnoughValues,
                        format!("has {n} items; at least {lo} required"),
                        None,
                    );
                }
                if let Some(hi) = max.filter(|hi| n > *hi) {
                    self.report(
                        ErrorCode::TooManyValues,
                        format!("has {n} items; at most {hi} allowed"),
                        None,
                    );
                }
                for (i, item) in items.iter().enumerate() {
                    self.path.push(Seg::Index(i));
                    self.walk(*member, item);
                    self.path.pop();
                }
            }
            ShapeKind::Map {
                key,
                value: vshape,
                min,
                max,
            } => {
                let Value::Object(obj) = value else {
                    return self.type_error("map", value);
                };
                let n = obj.len() as u64;
                if let Some(lo) = min.filter(|lo| n < *lo) {
                    self.report(
                        ErrorCode::NotEnoughValues,
                        format!("has {n} entries; at least {lo} required"),
                        None,
                    );
                }
                if let Some(hi) = max.filter(|hi| n > *hi) {
                    self.report(
                        ErrorCode::TooManyValues,
                        format!("has {n} entries; at most {hi} allowed"),
                        None,
                    );
                }
                for (k, v) in obj {
                    self.path.push(Seg::Key(k));
                    let kv = Value::String(k.clone());
                    // keys are validated against the key shape; a fresh value is cheap here
                    let mut sub = Vec::new();
                    self.model.validate_shape(*key, &kv, &mut sub);
                    for mut s in sub {
                        s.path = fmt_path(&self.path);
                        self.out.push(s);
                    }
                    self.walk(*vshape, v);
                    self.path.pop();
                }
            }
            ShapeKind::Integer { min, max } => {
                let Some(n) = value.as_i64() else {
                    if let Value::String(s) = value {
                        if s.starts_with(DEFERRED_PREFIX) {
                            return;
                        }
                    }
                    return self.type_error("integer", value);
                };
                if let Some(lo) = min.filter(|lo| n < *lo) {
                    self.report(
                        ErrorCode::ValueOutOfRange,
                        format!("{n} is below the minimum {lo}"),
                        None,
                    );
                } else if let Some(hi) = max.filter(|hi| n > *hi) {
                    self.report(
                        ErrorCode::ValueOutOfRange,
                        format!("{n} is above the maximum {hi}"),
                        None,
                    );
                }
            }
            ShapeKind::Long => {
                if value.as_i64().is_none() && !is_deferred(value) {
                    self.type_error("integer", value)
                }
            }
            ShapeKind::Double => {
                if !value.is_number() && !is_deferred(value) {
                    self.type_error("number", value)
                }
            }
            ShapeKind::Boolean => {
                if !value.is_boolean() && !is_deferred(value) {
                    self.type_error("boolean", value)
                }
            }
            ShapeKind::Timestamp => match value {
                Value::Number(_) => {}
                Value::String(s) if s.starts_with(DEFERRED_PREFIX) => {}
                Value::String(s) => {
                    if chrono::DateTime::parse_from_rfc3339(s).is_err() {
                        self.report(
                            ErrorCode::InvalidStringFormat,
                            format!(
                                "{s:?} is not an ISO 8601 timestamp such as 2026-12-31T00:00:00Z"
                            ),
                            None,
                        )
                    }
                }
                other => self.type_error("timestamp", other),
            },
            ShapeKind::Blob => {
                if !value.is_string() {
                    self.type_error("base64 string", value)
                }
            }
        }
    }

    fn type_error(&mut self, expected: &str, got: &Value) {
        self.report(
            ErrorCode::InvalidValue,
            format!("expected {expected}, found {}", json_kind(got)),
            None,
        );
    }
}

fn is_deferred(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.starts_with(DEFERRED_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::model;
    use serde_json::json;

    fn valid_invitation() -> Value {
        json!({
            "Catalog": "Sandbox",
            "ClientToken": "tok-1",
            "EngagementIdentifier": "eng-abcdefghij1234",
            "Invitation": {
                "Message": "Join us",
                "Receiver": {"Account": {"AwsAccountId": "123456789012"}},
                "Payload": {"OpportunityInvitation": {
                    "ReceiverResponsibilities": ["Distributor"],
                    "Customer": {"CompanyName": "Acme", "CountryCode": "US", "Industry": "Aerospace", "WebsiteUrl": "https://acme.example.com"},
                    "Project": {"BusinessProblem": "They need a much better data platform for analytics", "Title": "Data platform", "TargetCompletionDate": "2027-01-31", "ExpectedCustomerSpend": [{"Amount": "1000", "CurrencyCode": "USD", "Frequency": "Monthly", "TargetCompany": "AWS"}]}
                }}
            }
        })
    }

    fn codes(op: &str, v: &Value) -> Vec<(String, &'static str)> {
        model()
            .validate_input(op, v)
            .into_iter()
            .map(|v| (v.path, v.code.as_str()))
            .collect()
    }

    #[test]
    fn a_valid_invitation_has_no_violations() {
        let v = model().validate_input("CreateEngagementInvitation", &valid_invitation());
        assert!(v.is_empty(), "{v:#?}");
    }

    #[test]
    fn each_rule_reports_its_code_and_path() {
        let mut v = valid_invitation();
        v["Catalog"] = json!("Sand box");
        v["Invitation"]["Payload"]["OpportunityInvitation"]["Customer"]["CountryCode"] =
            json!("XX");
        v["Invitation"]["Receiver"]["Account"]["AwsAccountId"] = json!("1234567890123");
        v["Invitation"].as_object_mut().unwrap().remove("Message");
        v["Invitation"]["Payload"]["LeadInvitation"] = json!({});
        let got = codes("CreateEngagementInvitation", &v);
        let want = [
            ("Catalog", "INVALID_STRING_FORMAT"),
            ("Invitation.Message", "REQUIRED_FIELD_MISSING"),
            (
                "Invitation.Receiver.Account.AwsAccountId",
                "INVALID_STRING_FORMAT",
            ),
            (
                "Invitation.Payload.OpportunityInvitation.Customer.CountryCode",
                "INVALID_ENUM_VALUE",
            ),
            ("Invitation.Payload", "INVALID_VALUE"),
        ];
        for (p, c) in want {
            assert!(
                got.iter().any(|(gp, gc)| gp == p && *gc == c),
                "missing {p} {c} in {got:#?}"
            );
        }
    }

    #[test]
    fn enum_violation_suggests_the_nearest_value_and_hides_sensitive_values() {
        let mut v = valid_invitation();
        v["Invitation"]["Payload"]["OpportunityInvitation"]["ReceiverResponsibilities"] =
            json!(["Distributer"]);
        v["Invitation"]["Payload"]["OpportunityInvitation"]["Customer"]["CountryCode"] =
            json!("Uss");
        let got = model().validate_input("CreateEngagementInvitation", &v);
        let rr = got
            .iter()
            .find(|x| x.path.ends_with("ReceiverResponsibilities[0]"))
            .unwrap();
        assert_eq!(rr.suggestion, Some("Distributor"));
        assert!(rr.message.contains("\"Distributer\""), "{got:#?}");
        let cc = got
            .iter()
            .find(|x| x.path.ends_with("CountryCode"))
            .unwrap();
        assert!(
            !cc.message.contains("Uss"),
            "sensitive value echoed: {}",
            cc.message
        );
    }

    #[test]
    fn unknown_members_and_wrong_types_are_reported() {
        let mut v = valid_invitation();
        v["Invitation"]["Mesage"] = json!("x");
        v["EngagementIdentifier"] = json!(5);
        let got = model().validate_input("CreateEngagementInvitation", &v);
        let unknown = got.iter().find(|x| x.path == "Invitation.Mesage").unwrap();
        assert_eq!(unknown.suggestion, Some("Message"));
        assert!(got
            .iter()
            .any(|x| x.path == "EngagementIdentifier"
                && x.message == "expected string, found a number"));
    }

    #[test]
    fn list_items_carry_their_index() {
        let mut v = valid_invitation();
        v["Invitation"]["Payload"]["OpportunityInvitation"]["Project"]["ExpectedCustomerSpend"]
            [0]["CurrencyCode"] = json!("usd");
        let got = codes("CreateEngagementInvitation", &v);
        assert_eq!(
            got,
            vec![(
                "Invitation.Payload.OpportunityInvitation.Project.ExpectedCustomerSpend[0].CurrencyCode".to_string(),
                "INVALID_ENUM_VALUE"
            )]
        );
    }

    #[test]
    fn integer_ranges_and_deferred_values() {
        let v = json!({"Catalog": "AWS", "MaxResults": 0, "TaskIdentifier": []});
        let got = codes("ListEngagementByAcceptingInvitationTasks", &v);
        assert!(
            got.contains(&("MaxResults".to_string(), "VALUE_OUT_OF_RANGE")),
            "{got:?}"
        );
        assert!(
            got.contains(&("TaskIdentifier".to_string(), "NOT_ENOUGH_VALUES")),
            "{got:?}"
        );
        let d =
            json!({"Catalog": "AWS", "Identifier": format!("{DEFERRED_PREFIX}steps.invite.Id")});
        assert!(codes("GetEngagementInvitation", &d).is_empty());
    }
}
