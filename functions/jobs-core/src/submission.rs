//! Accepting a submit: the job is queued and recorded before the caller
//! hears its id, so it can be read and cancelled at once; an
//! `Idempotency-Key` makes a retried submit answer the first job instead of
//! creating a second one.
//!
//! The order is what keeps every failure visible and nothing doubled:
//! 1. the key (if any) is claimed for a new job id, or the job it already
//!    names is answered (or 409 for a different request);
//! 2. the message is sent: from here the job will run (the processor
//!    records a job it finds no record of), so a failure before this point
//!    releases the key and the caller is told to retry;
//! 3. the job is recorded as `submitted`, unless the processor was quicker;
//! 4. the key is marked accepted, and replays answer at once from then on.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::job::{JobId, Submission, Timestamp};
use crate::ports::StoreError;

/// The request header that names a submit's idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// How long a key names its job: a retry within this answers the first job.
pub const KEY_LIFETIME_SECONDS: u64 = 86_400;

/// The longest key accepted, in characters (all ASCII).
pub const MAX_KEY_CHARS: usize = 128;

/// A claim not accepted after this long is taken to be abandoned (the
/// function that made it timed out or died between claim and send, its
/// timeout being 10 s): a replay then sends the job itself.
pub const ABANDONED_CLAIM_SECONDS: u64 = 30;

/// A caller's idempotency key, well formed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why a header value is not an idempotency key. Shown to API users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Invalid {IDEMPOTENCY_KEY_HEADER}: it must be 1 to {MAX_KEY_CHARS} characters of A-Z, a-z, 0-9, '-', '_', '.' and ':' (got {0})."
)]
pub struct InvalidIdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, InvalidIdempotencyKey> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
        if raw.is_empty() {
            return Err(InvalidIdempotencyKey("an empty value".into()));
        }
        if raw.chars().count() > MAX_KEY_CHARS {
            return Err(InvalidIdempotencyKey(format!("{} characters", raw.chars().count())));
        }
        match raw.chars().find(|c| !allowed(*c)) {
            Some(bad) => Err(InvalidIdempotencyKey(format!("the character {}", bad.escape_default()))),
            None => Ok(Self(raw.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What identifies "the same request" for a key: the body and the callback
/// URL, hashed (SHA-256, hex). Each part is length-prefixed so that no two
/// different pairs hash alike.
pub fn request_fingerprint(body: &str, callback_url: Option<&str>) -> String {
    let mut hash = Sha256::new();
    for part in [callback_url.unwrap_or_default(), body] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A key as the store keeps it: scoped to its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    /// `<owner>#<key>`: the key cannot contain `#`, so two callers' keys never meet.
    pub scope: String,
    /// The job the key names if this claim wins.
    pub job_id: JobId,
    pub fingerprint: String,
    pub claimed_at: Timestamp,
    /// When the key may name a new job (the table's TTL removes it later).
    pub expires_at: Timestamp,
}

impl KeyClaim {
    pub fn new(owner: &str, key: &IdempotencyKey, job_id: JobId, fingerprint: String, now: Timestamp) -> Self {
        Self {
            scope: format!("{owner}#{}", key.as_str()),
            job_id,
            fingerprint,
            claimed_at: now,
            expires_at: Timestamp(now.0 + KEY_LIFETIME_SECONDS * 1000),
        }
    }
}

/// A key that was already claimed, and not yet expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldKey {
    pub job_id: JobId,
    pub fingerprint: String,
    pub claimed_at: Timestamp,
    /// The job it names was queued and recorded.
    pub accepted: bool,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The key now names the claim's job.
    New,
    /// It names another job (or the same, claimed before).
    Held(HeldKey),
}

/// Claim a key unless an unexpired claim holds it; the holder comes back.
pub trait ClaimIdempotencyKey: Sync {
    fn claim_key(&self, claim: &KeyClaim, now: Timestamp) -> impl Future<Output = Result<Claimed, StoreError>> + Send;
}

/// Mark a claim accepted: its job is queued and recorded.
pub trait AcceptIdempotencyKey: Sync {
    fn accept_key(&self, claim: &KeyClaim) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Withdraw a claim whose job was never queued, so a retry may queue it.
pub trait ReleaseIdempotencyKey: Sync {
    fn release_key(&self, claim: &KeyClaim) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why the queue did not take a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueError {
    /// The queue refuses this message as it is (its characters): a client error.
    Refused(String),
    /// The queue did not answer or failed: worth retrying.
    Unavailable(StoreError),
}

/// Send a job's message to the jobs queue: its request as the body, its id,
/// owner and callback URL as attributes.
pub trait EnqueueJob: Sync {
    fn enqueue_job(&self, submission: &Submission) -> impl Future<Output = Result<(), EnqueueError>> + Send;
}

/// Record a queued job as `submitted`, unless a record exists (the
/// processor may have received the message first): it reads as submitted,
/// and can be cancelled, from the moment its submitter learns its id.
pub trait RecordSubmitted: Sync {
    fn record_submitted(
        &self,
        submission: &Submission,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A submit that may be answered 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// A new job.
    New(JobId),
    /// The job an earlier request with the same key created.
    Replayed(JobId),
}

impl Accepted {
    pub fn job_id(&self) -> &JobId {
        match self {
            Self::New(id) | Self::Replayed(id) => id,
        }
    }
}

/// A submit that may not be answered 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAccepted {
    /// The key names a job of a different request (409).
    KeyReused { job_id: JobId },
    /// Another request with the key is still being accepted (409, retry).
    KeyInFlight,
    /// The queue refuses the message (400).
    QueueRefused(String),
    /// The queue is unavailable (502).
    QueueUnavailable(StoreError),
    /// The key store is unavailable (503).
    StoreUnavailable(StoreError),
}

impl fmt::Display for NotAccepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyReused { job_id } => write!(
                f,
                "This {IDEMPOTENCY_KEY_HEADER} was already used within the last 24 hours for a different request \
                 (job {job_id}). Send a new key for a new job."
            ),
            Self::KeyInFlight => write!(
                f,
                "A request with this {IDEMPOTENCY_KEY_HEADER} is still being accepted; send it again in a few seconds."
            ),
            Self::QueueRefused(why) => f.write_str(why),
            Self::QueueUnavailable(_) => f.write_str("The job queue is unavailable; retry the request."),
            Self::StoreUnavailable(_) => {
                f.write_str("The job store is temporarily unavailable; retry in a few seconds.")
            }
        }
    }
}

/// One submit, checked.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    /// The job as it is queued and recorded, with a fresh id.
    pub submission: Submission,
    pub key: Option<IdempotencyKey>,
}

/// How long a replay waits for a claim in flight to be accepted, and how often it looks.
#[derive(Debug, Clone, Copy)]
pub struct InFlightWait {
    pub attempts: u32,
    pub interval: Duration,
}

/// The stores a submit writes to.
pub struct SubmitPorts<'a, K, Q, S> {
    pub keys: &'a K,
    pub queue: &'a Q,
    pub jobs: &'a S,
    pub wait: InFlightWait,
}

/// A step after the message was sent that did not succeed. The submit is
/// still answered 200 (the job runs: the processor records a job it finds no
/// record of); the function logs these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// What was being done, e.g. "recording the job".
    pub step: &'static str,
    pub error: StoreError,
}

/// What a submit came to, and what was left undone on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitOutcome {
    pub result: Result<Accepted, NotAccepted>,
    pub unfinished: Vec<Unfinished>,
}

/// Accept a submit (see the module's comment for the order). `sleep` waits
/// between looks at a claim in flight (tokio's in the function, a no-op in tests).
pub async fn submit<K, Q, S, F, Fut>(
    ports: &SubmitPorts<'_, K, Q, S>,
    request: SubmitRequest,
    now: Timestamp,
    sleep: F,
) -> SubmitOutcome
where
    K: ClaimIdempotencyKey + AcceptIdempotencyKey + ReleaseIdempotencyKey,
    Q: EnqueueJob,
    S: RecordSubmitted,
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = ()>,
{
    let done = |result| SubmitOutcome { result, unfinished: Vec::new() };
    let mut submission = request.submission;
    let claim = match (&request.key, &submission.owner) {
        (Some(key), Some(owner)) => {
            let fingerprint =
                request_fingerprint(&submission.payload, submission.callback.as_ref().map(|c| c.url.as_str()));
            Some(KeyClaim::new(owner, key, submission.id.clone(), fingerprint, now))
        }
        _ => None,
    };
    let mut replay = false;
    if let Some(claim) = &claim {
        let mut looks = 0;
        loop {
            let held = match ports.keys.claim_key(claim, now).await {
                Ok(Claimed::New) => break,
                Ok(Claimed::Held(held)) => held,
                Err(e) => return done(Err(NotAccepted::StoreUnavailable(e))),
            };
            if held.fingerprint != claim.fingerprint {
                return done(Err(NotAccepted::KeyReused { job_id: held.job_id }));
            }
            if held.accepted {
                return done(Ok(Accepted::Replayed(held.job_id)));
            }
            if now.0.saturating_sub(held.claimed_at.0) >= ABANDONED_CLAIM_SECONDS * 1000 {
                // Its request died between claim and answer: finish its work
                // (the message may have been sent: a duplicate delivery, which
                // the processor tolerates, rather than a lost job).
                submission.id = held.job_id;
                replay = true;
                break;
            }
            looks += 1;
            if looks > ports.wait.attempts {
                return done(Err(NotAccepted::KeyInFlight));
            }
            sleep(ports.wait.interval).await;
        }
    }
    let claim = claim.map(|c| KeyClaim { job_id: submission.id.clone(), ..c });
    let mut unfinished = Vec::new();

    if let Err(e) = ports.queue.enqueue_job(&submission).await {
        // Nothing was queued: free the key so that the caller's retry queues the job.
        if let (Some(claim), false) = (&claim, replay)
            && let Err(error) = ports.keys.release_key(claim).await
        {
            unfinished.push(Unfinished { step: "releasing the idempotency key", error });
        }
        let result = Err(match e {
            EnqueueError::Refused(why) => NotAccepted::QueueRefused(why),
            EnqueueError::Unavailable(e) => NotAccepted::QueueUnavailable(e),
        });
        return SubmitOutcome { result, unfinished };
    }
    // The message is queued: the job runs whatever happens below.
    if let Err(error) = ports.jobs.record_submitted(&submission, now).await {
        unfinished.push(Unfinished { step: "recording the job", error });
    }
    if let Some(claim) = &claim
        && let Err(error) = ports.keys.accept_key(claim).await
    {
        unfinished.push(Unfinished { step: "marking the idempotency key accepted", error });
    }
    let accepted = if replay { Accepted::Replayed(submission.id) } else { Accepted::New(submission.id) };
    SubmitOutcome { result: Ok(accepted), unfinished }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::memory::{MemoryIdempotencyKeys, MemoryJobQueue, MemoryJobStore};
    use crate::ports::GetJob;
    use crate::webhook::Callback;

    const OWNER: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const NOW: Timestamp = Timestamp(1_796_600_000_000);
    const WAIT: InFlightWait = InFlightWait { attempts: 3, interval: Duration::from_millis(100) };

    #[derive(Default)]
    struct World {
        keys: MemoryIdempotencyKeys,
        queue: MemoryJobQueue,
        jobs: MemoryJobStore,
    }

    fn request(body: &str, key: Option<&str>, callback: Option<&str>) -> SubmitRequest {
        SubmitRequest {
            submission: Submission {
                id: JobId::random(),
                payload: body.into(),
                submitted_at: NOW,
                owner: Some(OWNER.into()),
                callback: callback.map(|url| Callback { url: url.into(), refused: None }),
            },
            key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
        }
    }

    impl World {
        async fn submit(&self, request: SubmitRequest) -> SubmitOutcome {
            self.submit_at(request, NOW).await
        }

        async fn submit_at(&self, request: SubmitRequest, now: Timestamp) -> SubmitOutcome {
            let ports = SubmitPorts { keys: &self.keys, queue: &self.queue, jobs: &self.jobs, wait: WAIT };
            submit(&ports, request, now, |_| async {}).await
        }
    }

    #[test]
    fn keys_are_1_to_128_characters_of_a_safe_set() {
        for good in ["a", "K-1_2.3:4", &"x".repeat(128), "550e8400-e29b-41d4-a716-446655440000"] {
            assert!(IdempotencyKey::parse(good).is_ok(), "{good}");
        }
        for bad in ["", &"x".repeat(129), "a b", "a/b", "a#b", "clé", "a\nb"] {
            let error = IdempotencyKey::parse(bad).unwrap_err().to_string();
            assert!(error.starts_with("Invalid Idempotency-Key: it must be 1 to 128 characters"), "{error}");
        }
        assert!(IdempotencyKey::parse("a b").unwrap_err().to_string().ends_with("(got the character  )."));
    }

    #[test]
    fn the_fingerprint_tells_body_and_url_apart() {
        let base = request_fingerprint("{}", Some("https://a.example/h"));
        assert_eq!(base, request_fingerprint("{}", Some("https://a.example/h")));
        assert_ne!(base, request_fingerprint("{}", None));
        assert_ne!(base, request_fingerprint("{ }", Some("https://a.example/h")));
        // No shifting of bytes between the parts gives the same hash.
        assert_ne!(request_fingerprint("b", Some("a")), request_fingerprint("", Some("ab")));
        assert_eq!(base.len(), 64);
    }

    #[tokio::test]
    async fn a_new_job_is_queued_then_recorded_as_submitted() {
        let world = World::default();
        let request = request(r#"{"region":"eu"}"#, None, None);
        let id = request.submission.id.clone();
        let outcome = world.submit(request).await;
        assert_eq!(outcome, SubmitOutcome { result: Ok(Accepted::New(id.clone())), unfinished: vec![] });
        assert_eq!(world.queue.sent().len(), 1);
        let job = world.jobs.get_job(&id).await.unwrap().unwrap().readable().unwrap();
        assert_eq!((job.status, job.attempts, job.owner.as_deref()), (crate::JobStatus::Submitted, 0, Some(OWNER)));
    }

    #[tokio::test]
    async fn a_replay_answers_the_first_job_and_queues_nothing_more() {
        let world = World::default();
        let first = world.submit(request("{}", Some("k1"), Some("https://a.example/h"))).await.result.unwrap();
        let again = world.submit(request("{}", Some("k1"), Some("https://a.example/h"))).await.result;
        assert_eq!(again, Ok(Accepted::Replayed(first.job_id().clone())));
        assert_eq!(world.queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn the_same_key_for_another_request_is_refused_naming_the_first_job() {
        let world = World::default();
        let first = world.submit(request("{}", Some("k1"), None)).await.result.unwrap();
        for other in [request(r#"{"a":1}"#, Some("k1"), None), request("{}", Some("k1"), Some("https://a.example/h"))] {
            let refused = world.submit(other).await.result.unwrap_err();
            assert_eq!(refused, NotAccepted::KeyReused { job_id: first.job_id().clone() });
            assert!(refused.to_string().contains(first.job_id().as_str()), "{refused}");
        }
        assert_eq!(world.queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn keys_belong_to_their_caller() {
        let world = World::default();
        let mine = world.submit(request("{}", Some("k1"), None)).await.result.unwrap();
        let mut theirs = request("{}", Some("k1"), None);
        theirs.submission.owner = Some("arn:aws:sts::123456789012:assumed-role/client/s".into());
        let theirs = world.submit(theirs).await.result.unwrap();
        assert!(matches!(theirs, Accepted::New(_)));
        assert_ne!(mine.job_id(), theirs.job_id());
        assert_eq!(world.queue.sent().len(), 2);
    }

    #[tokio::test]
    async fn a_queue_failure_frees_the_key_for_the_retry_and_records_nothing() {
        let world = World::default();
        world.queue.set_failure(Some(EnqueueError::Unavailable(StoreError::new("down"))));
        let failed = world.submit(request("{}", Some("k1"), None)).await;
        assert!(matches!(failed.result, Err(NotAccepted::QueueUnavailable(_))), "{failed:?}");
        assert_eq!(failed.result.unwrap_err().to_string(), "The job queue is unavailable; retry the request.");
        assert_eq!(world.keys.held(&format!("{OWNER}#k1")), None);
        world.queue.set_failure(None);
        let retried = world.submit(request("{}", Some("k1"), None)).await.result.unwrap();
        assert!(matches!(retried, Accepted::New(_)));
        assert_eq!(world.queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_refused_message_is_a_client_error() {
        let world = World::default();
        world.queue.set_failure(Some(EnqueueError::Refused("The job queue rejected the request.".into())));
        let refused = world.submit(request("{}", None, None)).await.result.unwrap_err();
        assert_eq!(refused, NotAccepted::QueueRefused("The job queue rejected the request.".into()));
    }

    #[tokio::test]
    async fn a_record_that_fails_after_the_send_still_answers_the_queued_job() {
        let world = World::default();
        world.jobs.fail_next_writes(1);
        let outcome = world.submit(request("{}", Some("k1"), None)).await;
        assert!(matches!(outcome.result, Ok(Accepted::New(_))));
        assert_eq!(outcome.unfinished.iter().map(|u| u.step).collect::<Vec<_>>(), ["recording the job"]);
        // The key names the job anyway: a retry does not queue it again.
        let again = world.submit(request("{}", Some("k1"), None)).await.result.unwrap();
        assert_eq!(&again, &Accepted::Replayed(outcome.result.unwrap().job_id().clone()));
        assert_eq!(world.queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn an_unavailable_key_store_queues_nothing() {
        let world = World::default();
        world.keys.set_failing(true);
        let outcome = world.submit(request("{}", Some("k1"), None)).await;
        assert!(matches!(outcome.result, Err(NotAccepted::StoreUnavailable(_))));
        assert!(world.queue.sent().is_empty());
        // Without a key the key store is not needed.
        assert!(world.submit(request("{}", None, None)).await.result.is_ok());
    }

    #[tokio::test]
    async fn a_claim_in_flight_is_waited_for_then_refused_as_in_flight() {
        let world = World::default();
        let id = JobId::random();
        let fingerprint = request_fingerprint("{}", None);
        let in_flight = HeldKey { job_id: id.clone(), fingerprint, claimed_at: NOW, accepted: false };
        world.keys.insert(&format!("{OWNER}#k1"), in_flight.clone());
        let looks = Cell::new(0);
        let ports = SubmitPorts { keys: &world.keys, queue: &world.queue, jobs: &world.jobs, wait: WAIT };
        let outcome = submit(&ports, request("{}", Some("k1"), None), Timestamp(NOW.0 + 1000), |_| {
            looks.set(looks.get() + 1);
            async {}
        })
        .await;
        assert_eq!(outcome.result, Err(NotAccepted::KeyInFlight));
        assert_eq!(looks.get(), WAIT.attempts);
        assert!(world.queue.sent().is_empty());
    }

    #[tokio::test]
    async fn an_abandoned_claim_is_finished_by_the_replay_under_the_claimed_id() {
        let world = World::default();
        let id = JobId::random();
        let fingerprint = request_fingerprint("{}", None);
        world.keys.insert(
            &format!("{OWNER}#k1"),
            HeldKey { job_id: id.clone(), fingerprint, claimed_at: NOW, accepted: false },
        );
        let later = Timestamp(NOW.0 + ABANDONED_CLAIM_SECONDS * 1000);
        let outcome = world.submit_at(request("{}", Some("k1"), None), later).await;
        assert_eq!(outcome.result, Ok(Accepted::Replayed(id.clone())));
        let sent: Vec<JobId> = world.queue.sent().into_iter().map(|s| s.id).collect();
        assert_eq!(sent, vec![id.clone()]);
        assert!(world.keys.held(&format!("{OWNER}#k1")).unwrap().accepted);
        assert!(world.jobs.get_job(&id).await.unwrap().is_some());
    }
}
