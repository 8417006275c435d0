//! HTTP side of the Lambda service: the Runtime API (per instance) and the
//! Invoke API (`POST /2015-03-31/functions/{name}/invocations`).

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::{InFlight, Instance, InvokeError, Invoked, LambdaService, Outcome, PAYLOAD_LIMIT, Pool, lock};
use crate::awserror::AwsError;
use crate::httpx::{self, Body, BodyError};

pub(super) struct Api {
    pub service: LambdaService,
}

impl httpx::Handler for Api {
    async fn handle(&self, req: Request<Incoming>, _peer: SocketAddr) -> Response<Body> {
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method(), segments.as_slice()) {
            (&Method::POST, ["2015-03-31", "functions", name, "invocations"]) => {
                let name = httpx::percent_decode(name);
                self.invoke(req, &name).await
            }
            (&Method::PUT, ["2015-03-31", "functions", name, "code"]) => {
                super::update_function_code(&self.service, &httpx::percent_decode(name), req.into_body()).await
            }
            (_, [function, instance, "2018-06-01", "runtime", rest @ ..]) => {
                let Some((pool, inst)) =
                    instance.parse::<u64>().ok().and_then(|id| self.service.instance(function, id))
                else {
                    return runtime_error(
                        StatusCode::NOT_FOUND,
                        "UnknownInstance",
                        "no such function instance (it was stopped)",
                    );
                };
                match (req.method(), rest) {
                    (&Method::GET, ["invocation", "next"]) => self.next(&pool, &inst).await,
                    (&Method::POST, ["invocation", id, "response"]) => {
                        let id = id.to_string();
                        respond(&inst, &id, req).await
                    }
                    (&Method::POST, ["invocation", id, "error"]) => {
                        let id = id.to_string();
                        report_error(&inst, &id, req).await
                    }
                    (&Method::POST, ["init", "error"]) => init_error(&pool, &inst, req).await,
                    _ => runtime_error(StatusCode::NOT_FOUND, "InvalidRequest", "unknown Runtime API path"),
                }
            }
            _ => lambda_error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                &format!("Unknown operation {} {path}", req.method()),
            ),
        }
    }
}

impl Api {
    /// `GET .../runtime/invocation/next`: long-polls for this instance's
    /// next invocation.
    async fn next(&self, pool: &Pool, inst: &Arc<Instance>) -> Response<Body> {
        inst.ready.send_replace(true);
        let mut shutdown = self.service.inner.shutdown.subscribe();
        let mut rx = inst.rx.lock().await;
        let invocation = tokio::select! {
            inv = rx.recv() => inv,
            _ = httpx::wait_true(&mut shutdown) => None,
        };
        drop(rx);
        let Some(inv) = invocation else {
            return runtime_error(StatusCode::GONE, "InstanceStopped", "this instance is being stopped");
        };
        let request_id = inv.request_id.clone();
        *lock(&inst.inflight) =
            Some(InFlight { request_id: request_id.clone(), payload: inv.payload.clone(), reply: inv.reply });
        if !inst.alive()
            && let Some(f) = lock(&inst.inflight).take()
        {
            let _ = f.reply.send(Outcome::NotStarted);
        }
        let mut resp = httpx::response(StatusCode::OK, "application/json", inv.payload);
        let h = resp.headers_mut();
        let mut put = |k: &'static str, v: String| {
            if let Ok(v) = v.parse() {
                h.insert(k, v);
            }
        };
        put("lambda-runtime-aws-request-id", request_id);
        put("lambda-runtime-deadline-ms", inv.deadline_ms.to_string());
        put("lambda-runtime-invoked-function-arn", self.service.function_arn(&pool.spec.name));
        put("lambda-runtime-trace-id", trace_id());
        resp
    }

    async fn invoke(&self, req: Request<Incoming>, name: &str) -> Response<Body> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let qualifier = req.uri().query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "Qualifier").map(|(_, v)| v.into_owned())
        });
        let function = crate::stack::function_name_from(name).to_string();
        let name_qualifier = name
            .rsplit_once(':')
            .filter(|(head, _)| !head.ends_with(":function") && !head.is_empty())
            .map(|(_, q)| q.to_string());
        let qualifier = qualifier.or(if name.starts_with("arn:") { arn_qualifier(name) } else { name_qualifier });
        let arn = self.service.function_arn(&function);
        // IAM authorizes before the function is looked up, as Lambda does.
        if let Some(iam) = self.service.inner.iam.get() {
            let resource = match &qualifier {
                Some(q) => format!("{arn}:{q}"),
                None => arn.clone(),
            };
            let call = crate::iam::Call { action: "lambda:InvokeFunction".into(), resource };
            let access_key = crate::iam::calls::access_key(req.headers(), req.uri());
            if let Err(denied) = iam.check(access_key.as_deref(), &[call]) {
                return crate::iam::denied_response("lambda", req.method(), &denied, iam.account_id());
            }
        }
        if !self.service.has_function(&function) || qualifier.as_deref().is_some_and(|q| q != "$LATEST") {
            let shown = match &qualifier {
                Some(q) => format!("{arn}:{q}"),
                None => arn,
            };
            return with_request_id(
                lambda_error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    &format!("Function not found: {shown}"),
                ),
                &request_id,
            );
        }
        let invocation_type = req
            .headers()
            .get("x-amz-invocation-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("RequestResponse")
            .to_string();
        let payload = match httpx::read_body(req.into_body(), PAYLOAD_LIMIT).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                return with_request_id(
                    lambda_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "RequestTooLargeException",
                        "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
                    ),
                    &request_id,
                );
            }
            Err(e) => {
                return with_request_id(
                    lambda_error(StatusCode::BAD_REQUEST, "InvalidRequestContentException", &e.to_string()),
                    &request_id,
                );
            }
        };
        if !payload.is_empty() && serde_json::from_slice::<Value>(&payload).is_err() {
            return with_request_id(
                lambda_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    "Could not parse request body into json: the payload is not valid JSON",
                ),
                &request_id,
            );
        }
        let payload = if payload.is_empty() { Bytes::from_static(b"{}") } else { payload };
        match invocation_type.as_str() {
            "DryRun" => {
                with_request_id(httpx::response(StatusCode::NO_CONTENT, "application/json", Bytes::new()), &request_id)
            }
            "Event" => {
                let service = self.service.clone();
                tokio::spawn(async move {
                    match service.invoke(&function, payload).await {
                        Ok(Invoked::Response(_)) => {}
                        Ok(Invoked::Error(body)) => {
                            tracing::warn!(%function, error = %String::from_utf8_lossy(&body), "asynchronous invocation failed (not retried locally)")
                        }
                        Err(e) => {
                            tracing::warn!(%function, error = %e, "asynchronous invocation failed (not retried locally)")
                        }
                    }
                });
                with_request_id(httpx::response(StatusCode::ACCEPTED, "application/json", Bytes::new()), &request_id)
            }
            "RequestResponse" => {
                let mut resp = match self.service.invoke(&function, payload).await {
                    Ok(Invoked::Response(body)) => httpx::response(StatusCode::OK, "application/json", body),
                    Ok(Invoked::Error(body)) => {
                        let mut r = httpx::response(StatusCode::OK, "application/json", body);
                        r.headers_mut().insert("x-amz-function-error", "Unhandled".parse().expect("static header"));
                        r
                    }
                    Err(InvokeError::NotFound(_)) => lambda_error(
                        StatusCode::NOT_FOUND,
                        "ResourceNotFoundException",
                        &format!("Function not found: {}", self.service.function_arn(&function)),
                    ),
                    Err(InvokeError::Throttled(_)) => {
                        let mut r =
                            lambda_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException", "Rate Exceeded.");
                        *r.body_mut() = httpx::Body::from(json!({"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User", "message": "Rate Exceeded."}).to_string());
                        r
                    }
                    Err(InvokeError::ShuttingDown) => lambda_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceException",
                        "the local Lambda service is shutting down",
                    ),
                };
                resp.headers_mut().insert("x-amz-executed-version", "$LATEST".parse().expect("static header"));
                with_request_id(resp, &request_id)
            }
            other => with_request_id(
                lambda_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterValueException",
                    &format!("Unsupported invocation type {other}"),
                ),
                &request_id,
            ),
        }
    }
}

fn arn_qualifier(arn: &str) -> Option<String> {
    // arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
    let parts: Vec<&str> = arn.split(':').collect();
    (parts.len() == 8).then(|| parts[7].to_string())
}

/// Takes the in-flight invocation `id` of `inst`, if it is the current one.
fn take_inflight(inst: &Instance, id: &str) -> Option<InFlight> {
    let mut g = lock(&inst.inflight);
    if g.as_ref().is_some_and(|f| f.request_id == id) { g.take() } else { None }
}

async fn respond(inst: &Arc<Instance>, id: &str, req: Request<Incoming>) -> Response<Body> {
    let collected = match http_body_util::Limited::new(req.into_body(), PAYLOAD_LIMIT + 1).collect().await {
        Ok(c) => c,
        Err(_) => {
            if let Some(f) = take_inflight(inst, id) {
                let _ = f.reply.send(Outcome::Error(
                    Invoked::error(
                        "Function.ResponseSizeTooLarge",
                        "Response payload size exceeded maximum allowed payload size (6291456 bytes).",
                    )
                    .body(),
                ));
            }
            return runtime_error(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", "response payload too large");
        }
    };
    // Streamed responses report a mid-stream error in trailers.
    let trailer_error = collected.trailers().and_then(|t| {
        let kind = t.get("lambda-runtime-function-error-type")?.to_str().ok()?.to_string();
        let body = t
            .get("lambda-runtime-function-error-body")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.as_bytes()).ok())
            .unwrap_or_default();
        Some((kind, body))
    });
    let body = collected.to_bytes();
    let Some(f) = take_inflight(inst, id) else {
        return runtime_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            &format!("{id} is not the invocation in progress on this instance"),
        );
    };
    let outcome = match trailer_error {
        Some((_, b)) if !b.is_empty() => Outcome::Error(Bytes::from(b)),
        Some((kind, _)) => Outcome::Error(Invoked::error(&kind, "the response stream failed").body()),
        None => Outcome::Response(body),
    };
    let _ = f.reply.send(outcome);
    accepted()
}

async fn report_error(inst: &Arc<Instance>, id: &str, req: Request<Incoming>) -> Response<Body> {
    let kind =
        req.headers().get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = httpx::read_body(req.into_body(), PAYLOAD_LIMIT).await.unwrap_or_default();
    let Some(f) = take_inflight(inst, id) else {
        return runtime_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            &format!("{id} is not the invocation in progress on this instance"),
        );
    };
    let _ = f.reply.send(Outcome::Error(error_body(body, kind)));
    accepted()
}

async fn init_error(pool: &Pool, inst: &Arc<Instance>, req: Request<Incoming>) -> Response<Body> {
    let kind =
        req.headers().get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = httpx::read_body(req.into_body(), PAYLOAD_LIMIT).await.unwrap_or_default();
    tracing::warn!(function = %pool.spec.name, instance = inst.id, error = %String::from_utf8_lossy(&body), "init error reported");
    *lock(&inst.init_error) = Some(error_body(body, kind));
    // Lambda ends an instance whose init failed.
    inst.kill.notify_one();
    accepted()
}

/// The runtime's error JSON, or one built from a non-JSON body.
fn error_body(body: Bytes, kind: Option<String>) -> Bytes {
    if serde_json::from_slice::<Value>(&body).map(|v| v.is_object()).unwrap_or(false) {
        return body;
    }
    Invoked::error(kind.as_deref().unwrap_or("Runtime.Unknown"), &String::from_utf8_lossy(&body)).body()
}

impl Invoked {
    fn body(self) -> Bytes {
        match self {
            Invoked::Response(b) | Invoked::Error(b) => b,
        }
    }
}

fn accepted() -> Response<Body> {
    httpx::json_response(StatusCode::ACCEPTED, &json!({"status": "OK"}))
}

fn runtime_error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    httpx::json_response(status, &json!({"errorType": kind, "errorMessage": message}))
}

/// A Lambda API (restJson1) error: the type in `x-amzn-ErrorType`.
fn lambda_error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    AwsError { status, kind, message, query_error: None }.response("lambda", &Method::POST)
}

fn with_request_id(mut r: Response<Body>, id: &str) -> Response<Body> {
    if let Ok(v) = id.parse() {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

/// An X-Ray style trace header (not sampled).
pub fn trace_id() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("Root=1-{secs:08x}-{:024x};Parent={:016x};Sampled=0", rand::random::<u128>() >> 32, rand::random::<u64>())
}
