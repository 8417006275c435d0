//! The handler against moto server with the real SDK clients (endpoint
//! override): the service is built as main.rs builds it, from the SDK config
//! of a moto started for the test (and stopped when it drops), and the job
//! is recorded, completed and its result written through the real adapters,
//! as the job processor and the batch simulator do.

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::ApiGatewayProxyRequest;
use jobs_aws::{DynamoCounterStore, DynamoJobStore, ResultLinks, S3ResultStore};
use jobs_core::counters::counting::Applied;
use jobs_core::counters::object_event::{Change, ObjectEvent};
use jobs_core::counters::sequencer::Sequencer;
use jobs_core::ports::{Attempt, CompleteJob, CountObjectEvent, PutResult, RecordAttempt};
use jobs_core::{JobId, Submission, Timestamp};
use lambda_runtime::{Context, LambdaEvent};
use moto_harness::{MotoServer, create_counters_table, create_jobs_table, http_get};
use serde_json::{Value, json};

use crate::handler::{self, StatusService};

const JOBS_TABLE: &str = "jobs";
const COUNTERS_TABLE: &str = "counters";
const RESULTS_BUCKET: &str = "results-bucket";
const LINK_TTL_SECONDS: u64 = 900;
/// The stack's RESULT_LINK_ROLE_ARN: links are signed with its sessions (moto's STS).
const LINK_ROLE: &str = "arn:aws:iam::123456789012:role/jobs-result-links";

/// The fixtures' job and caller (`requestContext.authorizer.sub`).
const ID: &str = "5b1fd17d-c16e-4c8f-b6a7-8b9cadbecfd5";
const OWNER: &str = "0f1e2d3c-user";
const STATUS: &str = include_str!("../fixtures/get-status.json");
const LIST: &str = include_str!("../fixtures/list-jobs.json");
const COUNT: &str = include_str!("../fixtures/count.json");

/// What the batch simulator would have written.
const RESULT: &str = r#"{"weatherData":[{"station":"eu-west-1-001","temperature":11.5}]}"#;

type Service = StatusService<DynamoJobStore, ResultLinks, DynamoCounterStore>;

/// The moto, the service exactly as main.rs builds it, and the adapters the
/// job processor and the batch simulator write with.
struct Stack {
    moto: MotoServer,
    service: Service,
    jobs: DynamoJobStore,
    results: S3ResultStore,
    dynamodb: aws_sdk_dynamodb::Client,
}

async fn stack() -> Stack {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    create_jobs_table(&dynamodb, JOBS_TABLE).await;
    create_counters_table(&dynamodb, COUNTERS_TABLE).await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
    s3.create_bucket().bucket(RESULTS_BUCKET).send().await.unwrap();
    // As main.rs, with the stack's environment replaced by these values.
    let service = StatusService {
        jobs: DynamoJobStore::from_config(&config, JOBS_TABLE),
        results: ResultLinks::from_config(&config, LINK_ROLE).await,
        counters: DynamoCounterStore::from_config(&config, COUNTERS_TABLE),
        results_bucket: RESULTS_BUCKET.into(),
        link_ttl_seconds: LINK_TTL_SECONDS,
    };
    let jobs = DynamoJobStore::from_config(&config, JOBS_TABLE);
    let results = S3ResultStore::from_config(&config, RESULTS_BUCKET);
    Stack { moto, service, jobs, results, dynamodb }
}

fn submission(id: &str, owner: &str, submitted_at: Timestamp) -> Submission {
    Submission {
        id: JobId::parse(id).unwrap(),
        payload: r#"{"region": "eu-west-1"}"#.into(),
        submitted_at,
        owner: Some(owner.into()),
        callback: None,
    }
}

/// Records a job, writes its result and marks it complete, as the job
/// processor and the batch simulator do; returns the record's expiry.
async fn complete_job(stack: &Stack, sub: &Submission) -> Timestamp {
    let jobs = &stack.jobs;
    assert_eq!(jobs.record_attempt(sub, Timestamp::now()).await.unwrap(), Attempt::Started { number: 1 });
    let started = Timestamp::now();
    let location = stack.results.put_result(&sub.id.result_key(), RESULT.as_bytes().to_vec()).await.unwrap();
    let expires_at = started.plus_days(30);
    jobs.complete_job(&sub.id, &location, Timestamp::now(), expires_at).await.unwrap();
    expires_at
}

async fn record_job(stack: &Stack, sub: &Submission) {
    stack.jobs.record_attempt(sub, Timestamp::now()).await.unwrap();
}

fn request(fixture: &str) -> ApiGatewayProxyRequest {
    serde_json::from_str(fixture).unwrap()
}

/// The fixture's status request for `id`, by `caller`.
fn status_request(id: &str, caller: &str) -> ApiGatewayProxyRequest {
    let mut r = request(STATUS);
    r.path_parameters.insert(handler::JOB_ID_PARAMETER.into(), id.into());
    r.path = Some(format!("/job-status/{id}"));
    r.request_context.authorizer.fields.insert("sub".into(), json!(caller));
    r.request_context.authorizer.fields.insert("principalId".into(), json!(caller));
    r
}

async fn call(service: &Service, request: ApiGatewayProxyRequest) -> (i64, Value) {
    let response = handler::handle(service, LambdaEvent::new(request, Context::default())).await.unwrap();
    assert_eq!(response.headers["content-type"], "application/json");
    let body = match response.body {
        Some(Body::Text(t)) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    (response.status_code, body)
}

#[tokio::test]
async fn a_complete_job_is_served_with_a_link_that_downloads_its_result() {
    let stack = stack().await;
    let sub = submission(ID, OWNER, Timestamp(1_795_000_000_000));
    let expires_at = complete_job(&stack, &sub).await;

    let (status, body) = call(&stack.service, request(STATUS)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobId"], ID);
    assert_eq!(body["jobRequestId"], ID);
    assert_eq!(body["jobStatus"], "complete");
    assert_eq!(body["attempts"], 1);
    assert_eq!(body["submittedAt"], "2026-11-18T11:06:40.000Z");
    assert!(body["completedAt"].is_string(), "{body}");
    assert_eq!(body["resultExpiresAt"], Timestamp::from_epoch_seconds(expires_at.epoch_seconds()).to_rfc3339());
    let link = body["jobProcessedPayloadLink"].as_str().expect("a link").to_owned();
    assert_eq!(body["jobProcessedPayload"], link.as_str());
    // Presigned for the bucket and key recorded on the job, by the emulator.
    let expected_path = format!("{}/{RESULTS_BUCKET}/results/{ID}.json?", stack.moto.endpoint());
    assert!(link.starts_with(&expected_path), "{link}");
    assert!(link.contains(&format!("X-Amz-Expires={LINK_TTL_SECONDS}")), "{link}");
    // Signed with a session of the link role (its token in the link), not the function's own credentials.
    assert!(link.contains("X-Amz-Security-Token="), "{link}");
    assert!(!link.contains("X-Amz-Credential=test%2F"), "not the function's own key: {link}");
    let stated = body["jobProcessedPayloadExpiresAt"].as_str().unwrap();
    let stated = Timestamp::parse_rfc3339(stated).unwrap();
    let until = stated.millis().saturating_sub(Timestamp::now().millis()) / 1000;
    assert!((LINK_TTL_SECONDS - 5..=LINK_TTL_SECONDS).contains(&until), "{stated:?}");

    // What a client does with it.
    let (status, downloaded) = http_get(&link);
    assert_eq!((status, downloaded.as_str()), (200, RESULT));
}

#[tokio::test]
async fn unknown_ids_and_other_users_jobs_are_404() {
    let stack = stack().await;
    complete_job(&stack, &submission(ID, OWNER, Timestamp(1_795_000_000_000))).await;
    let theirs = "6c2ae28e-d27f-4d9a-87b8-9c0dbecf0ae6";
    complete_job(&stack, &submission(theirs, "someone-else", Timestamp(1_795_000_001_000))).await;

    let unknown = "7d3bf39f-e38a-4eab-98c9-ad1ecfd01bf7";
    let (status, body) = call(&stack.service, status_request(unknown, OWNER)).await;
    assert_eq!(status, 404);
    assert_eq!(body["Error Message"], format!("No Job data found for Job Id : {unknown}"));

    // Someone else's job, and this user's job asked for by someone else,
    // look exactly like unknown ones.
    for (id, caller) in [(theirs, OWNER), (ID, "someone-else")] {
        let (status, body) = call(&stack.service, status_request(id, caller)).await;
        assert_eq!(status, 404, "{id} by {caller}: {body}");
        assert_eq!(body["Error Message"], format!("No Job data found for Job Id : {id}"));
        assert!(body.get("jobStatus").is_none());
    }
    // The owner still sees it.
    assert_eq!(call(&stack.service, status_request(theirs, "someone-else")).await.0, 200);
}

#[tokio::test]
async fn the_callers_jobs_are_listed_newest_first_page_by_page() {
    let stack = stack().await;
    let ids = [ID, "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3", "1b2c3d4e-5f6a-4b7c-9d8e-9fa0b1c2d3e4"];
    // Submitted one second apart: the first is the oldest.
    complete_job(&stack, &submission(ids[0], OWNER, Timestamp(1_795_000_000_000))).await;
    record_job(&stack, &submission(ids[1], OWNER, Timestamp(1_795_000_001_000))).await;
    complete_job(&stack, &submission(ids[2], OWNER, Timestamp(1_795_000_002_000))).await;
    complete_job(
        &stack,
        &submission("2c3d4e5f-6a7b-4c8d-8e9f-a0b1c2d3e4f5", "someone-else", Timestamp(1_795_000_003_000)),
    )
    .await;

    let listed = |body: &Value| -> Vec<(String, String)> {
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| (j["jobId"].as_str().unwrap().to_owned(), j["jobStatus"].as_str().unwrap().to_owned()))
            .collect()
    };
    // The fixture asks for two.
    let (status, first) = call(&stack.service, request(LIST)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(listed(&first), [(ids[2].into(), "complete".into()), (ids[1].into(), "Submitted".into())]);
    let token = first["nextToken"].as_str().expect("a second page");

    let next = LIST.replace(r#"{ "limit": "2" }"#, &format!(r#"{{ "limit": "2", "nextToken": "{token}" }}"#));
    let (status, second) = call(&stack.service, request(&next)).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(listed(&second), [(ids[0].into(), "complete".into())]);
    assert!(second.get("nextToken").is_none(), "{second}");

    // Somebody with no jobs.
    let mut stranger = request(LIST);
    stranger.request_context.authorizer.fields.insert("sub".into(), json!("nobody"));
    assert_eq!(call(&stack.service, stranger).await, (200, json!({"jobs": []})));
}

#[tokio::test]
async fn count_reads_the_counters_the_object_counter_keeps() {
    let stack = stack().await;
    let (status, body) = call(&stack.service, request(COUNT)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"bucket": RESULTS_BUCKET, "total": {"created": 0, "removed": 0, "current": 0, "bytes": 0}, "prefixes": {}})
    );

    // The result object's creation, counted as the object counter counts it,
    // and an object elsewhere in the bucket; another bucket's never shows.
    let writer = DynamoCounterStore::new(stack.dynamodb.clone(), COUNTERS_TABLE);
    let now = Timestamp(1_795_000_000_000);
    for (bucket, key, size, sequencer) in [
        (RESULTS_BUCKET, format!("results/{ID}.json"), RESULT.len() as u64, "0055AED6DCD90281E5"),
        (RESULTS_BUCKET, "top.json".to_owned(), 7, "0055AED6DCD90281E6"),
        ("another-bucket", "results/x.json".to_owned(), 100, "0055AED6DCD90281E7"),
    ] {
        let event = ObjectEvent {
            bucket: bucket.into(),
            key,
            change: Change::Created { size },
            sequencer: Sequencer::parse(sequencer).unwrap(),
            event_name: "ObjectCreated:Put".into(),
        };
        assert_eq!(writer.count(&event, now).await.unwrap(), Applied::Counted { newest: true });
    }

    let (status, body) = call(&stack.service, request(COUNT)).await;
    assert_eq!(status, 200, "{body}");
    let at = now.to_rfc3339();
    let size = RESULT.len() as i64;
    assert_eq!(
        body,
        json!({
            "bucket": RESULTS_BUCKET,
            "total": {"created": 2, "removed": 0, "current": 2, "bytes": size + 7, "updatedAt": at},
            "prefixes": {"results/": {"created": 1, "removed": 0, "current": 1, "bytes": size, "updatedAt": at}},
        })
    );
}
