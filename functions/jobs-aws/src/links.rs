//! Result links: presigned S3 GETs that work for as long as the status says.
//!
//! A presigned URL stops working when the credentials that signed it expire,
//! whatever its own `X-Amz-Expires` says
//! (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html).
//! A Lambda function's own credentials come from environment variables that
//! carry no expiry, so a link signed with them may die at any moment of its
//! stated life. The links are therefore signed with a session of a role
//! assumed for the purpose, whose expiry STS states: a session is replaced
//! before less than a link's lifetime (and a minute) is left, and the expiry
//! a link is given is the earlier of its own and its session's.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_sdk_s3::config::{Credentials, ProvideCredentials};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use jobs_core::ResultLocation;
use jobs_core::Timestamp;
use jobs_core::ports::{PresignResult, StoreError};
use jobs_core::status::ResultLink;
use tokio::sync::Mutex;

/// A session is replaced when less than a link's lifetime and this much is left.
pub const SESSION_MARGIN: Duration = Duration::from_secs(60);
/// The longest session STS grants a role assumed from another role's session
/// (a Lambda function's): one hour ("role chaining",
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_terms-and-concepts.html#iam-term-role-chaining).
pub const SESSION_LENGTH: Duration = Duration::from_secs(3600);
/// A link shorter than this is not worth handing out: the status answers 503.
pub const MIN_LINK: Duration = Duration::from_secs(60);

const UNAVAILABLE: &str = "the result link could not be signed";

/// Signs result links with sessions of the link role (`RESULT_LINK_ROLE_ARN`).
pub struct ResultLinks {
    sdk: SdkConfig,
    role: AssumeRoleProvider,
    session: Mutex<Option<Session>>,
}

struct Session {
    client: aws_sdk_s3::Client,
    expiry: Option<SystemTime>,
}

impl ResultLinks {
    pub async fn from_config(config: &SdkConfig, role_arn: impl Into<String>) -> Self {
        let role = AssumeRoleProvider::builder(role_arn)
            .session_name("result-links")
            .session_length(SESSION_LENGTH)
            .configure(config)
            .build()
            .await;
        Self { sdk: config.clone(), role, session: Mutex::new(None) }
    }

    /// A client signing with a session that lasts at least `needed` more
    /// (a new one when the current one does not), and the session's expiry.
    async fn signer(&self, needed: Duration) -> Result<(aws_sdk_s3::Client, Option<SystemTime>), StoreError> {
        let mut session = self.session.lock().await;
        let now = SystemTime::now();
        if session.as_ref().is_none_or(|s| needs_new_session(now, s.expiry, needed)) {
            match self.role.provide_credentials().await {
                Ok(credentials) => *session = Some(self.session_for(credentials)),
                // An older session may still give a shorter link.
                Err(e) if session.is_some() => {
                    tracing::warn!(error = %DisplayErrorContext(&e), "renewing the link session failed");
                }
                Err(e) => {
                    let detail = format!("assuming the link role failed: {}", DisplayErrorContext(e));
                    return Err(StoreError::with_detail(UNAVAILABLE, detail));
                }
            }
        }
        let s = session.as_ref().expect("a session was set above");
        Ok((s.client.clone(), s.expiry))
    }

    fn session_for(&self, credentials: Credentials) -> Session {
        let expiry = credentials.expiry();
        let config = aws_sdk_s3::config::Builder::from(&self.sdk)
            .credentials_provider(credentials)
            .force_path_style(self.sdk.endpoint_url().is_some() || crate::config::endpoint_overridden())
            .build();
        Session { client: aws_sdk_s3::Client::from_conf(config), expiry }
    }
}

/// Whether a session expiring at `expiry` is too short for a link of `needed`.
fn needs_new_session(now: SystemTime, expiry: Option<SystemTime>, needed: Duration) -> bool {
    expiry.is_some_and(|at| at < now + needed + SESSION_MARGIN)
}

/// How long a link signed at `now` with a session expiring at `expiry` works:
/// the requested `ttl`, or less if the session ends first; `None` if that is
/// under [`MIN_LINK`].
pub fn link_lifetime(now: SystemTime, ttl: Duration, expiry: Option<SystemTime>) -> Option<Duration> {
    let left = expiry.map_or(ttl, |at| at.duration_since(now).unwrap_or_default());
    Some(ttl.min(left)).filter(|d| *d >= MIN_LINK)
}

impl PresignResult for ResultLinks {
    async fn presign_result(
        &self,
        location: &ResultLocation,
        expires_in_seconds: u64,
    ) -> Result<ResultLink, StoreError> {
        let ttl = Duration::from_secs(expires_in_seconds);
        let (client, expiry) = self.signer(ttl).await?;
        let now = SystemTime::now();
        let lifetime = link_lifetime(now, ttl, expiry).ok_or_else(|| {
            StoreError::with_detail(UNAVAILABLE, format!("the link session expires at {expiry:?}, too soon for a link"))
        })?;
        // Whole seconds: X-Amz-Expires is in seconds.
        let lifetime = Duration::from_secs(lifetime.as_secs());
        let config = PresigningConfig::builder()
            .start_time(now)
            .expires_in(lifetime)
            .build()
            .map_err(|e| StoreError::with_detail(UNAVAILABLE, format!("invalid link lifetime: {e}")))?;
        let request =
            client.get_object().bucket(&location.bucket).key(&location.key).presigned(config).await.map_err(|e| {
                let detail = format!(
                    "signing a link to s3://{}/{} failed: {}",
                    location.bucket,
                    location.key,
                    DisplayErrorContext(e)
                );
                StoreError::with_detail(UNAVAILABLE, detail)
            })?;
        let signed_at = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let expires_at = Timestamp(u64::try_from((signed_at + lifetime).as_millis()).unwrap_or(u64::MAX));
        Ok(ResultLink { url: request.uri().to_owned(), expires_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;
    const HALF_HOUR: Duration = Duration::from_secs(1800);

    fn at(seconds: u64) -> SystemTime {
        T0 + Duration::from_secs(seconds)
    }

    #[test]
    fn a_link_never_outlives_its_session() {
        assert_eq!(link_lifetime(at(0), HALF_HOUR, Some(at(3600))), Some(HALF_HOUR));
        assert_eq!(link_lifetime(at(3000), HALF_HOUR, Some(at(3600))), Some(Duration::from_secs(600)));
        assert_eq!(link_lifetime(at(3570), HALF_HOUR, Some(at(3600))), None, "under a minute left");
        assert_eq!(link_lifetime(at(3700), HALF_HOUR, Some(at(3600))), None, "expired");
        assert_eq!(link_lifetime(at(0), HALF_HOUR, None), Some(HALF_HOUR), "long-term credentials");
    }

    #[test]
    fn a_session_is_replaced_before_it_is_too_short_for_a_whole_link() {
        let expiry = Some(at(3600));
        assert!(!needs_new_session(at(0), expiry, HALF_HOUR));
        assert!(!needs_new_session(at(1739), expiry, HALF_HOUR), "30 min + 1 min + 1 s left");
        assert!(needs_new_session(at(1741), expiry, HALF_HOUR));
        assert!(!needs_new_session(at(10_000), None, HALF_HOUR), "long-term credentials do not expire");
    }
}
