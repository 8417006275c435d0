//! The error answers of the emulated AWS services, each in its service's
//! protocol as its SDK parses it: S3's REST-XML `<Error>`, Lambda's
//! REST-JSON with `x-amzn-ErrorType`, and the `__type` of the JSON services:
//! JSON 1.0 for SQS and DynamoDB (SQS's with the `x-amzn-query-error` header
//! that query-compatible clients, the Rust SDK among them, read the code
//! from), JSON 1.1 for Cognito, EventBridge and Secrets Manager.
//! Every answer carries a fresh `x-amzn-RequestId`. The one place these
//! shapes are written: IAM denials, injected faults and the Lambda API's
//! own errors all come through here.

use hyper::{Method, Response, StatusCode};
use serde_json::json;

use crate::httpx::{self, Body};

/// An error one service answers.
pub struct AwsError<'a> {
    pub status: StatusCode,
    /// The error's type: `namespace#Name` for the JSON 1.0 services
    /// (`com.amazonaws.dynamodb.v20120810#ThrottlingException`), the bare
    /// code for S3 (`SlowDown`) and Lambda (`TooManyRequestsException`).
    pub kind: &'a str,
    pub message: &'a str,
    /// SQS only: `Code;Sender` or `Code;Receiver` for `x-amzn-query-error`.
    pub query_error: Option<&'a str>,
}

impl AwsError<'_> {
    /// The answer of `service` ("s3", "lambda", or a JSON service) to a
    /// `method` call (S3 answers a HEAD with the status alone).
    pub fn response(&self, service: &str, method: &Method) -> Response<Body> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut resp = match service {
            "s3" => {
                let body = if method == Method::HEAD {
                    String::new()
                } else {
                    format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>",
                        xml_escape(self.kind),
                        xml_escape(self.message)
                    )
                };
                httpx::response(self.status, "application/xml", body)
            }
            "lambda" => {
                let body = json!({"Type": "User", "Message": self.message, "message": self.message});
                let mut r = httpx::json_response(self.status, &body);
                if let Ok(v) = self.kind.parse() {
                    r.headers_mut().insert("x-amzn-errortype", v);
                }
                r
            }
            _ => {
                let body = json!({"__type": self.kind, "message": self.message}).to_string();
                let content_type = match service {
                    "cognito-idp" | "events" | "secretsmanager" => "application/x-amz-json-1.1",
                    _ => "application/x-amz-json-1.0",
                };
                let mut r = httpx::response(self.status, content_type, body);
                if let Some(v) = self.query_error.and_then(|q| q.parse().ok()) {
                    r.headers_mut().insert("x-amzn-query-error", v);
                }
                r
            }
        };
        if let Ok(v) = request_id.parse() {
            resp.headers_mut().insert("x-amzn-requestid", v);
        }
        resp
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn parts(r: Response<Body>) -> (StatusCode, hyper::HeaderMap, String) {
        let (parts, body) = r.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, String::from_utf8(body.to_vec()).unwrap())
    }

    fn error<'a>(status: StatusCode, kind: &'a str, query_error: Option<&'a str>) -> AwsError<'a> {
        AwsError { status, kind, message: "a <b> & \"c\"", query_error }
    }

    #[tokio::test]
    async fn each_service_answers_in_its_protocol() {
        let (status, headers, body) =
            parts(error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown", None).response("s3", &Method::GET)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["content-type"], "application/xml");
        let id = headers["x-amzn-requestid"].to_str().unwrap().to_string();
        assert_eq!(
            body,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>a &lt;b&gt; &amp; &quot;c&quot;</Message><RequestId>{id}</RequestId><HostId>{id}</HostId></Error>"
            )
        );

        let head = error(StatusCode::FORBIDDEN, "AccessDenied", None).response("s3", &Method::HEAD);
        let (status, _, body) = parts(head).await;
        assert_eq!((status, body.as_str()), (StatusCode::FORBIDDEN, ""));

        let sqs = error(StatusCode::BAD_REQUEST, "com.amazonaws.sqs#RequestThrottled", Some("RequestThrottled;Sender"));
        let (status, headers, body) = parts(sqs.response("sqs", &Method::POST)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers["content-type"], "application/x-amz-json-1.0");
        assert_eq!(headers["x-amzn-query-error"], "RequestThrottled;Sender");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, json!({"__type": "com.amazonaws.sqs#RequestThrottled", "message": "a <b> & \"c\""}));

        let ddb = error(StatusCode::BAD_REQUEST, "com.amazonaws.dynamodb.v20120810#ThrottlingException", None);
        let (_, headers, _) = parts(ddb.response("dynamodb", &Method::POST)).await;
        assert!(!headers.contains_key("x-amzn-query-error"));

        let lambda = error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException", None);
        let (status, headers, body) = parts(lambda.response("lambda", &Method::POST)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["x-amzn-errortype"], "TooManyRequestsException");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["Message"], "a <b> & \"c\"");
        assert_eq!(body["Type"], "User");
    }
}
