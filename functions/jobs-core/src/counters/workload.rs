//! A workload of object events for the counter stores' concurrency tests
//! (in memory: [`crate::memory`]; DynamoDB: jobs-aws's `tests/moto.rs`).

use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;

use super::counting::CounterValues;
use super::object_event::{Change, ObjectEvent};
use super::sequencer::Sequencer;

/// For `keys` keys (under `results/`, `other/` and at the top level): a put,
/// and for some a delete, and for some a later put of another size. In
/// sequencer order.
pub fn workload(bucket: &str, keys: usize) -> Vec<ObjectEvent> {
    let mut events = Vec::new();
    let mut seq = 0x0055_AED6_DCD9_0281_u64;
    for i in 0..keys {
        let key = match i % 3 {
            0 | 1 => format!("results/{i}.json"),
            _ if i % 2 == 0 => format!("other/{i}"),
            _ => format!("top-{i}"),
        };
        let mut push = |change| {
            seq += 1;
            events.push(ObjectEvent {
                bucket: bucket.to_string(),
                key: key.clone(),
                change,
                sequencer: Sequencer::parse(&format!("{seq:X}")).unwrap(),
                event_name: "workload".into(),
            });
        };
        push(Change::Created { size: 100 + i as u64 });
        if i % 2 == 0 {
            push(Change::Removed);
        }
        if i % 4 == 0 {
            push(Change::Created { size: 1000 + i as u64 });
        }
    }
    events
}

/// Every event delivered 1 to `max_copies` times, in a shuffled order.
pub fn deliveries(events: &[ObjectEvent], max_copies: usize, seed: u64) -> Vec<ObjectEvent> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        for _ in 0..=(i % max_copies) {
            out.push(e.clone());
        }
    }
    out.shuffle(&mut rng);
    out
}

/// The counters of the workload applied once each in order: (bucket total, `results/`).
pub fn expected(events: &[ObjectEvent]) -> (CounterValues, CounterValues) {
    let mut total = CounterValues::default();
    let mut results = CounterValues::default();
    let mut last: std::collections::BTreeMap<&str, &Change> = Default::default();
    for e in events {
        let mut d = CounterValues::default();
        match e.change {
            Change::Created { .. } => d.created = 1,
            Change::Removed => d.removed = 1,
        }
        add(&mut total, &d);
        if e.key.starts_with("results/") {
            add(&mut results, &d);
        }
        last.insert(&e.key, &e.change);
    }
    for (key, change) in last {
        if let Change::Created { size } = change {
            let d = CounterValues { current: 1, bytes: *size as i64, ..Default::default() };
            add(&mut total, &d);
            if key.starts_with("results/") {
                add(&mut results, &d);
            }
        }
    }
    (total, results)
}

fn add(c: &mut CounterValues, d: &CounterValues) {
    c.created += d.created;
    c.removed += d.removed;
    c.current += d.current;
    c.bytes += d.bytes;
}
