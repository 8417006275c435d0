//! The proxy in front of each moto server the functions call (SQS,
//! DynamoDB, S3): the functions' `AWS_ENDPOINT_URL_*` point here, never at
//! moto. Every call is checked against the signing function's role policies
//! ([`crate::iam`]); with `--faults` a configured share of the allowed calls
//! is answered with the service's throttling or internal error instead
//! ([`crate::faults`]). The gateway, the pollers and the tests talk to moto
//! directly.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderName;
use hyper::{Method, Request, Response, StatusCode};

use crate::faults::{Decision, Faults};
use crate::httpx::{self, Body, HttpClient};
use crate::iam::{self, Iam, calls};

/// The services whose calls from the functions pass through a proxy.
pub const PROXIED_SERVICES: [&str; 3] = ["sqs", "dynamodb", "s3"];

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
    faults: Option<Arc<Faults>>,
    client: HttpClient,
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
            iam,
            faults,
            client: httpx::client(),
        }
    }

    async fn forward(&self, parts: hyper::http::request::Parts, body: Bytes) -> anyhow::Result<Response<Body>> {
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
        let mut resp = Response::new(Body::new(if head { Bytes::new() } else { bytes }));
        *resp.status_mut() = status;
        for (name, value) in &headers {
            if !hop_by_hop(name) && (head || name != hyper::header::CONTENT_LENGTH) {
                resp.headers_mut().append(name, value.clone());
            }
        }
        Ok(resp)
    }

    async fn handle_call(&self, req: Request<Incoming>) -> anyhow::Result<Response<Body>> {
        let (parts, body) = req.into_parts();
        let body = httpx::read_body(body, PROXY_BODY_LIMIT).await?;
        let access_key = calls::access_key(&parts.headers, &parts.uri);
        if access_key.as_deref().is_some_and(|k| self.iam.is_function_key(k)) {
            let scope = calls::Scope { region: &self.region, account_id: self.iam.account_id() };
            let calls = calls::derive(self.service, &parts.method, &parts.uri, &parts.headers, &body, &scope);
            if let Err(denied) = self.iam.check(access_key.as_deref(), &calls) {
                return Ok(iam::denied_response(self.service, &parts.method, &denied, self.iam.account_id()));
            }
        }
        match self.faults.as_ref().map(|f| f.decide(self.service)) {
            None | Some(Decision::Forward) => self.forward(parts, body).await,
            Some(fault) => Ok(crate::faults::fault_response(self.service, fault)),
        }
    }
}

impl httpx::Handler for ServiceProxy {
    async fn handle(&self, req: Request<Incoming>, _peer: SocketAddr) -> Response<Body> {
        match self.handle_call(req).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(service = self.service, error = %e, "service proxy: forwarding failed");
                httpx::response(StatusCode::BAD_GATEWAY, "text/plain", format!("service proxy: {e}"))
            }
        }
    }
}
