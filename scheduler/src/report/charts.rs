//! Line and scatter charts drawn as inline SVG with `plotters` (no fonts, no scripts).

use anyhow::{Result, anyhow};
use chrono::{DateTime, Duration, Utc};
use plotters::prelude::*;

/// Chart size in SVG pixels.
const SIZE: (u32, u32) = (900, 320);

/// Series colours, in order (the Okabe–Ito palette, then darker tones).
const COLOURS: [RGBColor; 10] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(136, 34, 85),
    RGBColor(120, 120, 120),
    RGBColor(102, 102, 0),
];

/// What the x axis shows.
#[derive(Debug, Clone, PartialEq)]
pub enum XAxis {
    /// Hours after `origin`, labelled as UTC dates and times.
    Time {
        /// The instant x = 0.
        origin: DateTime<Utc>,
    },
    /// Plain numbers with a description (unit included).
    Value(String),
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A solid line.
    Line,
    /// A dashed line (e.g. a curve read against the right axis).
    Dashed,
    /// A line through filled dots (e.g. a Pareto front).
    Points,
}

/// One named series of (x, y) points; non-finite points are left out when drawing.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend name (unit included when the chart mixes axes).
    pub name: String,
    /// Points, x ascending for lines.
    pub points: Vec<(f64, f64)>,
    /// How it is drawn.
    pub mark: Mark,
    /// Palette index to draw it in (e.g. the same cluster on both axes); `None`: the
    /// next colour in order.
    pub colour: Option<usize>,
}

/// A chart: series against a left axis and optionally a right axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Caption above the plot.
    pub title: String,
    /// The x axis.
    pub x: XAxis,
    /// Left axis description, unit included.
    pub y_label: String,
    /// Series read against the left axis.
    pub series: Vec<Series>,
    /// Right axis description and its series, if any.
    pub right: Option<(String, Vec<Series>)>,
}

/// The x and y ranges of finite points, padded so that a flat series still has a height.
fn bounds<'a>(series: impl Iterator<Item = &'a Series>) -> Option<((f64, f64), (f64, f64))> {
    let mut pts = series
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .peekable();
    let &(x0, y0) = *pts.peek()?;
    let (mut xs, mut ys) = ((x0, x0), (y0, y0));
    for &(x, y) in pts {
        xs = (xs.0.min(x), xs.1.max(x));
        ys = (ys.0.min(y), ys.1.max(y));
    }
    let pad = |(lo, hi): (f64, f64), floor_zero: bool| {
        let span = (hi - lo).max(hi.abs() * 0.1).max(1e-9);
        let lo = if floor_zero && lo >= 0.0 {
            0.0
        } else {
            lo - span * 0.05
        };
        (lo, hi + span * 0.05)
    };
    Some((pad(xs, false), pad(ys, true)))
}

fn finite(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

/// Draws `chart` as an SVG document (a `<svg>` element); `None` when no series has a
/// finite point.
pub fn svg(chart: &Chart) -> Result<Option<String>> {
    let Some((xr, yr)) = bounds(chart.series.iter()) else {
        return Ok(None);
    };
    let right = chart
        .right
        .as_ref()
        .filter(|(_, s)| bounds(s.iter()).is_some());
    let y2r = right
        .and_then(|(_, s)| bounds(s.iter()))
        .map_or((0.0, 1.0), |(_, y)| y);
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing chart `{}`: {e}", chart.title);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut ctx = ChartBuilder::on(&root)
            .caption(&chart.title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .right_y_label_area_size(if right.is_some() { 70 } else { 0 })
            .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
            .map_err(|e| err(&e))?
            .set_secondary_coord(xr.0..xr.1, y2r.0..y2r.1);
        let x_desc = match &chart.x {
            XAxis::Time { .. } => "time (UTC)".to_string(),
            XAxis::Value(d) => d.clone(),
        };
        let time_label = |h: &f64| match &chart.x {
            XAxis::Time { origin } => {
                let t = *origin + Duration::seconds((h * 3600.0).round() as i64);
                t.format("%m-%d %H:%M").to_string()
            }
            XAxis::Value(_) => format!("{h:.4}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string(),
        };
        ctx.configure_mesh()
            .x_desc(x_desc)
            .y_desc(chart.y_label.as_str())
            .x_labels(8)
            .x_label_formatter(&time_label)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| err(&e))?;
        let mut colour = 0;
        for s in &chart.series {
            let c = COLOURS[s.colour.unwrap_or(colour) % COLOURS.len()];
            colour += 1;
            let pts = finite(&s.points);
            if pts.is_empty() {
                continue; // nothing to draw: no legend entry either
            }
            let anno = match s.mark {
                Mark::Dashed => {
                    ctx.draw_series(DashedLineSeries::new(pts, 6, 4, c.stroke_width(2)))
                }
                Mark::Line => ctx.draw_series(LineSeries::new(pts, c.stroke_width(2))),
                Mark::Points => {
                    ctx.draw_series(LineSeries::new(pts, c.stroke_width(1)).point_size(4))
                }
            }
            .map_err(|e| err(&e))?;
            anno.label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c));
        }
        if let Some((label, series)) = right {
            ctx.configure_secondary_axes()
                .y_desc(label.as_str())
                .draw()
                .map_err(|e| err(&e))?;
            for s in series {
                let c = COLOURS[s.colour.unwrap_or(colour) % COLOURS.len()];
                colour += 1;
                let pts = finite(&s.points);
                if pts.is_empty() {
                    continue;
                }
                let anno = match s.mark {
                    Mark::Line => {
                        ctx.draw_secondary_series(LineSeries::new(pts, c.stroke_width(2)))
                    }
                    Mark::Points => ctx.draw_secondary_series(
                        LineSeries::new(pts, c.stroke_width(1)).point_size(4),
                    ),
                    Mark::Dashed => ctx.draw_secondary_series(DashedLineSeries::new(
                        pts,
                        6,
                        4,
                        c.stroke_width(2),
                    )),
                }
                .map_err(|e| err(&e))?;
                anno.label(s.name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c));
            }
        }
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn draws_time_series_with_a_right_axis_and_skips_non_finite_points() {
        let chart = Chart {
            title: "power".into(),
            x: XAxis::Time {
                origin: DateTime::<Utc>::UNIX_EPOCH,
            },
            y_label: "kW".into(),
            series: vec![Series {
                name: "de".into(),
                points: vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)],
                mark: Mark::Line,
                colour: None,
            }],
            right: Some((
                "gCO2e/kWh".into(),
                vec![Series {
                    name: "DE intensity".into(),
                    points: vec![(0.0, 300.0), (2.0, 350.0)],
                    mark: Mark::Dashed,
                    colour: Some(0),
                }],
            )),
        };
        let svg = svg(&chart).unwrap().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(!svg.contains("NaN"));
        assert!(svg.contains("gCO2e/kWh") && svg.contains("DE intensity"));
        let empty = Chart {
            series: vec![],
            ..chart
        };
        assert!(super::svg(&empty).unwrap().is_none());
    }
}
