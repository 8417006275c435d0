//! `GET /jobs?limit=N&nextToken=T`: a user's jobs, newest first, one page at
//! a time. The page token is opaque to clients: base64url (no padding) of the
//! JSON of the index's LastEvaluatedKey, checked on the way back in.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::job::{JobId, JobRecord, JobStatus, Timestamp, echo};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// Query parameter names.
pub const LIMIT_PARAMETER: &str = "limit";
pub const NEXT_TOKEN_PARAMETER: &str = "nextToken";

/// Where a page ends in the `owner-submittedAt` index: the table key plus
/// the index key, as DynamoDB's LastEvaluatedKey names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKey {
    pub job_id: JobId,
    pub owner: String,
    /// The `submittedAt` attribute exactly as stored (RFC 3339).
    pub submitted_at: String,
}

/// Why a listing request is refused (400). The message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidListRequest(String);

/// A checked listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    pub limit: u32,
    pub after: Option<PageKey>,
}

impl PageKey {
    /// The opaque `nextToken` for this key.
    pub fn to_token(&self) -> String {
        let key = json!({"jobRequestId": self.job_id, "owner": self.owner, "submittedAt": self.submitted_at});
        URL_SAFE_NO_PAD.encode(key.to_string())
    }

    /// Decode a token; `None` when it is not one this API produced.
    pub fn from_token(token: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok()?;
        let Value::Object(key) = serde_json::from_slice::<Value>(&bytes).ok()? else { return None };
        if key.len() != 3 {
            return None;
        }
        let text = |name: &str| key.get(name).and_then(Value::as_str).map(str::to_owned);
        let submitted_at = text("submittedAt")?;
        Timestamp::parse_rfc3339(&submitted_at)?;
        let owner = text("owner").filter(|o| !o.is_empty())?;
        Some(Self { job_id: JobId::parse(&text("jobRequestId")?).ok()?, owner, submitted_at })
    }
}

impl ListRequest {
    /// Check `limit` and `nextToken` (absent: defaults) for `caller`; a
    /// token issued to another user is refused.
    pub fn parse(limit: Option<&str>, next_token: Option<&str>, caller: &str) -> Result<Self, InvalidListRequest> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) && raw.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(InvalidListRequest(format!(
                        "The limit parameter must be a whole number from 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}); got {}.",
                        echo(raw)
                    )));
                }
            },
        };
        let after = match next_token {
            None => None,
            Some(raw) => match PageKey::from_token(raw) {
                Some(key) if key.owner == caller => Some(key),
                Some(_) => {
                    return Err(InvalidListRequest(
                        "The nextToken parameter was issued to another user; use the nextToken of your own previous GET /jobs page.".into(),
                    ));
                }
                None => {
                    return Err(InvalidListRequest(format!(
                        "The nextToken parameter {} is not a token returned by GET /jobs; omit it for the first page.",
                        echo(raw)
                    )));
                }
            },
        };
        Ok(Self { limit, after })
    }
}

/// One job in a listing.
pub fn summary(job: &JobRecord) -> Value {
    let mut item = Map::new();
    item.insert("jobId".into(), json!(job.id));
    item.insert("jobStatus".into(), json!(job.status));
    item.insert("submittedAt".into(), json!(job.submitted_at.to_rfc3339()));
    if let Some(at) = job.completed_at.filter(|_| job.status == JobStatus::Complete) {
        item.insert("completedAt".into(), json!(at.to_rfc3339()));
    }
    if job.status == JobStatus::Failed {
        item.insert("failedAt".into(), json!(job.failed_at.unwrap_or(job.updated_at).to_rfc3339()));
    }
    if job.status == JobStatus::Cancelled {
        item.insert("cancelledAt".into(), json!(job.cancelled_at.unwrap_or(job.updated_at).to_rfc3339()));
    }
    Value::Object(item)
}

/// The listing body: `{"jobs": [...], "nextToken"?}`.
pub fn list_body(jobs: &[JobRecord], next: Option<&PageKey>) -> Value {
    let mut body = Map::new();
    body.insert("jobs".into(), Value::Array(jobs.iter().map(summary).collect()));
    if let Some(key) = next {
        body.insert("nextToken".into(), json!(key.to_token()));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(owner: &str) -> PageKey {
        PageKey {
            job_id: JobId::parse("4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21").unwrap(),
            owner: owner.into(),
            submitted_at: "2026-11-22T19:30:00.000Z".into(),
        }
    }

    #[test]
    fn defaults_and_bounds_of_limit() {
        assert_eq!(ListRequest::parse(None, None, "a").unwrap(), ListRequest { limit: 20, after: None });
        assert_eq!(ListRequest::parse(Some("1"), None, "a").unwrap().limit, 1);
        assert_eq!(ListRequest::parse(Some("100"), None, "a").unwrap().limit, 100);
        for bad in ["0", "101", "-1", "+5", "1.5", "", "abc", "99999999999999999999", " 5"] {
            let err = ListRequest::parse(Some(bad), None, "a").unwrap_err().to_string();
            assert!(err.starts_with("The limit parameter must be a whole number from 1 to 100"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_token_round_trips_for_its_owner_only() {
        let token = key("alice").to_token();
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{token}");
        let request = ListRequest::parse(None, Some(&token), "alice").unwrap();
        assert_eq!(request.after, Some(key("alice")));
        let err = ListRequest::parse(None, Some(&token), "bob").unwrap_err().to_string();
        assert!(err.contains("nextToken") && err.contains("another user"), "{err}");
    }

    #[test]
    fn anything_else_is_not_a_token() {
        let encode = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        for bad in [
            "not a token".to_owned(),
            "!!!".to_owned(),
            URL_SAFE_NO_PAD.encode("[1]"),
            encode(json!({"jobRequestId": "x", "owner": "alice", "submittedAt": "2026-11-22T19:30:00.000Z"})),
            encode(
                json!({"jobRequestId": "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21", "owner": "alice", "submittedAt": "yesterday"}),
            ),
            encode(json!({"jobRequestId": "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21", "owner": "alice"})),
            encode(
                json!({"jobRequestId": "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21", "owner": "alice", "submittedAt": "2026-11-22T19:30:00.000Z", "x": 1}),
            ),
        ] {
            let err = ListRequest::parse(None, Some(&bad), "alice").unwrap_err().to_string();
            assert!(err.starts_with("The nextToken parameter") && err.contains("not a token"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn summaries_carry_the_end_time_of_their_status() {
        let mut job = JobRecord {
            id: key("a").job_id,
            status: JobStatus::Failed,
            payload: "{}".into(),
            submitted_at: Timestamp(1_000),
            updated_at: Timestamp(3_000),
            attempts: 3,
            last_error: None,
            failure_reason: Some("x".into()),
            result: None,
            completed_at: None,
            failed_at: Some(Timestamp(2_000)),
            cancelled_at: None,
            owner: Some("a".into()),
            expires_at: None,
            callback: None,
        };
        let s = summary(&job);
        assert_eq!(s["failedAt"], "1970-01-01T00:00:02.000Z");
        assert!(s.get("completedAt").is_none());
        job.status = JobStatus::Complete;
        job.completed_at = Some(Timestamp(4_000));
        let s = summary(&job);
        assert_eq!(s["completedAt"], "1970-01-01T00:00:04.000Z");
        assert!(s.get("failedAt").is_none());
        assert_eq!(list_body(&[], None), json!({"jobs": []}));
        assert_eq!(list_body(&[], Some(&key("a")))["nextToken"], key("a").to_token());
    }
}
