//! One module per `ecoplace` subcommand, and the arguments several share ([`args`]). They
//! only wire the other rooms to the command line (start-up itself is `runtime`'s); nothing
//! else imports `commands`.

pub mod args;
pub mod carbon_window;
pub mod config;
pub mod ocm_scores;
pub mod place;
pub mod rebalance;
pub mod report;
pub mod serve;
pub mod simulate;
pub mod telemetry;
pub mod training;

/// Writes `text` to stdout and flushes; a reader that went away (`| head`) is not an error.
pub fn print_out(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
