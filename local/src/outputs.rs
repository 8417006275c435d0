//! `<state-dir>/outputs.json`: what tests and tools need to use the running
//! local target, and the summary printed for people.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::provision::Endpoints;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outputs {
    pub api_url: String,
    pub api_id: String,
    pub stage: String,
    pub region: String,
    pub account_id: String,
    pub user_pool_id: String,
    pub user_pool_client_id: String,
    pub cognito_endpoint: String,
    pub username: String,
    pub password: String,
    /// Every test user (the one above first), for tests that need two users.
    #[serde(default)]
    pub users: Vec<crate::provision::UserCredentials>,
    pub job_queue_url: String,
    pub dead_letter_queue_url: String,
    /// The webhook delivery queue (webhook-sender's `WEBHOOK_QUEUE_URL`)
    /// and its DLQ.
    #[serde(default)]
    pub webhook_queue_url: String,
    #[serde(default)]
    pub webhook_dead_letter_queue_url: String,
    /// The secret webhooks are signed with (`WEBHOOK_SIGNING_SECRET_ID`).
    #[serde(default)]
    pub webhook_signing_secret_name: String,
    /// Local only: that secret's value (new on every start), so that tests
    /// can verify signatures. The deployed stack's is only in Secrets
    /// Manager.
    #[serde(default)]
    pub webhook_signing_secret: String,
    pub jobs_table_name: String,
    pub results_bucket_name: String,
    /// From the object counter's `COUNTERS_TABLE_NAME`.
    #[serde(default)]
    pub counters_table_name: String,
    /// The topic the results bucket publishes its object events to.
    #[serde(default)]
    pub object_events_topic_arn: String,
    /// The bus job-processor publishes jobs' ends to (`JOB_EVENTS_BUS_NAME`):
    /// add a rule to it to receive them (docs/events.md).
    #[serde(default)]
    pub event_bus_name: String,
    pub aws_endpoints: Endpoints,
    pub logs_dir: String,
    /// Function name → its log file.
    pub function_logs: std::collections::BTreeMap<String, String>,
    pub pid: u32,
    /// `GET` it for the calls IAM denied, per function and action.
    #[serde(default)]
    pub iam_denials_url: String,
    /// `GET` it for the memory of every process of the local target.
    #[serde(default)]
    pub processes_url: String,
    /// Credentials for the AWS_IAM routes (a session of the stack's
    /// machine-client role), when the stack has such routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_client: Option<MachineClientOutput>,
    /// The fault control API (`--faults` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults_url: Option<String>,
}

/// `machineClient`: what a SigV4 client needs (docs/local-target.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineClientOutput {
    /// The AWS_IAM routes' base URL.
    pub api_url: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    /// The principal the calls are made as (the owner of its jobs).
    pub user_arn: String,
}

impl Outputs {
    /// Writes the file atomically with mode 0600 (it holds the password and
    /// the signing secret).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    pub fn read(path: &Path) -> anyhow::Result<Outputs> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a jobs-local outputs file", path.display()))
    }

    /// The summary for people: API, user, token, logs, stop.
    pub fn summary(&self, outputs_path: &Path) -> String {
        let auth = serde_json::json!({
            "AuthFlow": "USER_PASSWORD_AUTH",
            "ClientId": self.user_pool_client_id,
            "AuthParameters": {"USERNAME": self.username, "PASSWORD": self.password},
        });
        format!(
            "\
jobs-local is running (pid {pid}).

  API          {api}
  region       {region}
  test user    {user}
  password     {password}
  outputs      {outputs}
  logs         {logs}
  endpoints    sqs {sqs} | dynamodb {ddb} | s3 {s3} | cognito-idp {cog} | lambda {lambda}{faults}

Get an ID token: `./just token` (`just token` inside `nix develop`), or with curl and jq:
  curl -s {cog} -H 'Content-Type: application/x-amz-json-1.1' \\
    -H 'X-Amz-Target: AWSCognitoIdentityProviderService.InitiateAuth' \\
    -d '{auth}' | jq -r .AuthenticationResult.IdToken

Submit a job (from the repository root; the body is any JSON object):
  curl -s -X POST {api}/submit-job-request -H \"Authorization: $TOKEN\" -H 'Content-Type: application/json' -d @examples/job.json

Stop: `./just down` (or `jobs-local stop --state-dir ...`).",
            pid = self.pid,
            faults = match &self.faults_url {
                Some(url) => format!("\n  faults       {url} (fault injection: docs/local-target.md, \"Faults\")"),
                None => String::new(),
            },
            api = self.api_url,
            region = self.region,
            user = self.username,
            password = self.password,
            outputs = outputs_path.display(),
            logs = self.logs_dir,
            sqs = self.aws_endpoints.sqs,
            ddb = self.aws_endpoints.dynamodb,
            s3 = self.aws_endpoints.s3,
            cog = self.aws_endpoints.cognito_idp,
            lambda = self.aws_endpoints.lambda,
            auth = auth,
        )
    }
}
