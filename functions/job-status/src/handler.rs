use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::http::{HeaderMap, HeaderValue, header};
use jobs_core::ports::{GetJob, PresignResult};
use jobs_core::status::{ResultLink, error_body, not_found_body, status_body};
use jobs_core::{JobId, JobStatus, Timestamp};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

/// The route's path parameter: `/job-status/{jobId}`.
pub const JOB_ID_PARAMETER: &str = "jobId";

pub struct StatusService<G, P> {
    pub jobs: G,
    pub results: P,
    pub link_ttl_seconds: u64,
}

/// `GET /job-status/{jobId}`: the job's state, and once it is complete a
/// presigned link to its result.
pub async fn job_status<G: GetJob, P: PresignResult>(
    service: &StatusService<G, P>,
    event: LambdaEvent<ApiGatewayProxyRequest>,
) -> Result<ApiGatewayProxyResponse, Error> {
    let raw = event.payload.path_parameters.get(JOB_ID_PARAMETER).map(String::as_str).unwrap_or_default();
    let id = match JobId::parse(raw) {
        Ok(id) => id,
        Err(invalid) => return Ok(respond(400, error_body(invalid.to_string()))),
    };
    let job = match service.jobs.get_job(&id).await {
        Ok(Some(job)) => job,
        Ok(None) => return Ok(respond(404, not_found_body(&id))),
        Err(e) => {
            tracing::error!(job_id = %id, error = %e, "reading the job failed");
            return Ok(respond(503, error_body("The job store is temporarily unavailable; retry in a few seconds.")));
        }
    };
    let link = match (&job.status, &job.result) {
        (JobStatus::Complete, Some(location)) => {
            match service.results.presign_result(location, service.link_ttl_seconds).await {
                Ok(url) => Some(ResultLink {
                    url,
                    expires_at: Timestamp(Timestamp::now().millis() + service.link_ttl_seconds * 1000),
                }),
                Err(e) => {
                    tracing::error!(job_id = %id, error = %e, "presigning the result failed");
                    return Ok(respond(
                        503,
                        error_body("The result link could not be created; retry in a few seconds."),
                    ));
                }
            }
        }
        _ => None,
    };
    Ok(respond(200, status_body(&job, link.as_ref())))
}

fn respond(status: i64, body: Value) -> ApiGatewayProxyResponse {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.headers = headers;
    response.body = Some(Body::Text(body.to_string()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobs_core::memory::{MemoryJobStore, MemoryResultStore};
    use jobs_core::{JobRecord, ResultLocation};
    use lambda_runtime::Context;

    const ID: &str = "5b1fd17d-c16e-4c8f-b6a7-8b9cadbecfd5";

    fn service() -> StatusService<MemoryJobStore, MemoryResultStore> {
        StatusService {
            jobs: MemoryJobStore::default(),
            results: MemoryResultStore::new("results"),
            link_ttl_seconds: 3600,
        }
    }

    fn job(status: JobStatus) -> JobRecord {
        JobRecord {
            id: JobId::parse(ID).unwrap(),
            status,
            payload: "{}".into(),
            submitted_at: Timestamp(1_795_000_000_000),
            updated_at: Timestamp(1_795_000_001_000),
            attempts: 1,
            last_error: None,
            failure_reason: (status == JobStatus::Failed).then(|| "Gave up after 3 deliveries".to_owned()),
            result: (status == JobStatus::Complete)
                .then(|| ResultLocation { bucket: "results".into(), key: format!("results/{ID}.json") }),
            completed_at: (status == JobStatus::Complete).then_some(Timestamp(1_795_000_002_000)),
        }
    }

    async fn get(service: &StatusService<MemoryJobStore, MemoryResultStore>, fixture: &str) -> (i64, Value) {
        let request: ApiGatewayProxyRequest = serde_json::from_str(fixture).unwrap();
        let response = job_status(service, LambdaEvent::new(request, Context::default())).await.unwrap();
        assert_eq!(response.headers[header::CONTENT_TYPE], "application/json");
        let body = match response.body.unwrap() {
            Body::Text(t) => serde_json::from_str(&t).unwrap(),
            other => panic!("{other:?}"),
        };
        (response.status_code, body)
    }

    #[tokio::test]
    async fn a_complete_job_carries_its_link_under_both_reference_names() {
        let s = service();
        s.jobs.insert(job(JobStatus::Complete));
        let (status, body) = get(&s, include_str!("../fixtures/get-status.json")).await;
        assert_eq!(status, 200);
        assert_eq!(body["jobId"], ID);
        assert_eq!(body["jobRequestId"], ID);
        assert_eq!(body["jobStatus"], "complete");
        assert_eq!(body["submittedAt"], "2026-11-18T11:06:40.000Z");
        let link = format!("memory://results/results/{ID}.json?expires-in=3600");
        assert_eq!(body["jobProcessedPayload"], link);
        assert_eq!(body["jobProcessedPayloadLink"], link);
    }

    #[tokio::test]
    async fn an_unfinished_job_has_no_link() {
        let s = service();
        s.jobs.insert(job(JobStatus::Submitted));
        let (status, body) = get(&s, include_str!("../fixtures/get-status.json")).await;
        assert_eq!((status, &body["jobStatus"]), (200, &Value::from("Submitted")));
        assert!(body.get("jobProcessedPayloadLink").is_none());
    }

    #[tokio::test]
    async fn a_failed_job_says_why() {
        let s = service();
        s.jobs.insert(job(JobStatus::Failed));
        let (_, body) = get(&s, include_str!("../fixtures/get-status.json")).await;
        assert_eq!(body["jobStatus"], "failed");
        assert_eq!(body["failureReason"], "Gave up after 3 deliveries");
    }

    #[tokio::test]
    async fn an_unknown_job_is_404_with_the_reference_message() {
        let (status, body) = get(&service(), include_str!("../fixtures/get-status.json")).await;
        assert_eq!(status, 404);
        assert_eq!(body["Error Message"], format!("No Job data found for Job Id : {ID}"));
        assert!(body["message"].as_str().unwrap().contains(ID));
    }

    #[tokio::test]
    async fn a_malformed_id_is_400_with_a_message() {
        let fixture = include_str!("../fixtures/get-status.json").replace(ID, "..%2F..%2Fetc");
        let (status, body) = get(&service(), &fixture).await;
        assert_eq!(status, 400);
        assert!(body["message"].as_str().unwrap().contains("not a valid job id"), "{body}");
    }

    #[tokio::test]
    async fn a_store_outage_is_503_not_a_crash() {
        struct Down;
        impl GetJob for Down {
            async fn get_job(&self, _: &JobId) -> Result<Option<JobRecord>, jobs_core::ports::StoreError> {
                Err(jobs_core::ports::StoreError::new("connection refused"))
            }
        }
        let s = StatusService { jobs: Down, results: MemoryResultStore::new("r"), link_ttl_seconds: 1 };
        let request: ApiGatewayProxyRequest =
            serde_json::from_str(include_str!("../fixtures/get-status.json")).unwrap();
        let response = job_status(&s, LambdaEvent::new(request, Context::default())).await.unwrap();
        assert_eq!(response.status_code, 503);
    }
}
