//! `jobs-local run`: the startup sequence, the running system and its
//! orderly shutdown.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use regex::Regex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::control::Control;
use crate::control::faults::FaultControl;
use crate::daemon::{StateLock, StatePaths};
use crate::faults::Faults;
use crate::gateway::Gateway;
use crate::gateway::iam_auth::MachineClient;
use crate::httpx;
use crate::iam::{self, Iam, Principal};
use crate::intercept::Interceptors;
use crate::lambda::{self, FunctionSpec, LambdaService};
use crate::model::{ACCOUNT_ID, Model};
use crate::moto::Moto;
use crate::outputs::{MachineClientOutput, Outputs};
use crate::poller::PollerSet;
use crate::provision::{self, Cognito, Endpoints};
use crate::proxy::{PROXIED_SERVICES, ServiceProxy};
use crate::stack::{Dynamic, Stacks};

pub const DEFAULT_API_PORT: u16 = 4010;
pub const DEFAULT_LAMBDA_PORT: u16 = 4011;
pub const DEFAULT_MOTO_PORT: u16 = 4020;

#[derive(Debug, Clone)]
pub struct RunArgs {
    /// The cdktf output directory (`cdktf/cdktf.out`).
    pub stacks: PathBuf,
    pub app_stack: String,
    pub state_dir: PathBuf,
    pub api_port: u16,
    pub lambda_port: u16,
    /// First of the four moto ports (sqs, dynamodb, s3, cognito-idp); 0 =
    /// ephemeral.
    pub moto_port: u16,
    pub moto_bin: PathBuf,
    pub region: Option<String>,
    /// Let the service proxies between the functions and moto inject faults
    /// and serve the fault control API (docs/local-target.md, "Faults").
    pub faults: bool,
}

const STEPS: usize = 7;

fn progress(step: usize, msg: impl std::fmt::Display) {
    println!("==> [{step}/{STEPS}] {msg}");
}

/// Everything started so far, for shutdown (also after a failed startup).
struct System {
    moto: Option<Moto>,
    lambda: Option<(LambdaService, JoinHandle<()>)>,
    pollers: Option<Arc<PollerSet>>,
    gateway: Option<JoinHandle<()>>,
    /// Auxiliary servers: the service proxies, the control API, the
    /// bucket-notification bridge.
    servers: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl System {
    async fn shutdown(&mut self) {
        self.stop.send_replace(true);
        tracing::debug!("shutdown: gateway");
        if let Some(g) = self.gateway.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), g).await;
        }
        // Pollers finish the batch in hand; instances are killed after 5 s.
        let pollers = self.pollers.take().map(|p| p.take_handles()).unwrap_or_default();
        let wait_pollers = async {
            for p in &pollers {
                while !p.is_finished() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        tracing::debug!("shutdown: pollers");
        let _ = tokio::time::timeout(Duration::from_secs(5), wait_pollers).await;
        tracing::debug!("shutdown: lambda instances");
        if let Some((service, server)) = self.lambda.take() {
            service.shutdown().await;
            let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        }
        for p in pollers {
            p.abort();
            let _ = p.await;
        }
        for f in self.servers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), f).await;
        }
        tracing::debug!("shutdown: moto");
        if let Some(mut moto) = self.moto.take() {
            moto.stop().await;
        }
        tracing::debug!("shutdown: done");
    }
}

/// Runs in the foreground until SIGINT/SIGTERM (or a moto process dies).
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let state = StateLock::acquire(&args.state_dir)?;
    let mut system = System {
        moto: None,
        lambda: None,
        pollers: None,
        gateway: None,
        servers: Vec::new(),
        stop: watch::channel(false).0,
    };
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let started = tokio::select! {
        r = startup(&args, &state, &mut system) => r,
        _ = sigint.recv() => Err(anyhow!("interrupted during startup")),
        _ = sigterm.recv() => Err(anyhow!("terminated during startup")),
    };
    let outputs = match started {
        Ok(o) => o,
        Err(e) => {
            println!("==> Startup failed: stopping what was started");
            system.shutdown().await;
            return Err(e);
        }
    };
    println!("==> Ready\n\n{}", outputs.summary(&state.paths().outputs()));
    let reason = {
        let moto_exit = async {
            match system.moto.as_mut() {
                Some(m) => m.any_exited().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sigint.recv() => Ok("SIGINT"),
            _ = sigterm.recv() => Ok("SIGTERM"),
            msg = moto_exit => Err(msg),
        }
    };
    match &reason {
        Ok(sig) => println!("==> Stopping ({sig})"),
        Err(msg) => println!("==> Stopping: {msg}"),
    }
    system.shutdown().await;
    drop(state);
    println!("==> Stopped");
    reason.map(|_| ()).map_err(|m| anyhow!(m))
}

/// The seven steps (`==> [n/7]`), each started thing recorded in `system` as
/// soon as it runs, so that a failure stops what was started.
async fn startup(args: &RunArgs, state: &StateLock, system: &mut System) -> anyhow::Result<Outputs> {
    let paths = state.paths();
    std::fs::create_dir_all(paths.logs_dir())?;
    std::fs::create_dir_all(paths.functions_dir())?;
    let mut model = load_model(args)?;
    let api_listener = httpx::bind(args.api_port, "API gateway").await?;
    let lambda_listener = httpx::bind(args.lambda_port, "Lambda service").await?;
    let endpoints = start_moto(args, &lambda_listener, &paths.logs_dir(), system).await?;
    let (user, secrets) = provision_resources(&mut model, &endpoints).await?;
    let (iam, faults, function_endpoints) = start_proxies(args, &model, &endpoints, system).await?;
    let lambda = start_lambda(&model, lambda_listener, &function_endpoints, &iam, faults.as_ref(), paths, system)?;
    let sqs = provision::sqs_client(&endpoints.sqs, &model.region);
    start_notifications(&model, &endpoints, &lambda, &sqs, system).await?;
    let pollers = start_pollers(&model, sqs, &lambda, system);
    let urls = start_control(iam, faults, &lambda, pollers, system).await?;
    let machine_clients = machine_clients(&model);
    let (api_url, api_id, stage) =
        start_gateway(&model, api_listener, &lambda, &endpoints, machine_clients.clone(), system)?;

    progress(7, format!("Writing {}", paths.outputs().display()));
    let mut outputs = outputs(&model, &endpoints, user.as_ref(), &api_url, api_id, stage, &paths.logs_dir());
    if let Some(secret) = webhook_signing_secret(&model, &secrets) {
        outputs.webhook_signing_secret_name = secret.name.clone();
        outputs.webhook_signing_secret = secret.value.clone();
    }
    outputs.machine_client = machine_client_output(&model, &api_url, machine_clients.first());
    outputs.faults_url = urls.faults;
    outputs.iam_denials_url = urls.iam_denials;
    outputs.processes_url = urls.processes;
    outputs.write(&paths.outputs())?;
    Ok(outputs)
}

/// Step 1: the stacks and the model of what they define, built once (the
/// values only moto knows are filled in by [`provision_resources`]). The
/// stack's errors stop startup here, before anything starts; only a moto
/// value in a field `Model::fill` does not fill is found in step 3.
fn load_model(args: &RunArgs) -> anyhow::Result<Model> {
    progress(1, format!("Loading stacks from {}", args.stacks.display()));
    let stacks = Stacks::load(&args.stacks, &args.app_stack)?;
    let region =
        args.region.clone().or_else(|| stacks.region().map(str::to_string)).unwrap_or_else(|| "us-east-1".into());
    let model = Model::build(&stacks, &region, Dynamic::default()).map_err(|e| anyhow!("{e}"))?;
    for f in &model.functions {
        if !f.zip.exists() {
            bail!(
                "{}: field `filename`: the deployment zip {} does not exist (build the functions first: `./just build`)",
                f.address,
                f.zip.display()
            );
        }
    }
    crate::model::notifications::check(&model.notifications)?;
    println!(
        "    stacks: {} | region {region} | {} queue(s), {} table(s), {} bucket(s), {} event rule(s), {} secret(s), {} function(s), {} event source mapping(s), {} REST API(s), {} user pool(s)",
        stacks.stacks.keys().cloned().collect::<Vec<_>>().join(", "),
        model.queues.len(),
        model.tables.len(),
        model.buckets.len(),
        model.event_rules.len(),
        model.secrets.len(),
        model.functions.len(),
        model.mappings.len(),
        model.apis.len(),
        model.user_pools.len()
    );
    Ok(model)
}

/// Step 2: moto, one server per service; the endpoints of everything the
/// functions and clients reach.
async fn start_moto(
    args: &RunArgs,
    lambda_listener: &tokio::net::TcpListener,
    logs_dir: &std::path::Path,
    system: &mut System,
) -> anyhow::Result<Endpoints> {
    progress(2, "Starting moto (one server per service: sqs, dynamodb, s3, cognito-idp)");
    let moto = Moto::start(&args.moto_bin, args.moto_port, logs_dir).await?;
    for s in &moto.servers {
        println!("    {:<12} {}  (log {})", s.service, s.endpoint(), s.log.display());
    }
    let endpoints = Endpoints {
        sqs: moto.endpoint("sqs"),
        dynamodb: moto.endpoint("dynamodb"),
        s3: moto.endpoint("s3"),
        cognito_idp: moto.endpoint("cognito-idp"),
        lambda: format!("http://{}", lambda_listener.local_addr()?),
        sns: moto.endpoint("s3"),
        sts: moto.endpoint("cognito-idp"),
        events: moto.endpoint("sqs"),
        secretsmanager: moto.endpoint("cognito-idp"),
    };
    system.moto = Some(moto);
    Ok(endpoints)
}

/// What provisioning made that the outputs show: the test user and the
/// secrets with their generated values.
type Provisioned = (Option<provision::TestUser>, Vec<provision::ProvisionedSecret>);

/// Step 3, first part: creates the model's resources in moto and fills
/// in the values moto gave them (the SQS endpoint, the Cognito ids, the
/// secrets' ARNs).
async fn provision_resources(model: &mut Model, endpoints: &Endpoints) -> anyhow::Result<Provisioned> {
    progress(3, "Provisioning queues, tables, buckets, event buses and rules, secrets and the Cognito user pool");
    provision::provision_data(model, endpoints).await?;
    let http = httpx::client();
    let mut dynamic = Dynamic { sqs_endpoint: Some(endpoints.sqs.clone()), ids: Default::default() };
    let secrets = provision::provision_secrets(model, endpoints, &mut dynamic).await?;
    let cognito = Cognito { http: &http, endpoint: &endpoints.cognito_idp, region: &model.region };
    let user = provision::provision_cognito(model, &cognito, &mut dynamic).await?;
    model.fill(&dynamic).map_err(|e| anyhow!("{e}"))?;
    for q in &model.queues {
        let redrive =
            q.redrive.as_ref().map(|r| format!(" → DLQ after {} receives", r.max_receive_count)).unwrap_or_default();
        println!("    queue  {}{redrive}", q.name);
    }
    for t in &model.tables {
        println!("    table  {}", t.name);
    }
    for b in &model.buckets {
        println!("    bucket {}", b.name);
    }
    for b in &model.event_buses {
        println!("    event bus {}", b.name);
    }
    for r in &model.event_rules {
        let targets: Vec<&str> = r.targets.iter().map(|t| t.queue_arn.rsplit(':').next().unwrap_or_default()).collect();
        let state = if r.enabled { "" } else { " (disabled)" };
        println!("    event rule {} on {} → {}{state}", r.name, r.bus, targets.join(", "));
    }
    for s in &model.secrets {
        println!("    secret {} ({}, a new random value)", s.name, s.arn);
    }
    if let Some(u) = &user {
        println!("    user pool {} (client {}), test user {}", u.user_pool_id, u.client_id, u.username);
    }
    Ok((user, secrets))
}

/// Each function as IAM sees it: its own access key and role policies.
fn iam_of(model: &Model) -> Arc<Iam> {
    let iam = Iam::new(
        ACCOUNT_ID,
        model
            .functions
            .iter()
            .enumerate()
            .map(|(i, f)| Principal {
                function: f.name.clone(),
                access_key_id: iam::access_key_id(i),
                policy: f.role.clone(),
                assumable_roles: f.assumable_roles.clone(),
            })
            .collect(),
    );
    for f in &model.functions {
        let mut notes = Vec::new();
        if !f.role.not_enforced.is_empty() {
            notes.push(format!("not enforced locally: {}", f.role.not_enforced.join(", ")));
        }
        if !f.role.ignored_managed_policies.is_empty() {
            notes.push(format!("managed: {}", f.role.ignored_managed_policies.join(", ")));
        }
        println!(
            "    IAM {}: role {}, {} enforced statement(s){}",
            f.name,
            f.role.role_name,
            f.role.statements.len(),
            if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) }
        );
    }
    iam
}

/// Step 3, second part: the functions reach moto only through the service
/// proxies (PROXIED_SERVICES), which check every call against the caller's
/// role policies (and inject faults with --faults); everything else talks to
/// moto. Returns the endpoints the functions are given.
async fn start_proxies(
    args: &RunArgs,
    model: &Model,
    endpoints: &Endpoints,
    system: &mut System,
) -> anyhow::Result<(Arc<Iam>, Option<Arc<Faults>>, Endpoints)> {
    let iam = iam_of(model);
    let faults = args
        .faults
        .then(|| Faults::new(model.functions.iter().find_map(|f| f.env.get("BATCH_SIMULATOR_FUNCTION_NAME").cloned())));
    let mut function_endpoints = endpoints.clone();
    for service in PROXIED_SERVICES {
        let upstream = moto_endpoint(endpoints, service);
        let listener = httpx::bind(0, &format!("{service} proxy")).await?;
        let proxied = format!("http://{}", listener.local_addr()?);
        println!(
            "    {service:<8} proxy {proxied} → {upstream} (IAM{})",
            if faults.is_some() { ", faults" } else { "" }
        );
        let secret_arns = model.secrets.iter().map(|s| s.arn.clone()).collect();
        let proxy = ServiceProxy::new(service, &upstream, &model.region, iam.clone(), faults.clone())
            .with_secret_arns(secret_arns);
        let proxy = Arc::new(proxy);
        system.servers.push(tokio::spawn(httpx::serve(
            listener,
            proxy,
            system.stop.subscribe(),
            Duration::from_secs(2),
        )));
        match service {
            "sqs" => function_endpoints.sqs = proxied,
            "dynamodb" => function_endpoints.dynamodb = proxied,
            "s3" => function_endpoints.s3 = proxied,
            "sts" => function_endpoints.sts = proxied,
            "events" => function_endpoints.events = proxied,
            "secretsmanager" => function_endpoints.secretsmanager = proxied,
            _ => function_endpoints.cognito_idp = proxied,
        }
    }
    Ok((iam, faults, function_endpoints))
}

/// Step 4: the Lambda service, with each function unpacked and given the
/// endpoints of the proxies (`function_endpoints`); `iam` checks its calls.
fn start_lambda(
    model: &Model,
    listener: tokio::net::TcpListener,
    function_endpoints: &Endpoints,
    iam: &Arc<Iam>,
    faults: Option<&Arc<Faults>>,
    paths: &StatePaths,
    system: &mut System,
) -> anyhow::Result<LambdaService> {
    progress(4, format!("Starting the Lambda service on {}", function_endpoints.lambda));
    let specs = function_specs(model, function_endpoints, iam, &paths.functions_dir(), &paths.logs_dir())?;
    let (lambda, server) = LambdaService::start(listener, specs, &model.region, ACCOUNT_ID)?;
    let faults = faults.map(|f| f.interceptor(iam.clone()));
    lambda.set_interceptors(Arc::new(Interceptors::new(iam.clone(), faults)));
    system.lambda = Some((lambda.clone(), server));
    Ok(lambda)
}

/// Step 4, last part: the bridge that delivers the bucket notifications.
async fn start_notifications(
    model: &Model,
    endpoints: &Endpoints,
    lambda: &LambdaService,
    sqs: &aws_sdk_sqs::Client,
    system: &mut System,
) -> anyhow::Result<()> {
    if model.notifications.is_empty() {
        return Ok(());
    }
    let queue_urls = model.queues.iter().map(|q| (q.arn.clone(), q.url.clone())).collect();
    let bridge = crate::notifications::start(
        &model.notifications,
        &endpoints.sns,
        &model.region,
        lambda.clone(),
        queue_urls,
        sqs.clone(),
        system.stop.subscribe(),
    )
    .await?;
    println!("    bucket notifications (SNS in the s3 moto server, delivered over http to jobs-local):");
    for line in &bridge.lines {
        println!("{line}");
    }
    system.servers.push(bridge.server);
    Ok(())
}

/// Step 5: one poller set per event source mapping.
fn start_pollers(
    model: &Model,
    sqs: aws_sdk_sqs::Client,
    lambda: &LambdaService,
    system: &mut System,
) -> Arc<PollerSet> {
    progress(5, "Starting the SQS event source pollers");
    let pollers = PollerSet::start(model.mappings.clone(), sqs, lambda.clone(), &model.region, system.stop.subscribe());
    for (m, n) in model.mappings.iter().zip(pollers.pollers_per_mapping()) {
        println!(
            "    {} → {} (batch {}, {n} poller(s){})",
            m.queue_arn.rsplit(':').next().unwrap_or_default(),
            m.function,
            m.batch_size,
            if m.report_batch_item_failures { ", ReportBatchItemFailures" } else { "" }
        );
    }
    system.pollers = Some(pollers.clone());
    pollers
}

/// The control API's URLs, for the outputs.
struct ControlUrls {
    iam_denials: String,
    faults: Option<String>,
    processes: String,
}

/// Step 5, last part: the control API (IAM denials, processes, faults).
async fn start_control(
    iam: Arc<Iam>,
    faults: Option<Arc<Faults>>,
    lambda: &LambdaService,
    pollers: Arc<PollerSet>,
    system: &mut System,
) -> anyhow::Result<ControlUrls> {
    let control_listener = httpx::bind(0, "control API").await?;
    let control_url = format!("http://{}", control_listener.local_addr()?);
    let urls = ControlUrls {
        iam_denials: format!("{control_url}/iam/denials"),
        faults: faults.as_ref().map(|_| format!("{control_url}/faults")),
        processes: format!("{control_url}/processes"),
    };
    println!("    IAM denials {} (docs/local-target.md, \"IAM\")", urls.iam_denials);
    if let Some(url) = &urls.faults {
        println!("    fault control API {url} (docs/local-target.md, \"Faults\")");
    }
    let moto_pids: Vec<(&'static str, u32)> =
        system.moto.as_ref().map(|m| m.servers.iter().map(|s| (s.service, s.pid)).collect()).unwrap_or_default();
    let footprint = crate::footprint::Footprint::new(&moto_pids, lambda.clone());
    system.servers.push(tokio::spawn(footprint.clone().run(system.stop.subscribe())));
    let control = Control {
        iam,
        footprint,
        faults: faults.map(|faults| FaultControl { faults, lambda: lambda.clone(), pollers }),
    };
    system.servers.push(tokio::spawn(httpx::serve(
        control_listener,
        Arc::new(control),
        system.stop.subscribe(),
        Duration::from_secs(1),
    )));
    Ok(urls)
}

/// The session of each machine-client role whose credentials the AWS_IAM
/// methods accept: a new random key pair on every start.
fn machine_clients(model: &Model) -> Vec<MachineClient> {
    const SESSION: &str = "jobs-local-machine-client";
    model
        .machine_roles
        .iter()
        .map(|role| {
            let random = |n: usize| uuid::Uuid::new_v4().simple().to_string()[..n].to_ascii_uppercase();
            let key_id = format!("AKIALOCAL{}", random(11));
            let role_id = format!("AROALOCAL{}", random(12));
            MachineClient {
                access_key_id: key_id,
                secret_access_key: provision::generate_password(40),
                user_arn: format!("arn:aws:sts::{}:assumed-role/{}/{SESSION}", model.account_id, role.name),
                caller: format!("{role_id}:{SESSION}"),
                account_id: model.account_id.clone(),
                policy: role.policy.clone(),
            }
        })
        .collect()
}

/// `machineClient` of the outputs: the first machine client, with the URL
/// of the API's AWS_IAM routes (the first segment they share, `/machine`).
fn machine_client_output(model: &Model, api_url: &str, client: Option<&MachineClient>) -> Option<MachineClientOutput> {
    let client = client?;
    let iam_paths: Vec<&str> = model
        .apis
        .first()?
        .resources
        .iter()
        .filter(|r| r.methods.iter().any(|m| m.iam_auth))
        .map(|r| r.path.as_str())
        .collect();
    let prefix = iam_paths.first()?.split('/').nth(1).unwrap_or_default();
    let shared = iam_paths.iter().all(|p| p.split('/').nth(1) == Some(prefix));
    Some(MachineClientOutput {
        api_url: if shared && !prefix.is_empty() { format!("{api_url}/{prefix}") } else { api_url.to_string() },
        access_key_id: client.access_key_id.clone(),
        secret_access_key: client.secret_access_key.clone(),
        region: model.region.clone(),
        user_arn: client.user_arn.clone(),
    })
}

/// Step 6: the API gateway; returns the first API's URL, id and stage.
fn start_gateway(
    model: &Model,
    api_listener: tokio::net::TcpListener,
    lambda: &LambdaService,
    endpoints: &Endpoints,
    machine_clients: Vec<MachineClient>,
    system: &mut System,
) -> anyhow::Result<(String, String, String)> {
    let api_addr = api_listener.local_addr()?;
    progress(6, format!("Starting the API gateway on http://{api_addr}"));
    let api = model.apis.first();
    let stage = api.and_then(|a| a.stages.first()).cloned().unwrap_or_default();
    for a in &model.apis {
        for s in &a.stages {
            println!("    {} (id {}): http://{api_addr}/{s}", a.name, a.id);
        }
        for r in &a.resources {
            for m in &r.methods {
                let auth = match (&m.authorizer_id, m.iam_auth) {
                    (Some(_), _) => " [authorizer]",
                    (None, true) => " [AWS_IAM]",
                    (None, false) => "",
                };
                println!("      {:<6} {}{auth}", m.http_method, r.path);
            }
        }
    }
    for c in &machine_clients {
        println!("    AWS_IAM callers: {} (key {}; outputs.json machineClient)", c.user_arn, c.access_key_id);
    }
    let gateway = Gateway::new(model.apis.clone(), lambda.clone(), &endpoints.sqs, &model.region, ACCOUNT_ID)
        .with_machine_clients(machine_clients);
    system.gateway = Some(tokio::spawn(httpx::serve(
        api_listener,
        Arc::new(gateway),
        system.stop.subscribe(),
        Duration::from_secs(2),
    )));
    Ok((format!("http://{api_addr}/{stage}"), api.map(|a| a.id.clone()).unwrap_or_default(), stage))
}

fn moto_endpoint(endpoints: &Endpoints, service: &str) -> String {
    match service {
        "sqs" => endpoints.sqs.clone(),
        "dynamodb" => endpoints.dynamodb.clone(),
        "s3" => endpoints.s3.clone(),
        "sts" => endpoints.sts.clone(),
        "events" => endpoints.events.clone(),
        "secretsmanager" => endpoints.secretsmanager.clone(),
        _ => endpoints.cognito_idp.clone(),
    }
}

/// Where locally webhooks may go (`WEBHOOK_DESTINATIONS`): loopback too, so
/// that tests receive them on 127.0.0.1, which AWS's `public-https` refuses.
pub const LOCAL_WEBHOOK_DESTINATIONS: &str = "public-https-and-loopback";

/// The value a stack's environment variable has locally, where it differs:
/// a Cognito JWKS URL points at the emulator, webhook destinations include
/// loopback.
fn local_env_value(name: &str, value: &str, cognito_endpoint: &str) -> Option<String> {
    if name == "WEBHOOK_DESTINATIONS" {
        return Some(LOCAL_WEBHOOK_DESTINATIONS.to_string()).filter(|local| local != value);
    }
    rewrite_jwks(value, cognito_endpoint)
}

/// Rewrites a Cognito JWKS URL to the emulator's.
fn rewrite_jwks(value: &str, cognito_endpoint: &str) -> Option<String> {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"^https://cognito-idp\.[a-z0-9-]+\.amazonaws\.com/([^/]+)/\.well-known/jwks\.json$")
            .expect("valid regex")
    });
    re.captures(value).map(|c| format!("{cognito_endpoint}/{}/.well-known/jwks.json", &c[1]))
}

fn function_specs(
    model: &Model,
    endpoints: &Endpoints,
    iam: &Iam,
    functions_dir: &std::path::Path,
    logs_dir: &std::path::Path,
) -> anyhow::Result<Vec<FunctionSpec>> {
    let mut specs = Vec::new();
    for f in &model.functions {
        let task_root = functions_dir.join(&f.name);
        crate::package::extract(&f.zip, &task_root)
            .with_context(|| format!("{}: cannot unpack its deployment package", f.address))?;
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &f.env {
            match local_env_value(k, v, &endpoints.cognito_idp) {
                Some(local) => {
                    println!("    {}: {k} {v} → {local}", f.name);
                    env.insert(k.clone(), local);
                }
                None => {
                    env.insert(k.clone(), v.clone());
                }
            }
        }
        // Lambda's own variables win over the stack's (AWS rejects those
        // names in a function's environment anyway).
        env.extend(lambda::platform_env(&f.name, f.memory_mb, &f.handler, &model.region, &task_root));
        // Its own key, so that the proxies know which role's policies apply.
        if let Some(key) = iam.access_key_of(&f.name) {
            env.insert("AWS_ACCESS_KEY_ID".into(), key.to_string());
        }
        env.insert("AWS_ENDPOINT_URL_SQS".into(), endpoints.sqs.clone());
        env.insert("AWS_ENDPOINT_URL_DYNAMODB".into(), endpoints.dynamodb.clone());
        env.insert("AWS_ENDPOINT_URL_S3".into(), endpoints.s3.clone());
        env.insert("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER".into(), endpoints.cognito_idp.clone());
        env.insert("AWS_ENDPOINT_URL_LAMBDA".into(), endpoints.lambda.clone());
        env.insert("AWS_ENDPOINT_URL_STS".into(), endpoints.sts.clone());
        env.insert("AWS_ENDPOINT_URL_EVENTBRIDGE".into(), endpoints.events.clone());
        env.insert("AWS_ENDPOINT_URL_SECRETS_MANAGER".into(), endpoints.secretsmanager.clone());
        let max_instances = f.reserved_concurrency.map(|n| n as usize).unwrap_or(lambda::DEFAULT_CONCURRENCY);
        println!(
            "    {:<16} timeout {}s, {} MB, {} (log {})",
            f.name,
            f.timeout_secs,
            f.memory_mb,
            match f.reserved_concurrency {
                Some(n) => format!("reserved concurrency {n}"),
                None => "unreserved concurrency".into(),
            },
            logs_dir.join(format!("{}.log", f.name)).display()
        );
        specs.push(FunctionSpec {
            name: f.name.clone(),
            arn: f.arn.clone(),
            task_root,
            env,
            timeout: Duration::from_secs(f.timeout_secs),
            max_instances,
            log_file: logs_dir.join(format!("{}.log", f.name)),
        });
    }
    Ok(specs)
}

/// The secret webhook deliveries are signed with: the one a function's
/// `WEBHOOK_SIGNING_SECRET_ID` names (docs/contract.md), else the only/first.
fn webhook_signing_secret<'s>(
    model: &Model,
    secrets: &'s [provision::ProvisionedSecret],
) -> Option<&'s provision::ProvisionedSecret> {
    let named = model.functions.iter().find_map(|f| f.env.get("WEBHOOK_SIGNING_SECRET_ID"));
    named.and_then(|arn| secrets.iter().find(|s| s.arn == *arn)).or_else(|| secrets.first())
}

fn outputs(
    model: &Model,
    endpoints: &Endpoints,
    user: Option<&provision::TestUser>,
    api_url: &str,
    api_id: String,
    stage: String,
    logs_dir: &std::path::Path,
) -> Outputs {
    // The names the functions are configured with (docs/contract.md), else
    // the stack's only/first resource of the kind.
    let env_value = |var: &str| model.functions.iter().find_map(|f| f.env.get(var).cloned());
    let queue_named_by = |var: &str| env_value(var).and_then(|url| model.queues.iter().find(|q| q.url == url));
    let dlq_of = |q: Option<&crate::model::Queue>| {
        q.and_then(|q| q.redrive.as_ref()).and_then(|r| model.queue_by_arn(&r.dead_letter_target_arn))
    };
    // Not simply the first mapping's: the webhook queue has one too.
    let job_queue = queue_named_by("JOB_QUEUE_URL")
        .or_else(|| model.mappings.first().and_then(|m| model.queue_by_arn(&m.queue_arn)))
        .or_else(|| model.queues.iter().find(|q| q.redrive.is_some()))
        .or_else(|| model.queues.first());
    let dlq = dlq_of(job_queue);
    let webhook_queue = queue_named_by("WEBHOOK_QUEUE_URL");
    Outputs {
        api_url: api_url.to_string(),
        api_id,
        stage,
        region: model.region.clone(),
        account_id: model.account_id.clone(),
        user_pool_id: user.map(|u| u.user_pool_id.clone()).unwrap_or_default(),
        user_pool_client_id: user.map(|u| u.client_id.clone()).unwrap_or_default(),
        cognito_endpoint: endpoints.cognito_idp.clone(),
        username: user.map(|u| u.username.clone()).unwrap_or_default(),
        password: user.map(|u| u.password.clone()).unwrap_or_default(),
        users: user.map(|u| u.users.clone()).unwrap_or_default(),
        job_queue_url: job_queue.map(|q| q.url.clone()).unwrap_or_default(),
        dead_letter_queue_url: dlq.map(|q| q.url.clone()).unwrap_or_default(),
        webhook_queue_url: webhook_queue.map(|q| q.url.clone()).unwrap_or_default(),
        webhook_dead_letter_queue_url: dlq_of(webhook_queue).map(|q| q.url.clone()).unwrap_or_default(),
        webhook_signing_secret_name: String::new(),
        webhook_signing_secret: String::new(),
        jobs_table_name: env_value("JOBS_TABLE_NAME")
            .or_else(|| model.tables.first().map(|t| t.name.clone()))
            .unwrap_or_default(),
        results_bucket_name: env_value("RESULTS_BUCKET_NAME")
            .or_else(|| model.buckets.first().map(|b| b.name.clone()))
            .unwrap_or_default(),
        counters_table_name: env_value("COUNTERS_TABLE_NAME").unwrap_or_default(),
        object_events_topic_arn: model.notifications.bucket_topic_arn().unwrap_or_default().to_string(),
        event_bus_name: env_value("JOB_EVENTS_BUS_NAME")
            .or_else(|| model.event_buses.first().map(|b| b.name.clone()))
            .unwrap_or_default(),
        aws_endpoints: endpoints.clone(),
        logs_dir: logs_dir.display().to_string(),
        function_logs: model
            .functions
            .iter()
            .map(|f| (f.name.clone(), logs_dir.join(format!("{}.log", f.name)).display().to_string()))
            .collect(),
        pid: std::process::id(),
        faults_url: None,
        machine_client: None,
        iam_denials_url: String::new(),
        processes_url: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_cognito_jwks_urls() {
        assert_eq!(
            rewrite_jwks(
                "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json",
                "http://127.0.0.1:4023"
            )
            .as_deref(),
            Some("http://127.0.0.1:4023/eu-west-1_AbC123/.well-known/jwks.json")
        );
        assert_eq!(rewrite_jwks("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123", "x"), None);
        assert_eq!(rewrite_jwks("https://example.com/.well-known/jwks.json", "x"), None);
    }

    #[test]
    fn the_local_values_of_a_stacks_environment() {
        let cognito = "http://127.0.0.1:4023";
        // Callbacks to 127.0.0.1 are allowed locally, whatever the stack allows.
        assert_eq!(
            local_env_value("WEBHOOK_DESTINATIONS", "public-https", cognito).as_deref(),
            Some("public-https-and-loopback")
        );
        assert_eq!(local_env_value("WEBHOOK_DESTINATIONS", "public-https-and-loopback", cognito), None);
        assert_eq!(
            local_env_value("JWKS_URL", "https://cognito-idp.eu-west-1.amazonaws.com/p/.well-known/jwks.json", cognito)
                .as_deref(),
            Some("http://127.0.0.1:4023/p/.well-known/jwks.json")
        );
        assert_eq!(local_env_value("WEBHOOK_QUEUE_URL", "public-https", cognito), None);
    }
}
