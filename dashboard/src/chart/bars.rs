//! Bars: one bar split into shares (status classes, encodings), a ranked
//! list (top pages), and the small decorative bar of a table row.

use maud::{html, Markup};

use super::{clip, coord, ratio};
use crate::format::{compact, percent};

pub struct Part<'a> {
    pub label: &'a str,
    /// Picks the colour: class `k-{key}`.
    pub key: &'a str,
    pub value: u64,
}

/// One bar across the width, a segment per part in proportion to the
/// whole. Stretched to any width (`preserveAspectRatio="none"`), so it
/// holds no text; the words are in its label and each segment's title.
pub fn share_bar(label: &str, parts: &[Part]) -> Markup {
    let total = parts.iter().fold(0u64, |a, p| a.saturating_add(p.value));
    let summary: Vec<String> = parts
        .iter()
        .map(|p| format!("{} {}", p.label, percent(p.value, total)))
        .collect();
    let alt = format!("{label}: {}", summary.join(", "));
    // Widths from an f64 sum, which cannot saturate like `total` can.
    let sum: f64 = parts.iter().map(|p| p.value as f64).sum();
    let mut x = 0.0;
    let segments: Vec<(&Part, f64, f64)> = parts
        .iter()
        .filter(|p| p.value > 0)
        .map(|p| {
            let w = if sum > 0.0 {
                p.value as f64 / sum * 100.0
            } else {
                0.0
            };
            x += w;
            (p, x - w, w)
        })
        .collect();
    html! {
        svg.chart-svg.share-bar viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label=(alt) {
            title { (alt) }
            rect.track width="100" height="10" {}
            @for (p, x, w) in segments {
                rect class={ "k-" (p.key) } x=(coord(x)) width=(coord(w)) height="10" {
                    title { (p.label) ": " (compact(p.value)) " (" (percent(p.value, total)) ")" }
                }
            }
        }
    }
}

/// Wider than the line chart: rows are short, so at the same scale its
/// text would come out larger than the page's.
const W: f64 = 960.0;
const ROW: f64 = 24.0;
const LABEL_W: f64 = 360.0;
const VALUE_W: f64 = 64.0;
const BAR_W: f64 = W - LABEL_W - VALUE_W - 8.0;
/// Characters of a key that fit in the label column at the chart's size.
const LABEL_CHARS: usize = 48;

/// A ranked list as horizontal bars, the longest for the largest count:
/// key on the left (shortened; whole in the row's title and the table),
/// count on the right.
pub fn bars(label: &str, rows: &[(String, u64)]) -> Markup {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0);
    let h = ROW * rows.len() as f64;
    html! {
        svg.chart-svg.bars viewBox={ "0 0 " (W) " " (coord(h)) } role="img" aria-label=(label) {
            title { (label) }
            @for (i, (key, n)) in rows.iter().enumerate() {
                @let y = ROW * i as f64;
                g {
                    title { (key) ": " (n) }
                    text.bar-label x="0" y=(coord(y + ROW / 2.0)) dy="0.32em" { (clip(key, LABEL_CHARS)) }
                    rect.track x=(coord(LABEL_W)) y=(coord(y + 5.0)) width=(coord(BAR_W)) height="14" rx="2" {}
                    rect.bar x=(coord(LABEL_W)) y=(coord(y + 5.0)) width=(coord(ratio(*n, max) * BAR_W)) height="14" rx="2" {}
                    text.bar-value x=(coord(W)) y=(coord(y + ROW / 2.0)) dy="0.32em" text-anchor="end" { (compact(*n)) }
                }
            }
        }
    }
}

/// The bar in a table row, relative to the largest row. Decorative: the
/// number is in the next cell, so it is hidden from assistive tech.
pub fn inline_bar(value: u64, max: u64) -> Markup {
    html! {
        svg.inline-bar viewBox="0 0 100 1" preserveAspectRatio="none" aria-hidden="true" focusable="false" {
            rect width=(coord(ratio(value, max) * 100.0)) height="1" {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sane(svg: &str) {
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert!(!svg.contains("=\"\""), "{svg}");
    }

    #[test]
    fn shares_split_the_width() {
        let parts = [
            Part {
                label: "2xx",
                key: "2xx",
                value: 3,
            },
            Part {
                label: "4xx",
                key: "4xx",
                value: 0,
            },
            Part {
                label: "5xx",
                key: "5xx",
                value: 1,
            },
        ];
        let svg = share_bar("Status", &parts).into_string();
        sane(&svg);
        assert!(
            svg.contains(r#"aria-label="Status: 2xx 75%, 4xx 0%, 5xx 25%""#),
            "{svg}"
        );
        assert!(svg.contains(r#"<rect class="k-2xx" x="0.0" width="75.0" height="10"><title>2xx: 3 (75%)</title></rect>"#), "{svg}");
        assert!(
            svg.contains(r#"<rect class="k-5xx" x="75.0" width="25.0""#),
            "{svg}"
        );
        assert!(!svg.contains("k-4xx"), "no zero-width segment");

        let empty = share_bar(
            "Status",
            &[Part {
                label: "2xx",
                key: "2xx",
                value: 0,
            }],
        )
        .into_string();
        sane(&empty);
        assert!(empty.contains("2xx —") && !empty.contains("k-2xx"));
        let huge = [
            Part {
                label: "a",
                key: "a",
                value: u64::MAX,
            },
            Part {
                label: "b",
                key: "b",
                value: u64::MAX,
            },
        ];
        sane(&share_bar("Big", &huge).into_string());
    }

    #[test]
    fn bars_scale_to_the_largest() {
        let rows = vec![
            ("/<b>\"x\"".to_string(), 200),
            ("/b".to_string(), 50),
            ("/z".to_string(), 0),
        ];
        let svg = bars("Top pages", &rows).into_string();
        sane(&svg);
        assert!(svg.contains(r#"viewBox="0 0 960 72.0""#));
        assert!(
            svg.contains(r#"<rect class="bar" x="360.0" y="5.0" width="528.0""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<rect class="bar" x="360.0" y="29.0" width="132.0""#),
            "{svg}"
        );
        assert!(svg.contains(r#"width="0.0""#));
        assert!(
            svg.contains("<title>/&lt;b&gt;&quot;x&quot;: 200</title>"),
            "{svg}"
        );
        assert!(!svg.contains("<b>"));
        let zeros = bars("Top", &[("/".to_string(), 0)]).into_string();
        sane(&zeros);
    }

    #[test]
    fn inline_bars_never_divide_by_zero() {
        let cases = [
            (5, 10, "50.0"),
            (0, 0, "0.0"),
            (3, 0, "0.0"),
            (10, 10, "100.0"),
        ];
        for (v, max, want) in cases {
            let svg = inline_bar(v, max).into_string();
            assert!(
                svg.contains(&format!(r#"<rect width="{want}" height="1">"#)),
                "{svg}"
            );
        }
    }
}
