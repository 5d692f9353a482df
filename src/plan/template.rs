//! Templates: the minijinja environment, filters, compiled request trees, and rendering with
//! model-guided coercion.
//!
//! A string value that contains no `{{`, `{%` or `{#` is a literal. A value that is exactly one
//! `{{ expression }}` keeps the expression's type; anything else renders to a string. No
//! loader, no file or environment access; undefined values are errors; CPU per render is
//! bounded by minijinja's fuel.

use crate::model::{self, ShapeId, ShapeKind, DEFERRED_PREFIX};
use crate::playbook::{Node, Pos, Value as Y};
use minijinja::value::Value as MjValue;
use minijinja::{Environment, Error as MjError, ErrorKind, UndefinedBehavior};
use serde_json::Value as J;
use std::collections::HashMap;

/// Marks the end of a deferred placeholder inside a string (`\u{1}deferred:steps.x.Id\u{2}`).
pub const DEFERRED_END: char = '\u{2}';

/// Template fuel per render: bounds loops in user templates.
const FUEL: u64 = 50_000;

/// A compiled template string.
#[derive(Debug, Clone)]
pub struct Tpl {
    /// The template's name in the environment.
    pub name: String,
    /// Exactly one `{{ expression }}`: keeps the expression's type.
    pub expr: bool,
    /// The template text as written.
    pub source: String,
    pub pos: Pos,
    /// The variables it reads, as dotted paths (`row.country`, `steps.invite.Id`).
    pub refs: Vec<String>,
    /// The model shape of the value it produces, when known (guides coercion).
    pub target: Option<ShapeId>,
    /// For `{{ a.b.c }}`: the path, evaluated without the template machinery (the common
    /// case, and the hot path of a dry run over a million rows).
    pub path: Option<Vec<String>>,
}

impl Tpl {
    /// The CSV columns this template reads.
    pub fn row_columns(&self) -> impl Iterator<Item = &str> {
        self.refs.iter().filter_map(|r| {
            r.strip_prefix("row.")
                .map(|c| c.split('.').next().unwrap_or(c))
        })
    }
}

/// A compiled value tree (a step's input, an expected value, ...).
#[derive(Debug, Clone)]
pub enum TNode {
    /// No template anywhere inside.
    Lit(J),
    Tpl(Box<Tpl>),
    Arr(Vec<TNode>),
    Obj(Vec<(String, TNode)>),
}

/// The environment with cosell's filters, and the compiled templates.
pub struct Templates {
    env: Environment<'static>,
    count: usize,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Templates({} compiled)", self.count)
    }
}

fn has_template_syntax(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// The inner expression when `s` is exactly one `{{ expression }}` (whitespace around allowed).
fn sole_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim())
}

/// `a.b.c` inside `{{ }}`, when that is all the expression is.
fn plain_path(source: &str) -> Option<Vec<String>> {
    let e = sole_expression(source)?;
    let segs: Vec<String> = e.split('.').map(str::to_string).collect();
    let ident = |s: &str| {
        let mut c = s.chars();
        matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    };
    const KEYWORDS: &[&str] = &[
        "true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is",
    ];
    (segs.iter().all(|s| ident(s)) && !KEYWORDS.contains(&segs[0].as_str())).then_some(segs)
}

/// The columns read as `row['Header']` / `row["Header"]` in a template's source.
pub fn bracket_columns(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find("row") {
        let before = source.len() - rest.len() + i;
        rest = &rest[i + 3..];
        // `row` must be a whole name, not the end of `arrow` or `rows`
        let prev = source[..before].chars().next_back();
        if prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let t = rest.trim_start();
        let Some(t) = t.strip_prefix('[') else {
            continue;
        };
        let t = t.trim_start();
        let Some(q) = t.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            continue;
        };
        let body = &t[1..];
        let Some(end) = body.find(q) else { continue };
        let after = body[end + 1..].trim_start();
        if after.starts_with(']') {
            out.push(body[..end].to_string());
        }
    }
    out
}

/// The template expression that reads a column: `row.country`, or `row['Account ID']` when
/// the header is not a plain name.
pub fn cell_expr(column: &str) -> String {
    let ident = column
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && column
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident {
        format!("row.{column}")
    } else if !column.contains('\'') {
        format!("row['{column}']")
    } else {
        format!("row[{column:?}]")
    }
}

/// A minijinja error without the internal template name.
pub fn describe(e: &MjError) -> String {
    let mut s = match e.kind() {
        ErrorKind::UndefinedError => "undefined value".to_string(),
        ErrorKind::OutOfFuel => "the template takes too many steps to evaluate".to_string(),
        _ => {
            let full = e.to_string();
            match full.find(" (in ") {
                Some(i) => full[..i].to_string(),
                None => full,
            }
        }
    };
    if let (ErrorKind::UndefinedError, Some(d)) = (e.kind(), e.detail()) {
        s.push_str(": ");
        s.push_str(d);
    }
    s
}

impl Templates {
    pub fn new() -> Templates {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(64);
        env.set_keep_trailing_newline(true);
        env.add_filter("split", filter_split);
        env.add_filter("default", filter_default);
        env.add_filter("d", filter_default);
        env.add_filter("date", filter_date);
        env.add_filter("zfill", filter_zfill);
        env.add_filter("digits", filter_digits);
        Templates { env, count: 0 }
    }

    /// Compile one template string. `Ok(None)` for a literal (no template syntax).
    pub fn compile(
        &mut self,
        source: &str,
        pos: Pos,
        target: Option<ShapeId>,
    ) -> Result<Option<Tpl>, String> {
        if !has_template_syntax(source) {
            return Ok(None);
        }
        let (text, expr) = match sole_expression(source) {
            Some(e) => (format!("{{% set __value = ({e}) %}}"), true),
            None => (source.to_string(), false),
        };
        self.add(text, source, expr, pos, target).map(Some)
    }

    /// Compile a bare expression (`when: "steps.check.Status == 'PENDING'"`); a value written
    /// as `{{ … }}` is accepted too.
    pub fn compile_expression(&mut self, source: &str, pos: Pos) -> Result<Tpl, String> {
        let e = sole_expression(source).unwrap_or(source.trim());
        if e.is_empty() {
            return Err("the expression is empty".into());
        }
        self.add(
            format!("{{% set __value = ({e}) %}}"),
            source,
            true,
            pos,
            None,
        )
    }

    fn add(
        &mut self,
        text: String,
        source: &str,
        expr: bool,
        pos: Pos,
        target: Option<ShapeId>,
    ) -> Result<Tpl, String> {
        self.count += 1;
        let name = format!("t{}", self.count);
        self.env
            .add_template_owned(name.clone(), text)
            .map_err(|e| format!("template syntax error: {}", describe(&e)))?;
        let t = self.env.get_template(&name).map_err(|e| describe(&e))?;
        let mut refs: Vec<String> = t.undeclared_variables(true).into_iter().collect();
        // `row['Header With Spaces']`: minijinja reports only `row`; name the column too
        let bracketed = bracket_columns(source);
        if !bracketed.is_empty() {
            refs.retain(|r| r != "row");
            refs.extend(bracketed.into_iter().map(|c| format!("row.{c}")));
        }
        refs.sort();
        refs.dedup();
        refs.retain(|r| r != "__value");
        let path = if expr { plain_path(source) } else { None };
        Ok(Tpl {
            name,
            expr,
            source: source.to_string(),
            pos,
            refs,
            target,
            path,
        })
    }

    /// Evaluate a template to JSON (not yet coerced).
    pub fn eval(&self, t: &Tpl, ctx: &MjValue) -> Result<J, String> {
        if let Some(path) = &t.path {
            let mut v = ctx.clone();
            for seg in path {
                v = v.get_attr(seg).unwrap_or(MjValue::UNDEFINED);
                if v.is_undefined() {
                    return Err(format!(
                        "undefined value: {} is not defined",
                        path.join(".")
                    ));
                }
            }
            if let Some(s) = v.as_str() {
                return Ok(J::String(s.to_string()));
            }
            return to_json(&v);
        }
        let tmpl = self.env.get_template(&t.name).map_err(|e| describe(&e))?;
        if t.expr {
            let cap = tmpl.render_captured(ctx).map_err(|e| describe(&e))?;
            let v = cap.state().lookup("__value").unwrap_or(MjValue::UNDEFINED);
            if v.is_undefined() {
                return Err(format!(
                    "undefined value: {} is not defined",
                    t.source
                        .trim()
                        .trim_start_matches("{{")
                        .trim_end_matches("}}")
                        .trim()
                ));
            }
            to_json(&v)
        } else {
            tmpl.render(ctx).map(J::String).map_err(|e| describe(&e))
        }
    }

    /// Evaluate an expression for its truth.
    pub fn truth(&self, t: &Tpl, ctx: &MjValue) -> Result<bool, String> {
        let tmpl = self.env.get_template(&t.name).map_err(|e| describe(&e))?;
        let cap = tmpl.render_captured(ctx).map_err(|e| describe(&e))?;
        let v = cap.state().lookup("__value").unwrap_or(MjValue::UNDEFINED);
        if v.is_undefined() {
            return Err("the condition is undefined".into());
        }
        Ok(v.is_true())
    }

    /// Compile a YAML tree into a template tree, following the model shape `shape` (when
    /// known) to record each template's target. `at` records the member path of every node
    /// (API path syntax) with its position; template errors go to `errors`.
    pub fn compile_tree(
        &mut self,
        node: &Node,
        shape: Option<ShapeId>,
        path: &mut String,
        at: &mut HashMap<String, Pos>,
        errors: &mut Vec<(Pos, String)>,
    ) -> TNode {
        at.insert(path.clone(), node.pos);
        let m = model::model();
        match &node.value {
            Y::Str(s) => match self.compile(s, node.pos, shape) {
                Ok(None) => TNode::Lit(coerce(J::String(s.clone()), shape)),
                Ok(Some(t)) => TNode::Tpl(Box::new(t)),
                Err(e) => {
                    errors.push((node.pos, e));
                    TNode::Lit(J::Null)
                }
            },
            Y::Seq(items) => {
                let member = shape.and_then(|s| match m.shape(s).kind {
                    ShapeKind::List { member, .. } => Some(member),
                    _ => None,
                });
                let out: Vec<TNode> = items
                    .iter()
                    .enumerate()
                    .map(|(i, it)| {
                        let len = path.len();
                        path.push_str(&format!("[{i}]"));
                        let n = self.compile_tree(it, member, path, at, errors);
                        path.truncate(len);
                        n
                    })
                    .collect();
                simplify_arr(out)
            }
            Y::Map(entries) => {
                let out: Vec<(String, TNode)> = entries
                    .iter()
                    .map(|(k, v)| {
                        let sub = shape.and_then(|s| match &m.shape(s).kind {
                            ShapeKind::Structure { .. } => {
                                m.shape(s).member(&k.name).map(|mm| mm.shape)
                            }
                            ShapeKind::Map { value, .. } => Some(*value),
                            _ => None,
                        });
                        let len = path.len();
                        if matches!(shape.map(|s| &m.shape(s).kind), Some(ShapeKind::Map { .. })) {
                            path.push_str(&format!("[{:?}]", k.name));
                        } else {
                            if !path.is_empty() {
                                path.push('.');
                            }
                            path.push_str(&k.name);
                        }
                        at.entry(path.clone()).or_insert(k.pos);
                        let n = self.compile_tree(v, sub, path, at, errors);
                        path.truncate(len);
                        (k.name.clone(), n)
                    })
                    .collect();
                simplify_obj(out)
            }
            _ => TNode::Lit(coerce(node.to_json(), shape)),
        }
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

fn simplify_arr(items: Vec<TNode>) -> TNode {
    if items.iter().all(|n| matches!(n, TNode::Lit(_))) {
        TNode::Lit(J::Array(
            items
                .into_iter()
                .map(|n| match n {
                    TNode::Lit(v) => v,
                    _ => unreachable!("checked: all literal"),
                })
                .collect(),
        ))
    } else {
        TNode::Arr(items)
    }
}

fn simplify_obj(entries: Vec<(String, TNode)>) -> TNode {
    if entries.iter().all(|(_, n)| matches!(n, TNode::Lit(_))) {
        TNode::Lit(J::Object(
            entries
                .into_iter()
                .map(|(k, n)| match n {
                    TNode::Lit(v) => (k, v),
                    _ => unreachable!("checked: all literal"),
                })
                .collect(),
        ))
    } else {
        TNode::Obj(entries)
    }
}

/// Convert a minijinja value to JSON.
pub fn to_json(v: &MjValue) -> Result<J, String> {
    serde_json::to_value(v).map_err(|e| format!("the value cannot be used in a request: {e}"))
}

/// Whether a rendered string stands for a value known only at run time.
pub fn is_deferred_str(s: &str) -> bool {
    s.contains('\u{1}')
}

/// Adapt a rendered value to the shape the API expects: numbers and booleans become strings
/// for string members; numeric and boolean strings become numbers and booleans for numeric
/// and boolean members. Anything else is left for the validator to judge.
pub fn coerce(v: J, shape: Option<ShapeId>) -> J {
    let Some(shape) = shape else { return v };
    let kind = &model::model().shape(shape).kind;
    match (kind, v) {
        (ShapeKind::String { .. } | ShapeKind::Timestamp | ShapeKind::Blob, J::Number(n)) => {
            J::String(n.to_string())
        }
        (ShapeKind::String { .. }, J::Bool(b)) => J::String(b.to_string()),
        (ShapeKind::Integer { .. } | ShapeKind::Long, J::String(s)) => {
            match s.trim().parse::<i64>() {
                Ok(i) => J::from(i),
                Err(_) => J::String(s),
            }
        }
        (ShapeKind::Double, J::String(s)) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => serde_json::Number::from_f64(f)
                .map(J::Number)
                .unwrap_or(J::String(s)),
            _ => J::String(s),
        },
        (ShapeKind::Boolean, J::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" => J::Bool(true),
            "false" | "no" => J::Bool(false),
            _ => J::String(s),
        },
        (_, v) => v,
    }
}

/// A template's result as it goes into a request: deferred strings made whole, then coerced.
pub fn finish(v: J, t: &Tpl) -> J {
    let v = match v {
        J::String(s) if is_deferred_str(&s) && !s.starts_with(DEFERRED_PREFIX) => {
            J::String(format!("{DEFERRED_PREFIX}{s}"))
        }
        J::String(s) if s.starts_with(DEFERRED_PREFIX) => J::String(s),
        other => other,
    };
    coerce(v, t.target)
}

/// The placeholder for a deferred value at `path`.
pub fn deferred(path: &str) -> J {
    J::String(format!("{DEFERRED_PREFIX}{path}{DEFERRED_END}"))
}

/// Placeholder outputs of a shape: string leaves are deferred markers naming their path,
/// lists hold one item, maps are empty. Recursion is cut at a modest depth.
pub fn placeholder(shape: ShapeId, path: &str, depth: usize) -> J {
    let m = model::model();
    match &m.shape(shape).kind {
        ShapeKind::Structure { members, .. } => {
            if depth > 8 {
                return J::Object(Default::default());
            }
            J::Object(
                members
                    .iter()
                    .map(|mm| {
                        (
                            mm.name.clone(),
                            placeholder(mm.shape, &format!("{path}.{}", mm.name), depth + 1),
                        )
                    })
                    .collect(),
            )
        }
        ShapeKind::List { member, .. } => {
            if depth > 8 {
                return J::Array(vec![]);
            }
            J::Array(vec![placeholder(*member, &format!("{path}[0]"), depth + 1)])
        }
        ShapeKind::Map { .. } => J::Object(Default::default()),
        _ => deferred(path),
    }
}

/// Display form of a request: deferred markers become `<steps.invite.Id>`.
pub fn display(v: &J) -> J {
    match v {
        J::String(s) if is_deferred_str(s) => {
            let mut out = String::new();
            let mut rest = s.strip_prefix(DEFERRED_PREFIX).unwrap_or(s);
            // a whole-string marker whose content itself holds markers: show the inner text
            if rest.contains(DEFERRED_PREFIX) {
                rest = rest.trim_start_matches('\u{1}');
            }
            let mut r = rest;
            while let Some(i) = r.find(DEFERRED_PREFIX) {
                out.push_str(&r[..i]);
                let after = &r[i + DEFERRED_PREFIX.len()..];
                let end = after.find(DEFERRED_END).unwrap_or(after.len());
                out.push('<');
                out.push_str(&after[..end]);
                out.push('>');
                r = after.get(end + DEFERRED_END.len_utf8()..).unwrap_or("");
            }
            if let Some(end) = r.find(DEFERRED_END) {
                // a marker that began at the very start (prefix already stripped)
                out.push('<');
                out.push_str(&r[..end]);
                out.push('>');
                out.push_str(&r[end + DEFERRED_END.len_utf8()..]);
            } else {
                out.push_str(r);
            }
            J::String(out)
        }
        J::Array(a) => J::Array(a.iter().map(display).collect()),
        J::Object(o) => J::Object(o.iter().map(|(k, v)| (k.clone(), display(v))).collect()),
        other => other.clone(),
    }
}

// ---- filters ---------------------------------------------------------------------------

/// `"a; b;;c" | split(';')` → `["a", "b", "c"]`: items trimmed, empty items dropped (cells
/// from spreadsheets). The separator defaults to `;`.
fn filter_split(value: &str, sep: Option<&str>) -> MjValue {
    let sep = sep.filter(|s| !s.is_empty()).unwrap_or(";");
    MjValue::from(
        value
            .split(sep)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>(),
    )
}

/// `x | default('y')`: `y` when `x` is undefined, none, or an empty (or blank) string, as an
/// empty spreadsheet cell is.
fn filter_default(value: MjValue, other: Option<MjValue>) -> MjValue {
    let empty = value.is_undefined()
        || value.is_none()
        || value.as_str().is_some_and(|s| s.trim().is_empty());
    if empty {
        other.unwrap_or_else(|| MjValue::from(""))
    } else {
        value
    }
}

/// `"2026-01-31" | date("%Y-%m-%d")`: reformat a date. Reads ISO dates and timestamps,
/// `MM/DD/YYYY`, `DD.MM.YYYY`, `YYYY/MM/DD` and spreadsheet serial day numbers; an explicit
/// input format may be given as the second argument. The output format defaults to ISO.
fn filter_date(value: MjValue, fmt: Option<&str>, input: Option<&str>) -> Result<String, MjError> {
    use chrono::{NaiveDate, NaiveDateTime};
    let fmt = fmt.unwrap_or("%Y-%m-%d");
    let text = match value.as_str() {
        Some(s) => s.trim().to_string(),
        None => value.to_string(),
    };
    let bad = || {
        MjError::new(
            ErrorKind::InvalidOperation,
            format!("{text:?} is not a date this filter reads (try YYYY-MM-DD)"),
        )
    };
    let dt: NaiveDateTime = if let Some(inf) = input {
        NaiveDateTime::parse_from_str(&text, inf)
            .or_else(|_| {
                NaiveDate::parse_from_str(&text, inf).map(|d| d.and_time(Default::default()))
            })
            .map_err(|_| bad())?
    } else if let Ok(d) = chrono::DateTime::parse_from_rfc3339(&text) {
        d.naive_utc()
    } else if let Some(d) = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&text, f).ok())
    {
        d
    } else if let Some(d) = ["%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(&text, f).ok())
    {
        d.and_time(Default::default())
    } else if let Ok(serial) = text.parse::<f64>() {
        // spreadsheet serial date: days since 1899-12-30
        if !(1.0..=2_958_465.0).contains(&serial) {
            return Err(bad());
        }
        let base = NaiveDate::from_ymd_opt(1899, 12, 30).ok_or_else(bad)?;
        base.checked_add_days(chrono::Days::new(serial.floor() as u64))
            .ok_or_else(bad)?
            .and_time(Default::default())
    } else {
        return Err(bad());
    };
    let mut out = String::new();
    use std::fmt::Write as _;
    write!(out, "{}", dt.format(fmt)).map_err(|_| {
        MjError::new(
            ErrorKind::InvalidOperation,
            format!("{fmt:?} is not a valid date format"),
        )
    })?;
    Ok(out)
}

/// `"12345678901" | zfill(12)`: left-pad with zeros (spreadsheets drop leading zeros of
/// account ids).
fn filter_zfill(value: MjValue, width: usize) -> String {
    let s = match value.as_str() {
        Some(s) => s.trim().to_string(),
        None => value.to_string(),
    };
    let n = s.chars().count();
    if n >= width.min(1024) {
        s
    } else {
        "0".repeat(width.min(1024) - n) + &s
    }
}

/// `"1234-5678-9012" | digits` → `"123456789012"`.
fn filter_digits(value: MjValue) -> String {
    let s = match value.as_str() {
        Some(s) => s.to_string(),
        None => value.to_string(),
    };
    s.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn eval(src: &str, ctx: MjValue) -> Result<J, String> {
        let mut t = Templates::new();
        let tpl = t.compile(src, Pos::default(), None)?.expect("a template");
        t.eval(&tpl, &ctx)
    }

    #[test]
    fn a_sole_expression_keeps_its_type() {
        let ctx = context! { row => context!{ roles => "Distributor; Reseller;" , n => "5"} };
        assert_eq!(
            eval("{{ row.roles | split(';') }}", ctx.clone()).unwrap(),
            serde_json::json!(["Distributor", "Reseller"])
        );
        assert_eq!(eval("{{ 2 + 3 }}", ctx.clone()).unwrap(), J::from(5));
        assert_eq!(eval("n={{ 2 + 3 }}", ctx.clone()).unwrap(), J::from("n=5"));
        assert_eq!(
            eval("{{ row.missing | default('x') }}", ctx.clone()).unwrap(),
            J::from("x")
        );
        let e = eval("{{ row.missing }}", ctx.clone()).unwrap_err();
        assert!(e.starts_with("undefined value"), "{e}");
        let e = eval("a {{ row.missing }}", ctx).unwrap_err();
        assert!(e.starts_with("undefined value"), "{e}");
    }

    #[test]
    fn references_are_collected() {
        let mut t = Templates::new();
        let tpl = t
            .compile(
                "{{ steps.invite.Id }}-{{ row.a | upper }}{% for x in vars.list %}{{ x }}{% endfor %}",
                Pos::default(),
                None,
            )
            .unwrap()
            .unwrap();
        assert_eq!(tpl.refs, ["row.a", "steps.invite.Id", "vars.list"]);
    }

    #[test]
    fn filters_for_spreadsheet_data() {
        let ctx = context! { d => "01/31/2026", s => "46053", a => "12345678901" };
        assert_eq!(
            eval("{{ d | date }}", ctx.clone()).unwrap(),
            J::from("2026-01-31")
        );
        assert_eq!(
            eval("{{ '2026-01-31' | date('%d %b %Y') }}", ctx.clone()).unwrap(),
            J::from("31 Jan 2026")
        );
        assert_eq!(
            eval("{{ s | date }}", ctx.clone()).unwrap(),
            J::from("2026-01-31")
        );
        assert_eq!(
            eval("{{ a | zfill(12) }}", ctx.clone()).unwrap(),
            J::from("012345678901")
        );
        assert_eq!(
            eval("{{ '1234-5678' | digits }}", ctx.clone()).unwrap(),
            J::from("12345678")
        );
        assert!(eval("{{ 'soon' | date }}", ctx).is_err());
    }

    #[test]
    fn no_file_or_environment_access_and_bounded_loops() {
        let ctx = context! {};
        assert!(eval("{% include 'x' %}", ctx.clone()).is_err());
        let e = eval(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            ctx,
        )
        .unwrap_err();
        assert!(e.contains("too many"), "{e}");
    }

    #[test]
    fn coercion_follows_the_model() {
        let m = model::model();
        let max = m.shape_at_path(
            m.operation("ListEngagements").unwrap().input.unwrap(),
            &["MaxResults"],
        );
        assert_eq!(coerce(J::from("5"), max), J::from(5));
        let title = m.shape_at_path(
            m.operation("CreateEngagement").unwrap().input.unwrap(),
            &["Title"],
        );
        assert_eq!(coerce(J::from(5), title), J::from("5"));
    }

    #[test]
    fn deferred_values_display_as_their_path() {
        let d = deferred("steps.invite.Id");
        assert_eq!(display(&d), J::from("<steps.invite.Id>"));
        let J::String(s) = &d else { panic!() };
        let mixed = J::String(format!("{DEFERRED_PREFIX}see {s} now"));
        assert_eq!(display(&mixed), J::from("see <steps.invite.Id> now"));
    }
}
