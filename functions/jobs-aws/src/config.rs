//! Start-up configuration shared by every function.

use std::str::FromStr;

use aws_config::SdkConfig;
use jobs_core::webhook::Destinations;

/// A missing or malformed environment variable. The stack sets all of them;
/// seeing this means the function runs outside the stack it was built for.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set; the app stack sets it (see docs/contract.md)")]
    Missing(&'static str),
    #[error("environment variable {name} is {value:?}, which is not {expected}")]
    Invalid { name: &'static str, value: String, expected: &'static str },
}

pub fn env_var(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

pub fn env_parse<T: FromStr>(name: &'static str, expected: &'static str) -> Result<T, ConfigError> {
    let value = env_var(name)?;
    value.trim().parse().map_err(|_| ConfigError::Invalid { name, value, expected })
}

/// `WEBHOOK_DESTINATIONS`: where callback URLs may point (the stack sets
/// `public-https`; the local target `public-https-and-loopback`).
pub fn webhook_destinations() -> Result<Destinations, ConfigError> {
    let name = "WEBHOOK_DESTINATIONS";
    let value = env_var(name)?;
    Destinations::parse(value.trim()).ok_or(ConfigError::Invalid {
        name,
        value,
        expected: "public-https or public-https-and-loopback",
    })
}

/// JSON logs on stdout (Lambda ships them to the function's log group),
/// filtered by `RUST_LOG`, without ANSI colours or the redundant timestamp
/// Lambda adds itself.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .init();
}

/// Region, credentials and endpoint overrides (`AWS_ENDPOINT_URL*`, which the
/// local target sets) from the environment; every client shares one HTTPS
/// client that trusts the compiled-in roots ([`crate::tls`]), so start-up reads
/// no certificate from disk.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::from_env().http_client(crate::tls::https_client()).load().await
}

/// S3 needs path-style addressing when its endpoint is overridden: an
/// emulator on 127.0.0.1 has no virtual-host bucket names.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(endpoint_overridden()).build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// Whether S3's endpoint is overridden (an emulator: path-style addressing).
pub fn endpoint_overridden() -> bool {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].iter().any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}
