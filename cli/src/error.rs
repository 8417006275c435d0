//! The CLI's errors: each one is a single line on stderr, `error: ` first.

use std::fmt;

/// Everything that can go wrong, with the message a person needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Missing or inconsistent configuration, or a local file that cannot be used.
    Usage(String),
    /// The input file is not a JSON object; nothing was sent.
    InvalidInput { source: String, reason: String },
    /// A connection could not be made (refused, DNS, TLS, timeout).
    Unreachable { what: &'static str, url: String, detail: String },
    /// Cognito refused the username or password.
    BadCredentials,
    /// No cached session for this API and client.
    NotLoggedIn { api_url: String },
    /// The cached ID token expired and the refresh token no longer works.
    SessionExpired { detail: String },
    /// The API answered 401 or 403 to a token.
    Unauthorized { status: u16, message: String },
    /// `GET /job-status/{id}` answered 404.
    UnknownJob { id: String },
    /// The API has no such route (an older deployment).
    NoRoute { route: &'static str },
    /// Any other error answer of the API or Cognito.
    Api { status: u16, message: String },
    /// The job failed (exit 1 after its status was printed).
    JobFailed { id: String, reason: String },
    /// The job was cancelled (exit 1 after its status was printed).
    JobCancelled { id: String },
    /// `cancel` of a job that has ended (409): `status` is its state.
    AlreadyEnded { id: String, status: String },
    /// `--wait` ran out of time.
    Timeout { id: String, status: String, seconds: u64 },
    /// `get` on a job that has no result (yet).
    NotComplete { id: String, status: String },
    /// Writing output or the credentials file.
    Io(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(message) | Error::Io(message) => f.write_str(message),
            Error::InvalidInput { source, reason } => {
                write!(f, "{source} is not a valid job request: {reason}; the job request must be a JSON object")
            }
            Error::Unreachable { what, url, detail } => write!(f, "cannot reach {what} at {url}: {detail}"),
            Error::BadCredentials => f.write_str("incorrect username or password"),
            Error::NotLoggedIn { api_url } => write!(f, "not logged in to {api_url}; run `jobctl login`"),
            Error::SessionExpired { detail } => {
                write!(f, "your session has expired and could not be refreshed ({detail}); run `jobctl login`")
            }
            Error::Unauthorized { status, message } => {
                write!(f, "the API refused your credentials ({status}: {message}); run `jobctl login`")
            }
            Error::UnknownJob { id } => write!(f, "no job found with id {id}"),
            Error::NoRoute { route } => write!(
                f,
                "this API has no {route} route: its deployment is older than this client; deploy the current stack (or restart the local target)"
            ),
            Error::Api { status, message } => write!(f, "the API answered {status}: {message}"),
            Error::JobFailed { id, reason } => write!(f, "job {id} failed: {reason}"),
            Error::JobCancelled { id } => write!(f, "job {id} was cancelled; it has no result"),
            Error::AlreadyEnded { id, status } => {
                write!(f, "job {id} has already ended ({status}), so it cannot be cancelled; see `jobctl status {id}`")
            }
            Error::Timeout { id, status, seconds } => {
                write!(f, "job {id} is still {status} after {seconds}s; check on it later with `jobctl status {id}`")
            }
            Error::NotComplete { id, status } if status == "failed" || status == "cancelled" => {
                write!(f, "job {id} {status}, so it has no result; see `jobctl status {id}`")
            }
            Error::NotComplete { id, status } => {
                write!(
                    f,
                    "job {id} is not complete yet (status {status}); wait for it with `jobctl status {id} --wait`"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// The one line printed for an error: control characters (a server's message
/// could contain newlines) are replaced so it stays one line.
pub fn one_line(error: &Error) -> String {
    let text = error.to_string();
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The `message` of a JSON error body (API Gateway's and the functions'
/// shape, and Cognito's), else the body itself, shortened.
pub fn body_message(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "Message", "Error Message"] {
            if let Some(serde_json::Value::String(m)) = map.get(key) {
                return m.clone();
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no body)".into();
    }
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// Maps an API error answer. `job_id` is set for `/job-status/{id}`, where 404
/// means an unknown job; `route` names the route for "no such route" answers.
pub fn api_error(status: u16, body: &[u8], route: &'static str, job_id: Option<&str>) -> Error {
    let message = body_message(body);
    match status {
        // API Gateway answers an unknown route or method with 403 "Missing
        // Authentication Token", before the authorizer.
        403 if message == "Missing Authentication Token" => Error::NoRoute { route },
        401 | 403 => Error::Unauthorized { status, message },
        404 => match job_id {
            Some(id) => Error::UnknownJob { id: id.to_string() },
            None => Error::NoRoute { route },
        },
        _ => Error::Api { status, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_job_names_the_id() {
        let body =
            br#"{"message": "No job found with id 00000000-0000-4000-8000-000000000000. ...", "Error Message": "x"}"#;
        let e = api_error(404, body, "GET /job-status/{jobId}", Some("00000000-0000-4000-8000-000000000000"));
        assert_eq!(e, Error::UnknownJob { id: "00000000-0000-4000-8000-000000000000".into() });
        assert_eq!(one_line(&e), "no job found with id 00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn unauthorized_says_to_log_in() {
        let e = api_error(401, br#"{"message":"Unauthorized"}"#, "POST /submit-job-request", None);
        assert!(one_line(&e).contains("run `jobctl login`"), "{e}");
        assert!(one_line(&e).contains("401"), "{e}");
        let e = api_error(403, br#"{"message":"User is not authorized to access this resource"}"#, "GET /jobs", None);
        assert!(matches!(e, Error::Unauthorized { status: 403, .. }));
    }

    #[test]
    fn missing_route_is_an_older_deployment() {
        for (status, body) in
            [(404, &br#"{"message":"Not Found"}"#[..]), (403, br#"{"message":"Missing Authentication Token"}"#)]
        {
            let e = api_error(status, body, "GET /jobs", None);
            assert_eq!(e, Error::NoRoute { route: "GET /jobs" });
            assert!(one_line(&e).contains("older"), "{e}");
        }
    }

    #[test]
    fn other_errors_keep_the_server_message_on_one_line() {
        let e = api_error(502, b"{\"message\": \"queue\\nunavailable\"}", "POST /submit-job-request", None);
        assert_eq!(one_line(&e), "the API answered 502: queue unavailable");
        let e = api_error(500, b"<html>oops</html>", "POST /submit-job-request", None);
        assert_eq!(one_line(&e), "the API answered 500: <html>oops</html>");
        let e = api_error(500, b"", "POST /submit-job-request", None);
        assert_eq!(one_line(&e), "the API answered 500: (no body)");
    }

    #[test]
    fn messages_are_distinct_and_actionable() {
        let unreachable = Error::Unreachable {
            what: "the API",
            url: "http://127.0.0.1:9/api".into(),
            detail: "connection refused".into(),
        };
        assert_eq!(one_line(&unreachable), "cannot reach the API at http://127.0.0.1:9/api: connection refused");
        assert_eq!(one_line(&Error::BadCredentials), "incorrect username or password");
        assert!(one_line(&Error::SessionExpired { detail: "revoked".into() }).ends_with("run `jobctl login`"));
        let e = Error::InvalidInput { source: "job.json".into(), reason: "a JSON array".into() };
        assert_eq!(
            one_line(&e),
            "job.json is not a valid job request: a JSON array; the job request must be a JSON object"
        );
        let e = Error::NotComplete { id: "j1".into(), status: "Submitted".into() };
        assert_eq!(
            one_line(&e),
            "job j1 is not complete yet (status Submitted); wait for it with `jobctl status j1 --wait`"
        );
        let e = Error::NotComplete { id: "j1".into(), status: "failed".into() };
        assert_eq!(one_line(&e), "job j1 failed, so it has no result; see `jobctl status j1`");
        let e = Error::NotComplete { id: "j1".into(), status: "cancelled".into() };
        assert_eq!(one_line(&e), "job j1 cancelled, so it has no result; see `jobctl status j1`");
        let e = Error::AlreadyEnded { id: "j1".into(), status: "complete".into() };
        assert_eq!(
            one_line(&e),
            "job j1 has already ended (complete), so it cannot be cancelled; see `jobctl status j1`"
        );
        assert_eq!(one_line(&Error::JobCancelled { id: "j1".into() }), "job j1 was cancelled; it has no result");
        let e = Error::Timeout { id: "j1".into(), status: "Submitted".into(), seconds: 5 };
        assert_eq!(one_line(&e), "job j1 is still Submitted after 5s; check on it later with `jobctl status j1`");
    }
}
