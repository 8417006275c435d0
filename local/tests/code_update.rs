//! Swapping a function's code while it serves (`LambdaService::update_code`
//! and `PUT /2015-03-31/functions/{name}/code`), with real processes of the
//! `test-function` example: every invocation queued across a swap is
//! answered, one in flight finishes on the old code and its instance then
//! retires, idle instances of the old code are stopped, later invocations run
//! the new code, and a bad zip is refused while the code in place keeps
//! serving.
//!
//! Each code version is a zip whose `bootstrap` is a shell script running
//! the example with `CODE_VERSION` set: `env` invocations tell the versions
//! apart.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use jobs_local::lambda::{FunctionSpec, Invoked, LambdaService, UpdateCodeError, platform_env};
use serde_json::{Value, json};

/// A zip of `files`; `bootstrap` gets mode 0755.
fn zip_of(files: &[(&str, String)]) -> Bytes {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in files {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        w.start_file(*name, options).unwrap();
        w.write_all(text.as_bytes()).unwrap();
    }
    Bytes::from(w.finish().unwrap().into_inner())
}

/// Code version `version`: the example, run with `CODE_VERSION=<version>`.
fn version_zip(version: &str) -> Bytes {
    let script = format!("#!/bin/sh\nCODE_VERSION={version} exec '{}'\n", common::test_function().display());
    zip_of(&[("bootstrap", script)])
}

async fn start(dir: &Path) -> LambdaService {
    let root = dir.join("functions").join("echo");
    jobs_local::package::extract(&write(dir, "v1.zip", &version_zip("v1")), &root).unwrap();
    let spec = FunctionSpec {
        name: "echo".into(),
        arn: "arn:aws:lambda:eu-west-1:123456789012:function:echo".into(),
        env: platform_env("echo", 128, "bootstrap", "eu-west-1", &root),
        task_root: root,
        timeout: Duration::from_secs(30),
        max_instances: 40,
        log_file: dir.join("echo.log"),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    LambdaService::start(listener, vec![spec], "eu-west-1", "123456789012").unwrap().0
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn invoke(service: &LambdaService, payload: Value) -> Value {
    match service.invoke("echo", Bytes::from(payload.to_string())).await {
        Ok(Invoked::Response(body)) => serde_json::from_slice(&body).unwrap(),
        other => panic!("{payload} was not answered: {other:?}"),
    }
}

async fn version(service: &LambdaService) -> String {
    invoke(service, json!({"action": "env", "name": "CODE_VERSION"})).await["value"].as_str().unwrap().to_string()
}

fn starts_logged(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("echo.log")).unwrap_or_default().matches("START RequestId").count()
}

/// Waits (bounded) for `pid` to be reaped.
async fn reaped(pid: u64) -> bool {
    for _ in 0..400 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

fn pid_of(answer: &Value) -> u64 {
    answer["pid"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_answers_every_invocation_and_later_ones_run_the_new_code() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path()).await;
    assert_eq!(version(&service).await, "v1");

    // Three warm instances of v1.
    let warm: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn({
                let s = service.clone();
                async move { invoke(&s, json!({"action": "sleep", "ms": 300})).await }
            })
        })
        .collect();
    let mut old_pids = Vec::new();
    for w in warm {
        old_pids.push(pid_of(&w.await.unwrap()));
    }
    // Two of them take a long invocation; the third stays idle.
    let before = starts_logged(dir.path());
    let long: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn({
                let s = service.clone();
                async move { invoke(&s, json!({"action": "sleep", "ms": 1500})).await }
            })
        })
        .collect();
    while starts_logged(dir.path()) < before + 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let update = service.update_code("echo", version_zip("v2")).await.unwrap();
    assert_eq!((update.retired_idle, update.retiring_busy), (1, 2), "{update:?}");
    assert!(update.task_root.ends_with("echo.v1"), "a fresh task root next to the first: {update:?}");
    assert_eq!(version(&service).await, "v2");

    // Invocations queued across another swap, on instances of either code.
    let queued: Vec<_> = (0..20)
        .map(|i| {
            tokio::spawn({
                let s = service.clone();
                async move { invoke(&s, json!({"n": i})).await }
            })
        })
        .collect();
    service.update_code("echo", version_zip("v3")).await.unwrap();
    for (i, q) in queued.into_iter().enumerate() {
        assert_eq!(q.await.unwrap()["echo"], json!({"n": i}), "every queued invocation is answered");
    }
    for l in long {
        let answer = l.await.unwrap();
        assert_eq!(answer["slept"], 1500, "the invocations in flight finish");
        assert!(old_pids.contains(&pid_of(&answer)), "on the old code's instances: {answer}");
    }
    for pid in &old_pids {
        assert!(reaped(*pid).await, "the old code's instance {pid} retires");
    }
    // A later invocation runs the new code, on an instance that is not an
    // old one (asked first: the swap to v3 may have retired every idle
    // instance, leaving none until the next invocation starts one).
    assert_eq!(version(&service).await, "v3");
    let now = service.instance_pids("echo");
    assert!(!now.is_empty() && now.iter().all(|p| !old_pids.contains(&u64::from(*p))), "{now:?} vs {old_pids:?}");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_zip_is_refused_and_the_code_in_place_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path()).await;
    assert_eq!(version(&service).await, "v1");
    let warm = service.instance_pids("echo");

    let no_bootstrap = zip_of(&[("handler", "#!/bin/sh\n".into())]);
    let err = service.update_code("echo", no_bootstrap.clone()).await.unwrap_err();
    let UpdateCodeError::InvalidZip(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("no `bootstrap`") && message.contains("previous code keeps serving"), "{message}");
    let err = service.update_code("echo", Bytes::from_static(b"not a zip")).await.unwrap_err();
    assert!(matches!(err, UpdateCodeError::InvalidZip(_)), "{err:?}");
    assert_eq!(
        service.update_code("nope", version_zip("v2")).await.unwrap_err(),
        UpdateCodeError::NotFound("nope".into())
    );
    assert_eq!(version(&service).await, "v1");
    assert_eq!(service.instance_pids("echo"), warm, "a refused update stops no instance");

    // The same through the Lambda API, as `aws lambda update-function-code` sends it.
    let client = jobs_local::httpx::client();
    let put = |function: &str, zip: &Bytes| {
        let body = json!({"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip)}).to_string();
        hyper::Request::put(format!("{}/2015-03-31/functions/{function}/code", service.endpoint()))
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let resp = client.request(put("echo", &no_bootstrap)).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["x-amzn-errortype"], "InvalidParameterValueException");
    let resp = client.request(put("nope", &version_zip("v2"))).await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(version(&service).await, "v1");

    let resp = client.request(put("echo", &version_zip("v3"))).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["FunctionName"], "echo");
    assert_eq!(body["LastUpdateStatus"], "Successful");
    assert_eq!(body["LocalCodeSwap"]["retiredIdleInstances"], 1, "{body}");
    assert_eq!(version(&service).await, "v3");
    service.shutdown().await;
}
