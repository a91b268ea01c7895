//! `GET /metrics`: the text exposition of the one registry every component registered its
//! metrics into (the server renders it and owns none).

use prometheus::{Encoder, Registry, TextEncoder};

/// The text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&registry.gather(), &mut buf) {
        return format!("# encoding failed: {e}\n");
    }
    String::from_utf8_lossy(&buf).into_owned()
}
