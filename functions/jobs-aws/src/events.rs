//! Jobs' ends published to an EventBridge bus (docs/events.md).

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use jobs_core::job_end::{JobEnd, SOURCE};
use jobs_core::ports::{PublishJobEnd, StoreError};

const UNAVAILABLE: &str = "the job events bus refused or did not answer the request";

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

impl PublishJobEnd for EventBridgeJobEnds {
    /// PutEvents answers 200 even when it rejects an entry: the entry's
    /// error code is checked too (FailedEntryCount, per the API reference).
    async fn publish_job_end(&self, end: &JobEnd) -> Result<(), StoreError> {
        let answer = self.client.put_events().entries(self.entry(end)).send().await.map_err(|e| {
            StoreError::with_detail(UNAVAILABLE, format!("publishing the job's end failed: {}", DisplayErrorContext(e)))
        })?;
        if answer.failed_entry_count() == 0 {
            return Ok(());
        }
        let rejected = answer.entries().first();
        let detail = format!(
            "the bus rejected the event: {} {}",
            rejected.and_then(|e| e.error_code()).unwrap_or("(no code)"),
            rejected.and_then(|e| e.error_message()).unwrap_or("(no message)")
        );
        Err(StoreError::with_detail(UNAVAILABLE, detail))
    }
}
