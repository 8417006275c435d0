//! The control API, always on: the IAM
//! denial counts (`/iam/denials`, `iamDenialsUrl` in outputs.json), the
//! memory of every process (`/processes`, `processesUrl`,
//! [`crate::footprint`]) and, with `--faults`, the fault API
//! (`/faults...`, [`faults::FaultControl`]).

pub mod faults;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::footprint::Footprint;
use crate::httpx::{self, Body};
use crate::iam::Iam;
use faults::FaultControl;

pub struct Control {
    pub iam: Arc<Iam>,
    pub footprint: Footprint,
    pub faults: Option<FaultControl>,
}

impl httpx::Handler for Control {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if let Some(resp) = self.iam.control(req.method(), req.uri().path()) {
            return resp;
        }
        if let Some(resp) = self.footprint.control(req.method(), req.uri().path()) {
            return resp;
        }
        match &self.faults {
            Some(faults) if req.uri().path().starts_with("/faults") => faults.handle(req, peer).await,
            None if req.uri().path().starts_with("/faults") => httpx::json_response(
                StatusCode::NOT_FOUND,
                &json!({"message": "fault injection is off: start jobs-local with --faults"}),
            ),
            _ => httpx::json_response(
                StatusCode::NOT_FOUND,
                &json!({"message": "not found: the control API serves /iam/denials, /processes and, with --faults, /faults"}),
            ),
        }
    }
}
