//! One batch from the webhook delivery queue: each message is a job's end
//! as the jobs bus published it (a rule routes the ends that carry a
//! `callbackUrl` here). Each is POSTed, signed, to its URL; a failure comes
//! back after the back-off until the last attempt, then goes to the
//! delivery dead-letter queue, where an alarm makes it visible.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use jobs_aws::metrics::{Metric, Unit, name};
use jobs_aws::{Emf, env_parse};
use jobs_core::Timestamp;
use jobs_core::ports::{DelayRedelivery, PostWebhook, ReadSigningSecret, RefuseWebhook};
use jobs_core::webhook::{Answer, CallbackUrl, Destinations, RetrySchedule, Step, next_step, signature, webhook_of};
use lambda_runtime::{Error, LambdaEvent};

/// The schedule the stack configures (cdktf/constructs/job-webhooks.ts).
pub fn schedule_from_env() -> Result<RetrySchedule, Error> {
    let schedule = RetrySchedule {
        backoff_base_seconds: env_parse("WEBHOOK_BACKOFF_BASE_SECONDS", "a whole number of seconds")?,
        backoff_cap_seconds: env_parse("WEBHOOK_BACKOFF_CAP_SECONDS", "a whole number of seconds")?,
        max_attempts: env_parse("WEBHOOK_MAX_ATTEMPTS", "a whole number of attempts")?,
    };
    if schedule.max_attempts < 1 {
        return Err("WEBHOOK_MAX_ATTEMPTS must be at least 1".into());
    }
    Ok(schedule)
}

pub struct Sender<J, D, H, S> {
    /// Where a refused URL's reason is recorded (the jobs table).
    pub jobs: J,
    pub redelivery: D,
    pub http: H,
    pub secret: S,
    pub schedule: RetrySchedule,
    /// Where callback URLs may point (`WEBHOOK_DESTINATIONS`).
    pub destinations: Destinations,
    pub metrics: Emf,
}

/// Deliver a batch: messages are sent concurrently and each is acknowledged
/// or not on its own (`ReportBatchItemFailures`).
pub async fn deliver_batch<J, D, H, S>(
    sender: &Sender<J, D, H, S>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error>
where
    J: RefuseWebhook,
    D: DelayRedelivery,
    H: PostWebhook,
    S: ReadSigningSecret,
{
    let acknowledged = join_all(event.payload.records.iter().map(|m| deliver(sender, m))).await;
    let mut response = SqsBatchResponse::default();
    for (message, acknowledged) in event.payload.records.iter().zip(acknowledged) {
        if !acknowledged {
            response.add_failure(message.message_id.clone().unwrap_or_default());
        }
    }
    Ok(response)
}

/// Returns whether the message may be deleted from the queue.
async fn deliver<J, D, H, S>(sender: &Sender<J, D, H, S>, message: &SqsMessage) -> bool
where
    J: RefuseWebhook,
    D: DelayRedelivery,
    H: PostWebhook,
    S: ReadSigningSecret,
{
    let attempt = message.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse::<u32>().ok()).unwrap_or(1);
    let event = message.body.as_deref().and_then(|body| serde_json::from_str(body).ok());
    let Some(webhook) = event.as_ref().and_then(webhook_of) else {
        // Only the rule writes here; anything else is left for the
        // dead-letter queue, whose alarm makes it visible.
        tracing::error!(message_id = ?message.message_id, "not a job event with a callback URL");
        delay(sender, message, 0).await;
        return false;
    };
    let job_id = webhook.job_id.as_str();
    let step = match CallbackUrl::parse(&webhook.url, sender.destinations) {
        Err(refused) => Step::Refused(refused.to_string()),
        Ok(url) => {
            let answer = match sender.secret.signing_secret().await {
                Ok(secret) => {
                    let signature = signature(&secret, Timestamp::now().epoch_seconds(), &webhook.body);
                    sender.http.post_webhook(&url, &webhook.event, &signature, &webhook.body).await
                }
                Err(e) => {
                    tracing::warn!(job_id, error = e.detail(), "error details");
                    Answer::Failed(e.to_string())
                }
            };
            next_step(answer, attempt, &sender.schedule)
        }
    };
    let count = |name| [Metric { name, unit: Unit::Count, value: 1.0 }];
    let properties = [("jobId", job_id), ("event", webhook.event.as_str())];
    match step {
        Step::Delivered { status } => {
            tracing::info!(job_id, attempt, status, event = webhook.event, "webhook delivered");
            sender.metrics.emit(&count(name::WEBHOOKS_DELIVERED), &properties);
            true
        }
        Step::Refused(reason) => {
            tracing::warn!(job_id, reason, "webhook refused: never sent; the reason is recorded on the job");
            sender.metrics.emit(&count(name::WEBHOOKS_REFUSED), &properties);
            if let Err(e) = sender.jobs.refuse_webhook(&webhook.job_id, &reason).await {
                tracing::warn!(job_id, error = e.detail(), "could not record why the webhook is refused");
            }
            true
        }
        Step::RetryLater { error, delay_seconds } => {
            tracing::warn!(job_id, attempt, error, delay_seconds, "webhook attempt failed, will retry");
            sender.metrics.emit(&count(name::WEBHOOK_ATTEMPTS_FAILED), &properties);
            delay(sender, message, delay_seconds).await;
            false
        }
        Step::GaveUp { error } => {
            tracing::error!(
                job_id,
                attempt,
                error,
                "webhook not delivered after the last attempt; the event goes to the webhook dead-letter queue"
            );
            sender.metrics.emit(&count(name::WEBHOOK_ATTEMPTS_FAILED), &properties);
            delay(sender, message, 0).await;
            false
        }
    }
}

/// The next attempt comes after the back-off instead of the queue's whole
/// visibility timeout; a give-up is released at once so redrive moves it.
async fn delay<J, D: DelayRedelivery, H, S>(sender: &Sender<J, D, H, S>, message: &SqsMessage, seconds: u32) {
    if let Some(receipt) = message.receipt_handle.as_deref()
        && let Err(e) = sender.redelivery.delay_redelivery(receipt, seconds).await
    {
        tracing::warn!(error = %e, "could not set the retry delay; the queue's visibility timeout applies");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use hmac::{Hmac, KeyInit, Mac};
    use jobs_core::JobId;
    use jobs_core::memory::MemoryJobStore;
    use jobs_core::ports::{GetJob, RecordAttempt, StoreError};
    use jobs_core::webhook::Callback;
    use jobs_core::{JobStatus, Submission};
    use lambda_runtime::Context;
    use sha2::Sha256;

    use super::*;

    const ID: &str = "0c6a8c2e-7c1f-4d3a-a1b2-3c4d5e6f7a80";
    const URL: &str = "https://hooks.example.com/jobs";
    const SECRET: &[u8] = b"whsec_local_test";
    const COMPLETED: &str = include_str!("../fixtures/job-completed.json");

    /// One POST as the fake receiver saw it: URL, event, signature, body.
    type Post = (String, String, String, Vec<u8>);

    /// What the fake receiver saw, and what it answers.
    #[derive(Default)]
    struct Receiver {
        answers: Mutex<Vec<Answer>>,
        seen: Mutex<Vec<Post>>,
    }

    impl PostWebhook for Receiver {
        async fn post_webhook(&self, url: &CallbackUrl, event: &str, signature: &str, body: &[u8]) -> Answer {
            self.seen.lock().unwrap().push((url.as_str().into(), event.into(), signature.into(), body.to_vec()));
            self.answers.lock().unwrap().pop().unwrap_or(Answer::Status(204))
        }
    }

    struct Secret(Option<&'static [u8]>);

    impl ReadSigningSecret for Secret {
        async fn signing_secret(&self) -> Result<Vec<u8>, StoreError> {
            self.0.map(<[u8]>::to_vec).ok_or_else(|| StoreError::new("the signing secret could not be read"))
        }
    }

    #[derive(Default)]
    struct Delays(Mutex<Vec<(String, u32)>>);

    impl DelayRedelivery for Delays {
        async fn delay_redelivery(&self, receipt: &str, delay_seconds: u32) -> Result<(), StoreError> {
            self.0.lock().unwrap().push((receipt.into(), delay_seconds));
            Ok(())
        }
    }

    type TestSender = Sender<MemoryJobStore, Delays, Receiver, Secret>;

    fn sender() -> TestSender {
        Sender {
            jobs: MemoryJobStore::default(),
            redelivery: Delays::default(),
            http: Receiver::default(),
            secret: Secret(Some(SECRET)),
            schedule: RetrySchedule { backoff_base_seconds: 10, backoff_cap_seconds: 3600, max_attempts: 33 },
            destinations: Destinations::PublicHttps,
            metrics: Emf::new("test"),
        }
    }

    fn on_attempt(fixture: &str, attempt: u32) -> String {
        fixture.replace("\"ApproximateReceiveCount\": \"1\"", &format!("\"ApproximateReceiveCount\": \"{attempt}\""))
    }

    async fn deliver(sender: &TestSender, fixture: &str) -> Vec<String> {
        let event = LambdaEvent::new(serde_json::from_str(fixture).unwrap(), Context::default());
        let response = deliver_batch(sender, event).await.unwrap();
        response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
    }

    #[tokio::test]
    async fn a_job_end_is_posted_once_signed_over_its_status_document() {
        let sender = sender();
        assert!(deliver(&sender, COMPLETED).await.is_empty(), "acknowledged");
        let seen = sender.http.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        let (url, event, signature, body) = &seen[0];
        assert_eq!((url.as_str(), event.as_str()), (URL, "Job Completed"));
        let document: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(document["jobId"], ID);
        assert_eq!(document["jobStatus"], "complete");
        assert!(document.get("callbackUrl").is_none());
        // As a receiver verifies it: t=..., v1=hex(HMAC-SHA256(secret, "<t>.<body>")).
        let (t, v1) = signature.split_once(',').unwrap();
        let t = t.strip_prefix("t=").unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(v1.strip_prefix("v1=").unwrap(), expected);
        let age = Timestamp::now().epoch_seconds().abs_diff(t.parse().unwrap());
        assert!(age <= 5, "t is the time of sending: {age} s off");
        assert!(sender.redelivery.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failed_attempt_comes_back_after_the_back_off_and_the_last_one_goes_to_the_dlq() {
        let sender = sender();
        sender.http.answers.lock().unwrap().push(Answer::Status(500));
        assert_eq!(deliver(&sender, &on_attempt(COMPLETED, 3)).await, ["webhook-message-1"]);
        assert_eq!(sender.redelivery.0.lock().unwrap().pop(), Some(("receipt-1".into(), 40)));

        sender.http.answers.lock().unwrap().push(Answer::Failed("connection refused".into()));
        assert_eq!(deliver(&sender, &on_attempt(COMPLETED, 33)).await, ["webhook-message-1"]);
        assert_eq!(sender.redelivery.0.lock().unwrap().pop(), Some(("receipt-1".into(), 0)), "released at once");

        // The secret cannot be read: retried like a failed POST, nothing sent.
        let sender = Sender { secret: Secret(None), ..self::sender() };
        assert_eq!(deliver(&sender, COMPLETED).await, ["webhook-message-1"]);
        assert!(sender.http.seen.lock().unwrap().is_empty());
        assert_eq!(sender.redelivery.0.lock().unwrap().pop(), Some(("receipt-1".into(), 10)));
    }

    #[tokio::test]
    async fn a_url_that_may_not_be_called_is_never_called_and_the_job_says_why() {
        let sender = sender();
        let id = JobId::parse(ID).unwrap();
        let submission = Submission {
            id: id.clone(),
            payload: "{}".into(),
            submitted_at: Timestamp(1_000),
            owner: Some("user-sub".into()),
            callback: Some(Callback::check(URL, Destinations::PublicHttps)),
        };
        sender.jobs.record_attempt(&submission, Timestamp(2_000)).await.unwrap();
        // The resolver found a private address behind the name.
        let reason = "Job-Callback-Url names hooks.example.com, which resolves to 10.0.0.7, not a public address";
        sender.http.answers.lock().unwrap().push(Answer::Refused(reason.into()));
        assert!(deliver(&sender, COMPLETED).await.is_empty(), "acknowledged: never retried");
        let job = sender.jobs.get_job(&id).await.unwrap().unwrap().readable().unwrap();
        assert_eq!(job.status, JobStatus::Submitted);
        assert_eq!(job.callback.unwrap().refused.as_deref(), Some(reason));

        // A URL the sender's own check refuses is not even posted.
        let loopback = COMPLETED.replace(URL, "https://127.0.0.1/jobs");
        let sender = self::sender();
        assert!(deliver(&sender, &loopback).await.is_empty());
        assert!(sender.http.seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_message_that_is_not_a_job_event_is_left_for_the_dlq() {
        let sender = sender();
        let not_an_event = COMPLETED.replace("\\\"callbackUrl\\\"", "\\\"somethingElse\\\"");
        assert_ne!(not_an_event, COMPLETED);
        assert_eq!(deliver(&sender, &not_an_event).await, ["webhook-message-1"]);
        assert!(sender.http.seen.lock().unwrap().is_empty());
        assert_eq!(sender.redelivery.0.lock().unwrap().pop(), Some(("receipt-1".into(), 0)));
    }
}
