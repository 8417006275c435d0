//! The job processor's decision for one delivered message. The handler only
//! translates: an SQS record in, an acknowledgement (or not) out.

use crate::job::{JobId, ResultLocation, Submission, Timestamp};
use crate::ports::{Attempt, CompleteJob, FailJob, NoteAttemptError, RecordAttempt, RunSimulation, SimulationRequest};
use crate::request::JobParameters;

/// One delivery of a job's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub job_id: JobId,
    pub body: String,
    pub submitted_at: Timestamp,
    /// How many times the queue has handed out this message (1 on the first).
    pub receive_count: u32,
}

/// When to give up, and how long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The queue's redrive `maxReceiveCount`: after this receive fails, the
    /// queue moves the message to the dead-letter queue.
    pub max_receive_count: u32,
    pub backoff_base_seconds: u32,
    pub backoff_cap_seconds: u32,
}

impl RetryPolicy {
    /// Exponential back-off: base, 2·base, 4·base, ... capped.
    pub fn delay_after(&self, receive_count: u32) -> u32 {
        let doublings = receive_count.saturating_sub(1).min(31);
        self.backoff_base_seconds.saturating_mul(1u32 << doublings).min(self.backoff_cap_seconds)
    }
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: the result is stored and the job reads `complete`.
    Completed(ResultLocation),
    /// A redelivery of a job that is already complete.
    AlreadyComplete,
    /// The request can never succeed; the job reads `failed` with this reason.
    FailedPermanently(String),
    /// This attempt failed; the queue redelivers after `delay_seconds`.
    RetryLater { error: String, delay_seconds: u32 },
    /// The last allowed attempt failed: the job reads `failed` and the queue
    /// moves the message to the dead-letter queue.
    GaveUp { reason: String },
}

impl Outcome {
    /// Should the message be deleted from the queue? Retries and give-ups are
    /// reported as batch item failures so the queue redelivers them or moves
    /// them to the dead-letter queue: nothing is dropped silently.
    pub fn acknowledges(&self) -> bool {
        matches!(self, Self::Completed(_) | Self::AlreadyComplete | Self::FailedPermanently(_))
    }
}

/// What processing a delivery did: its outcome, and the attempt number it
/// recorded (none when the store could not record it, or the job was
/// already complete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub outcome: Outcome,
    pub attempt: Option<u32>,
}

/// A business event, reported as a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEvent {
    /// A job was recorded for the first time.
    Recorded,
    /// A job completed, this long after it was submitted.
    Completed { duration_ms: u64 },
    /// A job ended failed (permanently, or after its last allowed delivery).
    Failed,
}

impl Processed {
    /// The events this delivery produced, in order.
    pub fn events(&self, delivery: &Delivery, now: Timestamp) -> Vec<JobEvent> {
        let mut events = Vec::new();
        if self.attempt == Some(1) {
            events.push(JobEvent::Recorded);
        }
        match self.outcome {
            Outcome::Completed(_) => events
                .push(JobEvent::Completed { duration_ms: now.millis().saturating_sub(delivery.submitted_at.millis()) }),
            Outcome::FailedPermanently(_) | Outcome::GaveUp { .. } => events.push(JobEvent::Failed),
            _ => {}
        }
        events
    }
}

/// Process one delivery: record it, run the simulation, record the result.
pub async fn process_delivery<S, R>(
    store: &S,
    simulator: &R,
    policy: RetryPolicy,
    delivery: &Delivery,
    now: impl Fn() -> Timestamp,
) -> Processed
where
    S: RecordAttempt + CompleteJob + FailJob + NoteAttemptError,
    R: RunSimulation,
{
    let id = &delivery.job_id;
    let submission = Submission { id: id.clone(), payload: delivery.body.clone(), submitted_at: delivery.submitted_at };
    let attempt = match store.record_attempt(&submission, now()).await {
        Ok(Attempt::Started { number }) => number,
        Ok(Attempt::AlreadyComplete) => return Processed { outcome: Outcome::AlreadyComplete, attempt: None },
        Err(e) => {
            let error = format!("Could not record the job: {e}");
            let outcome = transient(store, policy, delivery, error, &now).await;
            return Processed { outcome, attempt: None };
        }
    };
    let outcome = run_attempt(store, simulator, policy, delivery, attempt, &now).await;
    Processed { outcome, attempt: Some(attempt) }
}

/// Attempt `attempt` of a recorded job: validate, simulate, complete.
async fn run_attempt<S, R>(
    store: &S,
    simulator: &R,
    policy: RetryPolicy,
    delivery: &Delivery,
    attempt: u32,
    now: &impl Fn() -> Timestamp,
) -> Outcome
where
    S: CompleteJob + FailJob + NoteAttemptError,
    R: RunSimulation,
{
    let id = &delivery.job_id;
    let parameters = match JobParameters::parse(&delivery.body) {
        Ok(p) => p,
        Err(invalid) => {
            let reason = invalid.to_string();
            return match store.fail_job(id, &reason, now()).await {
                Ok(()) => Outcome::FailedPermanently(reason),
                // Not recorded yet: keep the message so the next delivery records it.
                Err(e) => Outcome::RetryLater {
                    error: format!("Could not record the permanent failure ({reason}): {e}"),
                    delay_seconds: policy.delay_after(delivery.receive_count),
                },
            };
        }
    };

    let request = SimulationRequest { job_request_id: id.clone(), job_request_payload: parameters, attempt };
    let error = match simulator.run_simulation(&request).await {
        Ok(location) => match store.complete_job(id, &location, now()).await {
            Ok(()) => return Outcome::Completed(location),
            Err(e) => format!("The result is stored but the job could not be marked complete: {e}"),
        },
        Err(e) => format!("Attempt {attempt} failed: {e}"),
    };
    transient(store, policy, delivery, error, now).await
}

/// A failure that another attempt may fix: retry, or on the last allowed
/// receive give up visibly.
async fn transient<S>(
    store: &S,
    policy: RetryPolicy,
    delivery: &Delivery,
    error: String,
    now: &impl Fn() -> Timestamp,
) -> Outcome
where
    S: FailJob + NoteAttemptError,
{
    let id = &delivery.job_id;
    if delivery.receive_count >= policy.max_receive_count {
        let reason = format!(
            "Gave up after {} deliveries; the message is in the dead-letter queue. Last error: {error}",
            delivery.receive_count
        );
        // If even this write fails, the message still reaches the DLQ and the
        // DLQ alarm fires; the job keeps its last noted error.
        let _ = store.fail_job(id, &reason, now()).await;
        Outcome::GaveUp { reason }
    } else {
        let _ = store.note_attempt_error(id, &error, now()).await;
        Outcome::RetryLater { error, delay_seconds: policy.delay_after(delivery.receive_count) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobStatus;
    use crate::memory::{MemoryJobStore, MemoryResultStore, Simulator};
    use crate::ports::GetJob;

    const ID: &str = "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21";
    const POLICY: RetryPolicy = RetryPolicy { max_receive_count: 3, backoff_base_seconds: 2, backoff_cap_seconds: 60 };

    fn delivery(body: &str, receive_count: u32) -> Delivery {
        Delivery {
            job_id: JobId::parse(ID).unwrap(),
            body: body.to_owned(),
            submitted_at: Timestamp(1_000),
            receive_count,
        }
    }

    fn clock() -> Timestamp {
        Timestamp(2_000)
    }

    async fn run(store: &MemoryJobStore, sim: &Simulator<MemoryResultStore>, body: &str, receive: u32) -> Outcome {
        process_delivery(store, sim, POLICY, &delivery(body, receive), clock).await.outcome
    }

    async fn job(store: &MemoryJobStore) -> crate::JobRecord {
        store.get_job(&JobId::parse(ID).unwrap()).await.unwrap().unwrap()
    }

    fn simulator() -> Simulator<MemoryResultStore> {
        Simulator::new(MemoryResultStore::new("results-bucket"))
    }

    #[tokio::test]
    async fn a_job_is_recorded_simulated_and_completed() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        let outcome = run(&store, &sim, r#"{"region":"eu"}"#, 1).await;
        let expected = ResultLocation { bucket: "results-bucket".into(), key: format!("results/{ID}.json") };
        assert_eq!(outcome, Outcome::Completed(expected.clone()));
        assert!(outcome.acknowledges());
        let job = job(&store).await;
        assert_eq!(job.status, JobStatus::Complete);
        assert_eq!(job.result, Some(expected));
        assert_eq!(job.payload, r#"{"region":"eu"}"#);
        assert_eq!((job.attempts, job.submitted_at, job.completed_at), (1, Timestamp(1_000), Some(Timestamp(2_000))));
        assert_eq!(sim.results().objects().len(), 1);
    }

    #[tokio::test]
    async fn a_redelivered_complete_job_is_left_alone() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        run(&store, &sim, "{}", 1).await;
        let before = job(&store).await;
        let outcome = run(&store, &sim, "{}", 2).await;
        assert_eq!(outcome, Outcome::AlreadyComplete);
        assert!(outcome.acknowledges());
        assert_eq!(job(&store).await, before);
        assert_eq!(sim.results().puts(), 1, "the simulator must not run again");
    }

    #[tokio::test]
    async fn a_body_that_is_not_an_object_fails_at_once_without_retry() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        let outcome = run(&store, &sim, "[1,2,3]", 1).await;
        assert!(
            matches!(&outcome, Outcome::FailedPermanently(r) if r.contains("must be a JSON object")),
            "{outcome:?}"
        );
        assert!(outcome.acknowledges(), "permanent failures are not retried");
        let job = job(&store).await;
        assert_eq!(job.status, JobStatus::Failed);
        assert!(job.failure_reason.unwrap().contains("not an array"));
        assert_eq!(job.payload, "[1,2,3]", "the raw body is kept for inspection");
        assert_eq!(sim.results().puts(), 0);
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_with_backoff_and_noted() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        let outcome = run(&store, &sim, r#"{"simulateFailure":1}"#, 1).await;
        match &outcome {
            Outcome::RetryLater { error, delay_seconds } => {
                assert!(error.contains("Attempt 1 failed"), "{error}");
                assert_eq!(*delay_seconds, 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(!outcome.acknowledges());
        let job = job(&store).await;
        assert_eq!(job.status, JobStatus::Submitted);
        assert!(job.last_error.unwrap().contains("simulated failure"));
        // The second delivery succeeds: "fail once" ends complete.
        assert!(matches!(run(&store, &sim, r#"{"simulateFailure":1}"#, 2).await, Outcome::Completed(_)));
        let job = self::job(&store).await;
        assert_eq!((job.status, job.attempts), (JobStatus::Complete, 2));
    }

    #[tokio::test]
    async fn the_last_allowed_delivery_gives_up_visibly() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        for receive in 1..=2 {
            assert!(matches!(
                run(&store, &sim, r#"{"simulateFailure":"always"}"#, receive).await,
                Outcome::RetryLater { .. }
            ));
        }
        let outcome = run(&store, &sim, r#"{"simulateFailure":"always"}"#, 3).await;
        assert!(matches!(&outcome, Outcome::GaveUp { reason } if reason.contains("dead-letter queue")), "{outcome:?}");
        assert!(!outcome.acknowledges(), "the message must go on to the DLQ");
        let job = job(&store).await;
        assert_eq!(job.status, JobStatus::Failed);
        let reason = job.failure_reason.unwrap();
        assert!(reason.contains("Gave up after 3 deliveries") && reason.contains("simulated failure"), "{reason}");
    }

    #[tokio::test]
    async fn a_store_outage_keeps_the_message_for_retry() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        store.fail_next_writes(1);
        let outcome = run(&store, &sim, "{}", 1).await;
        assert!(
            matches!(&outcome, Outcome::RetryLater { error, .. } if error.contains("Could not record")),
            "{outcome:?}"
        );
        assert!(matches!(run(&store, &sim, "{}", 2).await, Outcome::Completed(_)));
    }

    #[tokio::test]
    async fn an_unrecorded_permanent_failure_is_kept_for_retry() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        store.fail_writes_after(1, 1); // record succeeds, the failure write does not
        let outcome = run(&store, &sim, "oops", 1).await;
        assert!(matches!(outcome, Outcome::RetryLater { .. }), "{outcome:?}");
        assert!(matches!(run(&store, &sim, "oops", 2).await, Outcome::FailedPermanently(_)));
    }

    #[tokio::test]
    async fn events_count_each_job_once_recorded_and_once_finished() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        let events = |body: &str, receive: u32| {
            let d = delivery(body, receive);
            let (store, sim) = (&store, &sim);
            async move { process_delivery(store, sim, POLICY, &d, clock).await.events(&d, Timestamp(4_500)) }
        };
        assert_eq!(events(r#"{"simulateFailure":1}"#, 1).await, [JobEvent::Recorded]);
        assert_eq!(events(r#"{"simulateFailure":1}"#, 2).await, [JobEvent::Completed { duration_ms: 3_500 }]);
        assert_eq!(events(r#"{"simulateFailure":1}"#, 3).await, [], "a redelivered complete job counts nothing");

        let (store, sim) = (MemoryJobStore::default(), simulator());
        let d = delivery("[]", 1);
        let processed = process_delivery(&store, &sim, POLICY, &d, clock).await;
        assert_eq!(processed.attempt, Some(1));
        assert_eq!(processed.events(&d, Timestamp(2_000)), [JobEvent::Recorded, JobEvent::Failed]);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy { max_receive_count: 10, backoff_base_seconds: 2, backoff_cap_seconds: 20 };
        assert_eq!([1, 2, 3, 4, 5, 40].map(|n| p.delay_after(n)), [2, 4, 8, 16, 20, 20]);
    }
}
