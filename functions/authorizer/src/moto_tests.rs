//! The authorizer against moto server's Cognito: a user pool, app client
//! and user are created through moto's JSON API (plain HTTP POSTs: the
//! Cognito SDK is not a dependency of this workspace), the user signs in with
//! USER_PASSWORD_AUTH, and the authorizer, built as main.rs builds it, fetches
//! the pool's keys over HTTP from moto's JWKS endpoint
//! (`<endpoint>/<userPoolId>/.well-known/jwks.json`). Each test starts its
//! own moto, stopped when it drops.
//!
//! moto signs every pool's tokens with one fixed key, so a token of another
//! pool or client verifies: only the claims tell it apart, as they must.

use std::io::{Read, Write};
use std::net::TcpStream;

use aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerRequest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_runtime::{Context, LambdaEvent};
use moto_harness::MotoServer;
use serde_json::{Value, json};

use crate::handler::{Authorizer, JWKS_TIMEOUT, UNAUTHORIZED, UNKNOWN_KID_PENALTY, authorize};
use crate::http::HttpJwks;
use crate::jwks::JwksCache;
use crate::jwt::{TokenUse, VerifierConfig};
use crate::policy::Route;

/// The app stack's ALLOWED_ROUTES (cdktf/constructs/job-api.ts).
const ALLOWED_ROUTES: &str = "POST/submit-job-request GET/job-status/* GET/jobs GET/count";
/// The fixture's methodArn: API abc123, stage api.
const API: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/api";
const USERNAME: &str = "demo";
const EMAIL: &str = "demo@example.com";
const PASSWORD: &str = "Correct-Horse-7";

/// A user pool with an app client and a confirmed user, in a moto.
struct Pool {
    moto: MotoServer,
    id: String,
    client_id: String,
    /// The user's `sub`.
    sub: String,
}

impl Pool {
    fn create() -> Self {
        let moto = MotoServer::start();
        let endpoint = moto.endpoint().to_owned();
        let id = cognito(&endpoint, "CreateUserPool", json!({"PoolName": "jobs-users"}))["UserPool"]["Id"]
            .as_str()
            .unwrap()
            .to_owned();
        let client_id = app_client(&endpoint, &id, "jobs-web");
        let user = cognito(
            &endpoint,
            "AdminCreateUser",
            json!({
                "UserPoolId": id,
                "Username": USERNAME,
                "UserAttributes": [{"Name": "email", "Value": EMAIL}, {"Name": "email_verified", "Value": "true"}],
                "MessageAction": "SUPPRESS",
            }),
        );
        let sub = user["User"]["Attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["Name"] == "sub")
            .and_then(|a| a["Value"].as_str())
            .expect("the user's sub")
            .to_owned();
        cognito(
            &endpoint,
            "AdminSetUserPassword",
            json!({"UserPoolId": id, "Username": USERNAME, "Password": PASSWORD, "Permanent": true}),
        );
        Self { moto, id, client_id, sub }
    }

    /// The issuer Cognito (and moto) puts in the pool's tokens.
    fn issuer(&self) -> String {
        format!("https://cognito-idp.us-east-1.amazonaws.com/{}", self.id)
    }

    /// Signs in with USER_PASSWORD_AUTH: (ID token, access token).
    fn sign_in(&self, client_id: &str) -> (String, String) {
        let auth = cognito(
            self.moto.endpoint(),
            "InitiateAuth",
            json!({
                "ClientId": client_id,
                "AuthFlow": "USER_PASSWORD_AUTH",
                "AuthParameters": {"USERNAME": USERNAME, "PASSWORD": PASSWORD},
            }),
        );
        let result = &auth["AuthenticationResult"];
        (result["IdToken"].as_str().unwrap().to_owned(), result["AccessToken"].as_str().unwrap().to_owned())
    }

    /// The authorizer as main.rs builds it, with the stack's environment
    /// replaced by this pool's values (JWKS_URL at moto's endpoint).
    fn authorizer(&self) -> Authorizer<JwksCache<HttpJwks>> {
        let jwks_url = format!("{}/{}/.well-known/jwks.json", self.moto.endpoint(), self.id);
        Authorizer {
            keys: JwksCache::new(HttpJwks::new(&jwks_url, JWKS_TIMEOUT).unwrap(), UNKNOWN_KID_PENALTY),
            verifier: VerifierConfig {
                issuer: self.issuer(),
                client_id: self.client_id.clone(),
                token_use: TokenUse::Id,
                leeway_seconds: 5,
            },
            routes: Route::parse_list(ALLOWED_ROUTES).unwrap(),
        }
    }
}

fn app_client(endpoint: &str, pool_id: &str, name: &str) -> String {
    let client = cognito(
        endpoint,
        "CreateUserPoolClient",
        json!({
            "UserPoolId": pool_id,
            "ClientName": name,
            "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            "ReadAttributes": ["email"],
        }),
    );
    client["UserPoolClient"]["ClientId"].as_str().unwrap().to_owned()
}

/// One call of Cognito's JSON API.
fn cognito(endpoint: &str, action: &str, body: Value) -> Value {
    let host = endpoint.strip_prefix("http://").unwrap();
    let body = body.to_string();
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: AWSCognitoIdentityProviderService.{action}\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    assert!(head.starts_with("HTTP/1.1 200"), "{action}: {head}\n{body}");
    serde_json::from_str(body).unwrap()
}

/// The fixture's TOKEN request carrying `header`.
fn event(header: &str) -> LambdaEvent<ApiGatewayCustomAuthorizerRequest> {
    let mut request: ApiGatewayCustomAuthorizerRequest =
        serde_json::from_str(include_str!("../fixtures/token-request.json")).unwrap();
    request.authorization_token = Some(header.to_owned());
    LambdaEvent::new(request, Context::default())
}

async fn refused(authorizer: &Authorizer<JwksCache<HttpJwks>>, header: &str) -> String {
    authorize(authorizer, event(header)).await.expect_err("must be refused").to_string()
}

#[tokio::test]
async fn a_signed_in_users_id_token_is_allowed_exactly_the_apis_routes() {
    let pool = Pool::create();
    let (id_token, _) = pool.sign_in(&pool.client_id);
    let authorizer = pool.authorizer();
    for header in [id_token.clone(), format!("Bearer {id_token}")] {
        let response = authorize(&authorizer, event(&header)).await.unwrap();
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["principalId"], pool.sub.as_str());
        assert_eq!(json["context"], json!({"sub": pool.sub, "username": USERNAME, "email": EMAIL}));
        assert_eq!(
            json["policyDocument"],
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Action": ["execute-api:Invoke"],
                    "Effect": "Allow",
                    "Resource": [
                        format!("{API}/POST/submit-job-request"),
                        format!("{API}/GET/job-status/*"),
                        format!("{API}/GET/jobs"),
                        format!("{API}/GET/count"),
                    ],
                }],
            })
        );
    }
}

#[tokio::test]
async fn a_tampered_token_and_the_access_token_are_unauthorized() {
    let pool = Pool::create();
    let (id_token, access_token) = pool.sign_in(&pool.client_id);
    let authorizer = pool.authorizer();
    // The genuine token is allowed: the refusals below are for what was changed.
    assert!(authorize(&authorizer, event(&id_token)).await.is_ok());

    // Another user's sub, the signature left as it was.
    let parts: Vec<&str> = id_token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("someone-else");
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    assert_eq!(refused(&authorizer, &tampered).await, UNAUTHORIZED);

    // A signature cut short.
    let truncated = &id_token[..id_token.len() - 4];
    assert_eq!(refused(&authorizer, truncated).await, UNAUTHORIZED);

    // The access token is signed by the same pool but is not an ID token.
    assert_eq!(refused(&authorizer, &access_token).await, UNAUTHORIZED);
    assert_eq!(refused(&authorizer, &format!("Bearer {access_token}")).await, UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_of_another_app_client_or_another_pool_are_unauthorized() {
    let pool = Pool::create();
    let authorizer = pool.authorizer();

    // Same pool and user, another app client: the audience differs.
    let other_client = app_client(pool.moto.endpoint(), &pool.id, "someone-elses-app");
    let (for_other_client, _) = pool.sign_in(&other_client);
    assert_eq!(refused(&authorizer, &for_other_client).await, UNAUTHORIZED);

    // A user of another pool in the same moto: moto signs it with the same
    // key, so only the issuer check stands between it and the API.
    let endpoint = pool.moto.endpoint();
    let other_pool = cognito(endpoint, "CreateUserPool", json!({"PoolName": "other"}))["UserPool"]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_pool_client = app_client(endpoint, &other_pool, "other-app");
    cognito(
        endpoint,
        "AdminCreateUser",
        json!({"UserPoolId": other_pool, "Username": USERNAME, "MessageAction": "SUPPRESS"}),
    );
    cognito(
        endpoint,
        "AdminSetUserPassword",
        json!({"UserPoolId": other_pool, "Username": USERNAME, "Password": PASSWORD, "Permanent": true}),
    );
    let (foreign, _) = pool.sign_in(&other_pool_client);
    let foreign_claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(foreign.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(foreign_claims["iss"], format!("https://cognito-idp.us-east-1.amazonaws.com/{other_pool}"));
    assert_eq!(refused(&authorizer, &foreign).await, UNAUTHORIZED);

    // This pool's own token still passes after all that.
    let (own, _) = pool.sign_in(&pool.client_id);
    assert!(authorize(&authorizer, event(&own)).await.is_ok());
}
