//! Benchmark: what `resume` does with the journal before its first request on a large run —
//! read it, replay it, position the writer (`JournalWriter::open_and_replay`) — for
//! 100,000 rows × 2 steps, 99% done; and the slower paths that build the list of records.
//!
//! Run: `cargo bench --bench replay`. Target (issue 5): well under 1 s in total.
use cosell::journal::{
    read, replay, replay_owned, JournalWriter, Record, RowRef, RowStatus, JOURNAL_FORMAT,
};
use serde_json::json;
use std::time::Instant;

const ROWS: u64 = 100_000;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("journal.jsonl");
    let t = Instant::now();
    let mut w = JournalWriter::open(&path).expect("open");
    w.append(&Record::Header {
        format: JOURNAL_FORMAT,
        run_id: "bench".into(),
    })
    .unwrap();
    let at = "2026-11-22T19:45:00.123Z".to_string();
    let done = ROWS * 99 / 100;
    for i in 0..ROWS {
        let row = RowRef::Row(i);
        // Step 1: an invitation, answered with its id and ARN.
        w.append(&Record::StepStarted {
            row,
            step: "invite".into(),
            token: Some(format!("cosell-0123456789abcdef-{i}-invite")),
            digest: format!("{:064x}", i),
            at: at.clone(),
        })
        .unwrap();
        w.append(&Record::StepSucceeded {
            row,
            step: "invite".into(),
            output: json!({
                "Id": format!("engi-{i:013}"),
                "Arn": format!("arn:aws:partnercentral:us-east-1:123456789012:catalog/Sandbox/engagement-invitation/engi-{i:013}"),
            }),
            at: at.clone(),
        })
        .unwrap();
        if i >= done {
            // The last 1%: the second step was started when the run stopped.
            w.append(&Record::StepStarted {
                row,
                step: "check".into(),
                token: None,
                digest: format!("{:064x}", i + 1),
                at: at.clone(),
            })
            .unwrap();
            continue;
        }
        // Step 2: a read of the invitation's status.
        w.append(&Record::StepStarted {
            row,
            step: "check".into(),
            token: None,
            digest: format!("{:064x}", i + 1),
            at: at.clone(),
        })
        .unwrap();
        w.append(&Record::StepSucceeded {
            row,
            step: "check".into(),
            output: json!({
                "Id": format!("engi-{i:013}"),
                "Catalog": "Sandbox",
                "Status": "PENDING",
                "SenderCompanyName": "Example Partner",
                "InvitationDate": at,
            }),
            at: at.clone(),
        })
        .unwrap();
        w.append(&Record::RowFinished {
            row,
            status: RowStatus::Succeeded,
            at: at.clone(),
        })
        .unwrap();
        if i % 1000 == 999 {
            w.commit().unwrap();
        }
    }
    w.commit().unwrap();
    drop(w);
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "wrote {ROWS} rows x 2 steps ({}% finished): {:.1} MB journal in {} ms",
        done * 100 / ROWS,
        size as f64 / 1e6,
        t.elapsed().as_millis()
    );

    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    // What resume does before its first request: one streaming pass that replays each record
    // as it is parsed and positions the writer.
    let mut best_stream = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        let (w, state, torn) = JournalWriter::open_and_replay(&path).unwrap();
        let t1 = Instant::now();
        assert!(torn.is_none());
        assert_eq!(state.rows.len() as u64, ROWS);
        assert_eq!(state.counts(ROWS).in_flight, ROWS - done);
        drop(w);
        drop(state);
        best_stream = best_stream.min(ms(t0, t1));
    }
    println!("resume path (open_and_replay), best of 5: {best_stream:.0} ms");
    let mut best = [f64::MAX; 3];
    for _ in 0..5 {
        // The same with the list of records in between.
        let t0 = Instant::now();
        let (w, contents) = JournalWriter::open_and_read(&path).unwrap();
        let t1 = Instant::now();
        let state = replay_owned(contents.records);
        let t2 = Instant::now();
        assert_eq!(state.rows.len() as u64, ROWS);
        assert_eq!(state.counts(ROWS).in_flight, ROWS - done);
        drop(w);
        for (b, t) in best.iter_mut().zip([ms(t0, t1), ms(t1, t2), ms(t0, t2)]) {
            *b = b.min(t);
        }
    }
    println!(
        "open_and_read + replay_owned, best of 5: {:.0} ms + {:.0} ms = {:.0} ms",
        best[0], best[1], best[2]
    );
    // The borrowing API (`read` + `replay`, which clones outputs), as `status` could use it.
    let t0 = Instant::now();
    let contents = read(&path).unwrap();
    let t1 = Instant::now();
    let state = replay(&contents.records);
    let t2 = Instant::now();
    assert_eq!(state.rows.len() as u64, ROWS);
    println!(
        "read {:.0} ms + replay {:.0} ms = {:.0} ms",
        ms(t0, t1),
        ms(t1, t2),
        ms(t0, t2)
    );
}
