//! IAM for the functions' calls: each function signs with an access key of
//! its own, and the service proxies (`proxy`, a layer above) and the Lambda
//! Invoke API check every call it signs against its role's identity policies
//! from the stack, answering a call no statement allows with the service's
//! own AccessDenied error (docs/local-target.md, "IAM").
//!
//! - [`crate::model::iam`] reads the role policies of each function from the
//!   stack (the model layer);
//! - [`calls`] derives the IAM action(s) and resource ARN(s) of a request;
//! - [`Iam`] knows which key is which function's, decides with the one
//!   evaluator of `crate::policy` (the one the API gateway's authorizer
//!   check uses) and counts denials.

pub mod calls;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use hyper::{Method, Response, StatusCode};
use serde::Serialize;
use serde_json::json;

use crate::awserror::AwsError;
use crate::httpx::Body;
use crate::lock;
use crate::model::iam::RolePolicy;
use crate::policy::{Decision, decide};

pub use calls::Call;

/// A function as IAM sees it: the principal behind its access key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub function: String,
    pub access_key_id: String,
    pub policy: RolePolicy,
    /// The roles it may assume, by ARN, with their policies.
    pub assumable_roles: Vec<(String, RolePolicy)>,
}

/// A session of a role a function assumed (STS AssumeRole through the proxy):
/// calls signed with its key are checked against the role's policies, and
/// its credentials stop working at `expires_at`, as STS's do.
#[derive(Debug, Clone)]
pub struct Session {
    /// `<role name>/<function>`, as a denial names it.
    pub principal: Principal,
    pub expires_at: std::time::SystemTime,
}

/// The access key id a function's instances sign with: unique per function,
/// shaped like a temporary credential's (`ASIA` + 16 characters).
pub fn access_key_id(function_index: usize) -> String {
    format!("ASIAJOBSLOCAL{function_index:07}")
}

/// A call the caller's policies do not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub function: String,
    pub role_name: String,
    pub action: String,
    pub resource: String,
    pub explicit: bool,
}

impl Denied {
    /// IAM's message, as the services return it.
    pub fn message(&self, account_id: &str) -> String {
        let reason = if self.explicit {
            "with an explicit deny in an identity-based policy".to_string()
        } else {
            format!("because no identity-based policy allows the {} action", self.action)
        };
        format!(
            "User: arn:aws:sts::{account_id}:assumed-role/{}/{} is not authorized to perform: {} on resource: {} {reason}",
            self.role_name, self.function, self.action, self.resource
        )
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct DenialCount {
    count: u64,
    last_resource: String,
}

/// The principals by access key and the denials so far.
pub struct Iam {
    account_id: String,
    principals: HashMap<String, Principal>,
    /// Assumed-role sessions by access key.
    sessions: Mutex<HashMap<String, Session>>,
    /// By (function, action).
    denials: Mutex<BTreeMap<(String, String), DenialCount>>,
}

impl Iam {
    pub fn new(account_id: &str, principals: Vec<Principal>) -> Arc<Iam> {
        Arc::new(Iam {
            account_id: account_id.to_string(),
            principals: principals.into_iter().map(|p| (p.access_key_id.clone(), p)).collect(),
            sessions: Mutex::new(HashMap::new()),
            denials: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// Whether `access_key` is a function's, or a session of a role one of
    /// them assumed (its calls are checked).
    pub fn is_function_key(&self, access_key: &str) -> bool {
        self.principals.contains_key(access_key) || lock(&self.sessions).contains_key(access_key)
    }

    /// The principal behind `access_key`: a function, or an assumed-role session.
    fn principal(&self, access_key: &str) -> Option<Principal> {
        self.principals
            .get(access_key)
            .cloned()
            .or_else(|| lock(&self.sessions).get(access_key).map(|s| s.principal.clone()))
    }

    /// Records the session STS issued to the function signing with `caller_key`
    /// for `role_arn`, if the function may assume that role (else `false`).
    pub fn register_session(
        &self,
        caller_key: &str,
        role_arn: &str,
        session_key: &str,
        expires_at: std::time::SystemTime,
    ) -> bool {
        let Some(caller) = self.principals.get(caller_key) else { return false };
        let Some((_, policy)) = caller.assumable_roles.iter().find(|(arn, _)| arn == role_arn) else {
            return false;
        };
        let principal = Principal {
            function: format!("{} (session of {})", caller.function, policy.role_name),
            access_key_id: session_key.to_string(),
            policy: policy.clone(),
            assumable_roles: Vec::new(),
        };
        lock(&self.sessions).insert(session_key.to_string(), Session { principal, expires_at });
        true
    }

    /// When the session signing with `access_key` ends (`None`: not a session).
    pub fn session_expiry(&self, access_key: &str) -> Option<std::time::SystemTime> {
        lock(&self.sessions).get(access_key).map(|s| s.expires_at)
    }

    /// The access key of `function`'s instances.
    pub fn access_key_of(&self, function: &str) -> Option<&str> {
        self.principals.values().find(|p| p.function == function).map(|p| p.access_key_id.as_str())
    }

    /// Checks `calls` signed with `access_key`. Keys that are no function's
    /// (tests, the gateway, the pollers, the notification bridge) are not
    /// checked. A denial is counted and logged.
    pub fn check(&self, access_key: Option<&str>, calls: &[Call]) -> Result<(), Denied> {
        let Some(principal) = access_key.and_then(|k| self.principal(k)) else {
            return Ok(());
        };
        for call in calls {
            let decision = decide(&principal.policy.statements, &call.action, &call.resource);
            if decision != Decision::Allow {
                let denied = Denied {
                    function: principal.function.clone(),
                    role_name: principal.policy.role_name.clone(),
                    action: call.action.clone(),
                    resource: call.resource.clone(),
                    explicit: decision == Decision::ExplicitDeny,
                };
                tracing::warn!(
                    function = %denied.function,
                    action = %denied.action,
                    resource = %denied.resource,
                    "IAM: access denied ({})",
                    if denied.explicit { "explicit deny" } else { "no statement of the role allows it" }
                );
                let mut denials = lock(&self.denials);
                let count = denials.entry((denied.function.clone(), denied.action.clone())).or_default();
                count.count += 1;
                count.last_resource = denied.resource.clone();
                return Err(denied);
            }
        }
        Ok(())
    }

    /// The explicit denial of `call` by the caller's role, for fault
    /// injection; an unknown caller (an unsigned request) is named as such.
    pub fn denial(&self, access_key: Option<&str>, call: Option<&Call>, service: &str) -> Denied {
        let principal = access_key.and_then(|k| self.principal(k));
        let principal = principal.as_ref();
        Denied {
            function: principal.map_or_else(|| "anonymous".to_string(), |p| p.function.clone()),
            role_name: principal.map_or_else(|| "anonymous".to_string(), |p| p.policy.role_name.clone()),
            action: call.map_or_else(|| format!("{service}:*"), |c| c.action.clone()),
            resource: call.map_or_else(|| "*".to_string(), |c| c.resource.clone()),
            explicit: true,
        }
    }

    /// `{"total": n, "denials": [{"function", "action", "count", "lastResource"}]}`
    pub fn denials_report(&self) -> serde_json::Value {
        let denials = lock(&self.denials);
        let list: Vec<_> = denials
            .iter()
            .map(|((function, action), c)| {
                json!({"function": function, "action": action, "count": c.count, "lastResource": c.last_resource})
            })
            .collect();
        json!({"total": denials.values().map(|c| c.count).sum::<u64>(), "denials": list})
    }

    /// Forgets the denials counted so far.
    pub fn clear_denials(&self) {
        lock(&self.denials).clear();
    }
}

/// The AccessDenied error `service` answers, in its protocol.
pub fn denied_response(service: &str, method: &Method, denied: &Denied, account_id: &str) -> Response<Body> {
    let message = denied.message(account_id);
    let (status, kind, query_error) = match service {
        "s3" => (StatusCode::FORBIDDEN, "AccessDenied", None),
        "sqs" => (StatusCode::FORBIDDEN, "com.amazon.coral.service#AccessDeniedException", Some("AccessDenied;Sender")),
        "lambda" => (StatusCode::FORBIDDEN, "AccessDeniedException", None),
        "events" | "secretsmanager" => (StatusCode::BAD_REQUEST, "AccessDeniedException", None),
        _ => (StatusCode::BAD_REQUEST, "com.amazonaws.dynamodb.v20120810#AccessDeniedException", None),
    };
    AwsError { status, kind, message: &message, query_error }.response(service, method)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Effect, Patterns, Statement};

    fn allow(actions: &[&str], resources: &[&str]) -> Statement {
        Statement {
            effect: Effect::Allow,
            actions: Patterns::AnyOf(actions.iter().map(|s| s.to_string()).collect()),
            resources: Patterns::AnyOf(resources.iter().map(|s| s.to_string()).collect()),
        }
    }

    const TABLE: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/jobs";

    fn iam() -> Arc<Iam> {
        Iam::new(
            "123456789012",
            vec![Principal {
                assumable_roles: Vec::new(),
                function: "jobs-processor".into(),
                access_key_id: access_key_id(1),
                policy: RolePolicy {
                    role_name: "jobs-processor-role".into(),
                    statements: vec![allow(&["dynamodb:UpdateItem"], &[TABLE])],
                    ..Default::default()
                },
            }],
        )
    }

    #[test]
    fn only_function_keys_are_checked_and_denials_are_counted() {
        let iam = iam();
        let get = Call { action: "dynamodb:GetItem".into(), resource: TABLE.into() };
        let update = Call { action: "dynamodb:UpdateItem".into(), resource: TABLE.into() };
        assert_eq!(iam.access_key_of("jobs-processor"), Some("ASIAJOBSLOCAL0000001"));
        assert_eq!(access_key_id(1).len(), 20);
        assert!(iam.check(None, std::slice::from_ref(&get)).is_ok(), "unsigned calls are not checked");
        assert!(iam.check(Some("test"), std::slice::from_ref(&get)).is_ok(), "other keys are not checked");
        assert!(iam.check(Some(&access_key_id(1)), std::slice::from_ref(&update)).is_ok());
        let denied = iam.check(Some(&access_key_id(1)), &[update, get.clone()]).unwrap_err();
        assert_eq!(denied.action, "dynamodb:GetItem");
        assert_eq!(
            denied.message("123456789012"),
            format!(
                "User: arn:aws:sts::123456789012:assumed-role/jobs-processor-role/jobs-processor is not authorized to perform: dynamodb:GetItem on resource: {TABLE} because no identity-based policy allows the dynamodb:GetItem action"
            )
        );
        iam.check(Some(&access_key_id(1)), &[get]).unwrap_err();
        assert_eq!(
            iam.denials_report(),
            json!({"total": 2, "denials": [{"function": "jobs-processor", "action": "dynamodb:GetItem", "count": 2, "lastResource": TABLE}]})
        );
    }

    /// `check` decides with `crate::policy::decide`: its explicit and
    /// implicit denials are the evaluator's, with IAM's two messages.
    #[test]
    fn checks_decide_with_the_one_evaluator() {
        let statements = vec![
            allow(&["dynamodb:*"], &["*"]),
            Statement {
                effect: Effect::Deny,
                actions: Patterns::NoneOf(vec!["dynamodb:Get*".into(), "dynamodb:UpdateItem".into()]),
                resources: Patterns::AnyOf(vec![format!("{TABLE}*")]),
            },
        ];
        let iam = Iam::new(
            "123456789012",
            vec![Principal {
                assumable_roles: Vec::new(),
                function: "jobs-processor".into(),
                access_key_id: access_key_id(1),
                policy: RolePolicy { role_name: "r".into(), statements: statements.clone(), ..Default::default() },
            }],
        );
        let key = access_key_id(1);
        for (action, resource) in [
            ("dynamodb:GetItem", TABLE),
            ("dynamodb:UpdateItem", TABLE),
            ("dynamodb:DeleteItem", TABLE),
            ("dynamodb:DeleteItem", "arn:aws:dynamodb:eu-west-1:123456789012:table/other"),
            ("s3:GetObject", "arn:aws:s3:::b/k"),
        ] {
            let call = Call { action: action.into(), resource: resource.into() };
            let checked = iam.check(Some(&key), &[call]);
            match decide(&statements, action, resource) {
                Decision::Allow => assert!(checked.is_ok(), "{action} {resource}"),
                decision => {
                    let denied = checked.unwrap_err();
                    assert_eq!(denied.explicit, decision == Decision::ExplicitDeny, "{action} {resource}");
                }
            }
        }
        let delete = Call { action: "dynamodb:DeleteItem".into(), resource: TABLE.into() };
        let denied = iam.check(Some(&key), &[delete]).unwrap_err();
        assert_eq!(
            denied.message("123456789012"),
            format!(
                "User: arn:aws:sts::123456789012:assumed-role/r/jobs-processor is not authorized to perform: dynamodb:DeleteItem on resource: {TABLE} with an explicit deny in an identity-based policy"
            )
        );
        let read = Call { action: "s3:GetObject".into(), resource: "arn:aws:s3:::b/k".into() };
        assert!(!iam.check(Some(&key), &[read]).unwrap_err().explicit, "nothing allows s3: an implicit deny");
    }

    #[test]
    fn denials_speak_each_services_protocol() {
        let denied = Denied {
            function: "f".into(),
            role_name: "r".into(),
            action: "s3:GetObject".into(),
            resource: "arn:aws:s3:::b/k".into(),
            explicit: false,
        };
        let r = denied_response("dynamodb", &Method::POST, &denied, "123456789012");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = denied_response("sqs", &Method::POST, &denied, "123456789012");
        assert_eq!(
            (r.status(), &r.headers()["x-amzn-query-error"]),
            (StatusCode::FORBIDDEN, &"AccessDenied;Sender".parse().unwrap())
        );
        let r = denied_response("s3", &Method::GET, &denied, "123456789012");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = denied_response("lambda", &Method::POST, &denied, "123456789012");
        assert_eq!(
            (r.status(), &r.headers()["x-amzn-errortype"]),
            (StatusCode::FORBIDDEN, &"AccessDeniedException".parse().unwrap())
        );
        let r = denied_response("secretsmanager", &Method::POST, &denied, "123456789012");
        assert_eq!(
            (r.status(), &r.headers()["content-type"]),
            (StatusCode::BAD_REQUEST, &"application/x-amz-json-1.1".parse().unwrap())
        );
    }
}
