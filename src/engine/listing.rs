//! Listing the rows of `input.list` when a run starts: every page of the List action, at its
//! quota class through the same limiters as the run, retried like any call; each item kept
//! when `input.where` is true; written to the run directory's `rows.jsonl`
//! ([`crate::input::listed`]) before any row runs.
//!
//! Owns the listing loop. Must not touch: the journal (the listing is a read: a kill during it
//! leaves no `rows.jsonl`, and resume lists again; a kill after it finds the file and keeps
//! it), the coordinator's state.

use super::api::{ApiClient, ApiError, ErrorKind};
use super::limits::{backoff, Limits};
use crate::input::listed::{self, ListedHeader};
use crate::plan::Campaign;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Why listing failed.
#[derive(Debug)]
pub enum ListFailure {
    Api(ApiError),
    /// `input.where` could not be evaluated on an item.
    Filter {
        index: usize,
        message: String,
    },
    /// A rolling daily budget is used up.
    Daily(String),
    Io(std::io::Error),
}

impl std::fmt::Display for ListFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListFailure::Api(e) => write!(f, "listing the rows: {e}"),
            ListFailure::Filter { index, message } => {
                write!(f, "input.where on listed item {}: {message}", index + 1)
            }
            ListFailure::Daily(m) => write!(f, "listing the rows: {m}"),
            ListFailure::Io(e) => write!(f, "writing the listed rows: {e}"),
        }
    }
}

/// What a listing did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    pub pages: u64,
    pub items: u64,
    pub kept: u64,
    /// Every request sent (retries included): when it left, how long its answer took, its
    /// error code; journaled as `Call` records, so the daily budgets and the report count them.
    pub attempts: Vec<(std::time::SystemTime, Duration, Option<String>)>,
}

const MAX_ATTEMPTS: u32 = 8;

async fn call<C: ApiClient>(
    client: &C,
    limits: &Limits,
    op: &str,
    request: &Value,
    attempts: &mut Vec<(std::time::SystemTime, Duration, Option<String>)>,
) -> Result<Value, ListFailure> {
    let mut attempt = 0;
    loop {
        limits.acquire(op).await.map_err(|d| {
            ListFailure::Daily(format!("the {} quota's rolling window is used up", d.class))
        })?;
        let (left, t0) = (std::time::SystemTime::now(), std::time::Instant::now());
        let answer = client.call(op, request.clone()).await;
        attempts.push((
            left,
            t0.elapsed(),
            answer.as_ref().err().map(|e| e.code.clone()),
        ));
        match answer {
            Ok(v) => {
                limits.succeeded(op);
                return Ok(v);
            }
            Err(e) => {
                if e.kind == ErrorKind::Throttling {
                    limits.throttled(op);
                }
                attempt += 1;
                if !e.retryable() || attempt >= MAX_ATTEMPTS {
                    return Err(ListFailure::Api(e));
                }
                tokio::time::sleep(backoff(
                    attempt - 1,
                    Duration::from_millis(200),
                    Duration::from_secs(20),
                ))
                .await;
            }
        }
    }
}

/// List every page of the campaign's `input.list`, keep the items `input.where` keeps, and
/// write them to `path` (atomically). An earlier complete file at `path` is kept as it is
/// (the rows a run started with stay its rows).
pub async fn list_rows<C: ApiClient>(
    client: &C,
    limits: &Limits,
    campaign: &Campaign,
    path: &Path,
) -> Result<Option<Listed>, ListFailure> {
    if listed::ListedReader::open(path, &path.display().to_string()).is_ok() {
        return Ok(None);
    }
    let l = campaign
        .list_input()
        .expect("list_rows is called for input.list campaigns");
    let pg = l.paginator;
    let mut request = l.request.clone();
    let mut kept = Vec::new();
    let mut done = Listed::default();
    loop {
        let page = call(client, limits, &l.action, &request, &mut done.attempts).await?;
        done.pages += 1;
        let items = page
            .get(&pg.result_key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for item in items {
            let index = done.items as usize;
            done.items += 1;
            match campaign.keep_listed(&item) {
                Ok(true) => kept.push(item),
                Ok(false) => {}
                Err(message) => return Err(ListFailure::Filter { index, message }),
            }
        }
        match page
            .get(&pg.output_token)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            Some(t) => request[pg.input_token.as_str()] = Value::String(t.to_string()),
            None => break,
        }
    }
    done.kept = kept.len() as u64;
    let header = ListedHeader {
        action: l.action.clone(),
        request: l.request.clone(),
        filter: l.filter.as_ref().map(|(src, _)| src.clone()),
        listed_at: crate::journal::timestamp(),
        count: done.kept,
        sha256: String::new(),
    };
    listed::write(path, &header, &kept).map_err(ListFailure::Io)?;
    Ok(Some(done))
}
