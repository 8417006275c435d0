//! An S3 object event as the counters see it, and which events they count.

use super::sequencer::Sequencer;

/// What an event did to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `ObjectCreated:*` (Put, Post, Copy, CompleteMultipartUpload): the key
    /// now holds an object of this size (an overwrite too).
    Created { size: u64 },
    /// `ObjectRemoved:*` (Delete, DeleteMarkerCreated), and
    /// `LifecycleExpiration:DeleteMarkerCreated` (the expiration rule ended
    /// the current version): the key no longer holds a current object. S3
    /// sends no size: the counter remembers it.
    Removed,
}

/// How the counter reads an event, by its name without `s3:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A new current object (or a new version replacing it).
    Creation,
    /// The current object is gone.
    Removal,
    /// Nothing the counters follow.
    NotCounted,
}

/// S3 sends lifecycle deletions as `LifecycleExpiration:*`, never as
/// `ObjectRemoved:*`
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-configure-notification.html>).
/// In the versioned results bucket:
/// - `LifecycleExpiration:DeleteMarkerCreated`: the expiration rule made the
///   current version noncurrent behind a delete marker: a removal, as a
///   DELETE of the key would be.
/// - `LifecycleExpiration:Delete`: a version deleted for good, which in a
///   versioned bucket is never the current object: a noncurrent version
///   (the rule's NoncurrentVersionExpiration) or an expired delete marker.
///   Not counted (in an unversioned bucket it would be the current object;
///   the counted buckets are versioned, which the stack's tests require).
pub fn classify(event_name: &str) -> EventKind {
    match event_name {
        n if n.starts_with("ObjectCreated:") => EventKind::Creation,
        n if n.starts_with("ObjectRemoved:") => EventKind::Removal,
        "LifecycleExpiration:DeleteMarkerCreated" => EventKind::Removal,
        _ => EventKind::NotCounted,
    }
}

/// One object event, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    pub bucket: String,
    /// The object key, URL-decoded.
    pub key: String,
    pub change: Change,
    pub sequencer: Sequencer,
    /// `ObjectCreated:Put`, ... (for logs).
    pub event_name: String,
}

impl ObjectEvent {
    /// The prefix counter this object also counts in: the key's first
    /// segment with its `/` (`results/`), or none for a key without `/`.
    pub fn prefix(&self) -> Option<&str> {
        prefix_of(&self.key)
    }
}

pub fn prefix_of(key: &str) -> Option<&str> {
    key.find('/').map(|i| &key[..=i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_the_first_segment() {
        assert_eq!(prefix_of("results/x.json"), Some("results/"));
        assert_eq!(prefix_of("a/b/c"), Some("a/"));
        assert_eq!(prefix_of("/x"), Some("/"));
        assert_eq!(prefix_of("top-level.json"), None);
    }

    #[test]
    fn classifies_every_event_type_s3_sends_to_the_counter() {
        // The configuration subscribes s3:ObjectCreated:*, s3:ObjectRemoved:*
        // and s3:LifecycleExpiration:* (cdktf/constructs/object-counter.ts).
        for name in
            ["ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload"]
        {
            assert_eq!(classify(name), EventKind::Creation, "{name}");
        }
        for name in
            ["ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated", "LifecycleExpiration:DeleteMarkerCreated"]
        {
            assert_eq!(classify(name), EventKind::Removal, "{name}");
        }
        for name in
            ["LifecycleExpiration:Delete", "LifecycleTransition", "ObjectTagging:Put", "ObjectRestore:Completed"]
        {
            assert_eq!(classify(name), EventKind::NotCounted, "{name}");
        }
    }
}
