use std::time::Instant;

use jobs_aws::Emf;
use jobs_aws::metrics::{Metric, Unit, name};
use jobs_core::ports::{PutResult, SimulationRequest, SimulationResponse};
use jobs_core::simulation::{SimulationError, simulate};
use lambda_runtime::{Error, LambdaEvent};
use time::OffsetDateTime;

/// Simulate one job's batch run: honour a requested failure, otherwise write
/// the weather report to `results/<jobId>.json` and say where it is.
pub async fn simulate_batch<P: PutResult>(
    results: &P,
    metrics: &Emf,
    event: LambdaEvent<SimulationRequest>,
) -> Result<SimulationResponse, Error> {
    let request = event.payload;
    let id = request.job_request_id.clone();
    let started = Instant::now();
    let outcome = simulate(results, &request, OffsetDateTime::now_utc()).await;
    let job_id = [("jobId", id.as_str())];
    match outcome {
        Ok(location) => {
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            metrics
                .emit(&[Metric { name: name::SIMULATION_DURATION, unit: Unit::Milliseconds, value: elapsed }], &job_id);
            tracing::info!(job_id = %id, attempt = request.attempt, key = %location.key, "weather data written");
            Ok(SimulationResponse::complete(&id, &location))
        }
        Err(e) => {
            if matches!(e, SimulationError::Requested { .. }) {
                metrics.emit(&[Metric { name: name::SIMULATED_FAILURES, unit: Unit::Count, value: 1.0 }], &job_id);
            }
            // The full error goes to the log; the answer (which ends up in the
            // job's record) is the short text.
            tracing::warn!(job_id = %id, attempt = request.attempt, error = e.detail(), "simulation failed");
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobs_core::memory::MemoryResultStore;
    use jobs_core::weather::WeatherReport;
    use lambda_runtime::Context;

    fn event(fixture: &str) -> LambdaEvent<SimulationRequest> {
        LambdaEvent::new(serde_json::from_str(fixture).unwrap(), Context::default())
    }

    #[tokio::test]
    async fn writes_99_records_under_the_jobs_key_and_answers_like_the_reference() {
        let results = MemoryResultStore::new("results");
        let response =
            simulate_batch(&results, &Emf::new("test"), event(include_str!("../fixtures/request.json"))).await.unwrap();
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["statusCode"], 200);
        assert_eq!(json["body"]["jobStatus"], "complete");
        assert_eq!(json["body"]["jobPayloadLocation"], "results");
        let key = "results/6f0cbb4e-3c8a-4b6e-9d61-1b9e7c0f2a55.json";
        assert_eq!(json["body"]["jobPayloadKey"], key);
        let report: WeatherReport = serde_json::from_slice(&results.objects()[key]).unwrap();
        assert_eq!(report.weather_data.len(), 99);
    }

    #[tokio::test]
    async fn a_rerun_overwrites_rather_than_duplicates() {
        let results = MemoryResultStore::new("results");
        for _ in 0..2 {
            simulate_batch(&results, &Emf::new("test"), event(include_str!("../fixtures/request.json"))).await.unwrap();
        }
        assert_eq!((results.puts(), results.objects().len()), (2, 1));
    }

    #[tokio::test]
    async fn a_requested_failure_fails_only_the_attempts_asked_for() {
        let results = MemoryResultStore::new("results");
        let fixture = include_str!("../fixtures/request-fail-twice.json");
        let err = simulate_batch(&results, &Emf::new("test"), event(fixture)).await.unwrap_err().to_string();
        assert!(err.contains("simulated failure") && err.contains("attempt 2"), "{err}");
        assert!(results.objects().is_empty());
        let third = fixture.replace("\"attempt\": 2", "\"attempt\": 3");
        simulate_batch(&results, &Emf::new("test"), event(&third)).await.unwrap();
        assert_eq!(results.objects().len(), 1);
    }
}
