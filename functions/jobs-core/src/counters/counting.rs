//! How one event changes an object's state and the counters, independent of
//! the store.
//!
//! Counters (per bucket, and per top-level prefix):
//! - `created`: object-created events, each (key, sequencer) once: every
//!   new object and every overwrite;
//! - `removed`: object-removed events, each (key, sequencer) once;
//! - `current`: keys whose newest event (highest sequencer) is a creation;
//! - `bytes`: the sizes of those newest creations.
//!
//! So duplicates are not counted twice, and any order of delivery ends with
//! the same counters: `created`/`removed` count events, which commutes, and
//! `current`/`bytes` follow the newest event per key, which an older event
//! arriving late does not change.

use std::collections::BTreeSet;

use super::object_event::{Change, ObjectEvent};
use super::sequencer::Sequencer;

/// The most sequencers an object's state remembers for dedupe. A duplicate
/// of an event older than the newest `SEEN_LIMIT` events of the same key
/// would be counted again in `created`/`removed` (`current` and `bytes` stay
/// exact: it is older than the newest). S3 redelivers within minutes, and a
/// result object sees a handful of events in its life.
pub const SEEN_LIMIT: usize = 500;

/// What the counter knows about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectState {
    /// The newest event applied to the key.
    pub latest: Sequencer,
    /// Whether the newest event is a creation.
    pub exists: bool,
    /// Its size (0 when removed).
    pub size: u64,
    /// Sequencers already counted (the newest [`SEEN_LIMIT`]).
    pub seen: BTreeSet<Sequencer>,
    /// Incremented on every write: the store's optimistic lock.
    pub revision: u64,
}

/// Additions to a counter item; the same for the bucket's and the prefix's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    pub created: i64,
    pub removed: i64,
    pub current: i64,
    pub bytes: i64,
}

/// A counter's values, without its prefix and time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterValues {
    pub created: i64,
    pub removed: i64,
    pub current: i64,
    pub bytes: i64,
}

/// The write an event needs: the object's next state and the counters' delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub next: ObjectState,
    pub delta: Delta,
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Counted; `newest` when it also became the object's current state.
    Counted { newest: bool },
    /// This (key, sequencer) was counted before: a redelivery.
    Duplicate,
}

/// The change `event` makes, given the key's state; `None` for a duplicate.
pub fn plan(state: Option<&ObjectState>, event: &ObjectEvent) -> Option<Plan> {
    if state.is_some_and(|s| s.seen.contains(&event.sequencer)) {
        return None;
    }
    let (was_there, old_size) = state.map(|s| (s.exists, s.size)).unwrap_or((false, 0));
    let newest = state.is_none_or(|s| event.sequencer > s.latest);
    let mut delta = Delta::default();
    match event.change {
        Change::Created { .. } => delta.created = 1,
        Change::Removed => delta.removed = 1,
    }
    let mut next = match state {
        Some(s) => s.clone(),
        None => {
            ObjectState { latest: event.sequencer.clone(), exists: false, size: 0, seen: BTreeSet::new(), revision: 0 }
        }
    };
    if newest {
        let (exists, size) = match event.change {
            Change::Created { size } => (true, size),
            Change::Removed => (false, 0),
        };
        delta.current = i64::from(exists) - i64::from(was_there);
        delta.bytes = size as i64 - if was_there { old_size as i64 } else { 0 };
        next.latest = event.sequencer.clone();
        next.exists = exists;
        next.size = size;
    }
    next.seen.insert(event.sequencer.clone());
    while next.seen.len() > SEEN_LIMIT {
        next.seen.pop_first();
    }
    next.revision += 1;
    Some(Plan { next, delta })
}

impl Plan {
    pub fn applied(&self, state: Option<&ObjectState>) -> Applied {
        Applied::Counted { newest: state.is_none_or(|s| self.next.latest != s.latest) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(change: Change, seq: &str) -> ObjectEvent {
        ObjectEvent {
            bucket: "b".into(),
            key: "results/a.json".into(),
            change,
            sequencer: Sequencer::parse(seq).unwrap(),
            event_name: "test".into(),
        }
    }

    #[test]
    fn a_new_object_counts_and_a_duplicate_does_not() {
        let put = ev(Change::Created { size: 10 }, "01");
        let p = plan(None, &put).unwrap();
        assert_eq!(p.delta, Delta { created: 1, removed: 0, current: 1, bytes: 10 });
        assert!(p.next.exists);
        assert_eq!(plan(Some(&p.next), &put), None);
    }

    #[test]
    fn an_overwrite_counts_a_creation_and_changes_only_the_bytes() {
        let first = plan(None, &ev(Change::Created { size: 10 }, "01")).unwrap().next;
        let p = plan(Some(&first), &ev(Change::Created { size: 25 }, "02")).unwrap();
        assert_eq!(p.delta, Delta { created: 1, removed: 0, current: 0, bytes: 15 });
    }

    #[test]
    fn a_late_older_event_counts_but_does_not_change_the_object() {
        let removed = plan(None, &ev(Change::Removed, "02")).unwrap();
        assert_eq!(removed.delta, Delta { created: 0, removed: 1, current: 0, bytes: 0 });
        let late_put = plan(Some(&removed.next), &ev(Change::Created { size: 10 }, "01")).unwrap();
        assert_eq!(late_put.delta, Delta { created: 1, removed: 0, current: 0, bytes: 0 });
        assert!(!late_put.next.exists);
        assert_eq!(late_put.applied(Some(&removed.next)), Applied::Counted { newest: false });
    }

    #[test]
    fn remembers_a_bounded_number_of_sequencers() {
        let mut state = None::<ObjectState>;
        for i in 1..=(SEEN_LIMIT + 5) {
            state = Some(plan(state.as_ref(), &ev(Change::Created { size: 1 }, &format!("{i:x}"))).unwrap().next);
        }
        let s = state.unwrap();
        assert_eq!(s.seen.len(), SEEN_LIMIT);
        assert_eq!(s.seen.first(), Some(&Sequencer::parse(&format!("{:x}", 6)).unwrap()));
        assert_eq!(s.revision, (SEEN_LIMIT + 5) as u64);
    }
}
