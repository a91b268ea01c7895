//! A [`Document`] as one self-contained HTML page: inline CSS and SVG, no scripts.

use std::fmt::Write as _;

use anyhow::Result;

use super::{Block, Document, charts};

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1000px;margin:1.5em auto;\
padding:0 1em;color:#222;line-height:1.4}h1{font-size:1.6em}h2{margin-top:1.6em;\
border-bottom:1px solid #ddd}table{border-collapse:collapse;margin:.6em 0}\
th,td{border:1px solid #ccc;padding:.25em .6em}th{background:#f3f3f3}td.n{text-align:right;\
font-variant-numeric:tabular-nums;white-space:nowrap}code{background:#f3f3f3;padding:0 .2em}\
figure{margin:.8em 0}figure svg{max-width:100%;height:auto}dl.facts{display:grid;\
grid-template-columns:13em 1fr;gap:.15em .8em}dl.facts dt{font-weight:600}dl.facts dd{margin:0}dl.legend dt{font-weight:600}\
dl.legend dd{margin:0 0 .4em 1.5em}p.gap{color:#8a4b00}";

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped text with `backtick` spans as `<code>`.
fn inline(s: &str) -> String {
    s.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", escape(part))
            } else {
                escape(part)
            }
        })
        .collect()
}

impl Document {
    /// The document as a self-contained HTML page.
    pub fn html(&self) -> Result<String> {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
            escape(&self.title),
            escape(&self.title)
        );
        for b in &self.blocks {
            match b {
                Block::Heading(h) => {
                    let _ = writeln!(out, "<h2>{}</h2>", inline(h));
                }
                Block::Subheading(h) => {
                    let _ = writeln!(out, "<h3>{}</h3>", inline(h));
                }
                Block::Text(t) => {
                    let _ = writeln!(out, "<p>{}</p>", inline(t));
                }
                Block::Facts(kv) => {
                    out.push_str("<dl class=\"facts\">\n");
                    for (k, v) in kv {
                        let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", inline(k), inline(v));
                    }
                    out.push_str("</dl>\n");
                }
                Block::List(items) => {
                    out.push_str("<ul>\n");
                    for i in items {
                        let _ = writeln!(out, "<li>{}</li>", inline(i));
                    }
                    out.push_str("</ul>\n");
                }
                Block::Table(t) => {
                    out.push_str("<table>\n<tr>");
                    for h in &t.head {
                        let _ = write!(out, "<th>{}</th>", inline(h));
                    }
                    out.push_str("</tr>\n");
                    for row in &t.rows {
                        out.push_str("<tr>");
                        for (i, cell) in row.iter().enumerate() {
                            let class = if i < t.left { "" } else { " class=\"n\"" };
                            let _ = write!(out, "<td{class}>{}</td>", inline(cell));
                        }
                        out.push_str("</tr>\n");
                    }
                    out.push_str("</table>\n");
                }
                Block::Chart(c) => match charts::svg(c)? {
                    Some(svg) => {
                        let svg = svg.trim_start_matches(|ch| ch != '<');
                        let _ = writeln!(out, "<figure>\n{svg}\n</figure>");
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            "<p class=\"gap\">{}: no data to draw.</p>",
                            inline(&c.title)
                        );
                    }
                },
                Block::Legend(kv) => {
                    out.push_str("<dl class=\"legend\">\n");
                    for (k, v) in kv {
                        let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", inline(k), inline(v));
                    }
                    out.push_str("</dl>\n");
                }
            }
        }
        out.push_str("</body>\n</html>\n");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::report::{Chart, Mark, Series, Table, XAxis};

    #[test]
    fn html_is_self_contained_escaped_and_draws_charts() {
        let doc = Document {
            title: "a <b> & c".into(),
            blocks: vec![
                Block::Heading("Totals".into()),
                Block::Text("read from `kepler_node_cpu_joules_total`".into()),
                Block::Table(Table {
                    head: vec!["cluster".into(), "energy kWh".into()],
                    left: 1,
                    rows: vec![vec!["de".into(), "1.5".into()]],
                }),
                Block::Chart(Chart {
                    title: "power".into(),
                    x: XAxis::Value("latency ms".into()),
                    y_label: "kW".into(),
                    series: vec![Series {
                        name: "front".into(),
                        points: vec![(1.0, 2.0), (2.0, 1.0)],
                        mark: Mark::Points,
                        colour: None,
                    }],
                    right: None,
                }),
            ],
        };
        let html = doc.html().unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>a &lt;b&gt; &amp; c</title>"));
        assert!(html.contains("<code>kepler_node_cpu_joules_total</code>"));
        assert!(html.contains("<td class=\"n\">1.5</td>"));
        assert!(html.contains("<figure>\n<svg"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("NaN"));
    }
}
