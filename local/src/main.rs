//! `jobs-local`: run the synthesized job-ingestion stack on 127.0.0.1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use jobs_local::run::{DEFAULT_API_PORT, DEFAULT_LAMBDA_PORT, DEFAULT_MOTO_PORT, RunArgs};
use jobs_local::{daemon, run, watch};

#[derive(Parser)]
#[command(
    name = "jobs-local",
    version,
    about = "Runs the synthesized job-ingestion stack on 127.0.0.1 (moto, a Lambda service, SQS pollers, a REST API gateway)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run in the foreground until SIGINT/SIGTERM.
    Run(RunOpts),
    /// Run detached (log in <state-dir>/jobs-local.log) and wait until ready.
    Start(RunOpts),
    /// Stop the jobs-local running for a state dir, and every child of it.
    Stop {
        #[arg(long)]
        state_dir: PathBuf,
    },
    /// Rebuild a function when its crate (or a workspace crate it uses)
    /// changes, and swap its code in the running system; until Ctrl-C.
    Watch {
        /// The state dir of the running system (`jobs-local start`'s).
        #[arg(long)]
        state_dir: PathBuf,
        /// The cargo workspace the functions are built from.
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// x86_64 or arm64 [default: this machine's].
        #[arg(long)]
        arch: Option<String>,
    },
}

#[derive(Args, Clone)]
struct RunOpts {
    /// The cdktf output directory (contains stacks/<name>/cdk.tf.json).
    #[arg(long)]
    stacks: PathBuf,
    /// Where logs, extracted functions, the pid file and outputs.json go.
    #[arg(long)]
    state_dir: PathBuf,
    /// The app stack to run (it names the stacks it reads outputs from).
    #[arg(long, default_value = "app")]
    stack: String,
    /// API gateway port (0 = ephemeral).
    #[arg(long, default_value_t = DEFAULT_API_PORT)]
    api_port: u16,
    /// Lambda service port: Runtime and Invoke APIs (0 = ephemeral).
    #[arg(long, default_value_t = DEFAULT_LAMBDA_PORT)]
    lambda_port: u16,
    /// First of four moto ports: sqs, dynamodb, s3, cognito-idp (0 = ephemeral).
    #[arg(long, default_value_t = DEFAULT_MOTO_PORT)]
    moto_port: u16,
    /// The moto_server executable [default: $JOBS_LOCAL_MOTO_BIN, else
    /// moto_server on PATH, else ./.tools/venv/bin/moto_server].
    #[arg(long)]
    moto_bin: Option<PathBuf>,
    /// Region to emulate (default: the app stack's provider region).
    #[arg(long)]
    region: Option<String>,
    /// Fault injection: proxies between the functions and moto, and a control
    /// API (`faultsUrl` in outputs.json); all shares start at 0.
    #[arg(long)]
    faults: bool,
}

/// `--moto-bin`, else `$JOBS_LOCAL_MOTO_BIN`, else `moto_server` on PATH,
/// else the project's venv (`./.tools/venv/bin/moto_server`).
fn moto_bin(explicit: Option<&PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("JOBS_LOCAL_MOTO_BIN") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|d| d.join("moto_server")).any(|p| p.is_file()))
        .unwrap_or(false);
    let venv = PathBuf::from(".tools/venv/bin/moto_server");
    if !on_path && venv.is_file() { venv } else { PathBuf::from("moto_server") }
}

impl RunOpts {
    fn run_args(&self) -> RunArgs {
        RunArgs {
            stacks: self.stacks.clone(),
            app_stack: self.stack.clone(),
            state_dir: self.state_dir.clone(),
            api_port: self.api_port,
            lambda_port: self.lambda_port,
            moto_port: self.moto_port,
            moto_bin: moto_bin(self.moto_bin.as_ref()),
            region: self.region.clone(),
            faults: self.faults,
        }
    }

    /// The same options, for the detached `run`, with paths made absolute.
    fn forwarded(&self) -> anyhow::Result<Vec<String>> {
        let abs = |p: &PathBuf| -> anyhow::Result<String> { Ok(std::path::absolute(p)?.display().to_string()) };
        let bin = moto_bin(self.moto_bin.as_ref());
        let moto_bin = if bin.components().count() > 1 { abs(&bin)? } else { bin.display().to_string() };
        let mut args = vec![
            "--stacks".into(),
            abs(&self.stacks)?,
            "--state-dir".into(),
            abs(&self.state_dir)?,
            "--stack".into(),
            self.stack.clone(),
            "--api-port".into(),
            self.api_port.to_string(),
            "--lambda-port".into(),
            self.lambda_port.to_string(),
            "--moto-port".into(),
            self.moto_port.to_string(),
            "--moto-bin".into(),
            moto_bin,
        ];
        if let Some(r) = &self.region {
            args.extend(["--region".into(), r.clone()]);
        }
        if self.faults {
            args.push("--faults".into());
        }
        Ok(args)
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("JOBS_LOCAL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,hyper=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Run(opts) => run::run(opts.run_args()).await.map(|_| 0),
        Command::Start(opts) => match opts.forwarded() {
            Ok(args) => daemon::start(&opts.state_dir, args).await,
            Err(e) => Err(e),
        },
        Command::Stop { state_dir } => daemon::stop(&state_dir).await.map(|_| 0),
        Command::Watch { state_dir, workspace, arch } => match arch.as_deref().map(watch::Arch::parse).transpose() {
            Ok(arch) => {
                let arch = arch.unwrap_or_else(watch::Arch::host);
                watch::watch(watch::WatchArgs { state_dir, workspace, arch }).await.map(|_| 0)
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
