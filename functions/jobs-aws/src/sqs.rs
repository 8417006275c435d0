//! Retry back-off on the jobs queue.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use jobs_core::ports::{DelayRedelivery, StoreError};

#[derive(Debug, Clone)]
pub struct SqsRedelivery {
    client: Client,
    queue_url: String,
}

impl SqsRedelivery {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }

    pub fn from_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(Client::new(config), queue_url)
    }
}

impl DelayRedelivery for SqsRedelivery {
    /// Shortens (or extends) the message's invisibility so the retry comes
    /// after the back-off instead of after the full visibility timeout.
    async fn delay_redelivery(&self, receipt: &str, delay_seconds: u32) -> Result<(), StoreError> {
        self.client
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
