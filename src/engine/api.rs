//! The one narrow interface between the engine and Partner Central.
//!
//! The engine sends an operation name and a request body that the model validator accepted
//! (the API's JSON, with the API's member names) and receives the response body as JSON with
//! the API's member names, or a classified error. The production implementation is the AWS SDK
//! (`sdk.rs`); nothing else in the engine knows how requests travel.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::future::Future;

/// How the engine should treat a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// `ThrottlingException`: slow the class down and retry.
    Throttling,
    /// 5xx / `InternalServerException`: retry with backoff.
    Server,
    /// Connection reset, timeout, DNS: retry with backoff (same ClientToken).
    Transport,
    /// Any other service error (`ValidationException`, `ConflictException`,
    /// `ResourceNotFoundException`, `AccessDeniedException`, ...): fails the step.
    Client,
    /// Credentials or configuration could not be resolved: stops the run.
    Config,
}

/// A failed call, classified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub kind: ErrorKind,
    /// The error shape (`ThrottlingException`, `ValidationException`, ...) or a transport label.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Throttling | ErrorKind::Server | ErrorKind::Transport
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Partner Central, as the engine sees it.
pub trait ApiClient: Send + Sync + 'static {
    /// Send one request. `operation` is the API operation name (`CreateEngagementInvitation`);
    /// `request` the full request body including `Catalog` and `ClientToken`.
    /// One attempt: the engine owns retries.
    fn call(
        &self,
        operation: &str,
        request: Value,
    ) -> impl Future<Output = Result<Value, ApiError>> + Send;
}
