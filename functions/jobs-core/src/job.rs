//! A job, its identity, its status and the rules for changing that status.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::webhook::Callback;

/// A job's id: the SQS MessageId the submit call returned, a UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

/// Why a string is not a job id. The message is shown to API users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidJobId(String);

/// Longest input echoed back in an error: enough to recognise, never a flood.
const ECHO_LIMIT: usize = 64;

impl JobId {
    /// Accepts the canonical UUID form SQS uses for message ids
    /// (8-4-4-4-12 hexadecimal digits). Anything else is a client error.
    pub fn parse(raw: &str) -> Result<Self, InvalidJobId> {
        const EXAMPLE: &str = "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21";
        if raw.is_empty() {
            return Err(InvalidJobId(format!(
                "The job id is empty; use the jobId returned by POST /submit-job-request, a UUID such as {EXAMPLE}."
            )));
        }
        let groups: Vec<&str> = raw.split('-').collect();
        let well_formed = raw.len() == 36
            && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
        if well_formed {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(InvalidJobId(format!(
                "The job id {} is not a valid job id; use the jobId returned by POST /submit-job-request, a UUID such as {EXAMPLE}.",
                echo(raw)
            )))
        }
    }

    /// A new id: a random (version 4) UUID, as SQS's message ids are.
    pub fn random() -> Self {
        let mut bytes: [u8; 16] = rand::random();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The results object's key: derived from the id alone, so a rerun of the
    /// same job overwrites its output instead of adding a second one.
    pub fn result_key(&self) -> String {
        format!("results/{}.json", self.0)
    }
}

/// Quote user input for an error message, cut to a safe length and with
/// control characters escaped.
pub(crate) fn echo(raw: &str) -> String {
    format!("{:?}", cut(raw))
}

/// `raw` cut to the length an error message quotes, `…` marking the cut.
pub(crate) fn cut(raw: &str) -> String {
    let mut shown: String = raw.chars().take(ECHO_LIMIT).collect();
    if raw.chars().count() > ECHO_LIMIT {
        shown.push('…');
    }
    shown
}

impl TryFrom<String> for JobId {
    type Error = InvalidJobId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> Self {
        id.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is in its life. The spellings are the Python reference's, so
/// its clients keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    /// Recorded and being processed (or waiting for a retry).
    #[serde(rename = "Submitted")]
    Submitted,
    /// The result is in the results bucket. Final: nothing moves a job out of it.
    #[serde(rename = "complete")]
    Complete,
    /// Gave up, with a reason. A replay from the dead-letter queue may still
    /// complete it.
    #[serde(rename = "failed")]
    Failed,
    /// Its owner cancelled it before it ended. Final: it is never run again
    /// and keeps no result.
    #[serde(rename = "cancelled")]
    Cancelled,
}

impl JobStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "Submitted",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Submitted, Self::Complete, Self::Failed, Self::Cancelled].into_iter().find(|s| s.as_str() == raw)
    }

    /// May a (re)delivered message start another attempt? Only a complete or
    /// cancelled job is closed: at-least-once delivery (or a replay) must
    /// never move it back.
    pub const fn accepts_attempt(self) -> bool {
        !matches!(self, Self::Complete | Self::Cancelled)
    }

    /// Has the job ended? A failed job has, though a replay may restart it.
    pub const fn has_ended(self) -> bool {
        !matches!(self, Self::Submitted)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point in time, in milliseconds since the Unix epoch (SQS's unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn now() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Self(u64::try_from(nanos / 1_000_000).unwrap_or(0))
    }

    pub fn millis(self) -> u64 {
        self.0
    }

    /// RFC 3339 in UTC, always with three fraction digits, e.g.
    /// `2026-11-22T19:30:00.000Z`, so every timestamp has one shape.
    pub fn to_rfc3339(self) -> String {
        const SHAPE: &[time::format_description::BorrowedFormatItem<'_>] =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .format(SHAPE)
            .unwrap_or_default()
    }

    pub fn parse_rfc3339(raw: &str) -> Option<Self> {
        let at = OffsetDateTime::parse(raw, &Rfc3339).ok()?;
        u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok().map(Self)
    }

    /// Whole seconds since the epoch (DynamoDB TTL's unit), rounded down.
    pub fn epoch_seconds(self) -> u64 {
        self.0 / 1000
    }

    pub fn from_epoch_seconds(seconds: u64) -> Self {
        Self(seconds.saturating_mul(1000))
    }

    /// This time plus whole days.
    pub fn plus_days(self, days: u32) -> Self {
        Self(self.0.saturating_add(u64::from(days) * 86_400_000))
    }
}

/// Where a finished job's output lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultLocation {
    pub bucket: String,
    pub key: String,
}

/// A job as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: JobId,
    pub status: JobStatus,
    /// The request body exactly as submitted.
    pub payload: String,
    pub submitted_at: Timestamp,
    pub updated_at: Timestamp,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub failure_reason: Option<String>,
    pub result: Option<ResultLocation>,
    pub completed_at: Option<Timestamp>,
    /// When the job last ended `failed`.
    pub failed_at: Option<Timestamp>,
    /// When its owner cancelled it.
    pub cancelled_at: Option<Timestamp>,
    /// The Cognito `sub` of the user who submitted it. A record without one
    /// (written before ownership existed, or sent to the queue without the
    /// API) is visible to nobody.
    pub owner: Option<String>,
    /// When the record (and its result) is gone: the table's TTL attribute.
    pub expires_at: Option<Timestamp>,
    /// Where the job's end is POSTed (`Job-Callback-Url` at submit), and
    /// why not when it never is.
    pub callback: Option<Callback>,
}

impl JobRecord {
    /// May `caller` (the authorizer's `sub`) see this job at `now`? Only its
    /// owner may, and only until it expires: DynamoDB's TTL deletes expired
    /// items lazily, so an expired record still read is treated as gone.
    pub fn visible_to(&self, caller: Option<&str>, now: Timestamp) -> bool {
        visible(self.owner.as_deref(), self.expires_at, caller, now)
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Who may see a record: its owner, until it expires.
fn visible(owner: Option<&str>, expires_at: Option<Timestamp>, caller: Option<&str>, now: Timestamp) -> bool {
    let owned = matches!((owner, caller), (Some(owner), Some(caller)) if owner == caller);
    owned && expires_at.is_none_or(|at| at > now)
}

/// A job's record as the store holds it.
// One per read, returned and consumed at once, never collected: boxing the
// readable record would add an allocation to every read to save stack bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredJob {
    Readable(JobRecord),
    /// The record exists but cannot be understood (no valid status or
    /// submission time): a permanent condition, not an outage.
    Unreadable(UnreadableJob),
}

/// What is known of a record that cannot be read: its owner and expiry,
/// read on their own, so that it stays invisible to everybody else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableJob {
    pub id: JobId,
    pub owner: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// What is wrong with it, for the log.
    pub problem: String,
}

impl StoredJob {
    /// The record, if it can be read.
    pub fn readable(self) -> Option<JobRecord> {
        match self {
            Self::Readable(job) => Some(job),
            Self::Unreadable(_) => None,
        }
    }

    /// The same rule as [`JobRecord::visible_to`], readable or not: whether
    /// the record is unreadable is nobody's business but its owner's.
    pub fn visible_to(&self, caller: Option<&str>, now: Timestamp) -> bool {
        match self {
            Self::Readable(job) => job.visible_to(caller, now),
            Self::Unreadable(job) => visible(job.owner.as_deref(), job.expires_at, caller, now),
        }
    }
}

/// A job as it arrives from the queue: what the first write records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub id: JobId,
    pub payload: String,
    /// When the client's request reached the queue.
    pub submitted_at: Timestamp,
    /// The submitter's Cognito `sub` (the message's `owner` attribute).
    pub owner: Option<String>,
    /// The callback URL (the message's `callbackUrl` attribute), checked.
    pub callback: Option<Callback>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_id_is_a_version_4_uuid_and_new_each_time() {
        let (a, b) = (JobId::random(), JobId::random());
        assert_ne!(a, b);
        assert_eq!(JobId::parse(a.as_str()), Ok(a.clone()));
        assert_eq!(&a.as_str()[14..15], "4");
        assert!("89ab".contains(&a.as_str()[19..20]), "{a}");
    }

    #[test]
    fn accepts_a_uuid_and_normalises_case() {
        let id = JobId::parse("4D1F0D2C-6A4E-4BD5-9C1E-2F0A7B3C9E21").unwrap();
        assert_eq!(id.as_str(), "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21");
        assert_eq!(id.result_key(), "results/4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21.json");
    }

    #[test]
    fn rejects_everything_that_is_not_a_uuid() {
        for bad in [
            "",
            "abc",
            "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e2",   // one digit short
            "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21a", // one too many
            "4d1f0d2c6a4e-4bd5-9c1e-2f0a7b3c9e21-",  // groups in the wrong place
            "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e2g",  // not hex
            "../../etc/passwd",
            "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e2\0",
            "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9eé",
        ] {
            let err = JobId::parse(bad).unwrap_err().to_string();
            assert!(err.contains("POST /submit-job-request"), "{bad:?}: {err}");
        }
        assert!(JobId::parse("").unwrap_err().to_string().starts_with("The job id is empty"));
    }

    #[test]
    fn error_messages_never_echo_more_than_a_short_escaped_prefix() {
        let long = "x".repeat(10_000);
        let err = JobId::parse(&long).unwrap_err().to_string();
        assert!(err.len() < 300, "{}", err.len());
        let err = JobId::parse("a\nb").unwrap_err().to_string();
        assert!(err.contains(r#""a\nb""#), "{err}");
    }

    #[test]
    fn only_complete_and_cancelled_are_closed_to_new_attempts() {
        assert!(JobStatus::Submitted.accepts_attempt());
        assert!(JobStatus::Failed.accepts_attempt());
        assert!(!JobStatus::Complete.accepts_attempt());
        assert!(!JobStatus::Cancelled.accepts_attempt());
        assert!(!JobStatus::Submitted.has_ended());
        assert!([JobStatus::Complete, JobStatus::Failed, JobStatus::Cancelled].iter().all(|s| s.has_ended()));
    }

    #[test]
    fn status_spellings_match_the_reference() {
        for (s, text) in [
            (JobStatus::Submitted, "Submitted"),
            (JobStatus::Complete, "complete"),
            (JobStatus::Failed, "failed"),
            (JobStatus::Cancelled, "cancelled"),
        ] {
            assert_eq!(s.as_str(), text);
            assert_eq!(JobStatus::parse(text), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("{text:?}"));
        }
        assert_eq!(JobStatus::parse("Complete"), None);
    }

    #[test]
    fn only_the_owner_sees_a_job_and_only_until_it_expires() {
        let mut job = JobRecord {
            id: JobId::parse("4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21").unwrap(),
            status: JobStatus::Complete,
            payload: "{}".into(),
            submitted_at: Timestamp(0),
            updated_at: Timestamp(0),
            attempts: 1,
            last_error: None,
            failure_reason: None,
            result: None,
            completed_at: None,
            failed_at: None,
            cancelled_at: None,
            owner: Some("alice".into()),
            expires_at: Some(Timestamp::from_epoch_seconds(100)),
            callback: None,
        };
        assert!(job.visible_to(Some("alice"), Timestamp(99_999)));
        assert!(!job.visible_to(Some("alice"), Timestamp(100_000)), "expired at expiresAt");
        assert!(!job.visible_to(Some("bob"), Timestamp(0)));
        assert!(!job.visible_to(None, Timestamp(0)));
        job.owner = None;
        assert!(!job.visible_to(Some("alice"), Timestamp(0)), "a record without an owner is visible to nobody");
        assert!(!job.visible_to(Some(""), Timestamp(0)));
    }

    #[test]
    fn days_and_epoch_seconds() {
        assert_eq!(Timestamp(1_500).plus_days(2), Timestamp(1_500 + 2 * 86_400_000));
        assert_eq!(Timestamp(1_999).epoch_seconds(), 1);
        assert_eq!(Timestamp::from_epoch_seconds(3), Timestamp(3_000));
    }

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        let t = Timestamp(1_763_840_000_123);
        assert_eq!(t.to_rfc3339(), "2025-11-22T19:33:20.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(Timestamp(1_763_840_000_000).to_rfc3339(), "2025-11-22T19:33:20.000Z");
    }
}
