//! HTTPS for the extender: the rustls server configuration built from `extender.tls`
//! (certificate chain, key, optional client CA bundle for mutual TLS) and the serve loop.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::Handle;
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::config::TlsConfig;

/// ALPN protocols offered, as axum-server's `RustlsConfig::from_pem_file` sets them.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why `extender.tls` could not be turned into a server configuration; each names the field.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A configured file could not be read.
    #[error("extender.tls.{field}: reading {}: {source}", path.display())]
    Read {
        /// Field name under `extender.tls`.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// I/O error.
        source: io::Error,
    },
    /// A configured file is not what the field needs (no PEM item, bad PEM, bad key...).
    #[error("extender.tls.{field}: {}: {reason}", path.display())]
    Content {
        /// Field name under `extender.tls`.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The crypto provider offers no safe TLS protocol version (a build problem, not input).
    #[error("extender.tls: the crypto provider supports no safe TLS version: {0}")]
    Provider(rustls::Error),
}

/// The server configuration for `extender.tls`: TLS 1.2/1.3 with `provider`, ALPN h2 and
/// http/1.1, and, when `clientCaFile` is set, a required client certificate chained to it.
pub fn server_config(
    tls: &TlsConfig,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates("certFile", &tls.cert_file)?;
    let key = private_key("keyFile", &tls.key_file)?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Provider)?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let content = |reason: String| TlsError::Content {
                field: "clientCaFile",
                path: ca_file.clone(),
                reason,
            };
            let mut roots = RootCertStore::empty();
            for (i, cert) in certificates("clientCaFile", ca_file)?
                .into_iter()
                .enumerate()
            {
                roots.add(cert).map_err(|e| {
                    content(format!("certificate {} is not a usable CA: {e}", i + 1))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| content(format!("building the client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Content {
            field: "keyFile",
            path: tls.key_file.clone(),
            reason: format!(
                "not usable with the certificate in {}: {e}",
                tls.cert_file.display()
            ),
        })?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// [`server_config`] with the aws-lc-rs provider, wrapped for axum-server.
pub fn rustls_config(tls: &TlsConfig) -> Result<RustlsConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    server_config(tls, provider).map(RustlsConfig::from_config)
}

/// Serves `app` over TLS on `listener` (TCP_NODELAY on every connection) until `handle`
/// shuts it down.
pub async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    config: RustlsConfig,
    handle: Handle<SocketAddr>,
) -> io::Result<()> {
    let acceptor = RustlsAcceptor::new(config).acceptor(NoDelayAcceptor::new());
    axum_server::from_tcp(listener)?
        .acceptor(acceptor)
        .handle(handle)
        .serve(app.into_make_service())
        .await
}

/// Every `every`, re-reads `tls`'s files and, when their bytes changed and they load, swaps
/// them into `config` (new connections get them; open ones keep theirs). A changed set that
/// does not load is logged and the served one kept.
pub fn spawn_reload(tls: TlsConfig, config: RustlsConfig, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = fingerprint(&tls);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            let files = tls.clone();
            let before = seen.clone();
            let checked = tokio::task::spawn_blocking(move || {
                let now = fingerprint(&files);
                let built = (now != before).then(|| {
                    server_config(
                        &files,
                        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
                    )
                });
                (now, built)
            })
            .await;
            let Ok((now, built)) = checked else { continue };
            seen = now;
            match built {
                None => {}
                Some(Ok(new)) => {
                    config.reload_from_config(new);
                    tracing::info!("extender.tls: files changed, new certificate loaded");
                }
                Some(Err(e)) => tracing::warn!(
                    "extender.tls: files changed but do not load, still serving the previous ones: {e}"
                ),
            }
        }
    })
}

/// The bytes of the certificate, key and client CA files (`None` for one that cannot be read).
fn fingerprint(tls: &TlsConfig) -> Vec<Option<Vec<u8>>> {
    [
        Some(&tls.cert_file),
        Some(&tls.key_file),
        tls.client_ca_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| std::fs::read(p).ok())
    .collect()
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        field,
        path: path.to_path_buf(),
        source,
    })
}

/// Every `CERTIFICATE` block of a PEM file; an error when there is none.
fn certificates(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let content = |reason: String| TlsError::Content {
        field,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&read(field, path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(content("no PEM CERTIFICATE block in the file".into()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
fn private_key(field: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(field, path)?).map_err(|e| TlsError::Content {
        field,
        path: path.to_path_buf(),
        reason: match e {
            pem::Error::NoItemsFound => {
                "no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in the file"
                    .into()
            }
            e => format!("bad PEM: {e}"),
        },
    })
}
