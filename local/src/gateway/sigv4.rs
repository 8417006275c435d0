//! Signature Version 4 as API Gateway checks it on an `AWS_IAM` method:
//! the `Authorization` header's credential, scope, signed headers and
//! signature, recomputed from the request as received with the secret of
//! the access key (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html).
//! The signing key and the signature are aws-sigv4's (the SDKs' own
//! implementation); the canonical request is built here, from the request
//! as it arrived, because the crate only signs requests it is given whole.

use std::time::{Duration, SystemTime};

use hyper::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// The service name execute-api requests are signed for.
pub const SERVICE: &str = "execute-api";

/// How far a request's `X-Amz-Date` may be from the gateway's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// RFC 3986 unreserved characters stay as they are; everything else is
/// percent-encoded (SigV4's URI encoding).
const SIGV4_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// The same for a path: `/` separates segments.
const SIGV4_PATH_ENCODE: &AsciiSet = &SIGV4_ENCODE.remove(b'/');

/// Why a request is not authenticated, with the message API Gateway gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigV4Error {
    /// No `Authorization` header: API Gateway's MISSING_AUTHENTICATION_TOKEN.
    Missing,
    /// Everything else (the header, the scope, the clock, the signature) is
    /// INVALID_SIGNATURE, with this message.
    Invalid(String),
}

/// What a SigV4 `Authorization` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Reads `AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/execute-api/aws4_request, SignedHeaders=a;b, Signature=hex`.
pub fn parse_authorization(headers: &HeaderMap) -> Result<Authorization, SigV4Error> {
    let Some(value) = headers.get(hyper::header::AUTHORIZATION) else { return Err(SigV4Error::Missing) };
    let value = value.to_str().map_err(|_| malformed())?;
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(malformed)?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (key, val) = part.trim().split_once('=').ok_or_else(malformed)?;
        match key {
            "Credential" => credential = Some(val),
            "SignedHeaders" => signed = Some(val),
            "Signature" => signature = Some(val),
            _ => {}
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(malformed());
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(SigV4Error::Invalid(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            scope.get(2).copied().unwrap_or_default()
        )));
    };
    Ok(Authorization {
        access_key_id: access_key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed.split(';').map(str::to_string).collect(),
        signature: signature.to_string(),
    })
}

fn malformed() -> SigV4Error {
    SigV4Error::Invalid(
        "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.".into(),
    )
}

/// The request as it arrived: what the canonical request is built from.
pub struct Received<'a> {
    pub method: &'a str,
    /// The path as sent, still percent-encoded (stage included).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Checks the signature of `request` made with `auth`'s access key, whose
/// secret is `secret`, for `region`, at the gateway's time `now`.
pub fn verify(
    request: &Received<'_>,
    auth: &Authorization,
    secret: &str,
    region: &str,
    now: SystemTime,
) -> Result<(), SigV4Error> {
    if auth.service != SERVICE {
        return Err(SigV4Error::Invalid(format!("Credential should be scoped to correct service: '{SERVICE}'. ")));
    }
    if auth.region != region {
        return Err(SigV4Error::Invalid(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            auth.region
        )));
    }
    let amz_date = header(request.headers, "x-amz-date").ok_or_else(|| {
        SigV4Error::Invalid(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
        )
    })?;
    let signed_at = parse_amz_date(&amz_date)
        .ok_or_else(|| SigV4Error::Invalid(format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'.")))?;
    if !amz_date.starts_with(&auth.date) {
        return Err(SigV4Error::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            auth.date,
            &amz_date[..amz_date.len().min(8)]
        )));
    }
    let skew = now.duration_since(signed_at).or_else(|e| Ok::<_, ()>(e.duration())).unwrap_or_default();
    if skew > MAX_SKEW {
        return Err(SigV4Error::Invalid(format!(
            "Signature expired: {amz_date} is now earlier or later than 5 minutes from the server's time ({})",
            format_amz_date(now)
        )));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(SigV4Error::Invalid("'Host' must be a 'SignedHeader' in the AWS Authorization.".into()));
    }
    let canonical =
        canonical_request(request, &auth.signed_headers).ok_or_else(|| SigV4Error::Invalid(mismatch_message()))?;
    let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let key = aws_sigv4::sign::v4::generate_signing_key(secret, signed_at, &auth.region, &auth.service);
    let expected = aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes());
    if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        Ok(())
    } else {
        Err(SigV4Error::Invalid(mismatch_message()))
    }
}

fn mismatch_message() -> String {
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into()
}

/// SigV4's canonical request; `None` when a signed header is absent.
pub fn canonical_request(request: &Received<'_>, signed_headers: &[String]) -> Option<String> {
    // Each segment encoded once more (non-S3 services double-encode the
    // path the client sent).
    let path = if request.path.is_empty() { "/" } else { request.path };
    let canonical_uri = utf8_percent_encode(path, SIGV4_PATH_ENCODE).to_string();
    let mut pairs: Vec<(String, String)> = form_urlencoded_pairs(request.query.unwrap_or_default());
    pairs.sort();
    let canonical_query = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let mut canonical_headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = request
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        if values.is_empty() {
            return None;
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload_hash =
        header(request.headers, "x-amz-content-sha256").unwrap_or_else(|| hex(&Sha256::digest(request.body)));
    Some(format!(
        "{}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{}\n{payload_hash}",
        request.method,
        signed_headers.join(";")
    ))
}

/// The query's parameters decoded and encoded again the SigV4 way.
fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            let encode = |s: String| utf8_percent_encode(&s, SIGV4_ENCODE).to_string();
            (encode(decode(k)), encode(decode(v)))
        })
        .collect()
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `20261206T201500Z` as a time.
fn parse_amz_date(raw: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let parsed = time::PrimitiveDateTime::parse(raw, &format).ok()?.assume_utc();
    let seconds = u64::try_from(parsed.unix_timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

fn format_amz_date(at: SystemTime) -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from(at).format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4::SigningParams;

    const REGION: &str = "eu-west-1";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// A request signed by aws-sigv4's own signer, as the Rust SDK signs it.
    fn signed(method: &str, uri: &str, body: &[u8], at: SystemTime, service: &str) -> HeaderMap {
        let identity = Credentials::new("AKIDEXAMPLE", SECRET, None, None, "test").into();
        let params = SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name(service)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let host = [("host", "127.0.0.1:4010"), ("content-type", "application/json")];
        let request = SignableRequest::new(method, uri, host.iter().copied(), SignableBody::Bytes(body)).unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let mut headers = HeaderMap::new();
        for (k, v) in host {
            headers.insert(k, v.parse().unwrap());
        }
        for (k, v) in instructions.headers() {
            headers.insert(hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        headers
    }

    fn check(
        method: &str,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
        secret: &str,
        now: SystemTime,
    ) -> Result<(), SigV4Error> {
        let auth = parse_authorization(headers)?;
        verify(&Received { method, path, query, headers, body }, &auth, secret, REGION, now)
    }

    #[test]
    fn a_request_signed_by_the_sdk_signer_verifies_and_any_change_breaks_it() {
        let now = SystemTime::now();
        let uri = "http://127.0.0.1:4010/api/machine/jobs?limit=2&nextToken=a%2Bb%3D";
        let headers = signed("GET", uri, b"", now, SERVICE);
        let query = Some("limit=2&nextToken=a%2Bb%3D");
        assert_eq!(check("GET", "/api/machine/jobs", query, &headers, b"", SECRET, now), Ok(()));
        // Another secret, path, query, method or body: the signature no longer matches.
        let mismatch = Err(SigV4Error::Invalid(mismatch_message()));
        assert_eq!(check("GET", "/api/machine/jobs", query, &headers, b"", "other", now), mismatch);
        assert_eq!(check("GET", "/api/machine/count", query, &headers, b"", SECRET, now), mismatch);
        assert_eq!(check("GET", "/api/machine/jobs", Some("limit=3"), &headers, b"", SECRET, now), mismatch);
        assert_eq!(check("POST", "/api/machine/jobs", query, &headers, b"", SECRET, now), mismatch);
        assert_eq!(check("GET", "/api/machine/jobs", query, &headers, b"x", SECRET, now), mismatch);
    }

    #[test]
    fn a_body_and_an_encoded_path_are_signed_as_sent() {
        let now = SystemTime::now();
        let uri = "http://127.0.0.1:4010/api/machine/job-status/a%20b";
        let body = br#"{"region": "eu-west-1"}"#;
        let headers = signed("POST", uri, body, now, SERVICE);
        assert_eq!(check("POST", "/api/machine/job-status/a%20b", None, &headers, body, SECRET, now), Ok(()));
    }

    #[test]
    fn scope_clock_and_header_errors_read_as_api_gateway_words_them() {
        let now = SystemTime::now();
        let uri = "http://127.0.0.1:4010/api/machine/jobs";
        assert_eq!(
            check("GET", "/api/machine/jobs", None, &HeaderMap::new(), b"", SECRET, now),
            Err(SigV4Error::Missing)
        );
        let for_s3 = signed("GET", uri, b"", now, "s3");
        assert!(matches!(check("GET", "/api/machine/jobs", None, &for_s3, b"", SECRET, now),
            Err(SigV4Error::Invalid(m)) if m.contains("correct service: 'execute-api'")));
        let old = signed("GET", uri, b"", now - Duration::from_secs(6 * 60), SERVICE);
        assert!(matches!(check("GET", "/api/machine/jobs", None, &old, b"", SECRET, now),
            Err(SigV4Error::Invalid(m)) if m.starts_with("Signature expired")));
        let mut garbled = HeaderMap::new();
        garbled.insert("authorization", "Bearer abc".parse().unwrap());
        assert!(matches!(check("GET", "/", None, &garbled, b"", SECRET, now), Err(SigV4Error::Invalid(_))));
    }
}
