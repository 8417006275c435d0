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
                |e| StoreError::new(format!("invoking the batch simulator failed: {}", DisplayErrorContext(e))),
            )?;
        let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
        if out.function_error().is_some() {
            return Err(StoreError::new(format!("the batch simulator failed: {}", error_message(body))));
        }
        serde_json::from_slice::<SimulationResponse>(body).map(|r| r.location()).map_err(|e| {
            StoreError::new(format!(
                "the batch simulator answered something unexpected ({e}): {}",
                String::from_utf8_lossy(body)
            ))
        })
    }
}

/// Lambda's error payload is `{"errorType": ..., "errorMessage": ...}`.
fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => match (v["errorMessage"].as_str(), v["errorType"].as_str()) {
            (Some(message), _) => message.to_owned(),
            (None, Some(kind)) => kind.to_owned(),
            _ => v.to_string(),
        },
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::error_message;

    #[test]
    fn reads_lambdas_error_payload() {
        assert_eq!(error_message(br#"{"errorType":"X","errorMessage":"boom"}"#), "boom");
        assert_eq!(error_message(br#"{"errorType":"Runtime.ExitError"}"#), "Runtime.ExitError");
        assert_eq!(error_message(b"not json"), "not json");
    }
}
