//! The SDK's HTTPS client, trusting Mozilla's root certificates compiled into
//! the binary (webpki-root-certs) instead of the platform's.
//!
//! The SDK's default client loads the native roots (`/etc/ssl/certs`, one file
//! per CA) while the first client is built, which was most of each function's
//! cold-init time (docs/performance.md). The compiled-in set is the one
//! browsers trust and holds Amazon's roots, which sign the AWS endpoints'
//! certificates; verification is unchanged: rustls with aws-lc, as before.

use std::sync::LazyLock;

use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The compiled-in roots as one PEM bundle, the form the SDK's trust store
/// takes. Encoded once per process (a fraction of a millisecond).
static ROOTS_PEM: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut pem = Vec::with_capacity(300 * 1024);
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in STANDARD.encode(cert.as_ref()).as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
});

/// The trust store every SDK client uses: the compiled-in roots only, never
/// the platform's (which would be read from disk).
pub fn trust_store() -> TrustStore {
    TrustStore::empty().with_native_roots(false).with_pem_certificate(ROOTS_PEM.as_slice())
}

/// An HTTPS (and plain HTTP, for a local endpoint) client for the SDK:
/// rustls with aws-lc, as the SDK's default client, but with [`trust_store`],
/// and built on the first request ([`OnFirstRequest`]).
pub fn https_client() -> SharedHttpClient {
    let context =
        TlsContext::builder().with_trust_store(trust_store()).build().expect("a TLS context with only a trust store");
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https();
    SharedHttpClient::new(OnFirstRequest(client))
}

/// The SDK's client builds a connector, parsing every root certificate, in
/// `validate_base_client_config`, i.e. once for each service client
/// constructed at start-up, and throws it away; the connector used for the
/// requests is built (once, and cached) on the first request. This wrapper
/// leaves out that eager build: the roots are parsed once, on the first
/// request, whatever the number of clients sharing the config.
#[derive(Debug)]
struct OnFirstRequest(SharedHttpClient);

impl HttpClient for OnFirstRequest {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    use super::*;

    fn roots_from_pem() -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(&ROOTS_PEM).collect::<Result<_, _>>().expect("valid PEM")
    }

    #[test]
    fn the_pem_bundle_holds_exactly_the_compiled_in_roots() {
        let ders = roots_from_pem();
        assert!(ders.len() > 100, "only {} roots", ders.len());
        assert_eq!(ders, webpki_root_certs::TLS_SERVER_ROOT_CERTS);
    }

    #[test]
    fn every_root_is_a_trust_anchor_and_amazons_are_among_them() {
        let mut store = rustls::RootCertStore::empty();
        let (valid, invalid) = store.add_parsable_certificates(roots_from_pem());
        assert_eq!((valid, invalid), (webpki_root_certs::TLS_SERVER_ROOT_CERTS.len(), 0));
        for name in ["Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4"] {
            assert!(
                store.roots.iter().any(|anchor| anchor
                    .subject
                    .as_ref()
                    .windows(name.len())
                    .any(|w| w == name.as_bytes())),
                "{name} is missing"
            );
        }
    }

    #[tokio::test]
    async fn the_sdk_connector_builds_from_the_trust_store_alone() {
        // The same path the SDK takes for every client: the TLS context's roots
        // are parsed here (it panics on an unparsable one); native roots are off.
        let context = TlsContext::builder().with_trust_store(trust_store()).build().unwrap();
        let _connector = aws_smithy_http_client::Connector::builder()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context)
            .build();
        let _client = https_client();
    }
}
