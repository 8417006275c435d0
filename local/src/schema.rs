//! Request validation for API Gateway models: the JSON Schema draft-04
//! keywords a body model is likely to use. A keyword outside this subset
//! stops `up` (naming it) rather than being silently ignored: a local target
//! that accepts what AWS would refuse would hide bugs. Error messages follow
//! the wording API Gateway's validator uses, so `validationErrorString` reads
//! the same locally.

use serde_json::Value;

/// Keywords that describe but do not constrain.
const ANNOTATIONS: &[&str] =
    &["$schema", "id", "title", "description", "default", "example", "examples", "definitions"];
const CONSTRAINTS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "enum",
    "minimum",
    "maximum",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Schema(Value);

impl Schema {
    /// Parse and check that every keyword is supported.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))?;
        check(&value, "#")?;
        Ok(Self(value))
    }

    /// Validate a request body: `Err` carries API Gateway's
    /// `validationErrorString`, e.g. `[instance type (array) does not match
    /// any allowed primitive type (allowed: ["object"])]`.
    pub fn validate_body(&self, body: &[u8]) -> Result<(), String> {
        let instance: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) if body.iter().all(u8::is_ascii_whitespace) => {
                return Err(format!("[Invalid request body: the body is empty ({e})]"));
            }
            Err(e) => return Err(format!("[Invalid request body: not JSON ({e})]")),
        };
        let mut errors = Vec::new();
        validate(&self.0, &instance, "", &mut errors);
        if errors.is_empty() { Ok(()) } else { Err(format!("[{}]", errors.join(", "))) }
    }
}

fn check(schema: &Value, at: &str) -> Result<(), String> {
    let object = schema.as_object().ok_or_else(|| format!("{at}: a schema must be an object"))?;
    for (key, value) in object {
        if ANNOTATIONS.contains(&key.as_str()) {
            continue;
        }
        if !CONSTRAINTS.contains(&key.as_str()) {
            return Err(format!("{at}: JSON Schema keyword `{key}` is not supported by the local target"));
        }
        match key.as_str() {
            "properties" => {
                let props = value.as_object().ok_or_else(|| format!("{at}/properties: must be an object"))?;
                for (name, sub) in props {
                    check(sub, &format!("{at}/properties/{name}"))?;
                }
            }
            "items" => check(value, &format!("{at}/items"))?,
            "additionalProperties" if value.is_object() => check(value, &format!("{at}/additionalProperties"))?,
            _ => {}
        }
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Adds to `errors` each way `instance` (at `pointer`) breaks `schema`.
fn validate(schema: &Value, instance: &Value, pointer: &str, errors: &mut Vec<String>) {
    let here = if pointer.is_empty() { String::new() } else { format!("{pointer}: ") };
    if let Some(error) = type_error(schema, instance, &here) {
        // A value of the wrong type is not checked further.
        errors.push(error);
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(instance)
    {
        errors.push(format!("{here}instance value ({instance}) not found in enum"));
    }
    match instance {
        Value::Object(object) => validate_object(schema, object, pointer, &here, errors),
        Value::Array(items) => validate_array(schema, items, pointer, &here, errors),
        Value::String(s) => validate_string(schema, s, &here, errors),
        Value::Number(num) => validate_number(schema, num.as_f64().unwrap_or_default(), &here, errors),
        _ => {}
    }
}

/// A numeric keyword's value (`minLength`, `maximum`, ...).
fn number(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

/// The error if the schema's `type` does not allow the instance's.
fn type_error(schema: &Value, instance: &Value, here: &str) -> Option<String> {
    let allowed = schema.get("type")?;
    let allowed: Vec<&str> = match allowed {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let actual = type_name(instance);
    let matches = allowed.iter().any(|t| *t == actual || (*t == "number" && actual == "integer"));
    if matches {
        return None;
    }
    let quoted: Vec<String> = allowed.iter().map(|t| format!("\"{t}\"")).collect();
    Some(format!(
        "{here}instance type ({actual}) does not match any allowed primitive type (allowed: [{}])",
        quoted.join(",")
    ))
}

fn validate_object(
    schema: &Value,
    object: &serde_json::Map<String, Value>,
    pointer: &str,
    here: &str,
    errors: &mut Vec<String>,
) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        let missing: Vec<String> = required
            .iter()
            .filter_map(Value::as_str)
            .filter(|r| !object.contains_key(*r))
            .map(|r| format!("\"{r}\""))
            .collect();
        if !missing.is_empty() {
            errors.push(format!("{here}object has missing required properties ([{}])", missing.join(",")));
        }
    }
    if let Some(min) = number(schema, "minProperties").filter(|m| (object.len() as f64) < *m) {
        errors.push(format!("{here}object has too few properties (found {}, minimum {min})", object.len()));
    }
    if let Some(max) = number(schema, "maxProperties").filter(|m| (object.len() as f64) > *m) {
        errors.push(format!("{here}object has too many properties (found {}, maximum {max})", object.len()));
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, value) in object {
        let child = format!("{pointer}/{name}");
        match (properties.and_then(|p| p.get(name)), schema.get("additionalProperties")) {
            (Some(sub), _) => validate(sub, value, &child, errors),
            (None, Some(Value::Bool(false))) => {
                errors.push(format!(
                    "{here}object instance has properties which are not allowed by the schema: [\"{name}\"]"
                ));
            }
            (None, Some(sub @ Value::Object(_))) => validate(sub, value, &child, errors),
            (None, _) => {}
        }
    }
}

fn validate_array(schema: &Value, items: &[Value], pointer: &str, here: &str, errors: &mut Vec<String>) {
    if let Some(min) = number(schema, "minItems").filter(|m| (items.len() as f64) < *m) {
        errors.push(format!(
            "{here}array is too short: must have at least {min} elements but instance has {} elements",
            items.len()
        ));
    }
    if let Some(max) = number(schema, "maxItems").filter(|m| (items.len() as f64) > *m) {
        errors.push(format!(
            "{here}array is too long: must have at most {max} elements but instance has {} elements",
            items.len()
        ));
    }
    if let Some(sub) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate(sub, item, &format!("{pointer}/{i}"), errors);
        }
    }
}

fn validate_string(schema: &Value, s: &str, here: &str, errors: &mut Vec<String>) {
    let len = s.chars().count() as f64;
    if let Some(min) = number(schema, "minLength").filter(|m| len < *m) {
        errors.push(format!("{here}string is too short ({len} chars, minimum {min})"));
    }
    if let Some(max) = number(schema, "maxLength").filter(|m| len > *m) {
        errors.push(format!("{here}string is too long ({len} chars, maximum {max})"));
    }
}

fn validate_number(schema: &Value, x: f64, here: &str, errors: &mut Vec<String>) {
    if let Some(min) = number(schema, "minimum").filter(|m| x < *m) {
        errors.push(format!("{here}numeric instance is lower than the required minimum (minimum: {min}, found: {x})"));
    }
    if let Some(max) = number(schema, "maximum").filter(|m| x > *m) {
        errors
            .push(format!("{here}numeric instance is greater than the required maximum (maximum: {max}, found: {x})"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB_REQUEST: &str = r#"{"$schema":"http://json-schema.org/draft-04/schema#","type":"object"}"#;

    #[test]
    fn the_job_request_model_accepts_objects_only() {
        let schema = Schema::parse(JOB_REQUEST).unwrap();
        assert_eq!(schema.validate_body(br#"{"region":"eu"}"#), Ok(()));
        assert_eq!(schema.validate_body(b" {} "), Ok(()));
        assert_eq!(
            schema.validate_body(b"[1,2]"),
            Err(r#"[instance type (array) does not match any allowed primitive type (allowed: ["object"])]"#.into())
        );
        for body in [&b"42"[..], b"\"x\"", b"null", b"true"] {
            assert!(schema.validate_body(body).unwrap_err().contains("does not match"), "{body:?}");
        }
        assert!(schema.validate_body(b"").unwrap_err().contains("the body is empty"));
        assert!(schema.validate_body(b"{not json").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn nested_constraints_report_where_they_failed() {
        let schema = Schema::parse(
            r#"{"type":"object","required":["a","b"],"additionalProperties":false,
                "properties":{"a":{"type":"string","maxLength":3},"b":{},"n":{"type":"integer","minimum":1},
                "l":{"type":"array","items":{"enum":[1,2]}}}}"#,
        )
        .unwrap();
        let err = schema.validate_body(br#"{"a":"long","n":0,"l":[1,3],"x":1}"#).unwrap_err();
        for part in [
            r#"object has missing required properties (["b"])"#,
            "/a: string is too long",
            "/n: numeric instance is lower than the required minimum",
            "/l/1: instance value (3) not found in enum",
            r#"properties which are not allowed by the schema: ["x"]"#,
        ] {
            assert!(err.contains(part), "{part} not in {err}");
        }
        assert_eq!(
            schema.validate_body(br#"{"a":"ok","b":null,"n":2.0}"#).unwrap_err(),
            "[/n: instance type (number) does not match any allowed primitive type (allowed: [\"integer\"])]"
        );
    }

    #[test]
    fn unsupported_keywords_are_refused_by_name() {
        let err = Schema::parse(r#"{"type":"object","properties":{"a":{"pattern":"^x"}}}"#).unwrap_err();
        assert_eq!(err, "#/properties/a: JSON Schema keyword `pattern` is not supported by the local target");
        assert!(Schema::parse(r#"{"oneOf":[]}"#).unwrap_err().contains("`oneOf`"));
        assert!(Schema::parse("[]").is_err());
    }
}
