//! S3's `sequencer`: "a string representation of a hexadecimal value used to
//! determine event sequence, only applicable to PUTs and DELETEs. To
//! determine the order, compare sequencer values as strings after
//! left-padding the shorter one with zeros; only events for the same object
//! key are comparable."

use std::cmp::Ordering;

/// A sequencer in canonical form: upper-case hex without leading zeros, so
/// that equal values (padded or not) compare and dedupe as equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sequencer(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sequencer {0:?} is not a hexadecimal string")]
pub struct InvalidSequencer(pub String);

impl Sequencer {
    pub fn parse(raw: &str) -> Result<Self, InvalidSequencer> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidSequencer(raw.to_string()));
        }
        let trimmed = raw.trim_start_matches('0').to_ascii_uppercase();
        Ok(Self(if trimmed.is_empty() { "0".into() } else { trimmed }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for Sequencer {
    /// Left-padding to equal length then comparing as strings is, without
    /// leading zeros, comparing lengths first, then the strings.
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Sequencer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Sequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Sequencer {
        Sequencer::parse(v).unwrap()
    }

    #[test]
    fn compares_after_left_padding() {
        assert!(s("0055AED6DCD90281E5") < s("0055AED6DCD90281E6"));
        assert!(s("FF") < s("100"), "a shorter value is padded, not compared as text");
        assert_eq!(s("00ab"), s("AB"), "padding and case do not make a different event");
        assert!(s("0") < s("1"));
        assert_eq!(s("000").as_str(), "0");
    }

    #[test]
    fn rejects_non_hex() {
        assert!(Sequencer::parse("").is_err());
        assert!(Sequencer::parse("12g4").is_err());
        assert!(Sequencer::parse(" 12").is_err());
    }
}
