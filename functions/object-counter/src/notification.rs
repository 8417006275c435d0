//! The S3 event notification that SNS carries in a record's `Message`
//! (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>),
//! read into the counters' [`ObjectEvent`]s.

use jobs_core::counters::object_event::{Change, EventKind, ObjectEvent, classify};
use jobs_core::counters::sequencer::{InvalidSequencer, Sequencer};
use serde::Deserialize;

/// What a message held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// The object events to count (record order), and how many records were
    /// of other kinds (restore, tagging, a noncurrent version's deletion, ...)
    /// and are not counted.
    Events { events: Vec<ObjectEvent>, ignored: usize },
    /// `s3:TestEvent`, which S3 sends when the notification is configured.
    Test { bucket: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidNotification {
    #[error("the message is not an S3 event notification: {0}")]
    Shape(String),
    #[error("record {index} ({event_name} of {key:?}): {problem}")]
    Record { index: usize, event_name: String, key: String, problem: String },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Wire {
    Records {
        #[serde(rename = "Records")]
        records: Vec<WireRecord>,
    },
    Test {
        #[serde(rename = "Event")]
        event: String,
        #[serde(rename = "Bucket", default)]
        bucket: String,
    },
}

#[derive(Deserialize)]
struct WireRecord {
    #[serde(rename = "eventName")]
    event_name: String,
    s3: WireS3,
}

#[derive(Deserialize)]
struct WireS3 {
    bucket: WireBucket,
    object: WireObject,
}

#[derive(Deserialize)]
struct WireBucket {
    name: String,
}

#[derive(Deserialize)]
struct WireObject {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    sequencer: Option<String>,
}

/// Parses an SNS record's `Message`.
pub fn parse_notification(message: &str) -> Result<Notification, InvalidNotification> {
    let wire: Wire = serde_json::from_str(message).map_err(|e| InvalidNotification::Shape(e.to_string()))?;
    let records = match wire {
        Wire::Test { event, bucket } if event == "s3:TestEvent" => return Ok(Notification::Test { bucket }),
        Wire::Test { event, .. } => return Err(InvalidNotification::Shape(format!("unknown Event {event:?}"))),
        Wire::Records { records } => records,
    };
    let mut events = Vec::new();
    let mut ignored = 0;
    for (index, r) in records.into_iter().enumerate() {
        let bad = |problem: String| InvalidNotification::Record {
            index,
            event_name: r.event_name.clone(),
            key: r.s3.object.key.clone(),
            problem,
        };
        // Event names come without the `s3:` of the configuration's names.
        let name = r.event_name.strip_prefix("s3:").unwrap_or(&r.event_name);
        let change = match classify(name) {
            EventKind::Creation => {
                Change::Created { size: r.s3.object.size.ok_or_else(|| bad("a created object without a size".into()))? }
            }
            EventKind::Removal => Change::Removed,
            EventKind::NotCounted => {
                ignored += 1;
                continue;
            }
        };
        let key = decode_key(&r.s3.object.key).map_err(bad)?;
        let sequencer = match &r.s3.object.sequencer {
            Some(raw) => Sequencer::parse(raw).map_err(|e: InvalidSequencer| bad(e.to_string()))?,
            None => return Err(bad("no sequencer: S3 sets one on every object event".into())),
        };
        events.push(ObjectEvent {
            bucket: r.s3.bucket.name.clone(),
            key,
            change,
            sequencer,
            event_name: name.to_string(),
        });
    }
    Ok(Notification::Events { events, ignored })
}

/// Keys in S3 events are URL-encoded as in an HTML form: `+` is a space,
/// `%XX` a byte of the UTF-8 key.
pub fn decode_key(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("key {raw:?} has a malformed %-escape at byte {i}"))?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("key {raw:?} does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The S3 notification inside an SNS event fixture.
    fn message(fixture: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(fixture).unwrap();
        v["Records"][0]["Sns"]["Message"].as_str().unwrap().to_string()
    }

    #[test]
    fn decodes_keys_like_a_form() {
        assert_eq!(decode_key("results/a+b%2Bc%20d.json").unwrap(), "results/a b+c d.json");
        assert_eq!(decode_key("caf%C3%A9").unwrap(), "café");
        assert_eq!(decode_key("plain").unwrap(), "plain");
        assert!(decode_key("bad%2").is_err());
        assert!(decode_key("bad%zz").is_err());
        assert!(decode_key("%FF").is_err());
    }

    #[test]
    fn parses_created_removed_test_and_other_events() {
        let created = &message(include_str!("../fixtures/created.json"));
        let Notification::Events { events, ignored } = parse_notification(created).unwrap() else { panic!() };
        assert_eq!(ignored, 0);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].bucket, "jobs-dev-results-123456789012");
        assert_eq!(events[0].key, "results/job one.json");
        assert_eq!(events[0].change, Change::Created { size: 1024 });
        assert_eq!(events[0].sequencer, Sequencer::parse("0055AED6DCD90281E5").unwrap());
        assert_eq!(events[0].prefix(), Some("results/"));

        let removed = &message(include_str!("../fixtures/removed.json"));
        let Notification::Events { events, .. } = parse_notification(removed).unwrap() else { panic!() };
        assert_eq!(events[0].change, Change::Removed);
        assert_eq!(events[0].event_name, "ObjectRemoved:DeleteMarkerCreated");

        let test = &message(include_str!("../fixtures/test-event.json"));
        assert_eq!(
            parse_notification(test).unwrap(),
            Notification::Test { bucket: "jobs-dev-results-123456789012".into() }
        );

        let tagging =
            r#"{"Records":[{"eventName":"ObjectTagging:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        assert_eq!(parse_notification(tagging).unwrap(), Notification::Events { events: vec![], ignored: 1 });
    }

    #[test]
    fn parses_lifecycle_expirations_in_the_shape_s3_documents() {
        let expired = &message(include_str!("../fixtures/lifecycle-expired.json"));
        let Notification::Events { events, ignored } = parse_notification(expired).unwrap() else { panic!() };
        assert_eq!(ignored, 0);
        assert_eq!(events[0].change, Change::Removed);
        assert_eq!(events[0].event_name, "LifecycleExpiration:DeleteMarkerCreated");
        assert_eq!(events[0].key, "results/job one.json");
        assert_eq!(events[0].sequencer, Sequencer::parse("0055AED6DCD9028210").unwrap());

        let noncurrent = &message(include_str!("../fixtures/lifecycle-noncurrent-deleted.json"));
        assert_eq!(parse_notification(noncurrent).unwrap(), Notification::Events { events: vec![], ignored: 1 });
    }

    #[test]
    fn refuses_what_it_cannot_count_exactly() {
        let no_sequencer = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k","size":1}}}]}"#;
        assert!(parse_notification(no_sequencer).unwrap_err().to_string().contains("no sequencer"));
        let no_size = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k","sequencer":"01"}}}]}"#;
        assert!(parse_notification(no_size).is_err());
        assert!(parse_notification("not json").is_err());
        assert!(parse_notification(r#"{"Event":"s3:Other"}"#).is_err());
    }
}
