//! Reading a JWT's `exp` claim, without verifying anything: the client only
//! needs to know when to refresh; the API's authorizer does the verifying.

use base64::Engine as _;

/// The `exp` claim (seconds since the epoch) of a JWT, or None when the token
/// is not a JWT or has no numeric `exp`.
pub fn expiry(token: &str) -> Option<i64> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    exp.as_i64().or_else(|| exp.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// Whether a token must be refreshed at `now`: expired, within `margin`
/// seconds of expiring, or of unknown expiry.
pub fn needs_refresh(token: &str, now: i64, margin: i64) -> bool {
    match expiry(token) {
        Some(exp) => exp - now <= margin,
        None => true,
    }
}

#[cfg(test)]
pub fn fake(claims: &serde_json::Value) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}.{}", e.encode(br#"{"alg":"RS256","kid":"k"}"#), e.encode(claims.to_string()), e.encode(b"sig"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_exp_without_verifying() {
        assert_eq!(expiry(&fake(&json!({"sub": "u", "exp": 1_900_000_000}))), Some(1_900_000_000));
        assert_eq!(expiry(&fake(&json!({"exp": 1_900_000_000.5}))), Some(1_900_000_000));
        // Padding on the payload is tolerated.
        let padded = {
            let t = fake(&json!({"exp": 12}));
            let mut p: Vec<&str> = t.split('.').collect();
            let payload = format!("{}==", p[1]);
            p[1] = &payload;
            p.join(".")
        };
        assert_eq!(expiry(&padded), Some(12));
    }

    #[test]
    fn no_exp_or_not_a_jwt() {
        assert_eq!(expiry(&fake(&json!({"sub": "u"}))), None);
        assert_eq!(expiry(&fake(&json!({"exp": "soon"}))), None);
        assert_eq!(expiry("not-a-token"), None);
        assert_eq!(expiry("a.b"), None);
        assert_eq!(expiry("a.b.c.d"), None);
        assert_eq!(expiry("a.%%%.c"), None);
        assert_eq!(expiry(""), None);
    }

    #[test]
    fn refresh_margin() {
        let token = fake(&json!({"exp": 1000}));
        assert!(!needs_refresh(&token, 900, 60));
        assert!(needs_refresh(&token, 940, 60));
        assert!(needs_refresh(&token, 2000, 60));
        assert!(needs_refresh("garbage", 0, 60));
    }
}
