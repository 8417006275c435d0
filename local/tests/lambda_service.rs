//! The Lambda service with real processes of the `test-function` example:
//! invoke, error reporting, timeout kill, exit detection, throttling, the
//! Invoke HTTP API, and that no process outlives the service.

mod common;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use jobs_local::lambda::{FunctionSpec, InvokeError, Invoked, LambdaService, platform_env};
use serde_json::{Value, json};

struct Fixture {
    service: LambdaService,
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

/// (name, timeout in ms, max instances, extra environment)
type Function<'a> = (&'a str, u64, usize, &'a [(&'a str, &'a str)]);

async fn start(functions: &[Function<'_>]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut specs = Vec::new();
    for (name, timeout_ms, max, extra_env) in functions {
        let root = dir.path().join(name);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::copy(common::test_function(), root.join("bootstrap")).unwrap();
        let mut env = platform_env(name, 128, "bootstrap", "eu-west-1", &root);
        for (k, v) in *extra_env {
            env.insert(k.to_string(), v.to_string());
        }
        specs.push(FunctionSpec {
            name: name.to_string(),
            arn: format!("arn:aws:lambda:eu-west-1:123456789012:function:{name}"),
            task_root: root,
            env,
            timeout: Duration::from_millis(*timeout_ms),
            max_instances: *max,
            log_file: dir.path().join(format!("{name}.log")),
        });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (service, server) = LambdaService::start(listener, specs, "eu-west-1", "123456789012").unwrap();
    Fixture { service, _dir: dir, server }
}

impl Fixture {
    async fn stop(self) -> Vec<u32> {
        let mut pids = Vec::new();
        for f in ["echo", "slow", "broken"] {
            pids.extend(self.service.instance_pids(f));
        }
        self.service.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.server).await;
        pids
    }
}

fn alive(pid: u32) -> bool {
    // A reaped process is gone from /proc.
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits for `pid` to be reaped (the service kills and reaps in the
/// background); false if it is still there after a generous bound.
async fn reaped(pid: u32) -> bool {
    for _ in 0..200 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn invoke(service: &LambdaService, name: &str, payload: Value) -> Result<Invoked, InvokeError> {
    service.invoke(name, Bytes::from(payload.to_string())).await
}

fn json_of(invoked: &Invoked) -> Value {
    match invoked {
        Invoked::Response(b) | Invoked::Error(b) => serde_json::from_slice(b).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invokes_reuses_warm_instances_and_reports_errors() {
    let fx = start(&[("echo", 5_000, 2, &[])]).await;
    let first = invoke(&fx.service, "echo", json!({"hello": "world"})).await.unwrap();
    let Invoked::Response(_) = &first else { panic!("{first:?}") };
    let first = json_of(&first);
    assert_eq!(first["echo"], json!({"hello": "world"}));
    assert_eq!(first["functionArn"], "arn:aws:lambda:eu-west-1:123456789012:function:echo");
    assert!(first["deadlineMs"].as_u64().unwrap() > 0);

    // Warm: the same process answers again.
    let second = json_of(&invoke(&fx.service, "echo", json!({})).await.unwrap());
    assert_eq!(first["pid"], second["pid"]);
    assert_ne!(first["requestId"], second["requestId"]);

    // The platform env is there.
    let env = json_of(
        &invoke(&fx.service, "echo", json!({"action": "env", "name": "AWS_LAMBDA_LOG_GROUP_NAME"})).await.unwrap(),
    );
    assert_eq!(env["value"], "/aws/lambda/echo");

    let failed = invoke(&fx.service, "echo", json!({"action": "fail", "message": "boom"})).await.unwrap();
    let Invoked::Error(_) = &failed else { panic!("{failed:?}") };
    assert_eq!(json_of(&failed)["errorMessage"], "boom");

    // An error does not cost the instance.
    let after = json_of(&invoke(&fx.service, "echo", json!({})).await.unwrap());
    assert_eq!(after["pid"], first["pid"]);

    assert_eq!(invoke(&fx.service, "nope", json!({})).await, Err(InvokeError::NotFound("nope".into())));

    let pids = fx.stop().await;
    assert!(!pids.is_empty());
    assert!(pids.iter().all(|p| !alive(*p)), "instances left: {pids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_instances_that_time_out_and_detects_exits() {
    let fx = start(&[("slow", 1_000, 2, &[])]).await;
    let warm = json_of(&invoke(&fx.service, "slow", json!({"action": "sleep", "ms": 10})).await.unwrap());
    let pid = warm["pid"].as_u64().unwrap() as u32;

    // The 10 s sleep outlives the 1 s timeout: the answer is the timeout
    // error, not the function's response.
    let timed_out = invoke(&fx.service, "slow", json!({"action": "sleep", "ms": 10_000})).await.unwrap();
    let Invoked::Error(_) = &timed_out else { panic!("{timed_out:?}") };
    let body = json_of(&timed_out);
    assert!(body["errorMessage"].as_str().unwrap().contains("Task timed out after 1.00 seconds"), "{body}");
    // The instance was killed and reaped.
    assert!(reaped(pid).await, "timed-out instance {pid} still alive");

    // A new instance serves the next invocation.
    let fresh = json_of(&invoke(&fx.service, "slow", json!({"action": "sleep", "ms": 1})).await.unwrap());
    let fresh_pid = fresh["pid"].as_u64().unwrap() as u32;
    assert_ne!(fresh_pid, pid);

    // Exit mid-invocation.
    let exited = invoke(&fx.service, "slow", json!({"action": "exit", "code": 3})).await.unwrap();
    let body = json_of(&exited);
    assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
    assert!(body["errorMessage"].as_str().unwrap().contains("exit status 3"), "{body}");
    assert!(reaped(fresh_pid).await, "exited instance {fresh_pid} not reaped");
    assert!(matches!(invoke(&fx.service, "slow", json!({})).await, Ok(Invoked::Response(_))));

    let pids = fx.stop().await;
    assert!(pids.iter().all(|p| !alive(*p)), "instances left: {pids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_concurrency_and_reports_init_failures() {
    let fx =
        start(&[("slow", 5_000, 2, &[]), ("broken", 5_000, 1, &[("TEST_FUNCTION_FAIL_INIT", "on purpose")])]).await;
    let calls = (0..3).map(|_| {
        let s = fx.service.clone();
        tokio::spawn(async move { invoke(&s, "slow", json!({"action": "sleep", "ms": 1_500})).await })
    });
    let results: Vec<_> = futures_join(calls).await;
    let throttled = results.iter().filter(|r| matches!(r, Err(InvokeError::Throttled(2)))).count();
    let ok = results.iter().filter(|r| matches!(r, Ok(Invoked::Response(_)))).count();
    assert_eq!((ok, throttled), (2, 1), "{results:?}");
    assert_eq!(fx.service.instance_pids("slow").len(), 2);

    let broken = invoke(&fx.service, "broken", json!({})).await.unwrap();
    let body = json_of(&broken);
    assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
    assert!(body["errorMessage"].as_str().unwrap().contains("exit status 2"), "{body}");
    assert!(fx.service.instance_pids("broken").is_empty());

    let pids = fx.stop().await;
    assert!(pids.iter().all(|p| !alive(*p)), "instances left: {pids:?}");
}

async fn futures_join<T: Send + 'static>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_invoke_http_api() {
    let fx = start(&[("echo", 5_000, 2, &[])]).await;
    let client = jobs_local::httpx::client();
    let post = |path: String, body: &'static str| {
        hyper::Request::post(format!("{}{path}", fx.service.endpoint()))
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    };

    let resp = client.request(post("/2015-03-31/functions/echo/invocations".into(), r#"{"a":1}"#)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-amz-executed-version"], "$LATEST");
    assert!(resp.headers().get("x-amz-function-error").is_none());
    let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["echo"], json!({"a": 1}));

    // By ARN, URL-encoded, as the SDK sends it.
    let arn = "arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Aecho";
    let resp = client
        .request(post(format!("/2015-03-31/functions/{arn}/invocations"), r#"{"action":"fail","message":"bad"}"#))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-amz-function-error"], "Unhandled");
    let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["errorMessage"], "bad");

    let resp = client.request(post("/2015-03-31/functions/missing/invocations".into(), "{}")).await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-amzn-errortype"], "ResourceNotFoundException");

    let resp = client.request(post("/2015-03-31/functions/echo/invocations".into(), "not json")).await.unwrap();
    assert_eq!(resp.status(), 400);

    let pids = fx.stop().await;
    assert!(pids.iter().all(|p| !alive(*p)), "instances left: {pids:?}");
}

/// Asynchronous events (the SNS → Lambda bridge) wait for a busy function as
/// Lambda keeps them: up to their maximum age, not a fixed minute; and a
/// function error is retried the configured number of times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asynchronous_events_wait_for_a_busy_function_up_to_their_age() {
    use jobs_local::model::notifications::AsyncRetry;
    use jobs_local::notifications::{AsyncOutcome, invoke_async};
    let fx = start(&[("slow", 5_000, 1, &[])]).await;
    let slots = tokio::sync::Semaphore::new(fx.service.max_instances("slow"));
    assert_eq!(fx.service.max_instances("slow"), 1);
    // Another caller keeps the only instance busy for 1.5 s.
    let busy = {
        let s = fx.service.clone();
        tokio::spawn(async move { invoke(&s, "slow", json!({"action": "sleep", "ms": 1_500})).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let event = Bytes::from(json!({"action": "echo"}).to_string());
    let short = AsyncRetry { retry_attempts: 2, max_event_age: Duration::from_millis(200) };
    let outcome = invoke_async(&fx.service, &slots, "slow", short, event.clone()).await;
    assert!(matches!(&outcome, AsyncOutcome::Failed(e) if e.contains("expired")), "{outcome:?}");
    let patient = AsyncRetry { retry_attempts: 2, max_event_age: Duration::from_secs(60) };
    let outcome = invoke_async(&fx.service, &slots, "slow", patient, event).await;
    assert_eq!(outcome, AsyncOutcome::Succeeded { retries: 0 });
    assert!(matches!(busy.await.unwrap(), Ok(Invoked::Response(_))));

    // A function error: retried once here, then reported with its error.
    let once = AsyncRetry { retry_attempts: 1, max_event_age: Duration::from_secs(60) };
    let failing = Bytes::from(json!({"action": "fail", "message": "boom"}).to_string());
    let outcome = invoke_async(&fx.service, &slots, "slow", once, failing).await;
    assert!(matches!(&outcome, AsyncOutcome::Failed(e) if e.contains("boom")), "{outcome:?}");
    let log = std::fs::read_to_string(fx._dir.path().join("slow.log")).unwrap();
    assert_eq!(log.matches("START RequestId").count(), 4, "busy, patient, and the failing event twice:\n{log}");
    fx.stop().await;
}
