//! The batch simulator's job: honour a requested failure, otherwise write a
//! weather report under the job's deterministic key.

use time::OffsetDateTime;

use crate::job::ResultLocation;
use crate::ports::{PutResult, SimulationRequest, StoreError};
use crate::request::{SIMULATE_FAILURE, SimulatedFailure};
use crate::weather::generate_report;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimulationError {
    /// The job asked to fail (see `simulateFailure` in docs/contract.md).
    #[error("simulated failure requested by the job ({SIMULATE_FAILURE} = {setting}, attempt {attempt})")]
    Requested { setting: String, attempt: u32 },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("could not store the result: {0}")]
    Store(#[from] StoreError),
}

impl SimulationError {
    /// Everything known about the error, for the log; `Display` is what the
    /// job's record may show.
    pub fn detail(&self) -> String {
        match self {
            Self::Store(e) => format!("could not store the result: {}", e.detail()),
            other => other.to_string(),
        }
    }
}

pub async fn simulate<P: PutResult>(
    results: &P,
    request: &SimulationRequest,
    now: OffsetDateTime,
) -> Result<ResultLocation, SimulationError> {
    let failure =
        request.job_request_payload.simulated_failure().map_err(|e| SimulationError::InvalidRequest(e.to_string()))?;
    if failure.fails(request.attempt) {
        let setting = match failure {
            SimulatedFailure::FirstAttempts(n) => n.to_string(),
            _ => "\"always\"".to_owned(),
        };
        return Err(SimulationError::Requested { setting, attempt: request.attempt });
    }
    let body = {
        let mut rng = rand::rng();
        serde_json::to_vec(&generate_report(&mut rng, now))
            .map_err(|e| SimulationError::Store(StoreError::new(e.to_string())))?
    };
    Ok(results.put_result(&request.job_request_id.result_key(), body).await?)
}
