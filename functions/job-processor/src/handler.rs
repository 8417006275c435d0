use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use jobs_aws::events::publish_accounted;
use jobs_aws::metrics::metrics_of;
use jobs_aws::{Emf, env_parse};
use jobs_core::job_end::JobEnd;
use jobs_core::ports::{
    CompleteJob, DelayRedelivery, FailJob, FailUnrecorded, GetJob, NoteAttemptError, PublishJobEnds, RecordAttempt,
    RemoveResult, RunSimulation,
};
use jobs_core::processing::{Delivery, Outcome, RetryPolicy, process_delivery};
use jobs_core::webhook::{Callback, Destinations};
use jobs_core::{JobId, Timestamp};
use lambda_runtime::{Error, LambdaEvent};

/// Longest retry back-off: well inside the queue's visibility timeout range.
pub const BACKOFF_CAP_SECONDS: u32 = 300;

/// Message attribute that carries the job id when a message is re-sent by a
/// replay tool that cannot keep the original MessageId.
pub const JOB_ID_ATTRIBUTE: &str = "jobId";

/// Message attribute the API's SQS integration sets to the caller's Cognito
/// `sub`; it survives a DLQ redrive, so replays keep their owner.
pub const OWNER_ATTRIBUTE: &str = "owner";

/// Message attribute the API's SQS integration sets to the submit's
/// `Job-Callback-Url` header, when it has one.
pub const CALLBACK_URL_ATTRIBUTE: &str = "callbackUrl";

/// The retry policy the app stack configures (docs/contract.md).
pub fn retry_policy_from_env() -> Result<RetryPolicy, Error> {
    let max_receive_count: u32 = env_parse("MAX_RECEIVE_COUNT", "a whole number of receives")?;
    if max_receive_count < 2 {
        // One receive runs the job, the last is kept to settle unfinished ones.
        return Err(format!("MAX_RECEIVE_COUNT must be at least 2, got {max_receive_count}").into());
    }
    Ok(RetryPolicy {
        max_receive_count,
        backoff_base_seconds: env_parse("RETRY_BACKOFF_BASE_SECONDS", "a whole number of seconds")?,
        backoff_cap_seconds: BACKOFF_CAP_SECONDS,
        result_retention_days: env_parse("RESULT_RETENTION_DAYS", "a whole number of days")?,
    })
}

pub struct Processor<S, R, D, E, O> {
    pub store: S,
    pub simulator: R,
    /// The results bucket, where a cancelled job's result is removed.
    pub results: O,
    pub redelivery: D,
    /// Where a job's end is published (the job events bus).
    pub job_ends: E,
    pub policy: RetryPolicy,
    /// Where callback URLs may point (`WEBHOOK_DESTINATIONS`).
    pub destinations: Destinations,
    pub metrics: Emf,
}

/// Process a batch from the jobs queue. Records run concurrently and each
/// succeeds or fails on its own: only the failed ones are reported back
/// (`ReportBatchItemFailures`), so one bad message never repeats its
/// neighbours.
pub async fn process_batch<S, R, D, E, O>(
    processor: &Processor<S, R, D, E, O>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error>
where
    S: RecordAttempt + CompleteJob + FailJob + FailUnrecorded + NoteAttemptError + GetJob,
    R: RunSimulation,
    D: DelayRedelivery,
    E: PublishJobEnds,
    O: RemoveResult,
{
    let outcomes = join_all(event.payload.records.iter().map(|m| process_message(processor, m))).await;
    let mut response = SqsBatchResponse::default();
    let mut ends = Vec::new();
    for (message, (acknowledged, end)) in event.payload.records.iter().zip(outcomes) {
        if !acknowledged {
            response.add_failure(message.message_id.clone().unwrap_or_default());
        }
        ends.extend(end);
    }
    // The batch's ends in one call (up to 10 events per PutEvents), once
    // every job's state is written.
    publish_ends(processor, &ends).await;
    Ok(response)
}

/// Returns whether the message may be deleted from the queue, and the job's
/// end if this delivery ended it.
async fn process_message<S, R, D, E, O>(
    processor: &Processor<S, R, D, E, O>,
    message: &SqsMessage,
) -> (bool, Option<JobEnd>)
where
    S: RecordAttempt + CompleteJob + FailJob + FailUnrecorded + NoteAttemptError + GetJob,
    R: RunSimulation,
    D: DelayRedelivery,
    E: PublishJobEnds,
    O: RemoveResult,
{
    let delivery = match delivery_from(message, processor.destinations) {
        Ok(d) => d,
        Err(problem) => {
            // Not a job submitted through the API: leave it to redrive to the
            // dead-letter queue, where the DLQ alarm makes it visible.
            tracing::error!(message_id = ?message.message_id, problem, "unprocessable message");
            return (false, None);
        }
    };
    let processed = process_delivery(
        &processor.store,
        &processor.simulator,
        &processor.results,
        processor.policy,
        &delivery,
        Timestamp::now,
    )
    .await;
    let job_id = delivery.job_id.as_str();
    let now = Timestamp::now();
    for event in processed.events(&delivery, now) {
        processor.metrics.emit(&metrics_of(event), &[("jobId", job_id)]);
    }
    // As the record the ending write returned says it (the times GET
    // /job-status shows), and only if it says the job ended so: no read.
    let end = JobEnd::of(&delivery, &processed, now)
        .zip(processed.ended.as_ref())
        .and_then(|(end, record)| end.as_recorded(record));
    let attempt = delivery.receive_count;
    if let Some(detail) = &processed.detail {
        // The whole error, SDK text included: for operators, never in the job's record.
        tracing::warn!(job_id, attempt, error = %detail, "error details");
    }
    let outcome = processed.outcome;
    match &outcome {
        Outcome::Completed(location) => tracing::info!(job_id, attempt, key = %location.key, "job complete"),
        Outcome::AlreadyComplete => tracing::info!(job_id, attempt, "redelivery of a complete job ignored"),
        Outcome::Cancelled => tracing::info!(job_id, attempt, "job cancelled: not run, no result kept"),
        Outcome::FailedPermanently(reason) => tracing::warn!(job_id, attempt, reason, "job failed permanently"),
        Outcome::RetryLater { error, delay_seconds } => {
            tracing::warn!(job_id, attempt, error, delay_seconds, "attempt failed, will retry")
        }
        // One ERROR per failed job: the bookkeeping delivery after a last
        // attempt that already marked the job failed (and logged it) is INFO.
        Outcome::GaveUp { reason, newly_failed: false } if processed.detail.is_none() => {
            tracing::info!(job_id, attempt, reason, "job already failed, message goes to the dead-letter queue")
        }
        Outcome::GaveUp { reason, .. } => {
            tracing::error!(job_id, attempt, reason, "job failed, message goes to the dead-letter queue")
        }
    }
    // Retries come back after the back-off rather than the whole visibility
    // timeout; a give-up is released at once so redrive moves it promptly.
    let delay = match &outcome {
        Outcome::RetryLater { delay_seconds, .. } => Some(*delay_seconds),
        Outcome::GaveUp { .. } => Some(0),
        _ => None,
    };
    if let (Some(seconds), Some(receipt)) = (delay, message.receipt_handle.as_deref())
        && let Err(e) = processor.redelivery.delay_redelivery(receipt, seconds).await
    {
        tracing::warn!(job_id, error = %e, "could not set the retry delay; the queue's visibility timeout applies");
    }
    (outcome.acknowledges(), end)
}

/// Publishes the batch's ends (jobs_aws::events::publish_accounted: a
/// failure is logged with the job id and counted in the alarmed
/// `JobEventsNotPublished`; the jobs and their messages are as written).
async fn publish_ends<S, R, D, E: PublishJobEnds, O>(processor: &Processor<S, R, D, E, O>, ends: &[JobEnd]) {
    publish_accounted(&processor.job_ends, ends, &processor.metrics).await;
}

fn delivery_from(message: &SqsMessage, destinations: Destinations) -> Result<Delivery, String> {
    let raw_id = message
        .message_attributes
        .get(JOB_ID_ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref())
        .or(message.message_id.as_deref())
        .ok_or("the message has no messageId")?;
    let job_id = JobId::parse(raw_id).map_err(|e| e.to_string())?;
    let number = |name: &str| message.attributes.get(name).and_then(|v| v.parse::<u64>().ok());
    Ok(Delivery {
        job_id,
        body: message.body.clone().unwrap_or_default(),
        submitted_at: number("SentTimestamp").map(Timestamp).unwrap_or_else(Timestamp::now),
        receive_count: number("ApproximateReceiveCount").and_then(|n| u32::try_from(n).ok()).unwrap_or(1),
        owner: string_attribute(message, OWNER_ATTRIBUTE),
        callback: string_attribute(message, CALLBACK_URL_ATTRIBUTE).map(|url| Callback::check(&url, destinations)),
    })
}

fn string_attribute(message: &SqsMessage, name: &str) -> Option<String> {
    message.message_attributes.get(name).and_then(|a| a.string_value.clone()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use jobs_core::JobStatus;
    use jobs_core::memory::{MemoryJobEnds, MemoryJobStore, MemoryResultStore, Simulator};
    use jobs_core::ports::{GetJob, StoreError};
    use lambda_runtime::Context;

    #[derive(Default)]
    struct RecordedDelays(Mutex<Vec<(String, u32)>>);

    impl DelayRedelivery for RecordedDelays {
        async fn delay_redelivery(&self, receipt: &str, delay_seconds: u32) -> Result<(), StoreError> {
            self.0.lock().unwrap().push((receipt.to_owned(), delay_seconds));
            Ok(())
        }
    }

    type TestProcessor =
        Processor<MemoryJobStore, Simulator<MemoryResultStore>, RecordedDelays, MemoryJobEnds, MemoryResultStore>;

    fn processor() -> TestProcessor {
        Processor {
            store: MemoryJobStore::default(),
            simulator: Simulator::new(MemoryResultStore::new("results")),
            results: MemoryResultStore::new("results"),
            redelivery: RecordedDelays::default(),
            job_ends: MemoryJobEnds::default(),
            policy: RetryPolicy {
                max_receive_count: 4,
                backoff_base_seconds: 2,
                backoff_cap_seconds: BACKOFF_CAP_SECONDS,
                result_retention_days: 30,
            },
            destinations: Destinations::PublicHttps,
            metrics: Emf::new("test"),
        }
    }

    fn event(fixture: &str) -> LambdaEvent<SqsEvent> {
        LambdaEvent::new(serde_json::from_str(fixture).unwrap(), Context::default())
    }

    /// The fixture as its `receive`th delivery.
    fn on_receive(fixture: &str, receive: u32) -> String {
        fixture.replace("\"ApproximateReceiveCount\": \"1\"", &format!("\"ApproximateReceiveCount\": \"{receive}\""))
    }

    fn failures(response: &SqsBatchResponse) -> Vec<&str> {
        response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect()
    }

    async fn status(p: &TestProcessor, id: &str) -> JobStatus {
        p.store.get_job(&JobId::parse(id).unwrap()).await.unwrap().unwrap().readable().unwrap().status
    }

    const GOOD: &str = "0c6a8c2e-7c1f-4d3a-a1b2-3c4d5e6f7a80";
    const NOT_AN_OBJECT: &str = "1d7b9d3f-8d2a-4e4b-b2c3-4d5e6f7a8b91";
    const FAILS_ONCE: &str = "2e8cae4a-9e3b-4f5c-83d4-5e6f7a8b9ca2";

    #[tokio::test]
    async fn a_mixed_batch_reports_only_the_message_that_must_be_retried() {
        let p = processor();
        let response = process_batch(&p, event(include_str!("../fixtures/mixed-batch.json"))).await.unwrap();
        assert_eq!(failures(&response), [FAILS_ONCE]);
        assert_eq!(status(&p, GOOD).await, JobStatus::Complete);
        assert_eq!(status(&p, NOT_AN_OBJECT).await, JobStatus::Failed);
        assert_eq!(status(&p, FAILS_ONCE).await, JobStatus::Submitted);
        // The retry is scheduled after the first back-off step, by receipt handle.
        assert_eq!(*p.redelivery.0.lock().unwrap(), [("receipt-3".to_owned(), 2)]);
        // The neighbours were not touched by the failure: one object each for the good job.
        assert_eq!(p.simulator.results().objects().len(), 1);
    }

    /// The published ends, as (detail-type, job id), in order.
    fn ends(p: &TestProcessor) -> Vec<(&'static str, String)> {
        p.job_ends.published().iter().map(|e| (e.detail_type(), e.job_id.to_string())).collect()
    }

    #[tokio::test]
    async fn each_job_that_ends_is_published_once() {
        let p = processor();
        let fixture = include_str!("../fixtures/mixed-batch.json");
        process_batch(&p, event(fixture)).await.unwrap();
        let mut first = ends(&p);
        first.sort();
        assert_eq!(first, [("Job Completed", GOOD.to_owned()), ("Job Failed", NOT_AN_OBJECT.to_owned())]);
        // The batch's two ends went in one call.
        assert_eq!(p.job_ends.calls(), 1);
        // The batch again: the complete job publishes nothing; the retried
        // one completes; the failed one is attempted again (a failed job
        // may be, as a replay is) and ends failed again.
        let again = fixture.replace("\"ApproximateReceiveCount\": \"1\"", "\"ApproximateReceiveCount\": \"2\"");
        process_batch(&p, event(&again)).await.unwrap();
        let mut second = ends(&p)[2..].to_vec();
        second.sort();
        assert_eq!(second, [("Job Completed", FAILS_ONCE.to_owned()), ("Job Failed", NOT_AN_OBJECT.to_owned())]);
    }

    #[tokio::test]
    async fn a_job_that_gives_up_is_published_failed_once() {
        let p = processor();
        let fixture = include_str!("../fixtures/always-fails.json");
        for receive in 1..=4 {
            let e = on_receive(fixture, receive);
            process_batch(&p, event(&e)).await.unwrap();
            let expected = if receive < 3 { 0 } else { 1 };
            assert_eq!(ends(&p).len(), expected, "after receive {receive}");
        }
        assert_eq!(ends(&p), [("Job Failed", "3f9dbf5b-af4c-4a6d-94e5-6f7a8b9cadb3".to_owned())]);
    }

    #[tokio::test]
    async fn a_bus_outage_leaves_the_jobs_ended_and_their_messages_acknowledged() {
        let p = processor();
        p.job_ends.set_failing(true);
        let response = process_batch(&p, event(include_str!("../fixtures/mixed-batch.json"))).await.unwrap();
        // As without the outage: only the retry is reported; the ends stand.
        assert_eq!(failures(&response), [FAILS_ONCE]);
        assert_eq!(status(&p, GOOD).await, JobStatus::Complete);
        assert_eq!(status(&p, NOT_AN_OBJECT).await, JobStatus::Failed);
        assert!(ends(&p).is_empty());
    }

    #[tokio::test]
    async fn redelivering_the_same_batch_changes_nothing_that_is_done() {
        let p = processor();
        let fixture = include_str!("../fixtures/mixed-batch.json");
        process_batch(&p, event(fixture)).await.unwrap();
        let again = fixture.replace("\"ApproximateReceiveCount\": \"1\"", "\"ApproximateReceiveCount\": \"2\"");
        let response = process_batch(&p, event(&again)).await.unwrap();
        assert!(failures(&response).is_empty(), "{:?}", failures(&response));
        assert_eq!(status(&p, GOOD).await, JobStatus::Complete);
        assert_eq!(status(&p, NOT_AN_OBJECT).await, JobStatus::Failed);
        assert_eq!(status(&p, FAILS_ONCE).await, JobStatus::Complete);
        // Two complete jobs, two objects: the redelivered good job was not rerun.
        assert_eq!(p.simulator.results().puts(), 2);
    }

    #[tokio::test]
    async fn the_last_receive_marks_the_job_failed_and_releases_it_to_the_dlq() {
        let p = processor();
        let fixture = include_str!("../fixtures/always-fails.json");
        // Three attempts, then the bookkeeping receive (which runs nothing).
        for receive in 1..=4 {
            let e = on_receive(fixture, receive);
            let response = process_batch(&p, event(&e)).await.unwrap();
            assert_eq!(failures(&response).len(), 1, "receive {receive} must be reported failed");
        }
        let id = "3f9dbf5b-af4c-4a6d-94e5-6f7a8b9cadb3";
        let job = p.store.get_job(&JobId::parse(id).unwrap()).await.unwrap().unwrap().readable().unwrap();
        assert_eq!(job.status, JobStatus::Failed);
        assert!(job.failure_reason.as_deref().unwrap().contains("simulated failure"));
        let delays: Vec<u32> = p.redelivery.0.lock().unwrap().iter().map(|d| d.1).collect();
        assert_eq!(delays, [2, 4, 0, 0]);
        assert_eq!(job.attempts, 3);
    }

    /// Log lines written while `f` runs, formatted as the function writes them.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Logs {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap().lines().map(str::to_owned).collect()
        }
    }

    #[tokio::test]
    async fn an_always_failing_job_logs_one_error_naming_the_job() {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .without_time()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::INFO)
            .finish();
        // The test runs on one thread, so a thread-local default sees every event.
        let _guard = tracing::subscriber::set_default(subscriber);
        let p = processor();
        let fixture = include_str!("../fixtures/always-fails.json");
        for receive in 1..=4 {
            let e = on_receive(fixture, receive);
            process_batch(&p, event(&e)).await.unwrap();
        }
        let errors: Vec<String> = logs.lines().into_iter().filter(|l| l.contains(r#""level":"ERROR""#)).collect();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].contains(r#""job_id":"3f9dbf5b-af4c-4a6d-94e5-6f7a8b9cadb3""#), "{}", errors[0]);
        assert!(errors[0].contains("Gave up after 3 deliveries"), "{}", errors[0]);
    }

    #[tokio::test]
    async fn a_replayed_message_keeps_its_job_id_from_the_attribute() {
        let p = processor();
        let response = process_batch(&p, event(include_str!("../fixtures/replayed.json"))).await.unwrap();
        assert!(failures(&response).is_empty());
        assert_eq!(status(&p, "4a0ec06c-b05d-4b7e-a5f6-7a8b9cadbec4").await, JobStatus::Complete);
    }

    #[tokio::test]
    async fn the_owner_attribute_is_recorded_and_sets_the_expiry() {
        let p = processor();
        let response = process_batch(&p, event(include_str!("../fixtures/replayed.json"))).await.unwrap();
        assert!(failures(&response).is_empty());
        let id = JobId::parse("4a0ec06c-b05d-4b7e-a5f6-7a8b9cadbec4").unwrap();
        let job = p.store.get_job(&id).await.unwrap().unwrap().readable().unwrap();
        assert_eq!(job.owner.as_deref(), Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
        let expires = job.expires_at.unwrap();
        let completed = job.completed_at.unwrap();
        assert!(expires <= completed.plus_days(30) && expires > completed.plus_days(29), "{expires:?}");

        // A message without the attribute (not sent through the API) has no owner.
        let p = processor();
        process_batch(&p, event(include_str!("../fixtures/mixed-batch.json"))).await.unwrap();
        let job = p.store.get_job(&JobId::parse(GOOD).unwrap()).await.unwrap().unwrap().readable().unwrap();
        assert_eq!(job.owner, None);
    }

    #[tokio::test]
    async fn a_message_without_a_usable_id_is_left_for_the_dlq() {
        let p = processor();
        let fixture =
            include_str!("../fixtures/replayed.json").replace("4a0ec06c-b05d-4b7e-a5f6-7a8b9cadbec4", "not-a-job-id");
        let response = process_batch(&p, event(&fixture)).await.unwrap();
        assert_eq!(failures(&response).len(), 1);
    }

    #[tokio::test]
    async fn the_callback_url_is_recorded_and_carried_by_the_jobs_end_only_if_it_may_be_called() {
        let fixture = include_str!("../fixtures/with-callback.json");
        let id = JobId::parse("5b1fd17d-c16e-4c8f-b6a7-8b9cadbecfd5").unwrap();
        let p = processor();
        assert!(failures(&process_batch(&p, event(fixture)).await.unwrap()).is_empty());
        let job = p.store.get_job(&id).await.unwrap().unwrap().readable().unwrap();
        let callback = job.callback.expect("recorded");
        assert_eq!((callback.url.as_str(), callback.refused), ("https://hooks.example.com/jobs?team=7", None));
        let ends = p.job_ends.published();
        assert_eq!(ends[0].detail()["callbackUrl"], "https://hooks.example.com/jobs?team=7");

        // On AWS a loopback URL is never called: the job says why, its event has no URL.
        let p = processor();
        let refused = fixture.replace("https://hooks.example.com/jobs?team=7", "http://127.0.0.1:9000/hook");
        process_batch(&p, event(&refused)).await.unwrap();
        let job = p.store.get_job(&id).await.unwrap().unwrap().readable().unwrap();
        assert_eq!(job.status, JobStatus::Complete, "the job runs all the same");
        assert_eq!(job.callback.unwrap().refused.as_deref(), Some("Job-Callback-Url must use https"));
        assert!(p.job_ends.published()[0].detail().get("callbackUrl").is_none());

        // Locally loopback is allowed, so that tests receive deliveries.
        let mut p = processor();
        p.destinations = Destinations::PublicHttpsAndLoopback;
        process_batch(&p, event(&refused)).await.unwrap();
        assert_eq!(p.job_ends.published()[0].detail()["callbackUrl"], "http://127.0.0.1:9000/hook");
    }
}
