//! The one interceptor chain at both places functions call: the service
//! proxies and the Lambda Invoke API. IAM answers first: a call the caller's
//! role denies is denied whatever faults are configured; a configured fault
//! answers the calls IAM allows, proxied calls and invocations alike.
//!
//! No moto: every call here is answered before a proxy would forward it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use jobs_local::faults::{CallFaults, FaultConfig, Faults, SimulatorFaults};
use jobs_local::iam::{Iam, Principal, access_key_id};
use jobs_local::intercept::Interceptors;
use jobs_local::lambda::{FunctionSpec, LambdaService};
use jobs_local::model::ACCOUNT_ID;
use jobs_local::model::iam::RolePolicy;
use jobs_local::policy::{Effect, Patterns, Statement};
use jobs_local::proxy::ServiceProxy;
use serde_json::{Value, json};

const REGION: &str = "eu-west-1";
const SIMULATOR: &str = "simulator";

fn table_arn() -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/jobs")
}

fn simulator_arn() -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{SIMULATOR}")
}

/// `processor` may read the table and invoke the simulator; `reader` may
/// only read the table.
fn iam() -> Arc<Iam> {
    let principal = |index: usize, function: &str, resources: Vec<String>| {
        let statement = Statement {
            effect: Effect::Allow,
            actions: Patterns::AnyOf(vec!["dynamodb:GetItem".into(), "lambda:InvokeFunction".into()]),
            resources: Patterns::AnyOf(resources),
        };
        Principal {
            function: function.into(),
            access_key_id: access_key_id(index),
            policy: RolePolicy {
                role_name: format!("{function}-role"),
                statements: vec![statement],
                ..Default::default()
            },
            assumable_roles: Vec::new(),
        }
    };
    Iam::new(
        ACCOUNT_ID,
        vec![principal(1, "processor", vec![table_arn(), simulator_arn()]), principal(2, "reader", vec![table_arn()])],
    )
}

/// Every DynamoDB call is throttled and every simulator invocation fails.
fn faults() -> Arc<Faults> {
    let faults = Faults::new(Some(SIMULATOR.into()));
    faults
        .set(FaultConfig {
            dynamodb: CallFaults { throttle: 1.0, ..Default::default() },
            simulator: SimulatorFaults { fail: 1.0, seed: 7 },
            ..Default::default()
        })
        .unwrap();
    faults
}

fn signed_by(key: &str, service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={key}/20261206/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=00"
    )
}

async fn post(url: &str, headers: &[(&str, &str)], body: &Value) -> (u16, hyper::HeaderMap, String) {
    let mut req = hyper::Request::post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let (status, headers, body) = jobs_local::httpx::send(&jobs_local::httpx::client(), req).await.unwrap();
    (status.as_u16(), headers, String::from_utf8_lossy(&body).into_owned())
}

async fn dynamodb_call(url: &str, key: &str, operation: &str) -> (u16, String) {
    let target = format!("DynamoDB_20120810.{operation}");
    let auth = signed_by(key, "dynamodb");
    let headers = [("x-amz-target", target.as_str()), ("authorization", auth.as_str())];
    let body = json!({"TableName": "jobs", "Key": {"jobId": {"S": "job-1"}}});
    let (status, _, body) = post(url, &headers, &body).await;
    (status, body)
}

async fn invoke_simulator(lambda_url: &str, key: &str) -> (u16, Option<String>, String) {
    let url = format!("{lambda_url}/2015-03-31/functions/{SIMULATOR}/invocations");
    let auth = signed_by(key, "lambda");
    let (status, headers, body) = post(&url, &[("authorization", &auth)], &json!({"jobRequestId": "job-1"})).await;
    let function_error = headers.get("x-amz-function-error").map(|v| v.to_str().unwrap().to_string());
    (status, function_error, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_answers_before_faults_at_the_proxies_and_the_invoke_api() {
    let (iam, faults) = (iam(), faults());
    let (stop, _) = tokio::sync::watch::channel(false);
    let dir = tempfile::tempdir().unwrap();

    // Port 9 (discard): nothing listens; no call may get that far.
    let proxy = ServiceProxy::new("dynamodb", "http://127.0.0.1:9", REGION, iam.clone(), Some(faults.clone()));
    let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy_listener.local_addr().unwrap());
    let proxy_server = tokio::spawn(jobs_local::httpx::serve(
        proxy_listener,
        Arc::new(proxy),
        stop.subscribe(),
        Duration::from_secs(1),
    ));

    // The simulator never runs: each invocation is answered by the chain.
    let simulator = FunctionSpec {
        name: SIMULATOR.into(),
        arn: simulator_arn(),
        task_root: dir.path().to_path_buf(),
        env: Default::default(),
        timeout: Duration::from_secs(3),
        max_instances: 1,
        log_file: dir.path().join("simulator.log"),
    };
    let lambda_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lambda_url = format!("http://{}", lambda_listener.local_addr().unwrap());
    let (lambda, lambda_server) = LambdaService::start(lambda_listener, vec![simulator], REGION, ACCOUNT_ID).unwrap();
    lambda.set_interceptors(Arc::new(Interceptors::new(iam.clone(), Some(faults.interceptor(iam.clone())))));

    // A proxied call IAM allows meets the fault; one it denies is denied.
    let (status, body) = dynamodb_call(&proxy_url, &access_key_id(1), "GetItem").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("ThrottlingException"), "{body}");
    let (status, body) = dynamodb_call(&proxy_url, &access_key_id(1), "DeleteItem").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("AccessDeniedException") && body.contains("dynamodb:DeleteItem"), "{body}");

    // An invocation IAM allows meets the fault; one it denies is denied.
    let (status, function_error, body) = invoke_simulator(&lambda_url, &access_key_id(1)).await;
    assert_eq!((status, function_error.as_deref()), (200, Some("Unhandled")), "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["errorType"], "InjectedFault", "{body}");
    let (status, function_error, body) = invoke_simulator(&lambda_url, &access_key_id(2)).await;
    assert_eq!((status, function_error), (403, None), "{body}");
    assert!(body.contains("reader-role/reader is not authorized to perform: lambda:InvokeFunction"), "{body}");

    // IAM counted both denials; the faults saw only the calls IAM allowed.
    assert_eq!(iam.denials_report()["total"], 2);
    let injected = &faults.report()["injected"];
    assert_eq!(injected["calls"]["dynamodb"]["throttles"], 1, "{injected}");
    assert_eq!(injected["simulatorFailedJobs"]["job-1"], 1, "{injected}");

    lambda.shutdown().await;
    stop.send_replace(true);
    let _ = tokio::join!(proxy_server, lambda_server);
}
