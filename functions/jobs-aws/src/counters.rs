//! The counters table (`COUNTERS_TABLE_NAME`, docs/contract.md): its layout
//! is defined here and nowhere else. Partition key `bucket` (S), sort key
//! `counter` (S):
//!
//! - `counter#<prefix>`: `created`, `removed`, `current`, `bytes` (N),
//!   `updatedAt` (S, RFC 3339 ms); prefix "" is the whole bucket. The object
//!   counter adds to them; `GET /count` reads them with one `Query`.
//! - `object#<key>`: the key's [`ObjectState`]: `sequencer` (S, the newest
//!   event's), `exists` (BOOL), `size` (N), `seen` (SS, the sequencers
//!   counted), `revision` (N), `updatedAt`.
//!
//! Each event is one `TransactWriteItems`: the object's next state, put on
//! the condition that its revision is still the one read, and `ADD`s to the
//! bucket's and the prefix's counters. A concurrent writer of the same key
//! cancels the transaction; it is then read and planned again, so every
//! event is applied exactly once whatever runs alongside.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use jobs_core::Timestamp;
use jobs_core::counters::Counter;
use jobs_core::counters::counting::{Applied, ObjectState, Plan, plan};
use jobs_core::counters::object_event::ObjectEvent;
use jobs_core::counters::sequencer::Sequencer;
use jobs_core::ports::{CountObjectEvent, ReadCounters, StoreError};
use rand::Rng as _;

/// Attribute names (docs/contract.md; the table's keys are in
/// cdktf/constructs/object-counter-table.ts).
pub mod attr {
    /// Partition key: the bucket counted.
    pub const BUCKET: &str = "bucket";
    /// Sort key: [`super::sort_key`].
    pub const SORT_KEY: &str = "counter";
    pub const CREATED: &str = "created";
    pub const REMOVED: &str = "removed";
    pub const CURRENT: &str = "current";
    pub const BYTES: &str = "bytes";
    pub const UPDATED_AT: &str = "updatedAt";
    pub const SEQUENCER: &str = "sequencer";
    pub const EXISTS: &str = "exists";
    pub const SIZE: &str = "size";
    pub const SEEN: &str = "seen";
    pub const REVISION: &str = "revision";
}

/// The sort keys of the two kinds of item.
pub mod sort_key {
    /// Counter items: `counter#<prefix>`, `counter#` for the whole bucket.
    pub const COUNTER_PREFIX: &str = "counter#";
    /// The counter's state of one object key: `object#<key>`.
    pub const OBJECT_PREFIX: &str = "object#";

    pub fn counter(prefix: &str) -> String {
        format!("{COUNTER_PREFIX}{prefix}")
    }

    pub fn object(key: &str) -> String {
        format!("{OBJECT_PREFIX}{key}")
    }
}

/// Conflicting writers of one key (or one counter item) retry this often.
const MAX_ATTEMPTS: u32 = 30;

/// The counters table in DynamoDB: counts object events
/// ([`CountObjectEvent`], the object counter) and reads a bucket's counters
/// ([`ReadCounters`], `GET /count`).
#[derive(Debug, Clone)]
pub struct DynamoCounterStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn store_error(action: &str, err: impl std::error::Error) -> StoreError {
    StoreError::new(format!("{action}: {}", DisplayErrorContext(err)))
}

impl DynamoCounterStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    async fn object_state(&self, event: &ObjectEvent) -> Result<Option<ObjectState>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::BUCKET, s(&event.bucket))
            .key(attr::SORT_KEY, s(sort_key::object(&event.key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("reading the object's counter state failed", e))?;
        out.item().map(state_from_item).transpose()
    }

    fn transaction(
        &self,
        event: &ObjectEvent,
        state: Option<&ObjectState>,
        p: &Plan,
        now: &str,
    ) -> Vec<TransactWriteItem> {
        let next = &p.next;
        let mut item = HashMap::from([
            (attr::BUCKET.to_string(), s(&event.bucket)),
            (attr::SORT_KEY.to_string(), s(sort_key::object(&event.key))),
            (attr::SEQUENCER.to_string(), s(next.latest.as_str())),
            (attr::EXISTS.to_string(), AttributeValue::Bool(next.exists)),
            (attr::SIZE.to_string(), n(next.size)),
            (attr::REVISION.to_string(), n(next.revision)),
            (attr::UPDATED_AT.to_string(), s(now)),
        ]);
        // A plan always has at least the event's own sequencer.
        item.insert(attr::SEEN.to_string(), AttributeValue::Ss(next.seen.iter().map(|q| q.to_string()).collect()));
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = match state {
            None => {
                put.condition_expression("attribute_not_exists(#sk)").expression_attribute_names("#sk", attr::SORT_KEY)
            }
            Some(old) => put
                .condition_expression("#rev = :rev")
                .expression_attribute_names("#rev", attr::REVISION)
                .expression_attribute_values(":rev", n(old.revision)),
        };
        let mut items = vec![TransactWriteItem::builder().put(put.build().expect("table and item are set")).build()];
        for prefix in std::iter::once("").chain(event.prefix()) {
            let d = &p.delta;
            let update = Update::builder()
                .table_name(&self.table)
                .key(attr::BUCKET, s(&event.bucket))
                .key(attr::SORT_KEY, s(sort_key::counter(prefix)))
                .update_expression(
                    "ADD #created :created, #removed :removed, #current :current, #bytes :bytes SET #updated = :now",
                )
                .expression_attribute_names("#created", attr::CREATED)
                .expression_attribute_names("#removed", attr::REMOVED)
                .expression_attribute_names("#current", attr::CURRENT)
                .expression_attribute_names("#bytes", attr::BYTES)
                .expression_attribute_names("#updated", attr::UPDATED_AT)
                .expression_attribute_values(":created", n(d.created))
                .expression_attribute_values(":removed", n(d.removed))
                .expression_attribute_values(":current", n(d.current))
                .expression_attribute_values(":bytes", n(d.bytes))
                .expression_attribute_values(":now", s(now))
                .build()
                .expect("table, key and expression are set");
            items.push(TransactWriteItem::builder().update(update).build());
        }
        items
    }
}

/// Did the transaction fail only because another writer got there first
/// (the object's revision moved, or DynamoDB saw a conflicting transaction)?
fn lost_a_race(err: &SdkError<TransactWriteItemsError>) -> bool {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
            let codes: Vec<&str> = e.cancellation_reasons().iter().filter_map(|r| r.code()).collect();
            codes.is_empty()
                || codes
                    .iter()
                    .any(|c| matches!(*c, "ConditionalCheckFailed" | "TransactionConflict" | "ThrottlingError"))
        }
        Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
        _ => false,
    }
}

fn state_from_item(item: &HashMap<String, AttributeValue>) -> Result<ObjectState, StoreError> {
    let bad = |what: &str| StoreError::new(format!("object state item has no valid {what}"));
    let latest = item
        .get(attr::SEQUENCER)
        .and_then(|v| v.as_s().ok())
        .and_then(|v| Sequencer::parse(v).ok())
        .ok_or_else(|| bad(attr::SEQUENCER))?;
    let exists = *item.get(attr::EXISTS).and_then(|v| v.as_bool().ok()).ok_or_else(|| bad(attr::EXISTS))?;
    let number = |name: &str| -> Result<u64, StoreError> {
        item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).ok_or_else(|| bad(name))
    };
    let seen: BTreeSet<Sequencer> = match item.get(attr::SEEN) {
        Some(AttributeValue::Ss(list)) => list.iter().filter_map(|v| Sequencer::parse(v).ok()).collect(),
        _ => BTreeSet::new(),
    };
    Ok(ObjectState { latest, exists, size: number(attr::SIZE)?, seen, revision: number(attr::REVISION)? })
}

impl CountObjectEvent for DynamoCounterStore {
    async fn count(&self, event: &ObjectEvent, now: Timestamp) -> Result<Applied, StoreError> {
        let now = now.to_rfc3339();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let state = self.object_state(event).await?;
            let Some(p) = plan(state.as_ref(), event) else { return Ok(Applied::Duplicate) };
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(self.transaction(event, state.as_ref(), &p, &now)))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(p.applied(state.as_ref())),
                Err(e) if lost_a_race(&e) && attempt < MAX_ATTEMPTS => {
                    // Jittered back-off, growing a little with each lost race.
                    let ms = rand::rng().random_range(5..=20 + 10 * u64::from(attempt));
                    tracing::debug!(key = %event.key, attempt, "concurrent writer, retrying");
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Err(e) => {
                    return Err(store_error(
                        &format!("counting {} of {:?} failed after {attempt} attempt(s)", event.event_name, event.key),
                        e,
                    ));
                }
            }
        }
    }
}

impl ReadCounters for DynamoCounterStore {
    async fn read_counters(&self, bucket: &str) -> Result<Vec<Counter>, StoreError> {
        let mut counters = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :bucket AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", attr::BUCKET)
                .expression_attribute_names("#sk", attr::SORT_KEY)
                .expression_attribute_values(":bucket", s(bucket))
                .expression_attribute_values(":prefix", s(sort_key::COUNTER_PREFIX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| {
                    let detail = format!("reading the counters failed: {}", DisplayErrorContext(e));
                    StoreError::with_detail("the counters table refused or did not answer the request", detail)
                })?;
            counters.extend(out.items().iter().filter_map(counter_from_item));
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(counters);
            }
        }
    }
}

fn counter_from_item(item: &HashMap<String, AttributeValue>) -> Option<Counter> {
    let sk = item.get(attr::SORT_KEY)?.as_s().ok()?;
    let prefix = sk.strip_prefix(sort_key::COUNTER_PREFIX)?.to_owned();
    let number = |name: &str| {
        item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<f64>().ok()).map_or(0, |n| n as i64)
    };
    Some(Counter {
        prefix,
        created: number(attr::CREATED),
        removed: number(attr::REMOVED),
        current: number(attr::CURRENT),
        bytes: number(attr::BYTES),
        updated_at: item.get(attr::UPDATED_AT).and_then(|v| v.as_s().ok()).cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counter_items() {
        let item = HashMap::from([
            (attr::BUCKET.to_owned(), s("b")),
            (attr::SORT_KEY.to_owned(), s("counter#results/")),
            (attr::CREATED.to_owned(), n(3)),
            (attr::REMOVED.to_owned(), n(1)),
            (attr::CURRENT.to_owned(), n(2)),
            (attr::BYTES.to_owned(), n(2048)),
            (attr::UPDATED_AT.to_owned(), s("2026-11-22T19:30:00Z")),
        ]);
        let c = counter_from_item(&item).unwrap();
        assert_eq!((c.prefix.as_str(), c.created, c.removed, c.current, c.bytes), ("results/", 3, 1, 2, 2048));
        assert_eq!(c.updated_at.as_deref(), Some("2026-11-22T19:30:00Z"));
        let total = HashMap::from([(attr::SORT_KEY.to_owned(), s("counter#"))]);
        assert_eq!(counter_from_item(&total).unwrap(), Counter::default());
        let other = HashMap::from([(attr::SORT_KEY.to_owned(), s("object#results/a.json"))]);
        assert_eq!(counter_from_item(&other), None);
    }

    #[test]
    fn sort_keys_keep_their_stored_format() {
        // Existing items and docs/contract.md depend on these exact strings.
        assert_eq!(sort_key::counter(""), "counter#");
        assert_eq!(sort_key::counter("results/"), "counter#results/");
        assert_eq!(sort_key::object("results/a b.json"), "object#results/a b.json");
    }
}
