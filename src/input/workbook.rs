//! Workbook input (`.xlsx`, `.xlsm`, `.xls`, `.ods`) through calamine: one sheet, its first
//! non-empty row the header, then one record per non-empty row, with the cells' types kept
//! as the text templates see (integral numbers without `.0`, dates as ISO 8601, booleans as
//! `true`/`false`, formulas as their cached value).
//!
//! `.xlsx`/`.xlsm` stream: a reader thread walks the sheet's XML cell by cell
//! (`worksheet_cells_reader`) and hands rows over a bounded channel, so memory does not grow
//! with the rows (the shared-strings table, which Excel keeps once per workbook, is held
//! whole). `.xls` and `.ods` are read as one whole-sheet range. Must not touch: templates, row
//! keys, the playbook (see `plan`).

// See `input/mod.rs`: a Diagnostic is the error of the agreed runtime API.
#![allow(clippy::result_large_err)]

use super::Record;
use crate::playbook::{Diagnostic, Location};
use calamine::{open_workbook_auto, Data, Reader, Sheets};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

/// File extensions read as workbooks (lowercase).
pub const EXTENSIONS: &[&str] = &["xlsx", "xlsm", "xls", "ods"];

/// Whether `path` names a workbook (by its extension).
pub fn is_workbook(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Rows handed over per channel message, and messages in flight.
const CHUNK: usize = 256;
const IN_FLIGHT: usize = 8;

type RowResult = Result<(u64, Vec<String>), Diagnostic>;

enum Msg {
    Header {
        sheet: String,
        columns: Vec<String>,
    },
    Rows(Vec<RowResult>),
    /// A failure that ends the reading (a header problem, a broken file).
    Fatal(Box<Diagnostic>),
}

/// One sheet of a workbook opened for reading.
pub struct WorkbookReader {
    file: String,
    sheet: String,
    columns: Arc<[Arc<str>]>,
    rx: Receiver<Msg>,
    pending: VecDeque<RowResult>,
    next_index: u64,
    done: bool,
}

impl WorkbookReader {
    /// Open `sheet` (default: the first) of the workbook at `path`. `file` is the path shown in
    /// locations.
    pub fn open(
        path: &Path,
        file: &str,
        sheet: Option<&str>,
    ) -> Result<WorkbookReader, Diagnostic> {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let ctx = Producer {
            path: path.to_path_buf(),
            file: file.to_string(),
            sheet: sheet.map(str::to_string),
            tx,
        };
        std::thread::Builder::new()
            .name("cosell-workbook".into())
            .spawn(move || ctx.run())
            .map_err(|e| {
                Diagnostic::error(
                    whole(file),
                    "WORKBOOK_UNREADABLE",
                    format!("cannot start reading the workbook: {e}"),
                )
            })?;
        match rx.recv() {
            Ok(Msg::Header { sheet, columns }) => Ok(WorkbookReader {
                file: file.to_string(),
                sheet,
                columns: columns.into_iter().map(Arc::from).collect(),
                rx,
                pending: VecDeque::new(),
                next_index: 0,
                done: false,
            }),
            Ok(Msg::Fatal(d)) => Err(*d),
            Ok(Msg::Rows(_)) | Err(_) => Err(Diagnostic::error(
                whole(file),
                "WORKBOOK_UNREADABLE",
                "cannot read the workbook (its reader stopped)",
            )),
        }
    }

    pub fn file(&self) -> &str {
        &self.file
    }
    /// The sheet read (the first one when none was asked for).
    pub fn sheet(&self) -> &str {
        &self.sheet
    }
    pub fn columns(&self) -> &Arc<[Arc<str>]> {
        &self.columns
    }

    fn fill(&mut self) {
        while self.pending.is_empty() && !self.done {
            match self.rx.recv() {
                Ok(Msg::Rows(rows)) => self.pending.extend(rows),
                Ok(Msg::Fatal(d)) => {
                    self.pending.push_back(Err(*d));
                    self.done = true;
                }
                Ok(Msg::Header { .. }) | Err(_) => self.done = true,
            }
        }
    }

    /// The index the next record will have, `None` at the end.
    pub fn peek_index(&mut self) -> Option<u64> {
        self.fill();
        (!self.pending.is_empty()).then_some(self.next_index)
    }

    /// The next data row, `None` at the end. Empty rows are skipped.
    pub fn next_record(&mut self) -> Option<Result<Record, Diagnostic>> {
        self.fill();
        let r = self.pending.pop_front()?;
        let index = self.next_index;
        self.next_index += 1;
        Some(match r {
            Ok((line, values)) => Ok(Record {
                index,
                line,
                values,
            }),
            Err(d) => Err(d.with_row(index)),
        })
    }
}

fn whole(file: &str) -> Location {
    Location::File {
        file: file.to_string(),
    }
}

/// `A`, `B`, …, `Z`, `AA`, … for a 0-based column.
pub fn column_letters(col: u32) -> String {
    let mut n = col as u64 + 1;
    let mut s = Vec::new();
    while n > 0 {
        let r = ((n - 1) % 26) as u8;
        s.push(b'A' + r);
        n = (n - 1) / 26;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

/// A cell as the templates see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Value(String),
    /// `#N/A`, `#REF!`, …
    Error(String),
    Empty,
}

/// An integral number without `.0` or an exponent; other numbers as the shortest decimal that
/// reads back as the same number (never an exponent).
pub fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn datetime_text(dt: &calamine::ExcelDateTime) -> String {
    if dt.is_duration() {
        let total_ms = (dt.as_f64() * 86_400_000.0).round() as i64;
        let (neg, ms) = (total_ms < 0, total_ms.unsigned_abs());
        let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        let sign = if neg { "-" } else { "" };
        return if milli > 0 {
            format!("{sign}PT{h}H{m}M{s}.{milli:03}S")
        } else {
            format!("{sign}PT{h}H{m}M{s}S")
        };
    }
    let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
    let time = if ms > 0 {
        format!("{h:02}:{mi:02}:{s:02}.{ms:03}")
    } else {
        format!("{h:02}:{mi:02}:{s:02}")
    };
    let v = dt.as_f64();
    if (0.0..1.0).contains(&v) && v > 0.0 {
        // a time of day without a date
        time
    } else if (h, mi, s, ms) == (0, 0, 0, 0) {
        format!("{y:04}-{mo:02}-{d:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{time}")
    }
}

/// The text of a cell value.
pub fn cell_text(v: &Data) -> Cell {
    match v {
        Data::Int(i) => Cell::Value(i.to_string()),
        Data::Float(f) => Cell::Value(number_text(*f)),
        Data::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                Cell::Empty
            } else {
                Cell::Value(t.to_string())
            }
        }
        Data::Bool(b) => Cell::Value(b.to_string()),
        Data::DateTime(dt) => Cell::Value(datetime_text(dt)),
        Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Value(s.trim().to_string()),
        Data::Error(e) => Cell::Error(e.to_string()),
        Data::Empty => Cell::Empty,
    }
}

/// The reading thread's side.
struct Producer {
    path: PathBuf,
    file: String,
    sheet: Option<String>,
    tx: SyncSender<Msg>,
}

/// Builds records from cells arriving in row-major order.
struct Builder<'a> {
    file: &'a str,
    sheet: String,
    tx: &'a SyncSender<Msg>,
    /// `(first column, names)` once the header is read.
    header: Option<(u32, Vec<String>)>,
    /// The row being collected: its 0-based number and its cells.
    row: Option<u32>,
    cells: Vec<(u32, Cell, Option<String>)>,
    out: Vec<RowResult>,
    /// The receiver went away: stop reading.
    closed: bool,
}

impl Builder<'_> {
    fn at(&self, row: u32, column: Option<&str>) -> Location {
        Location::Workbook {
            file: self.file.to_string(),
            sheet: self.sheet.clone(),
            row: row as u64 + 1,
            column: column.map(str::to_string),
        }
    }

    /// One cell: its value and, for a formula, its text.
    fn cell(&mut self, row: u32, col: u32, v: Cell, formula: Option<String>) -> Result<(), ()> {
        if self.row != Some(row) {
            self.flush()?;
            self.row = Some(row);
        }
        if v != Cell::Empty || formula.as_deref().is_some_and(|f| !f.is_empty()) {
            self.cells.push((col, v, formula));
        }
        Ok(())
    }

    /// The collected row is complete. `Err` when reading must stop.
    fn flush(&mut self) -> Result<(), ()> {
        let Some(row) = self.row.take() else {
            return Ok(());
        };
        let cells = std::mem::take(&mut self.cells);
        if cells.is_empty() {
            return Ok(());
        }
        match &self.header {
            None => {
                let h = self.header_from(row, cells).map_err(|d| {
                    let _ = self.tx.send(Msg::Fatal(Box::new(d)));
                })?;
                let columns = h.1.clone();
                self.header = Some(h);
                if self
                    .tx
                    .send(Msg::Header {
                        sheet: self.sheet.clone(),
                        columns,
                    })
                    .is_err()
                {
                    self.closed = true;
                    return Err(());
                }
            }
            Some(_) => {
                let r = self.record(row, cells);
                self.out.push(r);
                if self.out.len() >= CHUNK {
                    self.send()?;
                }
            }
        }
        Ok(())
    }

    fn send(&mut self) -> Result<(), ()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let rows = std::mem::replace(&mut self.out, Vec::with_capacity(CHUNK));
        if self.tx.send(Msg::Rows(rows)).is_err() {
            self.closed = true;
            return Err(());
        }
        Ok(())
    }

    fn header_from(
        &self,
        row: u32,
        cells: Vec<(u32, Cell, Option<String>)>,
    ) -> Result<(u32, Vec<String>), Diagnostic> {
        let first = cells[0].0;
        let mut names: Vec<String> = Vec::new();
        for (col, v, _) in cells {
            let name = match v {
                Cell::Value(s) => s,
                Cell::Error(e) => {
                    return Err(Diagnostic::error(
                        self.at(row, None),
                        "CELL_ERROR",
                        format!(
                            "the header cell {}{} is the error {e}; the header row must name \
                             every column",
                            column_letters(col),
                            row + 1
                        ),
                    ))
                }
                Cell::Empty => String::new(),
            };
            let i = (col - first) as usize;
            if names.len() <= i {
                names.resize(i + 1, String::new());
            }
            names[i] = name;
        }
        for (i, n) in names.iter().enumerate() {
            let letters = column_letters(first + i as u32);
            if n.is_empty() {
                return Err(Diagnostic::error(
                    self.at(row, None),
                    "CSV_NO_HEADER",
                    format!(
                        "column {letters} of the header row (the sheet's first non-empty row) \
                         has no name: the header must name every column"
                    ),
                ));
            }
            if let Some(j) = names[..i].iter().position(|m| m == n) {
                return Err(Diagnostic::error(
                    self.at(row, Some(n)),
                    "CSV_DUPLICATE_HEADER",
                    format!(
                        "column name {n:?} appears twice in the header (columns {} and \
                         {letters}); rename one",
                        column_letters(first + j as u32)
                    ),
                ));
            }
        }
        Ok((first, names))
    }

    fn record(&self, row: u32, cells: Vec<(u32, Cell, Option<String>)>) -> RowResult {
        let (first, names) = self.header.as_ref().expect("header read");
        let mut values = vec![String::new(); names.len()];
        let cell_ref = |col: u32| format!("{}{}", column_letters(col), row + 1);
        for (col, v, formula) in cells {
            let Some(name) = col.checked_sub(*first).and_then(|i| names.get(i as usize)) else {
                return Err(Diagnostic::error(
                    self.at(row, None),
                    "CELL_OUTSIDE_HEADER",
                    format!(
                        "the cell {} has a value but its column has no name in the header; \
                         name the column in the header row, or clear the cell",
                        cell_ref(col)
                    ),
                ));
            };
            match v {
                Cell::Value(s) => values[(col - first) as usize] = s,
                Cell::Error(e) => {
                    return Err(Diagnostic::error(
                        self.at(row, Some(name)),
                        "CELL_ERROR",
                        format!(
                            "the cell {} is the error {e}{}; fix the cell (or what it refers \
                             to) so that it shows a value",
                            cell_ref(col),
                            formula
                                .as_deref()
                                .filter(|f| !f.is_empty())
                                .map(|f| format!(" (from the formula ={f})"))
                                .unwrap_or_default()
                        ),
                    ))
                }
                Cell::Empty => {
                    let f = formula.unwrap_or_default();
                    return Err(Diagnostic::error(
                        self.at(row, Some(name)),
                        "FORMULA_NO_VALUE",
                        format!(
                            "the cell {} holds the formula ={f} but no calculated value (the \
                             file was written by a program that does not calculate); open and \
                             save it in Excel or LibreOffice, or paste the values",
                            cell_ref(col)
                        ),
                    ));
                }
            }
        }
        Ok((row as u64 + 1, values))
    }

    /// The end of the sheet.
    fn finish(mut self) {
        if self.flush().is_err() {
            return;
        }
        if self.header.is_none() {
            let _ = self.tx.send(Msg::Fatal(Box::new(Diagnostic::error(
                whole(self.file),
                "CSV_EMPTY",
                format!(
                    "the sheet {:?} is empty; it needs a header row naming its columns, then \
                     one row per item",
                    self.sheet
                ),
            ))));
            return;
        }
        let _ = self.send();
    }
}

impl Producer {
    fn fatal(&self, code: &str, msg: String) {
        let _ = self.tx.send(Msg::Fatal(Box::new(Diagnostic::error(
            whole(&self.file),
            code,
            msg,
        ))));
    }

    fn run(self) {
        let mut wb = match open_workbook_auto(&self.path) {
            Ok(w) => w,
            Err(e) => {
                let what = match &e {
                    calamine::Error::Io(io) => format!("cannot open the workbook: {io}"),
                    e => format!("cannot read the workbook: {e}"),
                };
                return self.fatal("WORKBOOK_UNREADABLE", what);
            }
        };
        let names = wb.sheet_names();
        let sheet = match &self.sheet {
            Some(s) => {
                if !names.iter().any(|n| n == s) {
                    let sug = crate::model::nearest(s, names.iter().map(String::as_str));
                    let d = Diagnostic::error(
                        whole(&self.file),
                        "UNKNOWN_SHEET",
                        format!(
                            "the workbook has no sheet {s:?} (its sheets: {})",
                            names
                                .iter()
                                .map(|n| format!("{n:?}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                    .with_suggestion(sug);
                    let _ = self.tx.send(Msg::Fatal(Box::new(d)));
                    return;
                }
                s.clone()
            }
            None => match names.first() {
                Some(n) => n.clone(),
                None => {
                    return self.fatal("CSV_EMPTY", "the workbook has no sheets".to_string());
                }
            },
        };
        let mut b = Builder {
            file: &self.file,
            sheet: sheet.clone(),
            tx: &self.tx,
            header: None,
            row: None,
            cells: Vec::new(),
            out: Vec::with_capacity(CHUNK),
            closed: false,
        };
        let bad = |e: String| {
            Diagnostic::error(
                whole(&self.file),
                "WORKBOOK_UNREADABLE",
                format!("cannot read the sheet {sheet:?}: {e}"),
            )
        };
        match &mut wb {
            Sheets::Xlsx(x) => {
                let mut cells = match x.worksheet_cells_reader(&sheet) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = self.tx.send(Msg::Fatal(Box::new(bad(e.to_string()))));
                        return;
                    }
                };
                loop {
                    match cells.next_cell_with_formula() {
                        Ok(Some(c)) => {
                            let v = cell_text(&Data::from(c.value));
                            if b.cell(c.pos.0, c.pos.1, v, c.formula).is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = b.flush();
                            let _ = b.send();
                            if !b.closed {
                                let _ = self.tx.send(Msg::Fatal(Box::new(bad(e.to_string()))));
                            }
                            return;
                        }
                    }
                }
            }
            other => {
                let range = match other.worksheet_range(&sheet) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = self.tx.send(Msg::Fatal(Box::new(bad(e.to_string()))));
                        return;
                    }
                };
                // formulas only matter where the cached value is missing
                let formulas = other.worksheet_formula(&sheet).ok();
                if let Some((r0, c0)) = range.start() {
                    for (i, cells) in range.rows().enumerate() {
                        for (j, v) in cells.iter().enumerate() {
                            let (r, c) = (r0 + i as u32, c0 + j as u32);
                            let cell = cell_text(v);
                            let f = match cell {
                                Cell::Empty => formulas
                                    .as_ref()
                                    .and_then(|f| f.get_value((r, c)))
                                    .filter(|f| !f.is_empty())
                                    .cloned(),
                                _ => None,
                            };
                            if b.cell(r, c, cell, f).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }
        b.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{CellErrorType, ExcelDateTime, ExcelDateTimeType};

    #[test]
    fn numbers_keep_their_digits() {
        assert_eq!(number_text(123456789012.0), "123456789012");
        assert_eq!(number_text(-5.0), "-5");
        assert_eq!(number_text(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(number_text(12000.5), "12000.5");
        assert_eq!(number_text(1e-7), "0.0000001");
        assert_eq!(number_text(1e20), "100000000000000000000");
    }

    #[test]
    fn cells_render_as_templates_see_them() {
        let dt = |v| Data::DateTime(ExcelDateTime::new(v, ExcelDateTimeType::DateTime, false));
        assert_eq!(cell_text(&dt(46477.0)), Cell::Value("2027-03-31".into()));
        assert_eq!(
            cell_text(&dt(46477.0 + (14.0 * 60.0 + 5.0) / 1440.0)),
            Cell::Value("2027-03-31T14:05:00".into())
        );
        assert_eq!(cell_text(&dt(0.5)), Cell::Value("12:00:00".into()));
        let dur = Data::DateTime(ExcelDateTime::new(1.5, ExcelDateTimeType::TimeDelta, false));
        assert_eq!(cell_text(&dur), Cell::Value("PT36H0M0S".into()));
        assert_eq!(cell_text(&Data::Bool(true)), Cell::Value("true".into()));
        assert_eq!(cell_text(&Data::Int(42)), Cell::Value("42".into()));
        assert_eq!(
            cell_text(&Data::String("  x ".into())),
            Cell::Value("x".into())
        );
        assert_eq!(cell_text(&Data::String("   ".into())), Cell::Empty);
        assert_eq!(
            cell_text(&Data::Error(CellErrorType::NA)),
            Cell::Error("#N/A".into())
        );
        assert_eq!(
            cell_text(&Data::DateTimeIso("2027-03-31".into())),
            Cell::Value("2027-03-31".into())
        );
    }

    #[test]
    fn column_letters_as_excel_names_them() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
    }

    #[test]
    fn workbook_extensions() {
        assert!(is_workbook(Path::new("a/Partners.XLSX")));
        assert!(is_workbook(Path::new("p.ods")));
        assert!(!is_workbook(Path::new("p.csv")));
        assert!(!is_workbook(Path::new("p")));
    }
}
