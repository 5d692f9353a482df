//! Plans: templates, expansion over rows, offline validation, the plan summary, and the
//! runtime API the engine calls ([`Campaign`]).
//!
//! Owns turning a parsed playbook and a CSV into requests: compiling templates, checking what
//! they reference, rendering each step of each row, filling `Catalog` and `ClientToken`, and
//! validating every request with the model, offline. Must not touch: the network, journals,
//! ledgers (the engine writes those), the CSV beyond reading it.

// A Diagnostic is large, but it is the error of the agreed runtime API and only built on the
// cold path; boxing it would complicate every caller for no measurable gain.
#![allow(clippy::result_large_err)]

mod check;
pub mod commands;
pub mod patch;
#[cfg(test)]
mod proptests;
pub mod schema;
pub mod summary;
pub mod template;

pub use crate::playbook::{Diagnostic, Diagnostics, Location, MaxFailures, RateTarget, Severity};

use crate::input::listed::ListedReader;
use crate::input::{Input, Source};
use crate::model::{self, QuotaClass, ShapeId, ShapeKind};
use crate::playbook::{self, Playbook, Pos, StepSpec};
use minijinja::value::Value as MjValue;
use serde_json::{Map, Value as J};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use template::{TNode, Templates, Tpl};

/// Concurrency when the playbook sets none.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// The limits a run observes.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub concurrency: usize,
    /// Requests per second: every quota class (documented rate unless configured), then the
    /// configured per-operation rates.
    pub rates: Vec<(RateTarget, f64)>,
    /// Requests per rolling 24 hours per class: documented budgets unless configured.
    pub daily: Vec<(QuotaClass, u64)>,
    /// Default: `Percent(100.0)` (never stop for failed rows).
    pub max_failures: MaxFailures,
    /// `limits.daily_wait`: wait for room in a spent rolling window instead of stopping.
    pub daily_wait: bool,
}

impl Limits {
    /// The rate of a quota class.
    pub fn class_rate(&self, class: QuotaClass) -> f64 {
        self.rates
            .iter()
            .find(|(t, _)| *t == RateTarget::Class(class))
            .map(|(_, r)| *r)
            .unwrap_or(class.documented().rate)
    }
    /// The configured rate of one operation, if any.
    pub fn operation_rate(&self, op: &str) -> Option<f64> {
        self.rates.iter().find_map(|(t, r)| match t {
            RateTarget::Operation(o) if o == op => Some(*r),
            _ => None,
        })
    }
    /// The rolling 24-hour budget of a class, if any.
    pub fn daily_budget(&self, class: QuotaClass) -> Option<u64> {
        self.daily
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, n)| *n)
    }
}

/// Where a value in a request comes from, for locating findings.
#[derive(Debug, Clone, PartialEq)]
enum Origin {
    /// No CSV data (a literal, vars, outputs): the same for every row.
    Fixed,
    /// Exactly one CSV column.
    Column(String),
    /// Several CSV columns.
    Row,
}

fn origin_of(t: &Tpl) -> Origin {
    let cols: HashSet<&str> = t.row_columns().collect();
    match cols.len() {
        0 if t.refs.iter().any(|r| r == "row") => Origin::Row,
        0 => Origin::Fixed,
        1 => Origin::Column(cols.into_iter().next().unwrap_or_default().to_string()),
        _ => Origin::Row,
    }
}

/// Where a compiled tree's value comes from: one template's origin, or the row.
fn origin_of_tree(n: &TNode) -> Origin {
    match n {
        TNode::Lit(_) => Origin::Fixed,
        TNode::Tpl(t) => origin_of(t),
        _ => Origin::Row,
    }
}

/// One step of the playbook, compiled.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    /// The API operation.
    pub action: String,
    /// `Some(timeout)` when the step waits for its task to finish.
    pub wait: Option<Duration>,
    /// Time between polls when waiting.
    pub poll_interval: Duration,
    /// The operation that polls a waiting step (its waiter's, from the operation table).
    pub poll_action: Option<&'static str>,
    /// `paginate: true` on a paginated List: follow the paginator, collect every page.
    pub paginate: Option<Paginate>,
    /// Whether the step is in `setup`.
    pub setup: bool,
    pub description: Option<String>,
    /// Position of the step in the playbook.
    pub pos: Pos,
    input: TNode,
    input_pos: Pos,
    /// `patch:` on an update that replaces a whole record.
    patch: Option<Patch>,
    at: HashMap<String, (Pos, Origin)>,
    when: Option<Tpl>,
    expect: Vec<Expect>,
}

/// A `patch` step's update and its compiled patch (rendered per row, merged over the record
/// read at run time: [`patch::merge`]).
#[derive(Debug, Clone)]
pub struct Patch {
    pub update: &'static model::update::UpdateSpec,
    tree: TNode,
}

/// How a `paginate: true` step pages: the operation's paginator and the playbook's
/// `max_items`.
#[derive(Debug, Clone, Copy)]
pub struct Paginate {
    pub paginator: &'static model::Paginator,
    pub max_items: Option<u64>,
}

/// One `expect` entry: the output member path, where its value is, the compiled value and
/// the model shape of the member (what the value is checked against).
#[derive(Debug, Clone)]
struct Expect {
    path: String,
    pos: Pos,
    node: TNode,
    target: Option<ShapeId>,
}

impl Step {
    /// `steps.<id>` or `setup.<id>`: how templates name this step.
    pub fn qualified(&self) -> String {
        format!("{}.{}", if self.setup { "setup" } else { "steps" }, self.id)
    }
    /// The shape of what the step contributes to `steps.<id>`: the task summary when it
    /// waits, otherwise the operation's output.
    pub fn output_shape(&self) -> Option<ShapeId> {
        output_shape(&self.action, self.wait.is_some())
    }
    pub fn has_when(&self) -> bool {
        self.when.is_some()
    }
    pub fn has_expect(&self) -> bool {
        !self.expect.is_empty()
    }
    /// The update a `patch` step makes (None: not a patch step).
    pub fn patch(&self) -> Option<&'static model::update::UpdateSpec> {
        self.patch.as_ref().map(|p| p.update)
    }
}

fn output_shape(action: &str, waits: bool) -> Option<ShapeId> {
    let m = model::model();
    if waits {
        if let Some(w) = model::ops::waiter(action) {
            return w.output_shape();
        }
    }
    m.operation(action)?.output
}

/// One data row of the CSV, with its rendered key.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 0-based index among data rows.
    pub index: u64,
    /// Physical line (1-based) where the record starts.
    pub line: u64,
    pub key: String,
    /// Column name → trimmed value, in header order (a CSV row).
    pub values: Vec<(Arc<str>, String)>,
    /// The item, for a row listed by `input.list` (then `values` is empty).
    pub item: Option<Arc<J>>,
}

impl Row {
    pub fn get(&self, column: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| &**k == column)
            .map(|(_, v)| v.as_str())
    }
    fn to_mj(&self) -> MjValue {
        if let Some(item) = &self.item {
            return MjValue::from_serialize(&**item);
        }
        MjValue::from_iter(
            self.values
                .iter()
                .map(|(k, v)| (MjValue::from(&**k), MjValue::from(v.as_str()))),
        )
    }
}

/// What templates see at one point of a run.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    pub row: Option<&'a Row>,
    /// `setup.<id>` → that setup step's output.
    pub setup: &'a Map<String, J>,
    /// `steps.<id>` → this row's earlier steps' outputs.
    pub steps: &'a Map<String, J>,
}

/// The deterministic idempotency token of one step of one row: `cosell-` and 40 hex digits
/// of SHA-256 over (playbook name, row key, step id). 47 printable ASCII characters.
pub fn client_token(playbook: &str, row_key: &str, step_id: &str) -> String {
    client_token_generation(playbook, row_key, step_id, 0)
}

/// The token of a step's `generation`-th redrive (`resume --retry-failed` of a failed step):
/// generation 0 is [`client_token`]; a later one also hashes NUL and the generation number,
/// so a redriven step is a new request to the service, yet the same on every retry and resume.
pub fn client_token_generation(
    playbook: &str,
    row_key: &str,
    step_id: &str,
    generation: u32,
) -> String {
    let mut h = Sha256::new();
    h.update(playbook.as_bytes());
    h.update([0]);
    h.update(row_key.as_bytes());
    h.update([0]);
    h.update(step_id.as_bytes());
    if generation > 0 {
        h.update([0]);
        h.update(generation.to_string().as_bytes());
    }
    let d = h.finalize();
    let mut s = String::with_capacity(47);
    s.push_str("cosell-");
    for b in &d[..20] {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The row key used for setup steps' tokens.
pub const SETUP_KEY: &str = "setup";

/// Renders row keys; shared with [`Rows`] so they own what they need.
#[derive(Debug)]
struct KeyRenderer {
    templates: Templates,
    key: Option<Tpl>,
    vars: MjValue,
    run: MjValue,
}

impl KeyRenderer {
    fn key(&self, line: u64, row: &MjValue) -> Result<String, String> {
        match &self.key {
            None => Ok(line.to_string()),
            Some(t) => {
                let ctx = minijinja::context! { row => row.clone(), vars => self.vars.clone(), run => self.run.clone() };
                let v = self.templates.eval(t, &ctx)?;
                let s = match v {
                    J::String(s) => s,
                    J::Null => String::new(),
                    other => other.to_string(),
                };
                let s = s.trim().to_string();
                if s.is_empty() {
                    Err("the row key is empty".into())
                } else {
                    Ok(s)
                }
            }
        }
    }
}

/// Streams the CSV's rows with their keys rendered. Duplicate keys are found by
/// [`Campaign::validate`], not here.
pub struct Rows {
    reader: RowReader,
    /// Where the rows come from (for locations).
    source: Source,
    keys: Arc<KeyRenderer>,
    playbook_file: String,
}

/// Where rows are read from: a CSV or a sheet ([`Input`]), or the rows `input.list` listed.
enum RowReader {
    Input(Input),
    Listed(ListedReader),
}

impl RowReader {
    fn sheet(&self) -> Option<&str> {
        match self {
            RowReader::Input(r) => r.sheet(),
            RowReader::Listed(_) => None,
        }
    }
    fn peek_index(&mut self) -> Option<u64> {
        match self {
            RowReader::Input(r) => r.peek_index(),
            RowReader::Listed(r) => r.peek_index(),
        }
    }
    /// The next row (key not rendered yet).
    fn next_row(&mut self) -> Option<Result<Row, Diagnostic>> {
        Some(match self {
            RowReader::Input(r) => {
                let rec = r.next_record()?;
                rec.map(|rec| Row {
                    index: rec.index,
                    line: rec.line,
                    key: String::new(),
                    values: r.columns().iter().cloned().zip(rec.values).collect(),
                    item: None,
                })
            }
            RowReader::Listed(r) => r.next_row()?.map(|lr| Row {
                index: lr.index,
                line: lr.line,
                key: String::new(),
                values: Vec::new(),
                item: Some(Arc::new(lr.item)),
            }),
        })
    }
}

impl Rows {
    /// The input's header; for listed rows, none.
    pub fn columns(&self) -> Vec<String> {
        match &self.reader {
            RowReader::Input(r) => r.columns().iter().map(|c| c.to_string()).collect(),
            RowReader::Listed(_) => Vec::new(),
        }
    }
}

impl Iterator for Rows {
    type Item = Result<Row, Diagnostic>;
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_with_context()?.map(|(r, _)| r))
    }
}

impl Rows {
    /// The next record, built into a [`Row`] (key rendered) only when `skip(index)` is
    /// false; `Ok(None)` for a skipped record. Resume uses it to pass over the rows an earlier
    /// process finished without paying for their keys.
    pub fn next_unless(
        &mut self,
        skip: impl Fn(u64) -> bool,
    ) -> Option<Result<Option<Row>, Diagnostic>> {
        if self.reader.peek_index().is_some_and(&skip) {
            return Some(self.reader.next_row()?.map(|_| None));
        }
        Some(self.next()?.map(Some))
    }

    /// The next row and its template value (built once, reused by the dry run).
    fn next_with_context(&mut self) -> Option<Result<(Row, MjValue), Diagnostic>> {
        let mut row = match self.reader.next_row()? {
            Ok(r) => r,
            Err(d) => return Some(Err(d)),
        };
        let mj = row.to_mj();
        match self.keys.key(row.line, &mj) {
            Ok(k) => {
                row.key = k;
                Some(Ok((row, mj)))
            }
            Err(e) => {
                let pos = self.keys.key.as_ref().map(|t| t.pos).unwrap_or_default();
                Some(Err(Diagnostic::error(
                    Location::Playbook {
                        file: self.playbook_file.clone(),
                        line: pos.line,
                        col: pos.col,
                    },
                    "INVALID_ROW_KEY",
                    format!("input.key: {e}"),
                )
                .with_origin(Some(self.source.at(self.reader.sheet(), row.line, None)))
                .with_row(row.index)))
            }
        }
    }
}

/// The result of a full dry run.
#[derive(Debug, Clone)]
pub struct Report {
    pub diagnostics: Diagnostics,
    /// Data rows read.
    pub rows: u64,
    /// Requests rendered and validated (setup steps once, steps once per row).
    pub requests: u64,
    pub columns: Vec<String>,
    /// The first requests rendered (display form: deferred values as `<steps.invite.Id>`),
    /// when asked for by `plan --show`.
    pub shown: Vec<ShownRequest>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ShownRequest {
    pub step: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub request: J,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        !self.diagnostics.has_errors()
    }
}

/// The compiled `emulate:` of a playbook.
#[derive(Debug)]
struct Rehearsal {
    fixture: Option<(Pos, TNode)>,
    each_row: Option<(Pos, TNode)>,
    task_delay: Option<Duration>,
}

/// A playbook compiled for a campaign: everything needed to render any request of any row.
#[derive(Debug)]
pub struct Campaign {
    playbook: Playbook,
    playbook_path: PathBuf,
    input: Source,
    /// The sheet read, once the input was opened (workbooks only).
    sheet: std::sync::OnceLock<String>,
    vars: BTreeMap<String, J>,
    vars_mj: MjValue,
    run_mj: MjValue,
    limits: Limits,
    setup: Vec<Step>,
    steps: Vec<Step>,
    templates: Templates,
    keys: Arc<KeyRenderer>,
    ledger: Vec<(String, Tpl)>,
    /// `emulate:`: the rehearsal fixture (only `--emulate` uses it).
    rehearsal: Option<Rehearsal>,
    /// Row columns the templates read: (position, column, guarded by `default`).
    row_refs: Vec<(Pos, String, bool)>,
    /// `input.list`: rows listed when the run starts (then read from the run directory's
    /// `rows.jsonl`, which `--input` names on resume).
    list: Option<ListInput>,
    warnings: Diagnostics,
    digest: String,
}

/// `a/b/../c` → `a/c` (lexically), so shown paths stay readable.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Template globals that are not variables.
const GLOBALS: &[&str] = &["range", "dict", "namespace", "debug", "loop", "self"];
/// What templates can read.
const ROOTS: &[&str] = &["row", "vars", "setup", "steps", "run"];

#[derive(Clone, Copy, PartialEq)]
enum Scope {
    /// A setup step at this index.
    Setup(usize),
    /// A row step at this index.
    Step(usize),
    /// `input.key`.
    Key,
    /// `ledger.columns` (after all steps).
    Ledger,
}

struct Compiler<'a> {
    pb: &'a Playbook,
    vars: &'a BTreeMap<String, J>,
    diags: Diagnostics,
    row_refs: Vec<(Pos, String, bool)>,
    /// Every `row.a.b…` path read (for `input.list`, checked against the item shape).
    row_paths: Vec<(Pos, Vec<String>, bool)>,
}

impl Compiler<'_> {
    fn at(&self, pos: Pos) -> Location {
        Location::Playbook {
            file: self.pb.file.clone(),
            line: pos.line,
            col: pos.col,
        }
    }
    fn err(&mut self, pos: Pos, code: &str, msg: String, sug: Option<&str>, step: Option<&str>) {
        let mut d = Diagnostic::error(self.at(pos), code, msg).with_suggestion(sug);
        d.step = step.map(str::to_string);
        self.diags.push(d);
    }

    /// Check what a template reads.
    fn check_refs(&mut self, t: &Tpl, scope: Scope, step: Option<&str>) {
        let pb = self.pb;
        for r in &t.refs {
            let segs: Vec<&str> = r.split('.').collect();
            let head = segs[0];
            match head {
                "row" => {
                    if let Scope::Setup(_) = scope {
                        self.err(
                            t.pos,
                            "ROW_IN_SETUP",
                            "setup steps run once, before any row: they cannot read row".into(),
                            None,
                            step,
                        );
                    } else if let Some(col) = segs.get(1) {
                        let guarded = t.source.contains("default")
                            || t.source.contains("| d(")
                            || t.source.contains("|d(");
                        self.row_refs.push((t.pos, col.to_string(), guarded));
                        self.row_paths.push((
                            t.pos,
                            segs[1..].iter().map(|s| s.to_string()).collect(),
                            guarded,
                        ));
                    }
                }
                "vars" => {
                    if let Some(name) = segs.get(1) {
                        if !self.vars.contains_key(*name) {
                            let sug = model::nearest(name, self.vars.keys().map(String::as_str));
                            let known: Vec<&str> = self.vars.keys().map(String::as_str).collect();
                            self.err(t.pos, "UNKNOWN_VAR", format!("vars.{name} is not defined (vars: {}); define it under vars or pass --var {name}=VALUE", if known.is_empty() { "none".to_string() } else { known.join(", ") }), sug, step);
                        }
                    }
                }
                "run" => {
                    if let Some(m) = segs.get(1) {
                        if !["name", "catalog"].contains(m) {
                            let sug = model::nearest(m, ["name", "catalog"]);
                            self.err(
                                t.pos,
                                "UNKNOWN_VARIABLE",
                                format!("run.{m} does not exist; run has name and catalog"),
                                sug,
                                step,
                            );
                        }
                    }
                }
                "setup" | "steps" => {
                    if scope == Scope::Key {
                        self.err(
                            t.pos,
                            "INVALID_REFERENCE",
                            format!("input.key can read only row, vars and run, not {head}"),
                            None,
                            step,
                        );
                        continue;
                    }
                    if head == "steps" {
                        if let Scope::Setup(_) = scope {
                            self.err(t.pos, "STEPS_IN_SETUP", "setup steps run once, before any row: they cannot read steps (use setup.<id> for earlier setup steps)".into(), None, step);
                            continue;
                        }
                    }
                    let Some(id) = segs.get(1) else { continue };
                    let (list, other) = if head == "setup" {
                        (&pb.setup, &pb.steps)
                    } else {
                        (&pb.steps, &pb.setup)
                    };
                    let Some(idx) = list.iter().position(|s| s.id.value == *id) else {
                        if other.iter().any(|s| s.id.value == *id) {
                            let right = if head == "setup" { "steps" } else { "setup" };
                            self.err(
                                t.pos,
                                "UNKNOWN_STEP",
                                format!(
                                    "{head}.{id}: {id} is a{} step; write {right}.{id}",
                                    if right == "setup" { " setup" } else { " row" }
                                ),
                                None,
                                step,
                            );
                        } else {
                            let sug = model::nearest(id, list.iter().map(|s| s.id.value.as_str()));
                            let names: Vec<&str> =
                                list.iter().map(|s| s.id.value.as_str()).collect();
                            self.err(
                                t.pos,
                                "UNKNOWN_STEP",
                                format!(
                                    "{head}.{id}: there is no {} step {id:?} (known: {})",
                                    if head == "setup" { "setup" } else { "row" },
                                    if names.is_empty() {
                                        "none".into()
                                    } else {
                                        names.join(", ")
                                    }
                                ),
                                sug,
                                step,
                            );
                        }
                        continue;
                    };
                    let later = match scope {
                        Scope::Setup(i) if head == "setup" => idx >= i,
                        Scope::Step(i) if head == "steps" => idx >= i,
                        _ => false,
                    };
                    if later {
                        self.err(t.pos, "FORWARD_REFERENCE", format!("{head}.{id} is not available here: a step can read only the outputs of steps before it, and {id} {}", if Some(*id) == step.map(|s| s.rsplit('.').next().unwrap_or(s)) { "is this step" } else { "runs later" }), None, step);
                        continue;
                    }
                    let spec = &list[idx];
                    check_output_path(self, t.pos, spec, &segs[2..], &format!("{head}.{id}"), step);
                }
                _ if GLOBALS.contains(&head) => {}
                _ => {
                    let sug = model::nearest(head, ROOTS.iter().copied());
                    self.err(t.pos, "UNKNOWN_VARIABLE", format!("unknown variable {head:?}; templates can read row, vars, setup, steps and run"), sug, step);
                }
            }
        }
    }

    fn check_tree(&mut self, n: &TNode, scope: Scope, step: Option<&str>) {
        match n {
            TNode::Lit(_) => {}
            TNode::Tpl(t) => self.check_refs(t, scope, step),
            TNode::Arr(items) => items.iter().for_each(|i| self.check_tree(i, scope, step)),
            TNode::Obj(es) => es.iter().for_each(|(_, i)| self.check_tree(i, scope, step)),
        }
    }
}

/// Check `steps.<id>.A.B` against the output shape of the step.
fn check_output_path(
    c: &mut Compiler,
    pos: Pos,
    spec: &StepSpec,
    path: &[&str],
    name: &str,
    step: Option<&str>,
) {
    let m = model::model();
    let Some(mut shape) = output_shape(&spec.action.value, spec.wait.is_some()) else {
        return;
    };
    let mut walked = name.to_string();
    for seg in path {
        let s = m.shape(shape);
        match &s.kind {
            ShapeKind::Structure { members, .. } => match s.member(seg) {
                Some(mm) => {
                    shape = mm.shape;
                    walked.push('.');
                    walked.push_str(seg);
                }
                None => {
                    let names: Vec<&str> = members.iter().map(|mm| mm.name.as_str()).collect();
                    let sug = model::nearest(seg, names.iter().copied());
                    let what = if walked == name {
                        format!(
                            "{} {}",
                            spec.action.value,
                            if spec.wait.is_some() {
                                "(waited: the task summary)"
                            } else {
                                ""
                            }
                        )
                    } else {
                        walked.clone()
                    };
                    c.err(
                        pos,
                        "UNKNOWN_OUTPUT_MEMBER",
                        format!(
                            "{walked}.{seg} does not exist; {} has: {}",
                            what.trim_end(),
                            names.join(", ")
                        ),
                        sug,
                        step,
                    );
                    return;
                }
            },
            _ => return,
        }
    }
}

/// `input.list`, compiled: what to list, how to keep rows, what a row is.
#[derive(Debug)]
pub struct ListInput {
    pub action: String,
    /// The first page's request, rendered (vars and run only) and checked against the model.
    pub request: J,
    /// The paginator (every List action with `input.list` has one).
    pub paginator: &'static model::Paginator,
    /// The shape of one item (a row).
    pub item_shape: ShapeId,
    /// `input.where`: its source and compiled expression.
    pub filter: Option<(String, Tpl)>,
    pos: Pos,
    tree: TNode,
}

/// The List actions that can feed rows: those with a paginator.
fn listable() -> Vec<&'static str> {
    model::ops::operations()
        .iter()
        .filter(|o| o.paginator.is_some())
        .map(|o| o.name)
        .collect()
}

fn compile_list(
    c: &mut Compiler,
    l: &playbook::ListSpec,
    filter: Option<&playbook::Node>,
    templates: &mut Templates,
) -> Option<ListInput> {
    let m = model::model();
    let name = l.action.value.as_str();
    let Some(row) = model::ops::operation(name) else {
        let sug = model::nearest(name, listable());
        c.err(
            l.action.pos,
            "UNKNOWN_ACTION",
            format!("input.list.action {name:?} is not an operation of the API"),
            sug,
            None,
        );
        return None;
    };
    let Some(paginator) = row.paginator else {
        c.err(
            l.action.pos,
            "LIST_NOT_PAGINATED",
            format!(
                "input.list.action {name} is not a paginated List operation; rows can come from: {}",
                listable().join(", ")
            ),
            None,
            None,
        );
        return None;
    };
    let op = m.operation(name)?;
    let item_shape = op
        .output
        .and_then(|o| m.shape(o).member(&paginator.result_key))
        .and_then(|mm| match &m.shape(mm.shape).kind {
            ShapeKind::List { member, .. } => Some(*member),
            _ => None,
        })?;
    let mut errors = Vec::new();
    let tree = match &l.input {
        Some(n) => templates.compile_tree(
            n,
            op.input,
            &mut String::new(),
            &mut HashMap::new(),
            &mut errors,
        ),
        None => TNode::Lit(J::Object(Map::new())),
    };
    for (pos, e) in errors {
        c.err(
            pos,
            "TEMPLATE_SYNTAX",
            format!("input.list: {e}"),
            None,
            None,
        );
    }
    // like the first setup step: no row, no setup outputs yet
    c.check_tree(&tree, Scope::Setup(0), Some("input.list"));
    let filter = filter.and_then(|f| {
        let src = match &f.value {
            playbook::Value::Str(s) => s.clone(),
            _ => return None,
        };
        match templates.compile_expression(&src, f.pos) {
            Ok(t) => {
                c.check_refs(&t, Scope::Key, Some("input.where"));
                Some((src, t))
            }
            Err(e) => {
                c.err(
                    f.pos,
                    "TEMPLATE_SYNTAX",
                    format!("input.where: {e}"),
                    None,
                    None,
                );
                None
            }
        }
    });
    Some(ListInput {
        action: name.to_string(),
        request: J::Null,
        paginator,
        item_shape,
        filter,
        pos: l.pos,
        tree,
    })
}

/// Render the list request once (it reads only vars and run), fill `Catalog`, check it.
fn render_list_request(
    templates: &Templates,
    l: &mut ListInput,
    ctx: &MjValue,
    pb: &Playbook,
) -> Result<(), Diagnostics> {
    let at = |pos: Pos| Location::Playbook {
        file: pb.file.clone(),
        line: pos.line,
        col: pos.col,
    };
    let mut diags = Diagnostics::new();
    let mut errs = Vec::new();
    let mut req =
        render_tree(templates, &l.tree, ctx, &mut String::new(), &mut errs).unwrap_or(J::Null);
    if let Some((path, e)) = errs.into_iter().next() {
        diags.push(Diagnostic::error(
            at(l.pos),
            template_code(&e),
            format!("input.list.input.{path}: {e}"),
        ));
        return Err(diags);
    }
    if !req.is_object() {
        req = J::Object(Map::new());
    }
    if let Some(o) = req.as_object_mut() {
        o.entry("Catalog")
            .or_insert_with(|| J::String(pb.catalog.value.clone()));
    }
    for v in model::model().validate_input(&l.action, &req) {
        diags.push(
            Diagnostic::error(
                at(l.pos),
                v.code.as_str(),
                format!("input.list.input.{}: {}", v.path, v.message),
            )
            .with_suggestion(v.suggestion),
        );
    }
    if diags.has_errors() {
        return Err(diags);
    }
    l.request = req;
    Ok(())
}

/// Render a tree; template failures are collected with their member path.
fn render_tree(
    templates: &Templates,
    n: &TNode,
    ctx: &MjValue,
    path: &mut String,
    errs: &mut Vec<(String, String)>,
) -> Option<J> {
    match n {
        TNode::Lit(v) => Some(v.clone()),
        TNode::Tpl(t) => match templates.eval(t, ctx) {
            Ok(v) => {
                let v = template::finish(v, t);
                match &v {
                    J::Null => None,
                    J::String(s) if s.is_empty() => None,
                    _ => Some(v),
                }
            }
            Err(e) => {
                errs.push((path.clone(), e));
                None
            }
        },
        TNode::Arr(items) => Some(J::Array(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, it)| {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    let v = render_tree(templates, it, ctx, path, errs);
                    path.truncate(len);
                    v
                })
                .collect(),
        )),
        TNode::Obj(es) => Some(J::Object(
            es.iter()
                .filter_map(|(k, it)| {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    let v = render_tree(templates, it, ctx, path, errs);
                    path.truncate(len);
                    v.map(|v| (k.clone(), v))
                })
                .collect(),
        )),
    }
}

impl Compiler<'_> {
    /// A patch step's `input` names the record and nothing else; the version is the one
    /// read, never the playbook's.
    fn check_patch_step(
        &mut self,
        spec: &StepSpec,
        update: &model::update::UpdateSpec,
        patch: &playbook::yaml::Node,
        q: &str,
    ) {
        let ids: Vec<&str> = [update.identifier.0]
            .into_iter()
            .chain(update.nested.map(|(_, pick)| pick))
            .collect();
        let keys = |n: Option<&playbook::yaml::Node>| -> Vec<(Pos, String)> {
            match n.map(|n| &n.value) {
                Some(playbook::yaml::Value::Map(es)) => {
                    es.iter().map(|(k, _)| (k.pos, k.name.clone())).collect()
                }
                _ => Vec::new(),
            }
        };
        let input = keys(spec.input.as_ref());
        for id in &ids {
            if !input.iter().any(|(_, k)| k == id) {
                self.err(
                    spec.input.as_ref().map(|n| n.pos).unwrap_or(spec.pos),
                    "PATCH_NEEDS_IDENTIFIER",
                    format!(
                        "a patch step names its record in input: add {id} to input (the patch \
                         then changes that {})",
                        if update.nested.is_some() {
                            "context"
                        } else {
                            "record"
                        }
                    ),
                    None,
                    Some(q),
                );
            }
        }
        for (pos, k) in &input {
            if k == update.version.0 {
                self.err(*pos, "PATCH_VERSION", format!("{k} is the version cosell reads with {} just before the update; remove it from input", update.get), None, Some(q));
            } else if !ids.contains(&k.as_str()) && k != "Catalog" {
                self.err(
                    *pos,
                    "PATCH_INPUT_MEMBER",
                    format!(
                        "the input of a patch step holds only what names the record ({}, \
                         Catalog); move {k} under patch",
                        ids.join(", ")
                    ),
                    None,
                    Some(q),
                );
            }
        }
        for (pos, k) in keys(Some(patch)) {
            if k == update.version.0 {
                self.err(pos, "PATCH_VERSION", format!("{k} is the version cosell reads with {} just before the update; remove it from patch", update.get), None, Some(q));
            } else if ids.contains(&k.as_str()) || k == "Catalog" {
                self.err(
                    pos,
                    "PATCH_IDENTIFIER",
                    format!("{k} names the record and belongs in input, not patch"),
                    None,
                    Some(q),
                );
            }
        }
    }

    /// With `input.list`, a row is an item of the list: every `row.X` a template reads must be
    /// a member of the item's shape.
    fn check_row_members(&mut self, l: &ListInput) {
        let m = model::model();
        let paths = std::mem::take(&mut self.row_paths);
        let mut seen = HashSet::new();
        for (pos, path, guarded) in &paths {
            if *guarded || !seen.insert((pos.line, pos.col, path.clone())) {
                continue;
            }
            // walk the item's shape member by member, as far as structures go
            let mut shape = l.item_shape;
            let mut walked = String::from("row");
            for seg in path {
                let s = m.shape(shape);
                let ShapeKind::Structure { members, .. } = &s.kind else {
                    break;
                };
                match s.member(seg) {
                    Some(mm) => {
                        shape = mm.shape;
                        walked.push('.');
                        walked.push_str(seg);
                    }
                    None => {
                        let names: Vec<&str> = members.iter().map(|mm| mm.name.as_str()).collect();
                        let sug = model::nearest(seg, names.iter().copied());
                        let msg = if walked == "row" {
                            format!(
                                "row.{seg}: the rows are the items of {} ({}), which have no \
                                 member {seg:?}; they have: {}",
                                l.action,
                                l.paginator.result_key,
                                names.join(", ")
                            )
                        } else {
                            format!(
                                "{walked}.{seg}: {walked} has no member {seg:?}; it has: {}",
                                names.join(", ")
                            )
                        };
                        self.err(*pos, "UNKNOWN_ROW_MEMBER", msg, sug, None);
                        break;
                    }
                }
            }
        }
        self.row_paths = paths;
    }
}

impl Campaign {
    /// Load a playbook, compile its templates, apply `--var` overrides and resolve the input.
    pub fn load(args: &crate::cli::CampaignArgs) -> Result<Campaign, Diagnostics> {
        let file = args.playbook.to_string_lossy().into_owned();
        let whole = |code: &str, msg: String| -> Diagnostics {
            Diagnostic::error(Location::File { file: file.clone() }, code, msg).into()
        };
        let meta = std::fs::metadata(&args.playbook).map_err(|e| {
            whole(
                "PLAYBOOK_UNREADABLE",
                format!("cannot read the playbook: {e}"),
            )
        })?;
        if meta.len() > playbook::yaml::MAX_PLAYBOOK_BYTES as u64 {
            return Err(whole(
                "PLAYBOOK_TOO_LARGE",
                format!(
                    "the playbook is {} bytes; at most {} are accepted",
                    meta.len(),
                    playbook::yaml::MAX_PLAYBOOK_BYTES
                ),
            ));
        }
        let bytes = std::fs::read(&args.playbook).map_err(|e| {
            whole(
                "PLAYBOOK_UNREADABLE",
                format!("cannot read the playbook: {e}"),
            )
        })?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let off = e.utf8_error().valid_up_to();
                let b = e.as_bytes();
                let line = 1 + b[..off].iter().filter(|c| **c == b'\n').count() as u32;
                let col = 1 + String::from_utf8_lossy(
                    &b[b[..off]
                        .iter()
                        .rposition(|c| *c == b'\n')
                        .map(|i| i + 1)
                        .unwrap_or(0)..off],
                )
                .chars()
                .count() as u32;
                return Err(Diagnostic::error(
                    Location::Playbook { file, line, col },
                    "YAML_SYNTAX",
                    format!(
                        "the playbook is not UTF-8 text (byte 0x{:02X}); save it as UTF-8",
                        b[off]
                    ),
                )
                .into());
            }
        };
        Self::from_text(args, &file, &text)
    }

    fn from_text(
        args: &crate::cli::CampaignArgs,
        file: &str,
        text: &str,
    ) -> Result<Campaign, Diagnostics> {
        let (pb, warnings) = playbook::parse(file, text)?;
        let mut diags = Diagnostics::new();
        // vars, with --var overrides
        let mut vars: BTreeMap<String, J> = pb
            .vars
            .iter()
            .map(|(k, v)| (k.name.clone(), v.to_json()))
            .collect();
        for v in &args.vars {
            match v.split_once('=') {
                Some((k, val)) if !k.trim().is_empty() => {
                    let k = k.trim();
                    if !pb.vars.iter().any(|(d, _)| d.name == k) {
                        let declared: Vec<&str> =
                            pb.vars.iter().map(|(d, _)| d.name.as_str()).collect();
                        diags.push(
                            Diagnostic::error(
                                Location::File {
                                    file: "--var".into(),
                                },
                                "UNKNOWN_VAR_FLAG",
                                format!(
                                    "--var {k}=…: the playbook declares no var {k:?} (vars: {}); \
                                     --var only overrides a var declared under vars:, so correct \
                                     the name or declare it in the playbook",
                                    if declared.is_empty() {
                                        "none".to_string()
                                    } else {
                                        declared.join(", ")
                                    }
                                ),
                            )
                            .with_suggestion(model::nearest(k, declared.iter().copied())),
                        );
                        continue;
                    }
                    vars.insert(k.to_string(), J::String(val.to_string()));
                }
                _ => diags.push(Diagnostic::error(
                    Location::File {
                        file: "--var".into(),
                    },
                    "INVALID_VAR",
                    format!("--var {v:?} must be NAME=VALUE"),
                )),
            }
        }
        // input
        let (input_path, input_display) = match (&args.input, &pb.input_file) {
            (Some(p), _) => (p.clone(), p.to_string_lossy().into_owned()),
            (None, Some(c)) => {
                let base = args.playbook.parent().unwrap_or(Path::new(""));
                let p = normalize(&base.join(&c.value));
                let shown = p.to_string_lossy().into_owned();
                (p, shown)
            }
            // rows listed when the run starts: no file yet
            (None, None) if pb.list.is_some() => (PathBuf::new(), String::new()),
            (None, None) => {
                diags.push(Diagnostic::error(
                    Location::File {
                        file: file.to_string(),
                    },
                    "NO_INPUT",
                    "no input: set input.file (or input.list) in the playbook or pass --input FILE",
                ));
                (PathBuf::new(), String::new())
            }
        };
        // the sheet: --sheet, else the playbook's (for a workbook), else the first
        let is_workbook = crate::input::workbook::is_workbook(&input_path);
        let sheet = match (&args.sheet, &pb.sheet) {
            (Some(s), _) if !is_workbook && !input_path.as_os_str().is_empty() => {
                diags.push(Diagnostic::error(
                    Location::File {
                        file: "--sheet".into(),
                    },
                    "UNKNOWN_SHEET",
                    format!(
                        "--sheet {s:?}: the input {input_display} is not a workbook (.xlsx, \
                         .xlsm, .xls, .ods), so it has no sheets"
                    ),
                ));
                None
            }
            (Some(s), _) => Some(s.clone()),
            (None, Some(s)) if !is_workbook && args.input.is_none() => {
                diags.push(Diagnostic::error(
                    Location::Playbook {
                        file: file.to_string(),
                        line: s.pos.line,
                        col: s.pos.col,
                    },
                    "UNKNOWN_SHEET",
                    format!(
                        "input.sheet {:?}: the input {input_display} is not a workbook (.xlsx, \
                         .xlsm, .xls, .ods), so it has no sheets",
                        s.value
                    ),
                ));
                None
            }
            // the playbook's sheet is for its workbook; a CSV given with --input has none
            (None, Some(s)) if is_workbook => Some(s.value.clone()),
            _ => None,
        };
        let input = Source {
            path: input_path,
            display: input_display,
            sheet,
        };

        let mut c = Compiler {
            pb: &pb,
            vars: &vars,
            diags,
            row_refs: Vec::new(),
            row_paths: Vec::new(),
        };
        let mut templates = Templates::new();
        templates.set_file(file);
        let compile_step =
            |c: &mut Compiler, spec: &StepSpec, index: usize, templates: &mut Templates| -> Step {
                let m = model::model();
                let op = m.operation(&spec.action.value);
                let input_shape = op.and_then(|o| o.input);
                let q = format!(
                    "{}.{}",
                    if spec.setup { "setup" } else { "steps" },
                    spec.id.value
                );
                let scope = if spec.setup {
                    Scope::Setup(index)
                } else {
                    Scope::Step(index)
                };
                let mut at_pos = HashMap::new();
                let mut errors = Vec::new();
                let input_pos = spec.input.as_ref().map(|n| n.pos).unwrap_or(spec.pos);
                let input = match &spec.input {
                    Some(n) => templates.compile_tree(
                        n,
                        input_shape,
                        &mut String::new(),
                        &mut at_pos,
                        &mut errors,
                    ),
                    None => TNode::Lit(J::Object(Map::new())),
                };
                let patch = spec.patch.as_ref().and_then(|n| {
                    let update = model::update::spec(&spec.action.value)?;
                    c.check_patch_step(spec, update, n, &q);
                    let mut patch_at = HashMap::new();
                    let tree = templates.compile_tree(
                        n,
                        input_shape,
                        &mut String::new(),
                        &mut patch_at,
                        &mut errors,
                    );
                    // the patch's members are not the input's (check_patch_step), so one map
                    // locates both; the root stays the input's
                    patch_at.remove("");
                    at_pos.extend(patch_at);
                    Some(Patch { update, tree })
                });
                for (pos, e) in errors.drain(..) {
                    c.err(pos, "TEMPLATE_SYNTAX", e, None, Some(&q));
                }
                c.check_tree(&input, scope, Some(&q));
                if let Some(p) = &patch {
                    c.check_tree(&p.tree, scope, Some(&q));
                }
                // where each path's value comes from
                let mut origins: HashMap<String, Origin> = HashMap::new();
                collect_origins(&input, &mut String::new(), &mut origins);
                if let Some(p) = &patch {
                    collect_origins(&p.tree, &mut String::new(), &mut origins);
                }
                let at: HashMap<String, (Pos, Origin)> = at_pos
                    .into_iter()
                    .map(|(k, p)| {
                        let o = origins.get(&k).cloned().unwrap_or(Origin::Fixed);
                        (k, (p, o))
                    })
                    .collect();
                let when = spec.when.as_ref().and_then(|w| {
                    match templates.compile_expression(&w.value, w.pos) {
                        Ok(t) => {
                            c.check_refs(&t, scope, Some(&q));
                            Some(t)
                        }
                        Err(e) => {
                            c.err(
                                w.pos,
                                "TEMPLATE_SYNTAX",
                                format!("when: {e}"),
                                None,
                                Some(&q),
                            );
                            None
                        }
                    }
                });
                let out_shape = output_shape(&spec.action.value, spec.wait.is_some());
                let mut expect = Vec::new();
                for (k, v) in &spec.expect {
                    let segs: Vec<&str> = k.name.split('.').collect();
                    let target = out_shape.and_then(|s| m.shape_at_path(s, &segs));
                    if target.is_none() {
                        if let Some(s) = out_shape {
                            let names: Vec<&str> = m
                                .shape(s)
                                .members()
                                .iter()
                                .map(|mm| mm.name.as_str())
                                .collect();
                            let sug = model::nearest(segs[0], names.iter().copied());
                            let what = if spec.wait.is_some() {
                                format!("{} (waited: the task summary)", spec.action.value)
                            } else {
                                spec.action.value.clone()
                            };
                            c.err(
                                k.pos,
                                "UNKNOWN_OUTPUT_MEMBER",
                                format!(
                                "expect: {} is not an output member of {what}, which returns: {}",
                                k.name,
                                names.join(", ")
                            ),
                                sug,
                                Some(&q),
                            );
                        }
                        continue;
                    }
                    let mut errors = Vec::new();
                    let node = templates.compile_tree(
                        v,
                        target,
                        &mut String::new(),
                        &mut HashMap::new(),
                        &mut errors,
                    );
                    for (pos, e) in errors {
                        c.err(
                            pos,
                            "TEMPLATE_SYNTAX",
                            format!("expect {}: {e}", k.name),
                            None,
                            Some(&q),
                        );
                    }
                    c.check_tree(&node, scope, Some(&q));
                    if let (TNode::Lit(value), Some(shape)) = (&node, target) {
                        // a literal is checked once, here; templates when rendered
                        for d in expect_violations(&c.pb.file, v.pos, &q, &k.name, shape, value) {
                            c.diags.push(d);
                        }
                    }
                    expect.push(Expect {
                        path: k.name.clone(),
                        pos: v.pos,
                        node,
                        target,
                    });
                }
                let waiter = model::ops::waiter(&spec.action.value);
                Step {
                    id: spec.id.value.clone(),
                    action: spec.action.value.clone(),
                    wait: spec.wait.as_ref().map(|w| w.timeout),
                    poll_interval: spec
                        .wait
                        .as_ref()
                        .map(|w| w.interval)
                        .unwrap_or(playbook::DEFAULT_WAIT_INTERVAL),
                    poll_action: spec.wait.as_ref().and(waiter.map(|w| w.poll)),
                    paginate: spec.paginate.as_ref().and_then(|p| {
                        Some(Paginate {
                            paginator: model::ops::operation(&spec.action.value)?.paginator?,
                            max_items: p.max_items,
                        })
                    }),
                    setup: spec.setup,
                    description: spec.description.clone(),
                    pos: spec.pos,
                    input,
                    input_pos,
                    patch,
                    at,
                    when,
                    expect,
                }
            };
        let setup: Vec<Step> = pb
            .setup
            .iter()
            .enumerate()
            .map(|(i, s)| compile_step(&mut c, s, i, &mut templates))
            .collect();
        let steps: Vec<Step> = pb
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| compile_step(&mut c, s, i, &mut templates))
            .collect();

        // the row key
        let mut key_templates = Templates::new();
        key_templates.set_file(file);
        let key = match &pb.key {
            Some(n) => {
                let src = match &n.value {
                    playbook::Value::Str(s) => s.clone(),
                    _ => String::new(),
                };
                match key_templates.compile(&src, n.pos, None) {
                    Ok(Some(t)) => {
                        c.check_refs(&t, Scope::Key, None);
                        Some(t)
                    }
                    Ok(None) => {
                        c.err(n.pos, "INVALID_ROW_KEY", format!("input.key {src:?} is the same for every row; use a template such as \"{{{{ row.id }}}}\""), None, None);
                        None
                    }
                    Err(e) => {
                        c.err(
                            n.pos,
                            "TEMPLATE_SYNTAX",
                            format!("input.key: {e}"),
                            None,
                            None,
                        );
                        None
                    }
                }
            }
            None => None,
        };
        // ledger columns
        let mut ledger = Vec::new();
        for (k, n) in &pb.ledger_columns {
            let src = match &n.value {
                playbook::Value::Str(s) => s.clone(),
                _ => continue,
            };
            match templates.compile(&src, n.pos, None) {
                Ok(Some(t)) => {
                    c.check_refs(&t, Scope::Ledger, None);
                    ledger.push((k.name.clone(), t));
                }
                Ok(None) => {
                    // a constant column: a template that renders the literal
                    if let Ok(Some(t)) = templates.compile(
                        &format!(
                            "{{{{ {} }}}}",
                            serde_json::to_string(&src).unwrap_or_default()
                        ),
                        n.pos,
                        None,
                    ) {
                        ledger.push((k.name.clone(), t));
                    }
                }
                Err(e) => c.err(
                    n.pos,
                    "TEMPLATE_SYNTAX",
                    format!("ledger column {}: {e}", k.name),
                    None,
                    None,
                ),
            }
        }
        // the rehearsal fixture: templates that may read vars (fixture) and the row (each_row)
        let rehearsal = pb.emulate.as_ref().map(|e| {
            let mut compile = |n: &Option<playbook::Node>, c: &mut Compiler| {
                n.as_ref().map(|n| {
                    let mut errors = Vec::new();
                    let t = templates.compile_tree(
                        n,
                        None,
                        &mut String::new(),
                        &mut HashMap::new(),
                        &mut errors,
                    );
                    for (pos, e) in errors {
                        c.err(pos, "TEMPLATE_SYNTAX", format!("emulate: {e}"), None, None);
                    }
                    c.check_tree(&t, Scope::Key, None);
                    (n.pos, t)
                })
            };
            Rehearsal {
                fixture: compile(&e.fixture, &mut c),
                each_row: compile(&e.each_row, &mut c),
                task_delay: e.task_delay,
            }
        });
        // input.list: its request (no row, no setup) and its filter (the row only)
        let list = pb
            .list
            .as_ref()
            .and_then(|l| compile_list(&mut c, l, pb.filter.as_ref(), &mut templates));
        if let Some(l) = &list {
            c.check_row_members(l);
        }
        let Compiler {
            diags, row_refs, ..
        } = c;
        let mut diags = diags;
        if diags.has_errors() {
            diags.extend(warnings);
            return Err(diags);
        }
        let mut all_warnings = warnings;
        all_warnings.extend(diags);

        // limits
        let spec = &pb.limits;
        let mut rates: Vec<(RateTarget, f64)> = QuotaClass::ALL
            .iter()
            .map(|c| (RateTarget::Class(*c), c.documented().rate))
            .collect();
        for (t, r) in &spec.rates {
            match rates.iter_mut().find(|(x, _)| *x == t.value) {
                Some(e) => e.1 = r.value,
                None => rates.push((t.value.clone(), r.value)),
            }
        }
        let mut daily: Vec<(QuotaClass, u64)> = QuotaClass::ALL
            .iter()
            .filter_map(|c| c.documented().daily.map(|d| (*c, d)))
            .collect();
        for (cl, n) in &spec.daily {
            match daily.iter_mut().find(|(x, _)| *x == cl.value) {
                Some(e) => e.1 = n.value,
                None => daily.push((cl.value, n.value)),
            }
        }
        let limits = Limits {
            concurrency: spec
                .concurrency
                .as_ref()
                .map(|c| c.value)
                .unwrap_or(DEFAULT_CONCURRENCY),
            rates,
            daily,
            max_failures: spec
                .max_failures
                .as_ref()
                .map(|m| m.value)
                .unwrap_or(MaxFailures::Percent(100.0)),
            daily_wait: spec.daily_wait.as_ref().is_some_and(|w| w.value),
        };
        let vars_mj = MjValue::from_serialize(&vars);
        let run_mj = minijinja::context! { name => pb.name.value.clone(), catalog => pb.catalog.value.clone() };
        let keys = Arc::new(KeyRenderer {
            templates: key_templates,
            key,
            vars: vars_mj.clone(),
            run: run_mj.clone(),
        });
        let list = match list {
            Some(mut l) => {
                let ctx = minijinja::context! { vars => vars_mj.clone(), run => run_mj.clone() };
                match render_list_request(&templates, &mut l, &ctx, &pb) {
                    Ok(()) => Some(l),
                    Err(d) => {
                        let mut d = d;
                        d.extend(all_warnings);
                        return Err(d);
                    }
                }
            }
            None => None,
        };
        Ok(Campaign {
            playbook_path: args.playbook.clone(),
            input,
            sheet: std::sync::OnceLock::new(),
            vars,
            vars_mj,
            run_mj,
            limits,
            setup,
            steps,
            templates,
            keys,
            ledger,
            rehearsal,
            row_refs,
            list,
            warnings: all_warnings,
            digest: {
                let d = Sha256::digest(text.as_bytes());
                d.iter().map(|b| format!("{b:02x}")).collect()
            },
            playbook: pb,
        })
    }

    /// The limits with the command line's `--concurrency` and `--rate` flags applied, checked
    /// like the playbook's `limits` keys: concurrency 1 to 1024, rates `N/s`, `N/m`, `N/h` or
    /// a bare number per second, targets a quota class or an operation (with a suggestion for
    /// a typo). `Ok` carries the warnings (`RATE_ABOVE_QUOTA`); `Err` every error. Each
    /// finding is located at its flag (`--rate write=100/s: …`).
    pub fn limits_with_overrides(
        &self,
        concurrency: Option<usize>,
        rates: &[String],
    ) -> Result<(Limits, Diagnostics), Diagnostics> {
        let mut limits = self.limits.clone();
        let mut diags = Diagnostics::new();
        let flag = |f: String| Location::File { file: f };
        if let Some(n) = concurrency {
            if (1..=1024).contains(&n) {
                limits.concurrency = n;
            } else {
                diags.push(Diagnostic::error(
                    flag(format!("--concurrency {n}")),
                    "INVALID_LIMIT",
                    format!("--concurrency must be an integer from 1 to 1024, found {n}"),
                ));
            }
        }
        for r in rates {
            let at = flag(format!("--rate {r}"));
            let Some((name, value)) = r.split_once('=') else {
                diags.push(Diagnostic::error(
                    at,
                    "INVALID_LIMIT",
                    "--rate must be CLASS_OR_OPERATION=RATE, such as write=1/s or GetEngagementInvitation=5/s",
                ));
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            let target = if let Some(c) = QuotaClass::parse(name) {
                Some(RateTarget::Class(c))
            } else if model::model().operation(name).is_some() {
                Some(RateTarget::Operation(name.to_string()))
            } else {
                let names = QuotaClass::ALL.map(|c| c.name());
                let sug = model::nearest(
                    name,
                    names
                        .iter()
                        .copied()
                        .chain(playbook::ACTIONS.iter().copied()),
                );
                diags.push(
                    Diagnostic::error(
                        at.clone(),
                        "UNKNOWN_RATE_TARGET",
                        format!(
                            "{name:?} is neither a quota class ({}) nor an operation name",
                            names.join(", ")
                        ),
                    )
                    .with_suggestion(sug),
                );
                None
            };
            let rate = playbook::parse_rate(value);
            if rate.is_none() {
                diags.push(Diagnostic::error(
                    at.clone(),
                    "INVALID_LIMIT",
                    format!(
                        "rate {} for {name} is not a rate such as 1/s, 30/m or 3600/h",
                        model::quote(value)
                    ),
                ));
            }
            let (Some(t), Some(rate)) = (target, rate) else {
                continue;
            };
            if let RateTarget::Class(c) = &t {
                let doc = c.documented().rate;
                if rate > doc {
                    diags.push(Diagnostic::warning(
                        at,
                        "RATE_ABOVE_QUOTA",
                        format!(
                            "rate {value} for {c} is above the documented quota of {doc}/s; \
                             expect throttling"
                        ),
                    ));
                }
            }
            match limits.rates.iter_mut().find(|(x, _)| *x == t) {
                Some(e) => e.1 = rate,
                None => limits.rates.push((t, rate)),
            }
        }
        if diags.has_errors() {
            Err(diags)
        } else {
            Ok((limits, diags))
        }
    }

    /// Apply `--concurrency` and `--rate` to the campaign's limits (see
    /// [`Campaign::limits_with_overrides`]): afterwards [`Campaign::limits`] is the one source
    /// of truth for the run's concurrency and rates. `Ok` carries the warnings to show.
    pub fn apply_overrides(
        &mut self,
        concurrency: Option<usize>,
        rates: &[String],
    ) -> Result<Diagnostics, Diagnostics> {
        let (limits, warnings) = self.limits_with_overrides(concurrency, rates)?;
        self.limits = limits;
        Ok(warnings)
    }

    pub fn name(&self) -> &str {
        &self.playbook.name.value
    }
    pub fn catalog(&self) -> &str {
        &self.playbook.catalog.value
    }
    pub fn description(&self) -> Option<&str> {
        self.playbook.description.as_deref()
    }
    pub fn playbook_path(&self) -> &Path {
        &self.playbook_path
    }
    pub fn input_path(&self) -> &Path {
        &self.input.path
    }
    /// Where the rows come from.
    pub fn input(&self) -> &Source {
        &self.input
    }
    /// The sheet read, for a workbook input that was opened (by [`Self::rows`] or
    /// [`Self::validate`]).
    pub fn input_sheet(&self) -> Option<&str> {
        self.sheet.get().map(String::as_str)
    }
    /// The place of a row of the input (CSV line or sheet row), optionally one column.
    pub(crate) fn input_at(&self, line: u64, column: Option<&str>) -> Location {
        self.input.at(self.input_sheet(), line, column)
    }
    pub fn vars(&self) -> &BTreeMap<String, J> {
        &self.vars
    }
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    pub fn setup(&self) -> &[Step] {
        &self.setup
    }
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
    /// Hex SHA-256 of the playbook's text (for noticing an edited playbook on resume).
    pub fn playbook_digest(&self) -> &str {
        &self.digest
    }
    /// Warnings found while loading (they do not make the playbook invalid).
    pub fn warnings(&self) -> &Diagnostics {
        &self.warnings
    }

    fn loc(&self, pos: Pos) -> Location {
        Location::Playbook {
            file: self.playbook.file.clone(),
            line: pos.line,
            col: pos.col,
        }
    }

    /// Open the CSV and check its header against the columns the templates read (or the
    /// listed rows of `input.list`, whose members were checked against the model at load).
    fn open_rows(&self) -> Result<Rows, Diagnostics> {
        if self.list.is_some() {
            if self.is_pending_list() {
                return Err(Diagnostic::error(
                    self.loc(self.list.as_ref().map(|l| l.pos).unwrap_or_default()),
                    "ROWS_NOT_LISTED",
                    "the rows of input.list are listed when the run starts",
                )
                .into());
            }
            let reader = ListedReader::open(&self.input.path, &self.input.display)?;
            if let Some(l) = &self.list {
                if reader.header().action != l.action {
                    return Err(Diagnostic::error(
                        Location::File {
                            file: self.input.display.clone(),
                        },
                        "LISTED_ROWS_MISMATCH",
                        format!(
                            "these rows were listed with {}, the playbook lists {}",
                            reader.header().action,
                            l.action
                        ),
                    )
                    .into());
                }
            }
            return Ok(Rows {
                reader: RowReader::Listed(reader),
                source: self.input.clone(),
                keys: self.keys.clone(),
                playbook_file: self.playbook.file.clone(),
            });
        }
        let reader = self.input.open()?;
        if let Some(s) = reader.sheet() {
            let _ = self.sheet.set(s.to_string());
        }
        let mut diags = Diagnostics::new();
        let cols = reader.columns().clone();
        let mut missing = 0;
        let mut seen = HashSet::new();
        for (pos, col, guarded) in &self.row_refs {
            if cols.iter().any(|c| &**c == col) || !seen.insert((pos, col)) {
                continue;
            }
            missing += 1;
            let sug = model::nearest(col, cols.iter().map(|c| &**c));
            let msg = format!(
                "row.{col}: the {} {} has no column {col:?} (columns: {})",
                if self.input.is_workbook() {
                    "sheet of"
                } else {
                    "CSV"
                },
                self.input.display,
                cols.iter().map(|c| &**c).collect::<Vec<_>>().join(", ")
            );
            let d = if *guarded {
                Diagnostic::warning(
                    self.loc(*pos),
                    "UNKNOWN_COLUMN",
                    format!("{msg}; the default applies to every row"),
                )
            } else {
                Diagnostic::error(self.loc(*pos), "UNKNOWN_COLUMN", msg)
            };
            diags.push(d.with_suggestion(sug));
        }
        let distinct: HashSet<&str> = self.row_refs.iter().map(|(_, c, _)| c.as_str()).collect();
        if missing > 0
            && !distinct.is_empty()
            && distinct.iter().all(|c| !cols.iter().any(|h| &**h == *c))
        {
            // one finding says it all: the per-column ones would only repeat it
            diags = Diagnostics::new();
            diags.push(Diagnostic::error(
                self.input_at(1, None),
                "CSV_NO_HEADER",
                format!(
                    "the {} ({}) names none of the columns the playbook reads ({}); {}",
                    if self.input.is_workbook() {
                        "header row"
                    } else {
                        "first line"
                    },
                    cols.iter().map(|c| &**c).collect::<Vec<_>>().join(", "),
                    {
                        let mut v: Vec<&str> = distinct.into_iter().collect();
                        v.sort();
                        v.join(", ")
                    },
                    if self.input.is_workbook() {
                        "the sheet's first non-empty row must name its columns"
                    } else {
                        "the CSV needs a header line naming its columns"
                    }
                ),
            ));
        }
        if diags.has_errors() {
            return Err(diags);
        }
        Ok(Rows {
            reader: RowReader::Input(reader),
            source: self.input.clone(),
            keys: self.keys.clone(),
            playbook_file: self.playbook.file.clone(),
        })
    }

    /// `input.list`, if the rows come from a List operation.
    pub fn list_input(&self) -> Option<&ListInput> {
        self.list.as_ref()
    }

    /// The rows come from `input.list` and have not been listed yet (no `rows.jsonl` given).
    pub fn is_pending_list(&self) -> bool {
        self.list.is_some() && self.input.path.as_os_str().is_empty()
    }

    /// Whether a listed item is a row (`input.where`; true without one).
    pub fn keep_listed(&self, item: &J) -> Result<bool, String> {
        let Some((_, t)) = self.list.as_ref().and_then(|l| l.filter.as_ref()) else {
            return Ok(true);
        };
        let ctx = minijinja::context! { row => MjValue::from_serialize(item), vars => self.vars_mj.clone(), run => self.run_mj.clone() };
        self.templates.truth(t, &ctx)
    }

    /// A template context whose row is the placeholder of a listed item (deferred values),
    /// for checking a list campaign's steps before its rows exist.
    pub(crate) fn placeholder_row(&self) -> Option<MjValue> {
        let l = self.list.as_ref()?;
        Some(MjValue::from_serialize(template::placeholder(
            l.item_shape,
            "row",
            0,
        )))
    }

    /// Stream the rows of the input (keys rendered). Fails when the CSV cannot be opened, its
    /// header is broken, or it lacks a column the templates read.
    pub fn rows(&self) -> Result<Rows, Diagnostics> {
        self.open_rows()
    }

    fn mj_ctx(&self, ctx: &RenderContext) -> MjValue {
        let setup = MjValue::from_serialize(ctx.setup);
        let steps = MjValue::from_serialize(ctx.steps);
        match ctx.row {
            Some(r) => {
                minijinja::context! { row => r.to_mj(), vars => self.vars_mj.clone(), setup => setup, steps => steps, run => self.run_mj.clone() }
            }
            None => {
                minijinja::context! { vars => self.vars_mj.clone(), setup => setup, steps => steps, run => self.run_mj.clone() }
            }
        }
    }

    /// Render a tree; template failures are collected with their member path.
    fn render_tree(
        &self,
        n: &TNode,
        ctx: &MjValue,
        path: &mut String,
        errs: &mut Vec<(String, String)>,
    ) -> Option<J> {
        render_tree(&self.templates, n, ctx, path, errs)
    }

    /// Fill `Catalog` and `ClientToken` where the operation has them and they are not given.
    fn fill(&self, step: &Step, key: &str, req: &mut J) {
        let m = model::model();
        let Some(op) = m.operation(&step.action) else {
            return;
        };
        let Some(obj) = req.as_object_mut() else {
            return;
        };
        if let Some(input) = op.input {
            if m.shape(input).member("Catalog").is_some() && !obj.contains_key("Catalog") {
                obj.insert("Catalog".into(), J::String(self.catalog().to_string()));
            }
        }
        if let Some(tok) = op.idempotency_member() {
            if !obj.contains_key(tok) {
                obj.insert(
                    tok.into(),
                    J::String(client_token(self.name(), key, &step.id)),
                );
            }
        }
    }

    fn render_mj(&self, step: &Step, key: &str, ctx: &MjValue) -> (J, Vec<(String, String)>) {
        let mut errs = Vec::new();
        let mut req = self
            .render_tree(&step.input, ctx, &mut String::new(), &mut errs)
            .unwrap_or(J::Object(Map::new()));
        if !req.is_object() {
            req = J::Object(Map::new());
        }
        self.fill(step, key, &mut req);
        (req, errs)
    }

    /// Locate a member path of a step's input: its position and where the value comes from.
    fn locate(&self, step: &Step, path: &str) -> (Pos, Origin) {
        let mut p = path;
        loop {
            if let Some((pos, o)) = step.at.get(p) {
                return (*pos, o.clone());
            }
            if p.is_empty() {
                return (step.input_pos, Origin::Fixed);
            }
            let cut = p.rfind(['.', '[']).unwrap_or(0);
            p = &p[..cut];
        }
    }

    fn csv_origin(&self, o: &Origin, row: Option<&Row>) -> Option<Location> {
        let row = row?;
        match o {
            Origin::Fixed => None,
            Origin::Column(c) => Some(self.input_at(row.line, Some(c))),
            Origin::Row => Some(self.input_at(row.line, None)),
        }
    }

    /// A template failure at `path` of a step's input. At run time the row's line is always
    /// named; in a dry run a failure that does not depend on the row names none (and is then
    /// reported once for all rows).
    fn template_diag(
        &self,
        step: &Step,
        path: &str,
        msg: String,
        row: Option<&Row>,
        runtime: bool,
    ) -> Diagnostic {
        let (pos, o) = self.locate(step, path);
        let mut d = Diagnostic::error(self.loc(pos), template_code(&msg), msg)
            .with_step(step.qualified())
            .with_member(path)
            .with_origin(
                self.csv_origin(&o, row)
                    .or_else(|| row.filter(|_| runtime).map(|r| self.input_at(r.line, None))),
            );
        if let Some(r) = row {
            d = d.with_row(r.index);
        }
        d
    }

    /// The final request of a step: templates rendered, `Catalog` and `ClientToken` filled.
    pub fn render(&self, step: &Step, ctx: &RenderContext) -> Result<J, Diagnostic> {
        let mj = self.mj_ctx(ctx);
        let key = if step.setup {
            SETUP_KEY
        } else {
            ctx.row.map(|r| r.key.as_str()).unwrap_or(SETUP_KEY)
        };
        let (req, errs) = self.render_mj(step, key, &mj);
        if let Some((path, msg)) = errs.into_iter().next() {
            return Err(self.template_diag(step, &path, msg, ctx.row, true));
        }
        Ok(req)
    }

    /// A `patch` step's rendered patch (None for other steps). An empty cell leaves its
    /// member out; a literal `null` stays (it removes the member).
    pub fn render_patch(&self, step: &Step, ctx: &RenderContext) -> Result<Option<J>, Diagnostic> {
        let Some(p) = &step.patch else {
            return Ok(None);
        };
        let mj = self.mj_ctx(ctx);
        let mut errs = Vec::new();
        let v = self
            .render_tree(&p.tree, &mj, &mut String::new(), &mut errs)
            .unwrap_or(J::Object(Map::new()));
        if let Some((path, msg)) = errs.into_iter().next() {
            return Err(self.template_diag(step, &path, msg, ctx.row, true));
        }
        Ok(Some(v))
    }

    /// Whether a step runs (true when it has no `when`).
    pub fn when(&self, step: &Step, ctx: &RenderContext) -> Result<bool, Diagnostic> {
        let Some(w) = &step.when else { return Ok(true) };
        self.templates.truth(w, &self.mj_ctx(ctx)).map_err(|e| {
            let mut d = Diagnostic::error(self.loc(w.pos), template_code(&e), format!("when: {e}"))
                .with_step(step.qualified());
            if let Some(r) = ctx.row {
                d = d
                    .with_row(r.index)
                    .with_origin(Some(self.input_at(r.line, None)));
            }
            d
        })
    }

    /// Compare a step's output with its `expect`. `Err` describes every mismatch.
    pub fn check_expect(&self, step: &Step, output: &J, ctx: &RenderContext) -> Result<(), String> {
        if step.expect.is_empty() {
            return Ok(());
        }
        let mj = self.mj_ctx(ctx);
        let mut problems = Vec::new();
        for Expect { path, node, .. } in &step.expect {
            let mut errs = Vec::new();
            let want = self.render_tree(node, &mj, &mut String::new(), &mut errs);
            if let Some((_, e)) = errs.first() {
                problems.push(format!("expect {path}: {e}"));
                continue;
            }
            let want = want.unwrap_or(J::Null);
            let got = path.split('.').try_fold(output, |v, seg| v.get(seg));
            let same = match (got, &want) {
                (Some(g), w) if g == w => true,
                (Some(J::String(g)), J::Number(n)) => g == &n.to_string(),
                (Some(J::Number(n)), J::String(w)) => &n.to_string() == w,
                (Some(J::Bool(b)), J::String(w)) => &b.to_string() == w,
                (None, J::Null) => true,
                _ => false,
            };
            if !same {
                match got {
                    Some(g) => problems.push(format!("{path} is {g}, expected {want}")),
                    None => problems.push(format!(
                        "{path} is missing from the output, expected {want}"
                    )),
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The configured ledger columns, rendered (a column that fails to render is empty).
    pub fn ledger_columns(&self, ctx: &RenderContext) -> Vec<(String, String)> {
        if self.ledger.is_empty() {
            return Vec::new();
        }
        let mj = self.mj_ctx(ctx);
        self.ledger
            .iter()
            .map(|(name, t)| {
                let v = match self.templates.eval(t, &mj) {
                    Ok(J::String(s)) => s,
                    Ok(J::Null) | Err(_) => String::new(),
                    Ok(other) => other.to_string(),
                };
                (name.clone(), v)
            })
            .collect()
    }

    /// The request that polls a waiting step: its waiter's operation (the table's) with
    /// `Catalog` and the ids (up to 10 for `List…Tasks`, one for a `Get…`). `None` when the
    /// step does not wait.
    pub fn poll_request(&self, step: &Step, ids: &[String]) -> Option<(&'static str, J)> {
        step.poll_action?;
        let w = model::ops::waiter(&step.action)?;
        Some((w.poll, w.poll_request(self.catalog(), ids)))
    }

    /// A step of `setup` or `steps` by id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.setup.iter().chain(&self.steps).find(|s| s.id == id)
    }

    /// How long the embedded emulator's tasks take in a rehearsal (`emulate.task_delay`).
    pub fn rehearsal_task_delay(&self) -> Option<Duration> {
        self.rehearsal.as_ref().and_then(|r| r.task_delay)
    }

    /// The rehearsal fixture: `emulate.fixture` rendered once, plus `emulate.each_row`
    /// rendered for every input row, their lists (`invitations`, `opportunities`, …)
    /// concatenated. None when the playbook has no `emulate:`.
    pub fn rehearsal_fixture(&self) -> Result<Option<J>, String> {
        let Some(r) = &self.rehearsal else {
            return Ok(None);
        };
        let empty = Map::new();
        let mut out = Map::new();
        let merge = |v: J, pos: Pos, out: &mut Map<String, J>| -> Result<(), String> {
            let J::Object(m) = v else {
                return Err(format!(
                    "{}: emulate: a fixture is a mapping such as {{invitations: [...]}}",
                    self.loc(pos)
                ));
            };
            for (k, v) in m {
                match (out.get_mut(&k), v) {
                    (Some(J::Array(a)), J::Array(b)) => a.extend(b),
                    (Some(J::Object(a)), J::Object(b)) => a.extend(b),
                    (_, v) => {
                        out.insert(k, v);
                    }
                }
            }
            Ok(())
        };
        let render = |t: &TNode, row: Option<&Row>| -> Result<J, String> {
            let ctx = self.mj_ctx(&RenderContext {
                row,
                setup: &empty,
                steps: &empty,
            });
            let mut errs = Vec::new();
            let v = self
                .render_tree(t, &ctx, &mut String::new(), &mut errs)
                .unwrap_or(J::Null);
            match errs.into_iter().next() {
                Some((path, msg)) => Err(match row {
                    Some(r) => format!(
                        "emulate.each_row {path}: {msg} (at {})",
                        self.input_at(r.line, None)
                    ),
                    None => format!("emulate.fixture {path}: {msg}"),
                }),
                None => Ok(v),
            }
        };
        if let Some((pos, t)) = &r.fixture {
            merge(render(t, None)?, *pos, &mut out)?;
        }
        if let Some((pos, t)) = &r.each_row {
            let rows = self.rows().map_err(|d| d.render_text())?;
            for row in rows {
                let row = row.map_err(|d| d.to_string())?;
                merge(render(t, Some(&row))?, *pos, &mut out)?;
            }
        }
        Ok(Some(J::Object(out)))
    }

    pub fn ledger_column_names(&self) -> Vec<String> {
        self.ledger.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Placeholder outputs for offline checks: `{id: {Member: "<deferred>"}}`.
    fn placeholders(&self, steps: &[Step], root: &str) -> Map<String, J> {
        steps
            .iter()
            .map(|s| {
                let v = match s.output_shape() {
                    Some(shape) => template::placeholder(shape, &format!("{root}.{}", s.id), 0),
                    None => J::Object(Map::new()),
                };
                (s.id.clone(), v)
            })
            .collect()
    }

    /// The full dry run: every step of every row rendered and validated.
    pub fn validate(&self) -> Report {
        self.validate_with(0)
    }

    /// [`Campaign::validate`], keeping the first `show` rendered requests.
    pub fn validate_with(&self, show: usize) -> Report {
        let mut v = check::Checker::new(self, show);
        v.run();
        v.finish()
    }
}

/// An expected value checked against the output member's shape: its type, enum and pattern.
/// Values known only at run time (deferred) pass.
fn expect_violations(
    file: &str,
    pos: Pos,
    step: &str,
    path: &str,
    shape: ShapeId,
    value: &J,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    model::model().validate_shape(shape, value, &mut out);
    out.into_iter()
        .map(|v| {
            let at = if v.path.is_empty() {
                path.to_string()
            } else if v.path.starts_with('[') {
                format!("{path}{}", v.path)
            } else {
                format!("{path}.{}", v.path)
            };
            let mut msg = v.message;
            if msg.starts_with("expected ") && msg.contains("found") {
                msg.push_str(" (the output member's type)");
            }
            Diagnostic::error(
                Location::Playbook {
                    file: file.to_string(),
                    line: pos.line,
                    col: pos.col,
                },
                v.code.as_str(),
                format!("expect {at}: {msg}"),
            )
            .with_step(step)
            .with_suggestion(v.suggestion)
        })
        .collect()
}

/// `TEMPLATE_LIMIT` for a render over a size or step limit, `TEMPLATE_ERROR` otherwise.
fn template_code(msg: &str) -> &'static str {
    if msg.contains(template::LIMIT_PREFIX) {
        "TEMPLATE_LIMIT"
    } else {
        "TEMPLATE_ERROR"
    }
}

/// Whether any template of a tree reads the row.
fn reads_row(n: &TNode) -> bool {
    match n {
        TNode::Lit(_) => false,
        TNode::Tpl(t) => origin_of(t) != Origin::Fixed,
        TNode::Arr(items) => items.iter().any(reads_row),
        TNode::Obj(es) => es.iter().any(|(_, i)| reads_row(i)),
    }
}

fn collect_origins(n: &TNode, path: &mut String, out: &mut HashMap<String, Origin>) {
    match n {
        TNode::Lit(_) => {}
        TNode::Tpl(t) => {
            out.insert(path.clone(), origin_of(t));
        }
        TNode::Arr(items) => {
            for (i, it) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                collect_origins(it, path, out);
                path.truncate(len);
            }
        }
        TNode::Obj(es) => {
            for (k, it) in es {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                collect_origins(it, path, out);
                path.truncate(len);
            }
        }
    }
}

// The engine holds a Campaign in an Arc across tasks and moves Rows into a task.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Campaign>();
    send::<Rows>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tokens_are_deterministic_and_fit_both_patterns() {
        let t = client_token("q4-invites", "123456789012", "invite");
        assert_eq!(t, client_token("q4-invites", "123456789012", "invite"));
        assert_ne!(t, client_token("q4-invites", "123456789012", "check"));
        assert_eq!(t.len(), 47);
        assert!(t.starts_with("cosell-") && t.bytes().all(|b| (b'!'..=b'~').contains(&b)));
    }

    fn load(playbook: &str) -> Campaign {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        Campaign::load(&crate::cli::CampaignArgs {
            playbook: root.join(playbook),
            input: None,
            sheet: None,
            vars: vec![],
        })
        .unwrap()
    }

    #[test]
    fn the_runtime_api_renders_real_outputs() {
        let c = load("playbooks/invite-partners.yaml");
        assert_eq!(c.name(), "q4-reseller-invites");
        assert_eq!(c.catalog(), "Sandbox");
        assert_eq!(c.playbook_digest().len(), 64);
        assert!(c.input_path().ends_with("examples/partners.csv"));
        assert_eq!(c.limits().concurrency, 8);
        assert_eq!(c.limits().class_rate(QuotaClass::Write), 1.0);
        assert_eq!(c.limits().max_failures, MaxFailures::Percent(5.0));
        assert_eq!(c.setup()[0].id, "engagement");
        let steps: Vec<&str> = c.steps().iter().map(|s| s.id.as_str()).collect();
        assert_eq!(steps, ["invite", "check"]);
        let rows: Vec<Row> = c.rows().unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[1].key, "222233334444");
        assert_eq!(rows[1].line, 3);
        assert_eq!(rows[1].get("company"), Some("Contoso Ltd"));

        let empty = Map::new();
        let setup_req = c
            .render(
                &c.setup()[0],
                &RenderContext {
                    row: None,
                    setup: &empty,
                    steps: &empty,
                },
            )
            .unwrap();
        assert_eq!(
            setup_req["ClientToken"],
            client_token("q4-reseller-invites", SETUP_KEY, "engagement")
        );
        assert_eq!(setup_req["Catalog"], "Sandbox");

        let mut setup = Map::new();
        setup.insert(
            "engagement".into(),
            serde_json::json!({"Id": "eng-abcdefghij1234"}),
        );
        let ctx = RenderContext {
            row: Some(&rows[1]),
            setup: &setup,
            steps: &empty,
        };
        let req = c.render(&c.steps()[0], &ctx).unwrap();
        assert_eq!(req["EngagementIdentifier"], "eng-abcdefghij1234");
        assert_eq!(
            req["Invitation"]["Message"],
            "Join us, Contoso: Q4 data platform"
        );
        assert_eq!(
            req["ClientToken"],
            client_token("q4-reseller-invites", "222233334444", "invite")
        );
        assert!(model::model()
            .validate_input("CreateEngagementInvitation", &req)
            .is_empty());

        let mut steps = Map::new();
        steps.insert(
            "invite".into(),
            serde_json::json!({"Id": "engi-0123456789abc", "Arn": "arn:x"}),
        );
        let ctx = RenderContext {
            row: Some(&rows[1]),
            setup: &setup,
            steps: &steps,
        };
        let check = &c.steps()[1];
        assert_eq!(
            c.render(check, &ctx).unwrap()["Identifier"],
            "engi-0123456789abc"
        );
        assert!(c.when(check, &ctx).unwrap());
        assert_eq!(
            c.check_expect(check, &serde_json::json!({"Status": "PENDING"}), &ctx),
            Ok(())
        );
        assert_eq!(
            c.check_expect(check, &serde_json::json!({"Status": "EXPIRED"}), &ctx),
            Err("Status is \"EXPIRED\", expected \"PENDING\"".to_string())
        );
        steps.insert("check".into(), serde_json::json!({"Status": "PENDING"}));
        let ctx = RenderContext {
            row: Some(&rows[1]),
            setup: &setup,
            steps: &steps,
        };
        // the invitation id is the built-in `invite_id` column, not repeated here
        assert_eq!(c.ledger_column_names(), ["invitation_status"]);
        assert_eq!(
            c.ledger_columns(&ctx),
            [("invitation_status".to_string(), "PENDING".to_string())]
        );
        // a missing output renders a template error, located at the template and the row
        let ctx = RenderContext {
            row: Some(&rows[1]),
            setup: &empty,
            steps: &empty,
        };
        let e = c.render(&c.steps()[0], &ctx).unwrap_err();
        assert_eq!(e.code, "TEMPLATE_ERROR");
        assert_eq!(e.member.as_deref(), Some("EngagementIdentifier"));
        assert!(
            e.render_text()
                .contains("invite-partners.yaml:29:29: error[TEMPLATE_ERROR]"),
            "{}",
            e.render_text()
        );
    }

    #[test]
    fn when_decides_and_waits_poll_the_task_list() {
        let c = load("playbooks/accept-invitations.yaml");
        let accept = &c.steps()[1];
        assert_eq!(accept.wait, Some(Duration::from_secs(600)));
        assert_eq!(
            accept.poll_action,
            Some("ListEngagementByAcceptingInvitationTasks")
        );
        let rows: Vec<Row> = c.rows().unwrap().map(|r| r.unwrap()).collect();
        let empty = Map::new();
        let mut steps = Map::new();
        steps.insert("check".into(), serde_json::json!({"Status": "ACCEPTED"}));
        let ctx = RenderContext {
            row: Some(&rows[0]),
            setup: &empty,
            steps: &steps,
        };
        assert!(!c.when(accept, &ctx).unwrap());
        let ok = serde_json::json!({"TaskId": "task-0123456789abc", "TaskStatus": "COMPLETE"});
        let (op, poll) = c
            .poll_request(accept, &["task-0123456789abc".to_string()])
            .unwrap();
        assert!(
            model::model().validate_input(op, &poll).is_empty(),
            "{poll}"
        );
        assert!(c.poll_request(c.step("check").unwrap(), &[]).is_none());
        assert_eq!(c.check_expect(accept, &ok, &ctx), Ok(()));
    }

    #[test]
    fn paths_normalize() {
        assert_eq!(
            normalize(Path::new("playbooks/../examples/a.csv")),
            PathBuf::from("examples/a.csv")
        );
        assert_eq!(normalize(Path::new("../x.csv")), PathBuf::from("../x.csv"));
    }
}
