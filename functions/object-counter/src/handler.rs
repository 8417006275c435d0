use aws_lambda_events::event::sns::SnsEvent;
use jobs_core::Timestamp;
use jobs_core::counters::counting::Applied;
use jobs_core::ports::CountObjectEvent;
use lambda_runtime::{Error, LambdaEvent};
use serde::Serialize;

use crate::notification::{Notification, parse_notification};

/// What one invocation did (the function's response, and its log line).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub counted: usize,
    pub duplicates: usize,
    /// Records of other event types (restore, tagging, ...), and test events.
    pub ignored: usize,
}

/// Counts the S3 object events of an SNS delivery. Any failure fails the
/// invocation: Lambda retries the asynchronous invocation, then sends it to
/// the function's on-failure destination. A retry is harmless: events
/// already counted are duplicates.
pub async fn count_objects<S: CountObjectEvent>(store: &S, event: LambdaEvent<SnsEvent>) -> Result<Summary, Error> {
    let mut summary = Summary::default();
    for record in &event.payload.records {
        let message_id = &record.sns.message_id;
        let events = match parse_notification(&record.sns.message) {
            Ok(Notification::Test { bucket }) => {
                tracing::info!(message_id, bucket, "s3:TestEvent: nothing to count");
                summary.ignored += 1;
                continue;
            }
            Ok(Notification::Events { events, ignored }) => {
                summary.ignored += ignored;
                events
            }
            Err(e) => {
                tracing::error!(message_id, error = %e, "unreadable notification");
                return Err(format!("SNS message {message_id}: {e}").into());
            }
        };
        for ev in &events {
            match store.count(ev, Timestamp::now()).await {
                Ok(Applied::Duplicate) => {
                    summary.duplicates += 1;
                    tracing::info!(bucket = ev.bucket, key = ev.key, sequencer = %ev.sequencer, event = ev.event_name, "duplicate event: already counted");
                }
                Ok(Applied::Counted { newest }) => {
                    summary.counted += 1;
                    tracing::info!(bucket = ev.bucket, key = ev.key, sequencer = %ev.sequencer, event = ev.event_name, newest, "counted");
                }
                Err(e) => {
                    tracing::error!(bucket = ev.bucket, key = ev.key, error = %e, "counting failed");
                    return Err(e.into());
                }
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use jobs_core::counters::counting::CounterValues;
    use jobs_core::memory::MemoryCounterStore;
    use lambda_runtime::Context;

    use super::*;

    const BUCKET: &str = "jobs-dev-results-123456789012";

    fn fixture(text: &str) -> LambdaEvent<SnsEvent> {
        LambdaEvent::new(serde_json::from_str(text).expect("fixture is an SNS event"), Context::default())
    }

    fn created() -> LambdaEvent<SnsEvent> {
        fixture(include_str!("../fixtures/created.json"))
    }
    fn removed() -> LambdaEvent<SnsEvent> {
        fixture(include_str!("../fixtures/removed.json"))
    }
    fn overwritten() -> LambdaEvent<SnsEvent> {
        fixture(include_str!("../fixtures/overwritten.json"))
    }
    /// The expiration rule ends the current version (2048 bytes): a delete marker.
    fn lifecycle_expired() -> LambdaEvent<SnsEvent> {
        fixture(include_str!("../fixtures/lifecycle-expired.json"))
    }
    /// The noncurrent-version rule deletes the version the overwrite replaced (1024 bytes).
    fn lifecycle_noncurrent_deleted() -> LambdaEvent<SnsEvent> {
        fixture(include_str!("../fixtures/lifecycle-noncurrent-deleted.json"))
    }

    fn counters(store: &MemoryCounterStore, prefix: &str) -> CounterValues {
        store.counters(BUCKET, prefix).unwrap_or_default()
    }

    fn c(created: i64, removed: i64, current: i64, bytes: i64) -> CounterValues {
        CounterValues { created, removed, current, bytes }
    }

    #[tokio::test]
    async fn a_created_object_counts_in_the_bucket_and_its_prefix() {
        let store = MemoryCounterStore::default();
        let s = count_objects(&store, created()).await.unwrap();
        assert_eq!(s, Summary { counted: 1, duplicates: 0, ignored: 0 });
        assert_eq!(counters(&store, ""), c(1, 0, 1, 1024));
        assert_eq!(counters(&store, "results/"), c(1, 0, 1, 1024));
        let state = store.object(BUCKET, "results/job one.json").expect("the decoded key");
        assert_eq!((state.exists, state.size), (true, 1024));
    }

    #[tokio::test]
    async fn a_removed_object_is_subtracted_with_the_size_it_had() {
        let store = MemoryCounterStore::default();
        count_objects(&store, created()).await.unwrap();
        count_objects(&store, removed()).await.unwrap();
        assert_eq!(counters(&store, ""), c(1, 1, 0, 0));
        assert_eq!(counters(&store, "results/"), c(1, 1, 0, 0));
    }

    #[tokio::test]
    async fn duplicates_are_counted_once() {
        let store = MemoryCounterStore::default();
        count_objects(&store, created()).await.unwrap();
        let again = count_objects(&store, created()).await.unwrap();
        assert_eq!(again, Summary { counted: 0, duplicates: 1, ignored: 0 });
        count_objects(&store, removed()).await.unwrap();
        count_objects(&store, removed()).await.unwrap();
        count_objects(&store, created()).await.unwrap();
        assert_eq!(counters(&store, ""), c(1, 1, 0, 0));
    }

    #[tokio::test]
    async fn every_delivery_order_gives_the_same_counters() {
        // put (1024) < delete < put (2048), by sequencer.
        let events = [created, removed, overwritten];
        let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        for order in orders {
            let store = MemoryCounterStore::default();
            for i in order {
                count_objects(&store, events[i]()).await.unwrap();
            }
            assert_eq!(counters(&store, ""), c(2, 1, 1, 2048), "order {order:?}");
            assert_eq!(counters(&store, "results/"), c(2, 1, 1, 2048), "order {order:?}");
        }
    }

    #[tokio::test]
    async fn a_lifecycle_expiration_of_the_current_object_counts_as_a_removal() {
        let store = MemoryCounterStore::default();
        count_objects(&store, created()).await.unwrap();
        let s = count_objects(&store, lifecycle_expired()).await.unwrap();
        assert_eq!(s, Summary { counted: 1, duplicates: 0, ignored: 0 });
        assert_eq!(counters(&store, ""), c(1, 1, 0, 0));
        assert_eq!(counters(&store, "results/"), c(1, 1, 0, 0));
    }

    #[tokio::test]
    async fn deleting_a_noncurrent_version_changes_no_counter() {
        let store = MemoryCounterStore::default();
        count_objects(&store, created()).await.unwrap();
        count_objects(&store, overwritten()).await.unwrap();
        let s = count_objects(&store, lifecycle_noncurrent_deleted()).await.unwrap();
        assert_eq!(s, Summary { counted: 0, duplicates: 0, ignored: 1 });
        // The current (2048-byte) version is still there.
        assert_eq!(counters(&store, ""), c(2, 0, 1, 2048));
        assert_eq!(store.object(BUCKET, "results/job one.json").map(|o| (o.exists, o.size)), Some((true, 2048)));
    }

    #[tokio::test]
    async fn a_result_s_whole_life_ends_with_nothing_current_in_any_delivery_order() {
        // put 1024 < overwrite 2048 < noncurrent 1024 deleted < current expired, by sequencer.
        let events = [created, overwritten, lifecycle_noncurrent_deleted, lifecycle_expired];
        let mut orders = Vec::new();
        for a in 0..4 {
            for b in 0..4 {
                for c in 0..4 {
                    for d in 0..4 {
                        let mut sorted = [a, b, c, d];
                        sorted.sort();
                        if sorted == [0, 1, 2, 3] {
                            orders.push([a, b, c, d]);
                        }
                    }
                }
            }
        }
        assert_eq!(orders.len(), 24);
        for order in orders {
            let store = MemoryCounterStore::default();
            for &i in &order {
                count_objects(&store, events[i]()).await.unwrap();
            }
            assert_eq!(counters(&store, ""), c(2, 1, 0, 0), "order {order:?}");
        }
    }

    #[tokio::test]
    async fn a_key_without_a_slash_counts_only_in_the_total() {
        let store = MemoryCounterStore::default();
        count_objects(&store, created()).await.unwrap();
        count_objects(&store, fixture(include_str!("../fixtures/top-level.json"))).await.unwrap();
        assert_eq!(counters(&store, ""), c(2, 0, 2, 1034));
        assert_eq!(counters(&store, "results/"), c(1, 0, 1, 1024));
        assert_eq!(store.counters(BUCKET, "manifest.json"), None);
    }

    #[tokio::test]
    async fn the_test_event_is_skipped() {
        let store = MemoryCounterStore::default();
        let s = count_objects(&store, fixture(include_str!("../fixtures/test-event.json"))).await.unwrap();
        assert_eq!(s, Summary { counted: 0, duplicates: 0, ignored: 1 });
        assert_eq!(store.counters(BUCKET, ""), None);
    }

    #[tokio::test]
    async fn an_unreadable_message_fails_the_invocation() {
        let store = MemoryCounterStore::default();
        let mut event = created();
        event.payload.records[0].sns.message = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k","size":1}}}]}"#.into();
        let err = count_objects(&store, event).await.unwrap_err();
        assert!(err.to_string().contains("no sequencer"), "{err}");
    }
}
