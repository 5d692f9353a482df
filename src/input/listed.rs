//! Listed rows: the items of a List operation (`input.list`), kept in the run directory as
//! `rows.jsonl` so that `resume`, `--retry-failed`, `status` and the ledger see the same rows
//! after the service's list has changed (accepting invitations removes them from a PENDING
//! list).
//!
//! Owns the file's format and its integrity check. Must not touch: the network (the engine
//! lists), templates (the plan filters with `input.where` before writing).
//!
//! # `rows.jsonl` (format [`LISTED_FORMAT`])
//!
//! Line 1 is a header object: `format`, `kind` (`cosell-listed-rows`), `action` and `request`
//! (the List call, first page), `where` (the filter, if any), `listed_at` (RFC 3339 UTC),
//! `count` (rows kept) and `sha256` (hex SHA-256 of the row lines, each with its `\n`). Then
//! one row per line: the item exactly as the API returned it (a JSON object). The file is
//! written to `rows.jsonl.tmp` (0600), fsynced, and renamed into place, so it is complete or
//! absent; a reader checks the count and the digest and refuses a file that does not match
//! (edited, or damaged) naming it. A row's `line` is its line in this file (the header is
//! line 1), as diagnostics and the ledger name it.

use crate::playbook::{Diagnostic, Location};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// The version of `rows.jsonl`.
pub const LISTED_FORMAT: u32 = 1;
/// The header's `kind`.
pub const LISTED_KIND: &str = "cosell-listed-rows";
/// The file's name in a run directory.
pub const LISTED_FILE: &str = "rows.jsonl";

/// What the header says of the listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedHeader {
    pub action: String,
    pub request: Value,
    pub filter: Option<String>,
    pub listed_at: String,
    pub count: u64,
    pub sha256: String,
}

/// Write `rows` (already filtered) to `path` atomically.
pub fn write(path: &Path, header: &ListedHeader, rows: &[Value]) -> std::io::Result<()> {
    let mut body = Vec::new();
    for r in rows {
        serde_json::to_writer(&mut body, r)?;
        body.push(b'\n');
    }
    let digest = format!("{:x}", Sha256::digest(&body));
    let mut h = Map::new();
    h.insert("format".into(), LISTED_FORMAT.into());
    h.insert("kind".into(), LISTED_KIND.into());
    h.insert("action".into(), header.action.clone().into());
    h.insert("request".into(), header.request.clone());
    if let Some(f) = &header.filter {
        h.insert("where".into(), f.clone().into());
    }
    h.insert("listed_at".into(), header.listed_at.clone().into());
    h.insert("count".into(), (rows.len() as u64).into());
    h.insert("sha256".into(), digest.into());
    let mut bytes = serde_json::to_vec(&Value::Object(h))?;
    bytes.push(b'\n');
    bytes.extend_from_slice(&body);
    crate::rundir::write_atomically(path, &bytes)
}

fn damaged(file: &str, line: u64, why: String) -> Diagnostic {
    Diagnostic::error(
        Location::Csv {
            file: file.to_string(),
            line,
            column: None,
        },
        "LISTED_ROWS_DAMAGED",
        format!(
            "{why}: this file holds the rows cosell listed when the run started, and must not \
             be edited; restore it from a backup, or start a new run to list again"
        ),
    )
}

/// Whether `path` is a listed-rows file (its first line is a cosell header).
pub fn is_listed(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let mut first = String::new();
    let _ = first_line(f, &mut first);
    serde_json::from_str::<Value>(&first)
        .ok()
        .and_then(|v| {
            v.get("kind")
                .and_then(Value::as_str)
                .map(|k| k == LISTED_KIND)
        })
        .unwrap_or(false)
}

/// The first line of `r`, reading at most 1 MiB (a header is small).
fn first_line<R: std::io::Read>(r: R, out: &mut String) -> std::io::Result<usize> {
    BufReader::new(r.take(1 << 20)).read_line(out)
}

/// A listed-rows file opened for streaming, its header and digest checked first.
pub struct ListedReader {
    file: String,
    header: ListedHeader,
    lines: std::io::Lines<BufReader<File>>,
    next_index: u64,
}

/// One listed row.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedRow {
    pub index: u64,
    /// Its line in the file (the header is line 1).
    pub line: u64,
    pub item: Value,
}

impl ListedReader {
    pub fn open(path: &Path, file: &str) -> Result<ListedReader, Diagnostic> {
        let open = || {
            File::open(path).map_err(|e| {
                Diagnostic::error(
                    Location::File {
                        file: file.to_string(),
                    },
                    "INPUT_UNREADABLE",
                    format!("cannot open the listed rows: {e}"),
                )
            })
        };
        let mut lines = BufReader::new(open()?).lines();
        let head = match lines.next() {
            Some(Ok(l)) => l,
            _ => return Err(damaged(file, 1, "no header line".into())),
        };
        let h: Value = serde_json::from_str(&head)
            .map_err(|e| damaged(file, 1, format!("the header is not JSON ({e})")))?;
        if h.get("kind").and_then(Value::as_str) != Some(LISTED_KIND) {
            return Err(damaged(file, 1, "the header is not a cosell header".into()));
        }
        let format = h.get("format").and_then(Value::as_u64).unwrap_or(0);
        if format > LISTED_FORMAT as u64 {
            return Err(Diagnostic::error(
                Location::File {
                    file: file.to_string(),
                },
                "NEWER_FORMAT",
                format!(
                    "written by a newer cosell (listed rows format {format}, this cosell reads \
                     format {LISTED_FORMAT}); upgrade cosell"
                ),
            ));
        }
        let str_of = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let header = ListedHeader {
            action: str_of("action"),
            request: h.get("request").cloned().unwrap_or(Value::Null),
            filter: h.get("where").and_then(Value::as_str).map(str::to_string),
            listed_at: str_of("listed_at"),
            count: h.get("count").and_then(Value::as_u64).unwrap_or(0),
            sha256: str_of("sha256"),
        };
        // the digest pass: a file that was cut or edited is refused before any row is used
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        for l in lines {
            let l = l.map_err(|e| damaged(file, n + 2, format!("cannot read ({e})")))?;
            hasher.update(l.as_bytes());
            hasher.update(b"\n");
            n += 1;
        }
        if n != header.count || format!("{:x}", hasher.finalize()) != header.sha256 {
            return Err(damaged(
                file,
                1,
                format!(
                    "the rows do not match the header ({n} rows, the header says {}, or their \
                     digest differs)",
                    header.count
                ),
            ));
        }
        let mut lines = BufReader::new(open()?).lines();
        lines.next();
        Ok(ListedReader {
            file: file.to_string(),
            header,
            lines,
            next_index: 0,
        })
    }

    pub fn header(&self) -> &ListedHeader {
        &self.header
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn peek_index(&self) -> Option<u64> {
        (self.next_index < self.header.count).then_some(self.next_index)
    }

    pub fn next_row(&mut self) -> Option<Result<ListedRow, Diagnostic>> {
        let l = self.lines.next()?;
        let index = self.next_index;
        self.next_index += 1;
        let line = index + 2;
        Some(
            l.map_err(|e| damaged(&self.file, line, format!("cannot read ({e})")))
                .and_then(|l| {
                    serde_json::from_str::<Value>(&l)
                        .map_err(|e| damaged(&self.file, line, format!("not JSON ({e})")))
                })
                .map(|item| ListedRow { index, line, item }),
        )
    }
}

/// The number of rows of a listed-rows file (from its header; the file is checked when it is
/// opened for reading).
pub fn count(path: &Path) -> Option<u64> {
    let f = File::open(path).ok()?;
    let mut first = String::new();
    first_line(f, &mut first).ok()?;
    serde_json::from_str::<Value>(&first)
        .ok()?
        .get("count")
        .and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn header() -> ListedHeader {
        ListedHeader {
            action: "ListEngagementInvitations".into(),
            request: json!({"Catalog": "Sandbox", "ParticipantType": "RECEIVER"}),
            filter: Some("row.PayloadType == 'OpportunityInvitation'".into()),
            listed_at: "2026-12-02T00:00:00.000Z".into(),
            count: 0,
            sha256: String::new(),
        }
    }

    #[test]
    fn rows_round_trip_with_their_lines_and_header() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join(LISTED_FILE);
        let rows = vec![
            json!({"Id": "engi-1", "Status": "PENDING"}),
            json!({"Id": "engi-2"}),
        ];
        write(&p, &header(), &rows).unwrap();
        assert!(is_listed(&p));
        assert_eq!(count(&p), Some(2));
        let mut r = ListedReader::open(&p, "rows.jsonl").unwrap();
        assert_eq!(r.header().action, "ListEngagementInvitations");
        assert_eq!(r.header().filter, header().filter);
        let a = r.next_row().unwrap().unwrap();
        assert_eq!((a.index, a.line, &a.item), (0, 2, &rows[0]));
        let b = r.next_row().unwrap().unwrap();
        assert_eq!((b.index, b.line), (1, 3));
        assert!(r.next_row().is_none());
        assert_eq!(r.peek_index(), None);
    }

    #[test]
    fn an_edited_or_cut_file_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join(LISTED_FILE);
        write(
            &p,
            &header(),
            &[json!({"Id": "engi-1"}), json!({"Id": "engi-2"})],
        )
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("engi-2", "engi-3")).unwrap();
        let e = ListedReader::open(&p, "rows.jsonl").err().unwrap();
        assert_eq!(e.code, "LISTED_ROWS_DAMAGED");
        let cut: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        std::fs::write(&p, cut).unwrap();
        assert!(ListedReader::open(&p, "rows.jsonl").is_err());
        std::fs::write(&p, "id\nengi-1\n").unwrap();
        assert!(!is_listed(&p));
    }
}
