//! Child processes that cannot outlive jobs-local, and signal helpers.

use std::io;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Makes `cmd`'s child receive SIGKILL when its parent dies, even if the
/// parent is SIGKILLed (PR_SET_PDEATHSIG), and ignore SIGINT: a Ctrl-C in
/// the terminal of a foreground `jobs-local run` reaches the whole process
/// group, and the children must wait for the orderly shutdown instead.
///
/// Linux delivers the signal when the *thread* that forked the child exits.
/// Children are spawned from tokio worker threads, which live as long as the
/// runtime, i.e. as long as jobs-local; never spawn from `spawn_blocking`
/// (those threads exit when idle).
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: the closure only calls async-signal-safe functions (prctl,
    // signal, getppid, raise) between fork and exec.
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // An ignored signal stays ignored across exec.
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
    cmd.kill_on_drop(true)
}

/// Starts the child in a new session (its own process group), for `start`.
pub fn new_session(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Sends `signal` to `pid`; false if there is no such process.
pub fn signal(pid: i32, signal: i32) -> bool {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// State and process group of `pid` from `/proc/<pid>/stat`.
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid pgrp ..."; comm may contain spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether any live (non-zombie) process is left in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    if pgid <= 0 || !signal(-pgid, 0) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else { return true };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| matches!(proc_stat(pid), Some((state, pgrp)) if pgrp == pgid && state != 'Z' && state != 'X'))
}

/// Whether `pid` is a live (non-zombie) process.
pub fn process_alive(pid: i32) -> bool {
    pid > 0 && signal(pid, 0) && !matches!(proc_stat(pid), Some(('Z' | 'X', _)))
}

/// SIGTERM, then SIGKILL after `grace`; waits for (and reaps) the child.
pub async fn terminate(child: &mut Child, grace: Duration) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    if let Some(pid) = child.id() {
        signal(pid as i32, libc::SIGTERM);
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            child.start_kill()?;
            child.wait().await
        }
    }
}

/// How an exit looks in Lambda's messages: `exit status 1`, `signal: killed`.
pub fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(libc::SIGKILL) => "signal: killed".into(),
        Some(libc::SIGTERM) => "signal: terminated".into(),
        Some(libc::SIGSEGV) => "signal: segmentation fault".into(),
        Some(libc::SIGABRT) => "signal: aborted".into(),
        Some(libc::SIGBUS) => "signal: bus error".into(),
        Some(libc::SIGILL) => "signal: illegal instruction".into(),
        Some(s) => format!("signal: {s}"),
        None => "unknown exit".into(),
    }
}

/// The last `lines` lines of a log file (for error reports).
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_its_own_process() {
        let me = std::process::id() as i32;
        assert!(process_alive(me));
        // SAFETY: getpgrp has no preconditions.
        assert!(group_alive(unsafe { libc::getpgrp() }));
        assert!(!process_alive(-1));
        assert!(!group_alive(0));
    }
}
