//! Line charts as SVG, built by hand on the server: one line per variant over time.
//!
//! No script draws them, so they show without JavaScript. Each chart is an `<svg
//! role="img">` titled and described in words (each series' latest value), followed by a
//! table of the same numbers for screen readers and for copying.

use maud::{Markup, html};

/// One line: a name and its points as (Unix ms, value), oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The variant.
    pub name: String,
    /// The points.
    pub points: Vec<(i64, f64)>,
}

const WIDTH: f64 = 360.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;
/// Line colours, distinguishable for common colour blindness (Okabe–Ito).
const COLOURS: [&str; 6] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
];

/// How a value is written on the axis and in the description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// A rate in 0..1, shown as a percentage.
    Rate,
    /// Milliseconds.
    Millis,
}

/// Formats `value` in `unit`.
pub fn format(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Count => format!("{value:.0}"),
        Unit::Rate => format!("{:.2}%", value * 100.0),
        Unit::Millis => format!("{value:.1} ms"),
    }
}

/// The points of a polyline for `series` in a box from `(x0, y0)` to `(x1, y1)`.
fn scale(points: &[(i64, f64)], (t0, t1): (i64, i64), max: f64) -> Vec<(f64, f64)> {
    let span = (t1 - t0).max(1) as f64;
    let max = if max > 0.0 { max } else { 1.0 };
    points
        .iter()
        .map(|&(t, v)| {
            let x = LEFT + (t - t0) as f64 / span * (WIDTH - LEFT - RIGHT);
            let y = TOP + (1.0 - (v / max).clamp(0.0, 1.0)) * (HEIGHT - TOP - BOTTOM);
            (x, y)
        })
        .collect()
}

/// A chart titled `title` with an id unique on the page.
pub fn line_chart(id: &str, title: &str, unit: Unit, series: &[Series]) -> Markup {
    let all = series.iter().flat_map(|s| s.points.iter());
    let t0 = all.clone().map(|p| p.0).min().unwrap_or(0);
    let t1 = all.clone().map(|p| p.0).max().unwrap_or(0);
    let max = all
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let description: Vec<String> = series
        .iter()
        .filter_map(|s| {
            s.points
                .last()
                .map(|p| format!("{}: latest {}", s.name, format(p.1, unit)))
        })
        .collect();
    let title_id = format!("{id}-title");
    let desc_id = format!("{id}-desc");
    html! {
        figure {
            figcaption id=(title_id) { (title) }
            @if series.iter().all(|s| s.points.is_empty()) {
                p.muted { "No data reported yet." }
            } @else {
                svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
                    aria-labelledby=(title_id) aria-describedby=(desc_id)
                    xmlns="http://www.w3.org/2000/svg" {
                    desc id=(desc_id) { (description.join("; ")) }
                    line x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH - RIGHT) y2=(HEIGHT - BOTTOM) stroke="#57606a" {}
                    line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(HEIGHT - BOTTOM) stroke="#57606a" {}
                    text x=(LEFT - 4.0) y=(TOP + 8.0) text-anchor="end" font-size="10" fill="#57606a" { (format(max, unit)) }
                    text x=(LEFT - 4.0) y=(HEIGHT - BOTTOM) text-anchor="end" font-size="10" fill="#57606a" { "0" }
                    text x=(LEFT) y=(HEIGHT - 6.0) font-size="10" fill="#57606a" { (clock(t0)) }
                    text x=(WIDTH - RIGHT) y=(HEIGHT - 6.0) text-anchor="end" font-size="10" fill="#57606a" { (clock(t1)) }
                    @for (i, s) in series.iter().enumerate() {
                        @let colour = COLOURS[i % COLOURS.len()];
                        @let points = scale(&s.points, (t0, t1), max);
                        @if points.len() == 1 {
                            circle cx=(format!("{:.1}", points[0].0)) cy=(format!("{:.1}", points[0].1)) r="3" fill=(colour) {}
                        } @else {
                            polyline fill="none" stroke=(colour) stroke-width="2"
                                points=(points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ")) {}
                        }
                    }
                }
                ul.legend {
                    @for (i, s) in series.iter().enumerate() {
                        li {
                            svg width="12" height="12" aria-hidden="true" { rect width="12" height="12" fill=(COLOURS[i % COLOURS.len()]) {} }
                            " " (s.name)
                            @if let Some(last) = s.points.last() { " — latest " (format(last.1, unit)) }
                        }
                    }
                }
            }
        }
    }
}

/// `HH:MM` UTC.
fn clock(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}", secs / 3600, (secs % 3600) / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_one_line_per_series_and_words_for_it() {
        let series = vec![
            Series {
                name: "on".into(),
                points: vec![(0, 0.01), (10_000, 0.02), (20_000, 0.04)],
            },
            Series {
                name: "off".into(),
                points: vec![(0, 0.01), (10_000, 0.01)],
            },
        ];
        let svg = line_chart("c1", "Error rate", Unit::Rate, &series).into_string();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("on: latest 4.00%"), "{svg}");
        assert!(svg.contains("role=\"img\""));
        // The highest value sits at the top of the plot.
        assert!(
            svg.contains(&format!("{:.1},{:.1}", WIDTH - RIGHT, TOP)),
            "{svg}"
        );
    }

    #[test]
    fn an_empty_chart_says_so() {
        let html = line_chart("c2", "Exposures", Unit::Count, &[]).into_string();
        assert!(html.contains("No data reported yet."));
        assert!(!html.contains("<svg"));
    }
}
