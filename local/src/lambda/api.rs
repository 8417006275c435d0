//! HTTP side of the Lambda service: the Runtime API (per instance) and the
//! Invoke API (`POST /2015-03-31/functions/{name}/invocations`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::routing::{get, post, put};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use serde_json::{Value, json};

use super::{InFlight, Instance, InvokeError, Invoked, LambdaService, Outcome, PAYLOAD_LIMIT, Pool, lock};
use crate::awserror::AwsError;
use crate::httpx::{self, Body, BodyError, RequestBody};
use crate::intercept::{self, Answer};

pub(super) struct Api {
    pub service: LambdaService,
}

/// The Runtime API's paths under an instance's base URL.
const RUNTIME: &str = "/{function}/{instance}/2018-06-01/runtime";

impl httpx::Routes for Api {
    fn router(self: Arc<Self>) -> Router {
        let invoke_route = post(invoke).fallback(unknown_operation);
        Router::new()
            .route("/2015-03-31/functions/{name}/invocations", invoke_route)
            .route("/2015-03-31/functions/{name}/code", put(update_code).fallback(unknown_operation))
            .route(&format!("{RUNTIME}/invocation/next"), get(next).fallback(unknown_runtime_path))
            .route(&format!("{RUNTIME}/invocation/{{id}}/response"), post(respond).fallback(unknown_runtime_path))
            .route(&format!("{RUNTIME}/invocation/{{id}}/error"), post(report_error).fallback(unknown_runtime_path))
            .route(&format!("{RUNTIME}/init/error"), post(init_error).fallback(unknown_runtime_path))
            .route(RUNTIME, axum::routing::any(unknown_runtime_path))
            .route(&format!("{RUNTIME}/"), axum::routing::any(unknown_runtime_path))
            .route(&format!("{RUNTIME}/{{*rest}}"), axum::routing::any(unknown_runtime_path))
            .fallback(unknown_operation)
            .with_state(self.service.clone())
    }
}

/// The instance a Runtime API request's URL names; a stopped (or unknown)
/// one is answered 404 UnknownInstance, whatever the rest of the path.
struct RuntimeInstance {
    pool: Arc<Pool>,
    inst: Arc<Instance>,
}

impl FromRequestParts<LambdaService> for RuntimeInstance {
    type Rejection = Response<Body>;

    async fn from_request_parts(
        parts: &mut hyper::http::request::Parts,
        service: &LambdaService,
    ) -> Result<Self, Self::Rejection> {
        let params = Path::<HashMap<String, String>>::from_request_parts(parts, service).await.ok();
        let found = params.as_ref().and_then(|Path(p)| {
            let id = p.get("instance")?.parse::<u64>().ok()?;
            service.instance(p.get("function")?, id)
        });
        let Some((pool, inst)) = found else {
            return Err(runtime_error(
                StatusCode::NOT_FOUND,
                "UnknownInstance",
                "no such function instance (it was stopped)",
            ));
        };
        Ok(RuntimeInstance { pool, inst })
    }
}

async fn unknown_operation(method: Method, uri: Uri) -> Response<Body> {
    lambda_error(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        &format!("Unknown operation {method} {}", uri.path()),
    )
}

async fn unknown_runtime_path(_: RuntimeInstance) -> Response<Body> {
    runtime_error(StatusCode::NOT_FOUND, "InvalidRequest", "unknown Runtime API path")
}

/// `GET .../runtime/invocation/next`: long-polls for this instance's next
/// invocation.
async fn next(State(service): State<LambdaService>, RuntimeInstance { pool, inst }: RuntimeInstance) -> Response<Body> {
    inst.ready.send_replace(true);
    let mut shutdown = service.inner.shutdown.subscribe();
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
    put("lambda-runtime-invoked-function-arn", service.function_arn(&pool.spec.name));
    put("lambda-runtime-trace-id", trace_id());
    resp
}

/// `PUT /2015-03-31/functions/{name}/code`: UpdateFunctionCode (code.rs),
/// after the interceptors, as every call (a function's role may not).
async fn update_code(
    State(service): State<LambdaService>,
    Path(name): Path<String>,
    req: Request<RequestBody>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let function = service.function_arn(crate::stack::function_name_from(&name));
    let action = crate::iam::Call { action: "lambda:UpdateFunctionCode".into(), resource: function };
    if let Some(Answer::Refused(refusal)) = intercepted(&service, &parts, &action, &[]) {
        return refusal;
    }
    super::update_function_code(&service, &name, body).await
}

/// What an Invoke API request names: the function and its qualifier, and
/// how to invoke it.
struct InvokeTarget {
    function: String,
    qualifier: Option<String>,
    /// The function's ARN.
    arn: String,
    invocation_type: String,
}

impl InvokeTarget {
    /// The function's name is a name, a partial or full ARN, with or without
    /// a qualifier; the `Qualifier` query parameter takes precedence.
    fn of(service: &LambdaService, name: &str, uri: &Uri, headers: &HeaderMap) -> InvokeTarget {
        let query_qualifier = uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "Qualifier").map(|(_, v)| v.into_owned())
        });
        let function = crate::stack::function_name_from(name).to_string();
        let name_qualifier = name
            .rsplit_once(':')
            .filter(|(head, _)| !head.ends_with(":function") && !head.is_empty())
            .map(|(_, q)| q.to_string());
        let qualifier = query_qualifier.or(if name.starts_with("arn:") { arn_qualifier(name) } else { name_qualifier });
        let invocation_type =
            headers.get("x-amz-invocation-type").and_then(|v| v.to_str().ok()).unwrap_or("RequestResponse").to_string();
        InvokeTarget { arn: service.function_arn(&function), function, qualifier, invocation_type }
    }

    /// The ARN IAM checks and errors show: qualified when the call is.
    fn qualified_arn(&self) -> String {
        match &self.qualifier {
            Some(q) => format!("{}:{q}", self.arn),
            None => self.arn.clone(),
        }
    }
}

/// `POST /2015-03-31/functions/{name}/invocations`: the interceptors (IAM,
/// faults) first, as Lambda authorizes before it looks the function up;
/// then the function, the payload and the invocation type.
async fn invoke(
    State(service): State<LambdaService>,
    Path(name): Path<String>,
    req: Request<RequestBody>,
) -> Response<Body> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let target = InvokeTarget::of(&service, &name, req.uri(), req.headers());
    let (parts, body) = req.into_parts();
    let payload = httpx::read_body(body, PAYLOAD_LIMIT).await;
    let action = crate::iam::Call { action: "lambda:InvokeFunction".into(), resource: target.qualified_arn() };
    let answer = intercepted(&service, &parts, &action, payload.as_deref().unwrap_or_default());
    if let Some(Answer::Refused(refusal)) = answer {
        return refusal;
    }
    let resp = match checked_payload(&service, &target, payload) {
        Err(refusal) => refusal.response(),
        Ok(payload) => match answer {
            Some(Answer::FunctionError(error)) => run_faulted(&service, &target, error),
            _ => run(&service, target, payload).await,
        },
    };
    with_request_id(resp, &request_id)
}

/// The interceptors' answer to a Lambda API call of `action`, if any.
fn intercepted(
    service: &LambdaService,
    parts: &hyper::http::request::Parts,
    action: &crate::iam::Call,
    payload: &[u8],
) -> Option<Answer> {
    let interceptors = service.inner.interceptors.get()?;
    let access_key = crate::iam::calls::access_key(&parts.headers, &parts.uri);
    interceptors.intercept(&intercept::Call {
        service: "lambda",
        method: &parts.method,
        access_key: access_key.as_deref(),
        actions: std::slice::from_ref(action),
        payload,
    })
}

/// An Invoke API error: its status, type and message.
struct Refusal(StatusCode, &'static str, String);

impl Refusal {
    fn response(&self) -> Response<Body> {
        lambda_error(self.0, self.1, &self.2)
    }
}

/// The payload to invoke the function with (`{}` when empty), or why the
/// call is refused: an unknown function or qualifier, a payload too large or
/// not JSON.
fn checked_payload(
    service: &LambdaService,
    target: &InvokeTarget,
    payload: Result<Bytes, BodyError>,
) -> Result<Bytes, Refusal> {
    if !service.has_function(&target.function) || target.qualifier.as_deref().is_some_and(|q| q != "$LATEST") {
        let message = format!("Function not found: {}", target.qualified_arn());
        return Err(Refusal(StatusCode::NOT_FOUND, "ResourceNotFoundException", message));
    }
    let payload = payload.map_err(|e| match e {
        BodyError::TooLarge => Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            "Request must be smaller than 6291456 bytes for the InvokeFunction operation".into(),
        ),
        e => Refusal(StatusCode::BAD_REQUEST, "InvalidRequestContentException", e.to_string()),
    })?;
    if !payload.is_empty() && serde_json::from_slice::<Value>(&payload).is_err() {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json: the payload is not valid JSON".into(),
        ));
    }
    Ok(if payload.is_empty() { Bytes::from_static(b"{}") } else { payload })
}

/// Invokes the function as its invocation type says.
async fn run(service: &LambdaService, target: InvokeTarget, payload: Bytes) -> Response<Body> {
    match target.invocation_type.as_str() {
        "DryRun" => httpx::response(StatusCode::NO_CONTENT, "application/json", Bytes::new()),
        "Event" => {
            let service = service.clone();
            let function = target.function;
            tokio::spawn(async move {
                let result = service.invoke(&function, payload).await;
                warn_if_failed(&function, result.as_ref().map_err(ToString::to_string));
            });
            httpx::response(StatusCode::ACCEPTED, "application/json", Bytes::new())
        }
        "RequestResponse" => {
            let result = service.invoke(&target.function, payload).await;
            synchronous_response(service, &target.function, result)
        }
        other => unsupported_invocation_type(other),
    }
}

/// An invocation an interceptor failed without running the function: as if
/// it had run and failed.
fn run_faulted(service: &LambdaService, target: &InvokeTarget, error: Bytes) -> Response<Body> {
    service.log_fault(&target.function, &error);
    match target.invocation_type.as_str() {
        "DryRun" => httpx::response(StatusCode::NO_CONTENT, "application/json", Bytes::new()),
        "Event" => {
            warn_if_failed(&target.function, Ok(&Invoked::Error(error)));
            httpx::response(StatusCode::ACCEPTED, "application/json", Bytes::new())
        }
        "RequestResponse" => synchronous_response(service, &target.function, Ok(Invoked::Error(error))),
        other => unsupported_invocation_type(other),
    }
}

fn unsupported_invocation_type(other: &str) -> Response<Body> {
    lambda_error(
        StatusCode::BAD_REQUEST,
        "InvalidParameterValueException",
        &format!("Unsupported invocation type {other}"),
    )
}

/// Lambda does not retry asynchronous invocations locally: a failure is
/// logged.
fn warn_if_failed(function: &str, result: Result<&Invoked, String>) {
    match result {
        Ok(Invoked::Response(_)) => {}
        Ok(Invoked::Error(body)) => {
            tracing::warn!(%function, error = %String::from_utf8_lossy(body), "asynchronous invocation failed (not retried locally)")
        }
        Err(e) => tracing::warn!(%function, error = %e, "asynchronous invocation failed (not retried locally)"),
    }
}

/// A RequestResponse invocation's answer: the payload, a function error
/// (`X-Amz-Function-Error: Unhandled`) or the service's error.
fn synchronous_response(
    service: &LambdaService,
    function: &str,
    result: Result<Invoked, InvokeError>,
) -> Response<Body> {
    let mut resp = match result {
        Ok(Invoked::Response(body)) => httpx::response(StatusCode::OK, "application/json", body),
        Ok(Invoked::Error(body)) => {
            let mut r = httpx::response(StatusCode::OK, "application/json", body);
            r.headers_mut().insert("x-amz-function-error", "Unhandled".parse().expect("static header"));
            r
        }
        Err(InvokeError::NotFound(_)) => lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {}", service.function_arn(function)),
        ),
        Err(InvokeError::Throttled(_)) => {
            let mut r = lambda_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException", "Rate Exceeded.");
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
    resp
}

fn arn_qualifier(arn: &str) -> Option<String> {
    // arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
    let parts: Vec<&str> = arn.split(':').collect();
    (parts.len() == 8).then(|| parts[7].to_string())
}

/// The invocation id of a Runtime API path.
#[derive(serde::Deserialize)]
struct Id {
    id: String,
}

/// Takes the in-flight invocation `id` of `inst`, if it is the current one.
fn take_inflight(inst: &Instance, id: &str) -> Option<InFlight> {
    let mut g = lock(&inst.inflight);
    if g.as_ref().is_some_and(|f| f.request_id == id) { g.take() } else { None }
}

/// `POST .../runtime/invocation/{id}/response`
async fn respond(
    RuntimeInstance { inst, .. }: RuntimeInstance,
    Path(Id { id }): Path<Id>,
    req: Request<RequestBody>,
) -> Response<Body> {
    let (inst, id) = (&inst, id.as_str());
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

/// `POST .../runtime/invocation/{id}/error`
async fn report_error(
    RuntimeInstance { inst, .. }: RuntimeInstance,
    Path(Id { id }): Path<Id>,
    req: Request<RequestBody>,
) -> Response<Body> {
    let (inst, id) = (&inst, id.as_str());
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

/// `POST .../runtime/init/error`
async fn init_error(RuntimeInstance { pool, inst }: RuntimeInstance, req: Request<RequestBody>) -> Response<Body> {
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
