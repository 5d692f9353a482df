//! Benchmark: writing the ledger (`ledger.csv`, `ledger.jsonl` and `ledger.xlsx`) for large
//! runs through [`cosell::ledger::LedgerWriter`], as the end of every `run`/`resume` does. Each
//! size runs in a child process (this binary re-executed with `--child`) so its peak resident
//! memory (VmHWM) is its own. Run: `cargo bench --bench ledger`.
//! What it shows: the workbook is written in constant-memory mode, so peak memory does not grow
//! with the rows; only the failed rows (kept for the `Failures` sheet) add to it.

use cosell::ledger::{Layout, LedgerRow, LedgerWriter};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

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

const CODES: [&str; 4] = [
    "ValidationException",
    "ConflictException",
    "ResourceNotFoundException",
    "ExpectationFailed",
];

fn child(rows: u64, fail_every: u64, dir: &Path) {
    let s = |x: &str| x.to_string();
    let layout = Layout {
        setup_ids: vec![(s("engagement"), s("eng-t2m989d8v6txp5"))],
        id_steps: vec![s("invite")],
        columns: vec![s("partner_account"), s("spend"), s("due"), s("status_seen")],
        patch_steps: vec![],
    };
    let t = Instant::now();
    let mut w = LedgerWriter::create(dir, layout).expect("create the ledger");
    for i in 0..rows {
        let failed = fail_every > 0 && i % fail_every == 0;
        let mut row = LedgerRow {
            line: i + 2,
            key: format!("{:012}", 100_000_000_000u64 + i),
            status: if failed { s("failed") } else { s("succeeded") },
            columns: vec![
                (s("partner_account"), format!("{:012}", i)),
                (s("spend"), format!("{}.50", 1000 + i % 50_000)),
                (s("due"), s("2027-03-31")),
                (s("status_seen"), s("PENDING")),
            ],
            started_at: s("2026-12-02T15:31:56.905Z"),
            finished_at: s("2026-12-02T15:31:57.994Z"),
            ..LedgerRow::default()
        };
        if failed {
            row.error_step = s("invite");
            row.error_code = s(CODES[(i / fail_every % 4) as usize]);
            row.error_message = format!(
                "Account {:012} cannot be invited: the receiver is not a partner account in this catalog (reason: BUSINESS_VALIDATION_FAILED)",
                i
            );
        } else {
            let id = format!("engi-{i:013}");
            row.outputs
                .insert(s("invite"), json!({"Id": id, "Arn": format!("arn:aws:partnercentral:us-east-1:111111111111:catalog/Sandbox/engagement-invitation/{id}")}));
            row.ids.push((s("invite"), id));
        }
        w.write(&row).expect("write a row");
    }
    w.finish().expect("finish the ledger");
    let secs = t.elapsed().as_secs_f64();
    let size = |f: &str| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
    println!(
        "{secs:.3} {} {} {}",
        vm_hwm_kib(),
        size("ledger.xlsx"),
        size("ledger.csv")
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        return child(
            args[i + 1].parse().unwrap(),
            args[i + 2].parse().unwrap(),
            Path::new(&args[i + 3]),
        );
    }
    println!("ledger.csv + ledger.jsonl + ledger.xlsx through LedgerWriter, release build");
    println!(
        "{:>10} {:>8} {:>9} {:>10} {:>10} {:>9}",
        "rows", "failed", "seconds", "peak MiB", "xlsx MiB", "csv MiB"
    );
    for (rows, fail_every) in [(100_000u64, 10u64), (100_000, 1), (1_000_000, 10)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new(std::env::current_exe().expect("bench binary"))
            .arg("--child")
            .arg(rows.to_string())
            .arg(fail_every.to_string())
            .arg(dir.path())
            .output()
            .expect("run child");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = text.split_whitespace().collect();
        let (secs, kib, xlsx, csv): (f64, u64, u64, u64) = (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        );
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!(
            "{rows:>10} {:>8} {secs:>9.2} {:>10.1} {:>10.1} {:>9.1}",
            rows / fail_every,
            kib as f64 / 1024.0,
            mib(xlsx),
            mib(csv)
        );
    }
}
