//! The local REST API gateway: `http://127.0.0.1:<port>/<stage>/...` served
//! from the stack's API Gateway resources (routes, TOKEN authorizer, AWS_IAM
//! methods with SigV4, SQS and Lambda proxy integrations, mapping templates,
//! gateway responses).

pub mod iam_auth;
pub mod proxy;
pub mod responses;
pub mod routes;
pub mod sigv4;
pub mod sqs;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerRequest;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{HeaderMap, Request, Response, StatusCode};
use serde_json::Value;

use crate::httpx::{self, Body, BodyError, HttpClient, RequestBody};
use crate::lambda::{InvokeError, Invoked, LambdaService};
use crate::model::{
    ApiResource, Authorizer, Integration, IntegrationKind, IntegrationResponse, Method, ParamSource, Passthrough,
    RestApi,
};
use crate::policy::{AuthorizerResult, Decision};
use crate::vtl;
use responses::GatewayError;

/// API Gateway's payload limit.
const PAYLOAD_LIMIT: usize = 10 * 1024 * 1024;

pub struct Gateway {
    apis: Vec<RestApi>,
    /// Each API's resources as a router (same order as `apis`).
    routes: Vec<routes::Routes>,
    lambda: LambdaService,
    http: HttpClient,
    sqs_endpoint: String,
    region: String,
    account_id: String,
    /// (authorizer id, token) → (expiry, result).
    cache: Mutex<HashMap<(String, String), (Instant, AuthorizerResult)>>,
    /// The credentials AWS_IAM methods accept.
    machine_clients: Vec<iam_auth::MachineClient>,
}

/// One request on its way through the gateway.
struct Call<'a> {
    api: &'a RestApi,
    stage: String,
    resource: &'a ApiResource,
    method: &'a Method,
    http_method: String,
    /// After the stage, as sent.
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    params: std::collections::BTreeMap<String, String>,
    peer: SocketAddr,
    request_id: String,
    auth: Option<(AuthorizerResult, u64)>,
    /// The caller of an AWS_IAM method.
    identity: Option<iam_auth::CallerIdentity>,
}

enum Outcome {
    Response(Response<Body>),
    Error(GatewayError),
    /// The body failed the method's model: BAD_REQUEST_BODY with this
    /// `validationErrorString`.
    InvalidBody(String),
    /// An AWS_IAM refusal whose message names the caller or the problem.
    Refused(GatewayError, String),
}

impl Gateway {
    pub fn new(
        apis: Vec<RestApi>,
        lambda: LambdaService,
        sqs_endpoint: &str,
        region: &str,
        account_id: &str,
    ) -> Gateway {
        Gateway {
            routes: apis.iter().map(|a| routes::Routes::new(&a.resources)).collect(),
            apis,
            lambda,
            http: httpx::client(),
            sqs_endpoint: sqs_endpoint.to_string(),
            region: region.to_string(),
            account_id: account_id.to_string(),
            cache: Mutex::new(HashMap::new()),
            machine_clients: Vec::new(),
        }
    }

    /// Accept these credentials on AWS_IAM methods.
    pub fn with_machine_clients(mut self, clients: Vec<iam_auth::MachineClient>) -> Gateway {
        self.machine_clients = clients;
        self
    }

    async fn route(
        &self,
        req: Request<RequestBody>,
        peer: SocketAddr,
        request_id: &str,
    ) -> (Option<&RestApi>, Outcome, HeaderMap) {
        let (parts, body) = req.into_parts();
        let full_path = parts.uri.path().to_string();
        let trimmed = full_path.trim_start_matches('/');
        let (stage, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        let path = format!("/{rest}");
        let Some((api, routes)) = self.apis.iter().zip(&self.routes).find(|(a, _)| a.stages.iter().any(|s| s == stage))
        else {
            return (None, Outcome::Error(GatewayError::MissingAuthenticationToken), parts.headers);
        };
        let Some(matched) = routes.find(&api.resources, &path) else {
            return (Some(api), Outcome::Error(GatewayError::MissingAuthenticationToken), parts.headers);
        };
        let Some(method) = routes::select_method(matched.resource, parts.method.as_str()) else {
            return (Some(api), Outcome::Error(GatewayError::MissingAuthenticationToken), parts.headers);
        };
        let body = match httpx::read_body(body, PAYLOAD_LIMIT).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                return (Some(api), Outcome::Error(GatewayError::RequestTooLarge), parts.headers);
            }
            Err(_) => return (Some(api), Outcome::Error(GatewayError::BadRequestBody), parts.headers),
        };
        let mut call = Call {
            api,
            stage: stage.to_string(),
            resource: matched.resource,
            method,
            http_method: parts.method.as_str().to_string(),
            path,
            query: parts.uri.query().map(str::to_string),
            headers: parts.headers,
            body,
            params: matched.params,
            peer,
            request_id: request_id.to_string(),
            auth: None,
            identity: None,
        };
        let outcome = self.handle_call(&mut call).await;
        (Some(api), outcome, call.headers)
    }

    async fn handle_call(&self, call: &mut Call<'_>) -> Outcome {
        if call.method.iam_auth {
            let method_arn = self.method_arn(call);
            let wire_path = format!("/{}{}", call.stage, call.path);
            let signed = sigv4::Received {
                method: &call.http_method,
                path: &wire_path,
                query: call.query.as_deref(),
                headers: &call.headers,
                body: &call.body,
            };
            let now = std::time::SystemTime::now();
            match iam_auth::authenticate(&signed, &method_arn, &self.machine_clients, &self.region, now) {
                Ok(identity) => call.identity = Some(identity),
                Err((e, Some(message))) => return Outcome::Refused(e, message),
                Err((e, None)) => return Outcome::Error(e),
            }
        }
        if let Some(authorizer_id) = &call.method.authorizer_id {
            let Some(authorizer) = call.api.authorizers.iter().find(|a| &a.id == authorizer_id) else {
                return Outcome::Error(GatewayError::InternalError);
            };
            let started = Instant::now();
            match self.authorize(authorizer, call).await {
                Ok(result) => call.auth = Some((result, started.elapsed().as_millis() as u64)),
                Err(e) => return Outcome::Error(e),
            }
        }
        // Like API Gateway: validation after authorization, before the integration.
        if let Some(schema) = call.method.body_models.get(&Self::content_type(call))
            && let Err(detail) = schema.validate_body(&call.body)
        {
            return Outcome::InvalidBody(detail);
        }
        let Some(integration) = &call.method.integration else {
            tracing::warn!(method = %call.method.address, "no integration: API Gateway answers 500");
            return Outcome::Error(GatewayError::InternalError);
        };
        match &integration.kind {
            IntegrationKind::LambdaProxy { function } => self.lambda_proxy(call, integration, function).await,
            IntegrationKind::Sqs { path, max_message_bytes } => {
                self.sqs(call, integration, path, *max_message_bytes).await
            }
            IntegrationKind::Mock => self.mock(call, integration),
        }
    }

    fn method_arn(&self, call: &Call<'_>) -> String {
        format!(
            "arn:aws:execute-api:{}:{}:{}/{}/{}/{}",
            self.region,
            self.account_id,
            call.api.id,
            call.stage,
            call.http_method,
            call.path.trim_start_matches('/')
        )
    }

    async fn authorize(&self, authorizer: &Authorizer, call: &Call<'_>) -> Result<AuthorizerResult, GatewayError> {
        let token =
            call.headers.get(&authorizer.identity_header).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        if token.is_empty() {
            return Err(GatewayError::Unauthorized);
        }
        if let Some(re) = &authorizer.validation
            && !re.is_match(&token)
        {
            return Err(GatewayError::Unauthorized);
        }
        let method_arn = self.method_arn(call);
        let key = (authorizer.id.clone(), token.clone());
        let cached = {
            let mut cache = crate::lock(&self.cache);
            cache.retain(|_, (expiry, _)| *expiry > Instant::now());
            cache.get(&key).map(|(_, r)| r.clone())
        };
        let result = match cached {
            Some(r) => r,
            None => {
                let event = serde_json::to_vec(&token_authorizer_event(&token, &method_arn))
                    .expect("an authorizer event serializes");
                let result = match self.lambda.invoke(&authorizer.function, Bytes::from(event)).await {
                    Ok(Invoked::Response(body)) => {
                        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        AuthorizerResult::from_json(&value).map_err(|e| {
                            tracing::warn!(authorizer = %authorizer.address, error = %e, "authorizer returned an invalid response");
                            GatewayError::AuthorizerConfigurationError
                        })?
                    }
                    Ok(Invoked::Error(body)) => {
                        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        if value.get("errorMessage").and_then(Value::as_str) == Some("Unauthorized") {
                            return Err(GatewayError::Unauthorized);
                        }
                        tracing::warn!(authorizer = %authorizer.address, error = %String::from_utf8_lossy(&body), "authorizer failed");
                        return Err(GatewayError::AuthorizerConfigurationError);
                    }
                    Err(e) => {
                        tracing::warn!(authorizer = %authorizer.address, error = %e, "authorizer could not be invoked");
                        return Err(GatewayError::AuthorizerConfigurationError);
                    }
                };
                if authorizer.ttl_secs > 0 {
                    crate::lock(&self.cache)
                        .insert(key, (Instant::now() + Duration::from_secs(authorizer.ttl_secs), result.clone()));
                }
                result
            }
        };
        authorized(result.decide(&method_arn))?;
        Ok(result)
    }

    async fn lambda_proxy(&self, call: &Call<'_>, integration: &Integration, function: &str) -> Outcome {
        let event = proxy::proxy_event(&proxy::ProxyRequest {
            http_method: &call.http_method,
            path: &call.path,
            stage: &call.stage,
            resource_id: &call.resource.id,
            resource_path: &call.resource.path,
            query: call.query.as_deref(),
            headers: &call.headers,
            body: &call.body,
            path_params: &call.params,
            source_ip: &call.peer.ip().to_string(),
            request_id: &call.request_id,
            api_id: &call.api.id,
            account_id: &self.account_id,
            authorizer: call.auth.as_ref().map(|(r, latency)| (r, *latency)),
            identity: call.identity.as_ref(),
            request_time: time::OffsetDateTime::now_utc(),
        });
        let invoked = tokio::time::timeout(
            Duration::from_millis(integration.timeout_ms),
            self.lambda.invoke(function, Bytes::from(event.to_string())),
        )
        .await;
        let payload = match invoked {
            Err(_) => return Outcome::Error(GatewayError::IntegrationTimeout),
            Ok(Ok(Invoked::Response(p))) => p,
            Ok(Ok(Invoked::Error(body))) => {
                tracing::info!(%function, error = %String::from_utf8_lossy(&body), "Lambda proxy function failed: 502");
                return Outcome::Error(GatewayError::BadGateway);
            }
            Ok(Err(InvokeError::Throttled(_))) => {
                tracing::warn!(%function, "Lambda proxy function throttled");
                return Outcome::Error(GatewayError::InternalError);
            }
            Ok(Err(e)) => {
                tracing::warn!(%function, error = %e, "Lambda proxy invoke failed");
                return Outcome::Error(GatewayError::InternalError);
            }
        };
        match proxy::proxy_response(&payload) {
            Ok(r) => {
                let mut resp = Response::new(Full::new(r.body));
                *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
                for (name, value) in &r.headers {
                    resp.headers_mut().append(name.clone(), value.clone());
                }
                if !resp.headers().contains_key(CONTENT_TYPE) {
                    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                Outcome::Response(resp)
            }
            Err(reason) => {
                tracing::warn!(%function, %reason, "malformed Lambda proxy response: 502");
                Outcome::Error(GatewayError::BadGateway)
            }
        }
    }

    /// Renders the request template for the request's content type, per the
    /// passthrough behavior.
    /// The request's media type, lower-case, `application/json` when absent.
    fn content_type(call: &Call<'_>) -> String {
        call.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "application/json".to_string())
    }

    fn request_body(&self, call: &Call<'_>, integration: &Integration) -> Result<Bytes, GatewayError> {
        let content_type = Self::content_type(call);
        let template = match select_request_template(integration, &content_type) {
            Ok(t) => t,
            Err(UnsupportedMediaType) => return Err(GatewayError::UnsupportedMediaType),
        };
        match template {
            None => Ok(call.body.clone()),
            Some(t) => {
                let body = String::from_utf8_lossy(&call.body);
                let (principal, context) = match &call.auth {
                    Some((r, _)) => (Some(r.principal_id.as_str()), Some(&r.context)),
                    None => (None, None),
                };
                let params = Self::input_params(call);
                let ctx = vtl::Context {
                    body: &body,
                    request_id: &call.request_id,
                    principal_id: principal,
                    authorizer: context,
                    user_arn: call.identity.as_ref().map(|i| i.user_arn.as_str()),
                    params: &params,
                    ..Default::default()
                };
                t.render(&ctx).map(Bytes::from).map_err(|e| {
                    tracing::info!(integration = %integration.address, error = %e, "request template failed");
                    GatewayError::BadRequestBody
                })
            }
        }
    }

    /// `$input.params`: path, query string and header parameters, in the
    /// order API Gateway searches them.
    fn input_params(call: &Call<'_>) -> Vec<(String, String)> {
        let path = call.params.iter().map(|(k, v)| (k.clone(), v.clone()));
        let query = call
            .query
            .as_deref()
            .map(|qs| form_urlencoded::parse(qs.as_bytes()).into_owned().collect::<Vec<_>>())
            .unwrap_or_default();
        let headers = call
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())));
        path.chain(query).chain(headers).collect()
    }

    fn param(call: &Call<'_>, source: &ParamSource, integration_headers: Option<&HeaderMap>) -> Option<String> {
        match source {
            ParamSource::Literal(v) => Some(v.clone()),
            ParamSource::RequestHeader(h) => call.headers.get(h).and_then(|v| v.to_str().ok()).map(str::to_string),
            ParamSource::RequestQuery(q) => call.query.as_deref().and_then(|qs| {
                form_urlencoded::parse(qs.as_bytes()).find(|(k, _)| k == q.as_str()).map(|(_, v)| v.into_owned())
            }),
            ParamSource::RequestPath(p) => call.params.get(p).cloned(),
            ParamSource::IntegrationResponseHeader(h) => {
                integration_headers.and_then(|m| m.get(h)).and_then(|v| v.to_str().ok()).map(str::to_string)
            }
        }
    }

    async fn sqs(&self, call: &Call<'_>, integration: &Integration, path: &str, max_message_bytes: usize) -> Outcome {
        let body = match self.request_body(call, integration) {
            Ok(b) => b,
            Err(e) => return Outcome::Error(e),
        };
        // SQS refuses a message over the queue's size in bytes, attributes
        // included; moto counts the body's characters only, so the check is
        // made here, as SQS would, and nothing reaches the queue.
        if let Some(size) = sqs::send_message_size(&body)
            && size > max_message_bytes
        {
            tracing::info!(integration = %integration.address, size, max_message_bytes, "SQS: message too long");
            let refusal = sqs::message_too_long(max_message_bytes, &call.request_id).to_string();
            return self.integration_response(call, integration, 400, &refusal, None);
        }
        let mut builder = Request::post(format!("{}{path}", self.sqs_endpoint))
            .header("authorization", httpx::fake_sigv4(&self.region, "sqs"))
            .header("accept", "application/json");
        let mut has_content_type = false;
        for (name, source) in &integration.request_headers {
            if let Some(v) = Self::param(call, source, None) {
                has_content_type |= name.eq_ignore_ascii_case("content-type");
                builder = builder.header(name.as_str(), v);
            }
        }
        if !has_content_type {
            builder = builder.header("content-type", "application/json");
        }
        let Ok(req) = builder.body(Full::new(body)) else {
            return Outcome::Error(GatewayError::InternalError);
        };
        let sent =
            tokio::time::timeout(Duration::from_millis(integration.timeout_ms), httpx::send(&self.http, req)).await;
        let (status, headers, bytes) = match sent {
            Err(_) => return Outcome::Error(GatewayError::IntegrationTimeout),
            Ok(Err(e)) => {
                tracing::warn!(integration = %integration.address, error = %e, "SQS integration request failed");
                return Outcome::Error(GatewayError::InternalError);
            }
            Ok(Ok(r)) => r,
        };
        let json_body = match sqs::xml_to_json(&String::from_utf8_lossy(&bytes)) {
            Ok(v) => v.to_string(),
            Err(e) => {
                tracing::warn!(integration = %integration.address, error = %e, status = %status, "SQS answered something that is not XML");
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        self.integration_response(call, integration, status.as_u16(), &json_body, Some(&headers))
    }

    fn mock(&self, call: &Call<'_>, integration: &Integration) -> Outcome {
        let body = match self.request_body(call, integration) {
            Ok(b) => b,
            Err(e) => return Outcome::Error(e),
        };
        let status = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("statusCode").and_then(Value::as_u64))
            .unwrap_or(200) as u16;
        self.integration_response(call, integration, status, "", None)
    }

    fn integration_response(
        &self,
        call: &Call<'_>,
        integration: &Integration,
        status: u16,
        body: &str,
        integration_headers: Option<&HeaderMap>,
    ) -> Outcome {
        let Some(selected) = select_integration_response(&integration.responses, status) else {
            tracing::warn!(integration = %integration.address, status, "no integration response matches and none is the default: 500");
            return Outcome::Error(GatewayError::InternalError);
        };
        let (content_type, template) = match selected.templates.get("application/json") {
            Some(t) => ("application/json".to_string(), Some(t)),
            None => match selected.templates.iter().next() {
                Some((ct, t)) => (ct.clone(), Some(t)),
                None => ("application/json".to_string(), None),
            },
        };
        let out = match template {
            None => body.to_string(),
            Some(t) => {
                let (principal, context) = match &call.auth {
                    Some((r, _)) => (Some(r.principal_id.as_str()), Some(&r.context)),
                    None => (None, None),
                };
                let ctx = vtl::Context {
                    body,
                    request_id: &call.request_id,
                    principal_id: principal,
                    authorizer: context,
                    user_arn: call.identity.as_ref().map(|i| i.user_arn.as_str()),
                    ..Default::default()
                };
                match t.render(&ctx) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(response = %selected.address, error = %e, "response template failed: 500");
                        return Outcome::Error(GatewayError::InternalError);
                    }
                }
            }
        };
        let mut resp =
            httpx::response(StatusCode::from_u16(selected.status_code).unwrap_or(StatusCode::OK), &content_type, out);
        for (name, source) in &selected.headers {
            if let (Ok(n), Some(Ok(v))) = (
                name.parse::<HeaderName>(),
                Self::param(call, source, integration_headers).map(|v| HeaderValue::from_str(&v)),
            ) {
                resp.headers_mut().insert(n, v);
            }
        }
        Outcome::Response(resp)
    }
}

/// No request template matches and the passthrough behavior forbids passing
/// the body through: 415 Unsupported Media Type.
#[derive(Debug, PartialEq, Eq)]
pub struct UnsupportedMediaType;

/// API Gateway's answer to the decision on an authorizer's policy
/// (`crate::policy`, the evaluator IAM uses too): 403 with its message for
/// an implicit and for an explicit deny.
fn authorized(decision: Decision) -> Result<(), GatewayError> {
    match decision {
        Decision::Allow => Ok(()),
        Decision::ImplicitDeny => Err(GatewayError::AccessDenied),
        Decision::ExplicitDeny => Err(GatewayError::AccessDeniedExplicit),
    }
}

/// The template for `content_type`; `Ok(None)` = pass the body through.
pub fn select_request_template<'a>(
    integration: &'a Integration,
    content_type: &str,
) -> Result<Option<&'a vtl::Template>, UnsupportedMediaType> {
    if let Some(t) = integration.request_templates.get(content_type) {
        return Ok(Some(t));
    }
    match (integration.passthrough, integration.request_templates.is_empty()) {
        (Passthrough::WhenNoMatch, _) => Ok(None),
        (Passthrough::WhenNoTemplates, true) => Ok(None),
        (Passthrough::WhenNoTemplates, false) | (Passthrough::Never, _) => Err(UnsupportedMediaType),
    }
}

/// The event a TOKEN authorizer receives: the type the authorizer function
/// deserializes (aws_lambda_events), so a shape mismatch does not compile.
pub fn token_authorizer_event(token: &str, method_arn: &str) -> ApiGatewayCustomAuthorizerRequest {
    let mut event = ApiGatewayCustomAuthorizerRequest::default();
    event.type_ = Some("TOKEN".into());
    event.authorization_token = Some(token.into());
    event.method_arn = Some(method_arn.into());
    event
}

/// The first response whose selection pattern matches the backend status,
/// else the default one (no pattern).
pub fn select_integration_response(responses: &[IntegrationResponse], status: u16) -> Option<&IntegrationResponse> {
    let s = status.to_string();
    responses
        .iter()
        .find(|r| r.selection_pattern.as_ref().is_some_and(|p| p.is_match(&s)))
        .or_else(|| responses.iter().find(|r| r.selection_pattern.is_none()))
}

impl httpx::Handler for Gateway {
    async fn handle(&self, req: Request<RequestBody>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let (api, outcome, headers) = self.route(req, peer, &request_id).await;
        let mut resp = match outcome {
            Outcome::Response(r) => r,
            Outcome::Error(e) => responses::render(api, e, None, &headers, &request_id),
            Outcome::InvalidBody(detail) => {
                responses::render(api, GatewayError::BadRequestBody, Some(&detail), &headers, &request_id)
            }
            Outcome::Refused(e, message) => {
                responses::render_with_message(api, e, Some(&message), None, &headers, &request_id)
            }
        };
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert("x-amzn-requestid", v);
        }
        if let Ok(v) = HeaderValue::from_str(&crate::lambda::trace_id()) {
            h.insert("x-amzn-trace-id", v);
        }
        tracing::info!(target: "jobs_local::access", %method, %path, status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64, request_id = %request_id);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;
    use std::collections::BTreeMap;

    /// The authorizer check decides with `crate::policy::decide` (the
    /// evaluator IAM uses) and answers its denials with their 403 messages.
    #[test]
    fn an_authorizers_policy_is_decided_by_the_one_evaluator() {
        let arn = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/job-status/42";
        let answer = serde_json::json!({
            "principalId": "user-1",
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*/prod/*"},
                {"Effect": "Deny", "Action": "execute-api:*", "Resource": "*/POST/*"}
            ]}
        });
        let result = AuthorizerResult::from_json(&answer).unwrap();
        let cases = [
            (arn.to_string(), Ok(())),
            (arn.replace("/prod/", "/test/"), Err(GatewayError::AccessDenied)),
            (arn.replace("GET", "POST"), Err(GatewayError::AccessDeniedExplicit)),
        ];
        for (method_arn, expected) in cases {
            let decision = crate::policy::decide(&result.statements, crate::policy::EXECUTE_API_INVOKE, &method_arn);
            assert_eq!(result.decide(&method_arn), decision, "{method_arn}");
            assert_eq!(authorized(decision), expected, "{method_arn}");
        }
        assert_eq!(GatewayError::AccessDenied.message(), Some("User is not authorized to access this resource"));
        assert_eq!(
            GatewayError::AccessDeniedExplicit.message(),
            Some("User is not authorized to access this resource with an explicit deny")
        );
        assert_eq!(GatewayError::AccessDenied.default_status(), 403);
    }

    fn response(status: u16, pattern: Option<&str>) -> IntegrationResponse {
        IntegrationResponse {
            address: format!("r{status}"),
            status_code: status,
            selection_pattern: pattern.map(|p| Regex::new(&format!("^(?:{p})$")).unwrap()),
            templates: BTreeMap::new(),
            headers: Vec::new(),
        }
    }

    #[test]
    fn the_token_authorizer_event_is_what_api_gateway_sends() {
        let event = serde_json::to_value(token_authorizer_event("t", "arn:m")).unwrap();
        assert_eq!(event, serde_json::json!({"type": "TOKEN", "authorizationToken": "t", "methodArn": "arn:m"}));
    }

    #[test]
    fn selects_integration_responses_by_status() {
        let rs = vec![response(200, None), response(400, Some("4\\d{2}")), response(500, Some("5\\d{2}"))];
        assert_eq!(select_integration_response(&rs, 200).unwrap().status_code, 200);
        assert_eq!(select_integration_response(&rs, 404).unwrap().status_code, 400);
        assert_eq!(select_integration_response(&rs, 503).unwrap().status_code, 500);
        assert_eq!(select_integration_response(&rs, 302).unwrap().status_code, 200);
        let no_default = vec![response(400, Some("4\\d{2}"))];
        assert!(select_integration_response(&no_default, 200).is_none());
        // A pattern must match the whole status.
        let partial = vec![response(400, Some("4"))];
        assert!(select_integration_response(&partial, 400).is_none());
    }

    fn integration(passthrough: Passthrough, templates: &[&str]) -> Integration {
        Integration {
            address: "i".into(),
            kind: IntegrationKind::Mock,
            request_headers: Vec::new(),
            request_templates: templates
                .iter()
                .map(|ct| (ct.to_string(), vtl::Template::parse("$input.body").unwrap()))
                .collect(),
            passthrough,
            timeout_ms: 29_000,
            responses: Vec::new(),
        }
    }

    #[test]
    fn passthrough_behaviors() {
        let never = integration(Passthrough::Never, &["application/json"]);
        assert!(select_request_template(&never, "application/json").unwrap().is_some());
        assert!(select_request_template(&never, "text/plain").is_err());
        assert!(select_request_template(&integration(Passthrough::Never, &[]), "application/json").is_err());

        let when_no_match = integration(Passthrough::WhenNoMatch, &["application/json"]);
        assert!(select_request_template(&when_no_match, "text/plain").unwrap().is_none());

        let when_no_templates = integration(Passthrough::WhenNoTemplates, &["application/json"]);
        assert!(select_request_template(&when_no_templates, "text/plain").is_err());
        assert!(
            select_request_template(&integration(Passthrough::WhenNoTemplates, &[]), "text/plain").unwrap().is_none()
        );
    }
}
