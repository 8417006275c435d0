//! The `counters` table, read side: the object counter function writes one
//! item per bucket and key prefix (pk `bucket`, sk `counter#<prefix>`);
//! `GET /count` reads them with one `Query`.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use jobs_core::counters::{COUNTER_SK_PREFIX, Counter};
use jobs_core::ports::{ReadCounters, StoreError};

/// Attribute names of counter items (shared with functions/object-counter).
pub mod attr {
    pub const BUCKET: &str = "bucket";
    pub const COUNTER: &str = "counter";
    pub const CREATED: &str = "created";
    pub const REMOVED: &str = "removed";
    pub const CURRENT: &str = "current";
    pub const BYTES: &str = "bytes";
    pub const UPDATED_AT: &str = "updatedAt";
}

#[derive(Debug, Clone)]
pub struct DynamoCounterStore {
    client: Client,
    table: String,
}

impl DynamoCounterStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
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
                .expression_attribute_names("#sk", attr::COUNTER)
                .expression_attribute_values(":bucket", AttributeValue::S(bucket.to_owned()))
                .expression_attribute_values(":prefix", AttributeValue::S(COUNTER_SK_PREFIX.to_owned()))
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
    let sk = item.get(attr::COUNTER)?.as_s().ok()?;
    let prefix = sk.strip_prefix(COUNTER_SK_PREFIX)?.to_owned();
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

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }

    #[test]
    fn reads_counter_items() {
        let item = HashMap::from([
            (attr::BUCKET.to_owned(), AttributeValue::S("b".into())),
            (attr::COUNTER.to_owned(), AttributeValue::S("counter#results/".into())),
            (attr::CREATED.to_owned(), n("3")),
            (attr::REMOVED.to_owned(), n("1")),
            (attr::CURRENT.to_owned(), n("2")),
            (attr::BYTES.to_owned(), n("2048")),
            (attr::UPDATED_AT.to_owned(), AttributeValue::S("2026-11-22T19:30:00Z".into())),
        ]);
        let c = counter_from_item(&item).unwrap();
        assert_eq!((c.prefix.as_str(), c.created, c.removed, c.current, c.bytes), ("results/", 3, 1, 2, 2048));
        assert_eq!(c.updated_at.as_deref(), Some("2026-11-22T19:30:00Z"));
        let total = HashMap::from([(attr::COUNTER.to_owned(), AttributeValue::S("counter#".into()))]);
        assert_eq!(counter_from_item(&total).unwrap(), Counter::default());
        let other = HashMap::from([(attr::COUNTER.to_owned(), AttributeValue::S("event#1".into()))]);
        assert_eq!(counter_from_item(&other), None);
    }
}
