use std::time::Duration;

use aws_lambda_events::event::apigw::{ApiGatewayCustomAuthorizerRequest, ApiGatewayCustomAuthorizerResponse};
use jobs_aws::{ConfigError, env_var};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::json;

use crate::http::HttpJwks;
use crate::jwks::JwksCache;
use crate::jwt::{KeySource, TokenUse, VerifierConfig, verify};
use crate::policy::{Route, allow};

/// API Gateway turns exactly this error message into a 401.
pub const UNAUTHORIZED: &str = "Unauthorized";

/// JWKS requests must not eat the authorizer's time budget.
pub const JWKS_TIMEOUT: Duration = Duration::from_secs(3);
/// After a key fetch that did not find a token's kid, refuse unknown kids
/// for this long without fetching (as aws-jwt-verify's penalty box does).
pub const UNKNOWN_KID_PENALTY: Duration = Duration::from_secs(10);

pub struct Authorizer<K> {
    pub keys: K,
    pub verifier: VerifierConfig,
    pub routes: Vec<Route>,
}

impl Authorizer<JwksCache<HttpJwks>> {
    /// The authorizer the app stack configures (docs/contract.md), with the
    /// HTTP client of its key cache: built once, at start-up.
    pub fn from_env() -> Result<Self, Error> {
        Ok(Self {
            keys: JwksCache::new(HttpJwks::new(&env_var("JWKS_URL")?, JWKS_TIMEOUT)?, UNKNOWN_KID_PENALTY),
            verifier: VerifierConfig {
                issuer: env_var("COGNITO_ISSUER")?,
                client_id: env_var("COGNITO_APP_CLIENT_ID")?,
                token_use: token_use()?,
                leeway_seconds: optional_env("JWT_LEEWAY_SECONDS", "a whole number of seconds")?.unwrap_or(5),
            },
            routes: Route::parse_list(&env_var("ALLOWED_ROUTES")?)?,
        })
    }
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

/// TOKEN authorizer: a valid Cognito ID token gets a policy allowing the
/// API's routes, with the caller's identity passed on as context; anything
/// else is refused with `Unauthorized` (401). The reason is logged, never
/// returned.
pub async fn authorize<K: KeySource>(
    authorizer: &Authorizer<K>,
    event: LambdaEvent<ApiGatewayCustomAuthorizerRequest>,
) -> Result<ApiGatewayCustomAuthorizerResponse, Error> {
    let request = event.payload;
    let header = request.authorization_token.as_deref().unwrap_or_default().trim();
    let token = strip_bearer(header);
    if token.is_empty() {
        tracing::info!("refused: no token");
        return Err(UNAUTHORIZED.into());
    }
    let claims = match verify(token, &authorizer.keys, &authorizer.verifier).await {
        Ok(claims) => claims,
        Err(e) if e.is_server_side() => {
            // Not the caller's fault: any error but "Unauthorized" makes API
            // Gateway answer AUTHORIZER_CONFIGURATION_ERROR (503, docs/api.md).
            tracing::error!(error = %e, "cannot verify tokens");
            return Err(format!("Cannot verify tokens right now: {e}").into());
        }
        Err(e) => {
            tracing::info!(reason = %e, "refused");
            return Err(UNAUTHORIZED.into());
        }
    };
    let method_arn = request.method_arn.as_deref().unwrap_or_default();
    let policy = allow(method_arn, &authorizer.routes)?;
    tracing::info!(sub = %claims.sub, "allowed");
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(claims.sub.clone());
    response.policy_document = policy;
    // Context values must be strings, numbers or booleans.
    response.context = json!({
        "sub": claims.sub,
        "username": claims.username.unwrap_or_default(),
        "email": claims.email.unwrap_or_default(),
    });
    Ok(response)
}

/// Accept the raw token or `Bearer <token>` (any case, as clients vary).
fn strip_bearer(header: &str) -> &str {
    match header.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => header,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::jwks::{Jwk, KeyError};
    use crate::jwt::tests::{TestPool, config, id_claims};
    use lambda_runtime::Context;

    struct Keys(Arc<Jwk>);
    impl KeySource for Keys {
        async fn key(&self, kid: &str) -> Result<Arc<Jwk>, KeyError> {
            if kid == self.0.kid { Ok(self.0.clone()) } else { Err(KeyError::UnknownKid(kid.into())) }
        }
    }

    struct Unreachable;
    impl KeySource for Unreachable {
        async fn key(&self, _: &str) -> Result<Arc<Jwk>, KeyError> {
            Err(KeyError::Fetch("connection refused".into()))
        }
    }

    fn authorizer<K>(keys: K) -> Authorizer<K> {
        Authorizer {
            keys,
            verifier: config(),
            routes: Route::parse_list("POST/submit-job-request GET/job-status/* GET/jobs GET/count").unwrap(),
        }
    }

    fn event(token: &str) -> LambdaEvent<ApiGatewayCustomAuthorizerRequest> {
        let fixture = include_str!("../fixtures/token-request.json").replace("TOKEN", token);
        LambdaEvent::new(serde_json::from_str(&fixture).unwrap(), Context::default())
    }

    #[tokio::test]
    async fn a_valid_token_in_either_form_is_allowed_with_the_callers_identity() {
        let pool = TestPool::new("k1");
        let a = authorizer(Keys(Arc::new(pool.jwk())));
        let token = pool.token(&id_claims());
        for header in [token.clone(), format!("Bearer {token}"), format!("bearer  {token}")] {
            let response = authorize(&a, event(&header)).await.unwrap();
            let json = serde_json::to_value(&response).unwrap();
            assert_eq!(json["principalId"], "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
            // The API passes `sub` on: the submit integration as the message's owner,
            // the read routes in requestContext.authorizer.sub.
            assert_eq!(json["context"]["sub"], "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
            assert_eq!(json["context"]["email"], "demo@example.com");
            assert_eq!(json["policyDocument"]["Statement"][0]["Resource"].as_array().unwrap().len(), 4);
        }
    }

    #[tokio::test]
    async fn missing_or_invalid_tokens_are_unauthorized() {
        let pool = TestPool::new("k1");
        let a = authorizer(Keys(Arc::new(pool.jwk())));
        let forged = TestPool::new("k1").token(&id_claims());
        for header in ["", "Bearer ", "garbage", "Bearer a.b.c", forged.as_str()] {
            let err = authorize(&a, event(header)).await.unwrap_err().to_string();
            assert_eq!(err, UNAUTHORIZED, "{header:?}");
        }
    }

    #[tokio::test]
    async fn unreachable_keys_are_a_server_error_not_a_401() {
        let pool = TestPool::new("k1");
        let err = authorize(&authorizer(Unreachable), event(&pool.token(&id_claims()))).await.unwrap_err().to_string();
        assert_ne!(err, UNAUTHORIZED);
        assert!(err.contains("connection refused"), "{err}");
    }
}
