//! What the domain needs from the outside world: one small trait per
//! operation. `jobs-aws` implements them with DynamoDB, S3, Lambda and SQS;
//! [`crate::memory`] implements them in memory for tests.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::counters::Counter;
use crate::counters::counting::Applied;
use crate::counters::object_event::ObjectEvent;
use crate::job::{JobId, JobRecord, ResultLocation, StoredJob, Submission, Timestamp};
use crate::job_end::JobEnd;
use crate::listing::PageKey;
use crate::request::JobParameters;
use crate::status::ResultLink;
use crate::webhook::{Answer, CallbackUrl};

/// A store or service call that did not succeed. Always worth retrying from
/// the domain's point of view.
///
/// Its text (`Display`) is a short sentence in the project's own words, safe
/// to show a user: it ends up in a job's `lastError` and `failureReason`.
/// [`StoreError::detail`] is everything the adapter knew, for the log only:
/// an SDK error carries request ids, response headers and, in an
/// AccessDenied message, a role's ARN and the account id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{summary}")]
pub struct StoreError {
    summary: String,
    detail: Option<String>,
}

impl StoreError {
    /// An error whose whole text is safe to show (the project's own words).
    pub fn new(summary: impl Into<String>) -> Self {
        Self { summary: summary.into(), detail: None }
    }

    /// An error shown as `summary`, logged as `detail`.
    pub fn with_detail(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { summary: summary.into(), detail: Some(detail.into()) }
    }

    /// Everything known about the error, for the log (never for an API answer).
    pub fn detail(&self) -> &str {
        self.detail.as_deref().unwrap_or(&self.summary)
    }
}

/// What recording a delivery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The job is recorded (first time or again) and this is attempt `number`.
    Started { number: u32 },
    /// The job is already complete: a redelivery, nothing to do.
    AlreadyComplete,
    /// Its owner cancelled the job: it must not run.
    Cancelled,
    /// The store refuses this record as it is, and always will (a request
    /// too large for a job record): nothing was written. `reason` says why.
    Refused { reason: String },
}

/// Record a delivery of a job: create it as `Submitted` on first sight,
/// count the attempt, and never touch a job that is complete or cancelled.
pub trait RecordAttempt: Sync {
    fn record_attempt(
        &self,
        submission: &Submission,
        now: Timestamp,
    ) -> impl Future<Output = Result<Attempt, StoreError>> + Send;
}

/// What marking a job complete found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// This write completed the job: its record as the write left it
    /// (`None` if that record cannot be read).
    Completed(Option<Box<JobRecord>>),
    /// It was complete already (a concurrent rerun completed it): nothing
    /// changed.
    AlreadyComplete,
    /// Its owner cancelled it while it ran: it stays `cancelled`, and the
    /// result just written must go.
    Cancelled,
}

/// Mark a job complete with its result, unless it was cancelled. Idempotent.
/// `expires_at` is when the record goes (the table's TTL), never later than
/// the result object. The record comes back from the write itself, so a
/// job's end is published from it without reading it again.
pub trait CompleteJob: Sync {
    fn complete_job(
        &self,
        id: &JobId,
        result: &ResultLocation,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<Completion, StoreError>> + Send;
}

/// What a cancel request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancellation {
    /// The job was cancelled by this request: it reads `cancelled`.
    Cancelled(JobRecord),
    /// It had been cancelled before (a repeated cancel): nothing changed.
    AlreadyCancelled(JobRecord),
    /// The job had ended (`complete` or `failed`): nothing changed.
    Ended(JobRecord),
    /// No job with that id is visible to the caller (none, another
    /// caller's, or expired).
    NotFound,
}

/// Cancel `caller`'s job unless it has ended; a cancelled record expires at
/// `expires_at`, as an ended job's does.
pub trait CancelJob: Sync {
    fn cancel_job(
        &self,
        id: &JobId,
        caller: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<Cancellation, StoreError>> + Send;
}

/// Remove a job's result object, if there is one (a cancelled job keeps no
/// result). Idempotent.
pub trait RemoveResult: Sync {
    fn remove_result(&self, id: &JobId) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Mark a job failed with a reason, unless it is complete or cancelled; the
/// record expires at `expires_at`. Returns the record as this write left it
/// (`None` when the write changed nothing: a complete, cancelled or missing
/// job, or an unreadable record).
pub trait FailJob: Sync {
    fn fail_job(
        &self,
        id: &JobId,
        reason: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<Option<JobRecord>, StoreError>> + Send;
}

/// Record as `failed` with `reason` a job the store refused to record
/// ([`Attempt::Refused`]): without its payload (what was refused), with its
/// owner and submission time, so that its owner sees it and why. Never
/// touches a complete or cancelled job. The record expires at `expires_at`.
/// Returns the record as this write left it, as [`FailJob`] does.
pub trait FailUnrecorded: Sync {
    fn fail_unrecorded(
        &self,
        submission: &Submission,
        reason: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> impl Future<Output = Result<Option<JobRecord>, StoreError>> + Send;
}

/// Note an attempt's error on a job that will be retried (one still
/// `Submitted`), so its status shows why it is not done yet.
pub trait NoteAttemptError: Sync {
    fn note_attempt_error(
        &self,
        id: &JobId,
        error: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Record on a job why its webhook is never sent (the sender found its
/// callback URL's host resolves to an address it may not call). A job
/// without a callback URL is left as it is.
pub trait RefuseWebhook: Sync {
    fn refuse_webhook(&self, id: &JobId, reason: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// POST a signed webhook to its callback URL, connecting only to addresses
/// `address_allowed` lets through (crate::webhook).
pub trait PostWebhook: Sync {
    fn post_webhook(
        &self,
        url: &CallbackUrl,
        event: &str,
        signature: &str,
        body: &[u8],
    ) -> impl Future<Output = Answer> + Send;
}

/// The stage's webhook signing secret.
pub trait ReadSigningSecret: Sync {
    fn signing_secret(&self) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;
}

/// Read a job: `None` if there is no record, else the record, readable or not.
pub trait GetJob: Sync {
    fn get_job(&self, id: &JobId) -> impl Future<Output = Result<Option<StoredJob>, StoreError>> + Send;
}

/// One page of an owner's jobs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobPage {
    pub jobs: Vec<JobRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageKey>,
}

/// List an owner's jobs, newest first (`owner-submittedAt` index), at most
/// `limit`, starting after `after`.
pub trait ListJobs: Sync {
    fn list_jobs(
        &self,
        owner: &str,
        limit: u32,
        after: Option<&PageKey>,
    ) -> impl Future<Output = Result<JobPage, StoreError>> + Send;
}

/// Apply one object event to the key's state and its bucket's and prefix's
/// counters, atomically and at most once per (bucket, key, sequencer)
/// ([`crate::counters::counting::plan`] decides what changes).
pub trait CountObjectEvent: Sync {
    fn count(&self, event: &ObjectEvent, now: Timestamp) -> impl Future<Output = Result<Applied, StoreError>> + Send;
}

/// Read a bucket's object counters (the `counters` table).
pub trait ReadCounters: Sync {
    fn read_counters(&self, bucket: &str) -> impl Future<Output = Result<Vec<Counter>, StoreError>> + Send;
}

/// Store a job's output under `key` (overwriting: reruns must not duplicate).
pub trait PutResult: Sync {
    fn put_result(&self, key: &str, body: Vec<u8>) -> impl Future<Output = Result<ResultLocation, StoreError>> + Send;
}

/// A time-limited link to download a result, valid for `expires_in_seconds`
/// or less: the link's `expires_at` is when it really stops working.
pub trait PresignResult: Sync {
    fn presign_result(
        &self,
        location: &ResultLocation,
        expires_in_seconds: u64,
    ) -> impl Future<Output = Result<ResultLink, StoreError>> + Send;
}

/// Run the batch simulator for a job.
pub trait RunSimulation: Sync {
    fn run_simulation(
        &self,
        request: &SimulationRequest,
    ) -> impl Future<Output = Result<ResultLocation, StoreError>> + Send;
}

/// Ask the queue to redeliver a message after `delay_seconds` (retry back-off).
pub trait DelayRedelivery: Sync {
    fn delay_redelivery(
        &self,
        receipt: &str,
        delay_seconds: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Tell subscribers that jobs ended ([`JobEnd`]): on AWS one EventBridge
/// event each, up to 10 per call. One result per end, in order: each end is
/// published or not on its own.
pub trait PublishJobEnds: Sync {
    fn publish_job_ends(&self, ends: &[JobEnd]) -> impl Future<Output = Vec<Result<(), StoreError>>> + Send;
}

/// What the job processor sends the simulator (the reference's field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulationRequest {
    pub job_request_id: JobId,
    pub job_request_payload: JobParameters,
    /// 1-based attempt number, counted across redeliveries and replays.
    pub attempt: u32,
}

/// What the simulator answers, in the reference's envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulationResponse {
    pub status_code: u16,
    pub body: SimulationResult,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulationResult {
    pub job_status: String,
    pub job_payload_location: String,
    pub job_payload_key: String,
    pub job_request_id: JobId,
}

impl SimulationResponse {
    pub fn complete(id: &JobId, location: &ResultLocation) -> Self {
        Self {
            status_code: 200,
            body: SimulationResult {
                job_status: crate::JobStatus::Complete.as_str().to_owned(),
                job_payload_location: location.bucket.clone(),
                job_payload_key: location.key.clone(),
                job_request_id: id.clone(),
            },
        }
    }

    pub fn location(&self) -> ResultLocation {
        ResultLocation { bucket: self.body.job_payload_location.clone(), key: self.body.job_payload_key.clone() }
    }
}
