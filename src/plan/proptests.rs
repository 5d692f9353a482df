//! Property tests: random bytes and mutated playbooks and CSVs never panic the loaders or
//! the dry run.

use super::Campaign;
use crate::cli::CampaignArgs;
use crate::input::CsvReader;
use proptest::prelude::*;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn playbook_text() -> String {
    std::fs::read_to_string(root().join("playbooks/invite-partners.yaml")).unwrap()
}

fn csv_text() -> Vec<u8> {
    std::fs::read(root().join("examples/partners.csv")).unwrap()
}

/// Apply edits (position, kind, byte) to `base`.
fn mutate(base: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(pos, kind, b) in edits {
        if v.is_empty() {
            v.push(b);
            continue;
        }
        let p = pos % v.len();
        match kind % 4 {
            0 => v[p] = b,
            1 => v.insert(p, b),
            2 => {
                v.remove(p);
            }
            _ => {
                // duplicate a slice (structure-shaped mutations)
                let end = (p + (b as usize % 40)).min(v.len());
                let chunk = v[p..end].to_vec();
                v.splice(p..p, chunk);
            }
        }
    }
    v
}

fn run_playbook(bytes: &[u8], csv: Option<&[u8]>) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.yaml");
    std::fs::write(&p, bytes).unwrap();
    let input = csv.map(|c| {
        let i = dir.path().join("in.csv");
        std::fs::write(&i, c).unwrap();
        i
    });
    let args = CampaignArgs {
        playbook: p,
        input: Some(input.unwrap_or_else(|| root().join("examples/partners.csv"))),
        sheet: None,
        vars: vec![],
    };
    if let Ok(c) = Campaign::load(&args) {
        let r = c.validate_with(3);
        let _ = r.diagnostics.render_text();
        let _ = super::summary::summarize(&c, r.rows).render_text();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_playbook_loader(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = crate::playbook::parse("p.yaml", &String::from_utf8_lossy(&bytes));
        run_playbook(&bytes, None);
    }

    #[test]
    fn mutated_playbooks_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..12)) {
        let bytes = mutate(playbook_text().as_bytes(), &edits);
        run_playbook(&bytes, None);
    }

    #[test]
    fn mutated_csvs_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>(), prop_oneof![Just(b','), Just(b'"'), Just(b'\n'), Just(b'\r'), Just(0xE9u8), any::<u8>()]), 1..20)) {
        let csv = mutate(&csv_text(), &edits);
        let pb = playbook_text().replace("../examples/partners.csv", "in.csv");
        run_playbook(pb.as_bytes(), Some(&csv));
    }

    #[test]
    fn random_csv_bytes_never_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, &bytes).unwrap();
        if let Ok(r) = CsvReader::open(&p, "in.csv") {
            for rec in r {
                let _ = rec;
            }
        }
    }
}
