//! The API's commands: `POST /submit-job-request` (submit.rs) and
//! `POST /jobs/{jobId}/cancel`, each also below `/machine` for SigV4 clients.

use aws_lambda_events::event::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use jobs_aws::Emf;
use jobs_aws::api::{caller, resource, respond};
use jobs_aws::events::publish_accounted;
use jobs_aws::metrics::{Metric, Unit, name};
use jobs_core::job_end::JobEnd;
use jobs_core::ports::{CancelJob, Cancellation, PublishJobEnds};
use jobs_core::status::{already_ended_body, error_body, not_found_body, status_body};
use jobs_core::submission::{
    AcceptIdempotencyKey, ClaimIdempotencyKey, EnqueueJob, RecordSubmitted, ReleaseIdempotencyKey,
};
use jobs_core::{JobId, Timestamp};
use lambda_runtime::{Error, LambdaEvent};

use crate::submit::{SubmitSettings, Submits, submit_job};

/// The route's path parameter.
pub const JOB_ID_PARAMETER: &str = "jobId";
/// The API resource of the cancel command (the machine prefix removed).
pub const CANCEL_RESOURCE: &str = "/jobs/{jobId}/cancel";
/// The API resource of the submit command (the machine prefix removed).
pub const SUBMIT_RESOURCE: &str = "/submit-job-request";

pub struct CommandService<C, E, K, Q> {
    pub jobs: C,
    /// The idempotency keys table.
    pub keys: K,
    /// The jobs queue a submit sends to.
    pub queue: Q,
    pub submits: SubmitSettings,
    /// Where a cancel is published ("Job Cancelled", the job events bus).
    pub job_ends: E,
    /// How long a cancelled job's record is kept: `RESULT_RETENTION_DAYS`,
    /// as for a job that ended otherwise.
    pub retention_days: u32,
    pub metrics: Emf,
}

/// Dispatch on the API resource that invoked the function.
pub async fn handle<C, E, K, Q>(
    service: &CommandService<C, E, K, Q>,
    event: LambdaEvent<ApiGatewayProxyRequest>,
) -> Result<ApiGatewayProxyResponse, Error>
where
    C: CancelJob + RecordSubmitted,
    E: PublishJobEnds,
    K: ClaimIdempotencyKey + AcceptIdempotencyKey + ReleaseIdempotencyKey,
    Q: EnqueueJob,
{
    match resource(&event.payload) {
        Some(SUBMIT_RESOURCE) => {
            let submits =
                Submits { keys: &service.keys, queue: &service.queue, jobs: &service.jobs, settings: service.submits };
            Ok(submit_job(&submits, &event.payload).await)
        }
        Some(CANCEL_RESOURCE) => Ok(cancel(service, &event.payload).await),
        // Only the stack's routes invoke this function.
        other => {
            tracing::error!(resource = ?other, "invoked by a resource this function does not serve");
            Ok(respond(404, error_body("Not Found")))
        }
    }
}

/// `POST /jobs/{jobId}/cancel`: a job that has not ended becomes
/// `cancelled` (200, its status document; a repeated cancel answers the
/// same); a job that ended is 409; an unknown id, another caller's job and
/// an expired one are 404, as `GET /job-status` answers them.
async fn cancel<C: CancelJob, E: PublishJobEnds, K, Q>(
    service: &CommandService<C, E, K, Q>,
    event: &ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse {
    let raw = event.path_parameters.get(JOB_ID_PARAMETER).map(String::as_str).unwrap_or_default();
    let id = match JobId::parse(raw) {
        Ok(id) => id,
        Err(invalid) => return respond(400, error_body(invalid.to_string())),
    };
    // The authorizer always passes a caller; without one nobody owns anything.
    let Some(caller) = caller(event) else { return respond(404, not_found_body(&id)) };
    let now = Timestamp::now();
    match service.jobs.cancel_job(&id, caller, now, now.plus_days(service.retention_days)).await {
        Ok(Cancellation::Cancelled(job)) => {
            tracing::info!(job_id = %id, "job cancelled");
            let cancelled = Metric { name: name::JOBS_CANCELLED, unit: Unit::Count, value: 1.0 };
            service.metrics.emit(&[cancelled], &[("jobId", id.as_str())]);
            let end: Vec<JobEnd> = JobEnd::cancelled(&job).into_iter().collect();
            publish_accounted(&service.job_ends, &end, &service.metrics).await;
            respond(200, status_body(&job, None))
        }
        Ok(Cancellation::AlreadyCancelled(job)) => respond(200, status_body(&job, None)),
        Ok(Cancellation::Ended(job)) => respond(409, already_ended_body(&job)),
        Ok(Cancellation::NotFound) => respond(404, not_found_body(&id)),
        Err(e) => {
            tracing::error!(job_id = %id, error = e.detail(), "cancelling the job failed");
            respond(503, error_body("The job store is temporarily unavailable; retry in a few seconds."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobs_core::memory::{MemoryIdempotencyKeys, MemoryJobEnds, MemoryJobQueue, MemoryJobStore};
    use jobs_core::webhook::Destinations;
    use jobs_core::{JobRecord, JobStatus};
    use lambda_runtime::Context;
    use serde_json::{Value, json};

    const ID: &str = "5b1fd17d-c16e-4c8f-b6a7-8b9cadbecfd5";
    /// The caller of the fixture (`requestContext.authorizer.sub`).
    const OWNER: &str = "0f1e2d3c-user";
    const CANCEL: &str = include_str!("../fixtures/cancel-job.json");
    /// The same command signed with SigV4 by a role session (AWS_IAM).
    const MACHINE_CANCEL: &str = include_str!("../fixtures/machine-cancel-job.json");
    const MACHINE: &str = "arn:aws:sts::123456789012:assumed-role/jobs-dev-api-client/batch-importer";

    type Service = CommandService<MemoryJobStore, MemoryJobEnds, MemoryIdempotencyKeys, MemoryJobQueue>;

    fn service() -> Service {
        CommandService {
            jobs: MemoryJobStore::default(),
            keys: MemoryIdempotencyKeys::default(),
            queue: MemoryJobQueue::default(),
            submits: SubmitSettings { destinations: Destinations::PublicHttps, max_message_bytes: 262_144 },
            job_ends: MemoryJobEnds::default(),
            retention_days: 30,
            metrics: Emf::new("JobIngestion/test"),
        }
    }

    fn record(owner: &str, status: JobStatus) -> JobRecord {
        JobRecord {
            id: JobId::parse(ID).unwrap(),
            status,
            payload: "{}".into(),
            submitted_at: Timestamp(1_795_000_000_000),
            updated_at: Timestamp(1_795_000_001_000),
            attempts: 1,
            last_error: None,
            failure_reason: (status == JobStatus::Failed).then(|| "Gave up after 3 deliveries".into()),
            result: None,
            completed_at: (status == JobStatus::Complete).then_some(Timestamp(1_795_000_002_000)),
            failed_at: (status == JobStatus::Failed).then_some(Timestamp(1_795_000_002_000)),
            cancelled_at: None,
            owner: Some(owner.into()),
            expires_at: None,
            callback: None,
        }
    }

    async fn call(service: &Service, fixture: &str) -> (i64, Value) {
        let request: ApiGatewayProxyRequest = serde_json::from_str(fixture).unwrap();
        let response = handle(service, LambdaEvent::new(request, Context::default())).await.unwrap();
        assert_eq!(response.headers["content-type"], "application/json");
        let body = match response.body {
            Some(aws_lambda_events::encodings::Body::Text(text)) => serde_json::from_str(&text).unwrap(),
            other => panic!("{other:?}"),
        };
        (response.status_code, body)
    }

    fn with_job_id(fixture: &str, id: &str) -> String {
        let mut request: Value = serde_json::from_str(fixture).unwrap();
        request["pathParameters"]["jobId"] = json!(id);
        request.to_string()
    }

    #[tokio::test]
    async fn a_job_that_has_not_ended_is_cancelled_once_and_published_once() {
        let service = service();
        service.jobs.insert(record(OWNER, JobStatus::Submitted));
        let (status, body) = call(&service, CANCEL).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["jobId"].as_str(), body["jobStatus"].as_str()), (Some(ID), Some("cancelled")));
        let cancelled_at = body["cancelledAt"].as_str().expect("cancelledAt").to_owned();
        let ends = service.job_ends.published();
        assert_eq!(ends.len(), 1);
        assert_eq!(
            (ends[0].detail_type(), ends[0].detail()["cancelledAt"].as_str()),
            ("Job Cancelled", Some(&*cancelled_at))
        );

        // A repeated cancel answers the same document and publishes nothing.
        let (status, again) = call(&service, CANCEL).await;
        assert_eq!((status, &again), (200, &body));
        assert_eq!(service.job_ends.published().len(), 1);
    }

    #[tokio::test]
    async fn an_ended_job_is_409_and_stays_as_it_was() {
        for ended in [JobStatus::Complete, JobStatus::Failed] {
            let service = service();
            service.jobs.insert(record(OWNER, ended));
            let (status, body) = call(&service, CANCEL).await;
            assert_eq!(status, 409, "{body}");
            assert_eq!(body["jobStatus"], json!(ended.as_str()));
            let message = body["message"].as_str().unwrap();
            assert!(message.contains(&format!("has already ended ({ended})")), "{message}");
            assert!(service.job_ends.published().is_empty());
        }
    }

    #[tokio::test]
    async fn unknown_foreign_and_malformed_ids_are_answered_as_job_status_answers_them() {
        let service = service();
        let (status, body) = call(&service, CANCEL).await;
        assert_eq!(status, 404, "unknown: {body}");
        assert!(body["message"].as_str().unwrap().starts_with(&format!("No job found with id {ID}")));
        service.jobs.insert(record("somebody-else", JobStatus::Submitted));
        assert_eq!(call(&service, CANCEL).await.0, 404, "another caller's job");
        let (status, body) = call(&service, &with_job_id(CANCEL, "not-a-job")).await;
        assert_eq!(status, 400);
        assert!(body["message"].as_str().unwrap().contains("is not a valid job id"), "{body}");
        assert!(service.job_ends.published().is_empty());
    }

    #[tokio::test]
    async fn machine_and_user_jobs_are_invisible_to_each_other() {
        let users = service();
        users.jobs.insert(record(OWNER, JobStatus::Submitted));
        assert_eq!(call(&users, MACHINE_CANCEL).await.0, 404, "a user's job, cancelled by a machine client");
        let machine = service();
        machine.jobs.insert(record(MACHINE, JobStatus::Submitted));
        assert_eq!(call(&machine, CANCEL).await.0, 404, "a machine client's job, cancelled by a user");
        let (status, body) = call(&machine, MACHINE_CANCEL).await;
        assert_eq!((status, body["jobStatus"].as_str()), (200, Some("cancelled")));
    }

    #[tokio::test]
    async fn a_store_outage_is_503_without_internal_detail_and_changes_nothing() {
        let service = service();
        service.jobs.insert(record(OWNER, JobStatus::Submitted));
        service.jobs.fail_next_writes(1);
        let (status, body) = call(&service, CANCEL).await;
        assert_eq!(status, 503);
        assert_eq!(body, json!({"message": "The job store is temporarily unavailable; retry in a few seconds."}));
        assert!(service.job_ends.published().is_empty());
    }

    #[tokio::test]
    async fn a_cancel_that_cannot_be_published_is_still_a_cancel() {
        let service = service();
        service.jobs.insert(record(OWNER, JobStatus::Submitted));
        service.job_ends.set_failing(true);
        let (status, body) = call(&service, CANCEL).await;
        assert_eq!((status, body["jobStatus"].as_str()), (200, Some("cancelled")));
        assert!(service.job_ends.published().is_empty());
    }
}

#[cfg(test)]
mod submit_tests {
    use aws_lambda_events::encodings::Body;
    use jobs_core::memory::{MemoryIdempotencyKeys, MemoryJobEnds, MemoryJobQueue, MemoryJobStore};
    use jobs_core::ports::{GetJob, StoreError};
    use jobs_core::submission::EnqueueError;
    use jobs_core::webhook::Destinations;
    use jobs_core::{JobId, JobStatus};
    use lambda_runtime::Context;
    use serde_json::{Value, json};

    use super::*;
    use crate::submit::REPLAYED_HEADER;

    const SUBMIT: &str = include_str!("../fixtures/submit-job.json");
    /// The fixture's caller (`requestContext.authorizer.sub`) and body.
    const OWNER: &str = "0f1e2d3c-user";
    const BODY: &str = r#"{"region": "eu-west-1"}"#;
    const MACHINE: &str = "arn:aws:sts::123456789012:assumed-role/jobs-dev-api-client/batch-importer";

    type Service = CommandService<MemoryJobStore, MemoryJobEnds, MemoryIdempotencyKeys, MemoryJobQueue>;
    /// Headers to set on the fixture (`None`: remove).
    type Headers<'a> = &'a [(&'a str, Option<&'a str>)];

    fn service(destinations: Destinations) -> Service {
        CommandService {
            jobs: MemoryJobStore::default(),
            keys: MemoryIdempotencyKeys::default(),
            queue: MemoryJobQueue::default(),
            submits: SubmitSettings { destinations, max_message_bytes: 262_144 },
            job_ends: MemoryJobEnds::default(),
            retention_days: 30,
            metrics: Emf::new("JobIngestion/test"),
        }
    }

    /// The fixture with `headers` added (or removed when `None`) and `body`.
    fn request(headers: &[(&str, Option<&str>)], body: &str) -> ApiGatewayProxyRequest {
        let mut request: Value = serde_json::from_str(SUBMIT).unwrap();
        for (name, value) in headers {
            match value {
                Some(v) => request["headers"][*name] = json!(v),
                None => _ = request["headers"].as_object_mut().unwrap().remove(*name),
            }
            request["multiValueHeaders"] = json!({});
        }
        request["body"] = json!(body);
        serde_json::from_value(request).unwrap()
    }

    fn machine(mut request: ApiGatewayProxyRequest) -> ApiGatewayProxyRequest {
        request.resource = Some("/machine/submit-job-request".into());
        request.request_context.authorizer.fields.clear();
        request.request_context.identity.user_arn = Some(MACHINE.into());
        request
    }

    struct Answer {
        status: i64,
        body: Value,
        replayed: bool,
    }

    async fn call(service: &Service, request: ApiGatewayProxyRequest) -> Answer {
        let response = handle(service, LambdaEvent::new(request, Context::default())).await.unwrap();
        assert_eq!(response.headers["content-type"], "application/json");
        let body = match response.body {
            Some(Body::Text(text)) => serde_json::from_str(&text).unwrap(),
            other => panic!("{other:?}"),
        };
        let replayed = response.headers.get(REPLAYED_HEADER).is_some_and(|v| v == "true");
        Answer { status: response.status_code, body, replayed }
    }

    fn job_id(answer: &Answer) -> JobId {
        JobId::parse(answer.body["jobId"].as_str().expect("jobId")).unwrap()
    }

    #[tokio::test]
    async fn a_submit_is_queued_recorded_and_answered_as_sqs_answered() {
        let service = service(Destinations::PublicHttps);
        let answer = call(&service, request(&[], BODY)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(!answer.replayed);
        let id = job_id(&answer);
        let result = &answer.body["SendMessageResponse"]["SendMessageResult"];
        assert_eq!(result["MessageId"], json!(id.as_str()));
        // md5 of the body, as Python's hashlib computes it: `hashlib.md5(b'{"region": "eu-west-1"}')`.
        assert_eq!(result["MD5OfMessageBody"], "ff47b2abae42800ed58e3a319160d70e");
        assert_eq!(
            answer.body["SendMessageResponse"]["ResponseMetadata"]["RequestId"],
            "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
        );
        let [sent] = &service.queue.sent()[..] else { panic!("one message") };
        assert_eq!((&sent.id, sent.payload.as_str(), sent.owner.as_deref()), (&id, BODY, Some(OWNER)));
        let job = service.jobs.get_job(&id).await.unwrap().unwrap().readable().unwrap();
        assert_eq!((job.status, job.attempts, job.owner.as_deref()), (JobStatus::Submitted, 0, Some(OWNER)));
    }

    #[tokio::test]
    async fn a_replay_answers_the_first_job_and_another_request_with_the_key_is_409() {
        let service = service(Destinations::PublicHttps);
        let key = [("Idempotency-Key", Some("order-42:attempt.1"))];
        let first = call(&service, request(&key, BODY)).await;
        let again = call(&service, request(&key, BODY)).await;
        assert_eq!((again.status, again.replayed), (200, true));
        assert_eq!(job_id(&again), job_id(&first));
        assert_eq!(again.body["SendMessageResponse"], first.body["SendMessageResponse"]);
        let other = call(&service, request(&key, r#"{"region": "us-east-1"}"#)).await;
        assert_eq!(other.status, 409);
        let message = other.body["message"].as_str().unwrap();
        assert!(message.contains(job_id(&first).as_str()) && message.contains("Idempotency-Key"), "{message}");
        // The same key is another caller's own.
        let theirs = call(&service, machine(request(&key, BODY))).await;
        assert_eq!((theirs.status, theirs.replayed), (200, false));
        assert_ne!(job_id(&theirs), job_id(&first));
        assert_eq!(service.queue.sent().len(), 2);
        assert_eq!(service.queue.sent()[1].owner.as_deref(), Some(MACHINE));
    }

    #[tokio::test]
    async fn bad_input_is_400_or_415_and_queues_nothing() {
        let service = service(Destinations::PublicHttps);
        let cases: [(Headers, &str, i64, &str); 8] = [
            (&[("Idempotency-Key", Some("has space"))], BODY, 400, "Invalid Idempotency-Key: it must be 1 to 128"),
            (&[("Idempotency-Key", Some(""))], BODY, 400, "Invalid Idempotency-Key"),
            (&[("Idempotency-Key", Some("clé"))], BODY, 400, "Invalid Idempotency-Key"),
            (&[("Job-Callback-Url", Some("https://10.0.0.1/hook"))], BODY, 400, "Invalid Job-Callback-Url: the URL"),
            (
                &[("Job-Callback-Url", Some("http://127.0.0.1:9/hook"))],
                BODY,
                400,
                "Invalid Job-Callback-Url: the URL must use https",
            ),
            (&[("Content-Type", Some("text/plain"))], BODY, 415, "Unsupported Media Type"),
            (&[], "[1, 2]", 400, "Invalid request body: the job request must be a JSON object."),
            (&[], "not json", 400, "Invalid request body"),
        ];
        for (headers, body, status, message) in cases {
            let answer = call(&service, request(headers, body)).await;
            assert_eq!(answer.status, status, "{headers:?}: {}", answer.body);
            assert!(answer.body["message"].as_str().unwrap().starts_with(message), "{}", answer.body);
        }
        assert!(service.queue.sent().is_empty());
        // Charset parameters and a missing Content-Type are JSON, as API Gateway took them.
        for content_type in [Some("application/json; charset=utf-8"), None] {
            assert_eq!(call(&service, request(&[("Content-Type", content_type)], BODY)).await.status, 200);
        }
    }

    #[tokio::test]
    async fn locally_a_loopback_callback_is_accepted_and_queued_with_the_job() {
        let service = service(Destinations::PublicHttpsAndLoopback);
        let url = "http://127.0.0.1:8123/hook";
        let answer = call(&service, request(&[("Job-Callback-Url", Some(url))], BODY)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let sent = service.queue.sent();
        assert_eq!(sent[0].callback.as_ref().map(|c| c.url.as_str()), Some(url));
    }

    #[tokio::test]
    async fn the_body_limit_is_the_queues_minus_the_attributes_of_this_message() {
        let service = service(Destinations::PublicHttps);
        // 262,144 - jobId (5 + 6 + 36) - owner (5 + 6 + 13, the fixture's sub).
        let limit = 262_144 - 47 - 24;
        let padded = |len: usize| format!(r#"{{"p": "{}"}}"#, "x".repeat(len - 9));
        assert_eq!(call(&service, request(&[], &padded(limit))).await.status, 200);
        let over = call(&service, request(&[], &padded(limit + 1))).await;
        assert_eq!(over.status, 400);
        assert_eq!(
            over.body["message"],
            "The job queue rejected the request: the body must be valid text of at most 262,073 bytes (UTF-8)."
        );
        assert_eq!(service.queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn outages_are_502_or_503_without_internal_detail() {
        let service = service(Destinations::PublicHttps);
        service.queue.set_failure(Some(EnqueueError::Unavailable(StoreError::with_detail("q", "arn:aws:sqs:secret"))));
        let answer = call(&service, request(&[], BODY)).await;
        assert_eq!(
            (answer.status, answer.body),
            (502, json!({"message": "The job queue is unavailable; retry the request."}))
        );
        service.queue.set_failure(None);
        service.keys.set_failing(true);
        let answer = call(&service, request(&[("Idempotency-Key", Some("k"))], BODY)).await;
        assert_eq!(
            (answer.status, answer.body),
            (503, json!({"message": "The job store is temporarily unavailable; retry in a few seconds."}))
        );
        assert!(service.queue.sent().is_empty());
    }
}
