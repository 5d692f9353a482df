//! Benchmark: `validate` of the invite-partners playbook over 100,000 and 1,000,000 generated
//! rows. Each size runs in a child process (this binary re-executed with `--child`) so its
//! peak resident memory (VmHWM) is its own. Run: `cargo bench --bench validate`.
//! Targets on a 2-core machine: 100,000 rows in at most 2 s; at most 64 MiB at 1,000,000 rows.

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
        "{:>10} {:>10} {:>9} {:>12} {:>10}",
        "rows", "requests", "seconds", "rows/s", "peak MiB"
    );
    for rows in [100_000u64, 1_000_000] {
        let csv = dir.path().join(format!("partners-{rows}.csv"));
        generate(&csv, rows);
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
            "{n:>10} {req:>10} {secs:>9.2} {:>12.0} {:>10.1}",
            n as f64 / secs,
            kib as f64 / 1024.0
        );
        std::fs::remove_file(&csv).ok();
    }
}
