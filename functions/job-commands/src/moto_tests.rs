//! The cancel command against moto: the real DynamoDB store and EventBridge
//! bus, the service built as main.rs builds it, and a subscriber's rule.

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::ApiGatewayProxyRequest;
use jobs_aws::{DynamoJobStore, Emf, EventBridgeJobEnds};
use jobs_core::job_end::SOURCE;
use jobs_core::ports::{CompleteJob, GetJob, RecordAttempt};
use jobs_core::{JobId, JobStatus, ResultLocation, Submission, Timestamp};
use lambda_runtime::{Context, LambdaEvent};
use moto_harness::{JobEventsSubscriber, MotoServer, create_jobs_table};
use serde_json::{Value, json};

use crate::handler::{self, CommandService};

const JOBS_TABLE: &str = "jobs";
const EVENTS_BUS: &str = "jobs-events";
/// The fixture's job and caller.
const ID: &str = "5b1fd17d-c16e-4c8f-b6a7-8b9cadbecfd5";
const OWNER: &str = "0f1e2d3c-user";
const CANCEL: &str = include_str!("../fixtures/cancel-job.json");

struct Stack {
    _moto: MotoServer,
    service: CommandService<DynamoJobStore, EventBridgeJobEnds>,
    jobs: DynamoJobStore,
    subscriber: JobEventsSubscriber,
}

async fn stack() -> Stack {
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    create_jobs_table(&aws_sdk_dynamodb::Client::new(&config), JOBS_TABLE).await;
    let subscriber = JobEventsSubscriber::start(&config, EVENTS_BUS, SOURCE).await;
    // As main.rs, with the stack's environment replaced by these values.
    let service = CommandService {
        jobs: DynamoJobStore::from_config(&config, JOBS_TABLE),
        job_ends: EventBridgeJobEnds::from_config(&config, EVENTS_BUS),
        retention_days: 30,
        metrics: Emf::new("test"),
    };
    let jobs = DynamoJobStore::from_config(&config, JOBS_TABLE);
    Stack { _moto: moto, service, jobs, subscriber }
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
