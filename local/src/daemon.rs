//! `start` (run detached, wait until ready) and `stop` (end it and every
//! child), coordinated through files in the state directory:
//! `jobs-local.lock` (flock held by the running process), `jobs-local.pid`,
//! `jobs-local.log`, `outputs.json`.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::outputs::Outputs;
use crate::process;

/// How long `start` waits for the system to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// How long `stop` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(30);

pub struct StatePaths {
    pub dir: PathBuf,
}

impl StatePaths {
    pub fn new(dir: &Path) -> StatePaths {
        StatePaths { dir: dir.to_path_buf() }
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("jobs-local.lock")
    }
    pub fn pid(&self) -> PathBuf {
        self.dir.join("jobs-local.pid")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("jobs-local.log")
    }
    pub fn outputs(&self) -> PathBuf {
        self.dir.join("outputs.json")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn functions_dir(&self) -> PathBuf {
        self.dir.join("functions")
    }
}

/// The exclusive lock a running `jobs-local run` holds on its state dir.
pub struct StateLock {
    _file: File,
    paths: StatePaths,
}

fn try_flock(file: &File) -> bool {
    // SAFETY: flock on a valid, owned descriptor.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

impl StateLock {
    /// Takes the state dir for this process, or says who has it.
    pub fn acquire(dir: &Path) -> anyhow::Result<StateLock> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the state dir {}", dir.display()))?;
        let paths = StatePaths::new(dir);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(paths.lock())
            .with_context(|| format!("cannot open {}", paths.lock().display()))?;
        if !try_flock(&file) {
            let pid = read_pid(&paths).map(|p| format!(" (pid {p})")).unwrap_or_default();
            bail!("jobs-local is already running for {}{pid}; stop it first with {}", dir.display(), stop_command(dir));
        }
        let _ = std::fs::remove_file(paths.outputs());
        std::fs::write(paths.pid(), format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write {}", paths.pid().display()))?;
        Ok(StateLock { _file: file, paths })
    }

    pub fn paths(&self) -> &StatePaths {
        &self.paths
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.paths.outputs());
        let _ = std::fs::remove_file(self.paths.pid());
    }
}

fn read_pid(paths: &StatePaths) -> Option<i32> {
    std::fs::read_to_string(paths.pid()).ok()?.trim().parse().ok()
}

/// The pid of the jobs-local running for `dir`, if any.
pub fn running(dir: &Path) -> Option<i32> {
    let paths = StatePaths::new(dir);
    let file = std::fs::OpenOptions::new().write(true).open(paths.lock()).ok()?;
    if try_flock(&file) {
        return None; // nobody holds it; dropping the file releases it
    }
    read_pid(&paths).or(Some(0))
}

/// The state dir `just up` and `just down` use (the justfile's `state_dir`).
pub const JUST_STATE_DIR: &str = ".local";

/// How a user stops the jobs-local running for `dir`: `./just down` for the
/// one `./just up` started (jobs-local itself is not on PATH), else
/// `jobs-local stop`.
pub fn stop_command(dir: &Path) -> String {
    if dir == Path::new(JUST_STATE_DIR) {
        "`./just down` (`just down` inside `nix develop`)".to_owned()
    } else {
        format!("`jobs-local stop --state-dir {}`", dir.display())
    }
}

/// `jobs-local start`: runs `jobs-local run <run_args>` detached in its own
/// session and waits until it is ready. Returns the process exit code.
pub async fn start(dir: &Path, run_args: Vec<String>) -> anyhow::Result<i32> {
    if let Some(pid) = running(dir) {
        bail!(
            "jobs-local is already running for {} (pid {pid}); stop it first with {}",
            dir.display(),
            stop_command(dir)
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let paths = StatePaths::new(dir);
    let _ = std::fs::remove_file(paths.outputs());
    let log = File::create(paths.log()).with_context(|| format!("cannot create {}", paths.log().display()))?;
    let exe = std::env::current_exe().context("cannot find the jobs-local executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run")
        .args(&run_args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .env("JOBS_LOCAL_DETACHED", "1");
    process::new_session(&mut cmd);
    let mut child = cmd.spawn().context("cannot start `jobs-local run`")?;
    let pgid = child.id() as i32;
    println!("Starting jobs-local (pid {pgid}, log {})", paths.log().display());

    let mut log_reader = File::open(paths.log())?;
    let mut offset = 0u64;
    let mut pending = String::new();
    let started = Instant::now();
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        print_progress(&mut log_reader, &mut offset, &mut pending);
        if let Some(status) = child.try_wait()? {
            print_progress(&mut log_reader, &mut offset, &mut pending);
            eprintln!(
                "\njobs-local failed to start ({}). Last lines of {}:\n",
                process::describe_exit(&status),
                paths.log().display()
            );
            eprintln!("{}", process::tail(&paths.log(), 25));
            return Ok(1);
        }
        if paths.outputs().exists() && running(dir).is_some() {
            let outputs = Outputs::read(&paths.outputs())?;
            println!("\n{}", outputs.summary(&paths.outputs()));
            return Ok(0);
        }
        if started.elapsed() > START_TIMEOUT {
            eprintln!(
                "\njobs-local was not ready within {START_TIMEOUT:?}; stopping it. Last lines of {}:\n",
                paths.log().display()
            );
            eprintln!("{}", process::tail(&paths.log(), 25));
            kill_group(pgid, &mut child).await;
            return Ok(1);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = sigint.recv() => {
                eprintln!("\ninterrupted: stopping the half-started jobs-local");
                kill_group(pgid, &mut child).await;
                return Ok(130);
            }
        }
    }
}

/// SIGTERM to the session's group, SIGKILL after a grace period, and wait
/// until nothing of it is left.
async fn kill_group(pgid: i32, child: &mut std::process::Child) {
    process::signal(-pgid, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while process::group_alive(pgid) && Instant::now() < deadline {
        let _ = child.try_wait();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if process::group_alive(pgid) {
        process::signal(-pgid, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Prints the `==> ` progress lines that appeared in the log.
fn print_progress(log: &mut File, offset: &mut u64, pending: &mut String) {
    let mut buf = Vec::new();
    if log.seek(SeekFrom::Start(*offset)).is_err() || log.read_to_end(&mut buf).is_err() {
        return;
    }
    *offset += buf.len() as u64;
    pending.push_str(&String::from_utf8_lossy(&buf));
    while let Some(nl) = pending.find('\n') {
        let line: String = pending.drain(..=nl).collect();
        if line.starts_with("==> ") {
            print!("{line}");
        }
    }
}

/// `jobs-local stop`: ends the running jobs-local and waits until it and all
/// its children are gone. Succeeds (with a message) when nothing runs.
pub async fn stop(dir: &Path) -> anyhow::Result<()> {
    let paths = StatePaths::new(dir);
    let Some(pid) = running(dir) else {
        let _ = std::fs::remove_file(paths.pid());
        println!("jobs-local is not running (state dir {}).", dir.display());
        return Ok(());
    };
    if pid <= 0 {
        bail!("jobs-local holds {} but its pid file is unreadable; stop it by hand", paths.lock().display());
    }
    // SAFETY: getpgid has no memory-safety preconditions.
    let own_group = unsafe { libc::getpgid(pid) } == pid;
    println!("Stopping jobs-local (pid {pid})...");
    process::signal(pid, libc::SIGTERM);
    let gone = || running(dir).is_none() && !process::process_alive(pid) && !(own_group && process::group_alive(pid));
    let deadline = Instant::now() + STOP_GRACE;
    while !gone() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !gone() {
        eprintln!("jobs-local did not stop within {STOP_GRACE:?}: killing it");
        process::signal(if own_group { -pid } else { pid }, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gone() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !gone() {
            bail!("jobs-local (pid {pid}) is still running after SIGKILL");
        }
    }
    let _ = std::fs::remove_file(paths.pid());
    let _ = std::fs::remove_file(paths.outputs());
    println!("Stopped.");
    Ok(())
}
