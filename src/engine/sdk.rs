//! The production [`ApiClient`]: Partner Central through the real AWS SDK.
//!
//! Owns: building the SDK client (credential chain, profile, region, endpoint, timeouts,
//! retries off), sending a validated request JSON as a TYPED SDK input (the conversion is
//! generated into `sdk_gen.rs` by `schemas/gen_sdk.py`), capturing the response body exactly as
//! the service sent it, and classifying `SdkError`s into [`ApiError`]s.
//!
//! Must not touch: retries and backoff (the engine owns them; the SDK makes one attempt),
//! request validation (the model does it before the engine calls), the journal and ledger.
//! Never puts credentials or `Authorization` headers into messages.

use super::api::{ApiClient, ApiError, ErrorKind};
use super::sdk_gen;
use aws_sdk_partnercentralselling::config::retry::RetryConfig;
use aws_sdk_partnercentralselling::config::timeout::TimeoutConfig;
use aws_sdk_partnercentralselling::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_partnercentralselling::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_partnercentralselling::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use super::sdk_gen::{SDK_DEFAULTED_MEMBERS, SUPPORTED_OPERATIONS};

/// How long establishing a TCP/TLS connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt (send, wait, read the response) may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Send to this endpoint instead of the one the SDK resolves (e.g. a `cosell emulator`).
    pub endpoint_url: Option<String>,
    /// Named profile from `~/.aws/config` (default: the standard chain).
    pub profile: Option<String>,
    pub region: String,
    /// `(access key id, secret)`: bypass the credential chain (used by `--emulate`).
    pub static_credentials: Option<(String, String)>,
}

/// Partner Central through the AWS SDK. Cheap to clone (the SDK client is an `Arc` inside).
#[derive(Debug, Clone)]
pub struct SdkClient {
    client: Client,
    /// STS on the same configuration, to learn which partner account the credentials are.
    sts: Option<aws_sdk_sts::Client>,
}

impl SdkClient {
    /// Build a client from the default AWS configuration chain (environment, profiles, SSO,
    /// `AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING`, ...) with `opts` as overrides, and resolve
    /// credentials once so that missing or expired credentials stop the run before any step.
    pub async fn connect(opts: &ConnectOptions) -> Result<SdkClient, ApiError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(opts.region.clone()))
            // The engine owns retries: it knows the quota classes, keeps the ClientToken for
            // idempotent replays, journals every attempt and backs off per class. SDK retries
            // underneath would multiply attempts and hide throttling from the rate limiters,
            // so the SDK makes exactly one attempt.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            );
        if let Some(profile) = &opts.profile {
            // Like the AWS CLI's --profile: the named profile's credentials (static, SSO,
            // credential_process, assume-role) win over AWS_ACCESS_KEY_ID & co. in the
            // environment, and a missing profile is reported as such.
            loader = loader.profile_name(profile).credentials_provider(
                aws_config::profile::ProfileFileCredentialsProvider::builder()
                    .profile_name(profile)
                    .build(),
            );
        }
        if let Some(url) = &opts.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some((key_id, secret)) = &opts.static_credentials {
            loader = loader.credentials_provider(Credentials::new(
                key_id,
                secret,
                None,
                None,
                "cosell-static",
            ));
        }
        let conf = loader.load().await;
        let Some(provider) = conf.credentials_provider() else {
            return Err(config_error(opts, "no credentials provider is configured"));
        };
        use aws_credential_types::provider::ProvideCredentials;
        match provider.provide_credentials().await {
            Ok(creds) => {
                if let Some(expiry) = creds.expiry() {
                    if expiry <= std::time::SystemTime::now() {
                        return Err(config_error(opts, "the credentials have expired"));
                    }
                }
            }
            Err(e) => {
                use aws_credential_types::provider::error::CredentialsError;
                let what = match (&e, &opts.profile) {
                    (CredentialsError::CredentialsNotLoaded(_), Some(p)) => format!(
                        "no credentials found for profile {p} (is it defined in \
                         ~/.aws/config or ~/.aws/credentials?){}",
                        std::error::Error::source(&e)
                            .map(|s| format!(": {s}"))
                            .unwrap_or_default()
                    ),
                    (CredentialsError::CredentialsNotLoaded(_), None) => {
                        format!("no credentials found: {}", chain(&e))
                    }
                    _ => format!("credentials could not be loaded: {}", chain(&e)),
                };
                return Err(config_error(opts, &what));
            }
        }
        // STS answers "which account is this": at the same endpoint when one is given (an
        // emulator or a proxy of Partner Central answers it too), otherwise wherever the
        // configuration sends STS (AWS_ENDPOINT_URL_STS, or the real service).
        let mut sts = aws_sdk_sts::config::Builder::from(&conf);
        let custom = opts
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING").ok())
            .filter(|u| !u.is_empty());
        if let Some(url) = custom {
            if std::env::var_os("AWS_ENDPOINT_URL_STS").is_none() {
                sts = sts.endpoint_url(url);
            }
        }
        Ok(SdkClient {
            client: Client::new(&conf),
            sts: Some(aws_sdk_sts::Client::from_conf(sts.build())),
        })
    }

    /// Wrap an SDK client built elsewhere (tests, emulator harnesses). Configure it with
    /// `RetryConfig::disabled()`: the engine owns retries.
    pub fn from_client(client: Client) -> SdkClient {
        SdkClient { client, sts: None }
    }

    /// The partner account the credentials belong to (STS GetCallerIdentity), one attempt.
    pub async fn caller_account(&self) -> Result<String, ApiError> {
        let Some(sts) = &self.sts else {
            return Err(ApiError {
                kind: ErrorKind::Config,
                code: "NoSts".into(),
                message: "this client was built without STS".into(),
            });
        };
        let out = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(map_sdk_error)?;
        out.account().map(str::to_string).ok_or_else(|| ApiError {
            kind: ErrorKind::Transport,
            code: "InvalidResponse".into(),
            message: "GetCallerIdentity answered without an account".into(),
        })
    }

    /// The underlying SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn call_inner(&self, operation: &str, request: &Value) -> Result<Value, ApiError> {
        let capture = BodyCapture::default();
        match sdk_gen::dispatch(&self.client, operation, request, capture.clone()).await {
            None => Err(ApiError {
                kind: ErrorKind::Client,
                code: "UnsupportedOperation".into(),
                message: format!(
                    "operation {operation} is not an operation of the Partner Central Selling \
                     API; supported: {}",
                    SUPPORTED_OPERATIONS.join(", ")
                ),
            }),
            Some(Err(e)) => Err(e),
            Some(Ok(())) => capture.json(),
        }
    }
}

impl ApiClient for SdkClient {
    fn call(
        &self,
        operation: &str,
        request: Value,
    ) -> impl Future<Output = Result<Value, ApiError>> + Send {
        let this = self.clone();
        let operation = operation.to_owned();
        async move { this.call_inner(&operation, &request).await }
    }
}

fn config_error(opts: &ConnectOptions, what: &str) -> ApiError {
    let fix = match &opts.profile {
        Some(p) => format!(
            "run `aws sso login --profile {p}`, or define profile {p} \
             (`aws configure sso --profile {p}` or `aws configure --profile {p}`)"
        ),
        None => "run `aws sso login`, pass --profile NAME, or set AWS_PROFILE or \
                 AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            .to_owned(),
    };
    ApiError {
        kind: ErrorKind::Config,
        code: "CredentialsError".into(),
        message: format!("{what}; fix: {fix}"),
    }
}

/// A per-request interceptor that keeps the raw response body after the SDK has read it.
#[derive(Debug, Clone, Default)]
pub(super) struct BodyCapture(Arc<Mutex<Option<bytes::Bytes>>>);

impl BodyCapture {
    /// The captured body as JSON; an empty body is `{}`.
    fn json(&self) -> Result<Value, ApiError> {
        let body = self.0.lock().expect("capture lock").take();
        let Some(body) = body else {
            return Err(ApiError {
                kind: ErrorKind::Transport,
                code: "InvalidResponse".into(),
                message: "the response body was not available after deserialization".into(),
            });
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&body).map_err(|e| ApiError {
            kind: ErrorKind::Transport,
            code: "InvalidResponse".into(),
            message: format!("the response body is not JSON: {e}"),
        })
    }
}

impl Intercept for BodyCapture {
    fn name(&self) -> &'static str {
        "cosell::BodyCapture"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Non-streaming operations have their body fully read into memory by now.
        if let Some(bytes) = context.response().body().bytes() {
            *self.0.lock().expect("capture lock") = Some(bytes::Bytes::copy_from_slice(bytes));
        }
        Ok(())
    }
}

/// An error and its sources as one line of their `Display` texts (no `Debug` dumps, which
/// can carry whole HTTP responses), skipping texts a source merely repeats.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(e) = cur {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// Service error codes that mean the caller's credentials are bad, not the request.
const CREDENTIAL_CODES: &[&str] = &[
    "ExpiredTokenException",
    "ExpiredToken",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "MissingAuthenticationTokenException",
];

/// Classify one SDK failure. Messages never carry request headers or credentials.
pub(super) fn map_sdk_error<E>(err: SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let Some(detail) = credentials_failure(&err) {
        return ApiError {
            kind: ErrorKind::Config,
            code: "CredentialsError".into(),
            message: format!(
                "credentials could not be resolved: {detail}; fix: run `aws sso login`, pass \
                 --profile NAME, or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            ),
        };
    }
    match &err {
        // The SDK reports an unparseable success response as an "unhandled" operation error.
        SdkError::ServiceError(ctx) if ctx.raw().status().is_success() => ApiError {
            kind: ErrorKind::Transport,
            code: "InvalidResponse".into(),
            message: format!(
                "the response (HTTP {}) could not be read: {}",
                ctx.raw().status().as_u16(),
                chain(&err)
            ),
        },
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let body = ctx
                .raw()
                .body()
                .bytes()
                .and_then(|b| serde_json::from_slice::<Value>(b).ok());
            service_error(status, ctx.err().code(), ctx.err().message(), body.as_ref())
        }
        SdkError::TimeoutError(_) => ApiError {
            kind: ErrorKind::Transport,
            code: "Timeout".into(),
            message: format!(
                "no complete response within the attempt timeout: {}",
                chain(&err)
            ),
        },
        SdkError::DispatchFailure(d) if d.is_user() => ApiError {
            kind: ErrorKind::Config,
            code: "EndpointError".into(),
            message: format!("the request could not be sent: {}", chain(&err)),
        },
        SdkError::DispatchFailure(d) => ApiError {
            kind: ErrorKind::Transport,
            code: if d.is_timeout() {
                "Timeout"
            } else {
                "ConnectionError"
            }
            .into(),
            message: format!(
                "the request could not be sent or its response not received: {}",
                chain(&err)
            ),
        },
        SdkError::ResponseError(r) => ApiError {
            kind: ErrorKind::Transport,
            code: "ResponseError".into(),
            message: format!(
                "unreadable response (HTTP {}): {}",
                r.raw().status().as_u16(),
                chain(&err)
            ),
        },
        SdkError::ConstructionFailure(_) => ApiError {
            kind: ErrorKind::Client,
            code: "ConstructionFailure".into(),
            message: format!("the request could not be built: {}", chain(&err)),
        },
        _ => ApiError {
            kind: ErrorKind::Client,
            code: "SdkError".into(),
            message: chain(&err).to_string(),
        },
    }
}

/// Classify a service error response from its status, code, message and parsed JSON body.
fn service_error(
    status: u16,
    code: Option<&str>,
    message: Option<&str>,
    body: Option<&Value>,
) -> ApiError {
    let code = code
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP{status}"));
    let kind = if code == "ThrottlingException" || status == 429 {
        ErrorKind::Throttling
    } else if code == "InternalServerException" || status >= 500 {
        ErrorKind::Server
    } else if CREDENTIAL_CODES.contains(&code.as_str()) {
        ErrorKind::Config
    } else {
        ErrorKind::Client
    };
    let mut msg = message.unwrap_or("").to_owned();
    if msg.is_empty() {
        msg = format!("HTTP {status}");
    }
    if let Some(body) = body {
        if let Some(reason) = body.get("Reason").and_then(Value::as_str) {
            msg.push_str(&format!(" (reason: {reason})"));
        }
        if let Some(list) = body.get("ErrorList").and_then(Value::as_array) {
            let entries: Vec<String> = list
                .iter()
                .map(|e| {
                    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
                    format!("{}: {} {}", s("FieldName"), s("Code"), s("Message"))
                        .trim_end()
                        .to_owned()
                })
                .collect();
            if !entries.is_empty() {
                msg.push_str(&format!(" [{}]", entries.join("; ")));
            }
        }
    }
    if kind == ErrorKind::Config {
        msg.push_str(
            "; fix: run `aws sso login`, pass --profile NAME, or set \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        );
    }
    ApiError {
        kind,
        code,
        message: msg,
    }
}

/// If the failure came from resolving credentials or region (the orchestrator reports those
/// as dispatch or construction failures), a readable description of it.
fn credentials_failure<E, R>(err: &SdkError<E, R>) -> Option<String>
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if matches!(err, SdkError::ServiceError(_)) {
        return None;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = source {
        if e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return Some(chain(e).to_string());
        }
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("no identity resolver") || text.contains("wasn't a valid option") {
            return Some("no credentials were found".into());
        }
        if text.contains("no auth scheme")
            || text.contains("credentials")
            || text.contains("no region")
            || text.contains("signing region")
        {
            return Some(chain(e).to_string());
        }
        source = e.source();
    }
    None
}

/// Conversion helpers used by the generated code: JSON (API member names) → SDK types.
pub(super) mod conv {
    use super::{ApiError, ErrorKind};
    use aws_smithy_types::date_time::Format;
    use aws_smithy_types::DateTime;
    use serde_json::{Map, Value};
    use std::collections::HashMap;

    /// A request body the SDK types cannot hold (the model validator normally prevents it).
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("request member {path}: {message}")]
    pub struct ConvError {
        pub path: String,
        pub message: String,
    }

    impl ConvError {
        fn new(path: &str, message: impl Into<String>) -> Self {
            ConvError {
                path: if path.is_empty() {
                    "(body)".into()
                } else {
                    path.into()
                },
                message: message.into(),
            }
        }
        pub fn into_api(self) -> ApiError {
            ApiError {
                kind: ErrorKind::Client,
                code: "InvalidRequest".into(),
                message: self.to_string(),
            }
        }
    }

    fn join(path: &str, name: &str) -> String {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    }

    fn type_name(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "list",
            Value::Object(_) => "object",
        }
    }

    /// An object whose keys are all members of the shape (nothing may be silently dropped).
    pub fn object<'a>(
        v: &'a Value,
        path: &str,
        members: &[&str],
    ) -> Result<&'a Map<String, Value>, ConvError> {
        let o = v.as_object().ok_or_else(|| {
            ConvError::new(path, format!("expected object, got {}", type_name(v)))
        })?;
        if let Some(k) = o.keys().find(|k| !members.contains(&k.as_str())) {
            return Err(ConvError::new(
                &join(path, k),
                format!("unknown member; expected one of {}", members.join(", ")),
            ));
        }
        Ok(o)
    }

    /// The one set member of a union object: `(name, value, path)`.
    pub fn union<'a>(
        v: &'a Value,
        path: &str,
        members: &[&'static str],
    ) -> Result<(&'static str, &'a Value, String), ConvError> {
        let o = object(v, path, members)?;
        let mut set = o.iter().filter(|(_, v)| !v.is_null());
        let (Some((k, inner)), None) = (set.next(), set.next()) else {
            return Err(ConvError::new(
                path,
                format!("a union needs exactly one of {}", members.join(", ")),
            ));
        };
        let name = members
            .iter()
            .find(|m| **m == k.as_str())
            .expect("object() checked the member");
        Ok((name, inner, join(path, k)))
    }

    /// A member of `o`, converted with `f`; absent or null is `None`.
    pub fn member<T>(
        o: &Map<String, Value>,
        path: &str,
        name: &str,
        f: impl Fn(&Value, &str) -> Result<T, ConvError>,
    ) -> Result<Option<T>, ConvError> {
        match o.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => f(v, &join(path, name)).map(Some),
        }
    }

    pub fn built<T>(
        r: Result<T, aws_smithy_types::error::operation::BuildError>,
        path: &str,
    ) -> Result<T, ConvError> {
        r.map_err(|e| ConvError::new(path, e.to_string()))
    }

    pub fn string(v: &Value, path: &str) -> Result<String, ConvError> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| ConvError::new(path, format!("expected string, got {}", type_name(v))))
    }

    pub fn long(v: &Value, path: &str) -> Result<i64, ConvError> {
        v.as_i64()
            .ok_or_else(|| ConvError::new(path, format!("expected integer, got {v}")))
    }

    pub fn integer(v: &Value, path: &str) -> Result<i32, ConvError> {
        let n = long(v, path)?;
        i32::try_from(n).map_err(|_| ConvError::new(path, format!("{n} does not fit in 32 bits")))
    }

    #[allow(dead_code)] // for generated code once the supported operations reach such a shape
    pub fn double(v: &Value, path: &str) -> Result<f64, ConvError> {
        v.as_f64()
            .ok_or_else(|| ConvError::new(path, format!("expected number, got {}", type_name(v))))
    }

    #[allow(dead_code)] // for generated code once the supported operations reach such a shape
    pub fn boolean(v: &Value, path: &str) -> Result<bool, ConvError> {
        v.as_bool()
            .ok_or_else(|| ConvError::new(path, format!("expected boolean, got {}", type_name(v))))
    }

    /// An ISO 8601 / RFC 3339 string (any offset) or epoch seconds.
    pub fn timestamp(v: &Value, path: &str) -> Result<DateTime, ConvError> {
        match v {
            Value::Number(n) => n
                .as_f64()
                .map(DateTime::from_secs_f64)
                .ok_or_else(|| ConvError::new(path, "bad epoch seconds")),
            Value::String(s) => DateTime::from_str(s, Format::DateTime)
                .or_else(|_| {
                    chrono::DateTime::parse_from_rfc3339(s).map(|d| {
                        DateTime::from_secs_and_nanos(d.timestamp(), d.timestamp_subsec_nanos())
                    })
                })
                .map_err(|_| ConvError::new(path, format!("{s:?} is not an ISO 8601 date-time"))),
            _ => Err(ConvError::new(
                path,
                format!("expected timestamp, got {}", type_name(v)),
            )),
        }
    }

    pub fn list<T>(
        v: &Value,
        path: &str,
        f: impl Fn(&Value, &str) -> Result<T, ConvError>,
    ) -> Result<Vec<T>, ConvError> {
        let a = v
            .as_array()
            .ok_or_else(|| ConvError::new(path, format!("expected list, got {}", type_name(v))))?;
        a.iter()
            .enumerate()
            .map(|(i, e)| f(e, &format!("{path}[{i}]")))
            .collect()
    }

    #[allow(dead_code)] // for generated code once the supported operations reach such a shape
    pub fn map<T>(
        v: &Value,
        path: &str,
        f: impl Fn(&Value, &str) -> Result<T, ConvError>,
    ) -> Result<HashMap<String, T>, ConvError> {
        let o = v
            .as_object()
            .ok_or_else(|| ConvError::new(path, format!("expected map, got {}", type_name(v))))?;
        o.iter()
            .map(|(k, e)| Ok((k.clone(), f(e, &join(path, k))?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::conv::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn service_errors_are_classified_by_code_then_status() {
        let k = |status, code: Option<&str>| service_error(status, code, Some("m"), None).kind;
        assert_eq!(k(400, Some("ThrottlingException")), ErrorKind::Throttling);
        assert_eq!(k(429, None), ErrorKind::Throttling);
        assert_eq!(k(500, Some("InternalServerException")), ErrorKind::Server);
        assert_eq!(k(502, None), ErrorKind::Server);
        assert_eq!(k(503, Some("ServiceUnavailable")), ErrorKind::Server);
        assert_eq!(k(400, Some("ValidationException")), ErrorKind::Client);
        assert_eq!(k(409, Some("ConflictException")), ErrorKind::Client);
        assert_eq!(k(403, Some("AccessDeniedException")), ErrorKind::Client);
        assert_eq!(k(400, Some("ExpiredTokenException")), ErrorKind::Config);
        assert_eq!(
            k(403, Some("UnrecognizedClientException")),
            ErrorKind::Config
        );
        let e = service_error(404, None, None, None);
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("HTTP404", "HTTP 404")
        );
    }

    #[test]
    fn validation_messages_list_every_field_error() {
        let body = json!({
            "Message": "bad",
            "Reason": "BUSINESS_VALIDATION_FAILED",
            "ErrorList": [
                {"FieldName": "Customer.Account.Duns", "Code": "INVALID_VALUE", "Message": "9 digits"},
                {"FieldName": "LifeCycle.Stage", "Code": "REQUIRED_FIELD_MISSING"}
            ]
        });
        let e = service_error(400, Some("ValidationException"), Some("bad"), Some(&body));
        assert_eq!(
            e.message,
            "bad (reason: BUSINESS_VALIDATION_FAILED) [Customer.Account.Duns: INVALID_VALUE 9 \
             digits; LifeCycle.Stage: REQUIRED_FIELD_MISSING]"
        );
    }

    #[test]
    fn error_chains_are_one_line_without_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: inner failed")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner failed")]
        struct Inner;
        #[derive(Debug, thiserror::Error)]
        #[error("top")]
        struct Top(#[source] Outer);
        assert_eq!(chain(&Top(Outer(Inner))), "top: outer: inner failed");
    }

    #[test]
    fn objects_reject_members_the_shape_lacks() {
        let v = json!({"A": 1, "B": 2});
        assert!(object(&v, "X", &["A", "B"]).is_ok());
        let e = object(&v, "X", &["A"]).unwrap_err();
        assert_eq!(e.path, "X.B");
        let e = object(&json!([1]), "", &["A"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "request member (body): expected object, got list"
        );
    }

    #[test]
    fn unions_need_exactly_one_member() {
        let m = &["A", "B"];
        let u = json!({"B": {"x": 1}, "A": null});
        let (name, v, p) = union(&u, "U", m).unwrap();
        assert_eq!((name, v, p.as_str()), ("B", &json!({"x": 1}), "U.B"));
        assert!(union(&json!({}), "U", m).is_err());
        assert!(union(&json!({"A": 1, "B": 2}), "U", m).is_err());
        assert!(union(&json!({"C": 1}), "U", m).is_err());
    }

    #[test]
    fn scalars_convert_with_paths_in_errors() {
        assert_eq!(integer(&json!(42), "p").unwrap(), 42);
        assert!(integer(&json!(1u64 << 40), "p").is_err());
        assert!(integer(&json!(1.5), "p").is_err());
        assert_eq!(long(&json!(1i64 << 40), "p").unwrap(), 1 << 40);
        assert!(boolean(&json!(true), "p").unwrap());
        assert_eq!(double(&json!(2.5), "p").unwrap(), 2.5);
        assert_eq!(string(&json!("s"), "p").unwrap(), "s");
        let e = string(&json!(1), "a.b").unwrap_err();
        assert_eq!(e.path, "a.b");
        let l = list(&json!(["x", 2]), "L", string).unwrap_err();
        assert_eq!(l.path, "L[1]");
        let m = map(&json!({"k": "v"}), "M", string).unwrap();
        assert_eq!(m["k"], "v");
        let o = json!({"A": null});
        let o = o.as_object().unwrap();
        assert_eq!(member(o, "", "A", string).unwrap(), None);
        assert_eq!(member(o, "", "B", string).unwrap(), None);
    }

    #[test]
    fn timestamps_accept_iso_8601_with_offsets_and_epoch_seconds() {
        let secs = |v: Value| timestamp(&v, "t").unwrap().secs();
        assert_eq!(secs(json!("2026-11-22T10:00:00Z")), 1_795_341_600);
        assert_eq!(secs(json!("2026-11-22T10:00:00.250Z")), 1_795_341_600);
        assert_eq!(secs(json!("2026-11-22T12:00:00+02:00")), 1_795_341_600);
        assert_eq!(secs(json!(1_795_341_600)), 1_795_341_600);
        assert!(timestamp(&json!("22/11/2026"), "t").is_err());
        assert!(timestamp(&json!(true), "t").is_err());
    }

    #[test]
    fn conversion_errors_are_client_errors() {
        let e = string(&json!(1), "Catalog").unwrap_err().into_api();
        assert_eq!(
            (e.kind, e.code.as_str()),
            (ErrorKind::Client, "InvalidRequest")
        );
        assert!(e.message.contains("Catalog"));
    }
}

#[cfg(test)]
mod one_list_of_operations {
    #[test]
    fn the_bridge_sends_every_operation_of_the_table() {
        let mut generated = super::SUPPORTED_OPERATIONS.to_vec();
        let mut table: Vec<&str> = crate::model::ops::names().collect();
        generated.sort_unstable();
        table.sort_unstable();
        assert_eq!(generated, table, "regenerate src/engine/sdk_gen.rs");
        assert_eq!(table.len(), crate::model::model().operations().len());
    }
}

#[cfg(test)]
mod generated {
    #[test]
    fn sdk_gen_matches_the_embedded_model() {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(crate::model::MODEL_JSON.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            super::super::sdk_gen::MODEL_SHA256,
            "schemas/model.json changed: run `python3 schemas/gen_sdk.py > src/engine/sdk_gen.rs \
             && cargo fmt`"
        );
    }

    #[test]
    fn every_supported_operation_is_in_the_model() {
        for op in super::SUPPORTED_OPERATIONS {
            assert!(crate::model::model().operation(op).is_some(), "{op}");
        }
    }
}
