//! What `./just up` says when the local system is already running: how to
//! stop it with the command a user has (`./just down`), not `jobs-local stop`
//! (jobs-local is not on PATH). The real binary, against a state dir whose
//! lock another process holds, as a running jobs-local does.

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::process::Command;

/// Holds the state dir's lock (and writes its pid file) like a running jobs-local.
fn hold_lock(state: &std::path::Path) -> File {
    std::fs::create_dir_all(state).unwrap();
    let lock = File::create(state.join("jobs-local.lock")).unwrap();
    // SAFETY: flock on a valid, owned descriptor.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    std::fs::write(state.join("jobs-local.pid"), "4242\n").unwrap();
    lock
}

fn start(cwd: &std::path::Path, state_dir: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_jobs-local"))
        .current_dir(cwd)
        .args(["start", "--stacks", "cdktf/cdktf.out", "--state-dir", state_dir])
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn up_while_running_suggests_just_down() {
    let cwd = tempfile::tempdir().unwrap();
    let _lock = hold_lock(&cwd.path().join(".local"));
    // The arguments `./just up` passes.
    let stderr = start(cwd.path(), ".local");
    assert_eq!(
        stderr.trim(),
        "error: jobs-local is already running for .local (pid 4242); stop it first with `./just down` (`just down` inside `nix develop`)"
    );
}

#[test]
fn another_state_dir_names_jobs_local_stop_for_it() {
    let cwd = tempfile::tempdir().unwrap();
    let _lock = hold_lock(&cwd.path().join("state"));
    let stderr = start(cwd.path(), "state");
    assert_eq!(
        stderr.trim(),
        "error: jobs-local is already running for state (pid 4242); stop it first with `jobs-local stop --state-dir state`"
    );
}
