//! A tiny text-format exporter for the test Prometheus to scrape (`GET /metrics`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::http::header;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::TEXT_FORMAT_CONTENT_TYPE;

/// Keeps a [`serve_text`] exporter running; dropping it stops accepting connections and
/// closes idle ones.
#[derive(Debug)]
pub struct ExporterGuard {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ExporterGuard {
    /// Stops the exporter and waits until it has shut down (open requests finish first).
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.context("exporter task failed")?;
        }
        Ok(())
    }
}

impl Drop for ExporterGuard {
    fn drop(&mut self) {
        // Dropping the sender resolves the shutdown future: axum stops accepting, drops the
        // listener and gracefully closes connections; the task then ends by itself.
        self.shutdown.take();
    }
}

/// Serves `GET /metrics` on `127.0.0.1:<free port>` with
/// [`TEXT_FORMAT_CONTENT_TYPE`] and the body produced by `make_body` on every request.
/// Returns the bound address (pass `addr.to_string()` as a scrape target) and a guard that
/// stops the server when dropped. Must be called inside a Tokio runtime.
pub async fn serve_text<F>(make_body: F) -> Result<(SocketAddr, ExporterGuard)>
where
    F: Fn() -> String + Send + Sync + 'static,
{
    let make_body = Arc::new(make_body);
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let make_body = Arc::clone(&make_body);
            async move {
                (
                    [(header::CONTENT_TYPE, TEXT_FORMAT_CONTENT_TYPE)],
                    make_body(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("binding the exporter on 127.0.0.1:0")?;
    let addr = listener
        .local_addr()
        .context("reading the exporter address")?;
    let listener = listener.tap_io(|tcp| {
        // Avoid delayed-ACK stalls on loopback; failure only costs latency.
        let _ = tcp.set_nodelay(true);
    });
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    Ok((
        addr,
        ExporterGuard {
            shutdown: Some(tx),
            task: Some(task),
        },
    ))
}
