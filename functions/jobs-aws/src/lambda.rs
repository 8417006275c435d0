//! The batch simulator, invoked synchronously through the Lambda API.

use aws_sdk_lambda::Client;
use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use jobs_core::ResultLocation;
use jobs_core::ports::{RunSimulation, SimulationRequest, SimulationResponse, StoreError};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct LambdaSimulator {
    client: Client,
    function_name: String,
}

impl LambdaSimulator {
    pub fn new(client: Client, function_name: impl Into<String>) -> Self {
        Self { client, function_name: function_name.into() }
    }

    pub fn from_config(config: &aws_config::SdkConfig, function_name: impl Into<String>) -> Self {
        Self::new(Client::new(config), function_name)
    }
}

impl RunSimulation for LambdaSimulator {
    async fn run_simulation(&self, request: &SimulationRequest) -> Result<ResultLocation, StoreError> {
        let payload = serde_json::to_vec(request)
            .map_err(|e| StoreError::new(format!("encoding the simulator request failed: {e}")))?;
        let out =
            self.client.invoke().function_name(&self.function_name).payload(Blob::new(payload)).send().await.map_err(
                |e| {
                    let detail = format!("invoking the batch simulator failed: {}", DisplayErrorContext(e));
                    StoreError::with_detail("the batch simulator could not be invoked", detail)
                },
            )?;
        let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
        if out.function_error().is_some() {
            let detail = format!("the batch simulator failed: {}", String::from_utf8_lossy(body));
            return Err(StoreError::with_detail(function_error(body), detail));
        }
        serde_json::from_slice::<SimulationResponse>(body).map(|r| r.location()).map_err(|e| {
            let detail =
                format!("the batch simulator answered something unexpected ({e}): {}", String::from_utf8_lossy(body));
            StoreError::with_detail("the batch simulator answered something unexpected", detail)
        })
    }
}

/// Longest simulator message a job's record shows.
const MAX_SHOWN_CHARS: usize = 300;

/// What a job's record may show of Lambda's error payload
/// (`{"errorType": ..., "errorMessage": ...}`). Lambda's own errors
/// (`Sandbox.Timedout`, `Runtime.ExitError`, ...) quote the request id in
/// their message: only their kind is shown. The simulator's own errors are
/// short texts of this project (it logs the details itself), shown cut to
/// a few hundred characters.
fn function_error(body: &[u8]) -> String {
    let v = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let kind = v["errorType"].as_str().unwrap_or_default();
    if kind == "Sandbox.Timedout" {
        return "the batch simulator timed out".to_owned();
    }
    if kind.starts_with("Runtime.") || kind.starts_with("Sandbox.") || kind.starts_with("Function.") {
        return format!("the batch simulator crashed ({kind})");
    }
    match v["errorMessage"].as_str().filter(|m| !m.is_empty()) {
        Some(message) => {
            let shown: String = message.chars().take(MAX_SHOWN_CHARS).collect();
            format!("the batch simulator failed: {shown}")
        }
        None => "the batch simulator failed".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::function_error;

    #[test]
    fn shows_the_simulators_own_message_and_only_the_kind_of_lambdas_errors() {
        assert_eq!(
            function_error(br#"{"errorType":"X","errorMessage":"could not store the result: the results bucket refused or did not answer the request"}"#),
            "the batch simulator failed: could not store the result: the results bucket refused or did not answer the request"
        );
        let timeout = br#"{"errorType":"Sandbox.Timedout","errorMessage":"RequestId: 6b2d5c0e-1d2a-4b7e-9c1f-0a3b4c5d6e7f Error: Task timed out after 20.00 seconds"}"#;
        assert_eq!(function_error(timeout), "the batch simulator timed out");
        let exit = br#"{"errorType":"Runtime.ExitError","errorMessage":"RequestId: 6b2d5c0e Error: Runtime exited with error: signal: killed"}"#;
        assert_eq!(function_error(exit), "the batch simulator crashed (Runtime.ExitError)");
        assert_eq!(function_error(b"not json"), "the batch simulator failed");
        let long = format!(r#"{{"errorType":"X","errorMessage":"{}"}}"#, "y".repeat(5000));
        assert_eq!(function_error(long.as_bytes()).len(), "the batch simulator failed: ".len() + 300);
    }
}
