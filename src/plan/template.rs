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

/// Items a template value may hold (all lists together), and bytes of text a render may
/// produce or a value may hold: far above any API request, far below what hurts.
pub const MAX_ITEMS: usize = 100_000;
pub const MAX_BYTES: usize = 16 << 20;

/// Template errors that start with this are over a size limit (code `TEMPLATE_LIMIT`).
pub const LIMIT_PREFIX: &str = "over a template limit: ";

fn limit_error(msg: String) -> MjError {
    MjError::new(ErrorKind::InvalidOperation, format!("{LIMIT_PREFIX}{msg}"))
}

/// Whether an error message from [`Templates::eval`] is over a size or step limit.
pub fn is_limit(msg: &str) -> bool {
    msg.starts_with(LIMIT_PREFIX)
}

/// Refuse a value with more items than [`MAX_ITEMS`] before anything iterates it.
fn check_len(v: &MjValue) -> Result<(), MjError> {
    match v.len() {
        Some(n) if n > MAX_ITEMS && v.as_str().is_none() => Err(limit_error(format!(
            "the value has {n} items; a template value may have at most {MAX_ITEMS}"
        ))),
        _ => Ok(()),
    }
}

/// The items of a sequence or iterable, at most [`MAX_ITEMS`] of them.
fn bounded_items(v: &MjValue) -> Result<Vec<MjValue>, MjError> {
    check_len(v)?;
    let mut out = Vec::new();
    for item in v.try_iter()? {
        if out.len() == MAX_ITEMS {
            return Err(limit_error(format!(
                "the value has more than {MAX_ITEMS} items; a template value may have at most {MAX_ITEMS}"
            )));
        }
        out.push(item);
    }
    Ok(out)
}

/// Walk a value as JSON would, counting items and string bytes; refuse it past the limits
/// before it is converted (a lazy `[1] * 1000000000` is never expanded).
fn check_size(
    v: &MjValue,
    items: &mut usize,
    bytes: &mut usize,
    depth: usize,
) -> Result<(), String> {
    use minijinja::value::ValueKind as K;
    let over = |what: &str| format!("{LIMIT_PREFIX}the value is too large: more than {what}");
    if depth > 64 {
        return Err(format!("{LIMIT_PREFIX}the value is nested too deeply"));
    }
    match v.kind() {
        K::String => {
            *bytes += v.as_str().map(str::len).unwrap_or(0);
        }
        K::Seq | K::Iterable | K::Map | K::Plain => {
            if v.len().is_some_and(|n| n > MAX_ITEMS) {
                return Err(over(&format!("{MAX_ITEMS} items")));
            }
            let Ok(iter) = v.try_iter() else {
                return Ok(());
            };
            let is_map = v.kind() == K::Map;
            for item in iter {
                *items += 1;
                if *items > MAX_ITEMS {
                    return Err(over(&format!("{MAX_ITEMS} items")));
                }
                if is_map {
                    *bytes += item.as_str().map(str::len).unwrap_or(0);
                    let val = v.get_item(&item).unwrap_or_default();
                    check_size(&val, items, bytes, depth + 1)?;
                } else {
                    check_size(&item, items, bytes, depth + 1)?;
                }
                if *bytes > MAX_BYTES {
                    return Err(over(&format!("{} MiB of text", MAX_BYTES >> 20)));
                }
            }
        }
        _ => {}
    }
    if *bytes > MAX_BYTES {
        return Err(over(&format!("{} MiB of text", MAX_BYTES >> 20)));
    }
    Ok(())
}

/// Collects a render's output, refusing more than [`MAX_BYTES`].
struct CappedOutput(Vec<u8>);

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_BYTES {
            return Err(std::io::Error::other("output limit"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Bounded replacements for the built-in filters that materialise or grow a value in one
// step (fuel counts instructions, not the work one filter does).
fn filter_list(v: MjValue) -> Result<MjValue, MjError> {
    if v.as_str().is_some() {
        return Ok(MjValue::from(
            v.as_str()
                .unwrap_or("")
                .chars()
                .map(|c| MjValue::from(c.to_string()))
                .take(MAX_ITEMS + 1)
                .collect::<Vec<_>>(),
        ));
    }
    Ok(MjValue::from(bounded_items(&v)?))
}

fn filter_join(v: MjValue, joiner: Option<&str>) -> Result<String, MjError> {
    let joiner = joiner.unwrap_or("");
    let mut out = String::new();
    let items = if v.as_str().is_some() {
        v.as_str()
            .unwrap_or("")
            .chars()
            .map(|c| MjValue::from(c.to_string()))
            .collect()
    } else {
        bounded_items(&v)?
    };
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(joiner);
        }
        use std::fmt::Write as _;
        let _ = write!(out, "{item}");
        if out.len() > MAX_BYTES {
            return Err(limit_error(format!(
                "the joined text is more than {} MiB",
                MAX_BYTES >> 20
            )));
        }
    }
    Ok(out)
}

fn filter_sort(
    state: &minijinja::State,
    v: MjValue,
    kwargs: minijinja::value::Kwargs,
) -> Result<MjValue, MjError> {
    let items = MjValue::from(bounded_items(&v)?);
    minijinja::filters::sort(state, items, kwargs)
}

fn filter_unique(
    state: &minijinja::State,
    v: MjValue,
    kwargs: minijinja::value::Kwargs,
) -> Result<MjValue, MjError> {
    let items = MjValue::from(bounded_items(&v)?);
    minijinja::filters::unique(state, items, kwargs)
}

fn filter_reverse(v: MjValue) -> Result<MjValue, MjError> {
    if v.as_str().is_some() {
        return minijinja::filters::reverse(&v);
    }
    let mut items = bounded_items(&v)?;
    items.reverse();
    Ok(MjValue::from(items))
}

fn filter_batch(
    state: &minijinja::State,
    v: MjValue,
    count: usize,
    fill: Option<MjValue>,
) -> Result<MjValue, MjError> {
    if count > MAX_ITEMS {
        return Err(limit_error(format!("batch({count}): at most {MAX_ITEMS}")));
    }
    let items = MjValue::from(bounded_items(&v)?);
    minijinja::filters::batch(state, items, count, fill)
}

fn filter_replace(v: &str, from: &str, to: &str, count: Option<usize>) -> Result<String, MjError> {
    let n = if from.is_empty() {
        v.chars().count() + 1
    } else {
        v.matches(from).count()
    };
    let n = count.map_or(n, |c| c.min(n));
    let size = v.len() - n * from.len() + n * to.len();
    if size > MAX_BYTES {
        return Err(limit_error(format!(
            "replace would make {size} bytes of text; at most {} MiB",
            MAX_BYTES >> 20
        )));
    }
    Ok(match count {
        Some(c) => v.replacen(from, to, c),
        None => v.replace(from, to),
    })
}

fn check_width(name: &str, width: Option<usize>) -> Result<(), MjError> {
    match width {
        Some(w) if w > 10_000 => Err(limit_error(format!(
            "{name}({w}): the width may be at most 10000"
        ))),
        _ => Ok(()),
    }
}

fn filter_center(v: &str, width: Option<usize>) -> Result<String, MjError> {
    check_width("center", width)?;
    let w = width.unwrap_or(80);
    let n = v.chars().count();
    if n >= w {
        return Ok(v.to_string());
    }
    let left = (w - n) / 2;
    Ok(format!(
        "{}{v}{}",
        " ".repeat(left),
        " ".repeat(w - n - left)
    ))
}

fn filter_indent(
    v: &str,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
) -> Result<String, MjError> {
    check_width("indent", width)?;
    let pad = " ".repeat(width.unwrap_or(4));
    let lines = v.lines().count().max(1);
    if lines.saturating_mul(pad.len()) + v.len() > MAX_BYTES {
        return Err(limit_error(format!(
            "indent would make more than {} MiB of text",
            MAX_BYTES >> 20
        )));
    }
    let mut out = String::with_capacity(v.len() + lines * pad.len());
    for (i, line) in v.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let indent =
            (i > 0 || first.unwrap_or(false)) && (!line.is_empty() || blank.unwrap_or(false));
        if indent {
            out.push_str(&pad);
        }
        out.push_str(line);
    }
    Ok(out)
}

fn filter_string(v: MjValue) -> Result<MjValue, MjError> {
    if v.as_str().is_some() {
        return Ok(v);
    }
    let mut items = 0;
    let mut bytes = 0;
    check_size(&v, &mut items, &mut bytes, 0)
        .map_err(|e| MjError::new(ErrorKind::InvalidOperation, e))?;
    Ok(MjValue::from(v.to_string()))
}

fn filter_tojson(
    v: MjValue,
    indent: Option<MjValue>,
    kwargs: minijinja::value::Kwargs,
) -> Result<MjValue, MjError> {
    let mut items = 0;
    let mut bytes = 0;
    check_size(&v, &mut items, &mut bytes, 0)
        .map_err(|e| MjError::new(ErrorKind::InvalidOperation, e))?;
    minijinja::filters::tojson(&v, indent, kwargs)
}

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
    /// The playbook's file name, for the memory guard's last-resort message.
    file: &'static str,
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
    let detail = e.detail().unwrap_or("");
    if detail.starts_with(LIMIT_PREFIX) {
        return detail.to_string();
    }
    if [
        "repeated string is too large",
        "range has too many elements",
    ]
    .contains(&detail)
    {
        return format!("{LIMIT_PREFIX}{detail}");
    }
    let mut s = match e.kind() {
        ErrorKind::UndefinedError => "undefined value".to_string(),
        ErrorKind::OutOfFuel => {
            format!("{LIMIT_PREFIX}the template takes too many steps to evaluate")
        }
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
        env.add_filter("list", filter_list);
        env.add_filter("join", filter_join);
        env.add_filter("sort", filter_sort);
        env.add_filter("unique", filter_unique);
        env.add_filter("reverse", filter_reverse);
        env.add_filter("batch", filter_batch);
        env.add_filter("replace", filter_replace);
        env.add_filter("center", filter_center);
        env.add_filter("indent", filter_indent);
        env.add_filter("string", filter_string);
        env.add_filter("tojson", filter_tojson);
        Templates {
            env,
            count: 0,
            file: "playbook",
        }
    }

    /// Name the playbook the templates come from (in the memory guard's message).
    pub fn set_file(&mut self, file: &str) {
        // once per loaded playbook: a few bytes for the life of the process
        self.file = Box::leak(file.to_string().into_boxed_str());
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
        let _guard = guard::Render::enter(self.file, t.pos.line, t.pos.col);
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
            let (mut items, mut bytes) = (0, 0);
            check_size(&v, &mut items, &mut bytes, 0)?;
            to_json(&v)
        } else {
            let mut out = CappedOutput(Vec::new());
            match tmpl.render_captured_to(ctx, &mut out) {
                Ok(_) => Ok(J::String(String::from_utf8_lossy(&out.0).into_owned())),
                Err(e) if e.kind() == ErrorKind::WriteFailure => Err(format!(
                    "{LIMIT_PREFIX}the template renders more than {} MiB of text",
                    MAX_BYTES >> 20
                )),
                Err(e) => Err(describe(&e)),
            }
        }
    }

    /// Evaluate an expression for its truth.
    pub fn truth(&self, t: &Tpl, ctx: &MjValue) -> Result<bool, String> {
        let tmpl = self.env.get_template(&t.name).map_err(|e| describe(&e))?;
        let _guard = guard::Render::enter(self.file, t.pos.line, t.pos.col);
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
            format!(
                "{} is not a date this filter reads (try YYYY-MM-DD)",
                crate::model::quote(&text)
            ),
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

/// The last resort behind the size limits: a global allocator wrapper that counts the live
/// bytes a thread allocates while it renders a template. A render past [`guard::HARD_LIMIT`]
/// (something the limits above did not foresee) stops cosell with a located
/// `TEMPLATE_LIMIT` error and exit 2, instead of the allocation failure aborting the process
/// (exit 134) or the machine swapping. Outside renders it costs one thread-local read.
pub mod guard {
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::Cell;

    /// Live bytes one render may allocate.
    pub const HARD_LIMIT: isize = 1 << 30;

    thread_local! {
        static DEPTH: Cell<u32> = const { Cell::new(0) };
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static AT: Cell<(&'static str, u32, u32)> = const { Cell::new(("", 0, 0)) };
    }

    /// A render in progress on this thread (a scope guard).
    pub struct Render(());

    impl Render {
        pub fn enter(file: &'static str, line: u32, col: u32) -> Render {
            let _ = DEPTH.try_with(|d| {
                if d.get() == 0 {
                    let _ = LIVE.try_with(|l| l.set(0));
                    let _ = AT.try_with(|a| a.set((file, line, col)));
                }
                d.set(d.get() + 1);
            });
            Render(())
        }
    }

    impl Drop for Render {
        fn drop(&mut self) {
            let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
        }
    }

    fn account(delta: isize) {
        let _ = DEPTH.try_with(|d| {
            if d.get() == 0 {
                return;
            }
            let _ = LIVE.try_with(|l| {
                let v = l.get().saturating_add(delta);
                l.set(v);
                if v > HARD_LIMIT {
                    d.set(0); // what follows allocates freely
                    trip();
                }
            });
        });
    }

    fn trip() {
        use std::io::Write as _;
        let (file, line, col) = AT.try_with(Cell::get).unwrap_or(("playbook", 0, 0));
        // stderr is unbuffered: these writes do not allocate
        let mut e = std::io::stderr().lock();
        let _ = writeln!(
            e,
            "{file}:{line}:{col}: error[TEMPLATE_LIMIT]: the template needs more than {} MiB of \
             memory to render; cosell stopped here. A template builds one request value: look \
             for repetition (`*`), `range` or joins over large lists",
            HARD_LIMIT >> 20
        );
        std::process::exit(2);
    }

    /// Wraps the process's allocator (see the module documentation).
    pub struct Guarded<A>(pub A);

    // SAFETY: every call is forwarded unchanged to the wrapped allocator; the wrapper only
    // counts sizes in thread-locals that need no allocation.
    unsafe impl<A: GlobalAlloc> GlobalAlloc for Guarded<A> {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            account(layout.size() as isize);
            // SAFETY: forwarded with the caller's guarantees
            unsafe { self.0.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            account(layout.size() as isize);
            // SAFETY: forwarded with the caller's guarantees
            unsafe { self.0.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            account(-(layout.size() as isize));
            // SAFETY: forwarded with the caller's guarantees
            unsafe { self.0.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            account(new_size as isize - layout.size() as isize);
            // SAFETY: forwarded with the caller's guarantees
            unsafe { self.0.realloc(ptr, layout, new_size) }
        }
    }
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
