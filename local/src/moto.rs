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

/// How often a server on an ephemeral port is started again on another one
/// when its port was taken before it could bind it.
const EPHEMERAL_PORT_RETRIES: u32 = 5;

/// Corrections of moto, each documented with the moto code it corrects and
/// tested (local/moto-python/test_sitecustomize.py): atomic DynamoDB item
/// calls, no partial item after a failed write, transactions that copy only
/// the items they touch, SQS calls whose cost does not grow with the queue,
/// no model instance kept forever. Loaded as `sitecustomize` by every moto
/// server's Python through PYTHONPATH; `JOBS_LOCAL_MOTO_SERVICE` tells it
/// which service's patches the server needs.
const MOTO_PATCHES_PY: &str = include_str!("../moto-python/sitecustomize.py");

/// Makes moto's Cognito honour the app client's token lifetimes and refuse to
/// renew tokens of a disabled or deleted user, as Cognito does (the API's
/// bound on revocation rests on both). Loaded as `sitecustomize` by the
/// cognito-idp server's Python, run by the first one (next on its PYTHONPATH).
const COGNITO_PY: &str = include_str!("../moto-cognito/sitecustomize.py");

pub struct MotoServer {
    pub service: &'static str,
    pub port: u16,
    pub pid: u32,
    pub log: PathBuf,
    /// Where this process's lines start in `log` (appended to across runs).
    log_start: u64,
    child: Child,
}

impl MotoServer {
    /// Whether this process logged werkzeug's ` * Running on http://127.0.0.1:<port>`.
    fn announced_its_port(&self) -> bool {
        use std::io::{Read as _, Seek as _};
        let mut own = String::new();
        let read = std::fs::File::open(&self.log).and_then(|mut f| {
            f.seek(std::io::SeekFrom::Start(self.log_start)).and_then(|_| f.read_to_string(&mut own))
        });
        read.is_ok() && own.contains(&format!("Running on http://127.0.0.1:{}", self.port))
    }

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
        if base_port == 0 {
            Moto::start_on(bin, log_dir, Ports::Ephemeral(free_port)).await
        } else {
            Moto::start_on(bin, log_dir, Ports::From(base_port)).await
        }
    }

    async fn start_on(bin: &Path, log_dir: &Path, mut ports: Ports) -> anyhow::Result<Moto> {
        let mut moto = Moto { servers: Vec::new() };
        // Written once, before any server starts: a server's Python reads it
        // at startup, and a rewrite under it would leave it half a file.
        let python_paths = python_paths_with_moto_patches(log_dir)?;
        for (i, service) in SERVICES.iter().enumerate() {
            match ports.spawn(bin, service, i, log_dir, &python_paths) {
                Ok(s) => moto.servers.push(s),
                Err(e) => {
                    moto.stop().await;
                    return Err(e);
                }
            }
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        for i in 0..moto.servers.len() {
            let mut retries = if matches!(ports, Ports::Ephemeral(_)) { EPHEMERAL_PORT_RETRIES } else { 0 };
            loop {
                match wait_ready(&mut moto.servers[i], deadline).await {
                    Ok(()) => break,
                    // An ephemeral port can be taken (by another program's
                    // connection, say) between probing it and moto binding
                    // it: take another.
                    Err(_) if retries > 0 && lost_its_port(&moto.servers[i]) => {
                        retries -= 1;
                        let service = moto.servers[i].service;
                        match ports.spawn(bin, service, i, log_dir, &python_paths) {
                            Ok(s) => moto.servers[i] = s,
                            Err(e) => {
                                moto.stop().await;
                                return Err(e);
                            }
                        }
                    }
                    Err(e) => {
                        moto.stop().await;
                        return Err(e);
                    }
                }
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

/// Whether a server exited because its port was taken: werkzeug's last
/// words (the log is appended to, so only its end is this server's).
fn lost_its_port(server: &MotoServer) -> bool {
    let end = process::tail(&server.log, 3);
    end.contains("Address already in use") || end.contains("is in use by another program")
}

/// Where the servers listen: `base + i`, or ports from a probe.
enum Ports {
    From(u16),
    Ephemeral(fn() -> anyhow::Result<u16>),
}

impl Ports {
    /// Starts the `i`th service's server; on an ephemeral port, one found
    /// taken before moto could be started on it is swapped for another.
    fn spawn(
        &mut self,
        bin: &Path,
        service: &'static str,
        i: usize,
        log_dir: &Path,
        python_paths: &PythonPaths,
    ) -> anyhow::Result<MotoServer> {
        match self {
            Ports::From(base) => spawn(bin, service, *base + i as u16, log_dir, python_paths),
            Ports::Ephemeral(probe) => {
                let mut last = None;
                for _ in 0..EPHEMERAL_PORT_RETRIES {
                    match spawn(bin, service, probe()?, log_dir, python_paths) {
                        Ok(s) => return Ok(s),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| anyhow::anyhow!("cannot start moto for {service}")))
            }
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

fn spawn(
    bin: &Path,
    service: &'static str,
    port: u16,
    log_dir: &Path,
    python_paths: &PythonPaths,
) -> anyhow::Result<MotoServer> {
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
    let log_start = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut cmd = Command::new(bin);
    cmd.env("PYTHONPATH", python_paths.for_service(service)).env("JOBS_LOCAL_MOTO_SERVICE", service);
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
    let pid = child.id().unwrap_or(0);
    Ok(MotoServer { service, port, pid, log, log_start, child })
}

/// The PYTHONPATH of each moto server: every one loads the corrections of
/// moto first; the Cognito server's then runs the Cognito one (the first
/// `sitecustomize` runs the next one on the path).
struct PythonPaths {
    every: std::ffi::OsString,
    cognito: std::ffi::OsString,
}

impl PythonPaths {
    fn for_service(&self, service: &str) -> &std::ffi::OsStr {
        if service == "cognito-idp" { &self.cognito } else { &self.every }
    }
}

/// Writes the `sitecustomize` files next to the logs (`<state>/moto-python`,
/// `<state>/moto-cognito`) and returns the PYTHONPATHs that load them first.
fn python_paths_with_moto_patches(log_dir: &Path) -> anyhow::Result<PythonPaths> {
    let state = log_dir.parent().unwrap_or(log_dir);
    let patches = write_sitecustomize(&state.join("moto-python"), MOTO_PATCHES_PY)?;
    let cognito = write_sitecustomize(&state.join("moto-cognito"), COGNITO_PY)?;
    let existing: Vec<PathBuf> =
        std::env::var_os("PYTHONPATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    let join = |first: &[&PathBuf]| {
        std::env::join_paths(first.iter().map(|p| p.as_path()).chain(existing.iter().map(PathBuf::as_path)))
            .context("PYTHONPATH")
    };
    Ok(PythonPaths { every: join(&[&patches])?, cognito: join(&[&patches, &cognito])? })
}

/// Writes `source` as `<dir>/sitecustomize.py` (whole or not at all: a
/// server's Python may read it meanwhile) and returns `dir`.
fn write_sitecustomize(dir: &Path, source: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join("sitecustomize.py");
    let tmp = dir.join("sitecustomize.py.tmp");
    std::fs::write(&tmp, source).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &file).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(dir.to_path_buf())
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
        // Ready when this process says it listens (werkzeug logs the line
        // after its bind succeeded) and the port answers: a port that merely
        // accepts connections may be another program's that took it first.
        if server.announced_its_port() && tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.is_ok() {
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

    /// The port the first probe hands out: one another program took.
    static TAKEN: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

    fn taken_then_free() -> anyhow::Result<u16> {
        match TAKEN.swap(0, std::sync::atomic::Ordering::SeqCst) {
            0 => free_port(),
            port => Ok(port),
        }
    }

    // What failed CI once: between the probe and moto's bind, another
    // program's connection took the port, and moto exited "Address already
    // in use". The port below is a live connection's own end: not
    // listening (so the probe's connect fails, as in the race), but bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_whose_ephemeral_port_is_taken_before_it_binds_moves_to_another() {
        let bin = moto_bin();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let connection = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let taken = connection.local_addr().unwrap().port();
        TAKEN.store(taken, std::sync::atomic::Ordering::SeqCst);

        let state = state_with_logs_dir();
        let started = Moto::start_on(&bin, &state.path().join("logs"), Ports::Ephemeral(taken_then_free)).await;
        let mut moto = started.expect("moto starts although its first port was taken");
        let sqs = moto.port("sqs");
        let answers = tokio::net::TcpStream::connect(("127.0.0.1", sqs)).await.is_ok();
        moto.stop().await;
        drop(connection);
        let log = std::fs::read_to_string(state.path().join("logs/moto-sqs.log")).unwrap();
        assert_ne!(sqs, taken, "sqs stayed on the taken port");
        assert!(answers, "moto (sqs) does not answer on its new port {sqs}");
        assert!(log.contains("Address already in use"), "the first server did not meet the taken port: {log}");
    }

    /// A state folder of its own (moto's patches are written next to the
    /// logs, as in `.local`): tests running at once must not share one.
    fn state_with_logs_dir() -> tempfile::TempDir {
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir(state.path().join("logs")).unwrap();
        state
    }

    fn moto_bin() -> PathBuf {
        let bin = std::env::var_os("JOBS_LOCAL_MOTO_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/moto_server"));
        assert!(
            bin.exists(),
            "moto_server not found at {}: run ./just test, or set JOBS_LOCAL_MOTO_BIN",
            bin.display()
        );
        bin
    }

    /// The port the first probe hands out, taken by another program's
    /// listening socket just after the probe (as the port check before the
    /// spawn passed, before moto's Python binds it, which takes a second).
    static LISTENED_ON: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

    fn free_then_listened_on() -> anyhow::Result<u16> {
        let port = free_port()?;
        if LISTENED_ON
            .compare_exchange(0, port, std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst)
            .is_ok()
        {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("the probed port is free");
                // Held (and answering connects) until the test ends.
                std::thread::sleep(Duration::from_secs(30));
                drop(listener);
            });
        }
        Ok(port)
    }

    // A port that answers connects is not moto's until moto says it bound
    // it: here another program listens on it first, and moto must not be
    // taken as ready there but start again on another port.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_whose_port_another_program_listens_on_first_is_not_ready_there() {
        let state = state_with_logs_dir();
        let started =
            Moto::start_on(&moto_bin(), &state.path().join("logs"), Ports::Ephemeral(free_then_listened_on)).await;
        let mut moto = started.expect("moto starts although another program listens on its first port");
        let sqs = moto.port("sqs");
        moto.stop().await;
        let log = std::fs::read_to_string(state.path().join("logs/moto-sqs.log")).unwrap();
        let taken = LISTENED_ON.load(std::sync::atomic::Ordering::SeqCst);
        assert_ne!(sqs, taken, "moto (sqs) was taken as ready on the port another program listens on");
        assert!(log.contains("Address already in use"), "the first server did not meet the taken port: {log}");
        assert!(log.contains(&format!("Running on http://127.0.0.1:{sqs}")), "{log}");
    }

    #[test]
    fn every_server_loads_the_moto_patches_first_and_cognito_its_own_next() {
        let state = std::env::temp_dir().join(format!("jobs-local-moto-{}", std::process::id()));
        let logs = state.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let paths = python_paths_with_moto_patches(&logs).unwrap();
        for service in SERVICES {
            let path: Vec<_> = std::env::split_paths(paths.for_service(service)).collect();
            assert_eq!(path[0], state.join("moto-python"), "{service}");
            let cognito_next = path.get(1) == Some(&state.join("moto-cognito"));
            assert_eq!(cognito_next, service == "cognito-idp", "{service}: {path:?}");
        }
        let written = std::fs::read_to_string(state.join("moto-python/sitecustomize.py")).unwrap();
        assert_eq!(written, MOTO_PATCHES_PY);
        assert!(written.contains("JOBS_LOCAL_MOTO_SERVICE") && written.contains("_run_next_sitecustomize"));
        let cognito = std::fs::read_to_string(state.join("moto-cognito/sitecustomize.py")).unwrap();
        assert!(cognito.contains("IdTokenValidity") && cognito.contains("User is disabled."));
        std::fs::remove_dir_all(&state).unwrap();
    }
}
