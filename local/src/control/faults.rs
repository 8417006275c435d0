//! The fault control API (`jobs-local start --faults`, `faultsUrl` in
//! outputs.json): `GET|PUT|DELETE /faults` reads, sets and clears the shares
//! of [`Faults`], `POST /faults/kill` SIGKILLs a function instance in the
//! middle of an invocation and `POST /faults/restart-pollers` restarts the
//! SQS pollers (docs/local-target.md, "Faults").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::{any, get, post};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use super::method_not_allowed;
use crate::faults::{FaultConfig, Faults};
use crate::httpx::{self, Body, RequestBody};
use crate::lambda::LambdaService;
use crate::poller::PollerSet;

/// The control API: `GET|PUT|DELETE /faults`, `POST /faults/kill`,
/// `POST /faults/restart-pollers`.
#[derive(Clone)]
pub struct FaultControl {
    pub faults: Arc<Faults>,
    pub lambda: LambdaService,
    pub pollers: Arc<PollerSet>,
}

impl FaultControl {
    /// The fault API's routes (`/faults...`), in the control API.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/faults", get(report).put(configure).delete(reset).fallback(method_not_allowed))
            .route("/faults/kill", post(kill).fallback(method_not_allowed))
            .route("/faults/restart-pollers", post(restart_pollers).fallback(method_not_allowed))
            .route("/faults/stop-pollers", post(stop_pollers).fallback(method_not_allowed))
            .route("/faults/{*rest}", any(not_found))
            .with_state(Arc::new(self.clone()))
    }
}

/// `GET /faults`: the configuration and what was injected.
async fn report(State(control): State<Arc<FaultControl>>) -> Response<Body> {
    httpx::json_response(StatusCode::OK, &control.faults.report())
}

/// `PUT /faults`: sets the shares.
async fn configure(State(control): State<Arc<FaultControl>>, req: Request<RequestBody>) -> Response<Body> {
    let body = match httpx::read_body(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let config = match serde_json::from_slice::<FaultConfig>(&body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid fault configuration: {e}")),
    };
    match control.faults.set(config) {
        Ok(()) => {
            tracing::info!(?config, "fault injection configured");
            httpx::json_response(StatusCode::OK, &control.faults.report())
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &e),
    }
}

/// `DELETE /faults`: no faults, nothing injected.
async fn reset(State(control): State<Arc<FaultControl>>) -> Response<Body> {
    control.faults.reset();
    tracing::info!("fault injection off");
    httpx::json_response(StatusCode::OK, &control.faults.report())
}

/// `POST /faults/restart-pollers`
async fn restart_pollers(State(control): State<Arc<FaultControl>>) -> Response<Body> {
    let restarted = control.pollers.restart();
    control.faults.record_poller_restart();
    tracing::info!(restarted, "SQS pollers restarted by fault injection");
    httpx::json_response(StatusCode::OK, &json!({"restarted": restarted}))
}

/// `POST /faults/stop-pollers`: stops every SQS poller until
/// `restart-pollers`, so that messages wait in their queues (a cancel
/// before a job's first delivery). Answers once no receive a stopped poller
/// had sent can still take a message: aborting a poller does not end its
/// long poll in the SQS server, which would take the next message sent
/// within its wait and hide it for the visibility timeout.
async fn stop_pollers(State(control): State<Arc<FaultControl>>) -> Response<Body> {
    let stopped = control.pollers.stop();
    let wait_seconds = u64::try_from(crate::poller::WAIT_SECONDS).unwrap_or(1);
    tokio::time::sleep(std::time::Duration::from_millis(wait_seconds * 1000 + 500)).await;
    tracing::info!(stopped, "SQS pollers stopped by fault injection");
    httpx::json_response(StatusCode::OK, &json!({"stopped": stopped}))
}

async fn not_found() -> Response<Body> {
    error(StatusCode::NOT_FOUND, "not found: the fault API serves /faults")
}

/// `POST /faults/kill?function=...[&waitSeconds=...][&payloadContains=...]`:
/// SIGKILLs an instance of the function in the middle of an invocation.
async fn kill(
    State(control): State<Arc<FaultControl>>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response<Body> {
    let Some(function) = params.get("function") else {
        return error(StatusCode::BAD_REQUEST, "query parameter `function` is required (a function name)");
    };
    if !control.lambda.has_function(function) {
        return error(StatusCode::NOT_FOUND, &format!("no function named {function}"));
    }
    let wait = match params.get("waitSeconds").map(|s| s.parse::<f64>()) {
        None => 10.0,
        Some(Ok(s)) if s.is_finite() && (0.0..=120.0).contains(&s) => s,
        Some(_) => return error(StatusCode::BAD_REQUEST, "`waitSeconds` must be a number from 0 to 120"),
    };
    let contains = params.get("payloadContains").map(String::as_str).unwrap_or_default();
    match control.lambda.kill_busy_instance(function, contains, Duration::from_secs_f64(wait)).await {
        Some((pid, request_id)) => {
            let kill = json!({"function": function, "pid": pid, "requestId": request_id, "signal": "SIGKILL"});
            control.faults.record_kill(kill.clone());
            httpx::json_response(StatusCode::OK, &kill)
        }
        None => error(
            StatusCode::CONFLICT,
            &format!(
                "no instance of {function} was running an invocation{} within {wait} s: nothing killed",
                if contains.is_empty() { String::new() } else { format!(" whose event contains {contains:?}") }
            ),
        ),
    }
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    httpx::json_response(status, &json!({"message": message}))
}
