//! The fault control API (`jobs-local start --faults`, `faultsUrl` in
//! outputs.json): `GET|PUT|DELETE /faults` reads, sets and clears the shares
//! of [`Faults`], `POST /faults/kill` SIGKILLs a function instance in the
//! middle of an invocation and `POST /faults/restart-pollers` restarts the
//! SQS pollers (docs/local-target.md, "Faults").

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::faults::{FaultConfig, Faults};
use crate::httpx::{self, Body};
use crate::lambda::LambdaService;
use crate::poller::PollerSet;

/// The control API: `GET|PUT|DELETE /faults`, `POST /faults/kill`,
/// `POST /faults/restart-pollers`.
pub struct FaultControl {
    pub faults: Arc<Faults>,
    pub lambda: LambdaService,
    pub pollers: Arc<PollerSet>,
}

impl FaultControl {
    async fn kill(&self, query: &str) -> Response<Body> {
        let params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let Some(function) = params.get("function") else {
            return error(StatusCode::BAD_REQUEST, "query parameter `function` is required (a function name)");
        };
        if !self.lambda.has_function(function) {
            return error(StatusCode::NOT_FOUND, &format!("no function named {function}"));
        }
        let wait = match params.get("waitSeconds").map(|s| s.parse::<f64>()) {
            None => 10.0,
            Some(Ok(s)) if s.is_finite() && (0.0..=120.0).contains(&s) => s,
            Some(_) => return error(StatusCode::BAD_REQUEST, "`waitSeconds` must be a number from 0 to 120"),
        };
        let contains = params.get("payloadContains").map(String::as_str).unwrap_or_default();
        match self.lambda.kill_busy_instance(function, contains, Duration::from_secs_f64(wait)).await {
            Some((pid, request_id)) => {
                let kill = json!({"function": function, "pid": pid, "requestId": request_id, "signal": "SIGKILL"});
                self.faults.record_kill(kill.clone());
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
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    httpx::json_response(status, &json!({"message": message}))
}

impl httpx::Handler for FaultControl {
    async fn handle(&self, req: Request<Incoming>, _peer: SocketAddr) -> Response<Body> {
        let path = req.uri().path().trim_end_matches('/').to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/faults") => httpx::json_response(StatusCode::OK, &self.faults.report()),
            (Method::PUT, "/faults") => {
                let body = match httpx::read_body(req.into_body(), 64 * 1024).await {
                    Ok(b) => b,
                    Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
                };
                let config = match serde_json::from_slice::<FaultConfig>(&body) {
                    Ok(c) => c,
                    Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid fault configuration: {e}")),
                };
                match self.faults.set(config) {
                    Ok(()) => {
                        tracing::info!(?config, "fault injection configured");
                        httpx::json_response(StatusCode::OK, &self.faults.report())
                    }
                    Err(e) => error(StatusCode::BAD_REQUEST, &e),
                }
            }
            (Method::DELETE, "/faults") => {
                self.faults.reset();
                tracing::info!("fault injection off");
                httpx::json_response(StatusCode::OK, &self.faults.report())
            }
            (Method::POST, "/faults/kill") => self.kill(&query).await,
            (Method::POST, "/faults/restart-pollers") => {
                let restarted = self.pollers.restart();
                self.faults.record_poller_restart();
                tracing::info!(restarted, "SQS pollers restarted by fault injection");
                httpx::json_response(StatusCode::OK, &json!({"restarted": restarted}))
            }
            (_, "/faults" | "/faults/kill" | "/faults/restart-pollers") => {
                error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            }
            _ => error(StatusCode::NOT_FOUND, "not found: the fault API serves /faults"),
        }
    }
}
