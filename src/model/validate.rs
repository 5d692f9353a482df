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
    /// cosell's own (only from [`Model::check_request`]): not exactly 12 digits.
    InvalidAccountId,
    /// cosell's own (only from [`Model::check_request`]): an amount as a spreadsheet shows
    /// it (thousands separators, a currency sign, a decimal comma).
    InvalidAmount,
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
            ErrorCode::InvalidAccountId => "INVALID_ACCOUNT_ID",
            ErrorCode::InvalidAmount => "INVALID_AMOUNT",
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
    /// Spreadsheet checks on top of the model's rules (see [`Model::check_request`]).
    strict: bool,
    /// Inside a list that takes account ids or aliases (`AwsAccountIdOrAliasList`).
    alias_ok: bool,
    /// A patch ([`Model::check_patch`]): structures need not hold their required members
    /// (the record has them) but may not remove one with `null`; lists are whole values.
    partial: bool,
}

/// Most characters of a value a message quotes; the rest is counted, not shown.
pub const ECHO_MAX: usize = 200;

/// A value quoted for a message, cut after [`ECHO_MAX`] characters:
/// `"abc…"…(1234 more characters)`. A 200 MB cell is never echoed whole.
pub fn quote(s: &str) -> String {
    match s.char_indices().nth(ECHO_MAX) {
        None => format!("{s:?}"),
        Some((i, _)) => {
            let rest = s[i..].chars().count();
            format!("{:?}…({rest} more characters)", &s[..i])
        }
    }
}

/// The placeholder a hint uses for the template expression reading the offending cell;
/// the dry run replaces it with the real one (`row.aws_account_id`) when it knows the column.
pub const CELL_PLACEHOLDER: &str = "row.<column>";

/// String shapes holding money amounts (all digits with an optional 2-digit decimal part).
const AMOUNT_SHAPES: &[&str] = &["Amount", "MonetaryAmount", "MonetaryValueAmountString"];

impl Model {
    /// Validate `value` as the input of `operation`. Unknown operations yield one violation
    /// at the root.
    pub fn validate_input(&'static self, operation: &str, value: &Value) -> Vec<Violation> {
        self.validate_input_with(operation, value, false)
    }

    /// [`Model::validate_input`] plus the checks for values damaged by spreadsheets, which
    /// the model's own patterns let through or explain poorly: account ids that are not
    /// exactly 12 digits (leading zeros dropped, scientific notation), amounts with thousands
    /// separators, currency signs or decimal commas. cosell's dry run uses this; the emulator
    /// answers as AWS does and uses [`Model::validate_input`].
    pub fn check_request(&'static self, operation: &str, value: &Value) -> Vec<Violation> {
        self.validate_input_with(operation, value, true)
    }

    /// A `patch` (merged over the request's identifying members) checked as
    /// [`Model::check_request`] does, except that it need not hold the members the update
    /// requires (the record read at run time has them): every member it names must exist,
    /// with the right type, enum and pattern; a list is a whole value (its items are checked
    /// in full); `null` (remove) is refused on a required member. Unknown members are
    /// reported even when `null`.
    pub fn check_patch(&'static self, operation: &str, value: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        if let Some(input) = self.operation(operation).and_then(|o| o.input) {
            let mut w = Walker {
                model: self,
                path: Vec::with_capacity(8),
                out: &mut out,
                strict: true,
                alias_ok: false,
                partial: true,
            };
            w.walk(input, value);
        }
        out
    }

    fn validate_input_with(
        &'static self,
        operation: &str,
        value: &Value,
        strict: bool,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        match self.operation(operation).and_then(|o| o.input) {
            Some(input) => {
                let mut w = Walker {
                    model: self,
                    path: Vec::with_capacity(8),
                    out: &mut out,
                    strict,
                    alias_ok: false,
                    partial: false,
                };
                w.walk(input, value);
            }
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
            strict: false,
            alias_ok: false,
            partial: false,
        };
        w.walk(shape, value);
    }

    /// [`Model::validate_shape`] with the spreadsheet checks of [`Model::check_request`].
    pub fn check_shape(&'static self, shape: ShapeId, value: &Value, out: &mut Vec<Violation>) {
        let mut w = Walker {
            model: self,
            path: Vec::with_capacity(8),
            out,
            strict: true,
            alias_ok: false,
            partial: false,
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
                        Some(Value::Null) if self.partial => {
                            if m.required {
                                self.path.push(Seg::Member(&m.name));
                                self.report(
                                    ErrorCode::RequiredFieldMissing,
                                    format!(
                                        "{} is required by the update: null would remove it; \
                                         give a value or leave the member out of the patch",
                                        m.name
                                    ),
                                    None,
                                );
                                self.path.pop();
                            }
                        }
                        None if self.partial => {}
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
                        if (v.is_null() && !self.partial) || shape.member(k).is_some() {
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
                if *union && set != 1 && !(self.partial && set == 0) {
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
                if self.strict && shape.name == "AwsAccount" {
                    if let Some(msg) = account_id_problem(s, self.alias_ok) {
                        return self.report(ErrorCode::InvalidAccountId, msg, None);
                    }
                }
                if self.strict
                    && AMOUNT_SHAPES.contains(&shape.name.as_str())
                    && !pattern.as_ref().is_some_and(|p| p.is_match(s))
                {
                    if let Some(msg) = amount_problem(s) {
                        return self.report(ErrorCode::InvalidAmount, msg, None);
                    }
                }
                if let Some(allowed) = enum_values {
                    if !allowed.iter().any(|a| a == s) {
                        let suggestion = country_code(s)
                            .filter(|_| shape.name == "CountryCode")
                            .and_then(|c| allowed.iter().find(|a| *a == c))
                            .map(String::as_str)
                            .or_else(|| nearest(s, allowed.iter().map(String::as_str)));
                        let shown = if sensitive {
                            "value".to_string()
                        } else {
                            quote(s)
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
                            quote(s)
                        };
                        let mut msg = format!("{shown} does not match the pattern {}", p.source);
                        if p.source == ISO_DATE_PATTERN && !sensitive {
                            if let Some(fix) = date_problem(s) {
                                msg = format!("{shown} {fix}");
                            }
                        }
                        self.report(ErrorCode::InvalidStringFormat, msg, None);
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
                let outer = (self.alias_ok, self.partial);
                self.alias_ok = shape.name == "AwsAccountIdOrAliasList";
                // a list in a patch replaces the record's: its items are whole values
                self.partial = false;
                for (i, item) in items.iter().enumerate() {
                    self.path.push(Seg::Index(i));
                    self.walk(*member, item);
                    self.path.pop();
                }
                (self.alias_ok, self.partial) = outer;
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
                    if self.strict {
                        self.model.check_shape(*key, &kv, &mut sub);
                    } else {
                        self.model.validate_shape(*key, &kv, &mut sub);
                    }
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
                                "{} is not an ISO 8601 timestamp such as 2026-12-31T00:00:00Z",
                                quote(s)
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

/// Why `s` is not an AWS account id (exactly 12 digits), in words with the fix; `None` when
/// it is one, or when `alias_ok` and it may be an alias (the model's pattern judges those).
/// Never echoes the value: account ids are a sensitive shape.
pub fn account_id_problem(s: &str, alias_ok: bool) -> Option<String> {
    let t = s.trim();
    let digits = t.bytes().filter(u8::is_ascii_digit).count();
    let all_digits = !t.is_empty() && digits == t.len();
    if all_digits && t.len() == 12 {
        return None;
    }
    let text_fix = "format the column as Text in the spreadsheet";
    if all_digits && t.len() < 12 {
        return Some(format!(
            "the account id has {} digit{}; an AWS account id has exactly 12. A spreadsheet drops the leading zeros of a number: write \"{{{{ {CELL_PLACEHOLDER} | zfill(12) }}}}\" in the playbook, and {text_fix} so the zeros stay",
            t.len(),
            if t.len() == 1 { "" } else { "s" }
        ));
    }
    if all_digits {
        return Some(format!(
            "the account id has {} digits; an AWS account id has exactly 12",
            t.len()
        ));
    }
    if is_scientific(t) {
        return Some(format!(
            "the account id is in scientific notation (like 1.23457E+11): the spreadsheet turned it into a number and its last digits are lost, so no filter can restore it; {text_fix}, enter the ids again (or export them again from their source) and save the CSV again"
        ));
    }
    if let Some(int) = t.strip_suffix(".0").or_else(|| t.strip_suffix(".00")) {
        if !int.is_empty() && int.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!(
                "the account id ends in a decimal part: the spreadsheet stored it as a number; {text_fix} and export the CSV again, or write \"{{{{ {CELL_PLACEHOLDER} | int | zfill(12) }}}}\""
            ));
        }
    }
    if digits == 12
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | ' ' | '.' | '_'))
    {
        return Some(format!(
            "the account id has separators between its 12 digits; an AWS account id is the 12 digits alone: write \"{{{{ {CELL_PLACEHOLDER} | digits }}}}\""
        ));
    }
    if alias_ok {
        return None;
    }
    Some(format!(
        "the value is not an AWS account id: exactly 12 digits are required{}",
        if t.is_empty() { " (it is blank)" } else { "" }
    ))
}

/// `1.23457E+11`, `1.23457e11`, `1E+11`.
fn is_scientific(t: &str) -> bool {
    let Some((mant, exp)) = t.split_once(['e', 'E']) else {
        return false;
    };
    let exp = exp.strip_prefix('+').unwrap_or(exp);
    let (int, frac) = mant.split_once(['.', ',']).unwrap_or((mant, ""));
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !exp.is_empty()
        && exp.bytes().all(|b| b.is_ascii_digit())
}

/// Groups of exactly three digits after a first group of one to three, split by `sep`.
fn grouped(int: &str, sep: char) -> bool {
    let mut parts = int.split(sep);
    let first = parts.next().unwrap_or("");
    let mut rest = 0;
    for p in parts {
        if p.len() != 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        rest += 1;
    }
    rest > 0 && (1..=3).contains(&first.len()) && first.bytes().all(|b| b.is_ascii_digit())
}

/// The model's pattern of a calendar date (`Date`, a project's target completion date).
pub const ISO_DATE_PATTERN: &str = "[1-9][0-9]{3}-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])";

/// What a spreadsheet made of a date the model wants as `YYYY-MM-DD`, with the template that
/// turns it back (the `date` filter), or `None` when it looks like no date at all. Starts
/// after the quoted value: `is … : write "{{ row.close | date }}"`.
pub fn date_problem(s: &str) -> Option<String> {
    use chrono::NaiveDate;
    let t = s.trim();
    let p = CELL_PLACEHOLDER;
    let fix = |filter: &str, shown: NaiveDate| {
        format!(
            "; the API wants YYYY-MM-DD ({shown}): write \"{{{{ {p} | {filter} }}}}\" in the \
             playbook, or format the column as text YYYY-MM-DD in the spreadsheet"
        )
    };
    // a timestamp where a date is wanted
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(format!("is a timestamp{}", fix("date", d.date_naive())));
    }
    // a serial day number: how a spreadsheet stores a date cell
    if let Ok(n) = t.parse::<f64>() {
        if (20_000.0..=2_958_465.0).contains(&n)
            && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        {
            let d = NaiveDate::from_ymd_opt(1899, 12, 30)?
                .checked_add_days(chrono::Days::new(n.floor() as u64))?;
            return Some(format!(
                "is a spreadsheet's serial day number for a date (the cell held a date and was \
                 exported as a number){}",
                fix("date", d)
            ));
        }
        return None;
    }
    let sep = ['/', '.', '-'].into_iter().find(|c| t.contains(*c))?;
    let parts: Vec<&str> = t.split(sep).collect();
    if parts.len() != 3 || !parts.iter().all(|x| all_digits(x)) {
        return None;
    }
    let n: Vec<u32> = parts.iter().map(|x| x.parse().unwrap_or(0)).collect();
    let (lens, year4) = (
        parts.iter().map(|x| x.len()).collect::<Vec<_>>(),
        parts[2].len() == 4,
    );
    // (order shown, chrono format, the filter)
    let (order, format) = if lens[0] == 4 {
        ("year/month/day", format!("%Y{sep}%m{sep}%d"))
    } else if year4 || lens[2] == 2 {
        let y = if year4 { "%Y" } else { "%y" };
        if n[0] > 12 || (sep == '.' && n[1] <= 12) {
            ("day/month/year", format!("%d{sep}%m{sep}{y}"))
        } else {
            ("month/day/year", format!("%m{sep}%d{sep}{y}"))
        }
    } else {
        return None;
    };
    let d = NaiveDate::parse_from_str(t, &format).ok()?;
    // the filter reads MM/DD/YYYY, DD.MM.YYYY and YYYY/MM/DD by itself
    let filter = match format.as_str() {
        "%m/%d/%Y" | "%d.%m.%Y" | "%Y/%m/%d" => "date".to_string(),
        f => format!("date('%Y-%m-%d', '{f}')"),
    };
    let ambiguous = n[0] <= 12 && n[1] <= 12 && lens[0] != 4 && n[0] != n[1];
    Some(format!(
        "is a date written {order}{}{}",
        if ambiguous {
            " (or day and month the other way round: check the sheet's locale)"
        } else {
            ""
        },
        fix(&filter, d)
    ))
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Why an amount the model refuses looks like a spreadsheet's display format, with the fix;
/// `None` when it looks like nothing in particular (the pattern message then applies).
/// Never echoes the value: amounts are a sensitive shape.
pub fn amount_problem(s: &str) -> Option<String> {
    let t = s.trim();
    let p = CELL_PLACEHOLDER;
    let strip_filter = |c: &str| format!("\"{{{{ {p} | replace('{c}', '') }}}}\"");
    let bare = t
        .trim_start_matches(['$', '€', '£', '¥'])
        .trim_end_matches(['$', '€', '£', '¥']);
    if bare.len() != t.len()
        || t.split_whitespace()
            .any(|w| ["USD", "EUR", "GBP"].contains(&w))
    {
        return Some("the amount has a currency sign or code; write the number alone (the currency goes in CurrencyCode)".into());
    }
    if t.starts_with('-') {
        return Some("the amount is negative; amounts are 0 or more".into());
    }
    // 12,000 / 12,000.50
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if grouped(int, ',') && (frac.is_empty() || (frac.len() <= 2 && all_digits(frac))) {
        return Some(format!(
            "the amount uses ',' as a thousands separator; write the number without separators \
             (12,000 as 12000): {} in the playbook, or format the column as a plain number",
            strip_filter(",")
        ));
    }
    // 12 000 / 12'000 (spaces, no-break spaces, apostrophes), with either decimal mark
    for sep in [' ', '\u{a0}', '\u{202f}', '\''] {
        let (int, frac) = t.split_once(['.', ',']).unwrap_or((t, ""));
        if grouped(int, sep) && (frac.is_empty() || (frac.len() <= 2 && all_digits(frac))) {
            let shown = if sep == '\'' {
                "'\\''".to_string()
            } else {
                "' '".to_string()
            };
            return Some(format!(
                "the amount uses {} as a thousands separator; write the number without separators \
                 (12 000 as 12000){}",
                if sep == '\'' { "apostrophes" } else { "spaces" },
                if sep == ' ' {
                    format!(": {} in the playbook", strip_filter(" "))
                } else {
                    format!(" (remove the {shown} characters)")
                }
            ));
        }
    }
    // 1.200.000,50 / 1.200,50 / 1.200.000 (European)
    let (int, frac) = t.split_once(',').unwrap_or((t, ""));
    if grouped(int, '.')
        && (int.matches('.').count() > 1 || !frac.is_empty())
        && frac.len() <= 2
        && (frac.is_empty() || all_digits(frac))
    {
        return Some(format!(
            "the amount uses '.' as a thousands separator{}; write it with no thousands \
             separator and '.' as the decimal mark (1.200.000,50 as 1200000.50): \
             \"{{{{ {p} | replace('.', '') | replace(',', '.') }}}}\"",
            if frac.is_empty() {
                ""
            } else {
                " and ',' as the decimal mark"
            }
        ));
    }
    // 12,5 (decimal comma)
    if let Some((i, f)) = t.split_once(',') {
        if all_digits(i) && all_digits(f) && f.len() <= 2 {
            return Some(format!(
                "the amount uses ',' as the decimal mark; the API needs '.' (12,50 as 12.50): \
                 \"{{{{ {p} | replace(',', '.') }}}}\""
            ));
        }
    }
    // 12.345: three decimals, or a '.' thousands separator
    if let Some((i, f)) = t.split_once('.') {
        if all_digits(i) && all_digits(f) && f.len() > 2 {
            return Some(format!(
                "the amount has {} decimal places; at most 2 are allowed. If '.' is a thousands \
                 separator here, write the number without it; otherwise round it: \
                 \"{{{{ {p} | float | round(2) }}}}\"",
                f.len()
            ));
        }
    }
    if t.len() > 1 && t.starts_with('0') && all_digits(t) {
        return Some(format!(
            "the amount has leading zeros; write \"{{{{ {p} | int }}}}\""
        ));
    }
    None
}

/// The ISO 3166-1 alpha-2 code for a country name, official name, alpha-3 code or common
/// alias (`United Kingdom`, `UK`, `USA`, `America`, `Deutschland`), case and punctuation
/// insensitive.
pub fn country_code(name: &str) -> Option<&'static str> {
    let mut key = String::with_capacity(name.len());
    for c in name.trim().chars().take(80) {
        let c = match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'Á' | 'Å' | 'Ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' | 'É' => 'e',
            'í' | 'î' | 'ï' => 'i',
            'ó' | 'ô' | 'ö' | 'õ' | 'Ö' => 'o',
            'ú' | 'û' | 'ü' | 'Ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            '&' => {
                key.push_str(" and ");
                continue;
            }
            c => c.to_ascii_lowercase(),
        };
        if c.is_ascii_alphanumeric() {
            key.push(c);
        } else if !key.ends_with(' ') && !key.is_empty() {
            key.push(' ');
        }
    }
    let mut k = key.trim();
    k = k.strip_prefix("the ").unwrap_or(k);
    let k = k.split_whitespace().collect::<Vec<_>>().join(" ");
    COUNTRY_NAMES
        .binary_search_by(|(n, _)| (*n).cmp(k.as_str()))
        .ok()
        .map(|i| COUNTRY_NAMES[i].1)
}

/// Country names, official names, common names, alpha-3 codes and common aliases
/// (normalised: lower case, ASCII, punctuation as single spaces, no leading "the") → the
/// ISO 3166-1 alpha-2 code of the API's CountryCode enum. Sorted for binary search.
/// Generated from pycountry's ISO 3166 data plus a hand-made list of aliases.
const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("abw", "AW"),
    ("afg", "AF"),
    ("afghanistan", "AF"),
    ("ago", "AO"),
    ("aia", "AI"),
    ("ala", "AX"),
    ("aland", "AX"),
    ("aland islands", "AX"),
    ("alb", "AL"),
    ("albania", "AL"),
    ("algeria", "DZ"),
    ("america", "US"),
    ("american samoa", "AS"),
    ("and", "AD"),
    ("andorra", "AD"),
    ("angola", "AO"),
    ("anguilla", "AI"),
    ("antarctica", "AQ"),
    ("antigua and barbuda", "AG"),
    ("antilles", "AN"),
    ("arab republic of egypt", "EG"),
    ("are", "AE"),
    ("arg", "AR"),
    ("argentina", "AR"),
    ("argentine republic", "AR"),
    ("arm", "AM"),
    ("armenia", "AM"),
    ("aruba", "AW"),
    ("ascension and tristan da cunha saint helena", "SH"),
    ("asm", "AS"),
    ("ata", "AQ"),
    ("atf", "TF"),
    ("atg", "AG"),
    ("aus", "AU"),
    ("australia", "AU"),
    ("austria", "AT"),
    ("aut", "AT"),
    ("aze", "AZ"),
    ("azerbaijan", "AZ"),
    ("bahamas", "BS"),
    ("bahrain", "BH"),
    ("bangladesh", "BD"),
    ("barbados", "BB"),
    ("bdi", "BI"),
    ("bel", "BE"),
    ("belarus", "BY"),
    ("belgie", "BE"),
    ("belgique", "BE"),
    ("belgium", "BE"),
    ("belize", "BZ"),
    ("ben", "BJ"),
    ("benin", "BJ"),
    ("bermuda", "BM"),
    ("bes", "BQ"),
    ("bfa", "BF"),
    ("bgd", "BD"),
    ("bgr", "BG"),
    ("bhr", "BH"),
    ("bhs", "BS"),
    ("bhutan", "BT"),
    ("bih", "BA"),
    ("blm", "BL"),
    ("blr", "BY"),
    ("blz", "BZ"),
    ("bmu", "BM"),
    ("bol", "BO"),
    ("bolivarian republic of venezuela", "VE"),
    ("bolivia", "BO"),
    ("bolivia plurinational state of", "BO"),
    ("bonaire sint eustatius and saba", "BQ"),
    ("bosnia", "BA"),
    ("bosnia and herzegovina", "BA"),
    ("botswana", "BW"),
    ("bouvet island", "BV"),
    ("bra", "BR"),
    ("brasil", "BR"),
    ("brazil", "BR"),
    ("brb", "BB"),
    ("britain", "GB"),
    ("british indian ocean territory", "IO"),
    ("british virgin islands", "VG"),
    ("brn", "BN"),
    ("brunei", "BN"),
    ("brunei darussalam", "BN"),
    ("btn", "BT"),
    ("bulgaria", "BG"),
    ("burkina faso", "BF"),
    ("burma", "MM"),
    ("burundi", "BI"),
    ("bvt", "BV"),
    ("bwa", "BW"),
    ("cabo verde", "CV"),
    ("caf", "CF"),
    ("cambodia", "KH"),
    ("cameroon", "CM"),
    ("can", "CA"),
    ("canada", "CA"),
    ("cape verde", "CV"),
    ("cayman islands", "KY"),
    ("cck", "CC"),
    ("central african republic", "CF"),
    ("chad", "TD"),
    ("che", "CH"),
    ("chile", "CL"),
    ("china", "CN"),
    ("chl", "CL"),
    ("chn", "CN"),
    ("christmas island", "CX"),
    ("civ", "CI"),
    ("cmr", "CM"),
    ("cocos islands", "CC"),
    ("cocos keeling islands", "CC"),
    ("cod", "CD"),
    ("cog", "CG"),
    ("cok", "CK"),
    ("col", "CO"),
    ("colombia", "CO"),
    ("com", "KM"),
    ("commonwealth of dominica", "DM"),
    ("commonwealth of the bahamas", "BS"),
    ("commonwealth of the northern mariana islands", "MP"),
    ("comoros", "KM"),
    ("congo", "CG"),
    ("congo brazzaville", "CG"),
    ("congo kinshasa", "CD"),
    ("congo the democratic republic of the", "CD"),
    ("cook islands", "CK"),
    ("costa rica", "CR"),
    ("cote d ivoire", "CI"),
    ("cpv", "CV"),
    ("cri", "CR"),
    ("croatia", "HR"),
    ("cub", "CU"),
    ("cuba", "CU"),
    ("curacao", "CW"),
    ("cuw", "CW"),
    ("cxr", "CX"),
    ("cym", "KY"),
    ("cyp", "CY"),
    ("cyprus", "CY"),
    ("cze", "CZ"),
    ("czech republic", "CZ"),
    ("czechia", "CZ"),
    ("danmark", "DK"),
    ("democratic republic of sao tome and principe", "ST"),
    ("democratic republic of the congo", "CD"),
    ("democratic republic of timor leste", "TL"),
    ("democratic socialist republic of sri lanka", "LK"),
    ("denmark", "DK"),
    ("deu", "DE"),
    ("deutschland", "DE"),
    ("dji", "DJ"),
    ("djibouti", "DJ"),
    ("dma", "DM"),
    ("dnk", "DK"),
    ("dom", "DO"),
    ("dominica", "DM"),
    ("dominican republic", "DO"),
    ("dr congo", "CD"),
    ("drc", "CD"),
    ("dza", "DZ"),
    ("east timor", "TL"),
    ("eastern republic of uruguay", "UY"),
    ("ecu", "EC"),
    ("ecuador", "EC"),
    ("egy", "EG"),
    ("egypt", "EG"),
    ("eire", "IE"),
    ("el salvador", "SV"),
    ("emirates", "AE"),
    ("england", "GB"),
    ("equatorial guinea", "GQ"),
    ("eri", "ER"),
    ("eritrea", "ER"),
    ("esh", "EH"),
    ("esp", "ES"),
    ("espana", "ES"),
    ("est", "EE"),
    ("estonia", "EE"),
    ("eswatini", "SZ"),
    ("eth", "ET"),
    ("ethiopia", "ET"),
    ("falkland islands", "FK"),
    ("falkland islands malvinas", "FK"),
    ("falklands", "FK"),
    ("faroe islands", "FO"),
    ("federal democratic republic of ethiopia", "ET"),
    ("federal democratic republic of nepal", "NP"),
    ("federal republic of germany", "DE"),
    ("federal republic of nigeria", "NG"),
    ("federal republic of somalia", "SO"),
    ("federated states of micronesia", "FM"),
    ("federative republic of brazil", "BR"),
    ("fiji", "FJ"),
    ("fin", "FI"),
    ("finland", "FI"),
    ("fji", "FJ"),
    ("flk", "FK"),
    ("fra", "FR"),
    ("france", "FR"),
    ("french guiana", "GF"),
    ("french polynesia", "PF"),
    ("french republic", "FR"),
    ("french southern territories", "TF"),
    ("fro", "FO"),
    ("fsm", "FM"),
    ("gab", "GA"),
    ("gabon", "GA"),
    ("gabonese republic", "GA"),
    ("gambia", "GM"),
    ("gbr", "GB"),
    ("geo", "GE"),
    ("georgia", "GE"),
    ("germany", "DE"),
    ("ggy", "GG"),
    ("gha", "GH"),
    ("ghana", "GH"),
    ("gib", "GI"),
    ("gibraltar", "GI"),
    ("gin", "GN"),
    ("glp", "GP"),
    ("gmb", "GM"),
    ("gnb", "GW"),
    ("gnq", "GQ"),
    ("grand duchy of luxembourg", "LU"),
    ("grc", "GR"),
    ("grd", "GD"),
    ("great britain", "GB"),
    ("greece", "GR"),
    ("greenland", "GL"),
    ("grenada", "GD"),
    ("grl", "GL"),
    ("gtm", "GT"),
    ("guadeloupe", "GP"),
    ("guam", "GU"),
    ("guatemala", "GT"),
    ("guernsey", "GG"),
    ("guf", "GF"),
    ("guinea", "GN"),
    ("guinea bissau", "GW"),
    ("gum", "GU"),
    ("guy", "GY"),
    ("guyana", "GY"),
    ("haiti", "HT"),
    ("hashemite kingdom of jordan", "JO"),
    ("heard island and mcdonald islands", "HM"),
    ("hellenic republic", "GR"),
    ("hkg", "HK"),
    ("hmd", "HM"),
    ("hnd", "HN"),
    ("holland", "NL"),
    ("holy see", "VA"),
    ("holy see vatican city state", "VA"),
    ("honduras", "HN"),
    ("hong kong", "HK"),
    ("hong kong special administrative region of china", "HK"),
    ("hrv", "HR"),
    ("hti", "HT"),
    ("hun", "HU"),
    ("hungary", "HU"),
    ("iceland", "IS"),
    ("idn", "ID"),
    ("imn", "IM"),
    ("ind", "IN"),
    ("independent state of papua new guinea", "PG"),
    ("independent state of samoa", "WS"),
    ("india", "IN"),
    ("indonesia", "ID"),
    ("iot", "IO"),
    ("iran", "IR"),
    ("iran islamic republic of", "IR"),
    ("iraq", "IQ"),
    ("ireland", "IE"),
    ("irl", "IE"),
    ("irn", "IR"),
    ("irq", "IQ"),
    ("isl", "IS"),
    ("islamic republic of afghanistan", "AF"),
    ("islamic republic of iran", "IR"),
    ("islamic republic of mauritania", "MR"),
    ("islamic republic of pakistan", "PK"),
    ("isle of man", "IM"),
    ("isr", "IL"),
    ("israel", "IL"),
    ("ita", "IT"),
    ("italia", "IT"),
    ("italian republic", "IT"),
    ("italy", "IT"),
    ("ivory coast", "CI"),
    ("jam", "JM"),
    ("jamaica", "JM"),
    ("japan", "JP"),
    ("jersey", "JE"),
    ("jey", "JE"),
    ("jor", "JO"),
    ("jordan", "JO"),
    ("jpn", "JP"),
    ("kaz", "KZ"),
    ("kazakhstan", "KZ"),
    ("ken", "KE"),
    ("kenya", "KE"),
    ("kgz", "KG"),
    ("khm", "KH"),
    ("kingdom of bahrain", "BH"),
    ("kingdom of belgium", "BE"),
    ("kingdom of bhutan", "BT"),
    ("kingdom of cambodia", "KH"),
    ("kingdom of denmark", "DK"),
    ("kingdom of eswatini", "SZ"),
    ("kingdom of lesotho", "LS"),
    ("kingdom of morocco", "MA"),
    ("kingdom of norway", "NO"),
    ("kingdom of saudi arabia", "SA"),
    ("kingdom of spain", "ES"),
    ("kingdom of sweden", "SE"),
    ("kingdom of thailand", "TH"),
    ("kingdom of the netherlands", "NL"),
    ("kingdom of tonga", "TO"),
    ("kir", "KI"),
    ("kiribati", "KI"),
    ("kna", "KN"),
    ("kor", "KR"),
    ("korea", "KR"),
    ("korea republic of", "KR"),
    ("ksa", "SA"),
    ("kuwait", "KW"),
    ("kwt", "KW"),
    ("kyrgyz republic", "KG"),
    ("kyrgyzstan", "KG"),
    ("lao", "LA"),
    ("lao people s democratic republic", "LA"),
    ("laos", "LA"),
    ("latvia", "LV"),
    ("lbn", "LB"),
    ("lbr", "LR"),
    ("lby", "LY"),
    ("lca", "LC"),
    ("lebanese republic", "LB"),
    ("lebanon", "LB"),
    ("lesotho", "LS"),
    ("liberia", "LR"),
    ("libya", "LY"),
    ("lie", "LI"),
    ("liechtenstein", "LI"),
    ("lithuania", "LT"),
    ("lka", "LK"),
    ("lso", "LS"),
    ("ltu", "LT"),
    ("lux", "LU"),
    ("luxembourg", "LU"),
    ("lva", "LV"),
    ("mac", "MO"),
    ("macao", "MO"),
    ("macao special administrative region of china", "MO"),
    ("macau", "MO"),
    ("macedonia", "MK"),
    ("madagascar", "MG"),
    ("maf", "MF"),
    ("mainland china", "CN"),
    ("malawi", "MW"),
    ("malaysia", "MY"),
    ("maldives", "MV"),
    ("mali", "ML"),
    ("malta", "MT"),
    ("mar", "MA"),
    ("marshall islands", "MH"),
    ("martinique", "MQ"),
    ("mauritania", "MR"),
    ("mauritius", "MU"),
    ("mayotte", "YT"),
    ("mco", "MC"),
    ("mda", "MD"),
    ("mdg", "MG"),
    ("mdv", "MV"),
    ("mejico", "MX"),
    ("mex", "MX"),
    ("mexico", "MX"),
    ("mhl", "MH"),
    ("micronesia", "FM"),
    ("micronesia federated states of", "FM"),
    ("mkd", "MK"),
    ("mli", "ML"),
    ("mlt", "MT"),
    ("mmr", "MM"),
    ("mne", "ME"),
    ("mng", "MN"),
    ("mnp", "MP"),
    ("moldova", "MD"),
    ("moldova republic of", "MD"),
    ("monaco", "MC"),
    ("mongolia", "MN"),
    ("montenegro", "ME"),
    ("montserrat", "MS"),
    ("morocco", "MA"),
    ("moz", "MZ"),
    ("mozambique", "MZ"),
    ("mrt", "MR"),
    ("msr", "MS"),
    ("mtq", "MQ"),
    ("mus", "MU"),
    ("mwi", "MW"),
    ("myanmar", "MM"),
    ("mys", "MY"),
    ("myt", "YT"),
    ("nam", "NA"),
    ("namibia", "NA"),
    ("nauru", "NR"),
    ("ncl", "NC"),
    ("nederland", "NL"),
    ("nepal", "NP"),
    ("ner", "NE"),
    ("netherlands", "NL"),
    ("netherlands antilles", "AN"),
    ("new caledonia", "NC"),
    ("new zealand", "NZ"),
    ("nfk", "NF"),
    ("nga", "NG"),
    ("nic", "NI"),
    ("nicaragua", "NI"),
    ("niger", "NE"),
    ("nigeria", "NG"),
    ("nihon", "JP"),
    ("nippon", "JP"),
    ("niu", "NU"),
    ("niue", "NU"),
    ("nld", "NL"),
    ("nor", "NO"),
    ("norfolk island", "NF"),
    ("norge", "NO"),
    ("north macedonia", "MK"),
    ("northern ireland", "GB"),
    ("northern mariana islands", "MP"),
    ("norway", "NO"),
    ("npl", "NP"),
    ("nru", "NR"),
    ("nzl", "NZ"),
    ("oman", "OM"),
    ("omn", "OM"),
    ("osterreich", "AT"),
    ("pak", "PK"),
    ("pakistan", "PK"),
    ("palau", "PW"),
    ("palestine", "PS"),
    ("palestine state of", "PS"),
    ("pan", "PA"),
    ("panama", "PA"),
    ("papua new guinea", "PG"),
    ("paraguay", "PY"),
    ("pcn", "PN"),
    ("people s democratic republic of algeria", "DZ"),
    ("people s republic of bangladesh", "BD"),
    ("people s republic of china", "CN"),
    ("per", "PE"),
    ("peru", "PE"),
    ("philippines", "PH"),
    ("phl", "PH"),
    ("pitcairn", "PN"),
    ("plurinational state of bolivia", "BO"),
    ("plw", "PW"),
    ("png", "PG"),
    ("pol", "PL"),
    ("poland", "PL"),
    ("polska", "PL"),
    ("portugal", "PT"),
    ("portuguese republic", "PT"),
    ("prc", "CN"),
    ("pri", "PR"),
    ("principality of andorra", "AD"),
    ("principality of liechtenstein", "LI"),
    ("principality of monaco", "MC"),
    ("province of china taiwan", "TW"),
    ("prt", "PT"),
    ("pry", "PY"),
    ("pse", "PS"),
    ("puerto rico", "PR"),
    ("pyf", "PF"),
    ("qat", "QA"),
    ("qatar", "QA"),
    ("republic of albania", "AL"),
    ("republic of angola", "AO"),
    ("republic of armenia", "AM"),
    ("republic of austria", "AT"),
    ("republic of azerbaijan", "AZ"),
    ("republic of belarus", "BY"),
    ("republic of benin", "BJ"),
    ("republic of bosnia and herzegovina", "BA"),
    ("republic of botswana", "BW"),
    ("republic of bulgaria", "BG"),
    ("republic of burundi", "BI"),
    ("republic of cabo verde", "CV"),
    ("republic of cameroon", "CM"),
    ("republic of chad", "TD"),
    ("republic of chile", "CL"),
    ("republic of colombia", "CO"),
    ("republic of costa rica", "CR"),
    ("republic of cote d ivoire", "CI"),
    ("republic of croatia", "HR"),
    ("republic of cuba", "CU"),
    ("republic of cyprus", "CY"),
    ("republic of djibouti", "DJ"),
    ("republic of ecuador", "EC"),
    ("republic of el salvador", "SV"),
    ("republic of equatorial guinea", "GQ"),
    ("republic of estonia", "EE"),
    ("republic of fiji", "FJ"),
    ("republic of finland", "FI"),
    ("republic of ghana", "GH"),
    ("republic of guatemala", "GT"),
    ("republic of guinea", "GN"),
    ("republic of guinea bissau", "GW"),
    ("republic of guyana", "GY"),
    ("republic of haiti", "HT"),
    ("republic of honduras", "HN"),
    ("republic of iceland", "IS"),
    ("republic of india", "IN"),
    ("republic of indonesia", "ID"),
    ("republic of iraq", "IQ"),
    ("republic of ireland", "IE"),
    ("republic of kazakhstan", "KZ"),
    ("republic of kenya", "KE"),
    ("republic of kiribati", "KI"),
    ("republic of korea", "KR"),
    ("republic of latvia", "LV"),
    ("republic of liberia", "LR"),
    ("republic of lithuania", "LT"),
    ("republic of madagascar", "MG"),
    ("republic of malawi", "MW"),
    ("republic of maldives", "MV"),
    ("republic of mali", "ML"),
    ("republic of malta", "MT"),
    ("republic of mauritius", "MU"),
    ("republic of moldova", "MD"),
    ("republic of mozambique", "MZ"),
    ("republic of myanmar", "MM"),
    ("republic of namibia", "NA"),
    ("republic of nauru", "NR"),
    ("republic of nicaragua", "NI"),
    ("republic of north macedonia", "MK"),
    ("republic of palau", "PW"),
    ("republic of panama", "PA"),
    ("republic of paraguay", "PY"),
    ("republic of peru", "PE"),
    ("republic of poland", "PL"),
    ("republic of san marino", "SM"),
    ("republic of senegal", "SN"),
    ("republic of serbia", "RS"),
    ("republic of seychelles", "SC"),
    ("republic of sierra leone", "SL"),
    ("republic of singapore", "SG"),
    ("republic of slovenia", "SI"),
    ("republic of south africa", "ZA"),
    ("republic of south sudan", "SS"),
    ("republic of suriname", "SR"),
    ("republic of tajikistan", "TJ"),
    ("republic of the congo", "CG"),
    ("republic of the gambia", "GM"),
    ("republic of the marshall islands", "MH"),
    ("republic of the niger", "NE"),
    ("republic of the philippines", "PH"),
    ("republic of the sudan", "SD"),
    ("republic of trinidad and tobago", "TT"),
    ("republic of tunisia", "TN"),
    ("republic of turkiye", "TR"),
    ("republic of uganda", "UG"),
    ("republic of uzbekistan", "UZ"),
    ("republic of vanuatu", "VU"),
    ("republic of yemen", "YE"),
    ("republic of zambia", "ZM"),
    ("republic of zimbabwe", "ZW"),
    ("reu", "RE"),
    ("reunion", "RE"),
    ("romania", "RO"),
    ("rou", "RO"),
    ("rus", "RU"),
    ("russia", "RU"),
    ("russian federation", "RU"),
    ("rwa", "RW"),
    ("rwanda", "RW"),
    ("rwandese republic", "RW"),
    ("saint barthelemy", "BL"),
    ("saint helena ascension and tristan da cunha", "SH"),
    ("saint kitts and nevis", "KN"),
    ("saint lucia", "LC"),
    ("saint martin", "MF"),
    ("saint martin french part", "MF"),
    ("saint pierre and miquelon", "PM"),
    ("saint vincent and the grenadines", "VC"),
    ("samoa", "WS"),
    ("san marino", "SM"),
    ("sao tome and principe", "ST"),
    ("sau", "SA"),
    ("saudi arabia", "SA"),
    ("schweiz", "CH"),
    ("scotland", "GB"),
    ("sdn", "SD"),
    ("sen", "SN"),
    ("senegal", "SN"),
    ("serbia", "RS"),
    ("seychelles", "SC"),
    ("sgp", "SG"),
    ("sgs", "GS"),
    ("shn", "SH"),
    ("sierra leone", "SL"),
    ("singapore", "SG"),
    ("sint eustatius and saba bonaire", "BQ"),
    ("sint maarten", "SX"),
    ("sint maarten dutch part", "SX"),
    ("sjm", "SJ"),
    ("slb", "SB"),
    ("sle", "SL"),
    ("slovak republic", "SK"),
    ("slovakia", "SK"),
    ("slovenia", "SI"),
    ("slv", "SV"),
    ("smr", "SM"),
    ("socialist republic of viet nam", "VN"),
    ("solomon islands", "SB"),
    ("som", "SO"),
    ("somalia", "SO"),
    ("south africa", "ZA"),
    ("south georgia and the south sandwich islands", "GS"),
    ("south korea", "KR"),
    ("south sudan", "SS"),
    ("spain", "ES"),
    ("spm", "PM"),
    ("srb", "RS"),
    ("sri lanka", "LK"),
    ("ssd", "SS"),
    ("st kitts and nevis", "KN"),
    ("st lucia", "LC"),
    ("st vincent and the grenadines", "VC"),
    ("state of eritrea", "ER"),
    ("state of israel", "IL"),
    ("state of kuwait", "KW"),
    ("state of palestine", "PS"),
    ("state of qatar", "QA"),
    ("stp", "ST"),
    ("sudan", "SD"),
    ("suisse", "CH"),
    ("sultanate of oman", "OM"),
    ("suomi", "FI"),
    ("sur", "SR"),
    ("suriname", "SR"),
    ("svalbard and jan mayen", "SJ"),
    ("sverige", "SE"),
    ("svk", "SK"),
    ("svn", "SI"),
    ("swaziland", "SZ"),
    ("swe", "SE"),
    ("sweden", "SE"),
    ("swiss confederation", "CH"),
    ("switzerland", "CH"),
    ("swz", "SZ"),
    ("sxm", "SX"),
    ("syc", "SC"),
    ("syr", "SY"),
    ("syria", "SY"),
    ("syrian arab republic", "SY"),
    ("taiwan", "TW"),
    ("taiwan province of china", "TW"),
    ("tajikistan", "TJ"),
    ("tanzania", "TZ"),
    ("tanzania united republic of", "TZ"),
    ("tca", "TC"),
    ("tcd", "TD"),
    ("tgo", "TG"),
    ("tha", "TH"),
    ("thailand", "TH"),
    ("timor leste", "TL"),
    ("tjk", "TJ"),
    ("tkl", "TK"),
    ("tkm", "TM"),
    ("tls", "TL"),
    ("togo", "TG"),
    ("togolese republic", "TG"),
    ("tokelau", "TK"),
    ("ton", "TO"),
    ("tonga", "TO"),
    ("trinidad and tobago", "TT"),
    ("tto", "TT"),
    ("tun", "TN"),
    ("tunisia", "TN"),
    ("tur", "TR"),
    ("turkey", "TR"),
    ("turkiye", "TR"),
    ("turkmenistan", "TM"),
    ("turks and caicos islands", "TC"),
    ("tuv", "TV"),
    ("tuvalu", "TV"),
    ("twn", "TW"),
    ("tza", "TZ"),
    ("u k", "GB"),
    ("u s", "US"),
    ("u s a", "US"),
    ("u s virgin islands", "VI"),
    ("uae", "AE"),
    ("uga", "UG"),
    ("uganda", "UG"),
    ("uk", "GB"),
    ("ukr", "UA"),
    ("ukraine", "UA"),
    ("umi", "UM"),
    ("union of the comoros", "KM"),
    ("united arab emirates", "AE"),
    ("united kingdom", "GB"),
    ("united kingdom of great britain and northern ireland", "GB"),
    ("united mexican states", "MX"),
    ("united republic of tanzania", "TZ"),
    ("united states", "US"),
    ("united states minor outlying islands", "UM"),
    ("united states of america", "US"),
    ("uruguay", "UY"),
    ("ury", "UY"),
    ("us", "US"),
    ("usa", "US"),
    ("uzb", "UZ"),
    ("uzbekistan", "UZ"),
    ("vanuatu", "VU"),
    ("vat", "VA"),
    ("vatican", "VA"),
    ("vatican city", "VA"),
    ("vct", "VC"),
    ("ven", "VE"),
    ("venezuela", "VE"),
    ("venezuela bolivarian republic of", "VE"),
    ("vgb", "VG"),
    ("viet nam", "VN"),
    ("vietnam", "VN"),
    ("vir", "VI"),
    ("virgin islands british", "VG"),
    ("virgin islands of the united states", "VI"),
    ("virgin islands u s", "VI"),
    ("vnm", "VN"),
    ("vut", "VU"),
    ("wales", "GB"),
    ("wallis and futuna", "WF"),
    ("western sahara", "EH"),
    ("wlf", "WF"),
    ("wsm", "WS"),
    ("yem", "YE"),
    ("yemen", "YE"),
    ("zaf", "ZA"),
    ("zaire", "CD"),
    ("zambia", "ZM"),
    ("zimbabwe", "ZW"),
    ("zmb", "ZM"),
    ("zwe", "ZW"),
];

#[cfg(test)]
mod tests {

    #[test]
    fn dates_a_spreadsheet_rewrote_get_the_filter_that_reads_them() {
        let fix = |s: &str| date_problem(s).unwrap_or_default();
        let f = fix("31/03/2027");
        assert!(
            f.contains("day/month/year") && f.contains("(2027-03-31)"),
            "{f}"
        );
        assert!(f.contains("date('%Y-%m-%d', '%d/%m/%Y')"), "{f}");
        let f = fix("03/31/2027");
        assert!(
            f.contains("month/day/year") && f.contains("| date }}"),
            "{f}"
        );
        let f = fix("04/03/2027");
        assert!(f.contains("the other way round"), "{f}");
        assert!(fix("31.03.2027").contains("| date }}"));
        assert!(fix("2027/03/31").contains("| date }}"));
        let f = fix("46477");
        assert!(
            f.contains("serial day number") && f.contains("(2027-03-31)"),
            "{f}"
        );
        assert!(fix("2027-03-31T10:00:00Z").contains("timestamp"));
        assert!(fix("31-03-27").contains("'%d-%m-%y'"));
        for nothing in ["soon", "Q1 2027", "12", "2027-3", "32/13/2027"] {
            assert_eq!(date_problem(nothing), None, "{nothing}");
        }
    }
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
