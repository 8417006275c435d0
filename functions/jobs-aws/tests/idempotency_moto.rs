//! The idempotency keys table and the submit's record write against moto,
//! through the real SDK: a claim wins once, an expired claim is taken over,
//! only the claim's own request releases or accepts it, and a record made at
//! submit is the one the processor's first delivery continues.

use jobs_aws::{DynamoIdempotencyKeys, DynamoJobStore};
use jobs_core::ports::{Attempt, CancelJob, Cancellation, GetJob, RecordAttempt};
use jobs_core::submission::{
    AcceptIdempotencyKey, ClaimIdempotencyKey, Claimed, IdempotencyKey, KeyClaim, RecordSubmitted,
    ReleaseIdempotencyKey,
};
use jobs_core::webhook::Callback;
use jobs_core::{JobId, JobStatus, Submission, Timestamp};
use moto_harness::{MotoServer, create_idempotency_table, create_jobs_table};

const NOW: Timestamp = Timestamp(1_796_600_000_000);
const OWNER: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

fn claim(job: &str, fingerprint: &str, now: Timestamp) -> KeyClaim {
    let key = IdempotencyKey::parse("order-42").unwrap();
    KeyClaim::new(OWNER, &key, JobId::parse(job).unwrap(), fingerprint.into(), now)
}

#[tokio::test]
async fn a_key_is_claimed_once_until_it_expires_and_only_its_claim_settles_it() {
    let moto = MotoServer::start();
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    create_idempotency_table(&client, "keys").await;
    let keys = DynamoIdempotencyKeys::new(client, "keys");
    let first = claim("0c6a8c2e-7c1f-4d3a-a1b2-3c4d5e6f7a80", "hash-1", NOW);
    let second = claim("1d7b9d3f-8d20-4e4b-b2c3-4d5e6f7a8b91", "hash-2", NOW);

    assert_eq!(keys.claim_key(&first, NOW).await.unwrap(), Claimed::New);
    let Claimed::Held(held) = keys.claim_key(&second, NOW).await.unwrap() else { panic!("held") };
    assert_eq!(
        (&held.job_id, held.fingerprint.as_str(), held.claimed_at, held.accepted),
        (&first.job_id, "hash-1", NOW, false)
    );

    // Another request's claim neither releases nor accepts the first.
    keys.release_key(&second).await.unwrap();
    keys.accept_key(&second).await.unwrap_err();
    keys.accept_key(&first).await.unwrap();
    let Claimed::Held(held) = keys.claim_key(&second, NOW).await.unwrap() else { panic!("held") };
    assert!(held.accepted);
    // An accepted claim is not released (its job was queued).
    keys.release_key(&first).await.unwrap();
    assert!(matches!(keys.claim_key(&second, NOW).await.unwrap(), Claimed::Held(_)));

    // 24 hours later the key names a new job, whether or not TTL has removed it.
    let later = Timestamp(NOW.0 + 86_400_000);
    let renewed = claim("1d7b9d3f-8d20-4e4b-b2c3-4d5e6f7a8b91", "hash-2", later);
    assert_eq!(keys.claim_key(&renewed, later).await.unwrap(), Claimed::New);
    // A released claim frees the key at once.
    keys.release_key(&renewed).await.unwrap();
    assert_eq!(keys.claim_key(&renewed, later).await.unwrap(), Claimed::New);
}

#[tokio::test]
async fn a_job_recorded_at_submit_is_continued_by_its_first_delivery_or_cancelled_before_it() {
    let moto = MotoServer::start();
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    create_jobs_table(&client, "jobs").await;
    let jobs = DynamoJobStore::new(client, "jobs");
    let submission = |id: &str| Submission {
        id: JobId::parse(id).unwrap(),
        payload: r#"{"region":"eu-west-1"}"#.into(),
        submitted_at: NOW,
        owner: Some(OWNER.into()),
        callback: Some(Callback { url: "https://hooks.example.com/j".into(), refused: None }),
    };
    let run = submission("0c6a8c2e-7c1f-4d3a-a1b2-3c4d5e6f7a80");
    jobs.record_submitted(&run, NOW).await.unwrap();
    let job = jobs.get_job(&run.id).await.unwrap().unwrap().readable().unwrap();
    assert_eq!(
        (job.status, job.attempts, job.submitted_at, job.owner.as_deref()),
        (JobStatus::Submitted, 0, NOW, Some(OWNER))
    );
    assert_eq!(job.callback, run.callback);
    // A second record write (the processor was first, or a replay) changes nothing.
    let mut other = run.clone();
    other.payload = "{}".into();
    jobs.record_submitted(&other, Timestamp(NOW.0 + 5)).await.unwrap();
    assert_eq!(jobs.get_job(&run.id).await.unwrap().unwrap().readable().unwrap(), job);
    // The first delivery continues the record: attempt 1, the submit's time kept.
    let delivered = Submission { submitted_at: Timestamp(NOW.0 + 40), ..run.clone() };
    assert_eq!(jobs.record_attempt(&delivered, Timestamp(NOW.0 + 50)).await.unwrap(), Attempt::Started { number: 1 });
    assert_eq!(jobs.get_job(&run.id).await.unwrap().unwrap().readable().unwrap().submitted_at, NOW);

    // Cancelled before its first delivery: the delivery does not run it.
    let held = submission("1d7b9d3f-8d20-4e4b-b2c3-4d5e6f7a8b91");
    jobs.record_submitted(&held, NOW).await.unwrap();
    let later = Timestamp(NOW.0 + 10);
    assert!(matches!(
        jobs.cancel_job(&held.id, OWNER, later, later.plus_days(30)).await.unwrap(),
        Cancellation::Cancelled(_)
    ));
    assert_eq!(jobs.record_attempt(&held, Timestamp(NOW.0 + 20)).await.unwrap(), Attempt::Cancelled);
    assert_eq!(jobs.get_job(&held.id).await.unwrap().unwrap().readable().unwrap().attempts, 0);
}
