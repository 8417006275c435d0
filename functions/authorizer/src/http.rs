//! Fetching the JWKS over HTTPS (HTTP too, for the local emulator), with a
//! timeout and a size limit.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::jwks::{FetchJwks, KeyError};

/// A JWKS is a few KiB; anything much larger is not one.
const MAX_JWKS_BYTES: usize = 256 * 1024;

pub struct HttpJwks {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    url: hyper::Uri,
    timeout: Duration,
}

impl HttpJwks {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let url: hyper::Uri = url.parse().map_err(|e| format!("JWKS_URL {url:?} is not a URL: {e}"))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            // Mozilla's roots compiled in (webpki-roots): nothing is read from
            // /etc/ssl/certs at start-up (docs/performance.md).
            .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("TLS configuration: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { client, url, timeout })
    }
}

impl FetchJwks for HttpJwks {
    async fn fetch(&self) -> Result<Vec<u8>, KeyError> {
        let url = &self.url;
        let request = async {
            let response = self.client.get(url.clone()).await.map_err(|e| format!("GET {url}: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("GET {url} answered {}", response.status()));
            }
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading {url}: {e}"))?;
            Ok(body.to_bytes().to_vec())
        };
        match tokio::time::timeout(self.timeout, request).await {
            Ok(result) => result.map_err(KeyError::Fetch),
            Err(_) => Err(KeyError::Fetch(format!("GET {url} took longer than {:?}", self.timeout))),
        }
    }
}
