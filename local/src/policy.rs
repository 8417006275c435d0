//! Evaluation of the IAM policy a Lambda (TOKEN) authorizer returns, the way
//! API Gateway does for `execute-api:Invoke` on the method ARN.

use serde_json::{Map, Value};

/// A well-formed authorizer answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizerResult {
    pub principal_id: String,
    pub policy: Value,
    /// The `context` map; values are strings, numbers or booleans.
    pub context: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid authorizer response: {0}")]
pub struct InvalidResponse(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No Allow statement matched.
    ImplicitDeny,
    /// A Deny statement matched (it wins over any Allow).
    ExplicitDeny,
}

impl AuthorizerResult {
    /// Validates the authorizer's JSON answer as API Gateway does: a
    /// `principalId`, a `policyDocument` with statements, and a `context` of
    /// primitive values only.
    pub fn from_json(v: &Value) -> Result<AuthorizerResult, InvalidResponse> {
        let obj = v.as_object().ok_or_else(|| InvalidResponse("not a JSON object".into()))?;
        let principal_id = match obj.get("principalId") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(InvalidResponse("`principalId` is missing".into())),
        };
        let policy =
            obj.get("policyDocument").cloned().ok_or_else(|| InvalidResponse("`policyDocument` is missing".into()))?;
        statements(&policy)?;
        let context = match obj.get("context") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => {
                if let Some((k, _)) = m.iter().find(|(_, v)| v.is_object() || v.is_array()) {
                    return Err(InvalidResponse(format!("context value `{k}` is not a string, number or boolean")));
                }
                m.clone()
            }
            Some(_) => return Err(InvalidResponse("`context` is not an object".into())),
        };
        Ok(AuthorizerResult { principal_id, policy, context })
    }

    pub fn decide(&self, method_arn: &str) -> Decision {
        // from_json validated the statements.
        evaluate(&self.policy, method_arn).unwrap_or(Decision::ImplicitDeny)
    }
}

fn statements(policy: &Value) -> Result<Vec<&Map<String, Value>>, InvalidResponse> {
    let st = policy.get("Statement").ok_or_else(|| InvalidResponse("`policyDocument.Statement` is missing".into()))?;
    let list: Vec<&Value> = match st {
        Value::Array(a) => a.iter().collect(),
        obj @ Value::Object(_) => vec![obj],
        _ => return Err(InvalidResponse("`policyDocument.Statement` is not a list".into())),
    };
    list.into_iter()
        .map(|s| {
            let m = s.as_object().ok_or_else(|| InvalidResponse("a statement is not an object".into()))?;
            for unsupported in ["NotAction", "NotResource", "Condition"] {
                if m.contains_key(unsupported) {
                    return Err(InvalidResponse(format!(
                        "`{unsupported}` in a statement is not supported by the local target"
                    )));
                }
            }
            match m.get("Effect").and_then(Value::as_str) {
                Some("Allow" | "Deny") => {}
                _ => return Err(InvalidResponse("a statement's `Effect` is not Allow or Deny".into())),
            }
            if !m.contains_key("Action") || !m.contains_key("Resource") {
                return Err(InvalidResponse("a statement lacks `Action` or `Resource`".into()));
            }
            Ok(m)
        })
        .collect()
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Decides `execute-api:Invoke` on `method_arn` under `policy`.
pub fn evaluate(policy: &Value, method_arn: &str) -> Result<Decision, InvalidResponse> {
    let mut allowed = false;
    for st in statements(policy)? {
        let action =
            strings(st.get("Action")).iter().any(|a| wildcard_match(&a.to_ascii_lowercase(), "execute-api:invoke"));
        let resource = strings(st.get("Resource")).iter().any(|r| wildcard_match(r, method_arn));
        if action && resource {
            match st.get("Effect").and_then(Value::as_str) {
                Some("Deny") => return Ok(Decision::ExplicitDeny),
                _ => allowed = true,
            }
        }
    }
    Ok(if allowed { Decision::Allow } else { Decision::ImplicitDeny })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    fn policy(statements: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": statements})
    }

    #[test]
    fn allow_deny_and_implicit_deny() {
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

        for bad in [
            json!("Allow"),
            json!({"policyDocument": policy(json!([]))}),
            json!({"principalId": "p"}),
            json!({"principalId": "p", "policyDocument": {"Version": "2012-10-17"}}),
            json!({"principalId": "p", "policyDocument": policy(json!([{"Effect": "Maybe", "Action": "*", "Resource": "*"}]))}),
            json!({"principalId": "p", "policyDocument": policy(json!([{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}]))}),
            json!({"principalId": "p", "policyDocument": policy(json!([])), "context": {"nested": {"a": 1}}}),
        ] {
            assert!(AuthorizerResult::from_json(&bad).is_err(), "{bad}");
        }
    }
}
