//! The operation table: one row per operation of the service model, holding every
//! per-operation fact the rest of cosell needs (playbook actions, quota classes, which steps
//! may `wait` and how they are polled, paging, what the emulator serves).
//!
//! Derived from the service model where it can be: the rows themselves (one per model
//! operation, in the model's order), the idempotency-token member, whether an operation
//! mutates (everything but `Get…`/`List…`), the paginator (`…paginators.json`, carried in
//! `schemas/model.json`) and the output shape a waiting step yields. Declared once, here, where
//! the model says nothing: the quota classes the developer guide lists (`quotas.md`; an
//! unlisted mutating operation is `write`, an unlisted read `read`), the waiter of each
//! asynchronous operation, the operations the emulator serves, and (in `effects`) how each
//! write without a token is checked for an effect already in place.

use super::{model, Paginator, QuotaClass, ShapeId, ShapeKind};
use std::sync::LazyLock;

/// The operations `quotas.md` lists, with their class. Everything else follows the rule.
const DOCUMENTED_QUOTAS: &[(&str, QuotaClass)] = &[
    ("GetOpportunity", QuotaClass::Read),
    ("GetAwsOpportunitySummary", QuotaClass::Read),
    ("ListOpportunities", QuotaClass::Read),
    ("ListSolutions", QuotaClass::Read),
    ("GetEngagementInvitation", QuotaClass::Read),
    ("ListEngagementInvitations", QuotaClass::Read),
    ("CreateOpportunity", QuotaClass::Write),
    ("UpdateOpportunity", QuotaClass::Write),
    ("AssociateOpportunity", QuotaClass::Write),
    ("DisassociateOpportunity", QuotaClass::Write),
    ("RejectEngagementInvitation", QuotaClass::Write),
    ("AssignOpportunity", QuotaClass::Write),
    ("StartEngagementFromOpportunityTask", QuotaClass::Write),
    (
        "StartEngagementByAcceptingInvitationTask",
        QuotaClass::Write,
    ),
    ("CreateEngagement", QuotaClass::EngagementWrite),
    (
        "GetProspectingFromEngagementTask",
        QuotaClass::ProspectingGet,
    ),
    (
        "ListProspectingFromEngagementTasks",
        QuotaClass::ProspectingList,
    ),
    (
        "StartProspectingFromEngagementTask",
        QuotaClass::ProspectingWrite,
    ),
];

/// The operations the emulator serves; every other one it answers
/// `UnknownOperationException`.
const EMULATED: &[&str] = &[
    "CreateEngagement",
    "GetEngagement",
    "ListEngagements",
    "CreateEngagementInvitation",
    "GetEngagementInvitation",
    "ListEngagementInvitations",
    "RejectEngagementInvitation",
    "StartEngagementByAcceptingInvitationTask",
    "ListEngagementByAcceptingInvitationTasks",
    "StartEngagementFromOpportunityTask",
    "ListEngagementFromOpportunityTasks",
    "CreateOpportunity",
    "GetOpportunity",
    "UpdateOpportunity",
    "ListOpportunities",
    "AssignOpportunity",
    "AssociateOpportunity",
    "DisassociateOpportunity",
    "SubmitOpportunity",
    "GetAwsOpportunitySummary",
    "ListSolutions",
    "AcceptEngagementInvitation",
    "ListEngagementMembers",
    "CreateEngagementContext",
    "UpdateEngagementContext",
    "ListEngagementResourceAssociations",
    "StartOpportunityFromEngagementTask",
    "ListOpportunityFromEngagementTasks",
    "StartProspectingFromEngagementTask",
    "GetProspectingFromEngagementTask",
    "ListProspectingFromEngagementTasks",
    "CreateResourceSnapshot",
    "GetResourceSnapshot",
    "ListResourceSnapshots",
    "CreateResourceSnapshotJob",
    "StartResourceSnapshotJob",
    "StopResourceSnapshotJob",
    "DeleteResourceSnapshotJob",
    "GetResourceSnapshotJob",
    "ListResourceSnapshotJobs",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "GetSellingSystemSettings",
    "PutSellingSystemSettings",
];

/// The engagement and opportunity tasks' status (`TaskStatus` enum of the model).
const TASK_PENDING: &[&str] = &["IN_PROGRESS"];
/// Prospecting tasks' status (`ProspectingTaskStatus`).
const PROSPECTING_PENDING: &[&str] = &["PENDING", "IN_PROGRESS"];

/// The waiter of every asynchronous operation. The model documents these operations as
/// asynchronous but has no waiters file: the polled operation, where the id comes from and
/// how a poll answer is read are declared here. A snapshot job is awaited from its Start
/// (it executes once started); CreateResourceSnapshotJob makes a job that is `Stopped` until
/// started, so waiting on the Create would only time out, and `validate` refuses it.
const WAITERS: &[(&str, Waiter)] = &[
    (
        "StartEngagementByAcceptingInvitationTask",
        Waiter::list_tasks("ListEngagementByAcceptingInvitationTasks"),
    ),
    (
        "StartEngagementFromOpportunityTask",
        Waiter::list_tasks("ListEngagementFromOpportunityTasks"),
    ),
    (
        "StartOpportunityFromEngagementTask",
        Waiter::list_tasks("ListOpportunityFromEngagementTasks"),
    ),
    (
        "StartProspectingFromEngagementTask",
        Waiter {
            poll: "GetProspectingFromEngagementTask",
            batch: 1,
            id_member: "TaskIdentifier",
            id_from: IdFrom::Output("TaskId"),
            start_pending: Some(("TaskStatus", PROSPECTING_PENDING)),
            settle: Settle::EndTime,
        },
    ),
    (
        "StartResourceSnapshotJob",
        Waiter::snapshot_job(IdFrom::Input("ResourceSnapshotJobIdentifier")),
    ),
];

/// How a step that waits learns its operation has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    /// The operation polled.
    pub poll: &'static str,
    /// How many ids one poll request carries: 10 for `List…Tasks` (`TaskIdentifier` takes
    /// 1–10 ids), 1 for a `Get…` by id.
    pub batch: usize,
    /// The request member that takes the id (a list when `batch > 1`).
    pub id_member: &'static str,
    /// Where the id to poll comes from.
    pub id_from: IdFrom,
    /// The member of the start answer that says it is still running, and its running
    /// values. `None`: the start answer never says it finished, always poll.
    pub start_pending: Option<(&'static str, &'static [&'static str])>,
    /// How a poll answer (one task summary or one Get answer) is read.
    pub settle: Settle,
}

/// Where a waiter's id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdFrom {
    /// A member of the start answer (`TaskId`, `Id`).
    Output(&'static str),
    /// A member of the start request (`StartResourceSnapshotJob` answers nothing).
    Input(&'static str),
}

/// How a poll answer settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// A `TaskStatus` member: `COMPLETE`/`COMPLETED` succeed, `FAILED` fails with the
    /// answer's `ReasonCode` and `Message`; anything else is still running.
    TaskStatus,
    /// `GetProspectingFromEngagementTask`: finished once `EndTime` is present (the model: "absent
    /// if the task is still in progress"); per-engagement results are in the output.
    EndTime,
    /// `GetResourceSnapshotJob`: finished once the job has executed: `LastSuccessfulExecutionDate`
    /// succeeds, a `LastFailure` without one fails (`ResourceSnapshotJobFailed`).
    SnapshotExecution,
}

/// What a poll answer (or a start answer) says of the awaited work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Running,
    Succeeded,
    Failed { code: String, message: String },
}

impl Waiter {
    const fn list_tasks(poll: &'static str) -> Waiter {
        Waiter {
            poll,
            batch: 10,
            id_member: "TaskIdentifier",
            id_from: IdFrom::Output("TaskId"),
            start_pending: Some(("TaskStatus", TASK_PENDING)),
            settle: Settle::TaskStatus,
        }
    }

    const fn snapshot_job(id_from: IdFrom) -> Waiter {
        Waiter {
            poll: "GetResourceSnapshotJob",
            batch: 1,
            id_member: "ResourceSnapshotJobIdentifier",
            id_from,
            start_pending: None,
            settle: Settle::SnapshotExecution,
        }
    }

    /// What the id names, in messages ("task", "resource snapshot job").
    pub fn noun(&self) -> &'static str {
        match self.settle {
            Settle::SnapshotExecution => "resource snapshot job",
            _ => "task",
        }
    }

    /// The id to poll for a start that answered `output` to `request`.
    pub fn id_of<'v>(
        &self,
        request: &'v serde_json::Value,
        output: &'v serde_json::Value,
    ) -> Option<&'v str> {
        match self.id_from {
            IdFrom::Output(m) => output.get(m),
            IdFrom::Input(m) => request.get(m),
        }
        .and_then(serde_json::Value::as_str)
    }

    /// Whether the start answer leaves the work running (so the step polls). A start that
    /// already answered a final status is not polled.
    pub fn start_is_pending(&self, output: &serde_json::Value) -> bool {
        match self.start_pending {
            None => true,
            Some((member, pending)) => match output.get(member).and_then(|v| v.as_str()) {
                None => true,
                Some(s) => pending.contains(&s),
            },
        }
    }

    /// The request that polls `ids` (at most [`Waiter::batch`] of them).
    pub fn poll_request(&self, catalog: &str, ids: &[String]) -> serde_json::Value {
        let mut req = serde_json::Map::new();
        req.insert("Catalog".into(), catalog.into());
        if self.batch > 1 {
            req.insert(self.id_member.into(), ids.into());
            req.insert("MaxResults".into(), (self.batch as u64).into());
        } else {
            req.insert(
                self.id_member.into(),
                ids.first().cloned().unwrap_or_default().into(),
            );
        }
        serde_json::Value::Object(req)
    }

    /// The per-id answers in a poll response: `(id, answer)`.
    pub fn answers<'v>(
        &self,
        ids: &[String],
        response: &'v serde_json::Value,
    ) -> Vec<(String, &'v serde_json::Value)> {
        if self.batch > 1 {
            response
                .get("TaskSummaries")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let id = s.get("TaskId")?.as_str()?;
                    ids.iter().any(|i| i == id).then(|| (id.to_string(), s))
                })
                .collect()
        } else {
            ids.first()
                .map(|id| (id.clone(), response))
                .into_iter()
                .collect()
        }
    }

    /// What one answer (a task summary, a Get answer, or the start answer) says.
    pub fn progress(&self, answer: &serde_json::Value) -> Progress {
        let s = |k: &str| answer.get(k).and_then(serde_json::Value::as_str);
        match self.settle {
            Settle::TaskStatus => match s("TaskStatus") {
                Some("COMPLETE" | "COMPLETED") => Progress::Succeeded,
                Some("FAILED") => Progress::Failed {
                    code: s("ReasonCode").unwrap_or("TaskFailed").to_string(),
                    message: s("Message").unwrap_or("the task failed").to_string(),
                },
                _ => Progress::Running,
            },
            Settle::EndTime => match (s("TaskStatus"), answer.get("EndTime")) {
                (Some("FAILED"), _) => Progress::Failed {
                    code: s("ReasonCode").unwrap_or("TaskFailed").to_string(),
                    message: s("Message").unwrap_or("the task failed").to_string(),
                },
                (Some("COMPLETED"), _) | (_, Some(_)) => Progress::Succeeded,
                _ => Progress::Running,
            },
            Settle::SnapshotExecution => {
                if answer.get("LastSuccessfulExecutionDate").is_some() {
                    Progress::Succeeded
                } else if let Some(f) = s("LastFailure") {
                    Progress::Failed {
                        code: "ResourceSnapshotJobFailed".into(),
                        message: f.to_string(),
                    }
                } else {
                    Progress::Running
                }
            }
        }
    }

    /// The shape of a settled waiting step's output: one task summary for `List…Tasks`, the
    /// Get answer otherwise.
    pub fn output_shape(&self) -> Option<ShapeId> {
        let m = model();
        let out = m.operation(self.poll)?.output?;
        if self.batch == 1 {
            return Some(out);
        }
        let list = m.shape(out).member("TaskSummaries")?.shape;
        match m.shape(list).kind {
            ShapeKind::List { member, .. } => Some(member),
            _ => None,
        }
    }
}

/// One row of the table.
#[derive(Debug)]
pub struct OpSpec {
    pub name: &'static str,
    pub quota: QuotaClass,
    /// The class is the developer guide's (not the unlisted rule's).
    pub quota_documented: bool,
    pub mutates: bool,
    pub idempotency_member: Option<&'static str>,
    pub paginator: Option<&'static Paginator>,
    pub waiter: Option<Waiter>,
    /// The emulator serves it.
    pub emulated: bool,
    /// For a write without a token: how a retry or resume tells its own earlier effect
    /// from a real conflict ([`super::effects`]).
    pub effect: Option<&'static super::effects::EffectCheck>,
}

impl OpSpec {
    /// Asynchronous: a step may `wait` on it.
    pub fn is_async(&self) -> bool {
        self.waiter.is_some()
    }
}

static TABLE: LazyLock<Vec<OpSpec>> = LazyLock::new(|| {
    let m = model();
    let declared = DOCUMENTED_QUOTAS.iter().map(|(n, _)| *n);
    for n in declared
        .chain(WAITERS.iter().map(|(n, _)| *n))
        .chain(EMULATED.iter().copied())
    {
        assert!(
            m.operation(n).is_some(),
            "declared operation {n} is not in the model"
        );
    }
    m.operations()
        .iter()
        .map(|op| {
            let name = op.name.as_str();
            let mutates = !(name.starts_with("Get") || name.starts_with("List"));
            let documented = DOCUMENTED_QUOTAS.iter().find(|(n, _)| *n == name);
            OpSpec {
                name,
                quota: documented.map(|(_, c)| *c).unwrap_or(if mutates {
                    QuotaClass::Write
                } else {
                    QuotaClass::Read
                }),
                quota_documented: documented.is_some(),
                mutates,
                idempotency_member: op.idempotency_member(),
                paginator: op.paginator.as_ref(),
                waiter: WAITERS.iter().find(|(n, _)| *n == name).map(|(_, w)| *w),
                emulated: EMULATED.contains(&name),
                effect: super::effects::check(name),
            }
        })
        .collect()
});

/// Every row, one per operation of the model, in the model's (sorted) order.
pub fn operations() -> &'static [OpSpec] {
    &TABLE
}

/// The row of `name`.
pub fn operation(name: &str) -> Option<&'static OpSpec> {
    TABLE.iter().find(|o| o.name == name)
}

/// Every operation's name: the actions a playbook step may name and the SDK bridge sends.
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|o| o.name)
}

/// The waiter of an asynchronous operation.
pub fn waiter(name: &str) -> Option<Waiter> {
    operation(name).and_then(|o| o.waiter)
}

/// The operations the emulator serves, in table order.
pub fn emulated() -> impl Iterator<Item = &'static str> {
    TABLE.iter().filter(|o| o.emulated).map(|o| o.name)
}

/// The asynchronous operations, in table order.
pub fn asynchronous() -> impl Iterator<Item = &'static str> {
    TABLE.iter().filter(|o| o.is_async()).map(|o| o.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_operation_of_the_model_has_a_row() {
        let rows: Vec<&str> = names().collect();
        for op in model().operations() {
            assert!(rows.contains(&op.name.as_str()), "{} has no row", op.name);
        }
        assert_eq!(rows.len(), 45);
    }

    /// The classes `quotas.md` lists, read from the reference file itself when it is present.
    #[test]
    fn quota_classes_match_the_documented_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/quotas.md");
        let mut listed = Vec::new();
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines().filter(|l| l.starts_with("| ")) {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let class = match (cells[1], cells[3]) {
                    ("read", _) => QuotaClass::Read,
                    ("write", _) => QuotaClass::Write,
                    ("engagement write", _) => QuotaClass::EngagementWrite,
                    ("prospecting read", r) if r.starts_with("100") => QuotaClass::ProspectingGet,
                    ("prospecting read", _) => QuotaClass::ProspectingList,
                    ("prospecting write", _) => QuotaClass::ProspectingWrite,
                    _ => continue,
                };
                for op in cells[2].split(',').map(str::trim) {
                    listed.push((op.to_string(), class));
                }
            }
            assert_eq!(listed.len(), DOCUMENTED_QUOTAS.len());
        } else {
            listed = DOCUMENTED_QUOTAS
                .iter()
                .map(|(n, c)| (n.to_string(), *c))
                .collect();
        }
        for (op, class) in &listed {
            let row = operation(op).unwrap_or_else(|| panic!("{op} has no row"));
            assert_eq!(row.quota, *class, "{op}");
            assert!(row.quota_documented, "{op}");
            assert_eq!(row.quota.documented().rate, class.documented().rate);
        }
        for row in operations().iter().filter(|r| !r.quota_documented) {
            let want = if row.mutates {
                QuotaClass::Write
            } else {
                QuotaClass::Read
            };
            assert_eq!(row.quota, want, "unlisted {}", row.name);
        }
    }

    #[test]
    fn every_paginated_list_has_its_paginator_row() {
        let m = model();
        for row in operations().iter().filter(|r| r.name.starts_with("List")) {
            let input = m.shape(m.operation(row.name).unwrap().input.unwrap());
            if input.member("NextToken").is_none() {
                assert!(row.paginator.is_none(), "{}", row.name);
                continue;
            }
            let p = row
                .paginator
                .unwrap_or_else(|| panic!("{} pages but has no paginator", row.name));
            assert_eq!(p.input_token, "NextToken");
            let output = m.shape(m.operation(row.name).unwrap().output.unwrap());
            assert!(output.member(&p.output_token).is_some(), "{}", row.name);
            let items = output.member(&p.result_key).unwrap().shape;
            assert!(matches!(m.shape(items).kind, ShapeKind::List { .. }));
            assert!(input.member(p.limit_key.as_deref().unwrap()).is_some());
        }
        assert_eq!(
            operations()
                .iter()
                .filter(|r| r.paginator.is_some())
                .count(),
            12
        );
        assert_eq!(
            operation("ListSolutions")
                .unwrap()
                .paginator
                .unwrap()
                .result_key,
            "SolutionSummaries"
        );
    }

    #[test]
    fn mutation_and_idempotency_follow_the_model() {
        let tokens: Vec<&str> = operations()
            .iter()
            .filter(|r| r.idempotency_member.is_some())
            .map(|r| r.name)
            .collect();
        assert_eq!(tokens.len(), 10, "{tokens:?}");
        assert!(tokens.iter().all(|n| operation(n).unwrap().mutates));
        let unprotected = operations()
            .iter()
            .filter(|r| r.mutates && r.idempotency_member.is_none())
            .count();
        // the fourteen behaviours.md lists (issue 9 says "eighteen")
        assert_eq!(unprotected, 14, "behaviours.md: writes without a token");
        assert!(!operation("ListTagsForResource").unwrap().mutates);
    }

    #[test]
    fn every_asynchronous_operation_has_a_waiter_whose_members_are_in_the_model() {
        let m = model();
        let asyncs: Vec<&str> = asynchronous().collect();
        for row in operations() {
            let is_task = row.name.starts_with("Start") && row.name.ends_with("Task");
            if is_task {
                assert!(asyncs.contains(&row.name), "{} has no waiter", row.name);
            }
        }
        assert!(asyncs.contains(&"StartResourceSnapshotJob"));
        assert!(!asyncs.contains(&"CreateResourceSnapshotJob"));
        for name in asyncs {
            let w = waiter(name).unwrap();
            let poll = m.operation(w.poll).unwrap();
            assert!(!operation(w.poll).unwrap().mutates);
            let input = m.shape(poll.input.unwrap());
            let id = input.member(w.id_member).unwrap();
            let is_list = matches!(m.shape(id.shape).kind, ShapeKind::List { .. });
            assert_eq!(is_list, w.batch > 1, "{name}");
            if let ShapeKind::List { max, .. } = m.shape(id.shape).kind {
                assert_eq!(max, Some(w.batch as u64), "{name}");
            }
            let op = m.operation(name).unwrap();
            match w.id_from {
                IdFrom::Output(k) => assert!(m.shape(op.output.unwrap()).member(k).is_some()),
                IdFrom::Input(k) => assert!(m.shape(op.input.unwrap()).member(k).is_some()),
            }
            if let Some((k, pending)) = w.start_pending {
                let st = m.shape(op.output.unwrap()).member(k).unwrap().shape;
                let ShapeKind::String {
                    enum_values: Some(values),
                    ..
                } = &m.shape(st).kind
                else {
                    panic!("{name}.{k} is not an enum");
                };
                assert!(pending.iter().all(|p| values.iter().any(|v| v == p)));
            }
            assert!(w.output_shape().is_some(), "{name}");
        }
    }

    #[test]
    fn waiters_read_their_answers() {
        let w = waiter("StartEngagementFromOpportunityTask").unwrap();
        assert_eq!(
            w.poll_request("AWS", &["t1".into(), "t2".into()]),
            json!({"Catalog": "AWS", "TaskIdentifier": ["t1", "t2"], "MaxResults": 10})
        );
        assert!(w.start_is_pending(&json!({"TaskId": "t", "TaskStatus": "IN_PROGRESS"})));
        assert!(!w.start_is_pending(&json!({"TaskId": "t", "TaskStatus": "COMPLETE"})));
        let resp = json!({"TaskSummaries": [{"TaskId": "t2", "TaskStatus": "FAILED",
            "ReasonCode": "OpportunityConflict", "Message": "m"}, {"TaskId": "x"}]});
        let a = w.answers(&["t2".into()], &resp);
        assert_eq!(a.len(), 1);
        assert_eq!(
            w.progress(a[0].1),
            Progress::Failed {
                code: "OpportunityConflict".into(),
                message: "m".into()
            }
        );
        let p = waiter("StartProspectingFromEngagementTask").unwrap();
        assert_eq!(
            p.poll_request("Sandbox", &["pt".into()]),
            json!({"Catalog": "Sandbox", "TaskIdentifier": "pt"})
        );
        assert!(p.start_is_pending(&json!({"TaskStatus": "PENDING"})));
        assert_eq!(p.progress(&json!({"TaskId": "pt"})), Progress::Running);
        assert_eq!(
            p.progress(&json!({"EndTime": "2026-01-01T00:00:00Z"})),
            Progress::Succeeded
        );
        let s = waiter("StartResourceSnapshotJob").unwrap();
        let req = json!({"ResourceSnapshotJobIdentifier": "job-1"});
        assert_eq!(s.id_of(&req, &json!({})), Some("job-1"));
        assert!(s.start_is_pending(&json!({})));
        assert_eq!(s.progress(&json!({"Status": "Running"})), Progress::Running);
        assert!(matches!(
            s.progress(&json!({"LastFailure": "denied"})),
            Progress::Failed { .. }
        ));
        assert!(waiter("CreateResourceSnapshotJob").is_none());
    }

    #[test]
    fn the_emulator_serves_every_operation_of_the_table() {
        let e: Vec<&str> = emulated().collect();
        assert_eq!(e.len(), EMULATED.len(), "EMULATED names an operation twice");
        let unserved: Vec<&str> = operations()
            .iter()
            .filter(|o| !o.emulated)
            .map(|o| o.name)
            .collect();
        assert!(unserved.is_empty(), "not emulated: {unserved:?}");
        assert_eq!(e.len(), model().operations().len());
    }
}
