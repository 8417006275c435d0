//! HTTP plumbing shared by the Lambda service, the gateway and the moto
//! clients: a hyper 1 server loop with graceful shutdown (for a [`Handler`]
//! or an axum router) and a plain-HTTP client for 127.0.0.1.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::Service as _;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub type Body = Full<Bytes>;
/// The body of a request the servers receive.
pub type RequestBody = axum::body::Body;
pub type HttpClient = Client<HttpConnector, Body>;

/// A server [`serve`] runs: its routes, declared as an axum router.
pub trait Routes: Send + Sync + 'static {
    fn router(self: Arc<Self>) -> axum::Router;
}

/// A server that answers every path itself (the gateway, the service
/// proxies): served as an axum router with one fallback.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request<RequestBody>, peer: SocketAddr) -> impl Future<Output = Response<Body>> + Send;
}

impl<H: Handler> Routes for H {
    fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new().fallback(move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request<RequestBody>| {
            let handler = self.clone();
            async move { handler.handle(req, peer).await }
        })
    }
}

/// Serves `server`'s routes on `listener` until `shutdown` turns true, then
/// lets open requests finish for up to `grace` (long polls are cut after
/// that).
pub async fn serve<R: Routes>(
    listener: TcpListener,
    server: Arc<R>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let router = server.router();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let routes = TowerToHyperService::new(router.clone());
                let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    routes.call(req)
                });
                let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = wait_true(&mut shutdown) => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
}

/// Resolves once the flag is true (or its sender is gone).
pub async fn wait_true(rx: &mut watch::Receiver<bool>) {
    loop {
        let set = *rx.borrow_and_update();
        if set || rx.changed().await.is_err() {
            return;
        }
    }
}

/// Binds 127.0.0.1:`port` (0 = ephemeral) with a message that says what to do
/// when the port is taken.
pub async fn bind(port: u16, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("cannot listen on 127.0.0.1:{port} for the {what}: the port is in use (is the local system already running? `./just down` stops the one `./just up` started; or pass another port)")
        } else {
            anyhow::anyhow!("cannot listen on 127.0.0.1:{port} for the {what}: {e}")
        }
    })
}

pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector)
}

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Io(e.to_string())),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body too large")]
    TooLarge,
    #[error("reading the body failed: {0}")]
    Io(String),
}

pub fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    response(status, "application/json", value.to_string())
}

/// An `Authorization` header that carries the region and service the way
/// SigV4 does. moto reads the region from it and does not check signatures.
pub fn fake_sigv4(region: &str, service: &str) -> String {
    let date = time::OffsetDateTime::now_utc();
    format!(
        "AWS4-HMAC-SHA256 Credential=test/{:04}{:02}{:02}/{region}/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Sends a request and reads the whole answer.
pub async fn send(client: &HttpClient, req: Request<Body>) -> anyhow::Result<(StatusCode, hyper::HeaderMap, Bytes)> {
    let resp = client.request(req).await?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok((parts.status, parts.headers, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigv4_carries_region_and_service() {
        let h = fake_sigv4("eu-west-1", "sqs");
        assert!(h.contains("/eu-west-1/sqs/aws4_request"));
    }
}
