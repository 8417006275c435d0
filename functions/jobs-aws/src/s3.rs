//! The results bucket.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use jobs_core::ResultLocation;
use jobs_core::ports::{PresignResult, PutResult, StoreError};

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

impl PresignResult for S3ResultStore {
    async fn presign_result(&self, location: &ResultLocation, expires_in_seconds: u64) -> Result<String, StoreError> {
        let config = PresigningConfig::expires_in(Duration::from_secs(expires_in_seconds))
            .map_err(|e| StoreError::new(format!("invalid link lifetime: {e}")))?;
        let request =
            self.client.get_object().bucket(&location.bucket).key(&location.key).presigned(config).await.map_err(
                |e| {
                    let detail = format!(
                        "signing a link to s3://{}/{} failed: {}",
                        location.bucket,
                        location.key,
                        DisplayErrorContext(e)
                    );
                    StoreError::with_detail("the result link could not be signed", detail)
                },
            )?;
        Ok(request.uri().to_owned())
    }
}
