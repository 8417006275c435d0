//! Business metrics as CloudWatch Embedded Metric Format: one JSON line per
//! event on stdout, which Lambda ships to the function's log group and
//! CloudWatch turns into metrics. No API calls, no extra latency.

use jobs_core::Timestamp;
use jobs_core::processing::JobEvent;
use serde_json::{Map, Value, json};

use crate::config::{ConfigError, env_var};

/// Metric names, shared with the dashboard and alarms in cdktf/.
pub mod name {
    pub const JOBS_RECORDED: &str = "JobsRecorded";
    pub const JOBS_COMPLETED: &str = "JobsCompleted";
    pub const JOBS_FAILED: &str = "JobsFailed";
    /// A job its owner cancelled (job-commands).
    pub const JOBS_CANCELLED: &str = "JobsCancelled";
    pub const JOB_DURATION: &str = "JobDuration";
    pub const SIMULATION_DURATION: &str = "SimulationDuration";
    pub const SIMULATED_FAILURES: &str = "SimulatedFailures";
    /// A job's end that could not be published to the events bus (alarmed).
    pub const JOB_EVENTS_NOT_PUBLISHED: &str = "JobEventsNotPublished";
    /// A webhook the receiver accepted (2xx; webhook-sender).
    pub const WEBHOOKS_DELIVERED: &str = "WebhooksDelivered";
    /// A webhook attempt that failed (it is retried, or given up on).
    pub const WEBHOOK_ATTEMPTS_FAILED: &str = "WebhookAttemptsFailed";
    /// A webhook never sent: its URL may not be called.
    pub const WEBHOOKS_REFUSED: &str = "WebhooksRefused";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One metric value of one event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    pub value: f64,
}

/// The metrics a job event is counted in.
pub fn metrics_of(event: JobEvent) -> Vec<Metric> {
    let count = |name| Metric { name, unit: Unit::Count, value: 1.0 };
    match event {
        JobEvent::Recorded => vec![count(name::JOBS_RECORDED)],
        JobEvent::Completed { duration_ms } => vec![
            count(name::JOBS_COMPLETED),
            Metric { name: name::JOB_DURATION, unit: Unit::Milliseconds, value: duration_ms as f64 },
        ],
        JobEvent::Failed => vec![count(name::JOBS_FAILED)],
    }
}

#[derive(Debug, Clone)]
pub struct Emf {
    namespace: String,
}

impl Emf {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self { namespace: namespace.into() }
    }

    /// `METRICS_NAMESPACE`, set by the app stack.
    pub fn from_env() -> Result<Self, ConfigError> {
        env_var("METRICS_NAMESPACE").map(Self::new)
    }

    /// The EMF document for one event: its metrics (no dimensions) plus
    /// searchable properties such as the job id.
    pub fn line(&self, metrics: &[Metric], properties: &[(&str, &str)], at: Timestamp) -> String {
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": at.millis(),
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [[]],
                    "Metrics": metrics.iter().map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()})).collect::<Vec<_>>(),
                }],
            }),
        );
        for m in metrics {
            doc.insert(m.name.into(), json!(m.value));
        }
        for (key, value) in properties {
            doc.insert((*key).into(), Value::from(*value));
        }
        Value::Object(doc).to_string()
    }

    /// Write one event's line to stdout.
    pub fn emit(&self, metrics: &[Metric], properties: &[(&str, &str)]) {
        if !metrics.is_empty() {
            println!("{}", self.line(metrics, properties, Timestamp::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completed_job_is_one_emf_line_with_count_and_duration() {
        let line = Emf::new("JobIngestion/dev").line(
            &metrics_of(JobEvent::Completed { duration_ms: 1234 }),
            &[("jobId", "abc")],
            Timestamp(1_795_000_000_000),
        );
        assert!(!line.contains('\n'));
        let doc: Value = serde_json::from_str(&line).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_795_000_000_000u64);
        assert_eq!(directive["Namespace"], "JobIngestion/dev");
        assert_eq!(directive["Dimensions"], json!([[]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "JobsCompleted", "Unit": "Count"}, {"Name": "JobDuration", "Unit": "Milliseconds"}])
        );
        assert_eq!((doc["JobsCompleted"].as_f64(), doc["JobDuration"].as_f64()), (Some(1.0), Some(1234.0)));
        assert_eq!(doc["jobId"], "abc");
    }

    #[test]
    fn every_event_has_its_metric() {
        assert_eq!(metrics_of(JobEvent::Recorded)[0].name, "JobsRecorded");
        assert_eq!(metrics_of(JobEvent::Failed)[0].name, "JobsFailed");
    }
}
