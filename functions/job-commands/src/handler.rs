//! The API's commands on a job. Today one: `POST /jobs/{jobId}/cancel`
//! (and `/machine/jobs/{jobId}/cancel` for SigV4 clients).

use aws_lambda_events::event::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use jobs_aws::Emf;
use jobs_aws::api::{caller, resource, respond};
use jobs_aws::events::publish_accounted;
use jobs_aws::metrics::{Metric, Unit, name};
use jobs_core::job_end::JobEnd;
use jobs_core::ports::{CancelJob, Cancellation, PublishJobEnds};
use jobs_core::status::{already_ended_body, error_body, not_found_body, status_body};
use jobs_core::{JobId, Timestamp};
use lambda_runtime::{Error, LambdaEvent};

/// The route's path parameter.
pub const JOB_ID_PARAMETER: &str = "jobId";
/// The API resource of the cancel command (the machine prefix removed).
pub const CANCEL_RESOURCE: &str = "/jobs/{jobId}/cancel";

pub struct CommandService<C, E> {
    pub jobs: C,
    /// Where a cancel is published ("Job Cancelled", the job events bus).
    pub job_ends: E,
    /// How long a cancelled job's record is kept: `RESULT_RETENTION_DAYS`,
    /// as for a job that ended otherwise.
    pub retention_days: u32,
    pub metrics: Emf,
}

/// Dispatch on the API resource that invoked the function.
pub async fn handle<C: CancelJob, E: PublishJobEnds>(
    service: &CommandService<C, E>,
    event: LambdaEvent<ApiGatewayProxyRequest>,
) -> Result<ApiGatewayProxyResponse, Error> {
    match resource(&event.payload) {
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
async fn cancel<C: CancelJob, E: PublishJobEnds>(
    service: &CommandService<C, E>,
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
    use jobs_core::memory::{MemoryJobEnds, MemoryJobStore};
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

    type Service = CommandService<MemoryJobStore, MemoryJobEnds>;

    fn service() -> Service {
        CommandService {
            jobs: MemoryJobStore::default(),
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
