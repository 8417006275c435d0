//! What a client submits: a JSON object of job parameters, and the one
//! parameter the simulator itself understands.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::job::{cut, echo};

/// The parameter that makes the simulator fail, so failure paths can be
/// exercised through the public API (see docs/contract.md).
pub const SIMULATE_FAILURE: &str = "simulateFailure";

/// A request body that can never be processed: retrying it cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidJobRequest(pub String);

/// The parsed parameters of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobParameters(pub Map<String, Value>);

impl JobParameters {
    /// The body must be a JSON object; anything else is a permanent failure
    /// whose reason tells the client what was wrong.
    pub fn parse(body: &str) -> Result<Self, InvalidJobRequest> {
        let value: Value = serde_json::from_str(body).map_err(|e| {
            InvalidJobRequest(format!(
                "The job request is not valid JSON ({e}); submit a JSON object such as {{\"region\": \"eu-west-1\"}}."
            ))
        })?;
        let params = match value {
            Value::Object(map) => Self(map),
            other => {
                return Err(InvalidJobRequest(format!(
                    "The job request must be a JSON object, not {}; submit a JSON object such as {{\"region\": \"eu-west-1\"}}.",
                    describe(&other)
                )));
            }
        };
        params.simulated_failure()?;
        Ok(params)
    }

    /// The failure the job asks the simulator for, if any.
    pub fn simulated_failure(&self) -> Result<SimulatedFailure, InvalidJobRequest> {
        SimulatedFailure::from_parameter(self.0.get(SIMULATE_FAILURE))
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A parameter's value as the client wrote it: a string quoted once (by
/// `echo`), anything else as its JSON text, both cut to a safe length.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => echo(s),
        // JSON text escapes control characters itself.
        other => cut(&other.to_string()),
    }
}

/// How the simulator should misbehave for this job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimulatedFailure {
    None,
    /// Fail every attempt: the job ends `failed` and its message in the DLQ.
    Always,
    /// Fail the first N attempts, then succeed.
    FirstAttempts(u32),
}

impl SimulatedFailure {
    fn from_parameter(value: Option<&Value>) -> Result<Self, InvalidJobRequest> {
        match value {
            None | Some(Value::Null) => Ok(Self::None),
            Some(Value::String(s)) if s == "always" => Ok(Self::Always),
            Some(Value::Number(n)) if n.as_u64().is_some() => {
                let n = n.as_u64().unwrap_or_default();
                Ok(Self::FirstAttempts(u32::try_from(n).unwrap_or(u32::MAX)))
            }
            Some(other) => Err(InvalidJobRequest(format!(
                "\"{SIMULATE_FAILURE}\" must be \"always\" or a whole number of attempts to fail, not {}.",
                shown(other)
            ))),
        }
    }

    /// Should attempt number `attempt` (1-based) fail?
    pub fn fails(self, attempt: u32) -> bool {
        match self {
            Self::None => false,
            Self::Always => true,
            Self::FirstAttempts(n) => attempt <= n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_a_job_request() {
        let p = JobParameters::parse(r#"{"region":"eu-west-1","days":3}"#).unwrap();
        assert_eq!(p.0["days"], 3);
        assert_eq!(p.simulated_failure().unwrap(), SimulatedFailure::None);
        assert_eq!(JobParameters::parse("{}").unwrap().0.len(), 0);
    }

    #[test]
    fn anything_but_an_object_is_permanently_invalid_with_a_reason() {
        for (body, says) in [
            ("", "not valid JSON"),
            ("not json", "not valid JSON"),
            ("{\"a\":", "not valid JSON"),
            ("[1,2]", "not an array"),
            ("\"text\"", "not a string"),
            ("42", "not a number"),
            ("null", "not null"),
            ("true", "not a boolean"),
        ] {
            let err = JobParameters::parse(body).unwrap_err().to_string();
            assert!(err.contains(says), "{body:?} gave {err:?}");
            assert!(err.contains("JSON object"), "{err}");
        }
    }

    #[test]
    fn simulate_failure_accepts_always_or_a_count() {
        let parse = |b: &str| JobParameters::parse(b).map(|p| p.simulated_failure().unwrap());
        assert_eq!(parse(r#"{"simulateFailure":"always"}"#).unwrap(), SimulatedFailure::Always);
        assert_eq!(parse(r#"{"simulateFailure":2}"#).unwrap(), SimulatedFailure::FirstAttempts(2));
        assert_eq!(parse(r#"{"simulateFailure":0}"#).unwrap(), SimulatedFailure::FirstAttempts(0));
        assert_eq!(parse(r#"{"simulateFailure":null}"#).unwrap(), SimulatedFailure::None);
        // The value is quoted once, as the client wrote it (not `"\"sometimes\""`).
        for (bad, shown) in [
            (r#""sometimes""#, r#""sometimes""#),
            ("-1", "-1"),
            ("1.5", "1.5"),
            ("true", "true"),
            ("[]", "[]"),
            (r#"{"n":"x"}"#, r#"{"n":"x"}"#),
        ] {
            let err = parse(&format!(r#"{{"simulateFailure":{bad}}}"#)).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(r#""simulateFailure" must be "always" or a whole number of attempts to fail, not {shown}."#),
                "{bad}"
            );
        }
    }

    #[test]
    fn first_attempts_fail_then_succeed() {
        let f = SimulatedFailure::FirstAttempts(2);
        assert_eq!([1, 2, 3].map(|a| f.fails(a)), [true, true, false]);
        assert!(SimulatedFailure::Always.fails(100));
        assert!(!SimulatedFailure::None.fails(1));
        assert!(!SimulatedFailure::FirstAttempts(0).fails(1));
    }
}
