//! Gateway responses: the errors API Gateway itself answers, shaped by the
//! stack's `aws_api_gateway_gateway_response`s or API Gateway's defaults.

use hyper::{HeaderMap, Response, StatusCode};

use crate::httpx::{self, Body};
use crate::model::{GatewayResponse, ParamSource, RestApi};
use crate::vtl;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayError {
    MissingAuthenticationToken,
    Unauthorized,
    AccessDenied,
    AccessDeniedExplicit,
    /// AWS_IAM: the SigV4 signature, its scope or its time is wrong (the
    /// message says which).
    InvalidSignature,
    /// AWS_IAM: the access key is not one the gateway issued.
    UnrecognizedClient,
    AuthorizerConfigurationError,
    UnsupportedMediaType,
    BadRequestBody,
    RequestTooLarge,
    IntegrationTimeout,
    /// A configuration or integration failure API Gateway reports as 500.
    InternalError,
    /// A failed or malformed Lambda proxy response (502).
    BadGateway,
}

impl GatewayError {
    pub fn response_type(self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MISSING_AUTHENTICATION_TOKEN",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::AccessDenied | Self::AccessDeniedExplicit => "ACCESS_DENIED",
            Self::InvalidSignature => "INVALID_SIGNATURE",
            Self::UnrecognizedClient => "DEFAULT_4XX",
            Self::AuthorizerConfigurationError => "AUTHORIZER_CONFIGURATION_ERROR",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::BadRequestBody => "BAD_REQUEST_BODY",
            Self::RequestTooLarge => "REQUEST_TOO_LARGE",
            Self::IntegrationTimeout => "INTEGRATION_TIMEOUT",
            Self::InternalError => "API_CONFIGURATION_ERROR",
            Self::BadGateway => "DEFAULT_5XX",
        }
    }

    pub fn default_status(self) -> u16 {
        match self {
            Self::MissingAuthenticationToken
            | Self::AccessDenied
            | Self::AccessDeniedExplicit
            | Self::InvalidSignature
            | Self::UnrecognizedClient => 403,
            Self::Unauthorized => 401,
            Self::AuthorizerConfigurationError | Self::InternalError => 500,
            Self::UnsupportedMediaType => 415,
            Self::BadRequestBody => 400,
            Self::RequestTooLarge => 413,
            Self::IntegrationTimeout => 504,
            Self::BadGateway => 502,
        }
    }

    /// `$context.error.message` (`None` renders as `null`).
    pub fn message(self) -> Option<&'static str> {
        match self {
            Self::MissingAuthenticationToken => Some("Missing Authentication Token"),
            Self::Unauthorized => Some("Unauthorized"),
            Self::AccessDenied => Some("User is not authorized to access this resource"),
            Self::AccessDeniedExplicit => Some("User is not authorized to access this resource with an explicit deny"),
            Self::InvalidSignature => Some(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            ),
            Self::UnrecognizedClient => Some("The security token included in the request is invalid."),
            Self::AuthorizerConfigurationError => None,
            Self::UnsupportedMediaType => Some("Unsupported Media Type"),
            Self::BadRequestBody => Some("Invalid request body"),
            Self::RequestTooLarge => Some("Request Too Long"),
            Self::IntegrationTimeout => Some("Endpoint request timed out"),
            Self::InternalError | Self::BadGateway => Some("Internal server error"),
        }
    }

    /// The `x-amzn-ErrorType` header.
    pub fn error_type(self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::Unauthorized => "UnauthorizedException",
            Self::AccessDenied | Self::AccessDeniedExplicit => "AccessDeniedException",
            Self::InvalidSignature => "InvalidSignatureException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::AuthorizerConfigurationError => "AuthorizerConfigurationException",
            Self::UnsupportedMediaType => "UnsupportedMediaTypeException",
            Self::BadRequestBody => "BadRequestException",
            Self::RequestTooLarge => "RequestTooLargeException",
            Self::IntegrationTimeout | Self::InternalError | Self::BadGateway => "InternalServerErrorException",
        }
    }
}

const DEFAULT_TEMPLATE: &str = "{\"message\":$context.error.messageString}";

/// The configured response for `err`: its own type, else DEFAULT_4XX or
/// DEFAULT_5XX.
fn configured(api: &RestApi, err: GatewayError) -> (Option<&GatewayResponse>, Option<&GatewayResponse>) {
    let specific = api.gateway_responses.get(err.response_type());
    let group = if err.default_status() >= 500 { "DEFAULT_5XX" } else { "DEFAULT_4XX" };
    (specific, api.gateway_responses.get(group))
}

/// Renders a gateway response.
/// `validation` is `$context.error.validationErrorString` (BAD_REQUEST_BODY).
pub fn render(
    api: Option<&RestApi>,
    err: GatewayError,
    validation: Option<&str>,
    request_headers: &HeaderMap,
    request_id: &str,
) -> Response<Body> {
    render_with_message(api, err, err.message(), validation, request_headers, request_id)
}

/// [`render`] with `$context.error.message` given: IAM's messages name the
/// caller and the method.
pub fn render_with_message(
    api: Option<&RestApi>,
    err: GatewayError,
    message: Option<&str>,
    validation: Option<&str>,
    request_headers: &HeaderMap,
    request_id: &str,
) -> Response<Body> {
    let (specific, group) = api.map(|a| configured(a, err)).unwrap_or((None, None));
    let chosen = specific.or(group);
    let status = specific.and_then(|g| g.status_code).unwrap_or(err.default_status());
    let template = chosen
        .and_then(|g| g.templates.get("application/json").or_else(|| g.templates.values().next()))
        .cloned()
        .unwrap_or_else(|| vtl::Template::parse(DEFAULT_TEMPLATE).expect("the default template is valid"));
    let ctx = vtl::Context { request_id, error_message: message, validation_error: validation, ..Default::default() };
    let body = template.render(&ctx).unwrap_or_else(|_| format!("{{\"message\":{}}}", serde_json::json!(message)));
    let mut resp = httpx::response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "application/json",
        body,
    );
    resp.headers_mut().insert("x-amzn-errortype", err.error_type().parse().expect("static header"));
    if let Some(g) = chosen {
        for (name, source) in &g.headers {
            let value = match source {
                ParamSource::Literal(v) => Some(v.clone()),
                ParamSource::RequestHeader(h) => {
                    request_headers.get(h).and_then(|v| v.to_str().ok()).map(str::to_string)
                }
                _ => None,
            };
            if let (Ok(n), Some(Ok(v))) = (name.parse::<hyper::header::HeaderName>(), value.map(|v| v.parse())) {
                resp.headers_mut().insert(n, v);
            }
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::collections::BTreeMap;

    fn api(responses: Vec<(&str, Option<u16>, &str)>) -> RestApi {
        RestApi {
            address: "aws_api_gateway_rest_api.api".into(),
            id: "abc".into(),
            name: "api".into(),
            stages: vec!["prod".into()],
            resources: Vec::new(),
            authorizers: Vec::new(),
            gateway_responses: responses
                .into_iter()
                .map(|(t, status, tpl)| {
                    (
                        t.to_string(),
                        GatewayResponse {
                            address: format!("gr.{t}"),
                            status_code: status,
                            templates: BTreeMap::from([(
                                "application/json".to_string(),
                                vtl::Template::parse(tpl).unwrap(),
                            )]),
                            headers: vec![("Access-Control-Allow-Origin".into(), ParamSource::Literal("*".into()))],
                        },
                    )
                })
                .collect(),
        }
    }

    async fn body(r: Response<Body>) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn defaults() {
        let h = HeaderMap::new();
        let r = render(None, GatewayError::MissingAuthenticationToken, None, &h, "r1");
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["x-amzn-errortype"], "MissingAuthenticationTokenException");
        assert_eq!(body(r).await, r#"{"message":"Missing Authentication Token"}"#);
        let r = render(None, GatewayError::AuthorizerConfigurationError, None, &h, "r1");
        assert_eq!(r.status(), 500);
        assert_eq!(body(r).await, r#"{"message":null}"#);
    }

    #[tokio::test]
    async fn configured_responses() {
        let h = HeaderMap::new();
        let a = api(vec![
            ("UNAUTHORIZED", Some(401), r#"{"error":"unauthorized","requestId":"$context.requestId"}"#),
            ("DEFAULT_4XX", None, r#"{"error":$context.error.messageString}"#),
        ]);
        let r = render(Some(&a), GatewayError::Unauthorized, None, &h, "r9");
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        assert_eq!(body(r).await, r#"{"error":"unauthorized","requestId":"r9"}"#);
        // Falls back to DEFAULT_4XX, keeping the type's status.
        let r = render(Some(&a), GatewayError::AccessDenied, None, &h, "r9");
        assert_eq!(r.status(), 403);
        assert_eq!(body(r).await, r#"{"error":"User is not authorized to access this resource"}"#);
        // No DEFAULT_5XX: the built-in default.
        let r = render(Some(&a), GatewayError::BadGateway, None, &h, "r9");
        assert_eq!(r.status(), 502);
        assert_eq!(body(r).await, r#"{"message":"Internal server error"}"#);
    }

    #[tokio::test]
    async fn a_failing_authorizer_is_answered_with_the_stacks_response_for_it() {
        let h = HeaderMap::new();
        // As the app stack configures it (cdktf/constructs/job-api.ts): 503, a static body, Retry-After.
        let mut a = api(vec![("AUTHORIZER_CONFIGURATION_ERROR", Some(503), r#"{"message":"try again","hint":"h"}"#)]);
        let response = a.gateway_responses.get_mut("AUTHORIZER_CONFIGURATION_ERROR").unwrap();
        response.headers = vec![("Retry-After".into(), ParamSource::Literal("5".into()))];
        let r = render(Some(&a), GatewayError::AuthorizerConfigurationError, None, &h, "r1");
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "5");
        assert_eq!(body(r).await, r#"{"message":"try again","hint":"h"}"#);
    }
}
