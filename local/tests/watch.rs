//! `jobs-local watch` end to end: the fixture stack runs (tests/fixtures,
//! `test-function` playing its functions), and `watch` watches a throwaway
//! cargo workspace holding a real function for the stack's `items`: a crate
//! `items` using a shared crate `greeting`, with no dependencies (a Runtime
//! API client on std alone), so that its cargo-lambda release build takes
//! seconds. The test only edits that copy, never the repository.
//!
//! Shown: a change to the shared crate rebuilds and swaps `items` (the
//! `rebuilt in`/`swapped` line, a changed answer); an invocation in flight
//! during the swap completes on the old build; a syntax error prints the
//! compiler's error and `build failed: items keeps serving the previous
//! build`, and the previous build keeps answering. And the errors for a
//! system that is not running and an unknown arch.
//!
//! Needs moto (as tests/system.rs) and `cargo lambda` with zig on PATH
//! (`./just` puts .tools/venv/bin there).

mod common;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use jobs_local::outputs::Outputs;
use serde_json::{Value, json};

/// A bound on waits, so that a broken watch fails the test instead of
/// hanging it; no test outcome depends on it.
const PATIENCE: Duration = Duration::from_secs(600);

const ITEMS_MAIN: &str = r#"//! A Lambda function on std alone: answers every event with the greeting.
use std::io::{Read as _, Write as _};
use std::net::TcpStream;

fn main() {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").expect("AWS_LAMBDA_RUNTIME_API");
    let api = api.trim_start_matches("http://").to_string();
    let (host, prefix) = match api.split_once('/') {
        Some((host, path)) => (host.to_string(), format!("/{path}")),
        None => (api.clone(), String::new()),
    };
    loop {
        let (head, event) = call(&host, "GET", &format!("{prefix}/2018-06-01/runtime/invocation/next"), "");
        let id = head.lines().find_map(|l| l.strip_prefix("lambda-runtime-aws-request-id:")).unwrap_or("").trim().to_string();
        // {"wait_for": path}: answer once the file exists.
        if let Some(path) = event.split("\"wait_for\":\"").nth(1).and_then(|r| r.split('"').next()) {
            while !std::path::Path::new(path).exists() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let answer = format!("{{\"greeting\":\"{}\",\"pid\":{}}}", greeting::GREETING, std::process::id());
        call(&host, "POST", &format!("{prefix}/2018-06-01/runtime/invocation/{id}/response"), &answer);
    }
}

/// One HTTP/1.1 exchange; the lowercased head and the body.
fn call(host: &str, method: &str, path: &str, body: &str) -> (String, String) {
    let mut s = TcpStream::connect(host).expect("the Runtime API");
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    s.write_all(request.as_bytes()).expect("a request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("an answer");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_lowercase(), body.to_string())
}
"#;

fn greeting_lib(greeting: &str) -> String {
    format!("pub const GREETING: &str = \"{greeting}\";\n")
}

/// The throwaway workspace: `greeting` (shared) and `items` (the function).
fn write_workspace(ws: &Path) {
    // The repository's Rust (rustup reads the workspace's toolchain file from
    // the directory it runs in); the test reads nothing else of the repository.
    let rustc = Command::new("rustc").arg("-V").current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    let version = String::from_utf8_lossy(&rustc.stdout).split_whitespace().nth(1).unwrap().to_string();
    let files: &[(&str, String)] = &[
        ("Cargo.toml", "[workspace]\nmembers = [\"greeting\", \"items\"]\nresolver = \"2\"\n".into()),
        ("greeting/Cargo.toml", "[package]\nname = \"greeting\"\nversion = \"0.1.0\"\nedition = \"2024\"\n".into()),
        ("greeting/src/lib.rs", greeting_lib("hello v1")),
        (
            "items/Cargo.toml",
            "[package]\nname = \"items\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\ngreeting = { path = \"../greeting\" }\n".into(),
        ),
        ("items/src/main.rs", ITEMS_MAIN.into()),
        ("rust-toolchain.toml", format!("[toolchain]\nchannel = \"{version}\"\n")),
    ];
    for (path, text) in files {
        let path = ws.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let lock = Command::new("cargo").args(["generate-lockfile", "--offline"]).current_dir(ws).output().unwrap();
    assert!(lock.status.success(), "{}", String::from_utf8_lossy(&lock.stderr));
}

/// The system and the watcher, stopped even when an assertion fails.
struct Running {
    state: PathBuf,
    watch: Option<Child>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut watch) = self.watch.take() {
            let _ = watch.kill();
            let _ = watch.wait();
        }
        let _ = Command::new(env!("CARGO_BIN_EXE_jobs-local")).args(["stop", "--state-dir"]).arg(&self.state).output();
    }
}

/// The watcher's output, line by line (stdout and stderr).
struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn of(child: &mut Child) -> Lines {
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            std::io::BufReader::new(out).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l)))
        });
        std::thread::spawn(move || {
            std::io::BufReader::new(err).lines().map_while(Result::ok).for_each(|l| drop(tx2.send(l)))
        });
        Lines { rx, seen: Vec::new() }
    }

    /// The next line containing `text` (the lines before it are kept in `seen`).
    fn until(&mut self, text: &str) -> String {
        loop {
            match self.rx.recv_timeout(PATIENCE) {
                Ok(line) => {
                    eprintln!("watch| {line}");
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("watch never printed `{text}`; it printed:\n{}", self.seen.join("\n")),
            }
        }
    }
}

async fn invoke(lambda: &str, function: &str, payload: Value) -> Value {
    let client = jobs_local::httpx::client();
    let req = hyper::Request::post(format!("{lambda}/2015-03-31/functions/{function}/invocations"))
        .body(Full::new(Bytes::from(payload.to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let failed = resp.headers().get("x-amz-function-error").is_some();
    let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(!failed, "{function} failed: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_rebuilds_a_changed_function_and_swaps_it_in_the_running_system() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("workspace");
    write_workspace(&ws);
    // An invocation is held across a rebuild: no timeout may end it first.
    let stack = common::edited_fixture(|app| app["resource"]["aws_lambda_function"]["items"]["timeout"] = json!(900));
    let out = stack.path().to_path_buf();
    common::package_fixture_functions(&out);
    let state = dir.path().join("state");
    let mut running = Running { state: state.clone(), watch: None };
    let started = Command::new(env!("CARGO_BIN_EXE_jobs-local"))
        .arg("start")
        .arg("--stacks")
        .arg(&out)
        .arg("--state-dir")
        .arg(&state)
        .args(["--api-port", "0", "--lambda-port", "0", "--moto-port", "0", "--moto-bin"])
        .arg(common::moto_bin())
        .output()
        .unwrap();
    assert!(started.status.success(), "start failed:\n{}", String::from_utf8_lossy(&started.stderr));
    let o = Outputs::read(&state.join("outputs.json")).unwrap();
    let lambda = o.aws_endpoints.lambda.clone();
    let items = o.function_logs.keys().find(|f| f.ends_with("-items")).unwrap().clone();

    let mut watch = Command::new(env!("CARGO_BIN_EXE_jobs-local"))
        .arg("watch")
        .arg("--state-dir")
        .arg(&state)
        .arg("--workspace")
        .arg(&ws)
        // Its own target dir: the throwaway workspace's build is its own.
        .env("CARGO_TARGET_DIR", ws.join("target"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::of(&mut watch);
    running.watch = Some(watch);
    let watching = lines.until("==> watching");
    assert!(watching.contains(&format!("items ({items})")), "{watching}");
    assert!(!watching.contains("greeting ("), "a library is no function: {watching}");

    // A change of the shared crate rebuilds the function using it.
    std::fs::write(ws.join("greeting/src/lib.rs"), greeting_lib("hello v2")).unwrap();
    let building = lines.until("==> items: building");
    assert!(building.ends_with("(greeting/src/lib.rs changed)"), "the edit, and only it, starts a build: {building}");
    let swapped = lines.until("==> items: rebuilt in");
    assert!(swapped.contains("s, swapped ("), "{swapped}");
    let v2 = invoke(&lambda, &items, json!({})).await;
    assert_eq!(v2["greeting"], "hello v2");

    // An invocation in flight during the next swap finishes on its build.
    let release = dir.path().join("release");
    let held = tokio::spawn({
        let (lambda, items) = (lambda.clone(), items.clone());
        let payload = json!({"wait_for": release.display().to_string()});
        async move { invoke(&lambda, &items, payload).await }
    });
    std::fs::write(ws.join("greeting/src/lib.rs"), greeting_lib("hello v3")).unwrap();
    let swapped = lines.until("==> items: rebuilt in");
    assert!(swapped.contains("0 idle instances retired, 1 finishing its invocation first"), "{swapped}");
    let v3 = invoke(&lambda, &items, json!({})).await;
    assert_eq!(v3["greeting"], "hello v3");
    std::fs::write(&release, "").unwrap();
    let held = held.await.unwrap();
    assert_eq!(held["greeting"], "hello v2", "the invocation in flight completed on the build it started on");
    assert_ne!(held["pid"], v3["pid"]);

    // A build error is shown; the previous build keeps serving.
    std::fs::write(ws.join("items/src/main.rs"), ITEMS_MAIN.replace("fn main() {", "fn main() {{")).unwrap();
    let failed = lines.until("build failed:");
    assert_eq!(failed, "build failed: items keeps serving the previous build");
    assert!(
        lines.seen.iter().any(|l| l.starts_with("error")),
        "the compiler's error is shown:\n{}",
        lines.seen.join("\n")
    );
    assert_eq!(invoke(&lambda, &items, json!({})).await["greeting"], "hello v3");

    // Ctrl-C stops it.
    let mut watch = running.watch.take().unwrap();
    // SAFETY: kill(2) on the child this test started and has not reaped.
    unsafe { libc::kill(watch.id() as i32, libc::SIGINT) };
    assert!(watch.wait().unwrap().success());
}

#[test]
fn watch_says_when_the_system_is_not_running_or_the_arch_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_jobs-local")).arg("watch").args(args).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let state = dir.path().display().to_string();
    let err = run(&["--state-dir", &state]);
    assert!(err.contains("the local system is not running") && err.contains("./just up"), "{err}");
    let err = run(&["--state-dir", &state, "--arch", "aarch64"]);
    assert!(err.contains("unknown arch `aarch64`: it must be x86_64 or arm64"), "{err}");
}
