//! The jobs table. Every write is one conditional `UpdateItem`, so
//! at-least-once delivery cannot move a complete or cancelled job back or
//! count a delivery twice in one write.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use jobs_core::listing::PageKey;
use jobs_core::ports::{
    Attempt, CancelJob, Cancellation, CompleteJob, Completion, FailJob, FailUnrecorded, GetJob, JobPage, ListJobs,
    NoteAttemptError, RecordAttempt, RefuseWebhook, StoreError,
};
use jobs_core::submission::RecordSubmitted;
use jobs_core::webhook::Callback;
use jobs_core::{JobId, JobRecord, JobStatus, ResultLocation, StoredJob, Submission, Timestamp, UnreadableJob};

/// Attribute names, as in docs/contract.md and the Python reference.
pub mod attr {
    pub const ID: &str = "jobRequestId";
    pub const STATUS: &str = "jobStatus";
    pub const PAYLOAD: &str = "jobRequestPayload";
    pub const SENT_TIMESTAMP: &str = "SentTimestamp";
    pub const SUBMITTED_AT: &str = "submittedAt";
    pub const UPDATED_AT: &str = "updatedAt";
    pub const ATTEMPTS: &str = "attempts";
    pub const LAST_ERROR: &str = "lastError";
    pub const FAILURE_REASON: &str = "failureReason";
    pub const LOCATION: &str = "jobPayloadLocation";
    pub const KEY: &str = "jobPayloadKey";
    pub const COMPLETED_AT: &str = "completedAt";
    pub const FAILED_AT: &str = "failedAt";
    pub const CANCELLED_AT: &str = "cancelledAt";
    /// The submitter's Cognito `sub`; hash key of [`super::OWNER_INDEX`].
    pub const OWNER: &str = "owner";
    /// The table's TTL attribute (epoch seconds).
    pub const EXPIRES_AT: &str = "expiresAt";
    /// The submit's callback: a map of `url` (its `Job-Callback-Url`, as
    /// given) and, when it is never called, `refused` (why). One attribute,
    /// so the first recording sets both or neither.
    pub const CALLBACK: &str = "callback";
    pub const CALLBACK_URL: &str = "url";
    pub const CALLBACK_REFUSED: &str = "refused";
}

/// The global secondary index listing a user's jobs: hash `owner`, range `submittedAt`.
pub const OWNER_INDEX: &str = "owner-submittedAt";

#[derive(Debug, Clone)]
pub struct DynamoJobStore {
    client: Client,
    table: String,
}

impl DynamoJobStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    fn update(&self, id: &JobId) -> UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.table).key(attr::ID, s(id.as_str()))
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn epoch_seconds(at: Timestamp) -> AttributeValue {
    AttributeValue::N(at.epoch_seconds().to_string())
}

fn status(value: JobStatus) -> AttributeValue {
    s(value.as_str())
}

/// Did the write fail only because its condition did not hold?
fn condition_failed(err: &SdkError<UpdateItemError>) -> Option<&UpdateItemError> {
    err.as_service_error().filter(|e| e.is_conditional_check_failed_exception())
}

/// The condition of every write that must leave an ended-for-good job alone:
/// a complete or a cancelled one (`:complete`, `:cancelled` bound by
/// [`closed_statuses`]).
const NOT_CLOSED: &str = "NOT #status IN (:complete, :cancelled)";

fn closed_statuses(
    request: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    request
        .expression_attribute_names("#status", attr::STATUS)
        .expression_attribute_values(":complete", status(JobStatus::Complete))
        .expression_attribute_values(":cancelled", status(JobStatus::Cancelled))
}

/// The status of the item the failed condition saw, if it had a readable one.
fn status_seen(err: &UpdateItemError) -> Option<JobStatus> {
    item_seen(err).and_then(|item| text_attribute(item, attr::STATUS)).and_then(|t| JobStatus::parse(&t))
}

/// The item the failed condition saw (`ReturnValuesOnConditionCheckFailure`).
fn item_seen(err: &UpdateItemError) -> Option<&HashMap<String, AttributeValue>> {
    match err {
        UpdateItemError::ConditionalCheckFailedException(e) => e.item(),
        _ => None,
    }
}

/// What a job's record may show about a failed call to the table, whatever
/// the SDK error was: its text (request id, headers, an AccessDenied's role
/// ARN and account) goes to the log only.
pub const TABLE_UNAVAILABLE: &str = "the jobs table refused or did not answer the request";

/// Why DynamoDB refused a write for good (a ValidationException: the item
/// is too large, or otherwise invalid), in our own words for the job's owner
/// (DynamoDB's message goes to the log only); `None` for any other error
/// (those may pass).
fn refusal(err: &SdkError<UpdateItemError>) -> Option<String> {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    let service_error = err.as_service_error()?;
    if service_error.code() != Some("ValidationException") {
        return None;
    }
    let message = service_error.message().unwrap_or_default();
    Some(if message.to_ascii_lowercase().contains("size") {
        "its record would be over the jobs table's item size limit (400 KB)".to_owned()
    } else {
        "the jobs table refused its record as invalid".to_owned()
    })
}

fn store_error(action: &str, err: impl std::error::Error) -> StoreError {
    StoreError::with_detail(TABLE_UNAVAILABLE, format!("{action}: {}", DisplayErrorContext(err)))
}

impl RecordAttempt for DynamoJobStore {
    async fn record_attempt(&self, sub: &Submission, now: Timestamp) -> Result<Attempt, StoreError> {
        // The owner is set once; a job being worked on again no longer expires.
        let set_owner = if sub.owner.is_some() { ", #owner = if_not_exists(#owner, :owner)" } else { "" };
        let mut request = self.update(&sub.id);
        if let Some(owner) = &sub.owner {
            request = request
                .expression_attribute_names("#owner", attr::OWNER)
                .expression_attribute_values(":owner", s(owner.clone()));
        }
        let (request, set_callback) = set_callback(request, sub);
        let result = closed_statuses(request)
            .update_expression(format!(
                "SET #status = :submitted, #attempts = if_not_exists(#attempts, :zero) + :one, \
                 #updated = :now, #payload = if_not_exists(#payload, :payload), \
                 #sent = if_not_exists(#sent, :sent), #submittedAt = if_not_exists(#submittedAt, :submittedAt)\
                 {set_owner}{set_callback} REMOVE #reason, #expires, #failedAt",
            ))
            .expression_attribute_names("#expires", attr::EXPIRES_AT)
            .expression_attribute_names("#failedAt", attr::FAILED_AT)
            .condition_expression(format!("attribute_not_exists(#id) OR {NOT_CLOSED}"))
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#attempts", attr::ATTEMPTS)
            .expression_attribute_names("#updated", attr::UPDATED_AT)
            .expression_attribute_names("#payload", attr::PAYLOAD)
            .expression_attribute_names("#sent", attr::SENT_TIMESTAMP)
            .expression_attribute_names("#submittedAt", attr::SUBMITTED_AT)
            .expression_attribute_names("#reason", attr::FAILURE_REASON)
            .expression_attribute_values(":submitted", status(JobStatus::Submitted))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_values(":payload", s(sub.payload.clone()))
            .expression_attribute_values(":sent", s(sub.submitted_at.millis().to_string()))
            .expression_attribute_values(":submittedAt", s(sub.submitted_at.to_rfc3339()))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let number = out
                    .attributes()
                    .and_then(|a| a.get(attr::ATTEMPTS))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| {
                        StoreError::with_detail(TABLE_UNAVAILABLE, "recording the job returned no attempt count")
                    })?;
                Ok(Attempt::Started { number })
            }
            Err(e) => match (condition_failed(&e), refusal(&e)) {
                (Some(failed), _) if status_seen(failed) == Some(JobStatus::Cancelled) => Ok(Attempt::Cancelled),
                (Some(_), _) => Ok(Attempt::AlreadyComplete),
                (None, Some(reason)) => Ok(Attempt::Refused { reason }),
                (None, None) => Err(store_error("recording the job failed", e)),
            },
        }
    }
}

impl CompleteJob for DynamoJobStore {
    async fn complete_job(
        &self,
        id: &JobId,
        result: &ResultLocation,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Completion, StoreError> {
        let outcome = closed_statuses(self.update(id))
            .update_expression(
                "SET #status = :complete, #location = :bucket, #key = :key, #completed = :now, #updated = :now, \
                 #expires = :expires REMOVE #reason, #error, #failedAt",
            )
            .expression_attribute_names("#expires", attr::EXPIRES_AT)
            .expression_attribute_names("#failedAt", attr::FAILED_AT)
            .expression_attribute_values(":expires", epoch_seconds(expires_at))
            .condition_expression(format!("attribute_exists(#id) AND {NOT_CLOSED}"))
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#location", attr::LOCATION)
            .expression_attribute_names("#key", attr::KEY)
            .expression_attribute_names("#completed", attr::COMPLETED_AT)
            .expression_attribute_names("#updated", attr::UPDATED_AT)
            .expression_attribute_names("#reason", attr::FAILURE_REASON)
            .expression_attribute_names("#error", attr::LAST_ERROR)
            .expression_attribute_values(":bucket", s(result.bucket.clone()))
            .expression_attribute_values(":key", s(result.key.clone()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            // The record as written: the job's end is published from it, without a read.
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match outcome {
            Ok(out) => Ok(Completion::Completed(written(id, out.attributes()).map(Box::new))),
            Err(e) => match condition_failed(&e) {
                // Cancelled while it ran: it stays so.
                Some(failed) if status_seen(failed) == Some(JobStatus::Cancelled) => Ok(Completion::Cancelled),
                // Already complete: a rerun, nothing to change.
                Some(failed) if item_seen(failed).is_some() => Ok(Completion::AlreadyComplete),
                Some(_) => {
                    Err(StoreError::new(format!("job {id} is not in the jobs table, so it cannot be completed")))
                }
                None => Err(store_error("marking the job complete failed", e)),
            },
        }
    }
}

impl FailJob for DynamoJobStore {
    async fn fail_job(
        &self,
        id: &JobId,
        reason: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Option<JobRecord>, StoreError> {
        let outcome = closed_statuses(self.update(id))
            .update_expression(
                "SET #status = :failed, #reason = :reason, #updated = :now, #failedAt = :now, #expires = :expires",
            )
            .expression_attribute_names("#expires", attr::EXPIRES_AT)
            .expression_attribute_names("#failedAt", attr::FAILED_AT)
            .expression_attribute_values(":expires", epoch_seconds(expires_at))
            .condition_expression(format!("attribute_exists(#id) AND {NOT_CLOSED}"))
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#reason", attr::FAILURE_REASON)
            .expression_attribute_names("#updated", attr::UPDATED_AT)
            .expression_attribute_values(":failed", status(JobStatus::Failed))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match outcome {
            Ok(out) => Ok(written(id, out.attributes())),
            // A complete or cancelled job never regresses; a missing one has nothing to mark.
            Err(e) if condition_failed(&e).is_some() => Ok(None),
            Err(e) => Err(store_error("marking the job failed failed", e)),
        }
    }
}

impl FailUnrecorded for DynamoJobStore {
    async fn fail_unrecorded(
        &self,
        sub: &Submission,
        reason: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Option<JobRecord>, StoreError> {
        // What `record_attempt` would have written, less the payload.
        let set_owner = if sub.owner.is_some() { ", #owner = if_not_exists(#owner, :owner)" } else { "" };
        let mut request = self.update(&sub.id);
        if let Some(owner) = &sub.owner {
            request = request
                .expression_attribute_names("#owner", attr::OWNER)
                .expression_attribute_values(":owner", s(owner.clone()));
        }
        let (request, set_callback) = set_callback(request, sub);
        let outcome = closed_statuses(request)
            .update_expression(format!(
                "SET #status = :failed, #reason = :reason, #updated = :now, #failedAt = :now, #expires = :expires, \
                 #attempts = if_not_exists(#attempts, :zero), #sent = if_not_exists(#sent, :sent), \
                 #submittedAt = if_not_exists(#submittedAt, :submittedAt){set_owner}{set_callback}"
            ))
            .condition_expression(format!("attribute_not_exists(#id) OR {NOT_CLOSED}"))
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#reason", attr::FAILURE_REASON)
            .expression_attribute_names("#updated", attr::UPDATED_AT)
            .expression_attribute_names("#failedAt", attr::FAILED_AT)
            .expression_attribute_names("#expires", attr::EXPIRES_AT)
            .expression_attribute_names("#attempts", attr::ATTEMPTS)
            .expression_attribute_names("#sent", attr::SENT_TIMESTAMP)
            .expression_attribute_names("#submittedAt", attr::SUBMITTED_AT)
            .expression_attribute_values(":failed", status(JobStatus::Failed))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_values(":expires", epoch_seconds(expires_at))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":sent", s(sub.submitted_at.millis().to_string()))
            .expression_attribute_values(":submittedAt", s(sub.submitted_at.to_rfc3339()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match outcome {
            Ok(out) => Ok(written(&sub.id, out.attributes())),
            // Complete after all (another delivery), or cancelled: it stays so.
            Err(e) if condition_failed(&e).is_some() => Ok(None),
            Err(e) => Err(store_error("recording the job as failed failed", e)),
        }
    }
}

impl NoteAttemptError for DynamoJobStore {
    async fn note_attempt_error(&self, id: &JobId, error: &str, now: Timestamp) -> Result<(), StoreError> {
        let outcome = self
            .update(id)
            .update_expression("SET #error = :error, #updated = :now")
            .condition_expression("#status = :submitted")
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#error", attr::LAST_ERROR)
            .expression_attribute_names("#updated", attr::UPDATED_AT)
            .expression_attribute_values(":submitted", status(JobStatus::Submitted))
            .expression_attribute_values(":error", s(error))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e).is_some() => Ok(()),
            Err(e) => Err(store_error("noting the attempt's error failed", e)),
        }
    }
}

impl RefuseWebhook for DynamoJobStore {
    async fn refuse_webhook(&self, id: &JobId, reason: &str) -> Result<(), StoreError> {
        let outcome = self
            .update(id)
            .update_expression("SET #callback.#refused = :reason")
            .condition_expression("attribute_exists(#callback)")
            .expression_attribute_names("#callback", attr::CALLBACK)
            .expression_attribute_names("#refused", attr::CALLBACK_REFUSED)
            .expression_attribute_values(":reason", s(reason))
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(()),
            // No callback (or no job, e.g. expired): nothing to record it on.
            Err(e) if condition_failed(&e).is_some() => Ok(()),
            Err(e) => Err(store_error("recording why the webhook is refused failed", e)),
        }
    }
}

impl RecordSubmitted for DynamoJobStore {
    /// One conditional UpdateItem that creates the record, as the
    /// processor's first recording would, or leaves an existing one alone.
    async fn record_submitted(&self, sub: &Submission, now: Timestamp) -> Result<(), StoreError> {
        let mut request = self.update(&sub.id);
        let mut set_owner = "";
        if let Some(owner) = &sub.owner {
            set_owner = ", #owner = :owner";
            request = request
                .expression_attribute_names("#owner", attr::OWNER)
                .expression_attribute_values(":owner", s(owner.clone()));
        }
        let (request, set_callback) = set_callback(request, sub);
        let outcome = request
            .update_expression(format!(
                "SET #status = :submitted, #payload = :payload, #sent = :sent, #submittedAt = :submittedAt, \
                 #updated = :now{set_owner}{set_callback}"
            ))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#payload", attr::PAYLOAD)
            .expression_attribute_names("#sent", attr::SENT_TIMESTAMP)
            .expression_attribute_names("#submittedAt", attr::SUBMITTED_AT)
            .expression_attribute_names("#updated", attr::UPDATED_AT)
            .expression_attribute_values(":submitted", status(JobStatus::Submitted))
            .expression_attribute_values(":payload", s(sub.payload.clone()))
            .expression_attribute_values(":sent", s(sub.submitted_at.millis().to_string()))
            .expression_attribute_values(":submittedAt", s(sub.submitted_at.to_rfc3339()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(()),
            // The processor received the message first and recorded the job.
            Err(e) if condition_failed(&e).is_some() => Ok(()),
            Err(e) => Err(store_error("recording the submitted job failed", e)),
        }
    }
}

impl CancelJob for DynamoJobStore {
    async fn cancel_job(
        &self,
        id: &JobId,
        caller: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Cancellation, StoreError> {
        let outcome = self
            .update(id)
            .update_expression("SET #status = :cancelled, #cancelledAt = :now, #updated = :now, #expires = :expires")
            // Only the owner's job, while it has not ended, and not expired.
            .condition_expression(
                "#owner = :caller AND #status = :submitted AND (attribute_not_exists(#expires) OR #expires > :nowSeconds)",
            )
            .expression_attribute_names("#owner", attr::OWNER)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#cancelledAt", attr::CANCELLED_AT)
            .expression_attribute_names("#updated", attr::UPDATED_AT)
            .expression_attribute_names("#expires", attr::EXPIRES_AT)
            .expression_attribute_values(":caller", s(caller))
            .expression_attribute_values(":submitted", status(JobStatus::Submitted))
            .expression_attribute_values(":cancelled", status(JobStatus::Cancelled))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_values(":nowSeconds", epoch_seconds(now))
            .expression_attribute_values(":expires", epoch_seconds(expires_at))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let read = |item: &HashMap<String, AttributeValue>| {
            record_from_item(id, item)
                .map_err(|problem| StoreError::with_detail("the job's record is damaged and cannot be read", problem))
        };
        match outcome {
            Ok(out) => match out.attributes() {
                Some(item) => read(item).map(Cancellation::Cancelled),
                None => Err(StoreError::with_detail(TABLE_UNAVAILABLE, "cancelling the job returned no record")),
            },
            Err(e) => match condition_failed(&e) {
                Some(failed) => {
                    let Some(item) = item_seen(failed) else { return Ok(Cancellation::NotFound) };
                    // Not the caller's, or expired: the same answer as no job at all
                    // (the domain's visibility rule, readable record or not).
                    let stored = stored_from_item(id, item);
                    if !stored.visible_to(Some(caller), now) {
                        return Ok(Cancellation::NotFound);
                    }
                    let record = read(item)?;
                    Ok(match record.status {
                        JobStatus::Cancelled => Cancellation::AlreadyCancelled(record),
                        // Visible and submitted meets the condition: the item seen says otherwise.
                        JobStatus::Submitted => {
                            return Err(StoreError::with_detail(
                                TABLE_UNAVAILABLE,
                                "cancelling the job: its condition failed on a submitted record",
                            ));
                        }
                        JobStatus::Complete | JobStatus::Failed => Cancellation::Ended(record),
                    })
                }
                None => Err(store_error("cancelling the job failed", e)),
            },
        }
    }
}

impl GetJob for DynamoJobStore {
    async fn get_job(&self, id: &JobId) -> Result<Option<StoredJob>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::ID, s(id.as_str()))
            // A client polling right after `complete` must see it.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("reading the job failed", e))?;
        Ok(out.item().map(|item| stored_from_item(id, item)))
    }
}

/// Job `id`'s item as the domain sees it, readable or not.
fn stored_from_item(id: &JobId, item: &HashMap<String, AttributeValue>) -> StoredJob {
    match record_from_item(id, item) {
        Ok(job) => StoredJob::Readable(job),
        // Owner and expiry are read on their own: the record stays invisible to others.
        Err(problem) => StoredJob::Unreadable(UnreadableJob {
            id: id.clone(),
            owner: text_attribute(item, attr::OWNER),
            expires_at: expiry_of(item),
            problem,
        }),
    }
}

/// The record a write returned (`ReturnValues: ALL_NEW`), if it can be read.
fn written(id: &JobId, item: Option<&HashMap<String, AttributeValue>>) -> Option<JobRecord> {
    item.and_then(|item| record_from_item(id, item).ok())
}

fn text_attribute(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn expiry_of(item: &HashMap<String, AttributeValue>) -> Option<Timestamp> {
    item.get(attr::EXPIRES_AT)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u64>().ok())
        .map(Timestamp::from_epoch_seconds)
}

/// The SET clause (and its name and value) that records a submission's
/// callback on the job's first write; later writes keep what the first one
/// recorded, URL and refusal together.
fn set_callback(request: UpdateItemFluentBuilder, sub: &Submission) -> (UpdateItemFluentBuilder, String) {
    let Some(callback) = &sub.callback else { return (request, String::new()) };
    let mut value = HashMap::from([(attr::CALLBACK_URL.to_owned(), s(callback.url.clone()))]);
    if let Some(reason) = &callback.refused {
        value.insert(attr::CALLBACK_REFUSED.to_owned(), s(reason.clone()));
    }
    let request = request
        .expression_attribute_names("#callback", attr::CALLBACK)
        .expression_attribute_values(":callback", AttributeValue::M(value));
    (request, ", #callback = if_not_exists(#callback, :callback)".to_owned())
}

fn callback_of(item: &HashMap<String, AttributeValue>) -> Option<Callback> {
    let map = item.get(attr::CALLBACK)?.as_m().ok()?;
    let text = |name: &str| map.get(name).and_then(|v| v.as_s().ok()).cloned();
    Some(Callback { url: text(attr::CALLBACK_URL)?, refused: text(attr::CALLBACK_REFUSED) })
}

/// The record of job `id`, or what makes it unreadable.
fn record_from_item(id: &JobId, item: &HashMap<String, AttributeValue>) -> Result<JobRecord, String> {
    let text = |name: &str| text_attribute(item, name);
    let time = |name: &str| text(name).and_then(|t| Timestamp::parse_rfc3339(&t));
    let corrupt = |what: &str| format!("job {id} has no valid {what} in the jobs table");

    let status_text = text(attr::STATUS).ok_or_else(|| corrupt(attr::STATUS))?;
    let status = JobStatus::parse(&status_text).ok_or_else(|| corrupt(attr::STATUS))?;
    // Items written by the Python reference carry only SentTimestamp (epoch ms).
    let submitted_at = time(attr::SUBMITTED_AT)
        .or_else(|| text(attr::SENT_TIMESTAMP).and_then(|ms| ms.parse().ok()).map(Timestamp))
        .ok_or_else(|| corrupt(attr::SUBMITTED_AT))?;
    let result = match (text(attr::LOCATION), text(attr::KEY)) {
        (Some(bucket), Some(key)) => Some(ResultLocation { bucket, key }),
        _ => None,
    };
    Ok(JobRecord {
        id: id.clone(),
        status,
        payload: text(attr::PAYLOAD).unwrap_or_default(),
        submitted_at,
        updated_at: time(attr::UPDATED_AT).unwrap_or(submitted_at),
        attempts: item.get(attr::ATTEMPTS).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0),
        last_error: text(attr::LAST_ERROR),
        failure_reason: text(attr::FAILURE_REASON),
        result,
        completed_at: time(attr::COMPLETED_AT),
        failed_at: time(attr::FAILED_AT),
        cancelled_at: time(attr::CANCELLED_AT),
        owner: text(attr::OWNER),
        expires_at: expiry_of(item),
        callback: callback_of(item),
    })
}

impl ListJobs for DynamoJobStore {
    async fn list_jobs(&self, owner: &str, limit: u32, after: Option<&PageKey>) -> Result<JobPage, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OWNER_INDEX)
            .key_condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", attr::OWNER)
            .expression_attribute_values(":owner", s(owner))
            .scan_index_forward(false)
            // One more than asked: whether it comes tells if there is a next
            // page, so the last page never carries a token to an empty one.
            .limit(i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX));
        if let Some(key) = after {
            query = query.set_exclusive_start_key(Some(HashMap::from([
                (attr::ID.to_owned(), s(key.job_id.as_str())),
                (attr::OWNER.to_owned(), s(key.owner.clone())),
                (attr::SUBMITTED_AT.to_owned(), s(key.submitted_at.clone())),
            ])));
        }
        let out = query.send().await.map_err(|e| store_error("listing the jobs failed", e))?;
        let mut jobs = Vec::new();
        // The index key of each item exactly as stored, for the page token.
        let mut keys = Vec::new();
        for item in out.items() {
            let raw = item.get(attr::ID).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default();
            let id = JobId::parse(raw)
                .map_err(|e| StoreError::with_detail(TABLE_UNAVAILABLE, format!("an item of the jobs table: {e}")))?;
            let submitted_at = item.get(attr::SUBMITTED_AT).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            keys.push(PageKey { job_id: id.clone(), owner: owner.to_owned(), submitted_at });
            jobs.push(
                record_from_item(&id, item).map_err(|problem| StoreError::with_detail(TABLE_UNAVAILABLE, problem))?,
            );
        }
        let next = match out.last_evaluated_key() {
            _ if jobs.len() > limit as usize => {
                jobs.truncate(limit as usize);
                keys.truncate(limit as usize);
                keys.pop()
            }
            None => None,
            Some(key) => {
                let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned();
                let id = text(attr::ID).and_then(|raw| JobId::parse(&raw).ok());
                match (id, text(attr::SUBMITTED_AT)) {
                    (Some(job_id), Some(submitted_at)) => {
                        Some(PageKey { job_id, owner: owner.to_owned(), submitted_at })
                    }
                    _ => {
                        return Err(StoreError::with_detail(
                            TABLE_UNAVAILABLE,
                            "listing the jobs returned an unexpected LastEvaluatedKey",
                        ));
                    }
                }
            }
        };
        Ok(JobPage { jobs, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_item_written_by_the_python_reference() {
        let id = JobId::parse("4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21").unwrap();
        let item = HashMap::from([
            (attr::ID.to_owned(), s(id.as_str())),
            (attr::STATUS.to_owned(), s("complete")),
            (attr::PAYLOAD.to_owned(), s("{}")),
            (attr::SENT_TIMESTAMP.to_owned(), s("1763840000123")),
            (attr::LOCATION.to_owned(), s("bucket")),
            (attr::KEY.to_owned(), s(id.as_str())),
        ]);
        let job = record_from_item(&id, &item).unwrap();
        assert_eq!(job.status, JobStatus::Complete);
        assert_eq!(job.submitted_at, Timestamp(1_763_840_000_123));
        assert_eq!(job.result.unwrap().key, id.as_str());
        assert_eq!((job.owner, job.expires_at), (None, None), "visible to nobody");
    }

    #[test]
    fn reads_owner_and_expiry() {
        let id = JobId::parse("4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21").unwrap();
        let item = HashMap::from([
            (attr::STATUS.to_owned(), s("failed")),
            (attr::SUBMITTED_AT.to_owned(), s("2026-11-22T19:30:00.000Z")),
            (attr::FAILED_AT.to_owned(), s("2026-11-22T19:31:00.000Z")),
            (attr::OWNER.to_owned(), s("sub-1")),
            (attr::EXPIRES_AT.to_owned(), AttributeValue::N("1795000000".into())),
        ]);
        let job = record_from_item(&id, &item).unwrap();
        assert_eq!(job.owner.as_deref(), Some("sub-1"));
        assert_eq!(job.expires_at, Some(Timestamp(1_795_000_000_000)));
        assert_eq!(job.failed_at.map(Timestamp::to_rfc3339).as_deref(), Some("2026-11-22T19:31:00.000Z"));
    }

    #[test]
    fn an_sdk_error_is_shown_as_one_safe_sentence_and_logged_whole() {
        use aws_sdk_dynamodb::config::http::HttpResponse;
        use aws_sdk_dynamodb::error::ErrorMetadata;
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;

        // What DynamoDB answers a role without the permission, as the SDK receives it.
        let message = "User: arn:aws:sts::123456789012:assumed-role/jobs-dev-job-processor/jobs-dev-job-processor \
                       is not authorized to perform: dynamodb:UpdateItem on resource: \
                       arn:aws:dynamodb:us-east-1:123456789012:table/jobs-dev-jobs";
        let mut raw = HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#AccessDeniedException","message":"{message}"}}"#
            )),
        );
        raw.headers_mut().insert("x-amzn-RequestId", "7B2C5F0E1D2A4B7E9C1F0A3B4C5D6E7F");
        let meta = ErrorMetadata::builder().code("AccessDeniedException").message(message).build();
        let err = store_error("recording the job failed", SdkError::service_error(UpdateItemError::generic(meta), raw));

        assert_eq!(err.to_string(), TABLE_UNAVAILABLE);
        let detail = err.detail();
        for internal in ["arn:aws:sts::123456789012", "AccessDeniedException", "recording the job failed"] {
            assert!(detail.contains(internal), "the log keeps {internal}: {detail}");
        }
    }

    #[test]
    fn an_item_without_a_known_status_is_reported_not_guessed() {
        let id = JobId::parse("4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21").unwrap();
        let item = HashMap::from([(attr::STATUS.to_owned(), s("Done"))]);
        let err = record_from_item(&id, &item).unwrap_err();
        assert!(err.contains("jobStatus"), "{err}");
    }
}
