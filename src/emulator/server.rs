//! The HTTP layer: AWS JSON 1.0 framing, SigV4 identity, body limits, faults, quotas, stats,
//! STS routing and write-through persistence.
//!
//! Write-through rule: with `persist_every_write`, every request that changed the state (a
//! write, or a read that completed a due task) writes the state file atomically before its
//! response is sent, so whatever a client was told survives `kill -9`. A failed write answers
//! `InternalServerException` naming the file (the change is then only in memory).

use super::config::Fault;
use super::error::ApiError;
use super::limits::{FaultGen, Limiter};
use super::ops::{self, Ctx, OPERATIONS};
use super::state::{now_ms, write_atomic, InvitationStatus, State, StateLock, TaskStatus};
use super::sts;
use super::EmulatorConfig;
use crate::model::{model, ErrorCode, Violation, DEFERRED_PREFIX};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;
const TARGET_PREFIX: &str = "AWSPartnerCentralSelling.";
const JSON_1_0: &str = "application/x-amz-json-1.0";

#[derive(Default)]
pub struct Stats {
    /// Per operation of [`OPERATIONS`], by index.
    calls: Vec<AtomicU64>,
    throttled: AtomicU64,
    fault_throttle: AtomicU64,
    fault_internal: AtomicU64,
    fault_reset_before: AtomicU64,
    fault_reset_after: AtomicU64,
    fault_latency: AtomicU64,
    idempotent_replays: AtomicU64,
    sts_calls: AtomicU64,
}

/// Everything the connections share.
pub struct Shared {
    pub config: EmulatorConfig,
    pub state: Mutex<State>,
    limiter: Limiter,
    faults: FaultGen,
    stats: Stats,
    /// The generation last written to the state file (write-through); also serialises writes.
    saved: Mutex<u64>,
    /// The lock on the state file, held until shutdown.
    pub state_lock: Mutex<Option<StateLock>>,
}

/// The error a service returns to make hyper drop the connection without an answer.
#[derive(Debug)]
pub struct InjectedReset;

impl std::fmt::Display for InjectedReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection reset")
    }
}
impl std::error::Error for InjectedReset {}

impl Shared {
    pub fn new(config: EmulatorConfig, state: State, state_lock: Option<StateLock>) -> Shared {
        Shared {
            limiter: Limiter::with_budgets(
                config.quotas,
                config.daily.clone(),
                config.quota_window,
            ),
            faults: FaultGen::new(config.faults, config.seed),
            saved: Mutex::new(0),
            state: Mutex::new(state),
            stats: Stats {
                calls: OPERATIONS.iter().map(|_| AtomicU64::new(0)).collect(),
                ..Stats::default()
            },
            state_lock: Mutex::new(state_lock),
            config,
        }
    }

    /// Write-through: write the state file when the state changed since the last write.
    pub fn persist_if_changed(&self) -> std::io::Result<()> {
        let (Some(path), true) = (&self.config.state, self.config.persist_every_write) else {
            return Ok(());
        };
        let (generation, bytes) = {
            let st = self.lock();
            if st.generation == *self.saved.lock().unwrap_or_else(|p| p.into_inner()) {
                return Ok(());
            }
            (st.generation, st.to_bytes()?)
        };
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        // a later snapshot, already written, contains this one's changes
        if generation > *saved {
            write_atomic(path, &bytes)?;
            *saved = generation;
        }
        Ok(())
    }

    /// Write the state file now (shutdown).
    pub fn save_now(&self) -> std::io::Result<()> {
        let Some(path) = &self.config.state else {
            return Ok(());
        };
        let (generation, bytes) = {
            let st = self.lock();
            (st.generation, st.to_bytes()?)
        };
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        write_atomic(path, &bytes)?;
        *saved = (*saved).max(generation);
        Ok(())
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ttl_ms(&self) -> i64 {
        self.config.invitation_ttl.as_millis() as i64
    }

    /// The `/_emulator/stats` document.
    pub fn stats(&self) -> Value {
        let s = &self.stats;
        let mut calls = serde_json::Map::new();
        for (i, op) in OPERATIONS.iter().enumerate() {
            calls.insert((*op).into(), s.calls[i].load(Relaxed).into());
        }
        let now = now_ms();
        let mut st = self.lock();
        ops::settle(&mut st, now, self.ttl_ms());
        let mut by_status = serde_json::Map::new();
        for status in [
            InvitationStatus::Pending,
            InvitationStatus::Accepted,
            InvitationStatus::Rejected,
            InvitationStatus::Expired,
        ] {
            let n = st
                .invitations
                .values()
                .filter(|i| i.status_at(now) == status)
                .count();
            by_status.insert(status.as_str().into(), n.into());
        }
        let mut tasks_by_status = serde_json::Map::new();
        for status in [
            TaskStatus::InProgress,
            TaskStatus::Complete,
            TaskStatus::Failed,
        ] {
            let n = st.tasks.values().filter(|t| t.status == status).count();
            tasks_by_status.insert(status.as_str().into(), n.into());
        }
        let (rb, ra) = (
            s.fault_reset_before.load(Relaxed),
            s.fault_reset_after.load(Relaxed),
        );
        json!({
            "calls": calls,
            "throttled": s.throttled.load(Relaxed),
            "faults": {
                "throttle": s.fault_throttle.load(Relaxed),
                "internal": s.fault_internal.load(Relaxed),
                "reset": rb + ra,
                "reset_before_effect": rb,
                "reset_after_effect": ra,
                "latency": s.fault_latency.load(Relaxed),
                "task_failure": st.injected_task_failures,
            },
            "sts_calls": s.sts_calls.load(Relaxed),
            "idempotent_replays": s.idempotent_replays.load(Relaxed),
            "resources": {
                "engagements": st.engagements.len(),
                "invitations": st.invitations.len(),
                "opportunities": st.opportunities.len(),
                "associations": st.opportunities.values()
                    .map(|o| o.related.values().map(Vec::len).sum::<usize>()).sum::<usize>(),
                "solutions": st.solutions.len(),
                "tasks": st.tasks.len(),
                "resource_snapshots": st.snapshots.snapshots.len(),
                "resource_snapshot_jobs": st.snapshots.jobs.len(),
                "tagged_resources": st.tags.by_arn.len(),
            },
            "invitations_by_status": by_status,
            "tasks_by_status": tasks_by_status,
            "submissions_per_opportunity_max":
                st.opportunities.values().map(|o| o.submissions).max().unwrap_or(0),
            "tasks_started_per_invitation_max":
                st.accept_tasks_per_invitation.values().copied().max().unwrap_or(0),
        })
    }
}

pub(super) fn request_id() -> String {
    let r: u128 = rand::random();
    let h = format!("{r:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn respond(status: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_1_0));
    if let Ok(v) = HeaderValue::from_str(&request_id()) {
        h.insert("x-amzn-requestid", v);
    }
    r
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    let mut r = respond(e.status, e.body());
    if let Ok(v) = HeaderValue::from_str(e.shape) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

/// The partner account of a SigV4 request: the access key id of `Credential=AKID/...` when it
/// is 12 digits, else the default account. `None` when the request is not signed. The header
/// value is never logged.
pub fn caller_account(authorization: Option<&HeaderValue>, default: &str) -> Option<String> {
    let v = authorization?.to_str().ok()?;
    if !v.starts_with("AWS4-") {
        return None;
    }
    let akid = v
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .unwrap_or("");
    if akid.len() == 12 && akid.bytes().all(|b| b.is_ascii_digit()) {
        Some(akid.to_string())
    } else {
        Some(default.to_string())
    }
}

/// Serve one HTTP request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, InjectedReset> {
    if req.uri().path() == "/_emulator/stats" && req.method() == Method::GET {
        let body = serde_json::to_vec_pretty(&shared.stats()).unwrap_or_default();
        let mut r = respond(200, body);
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(r);
    }
    if req.method() == Method::POST && req.uri().path() == "/" && sts::is_sts(&req) {
        shared.stats.sts_calls.fetch_add(1, Relaxed);
        let account = caller_account(
            req.headers().get("authorization"),
            &shared.config.default_account,
        );
        return Ok(sts::handle(req, account, &request_id()).await);
    }
    let answer = api(&shared, req).await;
    if let Err(e) = shared.persist_if_changed() {
        let path = shared
            .config
            .state
            .as_deref()
            .unwrap_or(std::path::Path::new(""));
        tracing::error!(
            "emulator: cannot write the state file {}: {e}",
            path.display()
        );
        return Ok(error_response(&ApiError::internal(format!(
            "The emulator could not write its state file {} ({e}); the change is in memory \
             only. Fix the file system problem; the next request retries the write",
            path.display()
        ))));
    }
    match answer {
        Ok(r) => Ok(r),
        Err(Failure::Api(e)) => {
            let mut r = error_response(&e);
            if e.status == 413 || e.status == 408 {
                // the unread body makes the connection unusable
                r.headers_mut()
                    .insert("connection", HeaderValue::from_static("close"));
            }
            Ok(r)
        }
        Err(Failure::Reset) => Err(InjectedReset),
    }
}

enum Failure {
    Api(ApiError),
    Reset,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

async fn api(shared: &Shared, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Failure> {
    if req.method() != Method::POST || req.uri().path() != "/" {
        return Err(ApiError::unknown_operation(format!(
            "{} {} is not an API route: the API is POST / (AWS JSON 1.0); stats are at GET /_emulator/stats",
            req.method(),
            req.uri().path()
        ))
        .into());
    }
    let headers = req.headers();
    let account = caller_account(headers.get("authorization"), &shared.config.default_account)
        .ok_or_else(ApiError::missing_auth)?;
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let op_name = target.strip_prefix(TARGET_PREFIX).unwrap_or("");
    let Some(op_idx) = ops::op_index(op_name) else {
        return Err(ApiError::unknown_operation(if target.is_empty() {
            "Missing X-Amz-Target header: expected AWSPartnerCentralSelling.<Operation>".to_string()
        } else {
            format!("Operation {target} is not supported")
        })
        .into());
    };
    let op = OPERATIONS[op_idx];
    shared.stats.calls[op_idx].fetch_add(1, Relaxed);
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.split(';').next().map(str::trim) != Some(JSON_1_0) {
        return Err(ApiError::serialization(format!(
            "Content-Type must be {JSON_1_0} (got {:?})",
            ct
        ))
        .into());
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(ApiError::too_large(MAX_BODY).into());
    }

    let fault = shared.faults.draw();
    match fault {
        Fault::None => {}
        Fault::Latency(d) => {
            shared.stats.fault_latency.fetch_add(1, Relaxed);
            tokio::time::sleep(d).await;
        }
        Fault::Throttle => {
            shared.stats.fault_throttle.fetch_add(1, Relaxed);
            return Err(ApiError::throttling("Rate exceeded (injected fault)").into());
        }
        Fault::Internal => {
            shared.stats.fault_internal.fetch_add(1, Relaxed);
            return Err(ApiError::internal(
                "An internal error occurred; retry the request (injected fault)",
            )
            .into());
        }
        Fault::ResetBefore => {
            shared.stats.fault_reset_before.fetch_add(1, Relaxed);
            return Err(Failure::Reset);
        }
        Fault::ResetAfter => {}
    }

    let read = Limited::new(req.into_body(), MAX_BODY).collect();
    let read_timeout = shared.config.header_read_timeout;
    let Ok(read) = tokio::time::timeout(read_timeout, read).await else {
        return Err(ApiError::request_timeout(read_timeout).into());
    };
    let bytes = match read {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(ApiError::too_large(MAX_BODY).into());
            }
            return Err(
                ApiError::serialization(format!("could not read the request body: {e}")).into(),
            );
        }
    };

    if let Err(m) = shared.limiter.charge(&account, op) {
        shared.stats.throttled.fetch_add(1, Relaxed);
        return Err(ApiError::throttling(m).into());
    }

    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::serialization(format!("The request body is not valid JSON: {e}"))
        })?
    };
    if !body.is_object() {
        return Err(ApiError::serialization("The request body must be a JSON object").into());
    }
    let mut violations = model().validate_input(op, &body);
    deferred_placeholders(&body, &mut String::new(), &mut violations);
    if !violations.is_empty() {
        return Err(ApiError::request_validation(&violations).into());
    }
    let ctx = Ctx {
        account: &account,
        now: now_ms(),
        ttl_ms: shared.ttl_ms(),
        task_delay_ms: shared.config.task_delay.as_millis() as i64,
        task_failure: if op.starts_with("Start") {
            shared.faults.draw_task_failure()
        } else {
            None
        },
    };
    let outcome = {
        let mut st = shared.lock();
        ops::execute(&mut st, op, &ctx, &body)?
    };
    if outcome.replay {
        shared.stats.idempotent_replays.fetch_add(1, Relaxed);
    }
    if fault == Fault::ResetAfter {
        shared.stats.fault_reset_after.fetch_add(1, Relaxed);
        return Err(Failure::Reset);
    }
    Ok(respond(200, outcome.body))
}

/// The model validator lets the engine's run-time placeholders (`DEFERRED_PREFIX`) through for
/// offline checks; the service must not: a placeholder on the wire is a malformed value.
fn deferred_placeholders(v: &Value, path: &mut String, out: &mut Vec<Violation>) {
    match v {
        Value::String(s) if s.starts_with(DEFERRED_PREFIX) => out.push(Violation {
            path: path.clone(),
            code: ErrorCode::InvalidStringFormat,
            message: "is an unresolved run-time placeholder, not a value".into(),
            suggestion: None,
        }),
        Value::Object(m) => {
            for (k, x) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                deferred_placeholders(x, path, out);
                path.truncate(len);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                deferred_placeholders(x, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_time_placeholders_are_refused_on_the_wire() {
        let body = json!({"Catalog": "AWS", "Identifier": format!("{DEFERRED_PREFIX}steps.a.Id"),
            "List": [1, {"X": format!("{DEFERRED_PREFIX}y")}]});
        let mut out = Vec::new();
        deferred_placeholders(&body, &mut String::new(), &mut out);
        let paths: Vec<&str> = out.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, ["Identifier", "List[1].X"]);
        assert!(
            model()
                .validate_input("GetEngagementInvitation", &body)
                .len()
                == 1
        );
    }

    #[test]
    fn account_rule() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        let sig = |k: &str| {
            h(&format!(
                "AWS4-HMAC-SHA256 Credential={k}/20261122/us-east-1/partnercentral-selling/aws4_request, SignedHeaders=host, Signature=abc"
            ))
        };
        assert_eq!(
            caller_account(Some(&sig("222222222222")), "111122223333").as_deref(),
            Some("222222222222")
        );
        assert_eq!(
            caller_account(Some(&sig("AKIDEXAMPLE")), "111122223333").as_deref(),
            Some("111122223333")
        );
        assert_eq!(caller_account(None, "1"), None);
        assert_eq!(caller_account(Some(&h("Bearer x")), "1"), None);
    }
}
