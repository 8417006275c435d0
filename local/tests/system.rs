//! The whole local target on the fixture stack (tests/fixtures/cdktf.out)
//! with the `test-function` example playing every function: `start`, the
//! gateway (routes, authorizer, SQS and proxy integrations, gateway
//! responses), the pollers of both mappings (batch item failures, redrive to
//! the DLQ), the webhook rule and signing secret, the Invoke API, and `stop`
//! leaving no process behind.
//!
//! Needs moto: `JOBS_LOCAL_MOTO_BIN`, else `.tools/venv/bin/moto_server` in the
//! workspace, else `moto_server` on PATH; fails without it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::moto_bin;
use http_body_util::{BodyExt, Full};
use jobs_local::outputs::Outputs;
use serde_json::{Value, json};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Stops the system even when an assertion fails.
struct Running {
    state: PathBuf,
    stopped: bool,
}

impl Running {
    fn stop(&mut self) -> std::process::Output {
        self.stopped = true;
        Command::new(env!("CARGO_BIN_EXE_jobs-local")).args(["stop", "--state-dir"]).arg(&self.state).output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.stop();
        }
    }
}

struct Http {
    client: jobs_local::httpx::HttpClient,
}

impl Http {
    async fn call(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, hyper::HeaderMap, String) {
        let mut req = hyper::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.client.request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        (status, headers, body)
    }
}

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (i64, i64) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attrs = out.attributes().unwrap();
    let get = |a: A| attrs.get(&a).and_then(|v| v.parse().ok()).unwrap_or(-1);
    (get(A::ApproximateNumberOfMessages), get(A::ApproximateNumberOfMessagesNotVisible))
}

async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_the_fixture_stack_end_to_end() {
    let moto = moto_bin();
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cdktf.out");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cdktf.out"), &out);
    common::package_fixture_functions(&out);
    let state = dir.path().join("state");
    let started = Command::new(env!("CARGO_BIN_EXE_jobs-local"))
        .arg("start")
        .arg("--stacks")
        .arg(&out)
        .arg("--state-dir")
        .arg(&state)
        .args(["--api-port", "0", "--lambda-port", "0", "--moto-port", "0", "--moto-bin"])
        .arg(&moto)
        .output()
        .unwrap();
    eprintln!("[{:>6.2?}] let mut running = Running", t0.elapsed());
    let mut running = Running { state: state.clone(), stopped: false };
    let stdout = String::from_utf8_lossy(&started.stdout);
    assert!(started.status.success(), "start failed:\n{stdout}\n{}", String::from_utf8_lossy(&started.stderr));
    assert!(stdout.contains("==> [7/7]") && stdout.contains("test user"), "{stdout}");

    let outputs_path = state.join("outputs.json");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&outputs_path).unwrap().permissions().mode() & 0o777, 0o600);
    let o = Outputs::read(&outputs_path).unwrap();
    assert!(o.api_url.ends_with("/test"), "{}", o.api_url);
    assert_eq!(o.region, "eu-west-1");
    assert_eq!(o.username, "demo@example.com");
    let users: Vec<&str> = o.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(users, ["demo@example.com", "demo2@example.com"]);
    assert_eq!(o.users[0].password, o.password);
    assert!(o.job_queue_url.ends_with("/123456789012/fixture-jobs"));
    assert!(o.dead_letter_queue_url.ends_with("/123456789012/fixture-dlq"));
    assert_eq!(
        (o.jobs_table_name.as_str(), o.results_bucket_name.as_str()),
        ("fixture-jobs", "fixture-results-123456789012")
    );
    assert!(o.webhook_queue_url.ends_with("/123456789012/fixture-webhooks"), "{}", o.webhook_queue_url);
    assert!(o.webhook_dead_letter_queue_url.ends_with("/123456789012/fixture-webhooks-dlq"));
    assert_eq!(o.webhook_signing_secret_name, "fixture-webhook-signing");
    let secret = &o.webhook_signing_secret;
    assert!(secret.len() == 64 && secret.chars().all(|c| c.is_ascii_alphanumeric()), "{secret}");

    let http = Http { client: jobs_local::httpx::client() };
    let api = o.api_url.clone();
    let json_ct = ("content-type", "application/json");

    // The test user can sign in with the printed password.
    let auth = json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": o.user_pool_client_id, "AuthParameters": {"USERNAME": o.username, "PASSWORD": o.password}});
    let (status, _, body) = http
        .call(
            "POST",
            &o.cognito_endpoint,
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "AWSCognitoIdentityProviderService.InitiateAuth"),
            ],
            &auth.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(json_of(&body)["AuthenticationResult"]["IdToken"].as_str().unwrap().split('.').count() == 3);

    eprintln!("[{:>6.2?}] // Routing and gateway responses.", t0.elapsed());
    // Routing and gateway responses.
    let (status, headers, body) = http.call("GET", &format!("{api}/nope"), &[], "").await;
    assert_eq!((status, json_of(&body)), (403, json!({"message": "Missing Authentication Token"})));
    assert!(headers.contains_key("x-amzn-requestid"));
    let (status, _, _) = http.call("DELETE", &format!("{api}/submit"), &[], "").await;
    assert_eq!(status, 403);

    // The authorizer.
    let submit = format!("{api}/submit");
    let (status, headers, body) = http.call("POST", &submit, &[json_ct], "{}").await;
    assert_eq!((status, json_of(&body)), (401, json!({"message": "Unauthorized", "hint": "send a token"})));
    assert_eq!(headers["www-authenticate"], "Bearer");
    for (token, expected_status, expected) in [
        ("NOT VALID!", 401, json!({"message": "Unauthorized", "hint": "send a token"})),
        ("unauthorized", 401, json!({"message": "Unauthorized", "hint": "send a token"})),
        ("crash", 500, json!({"message": null, "kind": "5xx"})),
        ("bad", 500, json!({"message": null, "kind": "5xx"})),
        ("deny", 403, json!({"message": "User is not authorized to access this resource with an explicit deny"})),
        ("other", 403, json!({"message": "User is not authorized to access this resource"})),
    ] {
        let (status, _, body) = http.call("POST", &submit, &[json_ct, ("authorization", token)], "{}").await;
        assert_eq!((status, json_of(&body)), (expected_status, expected), "token {token}");
    }

    eprintln!("[{:>6.2?}] // SQS integration:", t0.elapsed());
    // SQS integration: template, response mapping, authorizer context.
    let (status, headers, body) =
        http.call("POST", &submit, &[json_ct, ("authorization", "allow")], r#"{"job":"ok 1"}"#).await;
    assert_eq!(status, 200, "{body}");
    let submitted = json_of(&body);
    assert_eq!(submitted["user"], "tester");
    assert_eq!(submitted["requestId"], headers["x-amzn-requestid"].to_str().unwrap());
    assert_eq!(submitted["jobId"].as_str().unwrap().len(), 36);
    let (status, _, body) =
        http.call("POST", &submit, &[("content-type", "text/plain"), ("authorization", "allow")], "hi").await;
    assert_eq!((status, json_of(&body)), (415, json!({"message": "Unsupported Media Type"})));

    // The queue's 1,024 bytes hold the body and the `user` attribute (user,
    // String, tester: 16 bytes), counted in bytes as SQS does: 1,008 bytes
    // of body fit, one more does not, however few characters they are.
    let sized = |bytes: usize, pad: char| {
        let room = bytes - r#"{"p":""}"#.len();
        let fill: String = std::iter::repeat_n(pad, room / pad.len_utf8()).collect();
        let body = format!(r#"{{"p":"{fill}{}"}}"#, "x".repeat(room % pad.len_utf8()));
        assert_eq!(body.len(), bytes);
        body
    };
    let auth = [json_ct, ("authorization", "allow")];
    let (status, _, body) = http.call("POST", &submit, &auth, &sized(1008, 'é')).await;
    assert_eq!(status, 200, "{body}");
    for pad in ['x', 'é', '😀'] {
        let (status, _, body) = http.call("POST", &submit, &auth, &sized(1009, pad)).await;
        assert_eq!((status, json_of(&body)), (400, json!({"message": "rejected", "code": "InvalidParameterValue"})));
    }

    // Lambda proxy integration.
    let (status, headers, body) =
        http.call("GET", &format!("{api}/items/abc%20d?x=1&x=2"), &[("authorization", "allow")], "").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["x-test"], "yes");
    let event = json_of(&body);
    assert_eq!(event["resource"], "/items/{itemId}");
    assert_eq!(event["path"], "/items/abc%20d");
    assert_eq!(event["pathParameters"], json!({"itemId": "abc d"}));
    assert_eq!(event["multiValueQueryStringParameters"], json!({"x": ["1", "2"]}));
    assert_eq!(event["requestContext"]["stage"], "test");
    assert_eq!(event["requestContext"]["authorizer"]["user"], "tester");
    assert_eq!(event["requestContext"]["authorizer"]["n"], "7");
    assert_eq!(event["requestContext"]["authorizer"]["principalId"], "user-1");
    let (status, _, body) = http.call("GET", &format!("{api}/items"), &[], "").await;
    assert_eq!(status, 201, "{body}");
    assert!(json_of(&body)["requestContext"].get("authorizer").is_none());
    for bad in ["fail", "malformed"] {
        let (status, _, body) =
            http.call("GET", &format!("{api}/items/{bad}"), &[("authorization", "allow")], "").await;
        assert_eq!(
            (status, json_of(&body)),
            (502, json!({"message": "Internal server error", "kind": "5xx"})),
            "{bad}"
        );
    }

    // The authorizer's answer is cached per token.
    let auth_log = Path::new(&o.function_logs["fixture-authorizer"]).to_path_buf();
    let starts = || std::fs::read_to_string(&auth_log).unwrap_or_default().matches("START RequestId").count();
    let before = starts();
    for _ in 0..3 {
        let (status, _, _) = http.call("GET", &format!("{api}/items/x"), &[("authorization", "allow")], "").await;
        assert_eq!(status, 201);
    }
    assert_eq!(starts(), before);

    eprintln!("[{:>6.2?}] // The poller consumed", t0.elapsed());
    // The poller consumed the submitted job ...
    let sqs = jobs_local::provision::sqs_client(&o.aws_endpoints.sqs, &o.region);
    eventually("the jobs queue to drain", Duration::from_secs(15), || async {
        queue_depth(&sqs, &o.job_queue_url).await == (0, 0)
    })
    .await;
    eprintln!("[{:>6.2?}] // ... and a failing record", t0.elapsed());
    // ... and a failing record goes to the DLQ after maxReceiveCount (2).
    let (status, _, _) =
        http.call("POST", &submit, &[json_ct, ("authorization", "allow")], r#"{"job":"fail me"}"#).await;
    assert_eq!(status, 200);
    eventually("the failing job in the DLQ", Duration::from_secs(20), || async {
        queue_depth(&sqs, &o.dead_letter_queue_url).await.0 == 1
    })
    .await;
    let dead = sqs.receive_message().queue_url(&o.dead_letter_queue_url).send().await.unwrap();
    assert_eq!(dead.messages()[0].body(), Some(r#"{"job":"fail me"}"#));
    let consumer_log = std::fs::read_to_string(&o.function_logs["fixture-consumer"]).unwrap();
    assert!(consumer_log.contains("body {\"job\":\"ok 1\"}"), "{consumer_log}");
    assert!(consumer_log.contains("receive count \"2\""), "{consumer_log}");

    eprintln!("[{:>6.2?}] // Webhooks", t0.elapsed());
    // Webhooks: the signing secret in moto holds the value of the outputs,
    // under an ARN only moto knew, which is the one the sender is given ...
    let (status, _, body) = http
        .call(
            "POST",
            &o.aws_endpoints.secretsmanager,
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "secretsmanager.GetSecretValue"),
                ("authorization", &jobs_local::httpx::fake_sigv4(&o.region, "secretsmanager")),
            ],
            &json!({"SecretId": o.webhook_signing_secret_name}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stored = json_of(&body);
    assert_eq!(stored["SecretString"], o.webhook_signing_secret.as_str());
    let env_of = |function: &str, name: &str| {
        let url = format!("{}/2015-03-31/functions/{function}/invocations", o.aws_endpoints.lambda);
        let payload = json!({"action": "env", "name": name}).to_string();
        let http = &http;
        async move { json_of(&http.call("POST", &url, &[], &payload).await.2)["value"].clone() }
    };
    assert_eq!(env_of("fixture-webhook-sender", "WEBHOOK_SIGNING_SECRET_ID").await, stored["ARN"]);
    // ... through the secretsmanager proxy, and callbacks to 127.0.0.1 are
    // allowed (the stack says `public-https`); a function the stack gives no
    // destinations has none.
    let endpoint = env_of("fixture-webhook-sender", "AWS_ENDPOINT_URL_SECRETS_MANAGER").await;
    assert!(
        endpoint.as_str().unwrap().starts_with("http://127.0.0.1:")
            && endpoint != o.aws_endpoints.secretsmanager.as_str(),
        "{endpoint}"
    );
    assert_eq!(env_of("fixture-webhook-sender", "WEBHOOK_DESTINATIONS").await, "public-https-and-loopback");
    assert_eq!(env_of("fixture-consumer", "WEBHOOK_DESTINATIONS").await, Value::Null);

    // The rule sends a job's end with a callback URL, whole, to the webhook
    // queue, whose own poller invokes the sender: a delivery it reports as
    // failed comes back and, after maxReceiveCount (2), is in the webhook DLQ.
    let entry = |detail: Value| json!({"EventBusName": "fixture-jobs", "Source": "job-ingestion", "DetailType": "Job Completed", "Detail": detail.to_string()});
    let (status, _, body) = http
        .call(
            "POST",
            &o.aws_endpoints.events,
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "AWSEvents.PutEvents"),
                ("authorization", &jobs_local::httpx::fake_sigv4(&o.region, "events")),
            ],
            &json!({"Entries": [
                entry(json!({"jobId": "hook-ok", "callbackUrl": "http://127.0.0.1:9/ok"})),
                entry(json!({"jobId": "hook-fail", "callbackUrl": "http://127.0.0.1:9/ok"})),
                entry(json!({"jobId": "hook-none"})),
            ]})
            .to_string(),
        )
        .await;
    assert_eq!((status, json_of(&body)["FailedEntryCount"].as_u64()), (200, Some(0)), "{body}");
    eventually("the failed delivery in the webhook DLQ", Duration::from_secs(20), || async {
        queue_depth(&sqs, &o.webhook_dead_letter_queue_url).await.0 == 1
    })
    .await;
    eventually("the webhook queue to drain", Duration::from_secs(10), || async {
        queue_depth(&sqs, &o.webhook_queue_url).await == (0, 0)
    })
    .await;
    let dead = sqs.receive_message().queue_url(&o.webhook_dead_letter_queue_url).send().await.unwrap();
    let event = json_of(dead.messages()[0].body().unwrap());
    assert_eq!(
        (&event["detail-type"], &event["account"], &event["detail"]),
        (
            &json!("Job Completed"),
            &json!("123456789012"),
            &json!({"jobId": "hook-fail", "callbackUrl": "http://127.0.0.1:9/ok"})
        )
    );
    let sender_log = std::fs::read_to_string(&o.function_logs["fixture-webhook-sender"]).unwrap();
    // The consumer logs each record's body: one line per receive.
    let receives = |job: &str| sender_log.lines().filter(|l| l.contains(&format!("\"{job}\""))).count();
    assert_eq!((receives("hook-ok"), receives("hook-fail"), receives("hook-none")), (1, 2, 0), "{sender_log}");

    eprintln!("[{:>6.2?}] // The Invoke API", t0.elapsed());
    // The Invoke API, as the functions' SDK clients use it.
    let (status, headers, body) = http
        .call(
            "POST",
            &format!("{}/2015-03-31/functions/fixture-items/invocations", o.aws_endpoints.lambda),
            &[],
            r#"{"path":"/direct"}"#,
        )
        .await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("x-amz-function-error"));
    assert_eq!(json_of(&body)["statusCode"], 201);

    eprintln!("[{:>6.2?}] // The memory of every process it runs", t0.elapsed());
    let client = jobs_local::httpx::client();
    let req = hyper::Request::get(&o.processes_url).body(jobs_local::httpx::Body::default()).unwrap();
    let (status, _, body) = jobs_local::httpx::send(&client, req).await.unwrap();
    assert_eq!(status, 200);
    let report: Value = serde_json::from_slice(&body).unwrap();
    let processes = report["processes"].as_array().unwrap();
    let named = |kind: &str| -> Vec<String> {
        let mut v: Vec<String> = processes
            .iter()
            .filter(|p| p["kind"] == kind && p["alive"] == true && p["peakRssMib"].as_f64().unwrap() > 0.0)
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(named("jobs-local"), ["jobs-local"]);
    assert_eq!(named("moto"), ["cognito-idp", "dynamodb", "s3", "sqs"]);
    assert!(named("function").contains(&"fixture-consumer".to_string()), "{report}");
    assert!(report["peakTotalRssMib"].as_f64().unwrap() >= report["totalRssMib"].as_f64().unwrap());

    eprintln!("[{:>6.2?}] // Stop: nothing", t0.elapsed());
    // Stop: nothing of the process group is left.
    let pid = o.pid as i32;
    assert!(jobs_local::process::group_alive(pid));
    let stop_started = Instant::now();
    let stopped = running.stop();
    eprintln!("[{:>6.2?}] stop took {:?}", t0.elapsed(), stop_started.elapsed());
    let log = std::fs::read_to_string(state.join("jobs-local.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(12).collect();
    assert!(stopped.status.success(), "{}; log tail:\n{}", String::from_utf8_lossy(&stopped.stderr), tail.join("\n"));
    assert!(String::from_utf8_lossy(&stopped.stdout).contains("Stopped."));
    assert!(!jobs_local::process::group_alive(pid), "processes of group {pid} are still alive");
    assert!(!outputs_path.exists());
    let again =
        Command::new(env!("CARGO_BIN_EXE_jobs-local")).args(["stop", "--state-dir"]).arg(&state).output().unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("not running"));
    eprintln!("[{:>6.2?}] done", t0.elapsed());
}
