//! STS `GetCallerIdentity` on the emulator's endpoint, so that a client can learn which partner
//! account it talks to (the same question it would ask real AWS before a run).
//!
//! Rules:
//! - STS speaks awsQuery: `POST /` with `Content-Type: application/x-www-form-urlencoded` and a
//!   form body `Action=GetCallerIdentity&Version=2011-06-15`. The emulator routes a POST with
//!   that content type here; the Partner Central API is told apart by its AWS JSON 1.0 content
//!   type.
//! - The account follows the emulator's account rule (a 12-digit access key id, else
//!   `--default-account`); the answer is
//!   `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">` with
//!   `Arn` `arn:aws:iam::ACCOUNT:user/emulator`, `UserId` `AIDAEMULATOR<ACCOUNT>` and `Account`.
//! - Unsigned: 403 `MissingAuthenticationToken`; another action: 400 `InvalidAction`; both in
//!   STS's XML error format (`<ErrorResponse><Error><Type/><Code/><Message/></Error>`).
//! - STS calls are outside Partner Central: no quotas, no injected faults, and they do not
//!   appear in `calls`; stats count them as `sts_calls`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

/// The form content type of awsQuery requests.
pub const FORM: &str = "application/x-www-form-urlencoded";
const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// STS forms are small; anything larger is refused unread.
const MAX_FORM: usize = 64 * 1024;

/// Whether a request is an STS (awsQuery) request by its content type.
pub fn is_sts(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(FORM))
}

/// The `GetCallerIdentity` answer for `account`.
pub fn caller_identity_xml(account: &str, request_id: &str) -> String {
    format!(
        "<GetCallerIdentityResponse xmlns=\"{XMLNS}\">\n  <GetCallerIdentityResult>\n    \
         <Arn>arn:aws:iam::{account}:user/emulator</Arn>\n    \
         <UserId>AIDAEMULATOR{account}</UserId>\n    <Account>{account}</Account>\n  \
         </GetCallerIdentityResult>\n  <ResponseMetadata>\n    \
         <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n\
         </GetCallerIdentityResponse>\n"
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn error_xml(kind: &str, code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{kind}</Type>\n    \
         <Code>{code}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
         <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
        xml_escape(message)
    )
}

fn xml_response(status: u16, body: String, request_id: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    r
}

/// Decode one `application/x-www-form-urlencoded` component.
fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit() =>
            {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `key` in a form body.
fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(k) == key).then(|| form_decode(v))
    })
}

/// Serve one STS request; `account` is the caller's account, `None` when unsigned.
pub async fn handle(
    req: Request<Incoming>,
    account: Option<String>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let Some(account) = account else {
        return xml_response(
            403,
            error_xml(
                "Sender",
                "MissingAuthenticationToken",
                "Request is missing Authentication Token: sign it with SigV4 (any credentials; \
                 a 12-digit access key id is the caller's account)",
                request_id,
            ),
            request_id,
        );
    };
    let body = match Limited::new(req.into_body(), MAX_FORM).collect().await {
        Ok(c) => String::from_utf8_lossy(&c.to_bytes()).into_owned(),
        Err(_) => {
            return xml_response(
                400,
                error_xml(
                    "Sender",
                    "InvalidRequest",
                    &format!("The STS form body could not be read or exceeds {MAX_FORM} bytes"),
                    request_id,
                ),
                request_id,
            )
        }
    };
    match form_value(&body, "Action").as_deref() {
        Some("GetCallerIdentity") => {
            xml_response(200, caller_identity_xml(&account, request_id), request_id)
        }
        other => xml_response(
            400,
            error_xml(
                "Sender",
                "InvalidAction",
                &format!(
                    "Action {:?} is not served by the emulator's STS (only GetCallerIdentity)",
                    other.unwrap_or("")
                ),
                request_id,
            ),
            request_id,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let b = "Action=GetCallerIdentity&Version=2011-06-15&X=a%20b+c%2";
        assert_eq!(
            form_value(b, "Action").as_deref(),
            Some("GetCallerIdentity")
        );
        assert_eq!(form_value(b, "Version").as_deref(), Some("2011-06-15"));
        assert_eq!(form_value(b, "X").as_deref(), Some("a b c%2"));
        assert_eq!(form_value(b, "Y"), None);
        assert!(error_xml("Sender", "C", "a<b", "r").contains("a&lt;b"));
    }
}
