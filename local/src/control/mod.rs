//! The control API, always on: the IAM
//! denial counts (`/iam/denials`, `iamDenialsUrl` in outputs.json), the
//! memory of every process (`/processes`, `processesUrl`,
//! [`crate::footprint`]) and, with `--faults`, the fault API
//! (`/faults...`, [`faults::FaultControl`]).

pub mod faults;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{any, get};
use hyper::{Response, StatusCode};
use serde_json::json;
use tower::Layer as _;
use tower_http::normalize_path::NormalizePathLayer;

use crate::footprint::Footprint;
use crate::httpx::{self, Body};
use crate::iam::Iam;
use faults::FaultControl;

pub struct Control {
    pub iam: Arc<Iam>,
    pub footprint: Footprint,
    pub faults: Option<FaultControl>,
}

impl httpx::Routes for Control {
    fn router(self: Arc<Self>) -> Router {
        let faults = match &self.faults {
            Some(faults) => faults.router(),
            None => Router::new().route("/faults", any(faults_off)).route("/faults/{*rest}", any(faults_off)),
        };
        let routes = Router::new()
            .route("/iam/denials", get(denials).delete(clear_denials).fallback(method_not_allowed))
            .route("/processes", get(processes).fallback(method_not_allowed))
            .with_state(self)
            .merge(faults)
            .fallback(not_found);
        // `/iam/denials/` is `/iam/denials`: the slash goes before routing.
        Router::new().fallback_service(NormalizePathLayer::trim_trailing_slash().layer(routes))
    }
}

/// `GET /iam/denials`: the IAM denials so far, per function and action.
async fn denials(State(control): State<Arc<Control>>) -> Response<Body> {
    httpx::json_response(StatusCode::OK, &control.iam.denials_report())
}

/// `DELETE /iam/denials`: forgets them.
async fn clear_denials(State(control): State<Arc<Control>>) -> Response<Body> {
    control.iam.clear_denials();
    httpx::json_response(StatusCode::OK, &control.iam.denials_report())
}

/// `GET /processes`: the memory of every process, sampled now.
async fn processes(State(control): State<Arc<Control>>) -> Response<Body> {
    control.footprint.sample();
    httpx::json_response(StatusCode::OK, &control.footprint.report())
}

/// A known path with another method.
pub(crate) async fn method_not_allowed() -> Response<Body> {
    message(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

async fn faults_off() -> Response<Body> {
    message(StatusCode::NOT_FOUND, "fault injection is off: start jobs-local with --faults")
}

async fn not_found() -> Response<Body> {
    message(
        StatusCode::NOT_FOUND,
        "not found: the control API serves /iam/denials, /processes and, with --faults, /faults",
    )
}

/// The control API's answers: `{"message": ...}`.
fn message(status: StatusCode, message: &str) -> Response<Body> {
    httpx::json_response(status, &json!({"message": message}))
}
