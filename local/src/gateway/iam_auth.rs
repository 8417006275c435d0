//! `AWS_IAM` methods: the caller signs with SigV4 using credentials the
//! local target issued for a role of the stack (a machine client), and the
//! role's policies must allow `execute-api:Invoke` on the method, as IAM
//! decides for API Gateway.

use std::time::SystemTime;

use super::responses::GatewayError;
use super::sigv4::{self, SigV4Error};
use crate::model::iam::RolePolicy;
use crate::policy::{Decision, decide};

/// Credentials the local target issued: a session of a role of the stack.
#[derive(Debug, Clone)]
pub struct MachineClient {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The session's ARN, `arn:aws:sts::<account>:assumed-role/<role>/<session>`
    /// (`$context.identity.userArn`).
    pub user_arn: String,
    /// `<role id>:<session>` (`$context.identity.caller`).
    pub caller: String,
    pub account_id: String,
    /// The role's policies.
    pub policy: RolePolicy,
}

/// Who called an `AWS_IAM` method: `requestContext.identity` and
/// `$context.identity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub user_arn: String,
    pub caller: String,
    pub access_key: String,
    pub account_id: String,
}

/// Authenticates and authorizes the call, or says what API Gateway answers
/// (and the message, when it names the caller).
pub fn authenticate(
    call: &sigv4::Received<'_>,
    method_arn: &str,
    clients: &[MachineClient],
    region: &str,
    now: SystemTime,
) -> Result<CallerIdentity, (GatewayError, Option<String>)> {
    let auth = sigv4::parse_authorization(call.headers).map_err(refusal)?;
    let Some(client) = clients.iter().find(|c| c.access_key_id == auth.access_key_id) else {
        return Err((GatewayError::UnrecognizedClient, None));
    };
    sigv4::verify(call, &auth, &client.secret_access_key, region, now).map_err(refusal)?;
    let denied = |explicit: &str| {
        format!(
            "User: {} is not authorized to perform: execute-api:Invoke on resource: {}{explicit}",
            client.user_arn, method_arn
        )
    };
    match decide(&client.policy.statements, "execute-api:Invoke", method_arn) {
        Decision::Allow => Ok(CallerIdentity {
            user_arn: client.user_arn.clone(),
            caller: client.caller.clone(),
            access_key: client.access_key_id.clone(),
            account_id: client.account_id.clone(),
        }),
        Decision::ImplicitDeny => Err((GatewayError::AccessDenied, Some(denied("")))),
        Decision::ExplicitDeny => Err((GatewayError::AccessDeniedExplicit, Some(denied(" with an explicit deny")))),
    }
}

/// What API Gateway answers a request whose signature does not hold.
fn refusal(error: SigV4Error) -> (GatewayError, Option<String>) {
    match error {
        SigV4Error::Missing => (GatewayError::MissingAuthenticationToken, None),
        SigV4Error::Invalid(message) => (GatewayError::InvalidSignature, Some(message)),
    }
}
