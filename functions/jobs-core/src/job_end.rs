//! A job's end as an event for subscribers: every job that reaches
//! `complete` or `failed` is published once, so users can react without
//! polling (on AWS an EventBridge bus; docs/events.md).

use serde_json::{Map, Value, json};

use crate::job::{JobId, JobRecord, JobStatus, ResultLocation, Timestamp};
use crate::processing::{Delivery, Outcome, Processed};
use crate::webhook::Callback;

/// The events' `source`: rules match on it.
pub const SOURCE: &str = "job-ingestion";
/// `detail-type` of a job that reached `complete`.
pub const DETAIL_TYPE_COMPLETED: &str = "Job Completed";
/// `detail-type` of a job that reached `failed`.
pub const DETAIL_TYPE_FAILED: &str = "Job Failed";
/// `detail-type` of a job its owner cancelled.
pub const DETAIL_TYPE_CANCELLED: &str = "Job Cancelled";

/// A job that has just ended, with what a subscriber needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnd {
    pub job_id: JobId,
    /// The submitter's Cognito `sub` (none for a message not sent through the API).
    pub owner: Option<String>,
    pub status: JobStatus,
    pub submitted_at: Timestamp,
    pub ended_at: Timestamp,
    /// The attempt that ended it, when one was recorded.
    pub attempts: Option<u32>,
    pub failure_reason: Option<String>,
    pub result: Option<ResultLocation>,
    /// Where the webhook goes, when the job has a callback URL that may be
    /// called: a rule on the bus routes such events to the webhook sender.
    pub callback_url: Option<String>,
}

fn deliverable(callback: Option<&Callback>) -> Option<String> {
    callback.and_then(Callback::deliverable).map(str::to_owned)
}

impl JobEnd {
    /// The end this delivery brought about, if it ended the job: a
    /// completion, a permanent failure, or the give-up that first marked it
    /// failed. A redelivery of an ended job ends nothing (no second event).
    pub fn of(delivery: &Delivery, processed: &Processed, now: Timestamp) -> Option<Self> {
        let (status, failure_reason, result) = match &processed.outcome {
            Outcome::Completed(location) => (JobStatus::Complete, None, Some(location.clone())),
            Outcome::FailedPermanently(reason) | Outcome::GaveUp { reason, newly_failed: true } => {
                (JobStatus::Failed, Some(reason.clone()), None)
            }
            // A cancel is published by the command that cancelled the job.
            Outcome::AlreadyComplete
            | Outcome::Cancelled
            | Outcome::RetryLater { .. }
            | Outcome::GaveUp { newly_failed: false, .. } => {
                return None;
            }
        };
        Some(Self {
            job_id: delivery.job_id.clone(),
            owner: delivery.owner.clone(),
            status,
            submitted_at: delivery.submitted_at,
            ended_at: now,
            attempts: processed.attempt,
            failure_reason,
            result,
            callback_url: deliverable(delivery.callback.as_ref()),
        })
    }

    /// The end of a job its owner has just cancelled, from the record the
    /// cancel wrote; `None` if the record is not cancelled.
    pub fn cancelled(record: &JobRecord) -> Option<Self> {
        (record.status == JobStatus::Cancelled).then(|| Self {
            job_id: record.id.clone(),
            owner: record.owner.clone(),
            status: JobStatus::Cancelled,
            submitted_at: record.submitted_at,
            ended_at: record.cancelled_at.unwrap_or(record.updated_at),
            attempts: Some(record.attempts),
            failure_reason: None,
            result: None,
            callback_url: deliverable(record.callback.as_ref()),
        })
    }

    /// This end with the facts as the job's record holds them (its times,
    /// attempts and reason), so that the event says exactly what `GET
    /// /job-status` says; `None` when the record is not in this end state:
    /// the job did not end so (a concurrent delivery completed it first, so
    /// this one's give-up changed nothing) or has moved on (a replay
    /// restarted it), and no event must say otherwise.
    pub fn as_recorded(mut self, record: &JobRecord) -> Option<Self> {
        if record.id != self.job_id || record.status != self.status {
            return None;
        }
        let ended_at = match self.status {
            JobStatus::Complete => record.completed_at,
            JobStatus::Cancelled => record.cancelled_at,
            JobStatus::Submitted | JobStatus::Failed => record.failed_at,
        };
        self.ended_at = ended_at.unwrap_or(self.ended_at);
        self.submitted_at = record.submitted_at;
        self.attempts = Some(record.attempts);
        self.owner = record.owner.clone().or(self.owner);
        if self.status == JobStatus::Failed {
            self.failure_reason = record.failure_reason.clone().or(self.failure_reason);
        }
        self.result = record.result.clone().or(self.result);
        // The first delivery records the callback; this one's message may
        // be a replay that lost it.
        if record.callback.is_some() {
            self.callback_url = deliverable(record.callback.as_ref());
        }
        Some(self)
    }

    /// The event's `detail-type`.
    pub fn detail_type(&self) -> &'static str {
        match self.status {
            JobStatus::Complete => DETAIL_TYPE_COMPLETED,
            JobStatus::Cancelled => DETAIL_TYPE_CANCELLED,
            JobStatus::Submitted | JobStatus::Failed => DETAIL_TYPE_FAILED,
        }
    }

    /// The event's `detail`: the status document's names for the same
    /// facts, plus `owner` and the result's location in the bucket (a
    /// presigned link would expire before a slow subscriber reads it).
    pub fn detail(&self) -> Value {
        let mut detail = Map::new();
        detail.insert("jobId".into(), json!(self.job_id));
        detail.insert("jobStatus".into(), json!(self.status));
        if let Some(owner) = &self.owner {
            detail.insert("owner".into(), json!(owner));
        }
        detail.insert("submittedAt".into(), json!(self.submitted_at.to_rfc3339()));
        let ended = match self.status {
            JobStatus::Complete => "completedAt",
            JobStatus::Cancelled => "cancelledAt",
            JobStatus::Submitted | JobStatus::Failed => "failedAt",
        };
        detail.insert(ended.into(), json!(self.ended_at.to_rfc3339()));
        if let Some(attempts) = self.attempts {
            detail.insert("attempts".into(), json!(attempts));
        }
        if let Some(reason) = &self.failure_reason {
            detail.insert("failureReason".into(), json!(reason));
        }
        if let Some(result) = &self.result {
            detail.insert("result".into(), json!({ "bucket": result.bucket, "key": result.key }));
        }
        if let Some(url) = &self.callback_url {
            detail.insert("callbackUrl".into(), json!(url));
        }
        Value::Object(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_record_is_a_job_cancelled_event_with_its_cancel_time() {
        let mut record = crate::JobRecord {
            id: JobId::parse(ID).unwrap(),
            status: JobStatus::Cancelled,
            payload: "{}".into(),
            submitted_at: Timestamp(1_800_000_000_000),
            updated_at: Timestamp(1_800_000_002_000),
            attempts: 1,
            last_error: None,
            failure_reason: None,
            result: None,
            completed_at: None,
            failed_at: None,
            cancelled_at: Some(Timestamp(1_800_000_002_000)),
            owner: Some("user-sub".into()),
            expires_at: None,
            callback: None,
        };
        let end = JobEnd::cancelled(&record).unwrap();
        assert_eq!(end.detail_type(), "Job Cancelled");
        assert_eq!(
            end.detail(),
            json!({
                "jobId": ID,
                "jobStatus": "cancelled",
                "owner": "user-sub",
                "submittedAt": "2027-01-15T08:00:00.000Z",
                "cancelledAt": "2027-01-15T08:00:02.000Z",
                "attempts": 1,
            })
        );
        record.status = JobStatus::Submitted;
        assert_eq!(JobEnd::cancelled(&record), None);
    }

    const ID: &str = "0c6a8c2e-7c1f-4d3a-a1b2-3c4d5e6f7a80";

    fn delivery() -> Delivery {
        Delivery {
            job_id: JobId::parse(ID).unwrap(),
            body: "{}".into(),
            submitted_at: Timestamp(1_800_000_000_000),
            receive_count: 1,
            owner: Some("user-sub".into()),
            callback: None,
        }
    }

    fn processed(outcome: Outcome) -> Processed {
        Processed { outcome, attempt: Some(2), detail: None, ended: None }
    }

    #[test]
    fn a_completion_carries_the_result_location() {
        let location = ResultLocation { bucket: "results".into(), key: format!("results/{ID}.json") };
        let end =
            JobEnd::of(&delivery(), &processed(Outcome::Completed(location)), Timestamp(1_800_000_001_500)).unwrap();
        assert_eq!(end.detail_type(), "Job Completed");
        assert_eq!(
            end.detail(),
            json!({
                "jobId": ID, "jobStatus": "complete", "owner": "user-sub",
                "submittedAt": "2027-01-15T08:00:00.000Z", "completedAt": "2027-01-15T08:00:01.500Z",
                "attempts": 2, "result": {"bucket": "results", "key": format!("results/{ID}.json")},
            })
        );
    }

    #[test]
    fn a_failure_carries_its_reason_and_only_the_first_give_up_ends_the_job() {
        let now = Timestamp(1_800_000_002_000);
        for outcome in [
            Outcome::FailedPermanently("The job body must be a JSON object.".into()),
            Outcome::GaveUp { reason: "The job body must be a JSON object.".into(), newly_failed: true },
        ] {
            let end = JobEnd::of(&delivery(), &processed(outcome), now).unwrap();
            assert_eq!(end.detail_type(), "Job Failed");
            let detail = end.detail();
            assert_eq!(detail["jobStatus"], "failed");
            assert_eq!(detail["failureReason"], "The job body must be a JSON object.");
            assert_eq!(detail["failedAt"], "2027-01-15T08:00:02.000Z");
            assert!(detail.get("result").is_none() && detail.get("completedAt").is_none());
        }
        for outcome in [
            Outcome::AlreadyComplete,
            Outcome::RetryLater { error: "x".into(), delay_seconds: 2 },
            Outcome::GaveUp { reason: "x".into(), newly_failed: false },
        ] {
            assert_eq!(JobEnd::of(&delivery(), &processed(outcome.clone()), now), None, "{outcome:?}");
        }
    }

    #[test]
    fn the_records_facts_win_and_a_record_in_another_state_cancels_the_event() {
        let location = ResultLocation { bucket: "results".into(), key: format!("results/{ID}.json") };
        let end = JobEnd::of(&delivery(), &processed(Outcome::Completed(location.clone())), Timestamp(9_000)).unwrap();
        let record = JobRecord {
            id: JobId::parse(ID).unwrap(),
            status: JobStatus::Complete,
            payload: "{}".into(),
            submitted_at: Timestamp(1_000),
            updated_at: Timestamp(8_000),
            attempts: 3,
            last_error: None,
            failure_reason: None,
            result: Some(location),
            completed_at: Some(Timestamp(8_000)),
            failed_at: None,
            cancelled_at: None,
            owner: Some("user-sub".into()),
            expires_at: None,
            callback: None,
        };
        let recorded = end.clone().as_recorded(&record).unwrap();
        assert_eq!(
            (recorded.ended_at, recorded.submitted_at, recorded.attempts),
            (Timestamp(8_000), Timestamp(1_000), Some(3))
        );
        // Restarted by a replay, or complete while this delivery gave up: no event.
        let restarted = JobRecord { status: JobStatus::Submitted, ..record.clone() };
        assert_eq!(end.as_recorded(&restarted), None);
        let give_up = Outcome::GaveUp { reason: "r".into(), newly_failed: true };
        let gave_up = JobEnd::of(&delivery(), &processed(give_up), Timestamp(9_000)).unwrap();
        assert_eq!(gave_up.as_recorded(&record), None);
    }

    #[test]
    fn a_message_without_owner_has_no_owner_in_its_event() {
        let mut delivery = delivery();
        delivery.owner = None;
        let end = JobEnd::of(&delivery, &processed(Outcome::FailedPermanently("r".into())), Timestamp(0)).unwrap();
        assert!(end.detail().get("owner").is_none());
    }

    #[test]
    fn only_a_callback_that_may_be_called_is_in_the_event() {
        use crate::webhook::{Callback, Destinations};
        let now = Timestamp(1_800_000_002_000);
        let failed = || processed(Outcome::FailedPermanently("r".into()));
        let mut with = delivery();
        with.callback = Some(Callback::check("https://example.com/hooks", Destinations::PublicHttps));
        assert_eq!(JobEnd::of(&with, &failed(), now).unwrap().detail()["callbackUrl"], "https://example.com/hooks");
        // Refused (here: loopback on AWS): recorded on the job, never routed to the sender.
        with.callback = Some(Callback::check("https://127.0.0.1/hooks", Destinations::PublicHttps));
        assert!(JobEnd::of(&with, &failed(), now).unwrap().detail().get("callbackUrl").is_none());
        // A replayed message without the attribute: the record's callback counts.
        let end = JobEnd::of(&delivery(), &failed(), now).unwrap();
        let record = JobRecord {
            id: JobId::parse(ID).unwrap(),
            status: JobStatus::Failed,
            payload: "{}".into(),
            submitted_at: Timestamp(1_000),
            updated_at: now,
            attempts: 1,
            last_error: None,
            failure_reason: Some("r".into()),
            result: None,
            completed_at: None,
            failed_at: Some(now),
            cancelled_at: None,
            owner: Some("user-sub".into()),
            expires_at: None,
            callback: Some(Callback::check("https://example.com/first", Destinations::PublicHttps)),
        };
        let recorded = end.as_recorded(&record).unwrap();
        assert_eq!(recorded.detail()["callbackUrl"], "https://example.com/first");
        let cancelled = JobRecord { status: JobStatus::Cancelled, cancelled_at: Some(now), ..record };
        assert_eq!(JobEnd::cancelled(&cancelled).unwrap().detail()["callbackUrl"], "https://example.com/first");
    }
}
