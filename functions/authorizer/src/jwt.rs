//! Cognito token verification with the `jsonwebtoken` crate (on aws-lc-rs),
//! checking what aws-jwt-verify checks: the signature against the pool's key
//! (found by `kid`, RS256 only, the key's `alg` and `use` must agree), then
//! `exp`/`nbf` with a small leeway, `iss`, `token_use`, and the audience
//! (`aud` for ID tokens, `client_id` for access tokens). `jsonwebtoken`
//! verifies the signature before it looks at a claim.

use std::future::Future;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::jwks::{Jwk, KeyError};

/// Longest token accepted; Cognito ID tokens are ~1 KiB, large ones ~4 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest header segment accepted, so a crafted header cannot cost much.
pub const MAX_HEADER_BYTES: usize = 1024;
/// What Cognito signs with; `none`, HMAC and everything else are refused
/// before any key is looked up.
const ALGORITHM: Algorithm = Algorithm::RS256;

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
    #[error("token header is larger than {MAX_HEADER_BYTES} bytes")]
    HeaderTooLarge,
    #[error("token is not a JWT: {0}")]
    Malformed(String),
    #[error("algorithm {0} is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("token header has no kid")]
    MissingKid,
    #[error("no key with kid {0:?} in the pool's JWKS")]
    UnknownKid(String),
    #[error("key {kid:?} is for {alg:?}, the token says RS256")]
    AlgorithmMismatch { kid: String, alg: String },
    #[error("key {0:?} is not a signing key")]
    NotASigningKey(String),
    #[error("key {0:?} is not a usable RSA key")]
    BadKey(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("token has no valid {0} claim")]
    MissingClaim(String),
    #[error("token expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("issuer is not this user pool")]
    WrongIssuer,
    #[error("token_use {found:?}, expected {expected:?}")]
    WrongTokenUse { found: String, expected: &'static str },
    #[error("token is not for this app client")]
    WrongAudience,
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

/// The claims read after `jsonwebtoken` has checked the signature, `exp`,
/// `nbf`, `iss` and (ID tokens) `aud`. Optional, so that a missing one is
/// reported by name rather than as unreadable JSON.
#[derive(Deserialize)]
struct CognitoClaims {
    sub: Option<String>,
    token_use: Option<String>,
    client_id: Option<String>,
    #[serde(rename = "cognito:username")]
    cognito_username: Option<String>,
    username: Option<String>,
    email: Option<String>,
}

/// Verify `token` (without any `Bearer ` prefix) at the current time.
pub async fn verify<K: KeySource>(
    token: &str,
    keys: &K,
    config: &VerifierConfig,
) -> Result<VerifiedClaims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    if token.split('.').next().map_or(0, str::len) > MAX_HEADER_BYTES {
        return Err(TokenError::HeaderTooLarge);
    }
    // The header is read unverified to find the key; nothing in it is trusted
    // but the kid, and the algorithm must be the one allowed.
    let header = jsonwebtoken::decode_header(token).map_err(|e| refusal(e.kind()))?;
    if header.alg != ALGORITHM {
        return Err(TokenError::AlgorithmNotAllowed(format!("{:?}", header.alg)));
    }
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
    if let Some(key_alg) = key.alg.as_deref().filter(|a| *a != "RS256") {
        return Err(TokenError::AlgorithmMismatch { kid, alg: key_alg.to_owned() });
    }
    let decoding = DecodingKey::from_rsa_components(&key.n, &key.e).map_err(|_| TokenError::BadKey(kid.clone()))?;

    let claims = jsonwebtoken::decode::<CognitoClaims>(token, &decoding, &validation(config))
        .map_err(|e| refusal(e.kind()))?
        .claims;
    check_cognito_claims(claims, config)
}

/// What `jsonwebtoken` checks: RS256, `exp` and `nbf` with the leeway, the
/// issuer, and for ID tokens the audience. Every one of those claims, and
/// `sub`, must be present.
fn validation(config: &VerifierConfig) -> Validation {
    let mut v = Validation::new(ALGORITHM);
    v.leeway = config.leeway_seconds;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_issuer(&[&config.issuer]);
    match config.token_use {
        TokenUse::Id => {
            v.set_audience(&[&config.client_id]);
            v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        }
        // Access tokens carry the client in `client_id` (checked below), no `aud`.
        TokenUse::Access => {
            v.validate_aud = false;
            v.set_required_spec_claims(&["exp", "iss", "sub"]);
        }
    }
    v
}

fn check_cognito_claims(claims: CognitoClaims, config: &VerifierConfig) -> Result<VerifiedClaims, TokenError> {
    let expected = config.token_use.as_str();
    match claims.token_use.as_deref() {
        None => return Err(TokenError::MissingClaim("token_use".into())),
        Some(found) if found != expected => {
            return Err(TokenError::WrongTokenUse { found: found.to_owned(), expected });
        }
        Some(_) => {}
    }
    if config.token_use == TokenUse::Access {
        match claims.client_id.as_deref() {
            None => return Err(TokenError::MissingClaim("client_id".into())),
            Some(client) if client != config.client_id => return Err(TokenError::WrongAudience),
            Some(_) => {}
        }
    }
    let sub = claims.sub.filter(|s| !s.is_empty()).ok_or_else(|| TokenError::MissingClaim("sub".into()))?;
    Ok(VerifiedClaims { sub, username: claims.cognito_username.or(claims.username), email: claims.email })
}

/// The reason, for the log, that `jsonwebtoken` refused a token.
fn refusal(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => {
            TokenError::AlgorithmNotAllowed("other than RS256".into())
        }
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
            TokenError::MissingClaim(claim.clone())
        }
        other => TokenError::Malformed(format!("{other:?}")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::{self, KeyPair as _};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    pub const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool";
    pub const CLIENT: &str = "testclient123";

    /// Now, in Unix seconds: `jsonwebtoken` checks `exp` and `nbf` against the clock.
    pub fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

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
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            self.sign_input(&input)
        }

        /// `input` (`header.payload`, already encoded) with its RS256 signature appended.
        pub fn sign_input(&self, input: &str) -> String {
            let mut sig = vec![0; self.pair.public_modulus_len()];
            self.pair.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
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
        let now = now();
        json!({
            "sub": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "iss": ISSUER,
            "aud": CLIENT,
            "token_use": "id",
            "exp": now + 3600,
            "iat": now - 10,
            "auth_time": now - 10,
            "email": "demo@example.com",
            "cognito:username": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        })
    }

    pub fn config() -> VerifierConfig {
        VerifierConfig { issuer: ISSUER.into(), client_id: CLIENT.into(), token_use: TokenUse::Id, leeway_seconds: 0 }
    }

    /// One key, and how many times it was asked for one.
    struct OneKey(Arc<Jwk>, AtomicU32);
    impl OneKey {
        fn new(key: Jwk) -> Self {
            Self(Arc::new(key), AtomicU32::new(0))
        }
        fn lookups(&self) -> u32 {
            self.1.load(Ordering::SeqCst)
        }
    }
    impl KeySource for OneKey {
        async fn key(&self, kid: &str) -> Result<Arc<Jwk>, KeyError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            if kid == self.0.kid { Ok(self.0.clone()) } else { Err(KeyError::UnknownKid(kid.to_owned())) }
        }
    }

    async fn check(pool: &TestPool, token: &str) -> Result<VerifiedClaims, TokenError> {
        verify(token, &OneKey::new(pool.jwk()), &config()).await
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
        assert_eq!(claims.username.as_deref(), Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
    }

    #[tokio::test]
    async fn expiry_and_not_before_are_enforced_with_the_leeway() {
        let pool = TestPool::new("k1");
        let now = now();
        let expired = pool.token(&with(id_claims(), "exp", json!(now - 30)));
        assert_eq!(check(&pool, &expired).await, Err(TokenError::Expired));
        let early = pool.token(&with(id_claims(), "nbf", json!(now + 30)));
        assert_eq!(check(&pool, &early).await, Err(TokenError::NotYetValid));
        let lenient = VerifierConfig { leeway_seconds: 60, ..config() };
        let keys = OneKey::new(pool.jwk());
        assert!(verify(&expired, &keys, &lenient).await.is_ok(), "30 s late is within 60 s of leeway");
        assert!(verify(&early, &keys, &lenient).await.is_ok());
        let long_expired = pool.token(&with(id_claims(), "exp", json!(now - 90)));
        assert_eq!(verify(&long_expired, &keys, &lenient).await, Err(TokenError::Expired));
        let no_exp = pool.token(&without(id_claims(), "exp"));
        assert_eq!(check(&pool, &no_exp).await, Err(TokenError::MissingClaim("exp".into())));
        let text_exp = pool.token(&with(id_claims(), "exp", json!("tomorrow")));
        assert!(check(&pool, &text_exp).await.is_err());
    }

    #[tokio::test]
    async fn issuer_token_use_and_audience_must_match() {
        let pool = TestPool::new("k1");
        let other_pool =
            pool.token(&with(id_claims(), "iss", json!("https://cognito-idp.us-east-1.amazonaws.com/other")));
        assert_eq!(check(&pool, &other_pool).await, Err(TokenError::WrongIssuer));
        let no_iss = pool.token(&without(id_claims(), "iss"));
        assert_eq!(check(&pool, &no_iss).await, Err(TokenError::MissingClaim("iss".into())));
        let access = pool.token(&with(id_claims(), "token_use", json!("access")));
        assert!(matches!(check(&pool, &access).await, Err(TokenError::WrongTokenUse { .. })));
        let no_use = pool.token(&without(id_claims(), "token_use"));
        assert_eq!(check(&pool, &no_use).await, Err(TokenError::MissingClaim("token_use".into())));
        let other_client = pool.token(&with(id_claims(), "aud", json!("someoneelse")));
        assert_eq!(check(&pool, &other_client).await, Err(TokenError::WrongAudience));
        let no_aud = pool.token(&without(id_claims(), "aud"));
        assert_eq!(check(&pool, &no_aud).await, Err(TokenError::MissingClaim("aud".into())));
        let no_sub = pool.token(&without(id_claims(), "sub"));
        assert_eq!(check(&pool, &no_sub).await, Err(TokenError::MissingClaim("sub".into())));
        let empty_sub = pool.token(&with(id_claims(), "sub", json!("")));
        assert_eq!(check(&pool, &empty_sub).await, Err(TokenError::MissingClaim("sub".into())));
    }

    #[tokio::test]
    async fn access_tokens_are_checked_by_client_id_when_configured() {
        let pool = TestPool::new("k1");
        let access = json!({"sub": "u1", "iss": ISSUER, "client_id": CLIENT, "token_use": "access", "exp": now() + 60});
        let cfg = VerifierConfig { token_use: TokenUse::Access, ..config() };
        let keys = OneKey::new(pool.jwk());
        assert!(verify(&pool.token(&access), &keys, &cfg).await.is_ok());
        let wrong = with(access.clone(), "client_id", json!("other"));
        assert_eq!(verify(&pool.token(&wrong), &keys, &cfg).await, Err(TokenError::WrongAudience));
        let none = without(access, "client_id");
        assert_eq!(verify(&pool.token(&none), &keys, &cfg).await, Err(TokenError::MissingClaim("client_id".into())));
        // An ID token is not an access token.
        assert!(matches!(verify(&pool.token(&id_claims()), &keys, &cfg).await, Err(TokenError::WrongTokenUse { .. })));
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
        // The signature cut short: not base64url of a whole signature, or not the signature.
        for cut in [3, 4, 8] {
            let refused = check(&pool, &token[..token.len() - cut]).await;
            assert!(matches!(refused, Err(TokenError::BadSignature | TokenError::Malformed(_))), "{cut}: {refused:?}");
        }
    }

    #[tokio::test]
    async fn alg_none_and_hmac_with_the_public_key_are_refused_before_key_lookup() {
        let pool = TestPool::new("k1");
        let keys = OneKey::new(pool.jwk());
        let claims = URL_SAFE_NO_PAD.encode(id_claims().to_string());
        let unsigned = format!("{}.{claims}.", URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": "k1"}).to_string()));
        assert!(verify(&unsigned, &keys, &config()).await.is_err());
        // The classic confusion attack: HS256 "signed" with the public key as secret.
        let hs = format!(
            "{}.{claims}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": "k1"}).to_string()),
            URL_SAFE_NO_PAD.encode(b"mac-made-with-the-public-key")
        );
        assert_eq!(verify(&hs, &keys, &config()).await, Err(TokenError::AlgorithmNotAllowed("HS256".into())));
        // RS512, PS256 and ES256 are not what Cognito signs with either.
        for alg in ["RS512", "PS256", "ES256"] {
            let other = pool.sign(&json!({"alg": alg, "kid": "k1"}), &id_claims());
            assert!(matches!(verify(&other, &keys, &config()).await, Err(TokenError::AlgorithmNotAllowed(_))), "{alg}");
        }
        let no_alg = pool.sign(&json!({"kid": "k1"}), &id_claims());
        assert!(verify(&no_alg, &keys, &config()).await.is_err());
        assert_eq!(keys.lookups(), 0, "no key is looked up for a token with the wrong algorithm");
    }

    #[tokio::test]
    async fn the_key_must_be_a_signing_key_for_the_same_algorithm() {
        let pool = TestPool::new("k1");
        let token = pool.token(&id_claims());
        let mut encryption_key = pool.jwk();
        encryption_key.use_ = Some("enc".into());
        assert_eq!(
            verify(&token, &OneKey::new(encryption_key), &config()).await,
            Err(TokenError::NotASigningKey("k1".into()))
        );
        let mut rs512_key = pool.jwk();
        rs512_key.alg = Some("RS512".into());
        assert!(matches!(
            verify(&token, &OneKey::new(rs512_key), &config()).await,
            Err(TokenError::AlgorithmMismatch { .. })
        ));
        let mut ec_key = pool.jwk();
        ec_key.kty = "EC".into();
        assert_eq!(verify(&token, &OneKey::new(ec_key), &config()).await, Err(TokenError::BadKey("k1".into())));
        let mut broken_key = pool.jwk();
        broken_key.n = "!!!".into();
        assert_eq!(verify(&token, &OneKey::new(broken_key), &config()).await, Err(TokenError::BadKey("k1".into())));
    }

    #[tokio::test]
    async fn unknown_and_missing_kids_are_refused() {
        let pool = TestPool::new("k1");
        let other = TestPool::new("k2");
        assert_eq!(check(&pool, &other.token(&id_claims())).await, Err(TokenError::UnknownKid("k2".into())));
        let no_kid = pool.sign(&json!({"alg": "RS256"}), &id_claims());
        assert_eq!(check(&pool, &no_kid).await, Err(TokenError::MissingKid));
        let empty_kid = pool.sign(&json!({"alg": "RS256", "kid": ""}), &id_claims());
        assert_eq!(check(&pool, &empty_kid).await, Err(TokenError::MissingKid));
    }

    #[tokio::test]
    async fn malformed_tokens_are_refused() {
        let pool = TestPool::new("k1");
        let good = pool.token(&id_claims());
        let parts: Vec<&str> = good.split('.').collect();
        for (token, why) in [
            ("garbage".to_owned(), "one part"),
            (format!("{good}.extra"), "four parts"),
            (format!("{}.{}", parts[0], parts[1]), "two parts"),
            (format!("!!!.{}.{}", parts[1], parts[2]), "header not base64url"),
            (format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("not json"), parts[1], parts[2]), "header not JSON"),
            (format!("{}.{}.***", parts[0], parts[1]), "signature not base64url"),
        ] {
            let refused = check(&pool, &token).await;
            assert!(refused.is_err() && !refused.as_ref().unwrap_err().is_server_side(), "{why}: {refused:?}");
        }
        assert_eq!(check(&pool, &"x".repeat(MAX_TOKEN_BYTES + 1)).await, Err(TokenError::TooLarge));
        let big_header = format!("{}.{}.{}", "a".repeat(MAX_HEADER_BYTES + 4), parts[1], parts[2]);
        assert_eq!(check(&pool, &big_header).await, Err(TokenError::HeaderTooLarge));
        // A correctly signed payload that is not a JSON object.
        let signed_garbage = pool.sign_input(&format!("{}.{}", parts[0], URL_SAFE_NO_PAD.encode("[not an object")));
        assert!(matches!(check(&pool, &signed_garbage).await, Err(TokenError::Malformed(_))));
    }

    #[tokio::test]
    async fn unreachable_keys_are_the_servers_problem() {
        struct Down;
        impl KeySource for Down {
            async fn key(&self, _: &str) -> Result<Arc<Jwk>, KeyError> {
                Err(KeyError::Fetch("connection refused".into()))
            }
        }
        let pool = TestPool::new("k1");
        let err = verify(&pool.token(&id_claims()), &Down, &config()).await.unwrap_err();
        assert!(err.is_server_side(), "{err}");
    }
}
