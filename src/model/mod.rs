//! The Partner Central Selling API model: shapes, operations, constraints and quota classes.
//!
//! Owns the compact constraints file `schemas/model.json` (generated from the official
//! service model by `schemas/gen_model.py` and embedded in the binary), the generic request
//! validator, and the documented quota classes. Everything else in cosell, the emulator
//! included, learns what the API accepts from here.
//!
//! Must not touch: playbooks, CSV, the network, the file system. It is pure and `'static`.

pub mod effects;
pub mod ops;
mod quotas;
pub mod update;
mod validate;

pub use ops::{OpSpec, Progress, Waiter};
pub use quotas::{QuotaClass, QuotaSpec};
pub use validate::{
    account_id_problem, amount_problem, country_code, quote, ErrorCode, Violation,
    CELL_PLACEHOLDER, DEFERRED_PREFIX, ECHO_MAX,
};

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

/// The embedded constraints file.
pub const MODEL_JSON: &str = include_str!("../../schemas/model.json");
/// The constraints-file format this build understands.
pub const MODEL_FORMAT: u32 = 1;

/// Index of a shape in [`Model::shapes`].
pub type ShapeId = u16;

/// The loaded model.
#[derive(Debug)]
pub struct Model {
    pub metadata: Metadata,
    shapes: Vec<Shape>,
    shape_index: HashMap<String, ShapeId>,
    operations: Vec<Operation>,
    operation_index: HashMap<String, usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub api_version: String,
    pub signing_name: String,
    pub target_prefix: String,
    pub endpoint_prefix: String,
}

#[derive(Debug)]
pub struct Operation {
    pub name: String,
    pub input: Option<ShapeId>,
    pub output: Option<ShapeId>,
    pub errors: Vec<ShapeId>,
    pub idempotent: bool,
    /// The service's paginator (`…paginators.json`), for paginated List operations.
    pub paginator: Option<Paginator>,
}

/// How a List operation pages: the request member that takes the token, the response member
/// that returns it, the response member whose items each page adds, and the page-size member.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Paginator {
    pub input_token: String,
    pub output_token: String,
    pub result_key: String,
    pub limit_key: Option<String>,
}

impl Operation {
    /// The name of the input member marked `idempotencyToken`, if any.
    pub fn idempotency_member(&self) -> Option<&'static str> {
        let m = model();
        let input = self.input?;
        m.shape(input)
            .members()
            .iter()
            .find(|mm| mm.idempotency_token)
            .map(|mm| mm.name.as_str())
    }
}

#[derive(Debug)]
pub struct Shape {
    pub name: String,
    pub kind: ShapeKind,
    pub sensitive: bool,
}

#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub shape: ShapeId,
    pub required: bool,
    pub idempotency_token: bool,
}

#[derive(Debug)]
pub enum ShapeKind {
    Structure {
        members: Vec<Member>,
        union: bool,
        exception: bool,
        fault: bool,
    },
    String {
        enum_values: Option<Vec<String>>,
        pattern: Option<Pattern>,
        min: Option<u64>,
        max: Option<u64>,
    },
    List {
        member: ShapeId,
        min: Option<u64>,
        max: Option<u64>,
    },
    Map {
        key: ShapeId,
        value: ShapeId,
        min: Option<u64>,
        max: Option<u64>,
    },
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Long,
    Double,
    Boolean,
    Timestamp,
    Blob,
}

impl Shape {
    pub fn members(&self) -> &[Member] {
        match &self.kind {
            ShapeKind::Structure { members, .. } => members,
            _ => &[],
        }
    }
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members().iter().find(|m| m.name == name)
    }
    pub fn is_structure(&self) -> bool {
        matches!(self.kind, ShapeKind::Structure { .. })
    }
    /// A short, human name of the shape's JSON type ("string", "list", "structure", ...).
    pub fn json_type(&self) -> &'static str {
        match self.kind {
            ShapeKind::Structure { union: true, .. } => "union (object with one member)",
            ShapeKind::Structure { .. } => "object",
            ShapeKind::String { .. } => "string",
            ShapeKind::List { .. } => "list",
            ShapeKind::Map { .. } => "map",
            ShapeKind::Integer { .. } | ShapeKind::Long => "integer",
            ShapeKind::Double => "number",
            ShapeKind::Boolean => "boolean",
            ShapeKind::Timestamp => "timestamp (ISO 8601 string)",
            ShapeKind::Blob => "base64 string",
        }
    }
}

/// A model pattern, compiled on first use and always matched against the whole value.
#[derive(Debug)]
pub struct Pattern {
    pub source: String,
    compiled: OnceLock<Matcher>,
}

#[derive(Debug)]
enum Matcher {
    /// `.{a,b}` or `(?s).{a,b}`: only a length check (in characters).
    Length {
        min: usize,
        max: usize,
        dotall: bool,
    },
    Fast(regex::Regex),
    Fancy(fancy_regex::Regex),
}

impl Pattern {
    fn new(source: String) -> Self {
        Pattern {
            source,
            compiled: OnceLock::new(),
        }
    }

    fn matcher(&self) -> &Matcher {
        self.compiled.get_or_init(|| compile_pattern(&self.source))
    }

    /// Whether `value` matches the whole pattern.
    pub fn is_match(&self, value: &str) -> bool {
        match self.matcher() {
            Matcher::Length { min, max, dotall } => {
                if !dotall && value.contains('\n') {
                    return false;
                }
                let n = value.chars().count();
                n >= *min && n <= *max
            }
            Matcher::Fast(re) => re.is_match(value),
            // A pattern that errs at match time (backtrack limit) counts as no match.
            Matcher::Fancy(re) => re.is_match(value).unwrap_or(false),
        }
    }
}

fn compile_pattern(source: &str) -> Matcher {
    if let Some(m) = length_only(source) {
        return m;
    }
    let anchored = format!("^(?:{source})$");
    if let Ok(re) = regex::Regex::new(&anchored) {
        return Matcher::Fast(re);
    }
    match fancy_regex::Regex::new(&anchored) {
        Ok(re) => Matcher::Fancy(re),
        // The generator test guarantees every model pattern compiles; this is unreachable
        // for the embedded model, and a pattern that matches nothing is the safe fallback.
        Err(e) => panic!("model pattern {source:?} does not compile: {e}"),
    }
}

/// Recognise `.{a,b}` / `(?s).{a,b}` so that the commonest model patterns cost a char count.
fn length_only(source: &str) -> Option<Matcher> {
    let (dotall, rest) = match source.strip_prefix("(?s)") {
        Some(r) => (true, r),
        None => (false, source),
    };
    let inner = rest.strip_prefix(".{")?.strip_suffix('}')?;
    let (a, b) = inner.split_once(',')?;
    Some(Matcher::Length {
        min: a.parse().ok()?,
        max: b.parse().ok()?,
        dotall,
    })
}

// ---- loading -------------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawModel {
    format: u32,
    metadata: Metadata,
    operations: serde_json::Map<String, serde_json::Value>,
    shapes: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOperation {
    input: Option<String>,
    output: Option<String>,
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    idempotent: bool,
    paginator: Option<Paginator>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawShape {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    required: Vec<String>,
    #[serde(rename = "enum")]
    enum_values: Option<Vec<String>>,
    pattern: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
    #[serde(default)]
    union: bool,
    #[serde(default)]
    sensitive: bool,
    #[serde(default)]
    exception: bool,
    #[serde(default)]
    fault: bool,
    members: Option<serde_json::Map<String, serde_json::Value>>,
    member: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMember {
    shape: String,
    #[serde(default)]
    idempotency_token: bool,
}

impl Model {
    /// Parse a constraints file. The embedded one is loaded by [`model`].
    pub fn from_json(text: &str) -> Result<Model, String> {
        let raw: RawModel = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if raw.format != MODEL_FORMAT {
            return Err(format!(
                "model format {} is not supported (this build reads {MODEL_FORMAT})",
                raw.format
            ));
        }
        let shape_index: HashMap<String, ShapeId> = raw
            .shapes
            .keys()
            .enumerate()
            .map(|(i, k)| (k.clone(), i as ShapeId))
            .collect();
        let id = |n: &str| -> Result<ShapeId, String> {
            shape_index
                .get(n)
                .copied()
                .ok_or_else(|| format!("shape {n} is referenced but not defined"))
        };
        let mut shapes = Vec::with_capacity(raw.shapes.len());
        for (name, v) in &raw.shapes {
            let r: RawShape =
                serde_json::from_value(v.clone()).map_err(|e| format!("shape {name}: {e}"))?;
            let kind = match r.ty.as_str() {
                "structure" => {
                    let mut members = Vec::new();
                    for (mname, mv) in r.members.iter().flatten() {
                        let rm: RawMember = serde_json::from_value(mv.clone())
                            .map_err(|e| format!("member {name}.{mname}: {e}"))?;
                        members.push(Member {
                            name: mname.clone(),
                            shape: id(&rm.shape)?,
                            required: r.required.iter().any(|q| q == mname),
                            idempotency_token: rm.idempotency_token,
                        });
                    }
                    ShapeKind::Structure {
                        members,
                        union: r.union,
                        exception: r.exception,
                        fault: r.fault,
                    }
                }
                "string" => ShapeKind::String {
                    enum_values: r.enum_values,
                    pattern: r.pattern.map(Pattern::new),
                    min: r.min.map(|x| x as u64),
                    max: r.max.map(|x| x as u64),
                },
                "list" => ShapeKind::List {
                    member: id(r.member.as_deref().ok_or("list without member")?)?,
                    min: r.min.map(|x| x as u64),
                    max: r.max.map(|x| x as u64),
                },
                "map" => ShapeKind::Map {
                    key: id(r.key.as_deref().ok_or("map without key")?)?,
                    value: id(r.value.as_deref().ok_or("map without value")?)?,
                    min: r.min.map(|x| x as u64),
                    max: r.max.map(|x| x as u64),
                },
                "integer" => ShapeKind::Integer {
                    min: r.min.map(|x| x as i64),
                    max: r.max.map(|x| x as i64),
                },
                "long" => ShapeKind::Long,
                "double" | "float" => ShapeKind::Double,
                "boolean" => ShapeKind::Boolean,
                "timestamp" => ShapeKind::Timestamp,
                "blob" => ShapeKind::Blob,
                other => return Err(format!("shape {name}: unknown type {other}")),
            };
            shapes.push(Shape {
                name: name.clone(),
                kind,
                sensitive: r.sensitive,
            });
        }
        let mut operations = Vec::new();
        let mut operation_index = HashMap::new();
        for (name, v) in &raw.operations {
            let r: RawOperation =
                serde_json::from_value(v.clone()).map_err(|e| format!("operation {name}: {e}"))?;
            operation_index.insert(name.clone(), operations.len());
            operations.push(Operation {
                name: name.clone(),
                input: r.input.as_deref().map(id).transpose()?,
                output: r.output.as_deref().map(id).transpose()?,
                errors: r.errors.iter().map(|e| id(e)).collect::<Result<_, _>>()?,
                idempotent: r.idempotent,
                paginator: r.paginator,
            });
        }
        Ok(Model {
            metadata: raw.metadata,
            shapes,
            shape_index,
            operations,
            operation_index,
        })
    }

    pub fn shape(&self, id: ShapeId) -> &Shape {
        &self.shapes[id as usize]
    }
    pub fn shape_id(&self, name: &str) -> Option<ShapeId> {
        self.shape_index.get(name).copied()
    }
    pub fn shape_named(&self, name: &str) -> Option<&Shape> {
        self.shape_id(name).map(|id| self.shape(id))
    }
    pub fn shapes(&self) -> impl Iterator<Item = (ShapeId, &Shape)> {
        self.shapes
            .iter()
            .enumerate()
            .map(|(i, s)| (i as ShapeId, s))
    }
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operation_index.get(name).map(|&i| &self.operations[i])
    }
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The shape reached from `root` by a dotted member path (`Invitation.Payload`);
    /// list members are stepped through transparently (`Contacts.Email`).
    pub fn shape_at_path(&self, root: ShapeId, path: &[&str]) -> Option<ShapeId> {
        let mut cur = root;
        for seg in path {
            cur = self.unwrap_lists(cur);
            cur = self.shape(cur).member(seg)?.shape;
        }
        Some(cur)
    }

    fn unwrap_lists(&self, mut id: ShapeId) -> ShapeId {
        while let ShapeKind::List { member, .. } = self.shape(id).kind {
            id = member;
        }
        id
    }

    /// The operation names whose name is nearest to `name` (for "did you mean").
    pub fn nearest_operation(&self, name: &str) -> Option<&str> {
        nearest(name, self.operations.iter().map(|o| o.name.as_str()))
    }
}

/// The nearest candidate to `value` by case-insensitive edit distance, when it is close enough
/// to be a plausible typo.
pub fn nearest<'a>(value: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = value.to_lowercase();
    let mut best: Option<(&str, f64)> = None;
    for c in candidates {
        let cl = c.to_lowercase();
        if cl == lower {
            return Some(c);
        }
        let score = strsim::jaro_winkler(&lower, &cl);
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    best.filter(|(_, s)| *s >= 0.75).map(|(c, _)| c)
}

static MODEL: LazyLock<Model> = LazyLock::new(|| {
    Model::from_json(MODEL_JSON).unwrap_or_else(|e| panic!("embedded model is invalid: {e}"))
});

/// The embedded model, parsed once.
pub fn model() -> &'static Model {
    &MODEL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_model_loads_with_all_operations() {
        let m = model();
        assert_eq!(m.metadata.target_prefix, "AWSPartnerCentralSelling");
        assert_eq!(m.operations().len(), 45);
        let op = m.operation("CreateEngagementInvitation").unwrap();
        assert_eq!(op.idempotency_member(), Some("ClientToken"));
        assert!(m
            .operation("GetEngagementInvitation")
            .unwrap()
            .idempotency_member()
            .is_none());
    }

    #[test]
    fn every_model_pattern_compiles() {
        for (_, s) in model().shapes() {
            if let ShapeKind::String {
                pattern: Some(p), ..
            } = &s.kind
            {
                // forces compilation; panics on failure
                p.is_match("x");
            }
        }
    }

    #[test]
    fn patterns_match_the_whole_value() {
        let m = model();
        let pat = |n: &str| match &m.shape_named(n).unwrap().kind {
            ShapeKind::String {
                pattern: Some(p), ..
            } => p,
            _ => panic!("{n} has no pattern"),
        };
        assert!(pat("EngagementIdentifier").is_match("eng-abcdefghij1234"));
        assert!(!pat("EngagementIdentifier").is_match("xeng-abcdefghij1234"));
        assert!(!pat("EngagementIdentifier").is_match("eng-abcdefghij12345"));
        let inv = pat("EngagementInvitationArnOrIdentifier");
        assert!(inv.is_match("engi-0123456789abc"));
        assert!(!inv.is_match("engi-0123"));
        assert!(pat("AwsAccount").is_match("123456789012"));
        assert!(!pat("AwsAccount").is_match("1234567890123"));
    }

    #[test]
    fn nearest_suggests_typos() {
        assert_eq!(nearest("Sandbx", ["AWS", "Sandbox"]), Some("Sandbox"));
        assert_eq!(nearest("zzzz", ["AWS", "Sandbox"]), None);
    }
}
