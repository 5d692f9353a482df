//! Benchmark: `validate` of the invite-partners playbook over 100,000 and 1,000,000 generated
//! rows. Each size runs in a child process (this binary re-executed with `--child`) so its
//! peak resident memory (VmHWM) is its own. Run: `cargo bench --bench validate` (only the
//! workbook: `cargo bench --bench validate -- xlsx`).
//! Targets on a 2-core machine: 100,000 rows in at most 2 s; at most 64 MiB at 1,000,000 rows.
//! Then the same 100,000 rows as an `.xlsx` (ids and amounts as numbers, written with
//! rust_xlsxwriter), passed with `--input` as a user would: at most 3 s.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const COUNTRIES: &[&str] = &["US", "GB", "DE", "FR", "JP", "CA", "AU", "IN", "BR", "us"];
const INDUSTRIES: &[&str] = &[
    "Retail",
    "Healthcare",
    "Travel",
    "Manufacturing",
    "Software and Internet",
];
const ROLES: &[&str] = &[
    "Distributor;Reseller",
    "Reseller",
    "Distributor",
    "Reseller; Hardware Partner",
];

fn generate(path: &Path, rows: u64) {
    let mut w = BufWriter::new(std::fs::File::create(path).expect("create csv"));
    writeln!(
        w,
        "aws_account_id,company,country,industry,website,roles,message,spend"
    )
    .unwrap();
    for i in 0..rows {
        let msg = if i % 3 == 0 {
            "\"Join us, partner\""
        } else {
            ""
        };
        writeln!(
            w,
            "{:012},Company {i},{},{},https://company{i}.example.com,{},{msg},{}",
            100_000_000_000u64 + i,
            COUNTRIES[(i % 10) as usize],
            INDUSTRIES[(i % 5) as usize],
            ROLES[(i % 4) as usize],
            1000 + i % 50_000
        )
        .unwrap();
    }
    w.flush().unwrap();
}

/// The same rows as [`generate`], as a workbook with one sheet `Partners`.
fn generate_xlsx(path: &Path, rows: u64) {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Partners").unwrap();
    let header = [
        "aws_account_id",
        "company",
        "country",
        "industry",
        "website",
        "roles",
        "message",
        "spend",
    ];
    for (c, h) in header.iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for i in 0..rows {
        let r = i as u32 + 1;
        ws.write_number(r, 0, (100_000_000_000u64 + i) as f64)
            .unwrap();
        ws.write_string(r, 1, format!("Company {i}")).unwrap();
        ws.write_string(r, 2, COUNTRIES[(i % 10) as usize]).unwrap();
        ws.write_string(r, 3, INDUSTRIES[(i % 5) as usize]).unwrap();
        ws.write_string(r, 4, format!("https://company{i}.example.com"))
            .unwrap();
        ws.write_string(r, 5, ROLES[(i % 4) as usize]).unwrap();
        if i % 3 == 0 {
            ws.write_string(r, 6, "Join us, partner").unwrap();
        }
        ws.write_number(r, 7, (1000 + i % 50_000) as f64).unwrap();
    }
    wb.save(path).expect("save xlsx");
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn child(playbook: &str, input: &str) {
    let args = cosell::cli::CampaignArgs {
        playbook: playbook.into(),
        input: Some(input.into()),
        sheet: None,
        vars: vec![],
    };
    let t = Instant::now();
    let c = cosell::plan::Campaign::load(&args).expect("the playbook loads");
    let r = c.validate();
    let secs = t.elapsed().as_secs_f64();
    assert!(r.is_valid(), "{}", r.diagnostics.render_text());
    println!("{} {} {secs:.3} {}", r.rows, r.requests, vm_hwm_kib());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        return child(&args[i + 1], &args[i + 2]);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let playbook = root.join("playbooks/invite-partners.yaml");
    let dir = tempfile::tempdir().expect("temp dir");
    println!("validate playbooks/invite-partners.yaml (setup + 2 steps per row), release build");
    println!(
        "{:>5} {:>10} {:>10} {:>9} {:>12} {:>10}",
        "input", "rows", "requests", "seconds", "rows/s", "peak MiB"
    );
    let only_xlsx = args.iter().any(|a| a == "xlsx");
    let runs: &[(u64, &str)] = if only_xlsx {
        &[(100_000, "xlsx")]
    } else {
        &[(100_000, "csv"), (1_000_000, "csv"), (100_000, "xlsx")]
    };
    for &(rows, kind) in runs {
        let csv = dir.path().join(format!("partners-{rows}.{kind}"));
        if kind == "xlsx" {
            generate_xlsx(&csv, rows);
        } else {
            generate(&csv, rows);
        }
        let out = Command::new(std::env::current_exe().expect("bench binary"))
            .arg("--child")
            .arg(&playbook)
            .arg(&csv)
            .output()
            .expect("run child");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = text.split_whitespace().collect();
        let (n, req, secs, kib): (u64, u64, f64, u64) = (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        );
        println!(
            "{kind:>5} {n:>10} {req:>10} {secs:>9.2} {:>12.0} {:>10.1}",
            n as f64 / secs,
            kib as f64 / 1024.0
        );
        std::fs::remove_file(&csv).ok();
    }
}
