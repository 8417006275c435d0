//! API Gateway mapping templates (Velocity) — exactly the subset listed in
//! docs/contract.md:
//!
//! `$input.body`, `$input.json('<path>')`, `$input.path('<path>')`,
//! `$input.params('<name>')`, `#if(<reference> != "<text>") ... #end` (and
//! `==`), `$util.urlEncode(...)`, `$util.escapeJavaScript(...)`,
//! `$context.requestId`, `$context.authorizer.<key>`, `$context.identity.userArn`,
//! `$context.error.messageString`, `$context.error.validationErrorString`.
//!
//! Templates are parsed once (at startup), so an unsupported construct stops
//! the local target before it serves anything. `${...}` (Velocity's formal
//! notation) is accepted for the same references. A `$` or `#` that does not
//! start a reference or directive is literal text, as in Velocity.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (line {line}, column {column})")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("the body is not valid JSON, so `{0}` cannot be evaluated")]
    BodyNotJson(String),
}

/// A parsed mapping template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Expr(Expr),
    /// `#if(<left> == "<right>") <then> #end`, or `!=` when `equal` is false.
    If {
        left: Expr,
        equal: bool,
        right: String,
        then: Vec<Node>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Str(String),
    InputBody,
    InputJson(JsonPath),
    InputPath(JsonPath),
    /// `$input.params('<name>')`: the method request's path, query string
    /// or header parameter of that name, searched in that order.
    InputParams(String),
    UrlEncode(Box<Expr>),
    EscapeJavaScript(Box<Expr>),
    RequestId,
    Authorizer(String),
    /// `$context.identity.userArn`: the signer of an AWS_IAM method.
    UserArn,
    ErrorMessageString,
    ValidationErrorString,
}

/// What a template is evaluated against.
#[derive(Debug, Default)]
pub struct Context<'a> {
    /// `$input`: the request body (request templates) or the integration's
    /// response body (response templates).
    pub body: &'a str,
    pub request_id: &'a str,
    pub principal_id: Option<&'a str>,
    /// The authorizer's `context` map.
    pub authorizer: Option<&'a Map<String, Value>>,
    /// `$context.identity.userArn` (empty without an IAM caller, as API
    /// Gateway renders a null).
    pub user_arn: Option<&'a str>,
    /// `$context.error.message` (gateway responses); `None` renders `null`.
    pub error_message: Option<&'a str>,
    pub validation_error: Option<&'a str>,
    /// The request's parameters for `$input.params`, in API Gateway's
    /// search order: path, query string, headers (names compared without
    /// case, as HTTP header names are).
    pub params: &'a [(String, String)],
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, ParseError> {
        Parser { src, pos: 0 }.template()
    }

    /// Whether the template reads the body as JSON (`$input.json`/`$input.path`).
    pub fn reads_json(&self) -> bool {
        fn walk(e: &Expr) -> bool {
            match e {
                Expr::InputJson(_) | Expr::InputPath(_) => true,
                Expr::UrlEncode(inner) | Expr::EscapeJavaScript(inner) => walk(inner),
                _ => false,
            }
        }
        fn any(nodes: &[Node]) -> bool {
            nodes.iter().any(|n| match n {
                Node::Text(_) => false,
                Node::Expr(e) => walk(e),
                Node::If { left, then, .. } => walk(left) || any(then),
            })
        }
        any(&self.nodes)
    }

    pub fn render(&self, ctx: &Context<'_>) -> Result<String, EvalError> {
        let mut json: Option<Option<Value>> = None;
        let mut out = String::new();
        render_nodes(&self.nodes, ctx, &mut json, &mut out)?;
        Ok(out)
    }
}

fn render_nodes(
    nodes: &[Node],
    ctx: &Context<'_>,
    json: &mut Option<Option<Value>>,
    out: &mut String,
) -> Result<(), EvalError> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Expr(e) => out.push_str(&eval(e, ctx, json)?),
            Node::If { left, equal, right, then } => {
                if (eval(left, ctx, json)? == *right) == *equal {
                    render_nodes(then, ctx, json, out)?;
                }
            }
        }
    }
    Ok(())
}

fn parsed_body<'c>(ctx: &Context<'_>, cache: &'c mut Option<Option<Value>>) -> Option<&'c Value> {
    cache
        .get_or_insert_with(|| {
            if ctx.body.trim().is_empty() {
                // API Gateway treats an empty body as an empty object.
                Some(Value::Object(Map::new()))
            } else {
                serde_json::from_str(ctx.body).ok()
            }
        })
        .as_ref()
}

fn eval(e: &Expr, ctx: &Context<'_>, cache: &mut Option<Option<Value>>) -> Result<String, EvalError> {
    Ok(match e {
        Expr::Str(s) => s.clone(),
        Expr::InputBody => ctx.body.to_string(),
        Expr::InputJson(path) => {
            let body = parsed_body(ctx, cache)
                .ok_or_else(|| EvalError::BodyNotJson(format!("$input.json('{}')", path.source)))?;
            match path.select(body) {
                Some(v) => v.to_string(),
                None => String::new(),
            }
        }
        Expr::InputPath(path) => {
            let body = parsed_body(ctx, cache)
                .ok_or_else(|| EvalError::BodyNotJson(format!("$input.path('{}')", path.source)))?;
            match path.select(body) {
                Some(v) => render_value(v),
                None => String::new(),
            }
        }
        Expr::InputParams(name) => {
            ctx.params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).unwrap_or_default()
        }
        Expr::UrlEncode(inner) => url_encode(&eval(inner, ctx, cache)?),
        Expr::EscapeJavaScript(inner) => escape_javascript(&eval(inner, ctx, cache)?),
        Expr::RequestId => ctx.request_id.to_string(),
        Expr::Authorizer(key) => {
            if key == "principalId" {
                ctx.principal_id.unwrap_or_default().to_string()
            } else {
                ctx.authorizer.and_then(|m| m.get(key)).map(render_value).unwrap_or_default()
            }
        }
        Expr::UserArn => ctx.user_arn.unwrap_or_default().to_string(),
        Expr::ErrorMessageString => quoted(ctx.error_message),
        Expr::ValidationErrorString => quoted(ctx.validation_error),
    })
}

fn quoted(s: Option<&str>) -> String {
    match s {
        Some(s) => Value::String(s.to_string()).to_string(),
        None => "null".into(),
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Java's `URLEncoder.encode(s, "UTF-8")`, which `$util.urlEncode` uses.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// commons-lang's `StringEscapeUtils.escapeJavaScript`, which
/// `$util.escapeJavaScript` uses (note: it escapes `'` as `\'` and `/` as
/// `\/`, and every non-ASCII UTF-16 unit as `\uXXXX`).
pub fn escape_javascript(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for unit in s.encode_utf16() {
        match unit {
            0x08 => out.push_str("\\b"),
            0x0a => out.push_str("\\n"),
            0x09 => out.push_str("\\t"),
            0x0c => out.push_str("\\f"),
            0x0d => out.push_str("\\r"),
            u if !(0x20..=0x7f).contains(&u) => out.push_str(&format!("\\u{u:04X}")),
            0x27 => out.push_str("\\'"),
            0x22 => out.push_str("\\\""),
            0x5c => out.push_str("\\\\"),
            0x2f => out.push_str("\\/"),
            u => out.push(u as u8 as char),
        }
    }
    out
}

/// The JSONPath subset: `$`, `.name`, `['name']`, `["name"]`, `[index]`.
#[derive(Debug, Clone, PartialEq)]
struct JsonPath {
    source: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

impl JsonPath {
    fn parse(src: &str) -> Result<JsonPath, String> {
        let mut rest = src.trim().strip_prefix('$').ok_or_else(|| format!("JSONPath `{src}` must start with `$`"))?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let name = &r[..end];
                if name.is_empty()
                    || name == "*"
                    || !name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$')
                {
                    return Err(format!("JSONPath `{src}`: unsupported segment `.{name}`"));
                }
                steps.push(Step::Key(name.to_string()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| format!("JSONPath `{src}`: unterminated `[`"))?;
                let inner = r[..end].trim();
                if let Some(q) = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    steps.push(Step::Key(q.to_string()));
                } else if let Ok(i) = inner.parse::<usize>() {
                    steps.push(Step::Index(i));
                } else {
                    return Err(format!("JSONPath `{src}`: unsupported selector `[{inner}]` (only names and indexes)"));
                }
                rest = &r[end + 1..];
            } else {
                return Err(format!("JSONPath `{src}`: unexpected `{rest}`"));
            }
        }
        Ok(JsonPath { source: src.to_string(), steps })
    }

    fn select<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.steps.iter().try_fold(root, |v, step| match step {
            Step::Key(k) => v.get(k.as_str()),
            Step::Index(i) => v.get(*i),
        })
    }
}

struct Parser<'s> {
    src: &'s str,
    pos: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

impl<'s> Parser<'s> {
    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn error_at(&self, pos: usize, reason: impl Into<String>) -> ParseError {
        let before = &self.src[..pos.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        ParseError { line, column, reason: reason.into() }
    }

    fn template(mut self) -> Result<Template, ParseError> {
        let nodes = self.nodes(false)?;
        Ok(Template { nodes })
    }

    /// Nodes up to the end of the template, or, inside an `#if`, up to and
    /// including its `#end`.
    fn nodes(&mut self, in_if: bool) -> Result<Vec<Node>, ParseError> {
        let mut nodes = Vec::new();
        let mut text = String::new();
        let opened = self.pos;
        while let Some(c) = self.peek() {
            let next = self.peek2();
            let starts_ref = c == '$' && matches!(next, Some(n) if is_ident_start(n) || n == '{' || n == '!');
            let starts_directive =
                c == '#' && matches!(next, Some(n) if n.is_ascii_alphabetic() || n == '{' || n == '#' || n == '*');
            if starts_directive {
                if !text.is_empty() {
                    nodes.push(Node::Text(std::mem::take(&mut text)));
                }
                let start = self.pos;
                if self.rest().starts_with("#if(") {
                    self.pos += "#if(".len();
                    nodes.push(self.if_directive(start)?);
                    continue;
                }
                if in_if && self.rest().starts_with("#end") {
                    self.pos += "#end".len();
                    return Ok(nodes);
                }
                let word: String =
                    self.rest().chars().take_while(|c| !c.is_whitespace() && *c != '(').take(20).collect();
                return Err(self.error_at(start, format!("unsupported VTL construct `{word}` (directives other than `#if(... == \"...\") ... #end`, comments and macros are outside the supported subset)")));
            }
            if starts_ref {
                if !text.is_empty() {
                    nodes.push(Node::Text(std::mem::take(&mut text)));
                }
                nodes.push(Node::Expr(self.reference()?));
            } else {
                text.push(c);
                self.pos += c.len_utf8();
            }
        }
        if in_if {
            return Err(self.error_at(opened, "`#if` without its `#end`"));
        }
        if !text.is_empty() {
            nodes.push(Node::Text(text));
        }
        Ok(nodes)
    }

    /// After `#if(`: `<reference> == "<text>")` or `!=`, then the body.
    fn if_directive(&mut self, start: usize) -> Result<Node, ParseError> {
        let expected = || "expected `#if(<reference> == \"<text>\")` or `!=`";
        self.skip_ws();
        if self.peek() != Some('$') {
            return Err(self.error_at(start, expected()));
        }
        let left = self.reference()?;
        self.skip_ws();
        let equal = if self.rest().starts_with("==") {
            true
        } else if self.rest().starts_with("!=") {
            false
        } else {
            return Err(self.error_at(start, expected()));
        };
        self.pos += 2;
        self.skip_ws();
        let Some(quote @ ('"' | '\'')) = self.peek() else { return Err(self.error_at(start, expected())) };
        self.pos += 1;
        let end = self.rest().find(quote).ok_or_else(|| self.error_at(start, "unterminated string literal"))?;
        let right = self.rest()[..end].to_string();
        if right.contains('$') {
            return Err(self.error_at(start, "references inside string literals are outside the supported subset"));
        }
        self.pos += end + 1;
        self.skip_ws();
        if self.peek() != Some(')') {
            return Err(self.error_at(start, expected()));
        }
        self.pos += 1;
        let then = self.nodes(true)?;
        Ok(Node::If { left, equal, right, then })
    }

    fn ident(&mut self) -> Option<&'s str> {
        let rest = self.rest();
        let mut chars = rest.char_indices();
        match chars.next() {
            Some((_, c)) if is_ident_start(c) => {}
            _ => return None,
        }
        let end = chars.find(|(_, c)| !is_ident_char(*c)).map(|(i, _)| i).unwrap_or(rest.len());
        self.pos += end;
        Some(&rest[..end])
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(c) if c.is_whitespace()) {
            self.pos += 1;
        }
    }

    /// `$a.b.c(args)...` or `${a.b}`; the current char is `$`.
    fn reference(&mut self) -> Result<Expr, ParseError> {
        let start = self.pos;
        self.pos += 1;
        if self.peek() == Some('!') {
            return Err(self.error_at(
                start,
                "unsupported VTL construct `$!` (quiet references are outside the supported subset)",
            ));
        }
        let formal = self.peek() == Some('{');
        if formal {
            self.pos += 1;
        }
        let mut segments: Vec<(String, Option<Vec<Expr>>)> = Vec::new();
        loop {
            let Some(name) = self.ident() else {
                return Err(self.error_at(self.pos, "expected a name in the reference"));
            };
            let mut args = None;
            if self.peek() == Some('(') {
                self.pos += 1;
                args = Some(self.arguments()?);
            }
            segments.push((name.to_string(), args));
            // Continue on `.name`; a dot not followed by a name is text.
            if self.peek() == Some('.') && matches!(self.peek2(), Some(c) if is_ident_start(c)) {
                self.pos += 1;
                continue;
            }
            break;
        }
        if formal {
            if self.peek() != Some('}') {
                return Err(self.error_at(self.pos, "expected `}` closing `${`"));
            }
            self.pos += 1;
        }
        let text = &self.src[start..self.pos];
        self.classify(start, text, segments)
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, ParseError> {
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
            return Ok(args);
        }
        loop {
            self.skip_ws();
            let arg = match self.peek() {
                Some(q @ ('\'' | '"')) => {
                    let open = self.pos;
                    self.pos += 1;
                    let end = self.rest().find(q).ok_or_else(|| self.error_at(open, "unterminated string literal"))?;
                    let s = &self.rest()[..end];
                    if q == '"'
                        && (s.contains('$')
                            && s.contains(|c: char| c.is_ascii_alphabetic())
                            && s.split('$').skip(1).any(|t| t.starts_with(|c: char| is_ident_start(c) || c == '{')))
                    {
                        return Err(self.error_at(
                            open,
                            "references inside double-quoted strings are outside the supported subset",
                        ));
                    }
                    self.pos += end + 1;
                    Expr::Str(s.to_string())
                }
                Some('$') => self.reference()?,
                _ => return Err(self.error_at(self.pos, "expected a string literal or a reference as argument")),
            };
            args.push(arg);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
                    return Ok(args);
                }
                _ => return Err(self.error_at(self.pos, "expected `,` or `)`")),
            }
        }
    }

    fn classify(
        &self,
        start: usize,
        text: &str,
        segments: Vec<(String, Option<Vec<Expr>>)>,
    ) -> Result<Expr, ParseError> {
        let unsupported = || self.error_at(start, format!("unsupported VTL reference `{text}`"));
        let names: Vec<&str> = segments.iter().map(|(n, _)| n.as_str()).collect();
        let calls: Vec<bool> = segments.iter().map(|(_, a)| a.is_some()).collect();
        let one_arg = |i: usize| -> Result<Expr, ParseError> {
            match &segments[i].1 {
                Some(args) if args.len() == 1 => Ok(args[0].clone()),
                _ => Err(self.error_at(start, format!("`{text}`: expected exactly one argument"))),
            }
        };
        let path_arg = |i: usize| -> Result<JsonPath, ParseError> {
            match one_arg(i)? {
                Expr::Str(s) => JsonPath::parse(&s).map_err(|e| self.error_at(start, e)),
                _ => Err(self.error_at(start, format!("`{text}`: the JSONPath must be a string literal"))),
            }
        };
        match (names.as_slice(), calls.as_slice()) {
            (["input", "body"], [false, false]) => Ok(Expr::InputBody),
            (["input", "json"], [false, true]) => Ok(Expr::InputJson(path_arg(1)?)),
            (["input", "path"], [false, true]) => Ok(Expr::InputPath(path_arg(1)?)),
            (["input", "params"], [false, true]) => match one_arg(1)? {
                Expr::Str(name) => Ok(Expr::InputParams(name)),
                _ => Err(self.error_at(start, format!("`{text}`: the parameter name must be a string literal"))),
            },
            (["util", "urlEncode"], [false, true]) => Ok(Expr::UrlEncode(Box::new(one_arg(1)?))),
            (["util", "escapeJavaScript"], [false, true]) => Ok(Expr::EscapeJavaScript(Box::new(one_arg(1)?))),
            (["context", "requestId"], [false, false]) => Ok(Expr::RequestId),
            (["context", "authorizer", key], [false, false, false]) => Ok(Expr::Authorizer(key.to_string())),
            (["context", "identity", "userArn"], [false, false, false]) => Ok(Expr::UserArn),
            (["context", "error", "messageString"], [false, false, false]) => Ok(Expr::ErrorMessageString),
            (["context", "error", "validationErrorString"], [false, false, false]) => Ok(Expr::ValidationErrorString),
            _ => Err(unsupported()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(src: &str, body: &str) -> String {
        Template::parse(src).unwrap().render(&Context { body, request_id: "req-1", ..Default::default() }).unwrap()
    }

    #[test]
    fn sqs_send_message_request_template() {
        let t = "Action=SendMessage&MessageBody=$util.urlEncode($input.body)&MessageAttribute.1.Name=principalId&MessageAttribute.1.Value.StringValue=$util.urlEncode($context.authorizer.principalId)&MessageAttribute.1.Value.DataType=String";
        let tpl = Template::parse(t).unwrap();
        let ctx = Context {
            body: "{\"a\": \"b c\"}",
            request_id: "r",
            principal_id: Some("user@example.com"),
            ..Default::default()
        };
        assert_eq!(
            tpl.render(&ctx).unwrap(),
            "Action=SendMessage&MessageBody=%7B%22a%22%3A+%22b+c%22%7D&MessageAttribute.1.Name=principalId&MessageAttribute.1.Value.StringValue=user%40example.com&MessageAttribute.1.Value.DataType=String"
        );
    }

    #[test]
    fn the_submit_template_passes_the_callers_sub_as_the_owner_attribute() {
        // cdktf/constructs/job-api.ts SUBMIT_JOB_REQUEST_TEMPLATE.
        let t = "Action=SendMessage&MessageBody=$util.urlEncode($input.body)&MessageAttribute.1.Name=owner&MessageAttribute.1.Value.DataType=String&MessageAttribute.1.Value.StringValue=$util.urlEncode($context.authorizer.sub)";
        let map = json!({"sub": "0f1e2d3c-4b5a", "email": "a@b.c"}).as_object().unwrap().clone();
        let ctx = Context {
            body: "{}",
            request_id: "r",
            authorizer: Some(&map),
            principal_id: Some("0f1e2d3c-4b5a"),
            ..Default::default()
        };
        assert_eq!(
            Template::parse(t).unwrap().render(&ctx).unwrap(),
            "Action=SendMessage&MessageBody=%7B%7D&MessageAttribute.1.Name=owner&MessageAttribute.1.Value.DataType=String&MessageAttribute.1.Value.StringValue=0f1e2d3c-4b5a"
        );
    }

    #[test]
    fn response_template_with_json_path() {
        let body = json!({"SendMessageResponse": {"SendMessageResult": {"MessageId": "m-1", "MD5OfMessageBody": "x"}}})
            .to_string();
        assert_eq!(
            render(
                "{\"jobId\": $input.json('$.SendMessageResponse.SendMessageResult.MessageId'), \"requestId\": \"$context.requestId\"}",
                &body
            ),
            "{\"jobId\": \"m-1\", \"requestId\": \"req-1\"}"
        );
        assert_eq!(render("$input.path('$.SendMessageResponse.SendMessageResult.MessageId')", &body), "m-1");
        assert_eq!(render("$input.json('$.missing')", &body), "");
        assert_eq!(render("$input.json('$')", "[1, {\"a\": null}]"), "[1,{\"a\":null}]");
        assert_eq!(render("$input.json('$[1]')", "[1, {\"a\": null}]"), "{\"a\":null}");
        assert_eq!(render("$input.path(\"$['a b'].c\")", "{\"a b\": {\"c\": 3}}"), "3");
        // empty body = {}
        assert_eq!(render("$input.json('$')", ""), "{}");
    }

    #[test]
    fn formal_notation_and_literal_dollars() {
        assert_eq!(render("${context.requestId}-x", ""), "req-1-x");
        assert_eq!(
            render("cost: $5 and $ and 100% # not a directive $", ""),
            "cost: $5 and $ and 100% # not a directive $"
        );
        // A dot after a complete reference is text.
        assert_eq!(render("id=$context.requestId.", ""), "id=req-1.");
    }

    #[test]
    fn the_iam_callers_arn() {
        let t = Template::parse("owner=$util.urlEncode($context.identity.userArn)").unwrap();
        let arn = "arn:aws:sts::123456789012:assumed-role/r/s";
        assert_eq!(
            t.render(&Context { user_arn: Some(arn), ..Default::default() }).unwrap(),
            "owner=arn%3Aaws%3Asts%3A%3A123456789012%3Aassumed-role%2Fr%2Fs"
        );
        assert_eq!(t.render(&Context::default()).unwrap(), "owner=");
    }

    #[test]
    fn authorizer_context_and_errors() {
        let mut map = Map::new();
        map.insert("email".into(), json!("a@b.c"));
        map.insert("n".into(), json!(3));
        let tpl = Template::parse("$context.authorizer.email/$context.authorizer.n/$context.authorizer.missing/$context.authorizer.principalId").unwrap();
        let out =
            tpl.render(&Context { authorizer: Some(&map), principal_id: Some("p"), ..Default::default() }).unwrap();
        assert_eq!(out, "a@b.c/3//p");

        let tpl =
            Template::parse("{\"message\":$context.error.messageString,\"v\":$context.error.validationErrorString}")
                .unwrap();
        let out = tpl.render(&Context { error_message: Some("Say \"hi\""), ..Default::default() }).unwrap();
        assert_eq!(out, "{\"message\":\"Say \\\"hi\\\"\",\"v\":null}");
    }

    #[test]
    fn java_encoders() {
        assert_eq!(url_encode("a b&c=d/é~*._-"), "a+b%26c%3Dd%2F%C3%A9%7E*._-");
        assert_eq!(
            escape_javascript("it's \"q\" \\ / \n\t é 😀"),
            "it\\'s \\\"q\\\" \\\\ \\/ \\n\\t \\u00E9 \\uD83D\\uDE00"
        );
        assert_eq!(escape_javascript("\u{1}"), "\\u0001");
    }

    #[test]
    fn nested_calls() {
        assert_eq!(render("$util.urlEncode($util.escapeJavaScript($input.body))", "a'b"), "a%5C%27b");
        assert_eq!(render("$util.urlEncode('x y')", ""), "x+y");
        assert_eq!(render("$util.urlEncode($input.json('$.a'))", "{\"a\":\"q\"}"), "%22q%22");
    }

    #[test]
    fn body_not_json_is_an_evaluation_error() {
        let tpl = Template::parse("$input.json('$')").unwrap();
        assert!(matches!(
            tpl.render(&Context { body: "not json", ..Default::default() }),
            Err(EvalError::BodyNotJson(_))
        ));
        assert!(tpl.reads_json());
        assert!(!Template::parse("$input.body").unwrap().reads_json());
    }

    #[test]
    fn rejects_everything_outside_the_subset() {
        for (src, needle) in [
            ("#set($x = 1)", "#set"),
            ("a\n  #if($input.body) x #end", "#if"),
            ("## comment", "##"),
            ("#* block *#", "#*"),
            ("#foreach($k in $m)", "#foreach"),
            ("$input.params($input.body)", "parameter name must be a string literal"),
            ("#if($input.params('a') != \"x\") y", "without its `#end`"),
            ("#if($input.params('a') > \"x\") y #end", "expected `#if(<reference> =="),
            ("#if($input.params('a') != \"$x\") y #end", "inside string literals"),
            ("#if($input.params('a') != \"\") y #else z #end", "#else"),
            ("$context.identity.sourceIp", "$context.identity.sourceIp"),
            ("$context.authorizer.claims.email", "$context.authorizer.claims.email"),
            ("$util.base64Encode($input.body)", "$util.base64Encode"),
            ("$!context.requestId", "$!"),
            ("$x", "$x"),
            ("$input.json($input.body)", "string literal"),
            ("$input.json('$..a')", "JSONPath"),
            ("$input.json('$[*]')", "JSONPath"),
            ("$input.json('x')", "must start with `$`"),
            ("${context.requestId", "expected `}`"),
            ("$util.urlEncode(\"$input.body\")", "double-quoted"),
            ("$util.urlEncode('a', 'b')", "exactly one argument"),
        ] {
            let err = Template::parse(src).expect_err(src);
            assert!(err.reason.contains(needle), "{src}: {err}");
        }
        let err = Template::parse("line one\n  #if").unwrap_err();
        assert_eq!((err.line, err.column), (2, 3));
    }

    #[test]
    fn an_optional_header_becomes_a_message_attribute_only_when_present() {
        // The submit template's tail (cdktf/constructs/job-api.ts).
        let src = "Action=SendMessage#if($input.params('Job-Callback-Url') != \"\")&MessageAttribute.2.Name=callbackUrl\
                   &MessageAttribute.2.Value.StringValue=$util.urlEncode($input.params('Job-Callback-Url'))#end&End=1";
        let template = Template::parse(src).unwrap();
        let with = [("job-callback-url".to_string(), "https://example.com/h?a=1".to_string())];
        let rendered = template.render(&Context { params: &with, ..Default::default() }).unwrap();
        assert_eq!(
            rendered,
            "Action=SendMessage&MessageAttribute.2.Name=callbackUrl\
             &MessageAttribute.2.Value.StringValue=https%3A%2F%2Fexample.com%2Fh%3Fa%3D1&End=1"
        );
        assert_eq!(template.render(&Context::default()).unwrap(), "Action=SendMessage&End=1");
        let equal = Template::parse("#if($input.params('p') == 'x')yes#end").unwrap();
        let x = [("p".to_string(), "x".to_string())];
        assert_eq!(equal.render(&Context { params: &x, ..Default::default() }).unwrap(), "yes");
        assert_eq!(equal.render(&Context::default()).unwrap(), "");
    }
}
