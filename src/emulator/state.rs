//! The emulator's resources (engagements, invitations, opportunities, solutions, tasks; the
//! snapshot, tag and settings families keep theirs in their own structs), the idempotency
//! records, id generation, and the versioned state file (`{"format": 1, ...}`).
//!
//! State-file rules:
//! - The file holds customer data: it (and its lock file) is created with mode 0600, and every
//!   write is atomic and durable: a temporary file `FILE.tmp` (0600) is written and fsynced,
//!   renamed over `FILE`, and the directory is fsynced, so a crash leaves the old or the new
//!   state, never a torn one.
//! - One emulator per state file: [`StateLock`] holds an exclusive OS lock (`flock` through
//!   `fs4`) on `FILE.lock` for the emulator's lifetime; the lock file records the holder's pid.
//!   A second emulator on the same file fails at once naming the file and that pid. (The lock
//!   is on a separate file because the atomic rename replaces the state file's inode.)

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::Path;

/// The state-file format this build reads and writes.
pub const STATE_FORMAT: u32 = 1;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// ISO 8601 with milliseconds (`DateTime` is `timestampFormat: iso8601` in the model).
pub fn iso(ms: Millis) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Engagement {
    pub id: String,
    pub arn: String,
    pub catalog: String,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contexts: Option<Value>,
    pub created_at: Millis,
    pub created_by: String,
    pub modified_at: Millis,
    pub modified_by: String,
    /// Partner accounts that belong to the engagement (the creator first).
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Rejected,
    Expired,
}

impl InvitationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "PENDING",
            InvitationStatus::Accepted => "ACCEPTED",
            InvitationStatus::Rejected => "REJECTED",
            InvitationStatus::Expired => "EXPIRED",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invitation {
    pub id: String,
    pub arn: String,
    pub catalog: String,
    pub seq: u64,
    pub engagement_id: String,
    pub sender: String,
    /// The receiver account id (from `Receiver.Account.AwsAccountId`).
    pub receiver: String,
    /// The `Receiver` union as sent.
    pub receiver_value: Value,
    pub message: String,
    /// `OpportunityInvitation` or `LeadInvitation`.
    pub payload_type: String,
    /// The `Payload` union as sent.
    pub payload: Value,
    /// The stored status; `EXPIRED` is derived on read from `expires_at`.
    pub status: InvitationStatus,
    pub invited_at: Millis,
    pub expires_at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    /// `SenderCompanyName` as a fixture gave it; `None`: the sender account's company name
    /// ([`State::company_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_company_name: Option<String>,
}

impl Invitation {
    /// The status at `now`: a PENDING invitation past its expiration date is EXPIRED.
    pub fn status_at(&self, now: Millis) -> InvitationStatus {
        if self.status == InvitationStatus::Pending && now >= self.expires_at {
            InvitationStatus::Expired
        } else {
            self.status
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Opportunity {
    pub id: String,
    pub arn: String,
    pub catalog: String,
    pub seq: u64,
    pub owner: String,
    /// The opportunity's members as the API names them (only members of the output shape).
    pub fields: Map<String, Value>,
    pub created_at: Millis,
    pub modified_at: Millis,
    /// The engagement a StartEngagementFromOpportunityTask created from this opportunity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement_id: Option<String>,
    /// Associated entities per `RelatedEntityType` (`Solutions`, `AwsProducts`, ...), in the
    /// order they were associated (see `opportunities`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub related: BTreeMap<String, Vec<String>>,
    /// What SubmitOpportunity recorded (for GetAwsOpportunitySummary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission: Option<Submission>,
    /// How many times it was submitted to AWS (SubmitOpportunity, or a completed
    /// StartEngagementFromOpportunityTask): for stats, so a test can tell one from two.
    #[serde(default)]
    pub submissions: u32,
}

/// An opportunity's submission to AWS (SubmitOpportunity).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    pub involvement_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    pub submitted_at: Millis,
}

/// A partner solution, seeded per account and catalog (see `solutions`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Solution {
    pub id: String,
    pub catalog: String,
    pub owner: String,
    pub name: String,
    pub status: String,
    pub category: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// StartEngagementByAcceptingInvitationTask
    AcceptInvitation,
    /// StartEngagementFromOpportunityTask
    FromOpportunity,
    /// StartOpportunityFromEngagementTask
    FromEngagement,
    /// StartProspectingFromEngagementTask
    Prospecting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    InProgress,
    Complete,
    Failed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::InProgress => "IN_PROGRESS",
            TaskStatus::Complete => "COMPLETE",
            TaskStatus::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub arn: String,
    pub kind: TaskKind,
    pub catalog: String,
    pub seq: u64,
    pub owner: String,
    pub started_at: Millis,
    pub due_at: Millis,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opportunity_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The `task_failure` fault drawn when the task started: the retryable `ReasonCode` it
    /// ends with instead of completing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_failure: Option<String>,
    /// StartOpportunityFromEngagementTask: the engagement context the opportunity comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// StartProspectingFromEngagementTask: its `TaskName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// StartProspectingFromEngagementTask: one result per engagement, in request order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prospects: Vec<Prospect>,
    /// When the task finished (COMPLETE or FAILED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Millis>,
}

/// One engagement of a prospecting task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prospect {
    pub engagement_id: String,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a ClientToken produced the first time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// SHA-256 of the canonical request body.
    pub request_hash: String,
    /// The original response body.
    pub response: Value,
    /// For Start…Task operations: the task, re-rendered with its current status on replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

/// All resources. Lives behind one mutex; every operation is a short critical section.
#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    pub seq: u64,
    pub engagements: HashMap<String, Engagement>,
    pub invitations: HashMap<String, Invitation>,
    pub opportunities: HashMap<String, Opportunity>,
    pub tasks: HashMap<String, Task>,
    /// Key: `account \u{1f} operation \u{1f} client token`.
    pub idempotency: HashMap<String, IdempotencyRecord>,
    /// Accepting tasks ever started per invitation id.
    pub accept_tasks_per_invitation: HashMap<String, u32>,
    /// Company names per partner account (from fixtures); see [`State::company_name`].
    #[serde(default)]
    pub company_names: HashMap<String, String>,
    /// Partner solutions by id, seeded per account and catalog on first use (see `solutions`).
    #[serde(default)]
    pub solutions: HashMap<String, Solution>,
    /// Resource snapshots and snapshot jobs (see `snapshots`).
    #[serde(default)]
    pub snapshots: super::snapshots::Snapshots,
    /// Tags per resource ARN (see `tags`).
    #[serde(default)]
    pub tags: super::tags::Tags,
    /// Selling-system settings per account and catalog (see `settings`).
    #[serde(default)]
    pub settings: super::settings::Settings,
    /// Bumped by every change (for write-through persistence); not persisted.
    #[serde(skip)]
    pub generation: u64,
    /// Tasks that ended FAILED through the `task_failure` fault (for stats); not persisted.
    #[serde(skip)]
    pub injected_task_failures: u64,
    /// IN_PROGRESS tasks, earliest due first (rebuilt on load).
    #[serde(skip)]
    pub pending: BinaryHeap<Reverse<(Millis, u64, String)>>,
    #[serde(skip, default = "default_rng")]
    pub rng: StdRng,
}

fn default_rng() -> StdRng {
    StdRng::seed_from_u64(0)
}

/// Keeps the id generator independent of the fault generator under one --seed.
const ID_SEED_SALT: u64 = 0x05ee_d1d5;

const ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

impl State {
    pub fn new(seed: u64) -> State {
        State {
            format: STATE_FORMAT,
            seq: 0,
            engagements: HashMap::new(),
            invitations: HashMap::new(),
            opportunities: HashMap::new(),
            tasks: HashMap::new(),
            idempotency: HashMap::new(),
            accept_tasks_per_invitation: HashMap::new(),
            company_names: HashMap::new(),
            solutions: HashMap::new(),
            snapshots: Default::default(),
            tags: Default::default(),
            settings: Default::default(),
            generation: 0,
            injected_task_failures: 0,
            pending: BinaryHeap::new(),
            // ids come from their own generator so that the fault sequence is independent
            rng: StdRng::seed_from_u64(seed ^ ID_SEED_SALT),
        }
    }

    /// Load a state file; `Ok(None)` when it does not exist.
    pub fn load(path: &Path, seed: u64) -> std::io::Result<Option<State>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |why: String| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: {why}; remove the file or point --state at another path",
                    path.display()
                ),
            )
        };
        let head: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let format = head.get("format").and_then(Value::as_u64);
        if format != Some(STATE_FORMAT as u64) {
            return Err(bad(format!(
                "state format {format:?} is not supported (this build reads {STATE_FORMAT})"
            )));
        }
        let mut st: State = serde_json::from_value(head).map_err(|e| bad(e.to_string()))?;
        st.rng = StdRng::seed_from_u64(seed ^ ID_SEED_SALT ^ st.seq);
        st.pending = st
            .tasks
            .values()
            .filter(|t| t.status == TaskStatus::InProgress)
            .map(|t| Reverse((t.due_at, t.seq, t.id.clone())))
            .collect();
        Ok(Some(st))
    }

    /// Write the state file atomically and durably (see the module rules).
    #[cfg(test)]
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    /// The state file's bytes.
    pub fn to_bytes(&self) -> std::io::Result<Vec<u8>> {
        Ok(serde_json::to_vec_pretty(self)?)
    }

    /// Record that something changed.
    pub fn touch(&mut self) {
        self.generation += 1;
    }

    /// The company name of a partner account: the fixture's name when one was given, `AWS` for
    /// the sender `aws`, else `Partner <account>`.
    pub fn company_name(&self, account: &str) -> String {
        match self.company_names.get(account) {
            Some(n) => n.clone(),
            None if account == "aws" => "AWS".into(),
            None => format!("Partner {account}"),
        }
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn token(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| ALNUM[self.rng.random_range(0..ALNUM.len())] as char)
            .collect()
    }

    pub fn new_engagement_id(&mut self) -> String {
        loop {
            let id = format!("eng-{}", self.token(14));
            if !self.engagements.contains_key(&id) {
                return id;
            }
        }
    }
    pub fn new_invitation_id(&mut self) -> String {
        loop {
            let id = format!("engi-{}", self.token(13));
            if !self.invitations.contains_key(&id) {
                return id;
            }
        }
    }
    pub fn new_task_id(&mut self) -> String {
        loop {
            let id = format!("task-{}", self.token(13));
            if !self.tasks.contains_key(&id) {
                return id;
            }
        }
    }
    /// Prospecting tasks have 14 characters after `task-` (`ProspectingTaskIdentifier`), the
    /// engagement tasks 13.
    pub fn new_prospecting_task_id(&mut self) -> String {
        loop {
            let id = format!("task-{}", self.token(14));
            if !self.tasks.contains_key(&id) {
                return id;
            }
        }
    }
    pub fn new_job_id(&mut self) -> String {
        format!("job-{}", self.token(13))
    }
    pub fn new_opportunity_id(&mut self) -> String {
        loop {
            let n: u64 = self.rng.random_range(1_000_000_000..10_000_000_000);
            let id = format!("O{n}");
            if !self.opportunities.contains_key(&id) {
                return id;
            }
        }
    }
}

fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

fn open_private(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Write `bytes` to `path` atomically: `path.tmp` (mode 0600) written and fsynced, renamed
/// over `path`, then the directory fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = sibling(path, ".tmp");
    let _ = std::fs::remove_file(&tmp); // a stale one may have other permissions
    let mut f = open_private(&tmp, true)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The exclusive lock on a state file (`FILE.lock`), released when dropped or when the process
/// dies.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    /// Take the lock for the state file `path`, or fail at once naming the file and the pid of
    /// the emulator that holds it.
    pub fn acquire(path: &Path) -> std::io::Result<StateLock> {
        use fs4::fs_std::FileExt;
        use std::io::{Read, Seek, Write};
        let lpath = sibling(path, ".lock");
        let mut file = open_private(&lpath, false).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "--state {}: cannot open the lock file {}: {e}",
                    path.display(),
                    lpath.display()
                ),
            )
        })?;
        if !FileExt::try_lock_exclusive(&file)? {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let pid = text
                .split_whitespace()
                .nth(1)
                .map(str::to_string)
                .unwrap_or_else(|| "unknown".into());
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!(
                    "--state {}: the state file is in use by another emulator (pid {pid}, lock {}); \
                     stop that emulator first, or give this one another --state file",
                    path.display(),
                    lpath.display()
                ),
            ));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "pid {}", std::process::id());
        let _ = file.sync_all();
        Ok(StateLock { _file: file })
    }
}

/// The trailing id of an identifier that may be an ARN (`arn:...:.../engi-abc` → `engi-abc`).
pub fn bare_id(identifier: &str) -> &str {
    if identifier.starts_with("arn:") {
        identifier.rsplit('/').next().unwrap_or(identifier)
    } else {
        identifier
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_model_formats() {
        let mut s = State::new(7);
        let re = |p: &str| regex::Regex::new(&format!("^(?:{p})$")).unwrap();
        assert!(re("eng-[0-9a-z]{14}").is_match(&s.new_engagement_id()));
        assert!(re("engi-[0-9a-z]{13}").is_match(&s.new_invitation_id()));
        assert!(re("task-[0-9a-z]{13}").is_match(&s.new_task_id()));
        assert!(re("task-[0-9a-z]{14}").is_match(&s.new_prospecting_task_id()));
        assert!(re("job-[0-9a-z]{13}").is_match(&s.new_job_id()));
        assert!(re("O[0-9]{1,19}").is_match(&s.new_opportunity_id()));
        assert_eq!(
            bare_id("arn:aws:partnercentral::1:AWS/engagement-invitation/engi-x"),
            "engi-x"
        );
        assert_eq!(bare_id("engi-x"), "engi-x");
    }

    #[test]
    fn timestamps_are_iso8601_with_millis() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn state_round_trips_through_a_file_and_rejects_other_formats() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        let mut s = State::new(1);
        let id = s.new_engagement_id();
        s.engagements.insert(
            id.clone(),
            Engagement {
                id: id.clone(),
                arn: "arn:x".into(),
                catalog: "Sandbox".into(),
                seq: 1,
                title: Some("t".into()),
                description: None,
                contexts: None,
                created_at: 1,
                created_by: "111111111111".into(),
                modified_at: 1,
                modified_by: "111111111111".into(),
                members: vec!["111111111111".into()],
            },
        );
        s.save(&p).unwrap();
        let back = State::load(&p, 1).unwrap().unwrap();
        assert_eq!(back.engagements[&id].title.as_deref(), Some("t"));
        std::fs::write(&p, r#"{"format": 2}"#).unwrap();
        let e = State::load(&p, 1).unwrap_err();
        assert!(e.to_string().contains("format"), "{e}");
        assert!(State::load(&dir.path().join("none.json"), 1)
            .unwrap()
            .is_none());
    }

    #[cfg(unix)]
    #[test]
    fn state_files_are_private_and_locked_against_a_second_holder() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        std::fs::write(&p, "{}").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        State::new(1).save(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let lock = StateLock::acquire(&p).unwrap();
        let lmode = std::fs::metadata(dir.path().join("state.json.lock"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(lmode, 0o600);
        let e = StateLock::acquire(&p).unwrap_err().to_string();
        assert!(e.contains(&p.display().to_string()), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(lock);
        StateLock::acquire(&p).unwrap();
    }
}
