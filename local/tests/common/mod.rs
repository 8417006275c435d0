//! Shared by the test crates: the hand-written stack fixture
//! (tests/fixtures/cdktf.out) and edited copies of it, the example function
//! that plays the fixture's functions, and moto_server.
//! Each test crate uses only part of it.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};

use jobs_local::moto::Moto;
use jobs_local::provision::Endpoints;
use serde_json::Value;

/// The fixture's cdktf.out directory.
pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cdktf.out")
}

/// A copy of the fixture in a temporary directory, with the app stack
/// changed by `edit` (the cognito stack as is).
pub fn edited_fixture(edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture();
    std::fs::copy(src.join("manifest.json"), dir.path().join("manifest.json")).unwrap();
    let read = |stack: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(src.join("stacks").join(stack).join("cdk.tf.json")).unwrap())
            .unwrap()
    };
    let mut app = read("app");
    edit(&mut app);
    for (stack, json) in [("app", app), ("cognito", read("cognito"))] {
        std::fs::create_dir_all(dir.path().join("stacks").join(stack)).unwrap();
        std::fs::write(dir.path().join("stacks").join(stack).join("cdk.tf.json"), json.to_string()).unwrap();
    }
    dir
}

/// moto_server: `JOBS_LOCAL_MOTO_BIN`, else the project's venv
/// (.tools/venv/bin, where ./just installs it), else PATH.
///
/// # Panics
/// When there is none: the tests that need it must not pass without it.
pub fn moto_bin() -> PathBuf {
    if let Ok(p) = std::env::var("JOBS_LOCAL_MOTO_BIN") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("moto_server")).find(|p| p.exists()))
        .expect("moto_server not found: run the tests with ./just test, or set JOBS_LOCAL_MOTO_BIN")
}

/// The example binary cargo builds next to the test binaries
/// (examples/test-function.rs).
pub fn test_function() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe.parent().and_then(|d| d.parent()).expect("target dir").join("examples").join("test-function");
    assert!(bin.exists(), "{} is missing: run `cargo test -p jobs-local` (it builds the examples)", bin.display());
    bin
}

/// Writes the fixture stack's function packages under `cdktf_out`
/// (`stacks/app/assets/<function>/bootstrap.zip`), each the test function.
pub fn package_fixture_functions(cdktf_out: &Path) {
    let bootstrap = std::fs::read(test_function()).unwrap();
    for f in ["authorizer", "consumer", "items", "webhook-sender"] {
        write_bootstrap_zip(&cdktf_out.join(format!("stacks/app/assets/{f}/bootstrap.zip")), &bootstrap);
    }
}

/// A zip at `path` holding `bootstrap` (mode 0755).
pub fn write_bootstrap_zip(path: &Path, bootstrap: &[u8]) {
    use std::io::Write as _;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    // Stored: deflating a debug binary in a debug build takes many seconds.
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o755);
    w.start_file("bootstrap", options).unwrap();
    w.write_all(bootstrap).unwrap();
    w.finish().unwrap();
}

/// Starts moto (its logs in `logs`), runs `exercise` against its endpoints
/// in a task, and stops moto whatever happened there (a panic is raised
/// again after the stop).
pub async fn with_moto<F, Fut>(logs: &Path, exercise: F)
where
    F: FnOnce(Endpoints) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut moto = Moto::start(&moto_bin(), 0, logs).await.unwrap();
    let endpoints = Endpoints {
        sqs: moto.endpoint("sqs"),
        dynamodb: moto.endpoint("dynamodb"),
        s3: moto.endpoint("s3"),
        cognito_idp: moto.endpoint("cognito-idp"),
        lambda: String::new(),
        sns: moto.endpoint("s3"),
        sts: moto.endpoint("cognito-idp"),
        events: moto.endpoint("sqs"),
        secretsmanager: moto.endpoint("cognito-idp"),
    };
    let outcome = tokio::spawn(exercise(endpoints)).await;
    moto.stop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
