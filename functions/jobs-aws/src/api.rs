//! What the API functions share about API Gateway's proxy events: who the
//! caller is, where the machine routes live, and the JSON answer.

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::http::{HeaderMap, HeaderValue, header};
use serde_json::Value;

/// The routes for machine clients signed with SigV4 (AWS_IAM) are the
/// users' routes below this prefix.
pub const MACHINE_PREFIX: &str = "/machine";

/// The API resource that invoked the function (`/jobs/{jobId}/cancel`),
/// the machine prefix removed: one name per operation.
pub fn resource(event: &ApiGatewayProxyRequest) -> Option<&str> {
    let resource = event.resource.as_deref().or(event.request_context.resource_path.as_deref());
    resource.map(|r| r.strip_prefix(MACHINE_PREFIX).unwrap_or(r))
}

/// Who calls: a Cognito user's `sub`, as the TOKEN authorizer put it in its
/// context, or on an AWS_IAM route the signer's ARN as API Gateway reports
/// it (`requestContext.identity.userArn`). The two never look alike (a UUID,
/// an `arn:`), so neither kind of caller can own the other's jobs.
pub fn caller(event: &ApiGatewayProxyRequest) -> Option<&str> {
    let sub = event.request_context.authorizer.fields.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty());
    sub.or_else(|| event.request_context.identity.user_arn.as_deref().filter(|a| a.starts_with("arn:")))
}

/// A JSON answer with `status`.
pub fn respond(status: i64, body: Value) -> ApiGatewayProxyResponse {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.headers = headers;
    response.body = Some(Body::Text(body.to_string()));
    response
}
