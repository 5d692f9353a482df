//! Diagnostics: one located finding each, rendered like a compiler's or as JSON.

use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Where a finding is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// A place in the playbook (1-based line and column).
    Playbook { file: String, line: u32, col: u32 },
    /// A row of the CSV (the physical line where the record starts), optionally one column.
    Csv {
        file: String,
        line: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        column: Option<String>,
    },
    /// A row of a sheet of a workbook (`row` as Excel numbers it), optionally one column
    /// (by its header name).
    Workbook {
        file: String,
        sheet: String,
        row: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        column: Option<String>,
    },
    /// A whole file.
    File { file: String },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Playbook { file, line, col } => write!(f, "{file}:{line}:{col}"),
            Location::Csv {
                file,
                line,
                column: Some(c),
            } => write!(f, "{file}:{line} column {c}"),
            Location::Csv {
                file,
                line,
                column: None,
            } => write!(f, "{file}:{line}"),
            Location::Workbook {
                file,
                sheet,
                row,
                column,
            } => {
                write!(f, "{file} [{sheet}] row {row}")?;
                match column {
                    Some(c) => write!(f, " column {c}"),
                    None => Ok(()),
                }
            }
            Location::File { file } => f.write_str(file),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Location,
    /// The CSV place the offending value came from, when the value is a single CSV cell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Location>,
    /// The step the finding belongs to (`invite`), when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The API member path (`Invitation.Receiver.Account.AwsAccountId`), when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// A stable code: the API's validation codes or cosell's own (`UNKNOWN_KEY`, ...).
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// The 0-based data row, for findings that belong to one row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// The member is one a `patch` sets (not one of the step's `input`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub in_patch: bool,
}

impl Diagnostic {
    pub fn error(location: Location, code: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            location,
            origin: None,
            step: None,
            member: None,
            code: code.to_string(),
            message: message.into(),
            suggestion: None,
            row: None,
            in_patch: false,
        }
    }
    pub fn warning(location: Location, code: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(location, code, message)
        }
    }
    pub fn with_suggestion(mut self, s: Option<impl Into<String>>) -> Self {
        self.suggestion = s.map(Into::into);
        self
    }
    pub fn with_step(mut self, step: impl Into<String>) -> Self {
        self.step = Some(step.into());
        self
    }
    pub fn with_member(mut self, member: impl Into<String>) -> Self {
        let m = member.into();
        self.member = (!m.is_empty()).then_some(m);
        self
    }
    pub fn with_origin(mut self, origin: Option<Location>) -> Self {
        self.origin = origin;
        self
    }
    /// Name the member as one of the step's `patch`.
    pub fn in_patch(mut self, yes: bool) -> Self {
        self.in_patch = yes;
        self
    }
    pub fn with_row(mut self, row: u64) -> Self {
        self.row = Some(row);
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// One diagnostic as text: `file:line:col: error[CODE]: message; did you mean "x"?`,
    /// plus an indented line naming the CSV cell the value came from.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = write!(s, "{}: {sev}[{}]: ", self.location, self.code);
        if let Some(step) = &self.step {
            let _ = write!(s, "{step}");
            match &self.member {
                Some(m) => {
                    let part = if self.in_patch { "patch" } else { "input" };
                    let _ = write!(s, " {part} {m}: ");
                }
                None => s.push_str(": "),
            }
        } else if let Some(m) = &self.member {
            let _ = write!(s, "{m}: ");
        }
        s.push_str(&self.message);
        if let Some(sug) = &self.suggestion {
            let _ = write!(s, "; did you mean {sug:?}?");
        }
        if let Some(o) = &self.origin {
            let _ = write!(s, "\n  --> {o}");
        }
        s
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render_text())
    }
}

impl std::error::Error for Diagnostic {}

/// Many findings, with counts. Keeps at most [`Diagnostics::KEEP`] of them in memory and
/// counts the rest, so a systematic error over a million rows stays cheap.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    errors: u64,
    warnings: u64,
    dropped: u64,
}

impl Diagnostics {
    /// Findings kept in memory (and printed); further ones are only counted.
    pub const KEEP: usize = 1000;

    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, d: Diagnostic) {
        match d.severity {
            Severity::Error => self.errors += 1,
            Severity::Warning => self.warnings += 1,
        }
        if self.items.len() < Self::KEEP {
            self.items.push(d);
        } else {
            self.dropped += 1;
        }
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.errors += other.errors;
        self.warnings += other.warnings;
        self.dropped += other.dropped;
        for d in other.items {
            if self.items.len() < Self::KEEP {
                self.items.push(d);
            } else {
                self.dropped += 1;
            }
        }
    }
    /// No finding at all (neither error nor warning).
    pub fn is_empty(&self) -> bool {
        self.errors == 0 && self.warnings == 0
    }
    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }
    pub fn error_count(&self) -> u64 {
        self.errors
    }
    pub fn warning_count(&self) -> u64 {
        self.warnings
    }
    /// Findings counted but not kept.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }
    pub fn into_items(self) -> Vec<Diagnostic> {
        self.items
    }

    /// All kept findings as text, one per line (two when a CSV cell is named), and a count
    /// of those not shown.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        for d in &self.items {
            s.push_str(&d.render_text());
            s.push('\n');
        }
        if self.dropped > 0 {
            let _ = writeln!(s, "… and {} more not shown", self.dropped);
        }
        s
    }

    pub fn to_json(&self) -> Value {
        json!({
            "errors": self.errors,
            "warnings": self.warnings,
            "not_shown": self.dropped,
            "diagnostics": self.items,
        })
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        let mut ds = Diagnostics::new();
        ds.push(d);
        ds
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render_text())
    }
}

impl std::error::Error for Diagnostics {}
