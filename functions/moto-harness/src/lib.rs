//! A moto server for one test, shared by the adapter tests of every crate
//! that talks to AWS (jobs-aws, object-counter).
//!
//! Each [`MotoServer`] listens on its own free port and is killed when
//! dropped. `moto_server` must be on PATH (./just puts .tools/venv/bin there;
//! `nix develop` provides it), or set MOTO_SERVER. moto runs with the same
//! `sitecustomize` as the local target (local/moto-python), which makes its
//! DynamoDB item calls (TransactWriteItems included) atomic as DynamoDB's
//! are: without it, concurrent conditional updates of one item race inside
//! moto.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// The directory holding the atomic-DynamoDB `sitecustomize.py`.
const SITECUSTOMIZE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../local/moto-python");

/// How long moto may take to start listening (its first start imports a lot).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A moto server for one test; killed on drop.
pub struct MotoServer {
    child: Child,
    endpoint: String,
}

impl MotoServer {
    /// Starts moto on a free port of 127.0.0.1 and waits until it listens.
    ///
    /// # Panics
    /// When moto_server cannot be started or does not listen within a minute:
    /// a test cannot go on without it.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("PYTHONPATH", python_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} ({e}): run the tests with ./just test, or put moto_server on PATH")
            });
        // Built before the wait, so that a panic below still kills the child.
        let moto = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start listening on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// The server's base URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An SDK config for this server: its endpoint, us-east-1, fixed test
    /// credentials (moto accepts any).
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .load()
            .await
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PYTHONPATH with the sitecustomize directory first, any existing entries after.
fn python_path() -> std::ffi::OsString {
    let mut paths = vec![PathBuf::from(SITECUSTOMIZE_DIR)];
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        paths.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(paths).expect("PYTHONPATH entries contain no separator")
}
