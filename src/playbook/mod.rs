//! Playbooks: YAML loading into located, typed structures.
//!
//! Owns the playbook format (version 1): its keys (shared with the JSON Schema generator via
//! the key tables below), their types, and the rules that need no template or CSV: version,
//! name, catalog, known actions, `wait` only on asynchronous actions and `paginate` only on
//! paginated Lists (the operation table), unique step ids, limits syntax.
//! Every finding is a [`Diagnostic`] located at `file:line:col`; all are collected, not just the
//! first. Must not touch: CSV files, templates' meaning (see `plan`), the network.

pub mod diag;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Location, Severity};
pub use yaml::{Key, Node, Pos, Value};

use crate::model::{self, QuotaClass};
use std::time::Duration;

/// The playbook format version this build reads.
pub const VERSION: i64 = 1;

/// The operations a step may name: every operation of the API, from the operation table
/// ([`model::ops`]).
pub static ACTIONS: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| model::ops::names().collect());

/// The catalogs a playbook may target.
pub const CATALOGS: &[&str] = &["AWS", "Sandbox"];

/// Top-level keys, with the text used in the JSON Schema and README.
pub const TOP_KEYS: &[(&str, &str)] = &[
    ("version", "Playbook format version; must be 1."),
    (
        "name",
        "Campaign name, [a-z0-9-]{1,40}; part of every idempotency token.",
    ),
    ("description", "Free text for humans."),
    (
        "catalog",
        "AWS or Sandbox; filled into every request that has a Catalog member.",
    ),
    (
        "input",
        "Where the rows come from (file or csv, sheet) and how each is named (key).",
    ),
    (
        "vars",
        "Constants for templates (vars.<name>); --var NAME=VALUE overrides.",
    ),
    (
        "limits",
        "Concurrency, rates, daily budgets and the failure threshold.",
    ),
    (
        "setup",
        "Steps run once before the rows; their outputs are setup.<id>.",
    ),
    (
        "steps",
        "Steps run for every row, in order; their outputs are steps.<id>.",
    ),
    (
        "ledger",
        "Extra ledger columns (columns: {name: template}).",
    ),
    (
        "emulate",
        "Rehearsal only (--emulate): what the embedded emulator holds before the run \
         (fixture, each_row) and how long its tasks take (task_delay).",
    ),
];
pub const EMULATE_KEYS: &[(&str, &str)] = &[
    (
        "fixture",
        "Resources that exist before the run, as the Get operations show them: \
         {invitations: [...], opportunities: [...], engagements: [...]}; may read vars.",
    ),
    (
        "each_row",
        "The same, rendered for every input row (may read row and vars): e.g. the \
         invitation each row accepts.",
    ),
    (
        "task_delay",
        "How long the emulator's tasks stay IN_PROGRESS (default 2s; 0s answers COMPLETE \
         in the Start response).",
    ),
];
pub const INPUT_KEYS: &[(&str, &str)] = &[
    (
        "file",
        "Path of the input, relative to the playbook: .csv, or a workbook (.xlsx, .xlsm, .xls, \
         .ods); --input overrides.",
    ),
    (
        "csv",
        "Path of the CSV, relative to the playbook (as file); --input overrides.",
    ),
    (
        "sheet",
        "The workbook's sheet to read (default: the first); --sheet overrides.",
    ),
    (
        "list",
        "Rows from a List operation instead of a file: {action, input}; every page is read at \
         the read quota when the run starts, and the rows are kept in the run directory.",
    ),
    (
        "where",
        "With list: an expression on row (an item of the list) that keeps the rows it is true \
         for, e.g. \"row.PayloadType == 'OpportunityInvitation'\".",
    ),
    (
        "key",
        "Template naming each row uniquely (default: the CSV line number).",
    ),
];
pub const LIST_KEYS: &[(&str, &str)] = &[
    (
        "action",
        "A paginated List operation (ListEngagementInvitations, ListOpportunities, …).",
    ),
    (
        "input",
        "Its request (Catalog filled in); templates may read vars and run.",
    ),
];
pub const LIMITS_KEYS: &[(&str, &str)] = &[
    ("concurrency", "Rows in flight at once (default 4)."),
    (
        "rates",
        "Requests per time unit, per quota class or operation: `1/s`, `30/m`, `3600/h`.",
    ),
    (
        "daily",
        "Requests per rolling 24 hours, per quota class (defaults: documented quotas).",
    ),
    (
        "max_failures",
        "Stop the run once more rows than this failed: a count (5) or a percentage (`5%`).",
    ),
    (
        "daily_wait",
        "true: when a rolling 24-hour budget is spent, wait until it has room and go on \
         (as --wait-for-quota) instead of stopping with exit 3.",
    ),
];
pub const STEP_KEYS: &[(&str, &str)] = &[
    (
        "id",
        "Step name, [A-Za-z_][A-Za-z0-9_]{0,39}, unique across setup and steps.",
    ),
    (
        "action",
        "The API operation (CreateEngagementInvitation, ...).",
    ),
    ("description", "Free text for humans."),
    (
        "input",
        "The request exactly as the API's JSON; string values are templates.",
    ),
    (
        "patch",
        "Only on updates that replace a whole record (UpdateOpportunity, \
         UpdateEngagementContext): the members to change. cosell reads the record, merges the \
         patch (maps merge, lists are replaced, null removes, an empty cell leaves), sends the \
         whole record with the version it read, and sends nothing when nothing changes; input \
         then holds only the identifiers.",
    ),
    (
        "when",
        "A template expression; the step runs only when it is true.",
    ),
    (
        "expect",
        "Output member (dotted path) -> expected value; a mismatch fails the row.",
    ),
    (
        "wait",
        "Only on asynchronous actions (Start…Task, Create/StartResourceSnapshotJob): poll with \
         the operation's waiter until it finishes ({timeout: 10m, interval: 5s}).",
    ),
    (
        "paginate",
        "Only on paginated List actions: follow NextToken and collect every page's items into \
         the output (true/false).",
    ),
    (
        "max_items",
        "With paginate: stop once this many items are collected (a positive integer).",
    ),
];
pub const WAIT_KEYS: &[(&str, &str)] = &[
    (
        "timeout",
        "Give up after this long (`90s`, `10m`, `1h`); default 10m.",
    ),
    ("interval", "Time between polls (default 5s)."),
];
/// `emulate:`: the rehearsal fixture of a playbook (used only by `--emulate`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EmulateSpec {
    pub fixture: Option<Node>,
    pub each_row: Option<Node>,
    pub task_delay: Option<Duration>,
}

pub const LEDGER_KEYS: &[(&str, &str)] = &[(
    "columns",
    "Extra ledger columns: name -> template (rendered after the row's steps).",
)];

/// A value and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Loc<T> {
    pub pos: Pos,
    pub value: T,
}

/// What a rate or budget applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RateTarget {
    Class(QuotaClass),
    Operation(String),
}

impl std::fmt::Display for RateTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateTarget::Class(c) => write!(f, "{c}"),
            RateTarget::Operation(o) => f.write_str(o),
        }
    }
}

/// When the run stops for failed rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxFailures {
    /// Stop once more than this many rows failed.
    Count(u64),
    /// Stop once more than this percentage of the processed rows failed.
    Percent(f64),
}

/// `input.list`: the List operation whose items are the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ListSpec {
    pub pos: Pos,
    pub action: Loc<String>,
    /// The request (a mapping node; templates allowed).
    pub input: Option<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Playbook {
    /// The playbook's path as given (for locations).
    pub file: String,
    pub name: Loc<String>,
    pub description: Option<String>,
    pub catalog: Loc<String>,
    /// `input.file` or `input.csv`.
    pub input_file: Option<Loc<String>>,
    /// `input.sheet`.
    pub sheet: Option<Loc<String>>,
    /// `input.list`: rows from a List operation.
    pub list: Option<ListSpec>,
    /// `input.where`: the filter on listed rows (an expression string node).
    pub filter: Option<Node>,
    /// The row-key template (a string node), if given.
    pub key: Option<Node>,
    pub vars: Vec<(Key, Node)>,
    pub limits: LimitsSpec,
    pub setup: Vec<StepSpec>,
    pub steps: Vec<StepSpec>,
    pub ledger_columns: Vec<(Key, Node)>,
    pub emulate: Option<EmulateSpec>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LimitsSpec {
    pub concurrency: Option<Loc<usize>>,
    /// Per second.
    pub rates: Vec<(Loc<RateTarget>, Loc<f64>)>,
    pub daily: Vec<(Loc<QuotaClass>, Loc<u64>)>,
    pub max_failures: Option<Loc<MaxFailures>>,
    pub daily_wait: Option<Loc<bool>>,
}

/// The columns every ledger has (besides `<step>_id` and `setup_<step>_id`); `ledger.columns`
/// may not reuse them. (`row` was the line column's name before ledger format 2: still
/// refused, so an old playbook's column cannot be confused with it.)
pub const LEDGER_BUILTIN_COLUMNS: [&str; 10] = [
    "line",
    "row",
    "key",
    "status",
    "notes",
    "error_step",
    "error_code",
    "error_message",
    "started_at",
    "finished_at",
];

#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    pub pos: Pos,
    pub id: Loc<String>,
    pub action: Loc<String>,
    pub description: Option<String>,
    /// The request template (a mapping node), if given.
    pub input: Option<Node>,
    /// `patch:` (a mapping node): the members an update changes on the record it reads.
    pub patch: Option<Node>,
    pub when: Option<Loc<String>>,
    pub expect: Vec<(Key, Node)>,
    pub wait: Option<WaitSpec>,
    /// `paginate: true`, with its optional `max_items`.
    pub paginate: Option<PaginateSpec>,
    /// Whether this step is in `setup`.
    pub setup: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PaginateSpec {
    pub pos: Pos,
    pub max_items: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WaitSpec {
    pub pos: Pos,
    pub timeout: Duration,
    pub interval: Duration,
}

/// Default `wait.timeout`.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(600);
/// Default `wait.interval`.
pub const DEFAULT_WAIT_INTERVAL: Duration = Duration::from_secs(5);

/// Collects findings while a playbook is read.
struct Reader<'a> {
    file: &'a str,
    diags: Diagnostics,
}

impl Reader<'_> {
    fn at(&self, pos: Pos) -> Location {
        Location::Playbook {
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
        }
    }
    fn err(&mut self, pos: Pos, code: &str, msg: impl Into<String>) {
        let d = Diagnostic::error(self.at(pos), code, msg);
        self.diags.push(d);
    }
    fn err_s(&mut self, pos: Pos, code: &str, msg: impl Into<String>, sug: Option<&str>) {
        let d = Diagnostic::error(self.at(pos), code, msg).with_suggestion(sug);
        self.diags.push(d);
    }

    /// The entries of a mapping node, reporting unknown and duplicate keys against `allowed`.
    fn map<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[(&str, &str)],
    ) -> Option<&'n [(Key, Node)]> {
        let Value::Map(entries) = &node.value else {
            self.err(
                node.pos,
                "WRONG_TYPE",
                format!("{what} must be a mapping, found {}", node.value.kind()),
            );
            return None;
        };
        for (k, _) in entries {
            if !allowed.iter().any(|(a, _)| *a == k.name) {
                let names: Vec<&str> = allowed.iter().map(|(a, _)| *a).collect();
                let sug = model::nearest(&k.name, names.iter().copied());
                self.err_s(
                    k.pos,
                    "UNKNOWN_KEY",
                    format!(
                        "unknown key {:?} in {what}; allowed: {}",
                        k.name,
                        names.join(", ")
                    ),
                    sug,
                );
            }
        }
        Some(entries)
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            other => {
                self.err(
                    node.pos,
                    "WRONG_TYPE",
                    format!("{what} must be a string, found {}", other.kind()),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = match &node.value {
            Value::Int(i) if *i > 0 => return Some(Duration::from_secs(*i as u64)),
            Value::Str(s) => s.trim().to_string(),
            other => {
                self.err(
                    node.pos,
                    "WRONG_TYPE",
                    format!(
                        "{what} must be a duration such as 90s, 10m or 1h, found {}",
                        other.kind()
                    ),
                );
                return None;
            }
        };
        match parse_duration(&text) {
            Some(d) if !d.is_zero() => Some(d),
            _ => {
                self.err(
                    node.pos,
                    "INVALID_DURATION",
                    format!("{what} {text:?} is not a duration such as 500ms, 90s, 10m or 1h"),
                );
                None
            }
        }
    }
}

/// `500ms`, `90s`, `10m`, `1h`, `1d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    (secs.is_finite() && (0.0..1e9).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

/// `1/s`, `30/m`, `3600/h`, `0.5/s` or a bare number (per second) → requests per second.
pub fn parse_rate(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, per) = match s.split_once('/') {
        Some((n, u)) => (n.trim(), u.trim()),
        None => (s, "s"),
    };
    let n: f64 = num.parse().ok()?;
    let secs = match per {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        "d" | "day" => 86400.0,
        _ => return None,
    };
    let r = n / secs;
    (r.is_finite() && r > 0.0).then_some(r)
}

/// Whether `name` is a valid playbook name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `id` is a valid step id (usable as `steps.<id>` in templates).
pub fn valid_step_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && id.len() <= 40
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parse a playbook's text. `file` is the path shown in locations. All findings are
/// returned, errors and warnings; `Err` when any is an error.
pub fn parse(file: &str, text: &str) -> Result<(Playbook, Diagnostics), Diagnostics> {
    let mut r = Reader {
        file,
        diags: Diagnostics::new(),
    };
    let root = match yaml::parse(text) {
        Ok(n) => n,
        Err(e) => {
            let pos = e.pos.unwrap_or(Pos { line: 1, col: 1 });
            let code = if e.limit { "YAML_LIMIT" } else { "YAML_SYNTAX" };
            r.err(pos, code, e.message);
            return Err(r.diags);
        }
    };
    if matches!(root.value, Value::Null) {
        r.err(
            Pos { line: 1, col: 1 },
            "EMPTY_PLAYBOOK",
            "the playbook is empty; it needs at least version, name, catalog and steps",
        );
        return Err(r.diags);
    }
    let Some(entries) = r.map(&root, "the playbook", TOP_KEYS) else {
        return Err(r.diags);
    };
    let get = |k: &str| entries.iter().find(|(key, _)| key.name == k);

    // version first: a newer format is refused before anything else is judged
    match get("version") {
        None => {
            r.err(
                root.pos,
                "MISSING_KEY",
                "the playbook needs `version: 1` (the playbook format version)",
            );
            return Err(r.diags);
        }
        Some((_, v)) => match &v.value {
            Value::Int(VERSION) => {}
            Value::Int(n) if *n > VERSION => {
                r.err(
                    v.pos,
                    "UNSUPPORTED_VERSION",
                    format!(
                        "playbook version {n} is newer than this cosell understands (it reads \
                         version {VERSION}); upgrade cosell"
                    ),
                );
                return Err(r.diags);
            }
            other => {
                r.err(
                    v.pos,
                    "UNSUPPORTED_VERSION",
                    format!(
                        "version must be {VERSION}, found {}",
                        match other {
                            Value::Int(n) => n.to_string(),
                            o => o.kind().to_string(),
                        }
                    ),
                );
                return Err(r.diags);
            }
        },
    }

    let name = match get("name") {
        None => {
            r.err(root.pos, "MISSING_KEY", "the playbook needs a `name`");
            None
        }
        Some((_, n)) => r.string(n, "name").and_then(|s| {
            if valid_name(&s) {
                Some(Loc {
                    pos: n.pos,
                    value: s,
                })
            } else {
                r.err(
                    n.pos,
                    "INVALID_NAME",
                    format!(
                        "name {s:?} must be 1 to 40 characters of a-z, 0-9 and - (it is part of \
                         every idempotency token)"
                    ),
                );
                None
            }
        }),
    };
    let description = get("description").and_then(|(_, n)| r.string(n, "description"));
    let catalog = match get("catalog") {
        None => {
            r.err(
                root.pos,
                "MISSING_KEY",
                "the playbook needs a `catalog`: AWS or Sandbox",
            );
            None
        }
        Some((_, n)) => r.string(n, "catalog").and_then(|s| {
            if CATALOGS.contains(&s.as_str()) {
                Some(Loc {
                    pos: n.pos,
                    value: s,
                })
            } else {
                let sug = model::nearest(&s, CATALOGS.iter().copied());
                r.err_s(
                    n.pos,
                    "INVALID_CATALOG",
                    format!("catalog {s:?} is not one of AWS, Sandbox"),
                    sug,
                );
                None
            }
        }),
    };

    let (mut input_file, mut sheet, mut key, mut list, mut filter) = (None, None, None, None, None);
    if let Some((_, n)) = get("input") {
        if let Some(es) = r.map(n, "input", INPUT_KEYS) {
            for (k, v) in es {
                match k.name.as_str() {
                    "csv" | "file" => {
                        let what = format!("input.{}", k.name);
                        if input_file.is_some() {
                            r.err(
                                k.pos,
                                "DUPLICATE_INPUT",
                                "give the input once: input.file or input.csv, not both",
                            );
                            continue;
                        }
                        input_file = r.string(v, &what).map(|s| Loc {
                            pos: v.pos,
                            value: s,
                        })
                    }
                    "sheet" => {
                        sheet = r.string(v, "input.sheet").map(|s| Loc {
                            pos: v.pos,
                            value: s,
                        })
                    }
                    "list" => {
                        if let Some(ls) = r.map(v, "input.list", LIST_KEYS) {
                            let action = ls.iter().find(|(k, _)| k.name == "action");
                            let input = ls.iter().find(|(k, _)| k.name == "input");
                            match action.and_then(|(_, a)| {
                                r.string(a, "input.list.action").map(|s| Loc {
                                    pos: a.pos,
                                    value: s,
                                })
                            }) {
                                Some(action) => {
                                    list = Some(ListSpec {
                                        pos: v.pos,
                                        action,
                                        input: input.map(|(_, n)| n.clone()),
                                    })
                                }
                                None if action.is_none() => r.err(
                                    v.pos,
                                    "MISSING_KEY",
                                    "input.list needs an `action`: the List operation whose \
                                     items are the rows"
                                        .to_string(),
                                ),
                                None => {}
                            }
                        }
                    }
                    "where" if r.string(v, "input.where").is_some() => filter = Some(v.clone()),
                    "key" if r.string(v, "input.key").is_some() => key = Some(v.clone()),
                    _ => {}
                }
            }
        }
    }

    if let (Some(c), Some(l)) = (&input_file, &list) {
        r.err(
            l.pos,
            "INPUT_CONFLICT",
            format!(
                "input has both a file (line {}) and list: the rows come from one of them; \
                 remove one",
                c.pos.line
            ),
        );
    }
    if let (Some(f), None) = (&filter, &list) {
        r.err(
            f.pos,
            "WHERE_WITHOUT_LIST",
            "input.where filters the rows of input.list; a CSV's rows are filtered with a \
             step's when, or in the sheet"
                .to_string(),
        );
    }

    let mut vars = Vec::new();
    if let Some((_, n)) = get("vars") {
        match &n.value {
            Value::Map(es) => vars = es.clone(),
            Value::Null => {}
            other => r.err(
                n.pos,
                "WRONG_TYPE",
                format!("vars must be a mapping, found {}", other.kind()),
            ),
        }
    }

    let limits = match get("limits") {
        Some((_, n)) => read_limits(&mut r, n),
        None => LimitsSpec::default(),
    };

    let mut ids: Vec<Loc<String>> = Vec::new();
    let setup = match get("setup") {
        Some((_, n)) => read_steps(&mut r, n, true, &mut ids),
        None => Vec::new(),
    };
    let steps = match get("steps") {
        Some((_, n)) => read_steps(&mut r, n, false, &mut ids),
        None => {
            r.err(
                root.pos,
                "MISSING_KEY",
                "the playbook needs `steps`: the list of steps run for every row",
            );
            Vec::new()
        }
    };
    if get("steps").is_some() && steps.is_empty() && !r.diags.has_errors() {
        let pos = get("steps").map(|(_, n)| n.pos).unwrap_or(root.pos);
        r.err(pos, "NO_STEPS", "steps is empty: give at least one step");
    }

    let mut ledger_columns = Vec::new();
    if let Some((_, n)) = get("ledger") {
        if let Some(es) = r.map(n, "ledger", LEDGER_KEYS) {
            if let Some((_, cols)) = es.iter().find(|(k, _)| k.name == "columns") {
                match &cols.value {
                    Value::Map(cs) => {
                        for (k, v) in cs {
                            if r.string(v, "a ledger column").is_some() {
                                ledger_columns.push((k.clone(), v.clone()));
                            }
                        }
                    }
                    other => r.err(
                        cols.pos,
                        "WRONG_TYPE",
                        format!(
                            "ledger.columns must be a mapping of column name to template, found {}",
                            other.kind()
                        ),
                    ),
                }
            }
        }
    }

    let mut emulate = None;
    if let Some((_, n)) = get("emulate") {
        if let Some(es) = r.map(n, "emulate", EMULATE_KEYS) {
            let mut spec = EmulateSpec::default();
            for (k, v) in es {
                match k.name.as_str() {
                    "fixture" => spec.fixture = Some(v.clone()),
                    "each_row" => spec.each_row = Some(v.clone()),
                    "task_delay" => {
                        // zero is a delay too: tasks answer COMPLETE in the Start response
                        let zero = match &v.value {
                            Value::Int(0) => true,
                            Value::Str(t) => parse_duration(t.trim()).is_some_and(|d| d.is_zero()),
                            _ => false,
                        };
                        spec.task_delay = if zero {
                            Some(Duration::ZERO)
                        } else {
                            r.duration(v, "emulate.task_delay")
                        };
                    }
                    _ => {}
                }
            }
            emulate = Some(spec);
        }
    }

    // ledger.columns sit beside the built-in columns: a clash would make two columns
    // with one name, and a spreadsheet (or a script) would read the wrong one
    for (k, _) in &ledger_columns {
        let step_id_column = steps.iter().any(|s| format!("{}_id", s.id.value) == k.name);
        if LEDGER_BUILTIN_COLUMNS.contains(&k.name.as_str()) || step_id_column {
            r.err(
                k.pos,
                "LEDGER_COLUMN_CLASH",
                format!(
                    "ledger column {:?} clashes with a built-in ledger column ({}, and <step>_id \
                     for each step); rename it, e.g. {:?}",
                    k.name,
                    LEDGER_BUILTIN_COLUMNS.join(", "),
                    format!("my_{}", k.name)
                ),
            );
        }
    }

    if r.diags.has_errors() {
        return Err(r.diags);
    }
    let (Some(name), Some(catalog)) = (name, catalog) else {
        return Err(r.diags);
    };
    Ok((
        Playbook {
            file: file.to_string(),
            name,
            description,
            catalog,
            input_file,
            sheet,
            list,
            filter,
            key,
            vars,
            limits,
            setup,
            steps,
            ledger_columns,
            emulate,
        },
        r.diags,
    ))
}

fn read_limits(r: &mut Reader, n: &Node) -> LimitsSpec {
    let mut out = LimitsSpec::default();
    let Some(es) = r.map(n, "limits", LIMITS_KEYS) else {
        return out;
    };
    for (k, v) in es {
        match k.name.as_str() {
            "concurrency" => match &v.value {
                Value::Int(i) if (1..=1024).contains(i) => {
                    out.concurrency = Some(Loc {
                        pos: v.pos,
                        value: *i as usize,
                    })
                }
                other => r.err(
                    v.pos,
                    "INVALID_LIMIT",
                    format!(
                        "limits.concurrency must be an integer from 1 to 1024, found {}",
                        match other {
                            Value::Int(i) => i.to_string(),
                            o => o.kind().to_string(),
                        }
                    ),
                ),
            },
            "rates" => {
                let Value::Map(rs) = &v.value else {
                    r.err(
                        v.pos,
                        "WRONG_TYPE",
                        format!(
                            "limits.rates must be a mapping such as {{write: 1/s, read: 10/s}}, found {}",
                            v.value.kind()
                        ),
                    );
                    continue;
                };
                for (rk, rv) in rs {
                    let target = rate_target(r, rk);
                    let text = match &rv.value {
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Str(s) => s.clone(),
                        other => other.kind().to_string(),
                    };
                    let rate = parse_rate(&text);
                    if rate.is_none() {
                        r.err(
                            rv.pos,
                            "INVALID_LIMIT",
                            format!(
                                "rate {text:?} for {} is not a rate such as 1/s, 30/m or 3600/h",
                                rk.name
                            ),
                        );
                    }
                    if let (Some(t), Some(rate)) = (target, rate) {
                        if let RateTarget::Class(c) = &t {
                            let doc = c.documented().rate;
                            if rate > doc {
                                r.diags.push(Diagnostic::warning(
                                    r.at(rv.pos),
                                    "RATE_ABOVE_QUOTA",
                                    format!(
                                        "rate {text} for {c} is above the documented quota of {doc}/s; \
                                         expect throttling"
                                    ),
                                ));
                            }
                        }
                        out.rates.push((
                            Loc {
                                pos: rk.pos,
                                value: t,
                            },
                            Loc {
                                pos: rv.pos,
                                value: rate,
                            },
                        ));
                    }
                }
            }
            "daily" => {
                let Value::Map(ds) = &v.value else {
                    r.err(
                        v.pos,
                        "WRONG_TYPE",
                        format!(
                            "limits.daily must be a mapping such as {{write: 10000}}, found {}",
                            v.value.kind()
                        ),
                    );
                    continue;
                };
                for (dk, dv) in ds {
                    let class = match QuotaClass::parse(&dk.name) {
                        Some(c) => Some(c),
                        None => {
                            let names = QuotaClass::ALL.map(|c| c.name());
                            let sug = model::nearest(&dk.name, names);
                            r.err_s(
                                dk.pos,
                                "UNKNOWN_QUOTA_CLASS",
                                format!(
                                    "{:?} is not a quota class; daily budgets apply to: {}",
                                    dk.name,
                                    names.join(", ")
                                ),
                                sug,
                            );
                            None
                        }
                    };
                    let count = match &dv.value {
                        Value::Int(i) if *i > 0 => Some(*i as u64),
                        other => {
                            r.err(
                                dv.pos,
                                "INVALID_LIMIT",
                                format!(
                                    "a daily budget must be a positive integer, found {}",
                                    match other {
                                        Value::Int(i) => i.to_string(),
                                        o => o.kind().to_string(),
                                    }
                                ),
                            );
                            None
                        }
                    };
                    if let (Some(c), Some(n)) = (class, count) {
                        out.daily.push((
                            Loc {
                                pos: dk.pos,
                                value: c,
                            },
                            Loc {
                                pos: dv.pos,
                                value: n,
                            },
                        ));
                    }
                }
            }
            "max_failures" => {
                let parsed = match &v.value {
                    Value::Int(i) if *i >= 0 => Some(MaxFailures::Count(*i as u64)),
                    Value::Str(s) => parse_max_failures(s),
                    _ => None,
                };
                match parsed {
                    Some(m) => {
                        out.max_failures = Some(Loc {
                            pos: v.pos,
                            value: m,
                        })
                    }
                    None => r.err(
                        v.pos,
                        "INVALID_LIMIT",
                        "limits.max_failures must be a count (5) or a percentage from 0% to 100% (\"5%\")",
                    ),
                }
            }
            "daily_wait" => match &v.value {
                Value::Bool(b) => {
                    out.daily_wait = Some(Loc {
                        pos: v.pos,
                        value: *b,
                    })
                }
                other => r.err(
                    v.pos,
                    "WRONG_TYPE",
                    format!(
                        "limits.daily_wait must be true or false, found {}",
                        other.kind()
                    ),
                ),
            },
            _ => {}
        }
    }
    out
}

/// `5` or `5%`.
pub fn parse_max_failures(s: &str) -> Option<MaxFailures> {
    let s = s.trim();
    if let Some(p) = s.strip_suffix('%') {
        let p: f64 = p.trim().parse().ok()?;
        return (0.0..=100.0)
            .contains(&p)
            .then_some(MaxFailures::Percent(p));
    }
    s.parse().ok().map(MaxFailures::Count)
}

fn rate_target(r: &mut Reader, k: &Key) -> Option<RateTarget> {
    if let Some(c) = QuotaClass::parse(&k.name) {
        return Some(RateTarget::Class(c));
    }
    if model::model().operation(&k.name).is_some() {
        return Some(RateTarget::Operation(k.name.clone()));
    }
    let names = QuotaClass::ALL.map(|c| c.name());
    let sug = model::nearest(
        &k.name,
        names.iter().copied().chain(ACTIONS.iter().copied()),
    );
    r.err_s(
        k.pos,
        "UNKNOWN_RATE_TARGET",
        format!(
            "{:?} is neither a quota class ({}) nor an operation name",
            k.name,
            names.join(", ")
        ),
        sug,
    );
    None
}

fn read_steps(r: &mut Reader, n: &Node, setup: bool, ids: &mut Vec<Loc<String>>) -> Vec<StepSpec> {
    let section = if setup { "setup" } else { "steps" };
    let items = match &n.value {
        Value::Seq(items) => items,
        Value::Null => return Vec::new(),
        other => {
            r.err(
                n.pos,
                "WRONG_TYPE",
                format!("{section} must be a list of steps, found {}", other.kind()),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let what = format!("{section}[{i}]");
        let Some(es) = r.map(item, &what, STEP_KEYS) else {
            continue;
        };
        let get = |k: &str| es.iter().find(|(key, _)| key.name == k).map(|(_, v)| v);
        let mut ok = true;
        let id = match get("id") {
            None => {
                r.err(item.pos, "MISSING_KEY", format!("{what} needs an `id`"));
                ok = false;
                None
            }
            Some(v) => match r.string(v, "id") {
                Some(s) if valid_step_id(&s) => {
                    if let Some(prev) = ids.iter().find(|p| p.value == s) {
                        let d = Diagnostic::error(
                            r.at(v.pos),
                            "DUPLICATE_STEP_ID",
                            format!(
                                "step id {s:?} is already used at line {}; step ids must be unique \
                                 across setup and steps",
                                prev.pos.line
                            ),
                        );
                        r.diags.push(d);
                        ok = false;
                    }
                    let l = Loc {
                        pos: v.pos,
                        value: s,
                    };
                    ids.push(l.clone());
                    Some(l)
                }
                Some(s) => {
                    r.err(
                        v.pos,
                        "INVALID_STEP_ID",
                        format!(
                            "step id {s:?} must start with a letter or _ and contain only letters, \
                             digits and _ (at most 40), so templates can name it as steps.<id>"
                        ),
                    );
                    ok = false;
                    None
                }
                None => {
                    ok = false;
                    None
                }
            },
        };
        let action = match get("action") {
            None => {
                r.err(item.pos, "MISSING_KEY", format!("{what} needs an `action`"));
                ok = false;
                None
            }
            Some(v) => match r.string(v, "action") {
                Some(s) if ACTIONS.contains(&s.as_str()) => Some(Loc {
                    pos: v.pos,
                    value: s,
                }),
                Some(s) => {
                    let sug = model::nearest(&s, ACTIONS.iter().copied());
                    r.err_s(
                        v.pos,
                        "UNKNOWN_ACTION",
                        format!(
                            "unknown action {s:?}; an action is one of the API's {} operations: {}",
                            ACTIONS.len(),
                            ACTIONS.join(", ")
                        ),
                        sug,
                    );
                    ok = false;
                    None
                }
                None => {
                    ok = false;
                    None
                }
            },
        };
        let description = get("description").and_then(|v| r.string(v, "description"));
        let input = match get("input") {
            None => None,
            Some(v) => match &v.value {
                Value::Map(_) => Some(v.clone()),
                Value::Null => None,
                other => {
                    r.err(
                        v.pos,
                        "WRONG_TYPE",
                        format!(
                            "input must be a mapping (the request as the API's JSON), found {}",
                            other.kind()
                        ),
                    );
                    ok = false;
                    None
                }
            },
        };
        let patch = match get("patch") {
            None => None,
            Some(v) => match (&v.value, &action) {
                (_, Some(a)) if model::update::spec(&a.value).is_none() => {
                    r.err(
                        v.pos,
                        "PATCH_NOT_ALLOWED",
                        format!(
                            "patch is only allowed on updates that replace a whole record ({}); \
                             {} is not one: put its request under input and remove patch",
                            model::update::UPDATES
                                .iter()
                                .map(|u| u.update)
                                .collect::<Vec<_>>()
                                .join(", "),
                            a.value
                        ),
                    );
                    ok = false;
                    None
                }
                (Value::Map(_), _) => Some(v.clone()),
                (other, _) => {
                    r.err(
                        v.pos,
                        "WRONG_TYPE",
                        format!(
                            "patch must be a mapping of the members to change, such as \
                             {{LifeCycle: {{Stage: \"{{{{ row.stage }}}}\"}}}}, found {}",
                            other.kind()
                        ),
                    );
                    ok = false;
                    None
                }
            },
        };
        let when = match get("when") {
            None => None,
            Some(v) => match &v.value {
                Value::Str(s) => Some(Loc {
                    pos: v.pos,
                    value: s.clone(),
                }),
                Value::Bool(b) => Some(Loc {
                    pos: v.pos,
                    value: b.to_string(),
                }),
                other => {
                    r.err(
                        v.pos,
                        "WRONG_TYPE",
                        format!(
                            "when must be an expression such as \"steps.check.Status == 'PENDING'\", \
                             found {}",
                            other.kind()
                        ),
                    );
                    ok = false;
                    None
                }
            },
        };
        let expect = match get("expect") {
            None => Vec::new(),
            Some(v) => match &v.value {
                Value::Map(es) => es.clone(),
                Value::Null => Vec::new(),
                other => {
                    r.err(
                        v.pos,
                        "WRONG_TYPE",
                        format!(
                            "expect must be a mapping of output member to expected value, found {}",
                            other.kind()
                        ),
                    );
                    ok = false;
                    Vec::new()
                }
            },
        };
        let wait = match get("wait") {
            None => None,
            Some(v) => {
                let mut w = WaitSpec {
                    pos: v.pos,
                    timeout: DEFAULT_WAIT_TIMEOUT,
                    interval: DEFAULT_WAIT_INTERVAL,
                };
                match &v.value {
                    Value::Bool(true) => Some(w),
                    Value::Bool(false) | Value::Null => None,
                    Value::Map(_) => {
                        if let Some(ws) = r.map(v, "wait", WAIT_KEYS) {
                            for (k, wv) in ws {
                                match k.name.as_str() {
                                    "timeout" => {
                                        if let Some(d) = r.duration(wv, "wait.timeout") {
                                            w.timeout = d;
                                        }
                                    }
                                    "interval" => {
                                        if let Some(d) = r.duration(wv, "wait.interval") {
                                            w.interval = d;
                                        }
                                    }
                                    _ => {}
                                }
                            }
                        }
                        Some(w)
                    }
                    other => {
                        r.err(
                            v.pos,
                            "WRONG_TYPE",
                            format!(
                                "wait must be a mapping such as {{timeout: 10m}} or true, found {}",
                                other.kind()
                            ),
                        );
                        ok = false;
                        None
                    }
                }
            }
        };
        if let (Some(w), Some(a)) = (&wait, &action) {
            if model::ops::waiter(&a.value).is_none() {
                r.err(
                    w.pos,
                    "WAIT_NOT_ALLOWED",
                    format!(
                        "wait is only allowed on asynchronous actions ({}); {} returns its result \
                         directly: remove wait",
                        model::ops::asynchronous().collect::<Vec<_>>().join(", "),
                        a.value
                    ),
                );
                ok = false;
            }
        }
        let paginate = match get("paginate").map(|v| (v.pos, &v.value)) {
            None | Some((_, Value::Bool(false))) => None,
            Some((pos, Value::Bool(true))) => Some(PaginateSpec {
                pos,
                max_items: None,
            }),
            Some((pos, other)) => {
                r.err(
                    pos,
                    "WRONG_TYPE",
                    format!("paginate must be true or false, found {}", other.kind()),
                );
                ok = false;
                None
            }
        };
        let max_items = match get("max_items").map(|v| (v.pos, &v.value)) {
            None => None,
            Some((pos, Value::Int(n))) if *n >= 1 => Some((pos, *n as u64)),
            Some((pos, other)) => {
                r.err(
                    pos,
                    "WRONG_TYPE",
                    format!(
                        "max_items must be a positive integer, found {}",
                        match other {
                            Value::Int(n) => n.to_string(),
                            o => o.kind().to_string(),
                        }
                    ),
                );
                ok = false;
                None
            }
        };
        let paginate = match (paginate, max_items) {
            (Some(p), m) => Some(PaginateSpec {
                max_items: m.map(|(_, n)| n),
                ..p
            }),
            (None, Some((pos, _))) => {
                r.err(
                    pos,
                    "MAX_ITEMS_WITHOUT_PAGINATE",
                    "max_items only applies to a step with paginate: true; add paginate: true \
                     or remove max_items"
                        .to_string(),
                );
                ok = false;
                None
            }
            (None, None) => None,
        };
        if let (Some(p), Some(a)) = (&paginate, &action) {
            if model::ops::operation(&a.value).is_none_or(|o| o.paginator.is_none()) {
                r.err(
                    p.pos,
                    "PAGINATE_NOT_ALLOWED",
                    format!(
                        "paginate is only allowed on paginated List actions ({}); {} has no \
                         paginator: remove paginate",
                        model::ops::operations()
                            .iter()
                            .filter(|o| o.paginator.is_some())
                            .map(|o| o.name)
                            .collect::<Vec<_>>()
                            .join(", "),
                        a.value
                    ),
                );
                ok = false;
            }
        }
        if let (true, Some(id), Some(action)) = (ok, id, action) {
            out.push(StepSpec {
                pos: item.pos,
                id,
                action,
                description,
                input,
                patch,
                when,
                expect,
                wait,
                paginate,
                setup,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        match parse("p.yaml", text) {
            Ok(_) => vec![],
            Err(d) => d.items().iter().map(|d| d.render_text()).collect(),
        }
    }

    const OK: &str = "version: 1\nname: demo\ncatalog: Sandbox\nsteps:\n  - id: get\n    action: GetEngagementInvitation\n    input: { Identifier: x }\n";

    #[test]
    fn a_minimal_playbook_parses() {
        let (p, d) = parse("p.yaml", OK).unwrap();
        assert!(d.is_empty());
        assert_eq!(p.name.value, "demo");
        assert_eq!(p.steps[0].action.value, "GetEngagementInvitation");
        assert_eq!(p.steps[0].id.pos, Pos { line: 5, col: 9 });
    }

    #[test]
    fn unknown_keys_suggest_the_nearest() {
        let e = errs(&OK.replace("catalog:", "catalgo: x\ncatalog:"));
        assert_eq!(
            e,
            vec!["p.yaml:3:1: error[UNKNOWN_KEY]: unknown key \"catalgo\" in the playbook; allowed: version, name, description, catalog, input, vars, limits, setup, steps, ledger, emulate; did you mean \"catalog\"?"]
        );
    }

    #[test]
    fn newer_versions_are_refused() {
        let e = errs(&OK.replace("version: 1", "version: 2"));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with(
                "p.yaml:1:10: error[UNSUPPORTED_VERSION]: playbook version 2 is newer"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn rates_durations_and_failures_parse() {
        assert_eq!(parse_rate("30/m"), Some(0.5));
        assert_eq!(parse_rate("1/s"), Some(1.0));
        assert_eq!(parse_rate("2"), Some(2.0));
        assert_eq!(parse_rate("0/s"), None);
        assert_eq!(parse_rate("1/week"), None);
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_max_failures("5%"), Some(MaxFailures::Percent(5.0)));
        assert_eq!(parse_max_failures("7"), Some(MaxFailures::Count(7)));
        assert_eq!(parse_max_failures("105%"), None);
    }

    #[test]
    fn step_rules() {
        let text = "version: 1\nname: demo\ncatalog: Sandbox\nsteps:\n  - id: a\n    action: GetEngagementInvitaton\n  - id: a\n    action: GetEngagementInvitation\n    wait: {timeout: 1m}\n";
        let e = errs(text);
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(
            e[0].contains("6:13: error[UNKNOWN_ACTION]")
                && e[0].ends_with("did you mean \"GetEngagementInvitation\"?")
        );
        assert!(
            e[1].contains("7:9: error[DUPLICATE_STEP_ID]: step id \"a\" is already used at line 5")
        );
        assert!(e[2].contains("9:11: error[WAIT_NOT_ALLOWED]"));
    }
}
