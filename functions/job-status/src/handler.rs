use aws_lambda_events::event::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use jobs_aws::api::{caller, resource, respond};
use jobs_core::counters::count_body;
use jobs_core::listing::{LIMIT_PARAMETER, ListRequest, NEXT_TOKEN_PARAMETER, list_body};
use jobs_core::ports::{GetJob, ListJobs, PresignResult, ReadCounters};
use jobs_core::status::{damaged_record_body, error_body, not_found_body, status_body};
use jobs_core::{JobId, JobStatus, StoredJob, Timestamp};
use lambda_runtime::{Error, LambdaEvent};

/// The route's path parameter: `/job-status/{jobId}`.
pub const JOB_ID_PARAMETER: &str = "jobId";

/// The API resources this function serves (the proxy event's `resource`).
pub const LIST_RESOURCE: &str = "/jobs";
pub const COUNT_RESOURCE: &str = "/count";

pub struct StatusService<G, P, C> {
    pub jobs: G,
    pub results: P,
    pub counters: C,
    /// The results bucket, whose counters `GET /count` reports.
    pub results_bucket: String,
    pub link_ttl_seconds: u64,
}

/// One function, three read routes: `GET /job-status/{jobId}`, `GET /jobs`
/// and `GET /count`, told apart by the API resource that invoked it.
pub async fn handle<G: GetJob + ListJobs, P: PresignResult, C: ReadCounters>(
    service: &StatusService<G, P, C>,
    event: LambdaEvent<ApiGatewayProxyRequest>,
) -> Result<ApiGatewayProxyResponse, Error> {
    match resource(&event.payload) {
        Some(LIST_RESOURCE) => Ok(list_jobs(service, &event.payload).await),
        Some(COUNT_RESOURCE) => Ok(count(service).await),
        _ => job_status(service, event).await,
    }
}

/// `GET /job-status/{jobId}`: the job's state, and once it is complete a
/// presigned link to its result. Another user's job, a job without an owner
/// and an expired one are answered exactly like an unknown id, whether their
/// record can be read or not; the owner of a record that cannot be read is
/// told so (500: retrying will not help).
pub async fn job_status<G: GetJob, P: PresignResult, C>(
    service: &StatusService<G, P, C>,
    event: LambdaEvent<ApiGatewayProxyRequest>,
) -> Result<ApiGatewayProxyResponse, Error> {
    let raw = event.payload.path_parameters.get(JOB_ID_PARAMETER).map(String::as_str).unwrap_or_default();
    let id = match JobId::parse(raw) {
        Ok(id) => id,
        Err(invalid) => return Ok(respond(400, error_body(invalid.to_string()))),
    };
    let stored = match service.jobs.get_job(&id).await {
        Ok(Some(stored)) if stored.visible_to(caller(&event.payload), Timestamp::now()) => stored,
        Ok(_) => return Ok(respond(404, not_found_body(&id))),
        Err(e) => {
            tracing::error!(job_id = %id, error = e.detail(), "reading the job failed");
            return Ok(respond(503, error_body("The job store is temporarily unavailable; retry in a few seconds.")));
        }
    };
    let job = match stored {
        StoredJob::Readable(job) => job,
        StoredJob::Unreadable(damaged) => {
            tracing::error!(job_id = %id, problem = %damaged.problem, "the job's record cannot be read");
            return Ok(respond(500, damaged_record_body(&id)));
        }
    };
    let link = match (&job.status, &job.result) {
        (JobStatus::Complete, Some(location)) => {
            // The link says when it stops working: its signing session's end if that comes first.
            match service.results.presign_result(location, service.link_ttl_seconds).await {
                Ok(link) => Some(link),
                Err(e) => {
                    tracing::error!(job_id = %id, error = e.detail(), "presigning the result failed");
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

/// `GET /jobs?limit=N&nextToken=T`: the caller's jobs, newest first.
async fn list_jobs<G: ListJobs, P, C>(
    service: &StatusService<G, P, C>,
    event: &ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse {
    let Some(owner) = caller(event) else {
        // The authorizer always passes `sub`; without it nobody owns anything.
        return respond(401, error_body("Unauthorized"));
    };
    let query = &event.query_string_parameters;
    let request = match ListRequest::parse(query.first(LIMIT_PARAMETER), query.first(NEXT_TOKEN_PARAMETER), owner) {
        Ok(r) => r,
        Err(invalid) => return respond(400, error_body(invalid.to_string())),
    };
    match service.jobs.list_jobs(owner, request.limit, request.after.as_ref()).await {
        Ok(page) => {
            // DynamoDB's TTL deletes lazily: an expired job is already gone.
            let now = Timestamp::now();
            let live: Vec<_> = page.jobs.into_iter().filter(|j| !j.is_expired(now)).collect();
            respond(200, list_body(&live, page.next.as_ref()))
        }
        Err(e) => {
            tracing::error!(error = e.detail(), "listing the jobs failed");
            respond(503, error_body("The job store is temporarily unavailable; retry in a few seconds."))
        }
    }
}

/// `GET /count`: the results bucket's object counters.
async fn count<G, P, C: ReadCounters>(service: &StatusService<G, P, C>) -> ApiGatewayProxyResponse {
    match service.counters.read_counters(&service.results_bucket).await {
        Ok(counters) => respond(200, count_body(&service.results_bucket, &counters)),
        Err(e) => {
            tracing::error!(error = e.detail(), "reading the counters failed");
            respond(503, error_body("The object counters are temporarily unavailable; retry in a few seconds."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::encodings::Body;
    use aws_lambda_events::http::header;
    use jobs_core::counters::Counter;
    use jobs_core::memory::{MemoryCounterStore, MemoryJobStore, MemoryResultStore};
    use jobs_core::{JobRecord, ResultLocation, UnreadableJob};
    use lambda_runtime::Context;
    use serde_json::{Value, json};

    const ID: &str = "5b1fd17d-c16e-4c8f-b6a7-8b9cadbecfd5";
    /// The caller of every fixture (`requestContext.authorizer.sub`).
    const OWNER: &str = "0f1e2d3c-user";
    const STATUS: &str = include_str!("../fixtures/get-status.json");
    const LIST: &str = include_str!("../fixtures/list-jobs.json");
    const COUNT: &str = include_str!("../fixtures/count.json");
    /// `GET /machine/jobs` signed with SigV4 by a role session (AWS_IAM).
    const MACHINE_LIST: &str = include_str!("../fixtures/machine-list-jobs.json");
    const MACHINE: &str = "arn:aws:sts::123456789012:assumed-role/jobs-dev-api-client/batch-importer";

    type Service = StatusService<MemoryJobStore, MemoryResultStore, MemoryCounterStore>;

    fn service() -> Service {
        StatusService {
            jobs: MemoryJobStore::default(),
            results: MemoryResultStore::new("results"),
            counters: MemoryCounterStore::default(),
            results_bucket: "results-bucket".into(),
            link_ttl_seconds: 3600,
        }
    }

    fn far_future() -> Timestamp {
        Timestamp::now().plus_days(30)
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
            failed_at: (status == JobStatus::Failed).then_some(Timestamp(1_795_000_003_000)),
            cancelled_at: (status == JobStatus::Cancelled).then_some(Timestamp(1_795_000_004_000)),
            owner: Some(OWNER.into()),
            expires_at: (status != JobStatus::Submitted).then(far_future),
            callback: None,
        }
    }

    async fn get(service: &Service, fixture: &str) -> (i64, Value) {
        let request: ApiGatewayProxyRequest = serde_json::from_str(fixture).unwrap();
        let response = handle(service, LambdaEvent::new(request, Context::default())).await.unwrap();
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
        let complete = job(JobStatus::Complete);
        s.jobs.insert(complete.clone());
        let (status, body) = get(&s, STATUS).await;
        assert_eq!(status, 200);
        assert_eq!(body["jobId"], ID);
        assert_eq!(body["jobRequestId"], ID);
        assert_eq!(body["jobStatus"], "complete");
        assert_eq!(body["submittedAt"], "2026-11-18T11:06:40.000Z");
        let link = format!("memory://results/results/{ID}.json?expires-in=3600");
        assert_eq!(body["jobProcessedPayload"], link);
        assert_eq!(body["jobProcessedPayloadLink"], link);
        assert_eq!(body["resultExpiresAt"], complete.expires_at.unwrap().to_rfc3339());
    }

    #[tokio::test]
    async fn an_unfinished_job_has_no_link() {
        let s = service();
        s.jobs.insert(job(JobStatus::Submitted));
        let (status, body) = get(&s, STATUS).await;
        assert_eq!((status, &body["jobStatus"]), (200, &Value::from("Submitted")));
        assert!(body.get("jobProcessedPayloadLink").is_none());
        assert!(body.get("resultExpiresAt").is_none());
    }

    #[tokio::test]
    async fn a_pending_retry_says_why() {
        let s = service();
        s.jobs.insert(JobRecord { last_error: Some("Attempt 1 failed".into()), ..job(JobStatus::Submitted) });
        let (_, body) = get(&s, STATUS).await;
        assert_eq!(
            (&body["jobStatus"], &body["lastError"]),
            (&Value::from("Submitted"), &Value::from("Attempt 1 failed"))
        );
    }

    #[tokio::test]
    async fn a_failed_job_says_why() {
        let s = service();
        s.jobs.insert(JobRecord { last_error: Some("Attempt 2 failed".into()), ..job(JobStatus::Failed) });
        let (_, body) = get(&s, STATUS).await;
        assert_eq!(body["jobStatus"], "failed");
        assert_eq!(body["failureReason"], "Gave up after 3 deliveries");
        assert!(body.get("lastError").is_none(), "the reason is failureReason alone, not the attempt before");
        assert!(body.get("resultExpiresAt").is_none(), "a failed job has no result");
    }

    #[tokio::test]
    async fn an_unknown_job_is_404_with_the_reference_message() {
        let (status, body) = get(&service(), STATUS).await;
        assert_eq!(status, 404);
        assert_eq!(body["Error Message"], format!("No Job data found for Job Id : {ID}"));
        assert!(body["message"].as_str().unwrap().contains(ID));
    }

    #[tokio::test]
    async fn another_users_job_an_ownerless_job_and_an_expired_job_look_unknown() {
        let (_, unknown) = get(&service(), STATUS).await;
        let mut theirs = job(JobStatus::Complete);
        theirs.owner = Some("someone-else".into());
        let mut ownerless = job(JobStatus::Complete);
        ownerless.owner = None;
        let mut expired = job(JobStatus::Complete);
        expired.expires_at = Some(Timestamp(Timestamp::now().millis() - 1_000));
        for record in [theirs, ownerless, expired] {
            let s = service();
            s.jobs.insert(record.clone());
            assert_eq!(get(&s, STATUS).await, (404, unknown.clone()), "{record:?}");
        }
        // No `sub` in the request context: nobody.
        let s = service();
        s.jobs.insert(job(JobStatus::Complete));
        let anonymous = STATUS.replace(r#""sub": "0f1e2d3c-user", "#, "");
        assert_eq!(get(&s, &anonymous).await.0, 404);
    }

    #[tokio::test]
    async fn a_damaged_record_is_500_for_its_owner_and_404_for_everybody_else() {
        let (_, unknown) = get(&service(), STATUS).await;
        let damaged = |owner: Option<&str>, expires_at: Option<Timestamp>| {
            let s = service();
            s.jobs.insert_unreadable(UnreadableJob {
                id: JobId::parse(ID).unwrap(),
                owner: owner.map(str::to_owned),
                expires_at,
                problem: "no valid jobStatus".into(),
            });
            s
        };
        let (status, body) = get(&damaged(Some(OWNER), None), STATUS).await;
        assert_eq!(status, 500, "an honest answer, and not a transient one: {body}");
        assert_eq!(
            body["message"],
            format!(
                "The record of job {ID} is damaged and cannot be read; retrying will not help. \
                 Report the job id to the API's operators."
            )
        );
        let expired = Some(Timestamp(Timestamp::now().millis() - 1_000));
        for (owner, expires_at) in [(Some("someone-else"), None), (None, None), (Some(OWNER), expired)] {
            assert_eq!(get(&damaged(owner, expires_at), STATUS).await, (404, unknown.clone()), "{owner:?}");
        }
    }

    #[tokio::test]
    async fn a_malformed_id_is_400_with_a_message() {
        let fixture = STATUS.replace(ID, "..%2F..%2Fetc");
        let (status, body) = get(&service(), &fixture).await;
        assert_eq!(status, 400);
        assert!(body["message"].as_str().unwrap().contains("not a valid job id"), "{body}");
    }

    #[tokio::test]
    async fn a_store_outage_is_503_not_a_crash() {
        struct Down;
        impl GetJob for Down {
            async fn get_job(&self, _: &JobId) -> Result<Option<StoredJob>, jobs_core::ports::StoreError> {
                Err(jobs_core::ports::StoreError::new("connection refused"))
            }
        }
        let s = StatusService {
            jobs: Down,
            results: MemoryResultStore::new("r"),
            counters: (),
            results_bucket: String::new(),
            link_ttl_seconds: 1,
        };
        let request: ApiGatewayProxyRequest = serde_json::from_str(STATUS).unwrap();
        let response = job_status(&s, LambdaEvent::new(request, Context::default())).await.unwrap();
        assert_eq!(response.status_code, 503);
    }

    fn numbered(n: u64, owner: &str) -> JobRecord {
        let mut j = job(JobStatus::Complete);
        j.id = JobId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap();
        j.submitted_at = Timestamp(1_795_000_000_000 + n * 1000);
        j.owner = Some(owner.into());
        j
    }

    #[tokio::test]
    async fn the_callers_jobs_are_listed_newest_first_page_by_page() {
        let s = service();
        for n in 1..=3 {
            s.jobs.insert(numbered(n, OWNER));
        }
        s.jobs.insert(numbered(4, "someone-else"));
        let mut expired = numbered(5, OWNER);
        expired.expires_at = Some(Timestamp(1));
        s.jobs.insert(expired);

        // limit=2 (the fixture): the expired newest one is dropped from the page.
        let (status, first) = get(&s, LIST).await;
        assert_eq!(status, 200, "{first}");
        let ids = |body: &Value| -> Vec<String> {
            body["jobs"].as_array().unwrap().iter().map(|j| j["jobId"].as_str().unwrap()[33..].to_owned()).collect()
        };
        assert_eq!(ids(&first), ["003"]);
        assert_eq!(first["jobs"][0]["jobStatus"], "complete");
        assert!(first["jobs"][0]["completedAt"].is_string());
        let token = first["nextToken"].as_str().unwrap();
        let next = LIST.replace(r#"{ "limit": "2" }"#, &format!(r#"{{ "limit": "2", "nextToken": "{token}" }}"#));
        let (status, second) = get(&s, &next).await;
        assert_eq!(status, 200);
        assert_eq!(ids(&second), ["002", "001"]);
        assert!(second.get("nextToken").is_none(), "{second}");

        // The same token presented by another user is refused.
        let foreign = next.replace(r#""sub": "0f1e2d3c-user""#, r#""sub": "someone-else""#);
        let (status, body) = get(&s, &foreign).await;
        assert_eq!(status, 400);
        assert!(body["message"].as_str().unwrap().contains("nextToken"), "{body}");

        // Default limit, and somebody with no jobs.
        let default = LIST.replace(r#"{ "limit": "2" }"#, "null");
        assert_eq!(ids(&get(&s, &default).await.1), ["003", "002", "001"]);
        let stranger = default.replace(r#""sub": "0f1e2d3c-user""#, r#""sub": "nobody""#);
        assert_eq!(get(&s, &stranger).await, (200, serde_json::json!({"jobs": []})));
    }

    #[tokio::test]
    async fn a_machine_client_lists_its_own_jobs_and_never_a_users() {
        let s = service();
        s.jobs.insert(numbered(1, OWNER));
        s.jobs.insert(numbered(2, MACHINE));
        let listed =
            |body: &Value| body["jobs"].as_array().unwrap().iter().map(|j| j["jobId"].clone()).collect::<Vec<_>>();
        let (status, machine) = get(&s, MACHINE_LIST).await;
        assert_eq!(status, 200, "{machine}");
        assert_eq!(listed(&machine), [json!(numbered(2, MACHINE).id)]);
        // The user's listing has the user's job only.
        let (_, user) = get(&s, LIST).await;
        assert_eq!(listed(&user), [json!(numbered(1, OWNER).id)]);
        // The machine's status read of the user's job is an unknown id, and the reverse.
        let machine_status = |id: &JobId| {
            let mut request: Value = serde_json::from_str(MACHINE_LIST).unwrap();
            request["resource"] = json!("/machine/job-status/{jobId}");
            request["pathParameters"] = json!({ "jobId": id.as_str() });
            request["queryStringParameters"] = Value::Null;
            request.to_string()
        };
        assert_eq!(get(&s, &machine_status(&numbered(1, OWNER).id)).await.0, 404);
        assert_eq!(get(&s, &machine_status(&numbered(2, MACHINE).id)).await.0, 200);
        let user_status = STATUS.replace(ID, numbered(2, MACHINE).id.as_str());
        assert_eq!(get(&s, &user_status).await.0, 404);
    }

    #[tokio::test]
    async fn bad_listing_parameters_are_400_naming_the_parameter() {
        for (query, parameter) in [
            (r#"{ "limit": "0" }"#, "limit"),
            (r#"{ "limit": "101" }"#, "limit"),
            (r#"{ "limit": "ten" }"#, "limit"),
            (r#"{ "nextToken": "garbage" }"#, "nextToken"),
        ] {
            let (status, body) = get(&service(), &LIST.replace(r#"{ "limit": "2" }"#, query)).await;
            assert_eq!(status, 400, "{query}");
            let message = body["message"].as_str().unwrap();
            assert!(message.starts_with(&format!("The {parameter} parameter")), "{message}");
        }
    }

    #[tokio::test]
    async fn count_reports_the_results_bucket_counters() {
        let s = service();
        assert_eq!(
            get(&s, COUNT).await,
            (
                200,
                serde_json::json!({"bucket": "results-bucket", "total": {"created": 0, "removed": 0, "current": 0, "bytes": 0}, "prefixes": {}})
            )
        );
        let total = Counter {
            created: 2,
            current: 2,
            bytes: 10,
            updated_at: Some("2026-11-22T00:00:00Z".into()),
            ..Counter::default()
        };
        s.counters.insert("results-bucket", total.clone());
        s.counters.insert("results-bucket", Counter { prefix: "results/".into(), ..total });
        s.counters.insert("another-bucket", Counter { created: 9, ..Counter::default() });
        let (status, body) = get(&s, COUNT).await;
        assert_eq!(status, 200);
        assert_eq!(body["total"]["created"], 2);
        assert_eq!(body["prefixes"]["results/"]["updatedAt"], "2026-11-22T00:00:00Z");
    }
}
