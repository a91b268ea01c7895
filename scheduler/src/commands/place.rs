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
pub fn run(args: PlaceArgs) -> Result<ExitCode> {
    let placer = Placer::new(placement_config(args.config.as_deref())?);
    let (body, format) = read_request(&args.file)?;
    answer(placer.place_body(&body, format, Utc::now()))
}

/// The `placement` section of the configuration file, or the defaults.
pub fn placement_config(path: Option<&Path>) -> Result<PlacementConfig> {
    Ok(match path {
        Some(p) => Config::load(p)?.placement,
        None => PlacementConfig::default(),
    })
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
