//! Pieces the bench binaries share: a large partners CSV in the shape of the example, and the
//! manifest of a synthetic invite run directory over it.
#![allow(dead_code)]

use cosell::rundir::{Digests, Manifest, RUN_FORMAT};
use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `rows` partners in the shape of `examples/partners.csv`, with distinct account ids, written
/// to `dir/partners.csv`.
pub fn partners_csv(dir: &Path, rows: u64) -> PathBuf {
    let mut r = csv::Reader::from_path(repo().join("examples/partners.csv")).unwrap();
    let headers = r.headers().unwrap().clone();
    let template = r.records().next().unwrap().unwrap();
    let acc = headers.iter().position(|h| h == "aws_account_id").unwrap();
    let input = dir.join("partners.csv");
    let mut w = csv::Writer::from_path(&input).unwrap();
    w.write_record(&headers).unwrap();
    for i in 0..rows {
        let rec: Vec<String> = template
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == acc {
                    format!("{}", 200_000_000_000 + i)
                } else {
                    v.to_string()
                }
            })
            .collect();
        w.write_record(&rec).unwrap();
    }
    w.flush().unwrap();
    input
}

/// The manifest of a run of the example invite playbook over `input` (`rows` rows).
pub fn invite_manifest(run_id: &str, input: &Path, rows: u64) -> Manifest {
    let playbook = repo().join("playbooks/invite-partners.yaml");
    Manifest {
        format: RUN_FORMAT,
        run_id: run_id.into(),
        created_at: "2026-11-22T00:00:00Z".into(),
        playbook_name: "q4-reseller-invites".into(),
        digests: Digests::compute(&playbook, input, &[]).unwrap(),
        playbook_path: playbook,
        input_path: input.to_path_buf(),
        vars: vec![],
        catalog: "Sandbox".into(),
        cosell_version: env!("CARGO_PKG_VERSION").into(),
        step_ids: vec!["engagement".into(), "invite".into(), "check".into()],
        setup_steps: 1,
        ledger_columns: vec!["invitation_status".into()],
        total_rows: rows,
        ..Manifest::default()
    }
}
