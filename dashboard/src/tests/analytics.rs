//! The analytics page: what it shows with traffic, without, and with
//! hostile keys (paths, referrers and user agents come from visitors).

use super::fixtures::{self as fx, HOSTILE_REFERRER, XSS};
use super::html_scan::{attr, forms, tags};
use crate::model::*;

fn render(a: &AnalyticsTab) -> String {
    crate::analytics(&fx::page(Nav::Projects), &fx::header(true), a)
}

const BASE: &str = "/projects/%3Cscript%3Ealert%281%29%3C%2Fscript%3E";

/// Every drawing attribute is a number: no NaN, no inf, nothing empty.
fn assert_svg_sane(name: &str, html: &str) {
    for kind in ["svg", "rect", "line", "polyline", "path", "circle", "text"] {
        for tag in tags(html, kind) {
            for a in [
                "x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width", "height", "points", "d",
            ] {
                if let Some(v) = attr(tag, a) {
                    assert!(
                        !v.is_empty() && !v.contains("NaN") && !v.contains("inf"),
                        "{name}: <{kind}{tag}>"
                    );
                }
            }
        }
    }
}

#[test]
fn shows_totals_charts_and_tables() {
    let html = render(&fx::analytics(true));
    assert_svg_sane("full", &html);
    for needle in [
        r#"<div id="analytics">"#,
        r#"<dd id="analytics-requests"><data value="12345">12.3k</data></dd>"#,
        r#"<dd id="analytics-page-views"><data value="4321">4.3k</data></dd>"#,
        r#"<dd id="analytics-visitors"><data value="987">987</data></dd>"#,
        r#"<dd id="analytics-bytes"><data value="1234567890">1.2 GB</data></dd>"#,
        r#"<dd id="analytics-bots"><data value="654">654</data></dd>"#,
        r#"<dd id="analytics-errors">0.8%</dd>"#,
        r#"<dd id="analytics-p95">38 ms</dd>"#,
        "Last 24 hours · per hour · production only",
        // Times on the axis and in the table, both UTC.
        ">18:00</text>",
        r#"<time datetime="2024-04-30T12:00:00Z">2024-04-30 12:00</time>"#,
        // Regions summed from nodes; shares of the whole.
        "<td class=\"num\">81%</td>",
        "<td class=\"num\">1.25 s</td>",
        r#"<td class="muted">—</td>"#,
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    for id in [
        "chart-traffic",
        "chart-status",
        "chart-encodings",
        "chart-pages",
    ] {
        let figure = format!(r#"<figure class="chart" id="{id}"><figcaption class="chart-title">"#);
        assert!(html.contains(&figure), "{id}");
    }
    // Each chart is an image with a text alternative, next to a table.
    let svgs: Vec<_> = tags(&html, "svg")
        .into_iter()
        .filter(|t| t.contains("role=\"img\""))
        .collect();
    assert_eq!(svgs.len(), 4);
    for svg in svgs {
        assert!(
            attr(svg, "aria-label").is_some_and(|l| !l.is_empty()),
            "{svg}"
        );
    }
    assert!(html.contains(r#"aria-label="Requests and page views per hour (UTC)"><title>Requests and page views per hour (UTC)</title>"#));
    assert!(html.contains(r#"aria-label="Status classes: 2xx 81%, 3xx 8.1%, 4xx 10%, 5xx 0.8%""#));
    assert!(
        html.contains("<td class=\"num\">12,345</td>")
            || html.contains("<td class=\"num\">10,000</td>")
    );
    // Decorative bars stay out of the accessibility tree.
    for bar in tags(&html, "svg")
        .into_iter()
        .filter(|t| t.contains("inline-bar"))
    {
        assert_eq!(attr(bar, "aria-hidden"), Some("true"));
    }
}

#[test]
fn range_picker_is_a_get_form() {
    let html = render(&fx::analytics(true));
    let form = forms(&html)
        .into_iter()
        .find(|f| f.contains("analytics-filter"))
        .unwrap();
    let open = tags(form, "form")[0];
    assert_eq!(attr(open, "method"), Some("get"));
    assert_eq!(
        attr(open, "action"),
        Some(format!("{BASE}/analytics").as_str())
    );
    assert!(
        !form.contains("name=\"csrf\""),
        "a GET form must not leak the token into URLs"
    );
    for needle in [
        r#"<option value="1h">Last hour</option>"#,
        r#"<option value="24h" selected>Last 24 hours</option>"#,
        r#"<option value="7d">"#,
        r#"<option value="30d">"#,
        r#"<option value="custom">Custom</option>"#,
        r#"<input id="analytics-from" type="datetime-local" name="from" aria-describedby="analytics-custom-hint">"#,
        r#"<option value="production" selected>production</option>"#,
        r#"<option value="" selected>All deployments</option>"#,
        r#"<option value="dep1234567">dep1234567 · &lt;script&gt;"#,
    ] {
        assert!(form.contains(needle), "{needle}");
    }

    let mut a = fx::analytics(true);
    a.range = AnalyticsRange::Custom {
        from_ms: fx::NOW - 3_600_000,
        to_ms: fx::NOW,
    };
    a.filter = Some(AnalyticsFilter::Deployment("dep1234567".into()));
    let html = render(&a);
    assert!(html.contains(r#"<option value="custom" selected>Custom</option>"#));
    assert!(html.contains(r#"name="from" value="2024-05-01T11:00""#));
    assert!(html.contains(r#"name="to" value="2024-05-01T12:00""#));
    assert!(html.contains(r#"<option value="dep1234567" selected>"#));
    assert!(html.contains(r#"<option value="" selected>All environments</option>"#));
    assert!(html
        .contains("2024-05-01 11:00 to 2024-05-01 12:00 UTC · per hour · deployment dep1234567"));
}

#[test]
fn no_traffic_is_an_empty_state_not_a_chart() {
    let html = render(&fx::analytics(false));
    assert_svg_sane("empty", &html);
    assert!(html.contains("No traffic in this range"));
    assert!(html.contains(r#"<dd id="analytics-requests"><data value="0">0</data></dd>"#));
    assert!(html.contains(r#"<dd id="analytics-errors">—</dd>"#));
    assert!(!html.contains("role=\"img\""));
    assert!(!html.contains("class=\"chart\""));
    // The picker stays, to choose a longer range.
    assert!(html.contains(r#"<option value="1h" selected>"#));
}

#[test]
fn sparse_data_draws_without_breaking() {
    let point = |t_ms, requests| SeriesPoint {
        t_ms,
        requests,
        ..SeriesPoint::default()
    };
    let shapes: [Vec<SeriesPoint>; 5] = [
        vec![],
        vec![point(fx::NOW, 5)],
        vec![point(fx::NOW, 0), point(fx::NOW, 3)],
        vec![point(i64::MIN, u64::MAX), point(i64::MAX, 0)],
        vec![point(fx::NOW, 1), point(fx::NOW - 60_000, u64::MAX)],
    ];
    for (i, series) in shapes.into_iter().enumerate() {
        let mut a = fx::analytics(true);
        a.series = series;
        a.totals.status = StatusClasses::default();
        a.totals.encodings = Encodings::default();
        a.totals.latency = None;
        a.top = TopLists::default();
        a.nodes = vec![];
        a.functions = vec![];
        let html = render(&a);
        assert_svg_sane(&format!("shape {i}"), &html);
        assert!(!html.contains("NaN"), "shape {i}");
        assert!(html.contains("No responses recorded."), "shape {i}");
        assert!(html.contains("No static files served."), "shape {i}");
        assert!(html.contains("No page views in this range."), "shape {i}");
        assert!(
            html.contains("No function invocations in this range."),
            "shape {i}"
        );
        assert!(html.contains(r#"<dd id="analytics-p95"><span class="muted">—</span></dd>"#));
        assert_eq!(html.contains("No data points"), i == 0, "shape {i}");
    }
}

#[test]
fn visitor_chosen_keys_are_only_text() {
    let html = render(&fx::analytics(true));
    assert!(!html.contains(XSS));
    assert!(!html.contains(HOSTILE_REFERRER));
    assert!(!html.contains("<img src=x"));
    // The path, in the chart's row title and its label, and in the table.
    assert!(html.contains("<title>/&lt;script&gt;alert(1)&lt;/script&gt;: 120</title>"));
    assert!(html.contains("<code class=\"break\">/&lt;script&gt;alert(1)&lt;/script&gt;</code>"));
    // The referrer's quotes cannot end anything, and it is not a link.
    let escaped = "https://evil.example/&quot;&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;";
    assert!(html.contains(escaped), "referrer not shown escaped");
    assert!(!html.contains("href=\"https://evil.example"));
    // Long keys are shortened in the SVG, by characters.
    let mut a = fx::analytics(true);
    a.top.pages = vec![(format!("/{}", "é".repeat(60)), 1)];
    let html = render(&a);
    assert!(html.contains(&format!(">/{}…</text>", "é".repeat(46))));
}

#[test]
fn countries_say_when_geoip_is_missing() {
    let mut a = fx::analytics(true);
    a.geoip = false;
    a.top.countries.clear();
    assert!(render(&a).contains("configure a GeoIP database"));
    a.geoip = true;
    let html = render(&a);
    assert!(!html.contains("configure a GeoIP database"));
    assert!(html.contains("No countries recorded in this range."));
}

#[test]
fn analytics_is_a_project_tab() {
    let html = render(&fx::analytics(true));
    assert!(html.contains(&format!(
        r#"<a href="{BASE}/analytics" aria-current="page">Analytics</a>"#
    )));
    assert_eq!(
        html.matches(r#"aria-current="page""#).count(),
        2,
        "nav and tab"
    );
    assert!(html.contains("<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>"));
}
