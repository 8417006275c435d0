//! `jobctl`: the job ingestion service from the command line. Sign in with
//! Cognito, submit jobs, wait for them, fetch their results, list them.

mod cache;
mod cognito;
mod config;
mod error;
mod http;
mod jwt;
mod tty;

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::cache::{Cache, Session};
use crate::config::{Config, Layer};
use crate::error::{Error, api_error, body_message, one_line};
use crate::http::{Http, Request, encode_component};

/// Refresh the ID token when it expires within this many seconds.
const REFRESH_MARGIN_SECS: i64 = 60;
/// Right after a submit, the job can take a moment to appear in the table
/// (on deployments that record it at its first delivery rather than at submit).
const NOT_VISIBLE_GRACE: Duration = Duration::from_secs(30);
/// The header that makes a submit safe to repeat (docs/api.md).
const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
/// The longest Idempotency-Key the API accepts, in characters.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;
/// A submit whose answer was lost, or that the API answered 502, 503 or 504,
/// is sent again after each of these pauses, with the same Idempotency-Key:
/// the API answers a repeat with the first job, so a retry never doubles it.
const SUBMIT_RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

#[derive(Parser)]
#[command(
    name = "jobctl",
    version,
    about = "Submit jobs to the job ingestion API, wait for them, fetch their results.",
    after_help = "Settings: flags, else JOBS_API_URL, JOBS_CLIENT_ID, JOBS_COGNITO_ENDPOINT, JOBS_REGION, JOBS_USERNAME, \
                  else the outputs file (--outputs, JOBS_OUTPUTS, or .local/outputs.json written by `./just up`).\n\
                  Credentials are kept in $XDG_CONFIG_HOME/jobctl/credentials.json (~/.config/jobctl/ by default), mode 0600."
)]
struct Cli {
    /// The API's base URL (the stack's apiUrl output)
    #[arg(long, global = true, value_name = "URL")]
    api_url: Option<String>,
    /// The user pool's app client id (userPoolClientId)
    #[arg(long, global = true, value_name = "ID")]
    client_id: Option<String>,
    /// The Cognito endpoint (default https://cognito-idp.<region>.amazonaws.com/)
    #[arg(long, global = true, value_name = "URL")]
    cognito_endpoint: Option<String>,
    /// The AWS region of the user pool
    #[arg(long, global = true)]
    region: Option<String>,
    /// An outputs file with apiUrl, userPoolClientId, cognitoEndpoint... (default .local/outputs.json if present)
    #[arg(long, global = true, value_name = "FILE")]
    outputs: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in with the user pool (USER_PASSWORD_AUTH) and keep the tokens
    Login {
        /// Default: JOBS_USERNAME, the outputs file's username, else asked
        #[arg(long, short)]
        username: Option<String>,
        /// Read the password from stdin (else JOBS_PASSWORD, else asked without echo)
        #[arg(long)]
        password_stdin: bool,
    },
    /// Forget the kept tokens of this API
    Logout,
    /// Submit a job request: a JSON object from FILE, or stdin with `-`
    Submit {
        /// A file with the job request (a JSON object), or `-` for stdin
        file: String,
        /// Wait for the job to finish, print its final status; exit 1 if it failed
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        timeout: u64,
        /// Print only the job id (without --wait)
        #[arg(long, short)]
        quiet: bool,
        /// POST the job's status document to this URL when it ends, signed (docs/webhooks.md)
        #[arg(long, value_name = "URL")]
        callback_url: Option<String>,
        /// Send this Idempotency-Key (1 to 128 of A-Z a-z 0-9 - _ . :): the same key and request
        /// within 24 hours gives the same job. Default: a fresh key per invocation, reused on retries
        #[arg(long, value_name = "KEY", value_parser = parse_idempotency_key)]
        idempotency_key: Option<String>,
    },
    /// Print a job's status (JSON)
    Status {
        id: String,
        /// Wait until the job is complete or failed; exit 1 if it failed
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Cancel a job that has not ended; print its status (JSON)
    Cancel { id: String },
    /// Download a complete job's result
    Get {
        id: String,
        /// Write the result to FILE instead of stdout
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List your recent jobs, newest first
    List {
        /// How many jobs per page (1 to 100)
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
        /// Follow every page
        #[arg(long)]
        all: bool,
        /// Start at this page (printed when there are more)
        #[arg(long, value_name = "TOKEN")]
        next_token: Option<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn run(cli: Cli) -> Result<(), Error> {
    let flags = Layer {
        api_url: cli.api_url.clone(),
        client_id: cli.client_id.clone(),
        cognito_endpoint: cli.cognito_endpoint.clone(),
        region: cli.region.clone(),
        username: match &cli.command {
            Command::Login { username, .. } => username.clone(),
            _ => None,
        },
    };
    let explicit_outputs =
        cli.outputs.clone().or_else(|| env("JOBS_OUTPUTS").filter(|p| !p.is_empty()).map(PathBuf::from));
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let outputs = config::outputs_layer(explicit_outputs.as_deref(), &cwd)?.map(|(_, layer)| layer).unwrap_or_default();
    let config = config::resolve(&[flags, Layer::from_env(env), outputs]);
    let ctx = Ctx { cache: Cache::from_env(env)?, http: Http::new(Duration::from_secs(30))?, config };

    match cli.command {
        Command::Login { password_stdin, .. } => ctx.login(password_stdin),
        Command::Logout => ctx.logout(),
        Command::Submit { file, wait, timeout, quiet, callback_url, idempotency_key } => {
            let key = idempotency_key.unwrap_or_else(new_idempotency_key);
            ctx.submit(&file, wait.then_some(timeout), quiet, callback_url.as_deref(), &key)
        }
        Command::Status { id, wait, timeout } => ctx.status(&id, wait.then_some(timeout)),
        Command::Cancel { id } => ctx.cancel(&id),
        Command::Get { id, output } => ctx.get(&id, output.as_deref()),
        Command::List { limit, all, next_token, json } => ctx.list(limit, all, next_token, json),
    }
}

struct Ctx {
    config: Config,
    cache: Cache,
    http: Http,
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Io(format!("cannot write the output: {e}"))),
        _ => Ok(()),
    }
}

fn print_json(value: &Value) -> Result<(), Error> {
    print(&serde_json::to_string_pretty(value).expect("JSON serializes"))
}

/// Checks a job request before it is sent: valid JSON, and an object.
pub fn validate_job_request(bytes: &[u8], source: &str) -> Result<(), Error> {
    let invalid = |reason: String| Error::InvalidInput { source: source.to_string(), reason };
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(_)) => Ok(()),
        Ok(other) => Err(invalid(format!(
            "it is {}",
            match other {
                Value::Array(_) => "a JSON array",
                Value::String(_) => "a JSON string",
                Value::Number(_) => "a JSON number",
                Value::Bool(_) => "a JSON boolean",
                _ => "JSON null",
            }
        ))),
        Err(_) if bytes.iter().all(u8::is_ascii_whitespace) => Err(invalid("it is empty".into())),
        Err(e) => Err(invalid(format!("it is not JSON ({e})"))),
    }
}

/// What the status body says about a failure.
fn failure_reason(status: &Value) -> String {
    ["failureReason", "lastError"]
        .iter()
        .find_map(|k| status.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .unwrap_or("no reason given")
        .to_string()
}

fn job_status(status: &Value) -> &str {
    status.get("jobStatus").and_then(Value::as_str).unwrap_or("unknown")
}

impl Ctx {
    fn api_url(&self) -> Result<&str, Error> {
        self.config.api_url()
    }

    fn login(&self, password_stdin: bool) -> Result<(), Error> {
        let api_url = self.api_url()?;
        let client_id = self.config.client_id()?;
        let endpoint = self.config.cognito_endpoint()?;
        let username = match &self.config.username {
            Some(u) => u.clone(),
            None if std::io::stdin().is_terminal() && !password_stdin => tty::prompt("Username: ")?,
            None => return Err(Error::Usage("no username: pass --username or set JOBS_USERNAME".into())),
        };
        let password = if password_stdin {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| Error::Io(format!("cannot read stdin: {e}")))?;
            text.trim_end_matches(['\r', '\n']).to_string()
        } else if let Some(p) = env("JOBS_PASSWORD").filter(|p| !p.is_empty()) {
            p
        } else if std::io::stdin().is_terminal() {
            tty::prompt_hidden(&format!("Password for {username}: "))?
        } else {
            return Err(Error::Usage(
                "no password: use --password-stdin or JOBS_PASSWORD, or run on a terminal to be asked".into(),
            ));
        };
        if password.is_empty() {
            return Err(Error::Usage("the password is empty".into()));
        }
        let flow = cognito::Flow::Password { username: &username, password: &password };
        let tokens = cognito::initiate_auth(&self.http, endpoint, client_id, &flow)?;
        let refresh_token = tokens
            .refresh_token
            .ok_or_else(|| Error::Api { status: 200, message: "Cognito returned no refresh token".into() })?;
        self.cache.put(Session {
            api_url: api_url.to_string(),
            client_id: client_id.to_string(),
            cognito_endpoint: endpoint.to_string(),
            username: username.clone(),
            id_token: tokens.id_token,
            refresh_token,
        })?;
        eprintln!("Logged in to {api_url} as {username}; the tokens are kept in {}.", self.cache.path().display());
        Ok(())
    }

    fn logout(&self) -> Result<(), Error> {
        let api_url = self.api_url()?;
        let session = self.cache.get(api_url, self.config.client_id.as_deref())?;
        match session {
            Some(s) => {
                self.cache.remove(&s.api_url, &s.client_id)?;
                eprintln!("Logged out of {api_url}.");
            }
            None => eprintln!("Not logged in to {api_url}."),
        }
        Ok(())
    }

    /// The cached session, its ID token refreshed if it expires within a minute.
    fn session(&self) -> Result<Session, Error> {
        let api_url = self.api_url()?;
        let mut session = self
            .cache
            .get(api_url, self.config.client_id.as_deref())?
            .ok_or_else(|| Error::NotLoggedIn { api_url: api_url.to_string() })?;
        if jwt::needs_refresh(&session.id_token, now(), REFRESH_MARGIN_SECS) {
            let flow = cognito::Flow::Refresh { refresh_token: &session.refresh_token };
            let tokens = cognito::initiate_auth(&self.http, &session.cognito_endpoint, &session.client_id, &flow)
                .map_err(|e| match e {
                    Error::Unreachable { .. } | Error::SessionExpired { .. } => e,
                    other => Error::SessionExpired { detail: other.to_string() },
                })?;
            session.id_token = tokens.id_token;
            if let Some(r) = tokens.refresh_token {
                session.refresh_token = r;
            }
            self.cache.put(session.clone())?;
        }
        Ok(session)
    }

    fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<http::Response, Error> {
        self.call_with(method, path, body, &[])
    }

    fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        extra: &[(&str, &str)],
    ) -> Result<http::Response, Error> {
        let session = self.session()?;
        let url = format!("{}{path}", self.api_url()?);
        let auth = format!("Bearer {}", session.id_token);
        let mut headers = vec![("Authorization", auth.as_str()), ("Accept", "application/json")];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        headers.extend_from_slice(extra);
        self.http.send(Request { what: "the API", method, url: &url, headers: &headers, body })
    }

    fn json_body(response: &http::Response) -> Result<Value, Error> {
        serde_json::from_slice(&response.body).map_err(|_| Error::Api {
            status: response.status,
            message: format!("not a JSON answer: {}", body_message(&response.body)),
        })
    }

    fn get_status(&self, id: &str) -> Result<Value, Error> {
        if id.is_empty() {
            return Err(Error::Usage("the job id is empty".into()));
        }
        let response = self.call("GET", &format!("/job-status/{}", encode_component(id)), None)?;
        if response.status != 200 {
            return Err(api_error(response.status, &response.body, "GET /job-status/{jobId}", Some(id)));
        }
        Self::json_body(&response)
    }

    fn submit(
        &self,
        file: &str,
        wait: Option<u64>,
        quiet: bool,
        callback_url: Option<&str>,
        idempotency_key: &str,
    ) -> Result<(), Error> {
        if let Some(url) = callback_url {
            check_callback_url(url)?;
        }
        let (bytes, source) = if file == "-" {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes).map_err(|e| Error::Io(format!("cannot read stdin: {e}")))?;
            (bytes, "stdin".to_string())
        } else {
            let bytes = std::fs::read(file).map_err(|e| Error::Usage(format!("cannot read {file}: {e}")))?;
            (bytes, file.to_string())
        };
        validate_job_request(&bytes, &source)?;
        let headers = submit_headers(idempotency_key, callback_url);
        // Every attempt carries the same key: a retry after a lost answer gets the first job.
        let response = with_retries(&SUBMIT_RETRY_DELAYS, || {
            self.call_with("POST", "/submit-job-request", Some(bytes.clone()), &headers)
        })?;
        if response.status != 200 {
            return Err(api_error(response.status, &response.body, "POST /submit-job-request", None));
        }
        let body = Self::json_body(&response)?;
        let id = body
            .get("jobId")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Api { status: 200, message: "the answer has no jobId".into() })?
            .to_string();
        match wait {
            None if quiet => print(&id),
            None => print_json(&body),
            Some(timeout) => {
                eprintln!("Submitted job {id}.");
                self.wait_and_print(&id, timeout, true)
            }
        }
    }

    fn status(&self, id: &str, wait: Option<u64>) -> Result<(), Error> {
        match wait {
            Some(timeout) => self.wait_and_print(id, timeout, false),
            None => print_json(&self.get_status(id)?),
        }
    }

    /// Cancels the job and prints its status; a job that has ended is an
    /// error naming its state.
    fn cancel(&self, id: &str) -> Result<(), Error> {
        if id.is_empty() {
            return Err(Error::Usage("the job id is empty".into()));
        }
        let response = self.call("POST", &format!("/jobs/{}/cancel", encode_component(id)), None)?;
        match response.status {
            200 => print_json(&Self::json_body(&response)?),
            409 => {
                let body = Self::json_body(&response)?;
                Err(Error::AlreadyEnded { id: id.to_string(), status: job_status(&body).to_string() })
            }
            status => Err(api_error(status, &response.body, "POST /jobs/{jobId}/cancel", Some(id))),
        }
    }

    /// Polls until the job has ended (complete, failed or cancelled); prints the final status.
    /// A job just submitted may not be recorded yet: a 404 is then "queued"
    /// for a while.
    fn wait_and_print(&self, id: &str, timeout: u64, just_submitted: bool) -> Result<(), Error> {
        let start = Instant::now();
        let mut progress = tty::Progress::new();
        let mut delay = Duration::from_millis(500);
        let result = loop {
            let elapsed = start.elapsed();
            let (state, detail) = match self.get_status(id) {
                Ok(status) if matches!(job_status(&status), "complete" | "failed" | "cancelled") => break Ok(status),
                Ok(status) => {
                    let detail = match status.get("lastError").and_then(Value::as_str) {
                        Some(e) => format!(", retrying after: {e}"),
                        None => String::new(),
                    };
                    (job_status(&status).to_string(), detail)
                }
                // A job appears moments after it is submitted.
                Err(Error::UnknownJob { .. }) if just_submitted && elapsed < NOT_VISIBLE_GRACE => {
                    ("queued".into(), String::new())
                }
                Err(e) => break Err(e),
            };
            if elapsed >= Duration::from_secs(timeout) {
                break Err(Error::Timeout { id: id.to_string(), status: state, seconds: timeout });
            }
            let line = format!("Waiting for job {id}: {state}{detail}");
            // The spinner turns every 100 ms between polls.
            let until = Instant::now() + delay;
            while Instant::now() < until {
                progress.update(&line, start.elapsed());
                std::thread::sleep(Duration::from_millis(100));
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        };
        progress.finish();
        let status = result?;
        print_json(&status)?;
        match job_status(&status) {
            "failed" => Err(Error::JobFailed { id: id.to_string(), reason: failure_reason(&status) }),
            "cancelled" => Err(Error::JobCancelled { id: id.to_string() }),
            _ => Ok(()),
        }
    }

    fn get(&self, id: &str, output: Option<&Path>) -> Result<(), Error> {
        let status = self.get_status(id)?;
        let state = job_status(&status);
        if state != "complete" {
            return Err(Error::NotComplete { id: id.to_string(), status: state.to_string() });
        }
        let link = ["jobProcessedPayloadLink", "jobProcessedPayload"]
            .iter()
            .find_map(|k| status.get(*k).and_then(Value::as_str))
            .ok_or_else(|| Error::Api {
                status: 200,
                message: format!("job {id} is complete but has no result link"),
            })?;
        let output = output.filter(|p| p.as_os_str() != "-");
        match output {
            None => {
                let mut out = std::io::stdout().lock();
                self.download(link, &mut out)?;
                out.flush().map_err(|e| Error::Io(format!("cannot write the result: {e}")))?;
            }
            Some(path) => {
                // Into a temporary file next to it, renamed when complete.
                let mut tmp_name = path.as_os_str().to_owned();
                tmp_name.push(".part");
                let tmp = PathBuf::from(tmp_name);
                let mut file = std::fs::File::create(&tmp)
                    .map_err(|e| Error::Io(format!("cannot write {}: {e}", tmp.display())))?;
                let result = self.download(link, &mut file).and_then(|n| {
                    file.sync_all().map_err(|e| Error::Io(format!("cannot write {}: {e}", tmp.display())))?;
                    std::fs::rename(&tmp, path)
                        .map_err(|e| Error::Io(format!("cannot write {}: {e}", path.display())))?;
                    Ok(n)
                });
                if result.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                let n = result?;
                eprintln!("Wrote the result of job {id} to {} ({n} bytes).", path.display());
            }
        }
        Ok(())
    }

    fn download(&self, link: &str, out: &mut dyn std::io::Write) -> Result<u64, Error> {
        match self.http.download("the result store", link, out)? {
            Ok(n) => Ok(n),
            Err(response) => Err(Error::Api {
                status: response.status,
                message: format!(
                    "downloading the result from {} failed: {}",
                    http::display_url(link),
                    s3_message(&response.body)
                ),
            }),
        }
    }

    fn list(&self, limit: u32, all: bool, mut next_token: Option<String>, json: bool) -> Result<(), Error> {
        let mut jobs = Vec::new();
        loop {
            let mut path = format!("/jobs?limit={limit}");
            if let Some(t) = &next_token {
                path.push_str(&format!("&nextToken={}", encode_component(t)));
            }
            let response = self.call("GET", &path, None)?;
            if response.status != 200 {
                return Err(api_error(response.status, &response.body, "GET /jobs", None));
            }
            let body = Self::json_body(&response)?;
            let page = body
                .get("jobs")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::Api { status: 200, message: "the GET /jobs answer has no jobs list".into() })?;
            jobs.extend(page.iter().cloned());
            next_token = body.get("nextToken").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_string);
            if !all || next_token.is_none() {
                break;
            }
        }
        if json {
            let mut body = serde_json::json!({ "jobs": jobs });
            if let Some(t) = &next_token {
                body["nextToken"] = Value::String(t.clone());
            }
            print_json(&body)?;
        } else if jobs.is_empty() {
            eprintln!("No jobs.");
        } else {
            print(&jobs_table(&jobs))?;
        }
        if let Some(t) = next_token.filter(|_| !json) {
            eprintln!("More jobs: `jobctl list --all`, or the next page with `jobctl list --next-token {t}`.");
        }
        Ok(())
    }
}

/// An S3 error answer's code and message (XML), else the body.
fn s3_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let tag = |name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => body_message(body),
    }
}

/// A fresh Idempotency-Key: a random UUID (v4), one per invocation.
fn new_idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `--idempotency-key` as the API accepts it: 1 to 128 characters of
/// `A-Za-z0-9-_.:` (checked here so a bad key is a usage error, not a 400).
fn parse_idempotency_key(raw: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    let count = raw.chars().count();
    if count == 0 || count > MAX_IDEMPOTENCY_KEY_CHARS || !raw.chars().all(allowed) {
        return Err(format!(
            "an idempotency key is 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters of A-Z, a-z, 0-9, '-', '_', '.' and ':' \
             (this one has {count} characters)"
        ));
    }
    Ok(raw.to_string())
}

/// The headers a submit adds to the authorization and content type.
fn submit_headers<'a>(idempotency_key: &'a str, callback_url: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
    let mut headers = vec![(IDEMPOTENCY_KEY_HEADER, idempotency_key)];
    headers.extend(callback_url.map(|url| ("Job-Callback-Url", url)));
    headers
}

/// Whether a submit may have reached the API without its answer reaching
/// us, or the API asked for a retry: then it is sent again (same key).
/// A connection refused or a name that does not resolve never reached it,
/// and any other answer is final.
fn worth_retrying(outcome: &Result<http::Response, Error>) -> bool {
    match outcome {
        Ok(response) => matches!(response.status, 502..=504),
        Err(Error::Unreachable { detail, .. }) => !http::never_sent(detail),
        Err(_) => false,
    }
}

/// Calls `send` until it succeeds, gives a final answer, or `delays` (the
/// pauses between attempts) run out; the last outcome.
fn with_retries(
    delays: &[Duration],
    mut send: impl FnMut() -> Result<http::Response, Error>,
) -> Result<http::Response, Error> {
    let mut delays = delays.iter();
    loop {
        let outcome = send();
        match delays.next() {
            Some(delay) if worth_retrying(&outcome) => std::thread::sleep(*delay),
            _ => return outcome,
        }
    }
}

/// The API refuses a callback URL it would never call with 400 at submit;
/// the obvious mistakes are caught here first, before anything is sent.
fn check_callback_url(url: &str) -> Result<(), Error> {
    let lower = url.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !url.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(Error::Usage(format!(
            "--callback-url {url:?} is not an absolute URL; give one such as https://hooks.example.com/jobs"
        ))),
    }
}

/// The jobs as a table: id, status, submitted, finished.
fn jobs_table(jobs: &[Value]) -> String {
    let field = |job: &Value, k: &str| job.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut rows = vec![["JOB ID".to_string(), "STATUS".into(), "SUBMITTED".into(), "FINISHED".into()]];
    for job in jobs {
        let finished =
            Some(field(job, "completedAt")).filter(|s| !s.is_empty()).unwrap_or_else(|| field(job, "failedAt"));
        rows.push([field(job, "jobId"), field(job, "jobStatus"), field(job, "submittedAt"), finished]);
    }
    let widths: Vec<usize> = (0..4).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = (0..4).map(|i| format!("{:<w$}", r[i], w = widths[i])).collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn job_requests_are_validated_before_sending() {
        assert!(validate_job_request(br#"{"jobType": "weather"}"#, "job.json").is_ok());
        assert!(validate_job_request(b" {} \n", "job.json").is_ok());
        let reason = |b: &[u8]| match validate_job_request(b, "f") {
            Err(Error::InvalidInput { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason(b"[1, 2]"), "it is a JSON array");
        assert_eq!(reason(b"\"text\""), "it is a JSON string");
        assert_eq!(reason(b"42"), "it is a JSON number");
        assert_eq!(reason(b"null"), "it is JSON null");
        assert_eq!(reason(b"true"), "it is a JSON boolean");
        assert_eq!(reason(b""), "it is empty");
        assert!(reason(b"{\"region\":").starts_with("it is not JSON ("), "{}", reason(b"{\"region\":"));
        assert!(reason(b"\xff").starts_with("it is not JSON"));
    }

    #[test]
    fn failure_reasons() {
        assert_eq!(failure_reason(&json!({"failureReason": "boom", "lastError": "x"})), "boom");
        assert_eq!(failure_reason(&json!({"failureReason": null, "lastError": "x"})), "x");
        assert_eq!(failure_reason(&json!({})), "no reason given");
    }

    #[test]
    fn s3_errors() {
        let xml =
            b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";
        assert_eq!(s3_message(xml), "AccessDenied: Request has expired");
        assert_eq!(s3_message(b"plain"), "plain");
    }

    #[test]
    fn table() {
        let jobs = [
            json!({"jobId": "a1", "jobStatus": "complete", "submittedAt": "t1", "completedAt": "t2"}),
            json!({"jobId": "b22", "jobStatus": "failed", "submittedAt": "t3", "failedAt": "t4"}),
            json!({"jobId": "c", "jobStatus": "Submitted", "submittedAt": "t5"}),
        ];
        assert_eq!(
            jobs_table(&jobs),
            "JOB ID  STATUS     SUBMITTED  FINISHED\n\
             a1      complete   t1         t2\n\
             b22     failed     t3         t4\n\
             c       Submitted  t5"
        );
    }

    #[test]
    fn the_binary_is_jobctl_not_the_shell_builtin_jobs() {
        // Typed in bash or zsh, `jobs login` runs the shell's builtin `jobs`, never a binary of that name.
        use clap::CommandFactory as _;
        assert_eq!(env!("CARGO_BIN_NAME"), "jobctl");
        assert_eq!(env!("CARGO_PKG_NAME"), "jobctl");
        assert_eq!(Cli::command().get_name(), "jobctl");
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["jobctl", "submit", "-", "--wait", "--timeout", "5", "--api-url", "http://x"])
            .unwrap();
        assert_eq!(cli.api_url.as_deref(), Some("http://x"));
        assert!(matches!(cli.command, Command::Submit { wait: true, timeout: 5, callback_url: None, .. }));
        let cli = Cli::try_parse_from(["jobctl", "submit", "-", "--callback-url", "https://h.example/x"]).unwrap();
        assert!(matches!(cli.command, Command::Submit { callback_url: Some(ref u), .. } if u == "https://h.example/x"));
        assert!(matches!(cli.command, Command::Submit { idempotency_key: None, .. }));
        let cli = Cli::try_parse_from(["jobctl", "submit", "-", "--idempotency-key", "order-42:v1.0_a"]).unwrap();
        assert!(matches!(cli.command, Command::Submit { idempotency_key: Some(ref k), .. } if k == "order-42:v1.0_a"));
        for bad in ["", "a b", "a/b", "clé", &"k".repeat(129)] {
            let e = Cli::try_parse_from(["jobctl", "submit", "-", "--idempotency-key", bad]).err().unwrap();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
            assert!(e.to_string().contains("1 to 128 characters"), "{bad:?}: {e}");
        }
        assert!(Cli::try_parse_from(["jobctl", "status"]).is_err());
        assert_eq!(Cli::try_parse_from(["jobctl", "bogus"]).err().unwrap().exit_code(), 2);
        for bad in ["0", "101", "x"] {
            assert!(Cli::try_parse_from(["jobctl", "list", "--limit", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_submit_sends_its_idempotency_key_and_callback_url() {
        assert_eq!(submit_headers("k1", None), [("Idempotency-Key", "k1")]);
        assert_eq!(
            submit_headers("k1", Some("https://h.example/x")),
            [("Idempotency-Key", "k1"), ("Job-Callback-Url", "https://h.example/x")]
        );
    }

    #[test]
    fn each_invocation_gets_a_fresh_key_the_api_accepts() {
        let (a, b) = (new_idempotency_key(), new_idempotency_key());
        assert_ne!(a, b);
        for key in [&a, &b] {
            assert_eq!(parse_idempotency_key(key).as_ref(), Ok(key));
            assert_eq!(uuid::Uuid::parse_str(key).unwrap().get_version_num(), 4);
        }
        assert!(parse_idempotency_key(&"K".repeat(128)).is_ok());
        for bad in ["", " ", "a b", "a/b", "clé", "a\n", &"K".repeat(129)] {
            assert!(parse_idempotency_key(bad).is_err(), "{bad:?}");
        }
    }

    /// An API on 127.0.0.1 that answers each connection with the next of
    /// `answers` (`None`: reads the request and hangs up without answering);
    /// the Idempotency-Key of every request it read.
    fn flaky_api(answers: Vec<Option<u16>>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead as _, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/api/submit-job-request", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut keys = Vec::new();
            for answer in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(": ").unwrap_or((line, ""));
                    match name.to_ascii_lowercase().as_str() {
                        "idempotency-key" => keys.push(value.to_string()),
                        "content-length" => length = value.parse().unwrap(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                if let Some(status) = answer {
                    let body = r#"{"jobId": "j1"}"#;
                    let head =
                        format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                    stream.write_all(head.as_bytes()).unwrap();
                    stream.write_all(body.as_bytes()).unwrap();
                }
            }
            keys
        });
        (url, server)
    }

    fn post(http: &Http, url: &str, key: &str) -> Result<http::Response, Error> {
        let headers = submit_headers(key, None);
        http.send(Request { what: "the API", method: "POST", url, headers: &headers, body: Some(b"{}".to_vec()) })
    }

    #[test]
    fn a_submit_whose_answer_is_lost_is_sent_again_with_the_same_key() {
        let (url, server) = flaky_api(vec![None, Some(503), Some(200)]);
        let http = Http::new(Duration::from_secs(5)).unwrap();
        let key = new_idempotency_key();
        let pauses = [Duration::from_millis(10); 2];
        let response = with_retries(&pauses, || post(&http, &url, &key)).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(server.join().unwrap(), [key.clone(), key.clone(), key]);
    }

    #[test]
    fn a_final_answer_or_the_last_attempt_is_not_retried() {
        let http = Http::new(Duration::from_secs(5)).unwrap();
        for (answers, status) in [(vec![Some(409)], 409), (vec![Some(400)], 400), (vec![Some(502), Some(502)], 502)] {
            let (url, server) = flaky_api(answers.clone());
            let outcome = with_retries(&[Duration::from_millis(10)], || post(&http, &url, "k"));
            assert_eq!(outcome.unwrap().status, status);
            assert_eq!(server.join().unwrap().len(), answers.len());
        }
        // Nothing listens: never sent, so not retried (one attempt, no pause).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/api/submit-job-request");
        let mut attempts = 0;
        let outcome = with_retries(&[Duration::from_secs(60)], || {
            attempts += 1;
            post(&http, &url, "k")
        });
        assert!(matches!(outcome, Err(Error::Unreachable { ref detail, .. }) if detail == "connection refused"));
        assert_eq!(attempts, 1);
    }

    #[test]
    fn a_callback_url_must_be_absolute() {
        for good in ["https://hooks.example.com/jobs", "http://127.0.0.1:8080/h"] {
            assert!(check_callback_url(good).is_ok(), "{good}");
        }
        for bad in ["hooks.example.com/jobs", "https://", "https:///x", "ftp://x", "https://a b"] {
            let message = check_callback_url(bad).unwrap_err().to_string();
            assert!(message.contains("is not an absolute URL"), "{bad}: {message}");
        }
    }
}
