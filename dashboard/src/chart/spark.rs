//! A sparkline: one small bar per bucket, for a table cell (an error
//! issue's events per hour). The numbers are in the cell's label and the
//! row's other cells, so it carries no axis.

use maud::{html, Markup};

use super::{coord, ratio};

const BAR: f64 = 2.0;
const GAP: f64 = 1.0;
const H: f64 = 12.0;
/// The baseline under the bars, so a quiet day still shows a line.
const BASE: f64 = 0.5;

/// Bars scaled to the largest value; a bucket with any events is at least
/// one unit tall, so a single event among hundreds still shows.
pub fn sparkline(label: &str, values: &[u64]) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0);
    let w = (values.len() as f64 * (BAR + GAP) - GAP).max(BAR);
    let plot = H - BASE;
    html! {
        svg.spark viewBox={ "0 0 " (coord(w)) " " (coord(H)) } preserveAspectRatio="none"
            role="img" aria-label=(label) focusable="false" {
            title { (label) }
            rect.base x="0" y=(coord(plot)) width=(coord(w)) height=(coord(BASE)) {}
            @for (i, v) in values.iter().enumerate() {
                @if *v > 0 {
                    @let h = (ratio(*v, max) * plot).max(1.0);
                    rect x=(coord(i as f64 * (BAR + GAP))) y=(coord(plot - h)) width=(coord(BAR)) height=(coord(h)) {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(x, y, height)` of a bar.
    type Bar = (String, String, String);

    /// Every bar, in order.
    fn bars(svg: &str) -> Vec<Bar> {
        svg.split("<rect ")
            .skip(1)
            .filter(|r| !r.starts_with("class=\"base\""))
            .map(|r| {
                let a = |k: &str| {
                    let i = r.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
                    r[i..i + r[i..].find('"').unwrap()].to_string()
                };
                (a("x"), a("y"), a("height"))
            })
            .collect()
    }

    #[test]
    fn bars_scale_to_the_busiest_bucket() {
        let s = |x: &str, y: &str, h: &str| (x.to_string(), y.to_string(), h.to_string());
        let cases: [(&[u64], &str, Vec<Bar>); 6] = [
            (&[], "0 0 2.0 12.0", vec![]),
            (&[0, 0, 0], "0 0 8.0 12.0", vec![]),
            (&[3], "0 0 2.0 12.0", vec![s("0.0", "0.0", "11.5")]),
            (
                &[0, 1, 2],
                "0 0 8.0 12.0",
                vec![s("3.0", "5.8", "5.8"), s("6.0", "0.0", "11.5")],
            ),
            // One event among a thousand is still a visible bar.
            (
                &[1000, 1],
                "0 0 5.0 12.0",
                vec![s("0.0", "0.0", "11.5"), s("3.0", "10.5", "1.0")],
            ),
            (
                &[u64::MAX, u64::MAX / 2],
                "0 0 5.0 12.0",
                vec![s("0.0", "0.0", "11.5"), s("3.0", "5.8", "5.8")],
            ),
        ];
        for (values, view_box, want) in cases {
            let svg = sparkline("Events", values).into_string();
            assert!(
                svg.contains(&format!(r#"viewBox="{view_box}""#)),
                "{values:?}: {svg}"
            );
            assert!(svg.contains(r#"<rect class="base""#), "{svg}");
            assert_eq!(bars(&svg), want, "{values:?}");
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        }
    }

    #[test]
    fn the_label_is_text() {
        let svg = sparkline("<b>24h</b>", &[1]).into_string();
        assert!(svg.contains(r#"aria-label="&lt;b&gt;24h&lt;/b&gt;""#));
        assert!(svg.contains("<title>&lt;b&gt;24h&lt;/b&gt;</title>"));
    }
}
