//! The routes of the control API (with and without the fault API) and of
//! the Lambda service's Invoke and Runtime APIs: what each answers to a path
//! or method it does not serve, and that a trailing slash and a
//! percent-encoded function name are understood.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use jobs_local::control::Control;
use jobs_local::control::faults::FaultControl;
use jobs_local::faults::Faults;
use jobs_local::footprint::Footprint;
use jobs_local::iam::Iam;
use jobs_local::lambda::LambdaService;
use jobs_local::model::ACCOUNT_ID;
use jobs_local::poller::PollerSet;
use serde_json::{Value, json};

const REGION: &str = "eu-west-1";

async fn call(method: &str, url: &str, body: &str) -> (u16, hyper::HeaderMap, Value) {
    let req = hyper::Request::builder().method(method).uri(url).body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let (status, headers, body) = jobs_local::httpx::send(&jobs_local::httpx::client(), req).await.unwrap();
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
    (status.as_u16(), headers, body)
}

async fn message(method: &str, url: &str) -> (u16, Value) {
    let (status, _, body) = call(method, url, "").await;
    (status, body["message"].clone())
}

async fn serve(server: impl jobs_local::httpx::Routes, stop: &tokio::sync::watch::Sender<bool>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(jobs_local::httpx::serve(listener, Arc::new(server), stop.subscribe(), Duration::from_secs(1)));
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_routes() {
    let (stop, _) = tokio::sync::watch::channel(false);
    let lambda_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (lambda, _server) = LambdaService::start(lambda_listener, Vec::new(), REGION, ACCOUNT_ID).unwrap();
    let control = |faults: Option<FaultControl>| Control {
        iam: Iam::new(ACCOUNT_ID, Vec::new()),
        footprint: Footprint::new(&[], lambda.clone()),
        faults,
    };
    let without_faults = serve(control(None), &stop).await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new(REGION))
            .build(),
    );
    let pollers = PollerSet::start(Vec::new(), sqs, lambda.clone(), REGION, stop.subscribe());
    let fault_control = FaultControl { faults: Faults::new(None), lambda: lambda.clone(), pollers };
    let with_faults = serve(control(Some(fault_control)), &stop).await;

    for base in [&without_faults, &with_faults] {
        let (status, _, denials) = call("GET", &format!("{base}/iam/denials"), "").await;
        assert_eq!((status, denials), (200, json!({"total": 0, "denials": []})));
        assert_eq!(call("DELETE", &format!("{base}/iam/denials/"), "").await.0, 200, "a trailing slash is ignored");
        assert_eq!(message("POST", &format!("{base}/iam/denials")).await, (405, json!("method not allowed")));
        let (status, _, processes) = call("GET", &format!("{base}/processes"), "").await;
        assert_eq!((status, processes["processes"].is_array()), (200, true));
        assert_eq!(message("PUT", &format!("{base}/processes")).await, (405, json!("method not allowed")));
        assert_eq!(
            message("GET", &format!("{base}/nope")).await,
            (404, json!("not found: the control API serves /iam/denials, /processes and, with --faults, /faults"))
        );
    }

    let off = (404, json!("fault injection is off: start jobs-local with --faults"));
    assert_eq!(message("GET", &format!("{without_faults}/faults")).await, off);
    assert_eq!(message("POST", &format!("{without_faults}/faults/kill")).await, off);

    let base = &with_faults;
    let (status, _, report) = call("GET", &format!("{base}/faults/"), "").await;
    assert_eq!((status, report["config"]["sqs"]["error"].clone()), (200, json!(0.0)));
    let (status, _, report) = call("PUT", &format!("{base}/faults"), r#"{"sqs": {"throttle": 0.5}}"#).await;
    assert_eq!((status, report["config"]["sqs"]["throttle"].clone()), (200, json!(0.5)));
    let (status, _, invalid) = call("PUT", &format!("{base}/faults"), "{\"sqs\": 2}").await;
    let invalid = invalid["message"].clone();
    assert_eq!(status, 400);
    assert!(invalid.as_str().unwrap().starts_with("invalid fault configuration: "), "{invalid}");
    let (status, _, report) = call("DELETE", &format!("{base}/faults"), "").await;
    assert_eq!((status, report["config"]["sqs"]["throttle"].clone()), (200, json!(0.0)));
    assert_eq!(message("PATCH", &format!("{base}/faults")).await, (405, json!("method not allowed")));
    assert_eq!(message("GET", &format!("{base}/faults/kill")).await, (405, json!("method not allowed")));
    assert_eq!(
        message("POST", &format!("{base}/faults/kill")).await,
        (400, json!("query parameter `function` is required (a function name)"))
    );
    assert_eq!(
        message("POST", &format!("{base}/faults/kill?function=nope")).await,
        (404, json!("no function named nope"))
    );
    assert_eq!(call("POST", &format!("{base}/faults/restart-pollers"), "").await.2, json!({"restarted": 0}));
    assert_eq!(call("POST", &format!("{base}/faults/stop-pollers"), "").await.2, json!({"stopped": 0}));
    assert_eq!(
        message("GET", &format!("{base}/faults/other")).await,
        (404, json!("not found: the fault API serves /faults"))
    );
    stop.send_replace(true);
    lambda.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_service_routes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (lambda, _server) = LambdaService::start(listener, Vec::new(), REGION, ACCOUNT_ID).unwrap();
    let error_type = |headers: &hyper::HeaderMap| headers["x-amzn-errortype"].to_str().unwrap().to_string();

    let (status, headers, body) = call("GET", &format!("{base}/2015-03-31/functions/f/invocations"), "").await;
    assert_eq!((status, error_type(&headers).as_str()), (404, "UnknownOperationException"));
    assert_eq!(body["message"], "Unknown operation GET /2015-03-31/functions/f/invocations");
    let (status, headers, _) = call("POST", &format!("{base}/2015-03-31/functions"), "").await;
    assert_eq!((status, error_type(&headers).as_str()), (404, "UnknownOperationException"));

    // The name is percent-decoded: a full ARN names the function.
    let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:nope");
    let encoded = arn.replace(':', "%3A");
    let (status, headers, body) =
        call("POST", &format!("{base}/2015-03-31/functions/{encoded}/invocations"), "{}").await;
    assert_eq!((status, error_type(&headers).as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(body["message"], format!("Function not found: {arn}"));
    assert!(headers.contains_key("x-amzn-requestid"));

    // A Runtime API path of an instance that does not exist, known or not.
    for (method, path) in [("GET", "invocation/next"), ("POST", "invocation/x/response"), ("GET", "nope"), ("GET", "")]
    {
        let (status, _, body) = call(method, &format!("{base}/f/1/2018-06-01/runtime/{path}"), "").await;
        assert_eq!((status, &body["errorType"]), (404, &json!("UnknownInstance")), "{method} {path}");
    }
    lambda.shutdown().await;
}
