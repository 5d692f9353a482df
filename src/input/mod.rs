//! Streaming CSV input: the header, then one row at a time, never the whole file.
//!
//! Owns reading what spreadsheets export (UTF-8 BOM, CRLF, quoted fields with commas and
//! newlines, trailing empty columns, cells with spaces around them) and the located errors for
//! what they get wrong (no header, duplicate header names, too many fields, not UTF-8, empty
//! file). Must not touch: templates, row keys, the playbook (see `plan`).
//!
//! [`Input`] is what `plan` reads: a CSV ([`CsvReader`]) or a sheet of a workbook
//! ([`workbook::WorkbookReader`]), chosen by the file's extension ([`Source`]).

// A Diagnostic is large, but it is the error of the agreed runtime API and only built on the
// cold path; boxing it would complicate every caller for no measurable gain.
#![allow(clippy::result_large_err)]

pub mod listed;

use crate::playbook::{Diagnostic, Location};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

pub mod workbook;

/// Where the rows come from: a file (CSV or workbook, by its extension) and, for a workbook,
/// the sheet asked for (`None`: the first).
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub path: std::path::PathBuf,
    /// The path as shown in locations.
    pub display: String,
    pub sheet: Option<String>,
}

impl Source {
    pub fn is_workbook(&self) -> bool {
        workbook::is_workbook(&self.path)
    }

    /// Open the input and read its header.
    pub fn open(&self) -> Result<Input, Diagnostic> {
        if self.is_workbook() {
            workbook::WorkbookReader::open(&self.path, &self.display, self.sheet.as_deref())
                .map(Input::Workbook)
        } else {
            CsvReader::open(&self.path, &self.display).map(Input::Csv)
        }
    }

    /// The place of a row (its line in a CSV, its row in a sheet), optionally one column.
    /// `sheet` is the sheet read (see [`Input::sheet`]).
    pub fn at(&self, sheet: Option<&str>, line: u64, column: Option<&str>) -> Location {
        if self.is_workbook() {
            Location::Workbook {
                file: self.display.clone(),
                sheet: sheet
                    .or(self.sheet.as_deref())
                    .unwrap_or_default()
                    .to_string(),
                row: line,
                column: column.map(str::to_string),
            }
        } else {
            at(&self.display, line, column)
        }
    }

    /// What a record's number is called in messages: `line` (CSV) or `row` (sheet).
    pub fn line_word(&self) -> &'static str {
        if self.is_workbook() {
            "row"
        } else {
            "line"
        }
    }

    /// The line (CSV) or row (sheet) of every data record, for counting and naming rows
    /// without the playbook. A record that fails to read still counts.
    pub fn record_lines(&self) -> Result<Vec<u64>, String> {
        let mut input = self.open().map_err(|d| d.render_text())?;
        let mut lines = Vec::new();
        while let Some(r) = input.next_record() {
            lines.push(match r {
                Ok(rec) => rec.line,
                Err(d) => match d.location {
                    Location::Csv { line, .. } => line,
                    Location::Workbook { row, .. } => row,
                    _ => 0,
                },
            });
        }
        Ok(lines)
    }
}

/// An opened input: the header read, the records streaming.
pub enum Input {
    Csv(CsvReader),
    Workbook(workbook::WorkbookReader),
}

impl Input {
    pub fn file(&self) -> &str {
        match self {
            Input::Csv(r) => r.file(),
            Input::Workbook(r) => r.file(),
        }
    }
    /// The sheet read, for a workbook.
    pub fn sheet(&self) -> Option<&str> {
        match self {
            Input::Csv(_) => None,
            Input::Workbook(r) => Some(r.sheet()),
        }
    }
    pub fn columns(&self) -> &Arc<[Arc<str>]> {
        match self {
            Input::Csv(r) => r.columns(),
            Input::Workbook(r) => r.columns(),
        }
    }
    /// The index the next record will have (`None` at the end).
    pub fn peek_index(&mut self) -> Option<u64> {
        match self {
            Input::Csv(r) => r.peek_index(),
            Input::Workbook(r) => r.peek_index(),
        }
    }
    pub fn next_record(&mut self) -> Option<Result<Record, Diagnostic>> {
        match self {
            Input::Csv(r) => r.next_record(),
            Input::Workbook(r) => r.next_record(),
        }
    }
}

impl Iterator for Input {
    type Item = Result<Record, Diagnostic>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// One data row as read: values trimmed, aligned with the header.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// 0-based index among the data rows (skipped blank rows are not counted).
    pub index: u64,
    /// The physical line (1-based) where the record starts; in a sheet, its row number.
    pub line: u64,
    /// One value per header column (missing trailing fields are empty).
    pub values: Vec<String>,
}

/// Counts lines under the CSV parser: `csv`'s own line numbers lag by one after a CRLF
/// line end, so the physical line of a record is computed from its byte offset here. Keeps
/// only the newline offsets of the current read-ahead buffer.
struct LineCounter<R> {
    inner: R,
    offset: u64,
    /// Offsets of `\n` bytes read but not yet passed by a record start.
    pending: VecDeque<u64>,
    /// Newlines before the first pending one.
    passed: u64,
    /// Offsets of `\r` bytes not yet passed.
    crs: VecDeque<u64>,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, b) in buf[..n].iter().enumerate() {
            let at = self.offset + i as u64;
            if *b == b'\n' {
                self.pending.push_back(at);
            } else if *b == b'\r' {
                self.crs.push_back(at);
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

impl<R> LineCounter<R> {
    /// The 1-based physical line of a record that `csv` says starts at byte `at`.
    fn line_at(&mut self, at: u64) -> u64 {
        while self.pending.front().is_some_and(|&o| o < at) {
            self.pending.pop_front();
            self.passed += 1;
        }
        while self.crs.front().is_some_and(|&o| o + 1 < at) {
            self.crs.pop_front();
        }
        // the record "starts" on the `\n` of a CRLF: it really starts after it
        let on_lf_of_crlf = self.pending.front() == Some(&at)
            && at > 0
            && self.crs.front().is_some_and(|&o| o + 1 == at);
        1 + self.passed + u64::from(on_lf_of_crlf)
    }
}

/// A CSV file opened for streaming.
pub struct CsvReader {
    file: String,
    columns: Arc<[Arc<str>]>,
    reader: csv::Reader<LineCounter<BufReader<File>>>,
    record: csv::ByteRecord,
    next_index: u64,
    done: bool,
}

fn at(file: &str, line: u64, column: Option<&str>) -> Location {
    Location::Csv {
        file: file.to_string(),
        line,
        column: column.map(str::to_string),
    }
}

fn utf8_error(file: &str, line: u64, column: Option<&str>, bytes: &[u8]) -> Diagnostic {
    let e = std::str::from_utf8(bytes).err();
    let detail = match e {
        Some(e) => format!(
            " (byte 0x{:02X} at offset {} of the cell)",
            bytes[e.valid_up_to()],
            e.valid_up_to()
        ),
        None => String::new(),
    };
    Diagnostic::error(
        at(file, line, column),
        "CSV_NOT_UTF8",
        format!(
            "the text is not UTF-8{detail}; export the sheet as \"CSV UTF-8\" (Excel) or CSV \
             (Google Sheets)"
        ),
    )
}

impl CsvReader {
    /// Open `path` and read its header. `file` is the path shown in locations.
    pub fn open(path: &Path, file: &str) -> Result<CsvReader, Diagnostic> {
        let f = File::open(path).map_err(|e| {
            Diagnostic::error(
                Location::File {
                    file: file.to_string(),
                },
                "CSV_UNREADABLE",
                format!("cannot open the CSV: {e}"),
            )
        })?;
        Self::from_reader(f, file)
    }

    fn from_reader(f: File, file: &str) -> Result<CsvReader, Diagnostic> {
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(64 * 1024)
            .from_reader(LineCounter {
                inner: BufReader::with_capacity(64 * 1024, f),
                offset: 0,
                pending: VecDeque::new(),
                passed: 0,
                crs: VecDeque::new(),
            });
        let mut r = CsvReader {
            file: file.to_string(),
            columns: Arc::from(Vec::new()),
            reader,
            record: csv::ByteRecord::new(),
            next_index: 0,
            done: false,
        };
        r.read_header()?;
        Ok(r)
    }

    fn read_header(&mut self) -> Result<(), Diagnostic> {
        let file = self.file.clone();
        let whole = || Location::File { file: file.clone() };
        // skip leading lines that are entirely empty cells (",,,")
        let line =
            loop {
                match self.reader.read_byte_record(&mut self.record) {
                    Ok(false) => return Err(Diagnostic::error(
                        whole(),
                        "CSV_EMPTY",
                        "the CSV is empty; it needs a header line naming its columns, then one \
                         line per row",
                    )),
                    Ok(true) => {
                        if self.record.iter().all(|f| f.trim_ascii().is_empty()) {
                            continue;
                        }
                        break self.line_of_record();
                    }
                    Err(e) => return Err(self.csv_error(e)),
                }
            };
        let mut names: Vec<String> = Vec::with_capacity(self.record.len());
        for (i, f) in self.record.iter().enumerate() {
            let Ok(s) = std::str::from_utf8(f) else {
                return Err(utf8_error(&self.file, line, None, f));
            };
            let mut s = s.trim();
            if i == 0 {
                s = s.trim_start_matches('\u{feff}').trim();
            }
            names.push(s.to_string());
        }
        while names.last().is_some_and(|n| n.is_empty()) {
            names.pop();
        }
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() {
                return Err(Diagnostic::error(
                    at(&self.file, line, None),
                    "CSV_NO_HEADER",
                    format!(
                        "column {} of the first line has no name: the first line must be a header naming \
                         every column",
                        i + 1
                    ),
                ));
            }
            if let Some(j) = names[..i].iter().position(|m| m == n) {
                return Err(Diagnostic::error(
                    at(&self.file, line, Some(n)),
                    "CSV_DUPLICATE_HEADER",
                    format!(
                        "column name {n:?} appears twice in the header (columns {} and {}); \
                         rename one",
                        j + 1,
                        i + 1
                    ),
                ));
            }
        }
        self.columns = names.into_iter().map(Arc::from).collect();
        Ok(())
    }

    fn line_of_record(&mut self) -> u64 {
        let at = self.record.position().map(|p| p.byte()).unwrap_or(0);
        self.reader.get_mut().line_at(at)
    }

    fn csv_error(&mut self, e: csv::Error) -> Diagnostic {
        self.done = true;
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        let loc = if line > 0 {
            at(&self.file, line, None)
        } else {
            Location::File {
                file: self.file.clone(),
            }
        };
        Diagnostic::error(loc, "CSV_SYNTAX", format!("cannot read the CSV: {e}"))
    }

    /// The file name shown in locations.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The header's column names (trimmed; trailing unnamed columns dropped).
    pub fn columns(&self) -> &Arc<[Arc<str>]> {
        &self.columns
    }

    /// The next data row, `None` at the end. Rows whose cells are all empty are skipped.
    /// The index the next record will have (blank rows are skipped and take none).
    pub fn peek_index(&self) -> Option<u64> {
        (!self.done).then_some(self.next_index)
    }

    pub fn next_record(&mut self) -> Option<Result<Record, Diagnostic>> {
        loop {
            if self.done {
                return None;
            }
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => return Some(Err(self.csv_error(e))),
                Ok(true) => {}
            }
            if self.record.iter().all(|f| f.trim_ascii().is_empty()) {
                continue;
            }
            let line = self.line_of_record();
            let index = self.next_index;
            self.next_index += 1;
            return Some(self.convert(index, line));
        }
    }

    fn convert(&self, index: u64, line: u64) -> Result<Record, Diagnostic> {
        let width = self.columns.len();
        if self.record.len() > width {
            if let Some((i, _)) = self
                .record
                .iter()
                .enumerate()
                .skip(width)
                .find(|(_, f)| !f.trim_ascii().is_empty())
            {
                return Err(Diagnostic::error(
                    at(&self.file, line, None),
                    "CSV_TOO_MANY_FIELDS",
                    format!(
                        "the row has a value in field {} but the header names only {width} \
                         columns; quote values that contain commas, or name the column in the \
                         header",
                        i + 1
                    ),
                )
                .with_row(index));
            }
        }
        let mut values = Vec::with_capacity(width);
        for (i, name) in self.columns.iter().enumerate() {
            let raw = self.record.get(i).unwrap_or(b"");
            match std::str::from_utf8(raw) {
                Ok(s) => values.push(s.trim().to_string()),
                Err(_) => {
                    return Err(utf8_error(&self.file, line, Some(name), raw).with_row(index));
                }
            }
        }
        Ok(Record {
            index,
            line,
            values,
        })
    }
}

impl Iterator for CsvReader {
    type Item = Result<Record, Diagnostic>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(bytes: &[u8]) -> (tempfile::TempDir, Result<CsvReader, Diagnostic>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, bytes).unwrap();
        let r = CsvReader::open(&p, "in.csv");
        (dir, r)
    }

    fn rows(bytes: &[u8]) -> Vec<Result<Record, String>> {
        let (_d, r) = open(bytes);
        r.unwrap().map(|x| x.map_err(|d| d.render_text())).collect()
    }

    #[test]
    fn spreadsheet_exports_read_cleanly() {
        let text = "\u{feff}id , name,note,,\r\n1, Acme ,\"a, b\nc\",,\r\n\r\n,,,,\r\n2,Bob\r\n";
        let (_d, r) = open(text.as_bytes());
        let r = r.unwrap();
        let cols: Vec<&str> = r.columns().iter().map(|c| &**c).collect();
        assert_eq!(cols, ["id", "name", "note"]);
        let got: Vec<_> = r.map(|x| x.unwrap()).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].values, ["1", "Acme", "a, b\nc"]);
        assert_eq!(got[0].line, 2);
        assert_eq!(got[1].values, ["2", "Bob", ""]);
        assert_eq!(got[1].line, 6);
        assert_eq!(got[1].index, 1);
    }

    #[test]
    fn header_problems_are_located() {
        let (_d, r) = open(b"");
        assert_eq!(r.err().unwrap().code, "CSV_EMPTY");
        let (_d, r) = open(b"a,b,a\n1,2,3\n");
        assert_eq!(
            r.err().unwrap().render_text(),
            "in.csv:1 column a: error[CSV_DUPLICATE_HEADER]: column name \"a\" appears twice in \
             the header (columns 1 and 3); rename one"
        );
        let (_d, r) = open(b"a,,b\n");
        assert_eq!(r.err().unwrap().code, "CSV_NO_HEADER");
        let (_d, r) = open(b"a,\xe9t\xe9\n");
        assert_eq!(r.err().unwrap().code, "CSV_NOT_UTF8");
    }

    #[test]
    fn row_problems_are_located_and_reading_goes_on() {
        let got = rows(b"a,b\n1,2,3\nx,caf\xe9\n4,5\n");
        assert!(got[0]
            .as_ref()
            .unwrap_err()
            .starts_with("in.csv:2: error[CSV_TOO_MANY_FIELDS]: the row has a value in field 3"));
        assert!(got[1].as_ref().unwrap_err().starts_with(
            "in.csv:3 column b: error[CSV_NOT_UTF8]: the text is not UTF-8 (byte 0xE9"
        ));
        assert_eq!(got[2].as_ref().unwrap().values, ["4", "5"]);
    }
}
