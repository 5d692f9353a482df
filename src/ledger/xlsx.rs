//! `ledger.xlsx`: the ledger as a workbook, for the users who open it in Excel and act on it.
//! A CSV loses ids there (Excel shows a 12-digit account id as `1.23457E+11` and drops leading
//! zeros); a workbook says what each cell is.
//!
//! Owns: the cell types, formats and the two sheets. Must not touch: which rows and columns the
//! ledger has (that is [`super::LedgerWriter`]'s, the same as `ledger.csv`'s), the journal.
//!
//! # Sheet `Ledger`
//!
//! The same header and rows as `ledger.csv`, one row per input row, each cell typed by this
//! rule (the values are the ones `ledger.jsonl` holds, with no `'` in front):
//! - **text**, always: `key`, every column whose name ends in `_id` (`<step>_id`,
//!   `setup_<step>_id`, a playbook column such as `opportunity_id`), `status`, `notes`,
//!   `error_step`, `error_code`, `error_message`; these id columns also carry the Text number
//!   format (`@`), so a value typed into them later stays text;
//! - **number**: `line`;
//! - **date-time** (UTC, shown `yyyy-mm-dd hh:mm:ss`): `started_at`, `finished_at` when they
//!   parse as RFC 3339 (otherwise text);
//! - the playbook's `ledger.columns`, by value ([`classify`]): an **id-like** value is text: a
//!   leading zero before a digit (`0123`), more than 15 digits (beyond a spreadsheet's
//!   precision), or 10 or more digits with no decimal point (an account id, a phone number);
//!   otherwise a plain decimal number (`-?digits[.digits]`: no exponent, sign `+`, thousands
//!   separator or spaces) is a **number**; an ISO date `YYYY-MM-DD` (a real date, from
//!   1900-03-01, where spreadsheet dates are exact) is a **date** (`yyyy-mm-dd`); anything
//!   else is text.
//!
//! Every text is written as a string cell, never as a formula: `=HYPERLINK(…)` or `=1+1` shows
//! as the text it is and nothing runs, so no `'` is needed (unlike `ledger.csv`). A text longer
//! than a cell holds (32,767 UTF-16 units) is cut with a note pointing to `ledger.jsonl`.
//!
//! The header row is bold and frozen (and repeated on each printed page: landscape, one page
//! wide), with an autofilter over the whole table; column widths
//! come from the content (header included), capped at [`MAX_WIDTH`]. Failed rows have a light
//! red fill, in-flight rows a light yellow one, pending rows grey text.
//!
//! # Sheet `Failures`
//!
//! The failed rows grouped by `error_code`, the most frequent code first (ties by code): for
//! each code a bold group row (`error_code`, `count`), then its rows in ledger order with the
//! code repeated (so the autofilter can pick one code), `line`, `key`, `error_step` and
//! `error_message`. With no failed row, one line says so.
//!
//! # Memory
//!
//! Both sheets are written in rust_xlsxwriter's constant-memory mode: each row goes to a
//! temporary file in the run directory as soon as the next one starts (unnamed, so nothing is
//! left behind), and saving streams those files into the zip. What is held is one row, the
//! column widths, and the failed rows' line, key, step, code and message for the `Failures`
//! sheet. A sheet holds at most 1,048,575 rows under its header; past that, the `Ledger` sheet
//! stops and the `Failures` sheet says how many rows only `ledger.csv` has.

use chrono::{DateTime, Datelike, NaiveDate};
use rust_xlsxwriter::{Color, Format, Workbook, Worksheet, XlsxError};
use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

pub const XLSX_FILE: &str = "ledger.xlsx";
/// The widest a column is made, in characters.
pub const MAX_WIDTH: usize = 60;
/// Data rows a sheet holds under its header (Excel's 1,048,576 rows, less the header).
pub const MAX_ROWS: u64 = 1_048_575;
/// The most UTF-16 units one cell holds.
const MAX_CELL: usize = 32_767;
const CUT_NOTE: &str = " … (cut: the full text is in ledger.jsonl)";

/// How a column's cells are written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Always a string cell, with the Text number format.
    Id,
    /// Always a string cell.
    Text,
    /// `line`: a number.
    Number,
    /// `started_at`/`finished_at`: a date-time when it parses.
    DateTime,
    /// A playbook column: typed by [`classify`].
    ByValue,
}

/// What a playbook column's value is written as.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Blank,
    Text,
    Number(f64),
    /// Days since 1899-12-30 (a spreadsheet's date number).
    Date(f64),
}

/// Whether a value must stay text because a spreadsheet would mangle it as a number: a leading
/// zero before a digit, more than 15 digits, or 10 or more digits with no decimal point.
pub fn id_like(v: &str) -> bool {
    let b = v.trim_start_matches('-').as_bytes();
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let all_digits_or_point = b.iter().all(|c| c.is_ascii_digit() || *c == b'.');
    if !all_digits_or_point || digits == 0 {
        return false;
    }
    (b.len() > 1 && b[0] == b'0' && b[1].is_ascii_digit())
        || digits > 15
        || (digits >= 10 && !b.contains(&b'.'))
}

/// A plain decimal number: `-?digits[.digits]`.
fn plain_number(v: &str) -> Option<f64> {
    let b = v.strip_prefix('-').unwrap_or(v).as_bytes();
    let (int, frac) = match b.iter().position(|c| *c == b'.') {
        Some(p) => (&b[..p], Some(&b[p + 1..])),
        None => (b, None),
    };
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    v.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Days from 1899-12-30 to `d` (a spreadsheet's date number), from 1900-03-01 on: before it,
/// spreadsheets count a 29 February 1900 that never was.
fn date_serial(d: NaiveDate) -> Option<f64> {
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30)?;
    let first = NaiveDate::from_ymd_opt(1900, 3, 1)?;
    (d >= first && d.year() <= 9999).then(|| (d - epoch).num_days() as f64)
}

/// An ISO date `YYYY-MM-DD` as a date number.
fn iso_date(v: &str) -> Option<f64> {
    let b = v.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    date_serial(NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()?)
}

/// An RFC 3339 time as a UTC date-time number (days and the fraction of a day).
pub fn datetime_serial(v: &str) -> Option<f64> {
    let t = DateTime::parse_from_rfc3339(v).ok()?.naive_utc();
    let day = date_serial(t.date())?;
    let secs = t.and_utc().timestamp_millis().rem_euclid(86_400_000) as f64 / 1000.0;
    Some(day + secs / 86_400.0)
}

/// The type of a playbook column's value, per the module's rule: id-like text, a plain
/// number, an ISO date, else text.
pub fn classify(v: &str) -> Cell {
    if v.is_empty() {
        Cell::Blank
    } else if id_like(v) {
        Cell::Text
    } else if let Some(n) = plain_number(v) {
        Cell::Number(n)
    } else if let Some(d) = iso_date(v) {
        Cell::Date(d)
    } else {
        Cell::Text
    }
}

/// `s`, cut to what one cell holds.
fn fit(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= MAX_CELL || s.encode_utf16().count() <= MAX_CELL {
        return s.into();
    }
    let room = MAX_CELL - CUT_NOTE.encode_utf16().count();
    let mut units = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        units += c.len_utf16();
        if units > room {
            break;
        }
        end = i + c.len_utf8();
    }
    format!("{}{CUT_NOTE}", &s[..end]).into()
}

/// Display width of a value, in characters, for the column widths.
fn width(s: &str) -> usize {
    s.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// The row shades: normal, failed, in flight, pending.
#[derive(Clone, Copy)]
enum Shade {
    Plain = 0,
    Failed = 1,
    InFlight = 2,
    Pending = 3,
}

impl Shade {
    fn of(status: &str) -> Shade {
        match status {
            "failed" => Shade::Failed,
            "in_flight" => Shade::InFlight,
            "pending" => Shade::Pending,
            _ => Shade::Plain,
        }
    }
}

/// The cell formats, by number format (text, id, number, date, date-time) and [`Shade`].
struct Formats {
    header: Format,
    group: Format,
    cells: [[Format; 4]; 5],
}

const TEXT: usize = 0;
const ID: usize = 1;
const NUMBER: usize = 2;
const DATE: usize = 3;
const DATETIME: usize = 4;

impl Formats {
    fn new() -> Formats {
        let base = [
            Format::new(),
            Format::new().set_num_format("@"),
            Format::new(),
            Format::new().set_num_format("yyyy-mm-dd"),
            Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
        ];
        let shade = |f: &Format, s: usize| match s {
            1 => f
                .clone()
                .set_background_color(Color::RGB(0xFFC7CE))
                .set_font_color(Color::RGB(0x9C0006)),
            2 => f.clone().set_background_color(Color::RGB(0xFFEB9C)),
            3 => f.clone().set_font_color(Color::RGB(0x808080)),
            _ => f.clone(),
        };
        Formats {
            header: Format::new().set_bold(),
            group: Format::new()
                .set_bold()
                .set_background_color(Color::RGB(0xE7E6E6)),
            cells: base.map(|b| [0, 1, 2, 3].map(|s| shade(&b, s))),
        }
    }
}

/// One failed row, for the `Failures` sheet.
struct Failure {
    line: u64,
    key: String,
    step: String,
    code: String,
    message: String,
}

/// The column widths of a sheet, grown as cells are written.
struct Widths(Vec<usize>);

impl Widths {
    fn see(&mut self, col: usize, w: usize) {
        if let Some(x) = self.0.get_mut(col) {
            *x = (*x).max(w);
        }
    }

    fn apply(&self, ws: &mut Worksheet) -> Result<(), XlsxError> {
        for (c, w) in self.0.iter().enumerate() {
            ws.set_column_width(c as u16, (*w + 2).clamp(6, MAX_WIDTH) as f64)?;
        }
        Ok(())
    }
}

/// Writes `ledger.xlsx`'s sheets; [`finish`](Self::finish) saves it to `ledger.xlsx.tmp`
/// (mode 0600), which the ledger renames into place with the other files.
pub struct XlsxLedger {
    dest: PathBuf,
    wb: Workbook,
    kinds: Vec<Kind>,
    widths: Widths,
    /// Data rows written (the next one goes to sheet row `rows + 1`).
    rows: u64,
    /// Rows past [`MAX_ROWS`], in `ledger.csv` only.
    dropped: u64,
    formats: Formats,
    failures: Vec<Failure>,
}

fn xerr(e: XlsxError) -> io::Error {
    io::Error::other(format!("ledger.xlsx: {e}"))
}

impl XlsxLedger {
    /// Start the workbook for a ledger in `dir` with `header`; `by_value` names the playbook's
    /// `ledger.columns` (typed by [`classify`]). Temporary row files go to `dir`.
    pub fn create(dir: &Path, header: &[String], by_value: &[String]) -> io::Result<XlsxLedger> {
        let kinds: Vec<Kind> = header
            .iter()
            .map(|h| match h.as_str() {
                "key" => Kind::Id,
                h if h.ends_with("_id") => Kind::Id,
                "line" => Kind::Number,
                "started_at" | "finished_at" => Kind::DateTime,
                h if by_value.iter().any(|c| c == h) => Kind::ByValue,
                _ => Kind::Text,
            })
            .collect();
        let mut wb = Workbook::new();
        wb.set_tempdir(dir).map_err(xerr)?;
        let formats = Formats::new();
        let mut widths = Widths(vec![0; header.len()]);
        {
            let ws = wb.add_worksheet_with_constant_memory().map_err(xerr)?;
            ws.set_name("Ledger").map_err(xerr)?;
            print_setup(ws).map_err(xerr)?;
            for (c, h) in header.iter().enumerate() {
                ws.write_string_with_format(0, c as u16, h, &formats.header)
                    .map_err(xerr)?;
                // room for the autofilter's button
                widths.see(c, width(h) + 2);
            }
        }
        wb.add_worksheet_with_constant_memory()
            .and_then(|ws| ws.set_name("Failures"))
            .map_err(xerr)?;
        Ok(XlsxLedger {
            dest: dir.join(XLSX_FILE),
            wb,
            kinds,
            widths,
            rows: 0,
            dropped: 0,
            formats,
            failures: Vec::new(),
        })
    }

    /// Append one ledger row: `cells` in header order, as `ledger.jsonl` holds them (not
    /// neutralised); `status` for the row's shade. A failed row is also given to
    /// [`failed`](Self::failed).
    pub fn write(&mut self, line: u64, cells: &[String], status: &str) -> io::Result<()> {
        let shade = Shade::of(status) as usize;
        if self.rows >= MAX_ROWS {
            self.dropped += 1;
            return Ok(());
        }
        self.rows += 1;
        let r = self.rows as u32;
        let ws = self.wb.worksheet_from_index(0).map_err(xerr)?;
        for (c, (kind, v)) in self.kinds.iter().zip(cells).enumerate() {
            let col = c as u16;
            let f = &self.formats.cells;
            let fmt = |k: usize| &f[k][shade];
            let shown = match kind {
                Kind::Number if line.to_string() == *v => {
                    ws.write_number_with_format(r, col, line as f64, fmt(NUMBER))
                        .map_err(xerr)?;
                    v.chars().count()
                }
                Kind::DateTime => match datetime_serial(v) {
                    Some(t) => {
                        ws.write_number_with_format(r, col, t, fmt(DATETIME))
                            .map_err(xerr)?;
                        19
                    }
                    None => write_text(ws, r, col, v, fmt(TEXT))?,
                },
                Kind::ByValue => match classify(v) {
                    Cell::Number(n) => {
                        ws.write_number_with_format(r, col, n, fmt(NUMBER))
                            .map_err(xerr)?;
                        v.chars().count()
                    }
                    Cell::Date(d) => {
                        ws.write_number_with_format(r, col, d, fmt(DATE))
                            .map_err(xerr)?;
                        10
                    }
                    Cell::Text | Cell::Blank => write_text(ws, r, col, v, fmt(TEXT))?,
                },
                Kind::Id => write_text(ws, r, col, v, fmt(ID))?,
                Kind::Number | Kind::Text => write_text(ws, r, col, v, fmt(TEXT))?,
            };
            self.widths.see(c, shown);
        }
        Ok(())
    }

    /// Remember a failed row for the `Failures` sheet.
    pub fn failed(&mut self, line: u64, key: &str, step: &str, code: &str, message: &str) {
        self.failures.push(Failure {
            line,
            key: key.into(),
            step: step.into(),
            code: code.into(),
            message: message.into(),
        });
    }

    /// Write the `Failures` sheet, the widths and the autofilter, and save the workbook to
    /// `ledger.xlsx.tmp` (mode 0600, fsynced). The caller renames it into place.
    pub fn finish(mut self) -> io::Result<()> {
        let cols = self.kinds.len() as u16;
        {
            let ws = self.wb.worksheet_from_index(0).map_err(xerr)?;
            self.widths.apply(ws).map_err(xerr)?;
            if cols > 0 {
                ws.autofilter(0, 0, self.rows as u32, cols - 1)
                    .map_err(xerr)?;
            }
        }
        self.write_failures().map_err(xerr)?;
        let tmp = crate::rundir::tmp_path(&self.dest);
        let mut out = BufWriter::new(crate::rundir::create_private(&tmp)?);
        self.wb.save_to_writer(&mut out).map_err(xerr)?;
        out.flush()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }

    fn write_failures(&mut self) -> Result<(), XlsxError> {
        let header = [
            "error_code",
            "count",
            "line",
            "key",
            "error_step",
            "error_message",
        ];
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for f in &self.failures {
            *counts.entry(f.code.as_str()).or_default() += 1;
        }
        let mut codes: Vec<(&str, u64)> = counts.into_iter().collect();
        codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut by_code: HashMap<&str, Vec<&Failure>> = HashMap::new();
        for f in &self.failures {
            by_code.entry(f.code.as_str()).or_default().push(f);
        }
        let fm = &self.formats;
        let ws = self.wb.worksheet_from_index(1)?;
        print_setup(ws)?;
        let mut widths = Widths(vec![0; header.len()]);
        for (c, h) in header.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, *h, &fm.header)?;
            widths.see(c, width(h) + 2);
        }
        let mut r: u32 = 0;
        let text = &fm.cells[TEXT][0];
        let id = &fm.cells[ID][0];
        let number = &fm.cells[NUMBER][0];
        for (code, count) in &codes {
            r += 1;
            ws.write_string_with_format(r, 0, fit(code), &fm.group)?;
            ws.write_number_with_format(r, 1, *count as f64, &fm.group)?;
            for c in 2..header.len() as u16 {
                ws.write_blank(r, c, &fm.group)?;
            }
            widths.see(0, width(code));
            widths.see(1, count.to_string().len());
            for f in &by_code[code] {
                if u64::from(r) >= MAX_ROWS {
                    break;
                }
                r += 1;
                ws.write_string_with_format(r, 0, fit(&f.code), text)?;
                ws.write_number_with_format(r, 2, f.line as f64, number)?;
                ws.write_string_with_format(r, 3, fit(&f.key), id)?;
                ws.write_string_with_format(r, 4, fit(&f.step), text)?;
                ws.write_string_with_format(r, 5, fit(&f.message), text)?;
                widths.see(2, f.line.to_string().len());
                widths.see(3, width(&f.key));
                widths.see(4, width(&f.step));
                widths.see(5, width(&f.message));
            }
        }
        if codes.is_empty() {
            r += 1;
            ws.write_string_with_format(r, 0, "no row failed", text)?;
        }
        if self.dropped > 0 {
            r += 1;
            let note = format!(
                "the Ledger sheet holds the first {MAX_ROWS} rows; {} more are in ledger.csv and ledger.jsonl only",
                self.dropped
            );
            ws.write_string_with_format(r.min(MAX_ROWS as u32), 0, note, text)?;
        }
        widths.apply(ws)?;
        ws.autofilter(0, 0, r.min(MAX_ROWS as u32), header.len() as u16 - 1)?;
        Ok(())
    }
}

/// A sheet's view and print settings: the header row frozen on screen and repeated on every
/// printed page, landscape, as wide as one page.
fn print_setup(ws: &mut Worksheet) -> Result<(), XlsxError> {
    ws.set_freeze_panes(1, 0)?;
    ws.set_repeat_rows(0, 0)?;
    ws.set_landscape().set_print_fit_to_pages(1, 0);
    Ok(())
}

/// Write `v` as a string cell (or a blank one carrying the row's shade), returning its width.
fn write_text(ws: &mut Worksheet, r: u32, c: u16, v: &str, fmt: &Format) -> io::Result<usize> {
    if v.is_empty() {
        ws.write_blank(r, c, fmt).map_err(xerr)?;
        return Ok(0);
    }
    ws.write_string_with_format(r, c, fit(v), fmt)
        .map_err(xerr)?;
    Ok(width(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{open_workbook, Data, Reader, Xlsx};
    use std::io::Read;

    #[test]
    fn classify_keeps_ids_as_text_and_types_numbers_and_dates() {
        for text in [
            "123456789012",      // a 12-digit account id
            "0123",              // leading zero
            "-0123",             // leading zero after a sign
            "00.5",              // leading zero before a digit
            "1234567890",        // 10 digits, no point
            "1234567890123456",  // 16 digits
            "1234567890123.456", // 16 digits with a point
            "1e5",
            "+1",
            "1,000",
            " 1",
            "1.",
            ".5",
            "-",
            "2024-02-30", // not a date
            "1900-02-28", // before spreadsheet dates are exact
            "2024-1-01",
            "=1+1",
            "Acme",
            "NaN",
            "inf",
        ] {
            assert_eq!(classify(text), Cell::Text, "{text:?}");
        }
        for (num, n) in [
            ("0", 0.0),
            ("7", 7.0),
            ("-2", -2.0),
            ("0.5", 0.5),
            ("9900.50", 9900.5),
            ("123456789", 123_456_789.0),
            ("123456789.25", 123_456_789.25),
            ("1234567890.5", 1_234_567_890.5),
        ] {
            assert_eq!(classify(num), Cell::Number(n), "{num:?}");
        }
        assert_eq!(classify("1900-03-01"), Cell::Date(61.0));
        assert_eq!(classify("2027-03-31"), Cell::Date(46477.0));
        assert_eq!(classify(""), Cell::Blank);
    }

    #[test]
    fn datetimes_are_utc_day_numbers() {
        assert_eq!(datetime_serial("1900-03-01T00:00:00Z"), Some(61.0));
        assert_eq!(datetime_serial("2024-01-01T12:00:00.000Z"), Some(45292.5));
        // an offset is turned to UTC
        assert_eq!(datetime_serial("2024-01-01T14:00:00+02:00"), Some(45292.5));
        assert_eq!(datetime_serial("t0"), None);
        assert_eq!(datetime_serial("2024-01-01"), None);
    }

    #[test]
    fn a_text_too_long_for_a_cell_is_cut_with_a_note() {
        let long = "é".repeat(MAX_CELL + 10);
        let cut = fit(&long);
        assert_eq!(cut.encode_utf16().count(), MAX_CELL);
        assert!(cut.ends_with(CUT_NOTE));
        assert_eq!(fit("short"), "short");
        // a character outside the BMP takes two units
        let astral = "😀".repeat(MAX_CELL / 2 + 1);
        assert!(fit(&astral).encode_utf16().count() <= MAX_CELL);
    }

    fn s(x: &str) -> String {
        x.to_string()
    }

    /// The day number of a cell that a reader sees as a date or date-time.
    fn datetime(c: &Data) -> f64 {
        match c {
            Data::DateTime(d) => d.as_f64(),
            other => panic!("not a date: {other:?}"),
        }
    }

    fn unzip(path: &Path, name: &str) -> String {
        let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
        let mut out = String::new();
        z.by_name(name).unwrap().read_to_string(&mut out).unwrap();
        out
    }

    /// A ledger written through [`XlsxLedger`] and read back: the cell types, the sheet's
    /// settings in its XML, and the `Failures` sheet.
    #[test]
    fn writes_typed_cells_frozen_header_autofilter_shades_and_failures() {
        let t = tempfile::tempdir().unwrap();
        let header: Vec<String> = [
            "line",
            "key",
            "status",
            "invite_id",
            "account",
            "spend",
            "due",
            "company",
            "error_code",
            "error_message",
            "started_at",
            "finished_at",
        ]
        .map(String::from)
        .to_vec();
        let by_value = [s("account"), s("spend"), s("due"), s("company")];
        let mut x = XlsxLedger::create(t.path(), &header, &by_value).unwrap();
        let rows: [[&str; 12]; 6] = [
            [
                "2",
                "123456789012",
                "succeeded",
                "000123",
                "012345678901",
                "9900.50",
                "2027-03-31",
                "=HYPERLINK(\"http://x\")",
                "",
                "",
                "2024-01-01T12:00:00.000Z",
                "2024-01-01T12:00:01.500Z",
            ],
            [
                "3", "b", "failed", "", "7", "-2", "soon", "+1", "Conflict", "c1", "t", "",
            ],
            [
                "4",
                "c",
                "failed",
                "",
                "",
                "",
                "",
                "",
                "Validation",
                "v1",
                "",
                "",
            ],
            [
                "5", "d", "failed", "", "", "", "", "", "Conflict", "c2", "", "",
            ],
            ["6", "e", "pending", "", "", "", "", "", "", "", "", ""],
            ["7", "f", "in_flight", "", "", "", "", "", "", "", "", ""],
        ];
        for r in &rows {
            let cells: Vec<String> = r.iter().map(|c| s(c)).collect();
            let line: u64 = r[0].parse().unwrap();
            x.write(line, &cells, r[2]).unwrap();
            if r[2] == "failed" {
                x.failed(line, r[1], "invite", r[8], r[9]);
            }
        }
        x.finish().unwrap();
        let tmp = t.path().join("ledger.xlsx.tmp");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&tmp).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // the constant-memory row files are unnamed: nothing else is left in the directory
        let names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["ledger.xlsx.tmp"]);

        let mut wb: Xlsx<_> = open_workbook(&tmp).unwrap();
        assert_eq!(wb.sheet_names(), ["Ledger", "Failures"]);
        let l = wb.worksheet_range("Ledger").unwrap();
        assert_eq!(l.height(), 7);
        let head: Vec<String> = l
            .rows()
            .next()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(head, header);
        let r1 = &l.rows().nth(1).unwrap();
        assert_eq!(r1[0], Data::Float(2.0));
        assert_eq!(r1[1], Data::String(s("123456789012")));
        assert_eq!(r1[3], Data::String(s("000123")));
        assert_eq!(r1[4], Data::String(s("012345678901")));
        assert_eq!(r1[5], Data::Float(9900.5));
        assert_eq!(datetime(&r1[6]), 46477.0);
        assert_eq!(r1[7], Data::String(s("=HYPERLINK(\"http://x\")")));
        assert_eq!(datetime(&r1[10]), 45292.5);
        assert!((datetime(&r1[11]) - (45292.0 + 43_201.5 / 86_400.0)).abs() < 1e-9);
        let r2 = &l.rows().nth(2).unwrap();
        assert_eq!(r2[4], Data::Float(7.0));
        assert_eq!(r2[5], Data::Float(-2.0));
        assert_eq!(r2[6], Data::String(s("soon")));
        assert_eq!(r2[7], Data::String(s("+1")));
        assert_eq!(r2[10], Data::String(s("t")), "an unparsed time stays text");
        assert_eq!(r2[11], Data::Empty);
        // no formula anywhere
        assert!(wb
            .worksheet_formula("Ledger")
            .unwrap()
            .used_cells()
            .all(|(_, _, f)| f.is_empty()));

        let f = wb.worksheet_range("Failures").unwrap();
        let got: Vec<Vec<String>> = f
            .rows()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect();
        let want = [
            [
                "error_code",
                "count",
                "line",
                "key",
                "error_step",
                "error_message",
            ],
            ["Conflict", "2", "", "", "", ""],
            ["Conflict", "", "3", "b", "invite", "c1"],
            ["Conflict", "", "5", "d", "invite", "c2"],
            ["Validation", "1", "", "", "", ""],
            ["Validation", "", "4", "c", "invite", "v1"],
        ];
        assert_eq!(got, want);

        let sheet1 = unzip(&tmp, "xl/worksheets/sheet1.xml");
        assert!(sheet1.contains(r#"state="frozen""#), "{sheet1}");
        assert!(sheet1.contains(r#"<autoFilter ref="A1:L7"/>"#), "{sheet1}");
        assert!(sheet1.contains("<cols>"), "widths are set");
        assert!(!sheet1.contains("<f>"), "no formula");
        let sheet2 = unzip(&tmp, "xl/worksheets/sheet2.xml");
        assert!(sheet2.contains(r#"<autoFilter ref="A1:F6"/>"#), "{sheet2}");
        let styles = unzip(&tmp, "xl/styles.xml");
        for fill in ["FFFFC7CE", "FFFFEB9C", "FFE7E6E6"] {
            assert!(styles.contains(fill), "{fill} in {styles}");
        }
    }

    #[test]
    fn no_failure_says_so() {
        let t = tempfile::tempdir().unwrap();
        let header = vec![s("line"), s("key")];
        let mut x = XlsxLedger::create(t.path(), &header, &[]).unwrap();
        x.write(2, &[s("2"), s("k")], "succeeded").unwrap();
        x.finish().unwrap();
        let mut wb: Xlsx<_> = open_workbook(t.path().join("ledger.xlsx.tmp")).unwrap();
        let f = wb.worksheet_range("Failures").unwrap();
        assert_eq!(f.get_value((1, 0)), Some(&Data::String(s("no row failed"))));
    }
}
