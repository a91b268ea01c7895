//! Reports as documents: headings, facts, tables, charts and legends, rendered to
//! self-contained HTML (inline SVG and CSS) or Markdown. Shared by `ecoplace report` and
//! `ecoplace simulate`. A leaf: it imports nothing else in the crate.

pub mod charts;
pub mod html;
pub mod sustainability;

use std::fmt::Write as _;

pub use charts::{Chart, Mark, Series, XAxis};

/// A report: a title and blocks in reading order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document {
    /// Title (the page's `<title>` and first heading).
    pub title: String,
    /// Content in order.
    pub blocks: Vec<Block>,
}

/// One piece of a report. Text may quote `code` with backticks.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A section heading.
    Heading(String),
    /// A sub-section heading.
    Subheading(String),
    /// A paragraph.
    Text(String),
    /// Key–value lines (period, sources, units).
    Facts(Vec<(String, String)>),
    /// A bulleted list.
    List(Vec<String>),
    /// A table.
    Table(Table),
    /// A chart (drawn in HTML, named in Markdown).
    Chart(Chart),
    /// What each figure means: (figure, explanation).
    Legend(Vec<(String, String)>),
}

/// A table of text cells; the first `left` columns are labels, the rest numbers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// Column headers (units included).
    pub head: Vec<String>,
    /// Number of leading label columns (left-aligned).
    pub left: usize,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

/// Formats a figure with `digits` decimals, or `-` when it is unknown or not finite.
pub fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "-".to_string(),
    }
}

/// Appends a Markdown table: the first `left` columns left-aligned, the rest right-aligned.
fn md_table(out: &mut String, head: &[&str], left: usize, body: impl Iterator<Item = Vec<String>>) {
    let line = |cells: &[&str]| format!("| {} |", cells.join(" | "));
    let _ = writeln!(out, "{}", line(head));
    let align: Vec<&str> = (0..head.len())
        .map(|i| if i < left { "---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "|{}|", align.join("|"));
    for row in body {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }
}

impl Document {
    /// The document as Markdown (charts are named, not drawn: the HTML draws them).
    pub fn markdown(&self) -> String {
        format!("# {}\n{}", self.title, markdown_blocks(&self.blocks))
    }
}

/// Blocks as Markdown, each after a blank line (charts are named, not drawn).
fn markdown_blocks(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        out.push('\n');
        match b {
            Block::Heading(h) => {
                let _ = writeln!(out, "## {h}");
            }
            Block::Subheading(h) => {
                let _ = writeln!(out, "### {h}");
            }
            Block::Text(t) => {
                let _ = writeln!(out, "{t}");
            }
            Block::Facts(kv) => {
                for (k, v) in kv {
                    let _ = writeln!(out, "- {k}: {v}");
                }
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(out, "- {i}");
                }
            }
            Block::Table(t) => {
                let head: Vec<&str> = t.head.iter().map(String::as_str).collect();
                md_table(&mut out, &head, t.left, t.rows.iter().cloned());
            }
            Block::Chart(c) => {
                let _ = writeln!(out, "_Chart (drawn in the HTML report): {}._", c.title);
            }
            Block::Legend(kv) => {
                for (k, v) in kv {
                    let _ = writeln!(out, "- **{k}**: {v}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md_table_aligns_leading_columns_left_and_numbers_right() {
        let mut out = String::new();
        let body = [vec!["de".to_string(), "DE".to_string(), "8".to_string()]];
        md_table(&mut out, &["cluster", "zone", "nodes"], 2, body.into_iter());
        assert_eq!(
            out,
            "| cluster | zone | nodes |\n|---|---|---:|\n| de | DE | 8 |\n"
        );
    }

    #[test]
    fn unknown_figures_are_dashes_not_zeros() {
        assert_eq!(num(None, 1), "-");
        assert_eq!(num(Some(f64::NAN), 1), "-");
        assert_eq!(num(Some(2.345), 2), "2.35");
    }
}
