use std::time::Duration;

use jobs_aws::{ConfigError, env_var, init_tracing};
use jwks::JwksCache;
use jwt::{TokenUse, VerifierConfig};
use lambda_runtime::{Error, run, service_fn};

mod handler;
mod http;
mod jwks;
mod jwt;
#[cfg(test)]
mod moto_tests;
mod policy;

/// JWKS requests must not eat the authorizer's time budget.
const JWKS_TIMEOUT: Duration = Duration::from_secs(3);
/// After a key fetch that did not find a token's kid, refuse unknown kids
/// for this long without fetching (as aws-jwt-verify's penalty box does).
const UNKNOWN_KID_PENALTY: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let authorizer = handler::Authorizer {
        keys: JwksCache::new(http::HttpJwks::new(&env_var("JWKS_URL")?, JWKS_TIMEOUT)?, UNKNOWN_KID_PENALTY),
        verifier: VerifierConfig {
            issuer: env_var("COGNITO_ISSUER")?,
            client_id: env_var("COGNITO_APP_CLIENT_ID")?,
            token_use: token_use()?,
            leeway_seconds: optional_env("JWT_LEEWAY_SECONDS", "a whole number of seconds")?.unwrap_or(5),
        },
        routes: policy::Route::parse_list(&env_var("ALLOWED_ROUTES")?)?,
    };
    run(service_fn(|event| handler::authorize(&authorizer, event))).await
}

/// `COGNITO_TOKEN_USE`: `id` (default) or `access`.
fn token_use() -> Result<TokenUse, ConfigError> {
    match std::env::var("COGNITO_TOKEN_USE").as_deref() {
        Err(_) | Ok("") | Ok("id") => Ok(TokenUse::Id),
        Ok("access") => Ok(TokenUse::Access),
        Ok(other) => {
            Err(ConfigError::Invalid { name: "COGNITO_TOKEN_USE", value: other.to_owned(), expected: "id or access" })
        }
    }
}

fn optional_env(name: &'static str, expected: &'static str) -> Result<Option<u64>, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => v.trim().parse().map(Some).map_err(|_| ConfigError::Invalid { name, value: v, expected }),
    }
}
