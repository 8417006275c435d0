//! Completion webhooks: which callback URLs the service may ever call, and
//! the signature that lets a receiver check that a delivery came from this
//! stage and was not replayed from long ago (docs/webhooks.md).
//!
//! A URL is checked twice: here when the job is recorded (its form and any
//! literal address), and by the sender's resolver for the addresses its host
//! name resolves to, just before connecting to exactly those addresses
//! ([`address_allowed`]), so a name cannot be re-pointed between the check
//! and the call.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::job::JobId;
use crate::processing::backoff;

/// The request header a submit names its callback URL in.
pub const CALLBACK_URL_HEADER: &str = "Job-Callback-Url";
/// The request header a delivery carries its signature in.
pub const SIGNATURE_HEADER: &str = "Job-Signature";
/// The request header naming the event ("Job Completed", ...).
pub const EVENT_HEADER: &str = "Job-Event";
/// The longest callback URL accepted, in characters.
pub const MAX_CALLBACK_URL_CHARS: usize = 2048;

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under `secret`.
/// The receiver recomputes it over the raw body it received and compares in
/// constant time; `t` lets it refuse old deliveries.
pub fn signature(secret: &[u8], unix_seconds: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={unix_seconds},v1={hex}")
}

/// Where callbacks may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destinations {
    /// On AWS: `https` to public addresses only.
    PublicHttps,
    /// On the local target: also `http` and `https` to loopback addresses,
    /// so that tests can receive deliveries.
    PublicHttpsAndLoopback,
}

impl Destinations {
    /// `WEBHOOK_DESTINATIONS` as the stack sets it: `public-https` or
    /// `public-https-and-loopback`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "public-https" => Some(Self::PublicHttps),
            "public-https-and-loopback" => Some(Self::PublicHttpsAndLoopback),
            _ => None,
        }
    }
}

/// Why a callback URL is never called; shown on the job (`webhookRefused`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{CALLBACK_URL_HEADER} {0}")]
pub struct RefusedCallback(pub String);

/// A callback URL that passed every check that can be made without DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackUrl {
    url: url::Url,
    host: String,
}

impl CallbackUrl {
    pub fn parse(raw: &str, allowed: Destinations) -> Result<Self, RefusedCallback> {
        let refuse = |why: &str| Err(RefusedCallback(why.to_owned()));
        if raw.chars().count() > MAX_CALLBACK_URL_CHARS {
            return refuse(&format!("is longer than {MAX_CALLBACK_URL_CHARS} characters"));
        }
        let Ok(url) = url::Url::parse(raw.trim()) else {
            return refuse("is not an absolute URL (https://host/path)");
        };
        if !url.username().is_empty() || url.password().is_some() {
            return refuse("must not carry a user name or password");
        }
        let loopback_allowed = allowed == Destinations::PublicHttpsAndLoopback;
        let host = match url.host() {
            Some(url::Host::Ipv4(ip)) => Host::Address(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Host::Address(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => Host::Name(name.to_ascii_lowercase()),
            None => return refuse("has no host"),
        };
        match (url.scheme(), &host) {
            ("https", _) => {}
            ("http", Host::Address(ip)) if loopback_allowed && ip.is_loopback() => {}
            ("http", _) if loopback_allowed => return refuse("must use https (http only to a loopback address)"),
            _ => return refuse("must use https"),
        }
        match &host {
            Host::Address(ip) if !address_allowed(*ip, allowed) => {
                return refuse(&format!("names {ip}, which is not a public address"));
            }
            Host::Name(name) if name == "localhost" || name.ends_with(".localhost") => {
                return refuse("names localhost, which is not a public address");
            }
            // A name without a dot is resolved by search domains and
            // /etc/hosts only: never a public host.
            Host::Name(name) if !name.trim_end_matches('.').contains('.') => {
                return refuse(&format!("names {name}, which is not a public host name"));
            }
            _ => {}
        }
        let host = match host {
            Host::Address(ip) => ip.to_string(),
            Host::Name(name) => name,
        };
        Ok(Self { url, host })
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The host name or address to resolve and connect to.
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// A job's callback URL as its submitter gave it, and, when it is never
/// called, why (shown on the job as `webhookRefused`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub url: String,
    pub refused: Option<String>,
}

impl Callback {
    /// The URL from a submit's `Job-Callback-Url`, checked against `allowed`
    /// (the checks that need no DNS; the sender's resolver makes the rest).
    pub fn check(raw: &str, allowed: Destinations) -> Self {
        let refused = CallbackUrl::parse(raw, allowed).err().map(|e| e.to_string());
        Self { url: raw.to_owned(), refused }
    }

    /// The URL a job's end is delivered to, if it may be called.
    pub fn deliverable(&self) -> Option<&str> {
        self.refused.is_none().then_some(self.url.as_str())
    }
}

/// When a failed delivery is tried again, and when the sender stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    pub backoff_base_seconds: u32,
    pub backoff_cap_seconds: u32,
    /// The delivery queue's `maxReceiveCount`: after this attempt the event
    /// goes to the webhook dead-letter queue.
    pub max_attempts: u32,
}

impl RetrySchedule {
    pub fn delay_after(&self, attempt: u32) -> u32 {
        backoff(self.backoff_base_seconds, self.backoff_cap_seconds, attempt)
    }

    /// Seconds from the first attempt to the last (the stack makes it at
    /// least a day).
    pub fn span_seconds(&self) -> u64 {
        (1..self.max_attempts).map(|n| u64::from(self.delay_after(n))).sum()
    }
}

/// What one POST came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The receiver answered with this HTTP status.
    Status(u16),
    /// The host resolves to an address a delivery may not reach: never sent.
    Refused(String),
    /// No answer: DNS, connection, TLS or timeout; what went wrong.
    Failed(String),
}

/// What the sender does after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A 2xx: done.
    Delivered { status: u16 },
    /// Recorded on the job; the event is dropped.
    Refused(String),
    /// Tried again after the back-off.
    RetryLater { error: String, delay_seconds: u32 },
    /// The last attempt failed: the event goes to the dead-letter queue.
    GaveUp { error: String },
}

/// The step after the `attempt`th try (1 on the first) came to `answer`.
/// Any status but 2xx is a failure, redirects included: following one could
/// lead a delivery to an address that was never checked.
pub fn next_step(answer: Answer, attempt: u32, schedule: &RetrySchedule) -> Step {
    let error = match answer {
        Answer::Status(status) if (200..300).contains(&status) => return Step::Delivered { status },
        Answer::Refused(reason) => return Step::Refused(reason),
        Answer::Status(status) => format!("the receiver answered {status}"),
        Answer::Failed(error) => error,
    };
    if attempt >= schedule.max_attempts {
        Step::GaveUp { error }
    } else {
        Step::RetryLater { error, delay_seconds: schedule.delay_after(attempt) }
    }
}

/// The body of a delivery: the event's `detail` as the status document
/// shows it (docs/events.md): without the callback URL, which the receiver
/// knows, and without `owner` (a Cognito `sub` or an IAM principal's ARN),
/// which GET /job-status does not show either. `None` if the event carries
/// no callback URL or no valid job id.
pub fn webhook_of(event: &serde_json::Value) -> Option<Webhook> {
    let detail = event.get("detail")?.as_object()?;
    let url = detail.get("callbackUrl")?.as_str()?.to_owned();
    let job_id = JobId::parse(detail.get("jobId")?.as_str()?).ok()?;
    let mut body = detail.clone();
    body.remove("callbackUrl");
    body.remove("owner");
    Some(Webhook {
        job_id,
        url,
        event: event.get("detail-type").and_then(|t| t.as_str()).unwrap_or_default().to_owned(),
        body: serde_json::Value::Object(body).to_string().into_bytes(),
    })
}

/// One webhook to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub job_id: JobId,
    pub url: String,
    /// The event's `detail-type` ("Job Completed", ...), sent as `Job-Event`.
    pub event: String,
    pub body: Vec<u8>,
}

enum Host {
    Address(IpAddr),
    Name(String),
}

/// Whether a delivery may connect to `ip`: only public unicast addresses,
/// never loopback, private, shared, link-local (which holds the instance
/// metadata service, 169.254.169.254 and fd00:ec2::254 is unique-local),
/// documentation, benchmarking, multicast or reserved ones; IPv6 forms that
/// embed an IPv4 address are judged by that address. Loopback only where
/// `allowed` says so.
pub fn address_allowed(ip: IpAddr, allowed: Destinations) -> bool {
    if ip.is_loopback() || embedded_v4(ip).is_some_and(|v4| v4.is_loopback()) {
        return allowed == Destinations::PublicHttpsAndLoopback;
    }
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(ip) {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..=127).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240; // reserved
    !refused
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let refused = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local() // fc00::/7, holds fd00:ec2::254
        || ip.is_unicast_link_local()
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x2001 && segments[1] == 0) // Teredo: tunnels to any IPv4 address
        || (segments[0] == 0x0100 && segments[1..4] == [0, 0, 0]) // discard-only
        || segments[0] & 0xe000 != 0x2000; // outside global unicast 2000::/3
    !refused
}

/// The IPv4 address an IPv6 one stands for: IPv4-mapped (::ffff:a.b.c.d),
/// NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::).
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let from = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(from(hi, lo)),
        [0x2002, hi, lo, ..] => Some(from(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4d1f0d2c-6a4e-4bd5-9c1e-2f0a7b3c9e21";

    const AWS: Destinations = Destinations::PublicHttps;
    const LOCAL: Destinations = Destinations::PublicHttpsAndLoopback;

    fn refused(raw: &str, allowed: Destinations) -> String {
        CallbackUrl::parse(raw, allowed).expect_err(raw).to_string()
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_time_a_dot_and_the_body() {
        // RFC 4231 gives HMAC-SHA256 vectors over arbitrary data; this one is
        // the same computation over "<t>.<body>", checked with Python's
        // hmac.new(b"whsec_test", b"1700000000.{}", "sha256").hexdigest().
        assert_eq!(
            signature(b"whsec_test", 1_700_000_000, b"{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
        assert_ne!(signature(b"whsec_test", 1_700_000_001, b"{}"), signature(b"whsec_test", 1_700_000_000, b"{}"));
        assert_ne!(signature(b"other", 1_700_000_000, b"{}"), signature(b"whsec_test", 1_700_000_000, b"{}"));
    }

    #[test]
    fn public_https_urls_pass() {
        for raw in ["https://example.com/hooks/jobs", "https://93.184.215.14:8443/x?y=1", "https://[2606:4700::1111]/"]
        {
            let url = CallbackUrl::parse(raw, AWS).unwrap();
            assert_eq!(url.as_str(), url::Url::parse(raw).unwrap().as_str());
        }
        assert_eq!(CallbackUrl::parse("https://Example.COM/a", AWS).unwrap().host(), "example.com");
    }

    #[test]
    fn on_aws_only_https_to_public_hosts_is_called() {
        let cases = [
            ("http://example.com/", "must use https"),
            ("ftp://example.com/", "must use https"),
            ("example.com/hook", "is not an absolute URL"),
            ("", "is not an absolute URL"),
            ("https://user:pw@example.com/", "must not carry a user name or password"),
            ("https://127.0.0.1/", "names 127.0.0.1, which is not a public address"),
            ("https://localhost/", "names localhost"),
            ("https://api.localhost/", "names localhost"),
            ("https://169.254.169.254/latest/meta-data/", "names 169.254.169.254"),
            ("https://[fd00:ec2::254]/", "names fd00:ec2::254"),
            ("https://10.1.2.3/", "not a public address"),
            ("https://172.31.0.1/", "not a public address"),
            ("https://192.168.1.1/", "not a public address"),
            ("https://100.64.0.1/", "not a public address"),
            ("https://0.0.0.0/", "not a public address"),
            ("https://[::1]/", "not a public address"),
            ("https://[::ffff:127.0.0.1]/", "not a public address"),
            ("https://[::ffff:169.254.169.254]/", "not a public address"),
            ("https://[fe80::1]/", "not a public address"),
            // The URL parser reads these forms of 127.0.0.1 as the address they are.
            ("https://2130706433/", "names 127.0.0.1"),
            ("https://0x7f.1/", "names 127.0.0.1"),
            ("https://metadata/", "names metadata, which is not a public host name"),
        ];
        for (raw, why) in cases {
            let message = refused(raw, AWS);
            assert!(message.starts_with("Job-Callback-Url "), "{raw}: {message}");
            assert!(message.contains(why), "{raw}: {message}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_CALLBACK_URL_CHARS));
        assert!(refused(&long, AWS).contains("longer than 2048 characters"));
    }

    #[test]
    fn locally_loopback_is_allowed_over_http_and_nothing_else_private() {
        assert!(CallbackUrl::parse("http://127.0.0.1:8080/hook", LOCAL).is_ok());
        assert!(CallbackUrl::parse("http://[::1]:8080/hook", LOCAL).is_ok());
        assert!(CallbackUrl::parse("https://example.com/hook", LOCAL).is_ok());
        assert!(refused("http://example.com/", LOCAL).contains("http only to a loopback address"));
        assert!(refused("http://10.0.0.1/", LOCAL).contains("http only to a loopback address"));
        assert!(refused("https://10.0.0.1/", LOCAL).contains("not a public address"));
        assert!(refused("http://localhost:8080/", LOCAL).contains("http only to a loopback address"));
    }

    #[test]
    fn addresses_are_judged_as_the_delivery_would_reach_them() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for public in ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            assert!(address_allowed(ip(public), AWS), "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "192.0.0.192",
            "198.18.0.1",
            "203.0.113.9",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "2001:0::1",
            "64:ff9b::a00:1",    // NAT64 of 10.0.0.1
            "2002:a9fe:a9fe::1", // 6to4 of 169.254.169.254
            "::ffff:10.0.0.1",
        ] {
            assert!(!address_allowed(ip(private), AWS), "{private}");
            assert!(!address_allowed(ip(private), LOCAL) || ip(private).is_loopback(), "{private}");
        }
        assert!(address_allowed(ip("127.0.0.1"), LOCAL));
        assert!(address_allowed(ip("::ffff:127.0.0.1"), LOCAL));
    }

    #[test]
    fn a_refused_callback_keeps_its_url_and_says_why() {
        let ok = Callback::check("https://example.com/hook", AWS);
        assert_eq!((ok.deliverable(), ok.refused.as_deref()), (Some("https://example.com/hook"), None));
        let refused = Callback::check("http://127.0.0.1:9000/hook", AWS);
        assert_eq!(refused.url, "http://127.0.0.1:9000/hook");
        assert_eq!(refused.deliverable(), None);
        assert_eq!(refused.refused.as_deref(), Some("Job-Callback-Url must use https"));
    }

    const SCHEDULE: RetrySchedule =
        RetrySchedule { backoff_base_seconds: 10, backoff_cap_seconds: 3600, max_attempts: 33 };

    #[test]
    fn failures_are_retried_with_back_off_until_the_last_attempt() {
        assert_eq!(next_step(Answer::Status(204), 1, &SCHEDULE), Step::Delivered { status: 204 });
        assert_eq!(
            next_step(Answer::Status(500), 1, &SCHEDULE),
            Step::RetryLater { error: "the receiver answered 500".into(), delay_seconds: 10 }
        );
        assert_eq!(
            next_step(Answer::Status(302), 3, &SCHEDULE),
            Step::RetryLater { error: "the receiver answered 302".into(), delay_seconds: 40 }
        );
        assert_eq!(
            next_step(Answer::Failed("connection refused".into()), 20, &SCHEDULE),
            Step::RetryLater { error: "connection refused".into(), delay_seconds: 3600 }
        );
        assert_eq!(
            next_step(Answer::Status(503), 33, &SCHEDULE),
            Step::GaveUp { error: "the receiver answered 503".into() }
        );
        assert_eq!(next_step(Answer::Refused("r".into()), 1, &SCHEDULE), Step::Refused("r".into()));
        // The stack's schedule (cdktf/constructs/job-webhooks.ts) spans more than a day.
        assert!(SCHEDULE.span_seconds() >= 86_400, "{}", SCHEDULE.span_seconds());
    }

    #[test]
    fn a_delivery_is_the_events_detail_without_the_url() {
        let event = serde_json::json!({
            "source": "job-ingestion",
            "detail-type": "Job Completed",
            "detail": {"jobId": ID, "jobStatus": "complete", "owner": "sub-1", "callbackUrl": "https://example.com/h"},
        });
        let delivery = webhook_of(&event).unwrap();
        assert_eq!((delivery.job_id.as_str(), delivery.url.as_str()), (ID, "https://example.com/h"));
        assert_eq!(delivery.event, "Job Completed");
        let body: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(body, serde_json::json!({"jobId": ID, "jobStatus": "complete"}));
        assert_eq!(webhook_of(&serde_json::json!({"detail": {"jobId": ID}})), None);
        let not_a_job = serde_json::json!({"detail": {"jobId": "j-1", "callbackUrl": "https://example.com/h"}});
        assert_eq!(webhook_of(&not_a_job), None);
    }

    #[test]
    fn destinations_are_read_from_the_stacks_setting() {
        assert_eq!(Destinations::parse("public-https"), Some(AWS));
        assert_eq!(Destinations::parse("public-https-and-loopback"), Some(LOCAL));
        assert_eq!(Destinations::parse("anything"), None);
    }
}
