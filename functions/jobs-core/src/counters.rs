//! The results bucket's object counters: how S3 object events, delivered at
//! least once, in any order and to several instances at once, become exact
//! counters per bucket and per top-level key prefix ([`counting`]), and what
//! `GET /count` shows of them ([`count_body`]). The stores are
//! [`crate::ports::CountObjectEvent`] and [`crate::ports::ReadCounters`];
//! the table's layout belongs to the DynamoDB adapter (jobs-aws).

pub mod counting;
pub mod object_event;
pub mod sequencer;
#[doc(hidden)]
pub mod workload;

use serde_json::{Map, Value, json};

use counting::{CounterValues, Delta};

/// One counter as stored: the whole bucket's (`prefix` "") or a prefix's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counter {
    /// `""` for the whole bucket, else the key's first segment with its `/`.
    pub prefix: String,
    pub created: i64,
    pub removed: i64,
    pub current: i64,
    pub bytes: i64,
    /// RFC 3339, as written by the counter.
    pub updated_at: Option<String>,
}

impl Counter {
    pub fn values(&self) -> CounterValues {
        CounterValues { created: self.created, removed: self.removed, current: self.current, bytes: self.bytes }
    }

    /// Applies an event's delta.
    pub fn add(&mut self, d: &Delta) {
        self.created += d.created;
        self.removed += d.removed;
        self.current += d.current;
        self.bytes += d.bytes;
    }
}

fn counter_json(c: &Counter) -> Value {
    let mut m = Map::new();
    m.insert("created".into(), json!(c.created));
    m.insert("removed".into(), json!(c.removed));
    m.insert("current".into(), json!(c.current));
    m.insert("bytes".into(), json!(c.bytes));
    if let Some(at) = &c.updated_at {
        m.insert("updatedAt".into(), json!(at));
    }
    Value::Object(m)
}

/// `{"bucket", "total": {...}, "prefixes": {"results/": {...}}}`; the total
/// is all zeros (no `updatedAt`) when the bucket has never been counted.
pub fn count_body(bucket: &str, counters: &[Counter]) -> Value {
    let total = counters.iter().find(|c| c.prefix.is_empty()).cloned().unwrap_or_default();
    let prefixes: Map<String, Value> =
        counters.iter().filter(|c| !c.prefix.is_empty()).map(|c| (c.prefix.clone(), counter_json(c))).collect();
    json!({"bucket": bucket, "total": counter_json(&total), "prefixes": prefixes})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_when_nothing_was_counted() {
        assert_eq!(
            count_body("b", &[]),
            json!({"bucket": "b", "total": {"created": 0, "removed": 0, "current": 0, "bytes": 0}, "prefixes": {}})
        );
    }

    #[test]
    fn total_and_prefixes() {
        let total = Counter {
            prefix: String::new(),
            created: 3,
            removed: 1,
            current: 2,
            bytes: 70,
            updated_at: Some("2026-11-22T19:30:00.000Z".into()),
        };
        let results = Counter { prefix: "results/".into(), created: 2, current: 2, bytes: 60, ..total.clone() };
        let body = count_body("b", &[results, total]);
        assert_eq!(body["total"]["current"], 2);
        assert_eq!(body["total"]["updatedAt"], "2026-11-22T19:30:00.000Z");
        assert_eq!(body["prefixes"]["results/"]["bytes"], 60);
        assert_eq!(body["prefixes"].as_object().unwrap().len(), 1);
    }
}
