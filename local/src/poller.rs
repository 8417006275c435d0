//! SQS event source mappings: pollers that receive batches, invoke the
//! function with the SQS event Lambda builds, and delete what succeeded.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::lambda::{InvokeError, Invoked, LambdaService};
use crate::model::EventSourceMapping;

/// Concurrent batches per mapping when `scaling_config` sets none (Lambda
/// starts SQS polling with five).
pub const DEFAULT_POLLERS: u64 = 5;
/// Long-poll wait: short, so shutdown is quick.
pub const WAIT_SECONDS: i32 = 1;

/// Concurrent batches of an enabled mapping.
fn pollers_of(mapping: &EventSourceMapping) -> u64 {
    mapping.maximum_concurrency.unwrap_or(DEFAULT_POLLERS).max(1)
}

/// Starts the mapping's pollers; they stop when `shutdown` turns true.
pub fn spawn(
    mapping: &EventSourceMapping,
    sqs: aws_sdk_sqs::Client,
    lambda: LambdaService,
    region: &str,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    if !mapping.enabled {
        tracing::info!(mapping = %mapping.address, "event source mapping is disabled");
        return Vec::new();
    }
    let n = pollers_of(mapping);
    (0..n)
        .map(|i| {
            let p = Poller {
                mapping: mapping.clone(),
                sqs: sqs.clone(),
                lambda: lambda.clone(),
                region: region.to_string(),
                index: i,
            };
            let shutdown = shutdown.clone();
            tokio::spawn(p.run(shutdown))
        })
        .collect()
}

/// The pollers of every mapping, restartable as a whole (fault injection:
/// a restart drops the batches in hand, as a crashed poller would; their
/// messages return when their visibility timeout ends).
pub struct PollerSet {
    mappings: Vec<EventSourceMapping>,
    sqs: aws_sdk_sqs::Client,
    lambda: LambdaService,
    region: String,
    shutdown: watch::Receiver<bool>,
    handles: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl PollerSet {
    /// Starts the pollers of `mappings`; they stop when `shutdown` turns true.
    pub fn start(
        mappings: Vec<EventSourceMapping>,
        sqs: aws_sdk_sqs::Client,
        lambda: LambdaService,
        region: &str,
        shutdown: watch::Receiver<bool>,
    ) -> std::sync::Arc<Self> {
        let set = PollerSet {
            mappings,
            sqs,
            lambda,
            region: region.to_string(),
            shutdown,
            handles: std::sync::Mutex::new(Vec::new()),
        };
        *crate::lock(&set.handles) = set.spawn_all();
        std::sync::Arc::new(set)
    }

    fn spawn_all(&self) -> Vec<JoinHandle<()>> {
        self.mappings
            .iter()
            .flat_map(|m| spawn(m, self.sqs.clone(), self.lambda.clone(), &self.region, self.shutdown.clone()))
            .collect()
    }

    /// How many pollers each mapping runs (in `mappings` order).
    pub fn pollers_per_mapping(&self) -> Vec<u64> {
        self.mappings.iter().map(|m| if m.enabled { pollers_of(m) } else { 0 }).collect()
    }

    /// Aborts every poller and starts new ones; returns how many run now.
    pub fn restart(&self) -> usize {
        let mut handles = crate::lock(&self.handles);
        for h in handles.drain(..) {
            h.abort();
        }
        *handles = self.spawn_all();
        handles.len()
    }

    /// Aborts every poller and starts none (fault injection: messages wait in
    /// their queues until [`Self::restart`]); returns how many were stopped.
    pub fn stop(&self) -> usize {
        let mut handles = crate::lock(&self.handles);
        let stopped = handles.len();
        for h in handles.drain(..) {
            h.abort();
        }
        stopped
    }

    /// The running pollers' handles, for shutdown.
    pub fn take_handles(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *crate::lock(&self.handles))
    }
}

struct Poller {
    mapping: EventSourceMapping,
    sqs: aws_sdk_sqs::Client,
    lambda: LambdaService,
    region: String,
    index: u64,
}

impl Poller {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let batch = tokio::select! {
                b = self.receive_batch() => b,
                _ = crate::httpx::wait_true(&mut shutdown) => return,
            };
            let messages = match batch {
                Ok(m) => {
                    backoff = Duration::from_millis(100);
                    m
                }
                Err(e) => {
                    tracing::warn!(mapping = %self.mapping.address, poller = self.index, error = %e, "ReceiveMessage failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            // A batch in hand is processed to the end, even during shutdown.
            self.process(messages).await;
        }
    }

    /// Up to `batch_size` messages, gathering for up to the batching window.
    async fn receive_batch(&self) -> Result<Vec<Message>, String> {
        let want = self.mapping.batch_size as usize;
        let mut messages = self.receive(want.min(10), WAIT_SECONDS).await?;
        if messages.is_empty() || self.mapping.batching_window_secs == 0 {
            return Ok(messages);
        }
        let window_end = Instant::now() + Duration::from_secs(self.mapping.batching_window_secs);
        while messages.len() < want {
            let left = window_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let wait = left.as_secs().min(WAIT_SECONDS as u64) as i32;
            let more = self.receive((want - messages.len()).min(10), wait).await?;
            if more.is_empty() && wait == 0 {
                break;
            }
            messages.extend(more);
        }
        Ok(messages)
    }

    async fn receive(&self, max: usize, wait: i32) -> Result<Vec<Message>, String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.mapping.queue_url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())?;
        Ok(out.messages.unwrap_or_default())
    }

    async fn process(&self, messages: Vec<Message>) {
        let event = sqs_event(&messages, &self.mapping.queue_arn, &self.region);
        let ids: Vec<&str> = messages.iter().map(|m| m.message_id().unwrap_or_default()).collect();
        let payload = Bytes::from(serde_json::to_vec(&event).expect("an SQS event serializes"));
        let mut throttle_wait = Duration::from_millis(50);
        let result = loop {
            match self.lambda.invoke(&self.mapping.function, payload.clone()).await {
                Err(InvokeError::Throttled(_)) if throttle_wait < Duration::from_secs(5) => {
                    tokio::time::sleep(throttle_wait).await;
                    throttle_wait *= 2;
                }
                other => break other,
            }
        };
        let response = match &result {
            Ok(Invoked::Response(body)) => Some(body.as_ref()),
            Ok(Invoked::Error(body)) => {
                tracing::info!(mapping = %self.mapping.address, messages = ids.len(), error = %String::from_utf8_lossy(body), "function error: the batch returns to the queue");
                None
            }
            Err(e) => {
                tracing::warn!(mapping = %self.mapping.address, messages = ids.len(), error = %e, "invoke failed: the batch returns to the queue");
                None
            }
        };
        let delete = match messages_to_delete(self.mapping.report_batch_item_failures, response, &ids) {
            Ok(d) => d,
            Err(reason) => {
                tracing::warn!(mapping = %self.mapping.address, %reason, "the whole batch is treated as failed");
                Vec::new()
            }
        };
        let entries: Vec<_> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| delete.iter().any(|d| d == m.message_id().unwrap_or_default()))
            .filter_map(|(i, m)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        for chunk in entries.chunks(10) {
            match self
                .sqs
                .delete_message_batch()
                .queue_url(&self.mapping.queue_url)
                .set_entries(Some(chunk.to_vec()))
                .send()
                .await
            {
                Ok(out) if !out.failed().is_empty() => {
                    tracing::warn!(mapping = %self.mapping.address, failed = out.failed().len(), "some messages could not be deleted")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(mapping = %self.mapping.address, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "DeleteMessageBatch failed")
                }
            }
        }
    }
}

/// The SQS event Lambda passes to the function: the type the functions
/// deserialize (aws_lambda_events), so a shape mismatch does not compile.
pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id().map(str::to_string);
            record.receipt_handle = m.receipt_handle().map(str::to_string);
            record.body = Some(m.body().unwrap_or_default().to_string());
            record.md5_of_body = m.md5_of_body().map(str::to_string);
            record.md5_of_message_attributes = m.md5_of_message_attributes().map(str::to_string);
            record.attributes =
                m.attributes().into_iter().flatten().map(|(k, v)| (k.as_str().to_string(), v.clone())).collect();
            record.message_attributes = m
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(name, v)| {
                    let mut attr = SqsMessageAttribute::default();
                    attr.string_value = v.string_value().map(str::to_string);
                    attr.binary_value = v.binary_value().map(|b| base64_data(b.as_ref()));
                    attr.string_list_values = v.string_list_values().to_vec();
                    attr.binary_list_values = v.binary_list_values().iter().map(|b| base64_data(b.as_ref())).collect();
                    attr.data_type = Some(v.data_type().to_string());
                    (name.clone(), attr)
                })
                .collect();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(queue_arn.to_string());
            record.aws_region = Some(region.to_string());
            record
        })
        .collect();
    event
}

fn base64_data(bytes: &[u8]) -> Base64Data {
    let mut data = Base64Data::default();
    data.extend_from_slice(bytes);
    data
}

/// Which message ids to delete after an invocation, the way Lambda decides:
/// `response` is the function's payload (`None` = function error: delete
/// none). With ReportBatchItemFailures, the ids in `batchItemFailures` stay;
/// a malformed response or an unknown/empty `itemIdentifier` fails the whole
/// batch (`Err` with the reason).
pub fn messages_to_delete(
    report_batch_item_failures: bool,
    response: Option<&[u8]>,
    ids: &[&str],
) -> Result<Vec<String>, String> {
    let all = || ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let Some(body) = response else { return Ok(Vec::new()) };
    if !report_batch_item_failures {
        return Ok(all());
    }
    let text = std::str::from_utf8(body).map_err(|_| "the response is not UTF-8".to_string())?.trim();
    if text.is_empty() {
        return Ok(all());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("the response is not valid JSON ({e})"))?;
    // No list (null, `{}`, a null list): nothing failed, as Lambda reads it.
    match &value {
        Value::Null => return Ok(all()),
        Value::Object(o) if o.get("batchItemFailures").is_none_or(Value::is_null) => return Ok(all()),
        Value::Object(_) => {}
        _ => return Err("the response is not a JSON object".into()),
    }
    // Read as the type the function returns (aws_lambda_events).
    let response: SqsBatchResponse =
        serde_json::from_value(value).map_err(|e| format!("invalid `batchItemFailures` ({e})"))?;
    let known: HashSet<&str> = ids.iter().copied().collect();
    let mut failed = HashSet::new();
    for item in &response.batch_item_failures {
        let id = item.item_identifier.as_str();
        if id.is_empty() {
            return Err("a batch item failure has an empty `itemIdentifier`".into());
        }
        if !known.contains(id) {
            return Err(format!("itemIdentifier `{id}` is not a message of the batch"));
        }
        failed.insert(id);
    }
    Ok(ids.iter().filter(|id| !failed.contains(*id)).map(|s| s.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::MessageAttributeValue;

    const IDS: [&str; 3] = ["a", "b", "c"];

    fn del(report: bool, response: Option<&str>) -> Result<Vec<String>, String> {
        messages_to_delete(report, response.map(str::as_bytes), &IDS)
    }

    #[test]
    fn function_error_deletes_nothing() {
        assert_eq!(del(true, None).unwrap(), Vec::<String>::new());
        assert_eq!(del(false, None).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn success_without_reporting_deletes_everything() {
        assert_eq!(del(false, Some(r#"{"batchItemFailures":[{"itemIdentifier":"a"}]}"#)).unwrap(), IDS);
        assert_eq!(del(false, Some("garbage")).unwrap(), IDS);
    }

    #[test]
    fn complete_success_forms() {
        for ok in ["", "null", "{}", r#"{"batchItemFailures":null}"#, r#"{"batchItemFailures":[]}"#] {
            assert_eq!(del(true, Some(ok)).unwrap(), IDS, "{ok}");
        }
    }

    #[test]
    fn partial_failures_keep_the_failed_messages() {
        assert_eq!(del(true, Some(r#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#)).unwrap(), vec!["a", "c"]);
        assert_eq!(
            del(
                true,
                Some(r#"{"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"c"},{"itemIdentifier":"a"}]}"#)
            )
            .unwrap(),
            vec!["b"]
        );
    }

    #[test]
    fn malformed_responses_fail_the_whole_batch() {
        for bad in [
            "not json",
            r#""ok""#,
            "[1]",
            r#"{"batchItemFailures":"a"}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"zzz"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"id":"a"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"nope"}]}"#,
        ] {
            assert!(del(true, Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn builds_the_lambda_sqs_event() {
        let m = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh")
            .body("{\"x\":1}")
            .md5_of_body("abc")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000")
            .message_attributes(
                "principalId",
                MessageAttributeValue::builder().data_type("String").string_value("user").build().unwrap(),
            )
            .build();
        let typed = sqs_event(&[m], "arn:aws:sqs:eu-west-1:123456789012:jobs", "eu-west-1");
        let event = serde_json::to_value(&typed).unwrap();
        // What a function reads back is what was built.
        assert_eq!(serde_json::from_value::<SqsEvent>(event.clone()).unwrap(), typed);
        let r = &event["Records"][0];
        assert_eq!(r["messageId"], "m-1");
        assert_eq!(r["receiptHandle"], "rh");
        assert_eq!(r["body"], "{\"x\":1}");
        assert_eq!(r["md5OfBody"], "abc");
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["eventSourceARN"], "arn:aws:sqs:eu-west-1:123456789012:jobs");
        assert_eq!(r["awsRegion"], "eu-west-1");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(r["attributes"]["SentTimestamp"], "1700000000000");
        assert_eq!(
            r["messageAttributes"]["principalId"],
            serde_json::json!({"stringValue": "user", "binaryValue": null, "stringListValues": [], "binaryListValues": [], "dataType": "String"})
        );
    }

    #[test]
    fn reads_the_batch_response_the_job_processor_serializes() {
        use aws_lambda_events::event::sqs::BatchItemFailure;
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = "b".to_owned();
        let mut sent = SqsBatchResponse::default();
        sent.batch_item_failures.push(failure);
        let body = serde_json::to_vec(&sent).unwrap();
        assert_eq!(messages_to_delete(true, Some(&body), &IDS).unwrap(), vec!["a", "c"]);
    }
}
