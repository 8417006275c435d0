//! Creates the model's queues, tables, buckets, event buses and rules,
//! secrets and Cognito user pool in moto, plus one ready test user.

use std::collections::HashMap;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http_body_util::Full;
use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::{Value, json};

use crate::httpx::{self, HttpClient};
use crate::model::{Model, Queue, Table};
use crate::stack::Dynamic;

/// Where each emulated service answers.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Endpoints {
    pub sqs: String,
    pub dynamodb: String,
    pub s3: String,
    #[serde(rename = "cognito-idp")]
    pub cognito_idp: String,
    pub lambda: String,
    /// SNS runs in the S3 moto server (its S3 publishes bucket events to its
    /// own SNS backend): the same URL as `s3`.
    #[serde(default)]
    pub sns: String,
    /// STS (AssumeRole) is served by every moto server: the cognito-idp one's URL.
    #[serde(default)]
    pub sts: String,
    /// EventBridge runs in the SQS moto server (its rules deliver to its own
    /// SQS backend, so a rule with a queue target works): the same URL as `sqs`.
    #[serde(default)]
    pub events: String,
    /// Secrets Manager (served by every moto server): the cognito-idp one's
    /// URL, a server the job path does not wait on.
    #[serde(default)]
    pub secretsmanager: String,
}

/// The test user created in the (first) user pool.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub username: String,
    pub password: String,
    pub user_pool_id: String,
    pub client_id: String,
    /// Every test user of the pool, this one first.
    pub users: Vec<UserCredentials>,
}

/// A user's sign-in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserCredentials {
    pub username: String,
    pub password: String,
}

pub fn sqs_client(endpoint: &str, region: &str) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new("test", "test", None, None, "jobs-local"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

fn dynamodb_client(endpoint: &str, region: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new("test", "test", None, None, "jobs-local"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

pub(crate) fn s3_client(endpoint: &str, region: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new("test", "test", None, None, "jobs-local"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Queues, tables, buckets, event buses and their rules (they do not
/// depend on moto-generated ids).
pub async fn provision_data(model: &Model, endpoints: &Endpoints) -> anyhow::Result<()> {
    create_queues(model, endpoints).await?;
    create_tables(model, endpoints).await?;
    create_buckets(model, endpoints).await?;
    create_event_buses(model, endpoints).await?;
    create_event_rules(model, endpoints).await
}

/// A call of a JSON-protocol service (`X-Amz-Target: <target>`) over plain
/// HTTP: moto's EventBridge, Secrets Manager and Cognito (a few calls each
/// do not justify an SDK). Errors start with `what` and name the service's
/// error type and message.
async fn json_call(
    http: &HttpClient,
    endpoint: &str,
    region: &str,
    target: &str,
    body: &Value,
    what: &str,
) -> anyhow::Result<Value> {
    // moto routes a request to a service by the one its signature names.
    let signing_name = match target.split_once('.').map(|(prefix, _)| prefix) {
        Some("AWSEvents") => "events",
        Some("secretsmanager") => "secretsmanager",
        _ => "cognito-idp",
    };
    let req = hyper::Request::post(format!("{endpoint}/"))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", target)
        .header("authorization", httpx::fake_sigv4(region, signing_name))
        .body(Full::new(Bytes::from(body.to_string())))?;
    let (status, _, bytes) =
        httpx::send(http, req).await.with_context(|| format!("{what}: cannot reach {endpoint}"))?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let kind = value.get("__type").and_then(Value::as_str).unwrap_or("error");
        let msg = value.get("message").or_else(|| value.get("Message")).and_then(Value::as_str).unwrap_or_default();
        bail!(
            "{what} failed ({status}): {kind}: {msg} {}",
            if value.is_null() { String::from_utf8_lossy(&bytes).into_owned() } else { String::new() }
        );
    }
    Ok(value)
}

async fn create_event_buses(model: &Model, endpoints: &Endpoints) -> anyhow::Result<()> {
    let http = httpx::client();
    for bus in &model.event_buses {
        let what = format!("{}: CreateEventBus `{}`", bus.address, bus.name);
        let body = json!({ "Name": bus.name });
        json_call(&http, &endpoints.events, &model.region, "AWSEvents.CreateEventBus", &body, &what).await?;
    }
    Ok(())
}

/// Each rule with its pattern on its bus, then its queue targets. A
/// disabled rule gets no targets: moto's PutEvents sends to every rule of
/// the bus whatever its state, and without targets it sends nothing, as a
/// disabled rule in EventBridge.
async fn create_event_rules(model: &Model, endpoints: &Endpoints) -> anyhow::Result<()> {
    let http = httpx::client();
    for rule in &model.event_rules {
        let what = format!("{}: PutRule `{}`", rule.address, rule.name);
        let body = json!({
            "Name": rule.name,
            "EventBusName": rule.bus,
            "EventPattern": rule.pattern,
            "State": if rule.enabled { "ENABLED" } else { "DISABLED" },
        });
        json_call(&http, &endpoints.events, &model.region, "AWSEvents.PutRule", &body, &what).await?;
        if !rule.enabled {
            continue;
        }
        for t in &rule.targets {
            let mut target = json!({"Id": t.id, "Arn": t.queue_arn});
            if let Some(group) = &t.message_group_id {
                target["SqsParameters"] = json!({"MessageGroupId": group});
            }
            let what = format!("{}: PutTargets `{}` on `{}`", t.address, t.id, rule.name);
            let body = json!({"Rule": rule.name, "EventBusName": rule.bus, "Targets": [target]});
            let answer =
                json_call(&http, &endpoints.events, &model.region, "AWSEvents.PutTargets", &body, &what).await?;
            if answer.get("FailedEntryCount").and_then(Value::as_u64).unwrap_or(0) > 0 {
                bail!("{what} failed: {}", answer["FailedEntries"]);
            }
        }
    }
    Ok(())
}

/// A secret as provisioned: moto's ARN and the value generated for it.
#[derive(Debug, Clone)]
pub struct ProvisionedSecret {
    pub name: String,
    pub arn: String,
    pub value: String,
}

/// Creates each secret with a new random value (the stack's comes from an
/// ephemeral resource, which the local target does not read) and records
/// the ARN moto gave it, which only moto knows (a random suffix).
pub async fn provision_secrets(
    model: &Model,
    endpoints: &Endpoints,
    dynamic: &mut Dynamic,
) -> anyhow::Result<Vec<ProvisionedSecret>> {
    let http = httpx::client();
    let mut secrets = Vec::new();
    for secret in &model.secrets {
        let value = generate_secret(SECRET_LENGTH);
        let what = format!("{}: CreateSecret `{}`", secret.address, secret.name);
        let body = json!({"Name": secret.name, "SecretString": value});
        let answer =
            json_call(&http, &endpoints.secretsmanager, &model.region, "secretsmanager.CreateSecret", &body, &what)
                .await?;
        let arn = answer
            .get("ARN")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{what} returned no ARN: {answer}"))?
            .to_string();
        dynamic.ids.insert(secret.key.clone(), arn.clone());
        secrets.push(ProvisionedSecret { name: secret.name.clone(), arn, value });
    }
    Ok(secrets)
}

/// A generated secret's length: the stack's signing secret is a 64-character
/// password of letters and digits (cdktf/constructs/job-webhooks.ts).
const SECRET_LENGTH: usize = 64;

/// A random value of letters and digits, as Secrets Manager's
/// GetRandomPassword gives with ExcludePunctuation.
pub fn generate_secret(len: usize) -> String {
    use rand::distr::{Alphanumeric, SampleString as _};
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

async fn create_queues(model: &Model, endpoints: &Endpoints) -> anyhow::Result<()> {
    let sqs = sqs_client(&endpoints.sqs, &model.region);
    // Dead-letter queues first: a redrive policy names an existing queue.
    let (plain, redriven): (Vec<&Queue>, Vec<&Queue>) = model.queues.iter().partition(|q| q.redrive.is_none());
    for q in plain.into_iter().chain(redriven) {
        let attributes: HashMap<aws_sdk_sqs::types::QueueAttributeName, String> = q
            .attributes
            .iter()
            .map(|(k, v)| (aws_sdk_sqs::types::QueueAttributeName::from(k.as_str()), v.clone()))
            .collect();
        sqs.create_queue().queue_name(&q.name).set_attributes(Some(attributes)).send().await.map_err(|e| {
            anyhow!("{}: CreateQueue `{}` failed: {}", q.address, q.name, aws_sdk_sqs::error::DisplayErrorContext(&e))
        })?;
    }
    Ok(())
}

/// Each table, then its time to live if it has one.
async fn create_tables(model: &Model, endpoints: &Endpoints) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::TimeToLiveSpecification;
    let ddb = dynamodb_client(&endpoints.dynamodb, &model.region);
    for t in &model.tables {
        create_table_request(&ddb, t)?.send().await.map_err(|e| {
            anyhow!(
                "{}: CreateTable `{}` failed: {}",
                t.address,
                t.name,
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )
        })?;
        if let Some(attr) = &t.ttl_attribute {
            ddb.update_time_to_live()
                .table_name(&t.name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder().enabled(true).attribute_name(attr).build()?,
                )
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "{}: UpdateTimeToLive failed: {}",
                        t.address,
                        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                    )
                })?;
        }
    }
    Ok(())
}

/// The CreateTable request for a table: keys, attributes and global
/// secondary indexes, billed per request.
fn create_table_request(
    ddb: &aws_sdk_dynamodb::Client,
    t: &Table,
) -> anyhow::Result<aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
        ScalarAttributeType,
    };
    let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
    let mut req = ddb
        .create_table()
        .table_name(&t.name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(&t.hash_key, KeyType::Hash)?);
    if let Some(r) = &t.range_key {
        req = req.key_schema(key(r, KeyType::Range)?);
    }
    for (name, kind) in &t.attributes {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()?,
        );
    }
    for g in &t.global_secondary_indexes {
        let mut gsi = GlobalSecondaryIndex::builder().index_name(&g.name).key_schema(key(&g.hash_key, KeyType::Hash)?);
        if let Some(r) = &g.range_key {
            gsi = gsi.key_schema(key(r, KeyType::Range)?);
        }
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(g.projection_type.as_str()))
            .set_non_key_attributes((!g.non_key_attributes.is_empty()).then(|| g.non_key_attributes.clone()))
            .build();
        req = req.global_secondary_indexes(gsi.projection(projection).build()?);
    }
    Ok(req)
}

async fn create_buckets(model: &Model, endpoints: &Endpoints) -> anyhow::Result<()> {
    let s3 = s3_client(&endpoints.s3, &model.region);
    for b in &model.buckets {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let mut req = s3.create_bucket().bucket(&b.name);
        if model.region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(model.region.as_str()))
                    .build(),
            );
        }
        req.send().await.map_err(|e| {
            anyhow!("{}: CreateBucket `{}` failed: {}", b.address, b.name, aws_sdk_s3::error::DisplayErrorContext(&e))
        })?;
    }
    Ok(())
}

/// Cognito's JSON protocol over plain HTTP.
pub struct Cognito<'a> {
    pub http: &'a HttpClient,
    pub endpoint: &'a str,
    pub region: &'a str,
}

impl Cognito<'_> {
    pub async fn call(&self, action: &str, body: &Value) -> anyhow::Result<Value> {
        let target = format!("AWSCognitoIdentityProviderService.{action}");
        json_call(self.http, self.endpoint, self.region, &target, body, &format!("Cognito {action}")).await
    }
}

/// Creates the user pools and clients, then the test user in the first
/// pool/client; records the ids moto generated.
pub async fn provision_cognito(
    model: &Model,
    cognito: &Cognito<'_>,
    dynamic: &mut Dynamic,
) -> anyhow::Result<Option<TestUser>> {
    for pool in &model.user_pools {
        let out = cognito.call("CreateUserPool", &pool.create_request).await.with_context(|| pool.address.clone())?;
        let id = out
            .pointer("/UserPool/Id")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{}: CreateUserPool returned no id", pool.address))?;
        dynamic.ids.insert(pool.key.clone(), id.to_string());
    }
    for client in &model.user_pool_clients {
        let pool_id = dynamic.ids.get(&client.pool_key).cloned().unwrap_or_default();
        let mut req = client.create_request.clone();
        req["UserPoolId"] = json!(pool_id);
        let out = cognito.call("CreateUserPoolClient", &req).await.with_context(|| client.address.clone())?;
        let id = out
            .pointer("/UserPoolClient/ClientId")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{}: CreateUserPoolClient returned no id", client.address))?;
        dynamic.ids.insert(client.key.clone(), id.to_string());
    }
    let Some(pool) = model.user_pools.first() else { return Ok(None) };
    let Some(client) = model.user_pool_clients.iter().find(|c| c.pool_key == pool.key) else { return Ok(None) };
    let user_pool_id = dynamic.ids[&pool.key].clone();
    let client_id = dynamic.ids[&client.key].clone();
    // Two users, so that tests can check one user never sees the other's jobs.
    let mut users = Vec::new();
    for (name, email) in [("demo", "demo@example.com"), ("demo2", "demo2@example.com")] {
        let username = if pool.username_is_email { email.to_string() } else { name.to_string() };
        let password = generate_password(pool.password_min_length.max(20) as usize);
        cognito
            .call(
                "AdminCreateUser",
                &json!({
                    "UserPoolId": user_pool_id,
                    "Username": username,
                    "MessageAction": "SUPPRESS",
                    "TemporaryPassword": password,
                    "UserAttributes": [{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
                }),
            )
            .await?;
        cognito
            .call(
                "AdminSetUserPassword",
                &json!({"UserPoolId": user_pool_id, "Username": username, "Password": password, "Permanent": true}),
            )
            .await?;
        users.push(UserCredentials { username, password });
    }
    let UserCredentials { username, password } = users[0].clone();
    Ok(Some(TestUser { username, password, user_pool_id, client_id, users }))
}

/// A random password with upper, lower, digit and a shell- and JSON-safe
/// symbol, so it satisfies any Cognito password policy of that length.
pub fn generate_password(len: usize) -> String {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"!#%+-=_.~^";
    let mut rng = rand::rng();
    let all: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL].concat();
    let mut chars: Vec<u8> =
        [UPPER, LOWER, DIGIT, SYMBOL].iter().filter_map(|set| set.choose(&mut rng).copied()).collect();
    while chars.len() < len.max(8) {
        if let Some(c) = all.choose(&mut rng) {
            chars.push(*c);
        }
    }
    chars.shuffle(&mut rng);
    String::from_utf8(chars).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_letters_and_digits() {
        let s = generate_secret(SECRET_LENGTH);
        assert_eq!(s.len(), 64);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
        assert_ne!(generate_secret(64), generate_secret(64));
    }

    #[test]
    fn passwords_have_every_class() {
        for _ in 0..50 {
            let p = generate_password(20);
            assert_eq!(p.len(), 20);
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
            assert!(p.chars().any(|c| "!#%+-=_.~^".contains(c)));
        }
        assert_ne!(generate_password(20), generate_password(20));
    }
}
