//! `jobs-local watch`: while the local system runs, a saved change to a
//! function's crate, or to a workspace crate it depends on, rebuilds that
//! function like `just build` does and swaps its code in the running Lambda
//! service (`PUT /2015-03-31/functions/{name}/code`, see lambda/code.rs).
//! The emulators, the queues and the other functions are not touched; a
//! build that fails leaves the previous build serving.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use bytes::Bytes;
use notify::event::{EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher as _};
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};

use crate::httpx;
use crate::outputs::Outputs;

/// How long the tree must be quiet before a change is acted on (an editor's
/// save can be several writes).
const DEBOUNCE: Duration = Duration::from_millis(300);

/// The architectures `just build` builds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") { Arch::Arm64 } else { Arch::X86_64 }
    }

    /// `x86_64` or `arm64`, as `just build` spells them.
    pub fn parse(s: &str) -> anyhow::Result<Arch> {
        match s {
            "x86_64" => Ok(Arch::X86_64),
            "arm64" => Ok(Arch::Arm64),
            other => bail!("unknown arch `{other}`: it must be x86_64 or arm64 (as for `just build`)"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    fn cargo_lambda_flag(self) -> &'static str {
        match self {
            Arch::X86_64 => "--x86-64",
            Arch::Arm64 => "--arm64",
        }
    }
}

pub struct WatchArgs {
    /// The running system's state dir (its outputs.json).
    pub state_dir: PathBuf,
    /// The cargo workspace the functions are built from.
    pub workspace: PathBuf,
    pub arch: Arch,
}

/// The workspace's crates as far as watching is concerned.
#[derive(Debug)]
struct Crates {
    /// Crate name → its directory.
    dirs: BTreeMap<String, PathBuf>,
    /// Function crate → the running function it builds.
    functions: BTreeMap<String, String>,
    /// Crate → the function crates whose build includes it (itself too).
    used_by: BTreeMap<String, BTreeSet<String>>,
}

/// Runs until SIGINT or SIGTERM.
pub async fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let outputs_path = args.state_dir.join("outputs.json");
    if !outputs_path.exists() {
        bail!(
            "the local system is not running ({} does not exist): start it with `./just up` first",
            outputs_path.display()
        );
    }
    let outputs = Outputs::read(&outputs_path)?;
    let workspace = std::path::absolute(&args.workspace)?;
    let crates = workspace_crates(&workspace, outputs.function_logs.keys()).await?;
    if crates.functions.is_empty() {
        bail!(
            "no crate of the workspace at {} builds a running function ({})",
            workspace.display(),
            outputs.function_logs.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if args.arch != Arch::host() {
        println!(
            "note: building {} binaries, which this {} machine may not run",
            args.arch.name(),
            Arch::host().name()
        );
    }

    let (_watcher, mut changes) = watch_sources(&crates, &workspace)?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let names: Vec<String> = crates.functions.iter().map(|(c, f)| format!("{c} ({f})")).collect();
    println!("==> watching {} for {}; Ctrl-C stops", workspace.display(), names.join(", "));
    let swapper = Swapper { client: httpx::client(), lambda: outputs.aws_endpoints.lambda.clone() };
    loop {
        let mut changed = tokio::select! {
            c = changes.recv() => c.unwrap_or_default(),
            _ = sigint.recv() => return Ok(()),
            _ = sigterm.recv() => return Ok(()),
        };
        // Until the tree is quiet: a save can be several writes.
        while let Ok(Some(more)) = tokio::time::timeout(DEBOUNCE, changes.recv()).await {
            changed.extend(more);
        }
        let (rebuild, causes) = affected(&crates, &workspace, &changed);
        if rebuild.is_empty() {
            continue;
        }
        let all: BTreeSet<String> = crates.functions.keys().cloned().collect();
        let build = build(&workspace, args.arch, &all, &rebuild, &causes);
        let built = tokio::select! {
            b = build => b?,
            _ = sigint.recv() => return Ok(()),
            _ = sigterm.recv() => return Ok(()),
        };
        swap(built, &rebuild, &crates, &swapper, &workspace, args.arch).await;
    }
}

/// Watches the directories of the crates the functions' builds use, and the
/// workspace's own files; sends the paths written, created, removed or renamed.
fn watch_sources(
    crates: &Crates,
    workspace: &Path,
) -> anyhow::Result<(notify::RecommendedWatcher, tokio::sync::mpsc::UnboundedReceiver<Vec<PathBuf>>)> {
    let (tx, changes) = tokio::sync::mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Writes, creations, removals and renames; not reads (a build reads
        // every source) nor metadata.
        if let Ok(e) = event
            && matches!(
                e.kind,
                EventKind::Create(_)
                    | EventKind::Remove(_)
                    | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
            )
        {
            let _ = tx.send(e.paths);
        }
    })
    .context("cannot start watching files")?;
    let watched: BTreeSet<&PathBuf> = crates.used_by.keys().filter_map(|c| crates.dirs.get(c)).collect();
    for dir in &watched {
        watcher.watch(dir, RecursiveMode::Recursive).with_context(|| format!("cannot watch {}", dir.display()))?;
    }
    watcher.watch(workspace, RecursiveMode::NonRecursive)?;
    Ok((watcher, changes))
}

/// Swaps the `rebuild` functions' new builds in, or says why not.
async fn swap(
    built: Built,
    rebuild: &BTreeSet<String>,
    crates: &Crates,
    swapper: &Swapper,
    workspace: &Path,
    arch: Arch,
) {
    let list = rebuild.iter().cloned().collect::<Vec<_>>().join(", ");
    match built {
        Built::Failed(errors) => {
            // On stdout, before the verdict, so that the two stay in order.
            println!("{errors}");
            let (keeps, builds) = if rebuild.len() == 1 { ("keeps", "build") } else { ("keep", "builds") };
            println!("build failed: {list} {keeps} serving the previous {builds}");
        }
        Built::Ok(took) => {
            let took = took.as_secs_f64();
            for krate in rebuild {
                let zip = zip_path(workspace, arch, krate);
                match swapper.swap(&crates.functions[krate], &zip).await {
                    Ok(how) => println!("==> {krate}: rebuilt in {took:.1} s, swapped ({how})"),
                    Err(e) => println!("==> {krate}: rebuilt in {took:.1} s, NOT swapped: {e:#}"),
                }
            }
        }
    }
}

/// `cargo metadata` of the workspace, mapped to the running functions: a
/// function crate is one whose name is a running function's name or its
/// last part (`jobs-local-job-status` is built by `job-status`).
async fn workspace_crates(workspace: &Path, running: impl Iterator<Item = &String>) -> anyhow::Result<Crates> {
    let out = tokio::process::Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .current_dir(workspace)
        .output()
        .await
        .context("cannot run cargo metadata (is cargo on PATH?)")?;
    if !out.status.success() {
        bail!("cargo metadata failed in {}: {}", workspace.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let metadata: Value = serde_json::from_slice(&out.stdout).context("cargo metadata printed no JSON")?;
    crates_of(&metadata, running)
}

fn crates_of<'a>(metadata: &Value, running: impl Iterator<Item = &'a String>) -> anyhow::Result<Crates> {
    let packages = metadata["packages"].as_array().context("cargo metadata without packages")?;
    let mut dirs = BTreeMap::new();
    // Crate → the workspace crates its build uses (dev-dependencies are not).
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in packages {
        let name = p["name"].as_str().unwrap_or_default().to_string();
        let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
        dirs.insert(name.clone(), manifest.parent().map(Path::to_path_buf).unwrap_or_default());
        let deps = p["dependencies"].as_array().into_iter().flatten();
        let local = deps.filter(|d| d["path"].is_string() && d["kind"].as_str() != Some("dev"));
        uses.insert(name, local.filter_map(|d| d["name"].as_str().map(str::to_string)).collect());
    }
    let mut functions = BTreeMap::new();
    for function in running {
        let krate =
            dirs.keys().filter(|c| function == *c || function.ends_with(&format!("-{c}"))).max_by_key(|c| c.len());
        if let Some(krate) = krate {
            functions.insert(krate.clone(), function.clone());
        }
    }
    let mut used_by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for krate in functions.keys() {
        let mut todo = vec![krate.clone()];
        let mut seen = BTreeSet::new();
        while let Some(c) = todo.pop() {
            if seen.insert(c.clone()) {
                todo.extend(uses.get(&c).into_iter().flatten().cloned());
            }
        }
        for c in seen {
            used_by.entry(c).or_default().insert(krate.clone());
        }
    }
    Ok(Crates { dirs, functions, used_by })
}

/// The function crates a change of `paths` rebuilds: those using the crate
/// each path is in; all of them for the workspace's Cargo.toml or Cargo.lock.
/// Editors' hidden and backup files and build output are not changes. Also
/// the paths that count, relative to the workspace.
fn affected(crates: &Crates, workspace: &Path, paths: &[PathBuf]) -> (BTreeSet<String>, BTreeSet<PathBuf>) {
    let mut rebuild = BTreeSet::new();
    let mut causes = BTreeSet::new();
    for path in paths {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let rel = path.strip_prefix(workspace).unwrap_or(path);
        let noise = name.ends_with('~')
            || rel.components().any(|c| {
                let c = c.as_os_str().to_string_lossy();
                c.starts_with('.') || c == "target"
            });
        if noise {
            continue;
        }
        if path.parent() == Some(workspace) {
            if name == "Cargo.toml" || name == "Cargo.lock" {
                rebuild.extend(crates.functions.keys().cloned());
                causes.insert(rel.to_path_buf());
            }
            continue;
        }
        // The innermost crate directory holding the path.
        let owner =
            crates.dirs.iter().filter(|(_, dir)| path.starts_with(dir)).max_by_key(|(_, dir)| dir.as_os_str().len());
        if let Some(users) = owner.and_then(|(krate, _)| crates.used_by.get(krate)) {
            rebuild.extend(users.iter().cloned());
            causes.insert(rel.to_path_buf());
        }
    }
    (rebuild, causes)
}

enum Built {
    Ok(Duration),
    /// cargo's error output.
    Failed(String),
}

fn zip_path(workspace: &Path, arch: Arch, krate: &str) -> PathBuf {
    workspace.join("target/lambda").join(arch.name()).join(krate).join("bootstrap.zip")
}

/// The build of the justfile's `build` recipe. It builds every function
/// crate (`all`), as `just build` does: building fewer would unify fewer
/// features of the shared dependencies, which cargo would then rebuild (minutes)
/// instead of reusing `just build`'s; those not `changed` are fresh and only
/// relinked if at all. The zips of `changed` are normalized like `just build`'s.
async fn build(
    workspace: &Path,
    arch: Arch,
    all: &BTreeSet<String>,
    changed: &BTreeSet<String>,
    causes: &BTreeSet<PathBuf>,
) -> anyhow::Result<Built> {
    let list = changed.iter().cloned().collect::<Vec<_>>().join(", ");
    // Not an editor's (or sed's) temporary file, gone by now, unless only a removal is left.
    let mut shown: Vec<&PathBuf> = causes.iter().filter(|p| workspace.join(p).exists()).collect();
    if shown.is_empty() {
        shown = causes.iter().collect();
    }
    let mut files: Vec<String> = shown.iter().take(3).map(|p| p.display().to_string()).collect();
    if shown.len() > 3 {
        files.push(format!("{} more", shown.len() - 3));
    }
    println!("==> {list}: building for {} ({} changed)", arch.name(), files.join(", "));
    let started = Instant::now();
    let cargo_home =
        std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    // As the justfile's: reproducible zips, and the same flags (hence the same cache) as `just build`.
    let rustflags = match std::env::var("RUSTFLAGS") {
        Ok(more) if !more.is_empty() => format!("--remap-path-prefix={cargo_home}=/cargo {more}"),
        _ => format!("--remap-path-prefix={cargo_home}=/cargo"),
    };
    let mut cmd = tokio::process::Command::new("cargo");
    cmd.current_dir(workspace)
        .env("SOURCE_DATE_EPOCH", std::env::var("SOURCE_DATE_EPOCH").unwrap_or_else(|_| "315532800".into()))
        .env("RUSTFLAGS", rustflags)
        .args(["lambda", "build", "--release", "--locked", "--output-format", "zip", "--lambda-dir"])
        .arg(Path::new("target/lambda").join(arch.name()))
        .arg(arch.cargo_lambda_flag())
        .args(all.iter().flat_map(|c| ["-p", c.as_str()]))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // Its own process group, so that stopping the watch (this future
        // dropped) stops cargo's rustc and zig processes too, not cargo alone.
        .process_group(0);
    let child =
        cmd.spawn().context("cannot run `cargo lambda` (is cargo-lambda on PATH? ./just watch puts it there)")?;
    let mut group = BuildGroup(child.id());
    let out = child.wait_with_output().await?;
    group.0 = None;
    if !out.status.success() {
        let errors = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = errors.lines().filter(|l| !l.trim_start().starts_with("Compiling ")).collect();
        return Ok(Built::Failed(errors.join("\n")));
    }
    let zips: Vec<PathBuf> = changed.iter().map(|c| zip_path(workspace, arch, c)).collect();
    let normalize = workspace.join("tools/normalize-zip.py");
    if normalize.exists() {
        let out =
            tokio::process::Command::new("python3").arg(&normalize).args(&zips).current_dir(workspace).output().await?;
        if !out.status.success() {
            return Ok(Built::Failed(format!(
                "tools/normalize-zip.py failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    }
    Ok(Built::Ok(started.elapsed()))
}

/// A running build's process group, stopped when this is dropped while set.
struct BuildGroup(Option<u32>);

impl Drop for BuildGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            crate::process::signal(-(pgid as i32), libc::SIGTERM);
        }
    }
}

/// Calls the running Lambda service's UpdateFunctionCode.
struct Swapper {
    client: httpx::HttpClient,
    /// The Lambda service's endpoint (outputs.json's `awsEndpoints.lambda`).
    lambda: String,
}

impl Swapper {
    /// Swaps `function`'s code for `zip`; says what happened to its instances.
    async fn swap(&self, function: &str, zip: &Path) -> anyhow::Result<String> {
        let bytes = tokio::fs::read(zip).await.with_context(|| format!("cannot read {}", zip.display()))?;
        let body = json!({"ZipFile": base64::engine::general_purpose::STANDARD.encode(&bytes)}).to_string();
        let req = hyper::Request::put(format!("{}/2015-03-31/functions/{function}/code", self.lambda))
            .header("content-type", "application/json")
            .body(httpx::Body::from(Bytes::from(body)))?;
        let (status, _, answer) = httpx::send(&self.client, req)
            .await
            .with_context(|| format!("the local system does not answer at {}: is it still running?", self.lambda))?;
        let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "the Lambda service refused the new code ({status}): {}",
                answer["message"].as_str().or(answer["Message"].as_str()).unwrap_or("no message")
            );
        }
        let swap = &answer["LocalCodeSwap"];
        let idle = swap["retiredIdleInstances"].as_u64().unwrap_or(0);
        let busy = swap["retiringBusyInstances"].as_u64().unwrap_or(0);
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        let mut how = format!("{idle} idle instance{} retired", plural(idle));
        if busy > 0 {
            how.push_str(&format!(
                ", {busy} finishing {} invocation{} first",
                if busy == 1 { "its" } else { "their" },
                plural(busy)
            ));
        }
        Ok(how)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> Value {
        let package = |name: &str, deps: &[(&str, &str)]| {
            json!({
                "name": name,
                "manifest_path": format!("/ws/functions/{name}/Cargo.toml"),
                "dependencies": deps.iter().map(|(d, kind)| json!({"name": d, "path": format!("/ws/functions/{d}"), "kind": if kind.is_empty() { Value::Null } else { json!(kind) }})).collect::<Vec<_>>(),
            })
        };
        json!({"packages": [
            package("jobs-core", &[]),
            package("jobs-aws", &[("jobs-core", "")]),
            package("moto-harness", &[]),
            package("job-status", &[("jobs-aws", ""), ("moto-harness", "dev")]),
            package("authorizer", &[("jobs-core", "")]),
            package("object-counter", &[]),
        ]})
    }

    fn running() -> Vec<String> {
        ["jobs-local-job-status", "jobs-local-authorizer", "jobs-local-object-counter"].map(String::from).to_vec()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_shared_crate_rebuilds_every_function_using_it() {
        let crates = crates_of(&metadata(), running().iter()).unwrap();
        assert_eq!(crates.functions["job-status"], "jobs-local-job-status");
        let ws = Path::new("/ws");
        let changed = |p: &str| affected(&crates, ws, &[PathBuf::from(p)]).0;
        assert_eq!(changed("/ws/functions/jobs-core/src/lib.rs"), set(&["authorizer", "job-status"]));
        assert_eq!(changed("/ws/functions/jobs-aws/src/lib.rs"), set(&["job-status"]));
        assert_eq!(changed("/ws/functions/job-status/src/main.rs"), set(&["job-status"]));
        assert_eq!(changed("/ws/functions/moto-harness/src/lib.rs"), set(&[]), "a dev-dependency is not in the build");
        assert_eq!(changed("/ws/Cargo.lock"), set(&["authorizer", "job-status", "object-counter"]));
        assert_eq!(changed("/ws/README.md"), set(&[]));
        assert_eq!(changed("/ws/functions/job-status/src/.main.rs.swp"), set(&[]));
        assert_eq!(changed("/ws/functions/job-status/src/main.rs~"), set(&[]));
        assert_eq!(changed("/ws/functions/job-status/target/x"), set(&[]));
    }

    #[test]
    fn an_arch_is_x86_64_or_arm64() {
        assert_eq!(Arch::parse("arm64").unwrap(), Arch::Arm64);
        let err = Arch::parse("aarch64").unwrap_err().to_string();
        assert!(err.contains("x86_64 or arm64"), "{err}");
    }
}
