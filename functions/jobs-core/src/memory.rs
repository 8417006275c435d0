//! In-memory implementations of every port, for tests and examples. They
//! follow the same rules as the DynamoDB/S3 adapters (conditional writes,
//! deterministic keys), so handler tests exercise real behaviour.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use time::OffsetDateTime;

use crate::counters::Counter;
use crate::counters::counting::{Applied, CounterValues, ObjectState, plan};
use crate::counters::object_event::ObjectEvent;
use crate::job::{JobId, JobRecord, JobStatus, ResultLocation, StoredJob, Submission, Timestamp, UnreadableJob};
use crate::job_end::JobEnd;
use crate::listing::PageKey;
use crate::ports::{
    Attempt, CancelJob, Cancellation, CompleteJob, Completion, CountObjectEvent, FailJob, FailUnrecorded, GetJob,
    JobPage, ListJobs, NoteAttemptError, PresignResult, PublishJobEnds, PutResult, ReadCounters, RecordAttempt,
    RefuseWebhook, RemoveResult, RunSimulation, SimulationRequest, StoreError,
};
use crate::simulation::simulate;
use crate::status::ResultLink;
use crate::submission::{
    AcceptIdempotencyKey, ClaimIdempotencyKey, Claimed, EnqueueError, EnqueueJob, HeldKey, KeyClaim, RecordSubmitted,
    ReleaseIdempotencyKey,
};

/// The jobs table in memory, with switchable write failures.
#[derive(Debug, Default)]
pub struct MemoryJobStore {
    jobs: Mutex<HashMap<JobId, JobRecord>>,
    /// Records that cannot be read (tests of damaged items).
    unreadable: Mutex<HashMap<JobId, UnreadableJob>>,
    /// Writes to let through before failing (`u32::MAX`: never fail).
    ok_before_failures: AtomicU32,
    failures: AtomicU32,
    /// Payloads longer than this are refused, as DynamoDB refuses an item
    /// over 400 KB (0: no limit).
    payload_limit: std::sync::atomic::AtomicUsize,
}

impl MemoryJobStore {
    /// Make the next `n` writes fail.
    pub fn fail_next_writes(&self, n: u32) {
        self.fail_writes_after(0, n);
    }

    /// Let `ok` writes succeed, then fail the `n` after them.
    pub fn fail_writes_after(&self, ok: u32, n: u32) {
        self.ok_before_failures.store(ok, Ordering::SeqCst);
        self.failures.store(n, Ordering::SeqCst);
    }

    /// Refuse to record payloads longer than `bytes` ([`Attempt::Refused`]).
    pub fn refuse_payloads_over(&self, bytes: usize) {
        self.payload_limit.store(bytes, Ordering::SeqCst);
    }

    pub fn insert(&self, record: JobRecord) {
        self.lock().insert(record.id.clone(), record);
    }

    /// Stores a record that [`GetJob`] reads as damaged.
    pub fn insert_unreadable(&self, record: UnreadableJob) {
        self.unreadable.lock().unwrap_or_else(|e| e.into_inner()).insert(record.id.clone(), record);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, JobRecord>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> Result<std::sync::MutexGuard<'_, HashMap<JobId, JobRecord>>, StoreError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            if self.ok_before_failures.load(Ordering::SeqCst) > 0 {
                self.ok_before_failures.fetch_sub(1, Ordering::SeqCst);
            } else {
                self.failures.fetch_sub(1, Ordering::SeqCst);
                return Err(StoreError::new("the job store is unavailable (injected)"));
            }
        }
        Ok(self.lock())
    }
}

/// The record a job has before its first attempt: what the submit or the
/// processor's first recording creates.
fn submitted_record(s: &Submission, now: Timestamp) -> JobRecord {
    JobRecord {
        id: s.id.clone(),
        status: JobStatus::Submitted,
        payload: s.payload.clone(),
        submitted_at: s.submitted_at,
        updated_at: now,
        attempts: 0,
        last_error: None,
        failure_reason: None,
        result: None,
        completed_at: None,
        failed_at: None,
        cancelled_at: None,
        owner: s.owner.clone(),
        expires_at: None,
        callback: s.callback.clone(),
    }
}

impl RecordAttempt for MemoryJobStore {
    async fn record_attempt(&self, s: &Submission, now: Timestamp) -> Result<Attempt, StoreError> {
        let mut jobs = self.write()?;
        let limit = self.payload_limit.load(Ordering::SeqCst);
        if limit > 0 && s.payload.len() > limit && !jobs.contains_key(&s.id) {
            return Ok(Attempt::Refused {
                reason: format!("the record would be over the store's limit of {limit} bytes"),
            });
        }
        let job = jobs.entry(s.id.clone()).or_insert_with(|| submitted_record(s, now));
        match job.status {
            JobStatus::Complete => return Ok(Attempt::AlreadyComplete),
            JobStatus::Cancelled => return Ok(Attempt::Cancelled),
            JobStatus::Submitted | JobStatus::Failed => {}
        }
        if job.owner.is_none() {
            job.owner = s.owner.clone();
        }
        if job.callback.is_none() {
            job.callback = s.callback.clone();
        }
        // A job being worked on again (a replay of a failed one) is alive.
        job.expires_at = None;
        job.failed_at = None;
        job.status = JobStatus::Submitted;
        job.attempts += 1;
        job.updated_at = now;
        Ok(Attempt::Started { number: job.attempts })
    }
}

impl RecordSubmitted for MemoryJobStore {
    async fn record_submitted(&self, s: &Submission, now: Timestamp) -> Result<(), StoreError> {
        self.write()?.entry(s.id.clone()).or_insert_with(|| submitted_record(s, now));
        Ok(())
    }
}

impl CompleteJob for MemoryJobStore {
    async fn complete_job(
        &self,
        id: &JobId,
        result: &ResultLocation,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Completion, StoreError> {
        let mut jobs = self.write()?;
        let job = jobs.get_mut(id).ok_or_else(|| StoreError::new(format!("job {id} is not recorded")))?;
        match job.status {
            JobStatus::Cancelled => return Ok(Completion::Cancelled),
            JobStatus::Complete => return Ok(Completion::AlreadyComplete),
            JobStatus::Submitted | JobStatus::Failed => {}
        }
        job.status = JobStatus::Complete;
        job.result = Some(result.clone());
        job.completed_at = Some(now);
        // As the DynamoDB store: a complete job carries no stale error.
        job.last_error = None;
        job.failure_reason = None;
        job.failed_at = None;
        job.expires_at = Some(expires_at);
        job.updated_at = now;
        Ok(Completion::Completed(Some(Box::new(job.clone()))))
    }
}

impl CancelJob for MemoryJobStore {
    async fn cancel_job(
        &self,
        id: &JobId,
        caller: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Cancellation, StoreError> {
        let mut jobs = self.write()?;
        let Some(job) = jobs.get_mut(id).filter(|j| j.visible_to(Some(caller), now)) else {
            return Ok(Cancellation::NotFound);
        };
        Ok(match job.status {
            JobStatus::Complete | JobStatus::Failed => Cancellation::Ended(job.clone()),
            JobStatus::Cancelled => Cancellation::AlreadyCancelled(job.clone()),
            JobStatus::Submitted => {
                job.status = JobStatus::Cancelled;
                job.cancelled_at = Some(now);
                job.updated_at = now;
                job.expires_at = Some(expires_at);
                Cancellation::Cancelled(job.clone())
            }
        })
    }
}

impl FailUnrecorded for MemoryJobStore {
    async fn fail_unrecorded(
        &self,
        s: &Submission,
        reason: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Option<JobRecord>, StoreError> {
        let mut jobs = self.write()?;
        let job = jobs.entry(s.id.clone()).or_insert_with(|| JobRecord {
            id: s.id.clone(),
            status: JobStatus::Failed,
            payload: String::new(),
            submitted_at: s.submitted_at,
            updated_at: now,
            attempts: 0,
            last_error: None,
            failure_reason: None,
            result: None,
            completed_at: None,
            failed_at: None,
            cancelled_at: None,
            owner: s.owner.clone(),
            expires_at: None,
            callback: s.callback.clone(),
        });
        if !job.status.accepts_attempt() {
            return Ok(None);
        }
        job.status = JobStatus::Failed;
        job.failure_reason = Some(reason.to_owned());
        job.failed_at = Some(now);
        job.expires_at = Some(expires_at);
        job.updated_at = now;
        if job.owner.is_none() {
            job.owner = s.owner.clone();
        }
        Ok(Some(job.clone()))
    }
}

impl FailJob for MemoryJobStore {
    async fn fail_job(
        &self,
        id: &JobId,
        reason: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Option<JobRecord>, StoreError> {
        let mut jobs = self.write()?;
        let Some(job) = jobs.get_mut(id).filter(|j| j.status.accepts_attempt()) else { return Ok(None) };
        job.status = JobStatus::Failed;
        job.failure_reason = Some(reason.to_owned());
        job.failed_at = Some(now);
        job.expires_at = Some(expires_at);
        job.updated_at = now;
        Ok(Some(job.clone()))
    }
}

impl NoteAttemptError for MemoryJobStore {
    async fn note_attempt_error(&self, id: &JobId, error: &str, now: Timestamp) -> Result<(), StoreError> {
        let mut jobs = self.write()?;
        if let Some(job) = jobs.get_mut(id).filter(|j| j.status == JobStatus::Submitted) {
            job.last_error = Some(error.to_owned());
            job.updated_at = now;
        }
        Ok(())
    }
}

impl RefuseWebhook for MemoryJobStore {
    async fn refuse_webhook(&self, id: &JobId, reason: &str) -> Result<(), StoreError> {
        let mut jobs = self.write()?;
        if let Some(callback) = jobs.get_mut(id).and_then(|j| j.callback.as_mut()) {
            callback.refused = Some(reason.to_owned());
        }
        Ok(())
    }
}

impl GetJob for MemoryJobStore {
    async fn get_job(&self, id: &JobId) -> Result<Option<StoredJob>, StoreError> {
        if let Some(damaged) = self.unreadable.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Ok(Some(StoredJob::Unreadable(damaged.clone())));
        }
        Ok(self.lock().get(id).cloned().map(StoredJob::Readable))
    }
}

impl ListJobs for MemoryJobStore {
    async fn list_jobs(&self, owner: &str, limit: u32, after: Option<&PageKey>) -> Result<JobPage, StoreError> {
        // The index's order: submittedAt descending (ties by id, descending).
        let order = |j: &JobRecord| (j.submitted_at.to_rfc3339(), j.id.as_str().to_owned());
        let mut mine: Vec<JobRecord> =
            self.lock().values().filter(|j| j.owner.as_deref() == Some(owner)).cloned().collect();
        mine.sort_by_key(|j| std::cmp::Reverse(order(j)));
        if let Some(key) = after {
            let cursor = (key.submitted_at.clone(), key.job_id.as_str().to_owned());
            mine.retain(|j| order(j) < cursor);
        }
        let limit = limit as usize;
        let next = (mine.len() > limit).then(|| {
            let last = &mine[limit - 1];
            PageKey { job_id: last.id.clone(), owner: owner.to_owned(), submitted_at: last.submitted_at.to_rfc3339() }
        });
        mine.truncate(limit);
        Ok(JobPage { jobs: mine, next })
    }
}

/// The counters table in memory: each key's state and the counters, under
/// one lock that makes each event's read and write atomic, as the DynamoDB
/// store's transaction does.
#[derive(Debug, Default)]
pub struct MemoryCounterStore {
    table: Mutex<CounterTable>,
}

#[derive(Debug, Default)]
struct CounterTable {
    /// (bucket, key) → what the counter knows about the key.
    objects: HashMap<(String, String), ObjectState>,
    /// (bucket, prefix) → its counter (prefix "" for the whole bucket).
    counters: BTreeMap<(String, String), Counter>,
}

impl MemoryCounterStore {
    fn table(&self) -> std::sync::MutexGuard<'_, CounterTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Store a counter as it is, replacing the bucket's counter of its prefix.
    pub fn insert(&self, bucket: &str, counter: Counter) {
        self.table().counters.insert((bucket.to_owned(), counter.prefix.clone()), counter);
    }

    /// The values of a bucket's counter (`prefix` "") or of one of its prefixes'.
    pub fn counters(&self, bucket: &str, prefix: &str) -> Option<CounterValues> {
        self.table().counters.get(&(bucket.to_owned(), prefix.to_owned())).map(Counter::values)
    }

    pub fn object(&self, bucket: &str, key: &str) -> Option<ObjectState> {
        self.table().objects.get(&(bucket.to_owned(), key.to_owned())).cloned()
    }
}

impl CountObjectEvent for MemoryCounterStore {
    async fn count(&self, event: &ObjectEvent, now: Timestamp) -> Result<Applied, StoreError> {
        let mut table = self.table();
        let id = (event.bucket.clone(), event.key.clone());
        let state = table.objects.get(&id);
        let Some(p) = plan(state, event) else { return Ok(Applied::Duplicate) };
        let applied = p.applied(state);
        for prefix in std::iter::once("").chain(event.prefix()) {
            let counter = table
                .counters
                .entry((event.bucket.clone(), prefix.to_owned()))
                .or_insert_with(|| Counter { prefix: prefix.to_owned(), ..Counter::default() });
            counter.add(&p.delta);
            counter.updated_at = Some(now.to_rfc3339());
        }
        table.objects.insert(id, p.next);
        Ok(applied)
    }
}

impl ReadCounters for MemoryCounterStore {
    async fn read_counters(&self, bucket: &str) -> Result<Vec<Counter>, StoreError> {
        Ok(self.table().counters.iter().filter(|((b, _), _)| b == bucket).map(|(_, c)| c.clone()).collect())
    }
}

/// The results bucket in memory.
#[derive(Debug)]
pub struct MemoryResultStore {
    bucket: String,
    objects: Mutex<HashMap<String, Vec<u8>>>,
    puts: AtomicU32,
    removal_failures: AtomicU32,
}

impl MemoryResultStore {
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            objects: Mutex::default(),
            puts: AtomicU32::new(0),
            removal_failures: AtomicU32::new(0),
        }
    }

    pub fn objects(&self) -> HashMap<String, Vec<u8>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many times anything was written (overwrites included).
    pub fn puts(&self) -> u32 {
        self.puts.load(Ordering::SeqCst)
    }

    /// Make the next `n` removals fail.
    pub fn fail_next_removals(&self, n: u32) {
        self.removal_failures.store(n, Ordering::SeqCst);
    }
}

impl RemoveResult for MemoryResultStore {
    async fn remove_result(&self, id: &JobId) -> Result<(), StoreError> {
        let failing = self.removal_failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(StoreError::new("the results store is unavailable (injected)"));
        }
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).remove(&id.result_key());
        Ok(())
    }
}

impl PutResult for MemoryResultStore {
    async fn put_result(&self, key: &str, body: Vec<u8>) -> Result<ResultLocation, StoreError> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_owned(), body);
        Ok(ResultLocation { bucket: self.bucket.clone(), key: key.to_owned() })
    }
}

impl PresignResult for MemoryResultStore {
    async fn presign_result(&self, l: &ResultLocation, expires_in_seconds: u64) -> Result<ResultLink, StoreError> {
        Ok(ResultLink {
            url: format!("memory://{}/{}?expires-in={expires_in_seconds}", l.bucket, l.key),
            expires_at: Timestamp(Timestamp::now().millis() + expires_in_seconds * 1000),
        })
    }
}

/// The simulator run in-process instead of through Lambda.
#[derive(Debug)]
pub struct Simulator<P> {
    results: P,
}

impl<P: PutResult> Simulator<P> {
    pub fn new(results: P) -> Self {
        Self { results }
    }

    pub fn results(&self) -> &P {
        &self.results
    }
}

impl<P: PutResult> RunSimulation for Simulator<P> {
    async fn run_simulation(&self, request: &SimulationRequest) -> Result<ResultLocation, StoreError> {
        simulate(&self.results, request, OffsetDateTime::now_utc()).await.map_err(|e| StoreError::new(e.to_string()))
    }
}

/// The events bus in memory: what was published and in how many calls,
/// with switchable failures.
#[derive(Debug, Default)]
pub struct MemoryJobEnds {
    published: Mutex<Vec<JobEnd>>,
    calls: AtomicU32,
    failing: std::sync::atomic::AtomicBool,
}

impl MemoryJobEnds {
    pub fn published(&self) -> Vec<JobEnd> {
        self.published.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many publish calls were made (a batch's ends go in one).
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Make every publish fail (`true`) or succeed again.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl PublishJobEnds for MemoryJobEnds {
    async fn publish_job_ends(&self, ends: &[JobEnd]) -> Vec<Result<(), StoreError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return ends.iter().map(|_| Err(StoreError::new("The event bus is unavailable (simulated)."))).collect();
        }
        self.published.lock().unwrap_or_else(|e| e.into_inner()).extend(ends.iter().cloned());
        ends.iter().map(|_| Ok(())).collect()
    }
}

/// The idempotency keys table in memory, with switchable failures. Keys do
/// not expire here (the DynamoDB adapter's condition does that).
#[derive(Debug, Default)]
pub struct MemoryIdempotencyKeys {
    keys: Mutex<HashMap<String, HeldKey>>,
    failing: std::sync::atomic::AtomicBool,
}

impl MemoryIdempotencyKeys {
    /// Make every call fail (`true`) or succeed again.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The key's entry, if any.
    pub fn held(&self, scope: &str) -> Option<HeldKey> {
        self.lock().get(scope).cloned()
    }

    /// Stores an entry as an earlier request left it.
    pub fn insert(&self, scope: &str, held: HeldKey) {
        self.lock().insert(scope.to_owned(), held);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HeldKey>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self) -> Result<(), StoreError> {
        match self.failing.load(Ordering::SeqCst) {
            true => Err(StoreError::new("the idempotency keys are unavailable (injected)")),
            false => Ok(()),
        }
    }
}

impl ClaimIdempotencyKey for MemoryIdempotencyKeys {
    async fn claim_key(&self, claim: &KeyClaim, _now: Timestamp) -> Result<Claimed, StoreError> {
        self.check()?;
        let mut keys = self.lock();
        if let Some(held) = keys.get(&claim.scope) {
            return Ok(Claimed::Held(held.clone()));
        }
        let held = HeldKey {
            job_id: claim.job_id.clone(),
            fingerprint: claim.fingerprint.clone(),
            claimed_at: claim.claimed_at,
            accepted: false,
        };
        keys.insert(claim.scope.clone(), held);
        Ok(Claimed::New)
    }
}

impl AcceptIdempotencyKey for MemoryIdempotencyKeys {
    async fn accept_key(&self, claim: &KeyClaim) -> Result<(), StoreError> {
        self.check()?;
        if let Some(held) = self.lock().get_mut(&claim.scope).filter(|h| h.job_id == claim.job_id) {
            held.accepted = true;
        }
        Ok(())
    }
}

impl ReleaseIdempotencyKey for MemoryIdempotencyKeys {
    async fn release_key(&self, claim: &KeyClaim) -> Result<(), StoreError> {
        self.check()?;
        let mut keys = self.lock();
        if keys.get(&claim.scope).is_some_and(|h| h.job_id == claim.job_id && !h.accepted) {
            keys.remove(&claim.scope);
        }
        Ok(())
    }
}

/// The jobs queue in memory: what was sent, with a switchable failure.
#[derive(Debug, Default)]
pub struct MemoryJobQueue {
    sent: Mutex<Vec<Submission>>,
    failure: Mutex<Option<EnqueueError>>,
}

impl MemoryJobQueue {
    pub fn sent(&self) -> Vec<Submission> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Make every send fail with `failure` (`None`: succeed again).
    pub fn set_failure(&self, failure: Option<EnqueueError>) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = failure;
    }
}

impl EnqueueJob for MemoryJobQueue {
    async fn enqueue_job(&self, submission: &Submission) -> Result<(), EnqueueError> {
        if let Some(failure) = self.failure.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(failure);
        }
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).push(submission.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::counters::workload;

    const BUCKET: &str = "results-bucket";

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_duplicated_shuffled_deliveries_count_exactly() {
        let store = Arc::new(MemoryCounterStore::default());
        let events = workload::workload(BUCKET, 20);
        let mut handles = Vec::new();
        for ev in workload::deliveries(&events, 3, 7) {
            let store = store.clone();
            handles.push(tokio::spawn(async move { store.count(&ev, Timestamp(1)).await.unwrap() }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let (total, results) = workload::expected(&events);
        assert_eq!(store.counters(BUCKET, ""), Some(total));
        assert_eq!(store.counters(BUCKET, "results/"), Some(results));
        let read = store.read_counters(BUCKET).await.unwrap();
        assert_eq!(read.iter().map(|c| c.prefix.as_str()).collect::<Vec<_>>(), ["", "other/", "results/"]);
        assert!(read.iter().all(|c| c.updated_at.as_deref() == Some(Timestamp(1).to_rfc3339().as_str())));
        assert_eq!(store.read_counters("another-bucket").await.unwrap(), []);
    }
}
