//! Replay: the pure fold of journal records into the state of a run.
//!
//! Semantics, record by record (last write wins per row and step):
//! - `Header`: nothing (its version is checked by the reader).
//! - `Call`, `QuotaWait`: nothing (they are for the daily budgets and the run report).
//! - `StepStarted` → the step is `InFlight { token, digest }`.
//! - `TaskWaiting` → the step is `Waiting { task_id, token }`, keeping the token of the step's
//!   previous `InFlight`/`Waiting` state if any.
//! - `StepSucceeded` / `StepSkipped` / `StepFailed` → `Succeeded` / `Skipped` / `Failed`.
//! - `RowFinished` → the row's status. Step records do not change a row's status: the
//!   coordinator writes none for a finished row (except after `RetryFailedRows`).
//! - `RetryFailedRows` → `retry_epoch += 1`, and every row (setup included) whose status is
//!   `Failed` becomes unfinished: its status and `finished_at` are cleared and **only its
//!   `Succeeded` steps are kept**. Failed steps go, and so do skipped ones (a `when` may
//!   depend on a step that failed and must be evaluated again) and any in-flight or waiting
//!   state (none is expected in a finished row). Each of its `Failed` steps gets its
//!   ClientToken generation bumped (`generations`), so the redrive sends it as a new request.
//!
//! Every record for a row also sets its `started_at` if unset (the first record's `at`).

use super::{Record, RowRef, RowStatus};
use serde_json::Value;
use std::collections::BTreeMap;

/// Where one step of one row stands.
#[derive(Debug, Clone, PartialEq)]
pub enum StepState {
    /// Started, outcome unknown: a resume re-sends it with the same `token`.
    InFlight {
        token: Option<String>,
        digest: String,
    },
    /// A task was started: a resume polls `task_id`.
    Waiting {
        task_id: String,
        token: Option<String>,
    },
    Succeeded {
        output: Value,
    },
    Skipped {
        reason: String,
    },
    Failed {
        code: String,
        message: String,
    },
}

impl StepState {
    /// Succeeded or skipped: never to be sent again.
    pub fn is_done(&self) -> bool {
        matches!(
            self,
            StepState::Succeeded { .. } | StepState::Skipped { .. }
        )
    }
}

/// Where one row (or setup) stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowState {
    /// By step id.
    pub steps: BTreeMap<String, StepState>,
    /// None while unfinished.
    pub status: Option<RowStatus>,
    /// `at` of the row's first record.
    pub started_at: Option<String>,
    /// `at` of its `RowFinished`.
    pub finished_at: Option<String>,
    /// ClientToken generation per step: how many redrives found that step failed.
    pub generations: BTreeMap<String, u32>,
    /// Step id → what an effect check found ([`Record::EffectChecked`]): kept when the step
    /// state is forgotten, so the ledger can say a step was already in place.
    pub notes: BTreeMap<String, String>,
    /// Step id → what a `patch` step changed ([`Record::Patched`]: its `changes`, empty when
    /// unchanged, and its conflicts), kept like `notes`.
    pub patches: BTreeMap<String, (serde_json::Value, u32)>,
}

impl RowState {
    /// The first of `step_ids` that is neither succeeded nor skipped (None: all done).
    pub fn next_step<'a>(&self, step_ids: &'a [String]) -> Option<&'a str> {
        step_ids
            .iter()
            .find(|id| !self.steps.get(id.as_str()).is_some_and(StepState::is_done))
            .map(String::as_str)
    }

    /// The first failed step, in `step_ids` order, with its state.
    pub fn failed_step<'a>(
        &'a self,
        step_ids: &'a [String],
    ) -> Option<(&'a str, &'a str, &'a str)> {
        step_ids.iter().find_map(|id| match self.steps.get(id) {
            Some(StepState::Failed { code, message }) => {
                Some((id.as_str(), code.as_str(), message.as_str()))
            }
            _ => None,
        })
    }
}

/// The state of a run after its journal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunState {
    pub setup: RowState,
    /// Data rows that have any record, by 0-based index.
    pub rows: BTreeMap<u64, RowState>,
    /// How many `RetryFailedRows` records were replayed.
    pub retry_epoch: u32,
    /// Forget the step states of data rows once they finish succeeded or skipped (their
    /// status and times stay). Resume needs nothing else of them, and on a large, nearly
    /// done run this keeps the replay from holding every output in memory.
    pub lean: bool,
}

/// Rows by where they stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RowCounts {
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Some record, not finished.
    pub in_flight: u64,
    /// No record yet.
    pub pending: u64,
}

impl RunState {
    /// Apply one record (what [`replay`] folds; the coordinator may use it to keep its
    /// in-memory state in step with what it journals).
    pub fn apply(&mut self, rec: &Record) {
        self.apply_owned(rec.clone())
    }

    /// [`apply`](Self::apply), moving the record's contents instead of cloning them.
    pub fn apply_owned(&mut self, rec: Record) {
        let (row, at) = match &rec {
            Record::Header { .. } | Record::Call { .. } | Record::QuotaWait { .. } => return,
            Record::RetryFailedRows { .. } => {
                self.retry_epoch += 1;
                for r in std::iter::once(&mut self.setup).chain(self.rows.values_mut()) {
                    if r.status == Some(RowStatus::Failed) {
                        r.status = None;
                        r.finished_at = None;
                        for (id, st) in &r.steps {
                            if matches!(st, StepState::Failed { .. }) {
                                *r.generations.entry(id.clone()).or_default() += 1;
                            }
                        }
                        r.steps
                            .retain(|_, s| matches!(s, StepState::Succeeded { .. }));
                    }
                }
                return;
            }
            Record::StepStarted { row, at, .. }
            | Record::TaskWaiting { row, at, .. }
            | Record::StepSucceeded { row, at, .. }
            | Record::StepSkipped { row, at, .. }
            | Record::StepFailed { row, at, .. }
            | Record::EffectChecked { row, at, .. }
            | Record::Patched { row, at, .. }
            | Record::RowFinished { row, at, .. } => (*row, at),
        };
        let state = match row {
            RowRef::Setup => &mut self.setup,
            RowRef::Row(i) => self.rows.entry(i).or_default(),
        };
        if state.started_at.is_none() {
            state.started_at = Some(at.clone());
        }
        let (step, new) = match rec {
            Record::StepStarted {
                step,
                token,
                digest,
                ..
            } => (step, StepState::InFlight { token, digest }),
            Record::TaskWaiting { step, task_id, .. } => {
                let token = match state.steps.get(&step) {
                    Some(StepState::InFlight { token, .. } | StepState::Waiting { token, .. }) => {
                        token.clone()
                    }
                    _ => None,
                };
                (step, StepState::Waiting { task_id, token })
            }
            Record::StepSucceeded { step, output, .. } => (step, StepState::Succeeded { output }),
            Record::StepSkipped { step, reason, .. } => (step, StepState::Skipped { reason }),
            Record::StepFailed {
                step,
                code,
                message,
                ..
            } => (step, StepState::Failed { code, message }),
            Record::EffectChecked {
                step,
                code,
                read,
                in_place,
                detail,
                ..
            } => {
                let note = if in_place {
                    format!("already in place (a retried call met its own earlier effect: {code}; {read} shows {detail})")
                } else {
                    format!("not in place ({read}: {detail})")
                };
                state.notes.insert(step, note);
                return;
            }
            Record::Patched {
                step,
                changes,
                conflicts,
                ..
            } => {
                state.patches.insert(step, (changes, conflicts));
                return;
            }
            Record::RowFinished { status, at, .. } => {
                state.status = Some(status);
                state.finished_at = Some(at);
                if self.lean && row != RowRef::Setup && status != RowStatus::Failed {
                    state.steps = BTreeMap::new();
                }
                return;
            }
            Record::Header { .. }
            | Record::RetryFailedRows { .. }
            | Record::Call { .. }
            | Record::QuotaWait { .. } => unreachable!(),
        };
        state.steps.insert(step, new);
    }

    /// Count rows by where they stand, out of `total_rows` data rows.
    pub fn counts(&self, total_rows: u64) -> RowCounts {
        let mut c = RowCounts::default();
        for r in self.rows.values() {
            match r.status {
                Some(RowStatus::Succeeded) => c.succeeded += 1,
                Some(RowStatus::Failed) => c.failed += 1,
                Some(RowStatus::Skipped) => c.skipped += 1,
                None => c.in_flight += 1,
            }
        }
        c.pending = total_rows.saturating_sub(self.rows.len() as u64);
        c
    }
}

/// Fold journal records into the state of the run. Pure: same records, same state.
pub fn replay(records: &[Record]) -> RunState {
    let mut st = RunState::default();
    for r in records {
        st.apply(r);
    }
    st
}

/// [`replay`], consuming the records (no copies of outputs: what `resume` and `status` use).
pub fn replay_owned(records: Vec<Record>) -> RunState {
    let mut st = RunState::default();
    for r in records {
        st.apply_owned(r);
    }
    st
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_lean_replay_forgets_only_what_resume_does_not_need() {
        let at = || "2026-11-22T00:00:00.000Z".to_string();
        let recs = vec![
            Record::StepSucceeded {
                row: RowRef::Setup,
                step: "e".into(),
                output: serde_json::json!({"Id": "eng-1"}),
                at: at(),
            },
            Record::RowFinished {
                row: RowRef::Setup,
                status: RowStatus::Succeeded,
                at: at(),
            },
            Record::StepSucceeded {
                row: RowRef::Row(0),
                step: "a".into(),
                output: serde_json::json!({"Id": 1}),
                at: at(),
            },
            Record::RowFinished {
                row: RowRef::Row(0),
                status: RowStatus::Succeeded,
                at: at(),
            },
            Record::StepSucceeded {
                row: RowRef::Row(1),
                step: "a".into(),
                output: serde_json::json!({"Id": 2}),
                at: at(),
            },
            Record::StepFailed {
                row: RowRef::Row(1),
                step: "b".into(),
                code: "X".into(),
                message: "m".into(),
                at: at(),
            },
            Record::RowFinished {
                row: RowRef::Row(1),
                status: RowStatus::Failed,
                at: at(),
            },
            Record::StepSucceeded {
                row: RowRef::Row(2),
                step: "a".into(),
                output: serde_json::json!({"Id": 3}),
                at: at(),
            },
        ];
        let full = replay(&recs);
        let mut lean = RunState {
            lean: true,
            ..RunState::default()
        };
        for r in &recs {
            lean.apply(r);
        }
        // finished-succeeded rows keep status and times, not their steps
        assert_eq!(lean.rows[&0].status, Some(RowStatus::Succeeded));
        assert_eq!(lean.rows[&0].finished_at, full.rows[&0].finished_at);
        assert!(lean.rows[&0].steps.is_empty());
        // setup, failed and unfinished rows are kept whole (resume and redrive read them)
        assert_eq!(lean.setup, full.setup);
        assert_eq!(lean.rows[&1], full.rows[&1]);
        assert_eq!(lean.rows[&2], full.rows[&2]);
    }
    use super::*;
    use proptest::prelude::*;

    const STEPS: [&str; 3] = ["a", "b", "c"];

    fn row_ref() -> impl Strategy<Value = RowRef> {
        prop_oneof![1 => Just(RowRef::Setup), 4 => (0u64..4).prop_map(RowRef::Row)]
    }
    fn step() -> impl Strategy<Value = String> {
        proptest::sample::select(&STEPS[..]).prop_map(String::from)
    }

    fn record() -> impl Strategy<Value = Record> {
        let at = (0u32..1000).prop_map(|n| format!("t{n}"));
        prop_oneof![
            4 => (row_ref(), step(), proptest::option::of("[a-c]"), "[a-c]", at.clone()).prop_map(
                |(row, step, token, digest, at)| Record::StepStarted { row, step, token, digest, at }
            ),
            2 => (row_ref(), step(), "[a-c]", at.clone())
                .prop_map(|(row, step, task_id, at)| Record::TaskWaiting { row, step, task_id, at }),
            4 => (row_ref(), step(), 0u8..3, at.clone()).prop_map(|(row, step, v, at)| {
                Record::StepSucceeded { row, step, output: serde_json::json!({ "v": v }), at }
            }),
            1 => (row_ref(), step(), at.clone())
                .prop_map(|(row, step, at)| Record::StepSkipped { row, step, reason: "when".into(), at }),
            2 => (row_ref(), step(), at.clone()).prop_map(|(row, step, at)| Record::StepFailed {
                row, step, code: "E".into(), message: "m".into(), at
            }),
            3 => (row_ref(), proptest::sample::select(vec![RowStatus::Succeeded, RowStatus::Failed, RowStatus::Skipped]), at.clone())
                .prop_map(|(row, status, at)| Record::RowFinished { row, status, at }),
            1 => at.prop_map(|at| Record::RetryFailedRows { at }),
        ]
    }

    fn row_of(r: &Record) -> Option<RowRef> {
        match r {
            Record::StepStarted { row, .. }
            | Record::TaskWaiting { row, .. }
            | Record::StepSucceeded { row, .. }
            | Record::StepSkipped { row, .. }
            | Record::StepFailed { row, .. }
            | Record::RowFinished { row, .. } => Some(*row),
            _ => None,
        }
    }
    fn step_of(r: &Record) -> Option<&str> {
        match r {
            Record::StepStarted { step, .. }
            | Record::TaskWaiting { step, .. }
            | Record::StepSucceeded { step, .. }
            | Record::StepSkipped { step, .. }
            | Record::StepFailed { step, .. } => Some(step),
            _ => None,
        }
    }

    /// The oracle, written backwards rather than as a fold: to know something at position
    /// `i`, look for the last record that decides it before `i`.
    struct Oracle<'a>(&'a [Record]);

    #[derive(Debug, PartialEq, Clone, Copy)]
    enum Class {
        Pending,
        InFlight,
        Waiting,
        Succeeded,
        Skipped,
        Failed,
    }

    impl Oracle<'_> {
        /// The row's status just before position `end`.
        fn status_before(&self, row: RowRef, end: usize) -> Option<RowStatus> {
            for i in (0..end).rev() {
                match &self.0[i] {
                    Record::RowFinished { row: r, status, .. } if *r == row => {
                        return Some(*status)
                    }
                    Record::RetryFailedRows { .. } => {
                        let before = self.status_before(row, i);
                        if before == Some(RowStatus::Failed) {
                            return None;
                        }
                        return before;
                    }
                    _ => {}
                }
            }
            None
        }

        /// A step's class just before position `end`.
        fn step_before(&self, row: RowRef, step: &str, end: usize) -> Class {
            for i in (0..end).rev() {
                let rec = &self.0[i];
                if let Record::RetryFailedRows { .. } = rec {
                    let before = self.step_before(row, step, i);
                    if self.status_before(row, i) == Some(RowStatus::Failed)
                        && before != Class::Succeeded
                    {
                        return Class::Pending;
                    }
                    return before;
                }
                if row_of(rec) == Some(row) && step_of(rec) == Some(step) {
                    return match rec {
                        Record::StepStarted { .. } => Class::InFlight,
                        Record::TaskWaiting { .. } => Class::Waiting,
                        Record::StepSucceeded { .. } => Class::Succeeded,
                        Record::StepSkipped { .. } => Class::Skipped,
                        Record::StepFailed { .. } => Class::Failed,
                        _ => unreachable!(),
                    };
                }
            }
            Class::Pending
        }

        /// The token a step in flight or waiting carries just before `end`: that of its
        /// `StepStarted`, carried through `TaskWaiting`s while the step stayed in flight.
        fn token_before(&self, row: RowRef, step: &str, end: usize) -> Option<String> {
            let j = (0..end)
                .rev()
                .find(|&i| row_of(&self.0[i]) == Some(row) && step_of(&self.0[i]) == Some(step))?;
            match &self.0[j] {
                Record::StepStarted { token, .. } => token.clone(),
                Record::TaskWaiting { .. } => match self.step_before(row, step, j) {
                    Class::InFlight | Class::Waiting => self.token_before(row, step, j),
                    _ => None,
                },
                _ => None,
            }
        }
    }

    fn class(s: Option<&StepState>) -> Class {
        match s {
            None => Class::Pending,
            Some(StepState::InFlight { .. }) => Class::InFlight,
            Some(StepState::Waiting { .. }) => Class::Waiting,
            Some(StepState::Succeeded { .. }) => Class::Succeeded,
            Some(StepState::Skipped { .. }) => Class::Skipped,
            Some(StepState::Failed { .. }) => Class::Failed,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn replay_agrees_with_the_oracle(recs in proptest::collection::vec(record(), 0..60)) {
            let st = replay(&recs);
            let o = Oracle(&recs);
            let n = recs.len();
            let steps: Vec<String> = STEPS.iter().map(|s| s.to_string()).collect();
            let retries = recs.iter().filter(|r| matches!(r, Record::RetryFailedRows { .. })).count();
            prop_assert_eq!(st.retry_epoch as usize, retries);
            for row in std::iter::once(RowRef::Setup).chain((0..4).map(RowRef::Row)) {
                let rs = match row {
                    RowRef::Setup => Some(&st.setup),
                    RowRef::Row(i) => st.rows.get(&i),
                };
                let touched = recs.iter().any(|r| row_of(r) == Some(row));
                if let RowRef::Row(_) = row {
                    // Rows that have any record, and only those, are present.
                    prop_assert_eq!(rs.is_some(), touched);
                }
                let empty = RowState::default();
                let rs = rs.unwrap_or(&empty);
                prop_assert_eq!(rs.status, o.status_before(row, n), "status of {:?}", row);
                for s in &steps {
                    let got = class(rs.steps.get(s));
                    prop_assert_eq!(got, o.step_before(row, s, n), "{:?} step {}", row, s);
                    if let Some(StepState::Waiting { token, .. }) = rs.steps.get(s) {
                        prop_assert_eq!(token.clone(), o.token_before(row, s, n));
                    }
                }
                // next_step: the first step not done.
                let want = steps.iter().find(|s| {
                    !matches!(o.step_before(row, s, n), Class::Succeeded | Class::Skipped)
                }).map(String::as_str);
                prop_assert_eq!(rs.next_step(&steps), want);
                // started_at is the first record's time.
                let first_at = recs.iter().find(|r| row_of(r) == Some(row)).map(|r| match r {
                    Record::StepStarted { at, .. } | Record::TaskWaiting { at, .. }
                    | Record::StepSucceeded { at, .. } | Record::StepSkipped { at, .. }
                    | Record::StepFailed { at, .. } | Record::RowFinished { at, .. } => at.clone(),
                    _ => unreachable!(),
                });
                prop_assert_eq!(rs.started_at.clone(), first_at);
            }
            // Replay is a fold: replaying a prefix and then the rest gives the same state.
            let cut = n / 2;
            let mut st2 = replay(&recs[..cut]);
            for r in &recs[cut..] { st2.apply(r); }
            prop_assert_eq!(&st2, &st);
            prop_assert_eq!(replay_owned(recs.clone()), st);
        }
    }

    #[test]
    fn retry_failed_rows_keeps_succeeded_steps_only() {
        let s = |x: &str| x.to_string();
        let recs = vec![
            Record::StepSucceeded {
                row: RowRef::Row(0),
                step: s("a"),
                output: Value::Null,
                at: s("t1"),
            },
            Record::StepSkipped {
                row: RowRef::Row(0),
                step: s("b"),
                reason: s("when"),
                at: s("t2"),
            },
            Record::StepFailed {
                row: RowRef::Row(0),
                step: s("c"),
                code: s("E"),
                message: s("m"),
                at: s("t3"),
            },
            Record::RowFinished {
                row: RowRef::Row(0),
                status: RowStatus::Failed,
                at: s("t4"),
            },
            Record::StepSucceeded {
                row: RowRef::Row(1),
                step: s("a"),
                output: Value::Null,
                at: s("t1"),
            },
            Record::RowFinished {
                row: RowRef::Row(1),
                status: RowStatus::Succeeded,
                at: s("t5"),
            },
            Record::RetryFailedRows { at: s("t6") },
        ];
        let st = replay(&recs);
        let ids = vec![s("a"), s("b"), s("c")];
        let r0 = &st.rows[&0];
        assert_eq!(r0.status, None);
        assert_eq!(r0.finished_at, None);
        assert_eq!(r0.started_at.as_deref(), Some("t1"));
        assert_eq!(r0.steps.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(r0.next_step(&ids), Some("b"));
        assert_eq!(st.rows[&1].status, Some(RowStatus::Succeeded));
        assert_eq!(st.rows[&1].next_step(&ids), Some("b"));
        assert_eq!(st.retry_epoch, 1);
        assert_eq!(
            st.counts(5),
            RowCounts {
                succeeded: 1,
                failed: 0,
                skipped: 0,
                in_flight: 1,
                pending: 3
            }
        );
    }
}
