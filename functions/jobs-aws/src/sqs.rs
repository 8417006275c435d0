//! Retry back-off on the jobs queue.

use std::sync::OnceLock;

use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use jobs_core::ports::{DelayRedelivery, StoreError};

/// Delays a failed job's next delivery. Its SQS client is built on the first
/// retry, not at start: most invocations retry nothing, so a cold start does
/// not pay for a client it rarely needs (docs/performance.md, "cold init").
#[derive(Debug)]
pub struct SqsRedelivery {
    config: SdkConfig,
    client: OnceLock<Client>,
    queue_url: String,
}

impl SqsRedelivery {
    pub fn from_config(config: &SdkConfig, queue_url: impl Into<String>) -> Self {
        Self { config: config.clone(), client: OnceLock::new(), queue_url: queue_url.into() }
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(|| Client::new(&self.config))
    }
}

impl DelayRedelivery for SqsRedelivery {
    /// Shortens (or extends) the message's invisibility so the retry comes
    /// after the back-off instead of after the full visibility timeout.
    async fn delay_redelivery(&self, receipt: &str, delay_seconds: u32) -> Result<(), StoreError> {
        self.client()
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(i32::try_from(delay_seconds).unwrap_or(i32::MAX))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let detail = format!("delaying the retry failed: {}", DisplayErrorContext(e));
                StoreError::with_detail("the jobs queue refused or did not answer the request", detail)
            })
    }
}
