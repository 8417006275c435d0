//! A small blocking HTTP client over the workspace's stack: hyper with
//! rustls on aws-lc-rs (as the authorizer), HTTPS or plain HTTP (the local
//! target), with timeouts and a body size limit.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::Error;

/// Bodies read into memory (API answers) are small; anything larger is refused.
const MAX_BODY: usize = 4 * 1024 * 1024;

pub struct Http {
    runtime: tokio::runtime::Runtime,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A request, and what to call the server in errors ("the API", "Cognito").
pub struct Request<'a> {
    pub what: &'static str,
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Option<Vec<u8>>,
}

impl Http {
    pub fn new(timeout: Duration) -> Result<Http, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Io(format!("cannot start the I/O runtime: {e}")))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| Error::Io(format!("no TLS root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Http { runtime, client, timeout })
    }

    fn start(&self, req: Request<'_>) -> Result<hyper::Response<hyper::body::Incoming>, Error> {
        let Request { what, method, url, headers, body } = req;
        let uri: hyper::Uri =
            url.parse().map_err(|e| Error::Usage(format!("{what} URL {url:?} is not a valid URL: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(Error::Usage(format!("{what} URL {url:?} is not an http(s) URL")));
        }
        let mut builder = hyper::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::Usage(format!("cannot build the request to {url}: {e}")))?;
        let response =
            self.runtime.block_on(async { tokio::time::timeout(self.timeout, self.client.request(request)).await });
        match response {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(Error::Unreachable { what, url: display_url(url), detail: describe(&e) }),
            Err(_) => Err(Error::Unreachable {
                what,
                url: display_url(url),
                detail: format!("no answer within {}s", self.timeout.as_secs()),
            }),
        }
    }

    /// Sends a request and reads the whole (small) answer.
    pub fn send(&self, req: Request<'_>) -> Result<Response, Error> {
        let (what, url) = (req.what, display_url(req.url));
        let response = self.start(req)?;
        let status = response.status().as_u16();
        let body = self.runtime.block_on(async {
            let limited = http_body_util::Limited::new(response.into_body(), MAX_BODY);
            tokio::time::timeout(self.timeout, limited.collect()).await
        });
        match body {
            Ok(Ok(collected)) => Ok(Response { status, body: collected.to_bytes().to_vec() }),
            Ok(Err(e)) => Err(Error::Unreachable { what, url, detail: format!("reading the answer: {e}") }),
            Err(_) => Err(Error::Unreachable { what, url, detail: "the answer stopped arriving".into() }),
        }
    }

    /// GETs `url` and streams a 200 answer into `out`; any other status is
    /// returned with its (small) body and nothing written.
    pub fn download(&self, what: &'static str, url: &str, out: &mut dyn Write) -> Result<Result<u64, Response>, Error> {
        let shown = display_url(url);
        let response = self.start(Request { what, method: "GET", url, headers: &[], body: None })?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if status != 200 {
            let rest = self.runtime.block_on(http_body_util::Limited::new(body, MAX_BODY).collect());
            let body = rest.map(|c| c.to_bytes().to_vec()).unwrap_or_default();
            return Ok(Err(Response { status, body }));
        }
        let mut written = 0u64;
        loop {
            let frame = self.runtime.block_on(async { tokio::time::timeout(self.timeout, body.frame()).await });
            let frame = match frame {
                Ok(Some(Ok(frame))) => frame,
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(Error::Unreachable { what, url: shown, detail: format!("reading the answer: {e}") });
                }
                Err(_) => {
                    return Err(Error::Unreachable { what, url: shown, detail: "the answer stopped arriving".into() });
                }
            };
            if let Ok(data) = frame.into_data() {
                out.write_all(&data).map_err(|e| Error::Io(format!("cannot write the result: {e}")))?;
                written += data.len() as u64;
            }
        }
        Ok(Ok(written))
    }
}

/// A URL for messages: without its query (a presigned link's signature).
pub fn display_url(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_string()
}

/// `describe`'s words for a request that never left this machine.
const REFUSED: &str = "connection refused";
const UNRESOLVED: &str = "cannot resolve the host name";

/// Whether an [`Error::Unreachable`] detail says the request was never sent
/// (refused, or the name did not resolve), rather than sent and its answer
/// lost: only the latter may have reached the server.
pub fn never_sent(detail: &str) -> bool {
    detail == REFUSED || detail.starts_with(UNRESOLVED)
}

/// The root cause of a connection error, in words.
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut innermost = None;
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return REFUSED.into(),
                std::io::ErrorKind::TimedOut => return "connection timed out".into(),
                _ => {}
            }
        }
        innermost = Some(s);
        source = s.source();
    }
    let text = innermost.map(|s| s.to_string()).unwrap_or_else(|| e.to_string());
    if text.contains("failed to lookup address") || text.contains("Name or service not known") {
        return format!("{UNRESOLVED} ({text})");
    }
    text
}

/// Percent-encodes one path segment or query value (RFC 3986 unreserved kept).
pub fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_refused_names_the_url() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let http = Http::new(Duration::from_secs(5)).unwrap();
        let url = format!("http://127.0.0.1:{port}/api/job-status/x?token=secret");
        let e = http.send(Request { what: "the API", method: "GET", url: &url, headers: &[], body: None }).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cannot reach the API at http://127.0.0.1:{port}/api/job-status/x: connection refused")
        );
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        let http = Http::new(Duration::from_secs(5)).unwrap();
        for url in ["not a url", "ftp://host/x", "/relative"] {
            let e = http.send(Request { what: "the API", method: "GET", url, headers: &[], body: None }).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{url}: {e:?}");
        }
    }

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(encode_component("4d1f0d2c-6a4e"), "4d1f0d2c-6a4e");
        assert_eq!(encode_component("a/b c?é"), "a%2Fb%20c%3F%C3%A9");
        assert_eq!(encode_component("eyJ+/="), "eyJ%2B%2F%3D");
    }
}
