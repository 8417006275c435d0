//! In-memory implementations of every port, for tests and examples. They
//! follow the same rules as the DynamoDB/S3 adapters (conditional writes,
//! deterministic keys), so handler tests exercise real behaviour.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use time::OffsetDateTime;

use crate::job::{JobId, JobRecord, JobStatus, ResultLocation, Submission, Timestamp};
use crate::ports::{
    Attempt, CompleteJob, FailJob, GetJob, NoteAttemptError, PresignResult, PutResult, RecordAttempt, RunSimulation,
    SimulationRequest, StoreError,
};
use crate::simulation::simulate;

/// The jobs table in memory, with switchable write failures.
#[derive(Debug, Default)]
pub struct MemoryJobStore {
    jobs: Mutex<HashMap<JobId, JobRecord>>,
    /// Writes to let through before failing (`u32::MAX`: never fail).
    ok_before_failures: AtomicU32,
    failures: AtomicU32,
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

    pub fn insert(&self, record: JobRecord) {
        self.lock().insert(record.id.clone(), record);
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

impl RecordAttempt for MemoryJobStore {
    async fn record_attempt(&self, s: &Submission, now: Timestamp) -> Result<Attempt, StoreError> {
        let mut jobs = self.write()?;
        let job = jobs.entry(s.id.clone()).or_insert_with(|| JobRecord {
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
        });
        if !job.status.accepts_attempt() {
            return Ok(Attempt::AlreadyComplete);
        }
        job.status = JobStatus::Submitted;
        job.attempts += 1;
        job.updated_at = now;
        Ok(Attempt::Started { number: job.attempts })
    }
}

impl CompleteJob for MemoryJobStore {
    async fn complete_job(&self, id: &JobId, result: &ResultLocation, now: Timestamp) -> Result<(), StoreError> {
        let mut jobs = self.write()?;
        let job = jobs.get_mut(id).ok_or_else(|| StoreError::new(format!("job {id} is not recorded")))?;
        if job.status != JobStatus::Complete {
            job.status = JobStatus::Complete;
            job.result = Some(result.clone());
            job.completed_at = Some(now);
            job.failure_reason = None;
            job.updated_at = now;
        }
        Ok(())
    }
}

impl FailJob for MemoryJobStore {
    async fn fail_job(&self, id: &JobId, reason: &str, now: Timestamp) -> Result<(), StoreError> {
        let mut jobs = self.write()?;
        if let Some(job) = jobs.get_mut(id).filter(|j| j.status != JobStatus::Complete) {
            job.status = JobStatus::Failed;
            job.failure_reason = Some(reason.to_owned());
            job.updated_at = now;
        }
        Ok(())
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

impl GetJob for MemoryJobStore {
    async fn get_job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.lock().get(id).cloned())
    }
}

/// The results bucket in memory.
#[derive(Debug)]
pub struct MemoryResultStore {
    bucket: String,
    objects: Mutex<HashMap<String, Vec<u8>>>,
    puts: AtomicU32,
}

impl MemoryResultStore {
    pub fn new(bucket: impl Into<String>) -> Self {
        Self { bucket: bucket.into(), objects: Mutex::default(), puts: AtomicU32::new(0) }
    }

    pub fn objects(&self) -> HashMap<String, Vec<u8>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many times anything was written (overwrites included).
    pub fn puts(&self) -> u32 {
        self.puts.load(Ordering::SeqCst)
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
    async fn presign_result(&self, l: &ResultLocation, expires_in_seconds: u64) -> Result<String, StoreError> {
        Ok(format!("memory://{}/{}?expires-in={expires_in_seconds}", l.bucket, l.key))
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
