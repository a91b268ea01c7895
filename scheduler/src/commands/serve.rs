//! `ecoplace serve`: the kube-scheduler extender.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::serve::ListenerExt;

use crate::config::Config;
use crate::preflight;
use crate::runtime::{self, Service};
use crate::shutdown::{RELEASE_TIMEOUT, Shutdown};

/// Arguments of `ecoplace serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (ecoplace.yaml).
    #[arg(long, required_unless_present = "demo")]
    pub config: Option<PathBuf>,
    /// Listen address (overrides extender.listen).
    #[arg(long)]
    pub listen: Option<String>,
    /// Serve the embedded simulated fleet: no Prometheus, no apiserver needed.
    #[arg(long)]
    pub demo: bool,
}

/// Runs the server until SIGTERM or SIGINT, then shuts down gracefully (crate::shutdown).
pub async fn run(args: ServeArgs) -> Result<()> {
    let shutdown = Shutdown::on_signals().context("installing the SIGTERM/SIGINT handlers")?;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(l) = &args.listen {
        config.extender.listen = l.clone();
    }
    let file = args.config.as_ref().map_or_else(
        || "ecoplace.yaml (defaults)".to_string(),
        |p| p.display().to_string(),
    );
    // The checks `ecoplace config check` makes: a configuration this refuses is refused
    // here, before telemetry and the apiserver are contacted.
    if let Some(l) = &args.listen {
        l.parse::<SocketAddr>()
            .with_context(|| format!("--listen `{l}`: not an IP address with a port"))?;
    }
    if !args.demo {
        preflight::ready(&config, &file, preflight::Verb::Serve)?;
    }
    let rustls = match &config.extender.tls {
        Some(tls) => Some((crate::server::tls::rustls_config(tls)?, tls.clone())),
        None => None,
    };
    let parts = if args.demo {
        let parts = runtime::demo(config)?;
        preflight::ready(&parts.config, &file, preflight::Verb::Demo)?;
        parts
    } else {
        runtime::live(config).await?
    };
    if parts.config.ocm.enabled && args.demo {
        tracing::warn!("ocm.enabled is ignored with --demo: the score publisher needs an OCM hub");
    }
    if parts.config.carbon_window.enabled && args.demo {
        tracing::warn!(
            "carbonWindow.enabled is ignored with --demo: the controller needs an apiserver"
        );
    }
    let with_ocm = parts.config.ocm.enabled && !args.demo;
    let with_gating = parts.config.carbon_window.enabled && !args.demo;
    let svc = Service::start(parts, Duration::from_secs(1)).await?;
    let ocm = match with_ocm {
        true => Some(svc.spawn_ocm().await?),
        false => None,
    };
    let gating = match with_gating {
        true => Some(svc.spawn_carbon_window().await?),
        false => None,
    };
    // On the signal the publisher and the controller stop and release their Leases while
    // the listeners drain.
    let ocm_stopped = ocm.map(|publishing| {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.requested().await;
            publishing.stop(shutdown.grace(), RELEASE_TIMEOUT).await;
        })
    });
    let gating_stopped = gating.map(|gating| {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.requested().await;
            gating.stop(shutdown.grace(), RELEASE_TIMEOUT).await;
        })
    });
    let mut probes_stopped = None;
    let config = Arc::clone(&svc.config);
    if let Some(probes) = &config.extender.probes_listen {
        let addr: SocketAddr = probes
            .parse()
            .with_context(|| format!("extender.probesListen `{probes}`"))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("extender.probesListen: binding {addr}"))?;
        let probes_app =
            crate::server::probes_router(Arc::clone(&svc.extender), svc.registry.clone());
        eprintln!("ecoplace probes and metrics on http://{addr}");
        let shutdown = shutdown.clone();
        probes_stopped = Some(tokio::spawn(async move {
            let server =
                axum::serve(listener, probes_app).with_graceful_shutdown(shutdown.signal());
            if let Err(e) = shutdown.drain("probes", server).await {
                tracing::error!("probes listener: {e}");
            }
        }));
    }
    let app = svc.router();
    let addr: SocketAddr = config
        .extender
        .listen
        .parse()
        .with_context(|| format!("extender.listen `{}`", config.extender.listen))?;
    match rustls {
        Some((rustls, tls)) => {
            if tls.reload_seconds > 0.0 {
                let every = Duration::from_secs_f64(tls.reload_seconds);
                crate::server::tls::spawn_reload(tls.clone(), rustls.clone(), every);
            }
            let listener =
                std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
            let handle = axum_server::Handle::new();
            let on_signal = handle.clone();
            let signalled = shutdown.clone();
            tokio::spawn(async move {
                signalled.requested().await;
                on_signal.graceful_shutdown(Some(signalled.grace()));
            });
            let mtls = if tls.client_ca_file.is_some() {
                " (client certificates required)"
            } else {
                ""
            };
            eprintln!(
                "ecoplace extender on https://{addr}{}{mtls}",
                config.extender.prefix
            );
            let server = crate::server::tls::serve(listener, app, rustls, handle);
            shutdown.drain("extender", server).await?;
        }
        None => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?
                .tap_io(|s| {
                    let _ = s.set_nodelay(true);
                });
            eprintln!(
                "ecoplace extender on http://{addr}{}",
                config.extender.prefix
            );
            let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.signal());
            shutdown.drain("extender", server).await?;
        }
    }
    for task in probes_stopped
        .into_iter()
        .chain(ocm_stopped)
        .chain(gating_stopped)
    {
        let _ = task.await;
    }
    tracing::info!(signal = shutdown.reason(), "ecoplace serve stopped");
    Ok(())
}
