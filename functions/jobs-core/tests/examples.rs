//! The job bodies in examples/ (the ones the docs submit) are accepted by the
//! service and do what their names say, through the processor's real
//! decisions with the stack's retry policy: so an example cannot rot.

use std::collections::BTreeSet;
use std::path::Path;

use jobs_core::memory::{MemoryJobStore, MemoryResultStore, Simulator};
use jobs_core::ports::GetJob;
use jobs_core::processing::{Delivery, Outcome, RetryPolicy, process_delivery};
use jobs_core::{JobId, JobParameters, JobStatus, StoredJob, Timestamp};

/// Embedded, so that a missing or renamed example fails the build.
const EXAMPLES: [(&str, &str); 3] = [
    ("job.json", include_str!("../../../examples/job.json")),
    ("always-fails.json", include_str!("../../../examples/always-fails.json")),
    ("fails-twice.json", include_str!("../../../examples/fails-twice.json")),
];

/// The app stack's: MAX_RECEIVE_COUNT = 4 (cdktf/stacks/app-stack.ts), so receives 1-3 run the job.
const POLICY: RetryPolicy =
    RetryPolicy { max_receive_count: 4, backoff_base_seconds: 2, backoff_cap_seconds: 300, result_retention_days: 30 };

fn example(name: &str) -> &'static str {
    EXAMPLES.iter().find(|(n, _)| *n == name).map(|(_, body)| *body).unwrap()
}

/// Delivers `body` as the queue does (a retry is received again, a give-up
/// moves on to the dead-letter queue) and returns the job's final status and
/// attempts.
async fn submit(body: &str) -> (JobStatus, u32, Option<String>) {
    let store = MemoryJobStore::default();
    let simulator = Simulator::new(MemoryResultStore::new("results"));
    let job_id = JobId::parse("4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21").unwrap();
    for receive_count in 1..=POLICY.max_receive_count {
        let delivery = Delivery {
            job_id: job_id.clone(),
            body: body.to_owned(),
            submitted_at: Timestamp(1_000),
            receive_count,
            owner: Some("example-user".into()),
            callback: None,
        };
        let processed =
            process_delivery(&store, &simulator, simulator.results(), POLICY, &delivery, || Timestamp(2_000)).await;
        if !matches!(processed.outcome, Outcome::RetryLater { .. }) {
            break;
        }
    }
    match store.get_job(&job_id).await.unwrap().unwrap() {
        StoredJob::Readable(job) => (job.status, job.attempts, job.failure_reason),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_example_is_a_valid_job_request_and_tested_here() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let tested: BTreeSet<String> = EXAMPLES.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(on_disk, tested, "every examples/*.json is checked by this test");
    for (name, body) in EXAMPLES {
        assert!(JobParameters::parse(body).is_ok(), "{name}: {:?}", JobParameters::parse(body));
    }
}

#[tokio::test]
async fn the_plain_job_completes_on_its_first_attempt() {
    assert_eq!(submit(example("job.json")).await, (JobStatus::Complete, 1, None));
}

#[tokio::test]
async fn fails_twice_completes_on_its_third_and_last_attempt() {
    assert_eq!(submit(example("fails-twice.json")).await, (JobStatus::Complete, 3, None));
}

#[tokio::test]
async fn always_fails_ends_failed_after_three_attempts() {
    let (status, attempts, reason) = submit(example("always-fails.json")).await;
    assert_eq!((status, attempts), (JobStatus::Failed, 3));
    assert_eq!(
        reason.as_deref(),
        Some(
            "Gave up after 3 deliveries; the message is in the dead-letter queue. Last error: Attempt 3 failed: simulated failure requested by the job (simulateFailure = \"always\", attempt 3)"
        )
    );
}
