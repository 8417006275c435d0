//! POSTing a webhook: HTTPS through rustls with Mozilla's roots compiled in
//! (as the authorizer and the SDK), resolving names with a resolver that
//! refuses every address a delivery may not reach. The connection goes only
//! to the addresses that resolver checked, so a name cannot be re-pointed
//! between the check and the call; redirects are not followed.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use jobs_core::ports::PostWebhook;
use jobs_core::webhook::{
    Answer, CALLBACK_URL_HEADER, CallbackUrl, Destinations, EVENT_HEADER, SIGNATURE_HEADER, address_allowed,
};

/// How long one POST may take, connection included (docs/webhooks.md).
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Sent with every delivery, so receivers can tell them in their logs.
const AGENT: &str = "job-ingestion-webhooks/1";

pub struct HttpsWebhooks {
    client: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpsWebhooks {
    pub fn new(destinations: Destinations, timeout: Duration) -> Result<Self, String> {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { destinations });
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("TLS configuration: {e}"))?
            // http only where the URL check allows it (loopback, locally).
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self { client: Client::builder(TokioExecutor::new()).build(connector), timeout })
    }
}

impl PostWebhook for HttpsWebhooks {
    async fn post_webhook(&self, url: &CallbackUrl, event: &str, signature: &str, body: &[u8]) -> Answer {
        let request = Request::post(url.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, AGENT)
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_HEADER, event)
            .body(Full::new(Bytes::copy_from_slice(body)));
        let request = match request {
            Ok(request) => request,
            Err(e) => return Answer::Failed(format!("{CALLBACK_URL_HEADER} cannot be requested: {e}")),
        };
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            // The answer's body is not read: only its status counts.
            Ok(Ok(response)) => Answer::Status(response.status().as_u16()),
            Ok(Err(e)) => match refusal_in(&e) {
                Some(reason) => Answer::Refused(reason),
                None => Answer::Failed(chain(&e)),
            },
            Err(_) => Answer::Failed(format!("no answer within {} s", self.timeout.as_secs())),
        }
    }
}

/// The resolver's refusal, if that is why the request failed.
fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<ResolveError>().and_then(ResolveError::refusal) {
            return Some(refused.to_owned());
        }
        source = e.source();
    }
    None
}

/// An error and its causes, for the log (hyper's own text is one word).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Resolves a host name and refuses it if any of its addresses may not be
/// reached: a name that resolves to a private address as well as a public
/// one is refused, not half-trusted.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    destinations: Destinations,
}

#[derive(Debug)]
pub enum ResolveError {
    Refused(String),
    Failed(String),
}

impl ResolveError {
    fn refusal(&self) -> Option<&str> {
        match self {
            Self::Refused(reason) => Some(reason),
            Self::Failed(_) => None,
        }
    }
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(reason) | Self::Failed(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for ResolveError {}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let destinations = self.destinations;
        Box::pin(async move {
            let host = name.as_str();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| ResolveError::Failed(format!("resolving {host} failed: {e}")))?
                .collect();
            if addresses.is_empty() {
                return Err(ResolveError::Failed(format!("{host} has no address")));
            }
            if let Some(refused) = addresses.iter().find(|a| !address_allowed(a.ip(), destinations)) {
                let ip = refused.ip();
                return Err(ResolveError::Refused(format!(
                    "{CALLBACK_URL_HEADER} names {host}, which resolves to {ip}, not a public address"
                )));
            }
            Ok(addresses.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tower_service::Service;

    use super::*;

    /// A one-request HTTP/1.1 receiver on 127.0.0.1: returns its URL and the
    /// raw request it will have read once it answered `status`.
    async fn receiver(status: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/jobs", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            // Headers, then as many body bytes as Content-Length says.
            loop {
                let n = socket.read(&mut buffer).await.unwrap();
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                        .and_then(|n| n.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            socket.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8(request).unwrap()
        });
        (url, task)
    }

    fn webhooks(destinations: Destinations) -> HttpsWebhooks {
        HttpsWebhooks::new(destinations, Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn a_delivery_is_a_post_with_the_signature_and_event_headers_and_the_body() {
        let (url, request) = receiver("204 No Content").await;
        let url = CallbackUrl::parse(&url, Destinations::PublicHttpsAndLoopback).unwrap();
        let answer = webhooks(Destinations::PublicHttpsAndLoopback)
            .post_webhook(&url, "Job Failed", "t=1,v1=ab", br#"{"jobId":"x"}"#)
            .await;
        assert_eq!(answer, Answer::Status(204));
        let request = request.await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("post /hooks/jobs http/1.1\r\n"), "{request}");
        for header in [
            "content-type: application/json",
            "job-signature: t=1,v1=ab",
            "job-event: job failed",
            "user-agent: job-ingestion-webhooks/1",
        ] {
            assert!(request.contains(header), "{header} in {request}");
        }
        assert!(request.ends_with(r#"{"jobid":"x"}"#), "{request}");
    }

    #[tokio::test]
    async fn any_status_is_reported_and_no_redirect_is_followed() {
        let (url, request) = receiver("302 Found\r\nlocation: http://169.254.169.254/").await;
        let url = CallbackUrl::parse(&url, Destinations::PublicHttpsAndLoopback).unwrap();
        let answer = webhooks(Destinations::PublicHttpsAndLoopback).post_webhook(&url, "e", "s", b"{}").await;
        assert_eq!(answer, Answer::Status(302));
        request.await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_port_is_a_failure_to_retry() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let url = CallbackUrl::parse(&url, Destinations::PublicHttpsAndLoopback).unwrap();
        match webhooks(Destinations::PublicHttpsAndLoopback).post_webhook(&url, "e", "s", b"{}").await {
            Answer::Failed(error) => assert!(error.to_lowercase().contains("connect"), "{error}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_a_private_address_is_refused_before_connecting() {
        // localhost resolves to loopback: refused on AWS, allowed locally.
        let mut aws = GuardedResolver { destinations: Destinations::PublicHttps };
        match aws.call(Name::from_str("localhost").unwrap()).await {
            Err(ResolveError::Refused(reason)) => {
                assert!(reason.starts_with("Job-Callback-Url names localhost, which resolves to "), "{reason}");
                assert!(reason.ends_with(", not a public address"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let mut local = GuardedResolver { destinations: Destinations::PublicHttpsAndLoopback };
        let addresses: Vec<SocketAddr> = local.call(Name::from_str("localhost").unwrap()).await.unwrap().collect();
        assert!(addresses.iter().all(|a| a.ip().is_loopback()), "{addresses:?}");
        // Through the client, the refusal is told apart from a failure.
        let client = webhooks(Destinations::PublicHttps).client;
        let request = Request::post("https://localhost/hooks").body(Full::new(Bytes::new())).unwrap();
        let error = client.request(request).await.unwrap_err();
        let reason = refusal_in(&error).expect("a refusal");
        assert!(reason.starts_with("Job-Callback-Url names localhost, which resolves to "), "{reason}");
    }
}
