//! The proxy in front of each moto server the functions call (SQS,
//! DynamoDB, S3, ...): the functions' `AWS_ENDPOINT_URL_*` point here, never at
//! moto. Every call passes the interceptor chain ([`crate::intercept`]): it
//! is checked against the signing function's role policies ([`crate::iam`]);
//! with `--faults` a configured share of the allowed calls is answered with
//! the service's throttling or internal error instead ([`crate::faults`]). The gateway, the pollers and the tests talk to moto
//! directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::header::HeaderName;
use hyper::{Method, Request, Response, StatusCode};

use crate::awserror::AwsError;
use crate::faults::Faults;
use crate::httpx::{self, Body, HttpClient, RequestBody};
use crate::iam::{Iam, calls};
use crate::intercept::{self, Answer, Interceptors};

/// The services whose calls from the functions pass through a proxy
/// (`cognito-idp`: the authorizer's fetch of the user pool's keys; `sts`:
/// job-status assuming the result-link role; `events`: job-processor
/// publishing jobs' ends; `secretsmanager`: webhook-sender reading its
/// signing secret).
pub const PROXIED_SERVICES: [&str; 7] = ["sqs", "dynamodb", "s3", "cognito-idp", "sts", "events", "secretsmanager"];

/// Largest request body a proxy forwards (S3 PutObject of a result is ~20 KB).
const PROXY_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Headers that belong to one connection, not to the message (RFC 9110 7.6.1).
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "te" | "trailer" | "upgrade"
    )
}

/// Checks, then forwards calls to one moto server (or answers a fault).
pub struct ServiceProxy {
    pub service: &'static str,
    upstream: String,
    region: String,
    iam: Arc<Iam>,
    /// IAM, then fault injection: what every call passes before moto.
    interceptors: Interceptors,
    client: HttpClient,
    /// The full ARNs of the secrets moto holds (a call may name one by a
    /// shorter form; IAM authorizes it on the full ARN).
    secret_arns: Vec<String>,
}

impl ServiceProxy {
    pub fn new(
        service: &'static str,
        upstream: &str,
        region: &str,
        iam: Arc<Iam>,
        faults: Option<Arc<Faults>>,
    ) -> Self {
        ServiceProxy {
            service,
            upstream: upstream.trim_end_matches('/').to_string(),
            region: region.to_string(),
            interceptors: Interceptors::new(iam.clone(), faults.map(|f| f.interceptor(iam.clone()))),
            iam,
            client: httpx::client(),
            secret_arns: Vec::new(),
        }
    }

    /// The secrets' full ARNs (Secrets Manager's proxy).
    pub fn with_secret_arns(mut self, arns: Vec<String>) -> Self {
        self.secret_arns = arns;
        self
    }

    async fn forward(&self, parts: hyper::http::request::Parts, body: Bytes) -> anyhow::Result<Response<Body>> {
        let (resp, _) = self.forward_keeping_body(parts, body).await?;
        Ok(resp)
    }

    /// Forwards the call; also returns the answer's body.
    async fn forward_keeping_body(
        &self,
        parts: hyper::http::request::Parts,
        body: Bytes,
    ) -> anyhow::Result<(Response<Body>, Bytes)> {
        let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut upstream = Request::builder().method(parts.method.clone()).uri(format!("{}{path}", self.upstream));
        for (name, value) in &parts.headers {
            // The Host header stays the proxy's: the request was signed for it.
            if !hop_by_hop(name) && name != hyper::header::CONTENT_LENGTH {
                upstream = upstream.header(name, value);
            }
        }
        let head = parts.method == Method::HEAD;
        let (status, headers, bytes) = httpx::send(&self.client, upstream.body(Body::new(body))?).await?;
        let mut resp = Response::new(Body::new(if head { Bytes::new() } else { bytes.clone() }));
        *resp.status_mut() = status;
        for (name, value) in &headers {
            if !hop_by_hop(name) && (head || name != hyper::header::CONTENT_LENGTH) {
                resp.headers_mut().append(name, value.clone());
            }
        }
        Ok((resp, bytes))
    }

    async fn handle_call(&self, req: Request<RequestBody>) -> anyhow::Result<Response<Body>> {
        let (parts, body) = req.into_parts();
        let body = httpx::read_body(body, PROXY_BODY_LIMIT).await?;
        let access_key = calls::access_key(&parts.headers, &parts.uri);
        // An expired signature fails authentication, before any check of
        // what the caller may do.
        if self.service == "s3"
            && let Some(refusal) =
                presigned_expiry(&parts.method, &parts.uri, access_key.as_deref(), &self.iam, SystemTime::now())
        {
            return Ok(refusal);
        }
        let mut checked = Vec::new();
        if access_key.as_deref().is_some_and(|k| self.iam.is_function_key(k)) {
            let scope = calls::Scope {
                region: &self.region,
                account_id: self.iam.account_id(),
                secret_arns: &self.secret_arns,
            };
            checked = calls::derive(self.service, &parts.method, &parts.uri, &parts.headers, &body, &scope);
        }
        let assume_role = checked.iter().find(|c| c.action == "sts:AssumeRole").map(|c| c.resource.clone());
        let call = intercept::Call {
            service: self.service,
            method: &parts.method,
            access_key: access_key.as_deref(),
            actions: &checked,
            payload: &body,
        };
        match self.interceptors.intercept(&call) {
            None if assume_role.is_some() => {
                // A session of a role: its calls are checked against that role's
                // policies, and its credentials expire when STS says.
                let (resp, bytes) = self.forward_keeping_body(parts, body).await?;
                if resp.status().is_success()
                    && let (Some(caller), Some(role)) = (access_key.as_deref(), assume_role.as_deref())
                    && let Some((key, expires_at)) = calls::assumed_session(&String::from_utf8_lossy(&bytes))
                    && !self.iam.register_session(caller, role, &key, expires_at)
                {
                    tracing::warn!(role, "STS issued a session of a role the caller may not assume");
                }
                Ok(resp)
            }
            None => self.forward(parts, body).await,
            Some(Answer::Refused(refusal)) => Ok(refusal),
            Some(Answer::FunctionError(_)) => {
                anyhow::bail!("an interceptor answered a {} call with a function error", self.service)
            }
        }
    }
}

/// S3's refusal of a presigned URL that has expired: past `X-Amz-Date` +
/// `X-Amz-Expires` (403 AccessDenied "Request has expired"), or signed with a
/// session whose credentials have expired (400 ExpiredToken). moto checks
/// neither.
fn presigned_expiry(
    method: &hyper::Method,
    uri: &hyper::Uri,
    access_key: Option<&str>,
    iam: &Iam,
    now: SystemTime,
) -> Option<Response<Body>> {
    let query: std::collections::HashMap<String, String> =
        form_urlencoded::parse(uri.query()?.as_bytes()).into_owned().collect();
    let expires: u64 = query.get("X-Amz-Expires")?.parse().ok()?;
    let signed = time::PrimitiveDateTime::parse(
        query.get("X-Amz-Date")?,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .ok()?
    .assume_utc();
    let signed = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(signed.unix_timestamp()).ok()?);
    let error = |status: StatusCode, kind: &str, message: &str| {
        AwsError { status, kind, message, query_error: None }.response("s3", method)
    };
    if now > signed + Duration::from_secs(expires) {
        return Some(error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired"));
    }
    if access_key.and_then(|k| iam.session_expiry(k)).is_some_and(|end| now > end) {
        return Some(error(StatusCode::BAD_REQUEST, "ExpiredToken", "The provided token has expired."));
    }
    None
}

impl httpx::Handler for ServiceProxy {
    async fn handle(&self, req: Request<RequestBody>, _peer: SocketAddr) -> Response<Body> {
        match self.handle_call(req).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(service = self.service, error = %e, "service proxy: forwarding failed");
                httpx::response(StatusCode::BAD_GATEWAY, "text/plain", format!("service proxy: {e}"))
            }
        }
    }
}
