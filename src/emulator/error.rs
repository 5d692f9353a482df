//! AWS JSON 1.0 error responses: `{"__type": "<Shape>", "message": ..., "Message": ...}` with
//! the HTTP status AWS uses for the shape.

use crate::model::Violation;
use serde_json::{json, Map, Value};

/// One error answer of the emulator.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub shape: &'static str,
    pub message: String,
    /// Extra members of the error shape (`Reason`, `ErrorList`).
    pub extra: Map<String, Value>,
}

impl ApiError {
    fn new(status: u16, shape: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            shape,
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// Request validation failed (`REQUEST_VALIDATION_FAILED`), one entry per violation.
    pub fn request_validation(violations: &[Violation]) -> Self {
        let list: Vec<Value> = violations
            .iter()
            .map(|v| json!({"FieldName": v.path, "Code": v.code.as_str(), "Message": v.message}))
            .collect();
        let first = &violations[0];
        let mut message = format!(
            "{} validation error(s) detected: {} ({}): {}",
            violations.len(),
            if first.path.is_empty() {
                "request"
            } else {
                &first.path
            },
            first.code.as_str(),
            first.message
        );
        if violations.len() > 1 {
            message.push_str(" (see ErrorList for all)");
        }
        let mut e = ApiError::new(400, "ValidationException", message);
        e.extra
            .insert("Reason".into(), "REQUEST_VALIDATION_FAILED".into());
        e.extra.insert("ErrorList".into(), Value::Array(list));
        e
    }

    /// A business rule failed (`BUSINESS_VALIDATION_FAILED`) at `field`.
    pub fn business(field: &str, code: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = ApiError::new(400, "ValidationException", message.clone());
        e.extra
            .insert("Reason".into(), "BUSINESS_VALIDATION_FAILED".into());
        e.extra.insert(
            "ErrorList".into(),
            json!([{"FieldName": field, "Code": code, "Message": message}]),
        );
        e
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(400, "ConflictException", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(400, "ResourceNotFoundException", message)
    }
    pub fn access_denied(message: impl Into<String>) -> Self {
        ApiError::new(403, "AccessDeniedException", message)
    }
    pub fn service_quota_exceeded(message: impl Into<String>) -> Self {
        ApiError::new(400, "ServiceQuotaExceededException", message)
    }
    pub fn throttling(message: impl Into<String>) -> Self {
        ApiError::new(400, "ThrottlingException", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, "InternalServerException", message)
    }
    pub fn serialization(message: impl Into<String>) -> Self {
        ApiError::new(400, "SerializationException", message)
    }
    pub fn unknown_operation(message: impl Into<String>) -> Self {
        ApiError::new(400, "UnknownOperationException", message)
    }
    pub fn missing_auth() -> Self {
        ApiError::new(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token: the request has no SigV4 Authorization header",
        )
    }
    /// The request body did not arrive within the read timeout.
    pub fn request_timeout(after: std::time::Duration) -> Self {
        ApiError::new(
            408,
            "RequestTimeoutException",
            format!(
                "The request body was not received within {after:?}; send the whole request at once"
            ),
        )
    }
    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            413,
            "RequestEntityTooLargeException",
            format!("Request body exceeds the limit of {limit} bytes"),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        let mut m = Map::new();
        m.insert("__type".into(), self.shape.into());
        m.insert("message".into(), self.message.clone().into());
        m.insert("Message".into(), self.message.clone().into());
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.shape, self.message)
    }
}
