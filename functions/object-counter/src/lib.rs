//! The results bucket's object counter: S3 object events (published to SNS,
//! delivered to this function) become exact counters in DynamoDB, per bucket
//! and per top-level prefix.
//!
//! S3 delivers events at least once and in no particular order, and several
//! instances of the function run at once. So each event is applied exactly
//! once per (key, sequencer) and the object's current state follows the
//! highest sequencer seen for its key ([`counting::plan`]); the store writes
//! the object's state and the counters in one transaction, conditioned on the
//! state it read ([`dynamodb`]), or under one lock ([`memory`]).

pub mod counting;
pub mod dynamodb;
pub mod event;
pub mod handler;
pub mod memory;
pub mod sequencer;
#[doc(hidden)]
pub mod testing;

pub use counting::{Applied, CountObjectEvent, Counters, ObjectState};
pub use dynamodb::DynamoCounterStore;
pub use event::{Change, ObjectEvent, parse_notification};
pub use memory::MemoryCounterStore;
pub use sequencer::Sequencer;
