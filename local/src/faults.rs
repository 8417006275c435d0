//! Fault injection for the local target (`jobs-local start --faults`), so that
//! tests can prove that no job is lost when the platform misbehaves.
//!
//! - The proxy in front of each moto server the functions call (SQS,
//!   DynamoDB, S3, EventBridge, and Cognito for the authorizer's key fetch;
//!   [`crate::proxy`]) answers a chosen share of calls with the service's own
//!   throttling, internal-error or AccessDenied response instead of
//!   forwarding them. The functions' SDK
//!   retries must absorb most of them; what they cannot absorb becomes a
//!   failed attempt that SQS redelivers. The API gateway, the pollers and the
//!   tests talk to moto directly: only the functions see the faults.
//! - The Lambda Invoke API fails the batch simulator for a chosen share of jobs,
//!   chosen by a hash of the job id and a seed, so a job picked once fails on
//!   every attempt (until the share is set back to 0) and ends in the DLQ.
//! - Both kinds reach their calls as the last interceptor of
//!   [`crate::intercept`]'s chain ([`FaultInjection`], after IAM).
//! - A control API (`faultsUrl` in outputs.json; `crate::control::faults`,
//!   a layer above) sets the shares, SIGKILLs a function instance in the
//!   middle of an invocation and restarts the SQS pollers, and reports what
//!   it injected (docs/local-target.md, "Faults").

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hyper::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::awserror::AwsError;
use crate::httpx::Body;
use crate::iam::{self, Iam};
use crate::intercept::{Answer, Call, Interceptor};
use crate::lambda::Invoked;
use crate::lock;

/// The share of calls to fail, per kind of fault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallFaults {
    /// Answered with the service's internal error (HTTP 500).
    #[serde(default)]
    pub error: f64,
    /// Answered with the service's throttling error (HTTP 400, S3: 503).
    #[serde(default)]
    pub throttle: f64,
    /// Answered with the service's AccessDenied error, as an explicit deny in
    /// the caller's policies would be: its message names the role's ARN and
    /// the account, as AWS's does (what a user must never see).
    #[serde(default)]
    pub deny: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorFaults {
    /// The share of jobs whose simulator invocations all fail.
    #[serde(default)]
    pub fail: f64,
    /// Picks which jobs: the same seed picks the same jobs.
    #[serde(default)]
    pub seed: u64,
}

/// What `PUT /faults` sets. Absent sections mean no faults of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    #[serde(default)]
    pub sqs: CallFaults,
    #[serde(default)]
    pub dynamodb: CallFaults,
    #[serde(default)]
    pub s3: CallFaults,
    /// The user pool's endpoints, the authorizer's key (JWKS) fetch included.
    #[serde(default)]
    pub cognito: CallFaults,
    /// EventBridge: job-processor's PutEvents of jobs' ends.
    #[serde(default)]
    pub events: CallFaults,
    #[serde(default)]
    pub simulator: SimulatorFaults,
}

impl FaultConfig {
    /// Every share in [0, 1], and at most 1 per service in total.
    pub fn validate(&self) -> Result<(), String> {
        let share = |name: String, v: f64| {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be between 0 and 1, got {v}"))
            }
        };
        for (service, c) in [
            ("sqs", self.sqs),
            ("dynamodb", self.dynamodb),
            ("s3", self.s3),
            ("cognito", self.cognito),
            ("events", self.events),
        ] {
            share(format!("{service}.error"), c.error)?;
            share(format!("{service}.throttle"), c.throttle)?;
            share(format!("{service}.deny"), c.deny)?;
            if c.error + c.throttle + c.deny > 1.0 {
                return Err(format!("{service}.error + {service}.throttle + {service}.deny must be at most 1"));
            }
        }
        share("simulator.fail".into(), self.simulator.fail)
    }

    fn calls(&self, service: &str) -> CallFaults {
        match service {
            "sqs" => self.sqs,
            "dynamodb" => self.dynamodb,
            "s3" => self.s3,
            "cognito-idp" => self.cognito,
            "events" => self.events,
            _ => CallFaults::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Forward,
    Error,
    Throttle,
    Deny,
}

#[derive(Debug, Default, Clone, Serialize)]
struct CallStats {
    forwarded: u64,
    errors: u64,
    throttles: u64,
    denials: u64,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Injected {
    calls: BTreeMap<String, CallStats>,
    /// Jobs whose simulator invocations were failed, with how many times.
    simulator_failed_jobs: BTreeMap<String, u64>,
    kills: Vec<Value>,
    poller_restarts: u64,
}

/// The shared fault state: the proxies, the Lambda service and the control
/// API read and change it.
pub struct Faults {
    config: Mutex<FaultConfig>,
    injected: Mutex<Injected>,
    /// The batch simulator's function name (the job-processor's
    /// `BATCH_SIMULATOR_FUNCTION_NAME`).
    simulator_function: Option<String>,
}

impl Faults {
    pub fn new(simulator_function: Option<String>) -> Arc<Self> {
        Arc::new(Faults {
            config: Mutex::new(FaultConfig::default()),
            injected: Mutex::new(Injected::default()),
            simulator_function,
        })
    }

    pub fn config(&self) -> FaultConfig {
        *lock(&self.config)
    }

    pub fn set(&self, config: FaultConfig) -> Result<(), String> {
        config.validate()?;
        *lock(&self.config) = config;
        Ok(())
    }

    /// Whether to forward a call to `service`, or which fault to answer.
    pub fn decide(&self, service: &str) -> Decision {
        let c = self.config().calls(service);
        let draw: f64 = if c.error + c.throttle + c.deny > 0.0 { rand::random() } else { 1.0 };
        let decision = if draw < c.throttle {
            Decision::Throttle
        } else if draw < c.throttle + c.error {
            Decision::Error
        } else if draw < c.throttle + c.error + c.deny {
            Decision::Deny
        } else {
            Decision::Forward
        };
        let mut injected = lock(&self.injected);
        let stats = injected.calls.entry(service.to_string()).or_default();
        match decision {
            Decision::Forward => stats.forwarded += 1,
            Decision::Error => stats.errors += 1,
            Decision::Throttle => stats.throttles += 1,
            Decision::Deny => stats.denials += 1,
        }
        decision
    }

    /// The error to answer instead of running `function`, when it is the
    /// simulator and the payload's job is one the configured share picks.
    pub fn simulator_fault(&self, function: &str, payload: &[u8]) -> Option<Invoked> {
        if self.simulator_function.as_deref() != Some(function) {
            return None;
        }
        let s = self.config().simulator;
        if s.fail <= 0.0 {
            return None;
        }
        let job_id = serde_json::from_slice::<Value>(payload)
            .ok()?
            .get("jobRequestId")
            .and_then(Value::as_str)
            .map(str::to_string)?;
        if pick(s.seed, &job_id) >= s.fail {
            return None;
        }
        *lock(&self.injected).simulator_failed_jobs.entry(job_id.clone()).or_default() += 1;
        Some(Invoked::error(
            "InjectedFault",
            &format!("fault injection: the batch simulator fails job {job_id} (share {})", s.fail),
        ))
    }

    /// Records a kill of the fault API (`POST /faults/kill`) for the report.
    pub fn record_kill(&self, kill: Value) {
        lock(&self.injected).kills.push(kill);
    }

    /// Counts a restart of the SQS pollers (`POST /faults/restart-pollers`).
    pub fn record_poller_restart(&self) {
        lock(&self.injected).poller_restarts += 1;
    }

    /// `{"config", "injected"}`: what `GET /faults` answers.
    pub fn report(&self) -> Value {
        json!({"config": self.config(), "injected": &*lock(&self.injected)})
    }

    /// No faults and nothing injected (`DELETE /faults`).
    pub fn reset(&self) {
        *lock(&self.config) = FaultConfig::default();
        *lock(&self.injected) = Injected::default();
    }
}

/// Fault injection as the last interceptor of every function call
/// ([`crate::intercept`], after IAM): a proxied call may be answered with
/// its service's error, throttle or denial; an invocation of the simulator
/// fails for the picked jobs.
pub struct FaultInjection {
    faults: Arc<Faults>,
    /// Names the caller's role in an injected denial.
    iam: Arc<Iam>,
}

impl Faults {
    /// These faults as an interceptor.
    pub fn interceptor(self: &Arc<Self>, iam: Arc<Iam>) -> Arc<dyn Interceptor> {
        Arc::new(FaultInjection { faults: self.clone(), iam })
    }
}

impl Interceptor for FaultInjection {
    fn intercept(&self, call: &Call<'_>) -> Option<Answer> {
        if call.service == "lambda" {
            let invoked = call.actions.iter().find(|a| a.action == "lambda:InvokeFunction")?;
            let function = crate::stack::function_name_from(&invoked.resource);
            return match self.faults.simulator_fault(function, call.payload)? {
                Invoked::Error(error) => Some(Answer::FunctionError(error)),
                Invoked::Response(_) => None,
            };
        }
        match self.faults.decide(call.service) {
            Decision::Forward => None,
            // As if the role's policies denied the call explicitly (not
            // counted as an IAM denial: the stack's policies allowed it).
            Decision::Deny => {
                let denied = self.iam.denial(call.access_key, call.actions.first(), call.service);
                Some(Answer::Refused(iam::denied_response(call.service, call.method, &denied, self.iam.account_id())))
            }
            fault => Some(Answer::Refused(fault_response(call.service, call.method, fault))),
        }
    }
}

/// A stable draw in [0, 1) for a job: FNV-1a of the seed and the job id,
/// spread by splitmix64's finalizer (FNV alone clusters similar ids).
fn pick(seed: u64, job_id: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(job_id.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The service's own answer to a call it refuses, as its SDK parses it
/// (an error or a throttle; a denial is answered by the proxy, which knows
/// the caller's role).
pub fn fault_response(service: &str, method: &Method, decision: Decision) -> Response<Body> {
    let throttle = decision == Decision::Throttle;
    let (status, kind, query_error) = match (service, throttle) {
        ("s3", true) => (StatusCode::SERVICE_UNAVAILABLE, "SlowDown", None),
        ("s3", false) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError", None),
        ("sqs", true) => {
            (StatusCode::BAD_REQUEST, "com.amazonaws.sqs#RequestThrottled", Some("RequestThrottled;Sender"))
        }
        ("sqs", false) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "com.amazonaws.sqs#InternalError", Some("InternalError;Receiver"))
        }
        ("cognito-idp", true) => {
            (StatusCode::BAD_REQUEST, "com.amazonaws.cognito.identity.idp.model#TooManyRequestsException", None)
        }
        ("cognito-idp", false) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "com.amazonaws.cognito.identity.idp.model#InternalErrorException", None)
        }
        ("events", true) => (StatusCode::BAD_REQUEST, "ThrottlingException", None),
        ("events", false) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalException", None),
        (_, true) => (StatusCode::BAD_REQUEST, "com.amazonaws.dynamodb.v20120810#ThrottlingException", None),
        (_, false) => (StatusCode::INTERNAL_SERVER_ERROR, "com.amazonaws.dynamodb.v20120810#InternalServerError", None),
    };
    // S3 says what went wrong in words; the JSON services name the error.
    let message = match (service, throttle) {
        ("s3", true) => "Please reduce your request rate.",
        ("s3", false) => "We encountered an internal error. Please try again.",
        _ => kind.rsplit('#').next().unwrap_or(kind),
    };
    let message = format!("fault injection: {message}");
    AwsError { status, kind, message: &message, query_error }.response(service, method)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn shares_are_validated() {
        let mut c = FaultConfig::default();
        assert!(c.validate().is_ok());
        c.dynamodb.error = 1.5;
        assert_eq!(c.validate().unwrap_err(), "dynamodb.error must be between 0 and 1, got 1.5");
        c.dynamodb = CallFaults { error: 0.6, throttle: 0.6, deny: 0.0 };
        assert_eq!(c.validate().unwrap_err(), "dynamodb.error + dynamodb.throttle + dynamodb.deny must be at most 1");
        c.dynamodb = CallFaults { error: 0.5, throttle: 0.0, deny: 0.6 };
        assert!(c.validate().is_err());
        c.dynamodb = CallFaults::default();
        c.simulator.fail = f64::NAN;
        assert!(c.validate().unwrap_err().starts_with("simulator.fail must be between 0 and 1"));
        assert!(serde_json::from_str::<FaultConfig>(r#"{"dynamo": {}}"#).is_err(), "unknown sections are refused");
    }

    #[test]
    fn decisions_follow_the_shares() {
        let faults = Faults::new(None);
        assert!((0..100).all(|_| faults.decide("s3") == Decision::Forward));
        faults
            .set(FaultConfig { s3: CallFaults { throttle: 1.0, ..Default::default() }, ..Default::default() })
            .unwrap();
        assert!((0..100).all(|_| faults.decide("s3") == Decision::Throttle));
        assert!((0..100).all(|_| faults.decide("sqs") == Decision::Forward), "other services are untouched");
        faults.set(FaultConfig { s3: CallFaults { error: 0.5, ..Default::default() }, ..Default::default() }).unwrap();
        let errors = (0..2000).filter(|_| faults.decide("s3") == Decision::Error).count();
        assert!((800..1200).contains(&errors), "about half: {errors}");
        let denying = FaultConfig { cognito: CallFaults { deny: 1.0, ..Default::default() }, ..Default::default() };
        faults.set(denying).unwrap();
        assert!((0..100).all(|_| faults.decide("cognito-idp") == Decision::Deny));
    }

    #[test]
    fn the_simulator_fails_the_same_jobs_for_the_same_seed() {
        let faults = Faults::new(Some("sim".into()));
        let payload = |id: &str| json!({"jobRequestId": id, "attempt": 1}).to_string();
        let ids: Vec<String> = (0..1000).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect();
        assert!(ids.iter().all(|id| faults.simulator_fault("sim", payload(id).as_bytes()).is_none()));
        faults.set(FaultConfig { simulator: SimulatorFaults { fail: 0.2, seed: 7 }, ..Default::default() }).unwrap();
        let failed: BTreeSet<&String> =
            ids.iter().filter(|id| faults.simulator_fault("sim", payload(id).as_bytes()).is_some()).collect();
        assert!((120..280).contains(&failed.len()), "about a fifth: {}", failed.len());
        let again: BTreeSet<&String> =
            ids.iter().filter(|id| faults.simulator_fault("sim", payload(id).as_bytes()).is_some()).collect();
        assert_eq!(failed, again, "a picked job fails on every attempt");
        assert!(ids.iter().all(|id| faults.simulator_fault("other", payload(id).as_bytes()).is_none()));
        let Some(Invoked::Error(body)) = faults.simulator_fault("sim", payload(failed.first().unwrap()).as_bytes())
        else {
            panic!("expected an error");
        };
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["errorType"], "InjectedFault");
    }

    #[test]
    fn fault_responses_speak_each_services_protocol() {
        let r = fault_response("dynamodb", &Method::POST, Decision::Throttle);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = fault_response("s3", &Method::GET, Decision::Throttle);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let r = fault_response("sqs", &Method::POST, Decision::Error);
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.headers()["x-amzn-query-error"], "InternalError;Receiver");
        let r = fault_response("events", &Method::POST, Decision::Throttle);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = fault_response("events", &Method::POST, Decision::Error);
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn events_faults_are_configured_and_bounded_like_the_others() {
        let config: FaultConfig = serde_json::from_str(r#"{"events": {"error": 1.0}}"#).unwrap();
        assert_eq!(config.calls("events").error, 1.0);
        assert_eq!(config.validate(), Ok(()));
        let too_much: FaultConfig = serde_json::from_str(r#"{"events": {"error": 0.6, "throttle": 0.6}}"#).unwrap();
        assert!(too_much.validate().unwrap_err().contains("events.error + events.throttle"));
    }
}
