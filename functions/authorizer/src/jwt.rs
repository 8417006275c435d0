//! Cognito token verification, checking what aws-jwt-verify checks: the
//! signature against the pool's key (found by `kid`, `alg` allow-listed and
//! equal to the key's, key `use` = `sig`), then `exp`/`nbf` with a small
//! leeway, `iss`, `token_use`, and the audience (`aud` for ID tokens,
//! `client_id` for access tokens). Signature first: no claim is believed
//! before it is verified.

use std::future::Future;
use std::sync::Arc;

use aws_lc_rs::signature::{self, RsaParameters, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

use crate::jwks::{Jwk, KeyError};

/// Longest token accepted; Cognito ID tokens are ~1 KiB, large ones ~4 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest header segment accepted, so a crafted header cannot cost much.
pub const MAX_HEADER_BYTES: usize = 1024;

/// Which Cognito token the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    Id,
    Access,
}

impl TokenUse {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Access => "access",
        }
    }
}

#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// `https://cognito-idp.<region>.amazonaws.com/<userPoolId>`
    pub issuer: String,
    /// The app client id: `aud` of ID tokens, `client_id` of access tokens.
    pub client_id: String,
    pub token_use: TokenUse,
    /// Tolerated clock difference for `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
}

/// Why a token was refused. Logged for operators; the caller only ever
/// learns "Unauthorized".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token does not have three dot-separated parts")]
    NotThreeParts,
    #[error("token {0} is not base64url")]
    BadBase64(&'static str),
    #[error("token {0} is not a JSON object")]
    BadJson(&'static str),
    #[error("token header is larger than {MAX_HEADER_BYTES} bytes")]
    HeaderTooLarge,
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("token header has no kid")]
    MissingKid,
    #[error("no key with kid {0:?} in the pool's JWKS")]
    UnknownKid(String),
    #[error("key {kid:?} is for {alg:?}, the token says {token_alg:?}")]
    AlgorithmMismatch { kid: String, alg: String, token_alg: String },
    #[error("key {0:?} is not a signing key")]
    NotASigningKey(String),
    #[error("key {0:?} is not a usable RSA key")]
    BadKey(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("token has no valid {0} claim")]
    MissingClaim(&'static str),
    #[error("token expired at {exp} (now {now})")]
    Expired { exp: u64, now: u64 },
    #[error("token is not valid before {nbf} (now {now})")]
    NotYetValid { nbf: u64, now: u64 },
    #[error("issuer {0:?} is not this user pool")]
    WrongIssuer(String),
    #[error("token_use {found:?}, expected {expected:?}")]
    WrongTokenUse { found: String, expected: &'static str },
    #[error("token is for client {0:?}, not this app client")]
    WrongAudience(String),
    /// The keys could not be fetched: not the caller's fault.
    #[error("{0}")]
    Keys(String),
}

impl TokenError {
    /// Is this the server's problem (keys unavailable) rather than a bad token?
    pub fn is_server_side(&self) -> bool {
        matches!(self, Self::Keys(_))
    }
}

/// Looks up the pool's signing key for a `kid`.
pub trait KeySource: Sync {
    fn key(&self, kid: &str) -> impl Future<Output = Result<Arc<Jwk>, KeyError>> + Send;
}

/// The claims a verified token vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    pub sub: String,
    pub username: Option<String>,
    pub email: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
}

/// Verify `token` (without any `Bearer ` prefix) at time `now` (Unix seconds).
pub async fn verify<K: KeySource>(
    token: &str,
    keys: &K,
    config: &VerifierConfig,
    now: u64,
) -> Result<VerifiedClaims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::NotThreeParts);
    };
    if header_b64.len() > MAX_HEADER_BYTES {
        return Err(TokenError::HeaderTooLarge);
    }
    let header: Header = decode_json(header_b64, "header")?;
    let alg = header.alg.unwrap_or_default();
    let parameters = allowed_algorithm(&alg).ok_or_else(|| TokenError::AlgorithmNotAllowed(alg.clone()))?;
    let kid = header.kid.filter(|k| !k.is_empty()).ok_or(TokenError::MissingKid)?;

    let key = keys.key(&kid).await.map_err(|e| match e {
        KeyError::UnknownKid(kid) => TokenError::UnknownKid(kid),
        other => TokenError::Keys(other.to_string()),
    })?;
    if key.kty != "RSA" {
        return Err(TokenError::BadKey(kid));
    }
    if key.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(TokenError::NotASigningKey(kid));
    }
    if let Some(key_alg) = key.alg.as_deref().filter(|a| *a != alg) {
        return Err(TokenError::AlgorithmMismatch { kid, alg: key_alg.to_owned(), token_alg: alg });
    }
    let (n, e) = match (URL_SAFE_NO_PAD.decode(&key.n), URL_SAFE_NO_PAD.decode(&key.e)) {
        (Ok(n), Ok(e)) if !n.is_empty() && !e.is_empty() => (n, e),
        _ => return Err(TokenError::BadKey(kid)),
    };
    let signature = URL_SAFE_NO_PAD.decode(signature_b64).map_err(|_| TokenError::BadBase64("signature"))?;
    let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(parameters, signed.as_bytes(), &signature)
        .map_err(|_| TokenError::BadSignature)?;

    let claims: serde_json::Map<String, Value> = decode_json(payload_b64, "payload")?;
    check_claims(&claims, config, now)
}

/// RS256 only: what Cognito signs with. `none`, HMAC and everything else are
/// refused before any key is looked up.
fn allowed_algorithm(alg: &str) -> Option<&'static RsaParameters> {
    match alg {
        "RS256" => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
        _ => None,
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(segment: &str, part: &'static str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| TokenError::BadBase64(part))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::BadJson(part))
}

fn check_claims(
    claims: &serde_json::Map<String, Value>,
    config: &VerifierConfig,
    now: u64,
) -> Result<VerifiedClaims, TokenError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let seconds = |name: &str| claims.get(name).and_then(Value::as_u64);

    let exp = seconds("exp").ok_or(TokenError::MissingClaim("exp"))?;
    if now >= exp.saturating_add(config.leeway_seconds) {
        return Err(TokenError::Expired { exp, now });
    }
    if let Some(nbf_value) = claims.get("nbf") {
        let nbf = nbf_value.as_u64().ok_or(TokenError::MissingClaim("nbf"))?;
        if now.saturating_add(config.leeway_seconds) < nbf {
            return Err(TokenError::NotYetValid { nbf, now });
        }
    }
    let iss = text("iss").ok_or(TokenError::MissingClaim("iss"))?;
    if iss != config.issuer {
        return Err(TokenError::WrongIssuer(iss.to_owned()));
    }
    let token_use = text("token_use").ok_or(TokenError::MissingClaim("token_use"))?;
    if token_use != config.token_use.as_str() {
        return Err(TokenError::WrongTokenUse { found: token_use.to_owned(), expected: config.token_use.as_str() });
    }
    let audience_claim = match config.token_use {
        TokenUse::Id => "aud",
        TokenUse::Access => "client_id",
    };
    let audience = text(audience_claim).ok_or(TokenError::MissingClaim(audience_claim))?;
    if audience != config.client_id {
        return Err(TokenError::WrongAudience(audience.to_owned()));
    }
    let sub = text("sub").filter(|s| !s.is_empty()).ok_or(TokenError::MissingClaim("sub"))?;
    Ok(VerifiedClaims {
        sub: sub.to_owned(),
        username: text("cognito:username").or_else(|| text("username")).map(str::to_owned),
        email: text("email").map(str::to_owned),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::KeyPair as _;
    use serde_json::json;

    pub const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool";
    pub const CLIENT: &str = "testclient123";
    pub const NOW: u64 = 1_795_000_000;

    /// A pool signing key and tokens made with it.
    pub struct TestPool {
        pub pair: KeyPair,
        pub kid: String,
    }

    impl TestPool {
        pub fn new(kid: &str) -> Self {
            Self { pair: KeyPair::generate(KeySize::Rsa2048).unwrap(), kid: kid.to_owned() }
        }

        pub fn jwk(&self) -> Jwk {
            let (n, e) = rsa_public_key_integers(self.pair.public_key().as_ref());
            Jwk {
                kid: self.kid.clone(),
                kty: "RSA".into(),
                alg: Some("RS256".into()),
                use_: Some("sig".into()),
                n: URL_SAFE_NO_PAD.encode(n),
                e: URL_SAFE_NO_PAD.encode(e),
            }
        }

        pub fn sign(&self, header: &Value, claims: &Value) -> String {
            let signing_input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let mut sig = vec![0; self.pair.public_modulus_len()];
            self.pair
                .sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut sig)
                .unwrap();
            format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
        }

        pub fn token(&self, claims: &Value) -> String {
            self.sign(&json!({"alg": "RS256", "kid": self.kid}), claims)
        }
    }

    /// Read `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`
    /// (RFC 8017) from DER: enough to publish a test key as a JWK.
    fn rsa_public_key_integers(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
        fn element(der: &[u8], tag: u8) -> (&[u8], &[u8]) {
            assert_eq!(der[0], tag);
            let (len, header) = match der[1] {
                short if short < 0x80 => (usize::from(short), 2),
                long => {
                    let n = usize::from(long & 0x7f);
                    (der[2..2 + n].iter().fold(0, |acc, b| acc << 8 | usize::from(*b)), 2 + n)
                }
            };
            (&der[header..header + len], &der[header + len..])
        }
        let (sequence, _) = element(der, 0x30);
        let (n, rest) = element(sequence, 0x02);
        let (e, _) = element(rest, 0x02);
        let unsigned = |i: &[u8]| i.iter().skip_while(|b| **b == 0).copied().collect();
        (unsigned(n), unsigned(e))
    }

    pub fn id_claims() -> Value {
        json!({
            "sub": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "iss": ISSUER,
            "aud": CLIENT,
            "token_use": "id",
            "exp": NOW + 3600,
            "iat": NOW - 10,
            "auth_time": NOW - 10,
            "email": "demo@example.com",
            "cognito:username": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        })
    }

    pub fn config() -> VerifierConfig {
        VerifierConfig { issuer: ISSUER.into(), client_id: CLIENT.into(), token_use: TokenUse::Id, leeway_seconds: 0 }
    }

    struct OneKey(Arc<Jwk>);
    impl KeySource for OneKey {
        async fn key(&self, kid: &str) -> Result<Arc<Jwk>, KeyError> {
            if kid == self.0.kid { Ok(self.0.clone()) } else { Err(KeyError::UnknownKid(kid.to_owned())) }
        }
    }

    async fn check(pool: &TestPool, token: &str) -> Result<VerifiedClaims, TokenError> {
        verify(token, &OneKey(Arc::new(pool.jwk())), &config(), NOW).await
    }

    fn with(claims: Value, key: &str, value: Value) -> Value {
        let mut c = claims;
        c[key] = value;
        c
    }

    fn without(claims: Value, key: &str) -> Value {
        let mut c = claims;
        c.as_object_mut().unwrap().remove(key);
        c
    }

    #[tokio::test]
    async fn a_valid_id_token_yields_its_claims() {
        let pool = TestPool::new("k1");
        let claims = check(&pool, &pool.token(&id_claims())).await.unwrap();
        assert_eq!(claims.sub, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
        assert_eq!(claims.email.as_deref(), Some("demo@example.com"));
    }

    #[tokio::test]
    async fn expiry_and_not_before_are_enforced_with_the_leeway() {
        let pool = TestPool::new("k1");
        let expired = pool.token(&with(id_claims(), "exp", json!(NOW)));
        assert_eq!(check(&pool, &expired).await, Err(TokenError::Expired { exp: NOW, now: NOW }));
        let early = pool.token(&with(id_claims(), "nbf", json!(NOW + 30)));
        assert_eq!(check(&pool, &early).await, Err(TokenError::NotYetValid { nbf: NOW + 30, now: NOW }));
        let lenient = VerifierConfig { leeway_seconds: 60, ..config() };
        let keys = OneKey(Arc::new(pool.jwk()));
        assert!(verify(&expired, &keys, &lenient, NOW).await.is_ok());
        assert!(verify(&early, &keys, &lenient, NOW).await.is_ok());
        let no_exp = pool.token(&without(id_claims(), "exp"));
        assert_eq!(check(&pool, &no_exp).await, Err(TokenError::MissingClaim("exp")));
    }

    #[tokio::test]
    async fn issuer_token_use_and_audience_must_match() {
        let pool = TestPool::new("k1");
        let other_pool =
            pool.token(&with(id_claims(), "iss", json!("https://cognito-idp.us-east-1.amazonaws.com/other")));
        assert!(matches!(check(&pool, &other_pool).await, Err(TokenError::WrongIssuer(_))));
        let access = pool.token(&with(id_claims(), "token_use", json!("access")));
        assert!(matches!(check(&pool, &access).await, Err(TokenError::WrongTokenUse { .. })));
        let other_client = pool.token(&with(id_claims(), "aud", json!("someoneelse")));
        assert_eq!(check(&pool, &other_client).await, Err(TokenError::WrongAudience("someoneelse".into())));
        let no_sub = pool.token(&without(id_claims(), "sub"));
        assert_eq!(check(&pool, &no_sub).await, Err(TokenError::MissingClaim("sub")));
    }

    #[tokio::test]
    async fn access_tokens_are_checked_by_client_id_when_configured() {
        let pool = TestPool::new("k1");
        let access = json!({"sub": "u1", "iss": ISSUER, "client_id": CLIENT, "token_use": "access", "exp": NOW + 60});
        let cfg = VerifierConfig { token_use: TokenUse::Access, ..config() };
        let keys = OneKey(Arc::new(pool.jwk()));
        assert!(verify(&pool.token(&access), &keys, &cfg, NOW).await.is_ok());
        let wrong = with(access, "client_id", json!("other"));
        assert!(matches!(verify(&pool.token(&wrong), &keys, &cfg, NOW).await, Err(TokenError::WrongAudience(_))));
    }

    #[tokio::test]
    async fn a_token_signed_by_another_key_is_refused() {
        let (pool, impostor) = (TestPool::new("k1"), TestPool::new("k1"));
        assert_eq!(check(&pool, &impostor.token(&id_claims())).await, Err(TokenError::BadSignature));
    }

    #[tokio::test]
    async fn a_tampered_payload_is_refused() {
        let pool = TestPool::new("k1");
        let token = pool.token(&id_claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(with(id_claims(), "sub", json!("admin")).to_string());
        assert_eq!(check(&pool, &parts.join(".")).await, Err(TokenError::BadSignature));
    }

    #[tokio::test]
    async fn alg_none_and_hmac_with_the_public_key_are_refused_before_key_lookup() {
        let pool = TestPool::new("k1");
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": "k1"}).to_string()),
            URL_SAFE_NO_PAD.encode(id_claims().to_string())
        );
        assert_eq!(check(&pool, &unsigned).await, Err(TokenError::AlgorithmNotAllowed("none".into())));
        // The classic confusion attack: HS256 "signed" with the public key as secret.
        let hs = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": "k1"}).to_string()),
            URL_SAFE_NO_PAD.encode(id_claims().to_string()),
            URL_SAFE_NO_PAD.encode(b"mac-made-with-the-public-key")
        );
        assert_eq!(check(&pool, &hs).await, Err(TokenError::AlgorithmNotAllowed("HS256".into())));
        let no_alg = pool.sign(&json!({"kid": "k1"}), &id_claims());
        assert_eq!(check(&pool, &no_alg).await, Err(TokenError::AlgorithmNotAllowed(String::new())));
    }

    #[tokio::test]
    async fn the_key_must_be_a_signing_key_for_the_same_algorithm() {
        let pool = TestPool::new("k1");
        let token = pool.token(&id_claims());
        let mut encryption_key = pool.jwk();
        encryption_key.use_ = Some("enc".into());
        assert_eq!(
            verify(&token, &OneKey(Arc::new(encryption_key)), &config(), NOW).await,
            Err(TokenError::NotASigningKey("k1".into()))
        );
        let mut rs512_key = pool.jwk();
        rs512_key.alg = Some("RS512".into());
        assert!(matches!(
            verify(&token, &OneKey(Arc::new(rs512_key)), &config(), NOW).await,
            Err(TokenError::AlgorithmMismatch { .. })
        ));
    }

    #[tokio::test]
    async fn unknown_and_missing_kids_are_refused() {
        let pool = TestPool::new("k1");
        let other = TestPool::new("k2");
        assert_eq!(check(&pool, &other.token(&id_claims())).await, Err(TokenError::UnknownKid("k2".into())));
        let no_kid = pool.sign(&json!({"alg": "RS256"}), &id_claims());
        assert_eq!(check(&pool, &no_kid).await, Err(TokenError::MissingKid));
    }

    #[tokio::test]
    async fn malformed_tokens_each_get_their_own_error() {
        let pool = TestPool::new("k1");
        let good = pool.token(&id_claims());
        let parts: Vec<&str> = good.split('.').collect();
        let cases: Vec<(String, TokenError)> = vec![
            ("garbage".into(), TokenError::NotThreeParts),
            (format!("{good}.extra"), TokenError::NotThreeParts),
            (format!("{}.{}", parts[0], parts[1]), TokenError::NotThreeParts),
            (format!("!!!.{}.{}", parts[1], parts[2]), TokenError::BadBase64("header")),
            (
                format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("not json"), parts[1], parts[2]),
                TokenError::BadJson("header"),
            ),
            (format!("{}.{}.***", parts[0], parts[1]), TokenError::BadBase64("signature")),
            ("x".repeat(MAX_TOKEN_BYTES + 1), TokenError::TooLarge),
            (format!("{}.{}.{}", "a".repeat(MAX_HEADER_BYTES + 4), parts[1], parts[2]), TokenError::HeaderTooLarge),
        ];
        for (token, expected) in cases {
            assert_eq!(check(&pool, &token).await, Err(expected));
        }
        // A correctly signed payload that is not JSON.
        let signed_garbage = {
            let input = format!("{}.{}", parts[0], URL_SAFE_NO_PAD.encode("[not an object"));
            let mut sig = vec![0; pool.pair.public_modulus_len()];
            pool.pair.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
        };
        assert_eq!(check(&pool, &signed_garbage).await, Err(TokenError::BadJson("payload")));
    }
}
