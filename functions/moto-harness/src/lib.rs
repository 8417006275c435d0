//! A moto server for one test, shared by the adapter and handler tests of
//! every crate that talks to AWS (jobs-aws, object-counter, job-status,
//! job-processor, job-commands, authorizer), with the tables as the app
//! stack defines them, a subscriber to the job events bus and a plain HTTP
//! GET for presigned links.
//!
//! Each [`MotoServer`] listens on its own free port and is killed when
//! dropped. `moto_server` must be on PATH (./just puts .tools/venv/bin there;
//! `nix develop` provides it), or set MOTO_SERVER. moto runs with the same
//! `sitecustomize` as the local target (local/moto-python), which corrects
//! moto where it differs from AWS: its DynamoDB item calls (TransactWriteItems
//! included) are atomic as DynamoDB's are (without it, concurrent conditional
//! updates of one item race inside moto), and a failed write or a cancelled
//! transaction leaves every item as it was.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};

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
        let port = unused_port();
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
        let mut moto = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start listening on port {port}");
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited ({status}) before listening on port {port}");
            }
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

/// A free port of 127.0.0.1 that no other test of this process was given.
///
/// The tests of a binary run in parallel threads: once one test's probe
/// socket is closed, the OS may hand the same free port to the next test's
/// probe before the first moto has bound it. Two tests would then share
/// one server (one's moto fails to bind), and the first to finish would
/// kill the other's.
fn unused_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
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

/// The jobs table as the app stack defines it: hash key `jobRequestId`, and
/// the `owner-submittedAt` index listing a user's jobs.
pub async fn create_jobs_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("jobRequestId"))
        .attribute_definitions(string_attribute("owner"))
        .attribute_definitions(string_attribute("submittedAt"))
        .key_schema(key("jobRequestId", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("owner-submittedAt")
                .key_schema(key("owner", KeyType::Hash))
                .key_schema(key("submittedAt", KeyType::Range))
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .expect("a complete index definition"),
        )
        .send()
        .await
        .expect("moto creates the jobs table");
}

/// The counters table as the app stack defines it: hash key `bucket`, range
/// key `counter`.
pub async fn create_counters_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("bucket"))
        .attribute_definitions(string_attribute("counter"))
        .key_schema(key("bucket", KeyType::Hash))
        .key_schema(key("counter", KeyType::Range))
        .send()
        .await
        .expect("moto creates the counters table");
}

/// The idempotency keys table as the app stack defines it: hash key
/// `idempotencyKey` (its TTL on `expiresAt` is not needed here: the claim's
/// condition ignores an expired key, as it must since TTL deletes late).
pub async fn create_idempotency_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("idempotencyKey"))
        .key_schema(key("idempotencyKey", KeyType::Hash))
        .send()
        .await
        .expect("moto creates the idempotency keys table");
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("a complete attribute definition")
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().expect("a complete key element")
}

/// A plain HTTP/1.1 GET, enough for a presigned link to moto on 127.0.0.1:
/// (status, body).
pub fn http_get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("moto serves plain HTTP");
    let (host, path) = rest.split_once('/').expect("a URL with a path");
    let mut stream = TcpStream::connect(host).expect("moto accepts the connection");
    write!(stream, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    let status = response[9..12].parse().expect("an HTTP status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// A subscriber to the job events bus as a user would set one up: the bus,
/// a rule matching the service's `source`, and the queue it delivers to.
pub struct JobEventsSubscriber {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl JobEventsSubscriber {
    /// Creates bus `bus` and a rule for events of `source` into a new queue.
    pub async fn start(config: &SdkConfig, bus: &str, source: &str) -> Self {
        use aws_sdk_sqs::types::QueueAttributeName;
        let (events, sqs) = (aws_sdk_eventbridge::Client::new(config), aws_sdk_sqs::Client::new(config));
        events.create_event_bus().name(bus).send().await.unwrap();
        let queue_url =
            sqs.create_queue().queue_name(format!("{bus}-subscriber")).send().await.unwrap().queue_url.unwrap();
        let attributes =
            sqs.get_queue_attributes().queue_url(&queue_url).attribute_names(QueueAttributeName::QueueArn).send();
        let queue_arn = attributes.await.unwrap().attributes.unwrap().remove(&QueueAttributeName::QueueArn).unwrap();
        let pattern = serde_json::json!({"source": [source]});
        let rule = events.put_rule().event_bus_name(bus).name("job-ends").event_pattern(pattern.to_string());
        rule.send().await.unwrap();
        let target = aws_sdk_eventbridge::types::Target::builder().id("subscriber").arn(queue_arn).build().unwrap();
        events.put_targets().event_bus_name(bus).rule("job-ends").targets(target).send().await.unwrap();
        Self { sqs, queue_url }
    }

    /// The events delivered since the last call, whole (`source`,
    /// `detail-type`, `detail`, ...), each received once.
    pub async fn received(&self) -> Vec<serde_json::Value> {
        let mut events = Vec::new();
        loop {
            let out = self.sqs.receive_message().queue_url(&self.queue_url).max_number_of_messages(10);
            let out = out.visibility_timeout(600).send().await.unwrap();
            if out.messages().is_empty() {
                return events;
            }
            for m in out.messages() {
                events.push(serde_json::from_str(m.body().unwrap()).unwrap());
            }
        }
    }
}
