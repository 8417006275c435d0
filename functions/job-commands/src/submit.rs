//! `POST /submit-job-request` (and `/machine/submit-job-request`): check
//! the request, then accept it as jobs_core::submission orders it (key,
//! queue, record), and answer in the shape the reference's clients read.

use std::time::Duration;

use aws_lambda_events::event::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::http::HeaderValue;
use jobs_aws::api::{caller, respond};
use jobs_core::status::error_body;
use jobs_core::submission::{
    AcceptIdempotencyKey, Accepted, ClaimIdempotencyKey, EnqueueJob, IDEMPOTENCY_KEY_HEADER, IdempotencyKey,
    InFlightWait, NotAccepted, RecordSubmitted, ReleaseIdempotencyKey, SubmitPorts, SubmitRequest, submit,
};
use jobs_core::webhook::{CALLBACK_URL_HEADER, Callback, CallbackUrl, Destinations};
use jobs_core::{JobId, Submission, Timestamp};
use md5::{Digest, Md5};
use serde_json::{Value, json};

/// The answer's header on a replay: the job is the one an earlier request created.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// How long a replay waits for a concurrent request with its key to finish
/// (at most 20 × 100 ms, well inside the function's 10 s).
const IN_FLIGHT_WAIT: InFlightWait = InFlightWait { attempts: 20, interval: Duration::from_millis(100) };

/// What SQS counts of one String message attribute: name, `String`, value
/// (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html).
fn attribute_bytes(name: &str, value: &str) -> usize {
    name.len() + "String".len() + value.len()
}

/// The submits' settings (the stack's environment).
#[derive(Debug, Clone, Copy)]
pub struct SubmitSettings {
    /// Where a job's callback URL may point (`WEBHOOK_DESTINATIONS`).
    pub destinations: Destinations,
    /// The jobs queue's maximum message size (`MAX_MESSAGE_BYTES`).
    pub max_message_bytes: usize,
}

/// The stores and settings a submit needs.
pub struct Submits<'a, K, Q, S> {
    pub keys: &'a K,
    pub queue: &'a Q,
    pub jobs: &'a S,
    pub settings: SubmitSettings,
}

/// The 400 for a body the queue cannot take. The same text API Gateway
/// answered when it sent the message itself (cdktf job-api.ts, tooLargeMessage).
fn too_large(max_body_bytes: usize) -> ApiGatewayProxyResponse {
    let digits = max_body_bytes.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    respond(
        400,
        error_body(format!(
            "The job queue rejected the request: the body must be valid text of at most {grouped} bytes (UTF-8)."
        )),
    )
}

/// A header's value; bytes that are not UTF-8 become U+FFFD, so that a
/// non-ASCII value is refused by its check rather than taken as absent.
fn header(event: &ApiGatewayProxyRequest, name: &str) -> Option<String> {
    event.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

pub async fn submit_job<K, Q, S>(
    submits: &Submits<'_, K, Q, S>,
    event: &ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse
where
    K: ClaimIdempotencyKey + AcceptIdempotencyKey + ReleaseIdempotencyKey,
    Q: EnqueueJob,
    S: RecordSubmitted,
{
    // As API Gateway answered when only application/json had a template.
    if let Some(kind) = header(event, "content-type").as_deref()
        && !kind.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/json")
    {
        return respond(415, error_body("Unsupported Media Type"));
    }
    let body = event.body.clone().unwrap_or_default();
    // The gateway's model checks this first; checked again so that the
    // function never queues anything else.
    if !serde_json::from_str::<Value>(&body).is_ok_and(|v| v.is_object()) {
        return respond(400, error_body("Invalid request body: the job request must be a JSON object."));
    }
    let Some(owner) = caller(event) else {
        tracing::error!("a submit without a caller: the route has no authorizer or IAM authorization");
        return respond(403, error_body("Forbidden"));
    };
    let key = match header(event, IDEMPOTENCY_KEY_HEADER).as_deref().map(IdempotencyKey::parse).transpose() {
        Ok(key) => key,
        Err(invalid) => return respond(400, error_body(invalid.to_string())),
    };
    let callback_url = header(event, CALLBACK_URL_HEADER).filter(|url| !url.is_empty());
    let callback_url = callback_url.as_deref();
    if let Some(url) = callback_url
        && let Err(refused) = CallbackUrl::parse(url, submits.settings.destinations)
    {
        return respond(400, error_body(format!("Invalid {CALLBACK_URL_HEADER}: the URL {}.", refused.0)));
    }

    let id = JobId::random();
    let attributes = attribute_bytes("jobId", id.as_str())
        + attribute_bytes("owner", owner)
        + callback_url.map_or(0, |url| attribute_bytes("callbackUrl", url));
    let max_body_bytes = submits.settings.max_message_bytes.saturating_sub(attributes);
    if body.len() > max_body_bytes {
        return too_large(max_body_bytes);
    }

    let now = Timestamp::now();
    let md5_of_body: String = Md5::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let request = SubmitRequest {
        submission: Submission {
            id,
            payload: body,
            submitted_at: now,
            owner: Some(owner.to_owned()),
            callback: callback_url.map(|url| Callback { url: url.to_owned(), refused: None }),
        },
        key,
    };
    let ports = SubmitPorts { keys: submits.keys, queue: submits.queue, jobs: submits.jobs, wait: IN_FLIGHT_WAIT };
    let outcome = submit(&ports, request, now, tokio::time::sleep).await;
    for unfinished in &outcome.unfinished {
        tracing::warn!(
            step = unfinished.step,
            error = unfinished.error.detail(),
            "a submit step failed after the job was queued"
        );
    }
    let accepted = match outcome.result {
        Ok(accepted) => accepted,
        Err(not) => {
            let status = match &not {
                NotAccepted::KeyReused { .. } | NotAccepted::KeyInFlight => 409,
                NotAccepted::QueueRefused(detail) => {
                    tracing::warn!(detail, "the jobs queue refused a message");
                    return too_large(max_body_bytes);
                }
                NotAccepted::QueueUnavailable(e) => {
                    tracing::error!(error = e.detail(), "the job could not be queued");
                    502
                }
                NotAccepted::StoreUnavailable(e) => {
                    tracing::error!(error = e.detail(), "the idempotency key could not be claimed");
                    503
                }
            };
            return respond(status, error_body(not.to_string()));
        }
    };
    let job_id = accepted.job_id().as_str();
    let replayed = matches!(accepted, Accepted::Replayed(_));
    tracing::info!(job_id, replayed, "job submitted");
    let request_id = event.request_context.request_id.clone().unwrap_or_default();
    let mut response = respond(
        200,
        json!({
            "jobId": job_id,
            // The reference's answer was SQS's; its clients read MessageId.
            "SendMessageResponse": {
                "ResponseMetadata": {"RequestId": request_id},
                "SendMessageResult": {"MessageId": job_id, "MD5OfMessageBody": md5_of_body},
            },
        }),
    );
    if replayed {
        response.headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}
