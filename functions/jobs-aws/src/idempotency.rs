//! The idempotency keys table: one item per caller's key, hash key
//! `idempotencyKey` (`<owner>#<key>`), removed by the table's TTL on
//! `expiresAt` (and ignored by the claim's condition once expired, since TTL
//! deletes late).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use jobs_core::ports::StoreError;
use jobs_core::submission::{
    AcceptIdempotencyKey, ClaimIdempotencyKey, Claimed, HeldKey, KeyClaim, ReleaseIdempotencyKey,
};
use jobs_core::{JobId, Timestamp};

/// Attribute names of the table's items.
pub mod attr {
    pub const KEY: &str = "idempotencyKey";
    pub const JOB_ID: &str = "jobId";
    pub const REQUEST_HASH: &str = "requestHash";
    /// When the key was claimed (epoch milliseconds).
    pub const CLAIMED_AT: &str = "claimedAt";
    /// The TTL attribute (epoch seconds).
    pub const EXPIRES_AT: &str = "expiresAt";
    pub const ACCEPTED: &str = "accepted";
}

/// What the API may show about a failed call to the table (the SDK's text goes to the log).
pub const KEYS_UNAVAILABLE: &str = "the idempotency keys table refused or did not answer the request";

#[derive(Debug, Clone)]
pub struct DynamoIdempotencyKeys {
    client: Client,
    table: String,
}

impl DynamoIdempotencyKeys {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }
}

fn error(action: &str, err: impl std::error::Error) -> StoreError {
    StoreError::with_detail(KEYS_UNAVAILABLE, format!("{action}: {}", DisplayErrorContext(err)))
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The claim the failed condition saw; `None` if it cannot be read.
fn held_of(err: &PutItemError) -> Option<HeldKey> {
    let PutItemError::ConditionalCheckFailedException(e) = err else { return None };
    let item = e.item()?;
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    Some(HeldKey {
        job_id: JobId::parse(&text(attr::JOB_ID)?).ok()?,
        fingerprint: text(attr::REQUEST_HASH)?,
        claimed_at: Timestamp(item.get(attr::CLAIMED_AT)?.as_n().ok()?.parse().ok()?),
        accepted: item.get(attr::ACCEPTED).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
    })
}

impl ClaimIdempotencyKey for DynamoIdempotencyKeys {
    /// One conditional PutItem: it wins if no unexpired claim holds the key;
    /// if one does, the failed condition returns it.
    async fn claim_key(&self, claim: &KeyClaim, now: Timestamp) -> Result<Claimed, StoreError> {
        let outcome = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(attr::KEY, AttributeValue::S(claim.scope.clone()))
            .item(attr::JOB_ID, AttributeValue::S(claim.job_id.as_str().to_owned()))
            .item(attr::REQUEST_HASH, AttributeValue::S(claim.fingerprint.clone()))
            .item(attr::CLAIMED_AT, n(claim.claimed_at.millis()))
            .item(attr::EXPIRES_AT, n(claim.expires_at.epoch_seconds()))
            .item(attr::ACCEPTED, AttributeValue::Bool(false))
            .condition_expression("attribute_not_exists(#key) OR #expires <= :now")
            .expression_attribute_names("#key", attr::KEY)
            .expression_attribute_names("#expires", attr::EXPIRES_AT)
            .expression_attribute_values(":now", n(now.epoch_seconds()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(Claimed::New),
            Err(e) => match e.as_service_error().filter(|e| e.is_conditional_check_failed_exception()) {
                Some(failed) => held_of(failed)
                    .map(Claimed::Held)
                    .ok_or_else(|| StoreError::new("an idempotency key's item in the table cannot be read")),
                None => Err(error("claiming the idempotency key failed", e)),
            },
        }
    }
}

impl AcceptIdempotencyKey for DynamoIdempotencyKeys {
    async fn accept_key(&self, claim: &KeyClaim) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(attr::KEY, AttributeValue::S(claim.scope.clone()))
            .update_expression("SET #accepted = :true")
            .condition_expression("#job = :job")
            .expression_attribute_names("#accepted", attr::ACCEPTED)
            .expression_attribute_names("#job", attr::JOB_ID)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":job", AttributeValue::S(claim.job_id.as_str().to_owned()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| error("marking the idempotency key accepted failed", e))
    }
}

impl ReleaseIdempotencyKey for DynamoIdempotencyKeys {
    async fn release_key(&self, claim: &KeyClaim) -> Result<(), StoreError> {
        let outcome = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(attr::KEY, AttributeValue::S(claim.scope.clone()))
            // Only this request's own, unaccepted claim.
            .condition_expression("#job = :job AND #accepted = :false")
            .expression_attribute_names("#job", attr::JOB_ID)
            .expression_attribute_names("#accepted", attr::ACCEPTED)
            .expression_attribute_values(":job", AttributeValue::S(claim.job_id.as_str().to_owned()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(error("releasing the idempotency key failed", e)),
        }
    }
}
