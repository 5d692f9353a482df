//! Resource snapshots and resource snapshot jobs: CreateResourceSnapshot, GetResourceSnapshot,
//! ListResourceSnapshots, CreateResourceSnapshotJob, Start/Stop/Delete/Get…ResourceSnapshotJob
//! and ListResourceSnapshotJobs over [`State`] (the model's documentation and the developer
//! guide's pages on resource snapshots).
//!
//! Rules enforced here:
//! - A snapshot is taken of an opportunity within an engagement. The engagement must exist in
//!   the catalog (else `ResourceNotFoundException`) and the caller must be one of its members
//!   (else `AccessDeniedException`, as for GetEngagement). The opportunity must be the
//!   caller's, in the catalog (else `ResourceNotFoundException`), and associated with that
//!   engagement (it started it, or came from accepting its invitation), else
//!   `ValidationException` `INVALID_RESOURCE_STATE` at `ResourceIdentifier`.
//! - Templates ([`TEMPLATES`]): `OpportunitySummary` (payload `OpportunitySummary`, the
//!   opportunity's subset of `OpportunitySummaryView`) and `AwsOpportunitySummaryFullView`
//!   (payload `AwsOpportunitySummaryFullView`, what GetAwsOpportunitySummary answers, so only
//!   for a submitted or engaged opportunity, else `ResourceNotFoundException`). Any other
//!   template is a `ValidationException` (`INVALID_VALUE` at
//!   `ResourceSnapshotTemplateIdentifier`).
//! - Snapshots are immutable. Revisions count from 1 per engagement + resource type +
//!   resource + template: every CreateResourceSnapshot adds the next one.
//! - GetResourceSnapshot answers the given `Revision`, or the latest when it is left out; an
//!   absent snapshot or revision is `ResourceNotFoundException`. Every member of the
//!   engagement may read (and list) the engagement's snapshots, whoever took them;
//!   `TargetMemberAccounts` are the engagement's other members when the snapshot was taken.
//! - ListResourceSnapshots (caller must be a member) filters by ResourceType,
//!   ResourceIdentifier, ResourceSnapshotTemplateIdentifier and CreatedBy, lists in the order
//!   the snapshots were taken, and pages with `MaxResults` (default 50) and `NextToken`.
//! - Jobs belong to the account that created them, in their catalog: for any other account or
//!   catalog every job operation answers `ResourceNotFoundException` and List does not show
//!   them. Create checks what CreateResourceSnapshot checks (engagement, template,
//!   opportunity, association); a second job for the same engagement + resource + template is
//!   a `ConflictException` naming the first. `Tags` in the request are stored on the job.
//! - A job is `Stopped` when created (StartResourceSnapshotJob "starts a resource snapshot job
//!   that has been previously created"). Starting a `Running` job, or stopping a `Stopped` one,
//!   is a `ConflictException`. Only a `Stopped` job may be deleted (else
//!   `ConflictException`); deleting an absent job is `ResourceNotFoundException`. Deleting a
//!   job keeps the snapshots it took and drops its tags.
//! - Execution (deterministic): a `Running` job executes when it is started and, while it runs,
//!   at the first request after each change of its opportunity (the emulator checks the running
//!   jobs at the start of every request, see [`run_jobs`]). An execution takes a new snapshot
//!   revision only when the payload differs from the latest revision for its engagement +
//!   resource + template ("the job creates a new snapshot only if the resource state has
//!   changed"), and sets `LastSuccessfulExecutionDate`. An execution that cannot build the
//!   payload sets `LastFailure` to the reason and takes nothing (the next change of the
//!   opportunity tries again); with today's rules every job's opportunity stays readable, so
//!   this does not happen.
//! - ListResourceSnapshotJobs filters by EngagementIdentifier and Status, sorts by CreatedDate
//!   (default, and when `SortOrder` is left out: DESCENDING, newest first; jobs created in the
//!   same millisecond count in creation order), and pages
//!   with `MaxResults` (default 50) and `NextToken`.

use super::engagements::member_engagement;
use super::error::ApiError;
use super::opportunities::{self as opp, owned_opportunity};
use super::ops::{page, put_next, s, Ctx};
use super::state::*;
use crate::model::{model, ShapeId, ShapeKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The snapshot templates of resource type `Opportunity`, each with its payload member.
pub const TEMPLATES: &[&str] = &["OpportunitySummary", "AwsOpportunitySummaryFullView"];

/// Default page size of both List operations.
const DEFAULT_PAGE: usize = 50;

/// All snapshots and snapshot jobs.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Snapshots {
    /// Every snapshot, in the order taken.
    #[serde(default)]
    pub snapshots: Vec<Snapshot>,
    /// Snapshot jobs by id.
    #[serde(default)]
    pub jobs: HashMap<String, Job>,
}

/// One immutable revision of a resource's view.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub arn: String,
    pub catalog: String,
    pub engagement_id: String,
    pub resource_type: String,
    pub resource_id: String,
    pub template: String,
    pub revision: u32,
    /// The account that took the snapshot (the owner of the resource).
    pub created_by: String,
    pub created_at: Millis,
    /// The `ResourceSnapshotPayload` union.
    pub payload: Value,
    /// The engagement's other members when the snapshot was taken.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    Running,
    Stopped,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "Running",
            JobStatus::Stopped => "Stopped",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub arn: String,
    pub catalog: String,
    pub seq: u64,
    pub owner: String,
    pub engagement_id: String,
    pub resource_type: String,
    pub resource_id: String,
    pub template: String,
    pub created_at: Millis,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// The opportunity's `LastModifiedDate` at the job's last execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<Millis>,
}

fn job_arn(account: &str, catalog: &str, id: &str) -> String {
    format!(
        "arn:aws:partnercentral:us-east-1:{account}:catalog/{catalog}/resource-snapshot-job/{id}"
    )
}

fn snapshot_arn(s: &Snapshot) -> String {
    format!(
        "arn:aws:partnercentral:us-east-1:{}:catalog/{}/engagement/{}/resource-snapshot/{}/{}/{}/{}",
        s.created_by, s.catalog, s.engagement_id, s.resource_type, s.resource_id, s.template, s.revision
    )
}

/// `v` reduced to the members of `shape`, to any depth (nulls dropped).
fn project(shape: ShapeId, v: &Value) -> Option<Value> {
    let m = model();
    match &m.shape(shape).kind {
        ShapeKind::Structure { members, .. } => {
            let obj = v.as_object()?;
            let mut out = Map::new();
            for mb in members {
                if let Some(p) = obj.get(&mb.name).and_then(|x| project(mb.shape, x)) {
                    out.insert(mb.name.clone(), p);
                }
            }
            Some(Value::Object(out))
        }
        ShapeKind::List { member, .. } => Some(Value::Array(
            v.as_array()?
                .iter()
                .filter_map(|x| project(*member, x))
                .collect(),
        )),
        ShapeKind::Map { value, .. } => Some(Value::Object(
            v.as_object()?
                .iter()
                .filter_map(|(k, x)| project(*value, x).map(|p| (k.clone(), p)))
                .collect(),
        )),
        _ => (!v.is_null()).then(|| v.clone()),
    }
}

fn project_named(shape: &str, v: Value) -> Value {
    match model().shape_id(shape) {
        Some(id) => project(id, &v).unwrap_or(Value::Object(Map::new())),
        None => v,
    }
}

fn check_template(template: &str) -> Result<(), ApiError> {
    if TEMPLATES.contains(&template) {
        return Ok(());
    }
    Err(ApiError::business(
        "ResourceSnapshotTemplateIdentifier",
        "INVALID_VALUE",
        format!(
            "{template:?} is not a snapshot template of resource type Opportunity; use one of {}",
            TEMPLATES.join(", ")
        ),
    ))
}

/// What snapshot requests and job creation check: the engagement (member), the template, the
/// opportunity (owned) and that the opportunity is associated with the engagement.
fn check_target(state: &State, ctx: &Ctx<'_>, body: &Value) -> Result<(), ApiError> {
    let catalog = s(body, "Catalog");
    let eng = s(body, "EngagementIdentifier");
    member_engagement(state, catalog, eng, ctx.account)?;
    check_template(s(body, "ResourceSnapshotTemplateIdentifier"))?;
    let id = s(body, "ResourceIdentifier");
    let o = owned_opportunity(state, catalog, id, ctx.account)?;
    if o.engagement_id.as_deref() != Some(eng) {
        return Err(ApiError::business(
            "ResourceIdentifier",
            "INVALID_RESOURCE_STATE",
            format!(
                "Opportunity {id} is not associated with engagement {eng}; snapshot an \
                 opportunity of the engagement (one that started it or came from its invitation)"
            ),
        ));
    }
    Ok(())
}

/// The payload of `template` for the opportunity `id` of `owner`, now.
fn payload(
    state: &mut State,
    owner: &str,
    catalog: &str,
    template: &str,
    id: &str,
    now: Millis,
) -> Result<Value, ApiError> {
    if template == "AwsOpportunitySummaryFullView" {
        let ctx = Ctx {
            account: owner,
            now,
            ttl_ms: 0,
            task_delay_ms: 0,
            task_failure: None,
        };
        let req = json!({"Catalog": catalog, "RelatedOpportunityIdentifier": id});
        let v = opp::get_aws_summary(state, &ctx, &req)?;
        return Ok(json!({ template: project_named("AwsOpportunitySummaryFullView", v) }));
    }
    let o = owned_opportunity(state, catalog, id, owner)?;
    let mut v = Map::new();
    for k in [
        "OpportunityType",
        "OpportunityTeam",
        "PrimaryNeedsFromAws",
        "Customer",
        "Project",
    ] {
        if let Some(x) = o.fields.get(k) {
            v.insert(k.into(), x.clone());
        }
    }
    if let Some(l) = o.fields.get("LifeCycle") {
        v.insert("Lifecycle".into(), l.clone());
    }
    let related: Map<String, Value> = o
        .related
        .iter()
        .filter(|(_, l)| !l.is_empty())
        .map(|(k, l)| (k.clone(), json!(l)))
        .collect();
    if !related.is_empty() {
        v.insert("RelatedEntityIdentifiers".into(), Value::Object(related));
    }
    Ok(json!({ "OpportunitySummary": project_named("OpportunitySummaryView", Value::Object(v)) }))
}

fn same_series(s: &Snapshot, catalog: &str, eng: &str, rtype: &str, rid: &str, t: &str) -> bool {
    s.catalog == catalog
        && s.engagement_id == eng
        && s.resource_type == rtype
        && s.resource_id == rid
        && s.template == t
}

fn latest<'s>(
    state: &'s State,
    catalog: &str,
    eng: &str,
    rtype: &str,
    rid: &str,
    t: &str,
) -> Option<&'s Snapshot> {
    state
        .snapshots
        .snapshots
        .iter()
        .rev()
        .find(|s| same_series(s, catalog, eng, rtype, rid, t))
}

/// Record the next revision of a series; returns it.
#[allow(clippy::too_many_arguments)]
fn take(
    state: &mut State,
    owner: &str,
    catalog: &str,
    eng: &str,
    rtype: &str,
    rid: &str,
    template: &str,
    payload: Value,
    now: Millis,
) -> Snapshot {
    let revision = latest(state, catalog, eng, rtype, rid, template).map_or(1, |s| s.revision + 1);
    let targets = state
        .engagements
        .get(eng)
        .map(|e| {
            e.members
                .iter()
                .filter(|m| *m != owner)
                .take(10)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut snap = Snapshot {
        arn: String::new(),
        catalog: catalog.into(),
        engagement_id: eng.into(),
        resource_type: rtype.into(),
        resource_id: rid.into(),
        template: template.into(),
        revision,
        created_by: owner.into(),
        created_at: now,
        payload,
        targets,
    };
    snap.arn = snapshot_arn(&snap);
    state.snapshots.snapshots.push(snap.clone());
    snap
}

// ---- snapshots -----------------------------------------------------------------------------

pub(super) fn create_snapshot(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    check_target(state, ctx, body)?;
    let (catalog, eng, rtype, rid, template) = (
        s(body, "Catalog"),
        s(body, "EngagementIdentifier"),
        s(body, "ResourceType"),
        s(body, "ResourceIdentifier"),
        s(body, "ResourceSnapshotTemplateIdentifier"),
    );
    let p = payload(state, ctx.account, catalog, template, rid, ctx.now)?;
    let snap = take(
        state,
        ctx.account,
        catalog,
        eng,
        rtype,
        rid,
        template,
        p,
        ctx.now,
    );
    Ok(json!({"Arn": snap.arn, "Revision": snap.revision}))
}

pub(super) fn get_snapshot(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let (catalog, eng, rtype, rid, template) = (
        s(body, "Catalog"),
        s(body, "EngagementIdentifier"),
        s(body, "ResourceType"),
        s(body, "ResourceIdentifier"),
        s(body, "ResourceSnapshotTemplateIdentifier"),
    );
    member_engagement(state, catalog, eng, ctx.account)?;
    let revision = body.get("Revision").and_then(Value::as_u64);
    let found = match revision {
        None => latest(state, catalog, eng, rtype, rid, template),
        Some(r) => state.snapshots.snapshots.iter().find(|s| {
            same_series(s, catalog, eng, rtype, rid, template) && u64::from(s.revision) == r
        }),
    };
    let snap = found.ok_or_else(|| {
        let which = revision.map_or("any revision".to_string(), |r| format!("revision {r}"));
        ApiError::not_found(format!(
            "No {template} snapshot of {rtype} {rid} in engagement {eng} ({which}) in catalog {catalog}"
        ))
    })?;
    let mut out = json!({
        "Catalog": snap.catalog, "Arn": snap.arn, "CreatedBy": snap.created_by,
        "CreatedAt": iso(snap.created_at), "EngagementId": snap.engagement_id,
        "ResourceType": snap.resource_type, "ResourceId": snap.resource_id,
        "ResourceSnapshotTemplateName": snap.template, "Revision": snap.revision,
        "Payload": snap.payload,
    });
    if !snap.targets.is_empty() {
        out["TargetMemberAccounts"] = json!(snap.targets);
    }
    Ok(out)
}

pub(super) fn list_snapshots(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog");
    let eng = s(body, "EngagementIdentifier");
    member_engagement(state, catalog, eng, ctx.account)?;
    let opt = |k: &str| body.get(k).and_then(Value::as_str);
    let (rtype, rid, template, by) = (
        opt("ResourceType"),
        opt("ResourceIdentifier"),
        opt("ResourceSnapshotTemplateIdentifier"),
        opt("CreatedBy"),
    );
    let found: Vec<&Snapshot> = state
        .snapshots
        .snapshots
        .iter()
        .filter(|x| x.catalog == catalog && x.engagement_id == eng)
        .filter(|x| rtype.is_none_or(|v| x.resource_type == v))
        .filter(|x| rid.is_none_or(|v| x.resource_id == v))
        .filter(|x| template.is_none_or(|v| x.template == v))
        .filter(|x| by.is_none_or(|v| x.created_by == v))
        .collect();
    let (items, next) = page(body, found, DEFAULT_PAGE)?;
    let list: Vec<Value> = items
        .into_iter()
        .map(|x| {
            json!({"Arn": x.arn, "Revision": x.revision, "ResourceType": x.resource_type,
                   "ResourceId": x.resource_id, "ResourceSnapshotTemplateName": x.template,
                   "CreatedBy": x.created_by})
        })
        .collect();
    let mut out = json!({ "ResourceSnapshotSummaries": list });
    put_next(&mut out, next);
    Ok(out)
}

// ---- jobs ----------------------------------------------------------------------------------

fn owned_job<'s>(state: &'s State, ctx: &Ctx<'_>, body: &Value) -> Result<&'s Job, ApiError> {
    let catalog = s(body, "Catalog");
    let id = s(body, "ResourceSnapshotJobIdentifier");
    state
        .snapshots
        .jobs
        .get(id)
        .filter(|j| j.catalog == catalog && j.owner == ctx.account)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Resource snapshot job {id} was not found in catalog {catalog}"
            ))
        })
}

fn new_job_id(state: &mut State) -> String {
    loop {
        let id = state.new_job_id();
        if !state.snapshots.jobs.contains_key(&id) {
            return id;
        }
    }
}

pub(super) fn create_job(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    check_target(state, ctx, body)?;
    let tags = super::tags::request_tags(body)?;
    let (catalog, eng, rtype, rid, template) = (
        s(body, "Catalog"),
        s(body, "EngagementIdentifier"),
        s(body, "ResourceType"),
        s(body, "ResourceIdentifier"),
        s(body, "ResourceSnapshotTemplateIdentifier"),
    );
    if let Some(other) = state.snapshots.jobs.values().find(|j| {
        j.owner == ctx.account
            && j.catalog == catalog
            && j.engagement_id == eng
            && j.resource_type == rtype
            && j.resource_id == rid
            && j.template == template
    }) {
        return Err(ApiError::conflict(format!(
            "Resource snapshot job {} already snapshots {rtype} {rid} with template {template} \
             in engagement {eng}; start or stop that job instead",
            other.id
        )));
    }
    let id = new_job_id(state);
    let seq = state.next_seq();
    let job = Job {
        arn: job_arn(ctx.account, catalog, &id),
        id: id.clone(),
        catalog: catalog.into(),
        seq,
        owner: ctx.account.into(),
        engagement_id: eng.into(),
        resource_type: rtype.into(),
        resource_id: rid.into(),
        template: template.into(),
        created_at: ctx.now,
        status: JobStatus::Stopped,
        last_success: None,
        last_failure: None,
        seen: None,
    };
    let out = json!({"Id": job.id, "Arn": job.arn});
    super::tags::store(state, &job.arn, tags);
    state.snapshots.jobs.insert(id, job);
    Ok(out)
}

pub(super) fn get_job(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> Result<Value, ApiError> {
    let j = owned_job(state, ctx, body)?;
    let mut out = json!({
        "Catalog": j.catalog, "Id": j.id, "Arn": j.arn, "EngagementId": j.engagement_id,
        "ResourceType": j.resource_type, "ResourceId": j.resource_id,
        "ResourceSnapshotTemplateName": j.template, "CreatedAt": iso(j.created_at),
        "Status": j.status.as_str(),
    });
    if let Some(o) = state.opportunities.get(&j.resource_id) {
        out["ResourceArn"] = o.arn.clone().into();
    }
    if let Some(t) = j.last_success {
        out["LastSuccessfulExecutionDate"] = iso(t).into();
    }
    if let Some(f) = &j.last_failure {
        out["LastFailure"] = f.clone().into();
    }
    Ok(out)
}

pub(super) fn list_jobs(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> Result<Value, ApiError> {
    let catalog = s(body, "Catalog");
    let eng = body.get("EngagementIdentifier").and_then(Value::as_str);
    let status = body.get("Status").and_then(Value::as_str);
    let mut found: Vec<&Job> = state
        .snapshots
        .jobs
        .values()
        .filter(|j| j.catalog == catalog && j.owner == ctx.account)
        .filter(|j| eng.is_none_or(|e| j.engagement_id == e))
        .filter(|j| status.is_none_or(|st| j.status.as_str() == st))
        .collect();
    found.sort_by_key(|j| (j.created_at, j.seq));
    let ascending = body
        .get("Sort")
        .and_then(|s| s.get("SortOrder"))
        .and_then(Value::as_str)
        == Some("ASCENDING");
    if !ascending {
        found.reverse();
    }
    let (items, next) = page(body, found, DEFAULT_PAGE)?;
    let list: Vec<Value> = items
        .into_iter()
        .map(|j| {
            json!({"Id": j.id, "Arn": j.arn, "EngagementId": j.engagement_id,
                   "Status": j.status.as_str()})
        })
        .collect();
    let mut out = json!({ "ResourceSnapshotJobSummaries": list });
    put_next(&mut out, next);
    Ok(out)
}

pub(super) fn start_job(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> Result<Value, ApiError> {
    let j = owned_job(state, ctx, body)?;
    if j.status == JobStatus::Running {
        return Err(ApiError::conflict(format!(
            "Resource snapshot job {} is already Running",
            j.id
        )));
    }
    let id = j.id.clone();
    if let Some(j) = state.snapshots.jobs.get_mut(&id) {
        j.status = JobStatus::Running;
    }
    execute_job(state, &id, ctx.now);
    Ok(json!({}))
}

pub(super) fn stop_job(state: &mut State, ctx: &Ctx<'_>, body: &Value) -> Result<Value, ApiError> {
    let j = owned_job(state, ctx, body)?;
    if j.status == JobStatus::Stopped {
        return Err(ApiError::conflict(format!(
            "Resource snapshot job {} is already Stopped (start it before stopping it)",
            j.id
        )));
    }
    let id = j.id.clone();
    if let Some(j) = state.snapshots.jobs.get_mut(&id) {
        j.status = JobStatus::Stopped;
    }
    Ok(json!({}))
}

pub(super) fn delete_job(
    state: &mut State,
    ctx: &Ctx<'_>,
    body: &Value,
) -> Result<Value, ApiError> {
    let j = owned_job(state, ctx, body)?;
    if j.status != JobStatus::Stopped {
        return Err(ApiError::conflict(format!(
            "Resource snapshot job {} is {}: stop it before deleting it",
            j.id,
            j.status.as_str()
        )));
    }
    let (id, arn) = (j.id.clone(), j.arn.clone());
    state.snapshots.jobs.remove(&id);
    state.tags.by_arn.remove(&arn);
    Ok(json!({}))
}

/// One execution of job `id` (see the module rules).
fn execute_job(state: &mut State, id: &str, now: Millis) {
    let Some(job) = state.snapshots.jobs.get(id).cloned() else {
        return;
    };
    let seen = state
        .opportunities
        .get(&job.resource_id)
        .map(|o| o.modified_at);
    let result = payload(
        state,
        &job.owner,
        &job.catalog,
        &job.template,
        &job.resource_id,
        now,
    );
    match result {
        Ok(p) => {
            let changed = latest(
                state,
                &job.catalog,
                &job.engagement_id,
                &job.resource_type,
                &job.resource_id,
                &job.template,
            )
            .is_none_or(|s| s.payload != p);
            if changed {
                take(
                    state,
                    &job.owner,
                    &job.catalog,
                    &job.engagement_id,
                    &job.resource_type,
                    &job.resource_id,
                    &job.template,
                    p,
                    now,
                );
            }
            if let Some(j) = state.snapshots.jobs.get_mut(id) {
                j.last_success = Some(now);
                j.seen = seen;
            }
        }
        Err(e) => {
            if let Some(j) = state.snapshots.jobs.get_mut(id) {
                j.last_failure = Some(e.message);
                j.seen = seen;
            }
        }
    }
}

/// Execute every Running job whose opportunity changed since its last execution. Runs at the
/// start of every request (before the request's own effect).
pub(super) fn run_jobs(state: &mut State, now: Millis) {
    let mut due: Vec<(u64, String)> = state
        .snapshots
        .jobs
        .values()
        .filter(|j| j.status == JobStatus::Running)
        .filter(|j| {
            let current = state
                .opportunities
                .get(&j.resource_id)
                .map(|o| o.modified_at);
            current != j.seen
        })
        .map(|j| (j.seq, j.id.clone()))
        .collect();
    if due.is_empty() {
        return;
    }
    due.sort();
    for (_, id) in due {
        execute_job(state, &id, now);
    }
    state.touch();
}
