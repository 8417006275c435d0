//! moto servers: one process per emulated service, so one Python
//! interpreter's GIL does not serialize SQS, DynamoDB, S3 and Cognito calls.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

use crate::process;

/// The services the local target emulates, in port order.
pub const SERVICES: [&str; 4] = ["sqs", "dynamodb", "s3", "cognito-idp"];

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Makes each of moto's DynamoDB item calls atomic, as DynamoDB's are: moto's
/// UpdateItem of a new item stores the bare key first, and a read served
/// meanwhile by its threaded server sees an item without its attributes
/// (the job-status function then answers 503). Loaded as `sitecustomize` by
/// the DynamoDB server's Python through PYTHONPATH.
const DYNAMODB_ATOMIC_PY: &str = include_str!("../moto-python/sitecustomize.py");

/// Makes moto's Cognito honour the app client's token lifetimes and refuse to
/// renew tokens of a disabled or deleted user, as Cognito does (the API's
/// bound on revocation rests on both). Loaded as `sitecustomize` by the
/// cognito-idp server's Python.
const COGNITO_PY: &str = include_str!("../moto-cognito/sitecustomize.py");

pub struct MotoServer {
    pub service: &'static str,
    pub port: u16,
    pub log: PathBuf,
    child: Child,
}

impl MotoServer {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

pub struct Moto {
    pub servers: Vec<MotoServer>,
}

impl Moto {
    /// Starts one moto_server per service on `base_port + i` (or ephemeral
    /// ports when `base_port` is 0) and waits until each answers.
    pub async fn start(bin: &Path, base_port: u16, log_dir: &Path) -> anyhow::Result<Moto> {
        let mut moto = Moto { servers: Vec::new() };
        for (i, service) in SERVICES.iter().enumerate() {
            let started = if base_port == 0 {
                // An ephemeral port can be taken between probing and binding:
                // try a few.
                let mut last = None;
                let mut server = None;
                for _ in 0..3 {
                    match spawn(bin, service, free_port()?, log_dir) {
                        Ok(s) => {
                            server = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                match server {
                    Some(s) => Ok(s),
                    None => Err(last.unwrap_or_else(|| anyhow::anyhow!("cannot start moto"))),
                }
            } else {
                spawn(bin, service, base_port + i as u16, log_dir)
            };
            match started {
                Ok(s) => moto.servers.push(s),
                Err(e) => {
                    moto.stop().await;
                    return Err(e);
                }
            }
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        for i in 0..moto.servers.len() {
            if let Err(e) = wait_ready(&mut moto.servers[i], deadline).await {
                moto.stop().await;
                return Err(e);
            }
        }
        Ok(moto)
    }

    pub fn endpoint(&self, service: &str) -> String {
        self.servers.iter().find(|s| s.service == service).map(MotoServer::endpoint).unwrap_or_default()
    }

    pub fn port(&self, service: &str) -> u16 {
        self.servers.iter().find(|s| s.service == service).map(|s| s.port).unwrap_or(0)
    }

    /// Resolves when any moto process exits (it should not while running).
    pub async fn any_exited(&mut self) -> String {
        let waits = self.servers.iter_mut().map(|s| {
            Box::pin(async move {
                let status = s.child.wait().await;
                format!(
                    "moto ({}) on port {} exited ({}); its log: {}",
                    s.service,
                    s.port,
                    status.map(|st| process::describe_exit(&st)).unwrap_or_else(|e| e.to_string()),
                    s.log.display()
                )
            })
        });
        let waits: Vec<_> = waits.collect();
        if waits.is_empty() {
            return std::future::pending().await;
        }
        futures_select_all(waits).await
    }

    pub async fn stop(&mut self) {
        for s in &mut self.servers {
            let _ = process::terminate(&mut s.child, Duration::from_secs(3)).await;
        }
        self.servers.clear();
    }
}

/// The first of several futures to finish (a tiny select_all).
async fn futures_select_all<F: std::future::Future<Output = String> + Unpin>(mut futs: Vec<F>) -> String {
    std::future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

fn spawn(bin: &Path, service: &'static str, port: u16, log_dir: &Path) -> anyhow::Result<MotoServer> {
    if std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok() {
        bail!(
            "port {port} (moto for {service}) is in use: is the local system already running? (`./just down` stops the one `./just up` started) or pass --moto-port"
        );
    }
    let log = log_dir.join(format!("moto-{service}.log"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let mut cmd = Command::new(bin);
    if service == "dynamodb" {
        cmd.env("PYTHONPATH", python_path_with_atomic_dynamodb(log_dir)?);
    }
    if service == "cognito-idp" {
        cmd.env("PYTHONPATH", python_path_with(log_dir, "moto-cognito", COGNITO_PY)?);
    }
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("PYTHONUNBUFFERED", "1")
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    process::die_with_parent(&mut cmd);
    let child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "moto_server not found at `{}`: install it (`pip install 'moto[server]'`) or pass --moto-bin",
                bin.display()
            )
        } else {
            anyhow::anyhow!("cannot start `{}`: {e}", bin.display())
        }
    })?;
    Ok(MotoServer { service, port, log, child })
}

/// Writes the `sitecustomize` that makes moto's DynamoDB calls atomic next to
/// the logs, and returns a PYTHONPATH that loads it first.
fn python_path_with_atomic_dynamodb(log_dir: &Path) -> anyhow::Result<std::ffi::OsString> {
    let dir = log_dir.parent().unwrap_or(log_dir).join("moto-python");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join("sitecustomize.py");
    std::fs::write(&file, DYNAMODB_ATOMIC_PY).with_context(|| format!("cannot write {}", file.display()))?;
    let mut paths = vec![dir];
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        paths.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(paths).context("PYTHONPATH")
}

/// Writes `source` as the `sitecustomize` of `<state>/<dir>` and returns a
/// PYTHONPATH that loads it first.
fn python_path_with(log_dir: &Path, dir: &str, source: &str) -> anyhow::Result<std::ffi::OsString> {
    let dir = log_dir.parent().unwrap_or(log_dir).join(dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join("sitecustomize.py");
    std::fs::write(&file, source).with_context(|| format!("cannot write {}", file.display()))?;
    let mut paths = vec![dir];
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        paths.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(paths).context("PYTHONPATH")
}

async fn wait_ready(server: &mut MotoServer, deadline: Instant) -> anyhow::Result<()> {
    loop {
        if let Some(status) = server.child.try_wait()? {
            bail!(
                "moto ({}) exited during startup ({}):\n{}",
                server.service,
                process::describe_exit(&status),
                process::tail(&server.log, 15)
            );
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "moto ({}) did not answer on port {} within {:?}; its log: {}",
                server.service,
                server.port,
                READY_TIMEOUT,
                server.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dynamodb_server_loads_the_atomic_patch_first() {
        let state = std::env::temp_dir().join(format!("jobs-local-moto-{}", std::process::id()));
        let logs = state.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let path = python_path_with_atomic_dynamodb(&logs).unwrap();
        let first = std::env::split_paths(&path).next().unwrap();
        assert_eq!(first, state.join("moto-python"));
        let written = std::fs::read_to_string(first.join("sitecustomize.py")).unwrap();
        assert_eq!(written, DYNAMODB_ATOMIC_PY);
        assert!(written.contains("\"update_item\"") && written.contains("\"get_item\"") && written.contains("RLock"));
        std::fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn the_cognito_server_loads_the_token_lifetime_and_revocation_patch_first() {
        let state = std::env::temp_dir().join(format!("jobs-local-moto-cognito-{}", std::process::id()));
        let logs = state.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let path = python_path_with(&logs, "moto-cognito", COGNITO_PY).unwrap();
        let first = std::env::split_paths(&path).next().unwrap();
        assert_eq!(first, state.join("moto-cognito"));
        let written = std::fs::read_to_string(first.join("sitecustomize.py")).unwrap();
        assert!(written.contains("IdTokenValidity") && written.contains("User is disabled."));
        std::fs::remove_dir_all(&state).unwrap();
    }
}
