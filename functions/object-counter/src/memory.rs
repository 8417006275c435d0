//! The counter store in memory, for tests: one lock makes each event's read
//! and write atomic, as the DynamoDB store's transaction does.

use std::collections::HashMap;
use std::sync::Mutex;

use jobs_core::Timestamp;
use jobs_core::ports::StoreError;

use crate::counting::{Applied, CountObjectEvent, Counters, ObjectState, plan};
use crate::event::ObjectEvent;

#[derive(Debug, Default)]
pub struct MemoryCounterStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    objects: HashMap<(String, String), ObjectState>,
    counters: HashMap<(String, String), Counters>,
}

impl MemoryCounterStore {
    /// The counters of a bucket (`prefix` "") or of one of its prefixes.
    pub fn counters(&self, bucket: &str, prefix: &str) -> Option<Counters> {
        self.inner.lock().unwrap().counters.get(&(bucket.to_string(), prefix.to_string())).copied()
    }

    pub fn object(&self, bucket: &str, key: &str) -> Option<ObjectState> {
        self.inner.lock().unwrap().objects.get(&(bucket.to_string(), key.to_string())).cloned()
    }
}

impl CountObjectEvent for MemoryCounterStore {
    async fn count(&self, event: &ObjectEvent, _now: Timestamp) -> Result<Applied, StoreError> {
        let mut inner = self.inner.lock().unwrap();
        let id = (event.bucket.clone(), event.key.clone());
        let state = inner.objects.get(&id);
        let Some(p) = plan(state, event) else { return Ok(Applied::Duplicate) };
        let applied = p.applied(state);
        for prefix in std::iter::once("").chain(event.prefix()) {
            inner.counters.entry((event.bucket.clone(), prefix.to_string())).or_default().add(&p.delta);
        }
        inner.objects.insert(id, p.next);
        Ok(applied)
    }
}
