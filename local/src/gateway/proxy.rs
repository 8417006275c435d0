//! Lambda proxy integration (REST API, payload format 1.0): the event the
//! function receives and the mapping of its response.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use hyper::HeaderMap;
use serde_json::{Map, Value, json};

use crate::policy::AuthorizerResult;

/// What the event is built from.
pub struct ProxyRequest<'a> {
    pub http_method: &'a str,
    /// The request path after the stage, as sent (`/job-status/abc`).
    pub path: &'a str,
    pub stage: &'a str,
    pub resource_id: &'a str,
    pub resource_path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub path_params: &'a BTreeMap<String, String>,
    pub source_ip: &'a str,
    pub request_id: &'a str,
    pub api_id: &'a str,
    pub account_id: &'a str,
    pub authorizer: Option<(&'a AuthorizerResult, u64)>,
    pub request_time: time::OffsetDateTime,
}

fn null_if_empty(m: Map<String, Value>) -> Value {
    if m.is_empty() { Value::Null } else { Value::Object(m) }
}

/// The REST API proxy event (version 1.0).
pub fn proxy_event(r: &ProxyRequest<'_>) -> Value {
    let (headers, multi_headers) = single_and_multi_values(
        r.headers.iter().map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()))),
    );
    let (query, multi_query) = match r.query {
        Some(q) => single_and_multi_values(form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.to_string(), v))),
        None => (Map::new(), Map::new()),
    };
    let path_params: Map<String, Value> = r.path_params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let (body, is_base64) = event_body(r.body);
    json!({
        "resource": r.resource_path,
        "path": r.path,
        "httpMethod": r.http_method,
        "headers": null_if_empty(headers),
        "multiValueHeaders": null_if_empty(multi_headers),
        "queryStringParameters": null_if_empty(query),
        "multiValueQueryStringParameters": null_if_empty(multi_query),
        "pathParameters": null_if_empty(path_params),
        "stageVariables": null,
        "requestContext": request_context(r),
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// Name/value pairs as the event's single-value map (the last value of a
/// name) and multi-value map (all of them, in order).
fn single_and_multi_values<'v>(
    pairs: impl Iterator<Item = (String, std::borrow::Cow<'v, str>)>,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (name, value) in pairs {
        single.insert(name.clone(), json!(value));
        match multi.entry(name).or_insert_with(|| json!([])) {
            Value::Array(a) => a.push(json!(value)),
            _ => unreachable!("multi-value maps hold arrays"),
        }
    }
    (single, multi)
}

/// The body as the event carries it, and whether it is base64 (a body that
/// is not UTF-8); `null` when empty.
fn event_body(body: &[u8]) -> (Value, bool) {
    if body.is_empty() {
        return (Value::Null, false);
    }
    match std::str::from_utf8(body) {
        Ok(s) => (json!(s), false),
        Err(_) => (json!(base64::engine::general_purpose::STANDARD.encode(body)), true),
    }
}

/// The event's `requestContext`, with the authorizer's answer if there was one.
fn request_context(r: &ProxyRequest<'_>) -> Value {
    let header = |n: &str| r.headers.get(n).and_then(|v| v.to_str().ok()).map(|s| json!(s)).unwrap_or(Value::Null);
    let time_fmt = time::macros::format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
    let request_time = r.request_time.format(&time_fmt).unwrap_or_default();
    let mut request_context = json!({
        "resourceId": r.resource_id,
        "resourcePath": r.resource_path,
        "httpMethod": r.http_method,
        "extendedRequestId": r.request_id,
        "requestTime": request_time,
        "path": format!("/{}{}", r.stage, r.path),
        "accountId": r.account_id,
        "protocol": "HTTP/1.1",
        "stage": r.stage,
        "domainPrefix": r.api_id,
        "requestTimeEpoch": (r.request_time.unix_timestamp_nanos() / 1_000_000) as i64,
        "requestId": r.request_id,
        "identity": {
            "cognitoIdentityPoolId": null,
            "accountId": null,
            "cognitoIdentityId": null,
            "caller": null,
            "sourceIp": r.source_ip,
            "principalOrgId": null,
            "accessKey": null,
            "cognitoAuthenticationType": null,
            "cognitoAuthenticationProvider": null,
            "userArn": null,
            "userAgent": header("user-agent"),
            "user": null
        },
        "domainName": header("host"),
        "apiId": r.api_id,
    });
    if let Some((auth, latency)) = r.authorizer {
        request_context["authorizer"] = authorizer_context(auth, latency);
    }
    request_context
}

/// `requestContext.authorizer`: the authorizer's context, its principal
/// and how long it took.
fn authorizer_context(auth: &AuthorizerResult, latency: u64) -> Value {
    let mut m = Map::new();
    for (k, v) in &auth.context {
        // API Gateway passes context values to REST proxy events as strings.
        let s = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        m.insert(k.clone(), json!(s));
    }
    m.insert("principalId".into(), json!(auth.principal_id));
    m.insert("integrationLatency".into(), json!(latency));
    Value::Object(m)
}

/// A function's proxy response, mapped to HTTP.
#[derive(Debug, PartialEq)]
pub struct ProxyResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

fn header_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Maps `{statusCode, headers, multiValueHeaders, body, isBase64Encoded}`;
/// anything else is a malformed proxy response (API Gateway answers 502).
pub fn proxy_response(payload: &[u8]) -> Result<ProxyResponse, String> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let status = obj
        .get("statusCode")
        .and_then(|s| s.as_u64().or_else(|| s.as_str().and_then(|s| s.parse().ok())))
        .filter(|s| (100..=599).contains(s))
        .ok_or("`statusCode` is missing or not an HTTP status")? as u16;
    let mut headers = Vec::new();
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => headers.extend(h.iter().map(|(k, v)| (k.clone(), header_value(v)))),
        Some(_) => return Err("`headers` is not an object".into()),
    }
    match obj.get("multiValueHeaders") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (k, vs) in h {
                let list = vs.as_array().ok_or_else(|| format!("multiValueHeaders `{k}` is not a list"))?;
                headers.retain(|(name, _)| !name.eq_ignore_ascii_case(k));
                headers.extend(list.iter().map(|v| (k.clone(), header_value(v))));
            }
        }
        Some(_) => return Err("`multiValueHeaders` is not an object".into()),
    }
    let body = match obj.get("body") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("`body` is not a string".into()),
    };
    let is_base64 = obj.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false);
    let body = if is_base64 {
        Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(body.trim())
                .map_err(|e| format!("`body` is not valid base64: {e}"))?,
        )
    } else {
        Bytes::from(body)
    };
    Ok(ProxyResponse { status, headers, body })
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::event::apigw::ApiGatewayProxyRequest;

    use super::*;

    fn request<'a>(
        headers: &'a HeaderMap,
        params: &'a BTreeMap<String, String>,
        auth: Option<(&'a AuthorizerResult, u64)>,
    ) -> ProxyRequest<'a> {
        ProxyRequest {
            http_method: "GET",
            path: "/job-status/abc",
            stage: "prod",
            resource_id: "res1",
            resource_path: "/job-status/{jobId}",
            query: Some("a=1&a=2&b=x%20y"),
            headers,
            body: b"",
            path_params: params,
            source_ip: "127.0.0.1",
            request_id: "req-1",
            api_id: "api123",
            account_id: "123456789012",
            authorizer: auth,
            request_time: time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
        }
    }

    #[test]
    fn builds_the_rest_proxy_event() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:4010".parse().unwrap());
        headers.append("x-multi", "1".parse().unwrap());
        headers.append("x-multi", "2".parse().unwrap());
        let params = BTreeMap::from([("jobId".to_string(), "abc".to_string())]);
        let auth = AuthorizerResult {
            principal_id: "user-1".into(),
            statements: Vec::new(),
            context: serde_json::from_value(json!({"email": "a@b.c", "n": 3})).unwrap(),
        };
        let e = proxy_event(&request(&headers, &params, Some((&auth, 12))));
        assert_eq!(e["resource"], "/job-status/{jobId}");
        assert_eq!(e["path"], "/job-status/abc");
        assert_eq!(e["httpMethod"], "GET");
        assert_eq!(e["headers"]["x-multi"], "2");
        assert_eq!(e["multiValueHeaders"]["x-multi"], json!(["1", "2"]));
        assert_eq!(e["queryStringParameters"], json!({"a": "2", "b": "x y"}));
        assert_eq!(e["multiValueQueryStringParameters"], json!({"a": ["1", "2"], "b": ["x y"]}));
        assert_eq!(e["pathParameters"], json!({"jobId": "abc"}));
        assert_eq!(e["stageVariables"], Value::Null);
        assert_eq!(e["body"], Value::Null);
        assert_eq!(e["isBase64Encoded"], false);
        let rc = &e["requestContext"];
        assert_eq!(rc["path"], "/prod/job-status/abc");
        assert_eq!(rc["stage"], "prod");
        assert_eq!(rc["resourcePath"], "/job-status/{jobId}");
        assert_eq!(rc["requestId"], "req-1");
        assert_eq!(rc["accountId"], "123456789012");
        assert_eq!(rc["apiId"], "api123");
        assert_eq!(rc["identity"]["sourceIp"], "127.0.0.1");
        assert_eq!(rc["domainName"], "127.0.0.1:4010");
        assert_eq!(rc["requestTime"], "14/Nov/2023:22:13:20 +0000");
        assert_eq!(rc["requestTimeEpoch"], 1_700_000_000_000i64);
        assert_eq!(
            rc["authorizer"],
            json!({"principalId": "user-1", "email": "a@b.c", "n": "3", "integrationLatency": 12})
        );

        // The functions read it as aws_lambda_events' ApiGatewayProxyRequest.
        // The event is not built from that type: its serializer puts a
        // repeated parameter's first value in queryStringParameters, where
        // API Gateway puts the last (as above).
        let read: ApiGatewayProxyRequest = serde_json::from_value(e).unwrap();
        assert_eq!(read.path_parameters["jobId"], "abc");
        assert_eq!(read.query_string_parameters.first("a"), Some("2"));
        assert_eq!(read.multi_value_query_string_parameters.all("a"), Some(vec!["1", "2"]));
        assert_eq!(read.request_context.authorizer.fields["principalId"], "user-1");
        assert_eq!(read.request_context.authorizer.fields["email"], "a@b.c");
        assert_eq!(read.request_context.http_method, hyper::Method::GET);
        assert_eq!(read.headers["x-multi"], "2");
        assert_eq!(read.multi_value_headers.get_all("x-multi").iter().count(), 2);
    }

    #[test]
    fn no_authorizer_no_params() {
        let headers = HeaderMap::new();
        let params = BTreeMap::new();
        let mut r = request(&headers, &params, None);
        r.query = None;
        r.body = &[0xff, 0x00];
        let e = proxy_event(&r);
        assert_eq!(e["pathParameters"], Value::Null);
        assert_eq!(e["queryStringParameters"], Value::Null);
        assert!(e["requestContext"].get("authorizer").is_none());
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "/wA=");
    }

    #[test]
    fn maps_proxy_responses() {
        let r = proxy_response(
            br#"{"statusCode":200,"headers":{"content-type":"application/json","x-n":1},"body":"{\"a\":1}"}"#,
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.headers,
            vec![("content-type".to_string(), "application/json".to_string()), ("x-n".to_string(), "1".to_string())]
        );
        assert_eq!(r.body, Bytes::from_static(b"{\"a\":1}"));

        let r = proxy_response(br#"{"statusCode":404,"multiValueHeaders":{"set-cookie":["a=1","b=2"]},"isBase64Encoded":true,"body":"aGk="}"#).unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.body, Bytes::from_static(b"hi"));

        assert_eq!(proxy_response(br#"{"statusCode":204}"#).unwrap().body, Bytes::new());
        for bad in [
            &b"nope"[..],
            b"[]",
            br#"{"body":"x"}"#,
            br#"{"statusCode":"abc"}"#,
            br#"{"statusCode":200,"body":{}}"#,
            br#"{"statusCode":200,"headers":[]}"#,
            br#"{"statusCode":200,"isBase64Encoded":true,"body":"***"}"#,
        ] {
            assert!(proxy_response(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
