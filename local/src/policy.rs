//! IAM policy evaluation, the one evaluator of the local target: the
//! identity policies of the functions' roles (`crate::model::iam` reads
//! them, `crate::iam` checks the functions' calls with them) and the policy
//! a Lambda (TOKEN) authorizer returns, which the API gateway evaluates for
//! `execute-api:Invoke` on the method ARN as API Gateway does
//! ([`AuthorizerResult`]).
//!
//! [`decide`] is IAM's evaluation: an explicit Deny wins, else an Allow is
//! needed, else the request is implicitly denied.

use aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerResponse;
use aws_lambda_events::event::iam::IamPolicyEffect;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// `Action`/`Resource` (any pattern matches) or `NotAction`/`NotResource`
/// (no pattern matches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patterns {
    AnyOf(Vec<String>),
    NoneOf(Vec<String>),
}

impl Patterns {
    pub fn matches(&self, value: &str, case_insensitive: bool) -> bool {
        let hit = |list: &[String]| {
            list.iter().any(|p| {
                if case_insensitive {
                    wildcard_match(&p.to_ascii_lowercase(), &value.to_ascii_lowercase())
                } else {
                    wildcard_match(p, value)
                }
            })
        };
        match self {
            Patterns::AnyOf(list) => hit(list),
            Patterns::NoneOf(list) => !hit(list),
        }
    }
}

/// One statement of a policy: its effect on the actions and resources its
/// patterns match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub effect: Effect,
    pub actions: Patterns,
    pub resources: Patterns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No statement allows it.
    ImplicitDeny,
    /// A Deny statement matches (it wins over any Allow).
    ExplicitDeny,
}

/// IAM's evaluation of `action` on `resource` under `statements`: an
/// explicit Deny wins, else an Allow is needed. Actions compare
/// case-insensitively, resources (ARNs) exactly; both may hold the
/// wildcards `*` and `?`.
pub fn decide(statements: &[Statement], action: &str, resource: &str) -> Decision {
    let mut allowed = false;
    for s in statements {
        if s.actions.matches(action, true) && s.resources.matches(resource, false) {
            match s.effect {
                Effect::Deny => return Decision::ExplicitDeny,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed { Decision::Allow } else { Decision::ImplicitDeny }
}

/// IAM-style matching: `*` any run of characters, `?` exactly one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The action an authorizer's policy is evaluated for.
pub const EXECUTE_API_INVOKE: &str = "execute-api:Invoke";

/// A well-formed authorizer answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizerResult {
    pub principal_id: String,
    /// The statements of its `policyDocument`.
    pub statements: Vec<Statement>,
    /// The `context` map; values are strings, numbers or booleans.
    pub context: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid authorizer response: {0}")]
pub struct InvalidResponse(pub String);

impl AuthorizerResult {
    /// Reads the authorizer's answer as the
    /// `ApiGatewayCustomAuthorizerResponse` it serialized (aws_lambda_events,
    /// the type the authorizer returns), after API Gateway's own checks and
    /// leniency ([`as_api_gateway_reads_it`]): a `principalId`, a
    /// `policyDocument` with statements, and a `context` of primitive values.
    pub fn from_json(v: &Value) -> Result<AuthorizerResult, InvalidResponse> {
        let mut answer = v.clone();
        as_api_gateway_reads_it(&mut answer)?;
        let answer: ApiGatewayCustomAuthorizerResponse<Map<String, Value>> =
            serde_json::from_value(answer).map_err(|e| InvalidResponse(format!("not an authorizer response: {e}")))?;
        let principal_id = answer.principal_id.ok_or_else(|| InvalidResponse("`principalId` is missing".into()))?;
        let statements = answer
            .policy_document
            .statement
            .into_iter()
            .map(|s| {
                let effect = match s.effect {
                    IamPolicyEffect::Allow => Effect::Allow,
                    IamPolicyEffect::Deny => Effect::Deny,
                    _ => return Err(InvalidResponse("a statement's `Effect` is not Allow or Deny".into())),
                };
                Ok(Statement { effect, actions: Patterns::AnyOf(s.action), resources: Patterns::AnyOf(s.resource) })
            })
            .collect::<Result<_, _>>()?;
        Ok(AuthorizerResult { principal_id, statements, context: answer.context })
    }

    /// Decides `execute-api:Invoke` on `method_arn` under its policy.
    pub fn decide(&self, method_arn: &str) -> Decision {
        decide(&self.statements, EXECUTE_API_INVOKE, method_arn)
    }
}

/// API Gateway's checks of an authorizer's answer that its type does not
/// make, and its leniency where the type is stricter: a numeric
/// `principalId` (its text), one statement not in a list, and in `Action`
/// and `Resource` values that are no strings (they match nothing).
/// `NotAction`, `NotResource` and `Condition` are refused (the local target
/// has not supported them in authorizer policies).
fn as_api_gateway_reads_it(answer: &mut Value) -> Result<(), InvalidResponse> {
    let invalid = |m: &str| InvalidResponse(m.to_string());
    let obj = answer.as_object_mut().ok_or_else(|| invalid("not a JSON object"))?;
    match obj.get("principalId") {
        Some(Value::String(_)) => {}
        Some(Value::Number(n)) => {
            let text = n.to_string();
            obj.insert("principalId".into(), Value::String(text));
        }
        _ => return Err(invalid("`principalId` is missing")),
    }
    let policy = obj.get_mut("policyDocument").ok_or_else(|| invalid("`policyDocument` is missing"))?;
    let policy = policy.as_object_mut().ok_or_else(|| invalid("`policyDocument` is not an object"))?;
    if !policy.get("Version").is_none_or(Value::is_string) {
        policy.remove("Version");
    }
    let listed = match policy.remove("Statement") {
        Some(Value::Array(list)) => list,
        Some(one @ Value::Object(_)) => vec![one],
        Some(_) => return Err(invalid("`policyDocument.Statement` is not a list")),
        None => return Err(invalid("`policyDocument.Statement` is missing")),
    };
    let statements = listed.into_iter().map(statement_as_api_gateway_reads_it).collect::<Result<_, _>>()?;
    policy.insert("Statement".into(), Value::Array(statements));
    match obj.get("context") {
        None => {}
        Some(Value::Null) => {
            obj.remove("context");
        }
        Some(Value::Object(m)) => {
            if let Some((k, _)) = m.iter().find(|(_, v)| v.is_object() || v.is_array()) {
                return Err(InvalidResponse(format!("context value `{k}` is not a string, number or boolean")));
            }
        }
        Some(_) => return Err(invalid("`context` is not an object")),
    }
    Ok(())
}

/// One statement of an authorizer's policy (see [`as_api_gateway_reads_it`]).
fn statement_as_api_gateway_reads_it(statement: Value) -> Result<Value, InvalidResponse> {
    let Value::Object(mut m) = statement else {
        return Err(InvalidResponse("a statement is not an object".into()));
    };
    for unsupported in ["NotAction", "NotResource", "Condition"] {
        if m.contains_key(unsupported) {
            return Err(InvalidResponse(format!(
                "`{unsupported}` in a statement is not supported by the local target"
            )));
        }
    }
    if !matches!(m.get("Effect").and_then(Value::as_str), Some("Allow" | "Deny")) {
        return Err(InvalidResponse("a statement's `Effect` is not Allow or Deny".into()));
    }
    for key in ["Action", "Resource"] {
        let strings: Vec<Value> = match m.get(key) {
            None => return Err(InvalidResponse("a statement lacks `Action` or `Resource`".into())),
            Some(Value::String(s)) => vec![Value::String(s.clone())],
            Some(Value::Array(a)) => a.iter().filter(|v| v.is_string()).cloned().collect(),
            Some(_) => Vec::new(),
        };
        m.insert(key.into(), Value::Array(strings));
    }
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `execute-api:Invoke` on `method_arn` under an authorizer's policy document.
    fn evaluate(policy: &Value, method_arn: &str) -> Result<Decision, InvalidResponse> {
        let answer = json!({"principalId": "user-1", "policyDocument": policy});
        Ok(AuthorizerResult::from_json(&answer)?.decide(method_arn))
    }

    fn statement(effect: Effect, actions: &[&str], resources: &[&str]) -> Statement {
        Statement {
            effect,
            actions: Patterns::AnyOf(actions.iter().map(|s| s.to_string()).collect()),
            resources: Patterns::AnyOf(resources.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn allow(actions: &[&str], resources: &[&str]) -> Statement {
        statement(Effect::Allow, actions, resources)
    }

    const TABLE: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/jobs";
    const ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/job-status/42";

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("arn:aws:execute-api:*:*:abc123/prod/GET/job-status/*", ARN));
        assert!(!wildcard_match("arn:aws:execute-api:*:*:abc123/prod/POST/*", ARN));
        assert!(wildcard_match("*/GET/*", ARN));
        assert!(!wildcard_match("abc", "abcd"));
        assert!(wildcard_match("a**", "a"));
    }

    #[test]
    fn an_allow_must_match_action_and_resource_else_the_deny_is_implicit() {
        let policy = [allow(&["dynamodb:UpdateItem"], &[TABLE])];
        assert_eq!(decide(&policy, "dynamodb:UpdateItem", TABLE), Decision::Allow);
        assert_eq!(decide(&policy, "dynamodb:GetItem", TABLE), Decision::ImplicitDeny);
        assert_eq!(decide(&policy, "dynamodb:UpdateItem", &format!("{TABLE}-other")), Decision::ImplicitDeny);
        assert_eq!(decide(&policy, "dynamodb:UpdateItem", &format!("{TABLE}/index/by-owner")), Decision::ImplicitDeny);
        assert_eq!(decide(&[], "dynamodb:UpdateItem", TABLE), Decision::ImplicitDeny);
    }

    #[test]
    fn actions_are_case_insensitive_globs_and_resources_exact_globs() {
        let policy = [allow(&["DynamoDB:get*", "s3:???Object"], &[TABLE, "arn:aws:s3:::results/results/*"])];
        assert_eq!(decide(&policy, "dynamodb:GetItem", TABLE), Decision::Allow);
        assert_eq!(decide(&policy, "dynamodb:getitem", TABLE), Decision::Allow);
        assert_eq!(decide(&policy, "s3:GetObject", "arn:aws:s3:::results/results/a/b.json"), Decision::Allow);
        assert_eq!(decide(&policy, "s3:PutObject", "arn:aws:s3:::results/results/a"), Decision::Allow);
        assert_eq!(decide(&policy, "s3:DeleteObject", "arn:aws:s3:::results/results/a"), Decision::ImplicitDeny);
        assert_eq!(decide(&policy, "s3:GetObject", "arn:aws:s3:::results/other/a"), Decision::ImplicitDeny);
        assert_eq!(decide(&policy, "s3:GetObject", "arn:aws:s3:::RESULTS/results/a"), Decision::ImplicitDeny);
        assert_eq!(decide(&[allow(&["*"], &["*"])], "lambda:InvokeFunction", "arn:x"), Decision::Allow);
    }

    #[test]
    fn an_explicit_deny_wins_in_any_order() {
        let deny = statement(Effect::Deny, &["dynamodb:DeleteItem"], &["*"]);
        let policy = [allow(&["dynamodb:*"], &[TABLE]), deny.clone()];
        assert_eq!(decide(&policy, "dynamodb:PutItem", TABLE), Decision::Allow);
        assert_eq!(decide(&policy, "dynamodb:DeleteItem", TABLE), Decision::ExplicitDeny);
        let policy = [deny, allow(&["dynamodb:*"], &[TABLE])];
        assert_eq!(decide(&policy, "dynamodb:DeleteItem", TABLE), Decision::ExplicitDeny);
        // A Deny alone that matches: explicit; one that does not: implicit.
        let only_deny = [statement(Effect::Deny, &["s3:*"], &["*"])];
        assert_eq!(decide(&only_deny, "s3:GetObject", "arn:aws:s3:::b/k"), Decision::ExplicitDeny);
        assert_eq!(decide(&only_deny, "sqs:SendMessage", "arn:x"), Decision::ImplicitDeny);
    }

    #[test]
    fn not_action_and_not_resource_invert() {
        let not = Statement {
            effect: Effect::Allow,
            actions: Patterns::NoneOf(vec!["s3:Delete*".into()]),
            resources: Patterns::NoneOf(vec!["arn:aws:s3:::private/*".into()]),
        };
        assert_eq!(decide(std::slice::from_ref(&not), "s3:GetObject", "arn:aws:s3:::b/k"), Decision::Allow);
        assert_eq!(decide(std::slice::from_ref(&not), "s3:DeleteObject", "arn:aws:s3:::b/k"), Decision::ImplicitDeny);
        assert_eq!(decide(std::slice::from_ref(&not), "S3:deleteobject", "arn:aws:s3:::b/k"), Decision::ImplicitDeny);
        assert_eq!(
            decide(std::slice::from_ref(&not), "s3:GetObject", "arn:aws:s3:::private/k"),
            Decision::ImplicitDeny
        );
        // Deny everything but reads: a NotAction Deny wins over the Allow.
        let deny_all_but_reads = Statement {
            effect: Effect::Deny,
            actions: Patterns::NoneOf(vec!["dynamodb:Get*".into(), "dynamodb:Query".into()]),
            resources: Patterns::AnyOf(vec!["*".into()]),
        };
        let policy = [allow(&["dynamodb:*"], &["*"]), deny_all_but_reads];
        assert_eq!(decide(&policy, "dynamodb:GetItem", TABLE), Decision::Allow);
        assert_eq!(decide(&policy, "dynamodb:Query", TABLE), Decision::Allow);
        assert_eq!(decide(&policy, "dynamodb:PutItem", TABLE), Decision::ExplicitDeny);
    }

    fn policy(statements: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": statements})
    }

    #[test]
    fn authorizer_policies_allow_deny_and_implicit_deny() {
        let allow = policy(
            json!([{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": ["arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/job-status/*"]}]),
        );
        assert_eq!(evaluate(&allow, ARN).unwrap(), Decision::Allow);
        assert_eq!(evaluate(&allow, &ARN.replace("GET", "POST")).unwrap(), Decision::ImplicitDeny);

        let deny_wins = policy(json!([
            {"Effect": "Allow", "Action": "execute-api:*", "Resource": "*"},
            {"Effect": "Deny", "Action": ["execute-api:Invoke"], "Resource": "*/GET/*"}
        ]));
        assert_eq!(evaluate(&deny_wins, ARN).unwrap(), Decision::ExplicitDeny);

        let other_action = policy(json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}));
        assert_eq!(evaluate(&other_action, ARN).unwrap(), Decision::ImplicitDeny);

        let lowercase_action = policy(json!({"Effect": "Allow", "Action": "EXECUTE-API:invoke", "Resource": "*"}));
        assert_eq!(evaluate(&lowercase_action, ARN).unwrap(), Decision::Allow);

        let resource_case = policy(json!({"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*/get/*"}));
        assert_eq!(evaluate(&resource_case, ARN).unwrap(), Decision::ImplicitDeny, "ARNs compare exactly");
    }

    #[test]
    fn an_authorizer_policy_is_statements_for_the_one_evaluator() {
        let answer = json!({
            "principalId": "user-1",
            "policyDocument": policy(json!([
                {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": ["*/GET/*", 7]},
                {"Effect": "Deny", "Action": ["execute-api:*"], "Resource": "*/GET/job-status/42"}
            ]))
        });
        let r = AuthorizerResult::from_json(&answer).unwrap();
        assert_eq!(
            r.statements,
            vec![
                statement(Effect::Allow, &["execute-api:Invoke"], &["*/GET/*"]),
                statement(Effect::Deny, &["execute-api:*"], &["*/GET/job-status/42"]),
            ],
            "a value that is no string matches nothing, as before"
        );
        for arn in [ARN.to_string(), ARN.replace("42", "43"), ARN.replace("GET", "POST")] {
            assert_eq!(r.decide(&arn), decide(&r.statements, "execute-api:Invoke", &arn), "{arn}");
        }
        assert_eq!(r.decide(ARN), Decision::ExplicitDeny);
        assert_eq!(r.decide(&ARN.replace("42", "43")), Decision::Allow);
        assert_eq!(r.decide(&ARN.replace("GET", "POST")), Decision::ImplicitDeny);
    }

    #[test]
    fn validates_authorizer_responses() {
        let ok = json!({
            "principalId": "user-1",
            "policyDocument": policy(json!([{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}])),
            "context": {"email": "a@b.c", "n": 1, "b": true}
        });
        let r = AuthorizerResult::from_json(&ok).unwrap();
        assert_eq!(r.principal_id, "user-1");
        assert_eq!(r.context.len(), 3);
        assert_eq!(r.decide(ARN), Decision::Allow);

        for (bad, message) in [
            (json!("Allow"), "not a JSON object"),
            (json!({"policyDocument": policy(json!([]))}), "`principalId` is missing"),
            (json!({"principalId": "p"}), "`policyDocument` is missing"),
            (
                json!({"principalId": "p", "policyDocument": {"Version": "2012-10-17"}}),
                "`policyDocument.Statement` is missing",
            ),
            (
                json!({"principalId": "p", "policyDocument": policy(json!([{"Effect": "Maybe", "Action": "*", "Resource": "*"}]))}),
                "a statement's `Effect` is not Allow or Deny",
            ),
            (
                json!({"principalId": "p", "policyDocument": policy(json!([{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}]))}),
                "`Condition` in a statement is not supported by the local target",
            ),
            (
                json!({"principalId": "p", "policyDocument": policy(json!([{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}]))}),
                "`NotAction` in a statement is not supported by the local target",
            ),
            (
                json!({"principalId": "p", "policyDocument": policy(json!([{"Effect": "Allow", "Action": "*"}]))}),
                "a statement lacks `Action` or `Resource`",
            ),
            (
                json!({"principalId": "p", "policyDocument": policy(json!([])), "context": {"nested": {"a": 1}}}),
                "context value `nested` is not a string, number or boolean",
            ),
        ] {
            assert_eq!(
                AuthorizerResult::from_json(&bad).unwrap_err().to_string(),
                format!("invalid authorizer response: {message}"),
                "{bad}"
            );
        }
    }

    #[test]
    fn reads_the_answer_the_authorizer_function_serializes() {
        use aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerPolicy;
        use aws_lambda_events::event::iam::IamPolicyStatement;
        // Built as functions/authorizer builds it, serialized as its runtime does.
        let mut allow = IamPolicyStatement::default();
        allow.action = vec!["execute-api:Invoke".to_owned()];
        allow.effect = IamPolicyEffect::Allow;
        allow.resource = vec![ARN.to_owned()];
        let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
        policy.version = Some("2012-10-17".to_owned());
        policy.statement = vec![allow];
        let mut answer = ApiGatewayCustomAuthorizerResponse::<Value>::default();
        answer.principal_id = Some("sub-1".to_owned());
        answer.policy_document = policy;
        answer.context = json!({"sub": "sub-1", "email": "a@b.c"});
        let read = AuthorizerResult::from_json(&serde_json::to_value(&answer).unwrap()).unwrap();
        assert_eq!(read.principal_id, "sub-1");
        assert_eq!(read.statements, vec![statement(Effect::Allow, &["execute-api:Invoke"], &[ARN])]);
        assert_eq!(Value::Object(read.context.clone()), answer.context);
        assert_eq!(read.decide(ARN), Decision::Allow);
    }
}
