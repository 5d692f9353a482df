//! `ledger.xlsx` from a real run: the binary against the emulator, with one failing row, read
//! back with calamine as a spreadsheet would read it.

use crate::run::{RECEIVER, SENDER, X50};
use crate::support::{read_ledger, Cosell, Emu};
use calamine::{open_workbook, Data, Reader, Xlsx};

/// Keyed by the 12-digit account id (the value Excel turns into `1.23457E+11` in a CSV), with
/// playbook columns that are an id with a leading zero, a number, a date and a formula-like
/// company name.
const PLAYBOOK: &str = r#"version: 1
name: xlsx-ledger
catalog: Sandbox
input:
  csv: partners.csv
  key: "{{ row.aws_account_id }}"
vars:
  target_date: "2027-03-31"
setup:
  - id: engagement
    action: CreateEngagement
    input:
      Title: Q4 resellers
      Description: Co-sell engagement for Q4 reseller partners
steps:
  - id: invite
    action: CreateEngagementInvitation
    input:
      EngagementIdentifier: "{{ setup.engagement.Id }}"
      Invitation:
        Message: Join our Q4 engagement
        Receiver:
          Account:
            AwsAccountId: "{{ row.aws_account_id }}"
        Payload:
          OpportunityInvitation:
            ReceiverResponsibilities: [Reseller]
            Customer:
              CompanyName: "{{ row.company }}"
              CountryCode: US
              Industry: Retail
              WebsiteUrl: https://example.com
            Project:
              Title: "{{ row.company }} data platform"
              BusinessProblem: "{{ row.company }} needs a modern analytics platform on AWS"
              TargetCompletionDate: "{{ vars.target_date }}"
              ExpectedCustomerSpend:
                - Amount: "{{ row.spend }}"
                  CurrencyCode: USD
                  Frequency: Monthly
                  TargetCompany: AWS
  - id: check
    action: GetEngagementInvitation
    input:
      Identifier: "{{ steps.invite.Id }}"
    expect:
      Status: PENDING
ledger:
  columns:
    partner_account: "{{ row.partner_account }}"
    company: "{{ row.company }}"
    spend: "{{ row.spend }}"
    due: "{{ vars.target_date }}"
    invitation_status: "{{ steps.check.Status }}"
"#;

fn text(c: &Data) -> String {
    match c {
        Data::String(s) => s.clone(),
        other => panic!("not a string cell: {other:?}"),
    }
}

fn day_number(c: &Data) -> f64 {
    match c {
        Data::DateTime(d) => d.as_f64(),
        other => panic!("not a date cell: {other:?}"),
    }
}

#[test]
fn the_workbook_keeps_ids_as_text_types_numbers_and_dates_and_groups_failures() {
    let emu = Emu::start("x50", "", 1, "100ms");
    let dir = tempfile::tempdir().unwrap();
    // the third row invites the sender itself: the service refuses it
    let partners = format!(
        "aws_account_id,partner_account,company,spend\n\
         {RECEIVER},012345678901,Northwind,12000\n\
         333344445555,000000000042,=1+1,9900.50\n\
         {SENDER},123456789012,=HYPERLINK(\"http://x\"),7\n"
    );
    let out = Cosell::in_dir(dir.path())
        .file("partners.csv", &partners)
        .file("xlsx.yaml", PLAYBOOK)
        .args(["run", "xlsx.yaml", "--run-dir", "r"])
        .args(X50)
        .calling_as(emu.url(), SENDER)
        .run();
    out.code(1)
        .stdout_has("ledger    r/ledger.csv\nworkbook  r/ledger.xlsx\n");
    let run = dir.path().join("r");
    let csv = read_ledger(&run.join("ledger.csv"));
    assert_eq!(csv.len(), 3);
    assert_eq!(csv[2]["status"], "failed", "{csv:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(run.join("ledger.xlsx"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!run.join("ledger.xlsx.tmp").exists());

    let mut wb: Xlsx<_> = open_workbook(run.join("ledger.xlsx")).unwrap();
    assert_eq!(wb.sheet_names(), ["Ledger", "Failures"]);
    let sheet = wb.worksheet_range("Ledger").unwrap();
    let mut rows = sheet.rows();
    let header: Vec<String> = rows.next().unwrap().iter().map(text).collect();
    let csv_header: Vec<String> = csv[0].keys().cloned().collect();
    let mut sorted = header.clone();
    sorted.sort();
    assert_eq!(sorted, csv_header, "the same columns as ledger.csv");
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<&[Data]> = rows.collect();
    assert_eq!(rows.len(), 3);
    for (x, c) in rows.iter().zip(&csv) {
        // ids are text, exactly the CSV's
        for id in ["key", "setup_engagement_id", "invite_id", "partner_account"] {
            let cell = &x[col(id)];
            if c[id].is_empty() {
                assert_eq!(*cell, Data::Empty, "{id}");
            } else {
                assert_eq!(text(cell), c[id], "{id}");
            }
        }
        assert_eq!(x[col("line")], Data::Float(c["line"].parse().unwrap()));
        assert_eq!(text(&x[col("status")]), c["status"]);
        let started = chrono::DateTime::parse_from_rfc3339(&c["started_at"]).unwrap();
        let got = day_number(&x[col("started_at")]);
        let want = (started.timestamp_millis() as f64 / 86_400_000.0) + 25_569.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        day_number(&x[col("finished_at")]);
        assert_eq!(day_number(&x[col("due")]), 46_477.0, "2027-03-31");
    }
    assert_eq!(text(&rows[0][col("key")]), RECEIVER);
    assert_eq!(text(&rows[0][col("partner_account")]), "012345678901");
    assert_eq!(text(&rows[1][col("partner_account")]), "000000000042");
    assert_eq!(rows[0][col("spend")], Data::Float(12000.0));
    assert_eq!(rows[1][col("spend")], Data::Float(9900.5));
    // formula-like text is a string cell as written; the CSV needed a `'`
    assert_eq!(text(&rows[1][col("company")]), "=1+1");
    assert_eq!(csv[1]["company"], "'=1+1");
    assert_eq!(text(&rows[2][col("company")]), "=HYPERLINK(\"http://x\")");
    assert!(wb
        .worksheet_formula("Ledger")
        .unwrap()
        .used_cells()
        .all(|(_, _, f)| f.is_empty()));
    assert_eq!(text(&rows[2][col("error_code")]), csv[2]["error_code"]);

    let failures = wb.worksheet_range("Failures").unwrap();
    let got: Vec<Vec<String>> = failures
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    let code = &csv[2]["error_code"];
    assert_eq!(
        got,
        [
            vec![
                "error_code",
                "count",
                "line",
                "key",
                "error_step",
                "error_message"
            ],
            vec![code, "1", "", "", "", ""],
            vec![code, "", "4", SENDER, "invite", &csv[2]["error_message"]],
        ]
    );
}
