//! The `validate`, `plan` and `schema` commands: load, dry-run, print, and pick the exit code.

use super::{summary, Campaign, Diagnostics, Report};
use crate::cli::{Format, PlanArgs, ValidateArgs};
use crate::exit;
use serde_json::json;

fn print_load_failure(d: &Diagnostics, format: Format) -> i32 {
    match format {
        Format::Text => {
            eprint!("{}", d.render_text());
            eprintln!("{}", count_line(d));
        }
        Format::Json => {
            let mut v = d.to_json();
            v["valid"] = json!(false);
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
    exit::INVALID
}

fn count_line(d: &Diagnostics) -> String {
    let e = d.error_count();
    let w = d.warning_count();
    format!(
        "{e} error{}{}; nothing was sent",
        if e == 1 { "" } else { "s" },
        if w > 0 {
            format!(", {w} warning{}", if w == 1 { "" } else { "s" })
        } else {
            String::new()
        }
    )
}

fn report_json(c: &Campaign, r: &Report) -> serde_json::Value {
    let mut v = r.diagnostics.to_json();
    v["valid"] = json!(r.is_valid());
    v["playbook"] = json!(c.playbook_path().to_string_lossy());
    v["input"] = json!(c.input_path().to_string_lossy());
    v["rows"] = json!(r.rows);
    v["requests"] = json!(r.requests);
    v
}

/// `cosell validate`.
pub fn validate(args: &ValidateArgs) -> i32 {
    let c = match Campaign::load(&args.campaign) {
        Ok(c) => c,
        Err(d) => return print_load_failure(&d, args.format),
    };
    let r = c.validate();
    match args.format {
        Format::Text => {
            eprint!("{}", r.diagnostics.render_text());
            if r.is_valid() {
                let rows = match c.list_input().filter(|_| c.is_pending_list()) {
                    Some(l) => format!("rows listed at run time by {}", l.action),
                    None => format!("{} row{}", r.rows, if r.rows == 1 { "" } else { "s" }),
                };
                println!(
                    "{}: valid; {rows}, {} request{} checked{}",
                    c.playbook_path().display(),
                    r.requests,
                    if r.requests == 1 { "" } else { "s" },
                    match r.diagnostics.warning_count() {
                        0 => String::new(),
                        n => format!(", {n} warning{}", if n == 1 { "" } else { "s" }),
                    }
                );
            } else {
                eprintln!("{}", count_line(&r.diagnostics));
            }
        }
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&c, &r)).unwrap_or_default()
        ),
    }
    if r.is_valid() {
        exit::OK
    } else {
        exit::INVALID
    }
}

/// `cosell plan`.
pub fn plan(args: &PlanArgs) -> i32 {
    let e = &args.endpoint;
    if e.emulate || e.endpoint_url.is_some() || e.profile.is_some() || e.region.is_some() {
        eprintln!(
            "error: --emulate, --endpoint-url, --profile and --region say where `plan --live` \
             reads from; add --live, or leave them out for the offline plan"
        );
        return exit::INVALID;
    }
    let mut c = match Campaign::load(&args.campaign) {
        Ok(c) => c,
        Err(d) => return print_load_failure(&d, args.format),
    };
    let flag_warnings = match c.apply_overrides(args.concurrency, &args.rates) {
        Ok(w) => w,
        Err(d) => return print_load_failure(&d, args.format),
    };
    let mut r = c.validate_with(args.show);
    r.diagnostics.extend(flag_warnings);
    let s = summary::summarize(&c, r.rows);
    match args.format {
        Format::Text => {
            eprint!("{}", r.diagnostics.render_text());
            if !r.is_valid() {
                eprintln!("{}", count_line(&r.diagnostics));
                return exit::INVALID;
            }
            print!("{}", s.render_text());
            if !r.shown.is_empty() {
                println!(
                    "\nfirst {} requests (deferred values as <steps.id.Member>):",
                    r.shown.len()
                );
                for sh in &r.shown {
                    let whose = match (sh.line, &sh.key) {
                        (Some(l), Some(k)) => {
                            format!("row {} (line {l}, key {k})", sh.row.unwrap_or(0))
                        }
                        _ => "setup".to_string(),
                    };
                    println!(
                        "# {} {} {whose}\n{}",
                        sh.step,
                        sh.action,
                        serde_json::to_string_pretty(&sh.request).unwrap_or_default()
                    );
                }
            }
        }
        Format::Json => {
            let mut v = report_json(&c, &r);
            if r.is_valid() {
                v["plan"] = serde_json::to_value(&s).unwrap_or_default();
                v["shown"] = serde_json::to_value(&r.shown).unwrap_or_default();
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
    if r.is_valid() {
        exit::OK
    } else {
        exit::INVALID
    }
}

/// `cosell schema`.
pub fn schema() -> i32 {
    println!(
        "{}",
        serde_json::to_string_pretty(&super::schema::generate()).unwrap_or_default()
    );
    exit::OK
}
