//! S3 event notifications through SNS to a function, locally: the stack's
//! `aws_s3_bucket_notification` (topic configurations), `aws_sns_topic` and
//! `lambda` `aws_sns_topic_subscription`s, as the model reads them
//! ([`crate::model::notifications`]).
//!
//! moto does the S3 and SNS half: its S3 publishes a bucket's events to a
//! topic of the same moto process (moto's `s3/notifications.py` calls its SNS
//! backend in-process), and its SNS POSTs each message to an `http`
//! subscription (already confirmed: moto sends no SubscriptionConfirmation).
//! So the topics live in the S3 moto server, and each `lambda` subscription
//! becomes an `http` subscription to the bridge here, which turns every
//! delivery into the SNS event Lambda would pass the function and invokes it
//! asynchronously through the Lambda service as Lambda does: the events wait
//! for a free instance (for up to their maximum age, 6 h by default),
//! function errors are retried (2 times by default; both from the stack's
//! `aws_lambda_function_event_invoke_config`), then the event goes to the
//! function's `dead_letter_config` queue (if any).
//!
//! moto's S3 events have no `sequencer` (nor `versionId`); S3's always do,
//! and the counter needs one to order a key's events. The bridge adds one when
//! it is missing: a hex counter that grows with each message, in the order
//! moto delivers, which for one key is the order of the S3 calls (moto
//! delivers synchronously, inside the PutObject/DeleteObject call). A message
//! delivered again (by MessageId) keeps its sequencers, so it is counted once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use aws_lambda_events::event::sns::{MessageAttribute, SnsEvent, SnsMessage, SnsRecord};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::any;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

use crate::httpx::{self, Body, HttpClient, RequestBody};
use crate::lambda::{InvokeError, Invoked, LambdaService};
use crate::model::notifications::{AsyncRetry, BucketTopic, Notifications};

// ------------------------------------------------------------ provisioning

/// SNS's Query protocol against the moto server that runs S3.
struct Sns<'a> {
    http: &'a HttpClient,
    endpoint: &'a str,
    region: &'a str,
}

impl Sns<'_> {
    async fn call(&self, params: &[(&str, &str)]) -> anyhow::Result<String> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Version", "2010-03-31");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let action = params.iter().find(|(k, _)| *k == "Action").map(|(_, v)| *v).unwrap_or("?");
        let req = Request::post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", httpx::fake_sigv4(self.region, "sns"))
            .body(Full::new(Bytes::from(form.finish())))?;
        let (status, _, bytes) = httpx::send(self.http, req)
            .await
            .with_context(|| format!("SNS {action}: cannot reach {}", self.endpoint))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if !status.is_success() {
            bail!("SNS {action} failed ({status}): {text}");
        }
        Ok(text)
    }
}

/// The text of the first `<tag>` element.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_string())
}

/// The running bridge and what it was wired to, for the startup summary.
pub struct Started {
    pub server: tokio::task::JoinHandle<()>,
    pub lines: Vec<String>,
}

/// Creates the topics in the S3 moto server, starts the bridge on an
/// ephemeral port, subscribes it for each `lambda` subscription, then sets
/// the buckets' notification configurations (S3 publishes its
/// `s3:TestEvent` then, which reaches the functions like any event).
pub async fn start(
    n: &Notifications,
    s3_endpoint: &str,
    region: &str,
    lambda: LambdaService,
    queue_urls: BTreeMap<String, String>,
    sqs: aws_sdk_sqs::Client,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Started> {
    let http = httpx::client();
    let sns = Sns { http: &http, endpoint: s3_endpoint, region };
    create_topics(&sns, n).await?;
    let listener = httpx::bind(0, "SNS → Lambda bridge").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (routes, mut lines) = subscribe(&sns, n, &base, &lambda, &queue_urls).await?;
    let bridge = Arc::new(Bridge {
        lambda,
        routes,
        sqs,
        sequencers: SequencerMemory::new(sequencer_seed(), REMEMBERED_MESSAGES),
    });
    let server = tokio::spawn(httpx::serve(listener, bridge, stop, Duration::from_secs(2)));
    lines.extend(configure_buckets(n, s3_endpoint, region).await?);
    Ok(Started { server, lines })
}

/// Creates the stack's topics, checking each gets the ARN the stack expects.
async fn create_topics(sns: &Sns<'_>, n: &Notifications) -> anyhow::Result<()> {
    for t in &n.topics {
        let xml = sns.call(&[("Action", "CreateTopic"), ("Name", &t.name)]).await.with_context(|| t.address.clone())?;
        let arn = xml_text(&xml, "TopicArn")
            .ok_or_else(|| anyhow!("{}: CreateTopic answered no TopicArn: {xml}", t.address))?;
        if arn != t.arn {
            bail!("{}: moto created topic {arn}, expected {}", t.address, t.arn);
        }
    }
    Ok(())
}

/// Subscribes the bridge's `{base}/sns/{i}` for the `i`th `lambda`
/// subscription: its route, and a line of the startup summary each.
async fn subscribe(
    sns: &Sns<'_>,
    n: &Notifications,
    base: &str,
    lambda: &LambdaService,
    queue_urls: &BTreeMap<String, String>,
) -> anyhow::Result<(Vec<Route>, Vec<String>)> {
    let (mut routes, mut lines) = (Vec::new(), Vec::new());
    for (i, s) in n.subscriptions.iter().enumerate() {
        let endpoint = format!("{base}/sns/{i}");
        let xml = sns
            .call(&[("Action", "Subscribe"), ("TopicArn", &s.topic_arn), ("Protocol", "http"), ("Endpoint", &endpoint)])
            .await
            .with_context(|| s.address.clone())?;
        let arn = xml_text(&xml, "SubscriptionArn").unwrap_or_default();
        let dead_letter_queue_url = match &s.dead_letter_queue_arn {
            None => None,
            Some(q) => Some(queue_urls.get(q).cloned().ok_or_else(|| {
                anyhow!("{}: the function's dead-letter queue {q} is not a queue of the stack", s.address)
            })?),
        };
        lines.push(format!(
            "    topic {} → {} (http subscription {endpoint}{})",
            s.topic_arn.rsplit(':').next().unwrap_or_default(),
            s.function,
            dead_letter_queue_url
                .as_deref()
                .map(|u| format!(", DLQ {}", u.rsplit('/').next().unwrap_or(u)))
                .unwrap_or_default()
        ));
        // Lambda queues a function's asynchronous events and runs them as
        // instances free up: at most its concurrency at a time, in order.
        let slots = Arc::new(tokio::sync::Semaphore::new(lambda.max_instances(&s.function).max(1)));
        routes.push(Route {
            function: s.function.clone(),
            subscription_arn: arn,
            dead_letter_queue_url,
            retry: s.retry,
            slots,
        });
    }
    Ok((routes, lines))
}

/// Sets each bucket's notification configuration (its topic
/// configurations); a line of the startup summary each.
async fn configure_buckets(n: &Notifications, s3_endpoint: &str, region: &str) -> anyhow::Result<Vec<String>> {
    let s3 = crate::provision::s3_client(s3_endpoint, region);
    let mut by_bucket: BTreeMap<&str, Vec<&BucketTopic>> = BTreeMap::new();
    for b in &n.bucket_topics {
        by_bucket.entry(&b.bucket).or_default().push(b);
    }
    let mut lines = Vec::new();
    for (bucket, configs) in by_bucket {
        let mut conf = aws_sdk_s3::types::NotificationConfiguration::builder();
        for c in &configs {
            conf = conf.topic_configurations(topic_configuration(c)?);
            lines.push(format!(
                "    bucket {bucket} {} → topic {}",
                c.events.join(" "),
                c.topic_arn.rsplit(':').next().unwrap_or_default()
            ));
        }
        s3.put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(conf.build())
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "{}: PutBucketNotificationConfiguration `{bucket}` failed: {}",
                    configs[0].address,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            })?;
    }
    Ok(lines)
}

/// One topic configuration of a bucket, with its key filter.
fn topic_configuration(c: &BucketTopic) -> anyhow::Result<aws_sdk_s3::types::TopicConfiguration> {
    use aws_sdk_s3::types::{
        Event, FilterRule, FilterRuleName, NotificationConfigurationFilter, S3KeyFilter, TopicConfiguration,
    };
    let mut rules = Vec::new();
    if let Some(p) = &c.filter_prefix {
        rules.push(FilterRule::builder().name(FilterRuleName::Prefix).value(p).build());
    }
    if let Some(s) = &c.filter_suffix {
        rules.push(FilterRule::builder().name(FilterRuleName::Suffix).value(s).build());
    }
    let mut topic = TopicConfiguration::builder()
        .set_id(c.id.clone())
        .topic_arn(&c.topic_arn)
        .set_events(Some(c.events.iter().map(|e| Event::from(e.as_str())).collect()));
    if !rules.is_empty() {
        topic = topic.filter(
            NotificationConfigurationFilter::builder()
                .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
                .build(),
        );
    }
    Ok(topic.build()?)
}

// ------------------------------------------------------------------ bridge

struct Route {
    function: String,
    subscription_arn: String,
    dead_letter_queue_url: Option<String>,
    retry: AsyncRetry,
    /// One permit per instance the function may run.
    slots: Arc<tokio::sync::Semaphore>,
}

struct Bridge {
    lambda: LambdaService,
    routes: Vec<Route>,
    sqs: aws_sdk_sqs::Client,
    sequencers: SequencerMemory,
}

/// How many SNS messages the bridge remembers the sequencers of.
const REMEMBERED_MESSAGES: usize = 100_000;
/// Sequencers reserved per message (one per S3 record it holds).
const SEQUENCERS_PER_MESSAGE: u64 = 1024;

/// The sequencers given to each SNS message, by its MessageId: a message
/// delivered again (moto's SNS retries a delivery that failed; SNS delivers
/// at least once) gets the same ones, so the counter sees the same events
/// and counts them once, as it would S3's own sequencers.
struct SequencerMemory {
    next: AtomicU64,
    given: std::sync::Mutex<(std::collections::HashMap<String, u64>, std::collections::VecDeque<String>)>,
    capacity: usize,
}

impl SequencerMemory {
    fn new(seed: u64, capacity: usize) -> Self {
        SequencerMemory { next: AtomicU64::new(seed), given: Default::default(), capacity }
    }

    /// The first sequencer of the message's block (the same for a repeat).
    fn base(&self, message_id: &str) -> u64 {
        let mut given = self.given.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(base) = given.0.get(message_id) {
            return *base;
        }
        let base = self.next.fetch_add(SEQUENCERS_PER_MESSAGE, Ordering::SeqCst);
        given.0.insert(message_id.to_string(), base);
        given.1.push_back(message_id.to_string());
        if given.1.len() > self.capacity
            && let Some(oldest) = given.1.pop_front()
        {
            given.0.remove(&oldest);
        }
        base
    }
}

/// Sequencers start from the clock, so that they also grow across restarts.
fn sequencer_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (nanos as u64) & 0x00FF_FFFF_FFFF_FFFF
}

impl httpx::Routes for Bridge {
    fn router(self: Arc<Self>) -> Router {
        Router::new().route("/sns/{index}", any(deliver)).fallback(no_such_subscription).with_state(self)
    }
}

async fn no_such_subscription() -> Response<Body> {
    httpx::response(StatusCode::NOT_FOUND, "text/plain", "no such subscription")
}

/// `/sns/{index}`: a delivery of the `index`th subscription, acknowledged
/// at once (SNS invokes Lambda asynchronously).
async fn deliver(
    State(bridge): State<Arc<Bridge>>,
    Path(index): Path<String>,
    req: Request<RequestBody>,
) -> Response<Body> {
    let Some(route) = index.parse::<usize>().ok().and_then(|i| bridge.routes.get(i)) else {
        return no_such_subscription().await;
    };
    let body = match httpx::read_body(req.into_body(), 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return httpx::response(StatusCode::BAD_REQUEST, "text/plain", e.to_string()),
    };
    let delivery: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return httpx::response(StatusCode::BAD_REQUEST, "text/plain", format!("not JSON: {e}")),
    };
    match delivery.get("Type").and_then(Value::as_str) {
        Some("Notification") => {}
        Some("SubscriptionConfirmation") => {
            // moto confirms http subscriptions itself; AWS would want this.
            tracing::info!(function = route.function, "SNS subscription confirmation received (already confirmed)");
            return httpx::response(StatusCode::OK, "text/plain", "");
        }
        other => {
            return httpx::response(StatusCode::BAD_REQUEST, "text/plain", format!("unexpected Type {other:?}"));
        }
    }
    let event = bridge.lambda_event(route, &delivery);
    let (lambda, sqs) = (bridge.lambda.clone(), bridge.sqs.clone());
    let (function, dlq) = (route.function.clone(), route.dead_letter_queue_url.clone());
    let (retry, slots) = (route.retry, route.slots.clone());
    tokio::spawn(async move {
        let outcome = invoke_async(&lambda, &slots, &function, retry, event.clone()).await;
        if let AsyncOutcome::Failed(error) = outcome {
            dead_letter(&sqs, &function, dlq.as_deref(), &event, &error).await;
        }
    });
    httpx::response(StatusCode::OK, "text/plain", "")
}

impl Bridge {
    /// The SNS event Lambda passes a subscribed function, its S3 records
    /// given sequencers (moto's have none).
    fn lambda_event(&self, route: &Route, d: &Value) -> Bytes {
        let id = d.get("MessageId").and_then(Value::as_str).unwrap_or_default();
        let base = self.sequencers.base(id);
        let mut i = 0;
        let message = add_sequencers(d.get("Message").and_then(Value::as_str).unwrap_or_default(), || {
            i += 1;
            base + i - 1
        });
        let event = sns_event(&route.subscription_arn, d, message);
        Bytes::from(serde_json::to_vec(&event).expect("an SNS event serializes"))
    }
}

/// The SNS event of one delivery `d` (SNS's HTTP notification body) with
/// `message`: one record, as aws_lambda_events' `SnsEvent`, the type the
/// functions read.
fn sns_event(subscription_arn: &str, d: &Value, message: String) -> SnsEvent {
    let field = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let mut sns = SnsMessage::default();
    sns.sns_message_type = "Notification".into();
    sns.message_id = field("MessageId");
    sns.topic_arn = field("TopicArn");
    sns.subject = d.get("Subject").and_then(Value::as_str).map(str::to_string);
    sns.message = message;
    // SNS's RFC 3339 time; a delivery without one is stamped now.
    sns.timestamp = DateTime::parse_from_rfc3339(&field("Timestamp"))
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| DateTime::<Utc>::from(std::time::SystemTime::now()));
    sns.signature_version = field("SignatureVersion");
    sns.signature = field("Signature");
    sns.signing_cert_url = field("SigningCertURL");
    sns.unsubscribe_url = field("UnsubscribeURL");
    sns.message_attributes = d
        .get("MessageAttributes")
        .and_then(|a| serde_json::from_value::<HashMap<String, MessageAttribute>>(a.clone()).ok())
        .unwrap_or_default();
    let mut record = SnsRecord::default();
    record.event_source = "aws:sns".into();
    record.event_version = "1.0".into();
    record.event_subscription_arn = subscription_arn.to_string();
    record.sns = sns;
    let mut event = SnsEvent::default();
    event.records = vec![record];
    event
}

/// Adds a `sequencer` (16 hex digits of `next()`) to each S3 record of a
/// message that has none (moto's); anything else is returned unchanged.
fn add_sequencers(message: &str, mut next: impl FnMut() -> u64) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(message) else { return message.to_string() };
    let Some(records) = v.get_mut("Records").and_then(Value::as_array_mut) else { return message.to_string() };
    let mut changed = false;
    for r in records {
        if let Some(object) = r.pointer_mut("/s3/object").and_then(Value::as_object_mut)
            && !object.contains_key("sequencer")
        {
            object.insert("sequencer".into(), Value::String(format!("{:016X}", next())));
            changed = true;
        }
    }
    if changed { v.to_string() } else { message.to_string() }
}

/// What became of an asynchronous invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsyncOutcome {
    /// The function ran it successfully (after `retries` failed tries).
    Succeeded { retries: u32 },
    /// Every try failed, or the event expired waiting: this is why.
    Failed(String),
}

/// One asynchronous invocation, as Lambda runs it: the event waits for a
/// free instance of the function (`slots`) for up to its maximum age, then
/// a function error is retried `retry.retry_attempts` times (after 1 s and
/// 2 s here, minutes in AWS).
pub async fn invoke_async(
    lambda: &LambdaService,
    slots: &tokio::sync::Semaphore,
    function: &str,
    retry: AsyncRetry,
    event: Bytes,
) -> AsyncOutcome {
    let expires = tokio::time::Instant::now() + retry.max_event_age;
    let expired = || format!("the event expired after {} s without a free instance", retry.max_event_age.as_secs());
    let mut failures = 0;
    loop {
        let Ok(Ok(slot)) = tokio::time::timeout_at(expires, slots.acquire()).await else {
            return AsyncOutcome::Failed(expired());
        };
        match lambda.invoke(function, event.clone()).await {
            Ok(Invoked::Response(_)) => return AsyncOutcome::Succeeded { retries: failures },
            Ok(Invoked::Error(body)) => {
                failures += 1;
                let error = String::from_utf8_lossy(&body).into_owned();
                if failures > retry.retry_attempts {
                    return AsyncOutcome::Failed(error);
                }
                tracing::warn!(function, attempt = failures, error, "asynchronous invocation failed: retrying");
                drop(slot);
                tokio::time::sleep(Duration::from_secs(u64::from(failures))).await;
            }
            // Instances busy with other callers' invocations: wait for one.
            Err(InvokeError::Throttled(_)) if tokio::time::Instant::now() < expires => {
                drop(slot);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(InvokeError::Throttled(_)) => return AsyncOutcome::Failed(expired()),
            Err(e) => return AsyncOutcome::Failed(e.to_string()),
        }
    }
}

/// Sends a failed asynchronous event to the function's dead-letter queue
/// with the reason, as Lambda does (or logs it as lost when there is none).
async fn dead_letter(sqs: &aws_sdk_sqs::Client, function: &str, dlq: Option<&str>, event: &Bytes, last_error: &str) {
    match dlq {
        Some(url) => {
            let sent = sqs
                .send_message()
                .queue_url(url)
                .message_body(String::from_utf8_lossy(event))
                .message_attributes(
                    "ErrorMessage",
                    aws_sdk_sqs::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(last_error.chars().take(1000).collect::<String>())
                        .build()
                        .expect("data type is set"),
                )
                .send()
                .await;
            match sent {
                Ok(_) => tracing::error!(
                    function,
                    error = last_error,
                    queue = url,
                    "asynchronous invocation failed: event sent to the dead-letter queue"
                ),
                Err(e) => {
                    tracing::error!(function, error = last_error, queue = url, send_error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "asynchronous invocation failed and the dead-letter queue refused the event: event lost")
                }
            }
        }
        None => tracing::error!(
            function,
            error = last_error,
            "asynchronous invocation failed, no dead-letter queue: event lost"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bridge's answers to paths and deliveries it does not handle
    /// (a notification it acknowledges is covered by tests/e2e).
    #[tokio::test]
    async fn the_bridge_answers_unknown_subscriptions_and_bad_deliveries() {
        let (stop, _) = tokio::sync::watch::channel(false);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (lambda, _server) = LambdaService::start(listener, Vec::new(), "eu-west-1", "123456789012").unwrap();
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .region(aws_sdk_sqs::config::Region::new("eu-west-1"))
                .build(),
        );
        let route = Route {
            function: "f".into(),
            subscription_arn: "arn:aws:sns:eu-west-1:123456789012:t:1".into(),
            dead_letter_queue_url: None,
            retry: AsyncRetry::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(1)),
        };
        let bridge =
            Bridge { lambda: lambda.clone(), routes: vec![route], sqs, sequencers: SequencerMemory::new(0, 10) };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(httpx::serve(listener, Arc::new(bridge), stop.subscribe(), Duration::from_secs(1)));
        let http = httpx::client();
        let post = |path: &str, body: &str| {
            let req = Request::post(format!("{base}{path}")).body(Full::new(Bytes::from(body.to_string()))).unwrap();
            let http = http.clone();
            async move {
                let (status, _, body) = httpx::send(&http, req).await.unwrap();
                (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
            }
        };
        let confirmation = r#"{"Type":"SubscriptionConfirmation"}"#;
        for path in ["/sns/1", "/sns/x", "/sns", "/other"] {
            assert_eq!(post(path, confirmation).await, (404, "no such subscription".into()), "{path}");
        }
        assert_eq!(post("/sns/0", confirmation).await, (200, String::new()));
        let (status, body) = post("/sns/0", "{").await;
        assert_eq!((status, body.starts_with("not JSON: ")), (400, true), "{body}");
        assert_eq!(post("/sns/0", r#"{"Type":"Other"}"#).await, (400, r#"unexpected Type Some("Other")"#.into()));
        stop.send_replace(true);
        lambda.shutdown().await;
    }

    #[test]
    fn adds_missing_sequencers_in_delivery_order() {
        let mut n = 0x0A;
        let moto = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"object":{"key":"a","size":1}}},{"eventName":"ObjectRemoved:Delete","s3":{"object":{"key":"a","sequencer":"FF"}}}]}"#;
        let out: Value = serde_json::from_str(&add_sequencers(moto, || {
            n += 1;
            n
        }))
        .unwrap();
        assert_eq!(out["Records"][0]["s3"]["object"]["sequencer"], "000000000000000B");
        assert_eq!(out["Records"][1]["s3"]["object"]["sequencer"], "FF", "an existing sequencer is kept");
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#;
        assert_eq!(add_sequencers(test_event, || 1), test_event);
    }

    #[test]
    fn a_message_delivered_again_keeps_its_sequencers() {
        let memory = SequencerMemory::new(0x10, 2);
        let first = memory.base("m-1");
        let second = memory.base("m-2");
        assert!(second > first, "later messages get later sequencers");
        assert_eq!(memory.base("m-1"), first, "a repeat gets the same");
        memory.base("m-3");
        assert!(memory.base("m-1") > second, "only the newest messages are remembered");
    }

    #[test]
    fn a_delivery_becomes_the_sns_event_lambda_passes() {
        let delivery = serde_json::json!({
            "Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Message": "ignored", "Timestamp": "2026-12-06T01:02:03.456Z", "SignatureVersion": "1",
            "Signature": "sig", "SigningCertURL": "https://cert", "UnsubscribeURL": "https://unsub",
            "MessageAttributes": {"kind": {"Type": "String", "Value": "object"}}
        });
        let event = sns_event("arn:aws:sns:us-east-1:1:t:sub", &delivery, "{}".into());
        let json = serde_json::to_value(&event).unwrap();
        let record = &json["Records"][0];
        assert_eq!(record["EventSource"], "aws:sns");
        assert_eq!(record["EventSubscriptionArn"], "arn:aws:sns:us-east-1:1:t:sub");
        let sns = &record["Sns"];
        assert_eq!(sns["Type"], "Notification");
        assert_eq!(sns["Message"], "{}");
        assert_eq!(sns["Timestamp"], "2026-12-06T01:02:03.456Z");
        assert_eq!(sns["SigningCertUrl"], "https://cert");
        assert_eq!(sns["MessageAttributes"]["kind"], serde_json::json!({"Type": "String", "Value": "object"}));
        assert_eq!(sns["Subject"], Value::Null);
        assert_eq!(serde_json::from_value::<SnsEvent>(json).unwrap(), event, "a function reads back what was built");
    }

    #[test]
    fn reads_xml_text() {
        let xml = "<CreateTopicResponse><CreateTopicResult><TopicArn>arn:aws:sns:us-east-1:1:t</TopicArn></CreateTopicResult></CreateTopicResponse>";
        assert_eq!(xml_text(xml, "TopicArn").as_deref(), Some("arn:aws:sns:us-east-1:1:t"));
        assert_eq!(xml_text(xml, "Nope"), None);
    }
}
