//! Counts over time: one line per series, the first with its area filled,
//! round gridlines and UTC time labels.

use maud::{html, Markup};

use super::scale::{nice_ticks, time_label, time_step, time_ticks};
use super::{coord, ratio};
use crate::format::compact;

const W: f64 = 640.0;
const H: f64 = 220.0;
/// Room for the count labels on the left and the time labels below; the
/// right margin keeps the last time label inside the box.
const LEFT: f64 = 48.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;
const PLOT_W: f64 = W - LEFT - RIGHT;
const PLOT_H: f64 = H - TOP - BOTTOM;

pub struct Line<'a> {
    pub label: &'a str,
    /// Picks the colour: class `k-{key}`.
    pub key: &'a str,
    /// One value per entry of `TimeChart::times`.
    pub values: Vec<u64>,
}

pub struct TimeChart<'a> {
    /// The text alternative: what the chart shows, in words.
    pub label: &'a str,
    /// Start of each bucket (Unix ms), oldest first.
    pub times: &'a [i64],
    pub bucket_ms: i64,
    pub lines: &'a [Line<'a>],
}

pub fn time_chart(c: &TimeChart) -> Markup {
    let max = c
        .lines
        .iter()
        .flat_map(|l| l.values.iter().copied())
        .max()
        .unwrap_or(0);
    let y_ticks = nice_ticks(max, 5);
    // nice_ticks never ends below 1, so the scale never divides by 0.
    let top = y_ticks.last().copied().unwrap_or(1).max(1);
    let (t0, t1) = domain(c.times, c.bucket_ms);
    // In f64 so that no pair of timestamps can overflow; `ratio`-style guard
    // for spans that round to nothing.
    let span = (t1 as f64 - t0 as f64).max(1.0);
    let x = |t: i64| LEFT + (t as f64 - t0 as f64) / span * PLOT_W;
    let y = |v: u64| TOP + PLOT_H - ratio(v, top) * PLOT_H;
    let step = time_step(t1.saturating_sub(t0), c.bucket_ms, 6);
    let base = TOP + PLOT_H;
    html! {
        svg.chart-svg viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(c.label) {
            title { (c.label) }
            g.grid {
                @for v in &y_ticks {
                    line x1=(coord(LEFT)) x2=(coord(W - RIGHT)) y1=(coord(y(*v))) y2=(coord(y(*v))) {}
                }
            }
            g.axis aria-hidden="true" {
                @for v in &y_ticks {
                    text x=(coord(LEFT - 6.0)) y=(coord(y(*v))) dy="0.32em" text-anchor="end" { (compact(*v)) }
                }
                line.baseline x1=(coord(LEFT)) x2=(coord(W - RIGHT)) y1=(coord(base)) y2=(coord(base)) {}
                @for t in time_ticks(t0, t1, step) {
                    line x1=(coord(x(t))) x2=(coord(x(t))) y1=(coord(base)) y2=(coord(base + 4.0)) {}
                    text x=(coord(x(t))) y=(coord(H - 6.0)) text-anchor="middle" { (time_label(t, step)) }
                }
            }
            @for (i, l) in c.lines.iter().enumerate() {
                @let points: Vec<(String, String)> = c.times.iter().zip(&l.values)
                    .map(|(t, v)| (coord(x(*t)), coord(y(*v)))).collect();
                @if !points.is_empty() {
                g class={ "series k-" (l.key) } {
                    title { (l.label) }
                    // Filling under the first line only keeps the others legible.
                    @if i == 0 && points.len() > 1 {
                        path.area d=(area(&points, &coord(base))) {}
                    }
                    polyline.line points=(polyline(&points)) {}
                    // A single bucket has no line to draw: show it as a dot.
                    @if points.len() == 1 {
                        circle cx=(points[0].0) cy=(points[0].1) r="3" {}
                    }
                }
                }
            }
        }
    }
}

/// The time span drawn: the data's, or one bucket around a lone point.
fn domain(times: &[i64], bucket_ms: i64) -> (i64, i64) {
    let lo = times.iter().copied().min().unwrap_or(0);
    let hi = times.iter().copied().max().unwrap_or(0);
    if hi > lo {
        (lo, hi)
    } else {
        let half = (bucket_ms / 2).max(1);
        (lo.saturating_sub(half), lo.saturating_add(half))
    }
}

fn polyline(points: &[(String, String)]) -> String {
    let pairs: Vec<String> = points.iter().map(|(x, y)| format!("{x},{y}")).collect();
    pairs.join(" ")
}

fn area(points: &[(String, String)], base: &str) -> String {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return String::new();
    };
    format!(
        "M{},{base} L{} L{},{base} Z",
        first.0,
        polyline(points).replace(' ', " L"),
        last.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const NOON: i64 = 1_714_564_800_000;

    fn render(times: &[i64], a: Vec<u64>, b: Vec<u64>) -> String {
        let lines = [
            Line {
                label: "Requests",
                key: "requests",
                values: a,
            },
            Line {
                label: "Page views",
                key: "views",
                values: b,
            },
        ];
        time_chart(&TimeChart {
            label: "Traffic <b>",
            times,
            bucket_ms: HOUR,
            lines: &lines,
        })
        .into_string()
    }

    fn assert_sane(svg: &str) {
        for bad in ["NaN", "inf", "=\"\"", "<b>"] {
            assert!(!svg.contains(bad), "{bad} in {svg}");
        }
    }

    #[test]
    fn draws_lines_axes_and_labels() {
        let times: Vec<i64> = (0..4).map(|i| NOON + i * HOUR).collect();
        let svg = render(&times, vec![0, 10, 40, 20], vec![0, 5, 20, 10]);
        assert_sane(&svg);
        assert!(svg.starts_with(r#"<svg class="chart-svg" viewBox="0 0 640 220" role="img" aria-label="Traffic &lt;b&gt;"><title>Traffic &lt;b&gt;</title>"#));
        // 0..40 in steps of 10; the peak touches the top gridline.
        for label in [">0<", ">10<", ">20<", ">30<", ">40<"] {
            assert!(svg.contains(label), "{label}");
        }
        assert!(
            svg.contains(
                r#"<polyline class="line" points="48.0,194.0 237.3,148.0 426.7,10.0 616.0,102.0">"#
            ),
            "{svg}"
        );
        assert!(svg.contains(r#"<path class="area" d="M48.0,194.0 L48.0,194.0 L237.3,148.0 L426.7,10.0 L616.0,102.0 L616.0,194.0 Z">"#), "{svg}");
        assert_eq!(svg.matches("class=\"area\"").count(), 1);
        for t in ["12:00", "13:00", "14:00", "15:00"] {
            assert!(svg.contains(&format!(">{t}</text>")), "{t}");
        }
    }

    #[test]
    fn degenerate_data_still_draws_a_valid_chart() {
        let cases: [(Vec<i64>, Vec<u64>); 6] = [
            (vec![], vec![]),
            (vec![NOON], vec![7]),
            (vec![NOON, NOON], vec![0, 0]),
            (vec![NOON, NOON + HOUR], vec![0, 0]),
            (vec![i64::MIN, i64::MAX], vec![u64::MAX, 0]),
            (vec![NOON + HOUR, NOON], vec![1]),
        ];
        for (times, values) in cases {
            let svg = render(&times, values.clone(), values);
            assert_sane(&svg);
            assert!(svg.contains("role=\"img\""));
        }
        let one = render(&[NOON], vec![7], vec![3]);
        assert!(one.contains("<circle cx=\"332.0\""), "{one}");
        assert!(!one.contains("class=\"area\""));
    }
}
