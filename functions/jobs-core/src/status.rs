//! What `GET /job-status/{jobId}` answers, as JSON bodies.

use serde_json::{Map, Value, json};

use crate::job::{JobId, JobRecord, JobStatus, Timestamp};

/// A download link for a complete job's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultLink {
    pub url: String,
    pub expires_at: Timestamp,
}

/// The status body. Field names keep the Python reference's clients working:
/// `jobId` and `jobRequestId` are the same value, and the link is served
/// under both names the reference used (its README and code disagree).
pub fn status_body(job: &JobRecord, link: Option<&ResultLink>) -> Value {
    let mut body = Map::new();
    body.insert("jobId".into(), json!(job.id));
    body.insert("jobRequestId".into(), json!(job.id));
    body.insert("jobStatus".into(), json!(job.status));
    body.insert("submittedAt".into(), json!(job.submitted_at.to_rfc3339()));
    body.insert("updatedAt".into(), json!(job.updated_at.to_rfc3339()));
    body.insert("attempts".into(), json!(job.attempts));
    if let Some(at) = job.completed_at {
        body.insert("completedAt".into(), json!(at.to_rfc3339()));
    }
    if job.status == JobStatus::Failed {
        body.insert("failureReason".into(), json!(job.failure_reason));
    }
    // Why a retry is pending: once the job is failed, `failureReason` is the
    // last word (it names the final attempt; `lastError` the one before).
    if let Some(error) = job.last_error.as_ref().filter(|_| job.status == JobStatus::Submitted) {
        body.insert("lastError".into(), json!(error));
    }
    if let Some(at) = job.expires_at.filter(|_| job.status == JobStatus::Complete) {
        // The record and the result object go at (or, for the object, after) this time.
        body.insert("resultExpiresAt".into(), json!(at.to_rfc3339()));
    }
    if let Some(at) = job.failed_at.filter(|_| job.status == JobStatus::Failed) {
        body.insert("failedAt".into(), json!(at.to_rfc3339()));
    }
    if let Some(at) = job.cancelled_at.filter(|_| job.status == JobStatus::Cancelled) {
        body.insert("cancelledAt".into(), json!(at.to_rfc3339()));
    }
    if let Some(callback) = &job.callback {
        body.insert("callbackUrl".into(), json!(callback.url));
        if let Some(reason) = &callback.refused {
            body.insert("webhookRefused".into(), json!(reason));
        }
    }
    if let Some(link) = link {
        body.insert("jobProcessedPayload".into(), json!(link.url));
        body.insert("jobProcessedPayloadLink".into(), json!(link.url));
        body.insert("jobProcessedPayloadExpiresAt".into(), json!(link.expires_at.to_rfc3339()));
    }
    Value::Object(body)
}

/// 404 body for an id that names no job.
pub fn not_found_body(id: &JobId) -> Value {
    json!({
        "message": format!("No job found with id {id}. Job ids come from POST /submit-job-request; a job appears here as soon as its submit is answered."),
        "Error Message": format!("No Job data found for Job Id : {id}"),
    })
}

/// 409 body for a cancel of a job that has already ended: what it is, and
/// that only a job still running (or waiting to) can be cancelled.
pub fn already_ended_body(job: &JobRecord) -> Value {
    json!({
        "message": format!(
            "Job {} has already ended ({}); only a job that has not ended (jobStatus Submitted) can be cancelled.",
            job.id, job.status
        ),
        "jobId": job.id,
        "jobStatus": job.status,
    })
}

/// 500 body for the caller's own job whose record cannot be read: a lasting
/// condition, so it says that retrying will not help.
pub fn damaged_record_body(id: &JobId) -> Value {
    error_body(format!(
        "The record of job {id} is damaged and cannot be read; retrying will not help. \
         Report the job id to the API's operators."
    ))
}

/// Any other error body: `{"message": ...}`, API Gateway's own shape.
pub fn error_body(message: impl Into<String>) -> Value {
    json!({ "message": message.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{Callback, Destinations};

    fn job(callback: Option<Callback>) -> JobRecord {
        JobRecord {
            id: JobId::parse("0c6a8c2e-7c1f-4d3a-a1b2-3c4d5e6f7a80").unwrap(),
            status: JobStatus::Submitted,
            payload: "{}".into(),
            submitted_at: Timestamp(1_000),
            updated_at: Timestamp(2_000),
            attempts: 1,
            last_error: None,
            failure_reason: None,
            result: None,
            completed_at: None,
            failed_at: None,
            cancelled_at: None,
            owner: Some("user-sub".into()),
            expires_at: None,
            callback,
        }
    }

    #[test]
    fn the_callback_url_and_why_it_is_never_called_are_shown() {
        assert!(status_body(&job(None), None).get("callbackUrl").is_none());
        let called = status_body(&job(Some(Callback::check("https://example.com/h", Destinations::PublicHttps))), None);
        assert_eq!(called["callbackUrl"], "https://example.com/h");
        assert!(called.get("webhookRefused").is_none());
        let refused = status_body(&job(Some(Callback::check("http://example.com/h", Destinations::PublicHttps))), None);
        assert_eq!(refused["callbackUrl"], "http://example.com/h");
        assert_eq!(refused["webhookRefused"], "Job-Callback-Url must use https");
    }
}
