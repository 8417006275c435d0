//! A tiny Lambda function for the local Lambda service's tests, driven by its
//! payload's `action`:
//!
//! - `echo` (default): returns the payload, the request id, the invoked ARN
//!   and the process id;
//! - `fail`: returns an error with `message`;
//! - `sleep`: sleeps `ms` milliseconds, then answers;
//! - `exit`: exits the process with `code` mid-invocation;
//! - `env`: returns the value of the environment variable `name`;
//! - `respond`: returns `response` as is (e.g. an SQS batch response).
//!
//! With `TEST_FUNCTION_FAIL_INIT` set, it exits during init instead of
//! serving. `TEST_FUNCTION_MODE` makes it play a role in a stack (the local
//! target's system test):
//!
//! - `authorizer`: a TOKEN authorizer; the token decides: `allow`, `deny`
//!   (explicit Deny), `other` (Allow on another resource), `unauthorized`
//!   (the "Unauthorized" error), `crash` (another error), `bad` (not a
//!   policy);
//! - `proxy`: a Lambda proxy function answering with its event; paths
//!   ending in `/fail` error, `/malformed` return a non-proxy answer;
//! - `consumer`: an SQS consumer reporting the records whose body contains
//!   `fail` as batch item failures (an event without `Records` is answered
//!   by `action`, as above: its environment can be read).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    if let Ok(msg) = std::env::var("TEST_FUNCTION_FAIL_INIT") {
        // lambda_runtime reports a handler-less init failure through the
        // Runtime API's init/error when the service is built from a failing
        // future; a plain exit is what a crashing init looks like.
        eprintln!("init failed: {msg}");
        std::process::exit(2);
    }
    lambda_runtime::run(service_fn(handle)).await
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    match std::env::var("TEST_FUNCTION_MODE").as_deref() {
        Ok("authorizer") => return authorizer(&event.payload),
        Ok("proxy") => return proxy(&event.payload),
        Ok("consumer") if event.payload.get("Records").is_some() => return consumer(&event.payload),
        _ => {}
    }
    let (payload, ctx) = event.into_parts();
    let text = |k: &str| payload.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let number = |k: &str| payload.get(k).and_then(Value::as_u64).unwrap_or(0);
    match payload.get("action").and_then(Value::as_str).unwrap_or("echo") {
        "fail" => Err(text("message").into()),
        "sleep" => {
            tokio::time::sleep(std::time::Duration::from_millis(number("ms"))).await;
            Ok(json!({"slept": number("ms"), "pid": std::process::id()}))
        }
        "exit" => {
            println!("exiting on purpose with code {}", number("code"));
            std::process::exit(number("code") as i32)
        }
        "env" => Ok(json!({"value": std::env::var(text("name")).ok()})),
        "respond" => Ok(payload.get("response").cloned().unwrap_or(Value::Null)),
        _ => Ok(json!({
            "echo": payload,
            "requestId": ctx.request_id,
            "functionArn": ctx.invoked_function_arn,
            "deadlineMs": ctx.deadline,
            "pid": std::process::id(),
        })),
    }
}

fn policy(effect: &str, resource: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]})
}

fn authorizer(event: &Value) -> Result<Value, Error> {
    let arn = event["methodArn"].as_str().unwrap_or_default();
    let context = json!({"user": "tester", "n": 7, "methodArn": arn});
    match event["authorizationToken"].as_str().unwrap_or_default() {
        "allow" => Ok(json!({"principalId": "user-1", "policyDocument": policy("Allow", "*"), "context": context})),
        "deny" => Ok(json!({"principalId": "user-1", "policyDocument": policy("Deny", arn), "context": context})),
        "other" => Ok(
            json!({"principalId": "user-1", "policyDocument": policy("Allow", "arn:aws:execute-api:*:*:*/*/DELETE/*")}),
        ),
        "unauthorized" => Err("Unauthorized".into()),
        "bad" => Ok(json!({"hello": "world"})),
        _ => Err("authorizer crashed".into()),
    }
}

fn proxy(event: &Value) -> Result<Value, Error> {
    let path = event["path"].as_str().unwrap_or_default();
    if path.ends_with("/fail") {
        return Err("proxy function failed".into());
    }
    if path.ends_with("/malformed") {
        return Ok(json!({"hello": "world"}));
    }
    Ok(
        json!({"statusCode": 201, "headers": {"content-type": "application/json", "x-test": "yes"}, "body": event.to_string()}),
    )
}

fn consumer(event: &Value) -> Result<Value, Error> {
    let records = event["Records"].as_array().cloned().unwrap_or_default();
    let mut failures = Vec::new();
    for r in &records {
        let body = r["body"].as_str().unwrap_or_default();
        println!("record {} body {body} receive count {}", r["messageId"], r["attributes"]["ApproximateReceiveCount"]);
        if body.contains("crash") {
            return Err("batch crashed".into());
        }
        if body.contains("fail") {
            failures.push(json!({"itemIdentifier": r["messageId"]}));
        }
    }
    Ok(json!({"batchItemFailures": failures}))
}
