//! The adapters against a real emulator: moto server with the real SDK
//! clients (endpoint override). Each test starts its own moto (see the
//! moto-harness crate for what it needs) and stops it when it ends.

use aws_sdk_dynamodb::types::AttributeValue;
use jobs_aws::counters::sort_key;
use jobs_aws::{DynamoCounterStore, DynamoJobStore, LazyResultRemover, ResultLinks, S3ResultStore, SqsRedelivery};
use jobs_core::counters::Counter;
use jobs_core::counters::counting::{Applied, CounterValues};
use jobs_core::counters::object_event::{Change, ObjectEvent};
use jobs_core::counters::sequencer::Sequencer;
use jobs_core::counters::workload;
use jobs_core::ports::{
    Attempt, CancelJob, Cancellation, CompleteJob, Completion, CountObjectEvent, DelayRedelivery, FailJob,
    FailUnrecorded, GetJob, JobPage, ListJobs, NoteAttemptError, PresignResult, PutResult, ReadCounters, RecordAttempt,
    RefuseWebhook, RemoveResult,
};
use jobs_core::webhook::{Callback, Destinations};
use jobs_core::{JobId, JobStatus, ResultLocation, StoredJob, Submission, Timestamp};
use moto_harness::{MotoServer, create_counters_table, create_jobs_table, http_get};

const TABLE: &str = "jobs";

async fn job_store(moto: &MotoServer) -> DynamoJobStore {
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    create_jobs_table(&client, TABLE).await;
    DynamoJobStore::new(client, TABLE)
}

fn submission(id: &str) -> Submission {
    Submission {
        id: JobId::parse(id).unwrap(),
        payload: r#"{"a":1}"#.into(),
        submitted_at: Timestamp(1_795_000_000_000),
        owner: Some("alice".into()),
        callback: None,
    }
}

const EXPIRES: Timestamp = Timestamp(1_800_000_000_000);

fn location(id: &JobId) -> ResultLocation {
    ResultLocation { bucket: "results".into(), key: id.result_key() }
}

#[tokio::test]
async fn a_job_is_recorded_counted_completed_and_never_regresses() {
    let moto = MotoServer::start();
    let store = job_store(&moto).await;
    let sub = submission("0c6a8c2e-7c1f-4d3a-a1b2-3c4d5e6f7a80");
    let id = &sub.id;

    assert_eq!(store.record_attempt(&sub, Timestamp(1)).await.unwrap(), Attempt::Started { number: 1 });
    store.note_attempt_error(id, "boom", Timestamp(2)).await.unwrap();
    let job = store.get_job(id).await.unwrap().unwrap().readable().unwrap();
    assert_eq!((job.status, job.attempts, job.last_error.as_deref()), (JobStatus::Submitted, 1, Some("boom")));
    assert_eq!(job.payload, r#"{"a":1}"#);
    assert_eq!(job.submitted_at, Timestamp(1_795_000_000_000));

    // A redelivery with a different body must not replace the recorded one.
    let mut again = sub.clone();
    again.payload = "{}".into();
    assert_eq!(store.record_attempt(&again, Timestamp(3)).await.unwrap(), Attempt::Started { number: 2 });
    let completion = store.complete_job(id, &location(id), Timestamp(4), EXPIRES).await.unwrap();
    let done = store.get_job(id).await.unwrap().unwrap().readable().unwrap();
    assert_eq!(
        completion,
        Completion::Completed(Some(Box::new(done.clone()))),
        "the write returns the record as written"
    );
    assert_eq!(done.status, JobStatus::Complete);
    assert_eq!(done.result, Some(location(id)));
    assert_eq!(done.completed_at, Some(Timestamp(4)));
    assert_eq!(done.last_error, None, "a complete job carries no stale error");
    assert_eq!(done.payload, r#"{"a":1}"#);
    assert_eq!((done.owner.as_deref(), done.expires_at), (Some("alice"), Some(EXPIRES)));

    // Everything at-least-once delivery can throw at a complete job changes nothing.
    assert_eq!(store.record_attempt(&sub, Timestamp(5)).await.unwrap(), Attempt::AlreadyComplete);
    assert_eq!(store.fail_job(id, "late failure", Timestamp(6), EXPIRES).await.unwrap(), None, "changed nothing");
    store.note_attempt_error(id, "late error", Timestamp(7)).await.unwrap();
    let rerun = ResultLocation { bucket: "other".into(), key: "x".into() };
    assert_eq!(store.complete_job(id, &rerun, Timestamp(8), Timestamp(9)).await.unwrap(), Completion::AlreadyComplete);
    assert_eq!(store.get_job(id).await.unwrap().unwrap().readable().unwrap(), done);
}

#[tokio::test]
async fn the_callback_url_is_recorded_once_with_why_it_is_refused_and_a_later_refusal_is_added() {
    let moto = MotoServer::start();
    let store = job_store(&moto).await;
    let mut sub = submission("0c6a8c2e-7c1f-4d3a-a1b2-3c4d5e6f7a80");
    sub.callback = Some(Callback::check("https://hooks.example.com/jobs", Destinations::PublicHttps));
    let id = sub.id.clone();
    store.record_attempt(&sub, Timestamp(1)).await.unwrap();
    let job = store.get_job(&id).await.unwrap().unwrap().readable().unwrap();
    assert_eq!(job.callback, sub.callback);

    // A replayed message without the attribute, or with another URL, keeps the first.
    let mut replay = sub.clone();
    replay.callback = Some(Callback::check("http://10.0.0.1/", Destinations::PublicHttps));
    store.record_attempt(&replay, Timestamp(2)).await.unwrap();
    let mut bare = sub.clone();
    bare.callback = None;
    store.record_attempt(&bare, Timestamp(3)).await.unwrap();
    assert_eq!(store.get_job(&id).await.unwrap().unwrap().readable().unwrap().callback, sub.callback);

    // The sender found the name resolves to a private address.
    store.refuse_webhook(&id, "resolves to 10.0.0.7").await.unwrap();
    let job = store.get_job(&id).await.unwrap().unwrap().readable().unwrap();
    let callback = job.callback.unwrap();
    assert_eq!(
        (callback.url.as_str(), callback.refused.as_deref()),
        ("https://hooks.example.com/jobs", Some("resolves to 10.0.0.7"))
    );

    // Refused when recorded: URL and reason together, and the completed job keeps both.
    let mut refused = submission("1d7b9d3f-8d2a-4e4b-b2c3-4d5e6f7a8b91");
    refused.callback = Some(Callback::check("http://hooks.example.com/", Destinations::PublicHttps));
    store.record_attempt(&refused, Timestamp(1)).await.unwrap();
    store.complete_job(&refused.id, &location(&refused.id), Timestamp(2), EXPIRES).await.unwrap();
    let job = store.get_job(&refused.id).await.unwrap().unwrap().readable().unwrap();
    assert_eq!(job.callback, refused.callback);
    assert_eq!(job.callback.unwrap().refused.as_deref(), Some("Job-Callback-Url must use https"));

    // A job without a callback URL gets no refusal; an unknown job is no error.
    let plain = submission("2e8cae4a-9e3b-4f5c-83d4-5e6f7a8b9ca2");
    store.record_attempt(&plain, Timestamp(1)).await.unwrap();
    store.refuse_webhook(&plain.id, "r").await.unwrap();
    assert_eq!(store.get_job(&plain.id).await.unwrap().unwrap().readable().unwrap().callback, None);
    store.refuse_webhook(&JobId::parse("3f9dbf5b-af4c-4a6d-94e5-6f7a8b9cadb3").unwrap(), "r").await.unwrap();
}

#[tokio::test]
async fn only_the_owner_cancels_a_job_that_has_not_ended_and_nothing_moves_it_back() {
    let moto = MotoServer::start();
    let store = job_store(&moto).await;
    let sub = submission("5b1fd17d-c16e-4c8f-b6a7-8b9cadbecfd5");
    let id = &sub.id;
    let cancel = |caller: &'static str, at: u64| {
        let store = &store;
        async move { store.cancel_job(id, caller, Timestamp(at), EXPIRES).await.unwrap() }
    };
    assert_eq!(cancel("alice", 10).await, Cancellation::NotFound, "no such job");
    store.record_attempt(&sub, Timestamp(1)).await.unwrap();
    assert_eq!(cancel("bob", 10).await, Cancellation::NotFound, "another caller's job");

    let Cancellation::Cancelled(cancelled) = cancel("alice", 10).await else { panic!("not cancelled") };
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!((cancelled.cancelled_at, cancelled.updated_at), (Some(Timestamp(10)), Timestamp(10)));
    assert_eq!((cancelled.expires_at, cancelled.owner.as_deref()), (Some(EXPIRES), Some("alice")));
    assert_eq!(
        cancel("alice", 20).await,
        Cancellation::AlreadyCancelled(cancelled.clone()),
        "a repeated cancel changes nothing"
    );
    assert_eq!(store.get_job(id).await.unwrap().unwrap().readable().unwrap(), cancelled);

    // Nothing a delivery, a rerun or a replay does moves it back.
    assert_eq!(store.record_attempt(&sub, Timestamp(30)).await.unwrap(), Attempt::Cancelled);
    assert_eq!(store.complete_job(id, &location(id), Timestamp(31), EXPIRES).await.unwrap(), Completion::Cancelled);
    store.fail_job(id, "late failure", Timestamp(32), EXPIRES).await.unwrap();
    store.fail_unrecorded(&sub, "late refusal", Timestamp(33), EXPIRES).await.unwrap();
    store.note_attempt_error(id, "late error", Timestamp(34)).await.unwrap();
    assert_eq!(store.get_job(id).await.unwrap().unwrap().readable().unwrap(), cancelled);
    // Once expired, it is nobody's.
    assert_eq!(cancel("alice", EXPIRES.0).await, Cancellation::NotFound);

    // An ended job is not cancelled.
    let done = submission("6c2ae28e-d27f-4d90-87b8-9cadbecfd0e6");
    store.record_attempt(&done, Timestamp(1)).await.unwrap();
    store.complete_job(&done.id, &location(&done.id), Timestamp(2), EXPIRES).await.unwrap();
    let ended = store.cancel_job(&done.id, "alice", Timestamp(3), EXPIRES).await.unwrap();
    assert!(matches!(&ended, Cancellation::Ended(j) if j.status == JobStatus::Complete), "{ended:?}");
    let failed = submission("7d3bf39f-e38a-4ea1-98c9-adbecfd0e1f7");
    store.record_attempt(&failed, Timestamp(1)).await.unwrap();
    store.fail_job(&failed.id, "gave up", Timestamp(2), EXPIRES).await.unwrap();
    let ended = store.cancel_job(&failed.id, "alice", Timestamp(3), EXPIRES).await.unwrap();
    assert!(matches!(&ended, Cancellation::Ended(j) if j.status == JobStatus::Failed), "{ended:?}");
}

#[tokio::test]
async fn a_failed_job_can_be_retried_by_a_replay_and_unknown_jobs_are_reported() {
    let moto = MotoServer::start();
    let store = job_store(&moto).await;
    let sub = submission("1d7b9d3f-8d2a-4e4b-b2c3-4d5e6f7a8b91");
    store.record_attempt(&sub, Timestamp(1)).await.unwrap();
    let written = store.fail_job(&sub.id, "gave up", Timestamp(2_000), EXPIRES).await.unwrap();
    let failed = store.get_job(&sub.id).await.unwrap().unwrap().readable().unwrap();
    assert_eq!(written, Some(failed.clone()), "the write returns the record as written");
    assert_eq!((failed.status, failed.failure_reason.as_deref()), (JobStatus::Failed, Some("gave up")));
    assert_eq!((failed.failed_at, failed.expires_at), (Some(Timestamp(2_000)), Some(EXPIRES)));

    assert_eq!(store.record_attempt(&sub, Timestamp(3)).await.unwrap(), Attempt::Started { number: 2 });
    let retried = store.get_job(&sub.id).await.unwrap().unwrap().readable().unwrap();
    assert_eq!((retried.status, retried.failure_reason), (JobStatus::Submitted, None));
    assert_eq!((retried.failed_at, retried.expires_at), (None, None), "a job worked on again does not expire");
    assert_eq!(retried.owner.as_deref(), Some("alice"));

    let unknown = JobId::parse("2e8cae4a-9e3b-4f5c-83d4-5e6f7a8b9ca2").unwrap();
    assert_eq!(store.get_job(&unknown).await.unwrap(), None);
    let err = store.complete_job(&unknown, &location(&unknown), Timestamp(4), EXPIRES).await.unwrap_err();
    assert!(err.to_string().contains("not in the jobs table"), "{err}");
    store.fail_job(&unknown, "x", Timestamp(5), EXPIRES).await.unwrap();
    assert_eq!(store.get_job(&unknown).await.unwrap(), None, "failing an unknown job must not create it");
}

#[tokio::test]
async fn a_damaged_record_is_read_as_unreadable_with_its_owner_and_expiry() {
    let moto = MotoServer::start();
    let store = job_store(&moto).await;
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let id = JobId::parse("5d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21").unwrap();
    let s = |v: &str| AttributeValue::S(v.into());
    client
        .put_item()
        .table_name(TABLE)
        .item("jobRequestId", s(id.as_str()))
        .item("jobStatus", s("Done"))
        .item("owner", s("alice"))
        .item("expiresAt", AttributeValue::N("1800000000".into()))
        .send()
        .await
        .unwrap();
    match store.get_job(&id).await.unwrap().unwrap() {
        StoredJob::Unreadable(damaged) => {
            assert_eq!(damaged.owner.as_deref(), Some("alice"));
            assert_eq!(damaged.expires_at, Some(EXPIRES));
            assert!(damaged.problem.contains("jobStatus"), "{}", damaged.problem);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_owners_jobs_are_listed_newest_first_page_by_page() {
    let moto = MotoServer::start();
    let store = job_store(&moto).await;
    let ids = [
        "0c6a8c2e-7c1f-4d3a-a1b2-3c4d5e6f7a80",
        "1d7b9d3f-8d2a-4e4b-b2c3-4d5e6f7a8b91",
        "2e8cae4a-9e3b-4f5c-83d4-5e6f7a8b9ca2",
        "3f9dbf5b-af4c-4a6d-94e5-6f7a8b9cadb3",
    ];
    for (n, id) in ids.iter().enumerate() {
        let mut sub = submission(id);
        sub.submitted_at = Timestamp(1_795_000_000_000 + n as u64 * 1000);
        // The third is someone else's; one more has no owner at all.
        sub.owner = Some(if n == 2 { "bob" } else { "alice" }.into());
        store.record_attempt(&sub, Timestamp(1)).await.unwrap();
    }
    let mut orphan = submission("4a0ec06c-b05d-4b7e-a5f6-7a8b9cadbec4");
    orphan.owner = None;
    store.record_attempt(&orphan, Timestamp(1)).await.unwrap();

    let first = store.list_jobs("alice", 2, None).await.unwrap();
    let listed: Vec<&str> = first.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(listed, [ids[3], ids[1]]);
    let next = first.next.expect("a second page");
    assert_eq!((next.job_id.as_str(), next.owner.as_str()), (ids[1], "alice"));
    let second = store.list_jobs("alice", 2, Some(&next)).await.unwrap();
    let listed: Vec<&str> = second.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(listed, [ids[0]]);
    assert_eq!(second.next, None);
    assert_eq!(store.list_jobs("carol", 20, None).await.unwrap(), JobPage::default());
}

/// A request too large for a job record (the 440,008-byte body of four-byte
/// characters that SQS's character count let through): DynamoDB refuses the
/// record and keeps nothing (moto kept a bare key, an item no status read
/// could use, invisible to its owner, until local/moto-python corrected
/// it); the job is then recorded failed, without its payload, where its
/// owner sees it.
#[tokio::test]
async fn a_request_too_large_to_record_is_refused_and_recorded_failed_for_its_owner() {
    let moto = MotoServer::start();
    let store = job_store(&moto).await;
    let mut sub = submission("5b1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21");
    sub.payload = format!(r#"{{"text":"{}"}}"#, "\u{1F600}".repeat(110_000));
    let refused = store.record_attempt(&sub, Timestamp(1)).await.unwrap();
    assert!(matches!(&refused, Attempt::Refused { reason } if reason.contains("item size limit")), "{refused:?}");
    assert_eq!(store.get_job(&sub.id).await.unwrap(), None, "a refused write leaves nothing behind");

    store.fail_unrecorded(&sub, "too large", Timestamp(2), EXPIRES).await.unwrap();
    let job = store.get_job(&sub.id).await.unwrap().expect("recorded").readable().expect("readable");
    assert_eq!((job.status, job.failure_reason.as_deref()), (JobStatus::Failed, Some("too large")));
    assert_eq!((job.owner.as_deref(), job.submitted_at, job.payload.as_str()), (Some("alice"), sub.submitted_at, ""));
    assert_eq!(job.expires_at, Some(Timestamp::from_epoch_seconds(EXPIRES.epoch_seconds())));
    let listed = store.list_jobs("alice", 20, None).await.unwrap();
    assert_eq!(listed.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), [sub.id.clone()]);

    // It never turns a complete job into a failed one.
    let done = submission("6c2a1e3d-7b5f-4ce6-8d2f-3a1b8c4d0f32");
    store.record_attempt(&done, Timestamp(1)).await.unwrap();
    store.complete_job(&done.id, &location(&done.id), Timestamp(2), EXPIRES).await.unwrap();
    store.fail_unrecorded(&done, "too large", Timestamp(3), EXPIRES).await.unwrap();
    assert_eq!(store.get_job(&done.id).await.unwrap().unwrap().readable().unwrap().status, JobStatus::Complete);
}

#[tokio::test]
async fn counters_are_read_by_bucket_and_prefix() {
    let moto = MotoServer::start();
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    create_counters_table(&client, "counters").await;
    let store = DynamoCounterStore::new(client.clone(), "counters");
    assert!(store.read_counters("results").await.unwrap().is_empty());
    for (bucket, sk, current) in [
        ("results", "counter#", "2"),
        ("results", "counter#results/", "1"),
        ("results", "other#x", "9"),
        ("b2", "counter#", "5"),
    ] {
        client
            .put_item()
            .table_name("counters")
            .item("bucket", AttributeValue::S(bucket.into()))
            .item("counter", AttributeValue::S(sk.into()))
            .item("current", AttributeValue::N(current.into()))
            .send()
            .await
            .unwrap();
    }
    let mut counters = store.read_counters("results").await.unwrap();
    counters.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    let seen: Vec<(&str, i64)> = counters.iter().map(|c| (c.prefix.as_str(), c.current)).collect();
    assert_eq!(seen, [("", 2), ("results/", 1)]);
}

#[tokio::test]
async fn concurrent_deliveries_each_get_their_own_attempt_number() {
    let moto = MotoServer::start();
    let store = job_store(&moto).await;
    let sub = submission("3f9dbf5b-af4c-4a6d-94e5-6f7a8b9cadb3");
    let attempts = futures_join(&store, &sub).await;
    let mut numbers: Vec<u32> = attempts
        .into_iter()
        .map(|a| match a {
            Attempt::Started { number } => number,
            other => panic!("{other:?}"),
        })
        .collect();
    numbers.sort();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
}

async fn futures_join(store: &DynamoJobStore, sub: &Submission) -> Vec<Attempt> {
    let mut handles = Vec::new();
    for _ in 0..8 {
        let (store, sub) = (store.clone(), sub.clone());
        handles.push(tokio::spawn(async move { store.record_attempt(&sub, Timestamp(1)).await.unwrap() }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_result_is_overwritten_by_a_rerun_and_its_presigned_link_downloads_it() {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
    s3.create_bucket().bucket("results").send().await.unwrap();
    let store = S3ResultStore::new(s3.clone(), "results");
    let id = JobId::parse("4a0ec06c-b05d-4b7e-a5f6-7a8b9cadbec4").unwrap();

    store.put_result(&id.result_key(), b"{\"first\":1}".to_vec()).await.unwrap();
    let stored = store.put_result(&id.result_key(), b"{\"second\":2}".to_vec()).await.unwrap();
    assert_eq!(stored, location(&id));
    let listed = s3.list_objects_v2().bucket("results").send().await.unwrap();
    assert_eq!(listed.contents().len(), 1);
    let head = s3.head_object().bucket("results").key(id.result_key()).send().await.unwrap();
    assert_eq!(head.content_type(), Some("application/json"));

    let links = ResultLinks::from_config(&moto.sdk_config().await, LINK_ROLE).await;
    let link = links.presign_result(&stored, 1800).await.unwrap();
    assert!(link.url.contains("X-Amz-Expires=1800") && link.url.contains("X-Amz-Security-Token="), "{}", link.url);
    let (status, body) = http_get(&link.url);
    assert_eq!((status, body.as_str()), (200, "{\"second\":2}"));

    // A cancelled job's result is removed (by job-processor's remover, its
    // client built on first use); removing it again is no error.
    let remover = LazyResultRemover::new(&config, "results");
    remover.remove_result(&id).await.unwrap();
    store.remove_result(&id).await.unwrap();
    let listed = s3.list_objects_v2().bucket("results").send().await.unwrap();
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
}

const LINK_ROLE: &str = "arn:aws:iam::123456789012:role/jobs-result-links";

#[tokio::test]
async fn a_link_never_says_it_lasts_longer_than_the_session_that_signed_it() {
    let moto = MotoServer::start();
    let links = ResultLinks::from_config(&moto.sdk_config().await, LINK_ROLE).await;
    let location = ResultLocation { bucket: "results".into(), key: "results/x.json".into() };
    // Asked for two hours, but the link role's sessions last one (role chaining).
    let link = links.presign_result(&location, 7200).await.unwrap();
    let query = |name: &str| {
        link.url.split(['?', '&']).find_map(|p| p.strip_prefix(&format!("{name}="))).unwrap_or_default().to_owned()
    };
    let expires: u64 = query("X-Amz-Expires").parse().unwrap();
    assert!((3500..=3600).contains(&expires), "the signature ends with the session: {expires}");
    let left = link.expires_at.millis().saturating_sub(Timestamp::now().millis()) / 1000;
    assert!(left.abs_diff(expires) <= 2, "the stated expiry is the signature's: {left} vs {expires}");
    // A shorter link fits in the same session: it gets its whole lifetime.
    let again = links.presign_result(&location, 3000).await.unwrap();
    assert!(again.url.contains("X-Amz-Expires=3000"), "{}", again.url);
}

#[tokio::test]
async fn a_retry_delay_makes_the_message_visible_again_at_once() {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = sqs.create_queue().queue_name("jobs").send().await.unwrap().queue_url.unwrap();
    sqs.send_message().queue_url(&queue).message_body("{}").send().await.unwrap();
    let receive = || sqs.receive_message().queue_url(&queue).visibility_timeout(600).send();
    let first = receive().await.unwrap();
    let receipt = first.messages()[0].receipt_handle().unwrap().to_owned();
    assert!(receive().await.unwrap().messages().is_empty(), "invisible for 600 s");

    SqsRedelivery::from_config(&config, &queue).delay_redelivery(&receipt, 0).await.unwrap();
    assert_eq!(receive().await.unwrap().messages().len(), 1);

    let err = SqsRedelivery::from_config(&config, format!("{queue}-missing"))
        .delay_redelivery(&receipt, 0)
        .await
        .unwrap_err();
    // Shown: one sentence of ours; logged: the action and the SDK's error.
    assert_eq!(err.to_string(), "the jobs queue refused or did not answer the request");
    assert!(err.detail().contains("delaying the retry failed"), "{}", err.detail());
}

// The counters table: the object counter's writes (CountObjectEvent) and
// `GET /count`'s reads (ReadCounters), through the one DynamoCounterStore.
// moto's DynamoDB item calls, TransactWriteItems included, are atomic as
// DynamoDB's are.

const COUNTERS_TABLE: &str = "counters";
const RESULTS_BUCKET: &str = "results-bucket";

async fn counter_store(moto: &MotoServer) -> (DynamoCounterStore, aws_sdk_dynamodb::Client) {
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    create_counters_table(&client, COUNTERS_TABLE).await;
    (DynamoCounterStore::new(client.clone(), COUNTERS_TABLE), client)
}

fn event(key: &str, change: Change, seq: &str) -> ObjectEvent {
    ObjectEvent {
        bucket: RESULTS_BUCKET.into(),
        key: key.into(),
        change,
        sequencer: Sequencer::parse(seq).unwrap(),
        event_name: "test".into(),
    }
}

fn c(created: i64, removed: i64, current: i64, bytes: i64) -> CounterValues {
    CounterValues { created, removed, current, bytes }
}

/// A counter's values as `GET /count` reads them: `prefix` "" for the bucket.
async fn counter_values(store: &DynamoCounterStore, prefix: &str) -> Option<CounterValues> {
    let counters = store.read_counters(RESULTS_BUCKET).await.unwrap();
    counters.iter().find(|c| c.prefix == prefix).map(Counter::values)
}

#[tokio::test]
async fn created_removed_duplicate_and_reordered_events_count_exactly() {
    let moto = MotoServer::start();
    let (store, client) = counter_store(&moto).await;
    let put = event("results/a b.json", Change::Created { size: 100 }, "0055AED6DCD90281E5");
    let delete = event("results/a b.json", Change::Removed, "0055AED6DCD90281F0");
    let put_again = event("results/a b.json", Change::Created { size: 250 }, "55AED6DCD9028200");

    assert_eq!(store.count(&put, Timestamp(1_795_000_000_000)).await.unwrap(), Applied::Counted { newest: true });
    assert_eq!(counter_values(&store, "").await, Some(c(1, 0, 1, 100)));
    assert_eq!(store.count(&put, Timestamp(2)).await.unwrap(), Applied::Duplicate);
    // The newest event arrives before the delete it follows.
    assert_eq!(store.count(&put_again, Timestamp(3)).await.unwrap(), Applied::Counted { newest: true });
    assert_eq!(store.count(&delete, Timestamp(4)).await.unwrap(), Applied::Counted { newest: false });
    assert_eq!(store.count(&delete, Timestamp(5)).await.unwrap(), Applied::Duplicate);
    assert_eq!(counter_values(&store, "").await, Some(c(2, 1, 1, 250)));
    assert_eq!(counter_values(&store, "results/").await, Some(c(2, 1, 1, 250)));

    // The agreed item shapes (docs/contract.md), which job-status reads.
    let item = client
        .get_item()
        .table_name(COUNTERS_TABLE)
        .key("bucket", AttributeValue::S(RESULTS_BUCKET.into()))
        .key("counter", AttributeValue::S("counter#results/".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["counter"].as_s().unwrap(), "counter#results/");
    for (name, value) in [("created", "2"), ("removed", "1"), ("current", "1"), ("bytes", "250")] {
        assert_eq!(item[name].as_n().unwrap(), value, "{name}");
    }
    assert!(item["updatedAt"].as_s().unwrap().ends_with('Z'));
    let object = client
        .get_item()
        .table_name(COUNTERS_TABLE)
        .key("bucket", AttributeValue::S(RESULTS_BUCKET.into()))
        .key("counter", AttributeValue::S("object#results/a b.json".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(object["size"].as_n().unwrap(), "250");
    assert_eq!(object["exists"].as_bool().unwrap(), &true);

    // A key without "/" counts only in the total.
    store.count(&event("top.json", Change::Created { size: 7 }, "01"), Timestamp(6)).await.unwrap();
    assert_eq!(counter_values(&store, "").await, Some(c(3, 1, 2, 257)));
    assert_eq!(counter_values(&store, "results/").await, Some(c(2, 1, 1, 250)));
    assert_eq!(counter_values(&store, "top.json").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicated_shuffled_deliveries_count_exactly() {
    let moto = MotoServer::start();
    let (store, _) = counter_store(&moto).await;
    let events = workload::workload(RESULTS_BUCKET, 12);
    let deliveries = workload::deliveries(&events, 3, 11);
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut handles = Vec::new();
    for ev in deliveries {
        let (store, semaphore) = (store.clone(), semaphore.clone());
        handles.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.unwrap();
            store.count(&ev, Timestamp(1)).await.unwrap()
        }));
    }
    let mut counted = 0;
    for h in handles {
        if matches!(h.await.unwrap(), Applied::Counted { .. }) {
            counted += 1;
        }
    }
    assert_eq!(counted, events.len(), "each event counted once, duplicates not");
    let (total, results) = workload::expected(&events);
    assert_eq!(counter_values(&store, "").await, Some(total));
    assert_eq!(counter_values(&store, "results/").await, Some(results));
}

/// A transaction that loses the race for an object's state (its revision
/// moved) changes nothing, counters included: DynamoDB's all or nothing,
/// which the local target keeps while copying only the items a transaction
/// touches (local/moto-python).
#[tokio::test]
async fn a_cancelled_transaction_changes_no_counter() {
    use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
    let moto = MotoServer::start();
    let (store, client) = counter_store(&moto).await;
    store.count(&event("results/a.json", Change::Created { size: 10 }, "01"), Timestamp(1)).await.unwrap();
    let key = |sk: String| {
        [
            ("bucket".to_string(), AttributeValue::S(RESULTS_BUCKET.into())),
            ("counter".to_string(), AttributeValue::S(sk)),
        ]
    };
    let add = |prefix: &str| {
        TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(COUNTERS_TABLE)
                    .set_key(Some(key(sort_key::counter(prefix)).into()))
                    .update_expression("ADD created :one")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let mut item: std::collections::HashMap<_, _> = key(sort_key::object("results/a.json")).into();
    item.insert("revision".into(), AttributeValue::N("2".into()));
    let stale_put = TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(COUNTERS_TABLE)
                .set_item(Some(item))
                .condition_expression("revision = :seen")
                .expression_attribute_values(":seen", AttributeValue::N("0".into()))
                .build()
                .unwrap(),
        )
        .build();
    let err = client
        .transact_write_items()
        .transact_items(add(""))
        .transact_items(stale_put)
        .transact_items(add("results/"))
        .send()
        .await
        .unwrap_err();
    assert!(format!("{:?}", err.into_service_error()).contains("TransactionCanceled"));
    assert_eq!(counter_values(&store, "").await, Some(c(1, 0, 1, 10)));
    assert_eq!(counter_values(&store, "results/").await, Some(c(1, 0, 1, 10)));
}
