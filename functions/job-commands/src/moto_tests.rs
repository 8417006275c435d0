//! The commands against moto: the real DynamoDB tables, SQS queue and
//! EventBridge bus, the service built as main.rs builds it, and a
//! subscriber's rule.

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::ApiGatewayProxyRequest;
use jobs_aws::{DynamoIdempotencyKeys, DynamoJobStore, Emf, EventBridgeJobEnds, SqsJobQueue};
use jobs_core::job_end::SOURCE;
use jobs_core::ports::{CompleteJob, GetJob, RecordAttempt};
use jobs_core::webhook::Destinations;
use jobs_core::{JobId, JobStatus, ResultLocation, Submission, Timestamp};
use lambda_runtime::{Context, LambdaEvent};
use moto_harness::{JobEventsSubscriber, MotoServer, create_idempotency_table, create_jobs_table};
use serde_json::{Value, json};

use crate::handler::{self, CommandService};
use crate::submit::SubmitSettings;

const JOBS_TABLE: &str = "jobs";
const EVENTS_BUS: &str = "jobs-events";
const KEYS_TABLE: &str = "jobs-idempotency-keys";
const SUBMIT: &str = include_str!("../fixtures/submit-job.json");
/// The fixture's job and caller.
const ID: &str = "5b1fd17d-c16e-4c8f-b6a7-8b9cadbecfd5";
const OWNER: &str = "0f1e2d3c-user";
const CANCEL: &str = include_str!("../fixtures/cancel-job.json");

struct Stack {
    _moto: MotoServer,
    service: CommandService<DynamoJobStore, EventBridgeJobEnds, DynamoIdempotencyKeys, SqsJobQueue>,
    jobs: DynamoJobStore,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    subscriber: JobEventsSubscriber,
}

async fn stack() -> Stack {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    create_jobs_table(&dynamodb, JOBS_TABLE).await;
    create_idempotency_table(&dynamodb, KEYS_TABLE).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = sqs.create_queue().queue_name("jobs").send().await.unwrap().queue_url.unwrap();
    let subscriber = JobEventsSubscriber::start(&config, EVENTS_BUS, SOURCE).await;
    // As main.rs, with the stack's environment replaced by these values.
    let service = CommandService {
        jobs: DynamoJobStore::from_config(&config, JOBS_TABLE),
        keys: DynamoIdempotencyKeys::from_config(&config, KEYS_TABLE),
        queue: SqsJobQueue::from_config(&config, &queue_url),
        submits: SubmitSettings { destinations: Destinations::PublicHttps, max_message_bytes: 262_144 },
        job_ends: EventBridgeJobEnds::from_config(&config, EVENTS_BUS),
        retention_days: 30,
        metrics: Emf::new("test"),
    };
    let jobs = DynamoJobStore::from_config(&config, JOBS_TABLE);
    Stack { _moto: moto, service, jobs, sqs, queue_url, subscriber }
}

impl Stack {
    /// Records a delivery of the fixture's job, as the job processor does.
    async fn record(&self, id: &str) {
        let submission = Submission {
            id: JobId::parse(id).unwrap(),
            payload: "{}".into(),
            submitted_at: Timestamp(1_795_000_000_000),
            owner: Some(OWNER.into()),
            callback: None,
        };
        self.jobs.record_attempt(&submission, Timestamp(1_795_000_000_500)).await.unwrap();
    }

    async fn submit(&self, key: &str, body: &str) -> (i64, Value) {
        let mut request: Value = serde_json::from_str(SUBMIT).unwrap();
        request["headers"]["Idempotency-Key"] = json!(key);
        request["headers"]["Job-Callback-Url"] = json!("https://hooks.example.com/jobs");
        request["body"] = json!(body);
        let request: ApiGatewayProxyRequest = serde_json::from_value(request).unwrap();
        let response = handler::handle(&self.service, LambdaEvent::new(request, Context::default())).await.unwrap();
        let Some(Body::Text(text)) = response.body else { panic!("no body") };
        (response.status_code, serde_json::from_str(&text).unwrap())
    }

    /// Every message in the queue: (body, the jobId, owner and callbackUrl attributes).
    async fn messages(&self) -> Vec<(String, [Option<String>; 3])> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let attributes = m.message_attributes.unwrap_or_default();
                let text = |name: &str| attributes.get(name).and_then(|a| a.string_value.clone());
                (m.body.unwrap_or_default(), [text("jobId"), text("owner"), text("callbackUrl")])
            })
            .collect()
    }

    async fn cancel(&self, id: &str) -> (i64, Value) {
        let mut request: Value = serde_json::from_str(CANCEL).unwrap();
        request["pathParameters"]["jobId"] = json!(id);
        let request: ApiGatewayProxyRequest = serde_json::from_value(request).unwrap();
        let response = handler::handle(&self.service, LambdaEvent::new(request, Context::default())).await.unwrap();
        let Some(Body::Text(text)) = response.body else { panic!("no body") };
        (response.status_code, serde_json::from_str(&text).unwrap())
    }
}

#[tokio::test]
async fn a_cancel_is_recorded_published_once_and_an_ended_job_is_refused() {
    let stack = stack().await;
    assert_eq!(stack.cancel(ID).await.0, 404, "not recorded yet");
    stack.record(ID).await;

    let (status, body) = stack.cancel(ID).await;
    assert_eq!((status, body["jobStatus"].as_str()), (200, Some("cancelled")), "{body}");
    let record = stack.jobs.get_job(&JobId::parse(ID).unwrap()).await.unwrap().unwrap().readable().unwrap();
    assert_eq!(record.status, JobStatus::Cancelled);
    assert_eq!(body["cancelledAt"].as_str(), record.cancelled_at.map(Timestamp::to_rfc3339).as_deref());
    assert!(record.expires_at.is_some(), "a cancelled record expires as an ended one does");

    assert_eq!(stack.cancel(ID).await, (status, body.clone()), "a repeated cancel answers the same");
    let events = stack.subscriber.received().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0]["source"].as_str(), events[0]["detail-type"].as_str()),
        (Some(SOURCE), Some("Job Cancelled"))
    );
    assert_eq!(events[0]["detail"]["cancelledAt"], body["cancelledAt"]);
    assert_eq!(events[0]["detail"]["owner"], json!(OWNER));

    // A complete job is not cancelled, and nothing is published.
    let done = "6c2ae28e-d27f-4d90-87b8-9cadbecfd0e6";
    stack.record(done).await;
    let id = JobId::parse(done).unwrap();
    let location = ResultLocation { bucket: "results".into(), key: id.result_key() };
    stack.jobs.complete_job(&id, &location, Timestamp(1_795_000_001_000), Timestamp(1_800_000_000_000)).await.unwrap();
    let (status, body) = stack.cancel(done).await;
    assert_eq!((status, body["jobStatus"].as_str()), (409, Some("complete")), "{body}");
    assert!(stack.subscriber.received().await.is_empty());
}

#[tokio::test]
async fn a_submit_queues_the_job_with_its_attributes_records_it_and_a_replay_queues_nothing() {
    let stack = stack().await;
    let (status, first) = stack.submit("order-42", r#"{"region": "eu-west-1"}"#).await;
    assert_eq!(status, 200, "{first}");
    let id = first["jobId"].as_str().unwrap().to_owned();
    // Recorded before the answer: it can be cancelled before any delivery.
    let record = stack.jobs.get_job(&JobId::parse(&id).unwrap()).await.unwrap().unwrap().readable().unwrap();
    assert_eq!((record.status, record.attempts, record.owner.as_deref()), (JobStatus::Submitted, 0, Some(OWNER)));
    assert_eq!(record.callback.map(|c| c.url), Some("https://hooks.example.com/jobs".into()));

    let (status, again) = stack.submit("order-42", r#"{"region": "eu-west-1"}"#).await;
    assert_eq!((status, &again["jobId"]), (200, &first["jobId"]));
    let (status, other) = stack.submit("order-42", r#"{"region": "us-east-1"}"#).await;
    assert_eq!(status, 409, "{other}");
    let (status, _) = stack.submit("order-43", r#"{"region": "us-east-1"}"#).await;
    assert_eq!(status, 200);

    let messages = stack.messages().await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    let ours = messages.iter().find(|m| m.1[0].as_deref() == Some(id.as_str())).expect("the first job's message");
    assert_eq!(ours.0, r#"{"region": "eu-west-1"}"#);
    assert_eq!(ours.1[1..], [Some(OWNER.to_owned()), Some("https://hooks.example.com/jobs".to_owned())]);

    assert_eq!(stack.cancel(&id).await.1["jobStatus"], "cancelled", "cancelled before its first delivery");
}
