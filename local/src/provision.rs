//! Creates the model's queues, tables, buckets and Cognito user pool in moto,
//! plus one ready test user.

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

/// Queues, tables, buckets and event buses (they do not depend on
/// moto-generated ids).
pub async fn provision_data(model: &Model, endpoints: &Endpoints) -> anyhow::Result<()> {
    create_queues(model, endpoints).await?;
    create_tables(model, endpoints).await?;
    create_buckets(model, endpoints).await?;
    create_event_buses(model, endpoints).await
}

/// EventBridge's JSON protocol over plain HTTP (two calls do not justify an SDK).
async fn create_event_buses(model: &Model, endpoints: &Endpoints) -> anyhow::Result<()> {
    let http = httpx::client();
    for bus in &model.event_buses {
        let req = hyper::Request::post(format!("{}/", endpoints.events))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "AWSEvents.CreateEventBus")
            .header("authorization", httpx::fake_sigv4(&model.region, "events"))
            .body(Full::new(Bytes::from(serde_json::json!({ "Name": bus.name }).to_string())))?;
        let (status, _, bytes) = httpx::send(&http, req)
            .await
            .with_context(|| format!("{}: CreateEventBus: cannot reach {}", bus.address, endpoints.events))?;
        if !status.is_success() {
            bail!(
                "{}: CreateEventBus `{}` failed ({status}): {}",
                bus.address,
                bus.name,
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    Ok(())
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
        let req = hyper::Request::post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("AWSCognitoIdentityProviderService.{action}"))
            .header("authorization", httpx::fake_sigv4(self.region, "cognito-idp"))
            .body(Full::new(Bytes::from(body.to_string())))?;
        let (status, _, bytes) = httpx::send(self.http, req)
            .await
            .with_context(|| format!("Cognito {action}: cannot reach {}", self.endpoint))?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let kind = value.get("__type").and_then(Value::as_str).unwrap_or("error");
            let msg = value.get("message").or_else(|| value.get("Message")).and_then(Value::as_str).unwrap_or_default();
            bail!(
                "Cognito {action} failed ({status}): {kind}: {msg} {}",
                if value.is_null() { String::from_utf8_lossy(&bytes).into_owned() } else { String::new() }
            );
        }
        Ok(value)
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
