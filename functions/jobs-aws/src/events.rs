//! Jobs' ends published to an EventBridge bus (docs/events.md).

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use jobs_core::job_end::{JobEnd, SOURCE};
use jobs_core::ports::{PublishJobEnds, StoreError};

use crate::metrics::{Emf, Metric, Unit, name};

const UNAVAILABLE: &str = "the job events bus refused or did not answer the request";

/// PutEvents takes at most 10 entries
/// (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html).
pub const MAX_ENTRIES_PER_CALL: usize = 10;

#[derive(Debug, Clone)]
pub struct EventBridgeJobEnds {
    client: Client,
    bus_name: String,
}

impl EventBridgeJobEnds {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self { client, bus_name: bus_name.into() }
    }

    pub fn from_config(config: &aws_config::SdkConfig, bus_name: impl Into<String>) -> Self {
        Self::new(Client::new(config), bus_name)
    }

    /// The one entry a job's end is published as.
    pub fn entry(&self, end: &JobEnd) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(SOURCE)
            .detail_type(end.detail_type())
            .detail(end.detail().to_string())
            .build()
    }
}

impl PublishJobEnds for EventBridgeJobEnds {
    /// One PutEvents call per 10 ends. PutEvents answers 200 even when it
    /// rejects entries: each result entry's error code is checked
    /// (`Entries` answers the request's entries in order, per the API
    /// reference).
    async fn publish_job_ends(&self, ends: &[JobEnd]) -> Vec<Result<(), StoreError>> {
        let mut results = Vec::with_capacity(ends.len());
        for chunk in ends.chunks(MAX_ENTRIES_PER_CALL) {
            let entries: Vec<_> = chunk.iter().map(|end| self.entry(end)).collect();
            match self.client.put_events().set_entries(Some(entries)).send().await {
                Err(e) => {
                    let detail = format!("publishing the jobs' ends failed: {}", DisplayErrorContext(e));
                    results.extend(chunk.iter().map(|_| Err(StoreError::with_detail(UNAVAILABLE, detail.clone()))));
                }
                Ok(answer) => {
                    let answered = answer.entries();
                    results.extend((0..chunk.len()).map(|i| match answered.get(i) {
                        Some(entry) if entry.error_code().is_none() => Ok(()),
                        rejected => Err(StoreError::with_detail(
                            UNAVAILABLE,
                            format!(
                                "the bus rejected the event: {} {}",
                                rejected.and_then(|e| e.error_code()).unwrap_or("(no answer for this entry)"),
                                rejected.and_then(|e| e.error_message()).unwrap_or("")
                            ),
                        )),
                    }));
                }
            }
        }
        results
    }
}

/// Publishes `ends` and accounts for each one: a failure (after the SDK's
/// own retries) changes nothing about a job, whose state is already
/// written; it is logged at ERROR with the job id and counted in
/// `JobEventsNotPublished`, which is alarmed (docs/events.md).
pub async fn publish_accounted<E: PublishJobEnds>(job_ends: &E, ends: &[JobEnd], metrics: &Emf) {
    if ends.is_empty() {
        return;
    }
    let results = job_ends.publish_job_ends(ends).await;
    for (end, result) in ends.iter().zip(results) {
        let job_id = end.job_id.as_str();
        match result {
            Ok(()) => tracing::info!(job_id, detail_type = end.detail_type(), "job end published"),
            Err(e) => {
                tracing::error!(job_id, detail_type = end.detail_type(), error = e.detail(), "job end not published");
                let metric = Metric { name: name::JOB_EVENTS_NOT_PUBLISHED, unit: Unit::Count, value: 1.0 };
                metrics.emit(&[metric], &[("jobId", job_id)]);
            }
        }
    }
}
