//! The webhook signing secret, from Secrets Manager.

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use jobs_core::ports::{ReadSigningSecret, StoreError};
use tokio::sync::OnceCell;

/// What a failed read is called in the log's first line; the SDK error is
/// the detail.
pub const SECRET_UNAVAILABLE: &str = "the webhook signing secret could not be read";

/// Read on the first delivery (not at start: a cold start builds no client
/// it may not need) and kept for the instance's life, so a rotated secret
/// reaches new instances only (docs/webhooks.md, "Rotating the secret").
#[derive(Debug)]
pub struct SecretsManagerSecret {
    config: SdkConfig,
    secret_id: String,
    value: OnceCell<Vec<u8>>,
}

impl SecretsManagerSecret {
    pub fn new(config: &SdkConfig, secret_id: impl Into<String>) -> Self {
        Self { config: config.clone(), secret_id: secret_id.into(), value: OnceCell::new() }
    }
}

impl ReadSigningSecret for SecretsManagerSecret {
    async fn signing_secret(&self) -> Result<Vec<u8>, StoreError> {
        let value = self
            .value
            .get_or_try_init(|| async {
                let answer =
                    Client::new(&self.config).get_secret_value().secret_id(&self.secret_id).send().await.map_err(
                        |e| {
                            StoreError::with_detail(
                                SECRET_UNAVAILABLE,
                                format!("GetSecretValue: {}", DisplayErrorContext(e)),
                            )
                        },
                    )?;
                match answer.secret_string() {
                    Some(text) if !text.is_empty() => Ok(text.as_bytes().to_vec()),
                    _ => Err(StoreError::with_detail(SECRET_UNAVAILABLE, "the secret has no string value")),
                }
            })
            .await?;
        Ok(value.clone())
    }
}
