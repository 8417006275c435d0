//! The job processor's decision for one delivered message. The handler only
//! translates: an SQS record in, an acknowledgement (or not) out.

use crate::job::{JobId, JobRecord, JobStatus, ResultLocation, StoredJob, Submission, Timestamp};
use crate::ports::{
    Attempt, CompleteJob, Completion, FailJob, FailUnrecorded, GetJob, NoteAttemptError, RecordAttempt, RemoveResult,
    RunSimulation, SimulationRequest, StoreError,
};
use crate::request::JobParameters;
use crate::webhook::Callback;

/// One delivery of a job's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub job_id: JobId,
    pub body: String,
    pub submitted_at: Timestamp,
    /// How many times the queue has handed out this message (1 on the first).
    pub receive_count: u32,
    /// The submitter's Cognito `sub`, from the message's `owner` attribute.
    pub owner: Option<String>,
    /// The callback URL, from the message's `callbackUrl` attribute, checked.
    pub callback: Option<Callback>,
}

/// When to give up, and how long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The queue's redrive `maxReceiveCount` (at least 2). Receives before
    /// the last one run the job; the last one is kept for bookkeeping: it
    /// is reached only when the attempt before it gave up, or did not finish
    /// (the function crashed or timed out), and it marks such a job
    /// `failed` before the queue moves the message to the dead-letter queue.
    pub max_receive_count: u32,
    pub backoff_base_seconds: u32,
    pub backoff_cap_seconds: u32,
    /// How long a finished job's record (and its result object) is kept:
    /// `RESULT_RETENTION_DAYS`, the results bucket's expiration period.
    pub result_retention_days: u32,
}

impl RetryPolicy {
    /// The receive whose failure is final: the last one that runs the job.
    pub fn last_attempt_receive(&self) -> u32 {
        self.max_receive_count.saturating_sub(1).max(1)
    }

    /// Exponential back-off: base, 2·base, 4·base, ... capped.
    pub fn delay_after(&self, receive_count: u32) -> u32 {
        backoff(self.backoff_base_seconds, self.backoff_cap_seconds, receive_count)
    }

    /// When the record of a job that finished at `at` expires.
    /// S3 expires an object at its creation time plus the days, rounded up
    /// to the next midnight UTC; `at` is taken before the object is written,
    /// so the record never outlives its result.
    pub fn expires_at(&self, at: Timestamp) -> Timestamp {
        at.plus_days(self.result_retention_days)
    }
}

/// Exponential back-off after the `attempt`th try: base, 2·base, 4·base,
/// ... capped.
pub fn backoff(base_seconds: u32, cap_seconds: u32, attempt: u32) -> u32 {
    let doublings = attempt.saturating_sub(1).min(31);
    base_seconds.saturating_mul(1u32 << doublings).min(cap_seconds)
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: the result is stored and the job reads `complete`.
    Completed(ResultLocation),
    /// A redelivery of a job that is already complete.
    AlreadyComplete,
    /// Its owner cancelled the job: it was not run (or, cancelled while it
    /// ran, the result that attempt wrote was removed) and it stays
    /// `cancelled`.
    Cancelled,
    /// The request can never succeed; the job reads `failed` with this reason.
    FailedPermanently(String),
    /// This attempt failed; the queue redelivers after `delay_seconds`.
    RetryLater { error: String, delay_seconds: u32 },
    /// No attempt is left: the job reads `failed` and the queue moves the
    /// message to the dead-letter queue. `newly_failed` is false when an
    /// earlier delivery had already marked it failed.
    GaveUp { reason: String, newly_failed: bool },
}

impl Outcome {
    /// Should the message be deleted from the queue? Retries and give-ups are
    /// reported as batch item failures so the queue redelivers them or moves
    /// them to the dead-letter queue: nothing is dropped silently.
    pub fn acknowledges(&self) -> bool {
        matches!(self, Self::Completed(_) | Self::AlreadyComplete | Self::Cancelled | Self::FailedPermanently(_))
    }
}

/// What processing a delivery did: its outcome, and the attempt number it
/// recorded (none when the store could not record it, or the job was
/// already complete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub outcome: Outcome,
    pub attempt: Option<u32>,
    /// The full error behind the outcome's text (its SDK error included),
    /// for the log with the job id; the outcome's text is what the job's
    /// record shows its user.
    pub detail: Option<String>,
    /// The job's record as the write that ended it left it (complete or
    /// failed by this delivery): what its end is published with.
    pub ended: Option<JobRecord>,
}

impl Processed {
    fn of(outcome: Outcome) -> Self {
        Self { outcome, attempt: None, detail: None, ended: None }
    }

    fn with_detail(mut self, detail: Option<String>) -> Self {
        self.detail = detail;
        self
    }

    fn with_ended(mut self, ended: Option<JobRecord>) -> Self {
        self.ended = ended;
        self
    }
}

/// A failure: what the job's record shows (short, in the project's own
/// words) and everything known about it (for the log only).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    shown: String,
    detail: String,
}

impl Failure {
    /// `context` followed by the error, shown as its summary, logged in full.
    fn of(context: &str, error: &StoreError) -> Self {
        Self { shown: format!("{context}: {error}"), detail: format!("{context}: {}", error.detail()) }
    }
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
            Outcome::FailedPermanently(_) | Outcome::GaveUp { newly_failed: true, .. } => events.push(JobEvent::Failed),
            _ => {}
        }
        events
    }
}

/// Process one delivery: record it, run the simulation, record the result.
/// `results` removes the result of a job cancelled while it ran.
pub async fn process_delivery<S, R, D>(
    store: &S,
    simulator: &R,
    results: &D,
    policy: RetryPolicy,
    delivery: &Delivery,
    now: impl Fn() -> Timestamp,
) -> Processed
where
    S: RecordAttempt + CompleteJob + FailJob + FailUnrecorded + NoteAttemptError + GetJob,
    R: RunSimulation,
    D: RemoveResult,
{
    let id = &delivery.job_id;
    let submission = Submission {
        id: id.clone(),
        payload: delivery.body.clone(),
        submitted_at: delivery.submitted_at,
        owner: delivery.owner.clone(),
        callback: delivery.callback.clone(),
    };
    if delivery.receive_count > policy.last_attempt_receive() {
        return settle_unfinished(store, policy, delivery, &submission, &now).await;
    }
    let attempt = match store.record_attempt(&submission, now()).await {
        Ok(Attempt::Started { number }) => number,
        Ok(Attempt::AlreadyComplete) => return Processed::of(Outcome::AlreadyComplete),
        Ok(Attempt::Cancelled) => return Processed::of(Outcome::Cancelled),
        Ok(Attempt::Refused { reason }) => return refused(store, policy, delivery, &submission, &reason, &now).await,
        Err(e) => {
            let failure = Failure::of("Could not record the job", &e);
            return transient(store, policy, delivery, failure.shown, &now).await.with_detail(Some(failure.detail));
        }
    };
    let processed = run_attempt(store, simulator, results, policy, delivery, attempt, &now).await;
    Processed { attempt: Some(attempt), ..processed }
}

/// A job cancelled while this attempt ran: the result the attempt just
/// wrote is removed. Only here does the processor know a result exists: a
/// removal on every delivery of a cancelled job would put a delete marker
/// (an object-removed event) in the versioned bucket for each. If removing
/// fails (after the SDK's retries), the object stays until the bucket's
/// expiration rule removes it: the job still reads `cancelled`, no link to it
/// is ever given, and `detail` says so for the log.
async fn drop_cancelled_result<D: RemoveResult>(results: &D, delivery: &Delivery) -> Processed {
    let detail = results.remove_result(&delivery.job_id).await.err().map(|e| {
        let context = "The job was cancelled while it ran; its result could not be removed and stays until the bucket's expiration";
        Failure::of(context, &e).detail
    });
    Processed::of(Outcome::Cancelled).with_detail(detail)
}

/// Attempt `attempt` of a recorded job: validate, simulate, complete.
async fn run_attempt<S, R, D>(
    store: &S,
    simulator: &R,
    results: &D,
    policy: RetryPolicy,
    delivery: &Delivery,
    attempt: u32,
    now: &impl Fn() -> Timestamp,
) -> Processed
where
    S: CompleteJob + FailJob + NoteAttemptError,
    R: RunSimulation,
    D: RemoveResult,
{
    let id = &delivery.job_id;
    let parameters = match JobParameters::parse(&delivery.body) {
        Ok(p) => p,
        Err(invalid) => {
            let reason = invalid.to_string();
            let at = now();
            return match store.fail_job(id, &reason, at, policy.expires_at(at)).await {
                Ok(ended) => Processed::of(Outcome::FailedPermanently(reason)).with_ended(ended),
                // Not recorded yet: keep the message so the next delivery records it.
                Err(e) => {
                    let failure = Failure::of(&format!("Could not record the permanent failure ({reason})"), &e);
                    let delay_seconds = policy.delay_after(delivery.receive_count);
                    Processed::of(Outcome::RetryLater { error: failure.shown, delay_seconds })
                        .with_detail(Some(failure.detail))
                }
            };
        }
    };

    let request = SimulationRequest { job_request_id: id.clone(), job_request_payload: parameters, attempt };
    // Taken before the simulator writes the result object: the record's
    // expiry is computed from it, so it is never later than the object's.
    let started = now();
    let failure = match simulator.run_simulation(&request).await {
        Ok(location) => match store.complete_job(id, &location, now(), policy.expires_at(started)).await {
            Ok(Completion::Completed(ended)) => {
                return Processed::of(Outcome::Completed(location)).with_ended(ended.map(|record| *record));
            }
            // A concurrent delivery completed it first: its end is that one's.
            Ok(Completion::AlreadyComplete) => return Processed::of(Outcome::AlreadyComplete),
            Ok(Completion::Cancelled) => return drop_cancelled_result(results, delivery).await,
            Err(e) => Failure::of("The result is stored but the job could not be marked complete", &e),
        },
        Err(e) => Failure::of(&format!("Attempt {attempt} failed"), &e),
    };
    transient(store, policy, delivery, failure.shown, now).await.with_detail(Some(failure.detail))
}

/// The bookkeeping delivery after the last attempt. It runs nothing: a job
/// the last attempt left unfinished (its function crashed or timed out, or
/// could not record the give-up) is marked `failed` with its last error, and
/// the message goes on to the dead-letter queue either way.
async fn settle_unfinished<S>(
    store: &S,
    policy: RetryPolicy,
    delivery: &Delivery,
    submission: &Submission,
    now: &impl Fn() -> Timestamp,
) -> Processed
where
    S: RecordAttempt + FailJob + FailUnrecorded + NoteAttemptError + GetJob,
{
    let id = &delivery.job_id;
    let gave_up = |reason: String, newly_failed: bool, detail: Option<String>| {
        Processed::of(Outcome::GaveUp { reason, newly_failed }).with_detail(detail)
    };
    let last_error = match store.get_job(id).await {
        Ok(Some(StoredJob::Readable(job))) => match job.status {
            JobStatus::Complete => return Processed::of(Outcome::AlreadyComplete),
            JobStatus::Failed => return gave_up(job.failure_reason.unwrap_or_default(), false, None),
            JobStatus::Cancelled => return Processed::of(Outcome::Cancelled),
            JobStatus::Submitted => job.last_error,
        },
        // Its status cannot be read: it cannot be marked failed either.
        Ok(Some(StoredJob::Unreadable(damaged))) => {
            let reason = "The job's record is damaged and could not be settled".to_owned();
            return gave_up(reason, false, Some(damaged.problem));
        }
        // Never recorded (every delivery failed before it could be): record
        // it now, so that it reads `failed` instead of not existing.
        Ok(None) => match store.record_attempt(submission, now()).await {
            Ok(Attempt::Refused { reason }) => return refused(store, policy, delivery, submission, &reason, now).await,
            Ok(_) => None,
            Err(e) => {
                let failure = Failure::of("The job could not be recorded on any delivery", &e);
                return gave_up(failure.shown, false, Some(failure.detail));
            }
        },
        Err(e) => {
            let failure = Failure::of("Could not read the job to settle it", &e);
            return gave_up(failure.shown, false, Some(failure.detail));
        }
    };
    let reason = format!(
        "Gave up: delivery {} did not finish (the job-processor crashed or timed out) and it was the last attempt; the message is in the dead-letter queue. Last error: {}",
        delivery.receive_count - 1,
        last_error.as_deref().unwrap_or("none recorded")
    );
    let at = now();
    match store.fail_job(id, &reason, at, policy.expires_at(at)).await {
        Ok(ended) => gave_up(reason, true, None).with_ended(ended),
        Err(e) => {
            let failure = Failure::of(&format!("{reason} (marking the job failed failed too"), &e);
            gave_up(format!("{})", failure.shown), false, Some(failure.detail))
        }
    }
}

/// The store refused to record the job (its request is too large for a
/// record): no attempt can run it. It is recorded `failed` without its
/// payload, with the reason, so that its owner sees it; if even that write
/// fails, the message is kept and the next delivery tries again.
async fn refused<S>(
    store: &S,
    policy: RetryPolicy,
    delivery: &Delivery,
    submission: &Submission,
    refusal: &str,
    now: &impl Fn() -> Timestamp,
) -> Processed
where
    S: FailJob + FailUnrecorded + NoteAttemptError,
{
    let reason = format!(
        "The job could not be recorded, so it was not run: {refusal}. Its request ({} bytes) was not kept.",
        delivery.body.len()
    );
    let at = now();
    match store.fail_unrecorded(submission, &reason, at, policy.expires_at(at)).await {
        Ok(ended) => Processed::of(Outcome::FailedPermanently(reason)).with_ended(ended),
        Err(e) => {
            let failure = Failure::of(&format!("Could not record the job as failed ({reason})"), &e);
            transient(store, policy, delivery, failure.shown, now).await.with_detail(Some(failure.detail))
        }
    }
}

/// A failure that another attempt may fix: retry, or on the last allowed
/// receive give up visibly. `error` is what the record shows.
async fn transient<S>(
    store: &S,
    policy: RetryPolicy,
    delivery: &Delivery,
    error: String,
    now: &impl Fn() -> Timestamp,
) -> Processed
where
    S: FailJob + NoteAttemptError,
{
    let id = &delivery.job_id;
    if delivery.receive_count >= policy.last_attempt_receive() {
        let reason = format!(
            "Gave up after {} deliveries; the message is in the dead-letter queue. Last error: {error}",
            delivery.receive_count
        );
        // If even this write fails, the bookkeeping delivery that follows
        // marks the job failed (see `settle_unfinished`).
        let at = now();
        let ended = store.fail_job(id, &reason, at, policy.expires_at(at)).await.ok().flatten();
        Processed::of(Outcome::GaveUp { reason, newly_failed: true }).with_ended(ended)
    } else {
        let _ = store.note_attempt_error(id, &error, now()).await;
        Processed::of(Outcome::RetryLater { error, delay_seconds: policy.delay_after(delivery.receive_count) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobStatus;
    use crate::memory::{MemoryJobStore, MemoryResultStore, Simulator};
    use crate::ports::GetJob;

    const ID: &str = "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21";
    // As the stack configures it: three attempts, then the bookkeeping receive.
    const POLICY: RetryPolicy = RetryPolicy {
        max_receive_count: 4,
        backoff_base_seconds: 2,
        backoff_cap_seconds: 60,
        result_retention_days: 30,
    };

    fn delivery(body: &str, receive_count: u32) -> Delivery {
        Delivery {
            job_id: JobId::parse(ID).unwrap(),
            body: body.to_owned(),
            submitted_at: Timestamp(1_000),
            receive_count,
            owner: Some("alice".into()),
            callback: None,
        }
    }

    fn clock() -> Timestamp {
        Timestamp(2_000)
    }

    async fn run(store: &MemoryJobStore, sim: &Simulator<MemoryResultStore>, body: &str, receive: u32) -> Outcome {
        process_delivery(store, sim, sim.results(), POLICY, &delivery(body, receive), clock).await.outcome
    }

    async fn job(store: &MemoryJobStore) -> crate::JobRecord {
        match store.get_job(&JobId::parse(ID).unwrap()).await.unwrap().unwrap() {
            StoredJob::Readable(job) => job,
            other => panic!("{other:?}"),
        }
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
        assert_eq!(job.owner.as_deref(), Some("alice"));
        assert_eq!(job.expires_at, Some(Timestamp(2_000).plus_days(30)));
    }

    #[tokio::test]
    async fn the_expiry_is_taken_before_the_result_is_written() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let (store, sim) = (MemoryJobStore::default(), simulator());
        // Each reading of the clock is one second later than the last.
        let ticks = AtomicU64::new(0);
        let clock = || Timestamp(10_000 + 1_000 * ticks.fetch_add(1, Ordering::SeqCst));
        let d = delivery("{}", 1);
        process_delivery(&store, &sim, sim.results(), POLICY, &d, clock).await;
        let job = job(&store).await;
        // Readings: 0 record, 1 before the simulation, 2 completion.
        assert_eq!(job.completed_at, Some(Timestamp(12_000)));
        assert_eq!(job.expires_at, Some(Timestamp(11_000).plus_days(30)));
    }

    #[tokio::test]
    async fn a_failed_job_expires_too_and_a_replay_revives_it() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        run(&store, &sim, "[]", 1).await;
        let failed = job(&store).await;
        assert_eq!(failed.expires_at, Some(Timestamp(2_000).plus_days(30)));
        assert_eq!(failed.failed_at, Some(Timestamp(2_000)));
        // A replay of the (fixed) message records a new attempt: not expiring while it runs.
        let d = Delivery { body: "{}".into(), ..delivery("{}", 1) };
        store
            .record_attempt(
                &Submission {
                    id: d.job_id.clone(),
                    payload: "{}".into(),
                    submitted_at: Timestamp(1_000),
                    owner: None,
                    callback: None,
                },
                Timestamp(3_000),
            )
            .await
            .unwrap();
        let replayed = job(&store).await;
        assert_eq!((replayed.expires_at, replayed.failed_at), (None, None));
        assert_eq!(replayed.owner.as_deref(), Some("alice"), "the owner is kept");
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
        assert!(
            matches!(&outcome, Outcome::GaveUp { reason, newly_failed: true } if reason.contains("dead-letter queue")),
            "{outcome:?}"
        );
        assert!(!outcome.acknowledges(), "the message must go on to the DLQ");
        let job = job(&store).await;
        assert_eq!(job.status, JobStatus::Failed);
        let reason = job.failure_reason.clone().unwrap();
        assert!(reason.contains("Gave up after 3 deliveries") && reason.contains("simulated failure"), "{reason}");

        // The bookkeeping receive that follows runs nothing and changes nothing.
        let d = delivery(r#"{"simulateFailure":"always"}"#, 4);
        let processed = process_delivery(&store, &sim, sim.results(), POLICY, &d, clock).await;
        assert_eq!(processed.outcome, Outcome::GaveUp { reason: reason.clone(), newly_failed: false });
        assert_eq!(processed.events(&d, clock()), [], "the failure is counted once");
        assert_eq!(self::job(&store).await, job);
    }

    #[tokio::test]
    async fn a_job_whose_last_attempt_did_not_finish_is_failed_by_the_next_receive() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        let body = r#"{"simulateFailure":"always"}"#;
        for receive in 1..=2 {
            run(&store, &sim, body, receive).await;
        }
        // Delivery 3 starts (recorded) and its function dies before the outcome.
        let sub = Submission {
            id: JobId::parse(ID).unwrap(),
            payload: body.into(),
            submitted_at: Timestamp(1_000),
            owner: None,
            callback: None,
        };
        store.record_attempt(&sub, Timestamp(1_500)).await.unwrap();
        let d = delivery(body, 4);
        let processed = process_delivery(&store, &sim, sim.results(), POLICY, &d, clock).await;
        assert!(
            matches!(&processed.outcome, Outcome::GaveUp { reason, newly_failed: true }
                if reason.contains("delivery 3 did not finish") && reason.contains("Attempt 2 failed")),
            "{processed:?}"
        );
        assert!(!processed.outcome.acknowledges(), "the message goes on to the DLQ");
        assert_eq!(processed.events(&d, clock()), [JobEvent::Failed]);
        let job = job(&store).await;
        assert_eq!((job.status, job.attempts), (JobStatus::Failed, 3), "no attempt is run on that receive");
        assert_eq!(sim.results().puts(), 0);
    }

    #[tokio::test]
    async fn the_bookkeeping_receive_leaves_a_complete_job_alone_and_records_a_never_recorded_one() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        run(&store, &sim, "{}", 1).await;
        let before = job(&store).await;
        assert_eq!(run(&store, &sim, "{}", 4).await, Outcome::AlreadyComplete);
        assert_eq!(job(&store).await, before);

        let (store, sim) = (MemoryJobStore::default(), simulator());
        let outcome = run(&store, &sim, "{}", 4).await;
        assert!(
            matches!(&outcome, Outcome::GaveUp { reason, newly_failed: true } if reason.contains("none recorded")),
            "{outcome:?}"
        );
        assert_eq!(job(&store).await.status, JobStatus::Failed);
        assert_eq!(sim.results().puts(), 0);
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
            async move { process_delivery(store, sim, sim.results(), POLICY, &d, clock).await.events(&d, Timestamp(4_500)) }
        };
        assert_eq!(events(r#"{"simulateFailure":1}"#, 1).await, [JobEvent::Recorded]);
        assert_eq!(events(r#"{"simulateFailure":1}"#, 2).await, [JobEvent::Completed { duration_ms: 3_500 }]);
        assert_eq!(events(r#"{"simulateFailure":1}"#, 3).await, [], "a redelivered complete job counts nothing");

        let (store, sim) = (MemoryJobStore::default(), simulator());
        let d = delivery("[]", 1);
        let processed = process_delivery(&store, &sim, sim.results(), POLICY, &d, clock).await;
        assert_eq!(processed.attempt, Some(1));
        assert_eq!(processed.events(&d, Timestamp(2_000)), [JobEvent::Recorded, JobEvent::Failed]);
    }

    #[tokio::test]
    async fn a_request_too_large_to_record_ends_failed_and_visible_to_its_owner() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        store.refuse_payloads_over(100);
        let body = format!(r#"{{"region":"{}"}}"#, "x".repeat(200));
        let d = delivery(&body, 1);
        let processed = process_delivery(&store, &sim, sim.results(), POLICY, &d, clock).await;
        let reason = match &processed.outcome {
            Outcome::FailedPermanently(r) => r.clone(),
            other => panic!("{other:?}"),
        };
        assert!(reason.contains("could not be recorded") && reason.contains("213 bytes"), "{reason}");
        assert!(processed.outcome.acknowledges(), "it can never succeed: not retried");
        assert_eq!(processed.events(&d, clock()), [JobEvent::Failed]);
        let job = job(&store).await;
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.failure_reason.as_deref(), Some(reason.as_str()));
        assert_eq!(job.owner.as_deref(), Some("alice"), "its owner sees it");
        assert_eq!((job.submitted_at, job.payload.as_str()), (Timestamp(1_000), ""));
        assert_eq!(job.expires_at, Some(Timestamp(2_000).plus_days(30)));
        assert_eq!(sim.results().puts(), 0);
    }

    #[tokio::test]
    async fn a_refused_job_whose_failure_cannot_be_written_is_kept_for_the_next_delivery() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        store.refuse_payloads_over(10);
        store.fail_writes_after(1, 1); // the refused record, then the failure write fails
        let body = r#"{"region":"eu-west-1"}"#;
        let outcome = run(&store, &sim, body, 1).await;
        assert!(
            matches!(&outcome, Outcome::RetryLater { error, .. } if error.contains("could not be recorded")),
            "{outcome:?}"
        );
        assert!(store.get_job(&JobId::parse(ID).unwrap()).await.unwrap().is_none());
        assert!(matches!(run(&store, &sim, body, 2).await, Outcome::FailedPermanently(_)));
        assert_eq!(job(&store).await.status, JobStatus::Failed);

        // The bookkeeping receive records it too, should every attempt have failed.
        let (store, sim) = (MemoryJobStore::default(), simulator());
        store.refuse_payloads_over(10);
        assert!(matches!(run(&store, &sim, body, 4).await, Outcome::FailedPermanently(_)));
        assert_eq!(job(&store).await.status, JobStatus::Failed);
    }

    /// A simulator that fails as an AWS call does: AccessDenied, naming the
    /// role's ARN and the account, with a request id.
    struct DeniedSimulator;

    const SDK_DUMP: &str = "invoking the batch simulator failed: service error: AccessDeniedException: \
        User: arn:aws:sts::123456789012:assumed-role/jobs-dev-job-processor/jobs-dev-job-processor is not \
        authorized to perform: lambda:InvokeFunction (request id: 7b2c5f0e-1d2a-4b7e-9c1f-0a3b4c5d6e7f, \
        headers: {\"x-amzn-requestid\": \"7b2c5f0e\"})";

    impl RunSimulation for DeniedSimulator {
        async fn run_simulation(&self, _: &SimulationRequest) -> Result<ResultLocation, crate::ports::StoreError> {
            Err(crate::ports::StoreError::with_detail("the batch simulator could not be invoked", SDK_DUMP))
        }
    }

    #[tokio::test]
    async fn the_record_shows_the_short_reason_and_the_full_error_is_for_the_log() {
        let store = MemoryJobStore::default();
        let internal = ["arn:aws", "123456789012", "request id", "x-amzn", "headers", "AccessDenied"];
        for receive in 1..=3 {
            let processed = process_delivery(
                &store,
                &DeniedSimulator,
                &MemoryResultStore::new("results"),
                POLICY,
                &delivery("{}", receive),
                clock,
            )
            .await;
            let shown = match &processed.outcome {
                Outcome::RetryLater { error, .. } => error.clone(),
                Outcome::GaveUp { reason, .. } => reason.clone(),
                other => panic!("{other:?}"),
            };
            assert!(
                shown.ends_with(&format!("Attempt {receive} failed: the batch simulator could not be invoked")),
                "{shown}"
            );
            let detail = processed.detail.unwrap();
            assert!(detail.contains("arn:aws:sts::123456789012") && detail.contains("request id"), "{detail}");
            let job = job(&store).await;
            for text in [job.last_error.unwrap_or_default(), job.failure_reason.unwrap_or_default()] {
                for leak in internal {
                    assert!(!text.contains(leak), "{leak} in {text:?}");
                }
            }
        }
        assert_eq!(job(&store).await.status, JobStatus::Failed);
    }

    #[tokio::test]
    async fn the_bookkeeping_receive_leaves_a_damaged_record_alone() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        store.insert_unreadable(crate::UnreadableJob {
            id: JobId::parse(ID).unwrap(),
            owner: Some("alice".into()),
            expires_at: None,
            problem: "no valid jobStatus".into(),
        });
        let processed = process_delivery(&store, &sim, sim.results(), POLICY, &delivery("{}", 4), clock).await;
        assert!(matches!(&processed.outcome, Outcome::GaveUp { newly_failed: false, .. }), "{processed:?}");
        assert!(!processed.outcome.acknowledges(), "the message goes on to the DLQ");
        assert_eq!(processed.detail.as_deref(), Some("no valid jobStatus"));
    }

    /// A submitted job's record as the submit command writes it: before any
    /// delivery.
    fn submitted_record() -> crate::JobRecord {
        crate::JobRecord {
            id: JobId::parse(ID).unwrap(),
            status: JobStatus::Submitted,
            payload: "{}".into(),
            submitted_at: Timestamp(1_000),
            updated_at: Timestamp(1_000),
            attempts: 0,
            last_error: None,
            failure_reason: None,
            result: None,
            completed_at: None,
            failed_at: None,
            cancelled_at: None,
            owner: Some("alice".into()),
            expires_at: None,
            callback: None,
        }
    }

    async fn cancel(store: &MemoryJobStore, caller: &str, at: u64) -> crate::ports::Cancellation {
        use crate::ports::CancelJob;
        store.cancel_job(&JobId::parse(ID).unwrap(), caller, Timestamp(at), Timestamp(at).plus_days(30)).await.unwrap()
    }

    #[tokio::test]
    async fn a_job_cancelled_before_its_first_delivery_never_runs() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        store.insert(submitted_record());
        assert!(matches!(cancel(&store, "alice", 1_500).await, crate::ports::Cancellation::Cancelled(_)));
        for receive in 1..=4 {
            let processed =
                process_delivery(&store, &sim, sim.results(), POLICY, &delivery("{}", receive), clock).await;
            assert_eq!(processed.outcome, Outcome::Cancelled, "receive {receive}");
            assert!(processed.outcome.acknowledges());
        }
        assert_eq!(sim.results().puts(), 0, "the simulator must never run");
        let job = job(&store).await;
        assert_eq!((job.status, job.attempts, job.cancelled_at), (JobStatus::Cancelled, 0, Some(Timestamp(1_500))));
        assert_eq!(job.result, None);
    }

    /// Cancels the job while the simulation runs, after it wrote its result.
    struct CancelledWhileRunning<'a> {
        store: &'a MemoryJobStore,
        inner: Simulator<MemoryResultStore>,
    }

    impl RunSimulation for CancelledWhileRunning<'_> {
        async fn run_simulation(&self, request: &SimulationRequest) -> Result<ResultLocation, StoreError> {
            let location = self.inner.run_simulation(request).await?;
            cancel(self.store, "alice", 1_800).await;
            Ok(location)
        }
    }

    #[tokio::test]
    async fn a_job_cancelled_while_it_runs_keeps_no_result_and_stays_cancelled() {
        let store = MemoryJobStore::default();
        store.insert(submitted_record());
        let sim = CancelledWhileRunning { store: &store, inner: simulator() };
        let results = sim.inner.results();
        let processed = process_delivery(&store, &sim, results, POLICY, &delivery("{}", 1), clock).await;
        assert_eq!(processed.outcome, Outcome::Cancelled);
        assert_eq!(results.puts(), 1, "the simulation ran");
        assert!(results.objects().is_empty(), "its result was removed: {:?}", results.objects().keys());
        let job = job(&store).await;
        assert_eq!((job.status, job.result, job.completed_at), (JobStatus::Cancelled, None, None));
    }

    #[tokio::test]
    async fn a_result_that_cannot_be_removed_is_logged_and_the_job_stays_cancelled() {
        let store = MemoryJobStore::default();
        store.insert(submitted_record());
        let sim = CancelledWhileRunning { store: &store, inner: simulator() };
        let results = sim.inner.results();
        results.fail_next_removals(1);
        let processed = process_delivery(&store, &sim, results, POLICY, &delivery("{}", 1), clock).await;
        assert_eq!(processed.outcome, Outcome::Cancelled, "the message is done with");
        let detail = processed.detail.expect("the log says what was left");
        assert!(detail.contains("its result could not be removed"), "{detail}");
        assert_eq!(results.objects().len(), 1, "left to the bucket's expiration");
        let job = job(&store).await;
        assert_eq!((job.status, job.result, job.last_error), (JobStatus::Cancelled, None, None));
    }

    #[tokio::test]
    async fn a_cancelled_job_that_never_wrote_a_result_removes_nothing() {
        // A removal on every delivery would be an object-removed event (a
        // delete marker in the versioned bucket) for an object that never was.
        let (store, sim) = (MemoryJobStore::default(), simulator());
        store.insert(submitted_record());
        cancel(&store, "alice", 1_500).await;
        sim.results().fail_next_removals(u32::MAX);
        for receive in 1..=4 {
            let processed =
                process_delivery(&store, &sim, sim.results(), POLICY, &delivery("{}", receive), clock).await;
            assert_eq!((processed.outcome, processed.detail), (Outcome::Cancelled, None), "receive {receive}");
        }
    }

    #[tokio::test]
    async fn only_the_owner_cancels_and_only_a_job_that_has_not_ended() {
        use crate::ports::Cancellation;
        let (store, sim) = (MemoryJobStore::default(), simulator());
        assert_eq!(cancel(&store, "alice", 1_500).await, Cancellation::NotFound, "no such job");
        store.insert(submitted_record());
        assert_eq!(cancel(&store, "bob", 1_500).await, Cancellation::NotFound, "another caller's job");
        let Cancellation::Cancelled(first) = cancel(&store, "alice", 1_500).await else { panic!() };
        let Cancellation::AlreadyCancelled(again) = cancel(&store, "alice", 1_600).await else { panic!() };
        assert_eq!(first, again, "a repeated cancel changes nothing");
        assert_eq!(first.expires_at, Some(Timestamp(1_500).plus_days(30)), "a cancelled record expires");
        assert_eq!(cancel(&store, "alice", first.expires_at.unwrap().0).await, Cancellation::NotFound, "expired");

        let other = MemoryJobStore::default();
        run(&other, &sim, "{}", 1).await;
        assert!(
            matches!(cancel(&other, "alice", 3_000).await, Cancellation::Ended(j) if j.status == JobStatus::Complete)
        );
        let failing = MemoryJobStore::default();
        run(&failing, &sim, "[]", 1).await;
        assert!(
            matches!(cancel(&failing, "alice", 3_000).await, Cancellation::Ended(j) if j.status == JobStatus::Failed)
        );
    }

    #[tokio::test]
    async fn the_bookkeeping_receive_of_a_cancelled_job_does_not_fail_it() {
        let (store, sim) = (MemoryJobStore::default(), simulator());
        store.insert(submitted_record());
        cancel(&store, "alice", 1_500).await;
        let processed = process_delivery(&store, &sim, sim.results(), POLICY, &delivery("{}", 4), clock).await;
        assert_eq!(processed.outcome, Outcome::Cancelled);
        assert_eq!(job(&store).await.status, JobStatus::Cancelled);
        // Nor do the writes of a give-up or a refused record.
        let id = JobId::parse(ID).unwrap();
        store.fail_job(&id, "r", Timestamp(5_000), Timestamp(6_000)).await.unwrap();
        let submission =
            Submission { id, payload: "{}".into(), submitted_at: Timestamp(1_000), owner: None, callback: None };
        store.fail_unrecorded(&submission, "r", Timestamp(5_000), Timestamp(6_000)).await.unwrap();
        assert_eq!(job(&store).await.status, JobStatus::Cancelled);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            max_receive_count: 10,
            backoff_base_seconds: 2,
            backoff_cap_seconds: 20,
            result_retention_days: 1,
        };
        assert_eq!([1, 2, 3, 4, 5, 40].map(|n| p.delay_after(n)), [2, 4, 8, 16, 20, 20]);
    }
}
