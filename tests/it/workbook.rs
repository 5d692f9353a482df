//! Workbooks as input: typed cells become the values templates see, bad cells are located
//! (workbook, sheet, row as Excel numbers it, column header), sheets are chosen, and runs on a
//! workbook record its rows and refuse to resume on a changed one.

use crate::support::{read_ledger, repo, Cosell};
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook, Worksheet};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;

/// The invite playbook, reading `input` and putting every typed column into the message.
fn playbook(input: &str, sheet: Option<&str>) -> String {
    let text = std::fs::read_to_string(repo().join("playbooks/invite-partners.yaml")).unwrap();
    let sheet = sheet.map(|s| format!("\n  sheet: {s}")).unwrap_or_default();
    text.replace(
        "  csv: ../examples/partners.csv",
        &format!("  file: {input}{sheet}"),
    )
    .replace(
        "Message: \"{{ row.message | default('Join our Q4 engagement') }}\"",
        "Message: \"signed={{ row.signed }} met={{ row.met }} active={{ row.active }} total={{ row.total }} ratio={{ row.ratio }}\"",
    )
}

const HEADER: [&str; 11] = [
    "aws_account_id",
    "company",
    "country",
    "industry",
    "website",
    "roles",
    "spend",
    "signed",
    "met",
    "active",
    "total",
];

fn header(ws: &mut Worksheet, row: u32) {
    for (c, h) in HEADER.iter().enumerate() {
        ws.write_string(row, c as u16, *h).unwrap();
    }
    ws.write_string(row, HEADER.len() as u16, "ratio").unwrap();
}

/// One partner row: the id as a number (or text when `id_text`), typed cells after it.
fn partner(ws: &mut Worksheet, row: u32, id: u64, id_text: bool, company: &str, spend: f64) {
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm");
    if id_text {
        ws.write_string(row, 0, format!("{id:012}")).unwrap();
    } else {
        ws.write_number(row, 0, id as f64).unwrap();
    }
    ws.write_string(row, 1, company).unwrap();
    ws.write_string(row, 2, "us").unwrap();
    ws.write_string(row, 3, "Retail").unwrap();
    ws.write_string(row, 4, "https://example.com").unwrap();
    ws.write_string(row, 5, "Reseller").unwrap();
    ws.write_number(row, 6, spend).unwrap();
    let d = ExcelDateTime::from_ymd(2027, 3, 31).unwrap();
    ws.write_datetime_with_format(row, 7, d, &date).unwrap();
    let dt = ExcelDateTime::from_ymd(2027, 3, 31)
        .unwrap()
        .and_hms(14, 5, 0)
        .unwrap();
    ws.write_datetime_with_format(row, 8, dt, &datetime)
        .unwrap();
    ws.write_boolean(row, 9, company != "Northwind").unwrap();
    let cell = format!("G{}", row + 1);
    ws.write_formula(
        row,
        10,
        Formula::new(format!("={cell}*2")).set_result(format!("{}", spend * 2.0)),
    )
    .unwrap();
    ws.write_number(row, 11, 0.1 + 0.2).unwrap();
}

/// `Partners` (header on row 2 after an empty row, data with an empty row between) and
/// `Others` (one row).
fn partners_book(path: &Path) {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Partners").unwrap();
    header(ws, 1);
    partner(ws, 2, 210987654321, false, "Northwind", 12000.0);
    // row 4 is empty
    partner(ws, 4, 12345678901, true, "Contoso", 8500.5);
    let ws = wb.add_worksheet();
    ws.set_name("Others").unwrap();
    header(ws, 0);
    partner(ws, 1, 999988887777, false, "Fabrikam", 100.0);
    wb.save(path).unwrap();
}

/// Remove the cached value of the formula `f` in the first sheet (as a program that writes
/// formulas without calculating them leaves it).
fn drop_cached_value(path: &Path, formula: &str) {
    let mut zin = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut files = Vec::new();
    for i in 0..zin.len() {
        let mut f = zin.by_index(i).unwrap();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        files.push((f.name().unwrap().to_string(), bytes));
    }
    drop(zin);
    let mut zout = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in files {
        let bytes = if name == "xl/worksheets/sheet1.xml" {
            let s = String::from_utf8(bytes).unwrap();
            let from = format!("<f>{formula}</f><v>0</v>");
            assert!(s.contains(&from), "{s}");
            s.replace(&from, &format!("<f>{formula}</f>")).into_bytes()
        } else {
            bytes
        };
        zout.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zout.write_all(&bytes).unwrap();
    }
    zout.finish().unwrap();
}

fn plan_json(dir: &Path, args: &[&str]) -> Value {
    let out = Cosell::in_dir(dir)
        .args(["plan", "pb.yaml", "--format", "json", "--show", "10"])
        .args(args)
        .run();
    out.code(0);
    serde_json::from_str(&out.stdout).unwrap()
}

/// (row, line, key, account id, message) of each shown invitation.
fn invitations(v: &Value) -> Vec<(u64, u64, String, String, String)> {
    v["shown"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "CreateEngagementInvitation")
        .map(|r| {
            let inv = &r["request"]["Invitation"];
            (
                r["row"].as_u64().unwrap(),
                r["line"].as_u64().unwrap(),
                r["key"].as_str().unwrap().to_string(),
                inv["Receiver"]["Account"]["AwsAccountId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                inv["Message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn typed_cells_become_the_values_templates_see() {
    let dir = tempfile::tempdir().unwrap();
    partners_book(&dir.path().join("partners.xlsx"));
    std::fs::write(dir.path().join("pb.yaml"), playbook("partners.xlsx", None)).unwrap();
    let v = plan_json(dir.path(), &[]);
    assert_eq!(v["rows"], 2, "{v:#}");
    assert_eq!(
        invitations(&v),
        [
            (
                0,
                3,
                "210987654321".into(),
                "210987654321".into(),
                "signed=2027-03-31 met=2027-03-31T14:05:00 active=false total=24000 \
                 ratio=0.30000000000000004"
                    .into()
            ),
            (
                1,
                5,
                "012345678901".into(),
                "012345678901".into(),
                "signed=2027-03-31 met=2027-03-31T14:05:00 active=true total=17001 \
                 ratio=0.30000000000000004"
                    .into()
            ),
        ]
    );
    // the amount is the number as typed: 12000, not 12000.0
    let shown = v["shown"].as_array().unwrap();
    let amounts: Vec<&str> = shown
        .iter()
        .filter(|r| r["action"] == "CreateEngagementInvitation")
        .map(|r| {
            r["request"]["Invitation"]["Payload"]["OpportunityInvitation"]["Project"]
                ["ExpectedCustomerSpend"][0]["Amount"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(amounts, ["12000", "8500.5"]);
    // validate agrees, and --input takes the workbook too
    Cosell::in_dir(dir.path())
        .args(["validate", "pb.yaml", "--input", "partners.xlsx"])
        .run()
        .code(0);
}

#[test]
fn sheets_are_chosen_by_the_playbook_or_the_flag_and_unknown_ones_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    partners_book(&dir.path().join("partners.xlsx"));
    std::fs::write(
        dir.path().join("pb.yaml"),
        playbook("partners.xlsx", Some("Others")),
    )
    .unwrap();
    let v = plan_json(dir.path(), &[]);
    let got = invitations(&v);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].1, got[0].3.as_str()), (2, "999988887777"));
    // --sheet overrides the playbook's
    let v = plan_json(dir.path(), &["--sheet", "Partners"]);
    assert_eq!(invitations(&v).len(), 2);
    // an unknown sheet names the sheets there are
    let out = Cosell::in_dir(dir.path())
        .args(["validate", "pb.yaml", "--sheet", "partners "])
        .run();
    out.code(2);
    assert_eq!(
        out.stderr.lines().next().unwrap_or_default(),
        "partners.xlsx: error[UNKNOWN_SHEET]: the workbook has no sheet \"partners \" (its \
         sheets: \"Partners\", \"Others\"); did you mean \"Partners\"?"
    );
    // a sheet for a CSV is refused
    let out = Cosell::in_dir(dir.path())
        .file("p.csv", "aws_account_id\n111122223333\n")
        .args([
            "validate", "pb.yaml", "--input", "p.csv", "--sheet", "Partners",
        ])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains("error[UNKNOWN_SHEET]"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_cells_are_located_by_sheet_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("partners.xlsx");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Partners").unwrap();
    header(ws, 0);
    partner(ws, 1, 111122223333, false, "Good", 10.0);
    partner(ws, 2, 222233334444, false, "NA", 10.0);
    ws.write_formula(2, 6, Formula::new("=NA()").set_result("#N/A"))
        .unwrap();
    partner(ws, 3, 333344445555, false, "Uncalculated", 10.0);
    ws.write_formula(3, 10, Formula::new("=G4*3")).unwrap();
    partner(ws, 4, 444455556666, false, "Outside", 10.0);
    ws.write_string(4, 14, "stray").unwrap();
    partner(ws, 36, 555566667777, false, "Ref", 10.0);
    ws.write_formula(36, 2, Formula::new("=#REF!").set_result("#REF!"))
        .unwrap();
    wb.save(&path).unwrap();
    drop_cached_value(&path, "G4*3");
    std::fs::write(dir.path().join("pb.yaml"), playbook("partners.xlsx", None)).unwrap();
    let out = Cosell::in_dir(dir.path())
        .args(["validate", "pb.yaml"])
        .run();
    out.code(2);
    insta::assert_snapshot!("workbook_bad_cells", out.stderr);
    // as JSON, the location is structured
    let out = Cosell::in_dir(dir.path())
        .args(["validate", "pb.yaml", "--format", "json"])
        .run();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["diagnostics"][0]["location"],
        serde_json::json!({"kind": "workbook", "file": "partners.xlsx", "sheet": "Partners",
            "row": 3, "column": "spend"})
    );
}

#[test]
fn header_problems_in_a_sheet_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, f: &dyn Fn(&mut Worksheet)| {
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name("S").unwrap();
        f(ws);
        wb.save(dir.path().join(name)).unwrap();
    };
    write("dup.xlsx", &|ws| {
        header(ws, 2);
        ws.write_string(2, 12, "company").unwrap();
    });
    write("gap.xlsx", &|ws| {
        ws.write_string(0, 0, "aws_account_id").unwrap();
        ws.write_string(0, 2, "company").unwrap();
    });
    write("empty.xlsx", &|_| {});
    std::fs::write(dir.path().join("pb.yaml"), playbook("dup.xlsx", None)).unwrap();
    let v = |input: &str| {
        let out = Cosell::in_dir(dir.path())
            .args(["validate", "pb.yaml", "--input", input])
            .run();
        out.code(2);
        out.stderr.lines().next().unwrap_or_default().to_string()
    };
    assert_eq!(
        v("dup.xlsx"),
        "dup.xlsx [S] row 3 column company: error[CSV_DUPLICATE_HEADER]: column name \
         \"company\" appears twice in the header (columns B and M); rename one"
    );
    assert_eq!(
        v("gap.xlsx"),
        "gap.xlsx [S] row 1: error[CSV_NO_HEADER]: column B of the header row (the sheet's \
         first non-empty row) has no name: the header must name every column"
    );
    assert_eq!(
        v("empty.xlsx"),
        "empty.xlsx: error[CSV_EMPTY]: the sheet \"S\" is empty; it needs a header row naming \
         its columns, then one row per item"
    );
    assert!(v("missing.xlsx").starts_with("missing.xlsx: error[WORKBOOK_UNREADABLE]"));
}

/// The run directory under `dir/runs`.
fn only_run(dir: &Path) -> std::path::PathBuf {
    let mut d: Vec<_> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(d.len(), 1);
    d.pop().unwrap()
}

#[test]
fn a_rehearsal_on_a_workbook_records_sheet_rows_and_refuses_a_changed_one_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let book = dir.path().join("partners.xlsx");
    partners_book(&book);
    std::fs::write(dir.path().join("pb.yaml"), playbook("partners.xlsx", None)).unwrap();
    let out = Cosell::in_dir(dir.path())
        .args(["run", "pb.yaml", "--emulate"])
        .run();
    let run = only_run(dir.path());
    assert_eq!(
        out.code,
        0,
        "{}\n{}",
        out.stderr,
        std::fs::read_to_string(run.join("ledger.csv")).unwrap_or_default()
    );
    let ledger = read_ledger(&run.join("ledger.csv"));
    let got: Vec<(&str, &str, &str)> = ledger
        .iter()
        .map(|r| (r["line"].as_str(), r["key"].as_str(), r["status"].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("3", "210987654321", "succeeded"),
            ("5", "012345678901", "succeeded")
        ]
    );
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["input_sheet"], "Partners");
    let run_arg = run.to_string_lossy().into_owned();
    // unchanged: resumes (nothing left to do)
    Cosell::in_dir(dir.path())
        .args(["resume", &run_arg])
        .run()
        .code(0);
    Cosell::in_dir(dir.path())
        .args(["status", &run_arg])
        .run()
        .code(0)
        .stdout_has("2 succeeded");
    // the workbook changes: refused
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Partners").unwrap();
    header(ws, 0);
    partner(ws, 1, 210987654321, false, "Northwind", 12001.0);
    wb.save(&book).unwrap();
    let out = Cosell::in_dir(dir.path()).args(["resume", &run_arg]).run();
    out.code(2)
        .stderr_has("input changed")
        .stderr_has("--force");
}

#[test]
fn the_example_workbook_reads_as_the_example_csv() {
    let dir = tempfile::tempdir().unwrap();
    let pb = repo().join("playbooks/invite-partners.yaml");
    let plan = |input: &str| {
        let out = Cosell::in_dir(dir.path())
            .arg("plan")
            .arg(&pb)
            .args(["--format", "json", "--show", "100", "--input"])
            .arg(repo().join(input))
            .run();
        out.code(0);
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        let reqs: Vec<Value> = v["shown"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| serde_json::json!([r["key"], r["request"]]))
            .collect();
        reqs
    };
    let csv = plan("examples/partners.csv");
    assert_eq!(csv.len(), 21);
    assert_eq!(plan("examples/partners.xlsx"), csv);
}

/// Regenerates `examples/partners.xlsx` from `examples/partners.csv` (ids and amounts as
/// numbers, as a partner team keeps them): `COSELL_WRITE_EXAMPLE=1 cargo test --test it
/// write_example_workbook`.
#[test]
fn write_example_workbook() {
    if std::env::var_os("COSELL_WRITE_EXAMPLE").is_none() {
        return;
    }
    let mut r = csv::Reader::from_path(repo().join("examples/partners.csv")).unwrap();
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Partners").unwrap();
    let bold = Format::new().set_bold();
    for (c, h) in r.headers().unwrap().iter().enumerate() {
        ws.write_string_with_format(0, c as u16, h, &bold).unwrap();
    }
    for (i, rec) in r.records().enumerate() {
        let rec = rec.unwrap();
        for (c, v) in rec.iter().enumerate() {
            let (row, col) = (i as u32 + 1, c as u16);
            match v.parse::<f64>() {
                // integral numbers (ids, amounts) as numbers; 9900.50 stays as written
                Ok(n) if !v.starts_with('0') && n.fract() == 0.0 => {
                    ws.write_number(row, col, n).unwrap()
                }
                _ if v.is_empty() => ws,
                _ => ws.write_string(row, col, v).unwrap(),
            };
        }
    }
    ws.autofit();
    wb.save(repo().join("examples/partners.xlsx")).unwrap();
}

/// An OpenDocument cell, as LibreOffice writes it.
enum Od<'a> {
    S(&'a str),
    F(f64),
    Date(&'a str),
    Bool(bool),
    /// A formula and its cached number.
    Formula(&'a str, f64),
}

/// A minimal `.ods` (mimetype, manifest, content) with one sheet of `rows` (`None`: an empty
/// row). rust_xlsxwriter writes only `.xlsx`.
fn write_ods(path: &Path, sheet: &str, rows: &[Option<Vec<Od>>]) {
    let mut content = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet>"#,
    );
    content.push_str(&format!(r#"<table:table table:name="{sheet}">"#));
    for row in rows {
        content.push_str("<table:table-row>");
        match row {
            None => content.push_str("<table:table-cell/>"),
            Some(cells) => {
                for c in cells {
                    content.push_str(&match c {
                        Od::S(s) => format!(r#"<table:table-cell office:value-type="string"><text:p>{s}</text:p></table:table-cell>"#),
                        Od::F(f) => format!(r#"<table:table-cell office:value-type="float" office:value="{f}"><text:p>{f}</text:p></table:table-cell>"#),
                        Od::Date(d) => format!(r#"<table:table-cell office:value-type="date" office:date-value="{d}"><text:p>{d}</text:p></table:table-cell>"#),
                        Od::Bool(b) => format!(r#"<table:table-cell office:value-type="boolean" office:boolean-value="{b}"><text:p>{b}</text:p></table:table-cell>"#),
                        Od::Formula(f, v) => format!(r#"<table:table-cell table:formula="of:={f}" office:value-type="float" office:value="{v}"><text:p>{v}</text:p></table:table-cell>"#),
                    });
                }
            }
        }
        content.push_str("</table:table-row>");
    }
    content.push_str("</table:table></office:spreadsheet></office:body></office:document-content>");
    let manifest = r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("mimetype", stored).unwrap();
    z.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
        .unwrap();
    z.start_file(
        "META-INF/manifest.xml",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    z.write_all(manifest.as_bytes()).unwrap();
    z.start_file("content.xml", zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(content.as_bytes()).unwrap();
    z.finish().unwrap();
}

#[test]
fn an_ods_workbook_validates_plans_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut header: Vec<Od> = HEADER.iter().map(|h| Od::S(h)).collect();
    header.push(Od::S("ratio"));
    let row = |id: Od<'static>, company: &'static str, active: bool| {
        vec![
            id,
            Od::S(company),
            Od::S("us"),
            Od::S("Retail"),
            Od::S("https://example.com"),
            Od::S("Reseller"),
            Od::F(12000.0),
            Od::Date("2027-03-31"),
            Od::Date("2027-03-31T14:05:00"),
            Od::Bool(active),
            Od::Formula("[.G2]*2", 24000.0),
            Od::F(0.25),
        ]
    };
    write_ods(
        &dir.path().join("partners.ods"),
        "Liste",
        &[
            Some(header),
            Some(row(Od::F(210987654321.0), "Northwind", false)),
            None,
            Some(row(Od::S("012345678901"), "Contoso", true)),
        ],
    );
    std::fs::write(dir.path().join("pb.yaml"), playbook("partners.ods", None)).unwrap();
    Cosell::in_dir(dir.path())
        .args(["validate", "pb.yaml"])
        .run()
        .code(0);
    let v = plan_json(dir.path(), &[]);
    let got = invitations(&v);
    assert_eq!(
        got.iter()
            .map(|g| (g.1, g.3.as_str(), g.4.as_str()))
            .collect::<Vec<_>>(),
        [
            (
                2,
                "210987654321",
                "signed=2027-03-31 met=2027-03-31T14:05:00 active=false total=24000 ratio=0.25"
            ),
            (
                4,
                "012345678901",
                "signed=2027-03-31 met=2027-03-31T14:05:00 active=true total=24000 ratio=0.25"
            ),
        ]
    );
    Cosell::in_dir(dir.path())
        .args(["run", "pb.yaml", "--emulate"])
        .run()
        .code(0);
    let ledger = read_ledger(&only_run(dir.path()).join("ledger.csv"));
    let lines: Vec<&str> = ledger.iter().map(|r| r["line"].as_str()).collect();
    assert_eq!(lines, ["2", "4"]);
    // an unknown sheet lists the ods's sheets too
    let out = Cosell::in_dir(dir.path())
        .args(["validate", "pb.yaml", "--sheet", "Partners"])
        .run();
    out.code(2);
    assert!(
        out.stderr
            .contains("the workbook has no sheet \"Partners\" (its sheets: \"Liste\")"),
        "{}",
        out.stderr
    );
}
