//! Terraform string templates as cdktf synthesizes them: literal text with
//! `${...}` interpolations. Only plain references are accepted (see
//! docs/contract.md); anything else is reported with the expression text.

use std::fmt;

/// One parsed template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Ref(Reference),
}

/// The reference forms the local target resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `<type>.<name>.<attribute>`
    Resource { rtype: String, name: String, attr: String },
    /// `data.<type>.<name>.<attribute>` (aws_caller_identity, aws_region,
    /// aws_partition, terraform_remote_state ... outputs.<output>)
    Data { dtype: String, name: String, attr: Vec<String> },
    /// `var.<name>`
    Var { name: String },
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Resource { rtype, name, attr } => write!(f, "{rtype}.{name}.{attr}"),
            Reference::Data { dtype, name, attr } => write!(f, "data.{dtype}.{name}.{}", attr.join(".")),
            Reference::Var { name } => write!(f, "var.{name}"),
        }
    }
}

/// Why an expression cannot be used, with the expression as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported expression `{expr}`: {reason}")]
pub struct ExprError {
    pub expr: String,
    pub reason: String,
}

impl Template {
    /// Parses `s`. `$${` is Terraform's escape for a literal `${`.
    pub fn parse(s: &str) -> Result<Template, ExprError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(pos) = rest.find("${") {
            if rest[..pos].ends_with('$') {
                // `$${` → literal `${`
                lit.push_str(&rest[..pos - 1]);
                lit.push_str("${");
                rest = &rest[pos + 2..];
                continue;
            }
            lit.push_str(&rest[..pos]);
            let body_start = pos + 2;
            let end = matching_brace(&rest[body_start..])
                .ok_or_else(|| ExprError { expr: rest[pos..].to_string(), reason: "unterminated `${`".into() })?;
            let inner = &rest[body_start..body_start + end];
            let expr_text = &rest[pos..body_start + end + 1];
            let reference =
                parse_reference(inner).map_err(|reason| ExprError { expr: expr_text.to_string(), reason })?;
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Ref(reference));
            rest = &rest[body_start + end + 1..];
        }
        // `%{` directives (Terraform template directives) are not supported either.
        if let Some(pos) = rest.find("%{")
            && !rest[..pos].ends_with('%')
        {
            return Err(ExprError {
                expr: rest[pos..].to_string(),
                reason: "template directives (`%{`) are not supported".into(),
            });
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }
}

/// Index of the `}` closing an interpolation whose body starts at `s[0]`,
/// skipping nested braces and quoted strings.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_reference(inner: &str) -> Result<Reference, String> {
    let text = inner.trim();
    if text.is_empty() {
        return Err("empty interpolation".into());
    }
    if text.contains('(') {
        return Err("function calls are not supported".into());
    }
    if text.contains('?') {
        return Err("conditional expressions are not supported".into());
    }
    if text.contains('[') || text.contains('*') {
        return Err("index and splat expressions are not supported".into());
    }
    let segments: Vec<&str> = text.split('.').collect();
    if segments.iter().any(|s| !is_ident(s)) {
        return Err("only references like `<type>.<name>.<attribute>`, `data.<type>.<name>.<attribute>` and `var.<name>` are supported".into());
    }
    match segments.as_slice() {
        ["var", name] => Ok(Reference::Var { name: name.to_string() }),
        ["data", dtype, name, attr @ ..] if !attr.is_empty() => Ok(Reference::Data {
            dtype: dtype.to_string(),
            name: name.to_string(),
            attr: attr.iter().map(|s| s.to_string()).collect(),
        }),
        [rtype, name, attr] if *rtype != "data" && *rtype != "var" && *rtype != "local" && *rtype != "terraform" => {
            Ok(Reference::Resource { rtype: rtype.to_string(), name: name.to_string(), attr: attr.to_string() })
        }
        _ => Err("only references like `<type>.<name>.<attribute>`, `data.<type>.<name>.<attribute>` and `var.<name>` are supported".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_only() {
        let t = Template::parse("jobs-queue").unwrap();
        assert_eq!(t.parts, vec![Part::Lit("jobs-queue".into())]);
        assert!(t.is_literal());
        assert!(Template::parse("").unwrap().parts.is_empty());
    }

    #[test]
    fn mixed_references() {
        let t = Template::parse(
            "https://cognito-idp.${data.aws_region.r.name}.amazonaws.com/${aws_cognito_user_pool.pool.id}",
        )
        .unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Lit("https://cognito-idp.".into()),
                Part::Ref(Reference::Data { dtype: "aws_region".into(), name: "r".into(), attr: vec!["name".into()] }),
                Part::Lit(".amazonaws.com/".into()),
                Part::Ref(Reference::Resource {
                    rtype: "aws_cognito_user_pool".into(),
                    name: "pool".into(),
                    attr: "id".into()
                }),
            ]
        );
    }

    #[test]
    fn remote_state_output_with_dashes() {
        let t = Template::parse(
            "${data.terraform_remote_state.cross-stack-reference-input-cognito.outputs.cross-stack-output-aws_cognito_user_poolpoolid}",
        )
        .unwrap();
        assert_eq!(
            t.parts,
            vec![Part::Ref(Reference::Data {
                dtype: "terraform_remote_state".into(),
                name: "cross-stack-reference-input-cognito".into(),
                attr: vec!["outputs".into(), "cross-stack-output-aws_cognito_user_poolpoolid".into()],
            })]
        );
    }

    #[test]
    fn escaped_interpolation_is_literal() {
        let t = Template::parse("a $${b} c").unwrap();
        assert_eq!(t.parts, vec![Part::Lit("a ${b} c".into())]);
    }

    #[test]
    fn rejects_functions_conditionals_and_indexes() {
        for bad in [
            "${jsonencode({a = 1})}",
            "${var.x ? \"a\" : \"b\"}",
            "${aws_sqs_queue.q[0].arn}",
            "${local.x}",
            "${aws_sqs_queue.q}",
            "${}",
            "abc ${aws_sqs_queue.q.arn",
            "%{ if true }x%{ endif }",
        ] {
            let err = Template::parse(bad).unwrap_err();
            assert!(!err.expr.is_empty(), "{bad}");
        }
        let err = Template::parse("x-${upper(var.env)}").unwrap_err();
        assert_eq!(err.expr, "${upper(var.env)}");
        assert!(err.reason.contains("function calls"));
    }

    #[test]
    fn reference_display_round_trips() {
        for s in ["aws_sqs_queue.q.arn", "data.aws_region.r.name", "var.env"] {
            let t = Template::parse(&format!("${{{s}}}")).unwrap();
            match &t.parts[0] {
                Part::Ref(r) => assert_eq!(r.to_string(), s),
                other => panic!("{other:?}"),
            }
        }
    }
}
