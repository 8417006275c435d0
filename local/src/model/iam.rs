//! A function's role policies (what IAM enforces, `crate::iam`, with the
//! evaluator of `crate::policy`), read from the stack: the role its `role`
//! names, that role's `inline_policy` blocks and `managed_policy_arns`, the
//! `aws_iam_role_policy` and `aws_iam_role_policy_attachment` resources on
//! it, and the `aws_iam_policy` documents those attach.
//!
//! Only statements that grant or deny actions of an enforced service (sqs,
//! dynamodb, s3, lambda, sts, events, secretsmanager) have their resources
//! resolved; the others (logs,
//! xray, kms) are listed as not enforced, so their references need not be
//! computable locally.

use serde_json::Value;

use crate::policy::{Effect, Patterns, Statement, wildcard_match};
use crate::stack::{FieldError, Res};

/// The services whose calls are checked: the functions reach them only
/// through the proxies and the Lambda service.
pub const ENFORCED_SERVICES: [&str; 8] =
    ["sqs", "dynamodb", "s3", "lambda", "sts", "events", "secretsmanager", "execute-api"];

/// Everything a function's role allows or denies, from all of its policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolePolicy {
    pub role_name: String,
    /// The statements that grant or deny actions of an enforced service,
    /// their resources resolved to local ARNs.
    pub statements: Vec<Statement>,
    /// Actions of statements that only concern services nothing local
    /// enforces (logs, xray, kms, ...), for the startup summary.
    pub not_enforced: Vec<String>,
    /// AWS-managed policies attached to the role that grant nothing enforced
    /// (AWSLambdaBasicExecutionRole, ...).
    pub ignored_managed_policies: Vec<String>,
}

/// The role ARNs a policy allows to assume by name (`sts:AssumeRole` on
/// resources without wildcards).
pub fn assumable_role_arns(policy: &RolePolicy) -> Vec<String> {
    let mut arns = Vec::new();
    for s in &policy.statements {
        if let (Effect::Allow, Patterns::AnyOf(resources)) = (s.effect, &s.resources)
            && s.actions.matches("sts:AssumeRole", true)
        {
            arns.extend(resources.iter().filter(|r| r.starts_with("arn:") && !r.contains(['*', '?'])).cloned());
        }
    }
    arns.sort();
    arns.dedup();
    arns
}

/// AWS-managed policies the local target knows, with the enforced actions
/// they allow on every resource (none: they only concern logs, X-Ray or
/// networking, which nothing local enforces).
const KNOWN_MANAGED_POLICIES: [(&str, &[&str]); 5] = [
    ("arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole", &[]),
    ("arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess", &[]),
    ("arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess", &[]),
    ("arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole", &[]),
    (
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
        &["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
    ),
];

/// The roles of `stack` that machine clients assume: those whose policies
/// grant `execute-api:Invoke` (AWS_IAM methods), as (name, ARN, policies).
pub fn machine_client_roles(
    r: &crate::stack::Resolver<'_>,
    stack: &crate::stack::Stack,
) -> Result<Vec<(String, String, RolePolicy)>, FieldError> {
    let mut roles = Vec::new();
    let attached: Vec<String> = stack
        .resources("aws_iam_role_policy")
        .filter(|(_, body)| body.to_string().contains("execute-api:"))
        .map(|(_, body)| body.get("role").map(Value::to_string).unwrap_or_default())
        .collect();
    for (name, body) in stack.resources("aws_iam_role") {
        let reference = format!("aws_iam_role.{name}.");
        let mentions = body.get("inline_policy").is_some_and(|p| p.to_string().contains("execute-api:"))
            || attached.iter().any(|role| role.contains(&reference));
        if !mentions || body.get("name").is_none() {
            continue;
        }
        let res = r.res(stack, "aws_iam_role", name, body);
        let role_name = res.str("name")?;
        let arn = format!("arn:aws:iam::{}:role/{role_name}", r.account_id);
        let policy = role_policy_of(&res, "name", &arn)?;
        if policy.statements.iter().any(|s| s.effect == Effect::Allow && s.actions.matches("execute-api:Invoke", true))
        {
            roles.push((role_name, arn, policy));
        }
    }
    Ok(roles)
}

/// The policies of the role `function` (an `aws_lambda_function`) runs as.
pub fn role_policy(function: &Res<'_>) -> Result<RolePolicy, FieldError> {
    let role_arn = function.str("role")?;
    role_policy_of(function, "role", &role_arn)
}

/// The policies of the role `role_arn` of the stack; errors name `field` of
/// `referrer` (the resource that names the role).
pub fn role_policy_of(referrer: &Res<'_>, field: &str, role_arn: &str) -> Result<RolePolicy, FieldError> {
    let function = referrer;
    let r = function.resolver;
    let stack = function.stack;
    let mut role = None;
    for (name, body) in stack.resources("aws_iam_role") {
        let res = r.res(stack, "aws_iam_role", name, body);
        if res.raw("name").is_none() {
            continue;
        }
        let role_name = res.str("name")?;
        if role_arn == format!("arn:aws:iam::{}:role/{role_name}", r.account_id) {
            role = Some((res, role_name));
            break;
        }
    }
    let Some((role, role_name)) = role else {
        return Err(function.error(
            field,
            format!(
                "`{role_arn}` is not a role of the stack with a `name`: the local target enforces a function's role policies, so it reads the role from the stack"
            ),
        ));
    };
    let mut policy = RolePolicy { role_name: role_name.clone(), ..Default::default() };
    let names_role = |v: &str| v == role_name || v == role_arn;

    for block in role.blocks("inline_policy") {
        if block.raw("policy").is_some() {
            read_document(&block, "policy", &mut policy)?;
        }
    }
    for arn in role.str_list("managed_policy_arns")? {
        attach_managed(&role, "managed_policy_arns", &arn, &mut policy)?;
    }
    for (name, body) in stack.resources("aws_iam_role_policy") {
        let res = r.res(stack, "aws_iam_role_policy", name, body);
        if names_role(&res.str("role")?) {
            read_document(&res, "policy", &mut policy)?;
        }
    }
    for (name, body) in stack.resources("aws_iam_role_policy_attachment") {
        let res = r.res(stack, "aws_iam_role_policy_attachment", name, body);
        if names_role(&res.str("role")?) {
            let arn = res.str("policy_arn")?;
            attach_managed(&res, "policy_arn", &arn, &mut policy)?;
        }
    }
    Ok(policy)
}

/// A managed policy: an `aws_iam_policy` of the stack, or a known AWS one.
fn attach_managed(res: &Res<'_>, field: &str, arn: &str, policy: &mut RolePolicy) -> Result<(), FieldError> {
    let r = res.resolver;
    for (name, body) in res.stack.resources("aws_iam_policy") {
        let p = r.res(res.stack, "aws_iam_policy", name, body);
        if p.raw("name").is_some() && arn == format!("arn:aws:iam::{}:policy/{}", r.account_id, p.str("name")?) {
            return read_document(&p, "policy", policy);
        }
    }
    match KNOWN_MANAGED_POLICIES.iter().find(|(known, _)| *known == arn) {
        Some((_, [])) => {
            policy.ignored_managed_policies.push(arn.rsplit('/').next().unwrap_or(arn).to_string());
            Ok(())
        }
        Some((_, actions)) => {
            policy.statements.push(Statement {
                effect: Effect::Allow,
                actions: Patterns::AnyOf(actions.iter().map(|a| a.to_string()).collect()),
                resources: Patterns::AnyOf(vec!["*".into()]),
            });
            Ok(())
        }
        None => Err(res.error(
            field,
            format!(
                "managed policy `{arn}` is neither an `aws_iam_policy` of the stack nor one the local target knows ({}): its statements cannot be enforced",
                KNOWN_MANAGED_POLICIES.map(|(a, _)| a.rsplit('/').next().unwrap_or(a)).join(", ")
            ),
        )),
    }
}

/// Whether an action pattern can match an action of an enforced service.
fn grants_enforced(pattern: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    ENFORCED_SERVICES.iter().any(|s| match p.split_once(':') {
        Some((service, _)) => wildcard_match(service, s),
        None => wildcard_match(&p, &format!("{s}:")),
    })
}

/// Reads one policy document (a JSON string whose values may hold `${...}`
/// references) into `policy`.
fn read_document(res: &Res<'_>, field: &str, policy: &mut RolePolicy) -> Result<(), FieldError> {
    let doc = parse_document(res, field)?;
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => return Err(res.error(field, "the policy document has no `Statement` list")),
    };
    for (i, st) in statements.into_iter().enumerate() {
        let at = format!("{field}.Statement[{i}]");
        let st = st.as_object().ok_or_else(|| res.error(&at, "is not an object"))?;
        read_statement(&StatementFields { res, at, st }, policy)?;
    }
    Ok(())
}

/// The document as JSON, parsed before resolving, so that only the
/// statements that are enforced need their references to be computable.
fn parse_document(res: &Res<'_>, field: &str) -> Result<Value, FieldError> {
    Ok(match res.raw(field) {
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(doc) => doc,
            Err(_) => {
                let resolved = res.str(field)?;
                serde_json::from_str(&resolved)
                    .map_err(|e| res.error(field, format!("not a JSON policy document ({e})")))?
            }
        },
        Some(doc @ Value::Object(_)) => doc.clone(),
        _ => return Err(res.error(field, "expected a JSON policy document")),
    })
}

/// One statement of a document: its resource, where it is
/// (`policy.Statement[0]`) and its fields.
struct StatementFields<'s> {
    res: &'s Res<'s>,
    at: String,
    st: &'s serde_json::Map<String, Value>,
}

impl StatementFields<'_> {
    /// A string or a list of strings, references resolved; `None` if absent.
    fn strings(&self, key: &str) -> Result<Option<Vec<String>>, FieldError> {
        let (res, at) = (self.res, &self.at);
        let list = match self.st.get(key) {
            None => return Ok(None),
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().ok_or_else(|| res.error(&format!("{at}.{key}"), "expected strings")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(res.error(&format!("{at}.{key}"), "expected a string or a list of strings")),
        };
        list.into_iter()
            .enumerate()
            .map(
                |(j, s)| if s.contains("${") { res.resolve(&format!("{at}.{key}[{j}]"), s) } else { Ok(s.to_string()) },
            )
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// `a` as [`Patterns::AnyOf`] or `not_a` as [`Patterns::NoneOf`]:
    /// exactly one of them.
    fn one_of(&self, a: &str, not_a: &str) -> Result<Patterns, FieldError> {
        match (self.strings(a)?, self.strings(not_a)?) {
            (Some(list), None) => Ok(Patterns::AnyOf(list)),
            (None, Some(list)) => Ok(Patterns::NoneOf(list)),
            _ => Err(self.res.error(&self.at, format!("needs exactly one of `{a}` and `{not_a}`"))),
        }
    }
}

/// Adds one statement to `policy`: to its statements if it is about an
/// enforced service, else its actions to those not enforced.
fn read_statement(fields: &StatementFields<'_>, policy: &mut RolePolicy) -> Result<(), FieldError> {
    let (res, at, st) = (fields.res, &fields.at, fields.st);
    let effect = match st.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err(res.error(&format!("{at}.Effect"), "must be Allow or Deny")),
    };
    // Actions are literals in practice: resolve them only if they must be.
    let actions = match (st.get("Action"), st.get("NotAction")) {
        (Some(_), None) | (None, Some(_)) => fields.one_of("Action", "NotAction")?,
        _ => return Err(res.error(at, "needs exactly one of `Action` and `NotAction`")),
    };
    let enforced = match &actions {
        Patterns::AnyOf(list) => list.iter().any(|a| grants_enforced(a)),
        Patterns::NoneOf(_) => true,
    };
    if !enforced {
        if let Patterns::AnyOf(list) = actions {
            policy.not_enforced.extend(list);
        }
        return Ok(());
    }
    if st.contains_key("Condition") {
        return Err(res.error(
            &format!("{at}.Condition"),
            "conditions on statements about sqs, dynamodb, s3 or lambda actions are not supported by the local target (it cannot evaluate them)",
        ));
    }
    let resources = fields.one_of("Resource", "NotResource")?;
    policy.statements.push(Statement { effect, actions, resources });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_action_patterns_are_enforced() {
        for enforced in [
            "sqs:SendMessage",
            "DynamoDB:GetItem",
            "s3:*",
            "lambda:Invoke*",
            "*",
            "s?:GetObject",
            "dynamo*:Query",
            "secretsmanager:GetSecretValue",
        ] {
            assert!(grants_enforced(enforced), "{enforced}");
        }
        for not in ["logs:PutLogEvents", "xray:PutTraceSegments", "kms:Decrypt", "sns:Publish", "cognito-idp:*"] {
            assert!(!grants_enforced(not), "{not}");
        }
    }
}
