//! The jobs queue: a submitted job's message, and the retry back-off.

use std::sync::OnceLock;

use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use jobs_core::Submission;
use jobs_core::ports::{DelayRedelivery, StoreError};
use jobs_core::submission::{EnqueueError, EnqueueJob};

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

/// The message attributes a job's message carries (job-processor reads them).
pub mod message_attribute {
    /// The job's id (the API gave it before the message existed, so it is not the MessageId).
    pub const JOB_ID: &str = "jobId";
    /// The submitter: a Cognito `sub`, or an IAM principal's ARN.
    pub const OWNER: &str = "owner";
    /// The `Job-Callback-Url` of the submit, checked.
    pub const CALLBACK_URL: &str = "callbackUrl";
}

/// Sends submitted jobs to the jobs queue. Its client is built at start:
/// every invocation of the submit sends.
#[derive(Debug, Clone)]
pub struct SqsJobQueue {
    client: Client,
    queue_url: String,
}

impl SqsJobQueue {
    pub fn from_config(config: &SdkConfig, queue_url: impl Into<String>) -> Self {
        Self { client: Client::new(config), queue_url: queue_url.into() }
    }
}

fn string_attribute(value: &str) -> aws_sdk_sqs::types::MessageAttributeValue {
    aws_sdk_sqs::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

impl EnqueueJob for SqsJobQueue {
    async fn enqueue_job(&self, submission: &Submission) -> Result<(), EnqueueError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&submission.payload)
            .message_attributes(message_attribute::JOB_ID, string_attribute(submission.id.as_str()));
        if let Some(owner) = &submission.owner {
            request = request.message_attributes(message_attribute::OWNER, string_attribute(owner));
        }
        if let Some(callback) = &submission.callback {
            request = request.message_attributes(message_attribute::CALLBACK_URL, string_attribute(&callback.url));
        }
        request.send().await.map(|_| ()).map_err(|e| {
            use aws_sdk_sqs::error::ProvideErrorMetadata;
            let detail = format!("sending the job's message failed: {}", DisplayErrorContext(&e));
            // SQS refuses a message it will never take (too long, characters
            // it does not allow) with these; anything else may pass.
            let refused = e.as_service_error().and_then(|s| s.code()).is_some_and(|code| {
                matches!(code, "InvalidMessageContents" | "InvalidParameterValue" | "MessageTooLong")
            });
            if refused {
                EnqueueError::Refused(detail)
            } else {
                EnqueueError::Unavailable(StoreError::with_detail(
                    "the jobs queue refused or did not answer the request",
                    detail,
                ))
            }
        })
    }
}
