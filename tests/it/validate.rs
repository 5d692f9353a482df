//! `cosell validate`, `plan` and `schema`, driven through the real binary: every playbook
//! rule and every bad-input case, each with its exact location and message.

use crate::support::{repo, Cosell, Outcome};
use std::time::{Duration, Instant};

fn validate(playbook: &str) -> Outcome {
    Cosell::new()
        .arg("validate")
        .arg(repo().join(playbook))
        .run()
}

/// Validate the invite playbook over one of the broken CSVs.
fn invite_with(csv: &str) -> Outcome {
    Cosell::new()
        .arg("validate")
        .arg(repo().join("playbooks/invite-partners.yaml"))
        .arg("--input")
        .arg(repo().join(csv))
        .run()
}

/// Diagnostics as printed, with the absolute repository path removed.
fn lines(o: &Outcome) -> Vec<String> {
    let root = format!("{}/", repo().display());
    o.stderr
        .replace(&root, "")
        .lines()
        .map(str::to_string)
        .collect()
}

#[track_caller]
fn has(o: &Outcome, want: &[&str]) {
    let got = lines(o);
    for w in want {
        assert!(
            got.iter().any(|g| g == w),
            "missing line:\n{w}\n--- got:\n{}",
            got.join("\n")
        );
    }
}

#[test]
fn the_example_playbooks_validate_clean() {
    for (p, rows, requests) in [
        ("playbooks/invite-partners.yaml", 10, 21),
        ("playbooks/accept-invitations.yaml", 8, 16),
        ("playbooks/engagements-from-opportunities.yaml", 6, 6),
    ] {
        let o = validate(p);
        o.code(0);
        assert_eq!(o.stderr, "", "{p}");
        assert!(
            o.stdout.ends_with(&format!(
                "{p}: valid; {rows} rows, {requests} requests checked\n"
            )),
            "{}",
            o.stdout
        );
    }
}

#[test]
fn structure_rules_are_reported_all_at_once() {
    let o = validate("examples/invalid/structure.yaml");
    o.code(2);
    let f = "examples/invalid/structure.yaml";
    has(&o, &[
        &format!("{f}:3:7: error[INVALID_NAME]: name \"Q4 Invites\" must be 1 to 40 characters of a-z, 0-9 and - (it is part of every idempotency token)"),
        &format!("{f}:4:10: error[INVALID_CATALOG]: catalog \"Sandbx\" is not one of AWS, Sandbox; did you mean \"Sandbox\"?"),
        &format!("{f}:6:3: error[UNKNOWN_KEY]: unknown key \"concurency\" in limits; allowed: concurrency, rates, daily, max_failures, daily_wait; did you mean \"concurrency\"?"),
        &format!("{f}:7:12: error[UNKNOWN_RATE_TARGET]: \"writes\" is neither a quota class (read, write, engagement-write, prospecting-get, prospecting-list, prospecting-write) nor an operation name; did you mean \"write\"?"),
        &format!("{f}:7:31: error[INVALID_LIMIT]: rate \"fast\" for read is not a rate such as 1/s, 30/m or 3600/h"),
        &format!("{f}:8:17: error[INVALID_LIMIT]: limits.max_failures must be a count (5) or a percentage from 0% to 100% (\"5%\")"),
        &format!("{f}:13:9: error[DUPLICATE_STEP_ID]: step id \"invite\" is already used at line 10; step ids must be unique across setup and steps"),
        &format!("{f}:16:11: error[WAIT_NOT_ALLOWED]: wait is only allowed on asynchronous actions (StartEngagementByAcceptingInvitationTask, StartEngagementFromOpportunityTask, StartOpportunityFromEngagementTask, StartProspectingFromEngagementTask, StartResourceSnapshotJob); GetEngagementInvitation returns its result directly: remove wait"),
        &format!("{f}:19:12: error[WRONG_TYPE]: input must be a mapping (the request as the API's JSON), found a string"),
        &format!("{f}:20:13: error[WRONG_TYPE]: expect must be a mapping of output member to expected value, found a list"),
        "11 errors; nothing was sent",
    ]);
    let action = lines(&o)
        .into_iter()
        .find(|l| l.contains("UNKNOWN_ACTION"))
        .unwrap();
    assert!(action.starts_with(&format!("{f}:11:13: error[UNKNOWN_ACTION]: unknown action \"CreateEngagementInvitaton\"; an action is one of the API's 45 operations: AcceptEngagementInvitation, AssignOpportunity, ")), "{action}");
    assert!(
        action.ends_with("; did you mean \"CreateEngagementInvitation\"?"),
        "{action}"
    );
}

#[test]
fn template_references_are_checked() {
    let o = validate("examples/invalid/references.yaml");
    o.code(2);
    let f = "examples/invalid/references.yaml";
    has(&o, &[
        &format!("{f}:13:21: error[ROW_IN_SETUP]: setup.engagement: setup steps run once, before any row: they cannot read row"),
        &format!("{f}:17:26: error[FORWARD_REFERENCE]: steps.check: steps.invite is not available here: a step can read only the outputs of steps before it, and invite runs later"),
        &format!("{f}:28:39: error[TEMPLATE_SYNTAX]: steps.invite: template syntax error: syntax error: unexpected end of input, expected end of variable block"),
        &format!("{f}:22:29: error[UNKNOWN_STEP]: steps.invite: setup.engagment: there is no setup step \"engagment\" (known: engagement); did you mean \"engagement\"?"),
        &format!("{f}:24:18: error[UNKNOWN_VAR]: steps.invite: vars.mesage is not defined (vars: title); define it under vars or pass --var mesage=VALUE"),
        &format!("{f}:29:38: error[UNKNOWN_VARIABLE]: steps.invite: unknown variable \"rows\"; templates can read row, vars, setup, steps and run; did you mean \"row\"?"),
        &format!("{f}:20:11: error[UNKNOWN_OUTPUT_MEMBER]: steps.invite: steps.check.Statuss does not exist; GetEngagementInvitation has: Arn, PayloadType, Id, EngagementId, EngagementTitle, Status, InvitationDate, ExpirationDate, SenderAwsAccountId, SenderCompanyName, Receiver, Catalog, RejectionReason, Payload, InvitationMessage, EngagementDescription, ExistingMembers, EnrichmentContext; did you mean \"Status\"?"),
        &format!("{f}:31:15: error[UNKNOWN_OUTPUT_MEMBER]: steps.invite: expect: Statuss is not an output member of CreateEngagementInvitation, which returns: Id, Arn"),
        "8 errors; nothing was sent",
    ]);
}

#[test]
fn request_values_are_validated_against_the_model_with_the_csv_cell() {
    let o = validate("examples/invalid/bad-values.yaml");
    o.code(2);
    let f = "examples/invalid/bad-values.yaml";
    let c = "examples/invalid/bad-partners.csv";
    let got = lines(&o);
    let want = vec![
        format!("{f}:18:39: error[INVALID_ENUM_VALUE]: steps.invite input Invitation.Payload.OpportunityInvitation.ReceiverResponsibilities[0]: \"Resellr\" is not one of Distributor, Reseller, Hardware Partner, Managed Service Provider, Software Partner, Services Partner, Training Partner, Co-Sell Facilitator, Facilitator; did you mean \"Reseller\"?"),
        format!("  --> {c}:3 column roles"),
        // CountryCode is a sensitive shape: its value is not echoed
        format!("{f}:21:28: error[INVALID_ENUM_VALUE]: steps.invite input Invitation.Payload.OpportunityInvitation.Customer.CountryCode: value is not one of US, AF, AX, AL, DZ, AS, AD, AO, AI, AQ, AG, AR, … (249 values); did you mean \"US\"?"),
        format!("  --> {c}:3 column country"),
        // amounts are sensitive too: the message says what is wrong without the value
        format!("{f}:29:29: error[INVALID_AMOUNT]: steps.invite input Invitation.Payload.OpportunityInvitation.Project.ExpectedCustomerSpend[0].Amount: the amount has 3 decimal places; at most 2 are allowed. If '.' is a thousands separator here, write the number without it; otherwise round it: \"{{{{ row.spend | float | round(2) }}}}\""),
        format!("  --> {c}:4 column spend"),
        format!("{f}:27:37: error[TEMPLATE_ERROR]: steps.invite input Invitation.Payload.OpportunityInvitation.Project.TargetCompletionDate: invalid operation: \"31/01/2027\" is not a date this filter reads (try YYYY-MM-DD)"),
        format!("  --> {c}:5 column due"),
        // an empty cell omits the member; the model then requires it
        format!("{f}:20:28: error[REQUIRED_FIELD_MISSING]: steps.invite input Invitation.Payload.OpportunityInvitation.Customer.CompanyName: required member CompanyName is missing (string)"),
        format!("  --> {c}:6 column company"),
        "5 errors; nothing was sent".to_string(),
    ];
    assert_eq!(got, want);
}

#[test]
fn json_format_prints_one_object_with_every_diagnostic() {
    let o = Cosell::new()
        .arg("validate")
        .arg(repo().join("examples/invalid/bad-values.yaml"))
        .args(["--format", "json"])
        .run();
    o.code(2);
    let root = format!("{}/", repo().display());
    let mut v: serde_json::Value = serde_json::from_str(&o.stdout.replace(&root, "")).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"], 5);
    v["playbook"] = "<playbook>".into();
    insta::assert_json_snapshot!("validate_bad_values_json", v);
}

#[test]
fn a_newer_playbook_version_is_refused_clearly() {
    let o = validate("examples/invalid/newer-version.yaml");
    o.code(2);
    has(&o, &["examples/invalid/newer-version.yaml:1:10: error[UNSUPPORTED_VERSION]: playbook version 2 is newer than this cosell understands (it reads version 1); upgrade cosell"]);
}

#[test]
fn yaml_syntax_errors_are_located() {
    let o = validate("examples/invalid/syntax.yaml");
    o.code(2);
    has(&o, &["examples/invalid/syntax.yaml:7:26: error[YAML_SYNTAX]: mismatched bracket '[' closed by '}'"]);
}

#[test]
fn csv_problems_are_located() {
    let cases = [
        ("examples/invalid/empty.csv", "examples/invalid/empty.csv: error[CSV_EMPTY]: the CSV is empty; it needs a header line naming its columns, then one line per row"),
        ("examples/invalid/no-header.csv", "examples/invalid/no-header.csv:1: error[CSV_NO_HEADER]: the first line (111122223333, Northwind, US, Retail, https://n.example.com, Reseller, Hello, 1) names none of the columns the playbook reads (aws_account_id, company, country, industry, message, roles, spend, website); the CSV needs a header line naming its columns"),
        ("examples/invalid/duplicate-header.csv", "examples/invalid/duplicate-header.csv:1 column country: error[CSV_DUPLICATE_HEADER]: column name \"country\" appears twice in the header (columns 3 and 8); rename one"),
        ("examples/invalid/too-many-fields.csv", "examples/invalid/too-many-fields.csv:3: error[CSV_TOO_MANY_FIELDS]: the row has a value in field 9 but the header names only 8 columns; quote values that contain commas, or name the column in the header"),
        ("examples/invalid/latin1.csv", "examples/invalid/latin1.csv:3 column company: error[CSV_NOT_UTF8]: the text is not UTF-8 (byte 0xE9 at offset 3 of the cell); export the sheet as \"CSV UTF-8\" (Excel) or CSV (Google Sheets)"),
        // CRLF line ends and a quoted field with a line break: the lines are still physical lines
        ("examples/invalid/duplicate-keys.csv", "examples/invalid/duplicate-keys.csv:5: error[DUPLICATE_ROW_KEY]: duplicate row key \"111122223333\": line 2 and line 5 have the same input.key (line 9 of the playbook); row keys must be unique (they name rows in the journal and the idempotency tokens)"),
    ];
    for (csv, want) in cases {
        let o = invite_with(csv);
        o.code(2);
        assert_eq!(
            lines(&o),
            vec![want.to_string(), "1 error; nothing was sent".to_string()],
            "{csv}"
        );
    }
}

#[test]
fn a_column_name_typo_suggests_the_header_name() {
    let pb = std::fs::read_to_string(repo().join("playbooks/invite-partners.yaml"))
        .unwrap()
        .replace("row.industry", "row.industy")
        .replace("../examples/partners.csv", "partners.csv");
    let o = Cosell::new()
        .file("p.yaml", pb)
        .file(
            "partners.csv",
            std::fs::read(repo().join("examples/partners.csv")).unwrap(),
        )
        .args(["validate", "p.yaml"])
        .run();
    o.code(2);
    has(&o, &["p.yaml:41:25: error[UNKNOWN_COLUMN]: row.industy: the CSV partners.csv has no column \"industy\" (columns: aws_account_id, company, country, industry, website, roles, message, spend); did you mean \"industry\"?"]);
}

#[test]
fn spreadsheet_exports_validate_clean() {
    // BOM, CRLF, quoted commas and line breaks, trailing empty columns, padded cells,
    // a blank line and a row of empty cells
    let csv = "\u{feff}aws_account_id , company,country,industry,website,roles,message,spend,,\r\n\
               111122223333 ,\"Acme, Inc\",us,Retail,https://acme.example.com, Distributor ; Reseller ,\"Hello,\r\nworld\",100,,\r\n\
               \r\n\
               ,,,,,,,,,\r\n\
               222233334444,Beta,GB,Travel,https://beta.example.com,Reseller,,200,,\r\n";
    let pb = std::fs::read_to_string(repo().join("playbooks/invite-partners.yaml"))
        .unwrap()
        .replace("../examples/partners.csv", "sheet.csv");
    let o = Cosell::new()
        .file("p.yaml", pb)
        .file("sheet.csv", csv)
        .args(["plan", "p.yaml", "--show", "2", "--format", "json"])
        .run();
    o.code(0);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["rows"], 2);
    let req = &v["shown"][1];
    assert_eq!(req["line"], 2);
    assert_eq!(req["key"], "111122223333");
    let inv = &req["request"]["Invitation"];
    assert_eq!(inv["Message"], "Hello,\r\nworld");
    assert_eq!(
        inv["Payload"]["OpportunityInvitation"]["Customer"]["CompanyName"],
        "Acme, Inc"
    );
    assert_eq!(
        inv["Payload"]["OpportunityInvitation"]["Customer"]["CountryCode"],
        "US"
    );
    assert_eq!(
        inv["Payload"]["OpportunityInvitation"]["ReceiverResponsibilities"],
        serde_json::json!(["Distributor", "Reseller"])
    );
    assert_eq!(
        req["request"]["EngagementIdentifier"],
        "<setup.engagement.Id>"
    );
    assert_eq!(req["request"]["Catalog"], "Sandbox");
    assert!(req["request"]["ClientToken"]
        .as_str()
        .unwrap()
        .starts_with("cosell-"));
}

#[test]
fn vars_can_be_overridden_and_must_be_well_formed() {
    let o = Cosell::new()
        .args(["plan"])
        .arg(repo().join("playbooks/invite-partners.yaml"))
        .args(["--var", "currency=EUR", "--show", "3"])
        .run();
    o.code(0);
    o.stdout_has("\"CurrencyCode\": \"EUR\"");
    o.stdout_has("# steps.check GetEngagementInvitation row 0 (line 2, key 111122223333)\n{\n  \"Identifier\": \"<steps.invite.Id>\",\n  \"Catalog\": \"Sandbox\"\n}");
    let o = Cosell::new()
        .args(["validate"])
        .arg(repo().join("playbooks/invite-partners.yaml"))
        .args(["--var", "currency=usd"])
        .run();
    o.code(2);
    o.stderr_has("error[INVALID_ENUM_VALUE]: steps.invite input Invitation.Payload.OpportunityInvitation.Project.ExpectedCustomerSpend[0].CurrencyCode: value is not one of USD, EUR, GBP");
    o.stderr_has("(on 10 rows)");
    let o = Cosell::new()
        .args(["validate"])
        .arg(repo().join("playbooks/invite-partners.yaml"))
        .args(["--var", "currency"])
        .run();
    o.code(2);
    has(
        &o,
        &["--var: error[INVALID_VAR]: --var \"currency\" must be NAME=VALUE"],
    );
}

#[test]
fn setup_steps_cannot_read_row_steps_and_keys_only_row_data() {
    let pb = "version: 1\nname: t\ncatalog: AWS\ninput: { csv: in.csv, key: \"{{ steps.get.Id }}\" }\nsetup:\n  - id: e\n    action: CreateEngagement\n    input: { Title: \"{{ steps.get.Id }}\" }\nsteps:\n  - id: get\n    action: GetEngagementInvitation\n    input: { Identifier: \"{{ row.id }}\" }\n    when: \"{{ steps.get.Status == 'PENDING' }}\"\n";
    let o = Cosell::new()
        .file("p.yaml", pb)
        .file("in.csv", "id\nengi-0123456789abc\n")
        .args(["validate", "p.yaml"])
        .run();
    o.code(2);
    has(&o, &[
        "p.yaml:8:21: error[STEPS_IN_SETUP]: setup.e: setup steps run once, before any row: they cannot read steps (use setup.<id> for earlier setup steps)",
        "p.yaml:13:11: error[FORWARD_REFERENCE]: steps.get: steps.get is not available here: a step can read only the outputs of steps before it, and get is this step",
        "p.yaml:4:28: error[INVALID_REFERENCE]: input.key can read only row, vars and run, not steps",
    ]);
}

#[test]
fn a_wrong_type_and_an_unknown_key_get_located_errors() {
    let o = Cosell::new()
        .file(
            "p.yaml",
            "version: 1\nname: t\ncatalog: AWS\nstpes: []\nsteps: 5\n",
        )
        .args(["validate", "p.yaml"])
        .run();
    o.code(2);
    has(&o, &[
        "p.yaml:4:1: error[UNKNOWN_KEY]: unknown key \"stpes\" in the playbook; allowed: version, name, description, catalog, input, vars, limits, setup, steps, ledger, emulate; did you mean \"steps\"?",
        "p.yaml:5:8: error[WRONG_TYPE]: steps must be a list of steps, found an integer",
    ]);
}

#[test]
fn ledger_columns_may_not_reuse_built_in_column_names() {
    let pb = "version: 1\nname: t\ncatalog: AWS\ninput: { csv: in.csv }\nsteps:\n  - id: get\n    action: GetEngagementInvitation\n    input: { Identifier: \"{{ row.id }}\" }\nledger:\n  columns:\n    status: \"{{ steps.get.Status }}\"\n    get_id: \"{{ steps.get.Id }}\"\n    sender: \"{{ steps.get.SenderAwsAccountId }}\"\n";
    let o = Cosell::new()
        .file("p.yaml", pb)
        .file("in.csv", "id\nengi-0123456789abc\n")
        .args(["validate", "p.yaml"])
        .run();
    o.code(2);
    let builtin = "line, row, key, status, notes, error_step, error_code, error_message, started_at, finished_at, and <step>_id for each step";
    has(&o, &[
        &format!("p.yaml:11:5: error[LEDGER_COLUMN_CLASH]: ledger column \"status\" clashes with a built-in ledger column ({builtin}); rename it, e.g. \"my_status\""),
        &format!("p.yaml:12:5: error[LEDGER_COLUMN_CLASH]: ledger column \"get_id\" clashes with a built-in ledger column ({builtin}); rename it, e.g. \"my_get_id\""),
    ]);
    assert!(!o.stderr.contains("\"sender\""), "{}", o.stderr);
}

/// Run the binary under a 512 MiB address-space limit with a time limit.
fn bounded(dir: &std::path::Path, file: &str) -> (std::process::Output, Duration) {
    let t = Instant::now();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 524288; exec timeout 20 '{}' validate {file}",
            env!("CARGO_BIN_EXE_cosell")
        ))
        .current_dir(dir)
        .output()
        .unwrap();
    (out, t.elapsed())
}

#[test]
fn hostile_yaml_is_refused_in_bounded_time_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    // billion laughs
    let mut bomb = String::from("version: 1\nname: bomb\ncatalog: AWS\nvars:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!("  a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    bomb.push_str("steps: []\n");
    std::fs::write(dir.path().join("bomb.yaml"), bomb).unwrap();
    std::fs::write(
        dir.path().join("deep.yaml"),
        format!("version: 1\nvars: {}", "[".repeat(100_000)),
    )
    .unwrap();
    let mut nested = String::from("version: 1\nvars:\n");
    for i in 0..500 {
        nested.push_str(&format!("{}k:\n", " ".repeat(2 + 2 * i)));
    }
    std::fs::write(dir.path().join("nested.yaml"), nested).unwrap();
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("garbage.yaml"), garbage).unwrap();
    std::fs::write(
        dir.path().join("dup.yaml"),
        "version: 1\nname: a\nname: b\n",
    )
    .unwrap();
    // UTF-8, but binary: NULs and control characters
    std::fs::write(
        dir.path().join("binary.yaml"),
        b"\x00\x01\x02version: [\x7f\x00}\n\x1b[0m",
    )
    .unwrap();
    for (file, want) in [
        ("bomb.yaml", "bomb.yaml:9:22: error[YAML_LIMIT]: the YAML expands beyond cosell's limits (at most 48 levels of nesting, 1,000 anchors and aliases, 50,000 events replayed by aliases): RecordedAnchorEvents { recorded_anchor_events: 50001 }"),
        ("deep.yaml", "deep.yaml:2:55: error[YAML_LIMIT]: the YAML is nested too deeply (at most 48 levels)"),
        ("nested.yaml", "nested.yaml:50:97: error[YAML_LIMIT]: the YAML expands beyond cosell's limits (at most 48 levels of nesting, 1,000 anchors and aliases, 50,000 events replayed by aliases): Depth { depth: 49 }"),
        ("garbage.yaml", "garbage.yaml:1:2: error[YAML_SYNTAX]: the playbook is not UTF-8 text (byte 0xBB); save it as UTF-8"),
        ("binary.yaml", "binary.yaml:1:1: error[YAML_SYNTAX]: "),
        ("dup.yaml", "dup.yaml:3:1: error[YAML_SYNTAX]: key \"name\" appears twice in the same mapping"),
    ] {
        let (out, took) = bounded(dir.path(), file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(took < Duration::from_secs(10), "{file} took {took:?}");
        let first = stderr.lines().next().unwrap_or("");
        assert!(first.starts_with(want), "{file}:\n{first}\nwant:\n{want}");
    }
}

#[test]
fn plan_counts_calls_and_bounds_the_duration() {
    let o = Cosell::new()
        .arg("plan")
        .arg(repo().join("playbooks/accept-invitations.yaml"))
        .run();
    o.code(0);
    let root = format!("{}/", repo().display());
    // the expected finish is relative to now: the snapshot keeps the line, not the time
    let text: String = o
        .stdout
        .replace(&root, "")
        .lines()
        .map(
            |l| match l.strip_prefix("expected finish if started now: ") {
                Some(_) => "expected finish if started now: <now + minimum duration>\n".to_string(),
                None => format!("{l}\n"),
            },
        )
        .collect();
    insta::assert_snapshot!("plan_accept_invitations", text);
}

#[test]
fn plan_splits_a_campaign_over_the_rolling_daily_quota() {
    let mut csv =
        String::from("aws_account_id,company,country,industry,website,roles,message,spend\n");
    for i in 0..12_000u64 {
        csv.push_str(&format!(
            "{:012},Co {i},US,Retail,https://c{i}.example.com,Reseller,,100\n",
            100_000_000_000u64 + i
        ));
    }
    let pb = std::fs::read_to_string(repo().join("playbooks/invite-partners.yaml"))
        .unwrap()
        .replace("../examples/partners.csv", "big.csv");
    let o = Cosell::new()
        .file("p.yaml", pb)
        .file("big.csv", csv)
        .args(["plan", "p.yaml", "--format", "json"])
        .run();
    o.code(0);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let plan = &v["plan"];
    assert_eq!(plan["rows"], 12_000);
    assert_eq!(plan["fits_daily"], false);
    assert_eq!(plan["splits"][0]["class"], "write");
    assert_eq!(plan["splits"][0]["rows_per_window"], 10_000);
    assert_eq!(plan["splits"][0]["windows"], 2);
    // two windows: one full day, then the last 2,000 rows' writes at 1/s
    assert_eq!(plan["min_seconds"], 86_400.0 + 2_000.0);
    // the expected finish is that far from now
    let finish =
        chrono::DateTime::parse_from_rfc3339(plan["expected_finish"].as_str().unwrap()).unwrap();
    let ahead = (finish.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    assert!((88_300..=88_400).contains(&ahead), "{ahead}");
    assert!(o.stdout.contains("\"daily_wait\": false") || plan["daily_wait"] == false);
}

#[test]
fn the_committed_schema_is_up_to_date() {
    let o = Cosell::new().arg("schema").run();
    o.code(0);
    let committed = std::fs::read_to_string(repo().join("schemas/playbook.schema.json")).unwrap();
    assert!(
        committed == o.stdout,
        "schemas/playbook.schema.json is out of date: regenerate it with `cargo run -- schema > schemas/playbook.schema.json`"
    );
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let branch = v["definitions"]["step"]["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["if"]["properties"]["action"]["const"] == "CreateEngagementInvitation")
        .unwrap();
    assert_eq!(
        branch["then"]["properties"]["input"]["$ref"],
        "#/definitions/CreateEngagementInvitationRequest"
    );
    let cc = &v["definitions"]["EngagementCustomer"]["properties"]["CountryCode"]["anyOf"][0];
    assert!(cc["enum"].as_array().unwrap().iter().any(|x| x == "US"));
}

#[test]
fn limits_ids_durations_and_keys_have_located_messages() {
    let o = Cosell::new()
        .file("a.yaml", "version: 1\nname: x\ncatalog: AWS\nlimits:\n  rates: { read: 50/s }\n  daily: { writes: 5 }\nsteps:\n  - id: 1st\n    action: StartEngagementFromOpportunityTask\n    wait: { timeout: forever }\n  - action: GetEngagement\n")
        .args(["validate", "a.yaml"])
        .run();
    o.code(2);
    assert_eq!(lines(&o), [
        "a.yaml:5:18: warning[RATE_ABOVE_QUOTA]: rate 50/s for read is above the documented quota of 10/s; expect throttling",
        "a.yaml:6:12: error[UNKNOWN_QUOTA_CLASS]: \"writes\" is not a quota class; daily budgets apply to: read, write, engagement-write, prospecting-get, prospecting-list, prospecting-write; did you mean \"write\"?",
        "a.yaml:8:9: error[INVALID_STEP_ID]: step id \"1st\" must start with a letter or _ and contain only letters, digits and _ (at most 40), so templates can name it as steps.<id>",
        "a.yaml:10:22: error[INVALID_DURATION]: wait.timeout \"forever\" is not a duration such as 500ms, 90s, 10m or 1h",
        "a.yaml:11:5: error[MISSING_KEY]: steps[1] needs an `id`",
        "4 errors, 1 warning; nothing was sent",
    ]);

    let get = "steps:\n  - id: g\n    action: GetEngagementInvitation\n    input: { Identifier: \"{{ row.id }}\" }\n";
    let o = Cosell::new()
        .file(
            "b.yaml",
            format!("version: 1\nname: x\ncatalog: AWS\ninput: {{ key: fixed }}\n{get}"),
        )
        .args(["validate", "b.yaml"])
        .run();
    o.code(2);
    assert_eq!(lines(&o), [
        "b.yaml: error[NO_INPUT]: no input: set input.file (or input.list) in the playbook or pass --input FILE",
        "b.yaml:4:15: error[INVALID_ROW_KEY]: input.key \"fixed\" is the same for every row; use a template such as \"{{ row.id }}\"",
        "2 errors; nothing was sent",
    ]);

    let o = Cosell::new()
        .file("c.yaml", format!("version: 1\nname: x\ncatalog: AWS\ninput: {{ key: \"{{{{ row.k }}}}\", csv: in.csv }}\n{get}"))
        .file("in.csv", "k,id\n,engi-0123456789abc\nb,engi-0123456789abc\n")
        .args(["validate", "c.yaml"])
        .run();
    o.code(2);
    assert_eq!(
        lines(&o),
        [
            "c.yaml:4:15: error[INVALID_ROW_KEY]: input.key: the row key is empty",
            "  --> in.csv:2",
            "1 error; nothing was sent",
        ]
    );

    let o = Cosell::new()
        .file("d.yaml", "# nothing\n")
        .args(["validate", "d.yaml"])
        .run();
    o.code(2);
    assert_eq!(lines(&o)[0], "d.yaml:1:1: error[EMPTY_PLAYBOOK]: the playbook is empty; it needs at least version, name, catalog and steps");

    // a warning does not make the playbook invalid
    let o = Cosell::new()
        .file("e.yaml", format!("version: 1\nname: x\ncatalog: AWS\nlimits: {{ rates: {{ write: 5/s }} }}\ninput: {{ csv: in.csv }}\n{get}"))
        .file("in.csv", "id\nengi-0123456789abc\n")
        .args(["validate", "e.yaml"])
        .run();
    o.code(0);
    assert_eq!(lines(&o), ["e.yaml:4:27: warning[RATE_ABOVE_QUOTA]: rate 5/s for write is above the documented quota of 1/s; expect throttling"]);
    assert_eq!(
        o.stdout,
        "e.yaml: valid; 1 row, 1 request checked, 1 warning\n"
    );
}

#[test]
fn spreadsheet_damage_is_caught_with_its_fix() {
    let o = validate("examples/invalid/spreadsheet-damage.yaml");
    o.code(2);
    insta::assert_snapshot!("spreadsheet_damage", lines(&o).join("\n"));
    // the model's own pattern (`[0-9]{12}|\w{1,12}`) would have let 11 digits through
    has(
        &o,
        &["  --> examples/invalid/spreadsheet-damage.csv:2 column Account ID"],
    );
}

#[test]
fn every_country_name_and_alias_suggests_its_iso_code() {
    for (name, code) in [
        ("UK", "GB"),
        ("United Kingdom", "GB"),
        ("USA", "US"),
        ("United States", "US"),
        ("America", "US"),
        ("Deutschland", "DE"),
        ("france", "FR"),
        ("Korea, Republic of", "KR"),
        ("Côte d'Ivoire", "CI"),
        ("JPN", "JP"),
    ] {
        let csv = format!("Account ID,company,country,spend\n111122223333,A,\"{name}\",100\n");
        let pb = std::fs::read_to_string(repo().join("examples/invalid/spreadsheet-damage.yaml"))
            .unwrap()
            .replace("{{ 'PENDNG' }}", "PENDING");
        let o = Cosell::new()
            .file("p.yaml", pb)
            .file("spreadsheet-damage.csv", csv)
            .args(["validate", "p.yaml"])
            .run();
        o.code(2);
        o.stderr_has(&format!(
            "error[INVALID_ENUM_VALUE]: steps.invite input Invitation.Payload.OpportunityInvitation.Customer.CountryCode: value is not one of US, AF, AX, AL, DZ, AS, AD, AO, AI, AQ, AG, AR, … (249 values); did you mean \"{code}\"?"
        ));
    }
}

#[test]
fn expect_values_are_checked_against_the_output_member() {
    let pb = "version: 1\nname: t\ncatalog: AWS\ninput: { csv: in.csv }\nsteps:\n  - id: get\n    action: GetEngagementInvitation\n    input: { Identifier: \"{{ row.id }}\" }\n    expect: { Status: PENDNG, Receiver: [1], Statu: PENDING }\n";
    let o = Cosell::new()
        .file("p.yaml", pb)
        .file("in.csv", "id\nengi-0123456789abc\n")
        .args(["validate", "p.yaml"])
        .run();
    o.code(2);
    has(&o, &[
        "p.yaml:9:23: error[INVALID_ENUM_VALUE]: steps.get: expect Status: \"PENDNG\" is not one of ACCEPTED, PENDING, REJECTED, EXPIRED; did you mean \"PENDING\"?",
        "p.yaml:9:41: error[INVALID_VALUE]: steps.get: expect Receiver: expected union (object with one member), found a list (the output member's type)",
    ]);
    o.stderr_has("p.yaml:9:46: error[UNKNOWN_OUTPUT_MEMBER]: steps.get: expect: Statu is not an output member of GetEngagementInvitation");
    // a templated value is checked once rendered, with the cell it came from
    let pb = pb.replace(
        "{ Status: PENDNG, Receiver: [1], Statu: PENDING }",
        "{ Status: \"{{ row.want }}\" }",
    );
    let o = Cosell::new()
        .file("p.yaml", pb)
        .file(
            "in.csv",
            "id,want\nengi-0123456789abc,PENDING\nengi-0123456789abc,accepted\n",
        )
        .args(["validate", "p.yaml"])
        .run();
    o.code(2);
    assert_eq!(lines(&o), [
        "p.yaml:9:23: error[INVALID_ENUM_VALUE]: steps.get: expect Status: \"accepted\" is not one of ACCEPTED, PENDING, REJECTED, EXPIRED; did you mean \"ACCEPTED\"?",
        "  --> in.csv:3 column want",
        "1 error; nothing was sent",
    ]);
}

#[test]
fn a_var_flag_the_playbook_does_not_declare_is_refused() {
    for cmd in ["validate", "plan", "run"] {
        let o = Cosell::new()
            .arg(cmd)
            .arg(repo().join("playbooks/invite-partners.yaml"))
            .args(
                ["--var", "curency=EUR", "--emulate"][..if cmd == "run" { 3 } else { 2 }].to_vec(),
            )
            .run();
        o.code(2);
        o.stderr_has("--var: error[UNKNOWN_VAR_FLAG]: --var curency=…: the playbook declares no var \"curency\" (vars: engagement_title, target_date, currency); --var only overrides a var declared under vars:, so correct the name or declare it in the playbook; did you mean \"currency\"?");
    }
}

#[test]
fn plan_checks_and_previews_concurrency_and_rate_flags() {
    let plan = |flags: &[&str]| {
        Cosell::new()
            .arg("plan")
            .arg(repo().join("playbooks/invite-partners.yaml"))
            .args(flags.iter().copied())
            .run()
    };
    let o = plan(&[
        "--concurrency",
        "0",
        "--rate",
        "wrte=1/s",
        "--rate",
        "read=fast",
    ]);
    o.code(2);
    assert_eq!(lines(&o), [
        "--concurrency 0: error[INVALID_LIMIT]: --concurrency must be an integer from 1 to 1024, found 0",
        "--rate wrte=1/s: error[UNKNOWN_RATE_TARGET]: \"wrte\" is neither a quota class (read, write, engagement-write, prospecting-get, prospecting-list, prospecting-write) nor an operation name; did you mean \"write\"?",
        "--rate read=fast: error[INVALID_LIMIT]: rate \"fast\" for read is not a rate such as 1/s, 30/m or 3600/h",
        "3 errors; nothing was sent",
    ]);
    let base = plan(&[]);
    base.code(0);
    base.stdout_has("10 rows, 8 in flight at once");
    let o = plan(&["--concurrency", "16", "--rate", "write=30/m"]);
    o.code(0);
    o.stdout_has("10 rows, 16 in flight at once");
    // 11 writes at 0.5/s instead of 1/s: the bound doubles
    assert_ne!(o.stdout, base.stdout);
    o.stdout_has("write at 0.5/s");
    let o = plan(&["--rate", "write=2/s"]);
    o.code(0);
    has(&o, &["--rate write=2/s: warning[RATE_ABOVE_QUOTA]: rate 2/s for write is above the documented quota of 1/s; expect throttling"]);
}

#[test]
fn bracket_access_names_the_column_and_huge_cells_are_not_echoed_whole() {
    let pb = "version: 1\nname: t\ncatalog: AWS\ninput: { csv: in.csv }\nsteps:\n  - id: e\n    action: CreateEngagement\n    input: { Title: \"{{ row[\\\"Eng Title\\\"] }}\", Description: \"{{ row['Eng Description'] }}\" }\n  - id: l\n    action: ListEngagements\n    input: { Sort: { SortBy: CreatedDate, SortOrder: \"{{ row['Sort Order'] }}\" } }\n";
    let huge = "y".repeat(5_000_000);
    let csv = format!(
        "Eng Title,Eng Description,Sort Order\n{},d,{huge}\n",
        "t".repeat(300)
    );
    let o = Cosell::new()
        .file("p.yaml", pb)
        .file("in.csv", csv)
        .args(["validate", "p.yaml"])
        .run();
    o.code(2);
    let want_value = format!("\"{}\"…(4999800 more characters)", "y".repeat(200));
    o.stderr_has("(100 more characters) does not match the pattern (?s).{0,40}\n  --> in.csv:2 column Eng Title\n");
    has(&o, &[
        &format!("p.yaml:11:54: error[INVALID_ENUM_VALUE]: steps.l input Sort.SortOrder: {want_value} is not one of ASCENDING, DESCENDING"),
        "  --> in.csv:2 column Sort Order",
    ]);
    assert!(
        o.stderr.len() < 5_000,
        "{} bytes of diagnostics",
        o.stderr.len()
    );
    // an unknown bracketed column is found like row.column
    let o = Cosell::new()
        .file("p.yaml", pb.replace("Eng Title", "Eng Titel"))
        .file(
            "in.csv",
            "Eng Title,Eng Description,Sort Order\nt,d,ASCENDING\n",
        )
        .args(["validate", "p.yaml"])
        .run();
    o.code(2);
    o.stderr_has(
        "error[UNKNOWN_COLUMN]: row.Eng Titel: the CSV in.csv has no column \"Eng Titel\"",
    );
}

#[test]
fn template_bombs_are_refused_quickly_in_bounded_memory() {
    let (out, took) = bounded(&repo().join("examples/invalid"), "template-bombs.yaml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(stderr.lines().collect::<Vec<_>>(), [
        "template-bombs.yaml:10:14: error[TEMPLATE_LIMIT]: steps.bomb input Title: over a template limit: the value is too large: more than 100000 items (on 10 rows)",
        "template-bombs.yaml:11:20: error[TEMPLATE_LIMIT]: steps.bomb input Description: over a template limit: repeated string is too large (on 10 rows)",
        "template-bombs.yaml:15:14: error[TEMPLATE_LIMIT]: steps.more input Title: over a template limit: range has too many elements (on 10 rows)",
        "template-bombs.yaml:16:20: error[TEMPLATE_LIMIT]: steps.more input Description: over a template limit: the value has 100000000 items; a template value may have at most 100000 (on 10 rows)",
        "4 errors; nothing was sent",
    ]);
    // what no limit foresaw (a string doubled in a loop) meets the memory guard: a located
    // error and exit 2, not an allocation failure (134)
    let pb = "version: 1\nname: t\ncatalog: AWS\ninput: { csv: in.csv }\nsteps:\n  - id: e\n    action: CreateEngagement\n    input:\n      Title: \"{% set ns = namespace(a='x' * 90000000) %}{% for i in range(30) %}{% set ns.a = ns.a ~ ns.a %}{% endfor %}{{ ns.a | length }}\"\n      Description: d\n";
    let t = Instant::now();
    let o = Cosell::new()
        .file("p.yaml", pb)
        .file("in.csv", "a\n1\n")
        .args(["validate", "p.yaml"])
        .run();
    o.code(2);
    assert_eq!(o.stderr, "p.yaml:9:14: error[TEMPLATE_LIMIT]: the template needs more than 1024 MiB of memory to render; cosell stopped here. A template builds one request value: look for repetition (`*`), `range` or joins over large lists\n");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}

/// Spawn cosell with its stdout a pipe whose reader is closed before cosell writes.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cosell"))
        .args(args)
        .current_dir(repo())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_pipe_ends_cosell_quietly() {
    for args in [
        &["schema"][..],
        &[
            "validate",
            "playbooks/invite-partners.yaml",
            "--format",
            "json",
        ],
        &["plan", "playbooks/invite-partners.yaml", "--show", "5"],
    ] {
        let out = with_closed_stdout(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr, "", "{args:?}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
    }
}

/// Every operation of the API is an action: a playbook with one step per operation (the SDK
/// tests' model-valid requests, minus what cosell fills in) validates and plans clean, and
/// `wait` is accepted on exactly the asynchronous ones of the operation table.
#[test]
fn every_operation_is_an_action_and_every_asynchronous_one_may_wait() {
    let mut steps = Vec::new();
    for (i, (op, req)) in crate::sdk::fixtures().into_iter().enumerate() {
        let mut input = req.as_object().unwrap().clone();
        input.remove("Catalog");
        input.remove("ClientToken");
        let mut step = serde_json::json!({"id": format!("s{i}"), "action": op, "input": input});
        if cosell::model::ops::waiter(op).is_some() {
            step["wait"] = serde_json::json!({"timeout": "5m"});
        }
        steps.push(step);
    }
    assert_eq!(steps.len(), 45);
    let pb = serde_json::json!({
        "version": 1, "name": "whole-api", "catalog": "Sandbox",
        "input": {"csv": "rows.csv", "key": "{{ row.id }}"},
        "steps": steps,
    });
    let run = |cmd: &str, pb: &serde_json::Value| {
        Cosell::new()
            .file("pb.yaml", pb.to_string())
            .file("rows.csv", "id\n1\n")
            .arg(cmd)
            .arg("pb.yaml")
            .run()
    };
    let o = run("validate", &pb);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains("1 row, 45 requests checked"),
        "{}",
        o.stdout
    );
    let o = run("plan", &pb);
    assert_eq!(o.code, 0, "{}", o.stderr);
    for poll in [
        "ListOpportunityFromEngagementTasks",
        "GetProspectingFromEngagementTask",
        "GetResourceSnapshotJob",
    ] {
        assert!(o.stdout.contains(poll), "{poll} polls: {}", o.stdout);
    }
    // wait on a synchronous operation is refused, naming the asynchronous ones and the fix
    let mut bad = pb.clone();
    let accept = bad["steps"]
        .as_array()
        .unwrap()
        .iter()
        .position(|s| s["action"] == "AcceptEngagementInvitation")
        .unwrap();
    bad["steps"][accept]["wait"] = serde_json::json!(true);
    let o = run("validate", &bad);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("error[WAIT_NOT_ALLOWED]: wait is only allowed on asynchronous actions (StartEngagementByAcceptingInvitationTask, StartEngagementFromOpportunityTask, StartOpportunityFromEngagementTask, StartProspectingFromEngagementTask, StartResourceSnapshotJob); AcceptEngagementInvitation returns its result directly: remove wait"),
        "{}",
        o.stderr
    );
}

/// `paginate` only on the paginated List actions (the operation table's paginators), and
/// `max_items` only with it: each located, with its rule code and the fix.
#[test]
fn paginate_is_checked_against_the_paginators() {
    let pb = r#"version: 1
name: paged
catalog: Sandbox
input: { csv: rows.csv, key: "{{ row.id }}" }
steps:
  - id: get
    action: GetOpportunity
    input: { Identifier: O1234567 }
    paginate: true
  - id: list
    action: ListSolutions
    max_items: 5
  - id: bad
    action: ListSolutions
    paginate: yes please
  - id: ok
    action: ListSolutions
    paginate: true
    max_items: 5
"#;
    let o = Cosell::new()
        .file("pb.yaml", pb)
        .file("rows.csv", "id\n1\n")
        .args(["validate", "pb.yaml"])
        .run();
    assert_eq!(o.code, 2, "{}", o.stderr);
    let paged = "ListEngagementByAcceptingInvitationTasks, ListEngagementFromOpportunityTasks, ListEngagementInvitations, ListEngagementMembers, ListEngagementResourceAssociations, ListEngagements, ListOpportunities, ListOpportunityFromEngagementTasks, ListProspectingFromEngagementTasks, ListResourceSnapshotJobs, ListResourceSnapshots, ListSolutions";
    for want in [
        format!("pb.yaml:9:15: error[PAGINATE_NOT_ALLOWED]: paginate is only allowed on paginated List actions ({paged}); GetOpportunity has no paginator: remove paginate"),
        "pb.yaml:12:16: error[MAX_ITEMS_WITHOUT_PAGINATE]: max_items only applies to a step with paginate: true; add paginate: true or remove max_items".to_string(),
        "pb.yaml:15:15: error[WRONG_TYPE]: paginate must be true or false, found a string".to_string(),
        "3 errors; nothing was sent".to_string(),
    ] {
        assert!(o.stderr.lines().any(|l| l == want), "missing {want}\n{}", o.stderr);
    }
    // plan counts a paginated step's calls as a lower bound
    let ok = &pb[..pb.find("  - id: get").unwrap()].to_string();
    let ok = format!("{ok}  - id: ok\n    action: ListSolutions\n    paginate: true\n");
    let o = Cosell::new()
        .file("pb.yaml", ok)
        .file("rows.csv", "id\n1\n2\n")
        .args(["plan", "pb.yaml"])
        .run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains(
            "ListSolutions          2  read  (at least: paginate makes one call per page)"
        ),
        "{}",
        o.stdout
    );
}
