//! Cognito's InitiateAuth, the unauthenticated JSON call: USER_PASSWORD_AUTH
//! to sign in, REFRESH_TOKEN_AUTH to renew the ID token.

use serde_json::{Value, json};

use crate::error::{Error, body_message};
use crate::http::{Http, Request};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow<'a> {
    Password { username: &'a str, password: &'a str },
    Refresh { refresh_token: &'a str },
}

/// What a successful InitiateAuth returns; REFRESH_TOKEN_AUTH returns no new
/// refresh token unless rotation is on.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    pub id_token: String,
    pub refresh_token: Option<String>,
}

/// Tokens are never printed, not even in a debug message.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { .. }")
    }
}

pub fn request_body(client_id: &str, flow: &Flow<'_>) -> Value {
    match flow {
        Flow::Password { username, password } => json!({
            "AuthFlow": "USER_PASSWORD_AUTH",
            "ClientId": client_id,
            "AuthParameters": {"USERNAME": username, "PASSWORD": password},
        }),
        Flow::Refresh { refresh_token } => json!({
            "AuthFlow": "REFRESH_TOKEN_AUTH",
            "ClientId": client_id,
            "AuthParameters": {"REFRESH_TOKEN": refresh_token},
        }),
    }
}

pub fn initiate_auth(http: &Http, endpoint: &str, client_id: &str, flow: &Flow<'_>) -> Result<Tokens, Error> {
    let body = request_body(client_id, flow).to_string().into_bytes();
    let response = http.send(Request {
        what: "Cognito",
        method: "POST",
        url: endpoint,
        headers: &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", "AWSCognitoIdentityProviderService.InitiateAuth"),
        ],
        body: Some(body),
    })?;
    parse_response(response.status, &response.body, flow)
}

/// Cognito's error type: `__type` is `NotAuthorizedException` or, with a
/// namespace, `com.amazonaws...#NotAuthorizedException`.
fn error_type(body: &Value) -> &str {
    let t = body.get("__type").and_then(Value::as_str).unwrap_or("");
    t.rsplit('#').next().unwrap_or(t)
}

pub fn parse_response(status: u16, body: &[u8], flow: &Flow<'_>) -> Result<Tokens, Error> {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if status != 200 {
        let kind = error_type(&value);
        let message = body_message(body);
        return Err(match (flow, kind) {
            // Cognito says NotAuthorized for a wrong password, UserNotFound for an
            // unknown user (unless the pool hides it): the same answer for both.
            (Flow::Password { .. }, "NotAuthorizedException" | "UserNotFoundException") => Error::BadCredentials,
            (Flow::Refresh { .. }, "NotAuthorizedException" | "UserNotFoundException") => {
                Error::SessionExpired { detail: message }
            }
            (_, "ResourceNotFoundException") => Error::Usage(format!(
                "Cognito does not know this app client ({message}); check --client-id (a restarted local system has \
                 a new one)"
            )),
            (_, "UserNotConfirmedException") => Error::Usage(format!("the user is not confirmed: {message}")),
            (_, "PasswordResetRequiredException") => Error::Usage(format!("the password must be reset: {message}")),
            _ if kind.is_empty() => Error::Api { status, message: format!("Cognito answered {message}") },
            _ => Error::Api { status, message: format!("Cognito {kind}: {message}") },
        });
    }
    if let Some(challenge) = value.get("ChallengeName").and_then(Value::as_str) {
        return Err(Error::Usage(format!(
            "Cognito asks for {challenge}, which this client does not support; complete it with the AWS CLI first"
        )));
    }
    let result = value.get("AuthenticationResult");
    let field = |name: &str| result.and_then(|r| r.get(name)).and_then(Value::as_str).map(str::to_string);
    let id_token =
        field("IdToken").ok_or_else(|| Error::Api { status, message: "Cognito returned no ID token".into() })?;
    Ok(Tokens { id_token, refresh_token: field("RefreshToken") })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: Flow<'static> = Flow::Password { username: "u", password: "p" };
    const REFRESH: Flow<'static> = Flow::Refresh { refresh_token: "r" };

    #[test]
    fn request_bodies() {
        let b = request_body("client", &PASSWORD);
        assert_eq!(b["AuthFlow"], "USER_PASSWORD_AUTH");
        assert_eq!(b["ClientId"], "client");
        assert_eq!(b["AuthParameters"], json!({"USERNAME": "u", "PASSWORD": "p"}));
        let b = request_body("client", &REFRESH);
        assert_eq!(b["AuthFlow"], "REFRESH_TOKEN_AUTH");
        assert_eq!(b["AuthParameters"], json!({"REFRESH_TOKEN": "r"}));
    }

    #[test]
    fn bad_password_and_unknown_user_are_the_same_error() {
        for kind in ["NotAuthorizedException", "UserNotFoundException", "com.amazonaws.cognito#NotAuthorizedException"]
        {
            let body = json!({"__type": kind, "message": "Incorrect username or password."}).to_string();
            let e = parse_response(400, body.as_bytes(), &PASSWORD).unwrap_err();
            assert_eq!(e, Error::BadCredentials);
            assert_eq!(e.to_string(), "incorrect username or password");
        }
    }

    #[test]
    fn failed_refresh_says_to_log_in() {
        let body = json!({"__type": "NotAuthorizedException", "message": "Refresh Token has been revoked"}).to_string();
        let e = parse_response(400, body.as_bytes(), &REFRESH).unwrap_err();
        assert_eq!(
            e.to_string(),
            "your session has expired and could not be refreshed (Refresh Token has been revoked); run `jobctl login`"
        );
    }

    #[test]
    fn unknown_client_and_other_errors() {
        let body = json!({"__type": "ResourceNotFoundException", "message": "x"}).to_string();
        assert!(parse_response(400, body.as_bytes(), &PASSWORD).unwrap_err().to_string().contains("--client-id"));
        let body = json!({"__type": "TooManyRequestsException", "message": "slow down"}).to_string();
        assert_eq!(
            parse_response(400, body.as_bytes(), &PASSWORD).unwrap_err().to_string(),
            "the API answered 400: Cognito TooManyRequestsException: slow down"
        );
    }

    #[test]
    fn tokens_and_challenges() {
        let body =
            json!({"AuthenticationResult": {"IdToken": "id", "AccessToken": "a", "RefreshToken": "r"}}).to_string();
        let t = parse_response(200, body.as_bytes(), &PASSWORD).unwrap();
        assert_eq!((t.id_token.as_str(), t.refresh_token.as_deref()), ("id", Some("r")));
        let body = json!({"AuthenticationResult": {"IdToken": "id2"}}).to_string();
        assert_eq!(parse_response(200, body.as_bytes(), &REFRESH).unwrap().refresh_token, None);
        let body = json!({"ChallengeName": "NEW_PASSWORD_REQUIRED", "Session": "s"}).to_string();
        assert!(
            parse_response(200, body.as_bytes(), &PASSWORD).unwrap_err().to_string().contains("NEW_PASSWORD_REQUIRED")
        );
    }
}
