//! Charts drawn on the server as inline SVG: no script, no library, and
//! they print. Shapes carry classes (`k-<key>` for a series), never
//! colours, so `style.css` picks colours that read in both schemes; every
//! chart is an image with a text alternative, and its page shows the same
//! numbers in a table.

mod bars;
mod line;
mod scale;
mod spark;

use maud::{html, Markup};

pub use bars::{bars, inline_bar, share_bar, Part};
pub use line::{time_chart, Line, TimeChart};
pub use spark::sparkline;

/// A chart under a visible title, with its legend above it and its numbers
/// (`data`, usually a table) below.
pub fn figure(
    id: &str,
    title: &str,
    legend: &[(&str, &str)],
    chart: Markup,
    data: Markup,
) -> Markup {
    html! {
        figure.chart id=(id) {
            figcaption.chart-title { (title) }
            @if !legend.is_empty() {
                ul.chart-legend {
                    @for (key, label) in legend {
                        li { span class={ "swatch k-" (key) } aria-hidden="true" {} (label) }
                    }
                }
            }
            div.chart-box { (chart) }
            (data)
        }
    }
}

/// An SVG coordinate: one decimal is finer than a pixel, and a value that
/// is not finite (never expected) becomes 0 rather than a broken attribute.
fn coord(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    // "-0.0" is valid but reads oddly in tests and diffs.
    let s = format!("{v:.1}");
    if s == "-0.0" {
        "0.0".into()
    } else {
        s
    }
}

/// `part / whole`, 0 when there is no whole: the one division every chart
/// scales by.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// At most `max` characters (not bytes: keys are any UTF-8), with an
/// ellipsis when cut; SVG text does not wrap.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if s[i..].chars().nth(1).is_some() => format!("{}…", &s[..i]),
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coords_are_always_numbers() {
        let cases = [
            (0.0, "0.0"),
            (12.345, "12.3"),
            (-0.01, "0.0"),
            (-3.0, "-3.0"),
            (f64::NAN, "0.0"),
            (f64::INFINITY, "0.0"),
            (f64::NEG_INFINITY, "0.0"),
        ];
        for (v, want) in cases {
            assert_eq!(coord(v), want, "{v}");
        }
        assert_eq!(ratio(1, 0), 0.0);
        assert_eq!(ratio(1, 4), 0.25);
    }

    #[test]
    fn clips_by_characters() {
        let cases = [
            ("", 3, ""),
            ("abc", 3, "abc"),
            ("abcd", 3, "ab…"),
            ("ééééé", 3, "éé…"),
        ];
        for (s, max, want) in cases {
            assert_eq!(clip(s, max), want, "{s} {max}");
        }
    }
}
