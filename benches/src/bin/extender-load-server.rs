//! The extender over HTTP with a synthetic node cache, for `scripts/load-extender`.
//!
//! `extender-load-server serve NODES ADDR` serves the demo extender with NODES cached nodes;
//! `extender-load-server names-body K NODES` and `extender-load-server nodes-body K` print
//! kube-scheduler request bodies to stdout.

use anyhow::{Context, Result, bail};
use axum::serve::ListenerExt;
use benches::extender::{names_body, nodes_body, service};
use scheduler::config::Config;
use std::io::Write;

fn arg(args: &[String], i: usize, what: &str) -> Result<usize> {
    args.get(i)
        .with_context(|| format!("missing {what}"))?
        .parse()
        .with_context(|| format!("{what} must be a number"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => {
            let nodes = arg(&args, 2, "NODES")?;
            let addr = args.get(3).context("missing ADDR")?;
            let svc = service(Config::default(), nodes).await?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?
                .tap_io(|s| {
                    let _ = s.set_nodelay(true);
                });
            eprintln!("extender with {nodes} cached nodes on http://{addr}/scheduler");
            axum::serve(listener, svc.router()).await?;
        }
        Some("names-body") => {
            let body = names_body(arg(&args, 2, "K")?, arg(&args, 3, "NODES")?)?;
            std::io::stdout().write_all(&body)?;
        }
        Some("nodes-body") => {
            let body = nodes_body(arg(&args, 2, "K")?)?;
            std::io::stdout().write_all(&body)?;
        }
        _ => bail!(
            "usage: extender-load-server serve NODES ADDR | names-body K NODES | nodes-body K"
        ),
    }
    Ok(())
}
