//! `ecoplace place -f request.yaml`: batch placement of workloads on clusters, as JSON.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::Utc;
use serde::Serialize;

use crate::config::{Config, PlacementConfig};
use crate::placement::{Format, PlacementError, Placer};

/// Arguments of `ecoplace place`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlaceArgs {
    /// The placement request (YAML or JSON; `-` reads stdin).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Configuration file (ecoplace.yaml) for the `placement` solver limits.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs `ecoplace place`: the answer as JSON on stdout; a bad or infeasible request prints
/// the error body (JSON, naming fields or workloads) on stdout and exits with status 1.
pub async fn run(args: PlaceArgs) -> Result<ExitCode> {
    let placer = placer(args.config.as_deref()).await?;
    let (body, format) = read_request(&args.file)?;
    let now = Utc::now();
    let req = match placer.decode(&body, format, now).await {
        Ok(req) => req,
        Err(e) => return answer::<()>(Err(e)),
    };
    tokio::task::block_in_place(|| answer(placer.place(&req, now)))
}

/// The `placement` section of the configuration file, or the defaults.
pub fn placement_config(path: Option<&Path>) -> Result<PlacementConfig> {
    Ok(match path {
        Some(p) => Config::load(p)?.placement,
        None => PlacementConfig::default(),
    })
}

/// A placer with the configuration file's solver limits and, when its `carbon` section
/// names a source, that source for clusters given by zone only (a live provider is read
/// once: latest value and forecast).
pub async fn placer(path: Option<&Path>) -> Result<Placer> {
    let Some(path) = path else {
        return Ok(Placer::new(PlacementConfig::default()));
    };
    let config = Config::load(path)?;
    let placer = Placer::new(config.placement.clone());
    let c = &config.carbon;
    if let Some(live) = crate::runtime::live_carbon(c, std::sync::Arc::new(Utc::now))
        .with_context(|| format!("{}: carbon", path.display()))?
    {
        live.refresh_all().await;
        for z in live.status() {
            if let Some(e) = z.last_error {
                eprintln!("warning: carbon zone `{}`: {e}", z.zone);
            }
        }
        return Ok(placer.with_carbon(std::sync::Arc::new(live)));
    }
    if c.prometheus.is_some() {
        let (_, carbon) = crate::runtime::sources(&config, "for carbon.prometheus")?;
        return Ok(placer.with_carbon(carbon.source));
    }
    let curves =
        crate::runtime::curves(c).with_context(|| format!("{}: carbon", path.display()))?;
    if curves.zones().next().is_none() {
        return Ok(placer);
    }
    Ok(placer.with_carbon(std::sync::Arc::new(curves)))
}

/// Reads a request file (`-` = stdin); JSON when it ends in `.json`, else YAML.
pub fn read_request(path: &Path) -> Result<(Vec<u8>, Format)> {
    if path == Path::new("-") {
        let mut body = Vec::new();
        std::io::stdin()
            .read_to_end(&mut body)
            .context("reading the request from stdin")?;
        return Ok((body, Format::Yaml));
    }
    let body =
        std::fs::read(path).with_context(|| format!("reading request {}", path.display()))?;
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    Ok((body, if json { Format::Json } else { Format::Yaml }))
}

/// Prints the answer or the error body as pretty JSON; status 1 on error.
pub fn answer<T: Serialize>(result: Result<T, PlacementError>) -> Result<ExitCode> {
    let (text, code) = match result {
        Ok(v) => (serde_json::to_string_pretty(&v)?, ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("ecoplace: {e}");
            (serde_json::to_string_pretty(&e.body())?, ExitCode::FAILURE)
        }
    };
    super::print_out(&(text + "\n"))?;
    Ok(code)
}
