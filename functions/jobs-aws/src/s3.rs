//! The results bucket: writing results, and removing a cancelled job's
//! (their links: links.rs).

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use jobs_core::ports::{PutResult, RemoveResult, StoreError};
use jobs_core::{JobId, ResultLocation};

#[derive(Debug, Clone)]
pub struct S3ResultStore {
    client: Client,
    bucket: String,
}

impl S3ResultStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }

    pub fn from_config(config: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        Self::new(crate::s3_client(config), bucket)
    }
}

/// What a job's record may show when the result cannot be written; the SDK
/// error goes to the log only.
pub const RESULT_NOT_WRITTEN: &str = "the results bucket refused or did not answer the request";

impl PutResult for S3ResultStore {
    async fn put_result(&self, key: &str, body: Vec<u8>) -> Result<ResultLocation, StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| {
                let detail = format!("writing s3://{}/{key} failed: {}", self.bucket, DisplayErrorContext(e));
                StoreError::with_detail(RESULT_NOT_WRITTEN, detail)
            })?;
        Ok(ResultLocation { bucket: self.bucket.clone(), key: key.to_owned() })
    }
}

impl RemoveResult for S3ResultStore {
    async fn remove_result(&self, id: &JobId) -> Result<(), StoreError> {
        // DeleteObject of a key that does not exist succeeds: idempotent.
        let key = id.result_key();
        self.client.delete_object().bucket(&self.bucket).key(&key).send().await.map_err(|e| {
            let detail = format!("deleting s3://{}/{key} failed: {}", self.bucket, DisplayErrorContext(e));
            StoreError::with_detail(RESULT_NOT_REMOVED, detail)
        })?;
        Ok(())
    }
}

/// What the log shows when a cancelled job's result cannot be removed.
pub const RESULT_NOT_REMOVED: &str = "the results bucket refused or did not answer the request to remove the result";

/// Removes results with an S3 client built on first use. job-processor
/// removes one only for a job cancelled while it ran, so its cold start does
/// not build a client it rarely needs (docs/performance.md, "cold init").
#[derive(Debug)]
pub struct LazyResultRemover {
    config: aws_config::SdkConfig,
    bucket: String,
    store: std::sync::OnceLock<S3ResultStore>,
}

impl LazyResultRemover {
    pub fn new(config: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        Self { config: config.clone(), bucket: bucket.into(), store: std::sync::OnceLock::new() }
    }
}

impl RemoveResult for LazyResultRemover {
    async fn remove_result(&self, id: &JobId) -> Result<(), StoreError> {
        let store = self.store.get_or_init(|| S3ResultStore::from_config(&self.config, &self.bucket));
        store.remove_result(id).await
    }
}
