//! The local Lambda service: function instances are real processes of each
//! function's `bootstrap`, driven through the Lambda Runtime API; callers use
//! [`LambdaService::invoke`] (the pollers and the gateway) or the Invoke HTTP
//! API (the functions' own SDK clients).
//!
//! Each instance gets its own Runtime API base URL,
//! `http://127.0.0.1:<port>/<function>/<instance>`, so the service always
//! knows which process holds which invocation: that is what lets it kill the
//! right process on a timeout and report an exit mid-invocation.

mod api;
mod code;

pub use api::trace_id;
pub use code::{CodeUpdate, UpdateCodeError, update_function_code};

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::intercept::Interceptors;
use crate::process;

/// AWS's account-level default when a function reserves no concurrency.
pub const DEFAULT_CONCURRENCY: usize = 1000;
/// How long an instance may take to initialize (Lambda's init phase limit).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Synchronous invocation payload limit (request and response).
pub const PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

/// What to run for one function.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: String,
    pub arn: String,
    /// The directory the zip was extracted to; `bootstrap` is run from it
    /// until an update replaces the code (`PoolState::code`).
    pub task_root: PathBuf,
    /// Environment of every instance (the Runtime API URL and log stream
    /// name are added per instance).
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    pub max_instances: usize,
    /// Where the instances' stdout/stderr and the platform lines go.
    pub log_file: PathBuf,
}

/// The variables Lambda itself sets for every instance of a function (the
/// Runtime API URL and log stream name are added per instance). Dummy
/// credentials: the emulators do not check them.
pub fn platform_env(
    name: &str,
    memory_mb: u64,
    handler: &str,
    region: &str,
    task_root: &std::path::Path,
) -> BTreeMap<String, String> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    [
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
        ("_HANDLER", handler.to_string()),
        ("AWS_REGION", region.to_string()),
        ("AWS_DEFAULT_REGION", region.to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_SESSION_TOKEN", "test".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
        ("LAMBDA_RUNTIME_DIR", task_root.display().to_string()),
        ("TZ", ":UTC".to_string()),
        ("LANG", "C.UTF-8".to_string()),
        ("PATH", path),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A completed invocation, as Lambda's Invoke API reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Invoked {
    /// The function's response payload.
    Response(Bytes),
    /// An `Unhandled` function error with its JSON body
    /// (`{"errorType": ..., "errorMessage": ...}`).
    Error(Bytes),
}

impl Invoked {
    pub fn error(error_type: &str, message: &str) -> Invoked {
        Invoked::Error(Bytes::from(json!({"errorType": error_type, "errorMessage": message}).to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("function not found: {0}")]
    NotFound(String),
    #[error("rate exceeded: all {0} instances of the function are busy")]
    Throttled(usize),
    #[error("the Lambda service is shutting down")]
    ShuttingDown,
}

/// What a runtime reported for one invocation.
#[derive(Debug)]
enum Outcome {
    Response(Bytes),
    Error(Bytes),
    /// The instance ended while holding the invocation.
    Exited(String),
    /// The instance ended before taking the invocation: try another.
    NotStarted,
}

struct Invocation {
    request_id: String,
    payload: Bytes,
    deadline_ms: u64,
    reply: oneshot::Sender<Outcome>,
}

struct InFlight {
    request_id: String,
    /// The event being handled (fault injection picks invocations by it).
    payload: Bytes,
    reply: oneshot::Sender<Outcome>,
}

struct Instance {
    id: u64,
    /// The code it runs (`code::Code::generation`).
    generation: u64,
    pid: u32,
    tx: mpsc::Sender<Invocation>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    inflight: Mutex<Option<InFlight>>,
    /// Set by the first `next` call.
    ready: watch::Sender<bool>,
    /// `Some(description)` once the process has ended.
    exited: watch::Sender<Option<String>>,
    init_error: Mutex<Option<Bytes>>,
    kill: Notify,
}

impl Instance {
    fn alive(&self) -> bool {
        self.exited.borrow().is_none()
    }
}

struct Pool {
    spec: FunctionSpec,
    state: Mutex<PoolState>,
    log: Mutex<Option<std::fs::File>>,
}

#[derive(Default)]
struct PoolState {
    instances: HashMap<u64, Arc<Instance>>,
    /// Warm instances not running an invocation (most recent last).
    idle: Vec<Arc<Instance>>,
    /// What new instances run.
    code: code::Code,
}

struct Inner {
    pools: HashMap<String, Arc<Pool>>,
    /// `http://127.0.0.1:<port>`
    base_url: String,
    next_instance: AtomicU64,
    shutdown: watch::Sender<bool>,
    monitors: Mutex<Vec<JoinHandle<()>>>,
    region: String,
    account_id: String,
    /// What the Invoke API's calls pass through (IAM's
    /// `lambda:InvokeFunction` check, then fault injection).
    interceptors: std::sync::OnceLock<Arc<Interceptors>>,
}

/// The running service. Cheap to clone.
#[derive(Clone)]
pub struct LambdaService {
    inner: Arc<Inner>,
}

impl LambdaService {
    /// Serves the Runtime and Invoke APIs on `listener`.
    pub fn start(
        listener: TcpListener,
        functions: Vec<FunctionSpec>,
        region: &str,
        account_id: &str,
    ) -> anyhow::Result<(LambdaService, JoinHandle<()>)> {
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let pools = functions
            .into_iter()
            .map(|spec| {
                let log = std::fs::OpenOptions::new().create(true).append(true).open(&spec.log_file).ok();
                (
                    spec.name.clone(),
                    Arc::new(Pool {
                        state: Mutex::new(PoolState { code: code::Code::new(&spec.task_root), ..Default::default() }),
                        spec,
                        log: Mutex::new(log),
                    }),
                )
            })
            .collect();
        let service = LambdaService {
            inner: Arc::new(Inner {
                pools,
                base_url: format!("http://{addr}"),
                next_instance: AtomicU64::new(1),
                shutdown,
                monitors: Mutex::new(Vec::new()),
                region: region.to_string(),
                account_id: account_id.to_string(),
                interceptors: std::sync::OnceLock::new(),
            }),
        };
        let api = Arc::new(api::Api { service: service.clone() });
        let server = tokio::spawn(crate::httpx::serve(listener, api, shutdown_rx, Duration::from_millis(500)));
        Ok((service, server))
    }

    /// `http://127.0.0.1:<port>`: the Invoke API endpoint.
    pub fn endpoint(&self) -> &str {
        &self.inner.base_url
    }

    pub fn has_function(&self, name: &str) -> bool {
        self.inner.pools.contains_key(name)
    }

    pub fn function_arn(&self, name: &str) -> String {
        crate::stack::lambda_arn(&self.inner.region, &self.inner.account_id, name)
    }

    /// How many instances of `name` may run at once (its reserved
    /// concurrency); 0 for an unknown function.
    pub fn max_instances(&self, name: &str) -> usize {
        self.inner.pools.get(name).map(|p| p.spec.max_instances).unwrap_or(0)
    }

    /// (function, pid) of every live instance.
    pub fn all_instance_pids(&self) -> Vec<(String, u32)> {
        let mut all = Vec::new();
        for (name, pool) in &self.inner.pools {
            all.extend(lock(&pool.state).instances.values().map(|i| (name.clone(), i.pid)));
        }
        all
    }

    /// Live instance count per function (for tests and diagnostics).
    pub fn instance_pids(&self, name: &str) -> Vec<u32> {
        self.inner
            .pools
            .get(name)
            .map(|p| lock(&p.state).instances.values().map(|i| i.pid).collect())
            .unwrap_or_default()
    }

    /// Checks the Invoke API's callers with IAM only.
    pub fn set_iam(&self, iam: Arc<crate::iam::Iam>) {
        self.set_interceptors(Arc::new(Interceptors::new(iam, None)));
    }

    /// Passes every Invoke API call through `interceptors` (IAM, then fault
    /// injection with `jobs-local start --faults`).
    pub fn set_interceptors(&self, interceptors: Arc<Interceptors>) {
        let _ = self.inner.interceptors.set(interceptors);
    }

    /// Logs an invocation an interceptor failed without running `function`.
    fn log_fault(&self, function: &str, error: &Bytes) {
        if let Some(pool) = self.inner.pools.get(function) {
            let summary = payload_summary(&Invoked::Error(error.clone()));
            pool.log_line(&format!("fault injection: invocation failed without running: {summary}"));
        }
    }

    /// SIGKILLs an instance of `name` that holds an invocation whose event
    /// contains `payload_contains` (any invocation if empty), as a crash
    /// would, waiting up to `wait` for one. The invocation then ends with
    /// `Runtime.ExitError`. Returns its pid and request id.
    pub async fn kill_busy_instance(
        &self,
        name: &str,
        payload_contains: &str,
        wait: Duration,
    ) -> Option<(u32, String)> {
        let pool = self.inner.pools.get(name)?.clone();
        let deadline = Instant::now() + wait;
        let wanted = payload_contains.as_bytes();
        loop {
            let busy = lock(&pool.state).instances.values().find_map(|i| {
                let request_id = lock(&i.inflight)
                    .as_ref()
                    .filter(|f| wanted.is_empty() || f.payload.windows(wanted.len()).any(|w| w == wanted))
                    .map(|f| f.request_id.clone())?;
                i.alive().then(|| (i.pid, request_id))
            });
            if let Some((pid, request_id)) = busy
                && pid != 0
            {
                // SAFETY: kill(2) with a pid this service spawned and has not reaped.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                pool.log_line(&format!("fault injection: SIGKILL pid {pid} during RequestId: {request_id}"));
                return Some((pid, request_id));
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Invokes `name` synchronously. Runs to completion even if the caller
    /// stops waiting, so the instance is always released or replaced.
    pub async fn invoke(&self, name: &str, payload: Bytes) -> Result<Invoked, InvokeError> {
        let this = self.clone();
        let name = name.to_string();
        match tokio::spawn(async move { this.invoke_inner(&name, payload).await }).await {
            Ok(r) => r,
            Err(_) => Err(InvokeError::ShuttingDown),
        }
    }

    async fn invoke_inner(&self, name: &str, payload: Bytes) -> Result<Invoked, InvokeError> {
        let pool = self.inner.pools.get(name).cloned().ok_or_else(|| InvokeError::NotFound(name.to_string()))?;
        loop {
            if *self.inner.shutdown.borrow() {
                return Err(InvokeError::ShuttingDown);
            }
            let (instance, init) = match self.acquire(&pool).await? {
                Acquired::Instance(i, init) => (i, init),
                Acquired::InitFailed(error) => return Ok(error),
            };
            let request_id = uuid::Uuid::new_v4().to_string();
            let timeout = pool.spec.timeout;
            let started = Instant::now();
            let deadline_ms =
                (SystemTime::now() + timeout).duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
            let (reply, outcome) = oneshot::channel();
            let invocation =
                Invocation { request_id: request_id.clone(), payload: payload.clone(), deadline_ms, reply };
            if instance.tx.try_send(invocation).is_err() {
                // Died (or misbehaves): take another one.
                pool.remove(&instance);
                instance.kill.notify_one();
                continue;
            }
            pool.log_line(&format!("START RequestId: {request_id} Version: $LATEST"));
            let result = tokio::select! {
                o = outcome => o.unwrap_or(Outcome::NotStarted),
                _ = tokio::time::sleep(timeout) => {
                    instance.kill.notify_one();
                    pool.remove(&instance);
                    let secs = timeout.as_secs_f64();
                    pool.log_line(&format!("{} {request_id} Task timed out after {secs:.2} seconds", rfc3339_now()));
                    pool.report(&request_id, started, init, "timeout");
                    return Ok(Invoked::error("Sandbox.Timedout", &format!("RequestId: {request_id} Error: Task timed out after {secs:.2} seconds")));
                }
            };
            let invoked = match result {
                Outcome::Response(body) => {
                    pool.release(instance);
                    Invoked::Response(body)
                }
                Outcome::Error(body) => {
                    pool.release(instance);
                    Invoked::Error(body)
                }
                Outcome::Exited(how) => {
                    pool.log_line(&format!("RequestId: {request_id} Error: Runtime exited with error: {how}"));
                    Invoked::error(
                        "Runtime.ExitError",
                        &format!("RequestId: {request_id} Error: Runtime exited with error: {how}"),
                    )
                }
                Outcome::NotStarted => continue,
            };
            pool.report(
                &request_id,
                started,
                init,
                if matches!(invoked, Invoked::Response(_)) { "ok" } else { "error" },
            );
            return Ok(invoked);
        }
    }

    /// A warm instance, or a new one once it is ready.
    async fn acquire(&self, pool: &Arc<Pool>) -> Result<Acquired, InvokeError> {
        let instance = {
            let mut st = lock(&pool.state);
            while let Some(i) = st.idle.pop() {
                if i.alive() {
                    return Ok(Acquired::Instance(i, None));
                }
            }
            if st.instances.len() >= pool.spec.max_instances {
                return Err(InvokeError::Throttled(pool.spec.max_instances));
            }
            match self.spawn_instance(pool, &st.code) {
                Ok(i) => {
                    st.instances.insert(i.id, i.clone());
                    i
                }
                Err(e) => {
                    tracing::error!(function = %pool.spec.name, error = %e, "cannot start an instance");
                    return Ok(Acquired::InitFailed(Invoked::error(
                        "Runtime.InvalidEntrypoint",
                        &format!("cannot start bootstrap: {e}"),
                    )));
                }
            }
        };
        let started = Instant::now();
        let mut ready = instance.ready.subscribe();
        let ready_wait = crate::httpx::wait_true(&mut ready);
        let mut exited = instance.exited.subscribe();
        tokio::select! {
            _ = ready_wait => {
                let init = started.elapsed();
                tracing::info!(function = %pool.spec.name, instance = instance.id, pid = instance.pid, init_ms = init.as_millis() as u64, "cold start");
                Ok(Acquired::Instance(instance, Some(init)))
            }
            how = wait_exit(&mut exited) => {
                let reported = lock(&instance.init_error).clone();
                pool.remove(&instance);
                Ok(Acquired::InitFailed(match reported {
                    Some(body) => Invoked::Error(body),
                    None => Invoked::error("Runtime.ExitError", &format!("Error: Runtime exited with error: {how}")),
                }))
            }
            _ = tokio::time::sleep(INIT_TIMEOUT) => {
                instance.kill.notify_one();
                pool.remove(&instance);
                Ok(Acquired::InitFailed(Invoked::error("Sandbox.Timedout", &format!("Init timed out after {:.2} seconds", INIT_TIMEOUT.as_secs_f64()))))
            }
        }
    }

    fn spawn_instance(&self, pool: &Arc<Pool>, code: &code::Code) -> std::io::Result<Arc<Instance>> {
        let spec = &pool.spec;
        let id = self.inner.next_instance.fetch_add(1, Ordering::Relaxed);
        let bootstrap = code.task_root.join("bootstrap");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&spec.log_file)?;
        let mut cmd = Command::new(&bootstrap);
        cmd.current_dir(&code.task_root)
            .env_clear()
            .envs(&spec.env)
            .env("LAMBDA_TASK_ROOT", &code.task_root)
            .env("LAMBDA_RUNTIME_DIR", &code.task_root)
            .env("AWS_LAMBDA_RUNTIME_API", format!("{}/{}/{id}", self.inner.base_url, spec.name))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", log_stream_name(id))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        process::die_with_parent(&mut cmd);
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or(0);
        let (tx, rx) = mpsc::channel(1);
        let instance = Arc::new(Instance {
            id,
            generation: code.generation,
            pid,
            tx,
            rx: tokio::sync::Mutex::new(rx),
            inflight: Mutex::new(None),
            ready: watch::channel(false).0,
            exited: watch::channel(None).0,
            init_error: Mutex::new(None),
            kill: Notify::new(),
        });
        let monitored = instance.clone();
        let pool = pool.clone();
        let handle = tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s,
                _ = monitored.kill.notified() => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let how = match &status {
                Ok(s) => process::describe_exit(s),
                Err(e) => format!("wait failed: {e}"),
            };
            tracing::debug!(function = %pool.spec.name, instance = monitored.id, %how, "instance ended");
            monitored.exited.send_replace(Some(how.clone()));
            pool.remove(&monitored);
            if let Some(f) = lock(&monitored.inflight).take() {
                let _ = f.reply.send(Outcome::Exited(how));
            }
            // Invocations handed over but never taken.
            let mut rx = monitored.rx.lock().await;
            rx.close();
            while let Ok(inv) = rx.try_recv() {
                let _ = inv.reply.send(Outcome::NotStarted);
            }
        });
        let mut monitors = lock(&self.inner.monitors);
        monitors.retain(|h| !h.is_finished());
        monitors.push(handle);
        Ok(instance)
    }

    fn instance(&self, function: &str, id: u64) -> Option<(Arc<Pool>, Arc<Instance>)> {
        let pool = self.inner.pools.get(function)?.clone();
        let instance = lock(&pool.state).instances.get(&id).cloned()?;
        Some((pool, instance))
    }

    /// Stops serving, kills every instance and waits until all are reaped.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        for pool in self.inner.pools.values() {
            let instances: Vec<Arc<Instance>> = lock(&pool.state).instances.values().cloned().collect();
            for i in instances {
                i.kill.notify_one();
            }
        }
        let monitors: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.inner.monitors));
        for m in monitors {
            let _ = m.await;
        }
    }
}

enum Acquired {
    /// With the init duration on a cold start.
    Instance(Arc<Instance>, Option<Duration>),
    InitFailed(Invoked),
}

impl Pool {
    fn release(&self, instance: Arc<Instance>) {
        let mut st = lock(&self.state);
        if instance.generation != st.code.generation {
            // Its code was replaced while it ran: it retires (code.rs).
            st.instances.remove(&instance.id);
            instance.kill.notify_one();
        } else if instance.alive() && st.instances.contains_key(&instance.id) {
            st.idle.push(instance);
        }
    }

    fn remove(&self, instance: &Arc<Instance>) {
        let mut st = lock(&self.state);
        st.instances.remove(&instance.id);
        st.idle.retain(|i| i.id != instance.id);
    }

    /// A platform line in the function's log, as Lambda writes to CloudWatch.
    fn log_line(&self, line: &str) {
        if let Some(f) = lock(&self.log).as_mut() {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }

    fn report(&self, request_id: &str, started: Instant, init: Option<Duration>, status: &str) {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let init = init.map(|d| format!("\tInit Duration: {:.2} ms", d.as_secs_f64() * 1000.0)).unwrap_or_default();
        self.log_line(&format!("END RequestId: {request_id}"));
        self.log_line(&format!(
            "REPORT RequestId: {request_id}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB{init}\tStatus: {status}",
            ms.ceil() as u64,
            self.spec.env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").map(String::as_str).unwrap_or("128"),
        ));
    }
}

fn payload_summary(invoked: &Invoked) -> String {
    match invoked {
        Invoked::Response(b) | Invoked::Error(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn log_stream_name(instance: u64) -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}/{:02}/{:02}/[$LATEST]{:032x}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        u128::from(instance) | (rand::random::<u128>() << 16)
    )
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

async fn wait_exit(rx: &mut watch::Receiver<Option<String>>) -> String {
    loop {
        let current = rx.borrow_and_update().clone();
        if let Some(how) = current {
            return how;
        }
        if rx.changed().await.is_err() {
            return "unknown exit".into();
        }
    }
}

/// Locks a std mutex, recovering from poisoning (no invariant spans a panic).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
