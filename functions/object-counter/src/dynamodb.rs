//! The counters table (`COUNTERS_TABLE_NAME`): partition key `bucket` (S),
//! sort key `counter` (S).
//!
//! - `counter#<prefix>`: `created`, `removed`, `current`, `bytes` (N),
//!   `updatedAt` (S, RFC 3339 ms); prefix "" is the whole bucket.
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
use jobs_core::ports::StoreError;
use rand::Rng as _;

use crate::counting::{Applied, CountObjectEvent, Counters, ObjectState, Plan, plan};
use crate::event::ObjectEvent;
use crate::sequencer::Sequencer;

/// Attribute names and sort-key shapes (docs/contract.md).
pub mod attr {
    pub const BUCKET: &str = "bucket";
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
    pub const COUNTER_PREFIX: &str = "counter#";
    pub const OBJECT_PREFIX: &str = "object#";
}

/// Conflicting writers of one key (or one counter item) retry this often.
const MAX_ATTEMPTS: u32 = 30;

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

pub fn counter_sort_key(prefix: &str) -> String {
    format!("{}{prefix}", attr::COUNTER_PREFIX)
}

pub fn object_sort_key(key: &str) -> String {
    format!("{}{key}", attr::OBJECT_PREFIX)
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
            .key(attr::SORT_KEY, s(object_sort_key(&event.key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("reading the object's counter state failed", e))?;
        out.item().map(state_from_item).transpose()
    }

    /// A counter item's values (`prefix` "" for the bucket), if any.
    pub async fn counters(&self, bucket: &str, prefix: &str) -> Result<Option<Counters>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::BUCKET, s(bucket))
            .key(attr::SORT_KEY, s(counter_sort_key(prefix)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("reading a counter failed", e))?;
        let Some(item) = out.item() else { return Ok(None) };
        let num = |name: &str| -> Result<i64, StoreError> {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StoreError::new(format!("counter item without a numeric {name}")))
        };
        Ok(Some(Counters {
            created: num(attr::CREATED)?,
            removed: num(attr::REMOVED)?,
            current: num(attr::CURRENT)?,
            bytes: num(attr::BYTES)?,
        }))
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
            (attr::SORT_KEY.to_string(), s(object_sort_key(&event.key))),
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
                .key(attr::SORT_KEY, s(counter_sort_key(prefix)))
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
