//! Lambda proxy integration (REST API, payload format 1.0): the event the
//! function receives and the mapping of its response.

use std::collections::BTreeMap;

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::ApiGatewayProxyResponse;
use base64::Engine as _;
use bytes::Bytes;
use hyper::HeaderMap;
use serde_json::{Map, Value, json};

use super::iam_auth::CallerIdentity;
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
    /// The signer of an AWS_IAM method.
    pub identity: Option<&'a CallerIdentity>,
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
    if let Some(identity) = r.identity {
        let id = &mut request_context["identity"];
        id["userArn"] = json!(identity.user_arn);
        id["caller"] = json!(identity.caller);
        id["user"] = json!(identity.caller);
        id["accessKey"] = json!(identity.access_key);
        id["accountId"] = json!(identity.account_id);
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

pub struct ProxyResponse {
    pub status: u16,
    /// `headers`, then `multiValueHeaders` in place of any of the same name.
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A header value as API Gateway passes it: a string as is, anything else
/// as its JSON text.
fn header_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads the function's answer as the `ApiGatewayProxyResponse` it
/// serialized (aws_lambda_events, the type job-status returns), after
/// API Gateway's leniency ([`as_api_gateway_reads_it`]); anything else is a
/// malformed proxy response (API Gateway answers 502).
pub fn proxy_response(payload: &[u8]) -> Result<ProxyResponse, String> {
    let mut value: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    as_api_gateway_reads_it(&mut value)?;
    let response: ApiGatewayProxyResponse =
        serde_json::from_value(value).map_err(|e| format!("not a Lambda proxy response: {e}"))?;
    let status = u16::try_from(response.status_code)
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or("`statusCode` is not an HTTP status")?;
    let mut headers = response.headers;
    for name in response.multi_value_headers.keys() {
        headers.remove(name);
    }
    for (name, value) in &response.multi_value_headers {
        headers.append(name.clone(), value.clone());
    }
    let body = match response.body {
        None => Bytes::new(),
        Some(Body::Text(text)) if response.is_base64_encoded => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| format!("`body` is not valid base64: {e}"))?,
        ),
        Some(body) => Bytes::copy_from_slice(&body),
    };
    Ok(ProxyResponse { status, headers, body })
}

/// What API Gateway accepts beyond the type's own reading: a `statusCode`
/// given as a numeric string, header values of any JSON type (their JSON
/// text), null for an absent map, and an `isBase64Encoded` that is not a
/// boolean (false). A `headers` or `multiValueHeaders` of another shape, or a
/// multi-value header that is not a list, is refused.
fn as_api_gateway_reads_it(value: &mut Value) -> Result<(), String> {
    let obj = value.as_object_mut().ok_or("not a JSON object")?;
    if let Some(Value::String(code)) = obj.get("statusCode") {
        let code: u64 = code.parse().map_err(|_| format!("`statusCode` {code:?} is not a number"))?;
        obj.insert("statusCode".into(), Value::from(code));
    }
    if !obj.get("isBase64Encoded").is_none_or(Value::is_boolean) {
        obj.remove("isBase64Encoded");
    }
    for (field, multi) in [("headers", false), ("multiValueHeaders", true)] {
        match obj.get_mut(field) {
            None => {}
            Some(Value::Null) => {
                obj.remove(field);
            }
            Some(Value::Object(map)) => {
                for (name, v) in map.iter_mut() {
                    *v = match (multi, &*v) {
                        (true, Value::Array(list)) => {
                            Value::Array(list.iter().map(header_value).map(Value::String).collect())
                        }
                        (true, _) => return Err(format!("multiValueHeaders `{name}` is not a list")),
                        (false, one) => Value::String(header_value(one)),
                    };
                }
            }
            Some(_) => return Err(format!("`{field}` is not an object")),
        }
    }
    Ok(())
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
            identity: None,
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
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["x-n"], "1", "a number is its JSON text");
        assert_eq!(r.body, Bytes::from_static(b"{\"a\":1}"));

        let r = proxy_response(br#"{"statusCode":404,"multiValueHeaders":{"set-cookie":["a=1","b=2"]},"isBase64Encoded":true,"body":"aGk="}"#).unwrap();
        assert_eq!(r.status, 404);
        let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(r.body, Bytes::from_static(b"hi"));

        // A numeric string status, as API Gateway takes it; a multi-value
        // header replaces the single one of the same name.
        let r = proxy_response(
            br#"{"statusCode":"201","headers":{"x-a":"1","x-b":"2"},"multiValueHeaders":{"x-a":["3","4"]},"isBase64Encoded":"no"}"#,
        )
        .unwrap();
        assert_eq!(r.status, 201);
        let x_a: Vec<_> = r.headers.get_all("x-a").iter().collect();
        assert_eq!(x_a, ["3", "4"]);
        assert_eq!(r.headers["x-b"], "2");

        assert_eq!(proxy_response(br#"{"statusCode":204}"#).unwrap().body, Bytes::new());
        for bad in [
            &b"nope"[..],
            b"[]",
            br#"{"body":"x"}"#,
            br#"{"statusCode":"abc"}"#,
            br#"{"statusCode":200,"body":{}}"#,
            br#"{"statusCode":200,"headers":[]}"#,
            br#"{"statusCode":200,"isBase64Encoded":true,"body":"***"}"#,
            br#"{"statusCode":200,"multiValueHeaders":{"x":"1"}}"#,
            br#"{"statusCode":99}"#,
            br#"{"statusCode":600}"#,
        ] {
            assert!(proxy_response(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn reads_the_response_job_status_serializes() {
        use aws_lambda_events::event::apigw::ApiGatewayProxyResponse;
        let mut sent = ApiGatewayProxyResponse::default();
        sent.status_code = 404;
        sent.headers.insert("content-type", "application/json".parse().unwrap());
        sent.multi_value_headers.append("set-cookie", "a=1".parse().unwrap());
        sent.multi_value_headers.append("set-cookie", "b=2".parse().unwrap());
        sent.body = Some(Body::Text(r#"{"message":"no such job"}"#.to_owned()));
        let read = proxy_response(&serde_json::to_vec(&sent).unwrap()).unwrap();
        assert_eq!(read.status, 404);
        assert_eq!(read.headers["content-type"], "application/json");
        let cookies: Vec<_> = read.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(read.body, Bytes::from_static(br#"{"message":"no such job"}"#));
    }
}
