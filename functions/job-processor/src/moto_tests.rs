//! The handler against moto server with the real SDK clients (endpoint
//! override): the processor is built as main.rs builds it, from the SDK
//! config of a moto started for the test (and stopped when it drops), with
//! the real DynamoJobStore and SqsRedelivery.
//!
//! The simulator port is not jobs-aws's LambdaSimulator: moto runs Lambda
//! functions only in Docker, so nothing local could answer the invoke.
//! [`InProcessSimulator`] does instead what the batch-simulator function does
//! (jobs-core's weather generation, written through the real S3ResultStore)
//! behind the same JSON request and response the Lambda invoke carries.
//!
//! The event source mapping's part is done by hand against the real queue:
//! each fixture record is sent to the queue and received from it, and is
//! handed to the handler with the receipt handle and receive count SQS gave
//! it (its messageId, the job id, and everything else stay the fixture's).
//! So the retry delays the handler sets act on real messages.
//!
//! Jobs' ends go to a real EventBridge bus in moto through the real
//! EventBridgeJobEnds, with a rule (source `job-ingestion`) that forwards
//! them to a queue the tests read: what a subscriber on AWS would receive.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use jobs_aws::{DynamoJobStore, Emf, EventBridgeJobEnds, LazyResultRemover, S3ResultStore, SqsRedelivery};
use jobs_core::memory::Simulator;
use jobs_core::ports::{RunSimulation, SimulationRequest, SimulationResponse, StoreError};
use jobs_core::processing::RetryPolicy;
use jobs_core::weather::WeatherReport;
use jobs_core::{ResultLocation, Timestamp};
use lambda_runtime::{Context, LambdaEvent};
use moto_harness::{JobEventsSubscriber, MotoServer, create_jobs_table};

use crate::handler::{BACKOFF_CAP_SECONDS, Processor, process_batch};

const JOBS_TABLE: &str = "jobs";
const RESULTS_BUCKET: &str = "results-bucket";
const QUEUE: &str = "jobs-queue";
const DLQ: &str = "jobs-dlq";
const EVENTS_BUS: &str = "jobs-events";
/// As the stack configures the queue: three attempts, then the bookkeeping receive.
const MAX_RECEIVE_COUNT: u32 = 4;

const GOOD: &str = "0c6a8c2e-7c1f-4d3a-a1b2-3c4d5e6f7a80";
const NOT_AN_OBJECT: &str = "1d7b9d3f-8d2a-4e4b-b2c3-4d5e6f7a8b91";
const FAILS_ONCE: &str = "2e8cae4a-9e3b-4f5c-83d4-5e6f7a8b9ca2";
const ALWAYS_FAILS: &str = "3f9dbf5b-af4c-4a6d-94e5-6f7a8b9cadb3";
const REPLAYED: &str = "4a0ec06c-b05d-4b7e-a5f6-7a8b9cadbec4";
const MIXED: &str = include_str!("../fixtures/mixed-batch.json");

/// The batch simulator, in process (see the module's comment): the request
/// and the answer cross the JSON the Lambda invoke would carry.
struct InProcessSimulator(Simulator<S3ResultStore>);

impl RunSimulation for InProcessSimulator {
    async fn run_simulation(&self, request: &SimulationRequest) -> Result<ResultLocation, StoreError> {
        let wire = |e: serde_json::Error| StoreError::new(format!("the simulator's JSON: {e}"));
        let payload = serde_json::to_vec(request).map_err(wire)?;
        let received: SimulationRequest = serde_json::from_slice(&payload).map_err(wire)?;
        // What batch-simulator's handler does: simulate, answer the location.
        let location = self.0.run_simulation(&received).await?;
        let answer =
            serde_json::to_vec(&SimulationResponse::complete(&received.job_request_id, &location)).map_err(wire)?;
        Ok(serde_json::from_slice::<SimulationResponse>(&answer).map_err(wire)?.location())
    }
}

type TestProcessor =
    Processor<DynamoJobStore, InProcessSimulator, SqsRedelivery, EventBridgeJobEnds, LazyResultRemover>;

struct Stack {
    _moto: MotoServer,
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: String,
    job_events: JobEventsSubscriber,
    processor: TestProcessor,
}

/// The tables, bucket and queues, and the processor as main.rs builds it.
/// The back-off base is 0 seconds (RETRY_BACKOFF_BASE_SECONDS=0): a retried
/// message is visible again at once, so a receive shows that the handler's
/// delay reached SQS (without it the message would stay invisible for the
/// 600 s of the receive) without the test waiting for a clock.
async fn stack() -> Stack {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    create_jobs_table(&dynamodb, JOBS_TABLE).await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
    s3.create_bucket().bucket(RESULTS_BUCKET).send().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dlq_url = sqs.create_queue().queue_name(DLQ).send().await.unwrap().queue_url.unwrap();
    let dlq_arn = queue_arn(&sqs, &dlq_url).await;
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT.to_string()});
    let queue_url = sqs
        .create_queue()
        .queue_name(QUEUE)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    let job_events = JobEventsSubscriber::start(&config, EVENTS_BUS, jobs_core::job_end::SOURCE).await;

    // As main.rs, with the stack's environment replaced by these values.
    let processor = Processor {
        store: DynamoJobStore::from_config(&config, JOBS_TABLE),
        simulator: InProcessSimulator(Simulator::new(S3ResultStore::from_config(&config, RESULTS_BUCKET))),
        results: LazyResultRemover::new(&config, RESULTS_BUCKET),
        redelivery: SqsRedelivery::from_config(&config, &queue_url),
        job_ends: EventBridgeJobEnds::from_config(&config, EVENTS_BUS),
        policy: RetryPolicy {
            max_receive_count: MAX_RECEIVE_COUNT,
            backoff_base_seconds: 0,
            backoff_cap_seconds: BACKOFF_CAP_SECONDS,
            result_retention_days: 30,
        },
        destinations: jobs_core::webhook::Destinations::PublicHttps,
        metrics: Emf::new("test"),
    };
    Stack { _moto: moto, dynamodb, s3, sqs, queue_url, dlq_url, job_events, processor }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    let attributes = sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::QueueArn).send();
    attributes.await.unwrap().attributes.unwrap().remove(&QueueAttributeName::QueueArn).unwrap()
}

/// One message received from the queue.
#[derive(Clone)]
struct Received {
    body: String,
    receipt: String,
    receive_count: String,
}

impl Stack {
    async fn send(&self, body: &str) {
        self.sqs.send_message().queue_url(&self.queue_url).message_body(body).send().await.unwrap();
    }

    /// Receives what is visible, hiding it for 600 s.
    async fn receive(&self) -> Vec<Received> {
        receive_from(&self.sqs, &self.queue_url).await
    }

    /// Sends each record's body to the queue and receives it, and returns
    /// the fixture's event with the receipt handles and receive counts SQS
    /// gave the messages.
    async fn deliver(&self, fixture: &str) -> SqsEvent {
        let mut event: SqsEvent = serde_json::from_str(fixture).unwrap();
        for record in &mut event.records {
            self.send(record.body.as_deref().unwrap()).await;
            let [received] = <[Received; 1]>::try_from(self.receive().await).ok().expect("one message");
            carry(record, received);
        }
        event
    }

    async fn process(&self, event: SqsEvent) -> Vec<String> {
        failures(&process_batch(&self.processor, LambdaEvent::new(event, Context::default())).await.unwrap())
    }

    /// The job's item as stored, with consistent reads.
    async fn item(&self, id: &str) -> HashMap<String, AttributeValue> {
        self.dynamodb
            .get_item()
            .table_name(JOBS_TABLE)
            .key("jobRequestId", AttributeValue::S(id.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_else(|| panic!("job {id} is not in the table"))
    }

    /// The job events a subscriber received so far, as (detail-type, detail).
    async fn job_events(&self) -> Vec<(String, serde_json::Value)> {
        let mut events = Vec::new();
        for event in self.job_events.received().await {
            assert_eq!(event["source"], "job-ingestion", "{event}");
            events.push((event["detail-type"].as_str().unwrap().to_owned(), event["detail"].clone()));
        }
        events.sort_by_key(|e| (e.1["jobId"].as_str().map(str::to_owned), e.1["attempts"].as_u64()));
        events
    }

    async fn result_keys(&self) -> Vec<String> {
        let listed = self.s3.list_objects_v2().bucket(RESULTS_BUCKET).send().await.unwrap();
        listed.contents().iter().map(|o| o.key().unwrap().to_owned()).collect()
    }

    /// The result object's body and ETag.
    async fn result(&self, id: &str) -> (Vec<u8>, String) {
        let object =
            self.s3.get_object().bucket(RESULTS_BUCKET).key(format!("results/{id}.json")).send().await.unwrap();
        let etag = object.e_tag().unwrap().to_owned();
        assert_eq!(object.content_type(), Some("application/json"));
        (object.body.collect().await.unwrap().to_vec(), etag)
    }
}

async fn receive_from(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Received> {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(600)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    out.messages()
        .iter()
        .map(|m| Received {
            body: m.body().unwrap().to_owned(),
            receipt: m.receipt_handle().unwrap().to_owned(),
            receive_count: m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .expect("ApproximateReceiveCount")
                .clone(),
        })
        .collect()
}

fn carry(record: &mut aws_lambda_events::event::sqs::SqsMessage, received: Received) {
    assert_eq!(record.body.as_deref(), Some(received.body.as_str()));
    record.receipt_handle = Some(received.receipt);
    record.attributes.insert("ApproximateReceiveCount".into(), received.receive_count);
}

fn failures(response: &SqsBatchResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name).map(|v| v.as_s().unwrap_or_else(|_| panic!("{name} is not a string: {v:?}")).as_str())
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name).map(|v| v.as_n().unwrap_or_else(|_| panic!("{name} is not a number: {v:?}")).parse().unwrap())
}

#[tokio::test]
async fn a_mixed_batch_reports_only_the_message_that_must_be_retried() {
    let stack = stack().await;
    let event = stack.deliver(MIXED).await;
    let before = Timestamp::now();
    let failed = stack.process(event).await;
    let after = Timestamp::now();
    assert_eq!(failed, [FAILS_ONCE]);

    let good = stack.item(GOOD).await;
    assert_eq!(text(&good, "jobStatus"), Some("complete"));
    assert_eq!(number(&good, "attempts"), Some(1));
    assert_eq!(text(&good, "jobRequestPayload"), Some(r#"{"region": "eu-west-1"}"#));
    assert_eq!(text(&good, "jobPayloadLocation"), Some(RESULTS_BUCKET));
    assert_eq!(text(&good, "jobPayloadKey"), Some(format!("results/{GOOD}.json").as_str()));
    assert_eq!(text(&good, "submittedAt"), Some("2026-11-18T11:06:40.000Z"));
    assert!(text(&good, "completedAt").is_some());
    assert_eq!((good.get("failureReason"), good.get("lastError")), (None, None));
    // The record expires with its result, a retention period after it was made.
    let expires = number(&good, "expiresAt").unwrap();
    let (earliest, latest) = (before.plus_days(30).epoch_seconds(), after.plus_days(30).epoch_seconds());
    assert!((earliest..=latest).contains(&expires), "{expires} not in {earliest}..={latest}");

    // A body that is not a JSON object failed on its first attempt, for good.
    let not_an_object = stack.item(NOT_AN_OBJECT).await;
    assert_eq!(text(&not_an_object, "jobStatus"), Some("failed"));
    assert_eq!(number(&not_an_object, "attempts"), Some(1));
    let reason = text(&not_an_object, "failureReason").unwrap();
    assert!(reason.contains("must be a JSON object, not an array"), "{reason}");
    assert!(text(&not_an_object, "failedAt").is_some());

    let retried = stack.item(FAILS_ONCE).await;
    assert_eq!(text(&retried, "jobStatus"), Some("Submitted"));
    assert_eq!(number(&retried, "attempts"), Some(1));
    let error = text(&retried, "lastError").unwrap();
    assert!(error.contains("Attempt 1 failed") && error.contains("simulated failure"), "{error}");
    assert_eq!((retried.get("failureReason"), retried.get("expiresAt")), (None, None));

    // Exactly one result, the good job's, and it is the simulator's report.
    assert_eq!(stack.result_keys().await, [format!("results/{GOOD}.json")]);
    let report: WeatherReport = serde_json::from_slice(&stack.result(GOOD).await.0).unwrap();
    assert_eq!(report.weather_data.len(), 99);

    // Only the retried message was made visible again (after the 0 s
    // back-off); the others stay hidden until the queue deletes them.
    let again = stack.receive().await;
    assert_eq!(again.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), [r#"{"simulateFailure": 1}"#]);
    assert_eq!(again[0].receive_count, "2");

    // A subscriber heard of the two jobs that ended, and not of the retried one.
    let events = stack.job_events().await;
    assert_eq!(events.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["Job Completed", "Job Failed"]);
    let (completed, failed) = (&events[0].1, &events[1].1);
    assert_eq!(completed["jobId"], GOOD);
    assert_eq!(completed["jobStatus"], "complete");
    assert_eq!(
        completed["result"],
        serde_json::json!({"bucket": RESULTS_BUCKET, "key": format!("results/{GOOD}.json")})
    );
    assert_eq!(completed["completedAt"].as_str(), text(&good, "completedAt"));
    assert_eq!(failed["jobId"], NOT_AN_OBJECT);
    assert_eq!(failed["failureReason"].as_str(), Some(reason));
}

#[tokio::test]
async fn redelivering_the_same_batch_changes_nothing_that_is_done() {
    let stack = stack().await;
    let mut event = stack.deliver(MIXED).await;
    assert_eq!(stack.process(event.clone()).await, [FAILS_ONCE]);
    let good = stack.item(GOOD).await;
    let good_result = stack.result(GOOD).await;
    let not_an_object = stack.item(NOT_AN_OBJECT).await;

    // The whole batch again, as at-least-once delivery may hand it out: the
    // retried message with its new receipt and count, the others as before
    // (as if their deletion had been lost) on their second receive.
    let [retry] = <[Received; 1]>::try_from(stack.receive().await).ok().expect("the retried message");
    for record in &mut event.records {
        if record.message_id.as_deref() == Some(FAILS_ONCE) {
            carry(record, retry.clone());
        } else {
            record.attributes.insert("ApproximateReceiveCount".into(), "2".into());
        }
    }
    assert_eq!(stack.process(event).await, Vec::<String>::new());

    assert_eq!(stack.item(GOOD).await, good, "a complete job is left exactly as it was");
    assert_eq!(stack.result(GOOD).await, good_result, "and its result is not written again");
    let still_failed = stack.item(NOT_AN_OBJECT).await;
    assert_eq!(text(&still_failed, "jobStatus"), Some("failed"));
    assert_eq!(text(&still_failed, "failureReason"), text(&not_an_object, "failureReason"));

    let retried = stack.item(FAILS_ONCE).await;
    assert_eq!(text(&retried, "jobStatus"), Some("complete"));
    assert_eq!(number(&retried, "attempts"), Some(2));
    assert_eq!(retried.get("lastError"), None, "a complete job carries no stale error");
    let mut keys = stack.result_keys().await;
    keys.sort();
    assert_eq!(keys, [format!("results/{GOOD}.json"), format!("results/{FAILS_ONCE}.json")]);
    assert!(stack.receive().await.is_empty(), "nothing is made visible again");
    // One event per end: the redelivered complete job published nothing
    // again; the failed one, attempted again, ended again (attempt 2); the
    // retried job's completion was published.
    let ends: Vec<_> =
        stack.job_events().await.into_iter().map(|(t, d)| (t, d["jobId"].clone(), d["attempts"].clone())).collect();
    assert_eq!(
        ends,
        [
            ("Job Completed".to_owned(), GOOD.into(), 1.into()),
            ("Job Failed".to_owned(), NOT_AN_OBJECT.into(), 1.into()),
            ("Job Failed".to_owned(), NOT_AN_OBJECT.into(), 2.into()),
            ("Job Completed".to_owned(), FAILS_ONCE.into(), 2.into()),
        ]
    );
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_failed_at_once() {
    let stack = stack().await;
    let fixture: SqsEvent = serde_json::from_str(MIXED).unwrap();
    let template = fixture.records.into_iter().find(|r| r.message_id.as_deref() == Some(NOT_AN_OBJECT)).unwrap();
    for (n, (body, what)) in [
        ("[\"not\", \"an\", \"object\"]", "must be a JSON object, not an array"),
        ("\"text\"", "must be a JSON object, not a string"),
        ("42", "must be a JSON object, not a number"),
        ("null", "must be a JSON object, not null"),
        ("region=eu-west-1", "is not valid JSON"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("5b1fd17d-c16e-4c8f-b6a7-{n:012}");
        let mut record = template.clone();
        record.message_id = Some(id.clone());
        record.body = Some(body.to_owned());
        stack.send(body).await;
        let [received] = <[Received; 1]>::try_from(stack.receive().await).ok().expect("one message");
        carry(&mut record, received);
        let mut event = SqsEvent::default();
        event.records = vec![record];
        assert_eq!(stack.process(event).await, Vec::<String>::new(), "{body:?} is acknowledged: no retry");
        let item = stack.item(&id).await;
        assert_eq!(text(&item, "jobStatus"), Some("failed"), "{body:?}");
        assert_eq!(number(&item, "attempts"), Some(1), "{body:?}");
        let reason = text(&item, "failureReason").unwrap();
        assert!(reason.contains(what), "{body:?}: {reason}");
        assert_eq!(text(&item, "jobRequestPayload"), Some(body), "the raw body is kept");
    }
    assert!(stack.result_keys().await.is_empty());
    assert!(stack.receive().await.is_empty(), "no message was made visible for a retry");
}

#[tokio::test]
async fn a_job_that_always_fails_is_failed_and_its_message_goes_to_the_dlq() {
    let stack = stack().await;
    let fixture = include_str!("../fixtures/always-fails.json");
    let mut event = stack.deliver(fixture).await;
    // Three attempts, then the bookkeeping receive; each is reported failed,
    // and each time the message comes back at once with SQS's next count.
    for receive in 1..=MAX_RECEIVE_COUNT {
        assert_eq!(event.records[0].attributes["ApproximateReceiveCount"], receive.to_string());
        assert_eq!(stack.process(event.clone()).await, [ALWAYS_FAILS], "receive {receive}");
        let job = stack.item(ALWAYS_FAILS).await;
        let expected = if receive < MAX_RECEIVE_COUNT - 1 { "Submitted" } else { "failed" };
        assert_eq!(text(&job, "jobStatus"), Some(expected), "after receive {receive}");
        let received = stack.receive().await;
        if receive < MAX_RECEIVE_COUNT {
            let [again] = <[Received; 1]>::try_from(received).ok().expect("the message again");
            carry(&mut event.records[0], again);
        } else {
            assert!(received.is_empty(), "past maxReceiveCount the queue moves the message on");
        }
    }
    let job = stack.item(ALWAYS_FAILS).await;
    assert_eq!(number(&job, "attempts"), Some(3), "the bookkeeping receive runs nothing");
    let reason = text(&job, "failureReason").unwrap();
    assert!(reason.contains("Gave up after 3 deliveries") && reason.contains("simulated failure"), "{reason}");
    assert!(number(&job, "expiresAt").is_some());
    assert!(stack.result_keys().await.is_empty());
    let dead = receive_from(&stack.sqs, &stack.dlq_url).await;
    assert_eq!(dead.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), [r#"{"simulateFailure": "always"}"#]);
    // One "Job Failed" for the three attempts and the bookkeeping receive.
    let events = stack.job_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "Job Failed");
    assert_eq!(events[0].1["failureReason"].as_str(), Some(reason));
    assert_eq!(events[0].1["attempts"], 3);
}

#[tokio::test]
async fn a_replayed_message_keeps_its_job_id_and_owner() {
    let stack = stack().await;
    let failed = stack.process(stack.deliver(include_str!("../fixtures/replayed.json")).await).await;
    assert!(failed.is_empty(), "{failed:?}");
    let job = stack.item(REPLAYED).await;
    assert_eq!(text(&job, "jobStatus"), Some("complete"));
    assert_eq!(text(&job, "owner"), Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
    assert_eq!(stack.result_keys().await, [format!("results/{REPLAYED}.json")]);
    // Nothing is recorded under the replay's own MessageId.
    let stray = stack
        .dynamodb
        .get_item()
        .table_name(JOBS_TABLE)
        .key("jobRequestId", AttributeValue::S("99999999-0000-4000-8000-000000000000".into()))
        .send()
        .await
        .unwrap();
    assert!(stray.item.is_none());
}
